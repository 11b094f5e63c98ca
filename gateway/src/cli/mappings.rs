//! `gateway mappings`: `test` runs the embedded tests of mapping files; `upload`, `diff`,
//! `activate`, `rollback` and `history` drive the mapping versions a source runs (see
//! [`crate::lifecycle`]).

use super::args::MappingsAction;
use super::common::{actor, load_config};
use crate::lifecycle::{self, ActivationReport, DryRunReport, History, LifecycleError, UploadReport};
use crate::store::{ActivationKind, MappingBundle};
use normalizer::mapping::Mapping;
use normalizer::mapping_tests::run_tests;
use normalizer::Normalizer;
use serde::Serialize;
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Every mapping file under `dir`, sorted: each `*.toml` whose top level declares a mapping's
/// `id` and `version` (whatever the file is called). Fragments named in `include` (no `id`),
/// gateway configurations and other TOML files are passed over; folders whose names start
/// with `.` and `target` folders are not entered.
pub fn find_mappings(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if path.is_dir() {
                if !name.starts_with('.') && name != "target" {
                    stack.push(path);
                }
            } else if name.ends_with(".toml") && is_mapping_file(&path) {
                found.push(path);
            }
        }
    }
    found.sort();
    Ok(found)
}

/// Whether `path` reads as a mapping file: top-level `id` and `version`, and no `[[sources]]`.
/// A file named `mapping.toml`, or one that does not parse but has `[[field]]` or `[[test]]`
/// tables, counts too (its test then reports why it does not load).
fn is_mapping_file(path: &Path) -> bool {
    if path.file_name().is_some_and(|n| n == "mapping.toml") {
        return true;
    }
    let Ok(text) = std::fs::read_to_string(path) else {
        return false;
    };
    let Ok(doc) = text.trim_start_matches('\u{FEFF}').parse::<toml::Table>() else {
        // A mapping with a syntax error is still tested (and fails, naming the error) rather
        // than passed over: it reads as one when it has fields or tests of its own.
        return text.lines().any(|l| matches!(l.trim(), "[[field]]" | "[[test]]"));
    };
    doc.contains_key("id") && doc.contains_key("version") && !doc.contains_key("sources")
}

