//! The mapping lifecycle: data-standards owners change a mapping or a code table, see what the
//! change does to real archived records, activate it, roll it back, with an audit trail.
//!
//! - Versions live in the store ([`store::MappingStore`]): each a self-contained
//!   [`MappingBundle`] (mapping text + every code table it reads), with its test report,
//!   uploader and status (candidate / active / retired). Files are how a mapping enters; the
//!   store is what runs.
//! - At start ([`open_runtime`], [`use_stored_mappings`]) each source runs its active stored
//!   version. A source without any stored version gets the configuration's mapping file
//!   imported and activated (audited as `system`). A configuration file that differs from every
//!   stored version is logged as a warning naming both, and the stored active version runs.
//! - [`upload`] parses the mapping (errors with file:line:col), runs its embedded tests,
//!   refuses a version number not greater than every stored one or another mapping id, and
//!   stores it as a candidate.
//! - [`dry_run`] replays the last N raw records of the source through the active version and a
//!   candidate and reports what would change ([`compare`]); nothing is written but the audit.
//! - [`activate`] and [`rollback`] switch the active version in one transaction (at most one
//!   active per source, even with several instances on one PostgreSQL store) and swap the
//!   running mapping; the audit entry carries the unified diff of the two versions.
//! - [`history`] lists every version and the audit entries; [`watch`] lets a running gateway
//!   pick up activations made by another instance.
//!
//! Every function takes the [`Runtime`], the acting user (`cli:<user>`, a token name, `system`)
//! and plain input, and returns a JSON-serialisable report or a [`LifecycleError`] with a stable
//! [`LifecycleError::code`].

pub mod bundle;
pub mod compare;
pub mod store;
pub mod textdiff;
mod watch;

pub use bundle::{BundleError, MappingBundle};
pub use compare::{Comparison, FieldChange, NewlyRejected, RecordRef, SampleDiff};
pub use store::{ActivationKind, ActivationRow, MappingStore, StoredVersion, Stores, VersionStatus};
pub use watch::{sync_active, watch, watch_every, WATCH_INTERVAL};

use crate::config::Resolved;
use crate::pipeline::prepare::Preparer;
use crate::runtime::Runtime;
use crate::store::{AuditEntry, AuditRecord, PayloadFormat, RawRecord, StoreError};
use chrono::{DateTime, Utc};
use compare::{Replayed, Side};
use normalizer::mapping::{run_tests, Mapping, MappingError, TestReport};
use normalizer::{Normalizer, Violation};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use store::{ActivateOutcome, Activation, NewVersion};

/// The actor of what the gateway does by itself (imports at start).
pub const SYSTEM_ACTOR: &str = "system";
/// Raw records a dry run replays unless told otherwise.
pub const DEFAULT_LAST_N: usize = 1000;
/// The most raw records one dry run replays.
pub const MAX_LAST_N: usize = 100_000;
/// Sample diffs kept per changed field in a dry-run report.
pub const SAMPLES_PER_FIELD: usize = 5;
/// Records listed as newly accepted / newly rejected in a dry-run report (counts are exact).
pub const LIST_LIMIT: usize = 1000;
/// Audit actions of the lifecycle start with this.
pub const AUDIT_PREFIX: &str = "mapping.";

/// How often an activation that lost a race with another instance is retried.
const ACTIVATION_ATTEMPTS: usize = 5;

