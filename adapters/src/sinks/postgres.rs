//! PostgreSQL sink: writes the platform's relational tables, one column per canonical field,
//! in the schema the configuration names, so that reporting tools query them directly.
//!
//! Tables (created when absent, with the schema): `cases` (one row per case version: identity,
//! agency, target, dates, the whole record as `record` jsonb, a `current` flag on the newest
//! version, `deliveries` counting repeats), `officers`, `attachments`, `penalties`,
//! `inspections`, `inspection_participants`, `coercions`, `plans`, `plan_items`, `supplements`
//! (fields awaiting supplement and those supplied by the department; keyed by unified code and version,
//! with `position` for list items), and the view `current_cases` (newest versions that are not
//! withdrawn).
//!
//! A publicity sink (`content = "publicity"`) writes instead one table `disclosures` (one row per
//! version of a public record, one column per public field code in lower case: `cf_xdr_mc`,
//! `cf_nr_fk`, `jc_rq` ..., the public record as `record`) and the views `penalty_disclosures`
//! and `inspection_results` of its current, not withdrawn rows.
//!
//! A batch is written in ONE transaction: each table gets one multi-row `INSERT ... SELECT FROM
//! UNNEST(...) ON CONFLICT (unified_code, version[, position]) DO UPDATE`, the statements are
//! pipelined, and the `current` flags of the batch's codes are recomputed. A repeat of a version
//! (at-least-once delivery) updates the same rows and bumps `deliveries`. When a batch fails
//! because of a value the database refuses (SQLSTATE classes 22 and 23), the batch is bisected
//! until the record is found; it alone is rejected with the database's message. Any other
//! failure (connection refused or lost, permissions, a dropped table) defers the whole batch.

use super::delivery::{Delivery, Outcome, Sink, SinkError};
use crate::common::postgres_tls::{error_chain, PostgresTarget};
use crate::common::secret::SecretSource;
use crate::common::settings::SettingsProblem;
use crate::common::text::excerpt;
use async_trait::async_trait;
use deadpool_postgres::{ManagerConfig, Pool, RecyclingMethod, Runtime};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeSet;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio_postgres::types::{Json, ToSql};

/// Settings of `kind = "postgres"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresSettings {
    /// Connection URL given inline (avoid passwords here; prefer `url_env` or `url_file`).
    pub url: Option<String>,
    /// Environment variable holding the URL.
    pub url_env: Option<String>,
    /// File holding the URL.
    pub url_file: Option<PathBuf>,
    /// Schema of the platform tables (default `platform`); created when absent.
    #[serde(default = "default_schema")]
    pub schema: String,
    /// Connections (default 4).
    #[serde(default = "default_pool")]
    pub pool_size: usize,
    /// Longest wait for a connection to open, seconds (default 10).
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_seconds: u64,
    /// Longest run of one statement, seconds (default 60).
    #[serde(default = "default_statement_timeout")]
    pub statement_timeout_seconds: u64,
    /// PEM file of the CA(s) the server's certificate must chain to (relative to the config
    /// file), for `sslmode=verify-ca` / `verify-full` in the URL; the URL's own `sslrootcert` is
    /// the alternative (not both).
    pub ssl_root_cert: Option<PathBuf>,
}

fn default_schema() -> String {
    "platform".into()
}
fn default_pool() -> usize {
    4
}
fn default_connect_timeout() -> u64 {
    10
}
fn default_statement_timeout() -> u64 {
    60
}

impl PostgresSettings {
    fn url_source(&self) -> SecretSource<'_> {
        SecretSource::url(&self.url, &self.url_env, &self.url_file)
    }

    /// The connection string read for TLS (`sslmode`, `sslrootcert` from the URL,
    /// `ssl_root_cert` made absolute against `base`). Errors name their setting, never the URL.
    fn target(&self, base: &std::path::Path) -> Result<PostgresTarget, SettingsProblem> {
        let url = self
            .url_source()
            .require(base)
            .map_err(|message| SettingsProblem::new("url", message))?;
        let root_cert = self
            .ssl_root_cert
            .as_ref()
            .map(|p| if p.is_absolute() { p.clone() } else { base.join(p) });
        PostgresTarget::parse(url.expose(), root_cert.as_deref())
            .map_err(|e| SettingsProblem::new(e.setting(), e.to_string()))
    }

    /// Problems found without connecting (the CA file is read).
    pub fn check(&self, base: &std::path::Path) -> Vec<SettingsProblem> {
        let mut problems = Vec::new();
        match self.target(base) {
            Ok(target) => {
                if let Err(e) = target.connector() {
                    problems.push(SettingsProblem::new(e.setting(), e.to_string()));
                }
            }
            Err(problem) => problems.push(problem),
        }
        if !is_identifier(&self.schema) {
            problems.push(SettingsProblem {
                key: "schema".into(),
                message: format!(
                    "模式名只能包含小写字母、数字和下划线 / schema must be [a-z_][a-z0-9_]* (at most 63), got {:?}",
                    self.schema
                ),
            });
        }
        if self.pool_size == 0 || self.pool_size > 64 {
            problems.push(SettingsProblem {
                key: "pool_size".into(),
                message: "应在 1..64 / must be 1..64".into(),
            });
        }
        problems
    }
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    s.len() <= 63
        && matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// SQL type of a platform column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    Text,
    Date,
    Numeric,
    Bool,
    TextArray,
}

