//! XML documents (SOAP responses, XML exports) as the JSON-like tree the mapping engine reads.
//!
//! - An element becomes an object keyed by the LOCAL names of its children (namespace prefixes
//!   dropped); `xmlns` declarations are dropped, other attributes become `"@name"` members.
//! - An element with text only and no attributes becomes a string (`<a/>` gives `""`); text
//!   next to attributes or child elements goes to `"#text"` (indentation around child
//!   elements is dropped).
//! - Repeated sibling elements become an array, in document order. An element that occurs once
//!   is not an array: mapping paths use `[*]` or `[0]`, which treat a single value as a
//!   one-element list.
//! - CDATA is text. Only the five predefined entities and numeric character references are
//!   resolved.
//!
//! Hardened: any DOCTYPE (and so any DTD or ENTITY declaration) is rejected, never expanded;
//! total size, nesting depth and element count are limited ([`XmlLimits`]). Only UTF-8 (and
//! ASCII) documents are read as they are; UTF-16 (by BOM) and documents declaring GBK, GB2312,
//! GB18030 or another WHATWG encoding are decoded with encoding_rs; an unknown encoding or a
//! malformed byte sequence is [`XmlError::UnsupportedEncoding`].

use quick_xml::events::attributes::Attribute;
use quick_xml::events::{BytesStart, Event};
use quick_xml::reader::Reader;
use quick_xml::XmlVersion;
use serde_json::{Map, Value};

/// Limits that bound the work and memory one document can cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XmlLimits {
    /// Largest document accepted, in bytes.
    pub max_bytes: usize,
    /// Deepest element nesting accepted (the root element is depth 1).
    pub max_depth: usize,
    /// Most elements accepted in one document.
    pub max_elements: usize,
}

impl Default for XmlLimits {
    /// 64 MiB, depth 64, one million elements.
    fn default() -> Self {
        XmlLimits {
            max_bytes: 64 * 1024 * 1024,
            max_depth: 64,
            max_elements: 1_000_000,
        }
    }
}

/// Why a document was not read. Positions are 1-based line and column (in characters).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    /// The document is larger than [`XmlLimits::max_bytes`].
    #[error("XML 文档过大：{size} 字节，上限 {limit} 字节 / XML document too large: {size} bytes, limit {limit}")]
    TooLarge {
        /// Size of the document.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Elements nest deeper than [`XmlLimits::max_depth`].
    #[error("XML 嵌套过深（第 {line} 行第 {column} 列），上限 {limit} 层 / XML nesting deeper than {limit} levels at line {line}, column {column}")]
    TooDeep {
        /// The limit.
        limit: usize,
        /// Line of the element that went too deep.
        line: usize,
        /// Column of that element.
        column: usize,
    },
    /// More elements than [`XmlLimits::max_elements`].
    #[error("XML 元素过多，上限 {limit} 个 / more than {limit} XML elements")]
    TooManyElements {
        /// The limit.
        limit: usize,
    },
    /// The document has a DOCTYPE (possibly with entity declarations): never processed.
    #[error("XML 含 DOCTYPE/DTD 声明（第 {line} 行），出于安全原因拒绝处理 / XML with a DOCTYPE/DTD declaration (line {line}) is rejected for safety")]
    Doctype {
        /// Line of the DOCTYPE.
        line: usize,
    },
    /// A declared or detected encoding other than UTF-8.
    #[error("不支持或无法解码的 XML 编码 {0} / unsupported or undecodable XML encoding {0}")]
    UnsupportedEncoding(String),
    /// Bytes that are not valid UTF-8.
    #[error(
        "XML 不是有效的 UTF-8（第 {line} 行第 {column} 列） / XML is not valid UTF-8 at line {line}, column {column}"
    )]
    NotUtf8 {
        /// Line of the first bad byte.
        line: usize,
        /// Column of the first bad byte.
        column: usize,
    },
    /// An entity reference other than the five predefined ones and character references.
    #[error("未定义的实体引用 &{name};（第 {line} 行第 {column} 列） / undefined entity reference &{name}; at line {line}, column {column}")]
    UndefinedEntity {
        /// The entity name.
        name: String,
        /// Line.
        line: usize,
        /// Column.
        column: usize,
    },
    /// Not well-formed XML.
    #[error("XML 格式错误（第 {line} 行第 {column} 列）：{message} / malformed XML at line {line}, column {column}: {message}")]
    Syntax {
        /// What the parser said.
        message: String,
        /// Line.
        line: usize,
        /// Column.
        column: usize,
    },
    /// No root element.
    #[error("XML 文档没有根元素 / the XML document has no root element")]
    NoRoot,
}

