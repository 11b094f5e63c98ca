//! The command line's arguments (clap): every command, its options and their help.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// 赣执网关 ganzhi-gateway: collects administrative law-enforcement cases (行政检查、行政处罚、
/// 行政强制) from departmental systems, validates them against the national and provincial
/// standards, gives every case its province-wide unified code (一案一码) and delivers it onward.
#[derive(Debug, Parser)]
#[command(name = "gateway", version, propagate_version = true)]
pub struct Cli {
    /// Log filter, e.g. `info`, `gateway=debug` (also env RUST_LOG).
    #[arg(long, global = true, default_value = "warn", env = "GATEWAY_LOG")]
    pub log: String,
    /// Log as JSON lines (for log collectors).
    #[arg(long, global = true)]
    pub log_json: bool,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check identifiers: credit codes, ID numbers, region codes, unified case codes.
    ///
    /// With no VALUE, reads one value per line from standard input. Prints one line per value:
    /// `VALUE<TAB>valid<TAB>NORMALISED` or `VALUE<TAB>invalid<TAB>RULE<TAB>MESSAGE`.
    /// Exit status: 0 all valid, 1 any invalid, 2 usage error.
    Check {
        /// What kind of identifier.
        kind: CheckKind,
        /// Values to check (default: standard input, one per line).
        values: Vec<String>,
        /// Print one JSON object per line instead.
        #[arg(long)]
        json: bool,
        /// Region codes: require a current code (default: current or historical).
        #[arg(long)]
        current: bool,
    },
    /// Run records (JSON, JSON lines, XML, CSV or a spreadsheet) through a mapping and print,
    /// per record, the canonical record or the violations as one JSON line.
    Normalize {
        /// The mapping file.
        #[arg(long)]
        mapping: PathBuf,
        /// Input file (default: standard input).
        input: Option<PathBuf>,
        /// Input format: json, jsonl, xml, csv or xlsx (default: from the file extension, else
        /// jsonl).
        #[arg(long)]
        format: Option<String>,
        /// Text encoding, sheet and header row.
        #[command(flatten)]
        reading: ReadOptions,
        /// XML: dotted element path of the record elements.
        #[arg(long)]
        xml_records: Option<String>,
        /// Validate against this province: agency region codes must start with it (e.g. 36).
        #[arg(long)]
        province: Option<String>,
        /// Check against this supervision-item catalogue CSV (as `[normalizer] catalogue`):
        /// "清单之外无检查", item names looked up, exempt domains.
        #[arg(long)]
        catalogue: Option<PathBuf>,
        /// Check officers against this registry file (CSV or JSON, as `[normalizer.officers] file`).
        #[arg(long)]
        officers: Option<PathBuf>,
        /// Severity of the officer rules: auto (default), warning or error.
        #[arg(long, default_value = "auto")]
        officer_severity: String,
    },
    /// Mappings: run their embedded tests; upload, dry-run, activate and roll back the versions a
    /// source runs (see docs/mapping-lifecycle.md).
    ///
    /// Exit status of upload, diff, activate, rollback and history: 0 done, 1 refused (the
    /// reasons on standard error, e.g. a failing embedded test), 2 the gateway failed (store).
    Mappings {
        /// What to do.
        #[command(subcommand)]
        action: MappingsAction,
    },
    /// Ask a gateway whether it is ready: GET the URL (default its `/readyz` on
    /// 127.0.0.1:8080) and exit 0 on a 2xx answer, 1 otherwise (the status or error on standard
    /// error). For container health checks, where no curl is installed.
    Probe {
        /// The URL to ask.
        #[arg(default_value = "http://127.0.0.1:8080/readyz")]
        url: String,
        /// Seconds to wait for the answer.
        #[arg(long, default_value_t = 5)]
        timeout_seconds: u64,
    },
    /// Configuration files.
    Config {
        /// What to do.
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Apply the store's schema migrations (also done at every start).
    Migrate {
        /// The configuration file.
        #[arg(long)]
        config: PathBuf,
    },
    /// One-shot import of files through the full pipeline (backfills). Prints one JSON summary
    /// line: {"received":N,"accepted":N,"updated":N,"unchanged":N,"quarantined":N}.
    Ingest {
        /// The configuration file.
        #[arg(long)]
        config: PathBuf,
        /// Source id (from the configuration) whose mapping applies.
        #[arg(long)]
        source: String,
        /// Input format (default: each file's extension when it names one, else the source's
        /// `format`).
        #[arg(long)]
        format: Option<String>,
        /// Text encoding, sheet and header row (default: the source's).
        #[command(flatten)]
        reading: ReadOptions,
        /// Files to import.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
    },
    /// Export cases (with unified codes and business keys) or quarantine entries (with raw
    /// record and violations) to standard output.
    Export {
        /// What to export.
        what: ExportWhat,
        /// The configuration file.
        #[arg(long)]
        config: PathBuf,
        /// Only this source.
        #[arg(long)]
        source: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value = "jsonl")]
        format: ExportFormat,
        /// Personal data (with `[personal_data]` keys): `masked` (default) or `clear` (written
        /// to the audit log).
        #[arg(long, value_enum, default_value = "masked")]
        personal_data: PersonalDataShown,
    },
    /// Re-run quarantined records through the current mapping of their source.
    Replay {
        /// The configuration file.
        #[arg(long)]
        config: PathBuf,
        /// One quarantine entry.
        #[arg(long, conflicts_with_all = ["source", "rule"])]
        id: Option<i64>,
        /// All open entries of this source.
        #[arg(long)]
        source: Option<String>,
        /// All open entries with a violation of this rule id.
        #[arg(long)]
        rule: Option<String>,
    },
    /// Mark a quarantine entry ignored, with a reason (kept in the audit log).
    Ignore {
        /// The configuration file.
        #[arg(long)]
        config: PathBuf,
        /// The quarantine entry.
        #[arg(long)]
        id: i64,
        /// Why it is ignored.
        #[arg(long)]
        reason: String,
    },
    /// Run the gateway: poll the configured directory sources and deliver committed versions to
    /// the configured sinks until Ctrl-C / SIGTERM.
    Run {
        /// The configuration file.
        #[arg(long)]
        config: PathBuf,
        /// Process what is there once and exit.
        #[arg(long)]
        once: bool,
    },
    /// Demonstration on the embedded store with the example mappings and sample data.
    Demo {
        /// Where to keep the demo's files (default: a new temporary directory).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Address of the operator API and dashboard the demo serves afterwards.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        /// Stop after the summary instead of serving the operator API.
        #[arg(long)]
        exit: bool,
    },
    /// Onward deliveries (the outbox): list them, re-drive dead ones.
    Deliveries {
        /// What to do.
        #[command(subcommand)]
        action: DeliveriesAction,
    },
    /// The officer registry (执法人员名录): load an agency's list from a file, list officers and
    /// versions. A load replaces the list of every agency it names as a new version (audit-logged
    /// with `--actor`, default `cli:$USER`); running gateways on the store use it from their next
    /// refresh (`[normalizer.officers] refresh_seconds`).
    ///
    /// Exit status: 0 done, 1 the file was refused (every bad row on standard error), 2 failure.
    Officers {
        /// What to do.
        #[command(subcommand)]
        action: OfficersAction,
    },
    /// Tokens of the operator API.
    Token {
        /// What to do.
        #[command(subcommand)]
        action: TokenAction,
    },
    /// Pull sources: propose a `[[sources]]` block from a service description.
    Sources {
        /// What to do.
        #[command(subcommand)]
        action: super::sources::SourcesAction,
    },
    /// Fill-in templates (填报模板) for departments that send spreadsheets.
    Template {
        /// What to write.
        #[command(subcommand)]
        action: TemplateAction,
    },
    /// Joint inspections (联合检查相似度比对): the index of inspections by target.
    Joint {
        /// What to do.
        #[command(subcommand)]
        action: JointAction,
    },
    /// The evidence-grade raw archive (证据级原始归档): hash chain, signed checkpoints, receipts.
    Archive {
        /// What to do.
        #[command(subcommand)]
        action: ArchiveAction,
    },
    /// Personal data sealed at rest (个人信息加密存储): data keys.
    PersonalData {
        /// What to do.
        #[command(subcommand)]
        action: PersonalDataAction,
    },
}

