//! The kinds of record the gateway numbers and keeps: the three kinds of enforcement case the
//! notice covers, and the inspection plans (检查计划) the 双随机 inspections are drawn from.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// 案件类型: 行政检查 / 行政处罚 / 行政强制, and 检查计划 (an inspection plan: not a case, but a
/// record kept, versioned and delivered the same way, under its own code prefix `JH`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseType {
    /// 行政检查
    Inspection,
    /// 行政处罚
    Penalty,
    /// 行政强制
    Coercion,
    /// 检查计划 (年度计划 / 专项计划)
    Plan,
}

impl CaseType {
    /// All record kinds, in code order.
    pub const ALL: [CaseType; 4] = [
        CaseType::Inspection,
        CaseType::Penalty,
        CaseType::Coercion,
        CaseType::Plan,
    ];

    /// The three enforcement case types of 一案一码 (without plans).
    pub const CASES: [CaseType; 3] = [CaseType::Inspection, CaseType::Penalty, CaseType::Coercion];

    /// The canonical name used in records and configuration (`inspection`, `penalty`, `coercion`, `plan`).
    pub fn as_str(self) -> &'static str {
        match self {
            CaseType::Inspection => "inspection",
            CaseType::Penalty => "penalty",
            CaseType::Coercion => "coercion",
            CaseType::Plan => "plan",
        }
    }

    /// The two-letter prefix of the unified code (`JC`, `CF`, `QZ`; `JH` for plans).
    pub fn code_prefix(self) -> &'static str {
        match self {
            CaseType::Inspection => "JC",
            CaseType::Penalty => "CF",
            CaseType::Coercion => "QZ",
            CaseType::Plan => "JH",
        }
    }

    /// The case type whose unified-code prefix is `prefix`.
    pub fn from_code_prefix(prefix: &str) -> Option<CaseType> {
        CaseType::ALL.into_iter().find(|t| t.code_prefix() == prefix)
    }

    /// The Chinese name (行政检查, 行政处罚, 行政强制, 检查计划).
    pub fn name_zh(self) -> &'static str {
        match self {
            CaseType::Inspection => "行政检查",
            CaseType::Penalty => "行政处罚",
            CaseType::Coercion => "行政强制",
            CaseType::Plan => "检查计划",
        }
    }
}

impl fmt::Display for CaseType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for a string that names no case type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("未知案件类型 / unknown case type: {0:?} (expected inspection, penalty, coercion or plan)")]
pub struct UnknownCaseType(pub String);

impl FromStr for CaseType {
    type Err = UnknownCaseType;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "inspection" | "行政检查" | "JC" => Ok(CaseType::Inspection),
            "penalty" | "行政处罚" | "CF" => Ok(CaseType::Penalty),
            "coercion" | "行政强制" | "QZ" => Ok(CaseType::Coercion),
            "plan" | "检查计划" | "JH" => Ok(CaseType::Plan),
            other => Err(UnknownCaseType(other.to_string())),
        }
    }
}
