//! `{{name}}` templates for request parts: query parameters (plain text), JSON bodies (values
//! inserted as JSON: numbers as numbers, text quoted, absent values as `null`) and XML
//! envelopes (text escaped, absent values empty). Unknown placeholders are settings errors.

use std::collections::BTreeMap;

/// How a value is written into the template's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escaping {
    /// As it is (query parameters; URL encoding is done when the URL is built).
    Plain,
    /// As a JSON value.
    Json,
    /// As XML character data.
    Xml,
}

/// A value for a placeholder.
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

#[derive(Debug, Clone)]
enum Part {
    Text(String),
    Var(String),
}

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    parts: Vec<Part>,
    escaping: Escaping,
}

impl Template {
    /// Parse `text`; every placeholder must be one of `known`. The error names the bad
    /// placeholder, in Chinese and English.
    pub fn parse(text: &str, escaping: Escaping, known: &[&str]) -> Result<Template, String> {
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
                    crate::common::text::excerpt(&rest[start..], 30)
                ));
            };
            let name = after[..end].trim();
            if !known.contains(&name) {
                return Err(format!(
                    "未知占位符 {{{{{name}}}}} / unknown placeholder {{{{{name}}}}}; known: {}",
                    known.join(", ")
                ));
            }
            parts.push(Part::Var(name.to_string()));
            rest = &after[end + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Template { parts, escaping })
    }

    /// True when the template has the placeholder `name`.
    pub fn uses(&self, name: &str) -> bool {
        self.parts.iter().any(|p| matches!(p, Part::Var(v) if v == name))
    }

    /// The text with every placeholder replaced (absent names count as [`TemplateValue::Null`]).
    pub fn render(&self, values: &Values) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Var(name) => {
                    let value = values.get(name).unwrap_or(&TemplateValue::Null);
                    match (self.escaping, value) {
                        (Escaping::Json, TemplateValue::Null) => out.push_str("null"),
                        (_, TemplateValue::Null) => {}
                        (_, TemplateValue::Number(n)) => out.push_str(&n.to_string()),
                        (Escaping::Json, TemplateValue::Text(t)) => {
                            out.push_str(&serde_json::Value::String(t.clone()).to_string())
                        }
                        (Escaping::Xml, TemplateValue::Text(t)) => out.push_str(&quick_xml::escape::escape(t.as_str())),
                        (Escaping::Plain, TemplateValue::Text(t)) => out.push_str(t),
                    }
                }
            }
        }
        out
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
        assert!(json.uses("since") && !plain.uses("page"));
    }

    #[test]
    fn unknown_or_unclosed_placeholders_are_refused() {
        let e = Template::parse("{{pgae}}", Escaping::Plain, &["page"]).unwrap_err();
        assert!(
            e.contains("unknown placeholder {{pgae}}") && e.contains("known: page"),
            "{e}"
        );
        let e = Template::parse("a {{page", Escaping::Plain, &["page"]).unwrap_err();
        assert!(e.contains("unclosed"), "{e}");
    }
}
