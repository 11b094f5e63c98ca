//! `gateway demo`: the gateway at work on the embedded store. Two simulated departmental
//! systems start in-process (a REST/JSON penalty system with token auth and occasional 500s, a
//! GBK SOAP ecology system with a WS-Security digest and occasional faults, see
//! [`super::demo_peers`]); the gateway pulls from both through the real adapters with the
//! example mappings, prints what it did (pulled, accepted, quarantined by rule), delivers the
//! public records (双公示) to a simulated provincial credit platform, and serves the operator API
//! and dashboard until Ctrl-C (or stops at once with `--exit`).

use super::demo_peers::{self, Peers};
use crate::config::Config;
use crate::intake::pull::pull_once;
use crate::intake::tasks::build_runtime;
use crate::runtime::Runtime;
use crate::shutdown::Shutdown;
use crate::store::{CaseFilter, QuarantineFilter};
use adapters::sources::PullMode;
use anyhow::Context;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Generated valid records the REST system holds besides the sample file's.
const EXTRA_REST_RECORDS: usize = 476;

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

const SOAP_ENVELOPE: &str = r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:ws="http://ws.zfxt.sthjt.jiangxi.gov.cn/">
  <soapenv:Header/>
  <soapenv:Body>
    <ws:queryCases>
      <pageNo>{{page}}</pageNo>
      <pageSize>{{page_size}}</pageSize>
    </ws:queryCases>
  </soapenv:Body>
</soapenv:Envelope>
"#;

fn demo_config(
    mappings: &Path,
    peers: &Peers,
    oversight: &super::demo_oversight::OversightPeers,
    listen: &str,
    admin_sha256: &str,
) -> String {
    let text = format!(
        r#"# gateway demo configuration (written by `gateway demo`)
[store]
backend = "sqlite"
path = "gateway.db"

[normalizer]
province_prefix = "36"

# 执法人员名录：九江市市场监管局已加载（不在名录中的执法证号被拒收），其他部门尚未加载（警告）
[normalizer.officers]
severity = "auto"
file = "{m}/jiujiang-amr-inspections/samples/officers.csv"

[server]
listen = "{listen}"

[[server.tokens]]
name = "demo-admin"
role = "admin"
sha256 = "{admin_sha256}"

# 南昌市市场监督管理局 行政处罚系统：REST/JSON，令牌认证，分页，业务状态码
[[sources]]
id = "nanchang-amr"
kind = "rest"
mapping = "{m}/nanchang-amr-penalty/mapping.toml"
record_key = "ajbh"
poll_seconds = 300

[sources.rest]
url = "{rest}/api/v1/penalty/cases"
pagination = "page"
page_param = "pageNo"
page_size_param = "pageSize"
page_size = 50
records_path = "data.list"
total_path = "data.total"
status_path = "code"
success_values = ["0000"]
message_path = "msg"
watermark_path = "cd_time"
watermark_format = "epoch_millis"
since_param = "updateTimeBegin"
overlap_seconds = 60
rate_limit_per_second = 50
rate_limit_burst = 5
retry_initial_ms = 50
retry_max_ms = 500

[sources.rest.auth]
kind = "token"
token_url = "{rest}/api/v1/auth/token"
token_format = "json"
client_id = "{rest_id}"
client_id_field = "appId"
client_secret = "{rest_secret}"
client_secret_field = "appSecret"
token_path = "data.accessToken"
expires_in_path = "data.expiresIn"
refresh_before_seconds = 5
{reconcile}

# 九江市生态环境局 执法系统：SOAP 1.1，GBK 编码，WS-Security 摘要认证
[[sources]]
id = "jiangxi-ecology"
kind = "soap"
mapping = "{m}/jiangxi-ecology-soap/mapping.toml"
record_key = "ajbh"
poll_seconds = 900

[sources.soap]
url = "{soap}"
soap_version = "1.1"
action = "urn:queryCases"
envelope_template_file = "query-cases.xml"
username = "{soap_user}"
password = "{soap_password}"
ws_security = "password_digest"
records_path = "Envelope.Body.queryCasesResponse.return.case"
total_path = "Envelope.Body.queryCasesResponse.return.total"
pagination = "page"
page_size = 10
retry_initial_ms = 50
retry_max_ms = 500

# 检查计划：部门计划管理系统的导出（年度计划、专项计划）
[[sources]]
id = "plans"
kind = "file"
mapping = "{m}/jiangxi-inspection-plans/mapping.toml"
record_key = "jhbh"

# 九江市市场监督管理局 检查台账：没有接口，每日导出 JSON Lines；缺的字段待补录
[[sources]]
id = "jiujiang-amr-ledger"
kind = "file"
mapping = "{m}/jiujiang-amr-inspections/mapping.toml"
record_key = "jcbh"

# 江西省信用平台（模拟）：行政处罚按双公示格式、双随机抽查结果按公示格式推送；自然人依规不公示
[[sinks]]
id = "credit-jiangxi"
kind = "rest"
content = "publicity"
url = "{credit}"
retry_initial_ms = 50
retry_max_ms = 500
poll_ms = 50

[publicity]
natural_persons = "withhold"
data_source_name = "江西省司法厅"
data_source_credit_code = "11360000014500000X"
{evidence}"#,
        m = mappings.display(),
        rest = peers.rest_url,
        soap = peers.soap_url,
        credit = peers.credit_url,
        rest_id = demo_peers::REST_APP_ID,
        rest_secret = demo_peers::REST_APP_SECRET,
        soap_user = demo_peers::SOAP_USER,
        soap_password = demo_peers::SOAP_PASSWORD,
        evidence = EVIDENCE_CONFIG,
        reconcile = oversight.reconcile_table(),
    );
    text + &oversight.alert_tables()
}

