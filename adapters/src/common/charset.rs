//! Character sets of answers. Legacy systems answer in UTF-8, GBK or GB18030; the charset is
//! taken from a configured override, else the `Content-Type` charset, else (XML only) the BOM
//! or the XML prolog, else UTF-8. Decoding never panics: malformed bytes become U+FFFD and are
//! reported, so that the records they fall in can be set aside as unparsed.

use encoding_rs::Encoding;

/// A text input's encoding as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TextEncoding {
    /// Detected: BOM, else valid UTF-8, else GB18030.
    #[default]
    Auto,
    /// UTF-8 (a BOM is skipped).
    Utf8,
    /// GBK (Windows code page 936; decoded as GB18030, its superset).
    Gbk,
    /// GB18030.
    Gb18030,
}

/// The labels [`TextEncoding::parse`] takes, for messages.
pub const ENCODING_LABELS: &str = "utf-8, gbk, gb18030, auto";

impl TextEncoding {
    /// Parse a configured label: `utf-8` (`utf8`), `gbk` (`gb2312`, `cp936`), `gb18030` or
    /// `auto`, in any case.
    pub fn parse(label: &str) -> Option<TextEncoding> {
        match label.trim().to_ascii_lowercase().as_str() {
            "auto" => Some(TextEncoding::Auto),
            "utf-8" | "utf8" => Some(TextEncoding::Utf8),
            "gbk" | "gb2312" | "cp936" => Some(TextEncoding::Gbk),
            "gb18030" => Some(TextEncoding::Gb18030),
            _ => None,
        }
    }

    /// The encoding a configured label names, or a bilingual message naming the key and value.
    pub fn from_setting(key: &str, label: Option<&str>) -> Result<TextEncoding, String> {
        match label {
            None => Ok(TextEncoding::Auto),
            Some(l) => TextEncoding::parse(l).ok_or_else(|| {
                format!("{key} = {l:?}：不支持的编码，可用 {ENCODING_LABELS} / unsupported encoding {l:?}: use {ENCODING_LABELS}")
            }),
        }
    }

    /// The encoding, when one is named (not `auto`).
    pub fn fixed(self) -> Option<&'static Encoding> {
        match self {
            TextEncoding::Auto => None,
            TextEncoding::Utf8 => Some(encoding_rs::UTF_8),
            TextEncoding::Gbk => Some(encoding_rs::GBK),
            TextEncoding::Gb18030 => Some(encoding_rs::GB18030),
        }
    }
}

/// An encoding by its label (`utf-8`, `gbk`, `gb2312`, `gb18030`, ... as the WHATWG encoding
/// standard names them); `None` for an unknown label.
pub fn encoding_for_label(label: &str) -> Option<&'static Encoding> {
    Encoding::for_label(label.trim().as_bytes())
}

/// The `charset` parameter of a `Content-Type` value, as an encoding (`None` when absent or
/// unknown).
pub fn content_type_charset(content_type: &str) -> Option<&'static Encoding> {
    content_type.split(';').skip(1).find_map(|param| {
        let (name, value) = param.split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("charset") {
            return None;
        }
        encoding_for_label(value.trim().trim_matches(['"', '\'']))
    })
}

/// The encoding named in an XML document's BOM or prolog (`<?xml ... encoding="GBK"?>`).
pub fn xml_declared_encoding(bytes: &[u8]) -> Option<&'static Encoding> {
    if let Some((e, _)) = Encoding::for_bom(bytes) {
        return Some(e);
    }
    // The prolog is read by the normaliser's XML reader, the one sniffer of the workspace.
    let label = normalizer::xml_tree::declared_encoding(bytes)?;
    encoding_for_label(&label)
}

/// The encoding of an answer: the override, else the `Content-Type` charset, else (when
/// `xml`) the BOM or prolog, else UTF-8.
pub fn answer_encoding(
    override_encoding: Option<&'static Encoding>,
    content_type: Option<&str>,
    body: &[u8],
    xml: bool,
) -> &'static Encoding {
    override_encoding
        .or_else(|| content_type.and_then(content_type_charset))
        .or_else(|| if xml { xml_declared_encoding(body) } else { None })
        .unwrap_or(encoding_rs::UTF_8)
}

/// A body decoded to text.
#[derive(Debug, Clone)]
pub struct Decoded {
    /// The text; malformed byte sequences are U+FFFD.
    pub text: String,
    /// The encoding used.
    pub encoding: &'static Encoding,
    /// True when some bytes were malformed in that encoding.
    pub had_errors: bool,
}

/// Decode `bytes` in `encoding` (a BOM, if any, wins and is dropped).
pub fn decode(bytes: &[u8], encoding: &'static Encoding) -> Decoded {
    let (text, used, had_errors) = encoding.decode(bytes);
    Decoded {
        text: text.into_owned(),
        encoding: used,
        had_errors,
    }
}

/// Encode `text` in `encoding` for a request body (characters the encoding lacks become
/// numeric character references, which XML reads back).
pub fn encode(text: &str, encoding: &'static Encoding) -> Vec<u8> {
    encoding.encode(text).0.into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charset_comes_from_the_override_then_the_content_type_then_the_prolog() {
        let gbk = encoding_for_label("GBK").unwrap();
        let body = "<?xml version=\"1.0\" encoding=\"GB18030\"?><a/>".as_bytes();
        assert_eq!(
            answer_encoding(Some(gbk), Some("text/xml; charset=utf-8"), body, true),
            gbk
        );
        assert_eq!(
            answer_encoding(None, Some("text/xml; Charset=\"gbk\""), body, true).name(),
            "GBK"
        );
        assert_eq!(answer_encoding(None, Some("text/xml"), body, true).name(), "gb18030");
        assert_eq!(
            answer_encoding(None, Some("application/json"), body, false),
            encoding_rs::UTF_8
        );
        assert_eq!(content_type_charset("text/plain; charset=nonsense"), None);
    }

    #[test]
    fn gbk_bodies_decode_and_malformed_bytes_are_flagged_not_fatal() {
        let gbk = encoding_for_label("gbk").unwrap();
        let bytes = encode("行政处罚", gbk);
        assert_ne!(bytes, "行政处罚".as_bytes());
        let d = decode(&bytes, gbk);
        assert_eq!(d.text, "行政处罚");
        assert!(!d.had_errors);
        let mut bad = bytes.clone();
        bad.push(0x81);
        let d = decode(&bad, gbk);
        assert!(d.had_errors && d.text.starts_with("行政处罚") && d.text.ends_with('\u{FFFD}'));
    }
}
