//! The evidence-grade raw archive (issue 27), end to end with the `gateway` binary on both
//! stores: the hash chain kept by ingest (one link per NEW raw record, none for a payload sent
//! again, no gap when two processes ingest into one source at once), signed checkpoints and
//! witnesses, `gateway archive verify` finding an edited payload, a deleted record and a forged
//! checkpoint, receipts checked with OpenSSL and the script of `docs/archive.md` (not with the
//! gateway's code), the receipt API route and the periodic checkpoint job.

mod support;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use support::gw::{Gw, Options, DEPT, OPERATOR, SOURCE};
use support::{jsonl, path_str, Backend, Env};

/// The Nanchang source of [`Env`].
const NANCHANG: &str = "nanchang-amr";

/// `gateway archive keygen` into `dir/keys/checkpoint.pem`; answers the private key's path.
fn keygen(env: &Env, algorithm: &str) -> PathBuf {
    std::fs::create_dir_all(env.dir.path().join("keys")).unwrap();
    let key = env.dir.path().join("keys/checkpoint.pem");
    let out = env
        .cmd(&["archive", "keygen", "--algorithm", algorithm, "--out", path_str(&key)])
        .output()
        .unwrap();
    support::assert_success(&out, "archive keygen");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("-----BEGIN PUBLIC KEY-----"));
    key
}

/// Append `[archive]` settings to the environment's config.
fn add_archive(env: &Env, text: &str) {
    let mut config = std::fs::read_to_string(&env.config).unwrap();
    config.push_str(text);
    std::fs::write(&env.config, config).unwrap();
}

/// An environment with an SM2 (or `algorithm`) key and a file witness `witness.jsonl`.
async fn archive_env(backend: Backend, algorithm: &str, hash: &str) -> Env {
    let env = Env::new(backend).await;
    keygen(&env, algorithm);
    add_archive(
        &env,
        &format!(
            "\n[archive]\nhash = \"{hash}\"\n\n[archive.checkpoints]\nalgorithm = \"{algorithm}\"\nsigning_key_file = \"keys/checkpoint.pem\"\n\n[[archive.witnesses]]\nname = \"audit-file\"\nkind = \"file\"\npath = \"witness.jsonl\"\n"
        ),
    );
    env
}

fn archive(env: &Env, args: &[&str]) -> Output {
    let mut all = vec!["archive", args[0], "--config", path_str(&env.config)];
    all.extend_from_slice(&args[1..]);
    env.cmd(&all).output().unwrap()
}

fn verify_json(env: &Env, extra: &[&str]) -> (i32, Value) {
    let mut args = vec!["verify", "--json"];
    args.extend_from_slice(extra);
    let out = archive(env, &args);
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("verify JSON: {e}: {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap_or(-1), report)
}

/// Run SQL on the environment's store.
async fn sql(env: &Env, statement: &str) {
    match &env.pg {
        Some(db) => {
            let client = support::common::pg_client(&db.url).await.unwrap();
            client.batch_execute(statement).await.unwrap();
        }
        None => {
            let conn = rusqlite::Connection::open(env.dir.path().join("data/gateway.db")).unwrap();
            conn.execute_batch(statement).unwrap();
        }
    }
}

/// One integer from the environment's store.
async fn sql_i64(env: &Env, query: &str) -> i64 {
    match &env.pg {
        Some(db) => {
            let client = support::common::pg_client(&db.url).await.unwrap();
            client.query_one(query, &[]).await.unwrap().get(0)
        }
        None => {
            let conn = rusqlite::Connection::open(env.dir.path().join("data/gateway.db")).unwrap();
            conn.query_row(query, [], |r| r.get(0)).unwrap()
        }
    }
}

fn source_report<'a>(report: &'a Value, source: &str) -> &'a Value {
    report["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["source_id"] == source)
        .unwrap_or_else(|| panic!("no report of {source}: {report}"))
}