/// The audit subject of a source.
pub fn audit_subject(source_id: &str) -> String {
    format!("source:{source_id}")
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

/// Why a lifecycle action was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    /// The source is not in the configuration.
    #[error("来源 {0:?} 未在配置中 / source {0:?} is not in the configuration")]
    UnknownSource(String),
    /// The mapping does not load (syntax, unknown key, bad path, missing code table, ...).
    #[error("映射无法加载 / the mapping does not load: {0}")]
    Invalid(MappingError),
    /// The mapping's embedded tests fail.
    #[error("映射 {mapping_id} v{version} 的内嵌测试未通过 / the embedded tests of mapping {mapping_id} v{version} fail: {tests}")]
    TestsFailed {
        /// The mapping's id.
        mapping_id: String,
        /// Its version.
        version: i64,
        /// Every failure.
        tests: TestSummary,
    },
    /// The mapping's `id` is not the source's.
    #[error("映射 id 应为 {expected:?}（来源 {source_id} 的映射），实际为 {found:?} / mapping id: expected {expected:?} (the mapping of source {source_id}), found {found:?}")]
    WrongMappingId {
        /// The source.
        source_id: String,
        /// The source's mapping id.
        expected: String,
        /// The uploaded mapping's id.
        found: String,
    },
    /// The version number is not greater than every stored version.
    #[error("映射 version = {version} 须大于已保存的最大版本 {newest}（请把 version 加 1） / mapping version = {version} must be greater than the newest stored version {newest} (increase `version`)")]
    VersionNotGreater {
        /// The uploaded version.
        version: i64,
        /// The newest stored version.
        newest: i64,
    },
    /// No such stored version.
    #[error(
        "来源 {source_id} 没有已保存的映射版本 {version} / source {source_id} has no stored mapping version {version}"
    )]
    VersionNotFound {
        /// The source.
        source_id: String,
        /// The version asked for.
        version: i64,
    },
    /// The source has no active version.
    #[error("来源 {0} 没有生效的映射版本 / source {0} has no active mapping version")]
    NoActiveVersion(String),
    /// The version is already the active one.
    #[error("来源 {source_id} 的映射版本 {version} 已经生效 / mapping version {version} is already active for source {source_id}")]
    AlreadyActive {
        /// The source.
        source_id: String,
        /// The version.
        version: i64,
    },
    /// A rollback target that is not earlier than the active version.
    #[error("回滚目标 {to} 应早于生效版本 {active}（启用更新的版本请用 activate） / rollback target {to} must be earlier than the active version {active} (use activate for a newer one)")]
    NotEarlier {
        /// The target.
        to: i64,
        /// The active version.
        active: i64,
    },
    /// Other instances kept changing the active version while this one tried.
    #[error("来源 {0} 的生效版本被其他实例同时修改，请重试 / the active version of source {0} kept changing under concurrent activations; try again")]
    Contended(String),
    /// A stored version no longer loads (e.g. the canonical schemas changed since).
    #[error("已保存的映射版本 {version} 无法加载 / stored mapping version {version} does not load: {error}")]
    StoredInvalid {
        /// The version.
        version: i64,
        /// Why.
        error: MappingError,
    },
    /// The validation rules could not be built.
    #[error("校验规则无法建立 / validation cannot be set up: {0}")]
    Normalizer(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl LifecycleError {
    /// A stable snake_case code for API answers (`unknown_source`, `tests_failed`, ...).
    pub fn code(&self) -> &'static str {
        match self {
            LifecycleError::UnknownSource(_) => "unknown_source",
            LifecycleError::Invalid(_) => "invalid_mapping",
            LifecycleError::TestsFailed { .. } => "tests_failed",
            LifecycleError::WrongMappingId { .. } => "wrong_mapping_id",
            LifecycleError::VersionNotGreater { .. } => "version_not_greater",
            LifecycleError::VersionNotFound { .. } => "version_not_found",
            LifecycleError::NoActiveVersion(_) => "no_active_version",
            LifecycleError::AlreadyActive { .. } => "already_active",
            LifecycleError::NotEarlier { .. } => "not_earlier",
            LifecycleError::Contended(_) => "contended",
            LifecycleError::StoredInvalid { .. } => "stored_version_invalid",
            LifecycleError::Normalizer(_) => "normalizer",
            LifecycleError::Store(_) => "store",
        }
    }

    /// True when the request was refused for what it asked (a user can fix it), false when the
    /// gateway failed (store down, corrupt data).
    pub fn is_refusal(&self) -> bool {
        !matches!(
            self,
            LifecycleError::Store(_)
                | LifecycleError::StoredInvalid { .. }
                | LifecycleError::Normalizer(_)
                | LifecycleError::Contended(_)
        )
    }
}

