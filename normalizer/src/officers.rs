//! The officer registry (执法人员名录) and its rules. The notice (五) says no one may act as a
//! law-enforcement officer without passing the qualification exam: every certificate number
//! (执法证号) a record names must be in the registry of its agency (or of the agency that
//! entrusted it), valid on the day of the action and not suspended or revoked.
//!
//! - [`OfficerRegistry`]: officers by agency and normalised certificate number.
//! - [`parse_officers`]: read a registry file (CSV with Chinese or English headers, UTF-8 or
//!   GBK; or JSON), every row checked, errors naming line, field and value.
//! - [`check`]: `rule.officer_not_registered`, `rule.officer_certificate_invalid` and
//!   `rule.officer_registry_missing`, with their severity from [`OfficerSeverity`].

use crate::standards::credit_code::CreditCode;
use crate::standards::normalise::normalise_identifier;
use crate::Violation;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::str::FromStr;

/// An officer's status in the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OfficerStatus {
    /// 在岗 / 有效: may act.
    Active,
    /// 暂扣 / 暂停: may not act for now.
    Suspended,
    /// 注销 / 吊销 / 收回: may not act.
    Revoked,
}

impl OfficerStatus {
    /// The stored name (`active`, `suspended`, `revoked`).
    pub fn as_str(self) -> &'static str {
        match self {
            OfficerStatus::Active => "active",
            OfficerStatus::Suspended => "suspended",
            OfficerStatus::Revoked => "revoked",
        }
    }

    /// The Chinese name, for messages.
    pub fn zh(self) -> &'static str {
        match self {
            OfficerStatus::Active => "有效",
            OfficerStatus::Suspended => "暂扣",
            OfficerStatus::Revoked => "注销",
        }
    }
}

impl FromStr for OfficerStatus {
    type Err = ();

    /// English names, Chinese words and the usual codes (`1` active, `0` revoked, `2` suspended).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        Ok(match s.to_ascii_lowercase().as_str() {
            "active" | "valid" | "1" | "有效" | "正常" | "在岗" | "在用" | "启用" => OfficerStatus::Active,
            "suspended" | "2" | "暂扣" | "暂停" | "停用" | "冻结" => OfficerStatus::Suspended,
            "revoked" | "0" | "注销" | "吊销" | "撤销" | "收回" | "作废" | "失效" | "离岗" => {
                OfficerStatus::Revoked
            }
            _ => return Err(()),
        })
    }
}

impl fmt::Display for OfficerStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One officer of an agency's registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Officer {
    /// 姓名.
    pub name: String,
    /// 执法证号, normalised ([`normalise_identifier`]).
    pub cert_no: String,
    /// The agency's unified social credit code (normalised).
    pub agency_credit_code: String,
    /// First day the certificate is valid (open when absent).
    pub valid_from: Option<NaiveDate>,
    /// Last day the certificate is valid (open when absent).
    pub valid_to: Option<NaiveDate>,
    /// Status.
    pub status: OfficerStatus,
}

impl Officer {
    /// The validity as text, for messages (`2023-01-01 至 2027-12-31`).
    pub fn validity(&self) -> String {
        let day = |d: Option<NaiveDate>| d.map_or_else(|| "—".to_string(), |d| d.to_string());
        format!("{} ~ {}", day(self.valid_from), day(self.valid_to))
    }

    /// True when the certificate is valid on `day` (status aside).
    pub fn valid_on(&self, day: NaiveDate) -> bool {
        self.valid_from.is_none_or(|f| f <= day) && self.valid_to.is_none_or(|t| day <= t)
    }
}

/// Officers by agency and certificate number.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OfficerRegistry {
    by_agency: BTreeMap<String, HashMap<String, Officer>>,
}

impl OfficerRegistry {
    /// A registry of these officers (a later row of the same agency and certificate wins).
    pub fn from_officers(officers: impl IntoIterator<Item = Officer>) -> OfficerRegistry {
        let mut registry = OfficerRegistry::default();
        for o in officers {
            registry.insert(o);
        }
        registry
    }

    /// Add (or replace) an officer.
    pub fn insert(&mut self, officer: Officer) {
        self.by_agency
            .entry(officer.agency_credit_code.clone())
            .or_default()
            .insert(officer.cert_no.clone(), officer);
    }

