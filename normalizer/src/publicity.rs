//! Publicity outputs (一公开): what the public may see of a case, built from its canonical record.
//!
//! - An administrative penalty becomes a record of the national credit-disclosure format
//!   (双公示 行政处罚: `CF_XDR_MC`, `CF_WSH`, `CF_NR_FK` ...), or of its older, shorter variant;
//!   amounts are turned from 元 into 万元 as exact decimals.
//! - A 双随机 inspection becomes the public item of its result (检查实施机关, 检查类型, 检查日期,
//!   检查结果).
//!
//! Privacy: identity-document numbers are never published in full ([`mask_id`]); penalties of
//! natural persons are withheld unless the policy publishes them ([`PublicityPolicy`]), and every
//! withholding says why. A penalty should be public within [`PUBLICITY_WORKING_DAYS`] working days
//! of its decision ([`publicity_deadline`]; the rule `rule.publicity_overdue`).

use crate::standards::working_days::{HolidayCalendar, OutOfCalendar};
use chrono::NaiveDate;
use rust_decimal::prelude::FromPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// Working days after its decision within which a penalty should be public (双公示: 7个工作日内).
pub const PUBLICITY_WORKING_DAYS: u32 = 7;

/// The day by which a penalty decided on `decision` should be public (the day itself is on time).
pub fn publicity_deadline(decision: NaiveDate) -> Result<NaiveDate, OutOfCalendar> {
    HolidayCalendar::embedded().add_working_days(decision, PUBLICITY_WORKING_DAYS)
}

/// What to do with penalties of natural persons (自然人).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NaturalPersons {
    /// Not published (the default): the delivery is withheld with its reason.
    #[default]
    Withhold,
    /// Published, with the ID number masked.
    Publish,
}

/// Which field set a penalty is published in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    /// The 30 fields of the current 双公示 format (`CF_XDR_MC` ... `BZ`).
    #[default]
    Standard,
    /// The older nine-field variant (文书号, 处罚名称, 处罚类别, 处罚事由, 处罚依据, 相对人名称,
    /// 处罚结果, 决定日期, 处罚机关).
    Short,
}

/// How the published fields are named.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldNames {
    /// By their codes (`CF_XDR_MC`).
    #[default]
    Codes,
    /// By their Chinese names (`行政相对人名称`).
    Chinese,
}

fn default_true() -> bool {
    true
}

fn default_keep() -> usize {
    4
}

/// The rules a publicity output follows (`[publicity]` in the gateway's configuration).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicityPolicy {
    /// Penalties of natural persons: `withhold` (default) or `publish`.
    #[serde(default)]
    pub natural_persons: NaturalPersons,
    /// Withhold penalties decided in the simple procedure (简易程序).
    #[serde(default)]
    pub withhold_simple_procedure: bool,
    /// Withhold penalties whose kinds are all among these (e.g. `["warning"]`: a warning alone is
    /// not published).
    #[serde(default)]
    pub withhold_kinds_only: Vec<String>,
    /// Characters of an ID number shown at its start (the rest is masked with `*`).
    #[serde(default = "default_keep")]
    pub mask_keep_start: usize,
    /// Characters of an ID number shown at its end.
    #[serde(default = "default_keep")]
    pub mask_keep_end: usize,
    /// The penalty field set: `standard` (default) or `short`.
    #[serde(default)]
    pub layout: Layout,
    /// Field names: `codes` (default) or `chinese`.
    #[serde(default)]
    pub field_names: FieldNames,
    /// Other names for some fields, by code (`{ CF_WSH = "wsh" }`).
    #[serde(default)]
    pub rename: BTreeMap<String, String>,
    /// Fields left out, by code.
    #[serde(default)]
    pub omit: Vec<String>,
    /// 数据来源单位 (default: the handling agency).
    #[serde(default)]
    pub data_source_name: Option<String>,
    /// 数据来源单位统一社会信用代码 (default: the handling agency's).
    #[serde(default)]
    pub data_source_credit_code: Option<String>,
    /// Write decision numbers' year brackets as 〔2024〕 and drop 第 and leading zeros of the number.
    #[serde(default = "default_true")]
    pub normalise_document_numbers: bool,
    /// Publish the results of 双随机 inspections too (default true).
    #[serde(default = "default_true")]
    pub inspections: bool,
}

impl Default for PublicityPolicy {
    fn default() -> Self {
        PublicityPolicy {
            natural_persons: NaturalPersons::Withhold,
            withhold_simple_procedure: false,
            withhold_kinds_only: Vec::new(),
            mask_keep_start: default_keep(),
            mask_keep_end: default_keep(),
            layout: Layout::Standard,
            field_names: FieldNames::Codes,
            rename: BTreeMap::new(),
            omit: Vec::new(),
            data_source_name: None,
            data_source_credit_code: None,
            normalise_document_numbers: true,
            inspections: true,
        }
    }
}

