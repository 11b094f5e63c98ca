//! The source fields of the sample records and what their values look like.

use crate::mapping::{parse_amount, parse_bool, parse_date_text, Unit};
use crate::standards::credit_code::CreditCode;
use crate::standards::id_number::ResidentId;
use crate::standards::region::RegionTable;
use serde_json::Value;
use std::collections::BTreeMap;

/// Deepest nesting of objects followed.
const MAX_DEPTH: usize = 4;
/// Values kept per field for the analysis.
const MAX_VALUES: usize = 500;

/// One source field across the samples.
#[derive(Debug, Clone, Default)]
pub(crate) struct FieldProfile {
    /// The path as written in a mapping (`xdrmc`, `jg.mc`, `zfry[*].xm` inside a group: `xm`).
    pub path: String,
    /// The last key, the field's own name.
    pub name: String,
    /// The non-empty values as text.
    pub values: Vec<String>,
    /// Records in which the field appears (empty or not).
    pub seen: usize,
    /// A list of values (JSON array of scalars, repeated XML element).
    pub is_list: bool,
    /// Units written beside the value (XML attribute `dw`, `unit`).
    pub unit_hints: Vec<String>,
}

/// A list of objects (`zfry[*]`): its path and its members.
#[derive(Debug, Clone, Default)]
pub(crate) struct GroupProfile {
    /// Path of the list (`zfry`).
    pub path: String,
    pub name: String,
    pub members: Vec<FieldProfile>,
}

/// Every field of the samples.
#[derive(Debug, Default)]
pub(crate) struct Profiles {
    pub fields: Vec<FieldProfile>,
    pub groups: Vec<GroupProfile>,
}

/// A key as one segment of a mapping path (`["键 名"]` when it needs quoting).
pub(crate) fn path_segment(key: &str) -> String {
    let plain = !key.is_empty()
        && !key.starts_with('$')
        && !key
            .chars()
            .any(|c| matches!(c, '.' | '[' | ']' | '"' | '\'') || c.is_whitespace());
    if plain {
        key.to_string()
    } else if key.contains('"') {
        format!("['{key}']")
    } else {
        format!("[\"{key}\"]")
    }
}

fn join(prefix: &str, key: &str) -> String {
    let seg = path_segment(key);
    if prefix.is_empty() {
        seg
    } else if seg.starts_with('[') {
        format!("{prefix}{seg}")
    } else {
        format!("{prefix}.{seg}")
    }
}

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[derive(Default)]
struct Collector {
    fields: BTreeMap<String, FieldProfile>,
    order: Vec<String>,
    groups: BTreeMap<String, (String, Collector)>,
    group_order: Vec<String>,
}

impl Collector {
    fn field(&mut self, path: &str, name: &str) -> &mut FieldProfile {
        if !self.fields.contains_key(path) {
            self.order.push(path.to_string());
        }
        self.fields.entry(path.to_string()).or_insert_with(|| FieldProfile {
            path: path.to_string(),
            name: name.to_string(),
            ..FieldProfile::default()
        })
    }

    fn add_value(&mut self, path: &str, name: &str, text: Option<String>, list: bool) {
        let f = self.field(path, name);
        f.is_list |= list;
        if let Some(t) = text {
            if !t.trim().is_empty() && f.values.len() < MAX_VALUES {
                f.values.push(t);
            }
        }
    }

