//! The HTTP toolkit shared by the pull adapters (REST, SOAP/XML) and the REST sink:
//!
//! - [`auth`]: how requests prove who sends them (static header or API key, basic, bearer, a
//!   token from a token endpoint with refresh, HMAC-SHA256 signatures);
//! - [`client`]: one client per source with a rate limit, a concurrency limit, timeouts,
//!   retries with backoff and jitter, a circuit breaker and the counters behind `health()`;
//! - [`charset`]: bodies in UTF-8, GBK or GB18030 decoded by their `Content-Type` or a setting;
//! - [`template`]: `{{name}}` templates for query parameters, JSON bodies and SOAP envelopes.

pub mod auth;
pub mod charset;
pub mod client;
pub mod template;

use std::fmt;

/// Text from the settings that must never be shown (an inline password or token): `Debug`
/// prints `<redacted>`.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct Redacted(pub String);

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A value at a dotted path (`data.list`, `result.0.id`: an array index by number) in a JSON
/// value; the empty path is the value itself.
pub fn json_at<'a>(value: &'a serde_json::Value, path: &str) -> Option<&'a serde_json::Value> {
    let mut current = value;
    for part in path.split('.').filter(|p| !p.is_empty()) {
        current = match current {
            serde_json::Value::Object(m) => m.get(part)?,
            serde_json::Value::Array(a) => a.get(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(current)
}

/// [`json_at`] for changing (or taking) the value found.
pub fn json_at_mut<'a>(value: &'a mut serde_json::Value, path: &str) -> Option<&'a mut serde_json::Value> {
    let mut current = value;
    for part in path.split('.').filter(|p| !p.is_empty()) {
        current = match current {
            serde_json::Value::Object(m) => m.get_mut(part)?,
            serde_json::Value::Array(a) => a.get_mut(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(current)
}

/// A scalar JSON value as text (a string as it is, a number or boolean printed); `None` for
/// null, arrays and objects.
pub fn scalar_text(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
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

    #[test]
    fn redacted_text_never_prints() {
        assert_eq!(format!("{:?}", Redacted("pw".into())), "<redacted>");
    }
}