impl Ty {
    fn ddl(self) -> &'static str {
        match self {
            Ty::Text => "TEXT",
            Ty::Date => "DATE",
            Ty::Numeric => "NUMERIC",
            Ty::Bool => "BOOLEAN",
            Ty::TextArray => "TEXT[]",
        }
    }

    /// Expression converting the bound text `col` to this type.
    fn cast(self, col: &str) -> String {
        match self {
            Ty::Text => col.to_string(),
            Ty::Date => format!("{col}::date"),
            Ty::Numeric => format!("{col}::numeric"),
            Ty::Bool => format!("{col}::boolean"),
            Ty::TextArray => {
                format!(
                    "CASE WHEN {col} IS NULL THEN NULL ELSE ARRAY(SELECT jsonb_array_elements_text({col}::jsonb)) END"
                )
            }
        }
    }
}

/// A platform table filled from the canonical record.
struct Table {
    name: &'static str,
    /// One row per delivery whose record has an object at this path (None: every delivery).
    object: Option<Path>,
    /// One row per element of the array at this path (with `position` from 1).
    array: Option<Path>,
    /// (column, path relative to the object or array element, type).
    columns: &'static [(&'static str, Path, Ty)],
}

/// A path of object keys in the canonical record.
type Path = &'static [&'static str];

/// The value at `path` (object keys only).
fn at(value: &Value, path: Path) -> Option<&Value> {
    path.iter().try_fold(value, |v, key| v.get(key))
}

/// A column of the main table: its name, the path of its value in the record, its type.
#[derive(Debug, Clone)]
struct Column {
    name: String,
    path: Vec<String>,
    ty: Ty,
}

impl Column {
    fn value(&self, record: &Value) -> Option<String> {
        let mut v = record;
        for key in &self.path {
            v = v.get(key)?;
        }
        match v {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        }
    }
}

/// What a PostgreSQL sink writes.
#[derive(Clone)]
struct Layout {
    /// The table with one row per delivered version (`cases` or `disclosures`).
    main: &'static str,
    /// Its columns after the identity columns.
    columns: Vec<Column>,
    /// Tables of the record's parts (none for publicity).
    children: &'static [Table],
    /// Comment on the main table.
    comment: &'static str,
    /// Views over the main table: (name, SQL condition).
    views: &'static [(&'static str, &'static str)],
}

impl Layout {
    /// The platform's case tables.
    fn cases() -> Layout {
        Layout {
            main: "cases",
            columns: CASE_COLUMNS
                .iter()
                .map(|(name, path, ty)| Column {
                    name: (*name).to_string(),
                    path: path.iter().map(|k| (*k).to_string()).collect(),
                    ty: *ty,
                })
                .collect(),
            children: TABLES,
            comment: "行政执法案件（每个版本一行）/ enforcement cases, one row per version; current = newest version",
            views: &[("current_cases", "current AND NOT withdrawn")],
        }
    }

    /// The publicity tables: one column per public field code.
    fn publicity() -> Layout {
        let mut columns: Vec<Column> = Vec::new();
        let fields = normalizer::publicity::PENALTY_FIELDS
            .iter()
            .chain(normalizer::publicity::SHORT_PENALTY_FIELDS.iter())
            .chain(normalizer::publicity::INSPECTION_FIELDS.iter());
        for f in fields {
            let name = f.code.to_ascii_lowercase();
            if columns.iter().any(|c| c.name == name) {
                continue;
            }
            let ty = match f.code {
                "CF_JDRQ" | "CF_YXQ" | "CF_GSJZQ" | "JC_RQ" => Ty::Date,
                "CF_NR_FK" | "CF_NR_WFFF" => Ty::Numeric,
                _ => Ty::Text,
            };
            columns.push(Column {
                name,
                path: vec![f.code.to_string()],
                ty,
            });
        }
        Layout {
            main: "disclosures",
            columns,
            children: &[],
            comment: "公示信息（双公示行政处罚、双随机抽查结果；每个版本一行）/ public records (penalties, random-inspection results), one row per version",
            views: &[
                ("penalty_disclosures", "current AND NOT withdrawn AND case_type = 'penalty'"),
                ("inspection_results", "current AND NOT withdrawn AND case_type = 'inspection'"),
            ],
        }
    }
}

