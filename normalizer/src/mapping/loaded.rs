//! A loaded mapping ([`Mapping`]): loading it from a file, from text or from a bundle, its
//! identity and fingerprint, and applying it to source records ([`Mapped`]).

use super::apply;
use super::compile::{self, CaseTypeRule, Compiled, TableSource};
use super::error::{MappingError, MappingErrorKind};
use super::test_case::TestCase;
use crate::{CaseType, Violation};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// A loaded, compiled mapping.
#[derive(Debug)]
pub struct Mapping {
    compiled: Compiled,
    file_name: String,
    source_text: String,
    fingerprint: String,
    personal: Vec<String>,
}

/// The result of applying a mapping to one source record.
#[derive(Debug, Clone)]
pub struct Mapped {
    /// The canonical record built.
    pub record: Value,
    /// Problems met while mapping (unmapped code, unreadable date, ...).
    pub violations: Vec<Violation>,
}

impl Mapping {
    /// Load a mapping file; code tables are read relative to its folder.
    pub fn load(path: &Path) -> Result<Mapping, MappingError> {
        let display = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| MappingError {
            kind: MappingErrorKind::Io,
            file: display.clone(),
            line: None,
            column: None,
            message_zh: format!("无法读取映射文件：{e}"),
            message_en: format!("cannot read the mapping file: {e}"),
        })?;
        let base = path.parent().unwrap_or_else(|| Path::new("."));
        Mapping::from_toml_str(&text, &display, base)
    }

    /// Load a mapping from its text. `file_name` is used in error messages; code tables are
    /// read relative to `base_dir`.
    pub fn from_toml_str(text: &str, file_name: &str, base_dir: &Path) -> Result<Mapping, MappingError> {
        Mapping::compile(text, file_name, TableSource::Dir(base_dir))
    }

    /// Load a mapping from its text and the contents of the files it reads (its CSV code tables
    /// and `include` fragments), keyed by the path as written in the mapping (e.g.
    /// `"penalty_kinds.csv"`; a fragment's tables by their path relative to the mapping's
    /// folder): a self-contained bundle, nothing is read from disk. A table whose file is not
    /// in `table_files` is a load error at its `file` key; files nothing names are ignored.
    /// The fingerprint equals that of the same mapping loaded from files with [`Mapping::load`].
    pub fn from_bundle(
        text: &str,
        file_name: &str,
        table_files: &BTreeMap<String, Vec<u8>>,
    ) -> Result<Mapping, MappingError> {
        Mapping::compile(text, file_name, TableSource::Files(table_files))
    }

    fn compile(text: &str, file_name: &str, tables_from: TableSource<'_>) -> Result<Mapping, MappingError> {
        let text = text.strip_prefix('\u{FEFF}').unwrap_or(text);
        let compiled = compile::compile(text, file_name, tables_from)?;
        let mut hash = Fnv64::new();
        hash.write(text.as_bytes());
        for t in &compiled.table_files {
            hash.write(&[0]);
            hash.write(t.table.as_bytes());
            hash.write(&[0]);
            hash.write(&t.bytes);
        }
        for f in &compiled.include_files {
            hash.write(&[1]);
            hash.write(f.file.as_bytes());
            hash.write(&[0]);
            hash.write(f.text.as_bytes());
        }
        let mut personal = Vec::new();
        compile::personal_pointers(&compiled.fields, "", &mut personal);
        Ok(Mapping {
            compiled,
            personal,
            file_name: file_name.to_string(),
            source_text: text.to_string(),
            fingerprint: format!("fnv1a64:{:016x}", hash.finish()),
        })
    }

    /// The mapping's `id`.
    pub fn id(&self) -> &str {
        &self.compiled.id
    }

    /// The mapping's `version`.
    pub fn version(&self) -> i64 {
        self.compiled.version
    }

    /// The mapping's `description`.
    pub fn description(&self) -> &str {
        &self.compiled.description
    }

    /// The case type when the mapping declares it as a constant.
    pub fn case_type(&self) -> Option<CaseType> {
        match &self.compiled.case_type {
            Some(CaseTypeRule::Const(t)) => Some(*t),
            _ => None,
        }
    }

    /// The file name given at load time.
    pub fn file_name(&self) -> &str {
        &self.file_name
    }

    /// The text of the mapping file, to store with each mapping version.
    pub fn source_text(&self) -> &str {
        &self.source_text
    }

    /// A stable fingerprint of the mapping file and the CSV code tables it reads
    /// (`fnv1a64:` + 16 hex digits). It changes when either changes; it is not a security hash.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Every file the mapping read besides itself, as (path relative to the mapping's folder,
    /// contents): the fragments of `include`, then the CSV code tables in declaration order (a
    /// file two tables share appears twice). With [`Mapping::source_text`] this is everything
    /// [`Mapping::from_bundle`] needs.
    pub fn read_files(&self) -> impl Iterator<Item = (&str, &[u8])> {
        let fragments = self
            .compiled
            .include_files
            .iter()
            .map(|f| (f.file.as_str(), f.text.as_bytes()));
        let tables = self
            .compiled
            .table_files
            .iter()
            .map(|t| (t.file.as_str(), t.bytes.as_slice()));
        fragments.chain(tables)
    }

    /// Which source fields each canonical field is read from: JSON pointer of the canonical
    /// field (an item of an `each` list written with `*`, e.g. `/officers/*/cert_no`) to the
    /// source paths as written in the mapping (an item of an `each` list as `path[*].child`).
    /// Constants read nothing and are left out. For showing a clerk where a violation's value
    /// came from in the raw record.
    pub fn source_fields(&self) -> BTreeMap<String, Vec<String>> {
        let mut out = BTreeMap::new();
        if let Some(CaseTypeRule::Computed(field)) = &self.compiled.case_type {
            collect_source_fields(std::slice::from_ref(field.as_ref()), "", "", &mut out);
        }
        collect_source_fields(&self.compiled.fields, "", "", &mut out);
        out
    }

    /// The fields declared `supplement = true` (待补录): what a record may lack and still be
    /// accepted, awaiting completion by its department.
    pub fn supplements(&self) -> &[super::SupplementField] {
        &self.compiled.supplements
    }

    /// The JSON pointers of the canonical fields declared `personal = true`, in file order; an
    /// item of a list is written `*` (`/witnesses/*/phone`).
    pub fn personal_fields(&self) -> &[String] {
        &self.personal
    }

    /// The embedded test cases, in file order.
    pub fn tests(&self) -> &[TestCase] {
        &self.compiled.tests
    }

    /// Apply the mapping to one source record.
    pub fn apply(&self, source: &Value) -> Mapped {
        let mut record = Value::Null;
        let violations = apply::apply_into(&self.compiled, source, &mut record);
        Mapped { record, violations }
    }

    /// Apply the mapping to one source record, writing the canonical record into `record` and
    /// returning the violations. The keys and objects `record` already holds are reused, so
    /// passing the previous record of a stream saves building them again; the result is the
    /// same as [`Mapping::apply`]'s whatever `record` held.
    pub fn apply_into(&self, source: &Value, record: &mut Value) -> Vec<Violation> {
        apply::apply_into(&self.compiled, source, record)
    }
}

