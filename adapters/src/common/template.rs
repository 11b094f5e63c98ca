//! The one `{{name}}` template engine, for every request part the adapters write from
//! settings: the pull sources' query parameters (plain text), JSON bodies and SOAP envelopes
//! (XML), and the REST sink's URLs (percent-encoded) and bodies (JSON or XML).
//!
//! A template is parsed once, when the settings are checked: unknown placeholders and an
//! unclosed `{{` are settings errors. Placeholders are names ([`Template`], filled from
//! [`Values`]) or any type the names are read into ([`Template::parse_with`], e.g. the REST
//! sink's delivery fields, filled by [`Template::render_with`]). Values are written as the
//! template's [`Escaping`] asks: in JSON numbers stay numbers, text is quoted and absent values
//! are `null`; in XML text is escaped; in URLs it is percent-encoded; absent values are empty
//! outside JSON.

use super::text::excerpt;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// How a value is written into the template's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escaping {
    /// As it is (query parameters; URL encoding is done when the URL is built).
    Plain,
    /// As a JSON value.
    Json,
    /// As XML character data.
    Xml,
    /// As URL path or query text, percent-encoded (everything but RFC 3986 unreserved
    /// characters).
    Url,
}

/// A value for a named placeholder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateValue {
    /// Not known (e.g. `since` on a first pull): `null` in JSON, empty elsewhere.
    Null,
    /// A whole number (page, page size, offset).
    Number(i64),
    /// Text.
    Text(String),
}

/// Placeholder values by name.
pub type Values = BTreeMap<String, TemplateValue>;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part<P> {
    Text(String),
    Placeholder(P),
}

/// A parsed template whose placeholders are `P`: their names by default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template<P = String> {
    parts: Vec<Part<P>>,
    escaping: Escaping,
}

impl<P> Template<P> {
    /// Parse `text`, reading each placeholder's name (trimmed) with `placeholder`, whose error
    /// is the template's. The errors are in Chinese and English.
    pub fn parse_with(
        text: &str,
        escaping: Escaping,
        mut placeholder: impl FnMut(&str) -> Result<P, String>,
    ) -> Result<Template<P>, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                parts.push(Part::Text(rest[..start].to_string()));
            }
            let after = &rest[start + 2..];
            let Some(end) = after.find("}}") else {
                return Err(format!(
                    "模板中 {{{{ 未闭合 / unclosed {{{{ in the template near {:?}",
                    excerpt(&rest[start..], 30)
                ));
            };
            parts.push(Part::Placeholder(placeholder(after[..end].trim())?));
            rest = &after[end + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Template { parts, escaping })
    }

    /// How values are written into this template.
    pub fn escaping(&self) -> Escaping {
        self.escaping
    }

    /// The placeholders, in order.
    pub fn placeholders(&self) -> impl Iterator<Item = &P> {
        self.parts.iter().filter_map(|p| match p {
            Part::Placeholder(p) => Some(p),
            Part::Text(_) => None,
        })
    }

    /// True when the template has no placeholder.
    pub fn is_constant(&self) -> bool {
        self.placeholders().next().is_none()
    }

    /// The text with every placeholder written by `write` (which escapes as it must).
    pub fn render_with(&self, mut write: impl FnMut(&mut String, &P)) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Placeholder(p) => write(&mut out, p),
            }
        }
        out
    }
}

impl Template {
    /// Parse `text`; every placeholder must be one of `known`.
    pub fn parse(text: &str, escaping: Escaping, known: &[&str]) -> Result<Template, String> {
        Template::parse_with(text, escaping, |name| {
            if known.contains(&name) {
                Ok(name.to_string())
            } else {
                Err(unknown_placeholder(name, &known.join(", ")))
            }
        })
    }

    /// True when the template has the placeholder `name`.
    pub fn uses(&self, name: &str) -> bool {
        self.placeholders().any(|p| p == name)
    }

