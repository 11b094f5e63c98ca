//! The shape of canonical records (which targets exist, which are lists of objects), read from
//! the shipped canonical JSON Schemas ([`SCHEMA_FILES`]), so that a mistyped `target` is a load
//! error instead of a rejected record.

use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::OnceLock;

use crate::schema::SCHEMA_FILES;

/// The shape of one canonical field.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Shape {
    /// A string, number, boolean or enum.
    Scalar,
    /// An object with these members.
    Object(BTreeMap<String, Shape>),
    /// A list of this.
    Array(Box<Shape>),
}

impl Shape {
    fn merge(&mut self, other: Shape) {
        match (self, other) {
            (Shape::Object(a), Shape::Object(b)) => {
                for (k, v) in b {
                    match a.get_mut(&k) {
                        Some(existing) => existing.merge(v),
                        None => {
                            a.insert(k, v);
                        }
                    }
                }
            }
            (Shape::Array(a), Shape::Array(b)) => a.merge(*b),
            (me @ Shape::Scalar, other) => *me = other,
            _ => {}
        }
    }

    /// A short description for messages.
    pub fn describe(&self) -> (&'static str, &'static str) {
        match self {
            Shape::Scalar => ("单个值", "a single value"),
            Shape::Object(_) => ("对象", "an object"),
            Shape::Array(item) if matches!(**item, Shape::Object(_)) => ("对象列表", "a list of objects"),
            Shape::Array(_) => ("值列表", "a list of values"),
        }
    }

    /// The member names of an object shape.
    pub fn member_names(&self) -> Vec<&str> {
        match self {
            Shape::Object(m) => m.keys().map(String::as_str).collect(),
            _ => Vec::new(),
        }
    }

    /// The shape at `keys` below this one, or the index of the first key that does not exist.
    pub fn lookup(&self, keys: &[Box<str>]) -> Result<&Shape, usize> {
        let mut node = self;
        for (i, key) in keys.iter().enumerate() {
            match node {
                Shape::Object(m) => match m.get(&**key) {
                    Some(next) => node = next,
                    None => return Err(i),
                },
                _ => return Err(i),
            }
        }
        Ok(node)
    }
}

fn resolve_ref<'a>(reference: &str, current: &'a Value, common: &'a Value) -> Option<&'a Value> {
    let (doc, pointer) = match reference.split_once('#') {
        Some(("", p)) => (current, p),
        Some((_, p)) => (common, p),
        None => return None,
    };
    doc.pointer(pointer)
}

fn shape_of(schema: &Value, doc: &Value, common: &Value, depth: usize) -> Shape {
    if depth > 16 {
        return Shape::Scalar;
    }
    let mut shape = Shape::Scalar;
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let target_doc = if r.starts_with('#') { doc } else { common };
        if let Some(target) = resolve_ref(r, doc, common) {
            shape.merge(shape_of(target, target_doc, common, depth + 1));
        }
    }
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        let mut members = BTreeMap::new();
        for (k, v) in props {
            members.insert(k.clone(), shape_of(v, doc, common, depth + 1));
        }
        shape.merge(Shape::Object(members));
    } else if schema.get("type").and_then(Value::as_str) == Some("object") {
        shape.merge(Shape::Object(BTreeMap::new()));
    }
    if let Some(items) = schema.get("items") {
        shape.merge(Shape::Array(Box::new(shape_of(items, doc, common, depth + 1))));
    } else if schema.get("type").and_then(Value::as_str) == Some("array") {
        shape.merge(Shape::Array(Box::new(Shape::Scalar)));
    }
    shape
}

/// The shape of a canonical record of any case type (the union of the three schemas).
pub(crate) fn record_shape() -> &'static Shape {
    static SHAPE: OnceLock<Shape> = OnceLock::new();
    SHAPE.get_or_init(|| {
        let parse = |text: &str| serde_json::from_str::<Value>(text).unwrap_or(Value::Null);
        let common = SCHEMA_FILES
            .iter()
            .find(|(name, _)| *name == "common.schema.json")
            .map_or(Value::Null, |(_, text)| parse(text));
        let mut shape = Shape::Object(BTreeMap::new());
        for (name, text) in SCHEMA_FILES {
            if *name != "common.schema.json" {
                let doc = parse(text);
                shape.merge(shape_of(&doc, &doc, &common, 0));
            }
        }
        shape
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(path: &str) -> Vec<Box<str>> {
        path.split('.').map(Box::from).collect()
    }

    #[test]
    fn schema_fields_are_known() {
        let root = record_shape();
        assert_eq!(root.lookup(&keys("penalty.fine_amount")), Ok(&Shape::Scalar));
        assert_eq!(root.lookup(&keys("agency.credit_code")), Ok(&Shape::Scalar));
        assert!(matches!(root.lookup(&keys("officers")), Ok(Shape::Array(item)) if matches!(**item, Shape::Object(_))));
        assert!(matches!(root.lookup(&keys("penalty.kinds")), Ok(Shape::Array(item)) if **item == Shape::Scalar));
        assert!(matches!(
            root.lookup(&keys("inspection.joint_participants")),
            Ok(Shape::Array(_))
        ));
        assert_eq!(root.lookup(&keys("penalty.fine_amout")), Err(1));
        assert_eq!(root.lookup(&keys("operation")), Ok(&Shape::Scalar));
        assert_eq!(root.lookup(&keys("coercion.measure_type")), Ok(&Shape::Scalar));
    }
}
