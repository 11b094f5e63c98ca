//! Browser test of the web dashboard: a real gateway server in-process (SQLite store, a push
//! source with the example mapping `mappings/nanchang-amr-penalty`), records pushed with a defect
//! the mapping rejects (a 处罚程序 its code table does not know), then headless Debian Chromium
//! driven through chromedriver (WebDriver, `fantoccini`): log in with a token, see the sources,
//! open the quarantined record (raw + violations), upload, dry-run and activate a fixed mapping
//! version from the Mappings page, replay the record from the dashboard and see the counts
//! change; the language toggle and a department token's narrower view too. A PNG screenshot of
//! each page is written to `<target>/dashboard-screenshots/` (the paths are printed).
//!
//! Skipped, with a message, only when `/usr/bin/chromium` or `chromedriver` is not installed
//! (`scripts/test.sh` installs Debian's `chromium` and `chromium-driver`).

mod support;

use fantoccini::{Client, ClientBuilder, Locator};
use gateway::config::Config;
use gateway::server;
use gateway::shutdown::Shutdown;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{nanchang_record, repo};

const ADMIN: &str = "tok-dash-admin-Vb7Qw2Lx";
const DEPT: &str = "tok-dash-dept-Kp4Zr8Tm";
const SOURCE: &str = "nanchang-amr";
const CHROMIUM: &str = "/usr/bin/chromium";
/// How long one wait for the page may take.
const WAIT: Duration = Duration::from_secs(15);

fn sha(token: &str) -> String {
    hex::encode(gateway::server::auth::digest(token))
}

fn chromedriver() -> Option<PathBuf> {
    ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// A record whose 处罚程序 (cfcx) is not in the code table: quarantined until the mapping learns it.
fn unknown_procedure_record(n: usize) -> Value {
    let mut r = nanchang_record(n, 0);
    r["cfcx"] = json!("快速程序");
    r
}

fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target"));
    let target = if target.is_absolute() {
        target
    } else {
        repo().join(target)
    };
    target.join("dashboard-screenshots")
}