    /// Replace the whole list of `agency` (an empty list keeps the agency as loaded, with nobody).
    pub fn replace_agency(&mut self, agency: &str, officers: impl IntoIterator<Item = Officer>) {
        let list = officers.into_iter().map(|o| (o.cert_no.clone(), o)).collect();
        self.by_agency.insert(agency.to_string(), list);
    }

    /// True when a list of `agency` is loaded.
    pub fn has_agency(&self, agency: &str) -> bool {
        self.by_agency.contains_key(agency)
    }

    /// The officer of `agency` with certificate `cert_no` (normalised).
    pub fn get(&self, agency: &str, cert_no: &str) -> Option<&Officer> {
        self.by_agency.get(agency)?.get(cert_no)
    }

    /// The agencies with a loaded list.
    pub fn agencies(&self) -> impl Iterator<Item = &str> {
        self.by_agency.keys().map(String::as_str)
    }

    /// Number of officers over all agencies.
    pub fn len(&self) -> usize {
        self.by_agency.values().map(HashMap::len).sum()
    }

    /// True when no agency's list is loaded.
    pub fn is_empty(&self) -> bool {
        self.by_agency.is_empty()
    }
}

/// How hard the officer rules bite (`[normalizer.officers] severity`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OfficerSeverity {
    /// Warnings while the record's agency has no registry loaded (`rule.officer_registry_missing`),
    /// errors (`rule.officer_not_registered`, `rule.officer_certificate_invalid`) once it has.
    #[default]
    Auto,
    /// Every finding is a warning: records are committed, the findings shown.
    Warning,
    /// Every finding is an error, a missing registry too: no record is committed unless each of
    /// its officers is registered and valid.
    Error,
}

/// The registry and how its findings count (what [`crate::rules::RuleOptions`] carries).
#[derive(Debug, Clone, Default)]
pub struct OfficerRules {
    /// The loaded registries.
    pub registry: std::sync::Arc<OfficerRegistry>,
    /// Severity of the findings.
    pub severity: OfficerSeverity,
}

/// The record's facts the officer rules read.
#[derive(Debug, Clone, Copy)]
pub struct OfficerFacts<'r> {
    /// `/officers`.
    pub officers: Option<&'r Value>,
    /// `/agency/credit_code`.
    pub agency: Option<&'r str>,
    /// `/entrusted_agency/credit_code`.
    pub entrusted: Option<&'r str>,
    /// The action date: inspection date, penalty decision (else filing) date, coercion start.
    pub action_date: Option<NaiveDate>,
    /// Which field the date came from (for messages).
    pub date_field: &'static str,
}

