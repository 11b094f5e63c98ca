//! Browser tests of the web dashboard, one journey per kind of user: an operator working through
//! the quarantine, a data-standards owner fixing a mapping and following the fix to the case, a
//! department looking at its own records; and an operator looking at the gateway instances on
//! the store (this one and another alive, one gone, one stopped) and at which instance runs each
//! scheduled job. Each starts a real gateway server in-process (SQLite
//! store, push sources with the example mapping `mappings/nanchang-amr-penalty`), pushes records
//! the mapping accepts and rejects, and drives headless Debian Chromium through chromedriver
//! (WebDriver, `fantoccini`).
//!
//! Every page a journey visits is checked at 1280×900 and at 400×800: nothing may force
//! horizontal scrolling, and axe-core (injected through WebDriver, which the page's
//! Content-Security-Policy does not block) must find no `serious` or `critical` accessibility
//! violation. A PNG screenshot of each page at each size is written to
//! `<target>/dashboard-screenshots/` (the paths are printed).
//!
//! Skipped, with a message, when `/usr/bin/chromium` or `chromedriver` is not installed
//! (`scripts/test.sh` installs Debian's `chromium` and `chromium-driver`). axe-core is read from
//! `$DASHBOARD_AXE_JS` or `.cache/axe/node_modules/axe-core/axe.min.js` (`scripts/test.sh`
//! installs it there with npm); without it the accessibility checks are skipped, saying so, unless
//! `DASHBOARD_REQUIRE_AXE` is set (as `scripts/test.sh` does), which makes its absence a failure.

mod support;

use adapters::common::health::{CircuitState, SourceHealth};
use fantoccini::{Client, ClientBuilder, Locator};
use gateway::config::Config;
use gateway::runtime::cluster::{self, job_name, LeaseTimings};
use gateway::server;
use gateway::shutdown::Shutdown;
use gateway::store::InstanceInfo;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use support::{defective_record, nanchang_record, repo};

const ADMIN: &str = "tok-dash-admin-Vb7Qw2Lx";
const OPERATOR: &str = "tok-dash-operator-Hs3Nq9Wd";
const OWNER: &str = "tok-dash-owner-Jc6Ty1Pe";
const DEPT: &str = "tok-dash-dept-Kp4Zr8Tm";
const SOURCE: &str = "nanchang-amr";
/// A second department's source (the department token of the tests may not see it).
const OTHER_SOURCE: &str = "jiujiang-amr";
const CHROMIUM: &str = "/usr/bin/chromium";
/// How long one wait for the page may take.
const WAIT: Duration = Duration::from_secs(20);
/// The two sizes every page is checked at.
const WIDE: (u32, u32) = (1280, 900);
const NARROW: (u32, u32) = (400, 800);

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

fn target_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target"));
    if target.is_absolute() {
        target
    } else {
        repo().join(target)
    }
}

fn screenshot_dir() -> PathBuf {
    target_dir().join("dashboard-screenshots")
}

/// axe-core's script, when installed (see the module comment).
fn axe_source() -> Option<&'static str> {
    static AXE: OnceLock<Option<String>> = OnceLock::new();
    AXE.get_or_init(|| {
        let path = std::env::var_os("DASHBOARD_AXE_JS")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo().join(".cache/axe/node_modules/axe-core/axe.min.js"));
        match std::fs::read_to_string(&path) {
            Ok(text) => Some(text),
            Err(e) if std::env::var_os("DASHBOARD_REQUIRE_AXE").is_some() => {
                panic!(
                    "axe-core is required (DASHBOARD_REQUIRE_AXE) but {} cannot be read: {e}",
                    path.display()
                )
            }
            Err(_) => {
                eprintln!(
                    "WARNING: axe-core not found at {}: the accessibility checks are skipped \
                     (npm install --prefix .cache/axe axe-core, or run scripts/test.sh)",
                    path.display()
                );
                None
            }
        }
    })
    .as_deref()
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
                     format!("--window-size={},{}", WIDE.0, WIDE.1), "--lang=zh-CN", "--no-first-run",
                     "--disable-extensions", "--hide-scrollbars"],
        }),
    );
    let c = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(driver_url)
        .await
        .expect("a Chromium session");
    resize(&c, WIDE).await;
    c
}

/// Make the page's viewport `size` (the window is grown by whatever the browser's frame takes).
async fn resize(c: &Client, (w, h): (u32, u32)) {
    c.set_window_size(w, h).await.expect("resize the window");
    let inner = js(c, "return [window.innerWidth, window.innerHeight];", vec![]).await;
    let iw = inner[0].as_u64().unwrap_or(u64::from(w)) as u32;
    let ih = inner[1].as_u64().unwrap_or(u64::from(h)) as u32;
    if (iw, ih) != (w, h) {
        c.set_window_size(w + w.saturating_sub(iw), h + h.saturating_sub(ih))
            .await
            .expect("resize the window");
    }
}

async fn js(c: &Client, script: &str, args: Vec<Value>) -> Value {
    c.execute(script, args)
        .await
        .unwrap_or_else(|e| panic!("script {script:?}: {e}"))
}

/// The text of the first element matching `css`, if any.
async fn text_of(c: &Client, css: &str) -> Option<String> {
    let v = js(
        c,
        "const e = document.querySelector(arguments[0]); return e ? e.textContent : null;",
        vec![json!(css)],
    )
    .await;
    v.as_str().map(str::to_string)
}

