//! What a canonical record says of its attachments, and the limits it must keep (pure code).

use crate::config::attachments::AttachmentsConfig;
use crate::store::attachments::NewAttachment;
use base64::Engine as _;
use normalizer::Violation;
use serde_json::Value;

/// Where an attachment's content comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Origin {
    /// A URL at the source system, fetched with the source's connection.
    Url(String),
    /// Base64 in the record (`content_base64`).
    Inline,
    /// A file in the drop folder's `attachments/` folder.
    File(String),
    /// Only a SHA-256: content the gateway already holds.
    Held(String),
}

impl Origin {
    /// `url`, `inline`, `file` or `held`.
    pub fn name(&self) -> &'static str {
        match self {
            Origin::Url(_) => "url",
            Origin::Inline => "inline",
            Origin::File(_) => "file",
            Origin::Held(_) => "held",
        }
    }

    /// The URL, the file name, `record` (inline) or the SHA-256 (held).
    pub fn reference(&self) -> &str {
        match self {
            Origin::Url(u) => u,
            Origin::Inline => "record",
            Origin::File(f) => f,
            Origin::Held(h) => h,
        }
    }
}

/// One attachment as a canonical record declares it.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    /// Index in `attachments`.
    pub position: usize,
    /// document | video | audio | image | other.
    pub kind: String,
    /// 附件名称.
    pub title: Option<String>,
    /// File name.
    pub file_name: Option<String>,
    /// Declared media type.
    pub media_type: Option<String>,
    /// Declared size.
    pub bytes: Option<u64>,
    /// Capture time.
    pub captured_at: Option<String>,
    /// Duration (audio, video).
    pub duration_seconds: Option<f64>,
    /// Where the content is (`None`: the record says nowhere).
    pub origin: Option<Origin>,
    /// Does not hold delivery.
    pub optional: bool,
    /// Decoded size of inline content (`None`: not inline or not valid base64).
    pub inline_bytes: Option<u64>,
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_string)
}

/// The attachments a canonical record declares.
pub fn specs(record: &Value) -> Vec<Spec> {
    let Some(items) = record.get("attachments").and_then(Value::as_array) else {
        return Vec::new();
    };
    items
        .iter()
        .enumerate()
        .map(|(position, a)| {
            let inline = a.get("content_base64").and_then(Value::as_str);
            let origin = if let Some(u) = text(a, "url") {
                Some(Origin::Url(u))
            } else if inline.is_some() {
                Some(Origin::Inline)
            } else if let Some(f) = text(a, "file") {
                Some(Origin::File(f))
            } else {
                text(a, "sha256").map(Origin::Held)
            };
            Spec {
                position,
                kind: text(a, "kind").unwrap_or_else(|| "other".into()),
                title: text(a, "title"),
                file_name: text(a, "file_name").or_else(|| text(a, "file")),
                media_type: text(a, "media_type"),
                bytes: a.get("bytes").and_then(Value::as_u64),
                captured_at: text(a, "captured_at"),
                duration_seconds: a.get("duration_seconds").and_then(Value::as_f64),
                origin,
                optional: a.get("optional").and_then(Value::as_bool).unwrap_or(false),
                inline_bytes: inline.and_then(|b| decode_base64(b).ok()).map(|d| d.len() as u64),
            }
        })
        .collect()
}

/// Decode base64 (standard alphabet, padding optional, whitespace ignored).
pub fn decode_base64(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD_NO_PAD.decode(compact.trim_end_matches('='))
}

/// Whether `name` is a plain file name (no folder, no `..`).
pub fn plain_file_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0']) && !name.starts_with('.')
}

