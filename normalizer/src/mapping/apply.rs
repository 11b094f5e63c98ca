//! Applying a compiled mapping to one source record. Never panics; every problem becomes a
//! [`Violation`] pointing at the canonical field.

use super::compile::{CaseTypeRule, Compiled, ConcatPart, Condition, Field, Source};
use super::convert::{self, apply_step, trim, NumberError};
use super::dates;
use super::layout::Layout;
use super::path::{RootIndex, SourcePath, TargetPath};
use super::spec::AsType;
use super::tables::{CodeTable, Unmapped};
use crate::standards::{is_canonical_date, shown};
use crate::{CaseType, Severity, Violation};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::str::FromStr;

/// What a field produced.
enum Produced {
    Value(Value),
    /// Nothing to write (source absent or empty).
    Absent,
    /// A violation was recorded; nothing is written.
    Failed,
}

/// The canonical pointer of a field, built only when a violation needs it: the pointer of the
/// enclosing list element (for fields inside `each`) plus the target's.
#[derive(Clone, Copy)]
struct Ptr<'p> {
    parent: Option<(&'p Ptr<'p>, usize)>,
    target: &'p TargetPath,
}

impl Ptr<'_> {
    fn write(&self, out: &mut String) {
        if let Some((parent, index)) = self.parent {
            parent.write(out);
            out.push('/');
            out.push_str(&index.to_string());
        }
        out.push_str(self.target.pointer());
    }

    fn at(&self, index: Option<usize>) -> String {
        let mut out = String::new();
        self.write(&mut out);
        if let Some(i) = index {
            out.push('/');
            out.push_str(&i.to_string());
        }
        out
    }
}

/// True for a value that counts as "missing": null, blank text, an empty list, or an
/// element with neither text nor children.
#[inline]
fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => trim(s).is_empty(),
        Value::Bool(_) | Value::Number(_) => false,
        Value::Array(_) | Value::Object(_) => is_empty_nested(v),
    }
}

/// [`is_empty`] of a list or an element, out of line: the scalar case is the usual one.
#[inline(never)]
fn is_empty_nested(v: &Value) -> bool {
    match v {
        Value::Array(a) => a.iter().all(is_empty),
        Value::Object(o) => match o.get("#text") {
            Some(t) => is_empty(t),
            None => o.keys().all(|k| k.starts_with('@')),
        },
        _ => is_empty(v),
    }
}

pub(crate) struct Engine<'a> {
    tables: &'a [CodeTable],
    root: &'a Value,
    index: RootIndex<'a>,
    case_type: Option<CaseType>,
    pub violations: Vec<Violation>,
}

/// Apply `m` to `source`, writing the canonical record into `record` (whose keys and objects
/// are reused; its old contents do not matter) and returning the violations.
pub(crate) fn apply_into(m: &Compiled, source: &Value, record: &mut Value) -> Vec<Violation> {
    let mut engine = Engine {
        tables: &m.tables,
        root: source,
        index: RootIndex::new(&m.root_keys, source),
        case_type: None,
        violations: Vec::new(),
    };
    match &m.case_type {
        None => {}
        Some(CaseTypeRule::Const(t)) => engine.case_type = Some(*t),
        Some(CaseTypeRule::Computed(field)) => {
            let mut tmp = [None];
            engine.field(field, 0, source, None, &mut tmp);
            match &tmp[0] {
                Some(Value::String(s)) => match CaseType::from_str(s.trim()) {
                    Ok(t) => engine.case_type = Some(t),
                    Err(_) => engine.violations.push(Violation::error(
                        "/case_type",
                        "mapping.case_type",
                        Some(shown(s)),
                        format!(
                            "无法确定案件类型：{:?} 不是 inspection、penalty、coercion 或 plan",
                            shown(s)
                        ),
                        format!(
                            "cannot tell the case type: {:?} is not inspection, penalty, coercion or plan",
                            shown(s)
                        ),
                    )),
                },
                Some(other) => engine.violations.push(Violation::error(
                    "/case_type",
                    "mapping.case_type",
                    Some(shown(&other.to_string())),
                    "无法确定案件类型",
                    "cannot tell the case type",
                )),
                None => {}
            }
        }
    }
    m.layout.with_slots(|slots| {
        if let Some(t) = engine.case_type {
            slots[m.layout.extra_slot(0)] = Some(Value::String(t.as_str().to_string()));
        }
        for (i, field) in m.fields.iter().enumerate() {
            engine.field(field, m.layout.slot_of(i), source, None, slots);
        }
        m.layout.build_into(slots, record)
    });
    engine.violations
}