const CASE_COLUMNS: &[(&str, Path, Ty)] = &[
    ("operation", &["operation"], Ty::Text),
    ("source_channel", &["source_channel"], Ty::Text),
    ("agency_name", &["agency", "name"], Ty::Text),
    ("agency_credit_code", &["agency", "credit_code"], Ty::Text),
    ("agency_region_code", &["agency", "region_code"], Ty::Text),
    ("entrusted_agency_name", &["entrusted_agency", "name"], Ty::Text),
    (
        "entrusted_agency_credit_code",
        &["entrusted_agency", "credit_code"],
        Ty::Text,
    ),
    ("case_number", &["case_number"], Ty::Text),
    ("case_name", &["case_name"], Ty::Text),
    ("item_code", &["item_code"], Ty::Text),
    ("implementation_list_code", &["implementation_list_code"], Ty::Text),
    ("target_kind", &["target", "kind"], Ty::Text),
    ("target_name", &["target", "name"], Ty::Text),
    ("target_id_type", &["target", "id_type"], Ty::Text),
    ("target_id_number", &["target", "id_number"], Ty::Text),
    (
        "target_legal_representative",
        &["target", "legal_representative"],
        Ty::Text,
    ),
    ("target_region_code", &["target", "region_code"], Ty::Text),
    ("target_address", &["target", "address"], Ty::Text),
    ("legal_basis", &["legal_basis"], Ty::Text),
    ("case_source", &["case_source"], Ty::Text),
    ("closing_date", &["closing_date"], Ty::Date),
    ("archive_date", &["archive_date"], Ty::Date),
    ("remarks", &["remarks"], Ty::Text),
];

const TABLES: &[Table] = &[
    Table {
        name: "officers",
        object: None,
        array: Some(&["officers"]),
        columns: &[("name", &["name"], Ty::Text), ("cert_no", &["cert_no"], Ty::Text)],
    },
    Table {
        name: "attachments",
        object: None,
        array: Some(&["attachments"]),
        columns: &[
            ("kind", &["kind"], Ty::Text),
            ("title", &["title"], Ty::Text),
            ("sha256", &["sha256"], Ty::Text),
            ("uri", &["uri"], Ty::Text),
        ],
    },
    Table {
        name: "penalties",
        object: Some(&["penalty"]),
        array: None,
        columns: &[
            ("decision_number", &["decision_number"], Ty::Text),
            ("filing_date", &["filing_date"], Ty::Date),
            ("decision_date", &["decision_date"], Ty::Date),
            ("procedure", &["procedure"], Ty::Text),
            ("hearing_held", &["hearing_held"], Ty::Bool),
            ("kinds", &["kinds"], Ty::TextArray),
            ("illegal_facts", &["illegal_facts"], Ty::Text),
            ("violation_type", &["violation_type"], Ty::Text),
            ("content", &["content"], Ty::Text),
            ("fine_amount", &["fine_amount"], Ty::Numeric),
            ("confiscation_amount", &["confiscation_amount"], Ty::Numeric),
            ("license_affected", &["license_affected"], Ty::Text),
            ("valid_until", &["valid_until"], Ty::Date),
            ("publicity_until", &["publicity_until"], Ty::Date),
            ("publicity_date", &["publicity_date"], Ty::Date),
            ("discretion_benchmark", &["discretion_benchmark"], Ty::Text),
            ("legal_review", &["legal_review"], Ty::Bool),
            ("collective_discussion", &["collective_discussion"], Ty::Bool),
        ],
    },
    Table {
        name: "inspections",
        object: Some(&["inspection"]),
        array: None,
        columns: &[
            ("plan_id", &["plan_id"], Ty::Text),
            ("task_id", &["task_id"], Ty::Text),
            ("form", &["form"], Ty::Text),
            ("method", &["method"], Ty::Text),
            ("result", &["result"], Ty::Text),
            ("check_date", &["check_date"], Ty::Date),
        ],
    },
    Table {
        name: "inspection_participants",
        object: None,
        array: Some(&["inspection", "joint_participants"]),
        columns: &[
            ("name", &["name"], Ty::Text),
            ("credit_code", &["credit_code"], Ty::Text),
        ],
    },
    Table {
        name: "coercions",
        object: Some(&["coercion"]),
        array: None,
        columns: &[
            ("kind", &["kind"], Ty::Text),
            ("measure_type", &["measure_type"], Ty::Text),
            ("execution_type", &["execution_type"], Ty::Text),
            ("decision_number", &["decision_number"], Ty::Text),
            ("illegal_facts", &["illegal_facts"], Ty::Text),
            ("start_date", &["start_date"], Ty::Date),
            ("end_date", &["end_date"], Ty::Date),
            ("extension", &["extension"], Ty::Text),
            ("result", &["result"], Ty::Text),
        ],
    },
    Table {
        name: "plans",
        object: Some(&["plan"]),
        array: None,
        columns: &[
            ("kind", &["kind"], Ty::Text),
            ("year", &["year"], Ty::Numeric),
            ("filing_date", &["filing_date"], Ty::Date),
            ("entry_date", &["entry_date"], Ty::Date),
            ("start_date", &["start_date"], Ty::Date),
            ("end_date", &["end_date"], Ty::Date),
            ("sampling_ratio", &["sampling_ratio"], Ty::Numeric),
            ("random", &["random"], Ty::Bool),
        ],
    },
    Table {
        name: "plan_items",
        object: None,
        array: Some(&["plan", "items"]),
        columns: &[("item_code", &["item_code"], Ty::Text), ("name", &["name"], Ty::Text)],
    },
    Table {
        name: "supplements",
        object: Some(&["supplement"]),
        array: None,
        columns: &[
            ("awaiting", &["awaiting"], Ty::TextArray),
            ("supplied", &["supplied"], Ty::TextArray),
        ],
    },
];

