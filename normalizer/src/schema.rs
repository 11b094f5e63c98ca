//! The canonical JSON Schemas (draft 2020-12, in `schemas/`), compiled once, with the technical
//! standards plugged in as named formats (`uscc`, `gb2260`, `gb2260-current`, `cn-resident-id`,
//! `case-code`). A schema error becomes a [`Violation`] naming the field by its Chinese title,
//! the JSON pointer, the rule and the value.

use crate::standards::case_code::CaseCode;
use crate::standards::credit_code::CreditCode;
use crate::standards::id_number::ResidentId;
use crate::standards::region::RegionTable;
use crate::standards::{is_canonical_date, StandardError};
use crate::{CaseType, Violation};
use jsonschema::error::ValidationErrorKind;
use jsonschema::{Retrieve, Uri, Validator};
use serde_json::Value;
use std::collections::HashMap;

/// The schema files shipped with the gateway: (file name, text).
pub const SCHEMA_FILES: &[(&str, &str)] = &[
    ("common.schema.json", include_str!("../../schemas/common.schema.json")),
    (
        "inspection.schema.json",
        include_str!("../../schemas/inspection.schema.json"),
    ),
    ("penalty.schema.json", include_str!("../../schemas/penalty.schema.json")),
    (
        "coercion.schema.json",
        include_str!("../../schemas/coercion.schema.json"),
    ),
    ("plan.schema.json", include_str!("../../schemas/plan.schema.json")),
];

const BASE_URI: &str = "https://ganzhi-gateway.example/schemas/";

/// Why the schemas could not be compiled.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// A schema file is not valid JSON.
    #[error("schema {file}: invalid JSON: {message}")]
    Json {
        /// File name.
        file: String,
        /// Parser message.
        message: String,
    },
    /// A schema file is not a valid JSON Schema.
    #[error("schema {file}: {message}")]
    Compile {
        /// File name.
        file: String,
        /// Compiler message.
        message: String,
    },
}

/// Serves the shipped schema files to `$ref`s; never fetches anything from a network.
struct EmbeddedRetriever {
    files: HashMap<String, Value>,
}

impl Retrieve for EmbeddedRetriever {
    fn retrieve(&self, uri: &Uri<String>) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        let s = uri.as_str();
        let name = s.rsplit('/').next().unwrap_or(s);
        self.files
            .get(name)
            .cloned()
            .ok_or_else(|| format!("schema {s} is not shipped with the gateway").into())
    }
}

/// The compiled canonical schemas, one per case type, plus the Chinese titles of every field.
pub struct SchemaSet {
    /// One per case type (three: a scan costs less than hashing the key).
    validators: Vec<(CaseType, Validator)>,
    titles: HashMap<String, String>,
}

impl std::fmt::Debug for SchemaSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchemaSet").field("titles", &self.titles.len()).finish()
    }
}

fn is_normalised_ok<T>(parsed: Result<T, StandardError>, canonical: impl Fn(&T) -> bool) -> bool {
    parsed.map(|v| canonical(&v)).unwrap_or(false)
}

// The named formats the schemas use, as plain predicates.

/// `non-blank`: some character that is not white space (what the pattern `\S` matched; a plain
/// scan instead of a regular-expression search per field, ~7 % of the validation's time).
fn format_non_blank(s: &str) -> bool {
    s.chars().any(|c| !c.is_whitespace())
}
/// `date` (RFC 3339 full-date, `YYYY-MM-DD` naming a real day), checked by the standards' own
/// canonical-date check instead of jsonschema's: same answer, a third of the work.
fn format_date(s: &str) -> bool {
    is_canonical_date(s)
}
fn format_uscc(s: &str) -> bool {
    CreditCode::is_valid_normalised(s)
}
fn format_resident_id(s: &str) -> bool {
    is_normalised_ok(ResidentId::parse(s), |c| c.as_str() == s)
}
fn format_gb2260(s: &str) -> bool {
    RegionTable::embedded().exists_ever(s)
}
fn format_gb2260_current(s: &str) -> bool {
    RegionTable::embedded().is_current(s)
}
fn format_case_code(s: &str) -> bool {
    is_normalised_ok(CaseCode::parse(s), |c| c.format() == s)
}