/// How an export shows personal data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PersonalDataShown {
    /// Masked (`3601**********123X`).
    Masked,
    /// In clear (audit-logged).
    Clear,
}

/// `gateway personal-data ...`.
#[derive(Debug, Subcommand)]
pub enum PersonalDataAction {
    /// Write a new random data key (hex, mode 0600) for `[[personal_data.keys]]`.
    Keygen {
        /// `sm4-gcm` (default) or `aes-256-gcm`.
        #[arg(long, default_value = "sm4-gcm")]
        cipher: String,
        /// Where to write the key (refused if it exists).
        #[arg(long)]
        out: PathBuf,
    },
    /// Re-seal every stored value and payload under the current key (`[personal_data] current`),
    /// so that the other keys can be retired; safe while gateways run. Prints what it did as JSON;
    /// exit 1 when a value did not open.
    Rekey {
        /// The configuration file (every key values may be sealed under, and the current one).
        #[arg(long)]
        config: PathBuf,
        /// Rows read at a time.
        #[arg(long, default_value_t = 500)]
        batch: i64,
    },
}

/// `gateway archive` actions.
#[derive(Debug, Subcommand)]
pub enum ArchiveAction {
    /// Re-hash the archived payloads, check every link of each source's chain, each checkpoint's
    /// signature and that its heads lie on the chain; names the first broken link of each source
    /// and exits 1 when anything does not verify.
    Verify {
        /// The configuration file (its store, signing key and trusted keys).
        #[arg(long)]
        config: PathBuf,
        /// Only this source.
        #[arg(long)]
        source: Option<String>,
        /// Only links received from this day (YYYY-MM-DD, UTC) or time (RFC 3339) on.
        #[arg(long)]
        from: Option<String>,
        /// A witness's file of checkpoints (JSON lines, as a `file` witness writes them): each
        /// must verify and be in the store unchanged. May be given more than once.
        #[arg(long)]
        witness: Vec<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Sign the current chain heads now (and send the checkpoints to the witnesses).
    Checkpoint {
        /// The configuration file (with `[archive.checkpoints]` signing key).
        #[arg(long)]
        config: PathBuf,
    },
    /// Print the receipt (JSON) of one raw record: payload hash, link, position, the signed
    /// checkpoint covering it and the links up to that checkpoint's head.
    Receipt {
        /// The configuration file.
        #[arg(long)]
        config: PathBuf,
        /// The raw record's id.
        raw_id: i64,
    },
    /// Write a new signing key pair: the private key (PKCS#8 PEM, mode 0600) to OUT and the
    /// public key to OUT.pub; prints the public key.
    Keygen {
        /// `sm2` (default) or `ed25519`.
        #[arg(long, default_value = "sm2")]
        algorithm: String,
        /// Where to write the private key (refused if it exists).
        #[arg(long)]
        out: PathBuf,
    },
}

/// How inputs are read besides their format (`gateway normalize`, `gateway ingest`).
#[derive(Debug, Clone, Default, Args)]
pub struct ReadOptions {
    /// Text formats: utf-8, gbk, gb18030 or auto (default: the source's `encoding`, else auto:
    /// BOM, else valid UTF-8, else GB18030).
    #[arg(long)]
    pub encoding: Option<String>,
    /// Spreadsheets: only this sheet (default: every sheet but 说明).
    #[arg(long)]
    pub sheet: Option<String>,
    /// Spreadsheets: the row of column titles, from 1 (default 1).
    #[arg(long)]
    pub header_row: Option<u32>,
}

/// `gateway template` actions.
#[derive(Debug, Subcommand)]
pub enum TemplateAction {
    /// Write a fill-in spreadsheet (.xlsx) for departments without an interface: one column per
    /// canonical field with its Chinese title, drop-down lists of the code tables, an
    /// instructions sheet (说明), the header row frozen. `--mapping-out` writes the mapping that
    /// reads a filled-in copy.
    Xlsx {
        /// penalty, inspection or coercion.
        #[arg(long)]
        case_type: String,
        /// Take the drop-down lists of code tables from this mapping directory's tables where
        /// it maps a field from a code table (default: the canonical values' Chinese names).
        #[arg(long)]
        mapping: Option<PathBuf>,
        /// The .xlsx file to write.
        #[arg(short, long)]
        output: PathBuf,
        /// Also write the mapping for filled-in copies to this file.
        #[arg(long)]
        mapping_out: Option<PathBuf>,
    },
}

/// `gateway joint` actions.
#[derive(Debug, Subcommand)]
pub enum JointAction {
    /// Rebuild the index and its groups from the cases (after `[joint] enabled = false` or a
    /// changed `window_days`); decisions of groups found again with the same members stay.
    Rebuild {
        /// The configuration file.
        #[arg(long)]
        config: PathBuf,
    },
    /// Apply what commits queued for the background indexer (`[joint] index = "background"`)
    /// now, until the queue is empty (a running gateway does this by itself).
    Drain {
        /// The configuration file.
        #[arg(long)]
        config: PathBuf,
    },
}

/// `gateway officers` actions.
#[derive(Debug, Subcommand)]
pub enum OfficersAction {
    /// Load a registry file: CSV (headers 姓名/name, 执法证号/cert_no, 统一社会信用代码/agency,
    /// 有效期起/valid_from, 有效期止/valid_to, 状态/status; UTF-8 or GBK) or JSON. Prints one
    /// JSON line per agency version (counts added, removed, changed).
    Load {
        /// The configuration file.
        #[arg(long)]
        config: PathBuf,
        /// The registry file.
        file: PathBuf,
        /// The agency of rows naming none (with an empty file: empties its list).
        #[arg(long)]
        agency: Option<String>,
        /// csv or json (default: by the file's content).
        #[arg(long)]
        format: Option<String>,
        /// Who loads, for the audit log (default `cli:$USER`).
        #[arg(long)]
        actor: Option<String>,
    },
    /// Print officers, one JSON object per line (by agency and certificate number).
    List {
        /// The configuration file.
        #[arg(long)]
        config: PathBuf,
        /// Only this agency.
        #[arg(long)]
        agency: Option<String>,
        /// Name or certificate number containing this.
        #[arg(long)]
        q: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 1000)]
        limit: i64,
    },
    /// Print the registry versions newest first, one JSON object per line.
    Versions {
        /// The configuration file.
        #[arg(long)]
        config: PathBuf,
        /// Only this agency.
        #[arg(long)]
        agency: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
}