/// Advisory lock key of the schema creation (per schema name, see `ddl`).
const DDL_LOCK_SQL: &str = "SELECT pg_advisory_xact_lock(hashtext('ganzhi-gateway sink ddl ' || $1))";

/// The DDL creating the tables of `layout` in `schema` (see [`added_columns`] for tables created
/// by an earlier version of the gateway).
fn ddl(schema: &str, layout: &Layout) -> String {
    let s = format!("\"{schema}\"");
    let main = layout.main;
    let mut sql = format!("CREATE SCHEMA IF NOT EXISTS {s};\n");
    let case_cols: String = layout
        .columns
        .iter()
        .map(|c| format!("    \"{}\" {},\n", c.name, c.ty.ddl()))
        .collect();
    sql.push_str(&format!(
        "CREATE TABLE IF NOT EXISTS {s}.{main} (
    unified_code    TEXT        NOT NULL,
    version         INTEGER     NOT NULL,
    current         BOOLEAN     NOT NULL DEFAULT TRUE,
    withdrawn       BOOLEAN     NOT NULL,
    idempotency_key TEXT        NOT NULL,
    case_type       TEXT        NOT NULL,
    year            INTEGER     NOT NULL,
    region          TEXT        NOT NULL,
{case_cols}    committed_at    TIMESTAMPTZ NOT NULL,
    delivered_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    deliveries      INTEGER     NOT NULL DEFAULT 1,
    record          JSONB       NOT NULL,
    PRIMARY KEY (unified_code, version)
);
CREATE INDEX IF NOT EXISTS {main}_current ON {s}.{main} (case_type, region) WHERE current;
COMMENT ON TABLE {s}.{main} IS '{comment}';
",
        comment = layout.comment
    ));
    for t in layout.children {
        let cols: String = t
            .columns
            .iter()
            .map(|(c, _, ty)| format!("    \"{c}\" {},\n", ty.ddl()))
            .collect();
        let (position, key) = if t.array.is_some() {
            (
                "    position     INTEGER NOT NULL,\n",
                "unified_code, version, position",
            )
        } else {
            ("", "unified_code, version")
        };
        sql.push_str(&format!(
            "CREATE TABLE IF NOT EXISTS {s}.{name} (
    unified_code TEXT    NOT NULL,
    version      INTEGER NOT NULL,
{position}{cols}    PRIMARY KEY ({key})
);
",
            name = t.name
        ));
    }
    for (view, condition) in layout.views {
        sql.push_str(&format!(
            "CREATE OR REPLACE VIEW {s}.{view} AS SELECT * FROM {s}.{main} WHERE {condition};\n"
        ));
    }
    sql
}

