//! End-to-end: the mapping lifecycle (upload, dry run, activate, rollback, history, restart,
//! concurrent activation) through the real binary and the library, on SQLite and PostgreSQL.
//!
//! The story: the Nanchang system starts sending the legacy penalty kind `通报` (short for
//! 通报批评), which mapping v1's code table lacks, so those records are quarantined with
//! `mapping.unmapped_code`. Version 2 adds the row `通报,public_criticism`.

mod support;

use gateway::config::Config;
use gateway::lifecycle::{self, LifecycleError};
use gateway::shutdown::Shutdown;
use gateway::store::{MappingBundle, VersionStatus};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;
use support::{copy_mapping, jsonl, nanchang_record, nanchang_source, path_str, Backend, Env};

const SOURCE: &str = "nanchang-amr";
const EXAMPLE: &str = "nanchang-amr-penalty";

/// A record whose penalty kinds use the legacy `通报` that v1 does not know.
fn legacy_kind_record(n: usize) -> Value {
    let mut r = nanchang_record(n, 0);
    r["cflb"] = Value::from("通报、罚款");
    r
}

fn case_number(n: usize) -> String {
    format!("NCSJ-CF-2024-{n:06}")
}

/// Records 1..=30: every 5th uses the legacy kind (6 records), 7 and 14 have a wrong target
/// credit code (rejected by every version), the other 22 are valid.
fn sample_records() -> String {
    let mut s = String::new();
    for n in 1..=30 {
        let r = if n % 5 == 0 {
            legacy_kind_record(n)
        } else if n == 7 || n == 14 {
            support::defective_record(n)
        } else {
            nanchang_record(n, 0)
        };
        s.push_str(&r.to_string());
        s.push('\n');
    }
    s
}

/// Copy the example mapping to `dir/<name>` with `version = N` and `edit` applied to
/// `(mapping text, penalty_kinds.csv, procedures.csv)`.
fn mapping_variant(
    dir: &Path,
    name: &str,
    version: i64,
    edit: impl FnOnce(&mut String, &mut String, &mut String),
) -> PathBuf {
    let folder = dir.join(name);
    std::fs::create_dir_all(&folder).expect("variant folder");
    let copied = copy_mapping(EXAMPLE, &folder);
    let read = |f: &str| std::fs::read_to_string(copied.join(f)).expect("read mapping file");
    let mut text = read("mapping.toml").replacen("version = 1\n", &format!("version = {version}\n"), 1);
    let mut kinds = read("penalty_kinds.csv");
    let mut procedures = read("procedures.csv");
    edit(&mut text, &mut kinds, &mut procedures);
    std::fs::write(copied.join("mapping.toml"), text).expect("write mapping");
    std::fs::write(copied.join("penalty_kinds.csv"), kinds).expect("write kinds");
    std::fs::write(copied.join("procedures.csv"), procedures).expect("write procedures");
    copied
}

/// v2: the code-table row for `通报` added.
fn add_legacy_row(_: &mut String, kinds: &mut String, _: &mut String) {
    kinds.push_str("通报,public_criticism,旧系统写法\n");
}

/// An environment whose source maps with a copy of the example (v1) kept in its directory.
async fn env(backend: Backend) -> (Env, PathBuf) {
    const PLACEHOLDER: &str = "MAPPING-PLACEHOLDER";
    let env = Env::with_sources(backend, &nanchang_source(Path::new(PLACEHOLDER))).await;
    let mapping = copy_mapping(EXAMPLE, env.dir.path());
    let config = std::fs::read_to_string(&env.config).expect("read config");
    std::fs::write(
        &env.config,
        config.replace(PLACEHOLDER, path_str(&mapping.join("mapping.toml"))),
    )
    .expect("rewrite config");
    (env, mapping)
}