/// The demo's evidence source and attachment store (证据附件): the Nanchang mapping with an
/// attachments field (written by [`write_evidence_mapping`]), attachments in `attachments/`.
const EVIDENCE_CONFIG: &str = r#"
# 证据附件：南昌市市场监管局 文书电子化导出（处罚决定书随记录内嵌 Base64）
[[sources]]
id = "nanchang-amr-evidence"
kind = "file"
mapping = "evidence-mapping/mapping.toml"
record_key = "ajbh"

[attachments]
store = "local"
path = "attachments"
link_ttl_seconds = 3600
"#;

/// The mapping's attachments field the evidence source adds to the Nanchang mapping.
const EVIDENCE_FIELD: &str = r#"
# ---------------------------------------------------------------- 证据附件 / attachments
[[field]]
target = "attachments"
each = "fj[*]"
fields = [
  { target = "kind", from = "lx", table = "attachment_kinds" },
  { target = "title", from = "mc" },
  { target = "file_name", from = "wjm" },
  { target = "media_type", from = "mtlx" },
  { target = "content_base64", from = "nr" },
  { target = "captured_at", from = "pssj", as = "datetime" },
]

[tables.attachment_kinds]
values = { "文书" = "document", "照片" = "image", "视频" = "video", "音频" = "audio", "其他" = "other" }
"#;

/// Copy the Nanchang mapping (with its code tables) into `dir/evidence-mapping`, adding an
/// attachments field: the demo's evidence source maps attachments without changing the
/// example mapping.
fn write_evidence_mapping(mappings: &Path, dir: &Path) -> anyhow::Result<()> {
    let from = mappings.join("nanchang-amr-penalty");
    let to = dir.join("evidence-mapping");
    std::fs::create_dir_all(&to)?;
    for entry in std::fs::read_dir(&from)? {
        let path = entry?.path();
        if path.is_file() {
            if let Some(name) = path.file_name() {
                std::fs::copy(&path, to.join(name))?;
            }
        }
    }
    let mapping = std::fs::read_to_string(to.join("mapping.toml"))?;
    let marker = "\n[[field]]";
    let at = mapping.find(marker).context("the Nanchang mapping has fields")?;
    let text = format!("{}{EVIDENCE_FIELD}{}", &mapping[..at], &mapping[at..]);
    std::fs::write(to.join("mapping.toml"), text)?;
    Ok(())
}