impl<'a> Engine<'a> {
    fn violation(
        &mut self,
        severity: Severity,
        pointer: String,
        rule: &str,
        value: Option<&str>,
        zh: String,
        en: String,
    ) {
        let value = value.map(shown);
        self.violations.push(match severity {
            Severity::Error => Violation::error(pointer, rule, value, zh, en),
            Severity::Warning => Violation::warning(pointer, rule, value, zh, en),
        });
    }

    /// Every value a path selects; a list found by a path without `[*]` gives its elements.
    fn gather(&self, path: &SourcePath, scope: &'a Value, out: &mut Vec<&'a Value>) {
        if path.is_multi() {
            path.collect_indexed(scope, self.root, &self.index, out);
        } else if let Some(v) = path.get_indexed(scope, self.root, &self.index) {
            match v {
                Value::Array(a) => out.extend(a.iter()),
                _ => out.push(v),
            }
        }
    }

    fn holds(&self, c: &Condition, scope: &'a Value) -> bool {
        match c {
            Condition::CaseType(t) => self.case_type == Some(*t),
            Condition::Exists { path, exists } => {
                let present = if path.is_multi() {
                    let mut vals = Vec::new();
                    path.collect_indexed(scope, self.root, &self.index, &mut vals);
                    vals.iter().any(|v| !is_empty(v))
                } else {
                    path.get_indexed(scope, self.root, &self.index)
                        .is_some_and(|v| !is_empty(v))
                };
                present == *exists
            }
            Condition::Equals { path, values, negate } => {
                let is_listed = |v: &Value| plain_text(v).is_some_and(|t| values.iter().any(|x| **x == *trim(&t)));
                let matched = if path.is_multi() {
                    let mut vals = Vec::new();
                    path.collect_indexed(scope, self.root, &self.index, &mut vals);
                    vals.into_iter().any(is_listed)
                } else {
                    match path.get_indexed(scope, self.root, &self.index) {
                        Some(Value::Array(items)) => items.iter().any(is_listed),
                        Some(v) => is_listed(v),
                        None => false,
                    }
                };
                matched != *negate
            }
        }
    }