impl PublicityPolicy {
    /// Problems of the policy (unknown field codes in `rename` / `omit`, unknown penalty kinds), as
    /// (key, bilingual message).
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let known = |code: &str| all_fields().any(|f| f.code == code);
        for code in self.rename.keys() {
            if !known(code) {
                out.push((
                    format!("rename.{code}"),
                    format!("未知的公示字段代码 / unknown publicity field code {code:?}"),
                ));
            }
        }
        for code in &self.omit {
            if !known(code) {
                out.push((
                    "omit".to_string(),
                    format!("未知的公示字段代码 / unknown publicity field code {code:?}"),
                ));
            }
        }
        for kind in &self.withhold_kinds_only {
            if penalty_kind_name(kind).is_none() {
                out.push((
                    "withhold_kinds_only".to_string(),
                    format!("未知的处罚种类 / unknown penalty kind {kind:?} (warning, fine, ...)"),
                ));
            }
        }
        out
    }
}

/// A published field: its code, its Chinese name, and where it comes from in the canonical record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicField {
    /// The field's code (`CF_WSH`).
    pub code: &'static str,
    /// Its Chinese name (`行政处罚决定书文号`).
    pub name: &'static str,
    /// The canonical field it is made from (for messages), if it comes from one field.
    pub source: Option<&'static str>,
    /// A record without it is not published.
    pub required: bool,
}

const fn field(code: &'static str, name: &'static str, source: Option<&'static str>, required: bool) -> PublicField {
    PublicField {
        code,
        name,
        source,
        required,
    }
}

/// The 双公示 administrative-penalty fields, in the format's order.
pub const PENALTY_FIELDS: [PublicField; 30] = [
    field("CF_XDR_MC", "行政相对人名称", Some("/target/name"), true),
    field("CF_XDR_LB", "行政相对人类别", Some("/target/kind"), true),
    field("CF_XDR_SHXYM", "统一社会信用代码", Some("/target/id_number"), false),
    field("CF_XDR_GSZC", "工商注册号", None, false),
    field("CF_XDR_ZZJG", "组织机构代码", None, false),
    field("CF_XDR_SWDJ", "税务登记号", None, false),
    field("CF_XDR_SYDW", "事业单位证书号", None, false),
    field("CF_XDR_SHZZ", "社会组织登记证号", None, false),
    field("CF_FRDB", "法定代表人", Some("/target/legal_representative"), false),
    field("CF_FR_ZJLX", "法定代表人证件类型", None, false),
    field("CF_FR_ZJHM", "法定代表人证件号码", None, false),
    field("CF_XDR_ZJLX", "证件类型", Some("/target/id_type"), false),
    field("CF_XDR_ZJHM", "证件号码", Some("/target/id_number"), false),
    field("CF_WSH", "行政处罚决定书文号", Some("/penalty/decision_number"), true),
    field("CF_WFXW", "违法行为类型", Some("/penalty/violation_type"), true),
    field("CF_SY", "违法事实", Some("/penalty/illegal_facts"), true),
    field("CF_YJ", "处罚依据", Some("/legal_basis"), true),
    field("CF_CFLB", "处罚类别", Some("/penalty/kinds"), true),
    field("CF_NR", "处罚内容", Some("/penalty/content"), true),
    field("CF_NR_FK", "罚款金额（万元）", Some("/penalty/fine_amount"), false),
    field(
        "CF_NR_WFFF",
        "没收违法所得、没收非法财物的金额（万元）",
        Some("/penalty/confiscation_amount"),
        false,
    ),
    field(
        "CF_NR_ZKDX",
        "暂扣或吊销证照名称及编号",
        Some("/penalty/license_affected"),
        false,
    ),
    field("CF_JDRQ", "处罚决定日期", Some("/penalty/decision_date"), true),
    field("CF_YXQ", "处罚有效期", Some("/penalty/valid_until"), true),
    field("CF_GSJZQ", "公示截止期", Some("/penalty/publicity_until"), false),
    field("CF_CFJG", "处罚机关", Some("/agency/name"), true),
    field(
        "CF_CFJGDM",
        "处罚机关统一社会信用代码",
        Some("/agency/credit_code"),
        true,
    ),
    field("CF_SJLY", "数据来源单位", None, true),
    field("CF_SJLYDM", "数据来源单位统一社会信用代码", None, true),
    field("BZ", "备注", None, false),
];

/// The older, shorter penalty variant.
pub const SHORT_PENALTY_FIELDS: [PublicField; 9] = [
    field("CF_WSH", "行政处罚决定书文号", Some("/penalty/decision_number"), true),
    field("CF_CFMC", "处罚名称", Some("/case_name"), true),
    field("CF_CFLB1", "处罚类别", Some("/penalty/kinds"), true),
    field("CF_SY", "处罚事由", Some("/penalty/illegal_facts"), true),
    field("CF_YJ", "处罚依据", Some("/legal_basis"), true),
    field("CF_XDR_MC", "行政相对人名称", Some("/target/name"), true),
    field("CF_JG", "处罚结果", Some("/penalty/content"), true),
    field("CF_JDRQ", "处罚决定日期", Some("/penalty/decision_date"), true),
    field("CF_XZJG", "处罚机关", Some("/agency/name"), true),
];