/// What an accepted upload stored.
#[derive(Debug, Clone, Serialize)]
pub struct UploadReport {
    /// The source.
    pub source_id: String,
    /// The mapping's id.
    pub mapping_id: String,
    /// The version stored.
    pub version: i64,
    /// Its fingerprint.
    pub fingerprint: String,
    /// Its description.
    pub description: String,
    /// `candidate`.
    pub status: VersionStatus,
    /// Who uploaded it.
    pub uploaded_by: String,
    /// When.
    pub uploaded_at: DateTime<Utc>,
    /// Its embedded tests (all passed).
    pub tests: TestSummary,
    /// The code-table files stored with it.
    pub code_tables: Vec<String>,
    /// The version active now (what a dry run compares with).
    pub active_version: Option<i64>,
}

/// What a dry run found.
#[derive(Debug, Clone, Serialize)]
pub struct DryRunReport {
    /// The source.
    pub source_id: String,
    /// The active version compared with.
    pub active_version: i64,
    /// The candidate.
    pub candidate_version: i64,
    /// How many raw records were asked for (the newest of the source).
    pub last_n: usize,
    /// The comparison: counts, records, changed fields.
    #[serde(flatten)]
    pub comparison: Comparison,
}

/// What an activation or rollback did.
#[derive(Debug, Clone, Serialize)]
pub struct ActivationReport {
    /// The source.
    pub source_id: String,
    /// The version active now.
    pub version: i64,
    /// The version active before.
    pub previous_version: Option<i64>,
    /// `activate` or `rollback`.
    pub kind: ActivationKind,
    /// Who.
    pub actor: String,
    /// When.
    pub at: DateTime<Utc>,
    /// Its fingerprint.
    pub fingerprint: String,
    /// Unified diff from the previous version to this one (mapping text, then code tables).
    pub diff: Vec<String>,
}

/// One version in a source's history.
#[derive(Debug, Clone, Serialize)]
pub struct VersionInfo {
    /// Version number.
    pub version: i64,
    /// Mapping id.
    pub mapping_id: String,
    /// Description.
    pub description: String,
    /// Fingerprint.
    pub fingerprint: String,
    /// Candidate, active or retired.
    pub status: VersionStatus,
    /// Who uploaded it (`system`: imported from the configuration's file).
    pub uploaded_by: String,
    /// When.
    pub uploaded_at: DateTime<Utc>,
    /// Its test result at upload.
    pub tests: TestSummary,
    /// When last made active.
    pub activated_at: Option<DateTime<Utc>>,
    /// Who last made it active.
    pub activated_by: Option<String>,
    /// When last retired.
    pub retired_at: Option<DateTime<Utc>>,
    /// Every time it was made active.
    pub activations: Vec<ActivationRow>,
}

/// A source's mapping history.
#[derive(Debug, Clone, Serialize)]
pub struct History {
    /// The source.
    pub source_id: String,
    /// The active version.
    pub active_version: Option<i64>,
    /// Every stored version, newest first.
    pub versions: Vec<VersionInfo>,
    /// The lifecycle's audit entries about the source (`mapping.*`), oldest first.
    pub audit: Vec<AuditRecord>,
}

// ------------------------------------------------------------------------------ start-up

/// Open the configured store and build the running gateway's [`Runtime`]: every source runs its
/// active stored mapping version (see [`use_stored_mappings`]).
pub async fn open_runtime(resolved: Resolved) -> Result<Runtime, LifecycleError> {
    let stores = store::open(&resolved.config).await?;
    let mut preparers = config_preparers(&resolved)?;
    use_stored_mappings(stores.mappings.as_ref(), &resolved, &mut preparers).await?;
    Ok(Runtime::new(
        Arc::new(resolved),
        stores.store,
        stores.outbox,
        stores.mappings,
        preparers,
    ))
}

/// One preparer per configured source, with the configuration's mapping files.
pub fn config_preparers(resolved: &Resolved) -> Result<HashMap<String, Preparer>, LifecycleError> {
    let normalizer =
        Arc::new(Normalizer::new(resolved.rules.clone()).map_err(|e| LifecycleError::Normalizer(e.to_string()))?);
    Ok(resolved
        .config
        .sources
        .iter()
        .zip(&resolved.mappings)
        .map(|(source, mapping)| {
            (
                source.id.clone(),
                Preparer {
                    source_id: source.id.clone(),
                    mapping: Arc::clone(mapping),
                    normalizer: Arc::clone(&normalizer),
                    record_key_path: source.record_key.clone(),
                    metrics: None,
                },
            )
        })
        .collect())
}