    /// The text with every placeholder replaced (absent names count as [`TemplateValue::Null`]).
    pub fn render(&self, values: &Values) -> String {
        self.render_with(|out, name| write_value(out, self.escaping, values.get(name).unwrap_or(&TemplateValue::Null)))
    }
}

/// The error of a placeholder that is none of `known` (the names, listed).
pub fn unknown_placeholder(name: &str, known: &str) -> String {
    format!("未知占位符 / unknown placeholder {{{{{name}}}}}; known: {known}")
}

/// Write `value` as `escaping` asks.
pub fn write_value(out: &mut String, escaping: Escaping, value: &TemplateValue) {
    match (escaping, value) {
        (Escaping::Json, TemplateValue::Null) => out.push_str("null"),
        (_, TemplateValue::Null) => {}
        (_, TemplateValue::Number(n)) => {
            let _ = write!(out, "{n}");
        }
        (_, TemplateValue::Text(t)) => write_text(out, escaping, t),
    }
}

/// Write `text` as `escaping` asks: as it is, as a JSON string, as XML character data, or
/// percent-encoded.
pub fn write_text(out: &mut String, escaping: Escaping, text: &str) {
    match escaping {
        Escaping::Plain => out.push_str(text),
        Escaping::Json => out.push_str(&serde_json::Value::from(text).to_string()),
        Escaping::Xml => out.push_str(&quick_xml::escape::escape(text)),
        Escaping::Url => percent_encode(out, text),
    }
}

/// Percent-encode everything but RFC 3986 unreserved characters.
fn percent_encode(out: &mut String, text: &str) {
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> Values {
        let mut v = Values::new();
        v.insert("page".into(), TemplateValue::Number(3));
        v.insert("name".into(), TemplateValue::Text("a<\"b\"&".into()));
        v
    }

    #[test]
    fn values_are_written_as_the_escaping_asks() {
        let known = ["page", "name", "since"];
        let json = Template::parse(
            "{\"p\": {{page}}, \"n\": {{ name }}, \"s\": {{since}}}",
            Escaping::Json,
            &known,
        )
        .unwrap();
        assert_eq!(json.render(&values()), r#"{"p": 3, "n": "a<\"b\"&", "s": null}"#);
        let xml = Template::parse("<p>{{page}}</p><n>{{name}}</n><s>{{since}}</s>", Escaping::Xml, &known).unwrap();
        assert_eq!(xml.render(&values()), "<p>3</p><n>a&lt;&quot;b&quot;&amp;</n><s></s>");
        let plain = Template::parse("x{{name}}", Escaping::Plain, &known).unwrap();
        assert_eq!(plain.render(&values()), "xa<\"b\"&");
        let url = Template::parse("/c/{{name}}/{{page}}", Escaping::Url, &known).unwrap();
        assert_eq!(url.render(&values()), "/c/a%3C%22b%22%26/3");
        assert!(json.uses("since") && !plain.uses("page"));
        assert!(Template::parse("plain", Escaping::Json, &known).unwrap().is_constant());
    }

    #[test]
    fn unknown_or_unclosed_placeholders_are_refused() {
        let e = Template::parse("{{pgae}}", Escaping::Plain, &["page"]).unwrap_err();
        assert!(
            e.contains("未知占位符 / unknown placeholder {{pgae}}") && e.contains("known: page"),
            "{e}"
        );
        let e = Template::parse("a {{page", Escaping::Plain, &["page"]).unwrap_err();
        assert!(e.contains("unclosed"), "{e}");
    }

    #[test]
    fn placeholders_may_be_read_into_any_type() {
        let t = Template::parse_with("{{a}}-{{b}}", Escaping::Plain, |name| match name {
            "a" => Ok(1),
            "b" => Ok(2),
            other => Err(other.to_string()),
        })
        .unwrap();
        assert_eq!(t.placeholders().copied().collect::<Vec<i32>>(), [1, 2]);
        assert_eq!(t.render_with(|out, n| out.push_str(&(n * 10).to_string())), "10-20");
        assert!(Template::<i32>::parse_with("{{c}}", Escaping::Plain, |n| Err(n.to_string())).is_err());
    }
}
