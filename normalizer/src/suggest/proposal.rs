//! What the proposer is asked and what it answers: options, proposals, errors.

use crate::CaseType;

/// Confidence from which a proposal is written active (not commented out).
pub const DEFAULT_THRESHOLD: f64 = 0.6;

/// What to propose.
#[derive(Debug, Clone)]
pub struct SuggestOptions {
    /// The mapping's `id`.
    pub id: String,
    /// The case type; guessed from the field names when absent.
    pub case_type: Option<CaseType>,
    /// Confidence from which proposals are active.
    pub threshold: f64,
    /// Code tables written inline (`values = {...}`) instead of CSV files beside the mapping.
    pub inline_tables: bool,
    /// How many samples become embedded tests (at most 2 are useful to read).
    pub tests: usize,
}

impl Default for SuggestOptions {
    fn default() -> Self {
        SuggestOptions {
            id: "proposed-mapping".into(),
            case_type: None,
            threshold: DEFAULT_THRESHOLD,
            inline_tables: false,
            tests: 2,
        }
    }
}

/// Why no proposal could be made.
#[derive(Debug, thiserror::Error)]
pub enum SuggestError {
    /// No sample record is a JSON object (or an XML element with children).
    #[error("样例中没有记录（需要 JSON 对象或 XML 记录元素） / the samples hold no records (JSON objects or XML record elements)")]
    NoRecords,
    /// `case_type` is `plan`, which the proposer does not know.
    #[error("不支持为检查计划提议映射（只支持 inspection、penalty、coercion） / plans are not supported: use inspection, penalty or coercion")]
    UnsupportedCaseType,
    /// The proposal did not load or its tests failed: a bug of the proposer.
    #[error("提议的映射无法加载或测试不通过（请报告此问题） / the proposed mapping does not load or its tests fail (please report): {0}")]
    Invalid(String),
}

/// Whether a proposal is written active or commented out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Written as a field of the mapping.
    Active,
    /// Confidence below the threshold: commented out.
    Uncertain,
    /// Another column is about as likely for the same canonical field: commented out.
    Conflict,
}

/// One proposed source field → canonical field.
#[derive(Debug, Clone)]
pub struct Proposal {
    /// The source path as written in the mapping (`xdrmc`, `zfry[*]`, `zfry[*].xm` for a member
    /// of a list of objects).
    pub source: String,
    /// The canonical field (`target.name`, `officers`, `officers.name`).
    pub target: String,
    /// 0..1.
    pub confidence: f64,
    /// Why, in Chinese.
    pub evidence_zh: Vec<String>,
    /// Why, in English.
    pub evidence_en: Vec<String>,
    /// Active or commented out.
    pub status: Status,
    /// With the case type read per record: the case type this column is for, written as
    /// `when = { case_type = "..." }` (`check_action_code` → inspection).
    pub when: Option<String>,
}

/// A proposed mapping.
#[derive(Debug, Clone)]
pub struct Suggestion {
    /// The case type used (given or guessed).
    pub case_type: CaseType,
    /// Whether the case type was guessed.
    pub case_type_guessed: bool,
    /// The source field the case type is read from, record by record (then `case_type` is only
    /// the one the field names point to most).
    pub case_type_from: Option<String>,
    /// Every proposal, active and commented out.
    pub proposals: Vec<Proposal>,
    /// Source fields nothing was proposed for.
    pub unmatched: Vec<String>,
    /// Canonical fields the schema requires that no active proposal fills.
    pub missing_required: Vec<String>,
    /// The mapping file's text.
    pub mapping_toml: String,
    /// The code-table CSV files (name, contents); empty with inline tables.
    pub tables: Vec<(String, String)>,
    /// Number of embedded tests written.
    pub tests: usize,
}

impl Suggestion {
    /// The active proposals as (source path, canonical field).
    pub fn active(&self) -> impl Iterator<Item = (&str, &str)> {
        self.proposals
            .iter()
            .filter(|p| p.status == Status::Active)
            .map(|p| (p.source.as_str(), p.target.as_str()))
    }
}
