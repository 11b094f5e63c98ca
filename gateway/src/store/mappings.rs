//! What the mapping lifecycle needs from the store, behind one interface for both backends
//! (`store/mappings_sqlite.rs`, `store/mappings_postgres.rs`).
//!
//! A stored mapping version is a self-contained bundle (the mapping text and the contents of
//! every code table it reads) with its test report, uploader and status. At most one version of
//! a source is `active`: a unique partial index enforces it, and activation runs in one
//! transaction that serialises with every other activation of the same source (PostgreSQL: a
//! transaction-scoped advisory lock per source; SQLite: an immediate transaction). The audit
//! entry of every change is written in the same transaction as the change.

use super::types::{AuditEntry, AuditRecord, RawRecord};
use super::StoreResult;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use normalizer::mapping::{Mapping, MappingError};
use normalizer::mapping_tests::TestReport;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// Status of a stored mapping version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VersionStatus {
    /// Uploaded, never active.
    Candidate,
    /// The version the source's records are mapped with (one per source).
    Active,
    /// Was active, replaced by another version.
    Retired,
}

impl VersionStatus {
    /// Name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            VersionStatus::Candidate => "candidate",
            VersionStatus::Active => "active",
            VersionStatus::Retired => "retired",
        }
    }

    /// Parse a stored name.
    pub fn parse(s: &str) -> Option<VersionStatus> {
        match s {
            "candidate" => Some(VersionStatus::Candidate),
            "active" => Some(VersionStatus::Active),
            "retired" => Some(VersionStatus::Retired),
            _ => None,
        }
    }
}

/// How a version became active.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActivationKind {
    /// The configuration's mapping file imported as the source's first version at start.
    Import,
    /// An operator activated it.
    Activate,
    /// An operator rolled back to it.
    Rollback,
}

impl ActivationKind {
    /// Name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            ActivationKind::Import => "import",
            ActivationKind::Activate => "activate",
            ActivationKind::Rollback => "rollback",
        }
    }

    /// Parse a stored name.
    pub fn parse(s: &str) -> Option<ActivationKind> {
        match s {
            "import" => Some(ActivationKind::Import),
            "activate" => Some(ActivationKind::Activate),
            "rollback" => Some(ActivationKind::Rollback),
            _ => None,
        }
    }
}

/// A mapping version to store.
#[derive(Debug, Clone)]
pub struct NewVersion {
    /// The source it is for.
    pub source_id: String,
    /// The mapping's `id`.
    pub mapping_id: String,
    /// The mapping's `version`.
    pub version: i64,
    /// [`normalizer::mapping::Mapping::fingerprint`].
    pub fingerprint: String,
    /// The mapping's `description`.
    pub description: String,
    /// The mapping file's name (for messages).
    pub file_name: String,
    /// The mapping text.
    pub mapping_toml: String,
    /// Every code-table file it reads: file name as written in the mapping -> contents.
    pub code_tables: BTreeMap<String, String>,
    /// Who uploaded it (`system` for imports).
    pub uploaded_by: String,
    /// The result of its embedded tests at upload.
    pub tests: TestSummary,
}

/// A stored mapping version.
#[derive(Debug, Clone, Serialize)]
pub struct StoredVersion {
    /// The source it is for.
    pub source_id: String,
    /// The mapping's `id`.
    pub mapping_id: String,
    /// The mapping's `version`.
    pub version: i64,
    /// Fingerprint of the text and code tables.
    pub fingerprint: String,
    /// The mapping's `description`.
    pub description: String,
    /// The mapping file's name (for messages).
    pub file_name: String,
    /// The mapping text.
    pub mapping_toml: String,
    /// Every code-table file it reads: file name -> contents.
    pub code_tables: BTreeMap<String, String>,
    /// Candidate, active or retired.
    pub status: VersionStatus,
    /// Who uploaded it.
    pub uploaded_by: String,
    /// When.
    pub uploaded_at: DateTime<Utc>,
    /// The result of its embedded tests at upload.
    pub tests: TestSummary,
    /// When it was last made active.
    pub activated_at: Option<DateTime<Utc>>,
    /// Who last made it active.
    pub activated_by: Option<String>,
    /// When it was last retired.
    pub retired_at: Option<DateTime<Utc>>,
}

/// The active version of a source, as the running gateways poll it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActiveMapping {
    /// Source id.
    pub source_id: String,
    /// Active version.
    pub version: i64,
    /// Its fingerprint.
    pub fingerprint: String,
}

/// A request to make a version active.
#[derive(Debug, Clone)]
pub struct Activation {
    /// Source id.
    pub source_id: String,
    /// The version to activate.
    pub version: i64,
    /// The version the caller saw active (None: none). If another version is active when the
    /// transaction runs, nothing changes and [`ActivateOutcome::ActiveChanged`] is returned.
    pub expected_active: Option<i64>,
    /// Activate or rollback.
    pub kind: ActivationKind,
    /// Who.
    pub actor: String,
}

/// One activation in a source's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActivationRow {
    /// Source id.
    pub source_id: String,
    /// The version made active.
    pub version: i64,
    /// The version active before (None for the first).
    pub previous_version: Option<i64>,
    /// Import, activate or rollback.
    pub kind: ActivationKind,
    /// Who.
    pub actor: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// What an activation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActivateOutcome {
    /// The version is active now.
    Done(ActivationRow),
    /// Another version was active than the caller expected: nothing was changed.
    ActiveChanged {
        /// The version active now.
        active: Option<i64>,
    },
}

