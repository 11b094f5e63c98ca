//! Dotted paths into JSON values (`data.list`, `result.0.id`: an array index by number), as the
//! settings name the parts of an answer: the records, a business status, a token, a cursor.

use serde_json::Value;

/// The value at a dotted path in a JSON value; the empty path is the value itself.
pub fn json_at<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    let mut current = value;
    for part in path.split('.').filter(|p| !p.is_empty()) {
        current = match current {
            Value::Object(m) => m.get(part)?,
            Value::Array(a) => a.get(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(current)
}

/// [`json_at`] for changing (or taking) the value found.
pub fn json_at_mut<'a>(value: &'a mut Value, path: &str) -> Option<&'a mut Value> {
    let mut current = value;
    for part in path.split('.').filter(|p| !p.is_empty()) {
        current = match current {
            Value::Object(m) => m.get_mut(part)?,
            Value::Array(a) => a.get_mut(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(current)
}

/// A scalar JSON value as text (a string as it is, a number or boolean printed); `None` for
/// null, arrays and objects.
pub fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_paths_follow_members_and_indexes() {
        let v = json!({"data": {"list": [{"id": 1}, {"id": 2}], "total": "2"}});
        assert_eq!(json_at(&v, "data.list.1.id"), Some(&json!(2)));
        assert_eq!(json_at(&v, ""), Some(&v));
        assert_eq!(json_at(&v, "data.nope"), None);
        assert_eq!(scalar_text(&json!("x")), Some("x".into()));
        assert_eq!(scalar_text(&json!(15)), Some("15".into()));
        assert_eq!(scalar_text(&json!(null)), None);
    }
}
