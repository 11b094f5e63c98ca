//! Source paths (`jg.mc`, `zfry[*].xm`, `items[0]`, `$.ajbh`) compiled once at load time, and
//! canonical target paths (`penalty.fine_amount`).

use serde_json::Value;
use std::fmt;

/// One step of a source path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// Member of an object.
    Key(Box<str>),
    /// Element `n` of an array; a non-array value counts as a one-element array.
    Index(usize),
    /// Every element of an array; a non-array value counts as a one-element array.
    Each,
}

/// A compiled source path.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct SourcePath {
    /// Starts at the whole source record (`$.`) even inside `each`.
    from_root: bool,
    segments: Box<[Segment]>,
    /// Holds a `[*]`: may select several values.
    multi: bool,
    text: Box<str>,
    /// Position of the first key in the mapping's [`RootIndex`] keys, set after compiling.
    root_key: Option<usize>,
}

impl fmt::Debug for SourcePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SourcePath({:?})", self.text)
    }
}

/// Why a path does not parse: character offset in the path and messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PathError {
    pub offset: usize,
    pub message_zh: String,
    pub message_en: String,
}

fn path_error(offset: usize, zh: impl Into<String>, en: impl Into<String>) -> PathError {
    PathError {
        offset,
        message_zh: zh.into(),
        message_en: en.into(),
    }
}

impl SourcePath {
    /// Parse a dotted source path.
    pub fn parse(text: &str) -> Result<SourcePath, PathError> {
        let chars: Vec<char> = text.chars().collect();
        if chars.is_empty() {
            return Err(path_error(0, "路径为空", "the path is empty"));
        }
        let mut i = 0;
        let mut from_root = false;
        if chars[0] == '$' {
            from_root = true;
            i = 1;
            if i < chars.len() {
                if chars[i] != '.' {
                    return Err(path_error(i, "$ 后面应为 .", "`$` must be followed by `.`"));
                }
                i += 1;
                if i == chars.len() {
                    return Err(path_error(i, "路径在 . 之后结束", "the path ends after `.`"));
                }
            }
        }
        let mut segments = Vec::new();
        let mut expect_key = i < chars.len();
        while i < chars.len() {
            let c = chars[i];
            if c == '[' {
                let close = chars[i..].iter().position(|&c| c == ']').map(|p| p + i);
                let Some(close) = close else {
                    return Err(path_error(i, "[ 没有对应的 ]", "`[` has no closing `]`"));
                };
                let inner: String = chars[i + 1..close].iter().collect();
                let inner_trim = inner.trim();
                if inner_trim == "*" {
                    segments.push(Segment::Each);
                } else if let Some(quoted) = strip_quotes(inner_trim) {
                    if quoted.is_empty() {
                        return Err(path_error(i + 1, "引号中的键为空", "the quoted key is empty"));
                    }
                    segments.push(Segment::Key(quoted.into()));
                } else if !inner_trim.is_empty() && inner_trim.bytes().all(|b| b.is_ascii_digit()) {
                    let n = inner_trim
                        .parse::<usize>()
                        .map_err(|_| path_error(i + 1, "下标太大", "the index is too large"))?;
                    segments.push(Segment::Index(n));
                } else {
                    return Err(path_error(
                        i + 1,
                        format!("[{inner}] 无效：方括号内应为数字下标、* 或带引号的键"),
                        format!("`[{inner}]` is invalid: expected a number, `*` or a quoted key"),
                    ));
                }
                i = close + 1;
                expect_key = false;
                continue;
            }
            if c == '.' {
                if expect_key {
                    return Err(path_error(i, "路径中有空的段（多余的 .）", "empty segment (stray `.`)"));
                }
                i += 1;
                expect_key = true;
                if i == chars.len() {
                    return Err(path_error(i, "路径在 . 之后结束", "the path ends after `.`"));
                }
                continue;
            }
            if !expect_key {
                return Err(path_error(
                    i,
                    format!("在 {c:?} 之前缺少 .",),
                    format!("expected `.` before {c:?}"),
                ));
            }
            let start = i;
            while i < chars.len() && !matches!(chars[i], '.' | '[' | ']') {
                if chars[i].is_whitespace() || chars[i] == '"' || chars[i] == '\'' {
                    return Err(path_error(
                        i,
                        "键中不能有空格或引号；特殊的键请写成 [\"键\"]",
                        "keys cannot contain spaces or quotes; write unusual keys as [\"key\"]",
                    ));
                }
                i += 1;
            }
            if i < chars.len() && chars[i] == ']' {
                return Err(path_error(i, "多余的 ]", "stray `]`"));
            }
            if start == i {
                return Err(path_error(i, "路径中有空的段", "empty path segment"));
            }
            let key: String = chars[start..i].iter().collect();
            segments.push(Segment::Key(key.into()));
            expect_key = false;
        }
        let multi = segments.contains(&Segment::Each);
        Ok(SourcePath {
            from_root,
            segments: segments.into(),
            multi,
            text: text.into(),
            root_key: None,
        })
    }