/// `gateway token` actions.
#[derive(Debug, Subcommand)]
pub enum TokenAction {
    /// Print a fresh random token (give it to its holder, once) and the `[[server.tokens]]`
    /// block with its SHA-256 for the configuration (the token itself is never stored).
    New {
        /// Name of the holder (shown in logs and the audit log).
        #[arg(long, default_value = "CHANGE-ME")]
        name: String,
        /// admin, operator, standards-owner or department.
        #[arg(long, default_value = "operator")]
        role: String,
        /// Department tokens: a push source the department owns (repeat for several).
        #[arg(long = "source")]
        sources: Vec<String>,
        /// The configuration the token is for: each `--source` must be one of its sources, and
        /// a source that is not a push source is named (the token can read its quarantine
        /// entries but not push to it).
        #[arg(long)]
        config: Option<std::path::PathBuf>,
    },
}

/// `gateway deliveries` actions.
#[derive(Debug, Subcommand)]
pub enum DeliveriesAction {
    /// Print deliveries newest first, one JSON object per line (id, sink, idempotency key,
    /// status, attempts, next attempt, last error or the sink's answer), then the counts per
    /// sink and status on standard error.
    List {
        /// The configuration file.
        #[arg(long)]
        config: PathBuf,
        /// Only this sink.
        #[arg(long)]
        sink: Option<String>,
        /// Only this status.
        #[arg(long, value_enum)]
        status: Option<DeliveryStatusArg>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
    /// Send dead deliveries again: one (`--id`), or every dead one of a sink
    /// (`--sink ID --all-dead`). They become pending with fresh attempts; `gateway run` sends them.
    Redrive {
        /// The delivery (an id from `gateway deliveries list`).
        #[arg(long, conflicts_with_all = ["sink", "all_dead"])]
        id: Option<i64>,
        /// The sink whose dead deliveries to re-drive (with --all-dead).
        #[arg(long, requires = "all_dead")]
        sink: Option<String>,
        /// Every dead delivery of --sink.
        #[arg(long, requires = "sink")]
        all_dead: bool,
        /// The configuration file.
        #[arg(long)]
        config: PathBuf,
    },
}

/// Delivery statuses on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum DeliveryStatusArg {
    /// Waiting to be delivered or retried.
    Pending,
    /// Delivered.
    Delivered,
    /// Refused or out of attempts.
    Dead,
    /// Re-driven, but older than a version of the case already delivered: never sent.
    Superseded,
    /// Not published by a publicity sink's rules (the reason is kept).
    Withheld,
}

