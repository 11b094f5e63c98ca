//! Message bodies: the JSON envelope, its XML form, and the REST sink's body and URL templates.
//!
//! The envelope carries the delivery's identity next to the canonical record:
//!
//! ```json
//! {"idempotency_key":"CF20243601020000001Y:2","unified_code":"CF20243601020000001Y","version":2,
//!  "case_type":"penalty","year":2024,"region":"360102","withdrawn":false,
//!  "committed_at":"2024-03-01T08:00:00Z","record":{...}}
//! ```
//!
//! In XML the same fields are child elements of `<case>`, the record's fields are child
//! elements of `<record>`, and an array becomes one `<item>` per element:
//! `<officers><item><name>张三</name>...</item></officers>`.

use super::delivery::Delivery;
use crate::common::template::{unknown_placeholder, write_text, Escaping, Template};
use serde::Serialize;
use serde_json::Value;
use std::fmt::Write as _;

/// Body encodings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// JSON (`application/json`).
    Json,
    /// XML (`application/xml`).
    Xml,
}

impl Format {
    /// The MIME type of bodies in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json; charset=utf-8",
            Format::Xml => "application/xml; charset=utf-8",
        }
    }
}

#[derive(Serialize)]
struct Envelope<'a> {
    idempotency_key: &'a str,
    unified_code: &'a str,
    version: i32,
    case_type: &'a str,
    year: i32,
    region: &'a str,
    withdrawn: bool,
    committed_at: String,
    record: &'a Value,
}

fn committed_at(d: &Delivery) -> String {
    d.committed_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// The JSON envelope of a delivery.
pub fn envelope_json(d: &Delivery) -> Vec<u8> {
    let envelope = Envelope {
        idempotency_key: &d.idempotency_key,
        unified_code: &d.unified_code,
        version: d.version,
        case_type: &d.case_type,
        year: d.year,
        region: &d.region,
        withdrawn: d.withdrawn,
        committed_at: committed_at(d),
        record: &d.record,
    };
    // Serialising a struct of strings, numbers and a `Value` cannot fail.
    serde_json::to_vec(&envelope).unwrap_or_default()
}

/// The XML envelope of a delivery: `<case>` with the identity fields and `<record>`.
pub fn envelope_xml(d: &Delivery) -> Vec<u8> {
    let mut s = String::with_capacity(1024);
    s.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?><case>");
    xml_element(&mut s, "idempotency_key", &Value::from(d.idempotency_key.as_str()));
    xml_element(&mut s, "unified_code", &Value::from(d.unified_code.as_str()));
    xml_element(&mut s, "version", &Value::from(d.version));
    xml_element(&mut s, "case_type", &Value::from(d.case_type.as_str()));
    xml_element(&mut s, "year", &Value::from(d.year));
    xml_element(&mut s, "region", &Value::from(d.region.as_str()));
    xml_element(&mut s, "withdrawn", &Value::from(d.withdrawn));
    xml_element(&mut s, "committed_at", &Value::from(committed_at(d)));
    xml_element(&mut s, "record", &d.record);
    s.push_str("</case>");
    s.into_bytes()
}

/// The envelope in `format`.
pub fn envelope(d: &Delivery, format: Format) -> Vec<u8> {
    match format {
        Format::Json => envelope_json(d),
        Format::Xml => envelope_xml(d),
    }
}

fn is_xml_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !name.to_ascii_lowercase().starts_with("xml")
}

/// Append `value` as the element `name` (null: nothing). A key that is not an XML name becomes
/// `<field name="...">`.
fn xml_element(out: &mut String, name: &str, value: &Value) {
    if value.is_null() {
        return;
    }
    let (open, close) = if is_xml_name(name) {
        (format!("<{name}>"), format!("</{name}>"))
    } else {
        (
            format!("<field name=\"{}\">", quick_xml::escape::escape(name)),
            "</field>".to_string(),
        )
    };
    out.push_str(&open);
    xml_content(out, value);
    out.push_str(&close);
}

/// Append the content of `value`: an object's fields as elements, an array's elements as
/// `<item>`s, a scalar as escaped text.
fn xml_content(out: &mut String, value: &Value) {
    match value {
        Value::Null => {}
        Value::Bool(b) => {
            let _ = write!(out, "{b}");
        }
        Value::Number(n) => {
            let _ = write!(out, "{n}");
        }
        Value::String(s) => out.push_str(&quick_xml::escape::escape(s.as_str())),
        Value::Array(items) => {
            for item in items {
                out.push_str("<item>");
                xml_content(out, item);
                out.push_str("</item>");
            }
        }
        Value::Object(fields) => {
            for (k, v) in fields {
                xml_element(out, k, v);
            }
        }
    }
}

