//! Start-up: open the configured store and put every source on its active stored mapping
//! version, importing the configuration's mapping file as the first version of a source that
//! has none (see [`crate::lifecycle`] for how versions change afterwards).

use super::state::Runtime;
use crate::config::Resolved;
use crate::prepare::Preparer;
use crate::store::{audit_subject, AuditEntry, MappingStore, NewVersion, StoreError, TestSummary, SYSTEM_ACTOR};
use normalizer::mapping_tests::run_tests;
use normalizer::Normalizer;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The validation rules could not be built.
    #[error("校验规则无法建立 / validation cannot be set up: {0}")]
    Normalizer(String),
    /// The attachment store cannot be opened.
    #[error(transparent)]
    Attachments(#[from] crate::attachments::objects::ObjectsError),
    /// `[personal_data]` keys cannot be read.
    #[error("个人信息密钥无法读取 / personal-data keys cannot be read: {0}")]
    PersonalData(String),
    /// A source has no active mapping version.
    #[error("来源 {0} 没有生效的映射版本 / source {0} has no active mapping version")]
    NoActiveVersion(String),
}

impl Runtime {
    /// Open the configured store and build the running gateway's [`Runtime`]: every source
    /// runs its active stored mapping version (see [`use_stored_mappings`]).
    pub async fn open(resolved: Resolved) -> Result<Runtime, StartupError> {
        let stores = crate::store::open(&resolved.config).await?;
        let mut preparers = config_preparers(&resolved)?;
        use_stored_mappings(stores.mappings.as_ref(), &resolved, &mut preparers).await?;
        let mut runtime = Runtime::new(Arc::new(resolved), stores, preparers);
        let attachments = crate::attachments::Attachments::open(
            &runtime.resolved.config,
            Arc::clone(&runtime.store),
            Some(runtime.metrics.attachments().clone()),
            &runtime.systems,
        )?;
        runtime.attachments = Some(Arc::new(attachments));
        Ok(runtime)
    }
}

/// One preparer per configured source, with the configuration's mapping files.
pub fn config_preparers(resolved: &Resolved) -> Result<HashMap<String, Preparer>, StartupError> {
    let normalizer =
        Arc::new(Normalizer::new(resolved.rules.clone()).map_err(|e| StartupError::Normalizer(e.to_string()))?);
    let sealer = resolved
        .config
        .personal_data
        .keyring(&resolved.config.base_dir)
        .map_err(StartupError::PersonalData)?
        .map(|keys| crate::prepare::personal::Sealer::new(Arc::new(keys)));
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
                    agencies: Arc::new(source.agency_scope()),
                    limits: resolved.config.limits,
                    attachments: Arc::new(resolved.config.attachments.clone()),
                    sealer: sealer.clone(),
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
) -> Result<(), StartupError> {
    for source in &resolved.config.sources {
        let Some(preparer) = preparers.get_mut(&source.id) else {
            continue;
        };
        let file_mapping = Arc::clone(&preparer.mapping);
        let mut active = mappings.active_mapping(&source.id).await?;
        if active.is_none() {
            let new = NewVersion::of_mapping(
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
            return Err(StartupError::NoActiveVersion(source.id.clone()));
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
            match active.load() {
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