/// Run the officer rules on one record.
pub fn check(facts: &OfficerFacts<'_>, rules: &OfficerRules, out: &mut Vec<Violation>) {
    let Some(officers) = facts.officers.and_then(Value::as_array) else {
        return;
    };
    let Some(agency) = facts.agency.filter(|a| !a.is_empty()) else {
        return;
    };
    let entrusted = facts.entrusted.filter(|e| !e.is_empty() && *e != agency);
    let registry = &rules.registry;
    let loaded: Vec<&str> = [Some(agency), entrusted]
        .into_iter()
        .flatten()
        .filter(|a| registry.has_agency(a))
        .collect();
    let agencies_text = match entrusted {
        Some(e) => format!("{agency}（受委托 {e}）"),
        None => agency.to_string(),
    };
    let agencies_en = match entrusted {
        Some(e) => format!("{agency} (entrusted: {e})"),
        None => agency.to_string(),
    };
    let make = |severity_error: bool, pointer: String, rule: &str, value: Option<String>, zh: String, en: String| {
        if severity_error {
            Violation::error(pointer, rule, value, zh, en)
        } else {
            Violation::warning(pointer, rule, value, zh, en)
        }
    };
    if loaded.is_empty() {
        out.push(make(
            rules.severity == OfficerSeverity::Error,
            "/officers".to_string(),
            "rule.officer_registry_missing",
            Some(agency.to_string()),
            format!("执法部门 {agencies_text} 尚未加载执法人员名录，无法核对执法人员的执法资格"),
            format!("no officer registry (执法人员名录) is loaded for agency {agencies_en}: officers' qualifications not checked"),
        ));
        return;
    }
    let as_error = rules.severity != OfficerSeverity::Warning;
    for (i, officer) in officers.iter().enumerate() {
        let Some(cert) = officer.get("cert_no").and_then(Value::as_str) else {
            continue;
        };
        let name = officer.get("name").and_then(Value::as_str).unwrap_or("");
        let key = normalise_identifier(cert);
        let pointer = format!("/officers/{i}/cert_no");
        let found = loaded.iter().find_map(|a| registry.get(a, &key));
        let Some(entry) = found else {
            out.push(make(
                as_error,
                pointer,
                "rule.officer_not_registered",
                Some(cert.to_string()),
                format!(
                    "执法人员 {name}（执法证号 {cert}）不在执法部门 {agencies_text} 的执法人员名录中：未取得执法资格不得从事执法活动"
                ),
                format!(
                    "officer {name} (certificate {cert}) is not in the officer registry of agency {agencies_en}: no one may act without the qualification"
                ),
            ));
            continue;
        };
        let day = facts.action_date;
        let out_of_validity = day.is_some_and(|d| !entry.valid_on(d));
        if entry.status == OfficerStatus::Active && !out_of_validity {
            continue;
        }
        let validity = entry.validity();
        let (day_zh, day_en) = match day {
            Some(d) => (
                format!("{}（{}）", d, facts.date_field),
                format!("{d} ({})", facts.date_field),
            ),
            None => ("（无执法日期）".to_string(), "(no action date)".to_string()),
        };
        let status = entry.status;
        out.push(make(
            as_error,
            pointer,
            "rule.officer_certificate_invalid",
            Some(cert.to_string()),
            format!(
                "执法人员 {name}（执法证号 {cert}，执法部门 {}）的执法证在执法日期 {day_zh} 无效：有效期 {validity}，状态 {}",
                entry.agency_credit_code,
                status.zh()
            ),
            format!(
                "officer {name}'s certificate {cert} (agency {}) is not valid on the action date {day_en}: valid {validity}, status {status}",
                entry.agency_credit_code
            ),
        ));
    }
}

/// The format of a registry file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistryFormat {
    /// CSV with a header row.
    Csv,
    /// A JSON array of objects (or `{"officers": [...]}`).
    Json,
}

impl RegistryFormat {
    /// `csv` or `json`.
    pub fn parse(s: &str) -> Option<RegistryFormat> {
        match s.trim().to_ascii_lowercase().as_str() {
            "csv" => Some(RegistryFormat::Csv),
            "json" => Some(RegistryFormat::Json),
            _ => None,
        }
    }

    /// Guess from the first non-blank byte: `[` or `{` is JSON, anything else CSV.
    pub fn sniff(bytes: &[u8]) -> RegistryFormat {
        let first = bytes
            .strip_prefix(b"\xEF\xBB\xBF")
            .unwrap_or(bytes)
            .iter()
            .find(|b| !b.is_ascii_whitespace());
        match first {
            Some(b'[' | b'{') => RegistryFormat::Json,
            _ => RegistryFormat::Csv,
        }
    }
}

/// One problem of a registry file: line (CSV; JSON: item number), field, value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowProblem {
    /// 1-based line of the CSV file (JSON: 1-based position in the array).
    pub line: usize,
    /// The field (`cert_no`, `valid_to`, ...; empty for the whole row).
    pub field: String,
    /// The value found.
    pub value: Option<String>,
    /// What is wrong, in Chinese.
    pub message_zh: String,
    /// What is wrong, in English.
    pub message_en: String,
}

impl fmt::Display for RowProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "第 {} 行 字段 {} 值 {:?}：{} / line {} field {} value {:?}: {}",
            self.line,
            self.field,
            self.value.as_deref().unwrap_or(""),
            self.message_zh,
            self.line,
            self.field,
            self.value.as_deref().unwrap_or(""),
            self.message_en
        )
    }
}

/// Why a registry file was refused: every problem found (at most [`MAX_PROBLEMS`]).
#[derive(Debug, Clone, thiserror::Error)]
#[error("执法人员名录有 {} 处错误 / the officer registry has {} problem(s):\n{}", problems.len(), problems.len(), problems.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
pub struct RegistryFileError {
    /// The problems, in file order.
    pub problems: Vec<RowProblem>,
}

