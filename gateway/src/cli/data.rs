//! Commands that work on a configured store: config check, migrate, ingest, export, replay,
//! ignore (and dispatch of `run` and `demo`).

use super::args::{ExportFormat, ExportWhat, ReadOptions};
use super::common::{actor, load_config};
use crate::commit::{Batching, OnCommit};
use crate::config::Config;
use crate::intake::files::{ingest_files, IngestJob};
use crate::intake::replay::{replay, ReplaySelection};
use crate::shutdown::Shutdown;
use crate::store::{self, AuditEntry, CaseFilter, QuarantineFilter, QuarantineStatus};
use adapters::sources::amqp::{check_broker, AmqpSourceSettings};
use anyhow::Context;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

/// `gateway config check FILE [--connect]`: print every problem with its place; with
/// `connect`, also compare each AMQP source's queue at its broker with what the gateway
/// declares. Exit 1 if any problem.
pub fn config_check(file: &Path, connect: bool) -> anyhow::Result<ExitCode> {
    match Config::load(file) {
        Ok(resolved) => {
            println!(
                "{}: ok ({} source(s), {} sink(s), store {})",
                file.display(),
                resolved.config.sources.len(),
                resolved.config.sinks.len(),
                resolved.config.store.backend
            );
            for w in resolved.config.warnings() {
                println!("警告 / warning: {}: {}", w.place, w.message);
            }
            if connect && !check_brokers(&resolved.config)? {
                return Ok(ExitCode::from(1));
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!("{e}");
            Ok(ExitCode::from(1))
        }
    }
}

/// Connect to every AMQP source's broker and print what its topology check found (see
/// `adapters::sources::amqp::check_broker`); false when any failed.
fn check_brokers(config: &Config) -> anyhow::Result<bool> {
    let amqp: Vec<_> = config
        .sources
        .iter()
        .enumerate()
        .filter(|(_, s)| s.kind == "amqp")
        .collect();
    if amqp.is_empty() {
        return Ok(true);
    }
    let runtime = tokio::runtime::Runtime::new().context("cannot start the runtime")?;
    let mut all_ok = true;
    for (i, source) in amqp {
        let place = format!("sources[{i}] (id {:?}).amqp", source.id);
        let table = source.amqp.clone().unwrap_or_default();
        let checked = match AmqpSourceSettings::from_table(&table) {
            Ok(settings) => runtime.block_on(check_broker(&source.id, &settings, &config.base_dir)),
            Err(p) => vec![Err(adapters::sources::SourceError::Settings(p.to_string()))],
        };
        for line in checked {
            match line {
                Ok(line) => println!("{place}: {line}"),
                Err(e) => {
                    all_ok = false;
                    println!("{place}: {e}");
                }
            }
        }
    }
    Ok(all_ok)
}

pub async fn ingest(
    config: &Path,
    source: &str,
    format: Option<String>,
    reading: ReadOptions,
    files: Vec<PathBuf>,
    quiet: bool,
) -> anyhow::Result<ExitCode> {
    let ReadOptions {
        encoding,
        sheet,
        header_row,
    } = reading;
    let resolved = load_config(config)?;
    let (_, source_cfg) = resolved
        .config
        .source(source)
        .with_context(|| format!("来源 {source:?} 未在配置中 / source {source:?} is not in the configuration"))?;
    let by_extension = format.is_none();
    let format = super::normalize::input_format(Some(format.as_deref().unwrap_or(&source_cfg.format)), None)?;
    let xml_records = source_cfg.xml_records.clone();
    let mut settings = crate::prepare::ReadSettings::of_source(source_cfg).map_err(|e| anyhow::anyhow!("{e}"))?;
    if let Some(label) = encoding {
        settings.encoding = crate::prepare::TextEncoding::from_setting("--encoding", Some(&label))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    if let Some(sheet) = sheet {
        settings.sheets.sheet = Some(sheet);
    }
    if let Some(row) = header_row {
        settings.sheets.header_row = row.max(1);
    }
    let batching = Batching::from(&resolved.config);
    // The source's active stored mapping version, not its configured file.
    let runtime = crate::runtime::Runtime::open(resolved).await?;
    let store = Arc::clone(&runtime.store);
    let preparer = runtime.preparers.get(source).context("source preparer")?;
    let shutdown = Shutdown::default();
    crate::shutdown::on_signals(shutdown.clone());
    let progress = progress_bar(&files, quiet);
    let on_commit: Option<OnCommit> = progress
        .clone()
        .map(|pb| Arc::new(move |results: &[crate::store::RecordResult]| pb.inc(results.len() as u64)) as OnCommit);
    let job = IngestJob {
        preparer,
        files: files.clone(),
        format,
        by_extension,
        xml_records,
        settings,
    };
    let summary = ingest_files(&runtime.committer("files"), job, &batching, shutdown.clone(), on_commit).await?;
    if let Some(pb) = progress {
        pb.finish_and_clear();
    }
    store
        .audit(&AuditEntry {
            actor: actor(),
            action: "ingest".into(),
            subject: format!("source:{source}"),
            detail: serde_json::json!({ "files": files, "summary": summary }),
        })
        .await?;
    println!("{}", serde_json::to_string(&summary)?);
    Ok(if shutdown.is_triggered() {
        ExitCode::from(130)
    } else {
        ExitCode::SUCCESS
    })
}

fn progress_bar(files: &[PathBuf], quiet: bool) -> Option<indicatif::ProgressBar> {
    if quiet || !std::io::stderr().is_terminal() {
        return None;
    }
    let bytes: u64 = files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    let pb = indicatif::ProgressBar::new_spinner();
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{spinner} {elapsed_precise} 已提交 committed {pos} 条 records ({per_sec}) {msg}",
    ) {
        pb.set_style(style);
    }
    pb.set_message(format!("{} file(s), {:.1} MB", files.len(), bytes as f64 / 1e6));
    pb.enable_steady_tick(std::time::Duration::from_millis(200));
    Some(pb)
}

pub async fn export(
    config: &Path,
    what: ExportWhat,
    source: Option<String>,
    format: ExportFormat,
    personal: super::args::PersonalDataShown,
) -> anyhow::Result<ExitCode> {
    let resolved = load_config(config)?;
    let store = store::open(&resolved.config).await?.store;
    if let ExportWhat::JointGroups = what {
        return super::joint::export_groups(store.joint(), source, format).await;
    }
    let keys = crate::crypto::personal::registered();
    let clear = personal == super::args::PersonalDataShown::Clear;
    if clear && keys.is_some() {
        store
            .audit(&AuditEntry {
                actor: actor(),
                action: "personal_data.export".into(),
                subject: format!("export:{what:?}").to_lowercase(),
                detail: serde_json::json!({"source": source}),
            })
            .await?;
    }
    // Sealed values opened (clear) or masked, and identifiers in raw payloads masked.
    let how = if clear {
        crate::crypto::personal::Shown::Clear
    } else {
        crate::crypto::personal::Shown::Masked
    };
    let shown = |text: String, json: bool| -> String {
        match &keys {
            Some(keys) => crate::crypto::personal::shown_text(keys, &text, how, json).0,
            None => text,
        }
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut csv = match format {
        ExportFormat::Csv => Some(csv::Writer::from_writer(std::io::stdout())),
        ExportFormat::Jsonl => None,
    };
    match what {
        ExportWhat::Cases => {
            if let Some(w) = csv.as_mut() {
                w.write_record([
                    "unified_code",
                    "case_type",
                    "year",
                    "region",
                    "agency_credit_code",
                    "case_number",
                    "version",
                    "withdrawn",
                    "created_at",
                    "updated_at",
                    "record",
                ])?;
            }
            let mut after = None;
            loop {
                let page = store
                    .cases(&CaseFilter {
                        source_id: source.clone(),
                        after_id: after,
                        limit: Some(1000),
                        ..Default::default()
                    })
                    .await?;
                let Some(last) = page.last() else { break };
                after = Some(last.id);
                for c in &page {
                    match csv.as_mut() {
                        Some(w) => {
                            w.write_record([
                                c.unified_code.clone(),
                                c.key.case_type.to_string(),
                                c.year.to_string(),
                                c.region.clone(),
                                c.key.agency_credit_code.to_string(),
                                c.key.case_number.to_string(),
                                c.version.to_string(),
                                c.withdrawn.to_string(),
                                c.created_at.to_rfc3339(),
                                c.updated_at.to_rfc3339(),
                                shown(c.record.to_string(), true),
                            ])?;
                        }
                        None => writeln!(out, "{}", shown(serde_json::to_string(c)?, true))?,
                    }
                }
            }
        }
        ExportWhat::JointGroups => {}
        ExportWhat::Quarantine => {
            if let Some(w) = csv.as_mut() {
                w.write_record([
                    "id",
                    "source_id",
                    "record_key",
                    "status",
                    "rules",
                    "violations",
                    "raw_record",
                    "created_at",
                    "attempts",
                    "note",
                ])?;
            }
            let mut before = None;
            loop {
                let page = store
                    .quarantine_list(&QuarantineFilter {
                        source_id: source.clone(),
                        before_id: before,
                        limit: Some(500),
                        ..Default::default()
                    })
                    .await?;
                let Some(last) = page.last() else { break };
                before = Some(last.id);
                for q in &page {
                    let raw = store.raw_record(q.raw_id).await?;
                    let raw_value: serde_json::Value = serde_json::from_slice(&raw.payload).unwrap_or_else(|_| {
                        serde_json::Value::String(String::from_utf8_lossy(&raw.payload).into_owned())
                    });
                    match csv.as_mut() {
                        Some(w) => {
                            let rules: Vec<&str> = q.violations.iter().map(|v| v.rule.as_str()).collect();
                            w.write_record([
                                q.id.to_string(),
                                q.source_id.clone(),
                                q.record_key.clone(),
                                q.status.as_str().to_string(),
                                rules.join(" "),
                                shown(serde_json::to_string(&q.violations)?, true),
                                shown(raw_value.to_string(), true),
                                q.created_at.to_rfc3339(),
                                q.attempts.to_string(),
                                q.note.clone().unwrap_or_default(),
                            ])?;
                        }
                        None => {
                            let mut v = serde_json::to_value(q)?;
                            v["raw_record"] = raw_value;
                            writeln!(out, "{}", shown(v.to_string(), true))?;
                        }
                    }
                }
            }
        }
    }
    if let Some(w) = csv.as_mut() {
        w.flush()?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// `gateway migrate`: apply the store's migrations.
pub async fn migrate(config: &Path) -> anyhow::Result<ExitCode> {
    let resolved = load_config(config)?;
    let store = store::open(&resolved.config).await?.store;
    store
        .audit(&AuditEntry {
            actor: actor(),
            action: "migrate".into(),
            subject: format!("store:{}", store.backend()),
            detail: serde_json::json!({}),
        })
        .await?;
    println!("迁移完成 / migrations applied ({})", store.backend());
    Ok(ExitCode::SUCCESS)
}

/// `gateway replay`: re-run the selected open quarantine entries through the current mappings.
pub async fn replay_entries(
    config: &Path,
    id: Option<i64>,
    source: Option<String>,
    rule: Option<String>,
) -> anyhow::Result<ExitCode> {
    if id.is_none() && source.is_none() && rule.is_none() {
        anyhow::bail!("指定 --id、--source 或 --rule 之一 / give --id, --source or --rule");
    }
    let resolved = load_config(config)?;
    // Each source's active stored mapping version, not its configured file.
    let runtime = crate::runtime::Runtime::open(resolved).await?;
    let store = Arc::clone(&runtime.store);
    let preparers = runtime.preparers.snapshot();
    let selection = ReplaySelection {
        id,
        source_id: source.clone(),
        rule: rule.clone(),
        ..Default::default()
    };
    let summary = replay(&runtime.committer("replay"), &preparers, &selection).await?;
    store
        .audit(&AuditEntry {
            actor: actor(),
            action: "replay".into(),
            subject: match (id, &source, &rule) {
                (Some(id), _, _) => format!("quarantine:{id}"),
                (_, Some(s), _) => format!("source:{s}"),
                (_, _, Some(r)) => format!("rule:{r}"),
                _ => "quarantine".into(),
            },
            detail: serde_json::to_value(summary)?,
        })
        .await?;
    println!("{}", serde_json::to_string(&summary)?);
    Ok(ExitCode::SUCCESS)
}

/// `gateway ignore`: mark a quarantine entry ignored (audit-logged).
pub async fn ignore(config: &Path, id: i64, reason: &str) -> anyhow::Result<ExitCode> {
    let resolved = load_config(config)?;
    let store = store::open(&resolved.config).await?.store;
    store
        .quarantine_set_status(id, QuarantineStatus::Ignored, Some(reason))
        .await?;
    store
        .audit(&AuditEntry {
            actor: actor(),
            action: "quarantine.ignore".into(),
            subject: format!("quarantine:{id}"),
            detail: serde_json::json!({ "reason": reason }),
        })
        .await?;
    println!("隔离记录 {id} 已标记为忽略 / quarantine entry {id} marked ignored");
    Ok(ExitCode::SUCCESS)
}
