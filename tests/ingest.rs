//! End-to-end: `gateway ingest`, `export`, `replay` through the real binary, on SQLite and on
//! PostgreSQL.

mod support;

use serde_json::Value;
use std::collections::HashSet;
use support::{jsonl, path_str, sequences, Backend, Env};

fn count(summary: &Value, key: &str) -> u64 {
    summary[key]
        .as_u64()
        .unwrap_or_else(|| panic!("summary has {key}: {summary}"))
}

async fn mixed_file_is_counted_coded_and_quarantined_with_reasons(backend: Backend) {
    let env = Env::new(backend).await;
    let file = env.write("mixed.jsonl", &jsonl(1..201, 10, 0));
    let s = env.ingest(&file);
    assert_eq!(count(&s, "received"), 200, "{s}");
    assert_eq!(count(&s, "accepted"), 180, "{s}");
    assert_eq!(count(&s, "quarantined"), 20, "{s}");

    let cases = env.export("cases");
    assert_eq!(cases.len(), 180);
    assert_eq!(
        sequences(&cases),
        (1..=180).collect::<Vec<u32>>(),
        "codes numbered 1..=180 without gaps"
    );
    let codes: HashSet<&str> = cases.iter().filter_map(|c| c["unified_code"].as_str()).collect();
    assert_eq!(codes.len(), 180, "codes are unique");
    assert!(
        codes.iter().all(|c| c.starts_with("CF2024360100")),
        "type, year and region in every code"
    );

    let quarantine = env.export("quarantine");
    assert_eq!(quarantine.len(), 20);
    for q in &quarantine {
        let rules: Vec<&str> = q["violations"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|v| v["rule"].as_str())
            .collect();
        assert_eq!(rules, ["uscc.check_char"], "{q}");
        assert_eq!(q["violations"][0]["pointer"], "/target/id_number");
        assert_eq!(q["raw_record"]["xdrzjhm"], "91360102MA35G7K86B", "raw record kept");
    }
}
on_both_backends!(mixed_file_is_counted_coded_and_quarantined_with_reasons);

async fn ingesting_the_same_file_again_changes_nothing(backend: Backend) {
    let env = Env::new(backend).await;
    let file = env.write("mixed.jsonl", &jsonl(1..101, 10, 0));
    env.ingest(&file);
    let before = env.export("cases");
    let s = env.ingest(&file);
    assert_eq!(count(&s, "accepted"), 0, "{s}");
    assert_eq!(count(&s, "updated"), 0, "{s}");
    assert_eq!(count(&s, "unchanged"), 100, "{s}");
    assert_eq!(count(&s, "quarantined"), 0, "{s}");
    assert_eq!(env.export("cases").len(), before.len());
    assert_eq!(env.export("quarantine").len(), 10, "no duplicate quarantine entries");
}
on_both_backends!(ingesting_the_same_file_again_changes_nothing);