/// Most problems reported of one file.
pub const MAX_PROBLEMS: usize = 100;

/// The registry's fields and the header names that mean them (lower-cased English, Chinese).
const HEADERS: [(&str, &[&str]); 6] = [
    ("name", &["name", "officer_name", "姓名", "执法人员姓名", "人员姓名"]),
    (
        "cert_no",
        &[
            "cert_no",
            "certificate",
            "certificate_no",
            "cert",
            "执法证号",
            "执法证件号",
            "执法证件号码",
            "证件号",
            "证号",
        ],
    ),
    (
        "agency",
        &[
            "agency",
            "agency_credit_code",
            "credit_code",
            "执法部门统一社会信用代码",
            "统一社会信用代码",
            "执法主体统一社会信用代码",
            "所属单位统一社会信用代码",
        ],
    ),
    (
        "valid_from",
        &["valid_from", "issued", "有效期起", "有效期开始", "发证日期", "有效期自"],
    ),
    (
        "valid_to",
        &["valid_to", "expires", "有效期止", "有效期至", "有效期结束", "到期日期"],
    ),
    ("status", &["status", "state", "状态", "证件状态", "人员状态"]),
];

fn field_of_header(header: &str) -> Option<&'static str> {
    let h = crate::standards::to_halfwidth(header.trim().trim_start_matches('\u{FEFF}')).to_ascii_lowercase();
    HEADERS
        .iter()
        .find(|(_, names)| names.iter().any(|n| *n == h))
        .map(|(field, _)| *field)
}

/// Decode a file: UTF-8 (a BOM dropped), else GBK.
pub fn decode_text(bytes: &[u8]) -> String {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        Err(_) => encoding_rs::GBK.decode(bytes).0.into_owned(),
    }
}

/// A day in `YYYY-MM-DD`, `YYYY/MM/DD`, `YYYYMMDD` or `YYYY年M月D日`.
fn parse_day(s: &str) -> Option<NaiveDate> {
    let s = s.trim();
    ["%Y-%m-%d", "%Y/%m/%d", "%Y%m%d", "%Y年%m月%d日", "%Y.%m.%d"]
        .iter()
        .find_map(|f| NaiveDate::parse_from_str(s, f).ok())
        .or_else(|| {
            // A date-time: its day.
            s.get(..10).and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        })
}

/// The fields of one row, by field name (values trimmed, empty ones absent).
type Row = BTreeMap<&'static str, String>;