/// A value a template can insert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// The whole JSON envelope / XML `<case>` content.
    Envelope,
    /// The canonical record.
    Record,
    /// The unified case code.
    UnifiedCode,
    /// The version number.
    Version,
    /// `<code>:<version>`.
    IdempotencyKey,
    /// `inspection`, `penalty`, `coercion`, `plan`.
    CaseType,
    /// The agency's region code.
    Region,
    /// The numbering year.
    Year,
    /// `true` when the version withdraws the case.
    Withdrawn,
    /// When the gateway committed the version (RFC 3339).
    CommittedAt,
}

/// The placeholder names, for messages.
pub const FIELD_NAMES: &str =
    "envelope, record, unified_code, version, idempotency_key, case_type, region, year, withdrawn, committed_at";

impl Field {
    fn parse(name: &str) -> Option<Field> {
        Some(match name {
            "envelope" => Field::Envelope,
            "record" => Field::Record,
            "unified_code" => Field::UnifiedCode,
            "version" => Field::Version,
            "idempotency_key" => Field::IdempotencyKey,
            "case_type" => Field::CaseType,
            "region" => Field::Region,
            "year" => Field::Year,
            "withdrawn" => Field::Withdrawn,
            "committed_at" => Field::CommittedAt,
            _ => return None,
        })
    }

    fn value(self, d: &Delivery) -> Value {
        match self {
            Field::Envelope => serde_json::from_slice(&envelope_json(d)).unwrap_or(Value::Null),
            Field::Record => d.record.clone(),
            Field::UnifiedCode => Value::from(d.unified_code.as_str()),
            Field::Version => Value::from(d.version),
            Field::IdempotencyKey => Value::from(d.idempotency_key.as_str()),
            Field::CaseType => Value::from(d.case_type.as_str()),
            Field::Region => Value::from(d.region.as_str()),
            Field::Year => Value::from(d.year),
            Field::Withdrawn => Value::from(d.withdrawn),
            Field::CommittedAt => Value::from(committed_at(d)),
        }
    }

    fn is_scalar(self) -> bool {
        !matches!(self, Field::Envelope | Field::Record)
    }
}

/// A URL or body template of the REST sink: a text with `{{name}}` placeholders naming
/// delivery fields (see [`FIELD_NAMES`]), read by the one template engine
/// ([`crate::common::template`]). The record and the envelope are written whole: as JSON, or
/// as XML elements; other fields as the escaping asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryTemplate(Template<Field>);

impl DeliveryTemplate {
    /// Parse a template. Unknown placeholders, unclosed `{{`, and the record or envelope in a
    /// URL are errors.
    pub fn parse(text: &str, escaping: Escaping) -> Result<DeliveryTemplate, String> {
        Template::parse_with(text, escaping, |name| {
            let field = Field::parse(name).ok_or_else(|| unknown_placeholder(name, FIELD_NAMES))?;
            if escaping == Escaping::Url && !field.is_scalar() {
                return Err(format!("URL 中不能使用 / not allowed in a URL: {{{{{name}}}}}"));
            }
            Ok(field)
        })
        .map(DeliveryTemplate)
    }

    /// True when the template has no placeholder.
    pub fn is_constant(&self) -> bool {
        self.0.is_constant()
    }

    /// The text with every placeholder replaced by the delivery's value.
    pub fn render(&self, d: &Delivery) -> String {
        let escaping = self.0.escaping();
        self.0.render_with(|out, field| write_field(out, escaping, *field, d))
    }
}

/// Write the delivery's `field` as `escaping` asks.
fn write_field(out: &mut String, escaping: Escaping, field: Field, d: &Delivery) {
    match (escaping, field) {
        (Escaping::Xml, Field::Record) => xml_content(out, &d.record),
        (Escaping::Xml, Field::Envelope) => {
            let xml = envelope_xml(d);
            let text = String::from_utf8_lossy(&xml);
            let inner = text
                .split_once("<case>")
                .and_then(|(_, rest)| rest.strip_suffix("</case>"))
                .unwrap_or_default();
            out.push_str(inner);
        }
        (_, Field::Record) => out.push_str(&d.record.to_string()),
        (_, Field::Envelope) => out.push_str(&String::from_utf8_lossy(&envelope_json(d))),
        (Escaping::Json, f) => out.push_str(&f.value(d).to_string()),
        (_, f) => match f.value(d) {
            Value::String(s) => write_text(out, escaping, &s),
            other => write_text(out, escaping, &other.to_string()),
        },
    }
}