impl SchemaSet {
    /// Compile the shipped schemas.
    pub fn embedded() -> Result<SchemaSet, SchemaError> {
        let mut files = HashMap::new();
        for (name, text) in SCHEMA_FILES {
            let value: Value = serde_json::from_str(text).map_err(|e| SchemaError::Json {
                file: name.to_string(),
                message: e.to_string(),
            })?;
            files.insert(name.to_string(), value);
        }
        let mut validators = Vec::new();
        for case_type in CaseType::ALL {
            let file = format!("{}.schema.json", case_type.as_str());
            let schema = files.get(&file).ok_or_else(|| SchemaError::Compile {
                file: file.clone(),
                message: "missing".into(),
            })?;
            let validator = jsonschema::options()
                .with_draft(jsonschema::Draft::Draft202012)
                .with_base_uri(BASE_URI)
                .should_validate_formats(true)
                .should_ignore_unknown_formats(false)
                .with_format("non-blank", format_non_blank)
                .with_format("date", format_date)
                .with_format("uscc", format_uscc)
                .with_format("cn-resident-id", format_resident_id)
                .with_format("gb2260", format_gb2260)
                .with_format("gb2260-current", format_gb2260_current)
                .with_format("case-code", format_case_code)
                .with_retriever(EmbeddedRetriever { files: files.clone() })
                .build(schema)
                .map_err(|e| SchemaError::Compile {
                    file: file.clone(),
                    message: e.to_string(),
                })?;
            validators.push((case_type, validator));
        }
        let mut titles = HashMap::new();
        for case_type in CaseType::ALL {
            let file = format!("{}.schema.json", case_type.as_str());
            if let Some(schema) = files.get(&file) {
                collect_titles(&files, &file, schema, String::new(), &mut titles, 0);
            }
        }
        Ok(SchemaSet { validators, titles })
    }

    /// The Chinese title of the field at `pointer` (array indices are ignored), if the schema gives one.
    pub fn title(&self, pointer: &str) -> Option<&str> {
        let pattern: String = pointer
            .split('/')
            .skip(1)
            .map(|seg| {
                if seg.chars().all(|c| c.is_ascii_digit()) && !seg.is_empty() {
                    "*"
                } else {
                    seg
                }
            })
            .fold(String::new(), |mut acc, seg| {
                acc.push('/');
                acc.push_str(seg);
                acc
            });
        self.titles.get(&pattern).map(String::as_str)
    }

    /// Every schema violation of `record`, whose type is read from its `case_type` field.
    pub fn validate(&self, record: &Value) -> Vec<Violation> {
        let case_type = match record
            .get("case_type")
            .and_then(Value::as_str)
            .map(str::parse::<CaseType>)
        {
            Some(Ok(t)) => t,
            Some(Err(_)) | None => {
                let value = record.get("case_type").map(value_text);
                return vec![Violation::error(
                    "/case_type",
                    "schema.case_type",
                    value,
                    "「案件类型」缺失或无效，应为 inspection(行政检查)、penalty(行政处罚) 、coercion(行政强制) 或 plan(检查计划)",
                    "case_type is missing or invalid: expected inspection, penalty, coercion or plan",
                )];
            }
        };
        let Some((_, validator)) = self.validators.iter().find(|(t, _)| *t == case_type) else {
            return Vec::new();
        };
        if validator.is_valid(record) {
            return Vec::new();
        }
        let mut out: Vec<Violation> = Vec::new();
        for error in validator.iter_errors(record) {
            let pointer = error.instance_path().as_str().to_string();
            let instance = error.instance().clone().into_owned();
            self.translate(error.kind(), &pointer, &instance, &mut out);
        }
        out.sort_by(|a, b| a.pointer.cmp(&b.pointer).then(a.rule.cmp(&b.rule)));
        out.dedup();
        out
    }

    fn label(&self, pointer: &str) -> String {
        match self.title(pointer) {
            Some(t) => format!("「{t}」({pointer})"),
            None => pointer.to_string(),
        }
    }