/// One demo record with an attachment (证据附件): a Nanchang penalty record carrying its
/// decision document inline, ingested through the evidence source; the fetcher stores it in
/// the attachment store (once, by SHA-256) and the case lists it with a signed download link.
async fn ingest_evidence(runtime: &Runtime, mappings: &Path, dir: &Path, shutdown: &Shutdown) -> anyhow::Result<()> {
    let samples = std::fs::read_to_string(mappings.join("nanchang-amr-penalty/samples/records.jsonl"))?;
    let mut record: serde_json::Value = samples
        .lines()
        .find_map(|l| serde_json::from_str(l).ok())
        .context("a Nanchang sample record")?;
    let document =
        "南昌市市场监督管理局\n行政处罚决定书\n洪市监罚〔2024〕证据附件演示号\n（演示用文书 / demo document）\n";
    record["ajbh"] = serde_json::json!("NCSJ-CF-2024-EVIDENCE-1");
    record["fj"] = serde_json::json!([{
        "lx": "文书",
        "mc": "行政处罚决定书",
        "wjm": "行政处罚决定书.txt",
        "mtlx": "text/plain",
        "pssj": "2024-01-22 09:30:00",
        "nr": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, document.as_bytes()),
    }]);
    let file = dir.join("evidence.jsonl");
    std::fs::write(&file, format!("{record}\n"))?;
    ingest_sample(runtime, "nanchang-amr-evidence", &file, shutdown).await?;
    let Some(attachments) = &runtime.attachments else {
        return Ok(());
    };
    attachments.fetcher.drain().await?;
    let cases = runtime
        .store
        .cases(&CaseFilter {
            source_id: Some("nanchang-amr-evidence".into()),
            limit: Some(1),
            ..Default::default()
        })
        .await?;
    let Some(code) = cases.first().map(|c| c.unified_code.clone()) else {
        println!("证据附件 / attachments: the evidence record was not accepted");
        return Ok(());
    };
    println!("\n证据附件 / evidence attachments (GET /api/cases/{code}/attachments):");
    for a in runtime.store.attachments().attachments_of_case(&code).await? {
        println!(
            "  {code} v{} #{} {} {} {} {} bytes, sha256 {}, from {} ({})",
            a.version,
            a.position,
            a.kind,
            a.file_name.as_deref().unwrap_or("-"),
            a.status,
            a.bytes.unwrap_or_default(),
            a.sha256.as_deref().unwrap_or("-"),
            a.origin,
            a.origin_ref
        );
        if let Some(sha) = &a.sha256 {
            let (link, _) = attachments.signer.link(sha, chrono::Utc::now().timestamp());
            println!("  签名下载链接（1小时内有效）/ signed download link (1 hour): <operator API>{link}");
        }
    }
    Ok(())
}