/// 1-based line and character column of byte `offset`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[start..].chars().count() + 1)
}

fn byte_line_col(bytes: &[u8], offset: usize) -> (usize, usize) {
    let before = &bytes[..offset.min(bytes.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let start = before.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let column = String::from_utf8_lossy(&before[start..]).chars().count() + 1;
    (line, column)
}

/// The encoding label named in the XML declaration (`<?xml ... encoding="GBK"?>`), if any, read
/// from the raw bytes: the one prolog sniffer of the workspace (the HTTP adapters use it too).
pub fn declared_encoding(bytes: &[u8]) -> Option<String> {
    if !bytes.starts_with(b"<?xml") {
        return None;
    }
    let end = bytes.windows(2).take(512).position(|w| w == b"?>")?;
    let decl = String::from_utf8_lossy(&bytes[..end]);
    let i = decl.find("encoding")?;
    let rest = decl[i + "encoding".len()..]
        .trim_start()
        .strip_prefix('=')?
        .trim_start();
    let quote = rest.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let value = rest[1..].split(quote).next()?;
    Some(value.trim().to_string())
}

/// The document as text: UTF-8 as is; UTF-16 (by BOM) and any encoding declared in the prolog
/// that the WHATWG encoding standard knows (GBK, GB2312, GB18030, ...) decoded with encoding_rs.
/// `override_encoding` (e.g. the charset of an HTTP Content-Type) wins over the prolog.
fn decode_document<'a>(
    bytes: &'a [u8],
    override_encoding: Option<&'static encoding_rs::Encoding>,
) -> Result<std::borrow::Cow<'a, str>, XmlError> {
    let encoding = if let Some(e) = override_encoding {
        e
    } else if let Some((e, _)) = encoding_rs::Encoding::for_bom(bytes) {
        e
    } else if let Some(label) = declared_encoding(bytes) {
        encoding_rs::Encoding::for_label(label.as_bytes()).ok_or(XmlError::UnsupportedEncoding(label))?
    } else {
        encoding_rs::UTF_8
    };
    if encoding == encoding_rs::UTF_8 {
        return match std::str::from_utf8(bytes) {
            Ok(t) => Ok(std::borrow::Cow::Borrowed(t)),
            Err(e) => {
                let (line, column) = byte_line_col(bytes, e.valid_up_to());
                Err(XmlError::NotUtf8 { line, column })
            }
        };
    }
    let (text, _, had_errors) = encoding.decode(bytes);
    if had_errors {
        return Err(XmlError::UnsupportedEncoding(format!(
            "{} (字节序列不合法 / malformed byte sequence)",
            encoding.name()
        )));
    }
    Ok(text)
}

/// An element being built.
struct Frame {
    name: String,
    members: Map<String, Value>,
    text: String,
    has_children: bool,
}

impl Frame {
    fn into_value(self) -> Value {
        if self.members.is_empty() && !self.has_children {
            return Value::String(self.text);
        }
        let mut members = self.members;
        let text = if self.has_children {
            self.text.trim()
        } else {
            self.text.as_str()
        };
        if !text.trim().is_empty() {
            members.insert("#text".to_string(), Value::String(text.to_string()));
        }
        Value::Object(members)
    }

    fn add_child(&mut self, name: String, value: Value) {
        self.has_children = true;
        match self.members.get_mut(&name) {
            None => {
                self.members.insert(name, value);
            }
            Some(Value::Array(items)) => items.push(value),
            Some(existing) => {
                let first = std::mem::take(existing);
                *existing = Value::Array(vec![first, value]);
            }
        }
    }
}