    fn translate(&self, kind: &ValidationErrorKind, pointer: &str, instance: &Value, out: &mut Vec<Violation>) {
        let value = Some(value_text(instance));
        let label = self.label(pointer);
        let v = match kind {
            ValidationErrorKind::Required { property } => {
                let name = property.as_str().unwrap_or_default();
                let field = format!("{pointer}/{name}");
                let flabel = self.label(&field);
                Violation::error(
                    field.clone(),
                    "schema.required",
                    None,
                    format!("缺少必填字段{flabel}"),
                    format!("missing required field {field}"),
                )
            }
            ValidationErrorKind::Format { format } => {
                let text = instance.as_str().unwrap_or_default();
                format_violation(format, pointer, text, &label)
            }
            ValidationErrorKind::Enum { options } => Violation::error(
                pointer,
                "schema.enum",
                value,
                format!("{label}的值不在允许的代码表内，允许值：{options}"),
                format!("{pointer}: value is not one of the allowed codes {options}"),
            ),
            ValidationErrorKind::Constant { expected_value } => Violation::error(
                pointer,
                "schema.const",
                value,
                format!("{label}应为 {expected_value}"),
                format!("{pointer}: must be {expected_value}"),
            ),
            ValidationErrorKind::Type { kind } => Violation::error(
                pointer,
                "schema.type",
                value,
                format!("{label}的数据类型错误，应为 {kind:?}"),
                format!("{pointer}: wrong type, expected {kind:?}"),
            ),
            ValidationErrorKind::Pattern { pattern } => Violation::error(
                pointer,
                "schema.pattern",
                value,
                format!("{label}的格式不符合要求（{pattern}）"),
                format!("{pointer}: does not match the required pattern {pattern}"),
            ),
            ValidationErrorKind::MinLength { limit } => Violation::error(
                pointer,
                "schema.min_length",
                value,
                format!("{label}不能为空（至少 {limit} 个字符）"),
                format!("{pointer}: must have at least {limit} characters"),
            ),
            ValidationErrorKind::MaxLength { limit } => Violation::error(
                pointer,
                "schema.max_length",
                value,
                format!("{label}过长（最多 {limit} 个字符）"),
                format!("{pointer}: longer than {limit} characters"),
            ),
            ValidationErrorKind::MinItems { limit } => Violation::error(
                pointer,
                "schema.min_items",
                value,
                format!("{label}至少需要 {limit} 项"),
                format!("{pointer}: needs at least {limit} items"),
            ),
            ValidationErrorKind::MaxItems { limit } => Violation::error(
                pointer,
                "schema.max_items",
                value,
                format!("{label}最多 {limit} 项"),
                format!("{pointer}: at most {limit} items"),
            ),
            ValidationErrorKind::Minimum { limit } | ValidationErrorKind::ExclusiveMinimum { limit } => {
                Violation::error(
                    pointer,
                    "schema.minimum",
                    value,
                    format!("{label}不能小于 {limit}"),
                    format!("{pointer}: must not be below {limit}"),
                )
            }
            ValidationErrorKind::Maximum { limit } | ValidationErrorKind::ExclusiveMaximum { limit } => {
                Violation::error(
                    pointer,
                    "schema.maximum",
                    value,
                    format!("{label}不能大于 {limit}"),
                    format!("{pointer}: must not exceed {limit}"),
                )
            }
            ValidationErrorKind::UniqueItems => Violation::error(
                pointer,
                "schema.unique_items",
                value,
                format!("{label}中有重复项"),
                format!("{pointer}: items must be unique"),
            ),
            ValidationErrorKind::AdditionalProperties { unexpected }
            | ValidationErrorKind::UnevaluatedProperties { unexpected } => {
                for name in unexpected {
                    let field = format!("{pointer}/{name}");
                    out.push(Violation::error(
                        field.clone(),
                        "schema.unknown_field",
                        None,
                        format!("标准数据规范中没有字段 {field}（请检查映射文件的目标路径）"),
                        format!("{field} is not a field of the canonical schema (check the mapping's target path)"),
                    ));
                }
                return;
            }
            other => Violation::error(
                pointer,
                "schema.invalid",
                value,
                format!("{label}不符合数据规范：{other:?}"),
                format!("{pointer}: does not conform to the schema: {other:?}"),
            ),
        };
        out.push(v);
    }
}