    fn walk(&mut self, prefix: &str, object: &serde_json::Map<String, Value>, depth: usize) {
        for (key, value) in object {
            if key.starts_with('_') && prefix.is_empty() && key.contains("note") {
                continue; // sample annotations such as `_sample_note`
            }
            let path = join(prefix, key);
            match value {
                Value::Object(inner) if is_text_element(inner) => {
                    // An XML element with attributes and text: the text is the field, attributes
                    // are fields of their own.
                    let text = inner.get("#text").and_then(scalar_text);
                    self.field(&path, key).seen += 1;
                    self.add_value(&path, key, text, false);
                    for (attr, v) in inner {
                        if let Some(a) = attr.strip_prefix('@') {
                            let apath = format!("{path}.@{a}");
                            self.field(&apath, attr).seen += 1;
                            let t = scalar_text(v);
                            if matches!(a, "dw" | "unit" | "danwei") {
                                if let Some(t) = &t {
                                    self.field(&path, key).unit_hints.push(t.clone());
                                }
                            }
                            self.add_value(&apath, attr, t, false);
                        }
                    }
                }
                Value::Object(inner) if depth < MAX_DEPTH => self.walk(&path, inner, depth + 1),
                Value::Array(items) if items.iter().any(Value::is_object) => {
                    if !self.groups.contains_key(&path) {
                        self.group_order.push(path.clone());
                    }
                    let (_, group) = self
                        .groups
                        .entry(path.clone())
                        .or_insert_with(|| (key.clone(), Collector::default()));
                    for item in items {
                        if let Value::Object(o) = item {
                            group.walk_item(o);
                        }
                    }
                }
                Value::Array(items) => {
                    self.field(&path, key).seen += 1;
                    for item in items {
                        self.add_value(&path, key, scalar_text(item), true);
                    }
                }
                Value::Null => self.field(&path, key).seen += 1,
                other => {
                    self.field(&path, key).seen += 1;
                    self.add_value(&path, key, scalar_text(other), false);
                }
            }
        }
    }

    /// One element of a list of objects: its members are counted as fields of the group.
    fn walk_item(&mut self, o: &serde_json::Map<String, Value>) {
        for (key, value) in o {
            let path = if key == "#text" {
                "#text".to_string()
            } else {
                path_segment(key)
            };
            self.field(&path, key).seen += 1;
            match value {
                Value::Object(inner) => {
                    let t = inner.get("#text").and_then(scalar_text);
                    self.add_value(&path, key, t, false);
                }
                Value::Array(items) => {
                    for item in items {
                        self.add_value(&path, key, scalar_text(item), true);
                    }
                }
                other => self.add_value(&path, key, scalar_text(other), false),
            }
        }
    }

    fn finish(mut self) -> Profiles {
        let mut out = Profiles::default();
        for p in &self.order {
            if let Some(f) = self.fields.remove(p) {
                out.fields.push(f);
            }
        }
        for p in &self.group_order {
            if let Some((name, c)) = self.groups.remove(p) {
                let members = c.finish().fields;
                out.groups.push(GroupProfile {
                    path: p.clone(),
                    name,
                    members,
                });
            }
        }
        out
    }
}

/// An XML element with attributes (and maybe text), as the XML reader builds it.
fn is_text_element(o: &serde_json::Map<String, Value>) -> bool {
    !o.is_empty() && o.keys().all(|k| k.starts_with('@') || k == "#text")
}

/// The fields of `records` (objects; others are skipped). A list of objects in one record and a
/// single object of the same name in another (an XML element that repeats only sometimes) are
/// both read as the list.
pub(crate) fn profile(records: &[Value]) -> Profiles {
    // Objects that are lists of objects elsewhere (at the same path) are read as one-element
    // lists: an XML element that repeats in some records only.
    fn lists(v: &Value, path: &str, depth: usize, out: &mut std::collections::HashSet<String>) {
        let Value::Object(o) = v else { return };
        if depth > MAX_DEPTH {
            return;
        }
        for (k, child) in o {
            let here = format!("{path}\u{1}{k}");
            match child {
                Value::Array(items) if items.iter().any(Value::is_object) => {
                    out.insert(here);
                }
                Value::Object(_) => lists(child, &here, depth + 1, out),
                _ => {}
            }
        }
    }
    fn wrap(v: &mut Value, path: &str, depth: usize, list_paths: &std::collections::HashSet<String>) {
        let Value::Object(o) = v else { return };
        if depth > MAX_DEPTH {
            return;
        }
        for (k, child) in o.iter_mut() {
            let here = format!("{path}\u{1}{k}");
            if child.is_object() && list_paths.contains(&here) {
                let single = child.take();
                *child = Value::Array(vec![single]);
            } else if child.is_object() {
                wrap(child, &here, depth + 1, list_paths);
            }
        }
    }
    let mut list_paths = std::collections::HashSet::new();
    for r in records {
        lists(r, "", 0, &mut list_paths);
    }
    let mut c = Collector::default();
    for r in records {
        if r.is_object() {
            let mut r = r.clone();
            wrap(&mut r, "", 0, &list_paths);
            if let Value::Object(o) = &r {
                c.walk("", o, 0);
            }
        }
    }
    c.finish()
}