/// Check one row and build its officer.
fn officer_of_row(
    line: usize,
    row: &Row,
    default_agency: Option<&str>,
    problems: &mut Vec<RowProblem>,
) -> Option<Officer> {
    let before = problems.len();
    let mut problem = |field: &str, value: Option<&str>, zh: String, en: String| {
        problems.push(RowProblem {
            line,
            field: field.to_string(),
            value: value.map(str::to_string),
            message_zh: zh,
            message_en: en,
        })
    };
    let name = row.get("name").cloned().unwrap_or_default();
    if name.is_empty() {
        problem(
            "name",
            None,
            "缺少执法人员姓名".into(),
            "the officer's name is missing".into(),
        );
    } else if name.chars().count() > 100 {
        problem(
            "name",
            Some(&name),
            "姓名过长（最多100字）".into(),
            "name longer than 100 characters".into(),
        );
    }
    let cert_no = row.get("cert_no").map(|c| normalise_identifier(c)).unwrap_or_default();
    if cert_no.is_empty() {
        problem(
            "cert_no",
            None,
            "缺少执法证号".into(),
            "the certificate number (执法证号) is missing".into(),
        );
    } else if cert_no.chars().count() > 64 || !cert_no.chars().all(|c| c.is_ascii_alphanumeric() || !c.is_ascii()) {
        problem(
            "cert_no",
            row.get("cert_no").map(String::as_str),
            "执法证号只能包含字母、数字（最多64位）".into(),
            "a certificate number holds letters and digits only (at most 64)".into(),
        );
    }
    let agency_text = row.get("agency").map(String::as_str).or(default_agency);
    let agency = match agency_text {
        None => {
            problem(
                "agency",
                None,
                "缺少执法部门统一社会信用代码（或在加载时指定 --agency / agency=）".into(),
                "the agency's credit code is missing (or give --agency / agency= when loading)".into(),
            );
            None
        }
        Some(text) => match CreditCode::parse(text) {
            Ok(code) => Some(code.as_str().to_string()),
            Err(e) => {
                problem(
                    "agency",
                    Some(text),
                    format!("执法部门统一社会信用代码无效：{e}"),
                    format!("invalid agency credit code: {e}"),
                );
                None
            }
        },
    };
    if let (Some(given), Some(default), Some(agency)) = (row.get("agency"), default_agency, &agency) {
        if CreditCode::parse(default).is_ok_and(|d| d.as_str() != agency) {
            problem(
                "agency",
                Some(given),
                format!("该行属于执法部门 {agency}，与指定的 {default} 不符"),
                format!("the row belongs to agency {agency}, not to the agency {default} this load is for"),
            );
        }
    }
    let mut day = |field: &'static str| -> Option<NaiveDate> {
        let text = row.get(field)?;
        let parsed = parse_day(text);
        if parsed.is_none() {
            problem(
                field,
                Some(text),
                "日期无效（应为 YYYY-MM-DD）".into(),
                "invalid date (use YYYY-MM-DD)".into(),
            );
        }
        parsed
    };
    let valid_from = day("valid_from");
    let valid_to = day("valid_to");
    if let (Some(f), Some(t)) = (valid_from, valid_to) {
        if t < f {
            problems.push(RowProblem {
                line,
                field: "valid_to".into(),
                value: Some(t.to_string()),
                message_zh: format!("有效期止 {t} 早于有效期起 {f}"),
                message_en: format!("valid_to {t} is before valid_from {f}"),
            });
        }
    }
    let status = match row.get("status") {
        None => OfficerStatus::Active,
        Some(text) => match text.parse() {
            Ok(s) => s,
            Err(()) => {
                problems.push(RowProblem {
                    line,
                    field: "status".into(),
                    value: Some(text.clone()),
                    message_zh: "状态无效（有效/暂扣/注销，或 active/suspended/revoked）".into(),
                    message_en: "invalid status (active, suspended or revoked; 有效/暂扣/注销)".into(),
                });
                OfficerStatus::Active
            }
        },
    };
    if problems.len() > before {
        return None;
    }
    Some(Officer {
        name,
        cert_no,
        agency_credit_code: agency?,
        valid_from,
        valid_to,
        status,
    })
}

fn csv_rows(text: &str, problems: &mut Vec<RowProblem>) -> Vec<(usize, Row)> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers: Vec<Option<&'static str>> = match reader.headers() {
        Ok(h) => h.iter().map(field_of_header).collect(),
        Err(e) => {
            problems.push(RowProblem {
                line: 1,
                field: String::new(),
                value: None,
                message_zh: format!("无法读取表头：{e}"),
                message_en: format!("cannot read the header: {e}"),
            });
            return Vec::new();
        }
    };
    for required in ["name", "cert_no"] {
        if !headers.contains(&Some(required)) {
            problems.push(RowProblem {
                line: 1,
                field: required.into(),
                value: None,
                message_zh: format!("表头缺少 {required} 列（如 姓名、执法证号）"),
                message_en: format!("the header has no {required} column (e.g. name, cert_no; 姓名, 执法证号)"),
            });
        }
    }
    if !problems.is_empty() {
        return Vec::new();
    }
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line() as usize);
                problems.push(RowProblem {
                    line,
                    field: String::new(),
                    value: None,
                    message_zh: format!("CSV 格式错误：{e}"),
                    message_en: format!("malformed CSV: {e}"),
                });
                continue;
            }
        };
        let line = record.position().map_or(0, |p| p.line() as usize);
        if record.iter().all(str::is_empty) {
            continue;
        }
        let mut row = Row::new();
        for (i, value) in record.iter().enumerate() {
            if let Some(Some(field)) = headers.get(i) {
                if !value.is_empty() {
                    row.insert(field, value.to_string());
                }
            }
        }
        rows.push((line, row));
    }
    rows
}