/// Put each source's active stored mapping version into its preparer. A source without any
/// stored version gets the configuration's mapping (already in `preparers`) imported and
/// activated, audited as `system`. When the configuration's file differs from every stored
/// version, a warning names both and the stored active version is kept. (An active version that
/// no longer loads is logged as an error and the configuration's file is used meanwhile.)
pub async fn use_stored_mappings(
    mappings: &dyn MappingStore,
    resolved: &Resolved,
    preparers: &mut HashMap<String, Preparer>,
) -> Result<(), LifecycleError> {
    for source in &resolved.config.sources {
        let Some(preparer) = preparers.get_mut(&source.id) else {
            continue;
        };
        let file_mapping = Arc::clone(&preparer.mapping);
        let mut active = mappings.active_mapping(&source.id).await?;
        if active.is_none() {
            let new = new_version(
                &source.id,
                &file_mapping,
                SYSTEM_ACTOR,
                TestSummary::from_report(&run_tests(&file_mapping, &preparer.normalizer)),
            );
            let audit = AuditEntry {
                actor: SYSTEM_ACTOR.to_string(),
                action: "mapping.import".into(),
                subject: audit_subject(&source.id),
                detail: json!({
                    "version": new.version,
                    "mapping_id": new.mapping_id,
                    "fingerprint": new.fingerprint,
                    "file": source.mapping,
                    "tests": {"total": new.tests.total, "passed": new.tests.passed},
                }),
            };
            if mappings.import_first_mapping(&new, &audit).await? {
                tracing::info!(
                    source = %source.id,
                    mapping = %new.mapping_id,
                    version = new.version,
                    fingerprint = %new.fingerprint,
                    "configured mapping file imported as the first stored version and activated"
                );
                if !new.tests.all_passed() {
                    tracing::warn!(source = %source.id, version = new.version, tests = %new.tests,
                        "the imported mapping's embedded tests fail");
                }
            }
            active = mappings.active_mapping(&source.id).await?;
        }
        let Some(active) = active else {
            return Err(LifecycleError::NoActiveVersion(source.id.clone()));
        };
        if active.fingerprint != file_mapping.fingerprint() {
            let stored = mappings.mapping_versions(&source.id).await?;
            match stored.iter().find(|v| v.fingerprint == file_mapping.fingerprint()) {
                Some(same) => tracing::info!(
                    source = %source.id,
                    config_file = %source.mapping.display(),
                    config_file_version = same.version,
                    active_version = active.version,
                    "the configured mapping file is stored version {}; the store's active version {} runs",
                    same.version,
                    active.version
                ),
                None => tracing::warn!(
                    source = %source.id,
                    config_file = %source.mapping.display(),
                    config_file_mapping = %file_mapping.id(),
                    config_file_version = file_mapping.version(),
                    config_file_fingerprint = %file_mapping.fingerprint(),
                    active_version = active.version,
                    active_fingerprint = %active.fingerprint,
                    "配置中的映射文件 {} ({} v{}, {}) 与已保存的所有版本都不同，仍使用存储中生效的版本 v{} ({})；\
                     如需使用该文件，请 gateway mappings upload 后 activate / the configured mapping file {} \
                     ({} v{}, {}) differs from every stored version; the store's active version v{} ({}) runs. \
                     To use the file: gateway mappings upload, then activate",
                    source.mapping.display(),
                    file_mapping.id(),
                    file_mapping.version(),
                    file_mapping.fingerprint(),
                    active.version,
                    active.fingerprint,
                    source.mapping.display(),
                    file_mapping.id(),
                    file_mapping.version(),
                    file_mapping.fingerprint(),
                    active.version,
                    active.fingerprint,
                ),
            }
            match load_stored(&active) {
                Ok(mapping) => preparer.mapping = Arc::new(mapping),
                // E.g. after an upgrade whose canonical schemas no longer accept it. Refusing to
                // start would also lock out the `mappings` commands that can fix it.
                Err(e) => tracing::error!(
                    source = %source.id,
                    active_version = active.version,
                    config_file = %source.mapping.display(),
                    error = %e,
                    "已保存的生效映射版本无法加载，暂用配置中的映射文件；请上传并启用新版本 / the store's active mapping \
                     version does not load; the configured file is used meanwhile: upload and activate a new version"
                ),
            }
        }
    }
    Ok(())
}