/// The store's side of the mapping lifecycle.
#[async_trait]
pub trait MappingStore: Send + Sync {
    /// Every stored version of a source, oldest version first.
    async fn mapping_versions(&self, source_id: &str) -> StoreResult<Vec<StoredVersion>>;

    /// One stored version.
    async fn mapping_version(&self, source_id: &str, version: i64) -> StoreResult<Option<StoredVersion>>;

    /// The source's active version.
    async fn active_mapping(&self, source_id: &str) -> StoreResult<Option<StoredVersion>>;

    /// The active version of every source (cheap: for polling).
    async fn active_mappings(&self) -> StoreResult<Vec<ActiveMapping>>;

    /// Store a candidate version and the audit entry in one transaction. A version number not
    /// greater than every stored version of the source is a [`StoreError::Conflict`].
    async fn insert_mapping_version(&self, new: &NewVersion, audit: &AuditEntry) -> StoreResult<StoredVersion>;

    /// When the source has no stored version yet: store `new` as its active version (activation
    /// kind `import`, by `new.uploaded_by`) with the audit entry, and return true. When it has
    /// one (e.g. another instance imported first), change nothing and return false.
    async fn import_first_mapping(&self, new: &NewVersion, audit: &AuditEntry) -> StoreResult<bool>;

    /// Make a stored version active and retire the one active before, provided the active version
    /// is still `expected_active`; record the activation and the audit entry, all in one
    /// transaction. An unknown version is [`StoreError::NotFound`].
    async fn activate_mapping(&self, activation: &Activation, audit: &AuditEntry) -> StoreResult<ActivateOutcome>;

    /// Every activation of a source, oldest first.
    async fn mapping_activations(&self, source_id: &str) -> StoreResult<Vec<ActivationRow>>;

    /// The last `limit` raw records archived for a source, newest first.
    async fn last_raw_records(&self, source_id: &str, limit: i64) -> StoreResult<Vec<RawRecord>>;

    /// Audit entries about `subject` whose action starts with `action_prefix`, oldest first.
    async fn audit_about(&self, subject: &str, action_prefix: &str) -> StoreResult<Vec<AuditRecord>>;
}

/// One failed embedded test.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestFailure {
    /// The test's name.
    pub name: String,
    /// Every difference found.
    pub problems: Vec<String>,
}

/// The result of a mapping's embedded tests, as stored with each version.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestSummary {
    /// Tests run.
    pub total: usize,
    /// Tests passed.
    pub passed: usize,
    /// The failed tests with their problems.
    pub failures: Vec<TestFailure>,
}

impl TestSummary {
    /// Summarise a test report.
    pub fn from_report(report: &TestReport) -> TestSummary {
        let failures: Vec<TestFailure> = report
            .failures()
            .into_iter()
            .map(|c| TestFailure {
                name: c.name.clone(),
                problems: c.problems.clone(),
            })
            .collect();
        TestSummary {
            total: report.cases.len(),
            passed: report.cases.len() - failures.len(),
            failures,
        }
    }

    /// True when every test passed.
    pub fn all_passed(&self) -> bool {
        self.failures.is_empty()
    }
}

impl fmt::Display for TestSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} 个测试，{} 个通过，{} 个失败 / {} tests, {} passed, {} failed",
            self.total,
            self.passed,
            self.failures.len(),
            self.total,
            self.passed,
            self.failures.len()
        )?;
        for failure in &self.failures {
            write!(f, "\n  FAIL  {}", failure.name)?;
            for p in &failure.problems {
                write!(f, "\n        - {p}")?;
            }
        }
        Ok(())
    }
}

impl NewVersion {
    /// A new version of `source_id` holding `mapping` (bundled with its code tables).
    pub fn of_mapping(source_id: &str, mapping: &Mapping, uploaded_by: &str, tests: TestSummary) -> NewVersion {
        let bundle = super::mapping_bundle::MappingBundle::from_mapping(mapping);
        NewVersion {
            source_id: source_id.to_string(),
            mapping_id: mapping.id().to_string(),
            version: mapping.version(),
            fingerprint: mapping.fingerprint().to_string(),
            description: mapping.description().to_string(),
            file_name: bundle.file_name,
            mapping_toml: bundle.mapping_toml,
            code_tables: bundle.code_tables,
            uploaded_by: uploaded_by.to_string(),
            tests,
        }
    }
}

impl StoredVersion {
    /// Load this version's mapping from its bundle.
    pub fn load(&self) -> Result<Mapping, MappingError> {
        super::mapping_bundle::MappingBundle {
            file_name: self.file_name.clone(),
            mapping_toml: self.mapping_toml.clone(),
            code_tables: self.code_tables.clone(),
        }
        .load()
    }
}

/// The actor of changes the gateway makes by itself (importing a configured mapping file).
pub const SYSTEM_ACTOR: &str = "system";

/// The audit subject of a source.
pub fn audit_subject(source_id: &str) -> String {
    format!("source:{source_id}")
}
