//! `gateway template xlsx`: the fill-in spreadsheet (填报模板) for departments without an
//! interface, and the mapping that reads a filled-in copy.
//!
//! The columns come from the canonical schema (`schemas/*.schema.json`, embedded): one per
//! field a department can fill in, titled with the schema's Chinese title. Fields with a fixed
//! list of values (enums) get a drop-down list of their Chinese names (from the schema's
//! descriptions, or from a mapping's code tables with `--mapping`); yes/no fields a 是/否 list;
//! dates a date format; identifiers a text format, so that Excel does not turn them into
//! rounded numbers. Lists of people (执法人员) are two columns of names and certificate numbers
//! separated by 、. The first row is a title, the second the column titles (frozen); the 说明
//! sheet says what each column is, whether it is required and its format; the lists of values
//! are on a hidden 代码表 sheet.

use anyhow::Context;
use rust_xlsxwriter::{
    DataValidation, DataValidationErrorStyle, Format, FormatAlign, FormatBorder, Formula, Workbook, Worksheet,
};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

use crate::prepare::spreadsheet::LISTS_SHEET;

/// Rows of the data sheet prepared with formats and drop-downs (under the header).
const PREPARED_ROWS: u32 = 2000;

/// What a column holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnKind {
    /// Free text.
    Text,
    /// An identifier (credit code, ID number, region code): kept as text, normalised.
    Identifier,
    /// A calendar day.
    Date,
    /// A moment (date and time).
    DateTime,
    /// An amount in 元.
    Amount,
    /// A whole number.
    Integer,
    /// 是 / 否.
    YesNo,
    /// One of a list: (label shown, canonical value).
    Choice(Vec<(String, String)>),
    /// Several of a list, separated by 、.
    Choices(Vec<(String, String)>),
    /// One part of a list of people (or agencies) zipped with the other columns of `group`.
    Part {
        /// The canonical list (`officers`).
        group: String,
        /// The member's key (`name`).
        key: String,
    },
}

/// One column of the template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// The column title (Chinese), also the key a filled-in row has.
    pub title: String,
    /// The canonical field (`agency.name`).
    pub target: String,
    /// Whether the schema requires it.
    pub required: bool,
    /// What it holds.
    pub kind: ColumnKind,
    /// What it means (the schema's description, when not a list of values).
    pub note: String,
}

/// The case types a template is made for, with their sheet names.
pub const CASE_TYPES: [(&str, &str); 3] = [
    ("penalty", "行政处罚"),
    ("inspection", "行政检查"),
    ("coercion", "行政强制"),
];

/// Top-level fields not in the template: set by the gateway or the mapping, or not fillable in
/// a cell.
const SKIPPED: [&str; 5] = [
    "case_type",
    "source_updated_at",
    "source_channel",
    "attachments",
    "supplement",
];

/// The keys of a JSON document's objects in the order they are written (`serde_json::Value`
/// keeps them sorted): the template's columns follow the schema's order.
#[derive(Debug, Default)]
struct Shape(Vec<(String, Shape)>);