/// Shares of a field's values matching each pattern (0..=1).
#[derive(Debug, Clone, Default)]
pub(crate) struct Features {
    pub count: usize,
    pub distinct: usize,
    pub uscc: f64,
    /// Valid credit codes of state organs (registration authority `1`).
    pub organ_uscc: f64,
    pub id_number: f64,
    pub region: f64,
    pub date: f64,
    /// Dates with a time of day.
    pub with_time: f64,
    pub number: f64,
    /// Numbers with a fractional part.
    pub fractional: f64,
    pub max_number: f64,
    pub boolean: f64,
    pub han: f64,
    pub avg_len: f64,
    pub person_name: f64,
    pub agency_name: f64,
    pub company_name: f64,
    pub officer_list: f64,
    pub legal_text: f64,
    pub decision_number: f64,
    pub identifier: f64,
    /// Separators seen between list items (、 , ， ; ； / and space).
    pub separators: Vec<char>,
}

fn han_count(s: &str) -> usize {
    s.chars().filter(|c| ('\u{4e00}'..='\u{9fff}').contains(c)).count()
}

/// 2 to 4 Chinese characters and nothing else (spaces allowed inside, `·` for minority names).
pub(crate) fn looks_like_person(s: &str) -> bool {
    let t: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    let n = t.chars().count();
    (2..=4).contains(&n)
        && t.chars().all(|c| ('\u{4e00}'..='\u{9fff}').contains(&c) || c == '·')
        && !AGENCY_ENDINGS.iter().any(|e| t.ends_with(e))
        && !COMPANY_ENDINGS.iter().any(|e| t.ends_with(e))
}

const AGENCY_ENDINGS: &[&str] = &[
    "局",
    "委员会",
    "委",
    "厅",
    "办公室",
    "政府",
    "大队",
    "支队",
    "总队",
    "执法队",
    "中心",
    "分局",
    "管理处",
    "所",
    "站",
    "办",
];
const COMPANY_ENDINGS: &[&str] = &[
    "公司",
    "店",
    "厂",
    "部",
    "行",
    "馆",
    "社",
    "场",
    "院",
    "校",
    "中心",
    "合作社",
    "集团",
    "铺",
    "坊",
    "超市",
    "酒店",
    "诊所",
    "药房",
];
const LIST_SEPARATORS: &[char] = &['、', ',', '，', ';', '；', '/', '|'];

/// Names separated by list separators (or spaces between 2–4 character names).
fn officer_list(s: &str) -> Option<Vec<char>> {
    let seps: Vec<char> = LIST_SEPARATORS.iter().copied().filter(|c| s.contains(*c)).collect();
    let parts: Vec<&str> = if seps.is_empty() {
        s.split_whitespace().collect()
    } else {
        s.split(|c| seps.contains(&c))
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .collect()
    };
    if parts.len() >= 2 && parts.iter().all(|p| looks_like_person(p)) {
        let mut out = seps;
        if out.is_empty() {
            out.push(' ');
        }
        Some(out)
    } else {
        None
    }
}