/// A chromedriver process, killed when dropped.
struct Driver(std::process::Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn start_driver(binary: &Path) -> (Driver, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let child = std::process::Command::new(binary)
        .arg(format!("--port={port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let driver = Driver(child);
    let url = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let started = Instant::now();
    while started.elapsed() < WAIT {
        if let Ok(resp) = http.get(format!("{url}/status")).send().await {
            if resp.status().is_success() {
                return (driver, url);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not answer on {url}");
}

async fn browser(driver_url: &str) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": CHROMIUM,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1360,1000", "--lang=zh-CN", "--no-first-run", "--disable-extensions"],
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(driver_url)
        .await
        .expect("a Chromium session")
}

/// The text of the first element matching `css`, if any.
async fn text_of(c: &Client, css: &str) -> Option<String> {
    let v = c
        .execute(
            "const e = document.querySelector(arguments[0]); return e ? e.textContent : null;",
            vec![json!(css)],
        )
        .await
        .expect("script runs");
    v.as_str().map(str::to_string)
}

/// Wait until an element matching `css` exists and its text contains `wanted`; its text.
async fn wait_text(c: &Client, css: &str, wanted: &str) -> String {
    let started = Instant::now();
    loop {
        if let Some(text) = text_of(c, css).await {
            if text.contains(wanted) {
                return text;
            }
        }
        if started.elapsed() > WAIT {
            let body = text_of(c, "body").await.unwrap_or_default();
            panic!("no {css:?} with text {wanted:?} within {WAIT:?}; the page says:\n{body}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn click(c: &Client, css: &str) {
    wait_text(c, css, "").await;
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("click {css}: {e}"));
}

async fn shot(c: &Client, name: &str) -> PathBuf {
    let dir = screenshot_dir();
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    let png = c.screenshot().await.expect("screenshot");
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    let path = dir.join(format!("{name}.png"));
    std::fs::write(&path, png).expect("write screenshot");
    println!("screenshot: {}", path.display());
    path
}

async fn login(c: &Client, base: &str, token: &str) {
    c.goto(&format!("{base}/")).await.expect("open the dashboard");
    wait_text(c, "#login-form", "").await;
    c.find(Locator::Css("#token"))
        .await
        .expect("token field")
        .send_keys(token)
        .await
        .expect("type the token");
    click(c, "#login-btn").await;
    wait_text(c, "nav", "").await;
}

struct Gateway {
    dir: tempfile::TempDir,
    shutdown: Shutdown,
    server: Option<server::ServerHandle>,
    base: String,
}

async fn start_gateway() -> Gateway {
    let dir = tempfile::tempdir().expect("temp dir");
    let mapping = support::copy_mapping("nanchang-amr-penalty", dir.path()).join("mapping.toml");
    let text = format!(
        r#"[store]
backend = "sqlite"
path = "data/gateway.db"

[normalizer]
province_prefix = "36"

[server]
listen = "127.0.0.1:0"

[[server.tokens]]
name = "admin-dash"
role = "admin"
sha256 = "{admin}"

[[server.tokens]]
name = "amr-push"
role = "department"
sources = ["{SOURCE}"]
sha256 = "{dept}"

[[sources]]
id = "{SOURCE}"
kind = "push"
mapping = "{m}"
record_key = "ajbh"

[[sinks]]
id = "platform"
kind = "postgres"
url = "postgres://gateway@127.0.0.1:9/platform"
"#,
        admin = sha(ADMIN),
        dept = sha(DEPT),
        m = mapping.display(),
    );
    let config = Config::parse(&text, "gateway.toml", dir.path())
        .and_then(|c| c.resolve("gateway.toml"))
        .unwrap_or_else(|e| panic!("test config: {e}"));
    let runtime = Arc::new(gateway::intake::tasks::build_runtime(config).await.expect("runtime"));
    let shutdown = Shutdown::default();
    let server = server::spawn(runtime, "127.0.0.1:0", shutdown.clone())
        .await
        .expect("server starts");
    let base = format!("http://{}", server.addr);
    Gateway {
        dir,
        shutdown,
        server: Some(server),
        base,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_finds_a_quarantined_record_fixes_the_mapping_and_replays_it_from_the_dashboard() {
    let Some(driver_bin) = chromedriver().filter(|_| Path::new(CHROMIUM).is_file()) else {
        eprintln!(
            "SKIPPED: the dashboard browser test needs Debian's chromium and chromium-driver \
             ({CHROMIUM}, /usr/bin/chromedriver); scripts/test.sh installs them \
             (apt-get install -y chromium chromium-driver)"
        );
        return;
    };
    let mut gw = start_gateway().await;
    let base = gw.base.clone();
    let http = reqwest::Client::new();

    // The files are served with their types and a strict Content-Security-Policy.
    for (path, content_type) in [
        ("/", "text/html"),
        ("/dashboard/app.js", "text/javascript"),
        ("/dashboard/style.css", "text/css"),
    ] {
        let resp = http.get(format!("{base}{path}")).send().await.expect("GET");
        assert!(resp.status().is_success(), "{path}: {}", resp.status());
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        assert!(header("content-type").starts_with(content_type), "{path}");
        let csp = header("content-security-policy");
        assert!(
            csp.contains("default-src 'none'") && csp.contains("script-src 'self'") && !csp.contains("unsafe"),
            "{path}: {csp}"
        );
        assert_eq!(header("x-content-type-options"), "nosniff");
    }
    let resp = http
        .get(format!("{base}/dashboard/nothing.js"))
        .send()
        .await
        .expect("GET");
    assert_eq!(resp.status(), reqwest::StatusCode::NOT_FOUND);

    // Three good records and one the current mapping rejects.
    let mut records: Vec<Value> = (1..4).map(|n| nanchang_record(n, 0)).collect();
    records.push(unknown_procedure_record(9));
    let answer = http
        .post(format!("{base}/api/ingest/{SOURCE}"))
        .bearer_auth(DEPT)
        .header("Content-Type", "application/json")
        .body(json!(records).to_string())
        .send()
        .await
        .expect("push")
        .text()
        .await
        .expect("push answer");
    let answer: Value = serde_json::from_str(&answer).expect("JSON answer");
    assert_eq!(answer["summary"]["quarantined"], 1, "{answer}");
    let qid = answer["results"][3]["quarantine_id"].as_i64().expect("quarantine id");
    let rule = answer["results"][3]["violations"][0]["rule"]
        .as_str()
        .expect("rule")
        .to_string();

    let (_driver, driver_url) = start_driver(&driver_bin).await;
    let c = browser(&driver_url).await;

    // A wrong token stays on the login form with the API's message.
    c.goto(&format!("{base}/")).await.expect("open");
    c.find(Locator::Css("#token"))
        .await
        .expect("token field")
        .send_keys("not-a-token")
        .await
        .expect("type");
    click(&c, "#login-btn").await;
    wait_text(&c, "#login-status", "令牌无效").await;

    // Overview: the source with its counts, Chinese first.
    login(&c, &base, ADMIN).await;
    wait_text(&c, "nav", "总览").await;
    let row = format!("#sources-table tr[data-source=\"{SOURCE}\"]");
    wait_text(&c, &format!("{row} td.received"), "4").await;
    wait_text(&c, &format!("{row} td.quarantined"), "1").await;
    wait_text(&c, &format!("{row} td.open-quarantine"), "1").await;
    // Its health in one word, and times in China time, labelled.
    wait_text(&c, &format!("{row} .health-healthy"), "正常").await;
    wait_text(&c, "#chart svg", "").await;
    // Let the chart collect a second sample.
    tokio::time::sleep(Duration::from_millis(3200)).await;
    wait_text(&c, "#chart svg .chart-legend", "").await;
    let overview = shot(&c, "overview").await;

    // Quarantine: the list with exact counts, then the entry with its raw record and violations.
    click(&c, "#nav-quarantine").await;
    wait_text(&c, &format!("#quarantine-table tr[data-id=\"{qid}\"]"), &rule).await;
    wait_text(&c, "#quarantine-counts", "1").await;
    wait_text(&c, &format!("#quarantine-table tr[data-id=\"{qid}\"]"), "+08:00").await;
    shot(&c, "quarantine-list").await;
    click(&c, &format!("#quarantine-table tr[data-id=\"{qid}\"] a.open-entry")).await;
    wait_text(&c, "#raw-payload", "\"cfcx\": \"快速程序\"").await;
    wait_text(&c, "#violations-table", &rule).await;
    wait_text(&c, "#entry-status", "待处理").await;
    shot(&c, "quarantine-entry").await;
    // A clerk selects a value to copy it: the 3-second refresh waits instead of wiping it.
    c.execute(
        "const r = document.createRange(); r.selectNodeContents(document.querySelector('#raw-payload')); const s = window.getSelection(); s.removeAllRanges(); s.addRange(r);",
        vec![],
    )
    .await
    .expect("select the raw record");
    tokio::time::sleep(Duration::from_millis(3600)).await;
    let kept = c
        .execute("return String(window.getSelection()).includes('快速程序');", vec![])
        .await
        .expect("read the selection");
    assert_eq!(
        kept,
        serde_json::json!(true),
        "the selection survives the refresh interval"
    );
    wait_text(&c, "#live", "暂停自动刷新").await;
    c.execute("window.getSelection().removeAllRanges();", vec![])
        .await
        .expect("clear the selection");

    // Cases: the accepted records with their lineage; found by the legacy case number alone,
    // also after a search that found nothing.
    click(&c, "#nav-cases").await;
    wait_text(&c, "#case-results", "NCSJ-CF-2024-000001").await;
    click(&c, "#case-results article.case .raw-btn").await;
    wait_text(&c, "#case-results .raw-panel", "\"ajbh\"").await;
    shot(&c, "cases").await;
    c.execute(
        "document.querySelector('#case-mode').value = 'key'; document.querySelector('#case-mode').dispatchEvent(new Event('change'));",
        vec![],
    )
    .await
    .expect("choose the business-key mode");
    for (number, wanted) in [
        ("NO-SUCH-NUMBER", "没有记录"),
        ("NCSJ-CF-2024-000001", "NCSJ-CF-2024-000001"),
    ] {
        c.execute(
            &format!("document.querySelector('#case-number').value = '{number}';"),
            vec![],
        )
        .await
        .expect("type the number");
        click(&c, "#case-search-btn").await;
        wait_text(&c, "#case-results", wanted).await;
    }
    c.execute(
        "document.querySelector('#case-mode').value = 'list'; document.querySelector('#case-mode').dispatchEvent(new Event('change'));",
        vec![],
    )
    .await
    .expect("back to the list of recent cases");
    click(&c, "#case-search-btn").await;
    wait_text(&c, "#case-results", "NCSJ-CF-2024-000001").await;

    // Mappings: start from the active version, teach the procedures table 快速程序, upload v2.
    click(&c, "#nav-mappings").await;
    wait_text(
        &c,
        &format!("#mappings-table tr[data-source=\"{SOURCE}\"] .active-version"),
        "v1",
    )
    .await;
    click(
        &c,
        &format!("#mappings-table tr[data-source=\"{SOURCE}\"] a.open-source"),
    )
    .await;
    wait_text(&c, "#versions-table tr[data-version=\"1\"]", "").await;
    click(&c, "#from-active-btn").await;
    let started = Instant::now();
    while c
        .execute(
            "return document.querySelectorAll('#upload-tables .table-file').length;",
            vec![],
        )
        .await
        .expect("script")
        .as_u64()
        .unwrap_or(0)
        == 0
    {
        assert!(started.elapsed() < WAIT, "the active version fills the form");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    c.execute(
        r#"
        const m = document.getElementById('upload-mapping');
        m.value = m.value.replace(/^version = 1$/m, 'version = 2');
        for (const row of document.querySelectorAll('#upload-tables .table-file')) {
          if (row.querySelector('.table-name').value === 'procedures.csv') {
            const t = row.querySelector('.table-text');
            t.value = t.value.replace(/\n?$/, '\n') + '快速程序,simple,新增\n';
          }
        }
        return true;"#,
        vec![],
    )
    .await
    .expect("edit the form");
    click(&c, "#upload-btn").await;
    wait_text(&c, "#upload-result", "v2").await;
    wait_text(&c, "#versions-table tr[data-version=\"2\"]", "候选").await;
    // The dry run shows the quarantined record would be accepted.
    click(&c, "#versions-table tr[data-version=\"2\"] .dry-run-btn").await;
    wait_text(&c, "#dry-run-report .count-newly_accepted .n", "1").await;
    wait_text(&c, "#dry-run-report .newly-accepted", "NCSJ-CF-2024-000009").await;
    shot(&c, "mappings-dry-run").await;
    // Activate (two clicks: the button asks for confirmation).
    click(&c, "#versions-table tr[data-version=\"2\"] .activate-btn").await;
    wait_text(&c, "#versions-table tr[data-version=\"2\"] .activate-btn", "确认").await;
    click(&c, "#versions-table tr[data-version=\"2\"] .activate-btn").await;
    wait_text(&c, "#activation-result", "v1 → v2").await;
    wait_text(&c, "#versions-table tr[data-version=\"2\"]", "生效").await;
    shot(&c, "mappings").await;

    // Replay the record from its quarantine page.
    c.goto(&format!("{base}/#/quarantine/{qid}"))
        .await
        .expect("open the entry");
    click(&c, "#replay-btn").await;
    wait_text(&c, "#action-result", "已重放").await;
    wait_text(&c, "#entry-status", "已重放").await;

    // The counts change: nothing open in the quarantine any more, the case is found.
    click(&c, "#nav-overview").await;
    wait_text(&c, &format!("{row} td.open-quarantine"), "0").await;
    wait_text(&c, &format!("{row} td:nth-child(2)"), "nanchang-amr-penalty v2").await;
    click(&c, "#nav-cases").await;
    wait_text(&c, "#case-results", "NCSJ-CF-2024-000009").await;

    // Deliveries: per sink.
    click(&c, "#nav-deliveries").await;
    wait_text(&c, "#delivery-counts-table tr[data-sink=\"platform\"]", "platform").await;
    shot(&c, "deliveries").await;

    // English, remembered across a reload.
    click(&c, "#lang-toggle").await;
    wait_text(&c, "nav", "Overview").await;
    c.refresh().await.expect("reload");
    wait_text(&c, "nav", "Deliveries").await;
    wait_text(&c, "#delivery-counts-table", "pending").await;

    // A department token sees the quarantine only.
    click(&c, "#logout").await;
    wait_text(&c, "#login-form", "").await;
    login(&c, &base, DEPT).await;
    wait_text(&c, "#quarantine-list", "").await;
    let nav = text_of(&c, "nav").await.unwrap_or_default();
    assert!(nav.contains("Quarantine"), "{nav}");
    for hidden in ["Overview", "Mappings", "Deliveries", "Cases"] {
        assert!(!nav.contains(hidden), "a department token sees no {hidden}: {nav}");
    }
    // An expired session (the token removed server-side is simulated by a wrong one) → login.
    c.execute("sessionStorage.setItem('gw.token', 'revoked'); return true;", vec![])
        .await
        .expect("script");
    c.goto(&format!("{base}/#/quarantine")).await.expect("open");
    c.refresh().await.expect("reload");
    wait_text(&c, "#login-form", "").await;

    c.close().await.expect("close the browser");
    assert!(overview.is_file());
    gw.shutdown.trigger();
    if let Some(server) = gw.server.take() {
        tokio::time::timeout(Duration::from_secs(10), server.join())
            .await
            .expect("the server stops");
    }
    drop(gw.dir);
}