async fn verify_finds_an_edited_payload_a_deleted_record_and_a_forged_checkpoint(backend: Backend) {
    let env = archive_env(backend, "sm2", "sm3").await;
    let input = env.write("in.jsonl", &jsonl(0..20, 0, 0));
    env.ingest(&input);
    // The same payloads again: counted, but no new raw record and so no new link.
    env.ingest(&input);
    assert_eq!(sql_i64(&env, "SELECT max(chain_seq) FROM raw_records").await, 20);
    assert_eq!(sql_i64(&env, "SELECT seq FROM archive_chain_heads").await, 20);

    let out = archive(&env, &["checkpoint"]);
    support::assert_success(&out, "archive checkpoint");
    let checkpoint: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(checkpoint["algorithm"], "sm2");
    assert!(checkpoint["statement"]
        .as_str()
        .unwrap()
        .contains("head source=nanchang-amr seq=20 hash="));
    let witness = std::fs::read_to_string(env.dir.path().join("witness.jsonl")).unwrap();
    assert_eq!(witness.lines().count(), 1, "the file witness got the checkpoint");

    let witness_file = env.dir.path().join("witness.jsonl");
    let (code, report) = verify_json(&env, &["--witness", path_str(&witness_file)]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["ok"], true);
    assert_eq!(source_report(&report, NANCHANG)["links_checked"], 20);
    assert_eq!(report["checkpoints_checked"], 1);
    assert_eq!(report["witness_copies_checked"], 1);

    // A payload edited in the database: verify names its raw record.
    let seventh = sql_i64(&env, "SELECT id FROM raw_records WHERE chain_seq = 7").await;
    let eighth = sql_i64(&env, "SELECT id FROM raw_records WHERE chain_seq = 8").await;
    match backend {
        Backend::Postgres => {
            sql(
                &env,
                "UPDATE raw_records SET payload = convert_to('{\"fkje\":\"0.01\"}', 'UTF8'), payload_codec = 0 WHERE chain_seq = 7",
            )
            .await
        }
        Backend::Sqlite => {
            sql(&env, "UPDATE raw_records SET payload = CAST('{\"fkje\":\"0.01\"}' AS BLOB) WHERE chain_seq = 7").await
        }
    }
    let (code, report) = verify_json(&env, &[]);
    assert_eq!(code, 1, "{report}");
    let broken = &source_report(&report, NANCHANG)["first_break"];
    assert_eq!(broken["kind"], "link_mismatch", "{report}");
    assert_eq!(broken["raw_id"], seventh);
    assert_eq!(broken["seq"], 7);
    assert_ne!(broken["expected"], broken["found"]);
    let text = archive(&env, &["verify"]);
    assert_eq!(text.status.code(), Some(1));
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains(&format!("raw record {seventh}")), "{text}");
    assert!(text.contains(&format!("原始记录 {seventh}")), "{text}");

    // The record deleted (on SQLite past its foreign keys, as someone editing the file would): a
    // gap before the next link.
    let delete = "DELETE FROM raw_records WHERE chain_seq = 7";
    match backend {
        Backend::Postgres => sql(&env, delete).await,
        Backend::Sqlite => sql(&env, &format!("PRAGMA foreign_keys = OFF; {delete}")).await,
    }
    let (code, report) = verify_json(&env, &[]);
    assert_eq!(code, 1);
    let broken = &source_report(&report, NANCHANG)["first_break"];
    assert_eq!(broken["kind"], "gap", "{report}");
    assert_eq!(broken["seq"], 7);
    assert_eq!(broken["raw_id"], eighth);
    // The signed head (link 20) still lies on the chain; links from 8 on still verify.
    assert!(report["checkpoint_problems"].as_array().unwrap().is_empty(), "{report}");
    let (_, from_eighth) = verify_json(&env, &["--from", "2000-01-01", "--source", NANCHANG]);
    assert_eq!(source_report(&from_eighth, NANCHANG)["first_break"]["kind"], "gap");

    // A checkpoint's statement forged in the database: its signature fails, and the witness's
    // copy no longer matches the store.
    sql(
        &env,
        "UPDATE archive_checkpoints SET statement = replace(statement, 'seq=20', 'seq=19')",
    )
    .await;
    let (code, report) = verify_json(&env, &["--witness", path_str(&witness_file)]);
    assert_eq!(code, 1);
    let kinds: Vec<&str> = report["checkpoint_problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"signature"), "{report}");
    assert!(kinds.contains(&"differs_from_witness"), "{report}");
}

