//! Personal data at rest (issue 27): with `[personal_data]` keys, natural persons' ID numbers
//! (and fields a mapping marks `personal = true`) never reach the store in clear — not in the
//! raw archive, case versions, quarantine entries or their labels — on both stores; the API
//! shows them masked, in clear only to a token holding `personal-data` that asks for it (each
//! such read audit-logged, the audit entry itself without the number); look-ups by ID still
//! find the person's cases; exports mask by default; the hash chain still verifies; a key is
//! rotated without downtime (the old one keeps opening what it sealed), and a delivery carries
//! the clear record to the sink.

mod support;

use normalizer::standards::id_number::id_check_char;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::path::Path;
use support::gw::{sha, Gw, Options, DEPT, OPERATOR, SOURCE};
use support::Backend;

/// The clear token of the privacy officer (operator role + `personal-data`).
const PRIVACY: &str = "tok-privacy-officer-8sKq2LmZ";
const KEY_A: &str = "00112233445566778899aabbccddeeff";
const KEY_B: &str = "8899aabbccddeeff0011223344556677";

/// A valid resident ID number ending in the check character computed for `first17`.
fn resident_id(first17: &str) -> String {
    format!("{first17}{}", id_check_char(first17).expect("17 digits"))
}

/// A Nanchang penalty on a natural person with ID number `id`.
fn person_record(n: usize, id: &str) -> Value {
    let mut r = support::nanchang_record(n, 0);
    r["xdrlb"] = json!("自然人");
    r["xdrmc"] = json!("王某某");
    r["xdrzjlx"] = json!("身份证");
    r["xdrzjhm"] = json!(id);
    r
}

fn options(key_dir: &Path, keys: &[(&str, &str)], current: &str) -> Options {
    let mut extra = format!("[personal_data]\ncurrent = \"{current}\"\n");
    for (id, hex) in keys {
        let file = key_dir.join(format!("{id}.key"));
        std::fs::write(&file, format!("{hex}\n")).unwrap();
        extra.push_str(&format!(
            "\n[[personal_data.keys]]\nid = \"{id}\"\nfile = \"{}\"\n",
            file.display()
        ));
    }
    Options {
        server_extra: format!(
            "\n[[server.tokens]]\nname = \"privacy-officer\"\nrole = \"operator\"\npermissions = [\"personal-data\"]\nsha256 = \"{}\"\n",
            sha(PRIVACY)
        ),
        extra,
        ..Options::default()
    }
}

/// Everything the store keeps in the tables that hold records, as text (binary columns in hex).
async fn stored_text(gw: &Gw, backend: Backend) -> String {
    let tables = ["raw_records", "case_versions", "cases", "quarantine"];
    let mut all = String::new();
    match backend {
        Backend::Postgres => {
            let url = &gw._pg.as_ref().expect("pg").url;
            let client = support::common::pg_client(url).await.unwrap();
            for t in tables {
                for row in client.query(&format!("SELECT t::text FROM {t} t"), &[]).await.unwrap() {
                    all.push_str(&row.get::<_, String>(0));
                    all.push('\n');
                }
            }
        }
        Backend::Sqlite => {
            let conn = rusqlite::Connection::open(gw.dir.path().join("data/gateway.db")).unwrap();
            for t in tables {
                let columns: Vec<String> = conn
                    .prepare(&format!("SELECT name FROM pragma_table_info('{t}')"))
                    .unwrap()
                    .query_map([], |r| r.get(0))
                    .unwrap()
                    .map(Result::unwrap)
                    .collect();
                let select = columns
                    .iter()
                    .map(|c| format!("quote({c})"))
                    .collect::<Vec<_>>()
                    .join(" || ' ' || ");
                let mut stmt = conn.prepare(&format!("SELECT {select} FROM {t}")).unwrap();
                let rows: Vec<String> = stmt.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect();
                for row in rows {
                    all.push_str(&row);
                    all.push('\n');
                }
            }
        }
    }
    all
}