/// The detailed violation for a value that failed one of our named formats.
fn format_violation(format: &str, pointer: &str, text: &str, label: &str) -> Violation {
    let detail = match format {
        "uscc" => CreditCode::parse(text).err(),
        "cn-resident-id" => ResidentId::parse(text).err(),
        "gb2260" => RegionTable::embedded().validate(text, false).err(),
        "gb2260-current" => RegionTable::embedded().validate(text, true).err(),
        "case-code" => CaseCode::parse(text).err(),
        _ => None,
    };
    match detail {
        Some(e) => {
            let mut v = e.to_violation(pointer, text);
            v.message_zh = format!("{label}：{}", v.message_zh);
            v
        }
        None if format == "non-blank" => Violation::error(
            pointer,
            "format.non-blank",
            Some(text.to_string()),
            format!("{label}只有空白字符，请填写内容"),
            format!("{pointer}: holds only white space; fill it in"),
        ),
        None if matches!(format, "uscc" | "cn-resident-id" | "case-code") => Violation::error(
            pointer,
            format!("{}.not_normalised", format.replace('-', "_")),
            Some(text.to_string()),
            format!("{label}未规范化（应去除空格、连字符，使用半角大写字符）"),
            format!("{pointer}: not in normalised form (no spaces or hyphens, half-width upper case)"),
        ),
        None => Violation::error(
            pointer,
            format!("format.{format}"),
            Some(text.to_string()),
            format!("{label}的格式错误，应为 {format}"),
            format!("{pointer}: not a valid {format}"),
        ),
    }
}

/// A value as short text for messages.
pub(crate) fn value_text(v: &Value) -> String {
    let s = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if s.chars().count() > 200 {
        let cut: String = s.chars().take(200).collect();
        format!("{cut}…")
    } else {
        s
    }
}

fn resolve_ref<'a>(files: &'a HashMap<String, Value>, current: &str, reference: &str) -> Option<(String, &'a Value)> {
    let (file, fragment) = match reference.split_once('#') {
        Some(("", frag)) => (current.to_string(), frag),
        Some((file, frag)) => (file.to_string(), frag),
        None => (reference.to_string(), ""),
    };
    let root = files.get(&file)?;
    let target = if fragment.is_empty() {
        root
    } else {
        root.pointer(fragment)?
    };
    Some((file, target))
}

/// Walk a schema and remember the title of every field, keyed by pointer pattern (`*` for items).
fn collect_titles(
    files: &HashMap<String, Value>,
    file: &str,
    schema: &Value,
    pointer: String,
    titles: &mut HashMap<String, String>,
    depth: usize,
) {
    if depth > 16 {
        return;
    }
    let Some(obj) = schema.as_object() else { return };
    if let Some(title) = obj.get("title").and_then(Value::as_str) {
        if !pointer.is_empty() {
            titles.entry(pointer.clone()).or_insert_with(|| title.to_string());
        }
    }
    if let Some(reference) = obj.get("$ref").and_then(Value::as_str) {
        if let Some((f, target)) = resolve_ref(files, file, reference) {
            collect_titles(files, &f, target, pointer.clone(), titles, depth + 1);
        }
    }
    if let Some(props) = obj.get("properties").and_then(Value::as_object) {
        for (name, sub) in props {
            collect_titles(files, file, sub, format!("{pointer}/{name}"), titles, depth + 1);
        }
    }
    if let Some(items) = obj.get("items") {
        collect_titles(files, file, items, format!("{pointer}/*"), titles, depth + 1);
    }
    for key in ["allOf", "anyOf", "oneOf"] {
        if let Some(list) = obj.get(key).and_then(Value::as_array) {
            for sub in list {
                collect_titles(files, file, sub, pointer.clone(), titles, depth + 1);
            }
        }
    }
}
