//! `gateway demo`: the gateway on the embedded store with the example mappings and their
//! sample data (a REST/JSON penalty system and a SOAP/XML ecology system), then a summary of
//! what happened and where to look.

use super::data::{load_config, preparers};
use crate::pipeline::ingest::{ingest_files, BatchSettings, IngestJob, Shutdown};
use crate::pipeline::reader::InputFormat;
use crate::store::{self, CaseFilter, QuarantineFilter};
use anyhow::Context;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

/// The repository's `mappings/` folder: `./mappings`, else next to the gateway crate.
fn mappings_dir() -> anyhow::Result<PathBuf> {
    let candidates = [
        PathBuf::from("mappings"),
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../mappings"),
    ];
    candidates
        .iter()
        .find(|p| p.join("nanchang-amr-penalty/mapping.toml").is_file())
        .map(|p| p.canonicalize().unwrap_or_else(|_| p.clone()))
        .context("找不到示例映射目录 mappings/（请在仓库根目录运行） / cannot find the example mappings: run from the repository root")
}

fn demo_config(mappings: &Path) -> String {
    format!(
        r#"# gateway demo configuration (written by `gateway demo`)
[store]
backend = "sqlite"
path = "gateway.db"

[normalizer]
province_prefix = "36"

[[sources]]
id = "nanchang-amr"
mapping = "{m}/nanchang-amr-penalty/mapping.toml"
format = "jsonl"
record_key = "ajbh"

[[sources]]
id = "jiangxi-ecology"
mapping = "{m}/jiangxi-ecology-soap/mapping.toml"
format = "xml"
xml_records = "Envelope.Body.queryCasesResponse.return.case"
record_key = "ajbh"

[[sinks]]
id = "platform"
kind = "postgres"
url = "postgres://gateway@127.0.0.1:5432/platform"  # deliveries wait in the outbox until `gateway run` reaches it
"#,
        m = mappings.display()
    )
}

/// Run the demonstration.
pub async fn run(dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let mappings = mappings_dir()?;
    let dir = match dir {
        Some(d) => d,
        None => {
            let stamp = chrono::Utc::now().format("%Y%m%d-%H%M%S");
            std::env::temp_dir().join(format!("gateway-demo-{stamp}-{}", std::process::id()))
        }
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let config_path = dir.join("gateway.toml");
    std::fs::write(&config_path, demo_config(&mappings))?;
    let resolved = load_config(&config_path)?;
    let store = store::open(&resolved.config).await?;
    let preparers = preparers(&resolved)?;
    let settings = BatchSettings::from(&resolved.config);

    println!("赣执网关演示 / ganzhi-gateway demo");
    println!("工作目录 / working directory: {}\n", dir.display());
    let inputs = [
        (
            "nanchang-amr",
            mappings.join("nanchang-amr-penalty/samples/records.jsonl"),
            InputFormat::JsonLines,
            None,
        ),
        (
            "jiangxi-ecology",
            mappings.join("jiangxi-ecology-soap/samples/records.xml"),
            InputFormat::Xml,
            Some("Envelope.Body.queryCasesResponse.return.case".to_string()),
        ),
    ];
    for (source, file, format, xml_records) in inputs {
        let preparer = preparers.get(source).context("demo source")?.clone();
        let job = IngestJob {
            preparer,
            files: vec![file.clone()],
            format,
            xml_records,
        };
        let summary = ingest_files(Arc::clone(&store), job, settings.clone(), Shutdown::default(), None).await?;
        println!(
            "来源 source {source:<16} 收到 received {:>3}  新案件 accepted {:>3}  更新 updated {:>2}  隔离 quarantined {:>3}",
            summary.received, summary.accepted, summary.updated, summary.quarantined
        );
    }

    let mut by_rule: BTreeMap<String, usize> = BTreeMap::new();
    let quarantine = store
        .quarantine_list(&QuarantineFilter {
            limit: Some(10_000),
            ..Default::default()
        })
        .await?;
    for entry in &quarantine {
        for v in entry.violations.iter().filter(|v| v.is_error()) {
            *by_rule.entry(v.rule.clone()).or_default() += 1;
        }
    }
    println!("\n隔离原因（按规则） / quarantined by rule:");
    for (rule, n) in &by_rule {
        println!("  {n:>3}  {rule}");
    }
    if let Some(example) = quarantine.last() {
        println!(
            "\n隔离记录示例 / a quarantined record (#{} from {}, key {}):",
            example.id, example.source_id, example.record_key
        );
        for v in &example.violations {
            println!(
                "  [{}] {}\n      {}\n      {}",
                v.rule, v.pointer, v.message_zh, v.message_en
            );
        }
    }
    let cases = store
        .cases(&CaseFilter {
            limit: Some(5),
            ..Default::default()
        })
        .await?;
    println!("\n已赋码案件（前5条） / coded cases (first 5):");
    for c in &cases {
        println!(
            "  {}  {}  {}",
            c.unified_code,
            c.key.case_type.name_zh(),
            c.key.case_number
        );
    }
    let stats = store.stats().await?;
    println!(
        "\n合计 / totals: {} cases, {} versions, {} open quarantine entries, {} deliveries waiting in the outbox",
        stats.cases, stats.versions, stats.quarantine_open, stats.outbox_pending
    );
    let cfg = config_path.display();
    println!("\n下一步 / where to look:");
    println!("  gateway export cases --config {cfg}");
    println!("  gateway export quarantine --config {cfg} --format csv");
    println!("  gateway replay --config {cfg} --source nanchang-amr     # after fixing a mapping");
    println!("  gateway mappings test mappings/");
    Ok(ExitCode::SUCCESS)
}
