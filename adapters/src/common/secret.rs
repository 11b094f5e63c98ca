//! Secrets of source and sink settings (connection URLs with passwords, tokens, signing keys):
//! given inline, in an environment variable (`<name>_env`) or in a file (`<name>_file`, e.g. a
//! mounted secret). A [`Secret`] never shows its value in `Debug` or `Display`, and neither does
//! a [`Redacted`] setting.

use std::fmt;
use std::path::{Path, PathBuf};

/// A secret value; formatting it prints `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wrap a value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value, for handing to a client. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

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

/// Where a secret comes from: at most one of the three may be given.
#[derive(Debug, Clone, Copy, Default)]
pub struct SecretSource<'a> {
    /// The setting's name, e.g. `url` (the others are `url_env` and `url_file`).
    pub name: &'a str,
    /// Given inline.
    pub inline: Option<&'a str>,
    /// Name of the environment variable holding it.
    pub env: Option<&'a str>,
    /// File holding it (relative to `base`); surrounding whitespace is dropped.
    pub file: Option<&'a Path>,
}

impl<'a> SecretSource<'a> {
    /// The source of a `url` setting given as `url`, `url_env` or `url_file`.
    pub fn url(inline: &'a Option<String>, env: &'a Option<String>, file: &'a Option<PathBuf>) -> SecretSource<'a> {
        SecretSource {
            name: "url",
            inline: inline.as_deref(),
            env: env.as_deref(),
            file: file.as_deref(),
        }
    }
}

impl SecretSource<'_> {
    /// Read the secret. `Ok(None)` when none of the three is given; an error (in Chinese and
    /// English, naming the setting but never the value) when more than one is given, the
    /// variable is unset or the file unreadable.
    pub fn resolve(&self, base: &Path) -> Result<Option<Secret>, String> {
        let name = self.name;
        let given = [self.inline.is_some(), self.env.is_some(), self.file.is_some()]
            .iter()
            .filter(|b| **b)
            .count();
        if given > 1 {
            return Err(format!(
                "{name}、{name}_env、{name}_file 只能给出一个 / give only one of {name}, {name}_env, {name}_file"
            ));
        }
        if let Some(v) = self.inline {
            return Ok(Some(Secret::new(v)));
        }
        if let Some(var) = self.env {
            return match std::env::var(var) {
                Ok(v) if !v.trim().is_empty() => Ok(Some(Secret::new(v.trim()))),
                _ => Err(format!(
                    "{name}_env: 环境变量 {var} 未设置或为空 / environment variable {var} is not set or empty"
                )),
            };
        }
        if let Some(f) = self.file {
            let full = if f.is_absolute() { f.to_path_buf() } else { base.join(f) };
            return match std::fs::read_to_string(&full) {
                Ok(v) if !v.trim().is_empty() => Ok(Some(Secret::new(v.trim()))),
                Ok(_) => Err(format!("{name}_file: 文件为空 / {} is empty", full.display())),
                Err(e) => Err(format!("{name}_file: 无法读取 / cannot read {}: {e}", full.display())),
            };
        }
        Ok(None)
    }

    /// Like [`SecretSource::resolve`], but a missing secret is an error.
    pub fn require(&self, base: &Path) -> Result<Secret, String> {
        let name = self.name;
        self.resolve(base)?.ok_or_else(|| {
            format!("需要 {name}、{name}_env 或 {name}_file 之一 / one of {name}, {name}_env, {name}_file is required")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_prints_its_value() {
        let s = Secret::new("pw-123");
        assert_eq!(format!("{s:?} {s}"), "<redacted> <redacted>");
        assert_eq!(s.expose(), "pw-123");
    }

    #[test]
    fn redacted_text_never_prints() {
        assert_eq!(format!("{:?}", Redacted("pw".into())), "<redacted>");
    }

    #[test]
    fn secret_comes_from_exactly_one_place() {
        let base = Path::new("/");
        let two = SecretSource {
            name: "url",
            inline: Some("a"),
            env: Some("B"),
            file: None,
        };
        assert!(two
            .resolve(base)
            .unwrap_err()
            .contains("give only one of url, url_env, url_file"));
        let none = SecretSource {
            name: "token",
            ..Default::default()
        };
        assert_eq!(none.resolve(base).unwrap(), None);
        assert!(none.require(base).unwrap_err().contains("token_env"));
    }

    #[test]
    fn secret_file_is_read_relative_to_the_base_and_trimmed() {
        let dir = std::env::temp_dir().join(format!("gw-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("token"), "  abc\n").unwrap();
        let src = SecretSource {
            name: "token",
            file: Some(Path::new("token")),
            ..Default::default()
        };
        assert_eq!(src.require(&dir).unwrap().expose(), "abc");
        let missing = SecretSource {
            name: "token",
            file: Some(Path::new("nope")),
            ..Default::default()
        };
        assert!(missing.resolve(&dir).unwrap_err().starts_with("token_file"));
        let unset = SecretSource {
            name: "url",
            env: Some("GW_SURELY_UNSET_VARIABLE_42"),
            ..Default::default()
        };
        assert!(unset.resolve(&dir).unwrap_err().contains("GW_SURELY_UNSET_VARIABLE_42"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