/// Run the demonstration. `listen` is the operator API's address; `exit` stops after the summary.
pub async fn run(dir: Option<PathBuf>, listen: &str, exit: bool) -> anyhow::Result<ExitCode> {
    let mappings = mappings_dir()?;
    let dir = match dir {
        Some(d) => d,
        None => {
            let stamp = chrono::Utc::now().format("%Y%m%d-%H%M%S");
            std::env::temp_dir().join(format!("gateway-demo-{stamp}-{}", std::process::id()))
        }
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let peers = demo_peers::start(&mappings, EXTRA_REST_RECORDS).await?;
    let oversight_peers = super::demo_oversight::start(&mappings, EXTRA_REST_RECORDS).await?;
    let (token, sha256) =
        crate::server::auth::new_token().map_err(|e| anyhow::anyhow!("无法生成随机数 / no random numbers: {e}"))?;
    let config_path = dir.join("gateway.toml");
    std::fs::write(dir.join("query-cases.xml"), SOAP_ENVELOPE)?;
    write_evidence_mapping(&mappings, &dir)?;
    std::fs::write(
        &config_path,
        demo_config(&mappings, &peers, &oversight_peers, listen, &sha256),
    )?;
    let resolved = Config::load(&config_path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let runtime = build_runtime(resolved).await?;
    let shutdown = Shutdown::default();

    println!("赣执网关演示 / ganzhi-gateway demo");
    println!("工作目录 / working directory: {}", dir.display());
    println!(
        "模拟部门系统 / simulated departmental systems:\n  REST 南昌市市场监管 {} ({} records)\n  SOAP 九江市生态环境 {} ({} records, GBK)\n",
        peers.rest_url, peers.rest_records, peers.soap_url, peers.soap_records
    );
    // The plans first: inspections pulled next are checked against them (rule.plan_unknown).
    ingest_sample(
        &runtime,
        "plans",
        &mappings.join("jiangxi-inspection-plans/samples/plans.jsonl"),
        &shutdown,
    )
    .await?;
    for source in ["nanchang-amr", "jiangxi-ecology"] {
        pull_source(&runtime, source, &shutdown).await?;
    }
    ingest_sample(
        &runtime,
        "jiujiang-amr-ledger",
        &mappings.join("jiujiang-amr-inspections/samples/records.jsonl"),
        &shutdown,
    )
    .await?;
    ingest_evidence(&runtime, &mappings, &dir, &shutdown).await?;
    let rest = &peers.rest;
    let soap = &peers.soap;
    println!(
        "\n来源侧 / at the sources: REST {} requests ({} answered 500, {} tokens issued), SOAP {} requests ({} faults)",
        rest.requests.load(Ordering::Relaxed),
        rest.failures.load(Ordering::Relaxed),
        rest.tokens.load(Ordering::Relaxed),
        soap.requests.load(Ordering::Relaxed),
        soap.failures.load(Ordering::Relaxed)
    );
    deliver_publicity(&runtime, &shutdown).await?;
    print_outcome(&runtime, &config_path, &peers).await?;
    // Reconciliation and alerts: a gap the department's system shows, and the alert it raises.
    super::demo_oversight::show(&runtime, &oversight_peers).await?;

    if exit {
        return Ok(ExitCode::SUCCESS);
    }
    let server = crate::server::spawn(Arc::new(runtime.clone()), listen, shutdown.clone())
        .await
        .context("无法启动运维接口 / cannot start the operator API (is the port taken? try --listen 127.0.0.1:0)")?;
    let base = format!("http://{}", server.addr);
    println!("\n运维接口与看板 / operator API and dashboard: {base}/");
    println!("管理员令牌（仅本次演示）/ admin token (this demo only): {token}");
    println!("  curl -H 'Authorization: Bearer {token}' {base}/api/sources");
    println!("  curl -H 'Authorization: Bearer {token}' '{base}/api/quarantine?limit=5'");
    println!("按 Ctrl-C 结束 / press Ctrl-C to stop");
    crate::shutdown::on_signals(shutdown.clone());
    // From here on the sources run on their schedules, as under `gateway run`: their health,
    // pull-now and resync are live in the API and dashboard.
    let mut tasks = crate::intake::tasks::start_source_tasks(&runtime, &shutdown)?;
    if let Some(a) = &runtime.attachments {
        tasks.spawn(Arc::clone(&a.fetcher).run(shutdown.clone()));
    }
    let oversight = crate::oversight::Oversight::new(Arc::new(runtime.clone()))?;
    tasks.spawn(crate::oversight::run(Arc::new(oversight), shutdown.clone()));
    server.join().await;
    while tasks.join_next().await.is_some() {}
    Ok(ExitCode::SUCCESS)
}

/// Deliver what is due to the demo's sinks (the simulated credit platform), as `gateway run --once`.
async fn deliver_publicity(runtime: &Runtime, shutdown: &Shutdown) -> anyhow::Result<()> {
    let config = &runtime.resolved.config;
    let dispatchers = crate::outbox::Dispatchers::start_with_gate(
        Arc::clone(&runtime.outbox),
        &config.sinks,
        &config.base_dir,
        &crate::outbox::publicity::PublicityContext {
            policy: &config.publicity,
            store: Arc::clone(&runtime.store),
            metrics: Some(Arc::clone(&runtime.metrics)),
        },
        crate::outbox::Mode::Drain,
        shutdown.clone(),
        runtime.attachments.as_ref().map(|a| Arc::clone(&a.gate)),
    )?;
    dispatchers.join().await;
    Ok(())
}

/// What the publicity sink did (双公示): published, withheld with the reason, refused for
/// missing fields; one public record; the penalties' publicity per department.
async fn print_publicity(runtime: &Runtime, peers: &Peers) -> anyhow::Result<()> {
    let counts = runtime.outbox.delivery_counts().await?;
    let count = |status: crate::store::DeliveryStatus| {
        counts
            .iter()
            .filter(|c| c.sink_id == "credit-jiangxi" && c.status == status)
            .map(|c| c.count)
            .sum::<i64>()
    };
    use crate::store::DeliveryStatus::{Dead, Delivered, Withheld};
    println!(
        "\n双公示 / publicity (sink credit-jiangxi, content = \"publicity\"): published {}, withheld {}, refused {}",
        count(Delivered),
        count(Withheld),
        count(Dead)
    );
    let received = peers.credit.lock().map(|r| r.clone()).unwrap_or_default();
    if let Some(example) = received
        .iter()
        .find(|b| b["record"]["CF_XDR_LB"] == "个体工商户")
        .or_else(|| received.iter().find(|b| b["case_type"] == "penalty"))
    {
        println!(
            "  一条双公示记录 / a public penalty record ({}):",
            example["unified_code"]
        );
        for code in [
            "CF_XDR_MC",
            "CF_XDR_LB",
            "CF_XDR_SHXYM",
            "CF_WSH",
            "CF_CFLB",
            "CF_NR_FK",
            "CF_JDRQ",
            "CF_CFJG",
            "CF_SJLY",
        ] {
            println!("    {code:<13} {}", example["record"][code]);
        }
    }
    for status in [Withheld, Dead] {
        let rows = runtime
            .outbox
            .deliveries(&crate::store::DeliveryFilter {
                sink_id: Some("credit-jiangxi".into()),
                status: Some(status),
                limit: Some(100),
                ..Default::default()
            })
            .await?;
        let natural_person = rows
            .iter()
            .find(|d| d.last_error.as_deref().is_some_and(|e| e.contains("natural person")));
        if let Some(d) = natural_person.or(rows.first()) {
            println!(
                "  {} {}: {}",
                status.as_str(),
                d.idempotency_key,
                d.last_error.as_deref().unwrap_or_default()
            );
        }
    }
    let today = crate::store::publicity::china_today();
    let agencies = runtime
        .store
        .publicity()
        .publicity_by_agency(&crate::store::publicity::PublicityFilter::default(), today)
        .await?;
    println!("  7个工作日内公示 / made public within 7 working days (GET /api/publicity, dashboard 双公示时限):");
    for a in &agencies {
        println!(
            "    {} 处罚 decided {:>3}: on time {}, late {}, overdue {}, withheld {}",
            a.agency_name, a.decided, a.on_time, a.late, a.overdue, a.withheld
        );
    }
    Ok(())
}

/// Ingest a sample file of a file source, as `gateway ingest` does.
async fn ingest_sample(runtime: &Runtime, source_id: &str, file: &Path, shutdown: &Shutdown) -> anyhow::Result<()> {
    let preparer = runtime.preparers.get(source_id).context("demo file source")?;
    let job = crate::intake::files::IngestJob {
        preparer,
        files: vec![file.to_path_buf()],
        format: crate::prepare::reader::InputFormat::JsonLines,
        by_extension: false,
        xml_records: None,
        settings: crate::prepare::ReadSettings::default(),
    };
    let batching = crate::commit::Batching::from(&runtime.resolved.config);
    let t = crate::intake::files::ingest_files(&runtime.committer("files"), job, &batching, shutdown.clone(), None)
        .await
        .with_context(|| format!("ingest {}", file.display()))?;
    println!(
        "来源 source {source_id:<16} 读入 read   {:>3}  新案件 accepted {:>3}  更新 updated {:>2}  未变 unchanged {:>2}  隔离 quarantined {:>3}  ({})",
        t.received,
        t.accepted,
        t.updated,
        t.unchanged,
        t.quarantined,
        file.file_name().and_then(|n| n.to_str()).unwrap_or_default()
    );
    Ok(())
}

/// Pull one source, retrying the run a few times (the simulated systems fail now and then,
/// as legacy systems do; a failed run resumes from the last committed page).
async fn pull_source(runtime: &Runtime, source_id: &str, shutdown: &Shutdown) -> anyhow::Result<()> {
    let config = &runtime.resolved.config;
    let source = config
        .sources
        .iter()
        .find(|s| s.id == source_id)
        .context("demo source")?;
    source.pull_table().context("demo sources are pulled")?;
    let pull = runtime.pull_source(source)?;
    for attempt in 1..=5 {
        match pull_once(runtime, source_id, &pull, PullMode::Incremental, shutdown).await {
            Ok(_) => {
                let health = pull.health();
                let t = runtime.sources.get(source_id).map(|s| s.totals).unwrap_or_default();
                println!(
                    "来源 source {source_id:<16} 拉取 pulled {:>3}  新案件 accepted {:>3}  更新 updated {:>2}  未变 unchanged {:>2}  隔离 quarantined {:>3}  (requests {}, retried {}, runs {attempt})",
                    t.received, t.accepted, t.updated, t.unchanged, t.quarantined, health.requests, health.retries
                );
                return Ok(());
            }
            Err(e) if attempt < 5 => {
                println!("来源 source {source_id:<16} 第{attempt}次拉取中断，再次拉取（已提交的记录不会重复）/ run {attempt} stopped ({e}); pulling again (records already committed are recognised unchanged)");
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

async fn print_outcome(runtime: &Runtime, config_path: &Path, peers: &Peers) -> anyhow::Result<()> {
    let store = &runtime.store;
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
    print_supervision(runtime).await?;
    print_publicity(runtime, peers).await?;
    let stats = store.stats().await?;
    println!(
        "\n合计 / totals: {} cases, {} versions, {} open quarantine entries",
        stats.cases, stats.versions, stats.quarantine_open
    );
    let cfg = config_path.display();
    println!("\n下一步 / where to look:");
    println!("  gateway export cases --config {cfg}");
    println!("  gateway export quarantine --config {cfg} --format csv");
    println!("  gateway mappings history --config {cfg} --source nanchang-amr");
    Ok(())
}

/// What the notice's supervision rules found: warnings by rule over every case's current
/// version (late plans, unknown plans, ...), and the cases awaiting supplement.
async fn print_supervision(runtime: &Runtime) -> anyhow::Result<()> {
    let store = &runtime.store;
    let mut by_rule: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut after = None;
    loop {
        let page = store
            .cases(&CaseFilter {
                after_id: after,
                limit: Some(500),
                ..Default::default()
            })
            .await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        for case in &page {
            let (_, versions) = store.case_by_code(&case.unified_code).await?;
            if let Some(head) = versions
                .iter()
                .rev()
                .find(|v| v.version == case.version && v.status != "stale")
            {
                for w in &head.warnings {
                    by_rule
                        .entry(w.rule.clone())
                        .or_default()
                        .push(format!("{} {}", case.unified_code, case.key.case_number));
                }
            }
        }
    }
    println!(
        "
接收但有警告（按规则） / accepted with warnings, by rule:"
    );
    for (rule, cases) in &by_rule {
        let example = cases.first().map(String::as_str).unwrap_or_default();
        println!("  {:>3}  {rule:<32} e.g. {example}", cases.len());
    }
    let plans = store.plan_numbers().await?;
    println!(
        "
检查计划 / inspection plans held: {}",
        plans.len()
    );
    let (groups, candidates) = store
        .joint()
        .joint_groups(&crate::store::joint::GroupFilter {
            limit: 3,
            ..Default::default()
        })
        .await?;
    println!(
        "联合检查候选 / joint-inspection candidates (GET /api/joint-groups, dashboard 联合检查比对): {candidates}"
    );
    for g in &groups {
        let members: Vec<String> = g
            .members
            .iter()
            .map(|m| format!("{} {} {}", m.code, m.agency, m.check_date))
            .collect();
        println!("  #{} {}: {}", g.group_id, g.target_id, members.join(" | "));
    }
    let counts = store.supplements().awaiting_counts(None).await?;
    println!("待补录 / cases awaiting supplement (GET /api/supplements, dashboard 待补录):");
    for c in &counts {
        println!("  {:>3}  {} ({})", c.cases, c.source_id, c.agency_credit_code);
    }
    Ok(())
}