/// The columns of `layout` that tables of an earlier version lack, as `ALTER TABLE` statements;
/// `existing` holds the (table, column) pairs the schema has.
fn added_columns(schema: &str, layout: &Layout, existing: &BTreeSet<(String, String)>) -> String {
    let mut sql = String::new();
    let mut add = |table: &str, column: &str, ty: Ty| {
        if !existing.contains(&(table.to_string(), column.to_string())) {
            sql.push_str(&format!(
                "ALTER TABLE \"{schema}\".\"{table}\" ADD COLUMN IF NOT EXISTS \"{column}\" {};\n",
                ty.ddl()
            ));
        }
    };
    for c in &layout.columns {
        add(layout.main, &c.name, c.ty);
    }
    for t in layout.children {
        for (c, _, ty) in t.columns {
            add(t.name, c, *ty);
        }
    }
    sql
}

/// The (table, column) pairs of `schema`.
const COLUMNS_SQL: &str =
    "SELECT table_name::text, column_name::text FROM information_schema.columns WHERE table_schema = $1";

/// `INSERT ... SELECT FROM UNNEST ... ON CONFLICT DO UPDATE` of the main table. Parameters:
/// $1 codes, $2 versions, $3 withdrawn, $4 keys, $5 types, $6 years, $7 regions, $8 committed
/// at, $9 records, then one text array per column of the layout.
fn cases_insert(schema: &str, layout: &Layout) -> String {
    let mut cols = vec![
        "unified_code",
        "version",
        "withdrawn",
        "idempotency_key",
        "case_type",
        "year",
        "region",
        "committed_at",
        "record",
    ]
    .into_iter()
    .map(|c| format!("\"{c}\""))
    .collect::<Vec<_>>();
    let mut types = vec![
        "text",
        "int4",
        "bool",
        "text",
        "text",
        "int4",
        "text",
        "timestamptz",
        "jsonb",
    ]
    .into_iter()
    .map(String::from)
    .collect::<Vec<_>>();
    let mut select: Vec<String> = (0..types.len()).map(|i| format!("u.c{i}")).collect();
    for c in &layout.columns {
        let i = types.len();
        cols.push(format!("\"{}\"", c.name));
        types.push("text".into());
        select.push(c.ty.cast(&format!("u.c{i}")));
    }
    let unnest: Vec<String> = types
        .iter()
        .enumerate()
        .map(|(i, t)| format!("${}::{t}[]", i + 1))
        .collect();
    let aliases: Vec<String> = (0..types.len()).map(|i| format!("c{i}")).collect();
    let updates: Vec<String> = cols[2..]
        .iter()
        .map(|c| format!("{c} = EXCLUDED.{c}"))
        .chain(std::iter::once("\"deliveries\" = cases.deliveries + 1".to_string()))
        .collect();
    format!(
        "INSERT INTO \"{schema}\".{} AS cases ({}) SELECT {} FROM UNNEST({}) AS u({}) \
         ON CONFLICT (unified_code, version) DO UPDATE SET {}",
        layout.main,
        cols.join(", "),
        select.join(", "),
        unnest.join(", "),
        aliases.join(", "),
        updates.join(", ")
    )
}

/// The insert of a child table. Parameters: $1 codes, $2 versions, [$3 positions,] then one
/// text array per column.
fn child_insert(schema: &str, t: &Table) -> String {
    let mut cols = vec!["\"unified_code\"".to_string(), "\"version\"".to_string()];
    let mut types = vec!["text", "int4"];
    let mut select = vec!["u.c0".to_string(), "u.c1".to_string()];
    if t.array.is_some() {
        cols.push("\"position\"".into());
        types.push("int4");
        select.push("u.c2".into());
    }
    let key = cols.join(", ");
    for (c, _, ty) in t.columns {
        let i = types.len();
        cols.push(format!("\"{c}\""));
        types.push("text");
        select.push(ty.cast(&format!("u.c{i}")));
    }
    let unnest: Vec<String> = types
        .iter()
        .enumerate()
        .map(|(i, t)| format!("${}::{t}[]", i + 1))
        .collect();
    let aliases: Vec<String> = (0..types.len()).map(|i| format!("c{i}")).collect();
    let updates: Vec<String> = t
        .columns
        .iter()
        .map(|(c, _, _)| format!("\"{c}\" = EXCLUDED.\"{c}\""))
        .collect();
    format!(
        "INSERT INTO \"{schema}\".\"{}\" ({}) SELECT {} FROM UNNEST({}) AS u({}) ON CONFLICT ({key}) DO UPDATE SET {}",
        t.name,
        cols.join(", "),
        select.join(", "),
        unnest.join(", "),
        aliases.join(", "),
        updates.join(", ")
    )
}