fn local_name(qname: &str) -> &str {
    match qname.rfind(':') {
        Some(i) => &qname[i + 1..],
        None => qname,
    }
}

fn predefined(name: &str) -> Option<&'static str> {
    match name {
        "lt" => Some("<"),
        "gt" => Some(">"),
        "amp" => Some("&"),
        "apos" => Some("'"),
        "quot" => Some("\""),
        _ => None,
    }
}

/// Parse an XML document into a tree: `{ "<root local name>": <root content> }`.
pub fn parse_xml(bytes: &[u8], limits: &XmlLimits) -> Result<Value, XmlError> {
    parse_xml_with_encoding(bytes, limits, None)
}

/// [`parse_xml`] with the character set given by the transport (e.g. an HTTP `Content-Type`
/// charset), which wins over the XML prolog.
pub fn parse_xml_with_encoding(
    bytes: &[u8],
    limits: &XmlLimits,
    override_encoding: Option<&'static encoding_rs::Encoding>,
) -> Result<Value, XmlError> {
    if bytes.len() > limits.max_bytes {
        return Err(XmlError::TooLarge {
            size: bytes.len(),
            limit: limits.max_bytes,
        });
    }
    let decoded = decode_document(bytes, override_encoding)?;
    let text: &str = &decoded;
    let bom = usize::from(text.starts_with('\u{FEFF}')) * 3;
    let text_no_bom = &text[bom..];
    let mut reader = Reader::from_str(text_no_bom);
    {
        let config = reader.config_mut();
        config.trim_text(false);
        config.check_end_names = true;
        config.expand_empty_elements = false;
    }
    let pos_of = |offset: u64| line_col(text_no_bom, offset as usize);
    let syntax = |e: &dyn std::fmt::Display, offset: u64| {
        let (line, column) = pos_of(offset);
        XmlError::Syntax {
            message: e.to_string(),
            line,
            column,
        }
    };

    let mut stack: Vec<Frame> = Vec::new();
    let mut root: Option<(String, Value)> = None;
    let mut elements = 0usize;

    loop {
        let before = reader.buffer_position();
        let event = reader.read_event().map_err(|e| syntax(&e, reader.error_position()))?;
        match event {
            Event::Start(ref start) | Event::Empty(ref start) => {
                let is_empty = matches!(event, Event::Empty(_));
                if root.is_some() && stack.is_empty() {
                    return Err(syntax(&"第二个根元素 / a second root element", before));
                }
                elements += 1;
                if elements > limits.max_elements {
                    return Err(XmlError::TooManyElements {
                        limit: limits.max_elements,
                    });
                }
                if stack.len() + 1 > limits.max_depth {
                    let (line, column) = pos_of(before);
                    return Err(XmlError::TooDeep {
                        limit: limits.max_depth,
                        line,
                        column,
                    });
                }
                let frame = open_element(start, before, &pos_of, &syntax)?;
                if is_empty {
                    close_element(frame, &mut stack, &mut root);
                } else {
                    stack.push(frame);
                }
            }
            Event::End(_) => {
                let Some(frame) = stack.pop() else {
                    return Err(syntax(&"多余的结束标签 / unexpected end tag", before));
                };
                close_element(frame, &mut stack, &mut root);
            }
            Event::Text(t) => {
                let content = t.xml_content(XmlVersion::Implicit1_0);
                match stack.last_mut() {
                    Some(frame) => frame.text.push_str(&content),
                    None if content.trim().is_empty() => {}
                    None => return Err(syntax(&"根元素之外有文本 / text outside the root element", before)),
                }
            }
            Event::CData(c) => {
                let content = c.xml_content(XmlVersion::Implicit1_0);
                match stack.last_mut() {
                    Some(frame) => frame.text.push_str(&content),
                    None => return Err(syntax(&"根元素之外有 CDATA / CDATA outside the root element", before)),
                }
            }
            Event::GeneralRef(r) => {
                let name: &str = &r;
                let resolved: String = if r.is_char_ref() {
                    match r.resolve_char_ref() {
                        Ok(Some(c)) => c.to_string(),
                        Ok(None) => String::new(),
                        Err(e) => return Err(syntax(&e, before)),
                    }
                } else if let Some(s) = predefined(name) {
                    s.to_string()
                } else {
                    let (line, column) = pos_of(before);
                    return Err(XmlError::UndefinedEntity {
                        name: name.to_string(),
                        line,
                        column,
                    });
                };
                match stack.last_mut() {
                    Some(frame) => frame.text.push_str(&resolved),
                    None => {
                        return Err(syntax(
                            &"根元素之外有实体引用 / entity reference outside the root element",
                            before,
                        ))
                    }
                }
            }
            Event::DocType(_) => {
                let (line, _) = pos_of(before);
                return Err(XmlError::Doctype { line });
            }
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(syntax(
            &"文档在元素结束前结束 / the document ends inside an element",
            text_no_bom.len() as u64,
        ));
    }
    match root {
        Some((name, value)) => {
            let mut m = Map::new();
            m.insert(name, value);
            Ok(Value::Object(m))
        }
        None => Err(XmlError::NoRoot),
    }
}

fn open_element(
    start: &BytesStart<'_>,
    offset: u64,
    pos_of: &dyn Fn(u64) -> (usize, usize),
    syntax: &dyn Fn(&dyn std::fmt::Display, u64) -> XmlError,
) -> Result<Frame, XmlError> {
    let name = local_name(start.name().as_ref()).to_string();
    let mut members = Map::new();
    for attr in start.attributes() {
        let attr: Attribute<'_> = attr.map_err(|e| syntax(&e, offset))?;
        let key = attr.key.as_ref();
        if key == "xmlns" || key.starts_with("xmlns:") {
            continue;
        }
        let mut undefined: Option<String> = None;
        let value = attr
            .normalized_value_with(XmlVersion::Implicit1_0, 1, |entity: &str| {
                let r = predefined(entity);
                if r.is_none() && undefined.is_none() {
                    undefined = Some(entity.to_string());
                }
                r
            })
            .map_err(|e| match undefined.take() {
                Some(name) => {
                    let (line, column) = pos_of(offset);
                    XmlError::UndefinedEntity { name, line, column }
                }
                None => syntax(&e, offset),
            })?;
        let local = local_name(key);
        members.insert(format!("@{local}"), Value::String(value.into_owned()));
    }
    Ok(Frame {
        name,
        members,
        text: String::new(),
        has_children: false,
    })
}

fn close_element(frame: Frame, stack: &mut [Frame], root: &mut Option<(String, Value)>) {
    let name = frame.name.clone();
    let value = frame.into_value();
    match stack.last_mut() {
        Some(parent) => parent.add_child(name, value),
        None => *root = Some((name, value)),
    }
}

/// The record elements at a dotted element path (local names), e.g.
/// `Envelope.Body.queryCasesResponse.return.case`. The first name is the root element.
/// Repeated elements anywhere along the path are all followed, in document order.
pub fn find_records<'a>(tree: &'a Value, path: &str) -> Vec<&'a Value> {
    let mut current: Vec<&'a Value> = vec![tree];
    for name in path.split('.').filter(|s| !s.is_empty()) {
        let mut next = Vec::new();
        for v in current {
            let items: &[Value] = match v {
                Value::Array(a) => a,
                other => std::slice::from_ref(other),
            };
            for item in items {
                if let Some(child) = item.get(name) {
                    match child {
                        Value::Array(a) => next.extend(a.iter()),
                        other => next.push(other),
                    }
                }
            }
        }
        current = next;
    }
    current
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_encoding_is_read_from_the_prolog() {
        assert_eq!(
            declared_encoding(b"<?xml version=\"1.0\" encoding='GBK'?><a/>").as_deref(),
            Some("GBK")
        );
        assert_eq!(declared_encoding(b"<a/>"), None);
    }
}