impl FieldProfile {
    /// The pattern shares of the field's values.
    pub fn features(&self) -> Features {
        let mut f = Features {
            count: self.values.len(),
            ..Features::default()
        };
        if self.values.is_empty() {
            return f;
        }
        let regions = RegionTable::embedded();
        let mut distinct: Vec<&str> = self.values.iter().map(|v| v.trim()).collect();
        distinct.sort_unstable();
        distinct.dedup();
        f.distinct = distinct.len();
        let n = self.values.len() as f64;
        let mut len_sum = 0usize;
        for v in &self.values {
            let t = v.trim();
            let norm = crate::standards::normalise::normalise_identifier(t);
            len_sum += t.chars().count();
            if CreditCode::parse(t).is_ok() {
                f.uscc += 1.0;
                if norm.starts_with('1') {
                    f.organ_uscc += 1.0;
                }
            }
            if norm.len() == 18 && ResidentId::parse(&norm).is_ok() {
                f.id_number += 1.0;
            }
            if norm.len() == 6 && norm.bytes().all(|b| b.is_ascii_digit()) && regions.exists_ever(&norm) {
                f.region += 1.0;
            }
            let digits_only = t.bytes().all(|b| b.is_ascii_digit());
            let date_shaped = !digits_only || matches!(t.len(), 8 | 12 | 13 | 14);
            if date_shaped && t.chars().count() >= 8 && parse_date_text(t, None).is_some() {
                f.date += 1.0;
                if t.contains(':') || t.contains('时') || t.len() == 13 || t.len() == 14 {
                    f.with_time += 1.0;
                }
            }
            if let Ok(d) = parse_amount(t, Unit::Yuan) {
                if t.chars().count() <= 20 && !date_looks(t) {
                    f.number += 1.0;
                    let x: f64 = d.to_string().parse().unwrap_or(0.0);
                    if d.fract() != rust_decimal::Decimal::ZERO {
                        f.fractional += 1.0;
                    }
                    f.max_number = f.max_number.max(x);
                }
            }
            if parse_bool(t).is_some() {
                f.boolean += 1.0;
            }
            if han_count(t) > 0 {
                f.han += 1.0;
            }
            if looks_like_person(t) {
                f.person_name += 1.0;
            }
            if AGENCY_ENDINGS.iter().any(|e| t.ends_with(e)) && han_count(t) >= 4 {
                f.agency_name += 1.0;
            }
            if han_count(t) >= 4 && COMPANY_ENDINGS.iter().any(|e| t.ends_with(e)) {
                f.company_name += 1.0;
            }
            if let Some(seps) = officer_list(t) {
                f.officer_list += 1.0;
                for s in seps {
                    if !f.separators.contains(&s) {
                        f.separators.push(s);
                    }
                }
            }
            if t.contains('《') || (t.contains('第') && t.contains('条')) {
                f.legal_text += 1.0;
            }
            if (t.contains('〔') || t.contains('[') || t.contains('（') || t.contains('(')) && t.contains('号') {
                f.decision_number += 1.0;
            }
            let len = t.chars().count();
            if (4..=40).contains(&len)
                && !t.contains(char::is_whitespace)
                && t.chars().any(|c| c.is_ascii_digit())
                && han_count(t) <= len / 2
            {
                f.identifier += 1.0;
            }
        }
        for x in [
            &mut f.uscc,
            &mut f.organ_uscc,
            &mut f.id_number,
            &mut f.region,
            &mut f.date,
            &mut f.with_time,
            &mut f.number,
            &mut f.fractional,
            &mut f.boolean,
            &mut f.han,
            &mut f.person_name,
            &mut f.agency_name,
            &mut f.company_name,
            &mut f.officer_list,
            &mut f.legal_text,
            &mut f.decision_number,
            &mut f.identifier,
        ] {
            *x /= n;
        }
        f.avg_len = len_sum as f64 / n;
        for v in &self.values {
            for s in LIST_SEPARATORS {
                if v.contains(*s) && !f.separators.contains(s) && f.officer_list == 0.0 {
                    f.separators.push(*s);
                }
            }
        }
        f
    }
}

/// `2021-01-22`-like text (read as a number by the amount reader otherwise).
fn date_looks(t: &str) -> bool {
    t.contains('-') && t.len() >= 8 || t.contains('/') || t.contains('年')
}

/// The distinct items of a code column (list items split on the separators seen).
pub(crate) fn code_items(field: &FieldProfile, list: bool, f: &Features) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for v in &field.values {
        let parts: Vec<String> = if list && !field.is_list {
            v.split(|c| f.separators.contains(&c) || matches!(c, '、' | ',' | '，' | ';' | '；'))
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        } else {
            vec![v.trim().to_string()]
        };
        for p in parts {
            if !out.contains(&p) {
                out.push(p);
            }
        }
    }
    out
}
