//! Reading settings tables: the problem type every check reports ([`SettingsProblem`], naming
//! its key), TOML tables deserialised with errors that name their keys ([`from_table`]), and
//! templates given inline or in a file ([`template_text`]).

use serde::de::DeserializeOwned;
use std::fmt;
use std::path::{Path, PathBuf};

/// One problem of a source's or sink's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsProblem {
    /// The key concerned (dotted for nested tables, e.g. `auth.token_env`); empty for the block.
    pub key: String,
    /// What is wrong, in Chinese and English.
    pub message: String,
}

impl SettingsProblem {
    /// A problem of `key`.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> SettingsProblem {
        SettingsProblem {
            key: key.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for SettingsProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.key, self.message)
        }
    }
}

/// Problems as one line of text, `; ` between them (for an error that carries them all).
pub fn joined(problems: &[SettingsProblem]) -> String {
    problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

/// The key (dotted under its table) of the line of `text` holding byte `offset`.
fn key_at(text: &str, offset: usize) -> String {
    let before = &text[..offset.min(text.len())];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next().unwrap_or_default();
    let key = line.split('=').next().unwrap_or_default().trim().trim_matches('"');
    let section = before[..line_start]
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix('[').and_then(|l| l.strip_suffix(']')))
        .map(|s| s.trim_matches(['[', ']', '"']).to_string());
    match section {
        Some(section) if !key.is_empty() => format!("{section}.{key}"),
        _ => key.to_string(),
    }
}

/// Deserialize `table` into `T`; an error names its key, and an unknown key is followed by
/// `hint` (e.g. the keys accepted besides `T`'s own) when that is not empty.
pub fn from_table<T: DeserializeOwned>(table: toml::Table, hint: &str) -> Result<T, SettingsProblem> {
    // Through TOML text, so that an error has a place to name its key by.
    let text = toml::to_string(&table).unwrap_or_default();
    toml::from_str::<T>(&text).map_err(|e| {
        let message = e.message().trim().to_string();
        // serde names an unknown key in backticks ("unknown field `urll`, expected ...").
        let unknown = message
            .strip_prefix("unknown field `")
            .and_then(|rest| rest.split('`').next())
            .map(str::to_string);
        let hint = if unknown.is_some() && !hint.is_empty() {
            format!(" ({hint})")
        } else {
            String::new()
        };
        let key = unknown
            .or_else(|| e.span().map(|span| key_at(&text, span.start)))
            .unwrap_or_default();
        SettingsProblem::new(key, format!("配置项错误 / invalid setting: {message}{hint}"))
    })
}

/// The text of a template given inline (key `keys.0`) or in a file (key `keys.1`, relative
/// to `base`): `None` when neither is given; both given, or a file that cannot be read, is a
/// problem.
pub fn template_text(
    inline: Option<&String>,
    file: Option<&PathBuf>,
    (inline_key, file_key): (&str, &str),
    base: &Path,
) -> Result<Option<String>, SettingsProblem> {
    match (inline, file) {
        (Some(_), Some(_)) => Err(SettingsProblem::new(
            inline_key,
            format!("{inline_key} 与 {file_key} 只能给出一个 / give only one of {inline_key}, {file_key}"),
        )),
        (Some(t), None) => Ok(Some(t.clone())),
        (None, Some(f)) => {
            let full = if f.is_absolute() { f.clone() } else { base.join(f) };
            std::fs::read_to_string(&full)
                .map(Some)
                .map_err(|e| SettingsProblem::new(file_key, format!("无法读取 / cannot read {}: {e}", full.display())))
        }
        (None, None) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Sample {
        url: String,
        auth: Option<SampleAuth>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct SampleAuth {
        token: Option<String>,
    }

    fn problem(text: &str, hint: &str) -> SettingsProblem {
        from_table::<Sample>(text.parse().unwrap(), hint).unwrap_err()
    }

    #[test]
    fn errors_name_their_keys_even_in_nested_tables() {
        let unknown = problem("url = \"x\"\nurll = 1", "delivery keys: batch_size");
        assert_eq!(unknown.key, "urll");
        assert!(unknown.message.ends_with("(delivery keys: batch_size)"), "{unknown}");
        assert_eq!(problem("url = 5", "").key, "url");
        assert_eq!(problem("url = \"x\"\nauth = { token = 7 }", "").key, "auth.token");
    }

    #[test]
    fn a_template_comes_inline_or_from_a_file_but_not_both() {
        let keys = ("body_template", "body_template_file");
        let base = Path::new("/");
        let inline = Some("x".to_string());
        let file = Some(PathBuf::from("surely/not/here.json"));
        assert_eq!(template_text(inline.as_ref(), None, keys, base), Ok(Some("x".into())));
        assert_eq!(template_text(None, None, keys, base), Ok(None));
        assert_eq!(
            template_text(inline.as_ref(), file.as_ref(), keys, base)
                .unwrap_err()
                .key,
            "body_template"
        );
        assert_eq!(
            template_text(None, file.as_ref(), keys, base).unwrap_err().key,
            "body_template_file"
        );
    }
}