    /// The path as written in the mapping file.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// True when the path holds `[*]` and may select several values.
    pub fn is_multi(&self) -> bool {
        self.multi
    }

    fn start<'a>(&self, scope: &'a Value, root: &'a Value) -> &'a Value {
        if self.from_root {
            root
        } else {
            scope
        }
    }

    /// The single value selected by a path without `[*]`; for a path with `[*]`, the first one.
    pub fn get<'a>(&self, scope: &'a Value, root: &'a Value) -> Option<&'a Value> {
        if self.multi {
            let mut out = Vec::new();
            self.collect(scope, root, &mut out);
            return out.into_iter().next();
        }
        let mut v = self.start(scope, root);
        for seg in self.segments.iter() {
            v = step_one(v, seg)?;
        }
        Some(v)
    }

    /// Every value the path selects, in document order, appended to `out`.
    pub fn collect<'a>(&self, scope: &'a Value, root: &'a Value, out: &mut Vec<&'a Value>) {
        collect_from(self.start(scope, root), &self.segments, out);
    }

    /// The first key, when the path starts with one.
    pub fn first_key(&self) -> Option<&str> {
        match self.segments.first() {
            Some(Segment::Key(k)) => Some(k),
            _ => None,
        }
    }

    /// Record where the first key sits in the [`RootIndex`] keys.
    pub fn set_root_key(&mut self, position: usize) {
        self.root_key = Some(position);
    }

    /// When the path starts at the root object with a key the index holds: the rest of the
    /// path (after that key) and the value of the key, looked up once per record.
    fn indexed<'a, 's>(
        &'s self,
        scope: &'a Value,
        root: &'a Value,
        index: &RootIndex<'a>,
    ) -> Option<(Option<&'a Value>, &'s [Segment])> {
        let slot = self.root_key?;
        if !std::ptr::eq(self.start(scope, root), root) {
            return None;
        }
        let value = index.values.get(slot)?;
        Some((*value, self.segments.get(1..).unwrap_or(&[])))
    }

    /// [`SourcePath::get`], reading the first key from `index` when the path starts at the root.
    #[inline]
    pub fn get_indexed<'a>(&self, scope: &'a Value, root: &'a Value, index: &RootIndex<'a>) -> Option<&'a Value> {
        // The usual path: one key, found in the index (inlined into the callers).
        if let (false, Some(slot), [_]) = (self.multi, self.root_key, &*self.segments) {
            if std::ptr::eq(self.start(scope, root), root) {
                if let Some(value) = index.values.get(slot) {
                    return *value;
                }
            }
        }
        self.get_indexed_other(scope, root, index)
    }

    /// [`SourcePath::get_indexed`] of the other paths, out of line.
    #[inline(never)]
    fn get_indexed_other<'a>(&self, scope: &'a Value, root: &'a Value, index: &RootIndex<'a>) -> Option<&'a Value> {
        if self.multi {
            let mut out = Vec::new();
            self.collect_indexed(scope, root, index, &mut out);
            return out.into_iter().next();
        }
        match self.indexed(scope, root, index) {
            Some((first, rest)) => rest.iter().try_fold(first?, step_one),
            None => self.get(scope, root),
        }
    }

    /// [`SourcePath::collect`], reading the first key from `index` when the path starts at the root.
    pub fn collect_indexed<'a>(
        &self,
        scope: &'a Value,
        root: &'a Value,
        index: &RootIndex<'a>,
        out: &mut Vec<&'a Value>,
    ) {
        match self.indexed(scope, root, index) {
            Some((Some(first), rest)) => collect_from(first, rest, out),
            Some((None, _)) => {}
            None => self.collect(scope, root, out),
        }
    }
}