/// Recompute the `current` flag of the given codes: true on each code's newest version only.
fn current_update(schema: &str, main: &str) -> String {
    format!(
        "UPDATE \"{schema}\".{main} c SET current = (c.version = m.newest)
         FROM (SELECT unified_code, max(version) AS newest FROM \"{schema}\".{main}
               WHERE unified_code = ANY($1::text[]) GROUP BY unified_code) m
         WHERE c.unified_code = m.unified_code AND c.current IS DISTINCT FROM (c.version = m.newest)"
    )
}

/// A record value as text for binding (`None` when absent or null; arrays and objects as JSON).
fn text_at(value: &Value, path: Path) -> Option<String> {
    match at(value, path) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => Some(other.to_string()),
    }
}

/// The bound arrays of one child table for a batch.
struct ChildRows {
    codes: Vec<String>,
    versions: Vec<i32>,
    positions: Vec<i32>,
    columns: Vec<Vec<Option<String>>>,
}

impl ChildRows {
    fn of(t: &Table, batch: &[&Delivery]) -> ChildRows {
        let mut rows = ChildRows {
            codes: Vec::new(),
            versions: Vec::new(),
            positions: Vec::new(),
            columns: vec![Vec::new(); t.columns.len()],
        };
        for d in batch {
            let mut push = |item: &Value, position: i32| {
                rows.codes.push(d.unified_code.clone());
                rows.versions.push(d.version);
                rows.positions.push(position);
                for (i, (_, path, _)) in t.columns.iter().enumerate() {
                    rows.columns[i].push(text_at(item, path));
                }
            };
            if let Some(object) = t.object {
                if let Some(item @ Value::Object(_)) = at(&d.record, object) {
                    push(item, 0);
                }
            } else if let Some(array) = t.array {
                if let Some(Value::Array(items)) = at(&d.record, array) {
                    for (n, item) in items.iter().enumerate() {
                        push(item, i32::try_from(n + 1).unwrap_or(i32::MAX));
                    }
                }
            }
        }
        rows
    }

    fn params(&self, with_position: bool) -> Vec<&(dyn ToSql + Sync)> {
        let mut p: Vec<&(dyn ToSql + Sync)> = vec![&self.codes, &self.versions];
        if with_position {
            p.push(&self.positions);
        }
        p.extend(self.columns.iter().map(|c| c as &(dyn ToSql + Sync)));
        p
    }
}

/// A statement sent in a pipeline, not yet answered.
type PendingStatement<'a> = Pin<Box<dyn Future<Output = Result<u64, tokio_postgres::Error>> + Send + 'a>>;

/// Why a batch write failed.
enum WriteError {
    /// A value of some record was refused: bisect.
    Data(String),
    /// Anything else: the whole batch waits.
    Sink(String),
}

fn classify(e: &tokio_postgres::Error) -> WriteError {
    let text = excerpt(&e.to_string(), 2000);
    match e.code().map(|c| c.code()) {
        Some(code) if code.starts_with("22") || code.starts_with("23") => WriteError::Data(text),
        _ => WriteError::Sink(text),
    }
}

/// The PostgreSQL sink.
pub struct PostgresSink {
    pool: Pool,
    schema: String,
    layout: Layout,
    schema_ready: AtomicBool,
    sql_cases: String,
    sql_children: Vec<String>,
    sql_current: String,
}

impl PostgresSink {
    /// A sink with a connection pool (no connection is opened yet).
    /// `publicity`: the sink receives public records (`content = "publicity"`) and writes the
    /// publicity tables instead of the case tables.
    pub fn new(
        sink_id: &str,
        settings: &PostgresSettings,
        base: &std::path::Path,
        publicity: bool,
    ) -> Result<PostgresSink, SinkError> {
        let mut target = settings.target(base).map_err(|p| SinkError::Settings(p.to_string()))?;
        target
            .config_mut()
            .connect_timeout(Duration::from_secs(settings.connect_timeout_seconds))
            .application_name(format!("ganzhi-gateway sink {sink_id}"))
            .options(format!(
                "-c statement_timeout={}",
                settings.statement_timeout_seconds * 1000
            ));
        let manager = target
            .manager(ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            })
            .map_err(|e| SinkError::Settings(format!("{}: {e}", e.setting())))?;
        let pool = Pool::builder(manager)
            .max_size(settings.pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .create_timeout(Some(Duration::from_secs(settings.connect_timeout_seconds)))
            .wait_timeout(Some(Duration::from_secs(settings.statement_timeout_seconds)))
            .build()
            .map_err(|e| SinkError::Client(e.to_string()))?;
        let schema = settings.schema.clone();
        if !is_identifier(&schema) {
            return Err(SinkError::Settings(format!(
                "schema {schema:?} is not a plain identifier"
            )));
        }
        let layout = if publicity {
            Layout::publicity()
        } else {
            Layout::cases()
        };
        Ok(PostgresSink {
            pool,
            sql_cases: cases_insert(&schema, &layout),
            sql_children: layout.children.iter().map(|t| child_insert(&schema, t)).collect(),
            sql_current: current_update(&schema, layout.main),
            layout,
            schema,
            schema_ready: AtomicBool::new(false),
        })
    }