/// What the record's declared attachments break of the configured limits: an error for a
/// required attachment (the record is quarantined), a warning for an optional one (the
/// attachment is kept; the fetcher refuses it if the content breaks the limit).
pub fn check(record: &Value, config: &AttachmentsConfig) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut case_bytes: u64 = 0;
    for s in specs(record) {
        let field = format!("/attachments/{}", s.position);
        let mut flag = |rule: &str, value: Option<String>, zh: String, en: String| {
            out.push(if s.optional {
                Violation::warning(&field, rule, value, zh, en)
            } else {
                Violation::error(&field, rule, value, zh, en)
            });
        };
        let size = s.inline_bytes.or(s.bytes);
        match &s.origin {
            None => flag(
                "attachment.no_content",
                None,
                "附件未给出内容来源（url、content_base64、file 或 sha256）".into(),
                "the attachment says nowhere where its content is (url, content_base64, file or sha256)".into(),
            ),
            Some(Origin::Inline) if s.inline_bytes.is_none() => flag(
                "attachment.bad_base64",
                None,
                "附件内容不是有效的 Base64".into(),
                "the attachment's content_base64 is not valid base64".into(),
            ),
            Some(Origin::File(f)) if !plain_file_name(f) => flag(
                "attachment.bad_file_name",
                Some(f.clone()),
                format!("附件文件名 {f:?} 不是单纯的文件名（不得含目录）"),
                format!("attachment file {f:?} is not a plain file name (no folders)"),
            ),
            _ => {}
        }
        if let Some(bytes) = size {
            if bytes > config.max_bytes {
                flag(
                    "attachment.too_large",
                    Some(bytes.to_string()),
                    format!("附件 {bytes} 字节，超过上限 {} 字节", config.max_bytes),
                    format!(
                        "the attachment has {bytes} bytes, over the limit of {}",
                        config.max_bytes
                    ),
                );
            }
            if !s.optional {
                case_bytes = case_bytes.saturating_add(bytes);
            }
        }
        if let Some(m) = &s.media_type {
            if !config.allows_media_type(m) {
                flag(
                    "attachment.media_type",
                    Some(m.clone()),
                    format!("附件媒体类型 {m} 不在允许范围内（allowed_media_types）"),
                    format!("media type {m} is not allowed (allowed_media_types)"),
                );
            }
        }
    }
    if case_bytes > config.max_case_bytes {
        out.push(Violation::error(
            "/attachments",
            "attachment.case_too_large",
            Some(case_bytes.to_string()),
            format!(
                "本案件的附件共 {case_bytes} 字节，超过每案上限 {} 字节",
                config.max_case_bytes
            ),
            format!(
                "the case's attachments have {case_bytes} bytes, over the per-case limit of {}",
                config.max_case_bytes
            ),
        ));
    }
    out
}

/// The attachments of a committed case version to list in the store (held ones included: the
/// fetcher checks the store has them).
pub fn listed(code: &str, version: i32, source_id: &str, record: &Value) -> Vec<NewAttachment> {
    specs(record)
        .into_iter()
        .filter_map(|s| {
            let origin = s.origin?;
            Some(NewAttachment {
                code: code.to_string(),
                version,
                position: i32::try_from(s.position).ok()?,
                source_id: source_id.to_string(),
                kind: s.kind,
                title: s.title,
                file_name: s.file_name,
                media_type: s.media_type,
                captured_at: s.captured_at,
                duration_seconds: s.duration_seconds,
                origin: origin.name().to_string(),
                origin_ref: origin.reference().to_string(),
                optional: s.optional,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_origin_is_read_and_inline_content_is_measured_decoded() {
        let record = json!({"attachments": [
            {"kind": "video", "url": "https://src/v.mp4", "duration_seconds": 12.5},
            {"kind": "document", "content_base64": "aGVsbG8=", "file_name": "a.txt"},
            {"kind": "image", "file": "p.jpg", "optional": true},
            {"kind": "other"}
        ]});
        let s = specs(&record);
        assert_eq!(s[0].origin, Some(Origin::Url("https://src/v.mp4".into())));
        assert_eq!(s[0].duration_seconds, Some(12.5));
        assert_eq!(
            (s[1].origin.clone(), s[1].inline_bytes),
            (Some(Origin::Inline), Some(5))
        );
        assert_eq!(s[2].origin, Some(Origin::File("p.jpg".into())));
        assert!(s[2].optional);
        assert_eq!(s[3].origin, None);
        assert_eq!(
            listed("C", 1, "src", &record).len(),
            3,
            "an attachment without content is not listed"
        );
    }

    #[test]
    fn limits_are_errors_for_required_and_warnings_for_optional_attachments() {
        let config = AttachmentsConfig {
            max_bytes: 4,
            max_case_bytes: 8,
            allowed_media_types: vec!["image/*".into()],
            ..AttachmentsConfig::default()
        };
        let record = json!({"attachments": [
            {"kind": "document", "content_base64": "aGVsbG8=", "media_type": "application/pdf"},
            {"kind": "image", "url": "https://src/p", "bytes": 9, "optional": true},
            {"kind": "image", "file": "../etc/passwd"}
        ]});
        let v = check(&record, &config);
        let seen: Vec<(String, &str, bool)> = v
            .iter()
            .map(|v| {
                (
                    v.pointer.clone(),
                    v.rule.as_str(),
                    v.severity == normalizer::Severity::Error,
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("/attachments/0".to_string(), "attachment.too_large", true),
                ("/attachments/0".to_string(), "attachment.media_type", true),
                ("/attachments/1".to_string(), "attachment.too_large", false),
                ("/attachments/2".to_string(), "attachment.bad_file_name", true),
            ]
        );
        assert!(
            v[0].message_en.contains("5 bytes, over the limit of 4"),
            "{}",
            v[0].message_en
        );
    }
}