/// The public item of a 双随机 inspection's result (the gateway's own codes; the names are those
/// of the enterprise credit publicity system).
pub const INSPECTION_FIELDS: [PublicField; 11] = [
    field("JC_XDR_MC", "检查对象名称", Some("/target/name"), true),
    field("JC_XDR_SHXYM", "统一社会信用代码", Some("/target/id_number"), false),
    field("JC_SSJG", "检查实施机关", Some("/agency/name"), true),
    field(
        "JC_SSJGDM",
        "检查实施机关统一社会信用代码",
        Some("/agency/credit_code"),
        true,
    ),
    field("JC_LX", "检查类型", Some("/inspection/form"), true),
    field("JC_SX", "检查事项", Some("/item_name"), false),
    field("JC_RQ", "检查日期", Some("/inspection/check_date"), true),
    field("JC_JG", "检查结果", Some("/inspection/result"), true),
    field("JC_SJLY", "数据来源单位", None, true),
    field("JC_SJLYDM", "数据来源单位统一社会信用代码", None, true),
    field("BZ", "备注", None, false),
];

fn all_fields() -> impl Iterator<Item = &'static PublicField> {
    PENALTY_FIELDS
        .iter()
        .chain(SHORT_PENALTY_FIELDS.iter())
        .chain(INSPECTION_FIELDS.iter())
}

/// Which kind of public record a publication is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublicKind {
    /// 双公示 行政处罚.
    Penalty,
    /// 双随机 inspection result.
    InspectionResult,
}

impl PublicKind {
    /// `penalty` or `inspection_result`.
    pub fn as_str(self) -> &'static str {
        match self {
            PublicKind::Penalty => "penalty",
            PublicKind::InspectionResult => "inspection_result",
        }
    }
}

/// A required public field the canonical record does not give.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingField {
    /// The public field.
    pub field: PublicField,
}

impl fmt::Display for MissingField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let source = self.field.source.unwrap_or("(policy)");
        write!(
            f,
            "公示字段 {}（{}）缺失：规范记录的 {} 为空 / public field {} ({}) is missing: {} is empty in the canonical record",
            self.field.code, self.field.name, source, self.field.code, self.field.name, source
        )
    }
}

/// Why a record is not published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Withholding {
    /// A stable id (`natural_person`, `simple_procedure`, `kinds_only`, `inspection_not_random`,
    /// `inspections_off`).
    pub rule: &'static str,
    /// In Chinese.
    pub message_zh: String,
    /// In English.
    pub message_en: String,
}

impl fmt::Display for Withholding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} / {}", self.message_zh, self.message_en)
    }
}

/// What becomes of a record in a publicity output.
#[derive(Debug, Clone, PartialEq)]
pub enum Publication {
    /// Published as this object (field names per the policy).
    Publish {
        /// Penalty or inspection result.
        kind: PublicKind,
        /// The public record.
        fields: Map<String, Value>,
    },
    /// Not published, for this reason (the rules do not allow it).
    Withhold(Withholding),
    /// Not published: required public fields are missing (fix the mapping or supplement the case).
    Incomplete(Vec<MissingField>),
    /// Not a record the publicity outputs carry (coercions, plans, other inspections' kinds).
    NotApplicable,
}

/// The public record of a canonical record under `policy`.
pub fn publish(record: &Value, policy: &PublicityPolicy) -> Publication {
    match record.get("case_type").and_then(Value::as_str) {
        Some("penalty") => publish_penalty(record, policy),
        Some("inspection") => publish_inspection(record, policy),
        _ => Publication::NotApplicable,
    }
}

fn text<'a>(record: &'a Value, pointer: &str) -> Option<&'a str> {
    record
        .pointer(pointer)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn text_value(record: &Value, pointer: &str) -> Value {
    text(record, pointer).map_or(Value::Null, |s| Value::String(s.to_string()))
}

/// The Chinese category of a target (行政相对人类别), and whether it is a natural person.
fn target_category(record: &Value) -> (&'static str, bool) {
    match text(record, "/target/kind") {
        Some("legal_person") => ("法人及非法人组织", false),
        Some("individual_business") => ("个体工商户", false),
        Some("natural_person") => ("自然人", true),
        _ if text(record, "/target/id_type") == Some("uscc") => ("法人及非法人组织", false),
        _ => ("自然人", true),
    }
}

/// The Chinese name of an identity-document type.
fn id_type_name(id_type: &str) -> &'static str {
    match id_type {
        "uscc" => "统一社会信用代码",
        "resident_id" => "身份证",
        "passport" => "护照",
        "hk_macao_permit" => "港澳居民来往内地通行证",
        "taiwan_permit" => "台湾居民来往大陆通行证",
        "foreign_permanent_resident" => "外国人永久居留身份证",
        _ => "其他",
    }
}