#[tokio::test]
async fn verify_finds_an_edited_payload_a_deleted_record_and_a_forged_checkpoint_on_sqlite() {
    verify_finds_an_edited_payload_a_deleted_record_and_a_forged_checkpoint(Backend::Sqlite).await;
}

#[tokio::test]
async fn verify_finds_an_edited_payload_a_deleted_record_and_a_forged_checkpoint_on_postgres() {
    verify_finds_an_edited_payload_a_deleted_record_and_a_forged_checkpoint(Backend::Postgres).await;
}

/// The first fenced block of `lang` in docs/archive.md that contains `needle`.
fn doc_block(lang: &str, needle: &str) -> String {
    let text = std::fs::read_to_string(support::repo().join("docs/archive.md")).unwrap();
    let mut blocks = Vec::new();
    let mut open: Option<(String, String)> = None;
    for line in text.lines() {
        if let Some(info) = line.trim_start().strip_prefix("```") {
            match open.take() {
                None => open = Some((info.trim().to_string(), String::new())),
                Some((info, body)) => blocks.push((info, body)),
            }
        } else if let Some((_, body)) = open.as_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    blocks
        .into_iter()
        .find(|(info, body)| info.split_whitespace().next() == Some(lang) && body.contains(needle))
        .map(|(_, body)| body)
        .unwrap_or_else(|| panic!("docs/archive.md has no {lang} block with {needle:?}"))
}

/// Whether this machine's OpenSSL and Python have SM3 (the standard tools the procedure uses).
fn standard_tools_have_sm3() -> bool {
    let openssl = Command::new("openssl")
        .args(["list", "-digest-algorithms"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("SM3"));
    let python = Command::new("python3")
        .args(["-c", "import hashlib; hashlib.new('sm3')"])
        .output()
        .is_ok_and(|o| o.status.success());
    openssl && python
}

/// Run the documented procedure (the Python script, then OpenSSL) on `receipt` in `dir`.
fn documented_procedure(dir: &Path, receipt: &Value, algorithm: &str) -> (Output, Option<Output>) {
    std::fs::write(
        dir.join("check_receipt.py"),
        doc_block("python", "ganzhi-archive-link/1"),
    )
    .unwrap();
    std::fs::write(dir.join("receipt.json"), receipt.to_string()).unwrap();
    let script = Command::new("python3")
        .args(["check_receipt.py", "receipt.json"])
        .current_dir(dir)
        .output()
        .unwrap();
    if !script.status.success() {
        return (script, None);
    }
    let block = doc_block("sh", "openssl pkeyutl -verify");
    let mut command = block
        .lines()
        .find(|l| l.starts_with("openssl pkeyutl -verify"))
        .unwrap()
        .to_string();
    if algorithm == "ed25519" {
        // As the guide says: the same command without the SM2 options.
        command = command.replace(" -digest sm3 -pkeyopt distid:1234567812345678", "");
    }
    let openssl = Command::new("sh")
        .args(["-c", &command])
        .current_dir(dir)
        .output()
        .unwrap();
    (script, Some(openssl))
}

async fn a_receipt_verifies_with_openssl_and_the_documented_script(backend: Backend, algorithm: &str, hash: &str) {
    if !standard_tools_have_sm3() {
        eprintln!("skipped: openssl or python3 without SM3 on this machine");
        return;
    }
    let env = archive_env(backend, algorithm, hash).await;
    env.ingest(&env.write("first.jsonl", &jsonl(0..10, 0, 0)));
    let third = sql_i64(&env, "SELECT id FROM raw_records WHERE chain_seq = 3").await;

    // Not covered by a checkpoint yet: a receipt without one.
    let out = archive(&env, &["receipt", &third.to_string()]);
    support::assert_success(&out, "archive receipt");
    let early: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(early["checkpoint"].is_null());

    support::assert_success(&archive(&env, &["checkpoint"]), "archive checkpoint");
    env.ingest(&env.write("second.jsonl", &jsonl(10..15, 0, 0)));
    let out = archive(&env, &["receipt", &third.to_string()]);
    support::assert_success(&out, "archive receipt");
    let receipt: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(receipt["format"], "ganzhi-archive-receipt/1");
    assert_eq!(receipt["link"]["seq"], 3);
    assert_eq!(receipt["link"]["alg"], hash);
    assert_eq!(
        receipt["checkpoint"]["head_seq"], 10,
        "the first checkpoint covering it"
    );
    assert_eq!(receipt["following"].as_array().unwrap().len(), 7, "links 4..=10");

    let dir = tempfile::tempdir().unwrap();
    let (script, openssl) = documented_procedure(dir.path(), &receipt, algorithm);
    assert!(
        script.status.success(),
        "script: {}{}",
        String::from_utf8_lossy(&script.stdout),
        String::from_utf8_lossy(&script.stderr)
    );
    assert!(String::from_utf8_lossy(&script.stdout).contains("chain OK: link 3 reaches the signed head 10"));
    let openssl = openssl.unwrap();
    assert!(
        String::from_utf8_lossy(&openssl.stdout).contains("Signature Verified Successfully"),
        "openssl: {}{}",
        String::from_utf8_lossy(&openssl.stdout),
        String::from_utf8_lossy(&openssl.stderr)
    );

    // A changed payload fails the script; a changed statement fails OpenSSL.
    let mut forged = receipt.clone();
    forged["payload_base64"] = Value::from("eyJma2plIjoiMC4wMSJ9");
    let (script, _) = documented_procedure(dir.path(), &forged, algorithm);
    assert!(!script.status.success());
    assert!(String::from_utf8_lossy(&script.stderr).contains("payload hash"));
    let mut forged = receipt.clone();
    let statement = receipt["checkpoint"]["statement"].as_str().unwrap();
    forged["checkpoint"]["statement"] = Value::from(statement.replace("instance=", "instance=x"));
    let (script, openssl) = documented_procedure(dir.path(), &forged, algorithm);
    assert!(script.status.success());
    let openssl = openssl.unwrap();
    assert!(!openssl.status.success());
    assert!(!String::from_utf8_lossy(&openssl.stdout).contains("Signature Verified Successfully"));
}

#[tokio::test]
async fn a_receipt_verifies_with_openssl_and_the_documented_script_on_sqlite() {
    a_receipt_verifies_with_openssl_and_the_documented_script(Backend::Sqlite, "sm2", "sm3").await;
}

#[tokio::test]
async fn a_receipt_verifies_with_openssl_and_the_documented_script_on_postgres() {
    a_receipt_verifies_with_openssl_and_the_documented_script(Backend::Postgres, "sm2", "sm3").await;
}

#[tokio::test]
async fn an_ed25519_checkpoint_over_a_sha256_chain_verifies_with_openssl_too() {
    a_receipt_verifies_with_openssl_and_the_documented_script(Backend::Sqlite, "ed25519", "sha256").await;
}

/// Two processes ingest different records into one source at once: one chain, no gap, no fork.
#[tokio::test]
async fn two_instances_ingesting_into_one_source_keep_one_chain_without_gaps() {
    let env = archive_env(Backend::Postgres, "sm2", "sm3").await;
    let a = env.write("a.jsonl", &jsonl(0..1500, 0, 0));
    let b = env.write("b.jsonl", &jsonl(1500..3000, 0, 0));
    let first = env.ingest_cmd(&a).spawn().unwrap();
    let second = env.ingest_cmd(&b).spawn().unwrap();
    for child in [first, second] {
        let out = child.wait_with_output().unwrap();
        support::assert_success(&out, "concurrent ingest");
    }
    assert_eq!(sql_i64(&env, "SELECT count(*) FROM raw_records").await, 3000);
    assert_eq!(
        sql_i64(&env, "SELECT count(DISTINCT chain_seq) FROM raw_records").await,
        3000
    );
    assert_eq!(sql_i64(&env, "SELECT max(chain_seq) FROM raw_records").await, 3000);
    let (code, report) = verify_json(&env, &[]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(source_report(&report, NANCHANG)["links_checked"], 3000);
}

/// A witness that cannot be reached: the checkpoint is still signed and stored, the failure is
/// reported and recorded, and the next checkpoint sends both once the witness is back.
#[tokio::test]
async fn a_failing_witness_is_reported_and_catches_up_later() {
    let env = Env::new(Backend::Sqlite).await;
    keygen(&env, "sm2");
    let blocked = env.dir.path().join("blocked");
    std::fs::write(&blocked, "a file where the witness wants a directory").unwrap();
    add_archive(
        &env,
        "\n[archive.checkpoints]\nsigning_key_file = \"keys/checkpoint.pem\"\n\n[[archive.witnesses]]\nname = \"offsite\"\nkind = \"file\"\npath = \"blocked/checkpoints.jsonl\"\n",
    );
    env.ingest(&env.write("in.jsonl", &jsonl(0..3, 0, 0)));
    let out = archive(&env, &["checkpoint"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("offsite") && stderr.contains("checkpoint 1"),
        "{stderr}"
    );
    assert_eq!(sql_i64(&env, "SELECT count(*) FROM archive_checkpoints").await, 1);
    assert_eq!(
        sql_i64(&env, "SELECT failures FROM archive_witnesses WHERE name = 'offsite'").await,
        1
    );

    std::fs::remove_file(&blocked).unwrap();
    support::assert_success(&archive(&env, &["checkpoint"]), "archive checkpoint");
    let copies = std::fs::read_to_string(env.dir.path().join("blocked/checkpoints.jsonl")).unwrap();
    let ids: Vec<i64> = copies
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![1, 2]);
    assert_eq!(
        sql_i64(&env, "SELECT failures FROM archive_witnesses WHERE name = 'offsite'").await,
        0
    );
}

/// The configuration example of docs/archive.md passes the configuration check (with key files
/// where it names them); a wrong key is named with its place.
#[test]
fn the_documented_archive_configuration_passes_the_check() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("keys")).unwrap();
    let key = gateway::crypto::keys::SigningKey::generate(gateway::crypto::keys::SignAlg::Sm2).unwrap();
    std::fs::write(dir.path().join("keys/checkpoint.pem"), key.to_pkcs8_pem().unwrap()).unwrap();
    let old = gateway::crypto::keys::SigningKey::generate(gateway::crypto::keys::SignAlg::Sm2).unwrap();
    std::fs::write(
        dir.path().join("keys/checkpoint-2025.pem.pub"),
        old.public_key().to_pem(),
    )
    .unwrap();
    let block = doc_block("toml", "[archive.checkpoints]");
    let text = format!("[store]\nbackend = \"sqlite\"\npath = \"gw.db\"\n\n{block}");
    let config = gateway::config::Config::parse(&text, "gateway.toml", dir.path()).unwrap();
    assert_eq!(config.archive.witnesses.len(), 2);
    assert_eq!(config.archive.checkpoints.every_minutes, 60);
    let resolved = config.resolve("gateway.toml");
    assert!(resolved.is_ok(), "{:?}", resolved.err().map(|e| e.to_string()));

    std::fs::write(dir.path().join("keys/checkpoint.pem"), "not a key").unwrap();
    let err = gateway::config::Config::parse(&text, "gateway.toml", dir.path())
        .unwrap()
        .resolve("gateway.toml")
        .unwrap_err()
        .to_string();
    assert!(err.contains("archive.checkpoints") && err.contains("sm2"), "{err}");
}

/// `GET /api/raw/{id}/receipt` answers operators the receipt (as the OpenAPI schema says) and
/// refuses department tokens; `gateway run`'s checkpoint job signs on its own.
async fn the_receipt_route_and_the_checkpoint_job(backend: Backend) {
    let keys = tempfile::tempdir().unwrap();
    let key_path = keys.path().join("checkpoint.pem");
    let key = gateway::crypto::keys::SigningKey::generate(gateway::crypto::keys::SignAlg::Sm2).unwrap();
    std::fs::write(&key_path, key.to_pkcs8_pem().unwrap()).unwrap();
    let gw = Gw::start_with(
        backend,
        Options {
            extra: format!(
                "[archive.checkpoints]\nevery_minutes = 60\nsigning_key_file = \"{}\"\n",
                key_path.display()
            ),
            ..Options::default()
        },
    )
    .await;
    gw.push(&[support::nanchang_record(1, 0), support::nanchang_record(2, 0)])
        .await;
    let rows = gw.runtime.store.archive().chain_rows(SOURCE, 0, 10).await.unwrap();
    assert_eq!(rows.len(), 2);
    let raw_id = rows[0].raw_id;

    // The job signs the first checkpoint by itself (none exists yet).
    let job = tokio::spawn(gateway::archive::checkpoint::keep_signing(
        (*gw.runtime).clone(),
        gw.shutdown.clone(),
    ));
    let mut signed = None;
    for _ in 0..600 {
        signed = gw.runtime.store.archive().checkpoint_latest().await.unwrap();
        if signed.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let signed = signed.expect("the checkpoint job signed a checkpoint");
    assert!(signed.statement.contains(&format!("head source={SOURCE} seq=2 hash=")));

    let (status, body) = gw.get(&format!("/api/raw/{raw_id}/receipt"), OPERATOR).await;
    assert_eq!(status, 200, "{body}");
    support::gw::assert_schema(&support::gw::openapi(), "ArchiveReceipt", &body);
    assert_eq!(body["checkpoint"]["id"], signed.id);
    assert_eq!(body["following"].as_array().unwrap().len(), 1);
    let (status, _) = gw.get(&format!("/api/raw/{raw_id}/receipt"), DEPT).await;
    assert_eq!(status, 403);
    let (status, body) = gw.get("/api/raw/999999/receipt", OPERATOR).await;
    assert_eq!(status, 404, "{body}");

    gw.shutdown.trigger();
    let _ = job.await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_receipt_route_and_the_checkpoint_job_on_sqlite() {
    the_receipt_route_and_the_checkpoint_job(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_receipt_route_and_the_checkpoint_job_on_postgres() {
    the_receipt_route_and_the_checkpoint_job(Backend::Postgres).await;
}

/// A `rest` witness: each checkpoint is POSTed as JSON with the configured bearer token.
#[tokio::test]
async fn a_rest_witness_receives_each_checkpoint_with_its_bearer_token() {
    use std::io::{Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut request = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = stream.read(&mut buf).unwrap();
            request.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&request).to_string();
            if let Some(end) = text.find("\r\n\r\n") {
                let length: usize = text
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().to_string())
                    })
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                if request.len() >= end + 4 + length || n == 0 {
                    break;
                }
            }
        }
        stream
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .unwrap();
        String::from_utf8_lossy(&request).to_string()
    });
    let env = Env::new(Backend::Sqlite).await;
    keygen(&env, "sm2");
    env.write("witness-token", "tok-witness-1\n");
    add_archive(
        &env,
        &format!(
            "\n[archive.checkpoints]\nsigning_key_file = \"keys/checkpoint.pem\"\n\n[[archive.witnesses]]\nname = \"audit-office\"\nkind = \"rest\"\nurl = \"http://127.0.0.1:{port}/checkpoints\"\ntoken_file = \"witness-token\"\n"
        ),
    );
    env.ingest(&env.write("in.jsonl", &jsonl(0..2, 0, 0)));
    support::assert_success(&archive(&env, &["checkpoint"]), "archive checkpoint");
    let request = server.join().unwrap();
    assert!(request.starts_with("POST /checkpoints "), "{request}");
    assert!(
        request.contains("authorization: Bearer tok-witness-1")
            || request.contains("Authorization: Bearer tok-witness-1")
    );
    let body: Value = serde_json::from_str(&request[request.find("\r\n\r\n").unwrap() + 4..]).unwrap();
    assert_eq!(body["format"], "ganzhi-archive-checkpoint/1");
    assert_eq!(body["id"], 1);
    assert!(body["statement"]
        .as_str()
        .unwrap()
        .contains("head source=nanchang-amr seq=2"));
    assert_eq!(
        sql_i64(
            &env,
            "SELECT delivered_through FROM archive_witnesses WHERE name = 'audit-office'"
        )
        .await,
        1
    );
}