impl<'de> serde::Deserialize<'de> for Shape {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Shape, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Shape;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("JSON")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Shape, A::Error> {
                let mut keys = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, Shape>()? {
                    keys.push((k, v));
                }
                Ok(Shape(keys))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Shape, A::Error> {
                let mut items = Vec::new();
                while let Some(v) = seq.next_element::<Shape>()? {
                    items.push((items.len().to_string(), v));
                }
                Ok(Shape(items))
            }
            fn visit_str<E>(self, _: &str) -> Result<Shape, E> {
                Ok(Shape::default())
            }
            fn visit_bool<E>(self, _: bool) -> Result<Shape, E> {
                Ok(Shape::default())
            }
            fn visit_i64<E>(self, _: i64) -> Result<Shape, E> {
                Ok(Shape::default())
            }
            fn visit_u64<E>(self, _: u64) -> Result<Shape, E> {
                Ok(Shape::default())
            }
            fn visit_f64<E>(self, _: f64) -> Result<Shape, E> {
                Ok(Shape::default())
            }
            fn visit_unit<E>(self) -> Result<Shape, E> {
                Ok(Shape::default())
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

impl Shape {
    /// The keys of the object at a JSON pointer, in written order.
    fn keys_at(&self, pointer: &str) -> Vec<&str> {
        let mut node = self;
        for token in pointer.split('/').skip(1) {
            let token = token.replace("~1", "/").replace("~0", "~");
            match node.0.iter().find(|(k, _)| *k == token) {
                Some((_, child)) => node = child,
                None => return Vec::new(),
            }
        }
        node.0.iter().map(|(k, _)| k.as_str()).collect()
    }
}

/// The embedded schema files by name, with their key orders.
struct Schemas {
    docs: BTreeMap<&'static str, Value>,
    shapes: BTreeMap<&'static str, Shape>,
}

fn schemas() -> anyhow::Result<Schemas> {
    let mut docs = BTreeMap::new();
    let mut shapes = BTreeMap::new();
    for (name, text) in normalizer::schema::SCHEMA_FILES {
        docs.insert(
            *name,
            serde_json::from_str(text).with_context(|| format!("schema {name}"))?,
        );
        shapes.insert(
            *name,
            serde_json::from_str(text).with_context(|| format!("schema {name}"))?,
        );
    }
    Ok(Schemas { docs, shapes })
}

/// Where a schema node is: its file and JSON pointer.
#[derive(Debug, Clone)]
struct Place<'a> {
    file: &'a str,
    pointer: String,
}

/// A node with its `$ref` followed (keys beside the `$ref`, like `title`, win), and where its
/// `properties` are written.
fn resolve<'a>(schemas: &'a Schemas, place: Place<'a>, node: &Value) -> (Value, Place<'a>) {
    let Some(reference) = node.get("$ref").and_then(Value::as_str) else {
        return (node.clone(), place);
    };
    let (target_file, pointer) = match reference.split_once('#') {
        Some(("", p)) => (place.file, p),
        Some((f, p)) => (f, p),
        None => (reference, ""),
    };
    let Some((name, doc)) = schemas.docs.get_key_value(target_file) else {
        return (node.clone(), place);
    };
    let Some(target) = doc.pointer(pointer) else {
        return (node.clone(), place);
    };
    let target_place = Place {
        file: name,
        pointer: pointer.to_string(),
    };
    let (mut merged, resolved_place) = resolve(schemas, target_place, target);
    if let (Value::Object(m), Value::Object(own)) = (&mut merged, node) {
        for (k, v) in own {
            if k != "$ref" {
                m.insert(k.clone(), v.clone());
            }
        }
    }
    if node.get("properties").is_some() {
        return (merged, place);
    }
    (merged, resolved_place)
}

/// `code 名称; code2 名称2` of a schema description, as (名称, code) for each enum value (the code
/// itself where the description names none).
fn enum_labels(node: &Value, described: &Value) -> Vec<(String, String)> {
    let codes: Vec<&str> = node
        .get("enum")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let description = described.get("description").and_then(Value::as_str).unwrap_or_default();
    // After a leading "《...》第九条:" citation, if any.
    let list = description.rsplit_once(": ").map_or(description, |(_, l)| l);
    let mut named: BTreeMap<&str, String> = BTreeMap::new();
    for part in list.split(';') {
        if let Some((code, label)) = part.trim().split_once(' ') {
            named.insert(code.trim(), label.trim().to_string());
        }
    }
    codes
        .iter()
        .map(|c| (named.get(c).cloned().unwrap_or_else(|| c.to_string()), c.to_string()))
        .collect()
}

/// The kind of a scalar schema node.
fn scalar_kind(node: &Value) -> ColumnKind {
    if node.get("enum").is_some() {
        return ColumnKind::Choice(enum_labels(node, node));
    }
    let format = node.get("format").and_then(Value::as_str).unwrap_or_default();
    match (node.get("type").and_then(Value::as_str).unwrap_or("string"), format) {
        (_, "date") => ColumnKind::Date,
        (_, "date-time") => ColumnKind::DateTime,
        ("number", _) => ColumnKind::Amount,
        ("integer", _) => ColumnKind::Integer,
        ("boolean", _) => ColumnKind::YesNo,
        (_, "uscc" | "gb2260" | "gb2260-current" | "cn-resident-id") => ColumnKind::Identifier,
        _ => ColumnKind::Text,
    }
}

/// Walk an object node's properties into columns, in the order the schema writes them.
fn walk(schemas: &Schemas, place: Place<'_>, node: &Value, prefix: &str, parent_required: bool, out: &mut Vec<Column>) {
    let (node, place) = resolve(schemas, place, node);
    let required: Vec<&str> = node
        .get("required")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let Some(properties) = node.get("properties").and_then(Value::as_object) else {
        return;
    };
    let properties_pointer = format!("{}/properties", place.pointer);
    let mut keys: Vec<&str> = schemas
        .shapes
        .get(place.file)
        .map(|s| s.keys_at(&properties_pointer))
        .unwrap_or_default();
    keys.retain(|k| properties.contains_key(*k));
    for k in properties.keys() {
        if !keys.contains(&k.as_str()) {
            keys.push(k);
        }
    }
    for key in keys {
        let Some(child) = properties.get(key) else { continue };
        if prefix.is_empty() && SKIPPED.contains(&key) {
            continue;
        }
        let target = if prefix.is_empty() {
            key.to_string()
        } else {
            format!("{prefix}.{key}")
        };
        let is_required = parent_required && required.contains(&key);
        let child_place = Place {
            file: place.file,
            pointer: format!("{properties_pointer}/{key}"),
        };
        let (child, child_place) = resolve(schemas, child_place, child);
        let title = child.get("title").and_then(Value::as_str).unwrap_or(key).to_string();
        let description = child.get("description").and_then(Value::as_str).unwrap_or_default();
        let is_object = child.get("properties").is_some();
        let is_array = child.get("type").and_then(Value::as_str) == Some("array");
        if is_object {
            walk(schemas, child_place, &child, &target, is_required, out);
        } else if is_array {
            let Some(items) = child.get("items") else { continue };
            let items_place = Place {
                file: child_place.file,
                pointer: format!("{}/items", child_place.pointer),
            };
            let (items, items_place) = resolve(schemas, items_place, items);
            if items.get("properties").is_some() {
                let mut parts = Vec::new();
                walk(schemas, items_place, &items, "", true, &mut parts);
                for part in parts {
                    out.push(Column {
                        title: part.title,
                        target: target.clone(),
                        required: is_required && part.required,
                        kind: ColumnKind::Part {
                            group: target.clone(),
                            key: part.target,
                        },
                        note: format!("{title}：多人时用“、”分隔，各列按顺序一一对应"),
                    });
                }
            } else if items.get("enum").is_some() {
                out.push(Column {
                    title,
                    target,
                    required: is_required,
                    kind: ColumnKind::Choices(enum_labels(&items, &child)),
                    note: "可填多项，用“、”分隔".into(),
                });
            }
        } else {
            let kind = match scalar_kind(&child) {
                ColumnKind::Text if key == "id_number" => ColumnKind::Identifier,
                kind => kind,
            };
            let note = if matches!(kind, ColumnKind::Choice(_)) || description.is_empty() {
                String::new()
            } else {
                description.to_string()
            };
            out.push(Column {
                title,
                target,
                required: is_required,
                kind,
                note,
            });
        }
    }
}

/// The columns of a case type's template, from the canonical schema; titles made unique.
pub fn columns(case_type: &str) -> anyhow::Result<Vec<Column>> {
    if !CASE_TYPES.iter().any(|(c, _)| *c == case_type) {
        anyhow::bail!(
            "--case-type {case_type:?}：应为 penalty、inspection 或 coercion / use penalty, inspection or coercion"
        );
    }
    let schemas = schemas()?;
    let name = format!("{case_type}.schema.json");
    let (file, top) = schemas.docs.get_key_value(name.as_str()).context("schema file")?;
    let top_place = Place {
        file,
        pointer: String::new(),
    };
    let base_ref = serde_json::json!({"$ref": top["$ref"]});
    let mut out = Vec::new();
    walk(&schemas, top_place.clone(), &base_ref, "", true, &mut out);
    walk(&schemas, top_place, top, "", true, &mut out);
    // The case type's own required fields (e.g. penalty's `case_source`) are listed at its top.
    let top_required: Vec<&str> = top
        .get("required")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for c in &mut out {
        if top_required.contains(&c.target.as_str()) {
            c.required = true;
        }
    }
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for c in &mut out {
        let n = seen.entry(c.title.clone()).or_default();
        *n += 1;
        if *n > 1 {
            c.title = format!("{}({})", c.title, c.target);
        }
    }
    Ok(out)
}

/// Replace the lists of values with a mapping's code tables where it maps the field through one
/// (`--mapping DIR`): the department's own words, as its system has them.
pub fn use_mapping_tables(columns: &mut [Column], dir: &Path) -> anyhow::Result<()> {
    let path = if dir.is_dir() {
        dir.join("mapping.toml")
    } else {
        dir.to_path_buf()
    };
    let base = path.parent().unwrap_or_else(|| Path::new("."));
    let text = std::fs::read_to_string(&path).with_context(|| format!("--mapping {}", path.display()))?;
    let doc: toml::Table = toml::from_str(&text).with_context(|| format!("--mapping {}", path.display()))?;
    let tables = doc
        .get("tables")
        .and_then(toml::Value::as_table)
        .cloned()
        .unwrap_or_default();
    let fields = doc
        .get("field")
        .and_then(toml::Value::as_array)
        .cloned()
        .unwrap_or_default();
    for field in fields {
        let (Some(target), Some(table)) = (
            field.get("target").and_then(toml::Value::as_str),
            field.get("table").and_then(toml::Value::as_str),
        ) else {
            continue;
        };
        let Some(spec) = tables.get(table) else { continue };
        let mut pairs: Vec<(String, String)> = Vec::new();
        if let Some(values) = spec.get("values").and_then(toml::Value::as_table) {
            for (k, v) in values {
                if let Some(v) = v.as_str() {
                    pairs.push((k.clone(), v.to_string()));
                }
            }
        }
        if let Some(file) = spec.get("file").and_then(toml::Value::as_str) {
            let csv_path = base.join(file);
            let mut reader = csv::Reader::from_path(&csv_path).with_context(|| format!("{}", csv_path.display()))?;
            for row in reader.records() {
                let row = row.with_context(|| format!("{}", csv_path.display()))?;
                if let (Some(s), Some(t)) = (row.get(0), row.get(1)) {
                    pairs.push((s.to_string(), t.to_string()));
                }
            }
        }
        // One value per source word (the first), as a TOML table of them needs.
        let mut seen = std::collections::BTreeSet::new();
        pairs.retain(|(label, _)| seen.insert(label.clone()));
        if pairs.is_empty() {
            continue;
        }
        for c in columns.iter_mut().filter(|c| c.target == target) {
            match &mut c.kind {
                ColumnKind::Choice(list) | ColumnKind::Choices(list) => *list = pairs.clone(),
                _ => {}
            }
        }
    }
    Ok(())
}

/// What a column's instructions say of its format.
fn format_note(kind: &ColumnKind) -> String {
    match kind {
        ColumnKind::Text => "文本".into(),
        ColumnKind::Identifier => "文本（代码、证件号码请按文本填写，不要转成数字）".into(),
        ColumnKind::Date => "日期 YYYY-MM-DD，如 2024-03-05".into(),
        ColumnKind::DateTime => "日期时间 YYYY-MM-DD HH:MM:SS".into(),
        ColumnKind::Amount => "金额，单位元，如 2000 或 1500.50".into(),
        ColumnKind::Integer => "整数".into(),
        ColumnKind::YesNo => "下拉选择：是 / 否".into(),
        ColumnKind::Choice(list) => format!("下拉选择：{}", labels(list).join("、")),
        ColumnKind::Choices(list) => format!("可选多项，用“、”分隔：{}", labels(list).join("、")),
        ColumnKind::Part { .. } => "文本，多人用“、”分隔".into(),
    }
}

fn labels(list: &[(String, String)]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (label, _) in list {
        if !out.contains(label) {
            out.push(label.clone());
        }
    }
    out
}

/// A TOML string literal.
fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// A source path naming a column title (`["罚款金额(元)"]` when the title is no plain key).
fn source_path(title: &str) -> String {
    if title
        .chars()
        .any(|c| matches!(c, '.' | '[' | ']' | '"' | '\'') || c.is_whitespace())
    {
        format!("[{}]", serde_json::Value::String(title.to_string()))
    } else {
        title.to_string()
    }
}

/// The mapping that reads a filled-in template of `case_type` (header row 2 of the sheet named
/// after the case type).
pub fn mapping_toml(case_type: &str, columns: &[Column]) -> String {
    let sheet = CASE_TYPES.iter().find(|(c, _)| *c == case_type).map_or("", |(_, s)| *s);
    let mut out = String::new();
    out.push_str(&format!(
        "# {sheet}填报模板（gateway template xlsx --case-type {case_type}）→ 规范化{sheet}记录\n\
         # The mapping of a filled-in fill-in template (written by `gateway template xlsx --case-type {case_type} --mapping-out`).\n\
         # 来源配置 / source settings: format = \"xlsx\", sheet = \"{sheet}\", header_row = 2, record_key = \"部门案件编号\"\n\n\
         id = \"xlsx-template-{case_type}\"\nversion = 1\ndescription = \"{sheet}填报模板（Excel）\"\ncase_type = \"{case_type}\"\n"
    ));
    let mut tables = String::new();
    let mut fields = String::new();
    let mut groups_done: Vec<String> = Vec::new();
    for c in columns {
        let from = toml_str(&source_path(&c.title));
        let required = if c.required { "required = true\n" } else { "" };
        let mut table_of = |list: &[(String, String)]| {
            let name = c.target.replace('.', "_");
            tables.push_str(&format!("\n[tables.{name}]            # {}\nvalues = {{ ", c.title));
            let entries: Vec<String> = list
                .iter()
                .map(|(l, v)| format!("{} = {}", toml_str(l), toml_str(v)))
                .collect();
            tables.push_str(&entries.join(", "));
            tables.push_str(" }\nunmapped = \"error\"\n");
            name
        };
        let body = match &c.kind {
            ColumnKind::Text => format!("from = {from}\nsteps = [\"trim\"]\n"),
            ColumnKind::Identifier if c.target.ends_with("region_code") => {
                format!("from = {from}\nsteps = [\"remove_spaces\", \"halfwidth\"]\n")
            }
            ColumnKind::Identifier => format!("from = {from}\nsteps = [\"normalise_identifier\"]\n"),
            ColumnKind::Date => format!("from = {from}\nas = \"date\"\n"),
            ColumnKind::DateTime => format!("from = {from}\nas = \"datetime\"\n"),
            ColumnKind::Amount => format!("from = {from}\nas = \"decimal\"                     # 元\n"),
            ColumnKind::Integer => format!("from = {from}\nas = \"integer\"\n"),
            ColumnKind::YesNo => format!("from = {from}\nas = \"boolean\"                     # 是/否\n"),
            ColumnKind::Choice(list) => {
                let table = table_of(list);
                let default = if c.target == "operation" {
                    "default = \"insert\"               # 不填视为新增\n"
                } else {
                    ""
                };
                format!("from = {from}\nsteps = [\"trim\"]\ntable = \"{table}\"\n{default}")
            }
            ColumnKind::Choices(list) => {
                let table = table_of(list);
                format!("from = {from}\nas = \"string_array\"\nsplit = \"、,，;；\"\ntable = \"{table}\"\ndistinct = true\n")
            }
            ColumnKind::Part { group, .. } => {
                if groups_done.contains(group) {
                    continue;
                }
                groups_done.push(group.clone());
                let parts: Vec<String> = columns
                    .iter()
                    .filter_map(|p| match &p.kind {
                        ColumnKind::Part { group: g, key } if g == group => {
                            Some(format!("{key} = {}", toml_str(&source_path(&p.title))))
                        }
                        _ => None,
                    })
                    .collect();
                let any_required = columns
                    .iter()
                    .any(|p| p.required && matches!(&p.kind, ColumnKind::Part { group: g, .. } if g == group));
                fields.push_str(&format!(
                    "\n[[field]]\ntarget = \"{group}\"\nzip = {{ {} }}\nsplit = \"、,，;；\"\nsteps = [\"trim\"]\n{}",
                    parts.join(", "),
                    if any_required { "required = true\n" } else { "" }
                ));
                continue;
            }
        };
        fields.push_str(&format!(
            "\n[[field]]\ntarget = \"{}\"              # {}\n{body}{required}",
            c.target, c.title
        ));
    }
    out.push_str("\n# ---------------------------------------------------------------- 代码表 / code tables\n");
    out.push_str(&tables);
    out.push_str("\n# ---------------------------------------------------------------- 字段 / fields\n");
    out.push_str(&fields);
    out
}

fn xlsx(e: rust_xlsxwriter::XlsxError) -> anyhow::Error {
    anyhow::anyhow!("xlsx: {e}")
}

/// Write the template of `case_type` with `columns` to `output`.
pub fn write_template(case_type: &str, columns: &[Column], output: &Path) -> anyhow::Result<()> {
    let sheet_name = CASE_TYPES
        .iter()
        .find(|(c, _)| *c == case_type)
        .map(|(_, s)| *s)
        .context("case type")?;
    let mut workbook = Workbook::new();
    let title = Format::new()
        .set_bold()
        .set_font_size(14)
        .set_align(FormatAlign::Center);
    let header = Format::new()
        .set_bold()
        .set_text_wrap()
        .set_border(FormatBorder::Thin)
        .set_background_color("#DDEBF7");
    let header_required = header.clone().set_font_color("#C00000");
    let text = Format::new().set_num_format("@");
    let date = Format::new().set_num_format("yyyy-mm-dd");
    let datetime = Format::new().set_num_format("yyyy-mm-dd hh:mm:ss");
    let amount = Format::new().set_num_format("0.00");

    // The lists of values, one column each, on the hidden lists sheet.
    let mut lists: Vec<(usize, Vec<String>)> = Vec::new();
    for (i, c) in columns.iter().enumerate() {
        match &c.kind {
            ColumnKind::Choice(list) | ColumnKind::Choices(list) => lists.push((i, labels(list))),
            ColumnKind::YesNo => lists.push((i, vec!["是".into(), "否".into()])),
            _ => {}
        }
    }
    let last_col = u16::try_from(columns.len().saturating_sub(1)).context("too many columns")?;
    {
        let sheet: &mut Worksheet = workbook.add_worksheet().set_name(sheet_name).map_err(xlsx)?;
        sheet
            .merge_range(
                0,
                0,
                0,
                last_col,
                &format!("{sheet_name}案件填报模板（红色列名为必填；填写说明见“说明”工作表）"),
                &title,
            )
            .map_err(xlsx)?;
        for (i, c) in columns.iter().enumerate() {
            let col = u16::try_from(i).context("too many columns")?;
            let format = if c.required { &header_required } else { &header };
            sheet.write_string_with_format(1, col, &c.title, format).map_err(xlsx)?;
            sheet.set_column_width(col, 18).map_err(xlsx)?;
            let column_format = match c.kind {
                ColumnKind::Date => Some(&date),
                ColumnKind::DateTime => Some(&datetime),
                ColumnKind::Amount => Some(&amount),
                ColumnKind::Integer => None,
                _ => Some(&text),
            };
            if let Some(f) = column_format {
                sheet.set_column_format(col, f).map_err(xlsx)?;
            }
        }
        sheet.set_row_height(1, 32).map_err(xlsx)?;
        sheet.set_freeze_panes(2, 0).map_err(xlsx)?;
        for (n, (i, values)) in lists.iter().enumerate() {
            let col = u16::try_from(*i).context("too many columns")?;
            let letter = crate::prepare::spreadsheet::column_letters(n as u32);
            let formula = Formula::new(format!("={LISTS_SHEET}!${letter}$2:${letter}${}", values.len() + 1));
            let mut validation = DataValidation::new()
                .allow_list_formula(formula)
                .ignore_blank(true)
                .set_input_title(&columns[*i].title)
                .map_err(xlsx)?
                .set_input_message(format_note(&columns[*i].kind).chars().take(250).collect::<String>())
                .map_err(xlsx)?;
            if matches!(columns[*i].kind, ColumnKind::Choices(_)) {
                // Several values joined by 、 are not in the list: say so, but let them be typed.
                validation = validation.set_error_style(DataValidationErrorStyle::Information);
            }
            sheet
                .add_data_validation(2, col, PREPARED_ROWS + 1, col, &validation)
                .map_err(xlsx)?;
        }
    }
    {
        let notes = workbook
            .add_worksheet()
            .set_name(crate::prepare::spreadsheet::INSTRUCTIONS_SHEET)
            .map_err(xlsx)?;
        let wrap = Format::new().set_text_wrap();
        for (col, (t, width)) in [("列名", 24), ("是否必填", 10), ("格式 / 可选值", 60), ("说明", 60)]
            .into_iter()
            .enumerate()
        {
            notes
                .write_string_with_format(0, col as u16, t, &header)
                .map_err(xlsx)?;
            notes.set_column_width(col as u16, width).map_err(xlsx)?;
        }
        notes.set_freeze_panes(1, 0).map_err(xlsx)?;
        for (i, c) in columns.iter().enumerate() {
            let row = u32::try_from(i + 1).context("rows")?;
            notes.write_string(row, 0, &c.title).map_err(xlsx)?;
            notes
                .write_string(row, 1, if c.required { "必填" } else { "选填" })
                .map_err(xlsx)?;
            notes
                .write_string_with_format(row, 2, format_note(&c.kind), &wrap)
                .map_err(xlsx)?;
            notes.write_string_with_format(row, 3, &c.note, &wrap).map_err(xlsx)?;
        }
        let after = u32::try_from(columns.len() + 2).context("rows")?;
        for (k, line) in [
            "填写说明：每行一个案件，从第 3 行开始填写；不要修改第 2 行的列名，不要删除或调整列的顺序。",
            "日期请按 YYYY-MM-DD 填写（或用 Excel 的日期格式）；金额单位为元。",
            "统一社会信用代码、身份证号等请按文本填写：超过 15 位的数字 Excel 会丢失末几位，网关会拒收这样的单元格。",
            "同一案件再次上传视为更新；操作类型选“删除(撤回)”可撤回已上报的案件。",
        ]
        .iter()
        .enumerate()
        {
            notes.write_string(after + k as u32, 0, *line).map_err(xlsx)?;
        }
    }
    {
        let sheet = workbook.add_worksheet().set_name(LISTS_SHEET).map_err(xlsx)?;
        for (n, (i, values)) in lists.iter().enumerate() {
            let col = u16::try_from(n).context("too many lists")?;
            sheet.write_string(0, col, &columns[*i].title).map_err(xlsx)?;
            for (r, v) in values.iter().enumerate() {
                sheet.write_string(r as u32 + 1, col, v).map_err(xlsx)?;
            }
        }
        sheet.set_hidden(true);
    }
    workbook.save(output).map_err(xlsx)?;
    Ok(())
}

/// `gateway template xlsx`: write the template (and, with `mapping_out`, its mapping).
pub fn run(
    case_type: &str,
    mapping: Option<&Path>,
    output: &Path,
    mapping_out: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let mut columns = columns(case_type)?;
    if let Some(dir) = mapping {
        use_mapping_tables(&mut columns, dir)?;
    }
    write_template(case_type, &columns, output).with_context(|| format!("{}", output.display()))?;
    if let Some(path) = mapping_out {
        std::fs::write(path, mapping_toml(case_type, &columns)).with_context(|| format!("{}", path.display()))?;
    }
    eprintln!(
        "已写入 / written: {}{}",
        output.display(),
        mapping_out.map(|p| format!(", {}", p.display())).unwrap_or_default()
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn penalty_columns_come_from_the_schema_with_chinese_titles_and_lists() {
        let cols = columns("penalty").expect("columns");
        let by_target = |t: &str| cols.iter().find(|c| c.target == t).expect(t);
        let agency = by_target("agency.credit_code");
        assert_eq!(agency.title, "执法部门统一社会信用代码");
        assert!(agency.required);
        assert_eq!(agency.kind, ColumnKind::Identifier);
        let procedure = by_target("penalty.procedure");
        assert_eq!(procedure.title, "处罚程序");
        assert_eq!(
            procedure.kind,
            ColumnKind::Choice(vec![
                ("简易程序".into(), "simple".into()),
                ("普通程序".into(), "ordinary".into())
            ])
        );
        assert!(
            matches!(&by_target("penalty.kinds").kind, ColumnKind::Choices(l) if l.contains(&("警告".into(), "warning".into())))
        );
        assert_eq!(by_target("penalty.decision_date").kind, ColumnKind::Date);
        assert_eq!(by_target("penalty.fine_amount").kind, ColumnKind::Amount);
        assert!(by_target("case_source").required, "required at the case type's top");
        assert!(!by_target("remarks").required);
        let officers: Vec<&Column> = cols.iter().filter(|c| c.target == "officers").collect();
        assert_eq!(officers.len(), 2);
        assert!(officers.iter().all(|c| c.required));
        assert!(cols
            .iter()
            .all(|c| !c.target.starts_with("attachments") && c.target != "case_type"));
        let mut titles: Vec<&str> = cols.iter().map(|c| c.title.as_str()).collect();
        titles.sort_unstable();
        titles.dedup();
        assert_eq!(titles.len(), cols.len(), "titles are unique");
    }

    #[test]
    fn every_case_type_has_a_template_whose_mapping_loads() {
        let dir = tempfile::tempdir().expect("dir");
        for (case_type, _) in CASE_TYPES {
            let cols = columns(case_type).expect("columns");
            let path = dir.path().join(format!("{case_type}.toml"));
            std::fs::write(&path, mapping_toml(case_type, &cols)).expect("write");
            normalizer::mapping::Mapping::load(&path).unwrap_or_else(|e| panic!("{case_type}: {e}"));
            write_template(case_type, &cols, &dir.path().join(format!("{case_type}.xlsx"))).expect("template");
        }
        assert!(columns("plan").is_err());
    }

    #[test]
    fn the_committed_template_mappings_are_what_the_command_writes() {
        for (case_type, _) in CASE_TYPES {
            let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join("mappings")
                .join(format!("xlsx-template-{case_type}"))
                .join("mapping.toml");
            let committed = std::fs::read_to_string(&path).unwrap_or_default();
            let generated = mapping_toml(case_type, &columns(case_type).expect("columns"));
            assert!(
                committed == generated,
                "{} is not what `gateway template xlsx --case-type {case_type} --mapping-out` writes: regenerate it",
                path.display()
            );
        }
    }

    #[test]
    fn a_mapping_directory_gives_its_code_tables_as_the_lists() {
        let mut cols = columns("penalty").expect("columns");
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../mappings/nanchang-amr-penalty");
        use_mapping_tables(&mut cols, &dir).expect("mapping tables");
        let procedure = cols
            .iter()
            .find(|c| c.target == "penalty.procedure")
            .expect("procedure");
        assert!(
            matches!(&procedure.kind, ColumnKind::Choice(l) if l.contains(&("一般程序".into(), "ordinary".into()))),
            "{:?}",
            procedure.kind
        );
        // The mapping written for those lists loads.
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("mapping.toml");
        std::fs::write(&path, mapping_toml("penalty", &cols)).expect("write");
        normalizer::mapping::Mapping::load(&path).expect("the mapping of a template made with --mapping loads");
    }

    /// A part of an .xlsx file (a zip archive) as text.
    fn part(path: &Path, name: &str) -> String {
        let file = std::fs::File::open(path).expect("template");
        let mut archive = zip::ZipArchive::new(file).expect("an xlsx is a zip archive");
        let mut text = String::new();
        std::io::Read::read_to_string(&mut archive.by_name(name).expect(name), &mut text).expect("text");
        text
    }

    #[test]
    fn the_template_has_drop_down_lists_a_frozen_header_and_a_hidden_lists_sheet() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("penalty.xlsx");
        let cols = columns("penalty").expect("columns");
        write_template("penalty", &cols, &path).expect("template");
        let sheet = part(&path, "xl/worksheets/sheet1.xml");
        let lists = cols
            .iter()
            .filter(|c| {
                matches!(
                    c.kind,
                    ColumnKind::Choice(_) | ColumnKind::Choices(_) | ColumnKind::YesNo
                )
            })
            .count();
        assert_eq!(
            sheet.matches("<dataValidation ").count(),
            lists,
            "one drop-down per listed column"
        );
        assert!(sheet.contains("代码表!$A$2:$A$"), "the lists are on the 代码表 sheet");
        assert!(
            sheet.contains("ySplit=\"2\"") && sheet.contains("state=\"frozen\""),
            "rows 1-2 frozen"
        );
        let workbook = part(&path, "xl/workbook.xml");
        assert!(
            workbook.contains("name=\"代码表\"") && workbook.contains("state=\"hidden\""),
            "{workbook}"
        );
        assert!(workbook.contains("name=\"说明\""));
    }
}
