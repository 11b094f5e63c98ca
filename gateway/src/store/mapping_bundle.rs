//! A mapping version as one self-contained value: the mapping text plus the contents of every
//! code-table file it references. Stored versions are bundles, so activating one never depends
//! on files on disk; uploads arrive as bundles (read from a folder by the CLI, or sent as JSON).

use normalizer::mapping::{join_relative, Mapping, MappingError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The name a bundle's mapping gets in messages when none is given.
pub const DEFAULT_FILE_NAME: &str = "mapping.toml";

fn default_file_name() -> String {
    DEFAULT_FILE_NAME.to_string()
}

/// A mapping and its code tables, as text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingBundle {
    /// The mapping file's name, used in load errors (`mapping.toml:42:1: ...`).
    #[serde(default = "default_file_name")]
    pub file_name: String,
    /// The mapping file's text (TOML).
    pub mapping_toml: String,
    /// Every other file the mapping reads, by its path relative to the mapping's folder ->
    /// contents (UTF-8): the code-table CSV files (`"penalty_kinds.csv"`) and the fragments of
    /// `include` (`"../nanchang-common/fields.toml"`) with their own code tables.
    #[serde(default)]
    pub code_tables: BTreeMap<String, String>,
}

/// Why a bundle could not be read from disk.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// A file could not be read.
    #[error("无法读取 {path}：{error} / cannot read {path}: {error}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// A code-table file is not UTF-8.
    #[error("代码表 {path} 不是 UTF-8 编码（请另存为 UTF-8） / code table {path} is not UTF-8 (save it as UTF-8)")]
    NotUtf8 {
        /// The file.
        path: PathBuf,
    },
}

impl MappingBundle {
    /// Read a bundle from disk: `path` is a mapping file, or a folder holding `mapping.toml`.
    /// Every code-table file the mapping names under `[tables]` is read from beside it. Nothing
    /// is checked here beyond reading: a file the mapping names but that is missing, or a
    /// mapping that does not parse, is reported when the bundle is loaded, with line and column.
    pub fn read(path: &Path) -> Result<MappingBundle, BundleError> {
        let file = if path.is_dir() {
            path.join(DEFAULT_FILE_NAME)
        } else {
            path.to_path_buf()
        };
        let mapping_toml = std::fs::read_to_string(&file).map_err(|error| BundleError::Read {
            path: file.clone(),
            error,
        })?;
        let dir = file.parent().unwrap_or_else(|| Path::new("."));
        let mut code_tables = BTreeMap::new();
        let (fragments, tables) = referenced_files(&mapping_toml);
        let mut wanted: Vec<String> = tables;
        for fragment in fragments {
            let path = dir.join(&fragment);
            let Some(text) = read_text(&path)? else {
                continue; // reported by `load` at the mapping's `include` key
            };
            let folder = fragment.rfind('/').map_or("", |i| &fragment[..i]);
            let (_, fragment_tables) = referenced_files(&text);
            wanted.extend(fragment_tables.iter().map(|t| join_relative(folder, t)));
            code_tables.insert(fragment, text);
        }
        for name in wanted {
            if let Some(text) = read_text(&dir.join(&name))? {
                code_tables.insert(name, text);
            }
        }
        Ok(MappingBundle {
            file_name: file.display().to_string(),
            mapping_toml,
            code_tables,
        })
    }

    /// The bundle of an already loaded mapping (e.g. the configuration's mapping file).
    pub fn from_mapping(mapping: &Mapping) -> MappingBundle {
        let code_tables = mapping
            .read_files()
            .map(|(file, bytes)| (file.to_string(), String::from_utf8_lossy(bytes).into_owned()))
            .collect();
        MappingBundle {
            file_name: mapping.file_name().to_string(),
            mapping_toml: mapping.source_text().to_string(),
            code_tables,
        }
    }

    /// Parse and check the mapping with its code tables (nothing is read from disk). Errors
    /// name the file, line and column.
    pub fn load(&self) -> Result<Mapping, MappingError> {
        let files: BTreeMap<String, Vec<u8>> = self
            .code_tables
            .iter()
            .map(|(name, text)| (name.clone(), text.as_bytes().to_vec()))
            .collect();
        Mapping::from_bundle(&self.mapping_toml, &self.file_name, &files)
    }
}