/// The values of the root object's keys that a mapping's paths start with, looked up once per
/// record (one merged walk over the sorted keys) instead of once per path.
#[derive(Debug, Default)]
pub(crate) struct RootIndex<'a> {
    values: Vec<Option<&'a Value>>,
}

/// True when `serde_json::Map` iterates in key order (it does unless serde_json's
/// `preserve_order` feature is on somewhere in the build).
fn map_iterates_sorted() -> bool {
    static SORTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SORTED.get_or_init(|| {
        let mut m = serde_json::Map::new();
        m.insert("b".into(), Value::Null);
        m.insert("a".into(), Value::Null);
        m.keys().map(String::as_str).eq(["a", "b"])
    })
}

impl<'a> RootIndex<'a> {
    /// The values in `root` of `keys` (sorted, distinct).
    pub fn new(keys: &[Box<str>], root: &'a Value) -> RootIndex<'a> {
        let mut values = vec![None; keys.len()];
        let Value::Object(map) = root else {
            return RootIndex { values };
        };
        if map.len() > 4 * keys.len() || !map_iterates_sorted() {
            // Few keys wanted from a large object: look each one up.
            for (slot, key) in values.iter_mut().zip(keys) {
                *slot = map.get(&**key);
            }
            return RootIndex { values };
        }
        let mut entries = map.iter().peekable();
        for (slot, key) in values.iter_mut().zip(keys) {
            while let Some((k, v)) = entries.peek() {
                match k.as_str().cmp(key) {
                    std::cmp::Ordering::Less => {
                        entries.next();
                    }
                    std::cmp::Ordering::Equal => {
                        *slot = Some(*v);
                        entries.next();
                        break;
                    }
                    std::cmp::Ordering::Greater => break,
                }
            }
        }
        RootIndex { values }
    }
}

fn strip_quotes(s: &str) -> Option<&str> {
    let b = s.as_bytes();
    if b.len() >= 2 && ((b[0] == b'"' && b[b.len() - 1] == b'"') || (b[0] == b'\'' && b[b.len() - 1] == b'\'')) {
        Some(&s[1..s.len() - 1])
    } else {
        None
    }
}

fn step_one<'a>(v: &'a Value, seg: &Segment) -> Option<&'a Value> {
    match seg {
        Segment::Key(k) => v.as_object()?.get(&**k),
        Segment::Index(n) => match v {
            Value::Array(a) => a.get(*n),
            Value::Null => None,
            other if *n == 0 => Some(other),
            _ => None,
        },
        Segment::Each => Some(v),
    }
}

fn collect_from<'a>(v: &'a Value, segments: &[Segment], out: &mut Vec<&'a Value>) {
    let Some((first, rest)) = segments.split_first() else {
        out.push(v);
        return;
    };
    match first {
        Segment::Each => match v {
            Value::Array(a) => {
                for item in a {
                    collect_from(item, rest, out);
                }
            }
            Value::Null => {}
            other => collect_from(other, rest, out),
        },
        seg => {
            if let Some(next) = step_one(v, seg) {
                collect_from(next, rest, out);
            }
        }
    }
}