/// Run the command: exit 0 when every test of every mapping passes, 1 otherwise. With `config`,
/// validation uses its `[normalizer]` settings (catalogue and officer registry files included).
pub fn test(paths: &[PathBuf], config: Option<&Path>) -> anyhow::Result<ExitCode> {
    let roots = if paths.is_empty() {
        vec![PathBuf::from("mappings")]
    } else {
        paths.to_vec()
    };
    let mut files = Vec::new();
    for root in &roots {
        if root.is_dir() {
            files.extend(find_mappings(root)?);
        } else {
            files.push(root.clone());
        }
    }
    if files.is_empty() {
        anyhow::bail!("没有找到映射文件 / no mapping files found under {roots:?}");
    }
    let normalizer = match config {
        Some(file) => Normalizer::new(load_config(file)?.rules)?,
        None => Normalizer::default(),
    };
    let mut failed = 0;
    let mut cases = 0;
    for file in &files {
        match Mapping::load(file) {
            Ok(mapping) => {
                let report = run_tests(&mapping, &normalizer);
                cases += report.cases.len();
                if report.passed() {
                    println!(
                        "ok   {} ({} v{}): {} test(s)",
                        file.display(),
                        mapping.id(),
                        mapping.version(),
                        report.cases.len()
                    );
                } else {
                    failed += 1;
                    println!("FAIL {}\n{report}", file.display());
                }
            }
            Err(e) => {
                failed += 1;
                println!("FAIL {}: {e}", file.display());
            }
        }
    }
    println!(
        "{} mapping(s), {cases} test case(s), {failed} failing mapping(s)",
        files.len()
    );
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

// ------------------------------------------------------------------------ the lifecycle commands

/// `gateway mappings upload|diff|activate|rollback|history`: exit 0 when done, 1 when the
/// request was refused (the reasons on stderr), 2 when the gateway failed (store down, ...).
pub async fn run(action: MappingsAction) -> anyhow::Result<ExitCode> {
    let (config, source) = match &action {
        MappingsAction::Test { paths, config } => return test(paths, config.as_deref()),
        MappingsAction::Suggest(args) => return super::suggest::run(args),
        MappingsAction::Upload { config, source, .. }
        | MappingsAction::Diff { config, source, .. }
        | MappingsAction::Activate { config, source, .. }
        | MappingsAction::Rollback { config, source, .. }
        | MappingsAction::History { config, source, .. } => (config.clone(), source.clone()),
    };
    let resolved = load_config(&config)?;
    if resolved.config.source(&source).is_none() {
        eprintln!("错误 / error: {}", LifecycleError::UnknownSource(source));
        return Ok(ExitCode::from(1));
    }
    let rt = crate::runtime::Runtime::open(resolved).await?;
    let who = |given: &Option<String>| given.clone().unwrap_or_else(actor);
    let result = match action {
        MappingsAction::Test { .. } | MappingsAction::Suggest(_) => return Ok(ExitCode::SUCCESS),
        MappingsAction::Upload {
            path, actor: by, json, ..
        } => {
            let bundle = MappingBundle::read(&path)?;
            lifecycle::upload(&rt, &who(&by), &source, &bundle)
                .await
                .map(|r| print_report(&r, json, print_upload))
        }
        MappingsAction::Diff {
            version,
            last,
            json,
            actor: by,
            ..
        } => lifecycle::dry_run(&rt, &who(&by), &source, version, last)
            .await
            .map(|r| print_report(&r, json, print_dry_run)),
        MappingsAction::Activate {
            version,
            actor: by,
            json,
            ..
        } => lifecycle::activate(&rt, &who(&by), &source, version)
            .await
            .map(|r| print_report(&r, json, print_activation)),
        MappingsAction::Rollback {
            to, actor: by, json, ..
        } => lifecycle::rollback(&rt, &who(&by), &source, to)
            .await
            .map(|r| print_report(&r, json, print_activation)),
        MappingsAction::History { json, .. } => lifecycle::history(&rt, &source)
            .await
            .map(|r| print_report(&r, json, print_history)),
    };
    match result {
        Ok(printed) => {
            printed?;
            Ok(ExitCode::SUCCESS)
        }
        Err(e) if e.is_refusal() => {
            eprintln!("拒绝 / refused: {e}");
            Ok(ExitCode::from(1))
        }
        Err(e) => Err(e.into()),
    }
}

/// Print `report` as one JSON line, or as text with `text`.
fn print_report<T: Serialize>(
    report: &T,
    json: bool,
    text: fn(&T, &mut dyn Write) -> std::io::Result<()>,
) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if json {
        writeln!(out, "{}", serde_json::to_string(report)?)?;
    } else {
        text(report, &mut out)?;
    }
    out.flush()?;
    Ok(())
}

/// A time in China time (UTC+8), as operators read it.
fn time(t: &chrono::DateTime<chrono::Utc>) -> String {
    normalizer::standards::china_time_text(t)
}

fn value_text(v: &Option<Value>) -> String {
    match v {
        None => "(无 / absent)".to_string(),
        Some(v) => {
            let s = v.to_string();
            if s.chars().count() > 60 {
                format!("{}…", s.chars().take(59).collect::<String>())
            } else {
                s
            }
        }
    }
}

fn print_upload(r: &UploadReport, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(
        out,
        "已保存为候选版本 / stored as candidate: source {} mapping {} v{} ({})",
        r.source_id, r.mapping_id, r.version, r.fingerprint
    )?;
    writeln!(out, "  uploaded by {} at {}", r.uploaded_by, time(&r.uploaded_at))?;
    writeln!(out, "  tests       {}/{} passed", r.tests.passed, r.tests.total)?;
    writeln!(out, "  code tables {}", r.code_tables.join(", "))?;
    match r.active_version {
        Some(active) => writeln!(
            out,
            "  active      v{active} (unchanged)\n下一步 / next: gateway mappings diff --config ... --source {} --version {}",
            r.source_id, r.version
        ),
        None => writeln!(out, "  active      none"),
    }
}