fn mappings(env: &Env, args: &[&str]) -> Output {
    let mut all = vec!["mappings"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--config", path_str(&env.config), "--source", SOURCE]);
    env.cmd(&all).output().expect("run gateway mappings")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn json_of(out: &Output, what: &str) -> Value {
    support::assert_success(out, what);
    serde_json::from_str(stdout(out).trim()).unwrap_or_else(|e| panic!("{what}: JSON output: {e}\n{}", stdout(out)))
}

fn history(env: &Env) -> Value {
    json_of(&mappings(env, &["history", "--json"]), "history")
}

fn count(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("{key} in {v}"))
}

async fn a_fixed_code_table_goes_from_upload_through_dry_run_activation_replay_and_rollback(backend: Backend) {
    let (env, _v1) = env(backend).await;
    let s = env.ingest(&env.write("records.jsonl", &sample_records()));
    assert_eq!((count(&s, "accepted"), count(&s, "quarantined")), (22, 8), "{s}");

    // First start: the configured file became v1, active, imported by `system`.
    let h = history(&env);
    assert_eq!(h["active_version"], 1, "{h}");
    assert_eq!(h["versions"][0]["uploaded_by"], "system");
    assert_eq!(h["versions"][0]["status"], "active");
    assert_eq!(h["audit"][0]["action"], "mapping.import");
    assert_eq!(h["audit"][0]["actor"], "system");

    // Upload v2 (the row added).
    let v2 = mapping_variant(env.dir.path(), "v2", 2, add_legacy_row);
    let out = mappings(&env, &["upload", path_str(&v2), "--actor", "alice", "--json"]);
    let up = json_of(&out, "upload v2");
    assert_eq!(
        (up["version"].as_i64(), up["status"].as_str()),
        (Some(2), Some("candidate")),
        "{up}"
    );
    assert_eq!(up["tests"]["failures"], Value::Array(vec![]), "{up}");
    assert!(up["tests"]["total"].as_u64().unwrap_or(0) >= 10, "{up}");
    assert_eq!(up["active_version"], 1);

    // A version whose embedded tests fail is refused with every failure.
    let v3_bad = mapping_variant(env.dir.path(), "v3-bad", 3, |_, kinds, procedures| {
        add_legacy_row(&mut String::new(), kinds, &mut String::new());
        *procedures = procedures.replace("普通程序,ordinary,", "普通程序,simple,");
    });
    let out = mappings(&env, &["upload", path_str(&v3_bad), "--actor", "alice"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("FAIL  企业：警告并处罚款，完整映射"), "{err}");
    assert!(err.contains("/penalty/procedure"), "names the differing field: {err}");
    // The same version number again is refused too.
    let out = mappings(&env, &["upload", path_str(&v2), "--actor", "alice"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("must be greater than the newest stored version 2"),
        "{}",
        stderr(&out)
    );
    let versions: Vec<i64> = history(&env)["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .filter_map(|v| v["version"].as_i64())
        .collect();
    assert_eq!(versions, [2, 1], "refused uploads store nothing");

    // Dry run: exactly the six legacy-kind records become accepted, only /penalty/kinds changes.
    let out = mappings(&env, &["diff", "--version", "2", "--last", "100", "--json"]);
    let d = json_of(&out, "diff");
    assert_eq!(
        [
            count(&d, "total"),
            count(&d, "unchanged"),
            count(&d, "changed"),
            count(&d, "newly_accepted"),
            count(&d, "newly_rejected"),
            count(&d, "still_rejected")
        ],
        [30, 22, 0, 6, 0, 2],
        "{d}"
    );
    let mut accepted: Vec<&str> = d["newly_accepted_records"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|r| r["record_key"].as_str())
        .collect();
    accepted.sort_unstable();
    let expected: Vec<String> = (1..=30).filter(|n| n % 5 == 0).map(case_number).collect();
    assert_eq!(accepted, expected);
    let fields: Vec<(&str, u64)> = d["field_changes"]
        .as_array()
        .expect("fields")
        .iter()
        .map(|f| (f["pointer"].as_str().unwrap_or(""), f["count"].as_u64().unwrap_or(0)))
        .collect();
    assert_eq!(fields, [("/penalty/kinds", 6)], "{d}");
    let sample = &d["field_changes"][0]["samples"][0];
    assert_eq!(sample["old"], serde_json::json!(["fine"]), "{sample}");
    assert_eq!(
        sample["new"],
        serde_json::json!(["public_criticism", "fine"]),
        "{sample}"
    );
    // The readable table says the same.
    let table = stdout(&mappings(&env, &["diff", "--version", "2", "--last", "100"]));
    assert!(
        table.contains("newly accepted") && table.contains("/penalty/kinds"),
        "{table}"
    );
    assert!(table.contains(&case_number(5)), "{table}");

    // Activate v2: the diff shows the added row and the version line.
    let out = mappings(&env, &["activate", "--version", "2", "--actor", "bob"]);
    support::assert_success(&out, "activate");
    let text = stdout(&out);
    assert!(text.contains("now runs v2 (was v1)"), "{text}");
    assert!(text.contains("+通报,public_criticism,旧系统写法"), "{text}");
    assert!(text.contains("-version = 1") && text.contains("+version = 2"), "{text}");

    // Replaying the quarantine (a new process: the store's v2, not the configured v1 file).
    let r = env.replay_source(SOURCE);
    assert_eq!((count(&r, "accepted"), count(&r, "quarantined")), (6, 2), "{r}");
    let cases = env.export("cases");
    assert_eq!(cases.len(), 28);
    let fixed = cases
        .iter()
        .find(|c| c["key"]["case_number"] == case_number(10).as_str())
        .expect("the fixed case");
    assert_eq!(
        fixed["record"]["penalty"]["kinds"],
        serde_json::json!(["public_criticism", "fine"])
    );

    // Rollback to v1.
    let out = mappings(&env, &["rollback", "--to", "1", "--actor", "carol"]);
    support::assert_success(&out, "rollback");
    assert!(stdout(&out).contains("rolled back"), "{}", stdout(&out));
    let out = mappings(&env, &["rollback", "--to", "2", "--actor", "carol"]);
    assert_eq!(out.status.code(), Some(1), "a rollback goes to an earlier version");
    let out = mappings(&env, &["activate", "--version", "1", "--actor", "carol"]);
    assert_eq!(out.status.code(), Some(1), "v1 is active already");
    assert!(stderr(&out).contains("already active"), "{}", stderr(&out));

    // History: each version with its status and activations, each step audited with its actor.
    let h = history(&env);
    assert_eq!(h["active_version"], 1, "{h}");
    let status: Vec<(i64, &str)> = h["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .map(|v| (v["version"].as_i64().unwrap_or(0), v["status"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(status, [(2, "retired"), (1, "active")]);
    let v1_activations: Vec<(&str, &str)> = h["versions"][1]["activations"]
        .as_array()
        .expect("activations")
        .iter()
        .map(|a| (a["kind"].as_str().unwrap_or(""), a["actor"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(v1_activations, [("import", "system"), ("rollback", "carol")]);
    assert_eq!(h["versions"][0]["uploaded_by"], "alice");
    assert_eq!(h["versions"][0]["activated_by"], "bob");
    let steps: Vec<(&str, &str)> = h["audit"]
        .as_array()
        .expect("audit")
        .iter()
        .map(|a| (a["action"].as_str().unwrap_or(""), a["actor"].as_str().unwrap_or("")))
        .filter(|(_, actor)| !actor.starts_with("cli:"))
        .collect();
    assert_eq!(
        steps,
        [
            ("mapping.import", "system"),
            ("mapping.upload", "alice"),
            ("mapping.upload_refused", "alice"),
            ("mapping.upload_refused", "alice"),
            ("mapping.activate", "bob"),
            ("mapping.rollback", "carol"),
            ("mapping.rollback_refused", "carol"),
            ("mapping.activate_refused", "carol"),
        ]
    );
    let dry_runs = h["audit"]
        .as_array()
        .expect("audit")
        .iter()
        .filter(|a| a["action"] == "mapping.dry_run" && a["actor"].as_str().is_some_and(|s| s.starts_with("cli:")))
        .count();
    assert_eq!(dry_runs, 2, "dry runs are audited with the CLI user as actor");
    let activation = h["audit"]
        .as_array()
        .expect("audit")
        .iter()
        .find(|a| a["action"] == "mapping.activate")
        .expect("activation audited");
    assert_eq!(activation["detail"]["previous_version"], 1);
    assert!(
        activation["detail"]["diff"]
            .as_array()
            .expect("diff lines")
            .iter()
            .any(|l| l == "+通报,public_criticism,旧系统写法"),
        "{activation}"
    );
    let table = stdout(&mappings(&env, &["history"]));
    assert!(
        table.contains("active v1") && table.contains("mapping.rollback"),
        "{table}"
    );
}
on_both_backends!(a_fixed_code_table_goes_from_upload_through_dry_run_activation_replay_and_rollback);

async fn restart_runs_the_store_active_version_not_the_config_file(backend: Backend) {
    let (env, v1) = env(backend).await;
    env.ingest(&env.write("first.jsonl", &jsonl(1..3, 0, 0)));
    let v2 = mapping_variant(env.dir.path(), "v2", 2, add_legacy_row);
    support::assert_success(&mappings(&env, &["upload", path_str(&v2)]), "upload");
    support::assert_success(&mappings(&env, &["activate", "--version", "2"]), "activate");

    // The configured file changes on disk to something never uploaded (v5, still without 通报).
    let text = std::fs::read_to_string(v1.join("mapping.toml")).expect("read");
    std::fs::write(
        v1.join("mapping.toml"),
        text.replacen("version = 1\n", "version = 5\n", 1),
    )
    .expect("write");

    let record = legacy_kind_record(50);
    let out = env
        .ingest_cmd(&env.write("later.jsonl", &format!("{record}\n")))
        .output()
        .expect("ingest");
    let s = support::summary_line(&out);
    assert_eq!(
        (count(&s, "accepted"), count(&s, "quarantined")),
        (1, 0),
        "mapped with the store's v2: {s}"
    );
    let log = stderr(&out);
    assert!(log.contains("differs from every stored version"), "{log}");
    assert!(
        log.contains("nanchang-amr-penalty v5") && log.contains("active version v2"),
        "{log}"
    );
    assert!(
        log.contains(path_str(&v1.join("mapping.toml"))),
        "names the file: {log}"
    );
    let h = history(&env);
    assert_eq!(h["active_version"], 2, "{h}");
    assert_eq!(
        h["versions"].as_array().map(Vec::len),
        Some(2),
        "the file is not imported: {h}"
    );
}
on_both_backends!(restart_runs_the_store_active_version_not_the_config_file);

// ------------------------------------------------------------------------------ library level

/// A person's ID number (18 characters) and a first-generation 15-digit one, as a mapping
/// version's embedded test may hold them, and their masked forms.
const PERSON_ID: &str = "36010219850315202X";
const PERSON_ID_MASKED: &str = "3601**********202X";
const LEGACY_ID: &str = "360426910101007";
const LEGACY_ID_MASKED: &str = "3604*******1007";

/// v2 and v3 add an embedded test whose input names a person by ID number; v3's expects another
/// number, so it fails and its upload is refused with the difference.
fn add_test_naming_a_person(text: &mut String, expected_id: Option<&str>) {
    text.push_str(&format!(
        "\n[[test]]\nname = \"自然人证件号码\"\ninput = {{ ajbh = \"NCSJ-CF-2024-9\", xdrzjhm = \"{PERSON_ID}\", jbrsfzh = \"{LEGACY_ID}\" }}\nexpect_accepted = false\n"
    ));
    if let Some(id) = expected_id {
        text.push_str(&format!("[test.expect_fields]\n\"/target/id_number\" = \"{id}\"\n"));
    }
}

async fn audit_entries_of_a_mapping_version_naming_a_person_hold_only_the_masked_number(backend: Backend) {
    let dir = tempfile::tempdir().expect("temp dir");
    let (store, _pg) = support::store_keys(backend).await;
    let mapping = copy_mapping(EXAMPLE, dir.path());
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\n{store}\n\n[normalizer]\nprovince_prefix = \"36\"\n\n{}",
            nanchang_source(&mapping.join("mapping.toml"))
        ),
    )
    .expect("write config");
    let rt = instance(&config).await;

    let v3 = mapping_variant(dir.path(), "v3", 3, |text, _, _| {
        add_test_naming_a_person(text, Some("360426199101010071"))
    });
    let err = lifecycle::upload(&rt, "alice", SOURCE, &MappingBundle::read(&v3).expect("bundle"))
        .await
        .expect_err("a failing test refuses the upload");
    assert_eq!(err.code(), "tests_failed", "{err}");

    let v2 = mapping_variant(dir.path(), "v2", 2, |text, _, _| add_test_naming_a_person(text, None));
    lifecycle::upload(&rt, "alice", SOURCE, &MappingBundle::read(&v2).expect("bundle"))
        .await
        .expect("upload v2");
    let report = lifecycle::activate(&rt, "bob", SOURCE, 2).await.expect("activate v2");
    let shown = report.diff.join("\n");
    assert!(
        shown.contains(PERSON_ID_MASKED) && shown.contains(LEGACY_ID_MASKED),
        "{shown}"
    );
    assert!(!shown.contains(PERSON_ID) && !shown.contains(LEGACY_ID), "{shown}");

    // The audit log as the store gives it: the lifecycle's entries and the whole log.
    let history = lifecycle::history(&rt, SOURCE).await.expect("history");
    let actions: Vec<&str> = history.audit.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "mapping.import",
            "mapping.upload_refused",
            "mapping.upload",
            "mapping.activate"
        ]
    );
    let everything = serde_json::to_string(&rt.store.audit_log(100).await.expect("audit log")).expect("JSON");
    for full in [PERSON_ID, LEGACY_ID, "360426199101010071"] {
        assert!(!everything.contains(full), "{full} in the audit log: {everything}");
    }
    let refusal = serde_json::to_string(&history.audit[1].detail).expect("JSON");
    assert!(
        refusal.contains("3604**********0071"),
        "the refusal names the difference, masked: {refusal}"
    );
    let activation = history.audit[3].detail["diff"]
        .as_array()
        .expect("the activation's diff")
        .iter()
        .filter_map(Value::as_str)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        activation.contains(&format!("xdrzjhm = \"{PERSON_ID_MASKED}\"")) && activation.contains(LEGACY_ID_MASKED),
        "{activation}"
    );
}
on_both_backends!(audit_entries_of_a_mapping_version_naming_a_person_hold_only_the_masked_number);

/// A configuration on the PostgreSQL database `url` with the example mapping copied into `dir`.
fn pg_config(dir: &Path, url: &str) -> PathBuf {
    let mapping = copy_mapping(EXAMPLE, dir);
    let config = dir.join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\nbackend = \"postgres\"\nurl = \"{url}\"\npool_size = 4\n\n[normalizer]\nprovince_prefix = \"36\"\n\n{}",
            nanchang_source(&mapping.join("mapping.toml"))
        ),
    )
    .expect("write config");
    config
}

async fn instance(config: &Path) -> gateway::runtime::Runtime {
    let resolved = Config::load(config).unwrap_or_else(|e| panic!("{e}"));
    gateway::runtime::Runtime::open(resolved)
        .await
        .unwrap_or_else(|e| panic!("open runtime: {e}"))
}

fn running_version(rt: &gateway::runtime::Runtime) -> i64 {
    rt.preparers.get(SOURCE).expect("source preparer").mapping.version()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_activations_on_postgresql_leave_exactly_one_active_version() {
    let db = support::common::PgDatabase::create().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let config = pg_config(dir.path(), &db.url);
    // Two gateway instances on one store, started together (both try the first import).
    let (a, b) = tokio::join!(instance(&config), instance(&config));
    for n in 2..=5 {
        let folder = mapping_variant(dir.path(), &format!("v{n}"), n, add_legacy_row);
        let bundle = MappingBundle::read(&folder).expect("bundle");
        lifecycle::upload(&a, "alice", SOURCE, &bundle)
            .await
            .unwrap_or_else(|e| panic!("upload v{n}: {e}"));
    }
    let history = lifecycle::history(&a, SOURCE).await.expect("history");
    let imports = history.audit.iter().filter(|e| e.action == "mapping.import").count();
    assert_eq!(imports, 1, "one instance imported the configured file");

    for (x, y) in [(2, 3), (4, 5), (3, 2), (5, 4)] {
        let (ra, rb) = tokio::join!(
            lifecycle::activate(&a, "alice", SOURCE, x),
            lifecycle::activate(&b, "bob", SOURCE, y)
        );
        let (ra, rb) = (ra.expect("activation on a"), rb.expect("activation on b"));
        // They took turns: the later one replaced the earlier one.
        let last = if rb.previous_version == Some(x) { y } else { x };
        assert!(
            ra.previous_version == Some(y) || rb.previous_version == Some(x),
            "one activation saw the other: {ra:?} {rb:?}"
        );
        let client = support::common::admin_client(&db.url).await;
        let active: Vec<i64> = client
            .query(
                "SELECT version FROM mapping_versions WHERE source_id = $1 AND status = 'active'",
                &[&SOURCE],
            )
            .await
            .expect("query")
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(active, [last], "exactly one active version");
    }

    // The unique partial index refuses a second active version even outside the gateway's code.
    let client = support::common::admin_client(&db.url).await;
    let err = client
        .execute(
            "UPDATE mapping_versions SET status = 'active' WHERE source_id = $1 AND status <> 'active'",
            &[&SOURCE],
        )
        .await
        .expect_err("a second active version is refused");
    assert_eq!(err.code().map(|c| c.code()), Some("23505"), "{err}");

    // Each instance's running mapping follows the store: the activator at once, the other when
    // it looks (sync_active, which `watch` does every few seconds).
    let active = lifecycle::history(&a, SOURCE)
        .await
        .expect("history")
        .active_version
        .expect("active");
    lifecycle::sync_active(&a).await.expect("sync a");
    lifecycle::sync_active(&b).await.expect("sync b");
    assert_eq!((running_version(&a), running_version(&b)), (active, active));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watching_instance_picks_up_an_activation_made_by_another() {
    let db = support::common::PgDatabase::create().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let config = pg_config(dir.path(), &db.url);
    let a = instance(&config).await;
    let b = instance(&config).await;
    let shutdown = Shutdown::default();
    let watcher = tokio::spawn(lifecycle::watch_every(
        b.clone(),
        shutdown.clone(),
        Duration::from_millis(100),
    ));
    let folder = mapping_variant(dir.path(), "v2", 2, add_legacy_row);
    lifecycle::upload(&a, "alice", SOURCE, &MappingBundle::read(&folder).expect("bundle"))
        .await
        .expect("upload");
    lifecycle::activate(&a, "alice", SOURCE, 2).await.expect("activate");
    assert_eq!(running_version(&a), 2, "the activating instance swaps at once");
    let started = std::time::Instant::now();
    while running_version(&b) != 2 && started.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(running_version(&b), 2, "the watching instance follows");
    shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(5), watcher)
        .await
        .expect("the watcher stops on shutdown")
        .expect("watcher task");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn library_refusals_carry_stable_codes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mapping = copy_mapping(EXAMPLE, dir.path());
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\npath = \"data/gateway.db\"\n\n{}",
            nanchang_source(&mapping.join("mapping.toml"))
        ),
    )
    .expect("write config");
    let rt = instance(&config).await;
    let broken = MappingBundle {
        file_name: "mapping.toml".into(),
        mapping_toml: "id = \"nanchang-amr-penalty\"\nversion = 2\ndescription = \"x\"\n[[field]]\ntarget = \"case_numbr\"\nfrom = \"ajbh\"\n".into(),
        code_tables: Default::default(),
    };
    let err = lifecycle::upload(&rt, "alice", SOURCE, &broken)
        .await
        .expect_err("refused");
    assert_eq!(err.code(), "invalid_mapping");
    let LifecycleError::Invalid(e) = &err else {
        panic!("{err}")
    };
    assert_eq!((e.file.as_str(), e.line), ("mapping.toml", Some(5)), "{e}");

    let mut other = MappingBundle::read(&mapping).expect("bundle");
    other.mapping_toml = other
        .mapping_toml
        .replacen("id = \"nanchang-amr-penalty\"", "id = \"other\"", 1);
    let err = lifecycle::upload(&rt, "alice", SOURCE, &other)
        .await
        .expect_err("refused");
    assert_eq!(err.code(), "wrong_mapping_id", "{err}");

    let err = lifecycle::upload(&rt, "alice", "nope", &other)
        .await
        .expect_err("refused");
    assert_eq!(err.code(), "unknown_source");
    let err = lifecycle::activate(&rt, "alice", SOURCE, 9).await.expect_err("refused");
    assert_eq!(err.code(), "version_not_found");
    let err = lifecycle::dry_run(&rt, "alice", SOURCE, 9, 10)
        .await
        .expect_err("refused");
    assert_eq!(err.code(), "version_not_found");

    let versions = rt.mappings.mapping_versions(SOURCE).await.expect("versions");
    assert_eq!(versions.len(), 1);
    assert_eq!(versions[0].status, VersionStatus::Active);
    // A dry run of the active version against itself on an empty archive changes nothing.
    let report = lifecycle::dry_run(&rt, "alice", SOURCE, 1, 10).await.expect("dry run");
    assert_eq!(report.comparison.total, 0);
}