    async fn client(&self) -> Result<deadpool_postgres::Client, WriteError> {
        self.pool
            .get()
            .await
            .map_err(|e| WriteError::Sink(format!("cannot connect to PostgreSQL: {}", error_chain(&e))))
    }

    async fn ensure_schema(&self, client: &mut deadpool_postgres::Client) -> Result<(), WriteError> {
        if self.schema_ready.load(Ordering::Acquire) {
            return Ok(());
        }
        let tx = client.transaction().await.map_err(|e| classify(&e))?;
        tx.execute(DDL_LOCK_SQL, &[&self.schema])
            .await
            .map_err(|e| classify(&e))?;
        tx.batch_execute(&ddl(&self.schema, &self.layout))
            .await
            .map_err(|e| WriteError::Sink(e.to_string()))?;
        let existing: BTreeSet<(String, String)> = tx
            .query(COLUMNS_SQL, &[&self.schema])
            .await
            .map_err(|e| WriteError::Sink(e.to_string()))?
            .iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect();
        let added = added_columns(&self.schema, &self.layout, &existing);
        if !added.is_empty() {
            tx.batch_execute(&added)
                .await
                .map_err(|e| WriteError::Sink(e.to_string()))?;
            tracing::info!(schema = %self.schema, columns = %added.lines().count(), "platform tables: columns added");
        }
        tx.commit().await.map_err(|e| classify(&e))?;
        self.schema_ready.store(true, Ordering::Release);
        tracing::info!(schema = %self.schema, "platform tables ready");
        Ok(())
    }

    /// Write the batch in one transaction.
    async fn write(&self, batch: &[&Delivery]) -> Result<(), WriteError> {
        let mut client = self.client().await?;
        self.ensure_schema(&mut client).await?;
        let result = self.write_in(&mut client, batch).await;
        if let Err(WriteError::Sink(_)) = &result {
            // The tables may have been dropped: create them again before the next batch.
            self.schema_ready.store(false, Ordering::Release);
        }
        result
    }

    async fn write_in(&self, client: &mut deadpool_postgres::Client, batch: &[&Delivery]) -> Result<(), WriteError> {
        let tx = client.transaction().await.map_err(|e| classify(&e))?;
        let cases = tx.prepare_cached(&self.sql_cases).await.map_err(|e| classify(&e))?;
        let mut children = Vec::with_capacity(self.sql_children.len());
        for sql in &self.sql_children {
            children.push(tx.prepare_cached(sql).await.map_err(|e| classify(&e))?);
        }
        let current = tx.prepare_cached(&self.sql_current).await.map_err(|e| classify(&e))?;

        let codes: Vec<&str> = batch.iter().map(|d| d.unified_code.as_str()).collect();
        let versions: Vec<i32> = batch.iter().map(|d| d.version).collect();
        let withdrawn: Vec<bool> = batch.iter().map(|d| d.withdrawn).collect();
        let keys: Vec<&str> = batch.iter().map(|d| d.idempotency_key.as_str()).collect();
        let types: Vec<&str> = batch.iter().map(|d| d.case_type.as_str()).collect();
        let years: Vec<i32> = batch.iter().map(|d| d.year).collect();
        let regions: Vec<&str> = batch.iter().map(|d| d.region.as_str()).collect();
        let committed: Vec<chrono::DateTime<chrono::Utc>> = batch.iter().map(|d| d.committed_at).collect();
        let records: Vec<Json<&Value>> = batch.iter().map(|d| Json(&d.record)).collect();
        let fields: Vec<Vec<Option<String>>> = self
            .layout
            .columns
            .iter()
            .map(|c| batch.iter().map(|d| c.value(&d.record)).collect())
            .collect();
        let mut case_params: Vec<&(dyn ToSql + Sync)> = vec![
            &codes, &versions, &withdrawn, &keys, &types, &years, &regions, &committed, &records,
        ];
        case_params.extend(fields.iter().map(|f| f as &(dyn ToSql + Sync)));

        let child_rows: Vec<ChildRows> = self.layout.children.iter().map(|t| ChildRows::of(t, batch)).collect();
        let child_params: Vec<Vec<&(dyn ToSql + Sync)>> = self
            .layout
            .children
            .iter()
            .zip(&child_rows)
            .map(|(t, rows)| rows.params(t.array.is_some()))
            .collect();
        let distinct_codes: Vec<&str> = codes.iter().copied().collect::<BTreeSet<_>>().into_iter().collect();

        let current_params: [&(dyn ToSql + Sync); 1] = [&distinct_codes];
        // Pipelined: the statements are sent together and run in this order.
        let mut statements: Vec<PendingStatement<'_>> = vec![Box::pin(tx.execute(&cases, &case_params))];
        for ((stmt, params), rows) in children.iter().zip(&child_params).zip(&child_rows) {
            if !rows.codes.is_empty() {
                statements.push(Box::pin(tx.execute(stmt, params)));
            }
        }
        statements.push(Box::pin(tx.execute(&current, &current_params)));
        let result = futures_util::future::try_join_all(statements).await;
        result.map_err(|e| classify(&e))?;
        tx.commit().await.map_err(|e| classify(&e))?;
        Ok(())
    }