fn json_rows(text: &str, problems: &mut Vec<RowProblem>) -> Vec<(usize, Row)> {
    let value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            problems.push(RowProblem {
                line: e.line(),
                field: String::new(),
                value: None,
                message_zh: format!("JSON 格式错误：{e}"),
                message_en: format!("malformed JSON: {e}"),
            });
            return Vec::new();
        }
    };
    let items = match &value {
        Value::Array(items) => items,
        Value::Object(map) => match map.get("officers").and_then(Value::as_array) {
            Some(items) => items,
            None => {
                problems.push(RowProblem {
                    line: 1,
                    field: "officers".into(),
                    value: None,
                    message_zh: "JSON 应为数组，或含 officers 数组的对象".into(),
                    message_en: "the JSON must be an array or an object with an `officers` array".into(),
                });
                return Vec::new();
            }
        },
        _ => {
            problems.push(RowProblem {
                line: 1,
                field: String::new(),
                value: None,
                message_zh: "JSON 应为数组".into(),
                message_en: "the JSON must be an array of officers".into(),
            });
            return Vec::new();
        }
    };
    let mut rows = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let Value::Object(map) = item else {
            problems.push(RowProblem {
                line: i + 1,
                field: String::new(),
                value: None,
                message_zh: "每一项应为对象".into(),
                message_en: "each item must be an object".into(),
            });
            continue;
        };
        let mut row = Row::new();
        for (key, v) in map {
            let Some(field) = field_of_header(key) else { continue };
            let text = match v {
                Value::String(s) => s.trim().to_string(),
                Value::Number(n) => n.to_string(),
                _ => continue,
            };
            if !text.is_empty() {
                row.insert(field, text);
            }
        }
        rows.push((i + 1, row));
    }
    rows
}