/// Whether `text` holds `id` in clear, as text or hex (upper or lower case).
fn holds(text: &str, id: &str) -> bool {
    let hex = hex::encode(id.as_bytes());
    text.contains(id) || text.contains(&hex) || text.contains(&hex.to_uppercase())
}

async fn get_with(gw: &Gw, path: &str, token: &str, clear: bool) -> (StatusCode, String) {
    let mut req = gw.http.get(format!("{}{path}", gw.base)).bearer_auth(token);
    if clear {
        req = req.header("X-Personal-Data", "clear");
    }
    let resp = req.send().await.unwrap();
    (resp.status(), resp.text().await.unwrap())
}

async fn sealed_at_rest_masked_in_answers_clear_with_the_permission(backend: Backend) {
    let keys = tempfile::tempdir().unwrap();
    let gw = Gw::start_with(backend, options(keys.path(), &[("2026a", KEY_A)], "2026a")).await;
    let id = resident_id("36010219900101123");
    let bad_first17 = "36010219850505432";
    let good_check = id_check_char(bad_first17).unwrap();
    let wrong = if good_check == '1' { '2' } else { '1' };
    let bad_id = format!("{bad_first17}{wrong}");
    let company = support::nanchang_record(3, 0);
    let answer = gw
        .push(&[person_record(1, &id), person_record(2, &bad_id), company])
        .await;
    assert_eq!(answer["summary"]["accepted"], 2, "{answer}");
    assert_eq!(answer["summary"]["quarantined"], 1, "{answer}");
    assert!(
        !answer.to_string().contains(&bad_id),
        "the push answer quotes the number masked: {answer}"
    );

    // At rest: neither number anywhere in the tables, in clear or hex.
    let stored = stored_text(&gw, backend).await;
    assert!(
        !holds(&stored, &id),
        "the accepted person's ID number is stored in clear"
    );
    assert!(
        !holds(&stored, &bad_id),
        "the rejected person's ID number is stored in clear"
    );
    assert!(stored.contains("pd1:sm4:2026a:"), "sealed values are stored");
    assert!(
        stored.contains("91360102MA35G7K86A"),
        "a company's credit code is not personal data"
    );

    // A look-up by the number finds the case; an operator sees it masked.
    let masked = format!("{}**********{}", &id[..4], &id[14..]);
    let path = format!("/api/cases?target_id_number={id}");
    let (status, body) = get_with(&gw, &path, OPERATOR, false).await;
    assert_eq!(status, 200, "{body}");
    let found: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(found["items"].as_array().unwrap().len(), 1, "{body}");
    assert!(!body.contains(&id) && body.contains(&masked), "{body}");
    assert!(!body.contains("pd1:"), "no sealed text reaches a caller: {body}");
    let code = found["items"][0]["case"]["unified_code"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"))
        .to_string();

    // Clear text: refused without the permission, granted with it and audit-logged.
    let (status, _) = get_with(&gw, &path, OPERATOR, true).await;
    assert_eq!(status, 403);
    let (status, body) = get_with(&gw, &path, PRIVACY, true).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(&id), "{body}");
    let (status, body) = get_with(&gw, &path, PRIVACY, false).await;
    assert_eq!(status, 200);
    assert!(!body.contains(&id), "the permission alone does not unmask: {body}");
    let audit = gw.runtime.store.audit_log(50).await.unwrap();
    let reads: Vec<_> = audit.iter().filter(|a| a.action == "personal_data.read").collect();
    assert_eq!(reads.len(), 1, "{audit:?}");
    assert_eq!(reads[0].actor, "privacy-officer");
    assert!(reads[0].subject.contains("/api/cases"), "{:?}", reads[0]);
    assert!(
        !reads[0].subject.contains(&id),
        "the audit entry names no identifier: {:?}",
        reads[0]
    );

    // The case page and the quarantine entry: masked for the operator.
    let (_, body) = get_with(&gw, &format!("/api/cases/{code}"), OPERATOR, false).await;
    assert!(!body.contains(&id) && body.contains(&masked), "{body}");
    let entries = gw.runtime.store.quarantine_list(&Default::default()).await.unwrap();
    let entry = &entries[0];
    let (status, body) = get_with(&gw, &format!("/api/quarantine/{}", entry.id), OPERATOR, false).await;
    assert_eq!(status, 200, "{body}");
    assert!(!body.contains(&bad_id), "{body}");
    assert!(body.contains(&format!("{}**********", &bad_id[..4])), "{body}");
    let (_, body) = get_with(&gw, &format!("/api/raw/{}", entry.raw_id), OPERATOR, false).await;
    assert!(!body.contains(&bad_id), "a raw payload is masked too: {body}");
    let (_, body) = get_with(&gw, &format!("/api/raw/{}", entry.raw_id), PRIVACY, true).await;
    assert!(body.contains(&bad_id), "{body}");
    // The quarantine search by the number finds the entry.
    let (_, body) = get_with(&gw, &format!("/api/quarantine?q={bad_id}"), OPERATOR, false).await;
    let listed: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(1), "{body}");

    // The raw archive's chain covers the clear payloads.
    let rows = gw.runtime.store.archive().chain_rows(SOURCE, 0, 10).await.unwrap();
    assert_eq!(rows.len(), 3);
    for row in &rows {
        let payload = row.payload.as_ref().expect("opens");
        let digest = gateway::crypto::chain::HashAlg::Sm3.digest(payload);
        assert!(
            serde_json::from_slice::<Value>(payload).is_ok(),
            "opened to the clear JSON"
        );
        assert_ne!(digest, [0u8; 32]);
    }
    let _ = DEPT;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn personal_data_is_sealed_at_rest_masked_in_answers_and_clear_with_the_permission_on_sqlite() {
    sealed_at_rest_masked_in_answers_clear_with_the_permission(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn personal_data_is_sealed_at_rest_masked_in_answers_and_clear_with_the_permission_on_postgres() {
    sealed_at_rest_masked_in_answers_clear_with_the_permission(Backend::Postgres).await;
}

fn write_records(env: &support::Env, name: &str, records: &[Value]) -> std::path::PathBuf {
    let text: String = records.iter().map(|r| format!("{r}\n")).collect();
    env.write(name, &text)
}

/// `[personal_data]` with `keys` (id, hex), sealing under `current`, in place of the old table.
fn set_keys(env: &support::Env, keys: &[(&str, &str)], current: &str) {
    let text = std::fs::read_to_string(&env.config).unwrap();
    let head = text.split("\n[personal_data]").next().unwrap().to_string();
    let mut table = format!("{head}\n[personal_data]\ncurrent = \"{current}\"\n");
    for (id, hex) in keys {
        let file = env.dir.path().join(format!("{id}.key"));
        std::fs::write(&file, hex).unwrap();
        table.push_str(&format!(
            "\n[[personal_data.keys]]\nid = \"{id}\"\nfile = \"{id}.key\"\n"
        ));
    }
    std::fs::write(&env.config, table).unwrap();
}

fn run(env: &support::Env, args: &[&str]) -> std::process::Output {
    let mut all = args.to_vec();
    all.extend(["--config", support::path_str(&env.config)]);
    let out = env.cmd(&all).output().unwrap();
    support::assert_success(&out, args[0]);
    out
}

/// With the gateway binary: exports mask by default and open with `--personal-data clear`
/// (audited); the archive verifies; a key is rotated while the old one keeps opening what it
/// sealed (no re-ingest, no downtime beyond a configuration reload) and look-ups find a person's
/// cases under both keys; a delivery carries the clear number to the PostgreSQL sink; `gateway
/// personal-data rekey` re-seals everything under the new key, after which the old one is retired.
async fn rotation_export_verify_and_delivery(backend: Backend) {
    let sink_db = support::common::PgDatabase::create().await;
    let env = support::Env::new(backend).await;
    let text = std::fs::read_to_string(&env.config).unwrap();
    let head = text.split("[[sinks]]").next().unwrap().to_string();
    std::fs::write(
        &env.config,
        format!(
            "{head}[[sinks]]\nid = \"platform\"\nkind = \"postgres\"\nurl = \"{}\"\nschema = \"platform\"\nbatch_size = 10\npoll_ms = 50\n",
            sink_db.url
        ),
    )
    .unwrap();
    set_keys(&env, &[("2026a", KEY_A)], "2026a");
    let alice = resident_id("36010219900101123");
    let bob = resident_id("36010419751212002");
    // A number with a wrong check character: quarantined, its value sealed in the entry.
    let right = resident_id("36010219800808123");
    let wrong_check = if right.ends_with('0') { '1' } else { '0' };
    let mistyped = format!("{}{wrong_check}", &right[..17]);
    env.ingest(&write_records(
        &env,
        "v1.jsonl",
        &[
            person_record(1, &alice),
            person_record(2, &bob),
            person_record(9, &mistyped),
        ],
    ));

    let masked = run(&env, &["export", "cases"]);
    let masked = String::from_utf8_lossy(&masked.stdout);
    assert_eq!(masked.lines().count(), 2, "{masked}");
    assert!(!masked.contains(&alice) && !masked.contains("pd1:"), "{masked}");
    assert!(
        masked.contains(&format!("{}**********{}", &alice[..4], &alice[14..])),
        "{masked}"
    );
    let clear = run(&env, &["export", "cases", "--personal-data", "clear"]);
    assert!(String::from_utf8_lossy(&clear.stdout).contains(&alice));
    let csv = run(&env, &["export", "cases", "--format", "csv"]);
    assert!(!String::from_utf8_lossy(&csv.stdout).contains(&bob));

    // Rotation: key 2026b becomes current, 2026a stays to open what it sealed.
    set_keys(&env, &[("2026a", KEY_A), ("2026b", KEY_B)], "2026b");
    env.ingest(&write_records(&env, "v2.jsonl", &[person_record(3, &alice)]));
    let verify = env
        .cmd(&[
            "archive",
            "verify",
            "--json",
            "--config",
            support::path_str(&env.config),
        ])
        .output()
        .unwrap();
    assert_eq!(
        verify.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
    let clear = run(&env, &["export", "cases", "--personal-data", "clear"]);
    let clear = String::from_utf8_lossy(&clear.stdout);
    assert_eq!(
        clear.matches(alice.as_str()).count(),
        2,
        "both of Alice's cases open: {clear}"
    );
    assert!(clear.contains(&bob));

    // The store holds values under both keys; a look-up by the number finds both cases.
    let sealed_forms = gateway::crypto::personal::Keyring::new(
        vec![
            gateway::crypto::personal::DataKey::from_hex("2026a", Default::default(), KEY_A).unwrap(),
            gateway::crypto::personal::DataKey::from_hex("2026b", Default::default(), KEY_B).unwrap(),
        ],
        "2026b",
    )
    .unwrap()
    .sealed_forms(&alice);
    let (store, _) = open_store(&env).await;
    let mut found = Vec::new();
    for form in &sealed_forms {
        found.extend(store.case_codes_by_target(form, None, 10).await.unwrap());
    }
    assert_eq!(found.len(), 2, "{found:?}");

    // Each clear export is in the audit log, which names no identifier.
    let audit = store.audit_log(50).await.unwrap();
    let exports = audit.iter().filter(|a| a.action == "personal_data.export").count();
    assert_eq!(exports, 2, "{audit:?}");
    assert!(!format!("{audit:?}").contains(&alice));

    // Delivery: the sink gets the clear number.
    run(&env, &["run", "--once"]);
    let client = support::common::pg_client(&sink_db.url).await.unwrap();
    let rows = client
        .query("SELECT target_id_number FROM platform.cases ORDER BY unified_code", &[])
        .await
        .unwrap();
    let delivered: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(delivered.len(), 3, "{delivered:?}");
    assert!(delivered.iter().all(|d| *d == alice || *d == bob), "{delivered:?}");
    drop(store);

    // Retiring the old key: re-seal everything under 2026b, then drop 2026a from the configuration.
    let rekey = run(&env, &["personal-data", "rekey"]);
    let report: Value = serde_json::from_slice(&rekey.stdout).unwrap();
    assert_eq!(report["failed"], 0, "{report}");
    assert!(report["places"].to_string().contains("raw_records"), "{report}");
    let again = run(&env, &["personal-data", "rekey"]);
    let again: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(again["places"], json!([]), "a second pass finds nothing left: {again}");
    set_keys(&env, &[("2026b", KEY_B)], "2026b");
    let clear = run(&env, &["export", "cases", "--personal-data", "clear"]);
    let clear = String::from_utf8_lossy(&clear.stdout);
    assert_eq!(
        clear.matches(alice.as_str()).count(),
        2,
        "every case opens with 2026b alone: {clear}"
    );
    assert!(!clear.contains("cannot be opened"), "{clear}");
    let quarantine = run(&env, &["export", "quarantine", "--personal-data", "clear"]);
    let quarantine = String::from_utf8_lossy(&quarantine.stdout);
    assert!(
        quarantine.contains(&mistyped),
        "the quarantined entry opens with 2026b alone: {quarantine}"
    );
    assert!(!quarantine.contains("cannot be opened"), "{quarantine}");
    let (store, _) = open_store(&env).await;
    let only_b = gateway::crypto::personal::Keyring::new(
        vec![gateway::crypto::personal::DataKey::from_hex("2026b", Default::default(), KEY_B).unwrap()],
        "2026b",
    )
    .unwrap();
    let found = store
        .case_codes_by_target(&only_b.seal_text(&alice), None, 10)
        .await
        .unwrap();
    assert_eq!(
        found.len(),
        2,
        "both of Alice's cases are found under the new key: {found:?}"
    );
    let verify = env
        .cmd(&[
            "archive",
            "verify",
            "--json",
            "--config",
            support::path_str(&env.config),
        ])
        .output()
        .unwrap();
    assert_eq!(
        verify.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
}

/// The environment's store, opened with its configuration (keys registered in this process).
async fn open_store(env: &support::Env) -> (std::sync::Arc<dyn gateway::store::Store>, ()) {
    if let Some(db) = &env.pg {
        std::env::set_var("GW_TEST_DB_URL", &db.url);
    }
    let text = std::fs::read_to_string(&env.config).unwrap();
    let config = gateway::config::Config::parse(&text, "gateway.toml", env.dir.path()).unwrap();
    (gateway::store::open(&config).await.unwrap().store, ())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_rotates_without_downtime_exports_mask_and_sinks_get_clear_data_on_sqlite() {
    rotation_export_verify_and_delivery(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_rotates_without_downtime_exports_mask_and_sinks_get_clear_data_on_postgres() {
    rotation_export_verify_and_delivery(Backend::Postgres).await;
}

/// `gateway personal-data keygen` writes a key the configuration loads (mode 0600), refuses to
/// overwrite it and names a wrong cipher.
#[tokio::test]
async fn keygen_writes_a_key_the_configuration_loads() {
    let env = support::Env::new(Backend::Sqlite).await;
    let key = env.dir.path().join("k.key");
    let out = env
        .cmd(&["personal-data", "keygen", "--out", support::path_str(&key)])
        .output()
        .unwrap();
    support::assert_success(&out, "personal-data keygen");
    let text = std::fs::read_to_string(&key).unwrap();
    assert_eq!(text.trim().len(), 32, "{text}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let keys = gateway::crypto::personal::DataKey::from_hex("k", Default::default(), &text);
    assert!(keys.is_ok());
    let again = env
        .cmd(&["personal-data", "keygen", "--out", support::path_str(&key)])
        .output()
        .unwrap();
    assert!(!again.status.success(), "an existing key file is not overwritten");
    let wrong = env
        .cmd(&["personal-data", "keygen", "--cipher", "des", "--out", "x.key"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("sm4-gcm"));
}
