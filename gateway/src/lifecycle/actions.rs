//! The lifecycle's actions: upload a candidate, dry-run it on archived records, activate it,
//! roll back, and the history of a source's versions.

use super::compare::{self, Comparison, Replayed, Side};
use super::error::{load_stored, LifecycleError};
use super::textdiff;
use crate::prepare::Preparer;
use crate::runtime::Runtime;
use crate::store::{
    audit_subject, ActivateOutcome, Activation, ActivationKind, ActivationRow, AuditEntry, AuditRecord, MappingBundle,
    NewVersion, PayloadFormat, RawRecord, StoreError, TestSummary, VersionStatus,
};
use chrono::{DateTime, Utc};
use normalizer::mapping::Mapping;
use normalizer::mapping_tests::run_tests;
use normalizer::{Normalizer, Violation};
use serde::Serialize;
use serde_json::{json, Value};
use std::sync::Arc;

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
    let mut new = NewVersion::of_mapping(source_id, &mapping, actor, tests);
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
        // Shown and audited with ID numbers masked (a test input may name a person).
        let diff: Vec<String> = textdiff::version_diff(active.as_ref(), &target)
            .into_iter()
            .map(|line| normalizer::standards::mask_identifiers(&line).into_owned())
            .collect();
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
