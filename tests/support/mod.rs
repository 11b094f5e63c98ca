//! Helpers of the end-to-end tests: run the real `gateway` binary against a configuration
//! written into a temporary directory, on SQLite or on a fresh PostgreSQL database.
#![allow(dead_code)]

pub mod amqp;
#[path = "../../gateway/tests/common/mod.rs"]
pub mod common;
pub mod gw;
pub mod joint;

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The `gateway` binary built for these tests.
pub fn gateway() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_gateway"));
    c.env("GATEWAY_LOG", "warn").stdin(Stdio::null());
    c
}

/// Which store a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite file.
    Sqlite,
    /// A fresh PostgreSQL database.
    Postgres,
}

/// A gateway set up in a temporary directory.
pub struct Env {
    /// The temporary directory (config, data, inputs).
    pub dir: tempfile::TempDir,
    /// The config file.
    pub config: PathBuf,
    /// The PostgreSQL database (kept alive for the test).
    pub pg: Option<common::PgDatabase>,
}

/// The Nanchang penalty source block, with a mapping path.
pub fn nanchang_source(mapping: &Path) -> String {
    format!(
        "[[sources]]\nid = \"nanchang-amr\"\nmapping = \"{}\"\nformat = \"jsonl\"\nrecord_key = \"ajbh\"\n",
        mapping.display()
    )
}

impl Env {
    /// A config with the Nanchang source and one sink, on `backend`.
    pub async fn new(backend: Backend) -> Env {
        let mapping = repo().join("mappings/nanchang-amr-penalty/mapping.toml");
        Env::with_sources(backend, &nanchang_source(&mapping)).await
    }

    /// A config with the given source blocks and one sink, on `backend`.
    pub async fn with_sources(backend: Backend, sources: &str) -> Env {
        let dir = tempfile::tempdir().expect("temp dir");
        let (store, pg) = match backend {
            Backend::Sqlite => (
                "[store]\nbackend = \"sqlite\"\npath = \"data/gateway.db\"\n".to_string(),
                None,
            ),
            Backend::Postgres => {
                let db = common::PgDatabase::create().await;
                (
                    "[store]\nbackend = \"postgres\"\nurl_env = \"GW_TEST_DB_URL\"\npool_size = 4\n".to_string(),
                    Some(db),
                )
            }
        };
        let config = dir.path().join("gateway.toml");
        let text = format!(
            "{store}\n[normalizer]\nprovince_prefix = \"36\"\n\n[pipeline]\nbatch_size = 500\n\n{sources}\n[[sinks]]\nid = \"platform\"\nkind = \"postgres\"\nurl = \"postgres://gateway@127.0.0.1:9/platform\"\n"
        );
        std::fs::write(&config, text).expect("write config");
        Env { dir, config, pg }
    }

    /// A command with this environment's config and database URL set.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = gateway();
        c.args(args);
        if let Some(db) = &self.pg {
            c.env("GW_TEST_DB_URL", &db.url);
        }
        c
    }

    /// The `gateway ingest` command for `file` into the Nanchang source (not started).
    pub fn ingest_cmd(&self, file: &Path) -> Command {
        self.cmd(&[
            "ingest",
            "--config",
            path_str(&self.config),
            "--source",
            "nanchang-amr",
            "--quiet",
            path_str(file),
        ])
    }

    /// `gateway ingest` of `file`; returns the summary line.
    pub fn ingest(&self, file: &Path) -> Value {
        let out = self.ingest_cmd(file).output().expect("run gateway ingest");
        assert_success(&out, "ingest");
        summary_line(&out)
    }

    /// `gateway replay --source SOURCE`, which must succeed: its JSON summary line.
    pub fn replay_source(&self, source: &str) -> Value {
        let out = self
            .cmd(&["replay", "--config", path_str(&self.config), "--source", source])
            .output()
            .expect("run gateway replay");
        assert_success(&out, "replay");
        summary_line(&out)
    }

    /// `gateway export WHAT --format jsonl` as parsed lines.
    pub fn export(&self, what: &str) -> Vec<Value> {
        let out = self
            .cmd(&["export", what, "--config", path_str(&self.config)])
            .output()
            .expect("run gateway export");
        assert_success(&out, "export");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).expect("export line is JSON"))
            .collect()
    }

    /// Write a file into the temporary directory.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).expect("write input");
        p
    }
}

/// The `[store]` keys (without the header) of an in-process gateway on `backend`: a `gw.db`
/// SQLite file, or a fresh PostgreSQL database (returned, to be dropped with the test).
pub async fn store_keys(backend: Backend) -> (String, Option<common::PgDatabase>) {
    match backend {
        Backend::Sqlite => ("backend = \"sqlite\"\npath = \"gw.db\"".to_string(), None),
        Backend::Postgres => {
            let db = common::PgDatabase::create().await;
            (format!("backend = \"postgres\"\nurl = \"{}\"", db.url), Some(db))
        }
    }
}

/// A path as &str (test paths are UTF-8).
pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// Fail with stdout and stderr when a command did not succeed.
pub fn assert_success(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({:?})\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The last stdout line parsed as JSON.
pub fn summary_line(out: &Output) -> Value {
    let text = String::from_utf8_lossy(&out.stdout);
    let last = text.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("summary line {last:?}: {e}"))
}

/// The valid agency of the Nanchang example (南昌市市场监督管理局).
pub const AGENCY_CODE: &str = "11360100014523152U";