fn new_version(source_id: &str, mapping: &Mapping, uploaded_by: &str, tests: TestSummary) -> NewVersion {
    let bundle = MappingBundle::from_mapping(mapping);
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

/// Load a stored version's mapping from its bundle.
pub fn load_stored(version: &StoredVersion) -> Result<Mapping, LifecycleError> {
    MappingBundle {
        file_name: version.file_name.clone(),
        mapping_toml: version.mapping_toml.clone(),
        code_tables: version.code_tables.clone(),
    }
    .load()
    .map_err(|error| LifecycleError::StoredInvalid {
        version: version.version,
        error,
    })
}

// ------------------------------------------------------------------------------ actions

fn source_preparer(rt: &Runtime, source_id: &str) -> Result<Preparer, LifecycleError> {
    rt.preparers
        .get(source_id)
        .ok_or_else(|| LifecycleError::UnknownSource(source_id.to_string()))
}

async fn run_tests_blocking(mapping: Arc<Mapping>, normalizer: Arc<Normalizer>) -> Result<TestSummary, LifecycleError> {
    tokio::task::spawn_blocking(move || TestSummary::from_report(&run_tests(&mapping, &normalizer)))
        .await
        .map_err(|e| LifecycleError::Store(StoreError::Task(format!("mapping tests: {e}"))))
}

/// Audit a refusal (best effort: a failing audit is logged) and return the error.
async fn refused(
    rt: &Runtime,
    actor: &str,
    source_id: &str,
    action: &str,
    version: Option<i64>,
    err: LifecycleError,
) -> LifecycleError {
    let entry = AuditEntry {
        actor: actor.to_string(),
        action: format!("{action}_refused"),
        subject: audit_subject(source_id),
        detail: json!({ "version": version, "code": err.code(), "message": err.to_string() }),
    };
    if let Err(e) = rt.store.audit(&entry).await {
        tracing::warn!(error = %e, source = %source_id, "cannot audit a refused mapping action");
    }
    err
}

/// Upload a new mapping version for a source: parse it (errors with file:line:col), run its
/// embedded tests with the source's validation rules, check its id and version number, store it
/// as a candidate and audit it. Every refusal is audited too (`mapping.upload_refused`).
pub async fn upload(
    rt: &Runtime,
    actor: &str,
    source_id: &str,
    bundle: &MappingBundle,
) -> Result<UploadReport, LifecycleError> {
    let preparer = source_preparer(rt, source_id)?;
    let action = "mapping.upload";
    let mapping = match bundle.load() {
        Ok(m) => Arc::new(m),
        Err(e) => return Err(refused(rt, actor, source_id, action, None, LifecycleError::Invalid(e)).await),
    };
    let active = rt.mappings.active_mapping(source_id).await?;
    let expected_id = active
        .as_ref()
        .map_or_else(|| preparer.mapping.id().to_string(), |a| a.mapping_id.clone());
    if mapping.id() != expected_id {
        let err = LifecycleError::WrongMappingId {
            source_id: source_id.to_string(),
            expected: expected_id,
            found: mapping.id().to_string(),
        };
        return Err(refused(rt, actor, source_id, action, Some(mapping.version()), err).await);
    }
    let newest = rt.mappings.mapping_versions(source_id).await?.last().map(|v| v.version);
    if let Some(newest) = newest.filter(|n| *n >= mapping.version()) {
        let err = LifecycleError::VersionNotGreater {
            version: mapping.version(),
            newest,
        };
        return Err(refused(rt, actor, source_id, action, Some(mapping.version()), err).await);
    }
    let tests = run_tests_blocking(Arc::clone(&mapping), Arc::clone(&preparer.normalizer)).await?;
    if !tests.all_passed() {
        let err = LifecycleError::TestsFailed {
            mapping_id: mapping.id().to_string(),
            version: mapping.version(),
            tests,
        };
        return Err(refused(rt, actor, source_id, action, Some(mapping.version()), err).await);
    }
    let mut new = new_version(source_id, &mapping, actor, tests);
    new.file_name = bundle.file_name.clone();
    let code_tables: Vec<String> = new.code_tables.keys().cloned().collect();
    let audit = AuditEntry {
        actor: actor.to_string(),
        action: action.into(),
        subject: audit_subject(source_id),
        detail: json!({
            "version": new.version,
            "mapping_id": new.mapping_id,
            "fingerprint": new.fingerprint,
            "tests": {"total": new.tests.total, "passed": new.tests.passed},
            "code_tables": code_tables,
        }),
    };
    let stored = match rt.mappings.insert_mapping_version(&new, &audit).await {
        Ok(stored) => stored,
        // Another upload of the same number won the race.
        Err(StoreError::Conflict(_)) => {
            let newest = rt
                .mappings
                .mapping_versions(source_id)
                .await?
                .last()
                .map_or(new.version, |v| v.version);
            let err = LifecycleError::VersionNotGreater {
                version: new.version,
                newest,
            };
            return Err(refused(rt, actor, source_id, action, Some(mapping.version()), err).await);
        }
        Err(e) => return Err(e.into()),
    };
    tracing::info!(source = %source_id, version = stored.version, actor = %actor, "mapping version uploaded as candidate");
    Ok(UploadReport {
        source_id: stored.source_id,
        mapping_id: stored.mapping_id,
        version: stored.version,
        fingerprint: stored.fingerprint,
        description: stored.description,
        status: stored.status,
        uploaded_by: stored.uploaded_by,
        uploaded_at: stored.uploaded_at,
        tests: stored.tests,
        code_tables,
        active_version: active.map(|a| a.version),
    })
}

/// Parse a raw payload as the pipeline does.
fn parse_payload(raw: &RawRecord) -> Result<Value, String> {
    match raw.format {
        PayloadFormat::Json => serde_json::from_slice(&raw.payload).map_err(|e| e.to_string()),
        PayloadFormat::Xml => {
            normalizer::xml_tree::parse_xml(&raw.payload, &Default::default()).map_err(|e| e.to_string())
        }
    }
}

/// True when the canonical record carries its business key (what the pipeline needs to accept).
fn has_business_key(record: &Value) -> bool {
    let text = |p: &str| {
        record
            .pointer(p)
            .and_then(Value::as_str)
            .is_some_and(|s| !s.trim().is_empty())
    };
    record
        .get("case_type")
        .and_then(Value::as_str)
        .is_some_and(|t| t.parse::<normalizer::CaseType>().is_ok())
        && text("/agency/credit_code")
        && text("/case_number")
}

/// What `mapping` makes of a parsed record, with the pipeline's verdict.
fn side(normalizer: &Normalizer, mapping: &Mapping, value: &Value) -> Side {
    let outcome = normalizer.normalize(mapping, value);
    let mut accepted = outcome.is_accepted();
    let mut errors: Vec<Violation> = outcome.violations.into_iter().filter(Violation::is_error).collect();
    if accepted && !has_business_key(&outcome.record) {
        accepted = false;
        errors.push(Violation::error(
            "",
            "pipeline.no_business_key",
            None,
            "记录缺少业务主键（执法部门统一社会信用代码、案件类型、部门案件编号）",
            "record lacks its business key (agency credit code, case type, case number)",
        ));
    }
    Side {
        accepted,
        record: outcome.record,
        errors,
    }
}

/// Replay the last `last_n` raw records archived for the source (1..=[`MAX_LAST_N`]) through
/// its active version and through `candidate_version`, with the source's validation rules, and
/// report what would change. Nothing is written but an audit entry (`mapping.dry_run`).
pub async fn dry_run(
    rt: &Runtime,
    actor: &str,
    source_id: &str,
    candidate_version: i64,
    last_n: usize,
) -> Result<DryRunReport, LifecycleError> {
    let preparer = source_preparer(rt, source_id)?;
    let active = rt
        .mappings
        .active_mapping(source_id)
        .await?
        .ok_or_else(|| LifecycleError::NoActiveVersion(source_id.to_string()))?;
    let candidate = rt
        .mappings
        .mapping_version(source_id, candidate_version)
        .await?
        .ok_or_else(|| LifecycleError::VersionNotFound {
            source_id: source_id.to_string(),
            version: candidate_version,
        })?;
    let active_mapping = load_stored(&active)?;
    let candidate_mapping = load_stored(&candidate)?;
    let last_n = last_n.clamp(1, MAX_LAST_N);
    let mut raws = rt
        .mappings
        .last_raw_records(source_id, i64::try_from(last_n).unwrap_or(i64::MAX))
        .await?;
    raws.reverse(); // archive order
    let normalizer = Arc::clone(&preparer.normalizer);
    let comparison = tokio::task::spawn_blocking(move || {
        let items = raws.iter().map(|raw| match parse_payload(raw) {
            Ok(value) => Replayed {
                raw_id: raw.id,
                record_key: raw.record_key.clone(),
                active: side(&normalizer, &active_mapping, &value),
                candidate: side(&normalizer, &candidate_mapping, &value),
            },
            Err(message) => {
                let unreadable = Side {
                    accepted: false,
                    record: Value::Null,
                    errors: vec![Violation::error(
                        "",
                        "input.unreadable",
                        None,
                        format!("记录无法解析：{message}"),
                        format!("record cannot be parsed: {message}"),
                    )],
                };
                Replayed {
                    raw_id: raw.id,
                    record_key: raw.record_key.clone(),
                    active: unreadable.clone(),
                    candidate: unreadable,
                }
            }
        });
        compare::compare(items, SAMPLES_PER_FIELD, LIST_LIMIT)
    })
    .await
    .map_err(|e| LifecycleError::Store(StoreError::Task(format!("dry run: {e}"))))?;
    let report = DryRunReport {
        source_id: source_id.to_string(),
        active_version: active.version,
        candidate_version,
        last_n,
        comparison,
    };
    let c = &report.comparison;
    rt.store
        .audit(&AuditEntry {
            actor: actor.to_string(),
            action: "mapping.dry_run".into(),
            subject: audit_subject(source_id),
            detail: json!({
                "active_version": report.active_version,
                "candidate_version": candidate_version,
                "last_n": last_n,
                "total": c.total,
                "unchanged": c.unchanged,
                "changed": c.changed,
                "newly_rejected": c.newly_rejected,
                "newly_accepted": c.newly_accepted,
                "still_rejected": c.still_rejected,
                "changed_fields": c.field_changes.iter().map(|f| (f.pointer.clone(), f.count)).collect::<Vec<_>>(),
            }),
        })
        .await?;
    Ok(report)
}

/// Make a stored version the source's active one: its embedded tests must pass (re-run now with
/// the source's current validation rules). The previous active version is retired, the running
/// mapping is swapped for the next batch, and the audit entry (`mapping.activate`) names who,
/// when, what, with the unified diff from the previous version.
pub async fn activate(
    rt: &Runtime,
    actor: &str,
    source_id: &str,
    version: i64,
) -> Result<ActivationReport, LifecycleError> {
    change_active(rt, actor, source_id, version, ActivationKind::Activate).await
}

/// Activate an earlier version (lower number than the active one) again, audited as a rollback
/// (`mapping.rollback`).
pub async fn rollback(
    rt: &Runtime,
    actor: &str,
    source_id: &str,
    to_version: i64,
) -> Result<ActivationReport, LifecycleError> {
    change_active(rt, actor, source_id, to_version, ActivationKind::Rollback).await
}

async fn change_active(
    rt: &Runtime,
    actor: &str,
    source_id: &str,
    version: i64,
    kind: ActivationKind,
) -> Result<ActivationReport, LifecycleError> {
    let preparer = source_preparer(rt, source_id)?;
    let action = format!("mapping.{}", kind.as_str());
    let target = match rt.mappings.mapping_version(source_id, version).await? {
        Some(t) => t,
        None => {
            let err = LifecycleError::VersionNotFound {
                source_id: source_id.to_string(),
                version,
            };
            return Err(refused(rt, actor, source_id, &action, Some(version), err).await);
        }
    };
    let mapping = Arc::new(load_stored(&target)?);
    let tests = run_tests_blocking(Arc::clone(&mapping), Arc::clone(&preparer.normalizer)).await?;
    if !tests.all_passed() {
        let err = LifecycleError::TestsFailed {
            mapping_id: target.mapping_id.clone(),
            version,
            tests,
        };
        return Err(refused(rt, actor, source_id, &action, Some(version), err).await);
    }
    for _ in 0..ACTIVATION_ATTEMPTS {
        let active = rt.mappings.active_mapping(source_id).await?;
        let active_version = active.as_ref().map(|a| a.version);
        if active_version == Some(version) {
            let err = LifecycleError::AlreadyActive {
                source_id: source_id.to_string(),
                version,
            };
            return Err(refused(rt, actor, source_id, &action, Some(version), err).await);
        }
        if let (ActivationKind::Rollback, Some(active)) = (kind, active_version) {
            if version > active {
                let err = LifecycleError::NotEarlier { to: version, active };
                return Err(refused(rt, actor, source_id, &action, Some(version), err).await);
            }
        }
        let diff = textdiff::version_diff(active.as_ref(), &target);
        let audit = AuditEntry {
            actor: actor.to_string(),
            action: action.clone(),
            subject: audit_subject(source_id),
            detail: json!({
                "version": version,
                "previous_version": active_version,
                "mapping_id": target.mapping_id,
                "fingerprint": target.fingerprint,
                "previous_fingerprint": active.as_ref().map(|a| a.fingerprint.clone()),
                "diff": diff,
            }),
        };
        let activation = Activation {
            source_id: source_id.to_string(),
            version,
            expected_active: active_version,
            kind,
            actor: actor.to_string(),
        };
        match rt.mappings.activate_mapping(&activation, &audit).await {
            Ok(ActivateOutcome::Done(row)) => {
                rt.preparers.replace_mapping(source_id, Arc::clone(&mapping));
                tracing::info!(
                    source = %source_id,
                    version,
                    previous_version = ?row.previous_version,
                    kind = kind.as_str(),
                    actor = %actor,
                    "mapping version activated; it maps the next batch"
                );
                return Ok(ActivationReport {
                    source_id: source_id.to_string(),
                    version,
                    previous_version: row.previous_version,
                    kind,
                    actor: row.actor,
                    at: row.at,
                    fingerprint: target.fingerprint.clone(),
                    diff,
                });
            }
            Ok(ActivateOutcome::ActiveChanged { active }) => {
                tracing::info!(source = %source_id, ?active, "another instance changed the active version; retrying");
            }
            Err(StoreError::Conflict(_)) => {
                let err = LifecycleError::AlreadyActive {
                    source_id: source_id.to_string(),
                    version,
                };
                return Err(refused(rt, actor, source_id, &action, Some(version), err).await);
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(LifecycleError::Contended(source_id.to_string()))
}

/// Every stored version of a source (newest first) with status, uploader, times, test result
/// and activations, and the lifecycle's audit entries about the source.
pub async fn history(rt: &Runtime, source_id: &str) -> Result<History, LifecycleError> {
    let versions = rt.mappings.mapping_versions(source_id).await?;
    if versions.is_empty() && rt.preparers.get(source_id).is_none() {
        return Err(LifecycleError::UnknownSource(source_id.to_string()));
    }
    let activations = rt.mappings.mapping_activations(source_id).await?;
    let audit = rt.mappings.audit_about(&audit_subject(source_id), AUDIT_PREFIX).await?;
    let active_version = versions
        .iter()
        .find(|v| v.status == VersionStatus::Active)
        .map(|v| v.version);
    let versions = versions
        .into_iter()
        .rev()
        .map(|v| VersionInfo {
            activations: activations.iter().filter(|a| a.version == v.version).cloned().collect(),
            version: v.version,
            mapping_id: v.mapping_id,
            description: v.description,
            fingerprint: v.fingerprint,
            status: v.status,
            uploaded_by: v.uploaded_by,
            uploaded_at: v.uploaded_at,
            tests: v.tests,
            activated_at: v.activated_at,
            activated_by: v.activated_by,
            retired_at: v.retired_at,
        })
        .collect();
    Ok(History {
        source_id: source_id.to_string(),
        active_version,
        versions,
        audit,
    })
}