/// A delivery for checking templates at configuration time.
pub fn sample_delivery() -> Delivery {
    Delivery {
        outbox_id: 1,
        idempotency_key: "CF20243601020000001Y:1".into(),
        unified_code: "CF20243601020000001Y".into(),
        version: 1,
        case_type: "penalty".into(),
        year: 2024,
        region: "360102".into(),
        withdrawn: false,
        committed_at: chrono::DateTime::UNIX_EPOCH,
        record: serde_json::json!({
            "case_type": "penalty",
            "case_name": "示例 <案件> & \"引号\"",
            "officers": [{"name": "张三", "cert_no": "36010020001"}, {"name": "李四", "cert_no": "36010020002"}],
            "penalty": {"kinds": ["fine", "warning"], "fine_amount": 1000.5, "hearing_held": false}
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_envelope_carries_identity_and_record() {
        let d = sample_delivery();
        let v: Value = serde_json::from_slice(&envelope_json(&d)).unwrap();
        assert_eq!(v["idempotency_key"], "CF20243601020000001Y:1");
        assert_eq!(v["version"], 1);
        assert_eq!(v["withdrawn"], false);
        assert_eq!(v["record"]["officers"][1]["name"], "李四");
        assert_eq!(v["committed_at"], "1970-01-01T00:00:00.000000Z");
    }

    #[test]
    fn xml_envelope_escapes_text_and_repeats_array_items() {
        let xml = String::from_utf8(envelope_xml(&sample_delivery())).unwrap();
        assert!(xml.starts_with(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><case><idempotency_key>CF20243601020000001Y:1</idempotency_key>"
        ));
        assert!(
            xml.contains("<case_name>示例 &lt;案件&gt; &amp; &quot;引号&quot;</case_name>"),
            "{xml}"
        );
        assert!(
            xml.contains("<officers><item><cert_no>36010020001</cert_no><name>张三</name></item><item>"),
            "{xml}"
        );
        assert!(
            xml.contains("<kinds><item>fine</item><item>warning</item></kinds>"),
            "{xml}"
        );
        assert!(xml.ends_with("</record></case>"));
        // Well-formed: quick-xml reads it to the end.
        let mut reader = quick_xml::Reader::from_str(&xml);
        let mut depth = 0i32;
        loop {
            match reader.read_event().unwrap() {
                quick_xml::events::Event::Start(_) => depth += 1,
                quick_xml::events::Event::End(_) => depth -= 1,
                quick_xml::events::Event::Eof => break,
                _ => {}
            }
        }
        assert_eq!(depth, 0);
    }

    #[test]
    fn a_key_that_is_no_xml_name_becomes_a_field_element() {
        let mut s = String::new();
        xml_element(&mut s, "1st key", &Value::from("x"));
        assert_eq!(s, "<field name=\"1st key\">x</field>");
    }

    #[test]
    fn json_template_inserts_json_values() {
        let t = DeliveryTemplate::parse(
            r#"{"code": {{ unified_code }}, "v": {{version}}, "data": {{record}}}"#,
            Escaping::Json,
        )
        .unwrap();
        let body: Value = serde_json::from_str(&t.render(&sample_delivery())).unwrap();
        assert_eq!(body["code"], "CF20243601020000001Y");
        assert_eq!(body["v"], 1);
        assert_eq!(body["data"]["penalty"]["fine_amount"], 1000.5);
    }

    #[test]
    fn xml_template_inserts_escaped_text_and_record_elements() {
        let t = DeliveryTemplate::parse(
            "<upload code=\"{{unified_code}}\"><data>{{record}}</data></upload>",
            Escaping::Xml,
        )
        .unwrap();
        let body = t.render(&sample_delivery());
        assert!(
            body.starts_with("<upload code=\"CF20243601020000001Y\"><data><case_name>示例 &lt;"),
            "{body}"
        );
        assert!(body.ends_with("</penalty></data></upload>"), "{body}");
    }

    #[test]
    fn url_template_percent_encodes_and_refuses_the_record() {
        let t = DeliveryTemplate::parse("http://h/cases/{{idempotency_key}}", Escaping::Url).unwrap();
        assert_eq!(t.render(&sample_delivery()), "http://h/cases/CF20243601020000001Y%3A1");
        assert!(DeliveryTemplate::parse("http://h/{{record}}", Escaping::Url)
            .unwrap_err()
            .contains("not allowed in a URL"));
    }

    #[test]
    fn template_errors_name_the_problem() {
        assert!(DeliveryTemplate::parse("{{nope}}", Escaping::Json)
            .unwrap_err()
            .contains("unknown placeholder {{nope}}"));
        assert!(DeliveryTemplate::parse("{\"a\": {{record}", Escaping::Json)
            .unwrap_err()
            .contains("unclosed"));
        assert!(DeliveryTemplate::parse("plain", Escaping::Json).unwrap().is_constant());
    }
}