fn print_dry_run(r: &DryRunReport, out: &mut dyn Write) -> std::io::Result<()> {
    let c = &r.comparison;
    writeln!(
        out,
        "试运行 / dry run: source {}, active v{} -> candidate v{}, the source's newest raw records (up to {})",
        r.source_id, r.active_version, r.candidate_version, r.last_n
    )?;
    writeln!(out)?;
    for (label, n) in [
        ("记录 / records", c.total),
        ("不变 / unchanged", c.unchanged),
        ("变化 / changed", c.changed),
        ("新接收 / newly accepted", c.newly_accepted),
        ("新拒收 / newly rejected", c.newly_rejected),
        ("仍拒收 / still rejected", c.still_rejected),
    ] {
        writeln!(out, "  {n:>7}  {label}")?;
    }
    if !c.field_changes.is_empty() {
        writeln!(
            out,
            "\n变化的字段 / changed fields (records, samples: key: before -> after)"
        )?;
        for f in &c.field_changes {
            writeln!(out, "  {:>7}  {}", f.count, f.pointer)?;
            for s in &f.samples {
                writeln!(
                    out,
                    "           {}: {} -> {}",
                    s.record_key,
                    value_text(&s.old),
                    value_text(&s.new)
                )?;
            }
        }
    }
    if !c.newly_accepted_records.is_empty() {
        writeln!(out, "\n新接收的记录 / newly accepted records (raw id, key)")?;
        for rec in &c.newly_accepted_records {
            writeln!(out, "  {:>7}  {}", rec.raw_id, rec.record_key)?;
        }
    }
    if !c.newly_rejected_records.is_empty() {
        writeln!(out, "\n新拒收的记录 / newly rejected records (raw id, key, violations)")?;
        for rec in &c.newly_rejected_records {
            writeln!(out, "  {:>7}  {}", rec.raw_id, rec.record_key)?;
            for v in &rec.violations {
                writeln!(out, "           {v}")?;
            }
        }
    }
    Ok(())
}

fn print_activation(r: &ActivationReport, out: &mut dyn Write) -> std::io::Result<()> {
    let what = match r.kind {
        ActivationKind::Rollback => "已回滚 / rolled back",
        _ => "已启用 / activated",
    };
    let previous = r.previous_version.map_or("none".to_string(), |v| format!("v{v}"));
    writeln!(
        out,
        "{what}: source {} now runs v{} (was {previous}), by {} at {}",
        r.source_id,
        r.version,
        r.actor,
        time(&r.at)
    )?;
    if !r.diff.is_empty() {
        writeln!(out)?;
        for line in &r.diff {
            writeln!(out, "{line}")?;
        }
    }
    Ok(())
}

fn print_history(h: &History, out: &mut dyn Write) -> std::io::Result<()> {
    let active = h.active_version.map_or("none".to_string(), |v| format!("v{v}"));
    writeln!(out, "来源 / source {}: active {active}", h.source_id)?;
    writeln!(out)?;
    writeln!(
        out,
        "  {:>7}  {:<9}  {:<7}  {:<18}  {:<25}  {:<18}  {:<25}",
        "version", "status", "tests", "uploaded by", "uploaded at", "activated by", "activated at"
    )?;
    for v in &h.versions {
        writeln!(
            out,
            "  {:>7}  {:<9}  {:<7}  {:<18}  {:<25}  {:<18}  {:<25}",
            format!("v{}", v.version),
            v.status.as_str(),
            format!("{}/{}", v.tests.passed, v.tests.total),
            v.uploaded_by,
            time(&v.uploaded_at),
            v.activated_by.as_deref().unwrap_or("-"),
            v.activated_at.as_ref().map_or("-".to_string(), time),
        )?;
    }
    writeln!(out, "\n审计记录 / audit log")?;
    for a in &h.audit {
        let version = a
            .detail
            .get("version")
            .or_else(|| a.detail.get("candidate_version"))
            .filter(|v| !v.is_null())
            .map_or(String::new(), |v| format!("v{v}"));
        let extra = match a.action.as_str() {
            "mapping.activate" | "mapping.rollback" => a
                .detail
                .get("previous_version")
                .filter(|p| !p.is_null())
                .map_or(String::new(), |p| format!(" (was v{p})")),
            "mapping.dry_run" => format!(
                " vs active v{}: {} changed, {} newly accepted, {} newly rejected",
                a.detail["active_version"], a.detail["changed"], a.detail["newly_accepted"], a.detail["newly_rejected"]
            ),
            a_ if a_.ends_with("_refused") => format!(": {}", a.detail["message"].as_str().unwrap_or_default()),
            _ => String::new(),
        };
        writeln!(
            out,
            "  {}  {:<18}  {:<24} {version}{extra}",
            time(&a.at),
            a.actor,
            a.action
        )?;
    }
    Ok(())
}