/// FNV-1a, 64 bit: small, stable across builds and platforms.
struct Fnv64(u64);

impl Fnv64 {
    fn new() -> Self {
        Fnv64(0xcbf2_9ce4_8422_2325)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Add the source paths of `fields` (under canonical `pointer_prefix` and source `path_prefix`)
/// to `out`.
fn collect_source_fields(
    fields: &[compile::Field],
    pointer_prefix: &str,
    path_prefix: &str,
    out: &mut BTreeMap<String, Vec<String>>,
) {
    use compile::{ConcatPart, Source};
    for field in fields {
        let pointer = format!("{pointer_prefix}{}", field.target.pointer());
        let prefixed = |p: &super::path::SourcePath| format!("{path_prefix}{}", p.text());
        let paths: Vec<String> = match &field.source {
            Source::Paths(paths) => paths.iter().map(prefixed).collect(),
            Source::Concat { parts, .. } => parts
                .iter()
                .filter_map(|p| match p {
                    ConcatPart::Path(p) => Some(prefixed(p)),
                    ConcatPart::Const(_) => None,
                })
                .collect(),
            Source::Const(_) => Vec::new(),
            Source::Each { path, fields, .. } => {
                collect_source_fields(fields, &format!("{pointer}/*"), &format!("{}[*].", prefixed(path)), out);
                vec![prefixed(path)]
            }
            Source::Zip { members, .. } => members.iter().map(|(_, p)| prefixed(p)).collect(),
        };
        if !paths.is_empty() {
            let entry = out.entry(pointer).or_default();
            for p in paths {
                if !entry.contains(&p) {
                    entry.push(p);
                }
            }
        }
    }
}