/// The Chinese name of a penalty kind (《行政处罚法》第九条).
pub fn penalty_kind_name(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "warning" => "警告",
        "public_criticism" => "通报批评",
        "fine" => "罚款",
        "confiscate_illegal_gains" => "没收违法所得",
        "confiscate_illegal_property" => "没收非法财物",
        "suspend_license" => "暂扣许可证件",
        "lower_qualification" => "降低资质等级",
        "revoke_license" => "吊销许可证件",
        "restrict_business" => "限制开展生产经营活动",
        "order_suspension" => "责令停产停业",
        "order_closure" => "责令关闭",
        "restrict_employment" => "限制从业",
        "detention" => "行政拘留",
        "other" => "其他",
        _ => return None,
    })
}

/// `id` with all but `keep_start` leading and `keep_end` trailing characters replaced by `*`;
/// at least half of it is always masked.
pub fn mask_id(id: &str, keep_start: usize, keep_end: usize) -> String {
    let chars: Vec<char> = id.trim().chars().collect();
    let len = chars.len();
    let hidden = len.saturating_sub(keep_start + keep_end).max(len.div_ceil(2));
    let shown = len - hidden;
    let end = keep_end.min(shown / 2);
    let start = (shown - end).min(keep_start);
    let end = shown - start;
    let mut out = String::with_capacity(len);
    for (i, c) in chars.iter().enumerate() {
        if i < start || i >= len - end {
            out.push(*c);
        } else {
            out.push('*');
        }
    }
    out
}

/// An amount in 元 (a JSON number) as 万元, an exact decimal with at most six places (rounded half
/// away from zero below 0.01 元), without trailing zeros: 2000 → `0.2`.
pub fn yuan_to_wan(amount: &Value) -> Option<String> {
    let number = amount.as_number()?;
    let text = number.to_string();
    let yuan = Decimal::from_str(&text)
        .or_else(|_| Decimal::from_scientific(&text))
        .ok()
        .or_else(|| number.as_f64().and_then(Decimal::from_f64))?;
    let wan = yuan.checked_div(Decimal::from(10_000))?;
    Some(
        wan.round_dp_with_strategy(6, RoundingStrategy::MidpointAwayFromZero)
            .normalize()
            .to_string(),
    )
}

const OPEN_BRACKETS: [char; 7] = ['〔', '[', '【', '（', '(', '［', '{'];
const CLOSE_BRACKETS: [char; 7] = ['〕', ']', '】', '）', ')', '］', '}'];

