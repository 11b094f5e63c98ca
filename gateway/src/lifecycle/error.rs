//! Why a lifecycle action was refused or failed, with stable codes for API answers.

use crate::runtime::StartupError;
use crate::store::{StoreError, StoredVersion, TestSummary};
use normalizer::mapping::{Mapping, MappingError};

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
    /// The attachment store could not be opened.
    #[error("{0}")]
    Attachments(String),
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
            LifecycleError::Attachments(_) => "attachments",
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
                | LifecycleError::Attachments(_)
                | LifecycleError::Contended(_)
        )
    }
}

impl From<StartupError> for LifecycleError {
    fn from(e: StartupError) -> Self {
        match e {
            StartupError::Store(e) => LifecycleError::Store(e),
            StartupError::Normalizer(m) | StartupError::PersonalData(m) => LifecycleError::Normalizer(m),
            StartupError::NoActiveVersion(s) => LifecycleError::NoActiveVersion(s),
            StartupError::Attachments(e) => LifecycleError::Attachments(e.to_string()),
        }
    }
}

/// Load a stored version's mapping from its bundle.
pub fn load_stored(version: &StoredVersion) -> Result<Mapping, LifecycleError> {
    version.load().map_err(|error| LifecycleError::StoredInvalid {
        version: version.version,
        error,
    })
}

// ------------------------------------------------------------------------------ actions
