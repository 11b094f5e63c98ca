//! One source block as configured (`[[sources]]`, or an endpoint of a system block once
//! expanded), its agency scope, and a problem found in a configuration.

use normalizer::standards::CreditCode;
use serde::Deserialize;
use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

/// Input formats of `gateway ingest` and file sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputFormat {
    /// One JSON object, or an array of objects.
    Json,
    /// One JSON object per line.
    JsonLines,
    /// An XML document; records picked by an element path.
    Xml,
    /// CSV with a header row; each row becomes an object of strings.
    Csv,
    /// A spreadsheet (.xlsx; also .xls, .xlsb, .ods): each row under the header row becomes an
    /// object of strings (see `crate::prepare::spreadsheet`).
    Spreadsheet,
}

/// The format names [`InputFormat::parse`] takes, for messages.
pub const FORMAT_NAMES: &str = "json, jsonl, xml, csv, xlsx";

impl InputFormat {
    /// Parse `json`, `jsonl`, `xml`, `csv` or `xlsx` (also `xls`, `xlsm`, `xlsb`, `ods`).
    pub fn parse(s: &str) -> Option<InputFormat> {
        match s.to_ascii_lowercase().as_str() {
            "json" => Some(InputFormat::Json),
            "jsonl" | "ndjson" => Some(InputFormat::JsonLines),
            "xml" => Some(InputFormat::Xml),
            "csv" => Some(InputFormat::Csv),
            "xlsx" | "xlsm" | "xls" | "xlsb" | "ods" => Some(InputFormat::Spreadsheet),
            _ => None,
        }
    }

    /// The format a file's extension names, if it names one.
    pub fn from_extension(path: &Path) -> Option<InputFormat> {
        path.extension().and_then(|e| e.to_str()).and_then(InputFormat::parse)
    }
}

/// One problem in a configuration file, with its place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// Where: `line:column` or a key path such as `sources[0].mapping`.
    pub place: String,
    /// What is wrong, in Chinese and English.
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.place, self.message)
    }
}

/// Where a source made from an endpoint comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointOrigin {
    /// The system's id (the block's `id`).
    pub system: String,
    /// The endpoint's place among the block's endpoints.
    pub endpoint: usize,
    /// The endpoint's own id.
    pub endpoint_id: String,
    /// The keys the endpoint sets itself (kind-table keys, and `path`).
    pub own_keys: Vec<String>,
}

/// Settings of a `kind = "push"` source (`[sources.push]`).
#[derive(Debug, Deserialize, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct PushSettings {
    /// Largest request body accepted for this source, in bytes (default: `[server] max_body_bytes`).
    pub max_body_bytes: Option<u64>,
}

impl SourceConfig {
    /// Whether the source's reading keys (`encoding`, `header_row`) are valid: a bilingual
    /// message naming the key and value when not.
    pub fn reading_problem(&self) -> Result<(), String> {
        adapters::common::charset::TextEncoding::from_setting("encoding", self.encoding.as_deref())?;
        if self.header_row == Some(0) {
            return Err("header_row = 0：行号从 1 开始 / header_row = 0: rows are counted from 1".to_string());
        }
        Ok(())
    }

    /// The `[sources.push]` settings of a push source (defaults when absent).
    pub fn push_settings(&self) -> Result<PushSettings, String> {
        match &self.push {
            None => Ok(PushSettings::default()),
            Some(table) => PushSettings::deserialize(toml::Value::Table(table.clone()))
                .map_err(|e| format!("来源推送配置错误 / push settings: {}", e.message())),
        }
    }
}