/// One Nanchang source record with case number `NCSJ-CF-2024-{n}`. `variant` changes the
/// content (fine amount) without changing the business key.
pub fn nanchang_record(n: usize, variant: u32) -> Value {
    json!({
        "ajbh": format!("NCSJ-CF-2024-{n:06}"),
        "ajmc": format!("测试案件{n}"),
        "cfjdswh": format!("洪市监罚〔2024〕{n}号"),
        "jgmc": "南昌市市场监督管理局",
        "jgdm": AGENCY_CODE,
        "xzqh": "360100",
        "jgsxbm": "36010000100012",
        "xdrmc": "南昌赣江商贸有限公司",
        "xdrlb": "法人及非法人组织",
        "xdrzjlx": "统一社会信用代码",
        "xdrzjhm": "91360102MA35G7K86A",
        "cfyj": "《中华人民共和国价格法》第十三条",
        "wfss": "未按规定明码标价",
        "cflb": "罚款、警告",
        "cfnr": "警告，并处罚款",
        "fkje": format!("{}", 0.1 + f64::from(variant) / 100.0),
        "cfcx": "普通程序",
        "sftz": "否",
        "ajly": "02",
        "larq": "2024/1/5",
        "jdrq": "2024年1月22日",
        "jarq": "2024-02-08",
        "zfry": [{"xm": "张三", "zfzh": "36010020001"}, {"xm": "李四", "zfzh": "36010020002"}],
        "cd_operation": "i"
    })
}

/// A record whose target credit code has a wrong check character (rule `uscc.check_char`).
pub fn defective_record(n: usize) -> Value {
    let mut r = nanchang_record(n, 0);
    r["xdrzjhm"] = json!("91360102MA35G7K86B");
    r
}

/// JSON lines of records `range`, every `defect_every`-th defective (0 = none).
pub fn jsonl(range: std::ops::Range<usize>, defect_every: usize, variant: u32) -> String {
    let mut s = String::new();
    for n in range {
        let r = if defect_every > 0 && n % defect_every == 0 {
            defective_record(n)
        } else {
            nanchang_record(n, variant)
        };
        s.push_str(&r.to_string());
        s.push('\n');
    }
    s
}

/// Sequences of the exported cases' codes, sorted.
pub fn sequences(cases: &[Value]) -> Vec<u32> {
    let mut seqs: Vec<u32> = cases
        .iter()
        .map(|c| {
            let code = c["unified_code"].as_str().expect("unified_code");
            normalizer::standards::case_code::CaseCode::parse(code)
                .unwrap_or_else(|e| panic!("code {code} is well-formed: {e}"))
                .sequence()
        })
        .collect();
    seqs.sort_unstable();
    seqs
}

/// Generate one test per backend from an async fn taking a [`Backend`].
#[macro_export]
macro_rules! on_both_backends {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::support::Backend::Sqlite).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::support::Backend::Postgres).await;
            }
        }
    };
}

/// Copy the example mapping folder `name` (mapping and code tables) into `dir`; returns the copy.
pub fn copy_mapping(name: &str, dir: &Path) -> PathBuf {
    let src = repo().join("mappings").join(name);
    let dst = dir.join(name);
    std::fs::create_dir_all(&dst).expect("create mapping copy");
    for entry in std::fs::read_dir(&src).expect("read mapping folder") {
        let p = entry.expect("entry").path();
        if p.is_file() {
            std::fs::copy(&p, dst.join(p.file_name().expect("file name"))).expect("copy");
        }
    }
    dst
}

/// Wait until at least `n` cases are committed (checked through `gateway export`), at most a minute.
pub async fn wait_until_committed(env: &Env, n: usize) {
    // Counted in the store directly and often: an export per poll is slow enough for a whole
    // ingest to finish between two polls.
    let started = std::time::Instant::now();
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        if committed_cases(env).await >= n || started.elapsed().as_secs() > 60 {
            return;
        }
    }
}

/// Cases committed so far (0 while the store does not exist yet).
async fn committed_cases(env: &Env) -> usize {
    let count = match &env.pg {
        Some(db) => match common::pg_client(&db.url).await {
            Ok(client) => client
                .query_one("SELECT count(*) FROM cases", &[])
                .await
                .ok()
                .and_then(|row| row.try_get::<_, i64>(0).ok()),
            Err(_) => None,
        },
        None => rusqlite::Connection::open_with_flags(
            env.dir.path().join("data/gateway.db"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .and_then(|c| c.query_row("SELECT count(*) FROM cases", [], |r| r.get::<_, i64>(0)))
        .ok(),
    };
    count.and_then(|c| usize::try_from(c).ok()).unwrap_or(0)
}

/// The source's totals on the runtime's source board, after checking that the metrics count the
/// same: every way in reports through the one committer, so the board and
/// `gateway_source_records_total` agree field by field.
#[allow(dead_code)]
pub fn board_totals_agreeing_with_metrics(
    runtime: &gateway::runtime::Runtime,
    source: &str,
) -> gateway::telemetry::Summary {
    let totals = runtime
        .sources
        .get(source)
        .unwrap_or_else(|| panic!("source {source} is on the board"))
        .totals;
    let text = runtime.metrics.render(&[], &[]);
    for (outcome, n) in [
        ("received", totals.received),
        ("accepted", totals.accepted),
        ("updated", totals.updated),
        ("unchanged", totals.unchanged),
        ("stale", totals.stale),
        ("quarantined", totals.quarantined),
    ] {
        let line = format!(r#"gateway_source_records_total{{source="{source}",outcome="{outcome}"}} {n}"#);
        if n == 0 {
            assert!(
                !text.contains(&format!(r#"source="{source}",outcome="{outcome}"}}"#)),
                "the board counts no {outcome} records of {source}, the metrics do:\n{text}"
            );
        } else {
            assert!(
                text.contains(&line),
                "the board counts {n} {outcome} records of {source}, the metrics lack {line}:\n{text}"
            );
        }
    }
    totals
}