/// Identifier kinds of `gateway check`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum CheckKind {
    /// Unified social credit code (GB 32100).
    Uscc,
    /// Resident identity number (GB 11643).
    IdNumber,
    /// Region code (GB/T 2260).
    Region,
    /// Unified case code (一案一码).
    CaseCode,
}

/// `gateway mappings` actions.
///
/// The store keeps every mapping version of each source; one is active (the one records are
/// mapped with). The usual way: `upload` a changed mapping (stored as a candidate), `diff` it
/// against real archived records, `activate` it, `rollback` if needed, `history` to see who did
/// what. Mutating commands are audit-logged with `--actor` (default `cli:$USER`).
#[derive(Debug, Subcommand)]
pub enum MappingsAction {
    /// Run the embedded tests of mapping files (PATH: a file or a folder searched for
    /// `mapping.toml`; default `mappings/`). Fails on any difference.
    Test {
        /// Mapping files or folders.
        paths: Vec<PathBuf>,
        /// Validate with this configuration's `[normalizer]` settings (province, catalogue file,
        /// exempt domains, officer registry file) instead of the defaults.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Store a new mapping version for a source as a candidate (not active yet).
    ///
    /// PATH is the mapping file, or its folder (holding `mapping.toml`); the code-table CSV files
    /// it names are stored with it. Refused (exit 1, with the reasons) when the mapping does not
    /// load (file:line:col), when one of its embedded tests fails (every failure is listed),
    /// when its `id` is not the source's mapping id, or when its `version` is not greater than
    /// every stored version. Example:
    ///
    ///   gateway mappings upload --config gateway.toml --source nanchang-amr mappings/nanchang-amr-penalty
    Upload {
        /// The configuration file.
        #[arg(long)]
        config: PathBuf,
        /// The source the mapping is for.
        #[arg(long)]
        source: String,
        /// The mapping file or its folder.
        path: PathBuf,
        /// Who uploads (for the audit log; default `cli:$USER`).
        #[arg(long)]
        actor: Option<String>,
        /// Print the report as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Dry run: replay the source's last N archived raw records through the active version and
    /// through version V, and show what would change (nothing is written but an audit entry).
    ///
    /// Prints the counts (unchanged, changed, newly accepted, newly rejected, still rejected),
    /// the changed fields with how many records each and sample values before -> after, and
    /// the newly accepted / rejected records (with the new violations). Example:
    ///
    ///   gateway mappings diff --config gateway.toml --source nanchang-amr --version 2 --last 500
    #[command(disable_version_flag = true)]
    Diff {
        /// The configuration file.
        #[arg(long)]
        config: PathBuf,
        /// The source.
        #[arg(long)]
        source: String,
        /// The stored version to compare with the active one.
        #[arg(long)]
        version: i64,
        /// How many of the newest raw records to replay (1..=100000).
        #[arg(long, default_value_t = crate::lifecycle::DEFAULT_LAST_N)]
        last: usize,
        /// Print the report as one JSON object instead of tables.
        #[arg(long)]
        json: bool,
        /// Who runs it (for the audit log; default `cli:$USER`).
        #[arg(long)]
        actor: Option<String>,
    },
    /// Make stored version V the source's active mapping (the previous one is retired).
    ///
    /// Its embedded tests are run again first and must pass. A running gateway picks the change
    /// up within seconds; prints the version change and the diff of the mapping and code tables.
    /// Example: gateway mappings activate --config gateway.toml --source nanchang-amr --version 2
    #[command(disable_version_flag = true)]
    Activate {
        /// The configuration file.
        #[arg(long)]
        config: PathBuf,
        /// The source.
        #[arg(long)]
        source: String,
        /// The stored version to activate.
        #[arg(long)]
        version: i64,
        /// Who activates (for the audit log; default `cli:$USER`).
        #[arg(long)]
        actor: Option<String>,
        /// Print the report as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Go back to an earlier stored version (lower number than the active one): activated again,
    /// audit-logged as a rollback.
    ///
    /// Example: gateway mappings rollback --config gateway.toml --source nanchang-amr --to 1
    Rollback {
        /// The configuration file.
        #[arg(long)]
        config: PathBuf,
        /// The source.
        #[arg(long)]
        source: String,
        /// The earlier version to make active again.
        #[arg(long)]
        to: i64,
        /// Who rolls back (for the audit log; default `cli:$USER`).
        #[arg(long)]
        actor: Option<String>,
        /// Print the report as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Propose a mapping file from sample records: canonical fields matched by field names (a
    /// dictionary of pinyin-initial, pinyin, English and Chinese names) and by value patterns,
    /// each with its evidence and confidence; code tables of the values seen; embedded tests of
    /// what the proposal makes of the first samples. Uncertain proposals are commented out.
    /// See docs/mapping-suggest.md. Example:
    ///
    ///   gateway mappings suggest samples.jsonl --case-type penalty -o mappings/my-system
    Suggest(SuggestArgs),
    /// Every stored mapping version of a source (status, uploader, times, test result,
    /// activations) and the audit entries of every upload, dry run, activation and rollback.
    ///
    /// Example: gateway mappings history --config gateway.toml --source nanchang-amr
    History {
        /// The configuration file.
        #[arg(long)]
        config: PathBuf,
        /// The source.
        #[arg(long)]
        source: String,
        /// Print the history as one JSON object instead of tables.
        #[arg(long)]
        json: bool,
    },
}

/// `gateway config` actions.
#[derive(Debug, Subcommand)]
pub enum ConfigAction {
    /// Report every problem of a configuration file with its place.
    Check {
        /// The configuration file.
        file: PathBuf,
        /// Also connect to each AMQP source's broker and compare its queue (and dead-letter
        /// exchange and queue) with what the gateway declares, changing nothing.
        #[arg(long)]
        connect: bool,
    },
}

/// What `gateway export` writes.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ExportWhat {
    /// Cases with unified codes, business keys and current records.
    Cases,
    /// Quarantine entries with raw records and violations.
    Quarantine,
    /// Joint-inspection groups (联合检查比对): one line per group with its cases, agencies and dates.
    JointGroups,
}

/// Output formats of `gateway export`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ExportFormat {
    /// One JSON object per line.
    Jsonl,
    /// CSV with a header row (nested values as JSON text).
    Csv,
}

/// Arguments of `gateway mappings suggest`.
#[derive(Debug, Args)]
pub struct SuggestArgs {
    /// The sample records (JSON, JSON lines, XML or CSV).
    pub sample: PathBuf,
    /// Input format: json, jsonl, xml or csv (default: from the file extension, else jsonl).
    #[arg(long)]
    pub format: Option<String>,
    /// The case type: inspection, penalty or coercion (default: guessed from the field names).
    #[arg(long)]
    pub case_type: Option<String>,
    /// XML: dotted element path of the record elements (e.g. `Envelope.Body.queryCasesResponse.return.case`);
    /// default: the most repeated element of the document.
    #[arg(long)]
    pub xml_records: Option<String>,
    /// Write `mapping.toml` and the code-table CSV files into this folder (created if needed)
    /// instead of printing a self-contained mapping (inline code tables) to standard output.
    #[arg(short = 'o', long = "out")]
    pub out: Option<PathBuf>,
    /// The mapping's `id` (default: the folder name of `-o`, else the sample file's name).
    #[arg(long)]
    pub id: Option<String>,
    /// Confidence from which a proposal is written active (0..1; default 0.6).
    #[arg(long, default_value_t = normalizer::suggest::DEFAULT_THRESHOLD)]
    pub threshold: f64,
    /// Overwrite an existing `mapping.toml` in the `-o` folder.
    #[arg(long)]
    pub force: bool,
}