/// One source system.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Unique id (letters, digits, `-`, `_`), used in the store, logs and the API.
    pub id: String,
    /// `file` (records given to `gateway ingest`), `directory` (a drop folder polled by `gateway
    /// run`) or `push` (records sent to `POST /api/ingest/{id}` of the operator API).
    #[serde(default = "default_source_kind")]
    pub kind: String,
    /// The mapping file for this source's records (in a block with `endpoints`: each
    /// endpoint's own).
    #[serde(default)]
    pub mapping: PathBuf,
    /// Input format: `json` (an array or one object), `jsonl`, `xml`, `csv` or `xlsx` (also
    /// `xls`, `ods`) (default `jsonl`). Drop folders pick a file's format by its extension
    /// when it names one.
    #[serde(default = "default_format")]
    pub format: String,
    /// Text formats: the character encoding, `utf-8`, `gbk`, `gb18030` or `auto` (default:
    /// detected: BOM, else valid UTF-8, else GB18030). Push: a `charset` in the request's
    /// `Content-Type` wins.
    pub encoding: Option<String>,
    /// Spreadsheets: the one sheet to read (default: every sheet but `说明`).
    pub sheet: Option<String>,
    /// Spreadsheets: the row of column titles, counted from 1 (default 1; 2 when a title row is
    /// above it).
    pub header_row: Option<u32>,
    /// Path in the source record of its key at the source (for lineage and logs), e.g. `ajbh`.
    pub record_key: Option<String>,
    /// XML: dotted element path of the repeated record elements, e.g. `Envelope.Body.cases.case`.
    pub xml_records: Option<String>,
    /// `directory` sources: the folder to watch.
    pub directory: Option<PathBuf>,
    /// `directory` sources: seconds between scans (default 10); `rest`/`soap` sources: seconds
    /// between pulls when no `cron` is given.
    #[serde(default = "default_poll")]
    pub poll_seconds: u64,
    /// `rest`/`soap` sources: pull schedule as a cron expression with seconds
    /// (`sec min hour day month weekday`, e.g. `0 */5 * * * *`), in China time.
    pub cron: Option<String>,
    /// `kind = "rest"`: the REST adapter's settings (see docs/connecting.md).
    pub rest: Option<toml::Table>,
    /// `kind = "soap"`: the SOAP/XML adapter's settings.
    pub soap: Option<toml::Table>,
    /// `kind = "amqp"`: the AMQP consumer's settings.
    pub amqp: Option<toml::Table>,
    /// `kind = "push"`: the HTTP push endpoint's settings.
    pub push: Option<toml::Table>,
    /// The source's count query for reconciliation (对账), see docs/operations.md "Reconciliation".
    pub reconcile: Option<toml::Table>,
    /// The handling agencies this source may write for, by unified social credit code: a record
    /// naming another agency (and outside `agency_regions`) is quarantined
    /// (`source.agency_not_allowed`).
    #[serde(default)]
    pub agencies: Vec<String>,
    /// The regions whose agencies this source may write for, as GB/T 2260 code prefixes
    /// (`36` a province, `3601` a city, `360102` a county), matched against the record's
    /// `agency.region_code`.
    #[serde(default)]
    pub agency_regions: Vec<String>,
    /// `rest`/`soap`: the endpoints of one legacy system, each pulled as a source of its own
    /// over the system's shared connection and rate limit (see [`systems`]). Empty once the
    /// configuration is parsed: each endpoint is then a source.
    #[serde(default)]
    pub endpoints: Vec<toml::Table>,
    /// The index of the `[[sources]]` block this source comes from.
    #[serde(skip)]
    pub block: usize,
    /// Set when this source is an endpoint of a system block.
    #[serde(skip)]
    pub origin: Option<EndpointOrigin>,
}

impl SourceConfig {
    /// Where this source is in the file, for messages: `sources[2] (id "x")`, or
    /// `sources[2].endpoints[1] (id "sys.penalty")` for an endpoint of a system block.
    pub fn place(&self) -> String {
        match &self.origin {
            Some(o) => format!("sources[{}].endpoints[{}] (id {:?})", self.block, o.endpoint, self.id),
            None => format!("sources[{}] (id {:?})", self.block, self.id),
        }
    }

    /// The key path of this source's block (or endpoint) without the id: `sources[2]` or
    /// `sources[2].endpoints[1]`.
    pub fn key_path(&self) -> String {
        match &self.origin {
            Some(o) => format!("sources[{}].endpoints[{}]", self.block, o.endpoint),
            None => format!("sources[{}]", self.block),
        }
    }

    /// The system this source is an endpoint of, if any: its pull shares that system's
    /// connection, rate limit and token cache.
    pub fn system_id(&self) -> Option<&str> {
        self.origin.as_ref().map(|o| o.system.as_str())
    }

    /// Which agencies the source may write for (everyone when neither key is set).
    pub fn agency_scope(&self) -> AgencyScope {
        AgencyScope {
            codes: self
                .agencies
                .iter()
                .filter_map(|c| CreditCode::parse(c).ok())
                .map(|c| c.as_str().to_string())
                .collect(),
            region_prefixes: self.agency_regions.iter().map(|r| r.trim().to_string()).collect(),
        }
    }
}

/// The handling agencies a source may write for: by credit code, or by region code prefix. An
/// empty scope allows every agency (a source configured without `agencies` or `agency_regions`;
/// `gateway config check` warns about it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgencyScope {
    /// Allowed agencies' normalised credit codes.
    pub codes: BTreeSet<String>,
    /// Allowed GB/T 2260 region code prefixes.
    pub region_prefixes: Vec<String>,
}

impl AgencyScope {
    /// True when the scope names no agency and no region: every agency is allowed.
    pub fn is_open(&self) -> bool {
        self.codes.is_empty() && self.region_prefixes.is_empty()
    }

    /// Whether an agency with this credit code and region code may be written for.
    pub fn allows(&self, credit_code: &str, region_code: &str) -> bool {
        self.is_open()
            || self.codes.contains(credit_code)
            || (!region_code.is_empty() && self.region_prefixes.iter().any(|p| region_code.starts_with(p.as_str())))
    }

    /// What the scope allows, in words (for messages): the codes, then the region prefixes.
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = self.codes.iter().cloned().collect();
        parts.extend(self.region_prefixes.iter().map(|p| format!("{p}*")));
        parts.join(", ")
    }
}

pub(crate) fn default_source_kind() -> String {
    "file".into()
}
pub(crate) fn default_format() -> String {
    "jsonl".into()
}
pub(crate) fn default_poll() -> u64 {
    10
}