/// How many elements match `css`.
async fn count(c: &Client, css: &str) -> u64 {
    js(
        c,
        "return document.querySelectorAll(arguments[0]).length;",
        vec![json!(css)],
    )
    .await
    .as_u64()
    .unwrap_or(0)
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

/// Wait until some element matching `css` has a text containing `wanted`.
async fn wait_any(c: &Client, css: &str, wanted: &str) {
    let started = Instant::now();
    loop {
        let found = js(
            c,
            "return [...document.querySelectorAll(arguments[0])].some((e) => e.textContent.includes(arguments[1]));",
            vec![json!(css), json!(wanted)],
        )
        .await;
        if found == json!(true) {
            return;
        }
        if started.elapsed() > WAIT {
            let body = text_of(c, "body").await.unwrap_or_default();
            panic!("no {css:?} with text {wanted:?} within {WAIT:?}; the page says:\n{body}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Wait until exactly `n` elements match `css`.
async fn wait_count(c: &Client, css: &str, n: u64) {
    let started = Instant::now();
    loop {
        let now = count(c, css).await;
        if now == n {
            return;
        }
        if started.elapsed() > WAIT {
            let body = text_of(c, "body").await.unwrap_or_default();
            panic!("{now} elements match {css:?}, not {n}, after {WAIT:?}; the page says:\n{body}");
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

/// Put `value` into the form field `css` (as typing would).
async fn fill(c: &Client, css: &str, value: &str) {
    wait_text(c, css, "").await;
    js(
        c,
        "const e = document.querySelector(arguments[0]); e.value = arguments[1]; \
         e.dispatchEvent(new Event('input', {bubbles: true})); e.dispatchEvent(new Event('change', {bubbles: true})); return true;",
        vec![json!(css), json!(value)],
    )
    .await;
}

/// Open `hash` of the dashboard (`#/cases`) without reloading it.
async fn open(c: &Client, hash: &str) {
    js(c, "location.hash = arguments[0]; return true;", vec![json!(hash)]).await;
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

/// Nothing on the page is wider than the viewport (no horizontal scrolling).
async fn assert_no_horizontal_scroll(c: &Client, what: &str) {
    let v = js(
        c,
        r#"const w = document.documentElement.clientWidth;
           if (document.documentElement.scrollWidth <= w) return null;
           const wide = [...document.querySelectorAll('body *')]
             .filter((e) => e.getBoundingClientRect().right > w + 1)
             .slice(0, 8)
             .map((e) => `${e.tagName.toLowerCase()}${e.id ? '#' + e.id : ''}${e.className && typeof e.className === 'string' ? '.' + e.className.trim().split(/\s+/).join('.') : ''} (${Math.round(e.getBoundingClientRect().right)} px)`);
           return `page ${document.documentElement.scrollWidth} px wide in a ${w} px viewport: ${wide.join(', ')}`;"#,
        vec![],
    )
    .await;
    assert!(v.is_null(), "{what}: {}", v.as_str().unwrap_or_default());
}

/// axe-core finds no serious or critical violation on the page as it is.
async fn assert_accessible(c: &Client, what: &str) {
    let Some(axe) = axe_source() else { return };
    if js(c, "return typeof window.axe !== 'undefined';", vec![]).await != json!(true) {
        js(c, &format!("{axe}\nreturn true;"), vec![]).await;
    }
    let found = c
        .execute_async(
            r#"const done = arguments[arguments.length - 1];
               axe.run(document, { resultTypes: ['violations'] })
                 .then((r) => done(r.violations
                   .filter((v) => v.impact === 'serious' || v.impact === 'critical')
                   .map((v) => `${v.impact} ${v.id}: ${v.help} — ${v.nodes.slice(0, 5).map((n) => n.target.join(' ')).join(' | ')}`)))
                 .catch((e) => done(['axe failed: ' + e]));"#,
            vec![],
        )
        .await
        .expect("axe runs");
    let found: Vec<String> = serde_json::from_value(found).unwrap_or_default();
    assert!(
        found.is_empty(),
        "{what}: accessibility violations:\n{}",
        found.join("\n")
    );
}

/// Check the page as it is now at both sizes (no horizontal scrolling, axe-core) and keep a
/// screenshot of each; the window is wide again afterwards.
async fn check_page(c: &Client, name: &str) {
    assert_no_horizontal_scroll(c, &format!("{name} at {} px", WIDE.0)).await;
    assert_accessible(c, &format!("{name} at {} px", WIDE.0)).await;
    shot(c, &format!("{name}-{}", WIDE.0)).await;
    resize(c, NARROW).await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_no_horizontal_scroll(c, &format!("{name} at {} px", NARROW.0)).await;
    assert_accessible(c, &format!("{name} at {} px", NARROW.0)).await;
    shot(c, &format!("{name}-{}", NARROW.0)).await;
    resize(c, WIDE).await;
}

async fn login(c: &Client, base: &str, token: &str) {
    c.goto(&format!("{base}/")).await.expect("open the dashboard");
    wait_text(c, "#login-form", "").await;
    fill(c, "#token", token).await;
    click(c, "#login-btn").await;
    wait_text(c, "nav", "").await;
}

async fn logout(c: &Client) {
    click(c, "#logout").await;
    wait_text(c, "#login-form", "").await;
}

/// A token of the test gateway: name, role, department sources, the token itself.
struct Token(&'static str, &'static str, &'static [&'static str], &'static str);

const TOKENS: &[Token] = &[
    Token("admin-dash", "admin", &[], ADMIN),
    Token("operator-dash", "operator", &[], OPERATOR),
    Token("owner-dash", "standards-owner", &[], OWNER),
    Token("amr-push", "department", &[SOURCE], DEPT),
];

struct Gateway {
    dir: tempfile::TempDir,
    runtime: Arc<gateway::runtime::Runtime>,
    shutdown: Shutdown,
    server: Option<server::ServerHandle>,
    /// Tasks started beside the server (heartbeats), ended by the shutdown.
    tasks: Vec<tokio::task::JoinHandle<()>>,
    base: String,
    http: reqwest::Client,
    c: Option<Client>,
    _driver: Driver,
}

impl Gateway {
    /// `POST /api/ingest/{source}` with `records` as `token`; the answer.
    async fn push(&self, token: &str, source: &str, records: &[Value]) -> Value {
        self.call("POST", &format!("/api/ingest/{source}"), token, Some(json!(records)))
            .await
    }

    /// An API call that must succeed; its JSON answer.
    async fn call(&self, method: &str, path: &str, token: &str, body: Option<Value>) -> Value {
        let mut req = self
            .http
            .request(method.parse().expect("method"), format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(body) = body {
            req = req.header("Content-Type", "application/json").body(body.to_string());
        }
        let resp = req.send().await.expect("API call");
        let status = resp.status();
        let text = resp.text().await.expect("API answer");
        assert!(status.is_success(), "{method} {path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method} {path}: {e}: {text}"))
    }

    /// Upload and activate a version of the mapping that knows 快速程序 (as `token`); its version.
    async fn teach_quick_procedure(&self, token: &str) -> i64 {
        let active = self
            .call("GET", &format!("/api/mappings/{SOURCE}/versions"), token, None)
            .await["active_version"]
            .as_i64()
            .expect("an active version");
        let v = self
            .call("GET", &format!("/api/mappings/{SOURCE}/versions/{active}"), token, None)
            .await;
        let next = active + 1;
        let mapping = v["mapping_toml"]
            .as_str()
            .expect("mapping text")
            .replace(&format!("\nversion = {active}\n"), &format!("\nversion = {next}\n"));
        let mut tables = v["code_tables"].clone();
        let procedures = tables["procedures.csv"].as_str().expect("procedures.csv").to_string();
        tables["procedures.csv"] = json!(format!("{}\n快速程序,simple,新增\n", procedures.trim_end()));
        self.call(
            "POST",
            &format!("/api/mappings/{SOURCE}/versions"),
            token,
            Some(json!({"mapping": mapping, "tables": tables})),
        )
        .await;
        self.call(
            "POST",
            &format!("/api/mappings/{SOURCE}/versions/{next}/activate"),
            token,
            None,
        )
        .await;
        next
    }

    fn browser(&self) -> &Client {
        self.c.as_ref().expect("a browser")
    }

    async fn stop(mut self) {
        if let Some(c) = self.c.take() {
            c.close().await.expect("close the browser");
        }
        self.shutdown.trigger();
        if let Some(server) = self.server.take() {
            tokio::time::timeout(Duration::from_secs(10), server.join())
                .await
                .expect("the server stops");
        }
        for task in self.tasks.drain(..) {
            tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .expect("the task stops")
                .expect("the task ends cleanly");
        }
        drop(self.dir);
    }
}

/// A gateway with two push sources (the department token's and another department's) and a
/// browser; None (the test is skipped) without Chromium.
async fn start() -> Option<Gateway> {
    start_with(&[], "").await
}

/// [`start`] with REST sources `rest_sources` too (configured, their schedulers not started) and
/// `more` at the end of the configuration.
async fn start_with(rest_sources: &[&str], more: &str) -> Option<Gateway> {
    start_full(rest_sources, more, &[]).await
}

/// [`start_with`], with the mapping's text edited: each (text, replacement), which must occur.
async fn start_full(rest_sources: &[&str], more: &str, mapping_edits: &[(&str, &str)]) -> Option<Gateway> {
    let Some(driver_bin) = chromedriver().filter(|_| Path::new(CHROMIUM).is_file()) else {
        eprintln!(
            "SKIPPED: the dashboard browser tests need Debian's chromium and chromium-driver \
             ({CHROMIUM}, /usr/bin/chromedriver); scripts/test.sh installs them \
             (apt-get install -y chromium chromium-driver)"
        );
        return None;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let mapping = support::copy_mapping("nanchang-amr-penalty", dir.path()).join("mapping.toml");
    if !mapping_edits.is_empty() {
        let mut m = std::fs::read_to_string(&mapping).expect("read the mapping copy");
        for (from, to) in mapping_edits {
            assert!(m.contains(from), "mapping edit: {from:?} not found");
            m = m.replace(from, to);
        }
        std::fs::write(&mapping, m).expect("write the edited mapping");
    }
    let mut text = String::from(
        "[store]\nbackend = \"sqlite\"\npath = \"data/gateway.db\"\n\n[normalizer]\nprovince_prefix = \"36\"\n\n\
         [server]\nlisten = \"127.0.0.1:0\"\n\n",
    );
    for Token(name, role, sources, token) in TOKENS {
        text.push_str(&format!(
            "[[server.tokens]]\nname = \"{name}\"\nrole = \"{role}\"\nsha256 = \"{}\"\n",
            sha(token)
        ));
        if !sources.is_empty() {
            text.push_str(&format!("sources = {}\n", json!(sources)));
        }
        text.push('\n');
    }
    for source in [SOURCE, OTHER_SOURCE] {
        text.push_str(&format!(
            "[[sources]]\nid = \"{source}\"\nkind = \"push\"\nmapping = \"{}\"\nrecord_key = \"ajbh\"\n\n",
            mapping.display()
        ));
    }
    for source in rest_sources {
        text.push_str(&format!(
            "[[sources]]\nid = \"{source}\"\nkind = \"rest\"\nmapping = \"{}\"\nrecord_key = \"ajbh\"\npoll_seconds = 60\n\
             [sources.rest]\nurl = \"http://127.0.0.1:9/{source}/list\"\nrecords_path = \"data.rows\"\n\n",
            mapping.display()
        ));
    }
    text.push_str(
        "[[sinks]]\nid = \"platform\"\nkind = \"postgres\"\nurl = \"postgres://gateway@127.0.0.1:9/platform\"\n\n",
    );
    text.push_str(more);
    let config = Config::parse(&text, "gateway.toml", dir.path())
        .and_then(|c| c.resolve("gateway.toml"))
        .unwrap_or_else(|e| panic!("test config: {e}"));
    let runtime = Arc::new(gateway::intake::tasks::build_runtime(config).await.expect("runtime"));
    let shutdown = Shutdown::default();
    let server = server::spawn(Arc::clone(&runtime), "127.0.0.1:0", shutdown.clone())
        .await
        .expect("server starts");
    let base = format!("http://{}", server.addr);
    let (driver, driver_url) = start_driver(&driver_bin).await;
    let c = browser(&driver_url).await;
    Some(Gateway {
        dir,
        runtime,
        shutdown,
        server: Some(server),
        tasks: Vec::new(),
        base,
        http: reqwest::Client::new(),
        c: Some(c),
        _driver: driver,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_finds_an_entry_by_case_number_sees_its_source_field_and_ignores_a_filtered_set_with_a_preview() {
    let Some(gw) = start().await else { return };
    let base = gw.base.clone();

    // The files are served with their types and a strict Content-Security-Policy.
    for (path, content_type) in [
        ("/", "text/html"),
        ("/dashboard/app.js", "text/javascript"),
        ("/dashboard/pages/audit.js", "text/javascript"),
        ("/dashboard/style.css", "text/css"),
    ] {
        let resp = gw.http.get(format!("{base}{path}")).send().await.expect("GET");
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
    let resp = gw
        .http
        .get(format!("{base}/dashboard/nothing.js"))
        .send()
        .await
        .expect("GET");
    assert_eq!(resp.status(), reqwest::StatusCode::NOT_FOUND);

    // Three good records and 25 whose target credit code has a wrong check character.
    let mut records: Vec<Value> = (1..4).map(|n| nanchang_record(n, 0)).collect();
    records.extend((10..35).map(defective_record));
    let answer = gw.push(DEPT, SOURCE, &records).await;
    assert_eq!(answer["summary"]["quarantined"], 25, "{answer}");
    let rule = answer["results"][3]["violations"][0]["rule"]
        .as_str()
        .expect("rule")
        .to_string();
    let pointer = answer["results"][3]["violations"][0]["pointer"]
        .as_str()
        .expect("pointer")
        .to_string();
    assert_eq!(pointer, "/target/id_number", "{answer}");
    let c = gw.browser();

    // A wrong token stays on the login form with the API's message.
    c.goto(&format!("{base}/")).await.expect("open");
    fill(c, "#token", "not-a-token").await;
    click(c, "#login-btn").await;
    wait_text(c, "#login-status", "令牌无效").await;
    check_page(c, "operator-login").await;

    // Overview: the source with its exact counts; the navigation has every page the operator may use.
    login(c, &base, OPERATOR).await;
    let nav = wait_text(c, "nav", "总览").await;
    for page in ["隔离区", "案件查询", "记录去向", "操作日志", "投递"] {
        assert!(nav.contains(page), "the operator's navigation has {page}: {nav}");
    }
    assert!(!nav.contains("映射管理"), "no mappings for an operator: {nav}");
    let row = format!("#sources-table tr[data-source=\"{SOURCE}\"]");
    wait_text(c, &format!("{row} td.received"), "28").await;
    wait_text(c, &format!("{row} td.open-quarantine"), "25").await;
    wait_text(c, &format!("{row} .health-healthy"), "正常").await;
    check_page(c, "operator-overview").await;

    // Quarantine: the exact total, page numbers, case numbers and target names in the list.
    click(c, "#nav-quarantine").await;
    wait_text(c, "#quarantine-pager .pager-total", "共 25 条").await;
    wait_count(c, "#quarantine-table tbody tr", 20).await;
    wait_text(c, "#quarantine-table", "NCSJ-CF-2024-0000").await;
    wait_text(c, "#quarantine-table", "南昌赣江商贸有限公司").await;
    wait_text(c, "#quarantine-table", "+08:00").await;
    // The rule picker lists the rules of open entries with their exact counts.
    wait_text(c, "#f-rule", &format!("{rule} (25)")).await;
    click(c, "#quarantine-pager button.page-num[data-page=\"2\"]").await;
    wait_count(c, "#quarantine-table tbody tr", 5).await;
    wait_text(c, "#quarantine-pager .pager-total", "第 21–25 条").await;
    check_page(c, "operator-quarantine-list").await;
    // One API call per refresh: the list with its total (the rule counts are not polled).
    js(
        c,
        "window.__calls = []; const f = window.fetch; window.fetch = (u, i) => { window.__calls.push(String(u)); return f(u, i); }; return true;",
        vec![],
    )
    .await;
    tokio::time::sleep(Duration::from_millis(6500)).await;
    let calls: Vec<String> = serde_json::from_value(js(c, "return window.__calls;", vec![]).await).expect("the calls");
    assert!(
        (1..=3).contains(&calls.len()) && calls.iter().all(|u| u.starts_with("/api/quarantine?")),
        "one call per 3-second refresh: {calls:?}"
    );
    click(c, "#quarantine-pager button.page-first").await;
    wait_count(c, "#quarantine-table tbody tr", 20).await;

    // One search box finds an entry by its case number.
    fill(c, "#f-q", "NCSJ-CF-2024-000017").await;
    click(c, "#filter-btn").await;
    wait_text(c, "#quarantine-pager .pager-total", "共 1 条").await;
    wait_count(c, "#quarantine-table tbody tr", 1).await;
    wait_text(c, "#quarantine-table", "NCSJ-CF-2024-000017").await;
    // ... and by (part of) the target's name.
    fill(c, "#f-q", "赣江商贸").await;
    click(c, "#filter-btn").await;
    wait_text(c, "#quarantine-pager .pager-total", "共 25 条").await;
    fill(c, "#f-q", "NCSJ-CF-2024-000017").await;
    click(c, "#filter-btn").await;
    wait_count(c, "#quarantine-table tbody tr", 1).await;
    click(c, "#quarantine-table a.open-entry").await;

    // The entry: the violation at full width in Chinese, the source field it came from
    // (xdrzjhm) named and highlighted in the raw record.
    wait_text(c, "#violations-table", &rule).await;
    wait_text(c, "#violations-table td.source-fields", "xdrzjhm").await;
    wait_text(c, "#raw-payload mark.src-field", "\"xdrzjhm\": \"91360102MA35G7K86B\"").await;
    wait_text(c, "#entry-case-number", "NCSJ-CF-2024-000017").await;
    wait_text(c, "#entry-status", "待处理").await;
    let fits = js(
        c,
        "const t = document.querySelector('#violations-table'); return t.scrollWidth <= t.parentElement.clientWidth && t.getBoundingClientRect().width > 900;",
        vec![],
    )
    .await;
    assert_eq!(
        fits,
        json!(true),
        "the violations table fills the width at 1280 px without overflowing"
    );
    let message = text_of(c, "#violations-table td.message .msg")
        .await
        .unwrap_or_default();
    assert!(
        message.chars().any(|ch| ('\u{4e00}'..='\u{9fff}').contains(&ch)),
        "the message is in Chinese: {message}"
    );
    // The other language on demand.
    click(c, "#lang-both").await;
    wait_text(c, "#violations-table .msg-other", "").await;
    let other = text_of(c, "#violations-table .msg-other").await.unwrap_or_default();
    assert!(other.is_ascii() && !other.is_empty(), "the English message: {other}");
    check_page(c, "operator-quarantine-entry").await;

    // A clerk selects a value to copy it: the 3-second refresh waits instead of wiping it.
    js(
        c,
        "const r = document.createRange(); r.selectNodeContents(document.querySelector('#raw-payload')); const s = window.getSelection(); s.removeAllRanges(); s.addRange(r); return true;",
        vec![],
    )
    .await;
    tokio::time::sleep(Duration::from_millis(3600)).await;
    let kept = js(c, "return String(window.getSelection()).includes('xdrzjhm');", vec![]).await;
    assert_eq!(kept, json!(true), "the selection survives the refresh interval");
    wait_text(c, "#live", "暂停自动刷新").await;
    js(c, "window.getSelection().removeAllRanges(); return true;", vec![]).await;

    // An open panel survives the refresh too: the old-language toggle stays, the focus stays.
    js(c, "document.querySelector('#lang-both').focus(); return true;", vec![]).await;
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert!(count(c, "#violations-table .msg-other").await > 0);
    assert_eq!(
        js(c, "return document.activeElement && document.activeElement.id;", vec![]).await,
        json!("lang-both"),
        "the focus is where the user left it after a refresh"
    );

    // Bulk ignore of the rule's open entries: a preview count, a reason required, then done.
    click(c, "a[href=\"#/quarantine\"]").await;
    fill(c, "#f-q", "").await;
    wait_text(c, "#f-rule", &format!("{rule} (25)")).await;
    fill(c, "#f-rule", &rule).await;
    click(c, "#filter-btn").await;
    wait_text(c, "#quarantine-pager .pager-total", "共 25 条").await;
    click(c, "#bulk-ignore-btn").await;
    wait_text(c, "#bulk-preview", "将忽略 25 条待处理记录").await;
    wait_text(c, "#bulk-confirm", "确认忽略 25 条").await;
    check_page(c, "operator-bulk-ignore").await;
    click(c, "#bulk-confirm").await;
    wait_text(c, "#bulk-result", "请填写忽略原因").await;
    fill(c, "#bulk-reason", "来源系统已核实为测试数据").await;
    click(c, "#bulk-confirm").await;
    wait_text(c, "#quarantine-status", "已忽略 25 条").await;
    wait_text(c, "#quarantine-pager .pager-total", "共 0 条").await;
    wait_text(c, "#quarantine-empty", "没有记录").await;

    // The audit log shows who ignored what, and why.
    click(c, "#nav-audit").await;
    let ignored = "#audit-table tr[data-action=\"quarantine.ignore\"]";
    wait_text(c, ignored, "来源系统已核实为测试数据").await;
    wait_text(c, ignored, "operator-dash").await;
    wait_text(c, ignored, "25").await;
    fill(c, "#a-action", "quarantine.ignore").await;
    click(c, "#audit-filter-btn").await;
    wait_text(c, "#audit-pager .pager-total", "共 1 条").await;
    check_page(c, "operator-audit").await;

    // Cases: one search box, the list with case name, target and agency; a case's versions.
    click(c, "#nav-cases").await;
    wait_text(c, "#cases-pager .pager-total", "共 3 条").await;
    wait_text(c, "#cases-table", "测试案件2").await;
    wait_text(c, "#cases-table", "南昌市市场监督管理局").await;
    fill(c, "#case-q", "NO-SUCH-NUMBER").await;
    click(c, "#case-search-btn").await;
    wait_text(c, "#cases-empty", "NO-SUCH-NUMBER").await;
    fill(c, "#case-q", "NCSJ-CF-2024-000002").await;
    click(c, "#case-search-btn").await;
    wait_count(c, "#cases-table tbody tr", 1).await;
    check_page(c, "operator-cases").await;
    click(c, "#cases-table a.open-case").await;
    wait_text(c, "#versions-table", "nanchang-amr-penalty v1").await;
    // Evidence attachments (证据附件): this case has none, and says so.
    wait_text(c, "#case-attachments", "本案件没有附件").await;
    wait_text(c, "#case-diff", "只有一个版本").await;
    click(c, "#versions-table .raw-btn").await;
    wait_text(c, "#case-raw .raw-panel", "\"ajbh\"").await;
    // What the user opened stays open through the refreshes.
    click(c, "#case-record details summary").await;
    tokio::time::sleep(Duration::from_millis(3500)).await;
    wait_text(c, "#case-raw .raw-panel", "\"ajbh\"").await;
    assert_eq!(
        js(c, "return document.querySelector('#case-record details').open;", vec![]).await,
        json!(true),
        "the canonical record stays open through a refresh"
    );
    check_page(c, "operator-case").await;

    // Deliveries: per sink.
    click(c, "#nav-deliveries").await;
    wait_text(c, "#delivery-counts-table tr[data-sink=\"platform\"]", "platform").await;
    fill(c, "#d-status", "").await;
    click(c, "#deliveries-filter-btn").await;
    wait_text(c, "#deliveries-pager .pager-total", "共 3 条").await;
    wait_count(c, "#deliveries-table tbody tr", 3).await;
    check_page(c, "operator-deliveries").await;

    // A page the operator may not use says so in the main area, with the permission it needs.
    open(c, "#/mappings").await;
    wait_text(c, "#page-message", "mappings").await;
    wait_text(c, "#page-message h2", "无权使用").await;

    // English, remembered across a reload.
    click(c, "#lang-toggle").await;
    wait_text(c, "nav", "Overview").await;
    c.refresh().await.expect("reload");
    wait_text(c, "nav", "Deliveries").await;
    open(c, "#/deliveries").await;
    wait_text(c, "#delivery-counts-table", "pending").await;
    click(c, "#lang-toggle").await;
    wait_text(c, "nav", "总览").await;
    logout(c).await;

    gw.stop().await;
}

/// The REST sources of the instances test: one run here, one on another instance, one by nobody.
const REST_HERE: &str = "ganzhou-rest";
const REST_ELSEWHERE: &str = "jian-rest";
const REST_NOBODY: &str = "yichun-rest";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_sees_every_instance_a_gone_one_in_red_and_which_instance_runs_each_scheduled_job() {
    // Heartbeats every 0.5 s: an instance silent for 1.5 s is gone.
    let Some(mut gw) = start_with(
        &[REST_HERE, REST_ELSEWHERE, REST_NOBODY],
        "[cluster]\nheartbeat_seconds = 0.5\n",
    )
    .await
    else {
        return;
    };
    let base = gw.base.clone();
    let runtime = Arc::clone(&gw.runtime);
    let store = runtime.store.cluster();
    let timings = LeaseTimings::from_config(&runtime.resolved.config.cluster);
    let this = runtime.instance.id.clone();
    let other = |id: &str, pid: i32| InstanceInfo {
        id: id.to_string(),
        host: format!("{id}-host"),
        pid,
        version: runtime.instance.version.clone(),
        started_at: chrono::Utc::now() - chrono::Duration::minutes(30),
    };

    // This instance heartbeats as `gateway run` makes it, and so does a second one, gw-b; gw-c
    // heartbeated once and fell silent; gw-d stopped cleanly.
    gw.tasks.push(tokio::spawn(cluster::heartbeat(
        (*runtime).clone(),
        Arc::clone(&runtime.instance),
        timings,
        gw.shutdown.clone(),
    )));
    gw.tasks.push(tokio::spawn(cluster::heartbeat(
        (*runtime).clone(),
        Arc::new(other("gw-b", 4242)),
        timings,
        gw.shutdown.clone(),
    )));
    store
        .instance_heartbeat(&other("gw-c", 5151), 1234)
        .await
        .expect("heartbeat");
    store
        .instance_heartbeat(&other("gw-d", 6161), 99)
        .await
        .expect("heartbeat");
    store.instance_stopped("gw-d").await.expect("stopped");
    // The leases, and the source board as the lease runner keeps it: REST_HERE runs here,
    // REST_ELSEWHERE on gw-b, REST_NOBODY's lease (gw-c's) has run out.
    let hour = Duration::from_secs(3600);
    for (source, holder, ttl) in [
        (REST_HERE, this.as_str(), hour),
        (REST_ELSEWHERE, "gw-b", hour),
        (REST_NOBODY, "gw-c", Duration::from_millis(100)),
    ] {
        let epoch = store
            .lease_acquire(&job_name("source", source), holder, ttl, Duration::ZERO)
            .await
            .expect("lease");
        assert!(epoch.is_some(), "{holder} takes {source}");
        runtime.sources.update(source, |s| {
            s.runs_here = Some(holder == this);
            s.health = Some(SourceHealth {
                circuit: CircuitState::Closed,
                circuit_reopens_at: None,
                last_error: None,
                requests: 3,
                failures: 0,
                retries: 0,
            });
        });
    }
    // A command for a job another instance runs is refused, naming that instance.
    let resp = gw
        .http
        .post(format!("{base}/api/sources/{REST_ELSEWHERE}/pull"))
        .bearer_auth(OPERATOR)
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status(), reqwest::StatusCode::CONFLICT);
    let refused: Value = serde_json::from_str(&resp.text().await.expect("answer")).expect("JSON");
    assert_eq!(refused["error"]["code"], "runs_elsewhere", "{refused}");
    assert!(
        refused["error"]["message_en"]
            .as_str()
            .unwrap_or_default()
            .contains("gw-b"),
        "{refused}"
    );
    let c = gw.browser();

    // The instances panel: this instance first, alive, marked; gw-b alive with its job; gw-c
    // gone, in red; the stopped one folded away.
    login(c, &base, OPERATOR).await;
    let me = format!("#instances-table tr[data-instance=\"{this}\"]");
    wait_text(c, &format!("{me} .inst-alive"), "在线").await;
    wait_text(c, &format!("{me} .this-badge"), "本实例").await;
    wait_text(c, &format!("{me} td.inst-heartbeat"), "秒前").await;
    wait_text(c, &format!("{me} td.inst-host"), &runtime.instance.host).await;
    let b = "#instances-table tr[data-instance=\"gw-b\"]";
    wait_text(c, &format!("{b} .inst-alive"), "在线").await;
    wait_text(c, &format!("{b} td.inst-jobs"), &format!("source:{REST_ELSEWHERE}")).await;
    let gone = "#instances-table tr[data-instance=\"gw-c\"]";
    wait_text(c, &format!("{gone} .inst-gone"), "失联").await;
    wait_text(c, &format!("{gone} td.inst-committed"), "1234").await;
    wait_text(c, "#instances-summary", "在线 2 个 · 失联 1 个 · 已停止 1 个").await;
    let colour = js(
        c,
        "return getComputedStyle(document.querySelector(arguments[0])).backgroundColor;",
        vec![json!(format!("{gone} .inst-gone"))],
    )
    .await;
    assert_eq!(colour, json!("rgb(179, 38, 30)"), "a gone instance is red");
    assert_eq!(
        js(
            c,
            "return document.querySelector('#instances-table tbody tr').dataset.instance;",
            vec![]
        )
        .await,
        json!(this),
        "the answering instance comes first"
    );
    wait_text(c, ".stopped-instances summary", "已停止的实例（1 个）").await;
    assert_eq!(count(c, "#instances-table tr[data-instance=\"gw-d\"]").await, 0);
    assert_eq!(count(c, "#stopped-instances-table tr[data-instance=\"gw-d\"]").await, 1);

    // The sources table says where each scheduled job runs; commands only where it runs here.
    let row = |id: &str| format!("#sources-table tr[data-source=\"{id}\"]");
    wait_text(c, &format!("{} td.runs-on", row(REST_HERE)), "本实例").await;
    wait_text(
        c,
        &format!("{} td.runs-on", row(REST_ELSEWHERE)),
        "实时数字在实例 gw-b 上",
    )
    .await;
    wait_text(c, &format!("{} td.runs-on .runs-nobody", row(REST_NOBODY)), "无人运行").await;
    wait_text(c, &format!("{} td.runs-on", row(REST_NOBODY)), "原由 gw-c 持有").await;
    wait_text(c, &format!("{} td.runs-on", row(SOURCE)), "任一实例").await;
    assert_eq!(count(c, &format!("{} .pull-btn", row(REST_HERE))).await, 1);
    wait_text(c, &row(REST_ELSEWHERE), "请在实例 gw-b 上操作").await;
    assert_eq!(count(c, &format!("{} button", row(REST_ELSEWHERE))).await, 0);
    assert_eq!(count(c, &format!("{} button", row(REST_NOBODY))).await, 0);
    check_page(c, "operator-instances").await;
    // The sources table, scrolled to (the screenshots above show the top of the page).
    let scroll = "document.querySelector(arguments[0]).scrollIntoView(); return true;";
    js(c, scroll, vec![json!("#sources-table")]).await;
    shot(c, "operator-instances-sources-1280").await;
    resize(c, NARROW).await;
    js(c, scroll, vec![json!(row(REST_ELSEWHERE))]).await;
    shot(c, "operator-instances-sources-400").await;
    resize(c, WIDE).await;

    // One refresh cycle asks for the sources and the instances together (the open counts
    // every 15 s), nothing else.
    js(
        c,
        "window.__calls = []; const f = window.fetch; window.fetch = (u, i) => { window.__calls.push(String(u)); return f(u, i); }; return true;",
        vec![],
    )
    .await;
    tokio::time::sleep(Duration::from_millis(6500)).await;
    let calls: Vec<String> = serde_json::from_value(js(c, "return window.__calls;", vec![]).await).expect("the calls");
    let n = |path: &str| calls.iter().filter(|u| u.as_str() == path).count();
    assert!(
        (1..=3).contains(&n("/api/sources"))
            && n("/api/instances") == n("/api/sources")
            && calls.len() == 2 * n("/api/sources") + n("/api/quarantine/counts"),
        "the sources and the instances once per 3-second refresh: {calls:?}"
    );

    // In English.
    click(c, "#lang-toggle").await;
    wait_text(c, &format!("{gone} .inst-gone"), "gone").await;
    wait_text(c, &format!("{me} td.inst-heartbeat"), "s ago").await;
    wait_text(c, &format!("{} td.runs-on", row(REST_NOBODY)), "nobody runs it").await;
    wait_text(
        c,
        &format!("{} td.runs-on", row(REST_ELSEWHERE)),
        "live figures are on gw-b",
    )
    .await;
    check_page(c, "operator-instances-en").await;
    click(c, "#lang-toggle").await;
    wait_text(c, "nav", "总览").await;
    logout(c).await;

    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standards_owner_fixes_the_mapping_replays_the_rule_and_follows_an_entry_to_the_case_diff() {
    let Some(gw) = start().await else { return };
    let base = gw.base.clone();

    // Case 9 is accepted; its update (another procedure, a new fine) and case 5 are rejected:
    // the mapping does not know 快速程序.
    let mut records: Vec<Value> = (1..3).map(|n| nanchang_record(n, 0)).collect();
    records.push(nanchang_record(9, 0));
    let first = gw.push(DEPT, SOURCE, &records).await;
    assert_eq!(first["summary"]["accepted"], 3, "{first}");
    let mut update = unknown_procedure_record(9);
    update["fkje"] = json!("0.3");
    update["cd_operation"] = json!("u");
    let second = gw.push(DEPT, SOURCE, &[update, unknown_procedure_record(5)]).await;
    assert_eq!(second["summary"]["quarantined"], 2, "{second}");
    let qid = second["results"][0]["quarantine_id"].as_i64().expect("quarantine id");
    let rule = second["results"][0]["violations"][0]["rule"]
        .as_str()
        .expect("rule")
        .to_string();
    let c = gw.browser();

    login(c, &base, OWNER).await;
    let nav = wait_text(c, "nav", "映射管理").await;
    assert!(nav.contains("操作日志"), "{nav}");
    assert!(!nav.contains("投递"), "no deliveries for a standards owner: {nav}");

    // The entry names the source field of the rejected procedure (cfcx); a standards owner may
    // replay but not ignore.
    open(c, &format!("#/quarantine/{qid}")).await;
    wait_text(c, "#violations-table", "/penalty/procedure").await;
    wait_text(c, "#violations-table td.source-fields", "cfcx").await;
    wait_text(c, "#raw-payload mark.src-field", "\"cfcx\": \"快速程序\"").await;
    wait_text(c, "#replay-btn", "").await;
    assert_eq!(count(c, "#ignore-btn").await, 0, "no ignore for a standards owner");
    check_page(c, "owner-quarantine-entry").await;

    // Mappings: start from the active version, teach the procedures table 快速程序, upload v2,
    // dry-run it, activate it; the activation's diff is coloured.
    click(c, "#nav-mappings").await;
    click(
        c,
        &format!("#mappings-table tr[data-source=\"{SOURCE}\"] a.open-source"),
    )
    .await;
    wait_text(c, "#versions-table tr[data-version=\"1\"]", "").await;
    click(c, "#from-active-btn").await;
    let started = Instant::now();
    while count(c, "#upload-tables .table-file").await == 0 {
        assert!(started.elapsed() < WAIT, "the active version fills the form");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    js(
        c,
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
    .await;
    click(c, "#upload-btn").await;
    wait_text(c, "#upload-result", "v2").await;
    wait_text(c, "#versions-table tr[data-version=\"2\"]", "候选").await;
    click(c, "#versions-table tr[data-version=\"2\"] .dry-run-btn").await;
    wait_text(c, "#dry-run-report .count-newly_accepted .n", "2").await;
    check_page(c, "owner-mapping-dry-run").await;
    click(c, "#versions-table tr[data-version=\"2\"] .activate-btn").await;
    wait_text(c, "#versions-table tr[data-version=\"2\"] .activate-btn", "确认").await;
    click(c, "#versions-table tr[data-version=\"2\"] .activate-btn").await;
    wait_text(c, "#activation-result", "v1 → v2").await;
    wait_any(c, "#activation-diff .diff-add", "+快速程序,simple").await;
    wait_any(c, "#activation-diff .diff-del", "-version = 1").await;
    wait_text(c, "#versions-table tr[data-version=\"2\"]", "生效").await;
    check_page(c, "owner-mapping-activated").await;

    // Replay the rule's open entries in bulk: the preview says how many.
    click(c, "#nav-quarantine").await;
    wait_text(c, "#f-rule", &format!("{rule} (2)")).await;
    fill(c, "#f-rule", &rule).await;
    click(c, "#filter-btn").await;
    wait_text(c, "#quarantine-pager .pager-total", "共 2 条").await;
    click(c, "#bulk-replay-btn").await;
    wait_text(c, "#bulk-preview", "将按当前映射重放 2 条待处理记录").await;
    check_page(c, "owner-bulk-replay").await;
    click(c, "#bulk-confirm").await;
    wait_text(c, "#quarantine-status", "已重放 2 条").await;
    wait_text(c, "#quarantine-pager .pager-total", "共 0 条").await;

    // The replayed entry says which case version it became, linking to the case; its old
    // violations are history, folded away.
    open(c, &format!("#/quarantine/{qid}")).await;
    wait_text(c, "#entry-status", "已重放").await;
    wait_text(c, "#entry-resolution", "已成为案件").await;
    wait_text(c, "#entry-resolution", "第 2 版").await;
    let folded = js(
        c,
        "const d = document.querySelector('#violations details'); return d ? d.open : null;",
        vec![],
    )
    .await;
    assert_eq!(folded, json!(false), "the old violations are folded away");
    check_page(c, "owner-entry-replayed").await;
    click(c, "#became-case-link").await;

    // The case: two versions, and what changed between them, coloured.
    wait_text(c, "#case-version", "2").await;
    wait_count(c, "#versions-table tbody tr", 2).await;
    let procedure = "#diff-table tr[data-path=\"/penalty/procedure\"]";
    wait_text(c, &format!("{procedure} del"), "ordinary").await;
    wait_text(c, &format!("{procedure} ins"), "simple").await;
    wait_text(c, "#diff-summary", "v1 → v2").await;
    wait_text(c, "#diff-table", "/penalty/fine_amount").await;
    check_page(c, "owner-case-diff").await;
    // The same versions compared the other way round.
    fill(c, "#diff-from", "2").await;
    fill(c, "#diff-to", "1").await;
    wait_text(c, "#diff-summary", "v2 → v1").await;
    wait_text(c, &format!("{procedure} ins"), "ordinary").await;

    // The audit log: the activation with its diff (coloured) and the replay.
    click(c, "#nav-audit").await;
    let activation = "#audit-table tr[data-action=\"mapping.activate\"]";
    wait_text(c, activation, "owner-dash").await;
    click(c, &format!("{activation} details.audit-diff summary")).await;
    wait_any(c, &format!("{activation} .diff-add"), "快速程序").await;
    wait_text(c, "#audit-table tr[data-action=\"quarantine.replay\"]", "owner-dash").await;
    // The open diff stays open through the refresh.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let open_now = js(
        c,
        &format!("return document.querySelector('{activation} details.audit-diff').open;"),
        vec![],
    )
    .await;
    assert_eq!(open_now, json!(true), "an opened diff stays open through the refresh");
    check_page(c, "owner-audit").await;

    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_department_sees_what_became_of_its_records_replays_its_own_entry_and_nothing_else() {
    let Some(gw) = start().await else { return };
    let base = gw.base.clone();

    // The department's records: two accepted, one rejected. Another department's rejected record.
    let mine = gw
        .push(
            DEPT,
            SOURCE,
            &[
                nanchang_record(1, 0),
                nanchang_record(2, 0),
                unknown_procedure_record(9),
            ],
        )
        .await;
    assert_eq!(mine["summary"]["quarantined"], 1, "{mine}");
    let qid = mine["results"][2]["quarantine_id"].as_i64().expect("quarantine id");
    let other = gw.push(ADMIN, OTHER_SOURCE, &[unknown_procedure_record(50)]).await;
    let other_qid = other["results"][0]["quarantine_id"].as_i64().expect("quarantine id");
    let c = gw.browser();

    // A department starts on its own records, and sees only its pages.
    login(c, &base, DEPT).await;
    let nav = wait_text(c, "nav", "我的记录").await;
    assert!(nav.contains("隔离区"), "{nav}");
    for hidden in ["总览", "映射管理", "投递", "案件查询", "操作日志"] {
        assert!(!nav.contains(hidden), "a department token sees no {hidden}: {nav}");
    }
    wait_text(c, "#records-pager .pager-total", "共 3 条").await;
    let row = format!("#records-table tr[data-quarantine=\"{qid}\"]");
    wait_text(c, &row, "已隔离").await;
    wait_text(c, &row, "NCSJ-CF-2024-000009").await;
    wait_text(c, &format!("{row} a.entry-link"), &format!("#{qid}")).await;
    // Accepted records show their unified code, as text: a department may not open cases.
    wait_text(c, "#records-table tr[data-outcome=\"accepted\"]", "已入库").await;
    wait_text(c, "#records-table tr[data-outcome=\"accepted\"] code.case-code", "36").await;
    assert_eq!(count(c, "#records-table a.case-link").await, 0);
    assert!(
        !text_of(c, "#records-table")
            .await
            .unwrap_or_default()
            .contains(OTHER_SOURCE),
        "another department's records are not listed"
    );
    check_page(c, "department-records").await;

    // Replaying before the mapping is fixed says that it still fails.
    click(c, &format!("{row} .replay-own-btn")).await;
    wait_text(c, "#records-status", "仍未通过校验").await;

    // Once the standards owner has taught the mapping 快速程序, the replay takes it.
    gw.teach_quick_procedure(ADMIN).await;
    click(c, &format!("{row} .replay-own-btn")).await;
    wait_text(c, "#records-status", "已重放").await;
    wait_text(c, &row, "已入库").await;
    wait_text(c, &format!("{row} code.case-code"), "36").await;
    check_page(c, "department-records-replayed").await;

    // Its own entry: what became of it, the code as text.
    click(c, &format!("{row} a.entry-link")).await;
    wait_text(c, "#entry-status", "已重放").await;
    wait_text(c, "#entry-resolution #became-case-code", "36").await;
    check_page(c, "department-entry").await;

    // Another department's entry is not found (not "forbidden": its existence is not told).
    open(c, &format!("#/quarantine/{other_qid}")).await;
    wait_text(c, "#page-message h2", "未找到").await;
    check_page(c, "department-not-found").await;

    // A page a department may not use: said in the main area, with the permission it needs.
    open(c, "#/cases").await;
    wait_text(c, "#page-message", "cases_read").await;
    wait_text(c, "#page-message h2", "无权使用").await;
    check_page(c, "department-no-access").await;
    open(c, "#/audit").await;
    wait_text(c, "#page-message", "audit_read").await;

    // The department's quarantine lists its own entries only.
    click(c, "#nav-quarantine").await;
    fill(c, "#f-status", "").await;
    click(c, "#filter-btn").await;
    wait_text(c, "#quarantine-pager .pager-total", "共 1 条").await;
    assert_eq!(
        count(c, &format!("#quarantine-table tr[data-id=\"{other_qid}\"]")).await,
        0
    );

    // An expired session (a token no longer valid) goes back to the login form.
    js(c, "sessionStorage.setItem('gw.token', 'revoked'); return true;", vec![]).await;
    c.refresh().await.expect("reload");
    wait_text(c, "#login-form", "").await;

    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_department_completes_a_case_its_source_could_not_and_sees_a_wrong_value_refused() {
    let edits = [(
        "from = [\"jgsxbm\", \"sxbm\"]         # 2020 年以前的记录用 sxbm\nsteps = [\"remove_spaces\", \"halfwidth\"]\nrequired = true",
        "from = [\"jgsxbm\", \"sxbm\"]\nsteps = [\"remove_spaces\", \"halfwidth\"]\nsupplement = true\nreason = \"2019年以前的旧案件没有监管事项编码\"",
    )];
    let Some(gw) = start_full(&[], "", &edits).await else {
        return;
    };
    let base = gw.base.clone();
    let mut old_case = nanchang_record(3, 0);
    old_case.as_object_mut().expect("object").remove("jgsxbm");
    let answer = gw.push(DEPT, SOURCE, &[nanchang_record(1, 0), old_case]).await;
    let code = answer["results"][1]["code"].as_str().expect("code").to_string();
    let c = gw.browser();

    login(c, &base, DEPT).await;
    wait_text(c, "nav", "待补录").await;
    click(c, "#nav-supplements").await;
    let row = format!("#supplements-table tr[data-code=\"{code}\"]");
    wait_text(c, &row, "监管事项目录编码").await;
    wait_text(c, "#supplements-counts-table", SOURCE).await;
    check_page(c, "department-supplements").await;

    // The form names the field and why the source cannot supply it.
    click(c, &format!("{row} a.supplement-btn")).await;
    wait_text(c, "#supplement-form", "2019年以前的旧案件没有监管事项编码").await;
    check_page(c, "department-supplement-form").await;
    // A value that is not a 14-digit code is refused with the rule, nothing written.
    fill(c, "#sup-field-0", "3601-0000").await;
    click(c, "#supplement-submit").await;
    wait_text(c, "#supplement-violations", "schema.pattern").await;
    fill(c, "#sup-field-0", "36010000100012").await;
    fill(c, "#sup-note", "据纸质案卷补录").await;
    click(c, "#supplement-submit").await;
    wait_text(c, "#supplement-status", "形成第 2 版").await;
    wait_text(c, "#supplement-history", "36010000100012").await;
    wait_text(c, "#supplement-nothing", "没有待补录的字段").await;
    check_page(c, "department-supplement-done").await;

    click(c, "#supplement-back").await;
    wait_text(c, "#supplements-empty", "没有记录").await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standards_owner_searches_the_officer_registry_and_sees_each_load_with_its_counts() {
    let Some(gw) = start_with(&[], "").await else { return };
    let base = gw.base.clone();
    let agency = support::AGENCY_CODE;
    let body = json!([
        {"name": "张三", "cert_no": "36010020001", "agency": agency, "valid_from": "2023-01-01", "valid_to": "2027-12-31"},
        {"name": "李四", "cert_no": "36010020002", "agency": agency, "status": "暂扣"},
    ]);
    gw.call("POST", "/api/officers/load?origin=名录2024.json", OWNER, Some(body))
        .await;
    let body = json!([
        {"name": "张三", "cert_no": "36010020001", "agency": agency, "valid_from": "2023-01-01", "valid_to": "2027-12-31"},
        {"name": "李四", "cert_no": "36010020002", "agency": agency},
        {"name": "王五", "cert_no": "36010020003", "agency": agency},
    ]);
    gw.call("POST", "/api/officers/load?origin=名录2025.json", OWNER, Some(body))
        .await;
    let c = gw.browser();
    login(c, &base, OWNER).await;
    wait_text(c, "nav", "执法人员名录").await;
    click(c, "#nav-officers").await;
    wait_text(c, "#officers-pager .pager-total", "共 3 条").await;
    wait_text(
        c,
        "#officers-table tr[data-cert=\"36010020001\"]",
        "2023-01-01 ~ 2027-12-31",
    )
    .await;
    wait_text(c, "#officer-versions-table", "名录2025.json").await;
    wait_text(c, "#officer-versions-table tbody tr:first-child", "+1 −0 ~1").await;
    check_page(c, "officers").await;
    fill(c, "#o-q", "王").await;
    click(c, "#officers-filter-btn").await;
    wait_text(c, "#officers-pager .pager-total", "共 1 条").await;
    wait_text(c, "#officers-table", "36010020003").await;
    // The load is in the audit log, named.
    open(c, "#/audit").await;
    wait_text(c, "#audit-table", "加载执法人员名录").await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_compares_a_joint_inspection_candidate_side_by_side_and_merges_it_with_a_lead_agency() {
    use support::joint::{commit, insp, AGENCY_A, AGENCY_B, TARGET};
    let Some(gw) = start().await else { return };
    let base = gw.base.clone();
    commit(
        &*gw.runtime.store,
        vec![
            insp("JB-1", AGENCY_A, TARGET, 1).source(SOURCE),
            insp("JB-2", AGENCY_B, TARGET, 4).source(SOURCE),
        ],
    )
    .await;
    let c = gw.browser();
    resize(c, WIDE).await;
    login(c, &base, OPERATOR).await;
    wait_text(c, "#nav-joint", "联合检查比对").await;
    open(c, "#/joint").await;
    wait_count(c, "#joint-table tbody tr[data-status='candidate']", 1).await;
    wait_any(c, "#joint-table td", TARGET).await;
    check_page(c, "operator-joint-candidates").await;

    click(c, ".joint-open").await;
    wait_count(c, "#joint-compare tbody tr", 10).await;
    let agencies = wait_text(c, "#joint-compare tr[data-field='agency']", AGENCY_A).await;
    assert!(agencies.contains(AGENCY_B), "both inspections side by side: {agencies}");
    wait_text(c, "#joint-compare tr[data-field='check_date']", "2024-03-04").await;
    check_page(c, "operator-joint-compare").await;

    // The lead agency is one of the two; a reason is required.
    let options = js(
        c,
        "return [...document.querySelectorAll('#j-lead option')].map((o) => o.value);",
        vec![],
    )
    .await;
    assert_eq!(options, json!([AGENCY_A, AGENCY_B]));
    fill(c, "#j-lead", AGENCY_B).await;
    click(c, "#joint-merge-btn").await;
    wait_text(c, "#joint-status", "原因").await;
    fill(c, "#j-reason-merge", "同一天进门，联合检查").await;
    click(c, "#joint-merge-btn").await;
    wait_text(c, "#joint-decision", AGENCY_B).await;
    wait_text(c, "#joint-decision", "operator-dash").await;
    wait_text(c, "#joint-facts", "LHJC-").await;
    wait_count(c, "#joint-undo-form", 1).await;
    check_page(c, "operator-joint-merged").await;

    // The audit log shows the merge, its subject a link back to the group.
    open(c, "#/audit").await;
    wait_any(c, "#audit-table tr[data-action='joint.merge'] a", "joint-group:").await;
    let href = js(
        c,
        "return document.querySelector(\"#audit-table tr[data-action='joint.merge'] a\").getAttribute('href');",
        vec![],
    )
    .await;
    assert!(href.as_str().is_some_and(|h| h.starts_with("#/joint/")), "{href}");

    let audit = gw.runtime.store.audit_log(1).await.expect("audit");
    assert_eq!(
        (audit[0].action.as_str(), audit[0].actor.as_str()),
        ("joint.merge", "operator-dash")
    );
    assert_eq!(audit[0].detail["lead_agency"], AGENCY_B);
    assert_eq!(audit[0].detail["reason"], "同一天进门，联合检查");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_department_sees_which_of_its_penalties_were_not_made_public_in_time() {
    let Some(gw) = start().await else { return };
    let base = gw.base.clone();
    let mut on_time = nanchang_record(1, 0);
    on_time["gsrq"] = json!("2024-01-26");
    let answer = gw.push(DEPT, SOURCE, &[on_time, nanchang_record(2, 0)]).await;
    let overdue = answer["results"][1]["code"].as_str().expect("code").to_string();
    let c = gw.browser();

    login(c, &base, DEPT).await;
    wait_text(c, "nav", "双公示时限").await;
    click(c, "#nav-publicity").await;
    // The default view lists the overdue penalties: the one never made public.
    let row = format!("#publicity-table tr[data-code=\"{overdue}\"]");
    wait_text(c, &row, "逾期未公示").await;
    wait_text(c, &row, "2024-01-31").await;
    wait_text(c, "#publicity-counts-table", "南昌市市场监督管理局").await;
    check_page(c, "department-publicity").await;
    // All of them: the other one was made public on time by the department.
    js(c, "document.getElementById('p-status').value = 'on_time';", vec![]).await;
    click(c, "#publicity-filter-btn").await;
    wait_text(c, "#publicity-table", "按时公示").await;
    wait_count(c, "#publicity-table tr[data-status=\"on_time\"]", 1).await;
    gw.stop().await;
}

/// Evidence attachments (证据附件) on the case page: an operator opens a case whose record
/// carried two attachments, sees the stored one with its size, origin and a download link that
/// serves the content without a token (it is signed), and the optional one that was refused
/// with its reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_sees_a_cases_attachments_with_their_state_and_downloads_one_by_its_signed_link() {
    let edits = [(
        "# ---------------------------------------------------------------- 处罚信息 / penalty",
        "[[field]]\ntarget = \"attachments\"\neach = \"fj[*]\"\nfields = [\n  { target = \"kind\", from = \"lx\" },\n  \
         { target = \"file_name\", from = \"wjm\" },\n  { target = \"media_type\", from = \"mtlx\" },\n  \
         { target = \"content_base64\", from = \"nr\" },\n  { target = \"optional\", from = \"kq\", as = \"boolean\" },\n]\n\n\
         # ---------------------------------------------------------------- 处罚信息 / penalty",
    )];
    let more = "[attachments]\nstore = \"local\"\npath = \"objects\"\nallowed_media_types = [\"application/pdf\"]\n";
    let Some(gw) = start_full(&[], more, &edits).await else {
        return;
    };
    let base = gw.base.clone();
    let content = "%PDF-1.4 处罚决定书".as_bytes();
    let mut record = nanchang_record(5, 0);
    record["fj"] = json!([
        {"lx": "document", "wjm": "决定书.pdf", "mtlx": "application/pdf",
         "nr": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, content)},
        {"lx": "image", "wjm": "现场.zip", "nr": "UEs=", "kq": "是"},
    ]);
    let answer = gw.push(DEPT, SOURCE, &[record]).await;
    let code = answer["results"][0]["code"].as_str().expect("code").to_string();
    let attachments = gw.runtime.attachments.as_deref().expect("attachments");
    attachments.fetcher.drain().await.expect("fetch");
    let c = gw.browser();

    login(c, &base, OPERATOR).await;
    open(c, &format!("#/cases/{code}")).await;
    wait_text(c, "#attachments-table tr[data-status=\"stored\"]", "已入库").await;
    wait_text(c, "#attachments-table tr[data-status=\"stored\"]", "决定书.pdf").await;
    wait_text(c, "#attachments-table tr[data-status=\"stored\"]", "随记录内嵌").await;
    wait_text(c, "#attachments-table tr[data-status=\"refused\"]", "已拒收").await;
    wait_text(c, "#attachments-table tr[data-status=\"refused\"]", "not allowed").await;
    check_page(c, "operator-case-attachments").await;
    let href = js(
        c,
        "return document.querySelector('#attachments-table a.download-link').getAttribute('href');",
        vec![],
    )
    .await;
    let href = href.as_str().expect("a download link").to_string();
    assert!(
        href.starts_with("/api/attachments/") && href.contains("&sig="),
        "{href}"
    );
    let resp = gw.http.get(format!("{base}{href}")).send().await.expect("download");
    assert_eq!(resp.status(), reqwest::StatusCode::OK);
    assert_eq!(resp.bytes().await.expect("body").as_ref(), content);
    gw.stop().await;
}

/// A source's count interface for the reconciliation journey: two records a day, keys 501 and 502.
async fn count_interface() -> String {
    let router = axum::Router::new().route(
        "/count",
        axum::routing::get(|| async {
            axum::Json(json!({"total": 2, "keys": ["NCSJ-CF-2024-000501", "NCSJ-CF-2024-000502"]}))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, router).await.expect("serve") });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_sees_a_reconciliation_gap_naming_the_missing_record_and_the_alert_it_raised() {
    let peer = count_interface().await;
    // The count query belongs to the last source configured (jiujiang-amr).
    let more = format!(
        "[sources.reconcile]\nurl = \"{peer}/count?date={{day}}\"\ncount_path = \"total\"\nkeys_path = \"keys\"\n\n\
         [alerts]\nsource_failing_minutes = 0\nsource_stalled_minutes = 0\nexpiry_days = 0\n"
    );
    let Some(gw) = start_with(&[], &more).await else { return };
    let base = gw.base.clone();
    // One of the source's two records arrives.
    gw.push(ADMIN, OTHER_SOURCE, &[nanchang_record(501, 0)]).await;
    gw.call("POST", "/api/reconciliation/check", ADMIN, None).await;
    let oversight = gateway::oversight::Oversight::new(Arc::clone(&gw.runtime)).expect("oversight");
    gateway::oversight::alerts::evaluate(&oversight, gateway::oversight::alerts::Scope::Store)
        .await
        .expect("evaluate");

    let c = gw.browser();
    login(c, &base, OPERATOR).await;
    wait_text(c, "nav", "对账").await;
    click(c, "#nav-reconciliation").await;
    let row = format!("#recon-table tr[data-source=\"{OTHER_SOURCE}\"]");
    wait_text(c, &row, "有差异").await;
    wait_text(c, &row, "记录缺失").await;
    wait_text(c, &row, "NCSJ-CF-2024-000502").await;
    wait_text(c, "#off-platform", "没有未上平台的案件").await;
    check_page(c, "reconciliation").await;
    // Ask the sources again from the page.
    click(c, "#recon-check-btn").await;
    wait_text(c, "#recon-status", "已向 1 个来源查询").await;
    // The gap raised an alert: counted in the navigation.
    wait_text(c, "#nav-alerts #alert-count", "1").await;
    click(c, "#nav-alerts").await;
    wait_text(c, "#alerts-firing-table", "对账差异").await;
    wait_text(c, "#alerts-firing-table", OTHER_SOURCE).await;
    check_page(c, "alerts").await;
    gw.stop().await;
}

/// The Nanchang mapping reading its officers from two columns (names and certificate numbers
/// separated by 、), as a department's spreadsheet has them.
const OFFICERS_FROM_COLUMNS: (&str, &str) = (
    "each = \"zfry[*]\"\nrequired = true\nfields = [\n  { target = \"name\", from = \"xm\", steps = [\"remove_spaces\"] },\n  { target = \"cert_no\", from = \"zfzh\", steps = [\"normalise_identifier\"] },\n]",
    "zip = { name = \"xm\", cert_no = \"zfzh\" }\nsplit = \"、\"\nrequired = true",
);

/// A GBK CSV (as Excel saves it on a Chinese desktop) of Nanchang records, flat.
fn gbk_csv_of(records: &[Value]) -> Vec<u8> {
    let mut columns: Vec<String> = records[0]
        .as_object()
        .expect("object")
        .keys()
        .filter(|k| *k != "zfry")
        .cloned()
        .collect();
    columns.extend(["xm".to_string(), "zfzh".to_string()]);
    let mut text = columns.join(",") + "\r\n";
    for r in records {
        let cells: Vec<String> = columns
            .iter()
            .map(|c| match c.as_str() {
                "xm" => "张三、李四".to_string(),
                "zfzh" => "36010020001、36010020002".to_string(),
                other => r[other].as_str().unwrap_or_default().to_string(),
            })
            .collect();
        text.push_str(&cells.join(","));
        text.push_str("\r\n");
    }
    encoding_rs::GBK.encode(&text).0.into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_department_uploads_a_gbk_csv_and_sees_each_rows_code_or_why_it_was_refused() {
    let Some(gw) = start_full(&[], "", &[OFFICERS_FROM_COLUMNS]).await else {
        return;
    };
    let base = gw.base.clone();
    let file = gw.dir.path().join("处罚案件.csv");
    std::fs::write(&file, gbk_csv_of(&[nanchang_record(41, 0), defective_record(42)])).expect("csv");
    let c = gw.browser();
    login(c, &base, DEPT).await;
    wait_text(c, "nav", "上传表格").await;
    click(c, "#nav-uploads").await;
    wait_text(c, "#upload-source", SOURCE).await;
    check_page(c, "department-upload-form").await;
    c.find(Locator::Css("#upload-file"))
        .await
        .expect("file input")
        .send_keys(&file.display().to_string())
        .await
        .expect("choose the file");
    click(c, "#upload-btn").await;
    wait_text(c, "#upload-status", "通过 1 行，未通过 1 行").await;
    wait_text(c, "#upload-status", "GB18030").await;
    let accepted = wait_text(c, "#upload-table tr[data-row=\"2\"]", "已入库").await;
    assert!(accepted.contains("第 2 行"), "{accepted}");
    let refused = wait_text(c, "#upload-table tr[data-row=\"3\"]", "uscc.check_char").await;
    assert!(
        refused.contains("/target/id_number") && refused.contains("91360102MA35G7K86B"),
        "the field, rule and value: {refused}"
    );
    check_page(c, "department-upload-results").await;
    // In English, the reasons are in English.
    click(c, "#lang-toggle").await;
    click(c, "#nav-uploads").await;
    wait_text(c, "#upload-form", "Upload").await;
    gw.stop().await;
}