    /// Evaluate one field against `scope` and write its value into `out[slot]`.
    fn field(
        &mut self,
        f: &Field,
        slot: usize,
        scope: &'a Value,
        parent: Option<(&Ptr<'_>, usize)>,
        out: &mut [Option<Value>],
    ) {
        if !f.when.iter().all(|c| self.holds(c, scope)) {
            return;
        }
        let ptr = Ptr {
            parent,
            target: &f.target,
        };
        let produced = match &f.source {
            Source::Const(v) => Produced::Value(v.clone()),
            Source::Paths(paths) => self.read_paths(f, paths, scope, ptr),
            Source::Concat { parts, separator } => self.concat(f, parts, separator, scope, ptr),
            Source::Each { path, fields, layout } => self.each(path, fields, layout, scope, ptr),
            Source::Zip { members, split } => self.zip(f, members, split, scope, ptr),
        };
        match produced {
            Produced::Value(v) => out[slot] = Some(v),
            Produced::Absent => {
                if let Some(d) = &f.default {
                    out[slot] = Some(d.clone());
                } else if f.required {
                    let label = source_label(&f.source);
                    self.violation(
                        Severity::Error,
                        ptr.at(None),
                        "mapping.missing",
                        None,
                        format!("缺少必填数据：源字段 {label} 为空或不存在"),
                        format!("required value missing: source field {label} is empty or absent"),
                    );
                }
            }
            Produced::Failed => {}
        }
    }

    fn read_paths(&mut self, f: &Field, paths: &[SourcePath], scope: &'a Value, ptr: Ptr<'_>) -> Produced {
        for path in paths {
            if path.is_multi() {
                let mut vals = Vec::new();
                path.collect_indexed(scope, self.root, &self.index, &mut vals);
                vals.retain(|v| !is_empty(v));
                if !vals.is_empty() {
                    return self.convert_list(f, &vals, path.text(), ptr);
                }
            } else if let Some(v) = path.get_indexed(scope, self.root, &self.index) {
                if !is_empty(v) {
                    return match v {
                        Value::Array(a) => {
                            let vals: Vec<&Value> = a.iter().collect();
                            self.convert_list(f, &vals, path.text(), ptr)
                        }
                        _ => self.convert_single(f, v, path.text(), ptr),
                    };
                }
            }
        }
        Produced::Absent
    }

    /// The text of a scalar (or of an XML element's `#text`); a type violation for an object
    /// with children or a nested list.
    #[inline]
    fn text_of<'v>(
        &mut self,
        v: &'v Value,
        label: &str,
        ptr: Ptr<'_>,
        index: Option<usize>,
    ) -> Result<Option<Cow<'v, str>>, ()> {
        match v {
            Value::String(s) => Ok(Some(Cow::Borrowed(s))),
            _ => self.text_of_other(v, label, ptr, index),
        }
    }

    /// [`Engine::text_of`] of anything but text, out of line.
    #[inline(never)]
    fn text_of_other<'v>(
        &mut self,
        v: &'v Value,
        label: &str,
        ptr: Ptr<'_>,
        index: Option<usize>,
    ) -> Result<Option<Cow<'v, str>>, ()> {
        match v {
            Value::Null => Ok(None),
            Value::String(s) => Ok(Some(Cow::Borrowed(s))),
            Value::Number(n) => Ok(Some(Cow::Owned(n.to_string()))),
            Value::Bool(b) => Ok(Some(Cow::Borrowed(if *b { "true" } else { "false" }))),
            Value::Object(o) => match o.get("#text") {
                Some(t) => self.text_of(t, label, ptr, index),
                None if o.keys().all(|k| k.starts_with('@')) => Ok(None),
                None => {
                    let keys: Vec<&str> = o.keys().map(String::as_str).take(5).collect();
                    self.violation(
                        Severity::Error,
                        ptr.at(index),
                        "mapping.type",
                        None,
                        format!("源字段 {label} 应为单个值，实际是含 {} 的对象；请检查路径", keys.join("、")),
                        format!("source field {label} should hold a single value but holds an object with {}; check the path", keys.join(", ")),
                    );
                    Err(())
                }
            },
            Value::Array(_) => {
                self.violation(
                    Severity::Error,
                    ptr.at(index),
                    "mapping.type",
                    None,
                    format!("源字段 {label} 中有嵌套的列表，无法转换"),
                    format!("source field {label} holds a nested list that cannot be converted"),
                );
                Err(())
            }
        }
    }

    fn steps<'v>(&self, f: &Field, text: Cow<'v, str>) -> Cow<'v, str> {
        let mut t = text;
        for step in &f.convert.steps {
            t = apply_step(*step, t);
        }
        t
    }

    fn convert_single(&mut self, f: &Field, v: &Value, label: &str, ptr: Ptr<'_>) -> Produced {
        if f.convert.as_type == AsType::StringArray {
            return self.convert_list(f, &[v], label, ptr);
        }
        let text = match self.text_of(v, label, ptr, None) {
            Ok(Some(t)) => t,
            Ok(None) => return Produced::Absent,
            Err(()) => return Produced::Failed,
        };
        self.convert_text(f, text, label, ptr)
    }

    fn convert_text(&mut self, f: &Field, text: Cow<'_, str>, label: &str, ptr: Ptr<'_>) -> Produced {
        let text = self.steps(f, text);
        if trim(&text).is_empty() {
            return Produced::Absent;
        }
        if f.convert.as_type == AsType::StringArray {
            let v = Value::String(text.into_owned());
            return self.convert_list(f, &[&v], label, ptr);
        }
        if f.convert.table.is_none()
            && (f.convert.as_type == AsType::String
                || (f.convert.as_type == AsType::Date && f.convert.format.is_none() && is_canonical_date(&text)))
        {
            // What convert_one gives plain text and a date already in canonical form,
            // without its call.
            return Produced::Value(Value::String(text.into_owned()));
        }
        match self.convert_one(f, text, label, ptr, None) {
            Ok(Some(v)) => Produced::Value(v),
            Ok(None) => Produced::Absent,
            Err(()) => Produced::Failed,
        }
    }

    fn convert_list(&mut self, f: &Field, vals: &[&Value], label: &str, ptr: Ptr<'_>) -> Produced {
        // A delimited text usually splits into a few items: room for them saves a regrowth.
        let room = if f.convert.as_type == AsType::StringArray {
            vals.len().max(4)
        } else {
            vals.len()
        };
        let mut out: Vec<Value> = Vec::with_capacity(room);
        let mut failed = false;
        for v in vals {
            let index = Some(out.len());
            let text = match self.text_of(v, label, ptr, index) {
                Ok(Some(t)) => t,
                Ok(None) => continue,
                Err(()) => {
                    failed = true;
                    continue;
                }
            };
            let text = self.steps(f, text);
            if f.convert.as_type == AsType::StringArray {
                for piece in text.split(&*f.convert.split) {
                    let piece = piece.trim();
                    if piece.is_empty() {
                        continue;
                    }
                    let index = Some(out.len());
                    match self.convert_one(f, Cow::Borrowed(piece), label, ptr, index) {
                        Ok(Some(v)) => out.push(v),
                        Ok(None) => {}
                        Err(()) => failed = true,
                    }
                }
            } else if !trim(&text).is_empty() {
                match self.convert_one(f, text, label, ptr, index) {
                    Ok(Some(v)) => out.push(v),
                    Ok(None) => {}
                    Err(()) => failed = true,
                }
            }
        }
        if f.convert.distinct {
            // Keep the first of equal values, comparing with those kept so far (no copies).
            let mut kept = 0;
            for i in 0..out.len() {
                if !out[..kept].contains(&out[i]) {
                    out.swap(kept, i);
                    kept += 1;
                }
            }
            out.truncate(kept);
        }
        if !out.is_empty() {
            Produced::Value(Value::Array(out))
        } else if failed {
            Produced::Failed
        } else {
            Produced::Absent
        }
    }

    /// Table lookup and typed conversion of one non-empty text.
    fn convert_one(
        &mut self,
        f: &Field,
        text: Cow<'_, str>,
        label: &str,
        ptr: Ptr<'_>,
        index: Option<usize>,
    ) -> Result<Option<Value>, ()> {
        let conv = &f.convert;
        let tables = self.tables;
        let mapped: Cow<'_, str> = match conv.table.and_then(|i| tables.get(i)) {
            None => text,
            Some(table) => match table.get(trim(&text)) {
                Some(v) => Cow::Borrowed(v),
                None => match &table.unmapped {
                    Unmapped::Error | Unmapped::WarnKeep => {
                        let error = table.unmapped == Unmapped::Error;
                        self.violation(
                            if error { Severity::Error } else { Severity::Warning },
                            ptr.at(index),
                            "mapping.unmapped_code",
                            Some(text.trim()),
                            format!(
                                "源字段 {label} 的代码 {:?} 不在代码表 {} 中",
                                shown(text.trim()),
                                table.name
                            ),
                            format!(
                                "code {:?} of source field {label} is not in code table {}",
                                shown(text.trim()),
                                table.name
                            ),
                        );
                        if error {
                            return Err(());
                        }
                        text
                    }
                    Unmapped::Null => return Ok(None),
                    Unmapped::Default(d) => Cow::Borrowed(d.as_str()),
                },
            },
        };
        let pointer = || ptr.at(index);
        match conv.as_type {
            AsType::String | AsType::StringArray => Ok(Some(Value::String(mapped.into_owned()))),
            // The usual layout needs no parsing: it is its own canonical form.
            AsType::Date if conv.format.is_none() && is_canonical_date(&mapped) => {
                Ok(Some(Value::String(mapped.into_owned())))
            }
            AsType::Date | AsType::Datetime => match dates::parse_text(&mapped, conv.format.as_ref()) {
                Some(t) => Ok(Some(Value::String(if conv.as_type == AsType::Date {
                    t.date_string()
                } else {
                    t.datetime_string()
                }))),
                None => {
                    let hint = if conv.format.is_some() {
                        "（按 format 指定的格式）"
                    } else {
                        ""
                    };
                    let hint_en = if conv.format.is_some() {
                        " (with the given format)"
                    } else {
                        ""
                    };
                    self.violation(
                        Severity::Error,
                        pointer(),
                        "mapping.date",
                        Some(&mapped),
                        format!("源字段 {label} 的日期 {:?} 无法识别{hint}", shown(&mapped)),
                        format!(
                            "cannot read the date {:?} in source field {label}{hint_en}",
                            shown(&mapped)
                        ),
                    );
                    Err(())
                }
            },
            AsType::Decimal | AsType::Integer => {
                let result = convert::parse_amount(&mapped, conv.unit).and_then(|d| {
                    if conv.as_type == AsType::Decimal {
                        convert::decimal_to_json(d)
                    } else {
                        convert::integer_to_json(d)
                    }
                });
                match result {
                    Ok(v) => Ok(Some(v)),
                    Err(e) => {
                        let (zh, en) = match e {
                            NumberError::NotANumber => ("不是数字", "is not a number"),
                            NumberError::NotWhole => ("不是整数", "is not a whole number"),
                            NumberError::OutOfRange => ("超出范围", "is out of range"),
                        };
                        self.violation(
                            Severity::Error,
                            pointer(),
                            "mapping.number",
                            Some(&mapped),
                            format!("源字段 {label} 的值 {:?} {zh}", shown(&mapped)),
                            format!("the value {:?} of source field {label} {en}", shown(&mapped)),
                        );
                        Err(())
                    }
                }
            }
            AsType::Boolean => match convert::parse_bool(&mapped) {
                Some(b) => Ok(Some(Value::Bool(b))),
                None => {
                    self.violation(
                        Severity::Error,
                        pointer(),
                        "mapping.boolean",
                        Some(&mapped),
                        format!("源字段 {label} 的值 {:?} 不是是/否（可用：是/否、1/0、Y/N、true/false）", shown(&mapped)),
                        format!("the value {:?} of source field {label} is not yes/no (expected 是/否, 1/0, Y/N, true/false)", shown(&mapped)),
                    );
                    Err(())
                }
            },
        }
    }

    fn concat(&mut self, f: &Field, parts: &[ConcatPart], separator: &str, scope: &'a Value, ptr: Ptr<'_>) -> Produced {
        let mut joined = String::new();
        let mut any_path = false;
        let mut first = true;
        let mut vals = Vec::new();
        for part in parts {
            let piece: Cow<'_, str> = match part {
                ConcatPart::Const(c) => Cow::Borrowed(c),
                ConcatPart::Path(p) => {
                    vals.clear();
                    self.gather(p, scope, &mut vals);
                    let mut texts = Vec::new();
                    for v in &vals {
                        if let Some(t) = plain_text(v) {
                            let t = t.trim();
                            if !t.is_empty() {
                                texts.push(t.to_string());
                            }
                        }
                    }
                    if texts.is_empty() {
                        continue;
                    }
                    any_path = true;
                    Cow::Owned(texts.join(separator))
                }
            };
            if !first {
                joined.push_str(separator);
            }
            joined.push_str(&piece);
            first = false;
        }
        if !any_path {
            return Produced::Absent;
        }
        let label = source_label(&f.source);
        self.convert_text(f, Cow::Owned(joined), &label, ptr)
    }

    fn each(
        &mut self,
        path: &SourcePath,
        fields: &[Field],
        layout: &Layout,
        scope: &'a Value,
        ptr: Ptr<'_>,
    ) -> Produced {
        let mut elems = Vec::new();
        self.gather(path, scope, &mut elems);
        let mut arr = Vec::with_capacity(elems.len());
        layout.with_slots(|slots| {
            for elem in elems {
                if elem.is_null() {
                    continue;
                }
                let index = arr.len();
                for (i, nf) in fields.iter().enumerate() {
                    self.field(nf, layout.slot_of(i), elem, Some((&ptr, index)), slots);
                }
                let obj = layout.build(slots);
                if !obj.is_empty() {
                    arr.push(Value::Object(obj));
                }
            }
        });
        if arr.is_empty() {
            Produced::Absent
        } else {
            Produced::Value(Value::Array(arr))
        }
    }

    fn zip(
        &mut self,
        f: &Field,
        members: &[(Box<str>, SourcePath)],
        split: &[char],
        scope: &'a Value,
        ptr: Ptr<'_>,
    ) -> Produced {
        let mut columns: Vec<Vec<Option<String>>> = Vec::with_capacity(members.len());
        let mut vals = Vec::new();
        let mut failed = false;
        for (_, path) in members {
            vals.clear();
            let single_text = !path.is_multi()
                && path
                    .get_indexed(scope, self.root, &self.index)
                    .is_some_and(|v| !v.is_array());
            self.gather(path, scope, &mut vals);
            let mut column = Vec::new();
            for v in &vals {
                let text = match self.text_of(v, path.text(), ptr, None) {
                    Ok(Some(t)) => t,
                    Ok(None) => {
                        column.push(None);
                        continue;
                    }
                    Err(()) => {
                        failed = true;
                        continue;
                    }
                };
                let text = self.steps(f, text);
                let mut push = |piece: &str| {
                    let p = piece.trim();
                    column.push((!p.is_empty()).then(|| p.to_string()));
                };
                if single_text {
                    text.split(split).for_each(&mut push);
                } else {
                    push(&text);
                }
            }
            while column.last().is_some_and(Option::is_none) {
                column.pop();
            }
            columns.push(column);
        }
        let lengths: Vec<usize> = columns.iter().map(Vec::len).filter(|&n| n > 0).collect();
        if lengths.windows(2).any(|w| w[0] != w[1]) {
            let counts: Vec<String> = members
                .iter()
                .zip(&columns)
                .filter(|(_, c)| !c.is_empty())
                .map(|((_, p), c)| format!("{}={}", p.text(), c.len()))
                .collect();
            self.violation(
                Severity::Error,
                ptr.at(None),
                "mapping.zip_length",
                None,
                format!("无法一一对应：各源字段的项数不同（{}）", counts.join("，")),
                format!(
                    "cannot pair the values: the source fields have different numbers of items ({})",
                    counts.join(", ")
                ),
            );
            failed = true;
        }
        let n = lengths.iter().copied().max().unwrap_or(0);
        let mut arr = Vec::with_capacity(n);
        for i in 0..n {
            let mut obj = Map::new();
            for ((key, _), column) in members.iter().zip(&columns) {
                if let Some(Some(v)) = column.get(i) {
                    obj.insert(key.to_string(), Value::String(v.clone()));
                }
            }
            if !obj.is_empty() {
                arr.push(Value::Object(obj));
            }
        }
        if !arr.is_empty() {
            Produced::Value(Value::Array(arr))
        } else if failed {
            Produced::Failed
        } else {
            Produced::Absent
        }
    }
}

/// The text of a scalar or of an element's `#text`, for conditions and `concat`.
fn plain_text(v: &Value) -> Option<Cow<'_, str>> {
    match v {
        Value::String(s) => Some(Cow::Borrowed(s)),
        Value::Number(n) => Some(Cow::Owned(n.to_string())),
        Value::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
        Value::Object(o) => o.get("#text").and_then(plain_text),
        _ => None,
    }
}

/// The source paths of a field, for messages.
fn source_label(source: &Source) -> String {
    match source {
        Source::Paths(p) => p.iter().map(SourcePath::text).collect::<Vec<_>>().join(" / "),
        Source::Concat { parts, .. } => parts
            .iter()
            .filter_map(|p| match p {
                ConcatPart::Path(p) => Some(p.text()),
                ConcatPart::Const(_) => None,
            })
            .collect::<Vec<_>>()
            .join(" + "),
        Source::Each { path, .. } => path.text().to_string(),
        Source::Zip { members, .. } => members.iter().map(|(_, p)| p.text()).collect::<Vec<_>>().join(" + "),
        Source::Const(_) => "const".to_string(),
    }
}