async fn changed_records_become_new_versions_with_the_same_codes(backend: Backend) {
    let env = Env::new(backend).await;
    env.ingest(&env.write("v1.jsonl", &jsonl(1..51, 0, 0)));
    let codes_v1: Vec<(String, String)> = env
        .export("cases")
        .iter()
        .map(|c| {
            (
                c["key"]["case_number"].as_str().unwrap().to_string(),
                c["unified_code"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    // Records 1..=20 change (another fine amount); 21..=50 are re-sent unchanged.
    let mut text = jsonl(1..21, 0, 7);
    text.push_str(&jsonl(21..51, 0, 0));
    let s = env.ingest(&env.write("v2.jsonl", &text));
    assert_eq!(
        (count(&s, "accepted"), count(&s, "updated"), count(&s, "unchanged")),
        (0, 20, 30),
        "{s}"
    );
    let cases = env.export("cases");
    let codes_v2: Vec<(String, String)> = cases
        .iter()
        .map(|c| {
            (
                c["key"]["case_number"].as_str().unwrap().to_string(),
                c["unified_code"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(codes_v1, codes_v2, "codes never change");
    let versions: Vec<i64> = cases.iter().map(|c| c["version"].as_i64().unwrap()).collect();
    assert_eq!(versions.iter().filter(|v| **v == 2).count(), 20);
    assert_eq!(cases[0]["record"]["penalty"]["fine_amount"].as_f64(), Some(1700.0));
}
on_both_backends!(changed_records_become_new_versions_with_the_same_codes);

async fn delete_withdraws_and_a_later_insert_reinstates_the_same_code(backend: Backend) {
    let env = Env::new(backend).await;
    let record = support::nanchang_record(1, 0);
    env.ingest(&env.write("a.jsonl", &format!("{record}\n")));
    let code = env.export("cases")[0]["unified_code"].as_str().unwrap().to_string();

    let delete = serde_json::json!({"ajbh": record["ajbh"], "jgdm": support::AGENCY_CODE, "cd_operation": "d"});
    let s = env.ingest(&env.write("d.jsonl", &format!("{delete}\n")));
    assert_eq!(count(&s, "updated"), 1, "{s}");
    let case = &env.export("cases")[0];
    assert_eq!(case["unified_code"].as_str(), Some(code.as_str()));
    assert_eq!(case["withdrawn"], true);

    let again = support::nanchang_record(1, 3);
    let s = env.ingest(&env.write("b.jsonl", &format!("{again}\n")));
    assert_eq!(count(&s, "updated"), 1, "{s}");
    let case = &env.export("cases")[0];
    assert_eq!(
        case["unified_code"].as_str(),
        Some(code.as_str()),
        "reinstated with the same code"
    );
    assert_eq!(case["withdrawn"], false);
    assert_eq!(case["version"], 3);
}
on_both_backends!(delete_withdraws_and_a_later_insert_reinstates_the_same_code);

async fn replay_after_mapping_fix_accepts_record(backend: Backend) {
    // A copy of the Nanchang mapping whose penalty-kind table lacks 警告: records using it fail.
    let tmp = tempfile::tempdir().unwrap();
    let dst = support::copy_mapping("nanchang-amr-penalty", tmp.path());
    let table = dst.join("penalty_kinds.csv");
    let original = std::fs::read_to_string(&table).unwrap();
    let broken: String = original
        .lines()
        .filter(|l| !l.starts_with("警告,"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(broken, original, "the table maps 警告");
    std::fs::write(&table, broken).unwrap();

    let env = Env::with_sources(backend, &support::nanchang_source(&dst.join("mapping.toml"))).await;
    let s = env.ingest(&env.write("in.jsonl", &jsonl(1..4, 0, 0)));
    assert_eq!(count(&s, "quarantined"), 3, "{s}");
    let q = env.export("quarantine");
    assert!(
        q.iter().all(|e| e["violations"][0]["rule"] == "mapping.unmapped_code"),
        "{q:?}"
    );

    // The fixed mapping enters as version 2 and is activated (the store, not the file, is what
    // runs: see tests/lifecycle.rs).
    std::fs::write(&table, original).unwrap();
    let mapping = dst.join("mapping.toml");
    let text = std::fs::read_to_string(&mapping).unwrap();
    std::fs::write(&mapping, text.replacen("version = 1\n", "version = 2\n", 1)).unwrap();
    for args in [
        vec![
            "mappings",
            "upload",
            "--config",
            path_str(&env.config),
            "--source",
            "nanchang-amr",
            path_str(&dst),
        ],
        vec![
            "mappings",
            "activate",
            "--config",
            path_str(&env.config),
            "--source",
            "nanchang-amr",
            "--version",
            "2",
        ],
    ] {
        support::assert_success(&env.cmd(&args).output().unwrap(), args[1]);
    }
    let s = env.replay_source("nanchang-amr");
    assert_eq!((count(&s, "received"), count(&s, "accepted")), (3, 3), "{s}");
    assert_eq!(env.export("cases").len(), 3);
    let q = env.export("quarantine");
    assert!(q.iter().all(|e| e["status"] == "replayed"), "{q:?}");
    let s = env.ingest(&env.write("in2.jsonl", &jsonl(1..4, 0, 0)));
    assert_eq!(count(&s, "unchanged"), 3, "re-sent after the replay: {s}");
}
on_both_backends!(replay_after_mapping_fix_accepts_record);

async fn replaying_unreadable_lines_keeps_them_quarantined_with_reasons_in_both_languages(backend: Backend) {
    let env = Env::new(backend).await;
    let s = env.ingest(&env.write("bad.jsonl", "{\"ajbh\": \"broken\"\n[1, 2]\n"));
    assert_eq!(count(&s, "quarantined"), 2, "{s}");
    let s = env.replay_source("nanchang-amr");
    assert_eq!((count(&s, "received"), count(&s, "quarantined")), (2, 2), "{s}");
    let mut q = env.export("quarantine");
    q.sort_by_key(|e| e["record_key"].as_str().map(str::to_owned));
    assert_eq!(q.len(), 2, "{q:?}");
    let expected = [("JSON 解析失败", "invalid JSON"), ("不是JSON对象", "not a JSON object")];
    for (entry, (zh, en)) in q.iter().zip(expected) {
        assert_eq!(entry["status"], "open", "{entry}");
        let v = &entry["violations"][0];
        assert_eq!(v["rule"], "input.unreadable", "{entry}");
        assert!(v["message_zh"].as_str().is_some_and(|m| m.contains(zh)), "{entry}");
        assert!(v["message_en"].as_str().is_some_and(|m| m.contains(en)), "{entry}");
    }
}
on_both_backends!(replaying_unreadable_lines_keeps_them_quarantined_with_reasons_in_both_languages);

/// Two gateway processes commit versions 1 and 2 of 1,000 cases into one PostgreSQL store at
/// the same time, each in random order, with the source's update time (`cd_time`) on each: every
/// case's head is version 2; every version 1 is either the version before it (it came first) or
/// kept in the lineage as stale (it came after); only versions are queued for delivery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_committing_versions_in_random_order_keep_the_newest_at_the_source() {
    const CASES: usize = 1000;
    let env = Env::new(Backend::Postgres).await;
    let mut records: Vec<String> = Vec::new();
    for n in 1..=CASES {
        for v in 1..=2u32 {
            let mut r = support::nanchang_record(n, v);
            r["cd_time"] = serde_json::json!(format!("2024-03-0{v} 10:00:00"));
            records.push(r.to_string());
        }
    }
    // A fixed shuffle (xorshift), dealt alternately to the two processes.
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    for i in (1..records.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        records.swap(i, (state % (i as u64 + 1)) as usize);
    }
    let halves: Vec<String> = (0..2)
        .map(|p| records.iter().skip(p).step_by(2).map(|r| format!("{r}\n")).collect())
        .collect();
    let files: Vec<_> = halves
        .iter()
        .enumerate()
        .map(|(i, text)| env.write(&format!("half{i}.jsonl"), text))
        .collect();
    let children: Vec<_> = files
        .iter()
        .map(|f| {
            env.ingest_cmd(f)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn ingest")
        })
        .collect();
    let mut stale_reported = 0;
    for child in children {
        let out = child.wait_with_output().unwrap();
        support::assert_success(&out, "concurrent ingest");
        let summary = support::summary_line(&out);
        assert_eq!(count(&summary, "quarantined"), 0, "{summary}");
        stale_reported += count(&summary, "stale");
    }

    let cases = env.export("cases");
    assert_eq!(cases.len(), CASES);
    for c in &cases {
        assert_eq!(
            c["record"]["source_updated_at"], "2024-03-02T10:00:00+08:00",
            "the head of {} is version 2",
            c["unified_code"]
        );
    }
    let db = env.pg.as_ref().expect("postgres");
    let client = support::common::pg_client(&db.url).await.unwrap();
    let one = |sql: &'static str| {
        let client = &client;
        async move { client.query_one(sql, &[]).await.unwrap().get::<_, i64>(0) }
    };
    let versions = one("SELECT count(*) FROM case_versions").await;
    let stale = one("SELECT count(*) FROM stale_versions").await;
    assert_eq!(versions + stale, 2 * CASES as i64, "every record is a version or stale");
    assert_eq!(stale as u64, stale_reported, "the summaries count every stale record");
    assert!(
        stale > 0 && versions > CASES as i64,
        "both orders occurred ({versions} versions, {stale} stale)"
    );
    assert_eq!(
        one("SELECT count(*) FROM stale_versions WHERE source_updated_at <> '2024-03-01T02:00:00Z'").await,
        0,
        "only version 1 is ever stale"
    );
    assert_eq!(
        one("SELECT count(*) FROM case_versions v JOIN cases c ON c.id = v.case_id
             WHERE v.version < c.current_version AND c.source_updated_at <> '2024-03-02T02:00:00Z'")
        .await,
        0
    );
    assert_eq!(
        one("SELECT count(*) FROM outbox").await,
        versions,
        "one delivery per version, none for stale"
    );
    assert_eq!(
        one("SELECT count(*) FROM cases c WHERE NOT EXISTS
             (SELECT 1 FROM outbox o WHERE o.case_id = c.id AND o.version = c.current_version)")
        .await,
        0,
        "every head is queued for delivery"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_ingests_into_postgres_allocate_unique_gapless_codes() {
    let env = Env::new(Backend::Postgres).await;
    let files: Vec<_> = (0..4)
        .map(|i| env.write(&format!("part{i}.jsonl"), &jsonl(i * 1000 + 1..i * 1000 + 1001, 0, 0)))
        .collect();
    // Overlap: every file also carries 50 records of the next file's range.
    let children: Vec<_> = files
        .iter()
        .map(|f| {
            env.ingest_cmd(f)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn ingest")
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        support::assert_success(&out, "concurrent ingest");
    }
    let cases = env.export("cases");
    assert_eq!(cases.len(), 4000);
    assert_eq!(
        sequences(&cases),
        (1..=4000).collect::<Vec<u32>>(),
        "no duplicate or skipped code"
    );
}

async fn kill_during_large_ingest_then_rerun_commits_each_record_once(backend: Backend) {
    let env = Env::new(backend).await;
    let total = 20_000;
    let file = env.write("large.jsonl", &jsonl(1..total + 1, 0, 0));
    let mut child = env
        .ingest_cmd(&file)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn ingest");
    // Let it commit some batches, then kill it hard.
    support::wait_until_committed(&env, 1000).await;
    child.kill().expect("kill -9");
    let _ = child.wait();
    let partial = env.export("cases").len();
    assert!(partial < total, "killed before the end ({partial} committed)");

    let s = env.ingest(&file);
    assert_eq!(
        count(&s, "accepted") as usize + count(&s, "unchanged") as usize,
        total,
        "{s}"
    );
    let cases = env.export("cases");
    assert_eq!(cases.len(), total, "every record committed");
    assert_eq!(
        sequences(&cases),
        (1..=total as u32).collect::<Vec<u32>>(),
        "exactly once, no gaps"
    );
    assert!(cases.iter().all(|c| c["version"] == 1), "no record applied twice");
}
on_both_backends!(kill_during_large_ingest_then_rerun_commits_each_record_once);

async fn export_csv_has_header_and_one_row_per_case(backend: Backend) {
    let env = Env::new(backend).await;
    env.ingest(&env.write("a.jsonl", &jsonl(1..6, 0, 0)));
    let out = env
        .cmd(&["export", "cases", "--config", path_str(&env.config), "--format", "csv"])
        .output()
        .unwrap();
    support::assert_success(&out, "export csv");
    let mut reader = csv::Reader::from_reader(out.stdout.as_slice());
    assert_eq!(reader.headers().unwrap().get(0), Some("unified_code"));
    assert_eq!(reader.records().count(), 5);
}
on_both_backends!(export_csv_has_header_and_one_row_per_case);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_the_database_refuses_is_isolated_and_quarantined_while_its_batch_commits() {
    // A site rule in the database (a trigger a DBA added) refuses one case; the other records of
    // its batch commit, and the refused one is quarantined with the database's reason.
    let env = Env::new(Backend::Postgres).await;
    support::assert_success(
        &env.cmd(&["migrate", "--config", path_str(&env.config)])
            .output()
            .unwrap(),
        "migrate",
    );
    let url = &env.pg.as_ref().expect("postgres test database").url;
    support::common::admin_client(url)
        .await
        .batch_execute(
            "CREATE FUNCTION refuse_case() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
                 IF NEW.case_number = 'NCSJ-CF-2024-000011' THEN
                     RAISE EXCEPTION 'site rule refuses case %', NEW.case_number;
                 END IF;
                 RETURN NEW;
             END $$;
             CREATE TRIGGER refuse_case BEFORE INSERT ON cases FOR EACH ROW EXECUTE FUNCTION refuse_case();",
        )
        .await
        .unwrap();
    let s = env.ingest(&env.write("batch.jsonl", &jsonl(1..21, 0, 0)));
    assert_eq!((count(&s, "accepted"), count(&s, "quarantined")), (19, 1), "{s}");
    let q = env.export("quarantine");
    assert_eq!(q.len(), 1);
    assert_eq!(q[0]["violations"][0]["rule"], "store.write_failed", "{}", q[0]);
    assert!(
        q[0]["violations"][0]["message_en"]
            .as_str()
            .is_some_and(|m| m.contains("site rule refuses case")),
        "{}",
        q[0]
    );
    assert_eq!(q[0]["record_key"], "NCSJ-CF-2024-000011");
}

async fn nul_characters_are_quarantined_with_their_field_and_the_batch_commits(backend: Backend) {
    // Text columns (here and in every downstream system) cannot hold U+0000.
    let env = Env::new(backend).await;
    let mut text = jsonl(1..6, 0, 0);
    let mut in_facts = support::nanchang_record(6, 0);
    in_facts["wfss"] = serde_json::json!("含有\u{0}字符的违法事实");
    let mut in_key = support::nanchang_record(7, 0);
    in_key["ajbh"] = serde_json::json!("NCSJ-CF-2024-\u{0}07");
    text.push_str(&format!("{in_facts}\n{in_key}\n"));
    text.push_str(&jsonl(8..11, 0, 0));
    let s = env.ingest(&env.write("nul.jsonl", &text));
    assert_eq!((count(&s, "accepted"), count(&s, "quarantined")), (8, 2), "{s}");
    let q = env.export("quarantine");
    assert_eq!(q.len(), 2, "{q:?}");
    let facts = q
        .iter()
        .find(|e| e["record_key"] == "NCSJ-CF-2024-000006")
        .expect("entry of record 6");
    assert_eq!(facts["violations"][0]["rule"], "text.nul_character", "{facts}");
    assert!(
        facts["violations"][0]["pointer"]
            .as_str()
            .is_some_and(|p| !p.is_empty()),
        "{facts}"
    );
    let key = q
        .iter()
        .find(|e| e["record_key"] == "NCSJ-CF-2024-\u{fffd}07")
        .expect("entry of record 7");
    assert!(key["violations"].as_array().is_some_and(|v| !v.is_empty()), "{key}");
}

on_both_backends!(nul_characters_are_quarantined_with_their_field_and_the_batch_commits);

async fn run_once_ingests_drop_folder_files_and_moves_them(backend: Backend) {
    let mapping = support::repo().join("mappings/nanchang-amr-penalty/mapping.toml");
    let sources = format!(
        "[[sources]]\nid = \"nanchang-amr\"\nkind = \"directory\"\ndirectory = \"inbox\"\nmapping = \"{}\"\nformat = \"jsonl\"\nrecord_key = \"ajbh\"\n",
        mapping.display()
    );
    let env = Env::with_sources(backend, &sources).await;
    let inbox = env.dir.path().join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    std::fs::write(inbox.join("a.jsonl"), jsonl(1..6, 0, 0)).unwrap();
    std::fs::write(inbox.join("b.jsonl.part"), jsonl(6..9, 0, 0)).unwrap();
    let out = env
        .cmd(&["run", "--config", path_str(&env.config), "--once"])
        .output()
        .unwrap();
    support::assert_success(&out, "run --once");
    assert_eq!(env.export("cases").len(), 5);
    // What the run took in, per source, at the default log level (a JSON line last).
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary: serde_json::Value =
        serde_json::from_str(stdout.lines().last().unwrap_or_default()).expect("JSON summary line");
    assert_eq!(summary["sources"][0]["accepted"], 5, "{stdout}");
    assert!(
        inbox.join("processed/a.jsonl").is_file(),
        "committed file moved to processed/"
    );
    assert!(!inbox.join("a.jsonl").exists());
    assert!(
        inbox.join("b.jsonl.part").is_file(),
        "a file still being written is left alone"
    );
}
on_both_backends!(run_once_ingests_drop_folder_files_and_moves_them);

async fn sigterm_during_ingest_commits_what_was_read_and_stops(backend: Backend) {
    let env = Env::new(backend).await;
    let total = 30_000;
    let file = env.write("large.jsonl", &jsonl(1..total + 1, 0, 0));
    let child = env
        .ingest_cmd(&file)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn ingest");
    support::wait_until_committed(&env, 500).await;
    let term = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = support::summary_line(&out);
    let committed = env.export("cases").len() as u64;
    assert!(committed < total as u64, "stopped before the end");
    assert_eq!(
        count(&s, "accepted"),
        committed,
        "everything read was committed and counted: {s}"
    );
    assert_eq!(
        count(&s, "received"),
        committed,
        "nothing read was left uncommitted: {s}"
    );
}
on_both_backends!(sigterm_during_ingest_commits_what_was_read_and_stops);