/// A canonical target path: snake_case keys separated by dots, relative to the record (or to
/// the element object inside `each`/`zip`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TargetPath {
    keys: Box<[Box<str>]>,
    /// JSON pointer of the target relative to its parent object, e.g. `/penalty/fine_amount`.
    pointer: Box<str>,
}

impl TargetPath {
    /// Parse `a.b.c` where each key is `[a-z][a-z0-9_]*`.
    pub fn parse(text: &str) -> Result<TargetPath, PathError> {
        if text.is_empty() {
            return Err(path_error(0, "目标路径为空", "the target path is empty"));
        }
        let mut keys = Vec::new();
        let mut offset = 0;
        for key in text.split('.') {
            let ok = key.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
                && key
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !ok {
                return Err(path_error(
                    offset,
                    format!("目标路径的段 {key:?} 无效：应为小写英文字母、数字和下划线，以字母开头，用 . 分隔"),
                    format!("target segment {key:?} is invalid: use lower-case letters, digits and `_`, starting with a letter, separated by `.`"),
                ));
            }
            offset += key.chars().count() + 1;
            keys.push(Box::<str>::from(key));
        }
        let pointer: String = keys.iter().map(|k| format!("/{k}")).collect();
        Ok(TargetPath {
            keys: keys.into(),
            pointer: pointer.into(),
        })
    }

    /// The keys, outermost first.
    pub fn keys(&self) -> &[Box<str>] {
        &self.keys
    }

    /// JSON pointer relative to the parent object.
    pub fn pointer(&self) -> &str {
        &self.pointer
    }

    /// The path written with dots.
    pub fn dotted(&self) -> String {
        self.keys.join(".")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn get(path: &str, v: &Value) -> Option<Value> {
        SourcePath::parse(path).unwrap().get(v, v).cloned()
    }

    fn all(path: &str, v: &Value) -> Vec<Value> {
        let mut out = Vec::new();
        SourcePath::parse(path).unwrap().collect(v, v, &mut out);
        out.into_iter().cloned().collect()
    }

    #[test]
    fn nested_keys_indices_and_wildcards() {
        let v = json!({"a": {"b": [{"c": 1}, {"c": 2}]}, "单位": {"名称": "x"}, "a.b": 3});
        assert_eq!(get("a.b[1].c", &v), Some(json!(2)));
        assert_eq!(all("a.b[*].c", &v), vec![json!(1), json!(2)]);
        assert_eq!(get("单位.名称", &v), Some(json!("x")));
        assert_eq!(get("[\"a.b\"]", &v), Some(json!(3)));
        assert_eq!(get("a.x", &v), None);
    }

    #[test]
    fn wildcard_and_index_on_a_single_value_treat_it_as_one_element() {
        let v = json!({"zfry": {"xm": "张三"}});
        assert_eq!(all("zfry[*].xm", &v), vec![json!("张三")]);
        assert_eq!(get("zfry[0].xm", &v), Some(json!("张三")));
        assert_eq!(get("zfry[1].xm", &v), None);
    }

    #[test]
    fn malformed_paths_are_rejected_with_offsets() {
        for (p, offset) in [
            ("", 0),
            ("a..b", 2),
            ("a.", 2),
            (".a", 0),
            ("a[", 1),
            ("a[x]", 2),
            ("a]", 1),
            ("a b", 1),
            ("a[0]b", 4),
        ] {
            let err = SourcePath::parse(p).expect_err(p);
            assert_eq!(err.offset, offset, "{p}: {err:?}");
        }
    }

    #[test]
    fn target_paths_are_snake_case() {
        assert!(TargetPath::parse("penalty.fine_amount").is_ok());
        assert!(TargetPath::parse("Penalty.x").is_err());
        assert!(TargetPath::parse("a..b").is_err());
        assert_eq!(TargetPath::parse("agency.name").unwrap().pointer(), "/agency/name");
    }
}