/// A decision number written as GB/T 9704 asks (机关代字〔年份〕序号号): the year's brackets become
/// 〔〕, 第 before the number and its leading zeros go. Other text is kept as it is.
pub fn normalise_document_number(number: &str) -> String {
    let chars: Vec<char> = number.trim().chars().collect();
    let mut out = String::with_capacity(number.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if OPEN_BRACKETS.contains(&c) {
            // A bracketed four-digit year, possibly with spaces.
            let mut j = i + 1;
            while j < chars.len() && chars[j] == ' ' {
                j += 1;
            }
            let digits_start = j;
            while j < chars.len() && chars[j].is_ascii_digit() {
                j += 1;
            }
            let digits_end = j;
            while j < chars.len() && chars[j] == ' ' {
                j += 1;
            }
            if digits_end - digits_start == 4 && j < chars.len() && CLOSE_BRACKETS.contains(&chars[j]) {
                out.push('〔');
                out.extend(&chars[digits_start..digits_end]);
                out.push('〕');
                i = j + 1;
                // 第 and leading zeros of the number that follows.
                let mut k = i;
                if k < chars.len() && chars[k] == '第' {
                    k += 1;
                }
                let number_start = k;
                while k < chars.len() && chars[k].is_ascii_digit() {
                    k += 1;
                }
                if k > number_start && k < chars.len() && chars[k] == '号' {
                    let digits: String = chars[number_start..k].iter().collect();
                    let trimmed = digits.trim_start_matches('0');
                    out.push_str(if trimmed.is_empty() { "0" } else { trimmed });
                    i = k;
                }
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    out
}

/// Collects the published fields, their names per the policy, and the missing required ones.
struct Builder<'p> {
    policy: &'p PublicityPolicy,
    fields: Map<String, Value>,
    missing: Vec<MissingField>,
}

impl<'p> Builder<'p> {
    fn new(policy: &'p PublicityPolicy) -> Self {
        Builder {
            policy,
            fields: Map::new(),
            missing: Vec::new(),
        }
    }

    fn put(&mut self, field: &PublicField, value: Value) {
        if field.required && (value.is_null() || value.as_str() == Some("")) {
            self.missing.push(MissingField { field: *field });
        }
        if self.policy.omit.iter().any(|c| c == field.code) {
            return;
        }
        let name = match self.policy.rename.get(field.code) {
            Some(name) => name.clone(),
            None => match self.policy.field_names {
                FieldNames::Codes => field.code.to_string(),
                FieldNames::Chinese => field.name.to_string(),
            },
        };
        self.fields.insert(name, value);
    }

    fn finish(self, kind: PublicKind) -> Publication {
        if self.missing.is_empty() {
            Publication::Publish {
                kind,
                fields: self.fields,
            }
        } else {
            Publication::Incomplete(self.missing)
        }
    }
}

fn withhold(rule: &'static str, zh: String, en: String) -> Publication {
    Publication::Withhold(Withholding {
        rule,
        message_zh: zh,
        message_en: en,
    })
}

fn data_source(record: &Value, policy: &PublicityPolicy) -> (Value, Value) {
    let name = policy
        .data_source_name
        .clone()
        .map_or_else(|| text_value(record, "/agency/name"), Value::String);
    let code = policy
        .data_source_credit_code
        .clone()
        .map_or_else(|| text_value(record, "/agency/credit_code"), Value::String);
    (name, code)
}

fn penalty_kinds(record: &Value) -> Vec<&str> {
    record
        .pointer("/penalty/kinds")
        .and_then(Value::as_array)
        .map(|kinds| kinds.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// Why a penalty is withheld under `policy`, if it is.
fn penalty_withheld(record: &Value, policy: &PublicityPolicy) -> Option<Publication> {
    let (_, natural) = target_category(record);
    if natural && policy.natural_persons == NaturalPersons::Withhold {
        return Some(withhold(
            "natural_person",
            "行政相对人为自然人，按配置（publicity.natural_persons = \"withhold\"）不公示".into(),
            "the target is a natural person: not published (publicity.natural_persons = \"withhold\")".into(),
        ));
    }
    if policy.withhold_simple_procedure && text(record, "/penalty/procedure") == Some("simple") {
        return Some(withhold(
            "simple_procedure",
            "适用简易程序的行政处罚，按配置（publicity.withhold_simple_procedure）不公示".into(),
            "decided in the simple procedure: not published (publicity.withhold_simple_procedure)".into(),
        ));
    }
    let kinds = penalty_kinds(record);
    if !policy.withhold_kinds_only.is_empty()
        && !kinds.is_empty()
        && kinds.iter().all(|k| policy.withhold_kinds_only.iter().any(|w| w == k))
    {
        let names: Vec<&str> = kinds.iter().map(|k| penalty_kind_name(k).unwrap_or(k)).collect();
        return Some(withhold(
            "kinds_only",
            format!(
                "处罚种类仅为 {}，按配置（publicity.withhold_kinds_only）不公示",
                names.join("、")
            ),
            format!(
                "the penalty is only {}: not published (publicity.withhold_kinds_only)",
                kinds.join(", ")
            ),
        ));
    }
    None
}

/// 处罚内容: the record's own text, or one made of the kinds and amounts (`罚款2000元`).
fn penalty_content(record: &Value) -> Value {
    if let Some(content) = text(record, "/penalty/content") {
        return Value::String(content.to_string());
    }
    let kinds = penalty_kinds(record);
    if kinds.is_empty() {
        return Value::Null;
    }
    let amount = |pointer: &str| {
        record
            .pointer(pointer)
            .and_then(|v| v.as_number())
            .and_then(|n| Decimal::from_str(&n.to_string()).ok())
            .filter(|d| !d.is_zero())
            .map(|d| d.normalize().to_string())
    };
    let parts: Vec<String> = kinds
        .iter()
        .map(|k| {
            let name = penalty_kind_name(k).unwrap_or(k);
            match *k {
                "fine" => amount("/penalty/fine_amount").map_or(name.to_string(), |a| format!("{name}{a}元")),
                "confiscate_illegal_gains" | "confiscate_illegal_property" => {
                    amount("/penalty/confiscation_amount").map_or(name.to_string(), |a| format!("{name}{a}元"))
                }
                _ => name.to_string(),
            }
        })
        .collect();
    Value::String(parts.join("；"))
}

fn publish_penalty(record: &Value, policy: &PublicityPolicy) -> Publication {
    if let Some(withheld) = penalty_withheld(record, policy) {
        return withheld;
    }
    let (category, natural) = target_category(record);
    let id_type = text(record, "/target/id_type").unwrap_or("other");
    let id_number = text(record, "/target/id_number");
    let uscc = if id_type == "uscc" { id_number } else { None };
    let masked = if id_type == "uscc" {
        None
    } else {
        id_number.map(|n| mask_id(n, policy.mask_keep_start, policy.mask_keep_end))
    };
    let decision_number = text(record, "/penalty/decision_number").map(|n| {
        if policy.normalise_document_numbers {
            normalise_document_number(n)
        } else {
            n.to_string()
        }
    });
    let kinds: Vec<&str> = penalty_kinds(record)
        .into_iter()
        .map(|k| penalty_kind_name(k).unwrap_or(k))
        .collect();
    let kinds = if kinds.is_empty() {
        Value::Null
    } else {
        Value::String(kinds.join(";"))
    };
    let valid_until = match text(record, "/penalty/valid_until") {
        Some(d) => Value::String(d.to_string()),
        None => text_value(record, "/penalty/publicity_until"),
    };
    let (source_name, source_code) = data_source(record, policy);
    let optional_amount = |pointer: &str| {
        record
            .pointer(pointer)
            .and_then(yuan_to_wan)
            .map_or(Value::Null, Value::String)
    };
    let legal_representative = if natural {
        Value::Null
    } else {
        text_value(record, "/target/legal_representative")
    };
    let mut b = Builder::new(policy);
    match policy.layout {
        Layout::Standard => {
            let f = &PENALTY_FIELDS;
            b.put(&f[0], text_value(record, "/target/name"));
            b.put(&f[1], Value::String(category.to_string()));
            b.put(&f[2], uscc.map_or(Value::Null, |s| Value::String(s.to_string())));
            for f in &f[3..8] {
                b.put(f, Value::Null);
            }
            b.put(&f[8], legal_representative);
            b.put(&f[9], Value::Null);
            b.put(&f[10], Value::Null);
            let (id_type_value, id_value) = match &masked {
                Some(m) => (
                    Value::String(id_type_name(id_type).to_string()),
                    Value::String(m.clone()),
                ),
                None => (Value::Null, Value::Null),
            };
            b.put(&f[11], id_type_value);
            b.put(&f[12], id_value);
            b.put(&f[13], decision_number.map_or(Value::Null, Value::String));
            b.put(&f[14], text_value(record, "/penalty/violation_type"));
            b.put(&f[15], text_value(record, "/penalty/illegal_facts"));
            b.put(&f[16], text_value(record, "/legal_basis"));
            b.put(&f[17], kinds);
            b.put(&f[18], penalty_content(record));
            b.put(&f[19], optional_amount("/penalty/fine_amount"));
            b.put(&f[20], optional_amount("/penalty/confiscation_amount"));
            b.put(&f[21], text_value(record, "/penalty/license_affected"));
            b.put(&f[22], text_value(record, "/penalty/decision_date"));
            b.put(&f[23], valid_until);
            b.put(&f[24], text_value(record, "/penalty/publicity_until"));
            b.put(&f[25], text_value(record, "/agency/name"));
            b.put(&f[26], text_value(record, "/agency/credit_code"));
            b.put(&f[27], source_name);
            b.put(&f[28], source_code);
            b.put(&f[29], Value::Null);
        }
        Layout::Short => {
            let f = &SHORT_PENALTY_FIELDS;
            b.put(&f[0], decision_number.map_or(Value::Null, Value::String));
            b.put(&f[1], text_value(record, "/case_name"));
            b.put(&f[2], kinds);
            b.put(&f[3], text_value(record, "/penalty/illegal_facts"));
            b.put(&f[4], text_value(record, "/legal_basis"));
            b.put(&f[5], text_value(record, "/target/name"));
            b.put(&f[6], penalty_content(record));
            b.put(&f[7], text_value(record, "/penalty/decision_date"));
            b.put(&f[8], text_value(record, "/agency/name"));
        }
    }
    b.finish(PublicKind::Penalty)
}

/// The Chinese text of an inspection result.
fn inspection_result_name(result: &str) -> &'static str {
    match result {
        "no_problem" => "未发现问题",
        "problem_found" => "发现问题待后续处理",
        "corrected" => "发现问题经责令已改正",
        "not_operating" => "未发现开展本次抽查涉及的经营活动",
        "unreachable" => "通过登记的住所（经营场所）无法联系",
        "closed" => "已关闭停业或正在组织清算",
        "uncooperative" => "不配合检查",
        _ => "其他",
    }
}

fn publish_inspection(record: &Value, policy: &PublicityPolicy) -> Publication {
    let random =
        text(record, "/inspection/form") == Some("random") || text(record, "/case_source") == Some("random_inspection");
    if !random {
        return Publication::NotApplicable;
    }
    if !policy.inspections {
        return withhold(
            "inspections_off",
            "按配置（publicity.inspections = false）不公示检查结果".into(),
            "inspection results are not published (publicity.inspections = false)".into(),
        );
    }
    let (_, natural) = target_category(record);
    if natural && policy.natural_persons == NaturalPersons::Withhold {
        return withhold(
            "natural_person",
            "检查对象为自然人，按配置（publicity.natural_persons = \"withhold\"）不公示".into(),
            "the target is a natural person: not published (publicity.natural_persons = \"withhold\")".into(),
        );
    }
    let uscc = if text(record, "/target/id_type") == Some("uscc") {
        text_value(record, "/target/id_number")
    } else {
        Value::Null
    };
    let item = match text(record, "/item_name") {
        Some(name) => Value::String(name.to_string()),
        None => text_value(record, "/case_name"),
    };
    let result = text(record, "/inspection/result")
        .map_or(Value::Null, |r| Value::String(inspection_result_name(r).to_string()));
    let (source_name, source_code) = data_source(record, policy);
    let f = &INSPECTION_FIELDS;
    let mut b = Builder::new(policy);
    b.put(&f[0], text_value(record, "/target/name"));
    b.put(&f[1], uscc);
    b.put(&f[2], text_value(record, "/agency/name"));
    b.put(&f[3], text_value(record, "/agency/credit_code"));
    b.put(&f[4], Value::String("抽查".into()));
    b.put(&f[5], item);
    b.put(&f[6], text_value(record, "/inspection/check_date"));
    b.put(&f[7], result);
    b.put(&f[8], source_name);
    b.put(&f[9], source_code);
    b.put(&f[10], Value::Null);
    b.finish(PublicKind::InspectionResult)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn penalty() -> Value {
        json!({
            "case_type": "penalty",
            "case_name": "某公司销售过期食品案",
            "agency": {"name": "南昌市市场监督管理局", "credit_code": "11360100014523152U", "region_code": "360100"},
            "target": {"kind": "legal_person", "name": "南昌某某食品有限公司", "id_type": "uscc",
                       "id_number": "91360103MA38N2Q49C", "legal_representative": "王五"},
            "legal_basis": "《中华人民共和国食品安全法》第一百二十四条",
            "penalty": {"decision_number": "洪市监罚【2024】第012号", "decision_date": "2024-03-01",
                        "procedure": "ordinary", "kinds": ["warning", "fine"], "illegal_facts": "销售超过保质期的食品",
                        "violation_type": "食品安全", "fine_amount": 2000, "confiscation_amount": 1234.56,
                        "valid_until": "2025-03-01", "publicity_until": "2025-03-01"}
        })
    }

    fn published(p: Publication) -> Map<String, Value> {
        match p {
            Publication::Publish { fields, .. } => fields,
            other => panic!("not published: {other:?}"),
        }
    }

    #[test]
    fn a_legal_persons_penalty_is_published_in_the_standard_fields_with_amounts_in_wan() {
        let f = published(publish(&penalty(), &PublicityPolicy::default()));
        assert_eq!(f.len(), 30);
        assert_eq!(f["CF_XDR_MC"], "南昌某某食品有限公司");
        assert_eq!(f["CF_XDR_LB"], "法人及非法人组织");
        assert_eq!(f["CF_XDR_SHXYM"], "91360103MA38N2Q49C");
        assert_eq!(f["CF_XDR_ZJHM"], Value::Null);
        assert_eq!(f["CF_FRDB"], "王五");
        assert_eq!(f["CF_WSH"], "洪市监罚〔2024〕12号");
        assert_eq!(f["CF_CFLB"], "警告;罚款");
        assert_eq!(f["CF_NR"], "警告；罚款2000元");
        assert_eq!(f["CF_NR_FK"], "0.2");
        assert_eq!(f["CF_NR_WFFF"], "0.123456");
        assert_eq!(f["CF_JDRQ"], "2024-03-01");
        assert_eq!(f["CF_CFJGDM"], "11360100014523152U");
        assert_eq!(f["CF_SJLY"], "南昌市市场监督管理局");
    }

    #[test]
    fn a_natural_persons_penalty_is_withheld_by_default_and_masked_when_published() {
        let mut r = penalty();
        r["target"] = json!({"kind": "natural_person", "name": "张三", "id_type": "resident_id",
                             "id_number": "360102199001011234"});
        match publish(&r, &PublicityPolicy::default()) {
            Publication::Withhold(w) => {
                assert_eq!(w.rule, "natural_person");
                assert!(w.message_en.contains("natural person"));
            }
            other => panic!("{other:?}"),
        }
        let policy = PublicityPolicy {
            natural_persons: NaturalPersons::Publish,
            ..PublicityPolicy::default()
        };
        let f = published(publish(&r, &policy));
        assert_eq!(f["CF_XDR_LB"], "自然人");
        assert_eq!(f["CF_XDR_ZJLX"], "身份证");
        assert_eq!(f["CF_XDR_ZJHM"], "3601**********1234");
        assert_eq!(f["CF_XDR_SHXYM"], Value::Null);
        assert!(!serde_json::to_string(&f).unwrap().contains("199001011234"));
    }

    #[test]
    fn missing_required_public_fields_are_named() {
        let mut r = penalty();
        r["penalty"].as_object_mut().unwrap().remove("violation_type");
        r["penalty"].as_object_mut().unwrap().remove("valid_until");
        r["penalty"].as_object_mut().unwrap().remove("publicity_until");
        match publish(&r, &PublicityPolicy::default()) {
            Publication::Incomplete(missing) => {
                let codes: Vec<&str> = missing.iter().map(|m| m.field.code).collect();
                assert_eq!(codes, ["CF_WFXW", "CF_YXQ"]);
                let text = missing[0].to_string();
                assert!(
                    text.contains("违法行为类型") && text.contains("/penalty/violation_type"),
                    "{text}"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn simple_procedure_and_kinds_only_policies_withhold_with_their_reason() {
        let mut r = penalty();
        r["penalty"]["procedure"] = json!("simple");
        let policy = PublicityPolicy {
            withhold_simple_procedure: true,
            ..PublicityPolicy::default()
        };
        assert!(matches!(publish(&r, &policy), Publication::Withhold(w) if w.rule == "simple_procedure"));
        let mut r = penalty();
        r["penalty"]["kinds"] = json!(["warning"]);
        let policy = PublicityPolicy {
            withhold_kinds_only: vec!["warning".into()],
            ..PublicityPolicy::default()
        };
        assert!(matches!(publish(&r, &policy), Publication::Withhold(w) if w.rule == "kinds_only"));
        // A warning with a fine is not "only" a warning.
        assert!(matches!(publish(&penalty(), &policy), Publication::Publish { .. }));
    }

    #[test]
    fn the_short_layout_chinese_names_renames_and_omissions_are_honoured() {
        let policy = PublicityPolicy {
            layout: Layout::Short,
            field_names: FieldNames::Chinese,
            rename: BTreeMap::from([("CF_WSH".to_string(), "wsh".to_string())]),
            omit: vec!["CF_CFMC".into()],
            ..PublicityPolicy::default()
        };
        let f = published(publish(&penalty(), &policy));
        assert_eq!(f.len(), 8);
        assert_eq!(f["wsh"], "洪市监罚〔2024〕12号");
        assert_eq!(f["处罚机关"], "南昌市市场监督管理局");
        assert!(policy.problems().is_empty());
        let bad = PublicityPolicy {
            omit: vec!["CF_NOPE".into()],
            withhold_kinds_only: vec!["scolding".into()],
            ..PublicityPolicy::default()
        };
        assert_eq!(bad.problems().len(), 2);
    }

    #[test]
    fn random_inspection_results_are_published_and_other_inspections_are_not() {
        let r = json!({
            "case_type": "inspection", "case_name": "食品经营者双随机抽查", "item_name": "食品经营监督检查",
            "agency": {"name": "九江市市场监督管理局", "credit_code": "113604000145872014"},
            "target": {"kind": "legal_person", "name": "九江某超市", "id_type": "uscc", "id_number": "91360403MA35FKUN6J"},
            "inspection": {"form": "random", "check_date": "2024-05-06", "result": "no_problem"}
        });
        let f = published(publish(&r, &PublicityPolicy::default()));
        assert_eq!(f["JC_SSJG"], "九江市市场监督管理局");
        assert_eq!(f["JC_LX"], "抽查");
        assert_eq!(f["JC_RQ"], "2024-05-06");
        assert_eq!(f["JC_JG"], "未发现问题");
        assert_eq!(f["JC_SX"], "食品经营监督检查");
        let mut routine = r.clone();
        routine["inspection"]["form"] = json!("routine");
        assert_eq!(
            publish(&routine, &PublicityPolicy::default()),
            Publication::NotApplicable
        );
        assert_eq!(
            publish(&json!({"case_type": "coercion"}), &PublicityPolicy::default()),
            Publication::NotApplicable
        );
    }

    #[test]
    fn amounts_become_exact_wan() {
        assert_eq!(yuan_to_wan(&json!(2000)).as_deref(), Some("0.2"));
        assert_eq!(yuan_to_wan(&json!(0.01)).as_deref(), Some("0.000001"));
        assert_eq!(yuan_to_wan(&json!(150000.5)).as_deref(), Some("15.00005"));
        assert_eq!(yuan_to_wan(&json!(0.1 + 0.2)).as_deref(), Some("0.00003"));
        assert_eq!(yuan_to_wan(&json!(1e21)).as_deref(), Some("100000000000000000"));
        assert_eq!(yuan_to_wan(&json!("2000")), None);
    }

    #[test]
    fn ids_are_never_shown_in_full() {
        assert_eq!(mask_id("360102199001011234", 4, 4), "3601**********1234");
        assert_eq!(mask_id("E12345678", 4, 4), "E1*****78");
        assert_eq!(mask_id("AB", 4, 4), "A*");
        assert_eq!(mask_id("", 4, 4), "");
        for id in ["1", "12", "123456", "H1234567", "360102199001011234"] {
            let m = mask_id(id, 6, 4);
            assert!(m.chars().filter(|c| *c == '*').count() * 2 >= id.len(), "{id} -> {m}");
        }
    }

    #[test]
    fn decision_numbers_are_written_with_gbt9704_brackets() {
        assert_eq!(normalise_document_number("市场【2019】1号"), "市场〔2019〕1号");
        assert_eq!(
            normalise_document_number("赣市监罚[2026]第0012号"),
            "赣市监罚〔2026〕12号"
        );
        assert_eq!(
            normalise_document_number("（杭临）市监处罚〔2024〕131号"),
            "（杭临）市监处罚〔2024〕131号"
        );
        assert_eq!(normalise_document_number("洪市监罚( 2021 )7号"), "洪市监罚〔2021〕7号");
        assert_eq!(normalise_document_number("无年份的文号12号"), "无年份的文号12号");
    }

    #[test]
    fn the_deadline_counts_seven_working_days_after_the_decision() {
        // 2024-03-01 is a Friday: the 7th working day after it is Tuesday 2024-03-12.
        let d = NaiveDate::from_ymd_opt(2024, 3, 1).unwrap();
        assert_eq!(
            publicity_deadline(d).unwrap(),
            NaiveDate::from_ymd_opt(2024, 3, 12).unwrap()
        );
        // Across the National Day holiday of 2024 (1-7 October, make-up days 29 Sept and 12 Oct).
        let d = NaiveDate::from_ymd_opt(2024, 9, 30).unwrap();
        assert_eq!(
            publicity_deadline(d).unwrap(),
            NaiveDate::from_ymd_opt(2024, 10, 15).unwrap()
        );
    }
}