/// The `include` paths and the `file` values of the `[tables.*]` of a mapping or fragment,
/// when the text is TOML at all.
fn referenced_files(toml_text: &str) -> (Vec<String>, Vec<String>) {
    let Ok(doc) = toml_text.trim_start_matches('\u{FEFF}').parse::<toml::Table>() else {
        return (Vec::new(), Vec::new());
    };
    let strings = |v: Option<&toml::Value>| -> Vec<String> {
        v.and_then(toml::Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(toml::Value::as_str)
                    .map(|s| s.trim().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    let includes = strings(doc.get("include"));
    let mut files: Vec<String> = doc
        .get("tables")
        .and_then(toml::Value::as_table)
        .map(|tables| {
            tables
                .values()
                .filter_map(|t| t.get("file").and_then(toml::Value::as_str))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files.dedup();
    (includes, files)
}

/// The text of `path`; `None` when there is no such file (the load names it where it is
/// referenced).
fn read_text(path: &Path) -> Result<Option<String>, BundleError> {
    if !path.is_file() {
        return Ok(None);
    }
    let bytes = std::fs::read(path).map_err(|error| BundleError::Read {
        path: path.to_path_buf(),
        error,
    })?;
    String::from_utf8(bytes).map(Some).map_err(|_| BundleError::NotUtf8 {
        path: path.to_path_buf(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../mappings/nanchang-amr-penalty")
    }

    #[test]
    fn a_folder_reads_as_the_mapping_and_every_code_table_it_names() {
        let bundle = MappingBundle::read(&example()).unwrap();
        assert!(bundle.file_name.ends_with("mapping.toml"));
        let names: Vec<&str> = bundle.code_tables.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "case_sources.csv",
                "id_types.csv",
                "penalty_kinds.csv",
                "procedures.csv",
                "target_kinds.csv"
            ]
        );
        let from_files = Mapping::load(&example().join("mapping.toml")).unwrap();
        let loaded = bundle.load().unwrap();
        assert_eq!(loaded.fingerprint(), from_files.fingerprint());
        assert_eq!(
            MappingBundle::from_mapping(&from_files).load().unwrap().fingerprint(),
            loaded.fingerprint()
        );
    }

    #[test]
    fn a_mapping_that_includes_a_fragment_carries_the_fragment_and_its_tables() {
        let system = Path::new(env!("CARGO_MANIFEST_DIR")).join("../mappings/ganzhou-urban-management");
        let bundle = MappingBundle::read(&system.join("penalty.toml")).unwrap();
        let names: Vec<&str> = bundle.code_tables.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "case_sources.csv",
                "common.toml",
                "id_types.csv",
                "penalty_kinds.csv",
                "procedures.csv",
                "target_kinds.csv"
            ]
        );
        let from_files = Mapping::load(&system.join("penalty.toml")).unwrap();
        let loaded = bundle.load().unwrap();
        assert_eq!(loaded.fingerprint(), from_files.fingerprint());
        let rebuilt = MappingBundle::from_mapping(&from_files);
        assert_eq!(rebuilt.code_tables, bundle.code_tables);

        // A stored version does not depend on the files any more: a changed fragment on disk
        // changes a newly read bundle only.
        let mut edited = bundle.clone();
        edited.code_tables.insert(
            "common.toml".into(),
            bundle.code_tables["common.toml"].replace("required = true", "required = false"),
        );
        assert_ne!(edited.load().unwrap().fingerprint(), loaded.fingerprint());
    }

    #[test]
    fn a_bundle_round_trips_through_json() {
        let bundle = MappingBundle::read(&example().join("mapping.toml")).unwrap();
        let json = serde_json::to_string(&bundle).unwrap();
        let back: MappingBundle = serde_json::from_str(&json).unwrap();
        assert_eq!(back, bundle);
        let minimal: MappingBundle = serde_json::from_str(r#"{"mapping_toml": "id = 1"}"#).unwrap();
        assert_eq!(minimal.file_name, DEFAULT_FILE_NAME);
        let err = minimal.load().unwrap_err();
        assert_eq!(err.file, DEFAULT_FILE_NAME);
        assert!(err.line.is_some(), "{err}");
    }
}