/// Read a registry file (CSV or JSON; UTF-8, else GBK). Rows without an agency column take
/// `default_agency`. Every row is checked; any problem refuses the whole file. A certificate
/// listed twice for one agency is a problem too.
pub fn parse_officers(
    bytes: &[u8],
    format: RegistryFormat,
    default_agency: Option<&str>,
) -> Result<Vec<Officer>, RegistryFileError> {
    let text = decode_text(bytes);
    let mut problems = Vec::new();
    let rows = match format {
        RegistryFormat::Csv => csv_rows(&text, &mut problems),
        RegistryFormat::Json => json_rows(&text, &mut problems),
    };
    let mut officers = Vec::with_capacity(rows.len());
    let mut seen: HashMap<(String, String), usize> = HashMap::new();
    for (line, row) in rows {
        if let Some(o) = officer_of_row(line, &row, default_agency, &mut problems) {
            if let Some(first) = seen.insert((o.agency_credit_code.clone(), o.cert_no.clone()), line) {
                problems.push(RowProblem {
                    line,
                    field: "cert_no".into(),
                    value: Some(o.cert_no.clone()),
                    message_zh: format!("执法证号与第 {first} 行重复"),
                    message_en: format!("certificate number already listed on line {first}"),
                });
                continue;
            }
            officers.push(o);
        }
        if problems.len() >= MAX_PROBLEMS {
            break;
        }
    }
    if problems.is_empty() && officers.is_empty() && default_agency.is_none() {
        problems.push(RowProblem {
            line: 1,
            field: String::new(),
            value: None,
            message_zh: "名录中没有执法人员（清空某部门名录时请指定 --agency / agency=）".into(),
            message_en:
                "the registry lists no officer (to empty an agency's list, name the agency with --agency / agency=)"
                    .into(),
        });
    }
    if problems.is_empty() {
        Ok(officers)
    } else {
        problems.truncate(MAX_PROBLEMS);
        Err(RegistryFileError { problems })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const AGENCY: &str = "11360100014523152U";
    const ENTRUSTED: &str = "11360400014587316A";

    fn officer(cert: &str, agency: &str) -> Officer {
        Officer {
            name: "张三".into(),
            cert_no: cert.into(),
            agency_credit_code: agency.into(),
            valid_from: NaiveDate::from_ymd_opt(2023, 1, 1),
            valid_to: NaiveDate::from_ymd_opt(2025, 12, 31),
            status: OfficerStatus::Active,
        }
    }

    fn run(record_officers: Value, entrusted: Option<&str>, day: &str, rules: &OfficerRules) -> Vec<Violation> {
        let mut out = Vec::new();
        let facts = OfficerFacts {
            officers: Some(&record_officers),
            agency: Some(AGENCY),
            entrusted,
            action_date: NaiveDate::parse_from_str(day, "%Y-%m-%d").ok(),
            date_field: "/inspection/check_date",
        };
        check(&facts, rules, &mut out);
        out
    }

    fn rules(severity: OfficerSeverity, officers: Vec<Officer>) -> OfficerRules {
        OfficerRules {
            registry: std::sync::Arc::new(OfficerRegistry::from_officers(officers)),
            severity,
        }
    }

    #[test]
    fn registered_valid_officers_pass_and_an_unknown_one_is_an_error_once_the_agency_has_a_registry() {
        let r = rules(
            OfficerSeverity::Auto,
            vec![officer("JX0001", AGENCY), officer("JX0002", AGENCY)],
        );
        let two = json!([{"name": "张三", "cert_no": "jx 0001"}, {"name": "李四", "cert_no": "JX0002"}]);
        assert!(run(two, None, "2024-05-01", &r).is_empty());
        let v = run(
            json!([{"name": "张三", "cert_no": "JX0001"}, {"name": "王五", "cert_no": "JX9999"}]),
            None,
            "2024-05-01",
            &r,
        );
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].rule, "rule.officer_not_registered");
        assert!(v[0].is_error());
        assert_eq!(v[0].pointer, "/officers/1/cert_no");
        assert!(
            v[0].message_zh.contains("王五") && v[0].message_zh.contains("JX9999") && v[0].message_zh.contains(AGENCY)
        );
    }

    #[test]
    fn without_a_registry_for_the_agency_auto_warns_once_and_error_severity_refuses() {
        let officers = json!([{"name": "张三", "cert_no": "JX0001"}]);
        let auto = rules(OfficerSeverity::Auto, vec![officer("JX0001", ENTRUSTED)]);
        let v = run(officers.clone(), None, "2024-05-01", &auto);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].rule, "rule.officer_registry_missing");
        assert!(!v[0].is_error());
        let strict = rules(OfficerSeverity::Error, vec![]);
        let v = run(officers, None, "2024-05-01", &strict);
        assert_eq!(v[0].rule, "rule.officer_registry_missing");
        assert!(v[0].is_error());
    }

    #[test]
    fn an_officer_of_the_entrusted_agency_is_registered() {
        let r = rules(OfficerSeverity::Auto, vec![officer("JX0001", ENTRUSTED)]);
        let officers = json!([{"name": "张三", "cert_no": "JX0001"}]);
        assert!(run(officers.clone(), Some(ENTRUSTED), "2024-05-01", &r).is_empty());
        let v = run(
            json!([{"name": "赵六", "cert_no": "JX0003"}]),
            Some(ENTRUSTED),
            "2024-05-01",
            &r,
        );
        assert_eq!(v[0].rule, "rule.officer_not_registered");
        assert!(v[0].message_zh.contains(ENTRUSTED));
    }

    #[test]
    fn a_certificate_outside_its_validity_or_not_active_is_invalid_naming_date_and_validity() {
        let mut suspended = officer("JX0002", AGENCY);
        suspended.status = OfficerStatus::Suspended;
        let r = rules(OfficerSeverity::Auto, vec![officer("JX0001", AGENCY), suspended]);
        let v = run(json!([{"name": "张三", "cert_no": "JX0001"}]), None, "2026-01-01", &r);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].rule, "rule.officer_certificate_invalid");
        assert!(v[0].is_error());
        assert!(
            v[0].message_zh.contains("2026-01-01") && v[0].message_zh.contains("2023-01-01 ~ 2025-12-31"),
            "{}",
            v[0].message_zh
        );
        assert!(run(json!([{"name": "张三", "cert_no": "JX0001"}]), None, "2025-12-31", &r).is_empty());
        let v = run(json!([{"name": "李四", "cert_no": "JX0002"}]), None, "2024-01-01", &r);
        assert_eq!(v[0].rule, "rule.officer_certificate_invalid");
        assert!(v[0].message_en.contains("suspended"), "{}", v[0].message_en);
    }

    #[test]
    fn warning_severity_never_refuses() {
        let r = rules(OfficerSeverity::Warning, vec![officer("JX0001", AGENCY)]);
        let v = run(
            json!([{"name": "王五", "cert_no": "JX9999"}, {"name": "张三", "cert_no": "JX0001"}]),
            None,
            "2030-01-01",
            &r,
        );
        assert_eq!(v.len(), 2);
        assert!(v.iter().all(|v| !v.is_error()));
    }

    #[test]
    fn csv_with_chinese_headers_in_gbk_is_read_and_certificates_normalised() {
        let text = "姓名,执法证号,执法部门统一社会信用代码,有效期起,有效期止,状态\n张三,jx－0001,11360100014523152U,2023-01-01,2025-12-31,有效\n李四,JX0002,11360100014523152U,,,暂扣\n";
        let (gbk, _, _) = encoding_rs::GBK.encode(text);
        let officers = parse_officers(&gbk, RegistryFormat::Csv, None).unwrap();
        assert_eq!(officers.len(), 2);
        assert_eq!(officers[0].name, "张三");
        assert_eq!(officers[0].cert_no, "JX0001");
        assert_eq!(officers[0].valid_to, NaiveDate::from_ymd_opt(2025, 12, 31));
        assert_eq!(officers[1].status, OfficerStatus::Suspended);
        assert_eq!(officers[1].valid_from, None);
    }

    #[test]
    fn english_csv_takes_the_agency_given_for_the_load() {
        let text = "name,cert_no,valid_to\nZhang San,JX0001,2025-12-31\n";
        let officers = parse_officers(text.as_bytes(), RegistryFormat::Csv, Some(AGENCY)).unwrap();
        assert_eq!(officers[0].agency_credit_code, AGENCY);
        assert!(parse_officers(text.as_bytes(), RegistryFormat::Csv, None).is_err());
    }

    #[test]
    fn bad_rows_are_reported_with_line_field_and_value() {
        let text = "姓名,执法证号,统一社会信用代码,有效期止,状态\n张三,JX0001,11360100014523152U,2025-13-40,有效\n,JX0002,11360100014523152U,,停职中\n李四,JX0001,11360100014523152U,,\n";
        let e = parse_officers(text.as_bytes(), RegistryFormat::Csv, None).unwrap_err();
        let find = |line: usize, field: &str| e.problems.iter().find(|p| p.line == line && p.field == field);
        assert_eq!(
            find(2, "valid_to").and_then(|p| p.value.clone()).as_deref(),
            Some("2025-13-40")
        );
        assert!(find(3, "name").is_some());
        assert_eq!(
            find(3, "status").and_then(|p| p.value.clone()).as_deref(),
            Some("停职中")
        );
        let text = e.to_string();
        assert!(
            text.contains("第 3 行") && text.contains("line 3") && text.contains("status"),
            "{text}"
        );
        let dup = "姓名,执法证号,统一社会信用代码\n张三,JX0001,11360100014523152U\n李四,jx0001,11360100014523152U\n";
        let e = parse_officers(dup.as_bytes(), RegistryFormat::Csv, None).unwrap_err();
        assert_eq!(e.problems[0].line, 3);
        assert!(e.problems[0].message_en.contains("line 2"));
        let bad_agency = "name,cert_no,agency\nA,JX1,11360100014523152X\n";
        let e = parse_officers(bad_agency.as_bytes(), RegistryFormat::Csv, None).unwrap_err();
        assert_eq!(e.problems[0].field, "agency");
    }

    #[test]
    fn json_registry_is_read() {
        let text = json!({"officers": [{"name": "张三", "cert_no": "JX0001", "agency": AGENCY, "status": "revoked", "valid_from": "2023-01-01"}]})
            .to_string();
        assert_eq!(RegistryFormat::sniff(text.as_bytes()), RegistryFormat::Json);
        let officers = parse_officers(text.as_bytes(), RegistryFormat::Json, None).unwrap();
        assert_eq!(officers[0].status, OfficerStatus::Revoked);
        let e = parse_officers(b"[{\"name\": \"A\"}]", RegistryFormat::Json, Some(AGENCY)).unwrap_err();
        assert_eq!((e.problems[0].line, e.problems[0].field.as_str()), (1, "cert_no"));
    }
}