    /// Write `batch`; on a data error split it until the refused record is alone.
    fn deliver_bisecting<'a>(
        &'a self,
        batch: &'a [&'a Delivery],
    ) -> Pin<Box<dyn Future<Output = Vec<Outcome>> + Send + 'a>> {
        Box::pin(async move {
            match self.write(batch).await {
                Ok(()) => vec![Outcome::Delivered; batch.len()],
                Err(WriteError::Sink(reason)) => vec![Outcome::deferred(reason); batch.len()],
                Err(WriteError::Data(error)) if batch.len() == 1 => vec![Outcome::Rejected { error }],
                Err(WriteError::Data(error)) => {
                    tracing::warn!(size = batch.len(), %error, "a record was refused; splitting the batch to find it");
                    let (left, right) = batch.split_at(batch.len() / 2);
                    let mut outcomes = self.deliver_bisecting(left).await;
                    outcomes.extend(self.deliver_bisecting(right).await);
                    outcomes
                }
            }
        })
    }
}

#[async_trait]
impl Sink for PostgresSink {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    async fn deliver(&self, batch: &[Delivery]) -> Vec<Outcome> {
        let refs: Vec<&Delivery> = batch.iter().collect();
        self.deliver_bisecting(&refs).await
    }

    async fn close(&self) {
        self.pool.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_plain_identifiers() {
        assert!(is_identifier("platform"));
        assert!(is_identifier("_p2"));
        for bad in ["", "Platform", "p-1", "1p", "p\"; DROP", &"x".repeat(64)] {
            assert!(!is_identifier(bad), "{bad}");
        }
    }

    #[test]
    fn settings_need_a_url_and_a_plain_schema() {
        let s: PostgresSettings = toml::from_str("schema = \"Bad-Name\"").unwrap();
        let problems = s.check(std::path::Path::new("/"));
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["url", "schema"], "{problems:?}");
    }

    #[test]
    fn generated_sql_has_one_parameter_per_column() {
        let sql = cases_insert("platform", &Layout::cases());
        assert!(sql.contains(&format!("${}::text[]", 9 + CASE_COLUMNS.len())));
        assert!(!sql.contains(&format!("${}::", 10 + CASE_COLUMNS.len())));
        assert!(sql.contains("\"closing_date\""));
        assert!(sql.contains("u.c29::date"), "{sql}");
        let penalties = child_insert("platform", &TABLES[2]);
        assert!(
            penalties.contains("ON CONFLICT (\"unified_code\", \"version\") DO UPDATE"),
            "{penalties}"
        );
        assert!(
            penalties.contains("jsonb_array_elements_text(u.c7::jsonb)"),
            "{penalties}"
        );
        let officers = child_insert("platform", &TABLES[0]);
        assert!(
            officers.contains("ON CONFLICT (\"unified_code\", \"version\", \"position\")"),
            "{officers}"
        );
    }

    #[test]
    fn child_rows_follow_objects_and_arrays_of_the_record() {
        let d = super::super::encode::sample_delivery();
        let officers = ChildRows::of(&TABLES[0], &[&d]);
        assert_eq!(officers.positions, [1, 2]);
        assert_eq!(
            officers.columns[0],
            [Some("张三".to_string()), Some("李四".to_string())]
        );
        let penalties = ChildRows::of(&TABLES[2], &[&d]);
        assert_eq!(penalties.codes.len(), 1);
        assert_eq!(penalties.columns[5], [Some("[\"fine\",\"warning\"]".to_string())]);
        assert_eq!(penalties.columns[9], [Some("1000.5".to_string())]);
        let inspections = ChildRows::of(&TABLES[3], &[&d]);
        assert!(inspections.codes.is_empty());
    }
}
