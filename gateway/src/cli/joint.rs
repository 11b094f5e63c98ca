//! `gateway joint rebuild` and `gateway export joint-groups`: the joint-inspection index
//! (联合检查相似度比对) rebuilt in full, and its groups exported.

use super::args::ExportFormat;
use super::common::{actor, load_config};
use crate::store::joint::{GroupFilter, JointStore};
use crate::store::{self, AuditEntry};
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

/// `gateway joint rebuild --config F`: rebuild the index and the groups from the cases (keeping
/// the decisions of groups found again with the same members); prints how many inspections and
/// groups, and how long it took.
pub async fn rebuild(config: &Path) -> anyhow::Result<ExitCode> {
    let resolved = load_config(config)?;
    let store = store::open(&resolved.config).await?.store;
    let started = Instant::now();
    let report = store.joint().joint_rebuild().await?;
    let seconds = started.elapsed().as_secs_f64();
    store
        .audit(&AuditEntry {
            actor: actor(),
            action: "joint.rebuild".into(),
            subject: format!("store:{}", store.backend()),
            detail: serde_json::json!({
                "inspections": report.inspections,
                "groups": report.groups,
                "seconds": seconds,
            }),
        })
        .await?;
    tracing::info!(
        inspections = report.inspections,
        groups = report.groups,
        seconds,
        "joint index rebuilt"
    );
    println!(
        "联合检查索引已重建 / joint-inspection index rebuilt: {} inspections, {} groups, {:.2} s",
        report.inspections, report.groups, seconds
    );
    println!(
        "{}",
        serde_json::json!({"inspections": report.inspections, "groups": report.groups, "seconds": seconds})
    );
    Ok(ExitCode::SUCCESS)
}

/// `gateway joint drain --config F`: apply the background indexer's queue now, turn by turn,
/// until it is empty; prints how many index facts were applied and how long it took.
pub async fn drain(config: &Path) -> anyhow::Result<ExitCode> {
    let resolved = load_config(config)?;
    let store = store::open(&resolved.config).await?.store;
    let routes = crate::runtime::state::sink_routes(&resolved.config);
    let sinks = crate::store::sinks_carrying(&routes, crate::store::joint::JOINT_RECORD_TYPE);
    let started = Instant::now();
    let mut applied = 0;
    loop {
        let turn = store
            .joint()
            .joint_drain(crate::runtime::joint_indexer::TURN, &sinks)
            .await?;
        if !turn.ran {
            anyhow::bail!("另一实例正在应用队列，稍后再试 / another instance is applying the queue; try again later");
        }
        applied += turn.applied;
        if turn.applied < crate::runtime::joint_indexer::TURN {
            break;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    println!("联合检查索引队列已应用 / joint-inspection index queue applied: {applied} facts, {seconds:.2} s");
    println!("{}", serde_json::json!({"applied": applied, "seconds": seconds}));
    Ok(ExitCode::SUCCESS)
}

/// The CSV header of `gateway export joint-groups --format csv` (lists joined by `;`).
const CSV_HEADER: [&str; 7] = ["group_id", "target_id", "kind", "status", "cases", "agencies", "dates"];

/// `gateway export joint-groups`: one line per group (optionally of groups with a member from
/// `source`).
pub async fn export_groups(
    store: &dyn JointStore,
    source: Option<String>,
    format: ExportFormat,
) -> anyhow::Result<ExitCode> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut csv = match format {
        ExportFormat::Csv => {
            let mut w = csv::Writer::from_writer(std::io::stdout());
            w.write_record(CSV_HEADER)?;
            Some(w)
        }
        ExportFormat::Jsonl => None,
    };
    let mut offset = 0;
    loop {
        let filter = GroupFilter {
            sources: source.clone().map(|s| vec![s]),
            offset,
            limit: 1000,
            ..Default::default()
        };
        let (page, _) = store.joint_groups(&filter).await?;
        if page.is_empty() {
            break;
        }
        offset += i64::try_from(page.len()).unwrap_or(i64::MAX);
        for g in &page {
            match csv.as_mut() {
                Some(w) => w.write_record([
                    g.group_id.to_string(),
                    g.target_id.clone(),
                    g.kind.as_str().to_string(),
                    g.status.as_str().to_string(),
                    g.cases().join(";"),
                    g.agencies().join(";"),
                    g.dates().join(";"),
                ])?,
                None => writeln!(out, "{}", g.export_line())?,
            }
        }
    }
    if let Some(w) = csv.as_mut() {
        w.flush()?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
