//! End-to-end tests of the operator API and HTTP push: a real gateway server started in-process
//! on 127.0.0.1:0 over a real store (SQLite file, or a fresh PostgreSQL database), called over
//! HTTP. They push mixed records, page and filter the quarantine, replay after a mapping fix,
//! look cases up, re-drive dead deliveries, read the metrics and check that
//! `gateway/openapi.yaml` and the router agree. Who may call what, rate limits and secrets in
//! logs are proved in `security.rs`.

mod support;

use chrono::{SubsecRound, Utc};
use gateway::server;
use gateway::shutdown::Shutdown;
use gateway::store::{DeliveryStatus, Settlement};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use support::gw::*;
use support::{defective_record, nanchang_record, repo, Backend, AGENCY_CODE};

async fn push_answers_each_record_in_order_and_commits_before_answering(backend: Backend) {
    let gw = Gw::start(backend).await;
    let doc = openapi();
    let answer = gw
        .push(&[nanchang_record(10, 0), defective_record(11), nanchang_record(12, 0)])
        .await;
    assert_schema(&doc, "PushAnswer", &answer);
    let results = answer["results"].as_array().expect("results");
    assert_eq!(results.len(), 3);
    assert_eq!(results[0]["result"], "accepted");
    assert_eq!(results[0]["record_key"], "NCSJ-CF-2024-000010");
    assert_eq!(results[1]["result"], "quarantined");
    assert_eq!(results[2]["result"], "accepted");
    let code = results[0]["code"].as_str().expect("code");
    assert!(
        normalizer::standards::case_code::CaseCode::parse(code).is_ok(),
        "{code}"
    );
    let rules: Vec<&str> = results[1]["violations"]
        .as_array()
        .expect("violations")
        .iter()
        .filter_map(|v| v["rule"].as_str())
        .collect();
    assert!(rules.contains(&"uscc.check_char"), "{rules:?}");
    assert_eq!(answer["summary"]["accepted"], 2);
    assert_eq!(answer["summary"]["quarantined"], 1);
    // Committed: the case and the entry are there.
    let (status, case) = gw.get(&format!("/api/cases/{code}"), OPERATOR).await;
    assert_eq!(status, StatusCode::OK);
    assert_schema(&doc, "CaseView", &case);
    let qid = results[1]["quarantine_id"].as_i64().expect("id");
    let (status, entry) = gw.get(&format!("/api/quarantine/{qid}"), DEPT).await;
    assert_eq!(status, StatusCode::OK, "the department reads its own source's entry");
    assert_schema(&doc, "QuarantineDetail", &entry);
    // Re-sent: unchanged, same code; a new version when the content changes.
    let again = gw.push(&[nanchang_record(10, 0), nanchang_record(12, 3)]).await;
    assert_eq!(again["results"][0]["result"], "unchanged");
    assert_eq!(again["results"][0]["code"], code);
    assert_eq!(again["results"][1]["result"], "updated");
    assert_eq!(again["results"][1]["version"], 2);
    // JSON lines, and a GBK XML body.
    let lines = format!("{}\n{{not json\n", nanchang_record(13, 0));
    let (status, answer) = gw
        .push_raw(SOURCE, DEPT, "application/x-ndjson", lines.into_bytes())
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["results"][0]["result"], "accepted");
    assert_eq!(answer["results"][1]["result"], "quarantined");
    assert_eq!(answer["results"][1]["violations"][0]["rule"], "input.unreadable");
    let xml = xml_cases(&[nanchang_record(14, 0)]);
    let gbk = encoding_rs::GBK.encode(&xml).0.into_owned();
    let (status, answer) = gw.push_raw(SOURCE, DEPT, "application/xml", gbk).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["results"][0]["result"], "accepted", "{answer}");
    // Too large, malformed, wrong type, not a push source, unknown source.
    let big = vec![b' '; 30_000];
    let (status, answer) = gw.push_raw(SOURCE, DEPT, "application/json", big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    assert_eq!(answer["error"]["code"], "payload_too_large");
    let (status, answer) = gw.push_raw(SOURCE, DEPT, "application/json", b"[{".to_vec()).await;
    assert_eq!(
        (status, answer["error"]["code"].clone()),
        (StatusCode::BAD_REQUEST, json!("malformed_body"))
    );
    let (status, _) = gw.push_raw(SOURCE, DEPT, "image/png", b"x".to_vec()).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (status, answer) = gw
        .post("/api/ingest/backfill", ADMIN, json!([nanchang_record(1, 0)]))
        .await;
    assert_eq!(
        (status, answer["error"]["code"].clone()),
        (StatusCode::CONFLICT, json!("not_a_push_source"))
    );
    let (status, _) = gw.post("/api/ingest/nope", ADMIN, json!([nanchang_record(1, 0)])).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // The push is audited with the token's name.
    let audit = gw.runtime.store.audit_log(50).await.expect("audit log");
    assert!(audit.iter().any(|a| a.action == "ingest.push" && a.actor == "amr-push"));
    gw.stop().await;
}
on_both_backends!(push_answers_each_record_in_order_and_commits_before_answering);

/// A record of `agency` (region `region`) with case number `n`.
fn record_of_agency(n: usize, variant: u32, agency: &str, region: &str) -> Value {
    let mut r = nanchang_record(n, variant);
    r["jgdm"] = json!(agency);
    r["xzqh"] = json!(region);
    r
}

async fn a_department_cannot_write_or_overwrite_another_departments_cases(backend: Backend) {
    let gw = Gw::start(backend).await;
    // The other department writes its own case, by agency and by region.
    let (status, own) = gw
        .post(
            &format!("/api/ingest/{OTHER}"),
            DEPT_OTHER,
            json!([
                record_of_agency(300, 0, JIUJIANG_AGENCY, "360400"),
                record_of_agency(301, 0, JIUJIANG_OTHER_AGENCY, "360400")
            ]),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{own}");
    assert_eq!(own["results"][0]["result"], "accepted", "{own}");
    assert_eq!(
        own["results"][1]["result"], "accepted",
        "a region prefix admits the region's agencies: {own}"
    );
    let code = own["results"][0]["code"].as_str().expect("code").to_string();
    // This department pushes a changed version of that case (same business key) to its own source.
    let answer = gw.push(&[record_of_agency(300, 7, JIUJIANG_AGENCY, "360400")]).await;
    let result = &answer["results"][0];
    assert_eq!(result["result"], "quarantined", "{answer}");
    let violation = &result["violations"][0];
    assert_eq!(violation["rule"], "source.agency_not_allowed", "{answer}");
    assert_eq!(violation["value"], JIUJIANG_AGENCY);
    let en = violation["message_en"].as_str().unwrap_or_default();
    assert!(
        en.contains(SOURCE)
            && en.contains(&format!("南昌市市场监督管理局 ({JIUJIANG_AGENCY})"))
            && en.contains(AGENCY_CODE),
        "the message names the source, the agency by name and code, and what the source may write for: {en}"
    );
    assert!(
        violation["message_zh"].as_str().is_some_and(|m| m.contains("无权")),
        "{violation}"
    );
    // The other department's case is unchanged: one version, its own record.
    let (status, case) = gw.get(&format!("/api/cases/{code}"), OPERATOR).await;
    assert_eq!(status, StatusCode::OK, "{case}");
    let versions = case["versions"].as_array().expect("versions");
    assert_eq!(versions.len(), 1, "no version was added: {case}");
    let (_, entries) = gw
        .get(
            &format!("/api/quarantine?source={SOURCE}&rule=source.agency_not_allowed"),
            OPERATOR,
        )
        .await;
    assert_eq!(entries["items"].as_array().map(Vec::len), Some(1), "{entries}");

    // A source that may write for the agency updates a case another source wrote: committed,
    // audited as a change of source, and the lineage names each version's source.
    let first = gw.push(&[nanchang_record(310, 0)]).await;
    let code = first["results"][0]["code"].as_str().expect("code").to_string();
    let file = gw.dir.path().join("update.jsonl");
    std::fs::write(&file, format!("{}\n", nanchang_record(310, 3))).expect("write");
    let job = gateway::intake::files::IngestJob {
        preparer: gw.runtime.preparers.get("backfill").expect("preparer"),
        files: vec![file],
        format: gateway::prepare::InputFormat::JsonLines,
        by_extension: false,
        xml_records: None,
        settings: gateway::prepare::ReadSettings::default(),
    };
    let batching = gateway::commit::Batching::from(&gw.runtime.resolved.config);
    let summary = gateway::intake::files::ingest_files(
        &gw.runtime.committer("files"),
        job,
        &batching,
        Shutdown::default(),
        None,
    )
    .await
    .expect("ingest");
    assert_eq!(summary.updated, 1, "{summary:?}");
    let (_, case) = gw.get(&format!("/api/cases/{code}"), OPERATOR).await;
    assert_schema(&openapi(), "CaseView", &case);
    let sources: Vec<&str> = case["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .map(|v| v["source_id"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(sources, [SOURCE, "backfill"], "{case}");
    let audit = gw.runtime.store.audit_log(100).await.expect("audit");
    let change = audit
        .iter()
        .find(|a| a.action == "case.source_changed" && a.subject == format!("case:{code}"))
        .unwrap_or_else(|| panic!("no case.source_changed entry in {audit:?}"));
    assert_eq!(change.detail["from_source"], SOURCE);
    assert_eq!(change.detail["to_source"], "backfill");
    assert_eq!(change.detail["version"], 2);
    gw.stop().await;
}
on_both_backends!(a_department_cannot_write_or_overwrite_another_departments_cases);

fn xml_cases(records: &[Value]) -> String {
    let mut s = String::from("<?xml version=\"1.0\" encoding=\"GBK\"?>\n<cases>");
    for r in records {
        s.push_str("<case>");
        for (k, v) in r.as_object().expect("object") {
            match v {
                Value::String(text) => s.push_str(&format!("<{k}>{text}</{k}>")),
                Value::Array(items) => {
                    for item in items {
                        s.push_str(&format!("<{k}>"));
                        for (ik, iv) in item.as_object().expect("object") {
                            s.push_str(&format!("<{ik}>{}</{ik}>", iv.as_str().unwrap_or_default()));
                        }
                        s.push_str(&format!("</{k}>"));
                    }
                }
                other => s.push_str(&format!("<{k}>{other}</{k}>")),
            }
        }
        s.push_str("</case>");
    }
    s.push_str("</cases>");
    s
}

async fn quarantine_pages_filters_shows_the_raw_payload_replays_after_a_fix_and_ignores_with_a_reason(
    backend: Backend,
) {
    let gw = Gw::start(backend).await;
    let doc = openapi();
    let mut records: Vec<Value> = (20..25).map(defective_record).collect();
    records.extend((30..33).map(unknown_procedure_record));
    let answer = gw.push(&records).await;
    assert_eq!(answer["summary"]["quarantined"], 8, "{answer}");
    // Paging by id, newest first.
    let mut seen = Vec::new();
    let mut path = "/api/quarantine?limit=3".to_string();
    loop {
        let (status, page) = gw.get(&path, OPERATOR).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert_schema(&doc, "QuarantineList", &page);
        seen.extend(
            page["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(|e| e["id"].as_i64().expect("id")),
        );
        match page["next_before_id"].as_i64() {
            Some(next) => path = format!("/api/quarantine?limit=3&before_id={next}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 8, "{seen:?}");
    assert!(
        seen.windows(2).all(|w| w[0] > w[1]),
        "newest first, no repeats: {seen:?}"
    );
    // Filters.
    let count = |v: &Value| v["items"].as_array().map_or(0, Vec::len);
    let (_, by_rule) = gw.get("/api/quarantine?rule=uscc.check_char", OPERATOR).await;
    assert_eq!(count(&by_rule), 5);
    let (_, by_source) = gw
        .get(&format!("/api/quarantine?source={SOURCE}&status=open"), OWNER)
        .await;
    assert_eq!(count(&by_source), 8);
    let (_, none) = gw.get(&format!("/api/quarantine?source={OTHER}"), OPERATOR).await;
    assert_eq!(count(&none), 0);
    let (_, since) = gw
        .get("/api/quarantine?since=2000-01-01&until=2999-01-01T00:00:00Z", OPERATOR)
        .await;
    assert_eq!(count(&since), 8);
    let (_, future) = gw.get("/api/quarantine?since=2999-01-01", OPERATOR).await;
    assert_eq!(count(&future), 0);
    let (status, bad) = gw.get("/api/quarantine?status=lost", OPERATOR).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(bad["error"]["message_en"].as_str().expect("message").contains("lost"));
    let (status, _) = gw.get("/api/quarantine?limit=0", OPERATOR).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // One entry: every violation and the raw payload, pretty-printed.
    let first = answer["results"][0]["quarantine_id"].as_i64().expect("id");
    let (_, detail) = gw.get(&format!("/api/quarantine/{first}"), OPERATOR).await;
    assert_eq!(detail["raw"]["payload"]["ajbh"], "NCSJ-CF-2024-000020");
    let pretty = detail["raw"]["payload_pretty"].as_str().expect("pretty");
    assert!(pretty.contains("\n  \"ajbh\": \"NCSJ-CF-2024-000020\""), "{pretty}");
    let (_, raw) = gw
        .get(&format!("/api/raw/{}", detail["entry"]["raw_id"]), OPERATOR)
        .await;
    assert_schema(&doc, "RawRecord", &raw);
    // Replay after the mapping learns 快速程序: one entry, then the rest by rule.
    let unknown: Vec<i64> = answer["results"].as_array().expect("results")[5..]
        .iter()
        .map(|r| r["quarantine_id"].as_i64().expect("id"))
        .collect();
    let (_, still) = gw
        .post(&format!("/api/quarantine/{}/replay", unknown[0]), OPERATOR, json!({}))
        .await;
    assert_eq!(still["summary"]["quarantined"], 1, "without the fix it stays: {still}");
    assert_eq!(still["entry"]["status"], "open");
    assert!(gw
        .runtime
        .preparers
        .replace_mapping(SOURCE, Arc::new(fixed_mapping(gw.dir.path()))));
    let (status, replayed) = gw
        .post(&format!("/api/quarantine/{}/replay", unknown[0]), OPERATOR, json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{replayed}");
    assert_schema(&doc, "ReplayAnswer", &replayed);
    assert_eq!(replayed["summary"]["accepted"], 1, "{replayed}");
    assert_eq!(replayed["entry"]["status"], "replayed");
    let (status, again) = gw
        .post(&format!("/api/quarantine/{}/replay", unknown[0]), OPERATOR, json!({}))
        .await;
    assert_eq!(
        (status, again["error"]["code"].clone()),
        (StatusCode::CONFLICT, json!("not_open"))
    );
    let rule = still["entry"]["violations"][0]["rule"]
        .as_str()
        .expect("rule")
        .to_string();
    let (status, bulk) = gw
        .post("/api/quarantine/replay", OPERATOR, json!({ "rule": rule }))
        .await;
    assert_eq!(status, StatusCode::OK, "{bulk}");
    assert_eq!(bulk["summary"]["accepted"], 2, "{bulk}");
    let (status, _) = gw.post("/api/quarantine/replay", OPERATOR, json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a bulk replay needs a filter");
    // Ignore: the reason is required; then the entry is ignored, and only once.
    let (status, e) = gw
        .post(&format!("/api/quarantine/{first}/ignore"), OPERATOR, json!({}))
        .await;
    assert_eq!(
        (status, e["error"]["code"].clone()),
        (StatusCode::BAD_REQUEST, json!("reason_required"))
    );
    let (status, ignored) = gw
        .post(
            &format!("/api/quarantine/{first}/ignore"),
            OPERATOR,
            json!({ "reason": "部门已线下更正" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{ignored}");
    assert_schema(&doc, "EntryAnswer", &ignored);
    assert_eq!(ignored["entry"]["status"], "ignored");
    assert_eq!(ignored["entry"]["note"], "部门已线下更正");
    let (status, _) = gw
        .post(
            &format!("/api/quarantine/{first}/ignore"),
            OPERATOR,
            json!({ "reason": "again" }),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = gw.get("/api/quarantine/999999", OPERATOR).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Audited with the token's name.
    let audit = gw.runtime.store.audit_log(100).await.expect("audit");
    for action in ["quarantine.replay", "quarantine.ignore"] {
        assert!(
            audit.iter().any(|a| a.action == action && a.actor == "ops-zhang"),
            "{action} audited: {audit:?}"
        );
    }
    gw.stop().await;
}
on_both_backends!(quarantine_pages_filters_shows_the_raw_payload_replays_after_a_fix_and_ignores_with_a_reason);

/// Quarantine v1, accept v2 of the same case (v1's entry becomes superseded), fix the mapping,
/// replay v1: v1 arrived before v2 and neither carries a source time, so it stays in the
/// quarantine (`replay.superseded`) and the case keeps v2.
async fn replaying_an_entry_older_than_the_case_cannot_regress_it(backend: Backend) {
    let gw = Gw::start(backend).await;
    let v1 = gw.push(&[unknown_procedure_record(400)]).await;
    let qid = v1["results"][0]["quarantine_id"].as_i64().expect("quarantined");
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let mut newer = nanchang_record(400, 2);
    newer["wfss"] = json!("第二版：已更正违法事实");
    let v2 = gw.push(&[newer]).await;
    assert_eq!(v2["results"][0]["result"], "accepted", "{v2}");
    let code = v2["results"][0]["code"].as_str().expect("code").to_string();
    // v2 has the same record key (ajbh): the entry of v1 is superseded, and says by what.
    let (_, view) = gw.get(&format!("/api/quarantine/{qid}"), OPERATOR).await;
    assert_eq!(view["entry"]["status"], "superseded", "{view}");
    assert!(
        view["entry"]["note"].as_str().is_some_and(|n| n.contains(&code)),
        "{view}"
    );
    assert!(gw
        .runtime
        .preparers
        .replace_mapping(SOURCE, Arc::new(fixed_mapping(gw.dir.path()))));
    let (status, replayed) = gw
        .post(&format!("/api/quarantine/{qid}/replay"), OPERATOR, json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{replayed}");
    assert_eq!(replayed["summary"]["quarantined"], 1, "{replayed}");
    assert_eq!(replayed["entry"]["status"], "superseded");
    let violation = &replayed["entry"]["violations"][0];
    assert_eq!(violation["rule"], "replay.superseded", "{replayed}");
    assert!(
        violation["message_en"].as_str().is_some_and(|m| m.contains(&code)),
        "{violation}"
    );
    let (_, case) = gw.get(&format!("/api/cases/{code}"), OPERATOR).await;
    let versions = case["versions"].as_array().expect("versions");
    assert_eq!(versions.len(), 1, "the older record did not become the head: {case}");
    assert_eq!(
        versions[0]["record"]["penalty"]["illegal_facts"],
        "第二版：已更正违法事实"
    );
    gw.stop().await;
}
on_both_backends!(replaying_an_entry_older_than_the_case_cannot_regress_it);

/// With the source's update time mapped (`cd_time`), a push of an older version after a newer
/// one answers `stale`: the case keeps the newer version, the lineage lists the older one as
/// stale with no deliveries, and the source's totals count it.
async fn a_pushed_version_older_at_the_source_is_answered_stale_and_kept_in_the_lineage(backend: Backend) {
    let gw = Gw::start(backend).await;
    let doc = openapi();
    let version = |variant: u32, at: &str| {
        let mut r = nanchang_record(500, variant);
        r["cd_time"] = json!(at);
        r
    };
    let newer = gw.push(&[version(2, "2024-03-02 10:00:00")]).await;
    let code = newer["results"][0]["code"].as_str().expect("code").to_string();
    let older = gw.push(&[version(1, "2024-03-01 10:00:00")]).await;
    assert_schema(&doc, "PushAnswer", &older);
    assert_eq!(
        older["results"][0],
        json!({"record_key": "NCSJ-CF-2024-000500", "result": "stale", "code": code, "version": 1}),
        "{older}"
    );
    assert_eq!(older["summary"]["stale"], 1);
    let (_, case) = gw.get(&format!("/api/cases/{code}"), OPERATOR).await;
    assert_schema(&doc, "CaseView", &case);
    let versions = case["versions"].as_array().expect("versions");
    let rows: Vec<(&str, &str, usize)> = versions
        .iter()
        .map(|v| {
            (
                v["status"].as_str().unwrap_or_default(),
                v["record"]["source_updated_at"].as_str().unwrap_or_default(),
                v["deliveries"].as_array().map_or(0, Vec::len),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("active", "2024-03-02T10:00:00+08:00", 1),
            ("stale", "2024-03-01T10:00:00+08:00", 0)
        ],
        "{case}"
    );
    let (_, sources) = gw.get("/api/sources", OPERATOR).await;
    let totals = sources["items"]
        .as_array()
        .and_then(|items| items.iter().find(|s| s["id"] == SOURCE))
        .map(|s| s["totals"].clone())
        .expect("source on the board");
    assert_eq!(
        (totals["accepted"].as_u64(), totals["stale"].as_u64()),
        (Some(1), Some(1))
    );
    gw.stop().await;
}
on_both_backends!(a_pushed_version_older_at_the_source_is_answered_stale_and_kept_in_the_lineage);

async fn cases_are_found_by_code_business_key_and_target_with_versions_and_lineage(backend: Backend) {
    let gw = Gw::start(backend).await;
    let doc = openapi();
    let mut other_target = nanchang_record(42, 0);
    other_target["xdrzjhm"] = json!("11360100014523152U");
    other_target["xdrmc"] = json!("江西洪都商贸有限公司");
    let answer = gw
        .push(&[nanchang_record(40, 0), nanchang_record(41, 0), other_target])
        .await;
    assert_eq!(answer["summary"]["accepted"], 3, "{answer}");
    gw.push(&[nanchang_record(40, 7)]).await;
    let code = answer["results"][0]["code"].as_str().expect("code");
    // By code: both versions, each with raw record, mapping and deliveries.
    let (_, case) = gw.get(&format!("/api/cases/{}", code.to_lowercase()), OWNER).await;
    let versions = case["versions"].as_array().expect("versions");
    assert_eq!(versions.len(), 2, "{case}");
    for v in versions {
        assert_eq!(v["mapping_id"], "nanchang-amr-penalty");
        assert_eq!(v["deliveries"][0]["sink_id"], "platform");
        let (status, raw) = gw.get(&format!("/api/raw/{}", v["raw_id"]), OWNER).await;
        assert_eq!(status, StatusCode::OK);
        assert_schema(&doc, "RawRecord", &raw);
        assert_eq!(raw["payload"]["ajbh"], "NCSJ-CF-2024-000040");
        assert_eq!(raw["times_received"], 1, "{raw}");
    }
    // The same payload sent again is counted on its raw record.
    gw.push(&[nanchang_record(40, 7)]).await;
    let mut times = Vec::new();
    for v in versions {
        let (_, raw) = gw.get(&format!("/api/raw/{}", v["raw_id"]), OWNER).await;
        if raw["times_received"] == 2 {
            assert!(raw["last_received_at"].as_str() > raw["received_at"].as_str(), "{raw}");
        }
        times.push(raw["times_received"].as_i64());
    }
    times.sort();
    assert_eq!(times, [Some(1), Some(2)], "only the re-sent payload counts twice");
    // By business key.
    let path = format!(
        "/api/cases?agency_credit_code={}&case_type=penalty&case_number=NCSJ-CF-2024-000041",
        AGENCY_CODE
    );
    let (status, by_key) = gw.get(&path, OPERATOR).await;
    assert_eq!(status, StatusCode::OK, "{by_key}");
    assert_schema(&doc, "CaseList", &by_key);
    assert_eq!(by_key["items"][0]["case"]["unified_code"], answer["results"][1]["code"]);
    let (status, _) = gw.get("/api/cases?case_type=penalty", OPERATOR).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a business key needs its three parts");
    // By the legacy case number alone (as a clerk types it: spaces around are dropped).
    let (status, by_number) = gw
        .get("/api/cases?case_number=%20NCSJ-CF-2024-000041%20", OPERATOR)
        .await;
    assert_eq!(status, StatusCode::OK, "{by_number}");
    assert_schema(&doc, "CaseList", &by_number);
    assert_eq!(by_number["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        by_number["items"][0]["case"]["unified_code"],
        answer["results"][1]["code"]
    );
    let (_, none) = gw.get("/api/cases?case_number=NO-SUCH-NUMBER", OPERATOR).await;
    assert_eq!(none["items"], json!([]));
    // By target, with paging.
    let (_, by_target) = gw
        .get("/api/cases?target_credit_code=91360102MA35G7K86A&limit=1", OPERATOR)
        .await;
    assert_eq!(by_target["items"].as_array().map(Vec::len), Some(1));
    let next = by_target["next_after_id"].as_i64().expect("a second page");
    let (_, page2) = gw
        .get(
            &format!("/api/cases?target_credit_code=91360102MA35G7K86A&limit=1&after_id={next}"),
            OPERATOR,
        )
        .await;
    assert_eq!(page2["items"][0]["case"]["key"]["case_number"], "NCSJ-CF-2024-000041");
    let (_, other) = gw.get("/api/cases?target_id_number=11360100014523152U", OPERATOR).await;
    assert_eq!(other["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(other["items"][0]["case"]["key"]["case_number"], "NCSJ-CF-2024-000042");
    // Every case, paged.
    let (_, all) = gw.get("/api/cases?limit=1000", OPERATOR).await;
    assert_eq!(all["items"].as_array().map(Vec::len), Some(3));
    let (status, missing) = gw.get("/api/cases/CF20243601020000001Y", OPERATOR).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{missing}");
    gw.stop().await;
}
on_both_backends!(cases_are_found_by_code_business_key_and_target_with_versions_and_lineage);

async fn dead_deliveries_are_listed_and_redriven_one_or_by_sink(backend: Backend) {
    let gw = Gw::start(backend).await;
    let doc = openapi();
    gw.push(&[nanchang_record(50, 0), nanchang_record(51, 0), nanchang_record(52, 0)])
        .await;
    let outbox = &gw.runtime.outbox;
    let now = Utc::now();
    let lease = (now + chrono::Duration::seconds(60)).trunc_subsecs(3);
    let claimed = outbox.claim("platform", 10, now, lease).await.expect("claim");
    assert_eq!(claimed.len(), 3);
    let dead: Vec<Settlement> = claimed
        .iter()
        .map(|c| Settlement {
            id: c.delivery.outbox_id,
            status: DeliveryStatus::Dead,
            attempts: 1,
            next_attempt_at: None,
            last_error: Some("HTTP 400: refused".into()),
            delivered_at: None,
        })
        .collect();
    assert_eq!(outbox.settle(&dead, lease).await.expect("settle"), 3);
    let (status, list) = gw.get("/api/deliveries?status=dead&sink=platform", OPERATOR).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_schema(&doc, "DeliveryList", &list);
    let items = list["items"].as_array().expect("items");
    assert_eq!(items.len(), 3);
    assert_eq!(list["total"], 3);
    assert_eq!(items[0]["last_error"], "HTTP 400: refused");
    let (_, second) = gw
        .get("/api/deliveries?status=dead&sink=platform&limit=2&offset=2", OPERATOR)
        .await;
    assert_eq!(
        (second["items"].as_array().map(Vec::len), second["total"].clone()),
        (Some(1), json!(3)),
        "the second page of two"
    );
    let id = items[0]["id"].as_i64().expect("id");
    let (status, one) = gw
        .post(&format!("/api/deliveries/{id}/redrive"), OPERATOR, json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{one}");
    assert_eq!(one["redriven"], 1);
    let (status, again) = gw
        .post(&format!("/api/deliveries/{id}/redrive"), OPERATOR, json!({}))
        .await;
    assert_eq!(
        (status, again["error"]["code"].clone()),
        (StatusCode::CONFLICT, json!("not_dead"))
    );
    let (status, bulk) = gw
        .post("/api/deliveries/redrive", OPERATOR, json!({ "sink": "platform" }))
        .await;
    assert_eq!(status, StatusCode::OK, "{bulk}");
    assert_eq!(bulk["redriven"], 2);
    let (_, after) = gw.get("/api/deliveries?status=pending&limit=2", OPERATOR).await;
    assert_eq!(after["items"].as_array().map(Vec::len), Some(2));
    assert!(after["next_before_id"].is_i64(), "a full page has a next page: {after}");
    let counts = after["counts"].as_array().expect("counts");
    assert!(
        counts.iter().any(|c| c["status"] == "pending" && c["count"] == 3),
        "{counts:?}"
    );
    let (status, _) = gw
        .post("/api/deliveries/redrive", OPERATOR, json!({ "sink": "nope" }))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = gw.post("/api/deliveries/999999/redrive", OPERATOR, json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let audit = gw.runtime.store.audit_log(20).await.expect("audit");
    assert_eq!(
        audit
            .iter()
            .filter(|a| a.action == "delivery.redrive" && a.actor == "ops-zhang")
            .count(),
        2
    );
    gw.stop().await;
}
on_both_backends!(dead_deliveries_are_listed_and_redriven_one_or_by_sink);

/// Settling checks the lease: an instance whose lease ran out (and whose batch another instance
/// claimed) records nothing; the instance holding the lease does.
async fn a_settlement_after_the_lease_ran_out_is_left_to_the_instance_that_took_over(backend: Backend) {
    let gw = Gw::start(backend).await;
    gw.push(&[nanchang_record(80, 0), nanchang_record(81, 0)]).await;
    let outbox = &gw.runtime.outbox;
    let now = Utc::now();
    // The first instance's lease has already run out when the second one claims.
    let first_lease = (now - chrono::Duration::seconds(1)).trunc_subsecs(3);
    let first = outbox.claim("platform", 10, now, first_lease).await.expect("claim");
    assert_eq!(first.len(), 2);
    let second_lease = (now + chrono::Duration::seconds(60)).trunc_subsecs(3);
    let second = outbox.claim("platform", 10, now, second_lease).await.expect("claim");
    assert_eq!(
        second.len(),
        2,
        "the expired lease lets another instance take the batch"
    );
    let settle = |claimed: &[gateway::store::Claimed], error: &str| -> Vec<Settlement> {
        claimed
            .iter()
            .map(|c| Settlement {
                id: c.delivery.outbox_id,
                status: DeliveryStatus::Dead,
                attempts: 1,
                next_attempt_at: None,
                last_error: Some(error.into()),
                delivered_at: None,
            })
            .collect()
    };
    let late = outbox
        .settle(&settle(&first, "late"), first_lease)
        .await
        .expect("settle");
    assert_eq!(late, 0, "the first instance's lease is gone: its outcomes do not count");
    let held = outbox
        .settle(&settle(&second, "held"), second_lease)
        .await
        .expect("settle");
    assert_eq!(held, 2);
    let (_, list) = gw.get("/api/deliveries?status=dead&sink=platform", OPERATOR).await;
    let errors: Vec<&str> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|d| d["last_error"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(errors, ["held", "held"]);
    gw.stop().await;
}
on_both_backends!(a_settlement_after_the_lease_ran_out_is_left_to_the_instance_that_took_over);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_records_per_source_and_violations_per_rule_and_show_the_outbox_depth() {
    let gw = Gw::start(Backend::Sqlite).await;
    gw.push(&[nanchang_record(60, 0), defective_record(61), nanchang_record(62, 0)])
        .await;
    let resp = gw
        .http
        .get(format!("{}/metrics", gw.base))
        .bearer_auth(OPERATOR)
        .send()
        .await
        .expect("metrics");
    assert_eq!(resp.status(), StatusCode::OK);
    let text = resp.text().await.expect("text");
    for line in [
        format!(r#"gateway_source_records_total{{source="{SOURCE}",outcome="received"}} 3"#),
        format!(r#"gateway_source_records_total{{source="{SOURCE}",outcome="accepted"}} 2"#),
        format!(r#"gateway_source_records_total{{source="{SOURCE}",outcome="quarantined"}} 1"#),
        format!(r#"gateway_rule_violations_total{{source="{SOURCE}",rule="uscc.check_char",severity="error"}} 1"#),
        format!(r#"gateway_batch_commit_seconds_count{{source="{SOURCE}"}} 1"#),
        r#"gateway_outbox_deliveries{sink="platform",status="pending"} 2"#.to_string(),
    ] {
        assert!(text.contains(&line), "metrics lack {line}:\n{text}");
    }
    assert!(text.contains("gateway_http_requests_total"), "{text}");
    let (status, _) = gw.call("GET", "/metrics", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = gw.get("/metrics", DEPT).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    gw.stop().await;
    let open = Gw::start_with(
        Backend::Sqlite,
        Options {
            metrics_public: true,
            ..Options::default()
        },
    )
    .await;
    let (status, _) = open.call("GET", "/metrics", None, None).await;
    assert_eq!(status, StatusCode::OK, "metrics_public opens /metrics");
    open.stop().await;
}

/// Files, a drop folder, an HTTP push and a replay all commit through the one committer: each
/// source's totals on the board and in the metrics have the same fields and agree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_way_in_reports_the_same_summary_on_the_board_and_in_the_metrics() {
    use gateway::commit::Batching;
    use gateway::intake::directory::scan_directory;
    use gateway::intake::files::{ingest_files, IngestJob};
    use gateway::intake::replay::{replay, ReplaySelection};
    use gateway::prepare::InputFormat;
    use gateway::telemetry::Summary;
    let gw = Gw::start(Backend::Sqlite).await;
    let rt = &gw.runtime;
    let batching = Batching::from(&rt.resolved.config);
    let lines = |records: &[Value]| records.iter().map(|r| format!("{r}\n")).collect::<String>();

    // HTTP push: two accepted, one quarantined.
    gw.push(&[nanchang_record(70, 0), defective_record(71), nanchang_record(72, 0)])
        .await;
    let push = support::board_totals_agreeing_with_metrics(rt, SOURCE);
    assert_eq!(
        push,
        Summary {
            received: 3,
            accepted: 2,
            quarantined: 1,
            ..Summary::default()
        }
    );

    // Files (`gateway ingest`): one new, one re-sent (unchanged), one update, one defective.
    let file = gw.dir.path().join("backfill.jsonl");
    std::fs::write(
        &file,
        lines(&[
            nanchang_record(80, 0),
            nanchang_record(80, 0),
            nanchang_record(80, 1),
            defective_record(81),
        ]),
    )
    .expect("write file");
    let job = IngestJob {
        preparer: rt.preparers.get("backfill").expect("preparer"),
        files: vec![file],
        format: InputFormat::JsonLines,
        by_extension: false,
        xml_records: None,
        settings: gateway::prepare::ReadSettings::default(),
    };
    let summary = ingest_files(&rt.committer("files"), job, &batching, Shutdown::default(), None)
        .await
        .expect("ingest");
    let files = support::board_totals_agreeing_with_metrics(rt, "backfill");
    assert_eq!(files, summary, "the run's summary is what the board counted");
    assert_eq!(
        files,
        Summary {
            received: 4,
            accepted: 1,
            updated: 1,
            unchanged: 1,
            stale: 0,
            quarantined: 1
        }
    );

    // Drop folder (`gateway run`): the file is committed, then moved to processed/.
    let inbox = gw.dir.path().join("inbox");
    std::fs::create_dir_all(&inbox).expect("inbox");
    std::fs::write(
        inbox.join("a.jsonl"),
        lines(&[nanchang_record(90, 0), defective_record(91)]),
    )
    .expect("drop");
    let source = rt.resolved.config.source("drop").expect("drop source").1.clone();
    scan_directory(
        &rt.committer("directory"),
        &source,
        &rt.resolved.config.base_dir,
        &rt.preparers.get("drop").expect("preparer"),
        &batching,
        &Shutdown::default(),
        std::time::Duration::ZERO,
    )
    .await
    .expect("scan");
    assert!(
        inbox.join("processed/a.jsonl").exists(),
        "the file is moved after its commit"
    );
    assert_eq!(
        support::board_totals_agreeing_with_metrics(rt, "drop"),
        Summary {
            received: 2,
            accepted: 1,
            quarantined: 1,
            ..Summary::default()
        }
    );

    // Replay of the push source's quarantined record (still failing): counted on its source.
    let replayed = replay(
        &rt.committer("replay"),
        &rt.preparers.snapshot(),
        &ReplaySelection {
            source_id: Some(SOURCE.to_string()),
            ..Default::default()
        },
    )
    .await
    .expect("replay");
    assert_eq!(replayed.received, 1);
    let after = support::board_totals_agreeing_with_metrics(rt, SOURCE);
    assert_eq!(after.received, push.received + replayed.received);
    assert_eq!(
        after.quarantined + after.unchanged,
        push.quarantined + replayed.quarantined + replayed.unchanged
    );
    gw.stop().await;
}

/// The upload body of the fixed Nanchang mapping (procedures know 快速程序) as `version`.
fn fixed_upload(dir: &Path, version: i64) -> Value {
    let fixed = fixed_mapping(dir);
    let bundle = gateway::store::MappingBundle::from_mapping(&fixed);
    let text = bundle
        .mapping_toml
        .replacen("version = 1", &format!("version = {version}"), 1);
    json!({ "mapping": text, "tables": bundle.code_tables })
}

async fn mapping_routes_upload_dry_run_activate_and_roll_back_audited_with_the_token_name(backend: Backend) {
    let gw = Gw::start(backend).await;
    let doc = openapi();
    let answer = gw.push(&[nanchang_record(1, 0), unknown_procedure_record(2)]).await;
    assert_eq!(answer["summary"]["quarantined"], 1, "{answer}");
    let qid = answer["results"][1]["quarantine_id"].as_i64().expect("quarantine id");
    // Every source with its active version (the configuration's mapping, imported as v1).
    let (status, list) = gw.get("/api/mappings", OWNER).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_schema(&doc, "MappingSourceList", &list);
    let mine = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|m| m["source_id"] == SOURCE)
        .expect("the push source is listed");
    assert_eq!(mine["active_version"], 1);
    assert_eq!(mine["mapping_id"], "nanchang-amr-penalty");
    // A mapping that does not parse: 422 naming the line; one whose tests fail: 422 with them.
    let base = format!("/api/mappings/{SOURCE}");
    let (status, refused) = gw
        .post(
            &format!("{base}/versions"),
            OWNER,
            json!({"mapping": "id = \"nanchang-amr-penalty\"\nversion = [", "tables": {}}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert_eq!(refused["error"]["code"], "invalid_mapping");
    assert_eq!(refused["error"]["details"]["line"], 2, "{refused}");
    assert_schema(&doc, "Error", &refused);
    let mut failing = fixed_upload(gw.dir.path(), 2);
    let csv = failing["tables"]["procedures.csv"]
        .as_str()
        .expect("csv")
        .replace("普通程序,ordinary", "普通程序,simple");
    failing["tables"]["procedures.csv"] = json!(csv);
    let (status, refused) = gw.post(&format!("{base}/versions"), OWNER, failing).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert_eq!(refused["error"]["code"], "tests_failed", "{refused}");
    assert!(refused["error"]["details"]["failures"]
        .as_array()
        .is_some_and(|f| !f.is_empty()));
    // The fix uploads as a candidate.
    let (status, uploaded) = gw
        .post(&format!("{base}/versions"), OWNER, fixed_upload(gw.dir.path(), 2))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{uploaded}");
    assert_schema(&doc, "MappingUploadReport", &uploaded);
    assert_eq!(
        (uploaded["version"].clone(), uploaded["status"].clone()),
        (json!(2), json!("candidate"))
    );
    assert_eq!(uploaded["uploaded_by"], "standards-wang");
    let (status, v2) = gw.get(&format!("{base}/versions/2"), OWNER).await;
    assert_eq!(status, StatusCode::OK);
    assert_schema(&doc, "MappingVersion", &v2);
    assert!(v2["code_tables"]["procedures.csv"]
        .as_str()
        .expect("csv")
        .contains("快速程序"));
    assert!(v2["mapping_toml"].as_str().expect("text").contains("version = 2"));
    let (status, _) = gw.get(&format!("{base}/versions/9"), OWNER).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = gw.get("/api/mappings/nope/versions", OWNER).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // The dry run: the quarantined record would be accepted, the other is unchanged.
    let (status, report) = gw
        .post(&format!("{base}/versions/2/dry-run?last=50"), OWNER, json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_schema(&doc, "DryRunReport", &report);
    assert_eq!(report["total"], 2, "{report}");
    assert_eq!(report["newly_accepted"], 1, "{report}");
    assert_eq!(report["unchanged"], 1, "{report}");
    let (status, _) = gw
        .post(&format!("{base}/versions/2/dry-run?last=0"), OWNER, json!({}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // Activate: the replay now accepts the record.
    let (status, activated) = gw.post(&format!("{base}/versions/2/activate"), OWNER, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{activated}");
    assert_schema(&doc, "ActivationReport", &activated);
    assert_eq!(activated["previous_version"], 1);
    assert!(activated["diff"]
        .as_array()
        .expect("diff")
        .iter()
        .any(|l| l.as_str().is_some_and(|l| l.contains("快速程序"))));
    let (status, again) = gw.post(&format!("{base}/versions/2/activate"), OWNER, json!({})).await;
    assert_eq!(
        (status, again["error"]["code"].clone()),
        (StatusCode::CONFLICT, json!("already_active"))
    );
    let (_, replayed) = gw
        .post(&format!("/api/quarantine/{qid}/replay"), OPERATOR, json!({}))
        .await;
    assert_eq!(replayed["entry"]["status"], "replayed", "{replayed}");
    // Roll back to v1; a rollback forward is refused.
    let (status, back) = gw.post(&format!("{base}/rollback"), ADMIN, json!({"to": 1})).await;
    assert_eq!(status, StatusCode::OK, "{back}");
    assert_eq!(
        (back["version"].clone(), back["kind"].clone()),
        (json!(1), json!("rollback"))
    );
    let (status, forward) = gw.post(&format!("{base}/rollback"), ADMIN, json!({"to": 2})).await;
    assert_eq!(
        (status, forward["error"]["code"].clone()),
        (StatusCode::CONFLICT, json!("not_earlier"))
    );
    let (status, _) = gw.post(&format!("{base}/rollback"), ADMIN, json!({"too": 2})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // History: versions newest first, the audit names the token holders.
    let (status, history) = gw.get(&format!("{base}/versions"), OWNER).await;
    assert_eq!(status, StatusCode::OK);
    assert_schema(&doc, "MappingHistory", &history);
    assert_eq!(history["active_version"], 1);
    assert_eq!(history["versions"][0]["version"], 2);
    assert_eq!(history["versions"][0]["status"], "retired");
    let actions: Vec<(String, String)> = history["audit"]
        .as_array()
        .expect("audit")
        .iter()
        .map(|a| {
            (
                a["actor"].as_str().unwrap_or("").to_string(),
                a["action"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    for expected in [
        ("standards-wang", "mapping.upload_refused"),
        ("standards-wang", "mapping.upload"),
        ("standards-wang", "mapping.dry_run"),
        ("standards-wang", "mapping.activate"),
        ("standards-wang", "mapping.activate_refused"),
        ("admin-li", "mapping.rollback"),
        ("admin-li", "mapping.rollback_refused"),
    ] {
        assert!(
            actions
                .iter()
                .any(|(actor, action)| (actor.as_str(), action.as_str()) == expected),
            "audit holds {expected:?}: {actions:?}"
        );
    }
    gw.stop().await;
}

on_both_backends!(mapping_routes_upload_dry_run_activate_and_roll_back_audited_with_the_token_name);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_documents_every_route_and_every_documented_operation_answers() {
    let doc = openapi();
    assert_eq!(doc["openapi"], "3.1.0");
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in ["get", "post", "put", "delete", "patch"] {
            if item.get(method).is_some() {
                documented.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    let routed: BTreeSet<(String, String)> = server::route_table()
        .into_iter()
        .map(|(m, p, _)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(documented, routed, "openapi.yaml and the router differ");
    // Every documented operation answers (with an admin token and things that exist).
    let gw = Gw::start(Backend::Sqlite).await;
    let ids = seed(&gw).await;
    for (method, path) in &documented {
        let url = concrete(path, &ids_for(path, &ids));
        let (status, answer) = gw.call(method, &url, Some(ADMIN), body_for(path)).await;
        assert!(
            status != StatusCode::METHOD_NOT_ALLOWED && answer["error"]["code"] != "route_not_found",
            "{method} {path}: {status} {answer}"
        );
        let documented_statuses = doc["paths"][path][method.to_lowercase()]["responses"]
            .as_object()
            .expect("responses");
        assert!(
            documented_statuses.contains_key(status.as_str()),
            "{method} {path} answered {status}, which is not documented"
        );
        if !status.is_success() {
            assert_schema(&doc, "Error", &answer);
        }
    }
    // The main answers match their schemas.
    for (path, schema) in [
        ("/api/sources", "SourceList"),
        (&format!("/api/sources/{SOURCE}") as &str, "Source"),
        ("/api/quarantine", "QuarantineList"),
        ("/api/cases", "CaseList"),
        ("/api/deliveries", "DeliveryList"),
        ("/api/me", "Me"),
        ("/healthz", "Health"),
        ("/readyz", "Readiness"),
    ] {
        let (status, answer) = gw.get(path, ADMIN).await;
        assert_eq!(status, StatusCode::OK, "{path}: {answer}");
        assert_schema(&doc, schema, &answer);
    }
    let (_, unknown) = gw.get("/api/nothing", ADMIN).await;
    assert_eq!(unknown["error"]["code"], "route_not_found");
    let (status, _) = gw.call("DELETE", "/api/sources", Some(ADMIN), None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    let (status, served) = gw.call("GET", "/openapi.yaml", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(served.as_str().expect("text").starts_with("openapi: 3.1.0"));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_checks_the_store_and_every_amqp_broker() {
    let up = Gw::start_with(
        Backend::Sqlite,
        Options {
            sinks: "[[sinks]]\nid = \"mq\"\nkind = \"amqp\"\nurl = \"amqp://guest:guest@127.0.0.1:5672/%2f\"\n".into(),
            ..Options::default()
        },
    )
    .await;
    let (status, ready) = up.call("GET", "/readyz", None, None).await;
    assert_eq!(status, StatusCode::OK, "{ready}");
    assert_eq!(ready["checks"]["store"]["ok"], true);
    assert_eq!(ready["checks"]["amqp:sink:mq"]["ok"], true);
    up.stop().await;
    let down = Gw::start_with(
        Backend::Sqlite,
        Options {
            sinks: "[[sinks]]\nid = \"mq\"\nkind = \"amqp\"\nurl = \"amqp://guest:secret-pw@127.0.0.1:9/%2f\"\n".into(),
            ..Options::default()
        },
    )
    .await;
    let (status, ready) = down.call("GET", "/readyz", None, None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{ready}");
    assert_eq!(ready["ready"], false);
    assert_eq!(ready["checks"]["amqp:sink:mq"]["ok"], false);
    assert!(!ready.to_string().contains("secret-pw"), "the broker URL is not shown");
    let (status, _) = down.call("GET", "/healthz", None, None).await;
    assert_eq!(status, StatusCode::OK, "alive even when not ready");
    down.stop().await;
}

#[test]
fn token_new_prints_a_token_and_the_config_block_with_its_hash() {
    let out = support::gateway()
        .args([
            "token",
            "new",
            "--name",
            "amr-push",
            "--role",
            "department",
            "--source",
            SOURCE,
        ])
        .output()
        .expect("run gateway token new");
    support::assert_success(&out, "token new");
    let text = String::from_utf8_lossy(&out.stdout);
    let token = text
        .lines()
        .filter_map(|l| l.strip_prefix("# "))
        .find(|l| l.starts_with("gwt_"))
        .expect("the token line");
    assert!(text.contains(&format!("sha256 = \"{}\"", sha(token))), "{text}");
    assert!(text.contains("role = \"department\""));
    assert!(text.contains(&format!("sources = [\"{SOURCE}\"]")));
    let bad = support::gateway()
        .args(["token", "new", "--role", "root"])
        .output()
        .expect("run");
    assert!(!bad.status.success());
    // With the configuration: an unknown source is refused, a pulled one is named.
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("gateway.toml");
    let mapping = repo().join("mappings/nanchang-amr-penalty/mapping.toml");
    std::fs::write(
        &config,
        format!(
            "[[sources]]\nid = \"push-src\"\nkind = \"push\"\nmapping = \"{m}\"\n\n[[sources]]\nid = \"file-src\"\nkind = \"file\"\nmapping = \"{m}\"\n",
            m = mapping.display()
        ),
    )
    .expect("config");
    let with = |source: &str| {
        support::gateway()
            .args(["token", "new", "--role", "department", "--source", source, "--config"])
            .arg(&config)
            .output()
            .expect("run")
    };
    assert!(with("push-src").status.success());
    let unknown = with("nope");
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("unknown source \"nope\""));
    let pulled = with("file-src");
    assert!(pulled.status.success());
    assert!(
        String::from_utf8_lossy(&pulled.stderr).contains("is not a push source"),
        "{}",
        String::from_utf8_lossy(&pulled.stderr)
    );
}

#[test]
fn config_check_names_every_wrong_token_setting() {
    let dir = tempfile::tempdir().expect("dir");
    let mapping = repo().join("mappings/nanchang-amr-penalty/mapping.toml");
    let text = format!(
        r#"[server]
rate_limit_per_second = 0
[[server.tokens]]
name = "a"
role = "root"
sha256 = "abc"
[[server.tokens]]
name = "a"
role = "department"
token_env = "GW_SURELY_UNSET_TOKEN_VAR"
[[server.tokens]]
name = "ops"
role = "operator"
sources = ["p"]
sha256 = "{}"
[[sources]]
id = "p"
kind = "push"
mapping = "{}"
[sources.push]
max_body_bytes = 10
max_records = 5
"#,
        sha("x"),
        mapping.display()
    );
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, text).expect("write");
    let out = support::gateway()
        .args(["config", "check", support::path_str(&path)])
        .output()
        .expect("run");
    let report = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{report}");
    for needle in [
        "server.rate_limit_per_second",
        "server.tokens[0] (name \"a\").role",
        "sha256 must be 64 hex digits",
        "server.tokens[1] (name \"a\").name",
        "server.tokens[1] (name \"a\").sources",
        "GW_SURELY_UNSET_TOKEN_VAR",
        "server.tokens[2] (name \"ops\").sources",
        "sources[0] (id \"p\").push",
        "max_records",
    ] {
        assert!(report.contains(needle), "report lacks {needle:?}:\n{report}");
    }
}

/// `gateway run` (the real binary) serves the API for a push source and stops cleanly on SIGTERM.
async fn gateway_run_serves_push_and_stops_on_sigterm(backend: Backend) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let mapping = repo().join("mappings/nanchang-amr-penalty/mapping.toml");
    let sources = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\n[[server.tokens]]\nname = \"amr-push\"\nrole = \"department\"\nsources = [\"{SOURCE}\"]\nsha256 = \"{}\"\n\n[[sources]]\nid = \"{SOURCE}\"\nkind = \"push\"\nmapping = \"{}\"\nformat = \"json\"\nrecord_key = \"ajbh\"\n",
        sha(DEPT),
        mapping.display()
    );
    let env = support::Env::with_sources(backend, &sources).await;
    let mut child = env
        .cmd(&["run", "--config", support::path_str(&env.config)])
        .spawn()
        .expect("gateway run");
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let started = std::time::Instant::now();
    while http.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(started.elapsed().as_secs() < 60, "gateway run did not start serving");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let resp = http
        .post(format!("{base}/api/ingest/{SOURCE}"))
        .bearer_auth(DEPT)
        .header("Content-Type", "application/json")
        .body(json!([nanchang_record(80, 0)]).to_string())
        .send()
        .await
        .expect("push");
    assert_eq!(resp.status(), StatusCode::OK);
    let answer: Value = resp.json_body().await;
    assert_eq!(answer["results"][0]["result"], "accepted", "{answer}");
    if backend == Backend::Sqlite {
        // SQLite runs one instance: a second `gateway run` on the same file stops at once.
        let second = env
            .cmd(&["run", "--config", support::path_str(&env.config)])
            .output()
            .expect("second gateway run");
        assert!(!second.status.success(), "a second run on one SQLite file is refused");
        let said = String::from_utf8_lossy(&second.stderr);
        assert!(
            said.contains("another `gateway run` is using the SQLite store") && said.contains("PostgreSQL"),
            "{said}"
        );
    }
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("join")
        .expect("wait");
    assert!(status.success(), "gateway run ends cleanly on SIGTERM: {status:?}");
    let cases = env.export("cases");
    assert_eq!(cases.len(), 1, "the pushed record was committed");
}
on_both_backends!(gateway_run_serves_push_and_stops_on_sigterm);

/// Exact counts from the store: in all, per source and per rule (an entry once per rule it
/// breaks), departments seeing their own sources only, documented by the OpenAPI schema.
async fn quarantine_counts_are_exact_per_source_and_rule(backend: Backend) {
    let gw = Gw::start(backend).await;
    let doc = openapi();
    let mut records: Vec<serde_json::Value> = (0..7).map(|n| defective_record(600 + n)).collect();
    records.push(unknown_procedure_record(700));
    gw.push(&records).await;
    let (status, counts) = gw.get("/api/quarantine/counts", OPERATOR).await;
    assert_eq!(status, StatusCode::OK, "{counts}");
    assert_schema(&doc, "QuarantineCounts", &counts);
    assert_eq!(counts["total"], 8);
    assert_eq!(counts["sources"][SOURCE], 8);
    let rules: Vec<(String, i64)> = counts["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .map(|r| {
            (
                r["rule"].as_str().unwrap_or_default().to_string(),
                r["count"].as_i64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(rules[0], ("uscc.check_char".to_string(), 7), "{rules:?}");
    assert!(rules.contains(&("mapping.unmapped_code".to_string(), 1)), "{rules:?}");
    let (_, list) = gw.get("/api/quarantine?status=open&limit=1000", OPERATOR).await;
    assert_eq!(
        list["items"].as_array().map(Vec::len),
        Some(8),
        "the counts agree with the list"
    );
    let (_, other) = gw.get("/api/quarantine/counts", DEPT_OTHER).await;
    assert_eq!(
        (other["total"].clone(), other["sources"].clone()),
        (json!(0), json!({})),
        "another department sees none of them"
    );
    let (status, _) = gw.get("/api/quarantine/counts?status=nonsense", OPERATOR).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    gw.stop().await;
}
on_both_backends!(quarantine_counts_are_exact_per_source_and_rule);

/// A morning's quarantine work through the API: find entries by case number and target name
/// with exact totals and pages, see which source field a violation came from, preview and
/// ignore a filtered set, let the department replay its own entry after the fix and see the
/// case it became; the department's own records, the audit log, and cases found by one search
/// box with a version-to-version diff.
async fn the_console_finds_entries_by_case_number_bulk_ignores_with_a_preview_and_shows_departments_their_records(
    backend: Backend,
) {
    let gw = Gw::start(backend).await;
    let doc = openapi();
    let mut records: Vec<Value> = (40..45).map(defective_record).collect();
    records.extend((50..53).map(unknown_procedure_record));
    let answer = gw.push(&records).await;
    assert_eq!(answer["summary"]["quarantined"], 8, "{answer}");

    // Search: by the legacy case number, by part of the target's name; exact totals, pages.
    let (status, found) = gw.get("/api/quarantine?q=NCSJ-CF-2024-000041", OPERATOR).await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_schema(&doc, "QuarantineList", &found);
    assert_eq!(found["total"], 1, "{found}");
    assert_eq!(found["items"][0]["labels"]["case_number"], "NCSJ-CF-2024-000041");
    assert_eq!(found["items"][0]["labels"]["target_name"], "南昌赣江商贸有限公司");
    let (_, by_name) = gw.get("/api/quarantine?q=赣江商贸&limit=3&offset=6", OPERATOR).await;
    assert_eq!(by_name["total"], 8);
    assert_eq!(by_name["items"].as_array().map(Vec::len), Some(2), "the last page");

    // The entry names the source field of each violation.
    let first = answer["results"][0]["quarantine_id"].as_i64().expect("id");
    let (_, detail) = gw.get(&format!("/api/quarantine/{first}"), OPERATOR).await;
    assert_schema(&doc, "QuarantineDetail", &detail);
    let pointer = detail["entry"]["violations"][0]["pointer"].as_str().expect("pointer");
    assert_eq!(pointer, "/target/id_number");
    assert_eq!(detail["fields"][pointer], json!(["xdrzjhm"]), "{}", detail["fields"]);
    assert_eq!(detail["case"], Value::Null);

    // Bulk ignore of a filtered set: preview, reason required, then done and audited.
    let filter = json!({ "rule": "uscc.check_char", "preview": true });
    let (status, preview) = gw.post("/api/quarantine/ignore", OPERATOR, filter).await;
    assert_eq!(
        (status, preview["matched"].clone()),
        (StatusCode::OK, json!(5)),
        "{preview}"
    );
    assert_eq!(
        gw.get("/api/quarantine?status=open", OPERATOR).await.1["total"],
        8,
        "a preview changes nothing"
    );
    let (status, refused) = gw
        .post("/api/quarantine/ignore", OPERATOR, json!({ "rule": "uscc.check_char" }))
        .await;
    assert_eq!(
        (status, refused["error"]["code"].clone()),
        (StatusCode::BAD_REQUEST, json!("reason_required"))
    );
    let (status, _) = gw
        .post("/api/quarantine/ignore", OPERATOR, json!({ "reason": "everything" }))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a bulk ignore needs a filter");
    let (status, done) = gw
        .post(
            "/api/quarantine/ignore",
            OPERATOR,
            json!({ "rule": "uscc.check_char", "reason": "部门已线下更正 / corrected offline" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_schema(&doc, "BulkAnswer", &done);
    assert_eq!(done["ignored"], 5);
    let (_, open) = gw.get("/api/quarantine?status=open", OPERATOR).await;
    assert_eq!(open["total"], 3);
    let (status, _) = gw
        .post("/api/quarantine/ignore", OWNER, json!({ "rule": "x", "reason": "y" }))
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a standards owner replays but does not ignore"
    );

    // After the fix the department replays its own entry and sees the case it became.
    assert!(gw
        .runtime
        .preparers
        .replace_mapping(SOURCE, Arc::new(fixed_mapping(gw.dir.path()))));
    let unknown = answer["results"][5]["quarantine_id"].as_i64().expect("id");
    let (status, _) = gw
        .post(&format!("/api/quarantine/{unknown}/replay"), DEPT_OTHER, json!({}))
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "another department's entry is not revealed"
    );
    let (status, replayed) = gw
        .post(&format!("/api/quarantine/{unknown}/replay"), DEPT, json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{replayed}");
    assert_eq!(replayed["summary"]["accepted"], 1, "{replayed}");
    let (_, detail) = gw.get(&format!("/api/quarantine/{unknown}"), DEPT).await;
    let code = detail["case"]["code"].as_str().expect("the case it became").to_string();
    assert_eq!(detail["case"]["version"], 1);
    assert_eq!(detail["entry"]["resolution"]["code"], code.as_str());
    let (status, preview) = gw
        .post(
            "/api/quarantine/replay",
            OWNER,
            json!({ "q": "NCSJ-CF-2024-000051", "preview": true }),
        )
        .await;
    assert_eq!(
        (status, preview["matched"].clone()),
        (StatusCode::OK, json!(1)),
        "{preview}"
    );

    // The department's own records: what became of each.
    let (status, mine) = gw.get("/api/records", DEPT).await;
    assert_eq!(status, StatusCode::OK, "{mine}");
    assert_schema(&doc, "RecordList", &mine);
    assert_eq!(mine["total"], 8);
    let accepted: Vec<&Value> = mine["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|r| r["outcome"] == "accepted")
        .collect();
    assert_eq!(accepted.len(), 1);
    assert_eq!(accepted[0]["code"], code.as_str());
    assert_eq!(accepted[0]["quarantine_id"], unknown);
    let (_, ignored) = gw.get("/api/records?outcome=ignored&limit=2", DEPT).await;
    assert_eq!(
        (ignored["total"].clone(), ignored["items"][0]["rules"].clone()),
        (json!(5), json!(["uscc.check_char"]))
    );
    let (status, _) = gw.get(&format!("/api/records?source={OTHER}"), DEPT).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, theirs) = gw.get("/api/records", DEPT_OTHER).await;
    assert_eq!(theirs["total"], 0);
    let (_, me) = gw.get("/api/me", DEPT).await;
    assert_schema(&doc, "Me", &me);
    let actions = me["actions"].as_array().expect("actions");
    assert!(actions.contains(&json!("quarantine_replay")) && actions.contains(&json!("records_read")));
    assert!(!actions.contains(&json!("cases_read")) && !actions.contains(&json!("quarantine_ignore")));

    // The audit log: the bulk ignore with its reason, by whom.
    let (status, log) = gw.get("/api/audit?action=quarantine", OWNER).await;
    assert_eq!(status, StatusCode::OK, "{log}");
    assert_schema(&doc, "AuditList", &log);
    let ignore = log["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|e| e["action"] == "quarantine.ignore")
        .expect("the bulk ignore is audited");
    assert_eq!(ignore["actor"], "ops-zhang");
    assert_eq!(ignore["detail"]["ignored"], 5);
    assert_eq!(ignore["detail"]["reason"], "部门已线下更正 / corrected offline");
    let (status, _) = gw.get("/api/audit", DEPT).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Cases: one search box, a page with names, and what changed between versions.
    let changed = {
        let mut r = nanchang_record(50, 3);
        r["cfcx"] = json!("快速程序");
        r
    };
    assert_eq!(gw.push(&[changed]).await["summary"]["updated"], 1);
    let (status, cases) = gw.get("/api/cases?q=NCSJ-CF-2024-000050", OWNER).await;
    assert_eq!(status, StatusCode::OK, "{cases}");
    assert_schema(&doc, "CaseList", &cases);
    assert_eq!(cases["total"], 1);
    assert_eq!(cases["items"][0]["summary"]["target_name"], "南昌赣江商贸有限公司");
    let (_, by_code) = gw.get(&format!("/api/cases?q={code}"), OWNER).await;
    assert_eq!(by_code["items"][0]["case"]["unified_code"], code.as_str());
    let (_, listing) = gw.get("/api/cases?offset=0&limit=1", OPERATOR).await;
    assert_eq!(listing["total"], 1);
    let (status, diff) = gw.get(&format!("/api/cases/{code}/diff?from=1&to=2"), OWNER).await;
    assert_eq!(status, StatusCode::OK, "{diff}");
    assert_schema(&doc, "CaseDiff", &diff);
    let fine = diff["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .find(|c| c["path"] == "/penalty/fine_amount")
        .unwrap_or_else(|| panic!("the fine changed: {diff}"));
    assert_ne!(fine["before"], fine["after"]);
    let (status, _) = gw.get(&format!("/api/cases/{code}/diff?from=1&to=9"), OWNER).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    gw.stop().await;
}
on_both_backends!(
    the_console_finds_entries_by_case_number_bulk_ignores_with_a_preview_and_shows_departments_their_records
);

// ---------------------------------------------------------------------------------------------
// The officer registry (执法人员名录) and the catalogue look-up by item name.

const JIUJIANG_CSV_ROW: &str = "王五,JJ0001,11360400014587316A,2023-01-01,2027-12-31,有效\n";

/// A registry CSV (Chinese headers) of 南昌's officers with these certificate numbers.
fn registry_csv(certs: &[&str]) -> String {
    let mut csv = String::from("姓名,执法证号,统一社会信用代码,有效期起,有效期止,状态\n");
    for (i, cert) in certs.iter().enumerate() {
        csv.push_str(&format!(
            "执法人员{i},{cert},{AGENCY_CODE},2023-01-01,2027-12-31,有效\n"
        ));
    }
    csv
}

async fn load_registry(gw: &Gw, token: &str, query: &str, content_type: &str, body: String) -> (StatusCode, Value) {
    let resp = gw
        .http
        .post(format!("{}/api/officers/load{query}", gw.base))
        .bearer_auth(token)
        .header("Content-Type", content_type)
        .body(body)
        .send()
        .await
        .expect("load");
    let status = resp.status();
    (status, resp.json_body().await)
}

fn rules_of(violations: &Value) -> Vec<String> {
    violations
        .as_array()
        .map(|v| {
            v.iter()
                .filter_map(|x| x["rule"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn officers_config(severity: &str) -> Options {
    Options {
        normalizer_extra: format!("[normalizer.officers]\nseverity = \"{severity}\"\nrefresh_seconds = 1\n"),
        ..Options::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn officer_registry_is_loaded_listed_versioned_and_audited_by_role_and_agency_scope() {
    let gw = Gw::start_with(Backend::Sqlite, officers_config("auto")).await;
    let doc = openapi();
    let mut csv = registry_csv(&["36010020001", "36010020002"]);
    csv.push_str(JIUJIANG_CSV_ROW);
    let (status, loaded) = load_registry(&gw, OWNER, "?origin=2024名录.csv", "text/csv", csv).await;
    assert_eq!(status, StatusCode::CREATED, "{loaded}");
    assert_schema(&doc, "OfficerLoad", &loaded);
    assert_eq!(
        loaded["versions"].as_array().map(Vec::len),
        Some(2),
        "one version per agency"
    );
    assert_eq!(loaded["in_force"], true);
    let (_, list) = gw.get(&format!("/api/officers?agency={AGENCY_CODE}"), OPERATOR).await;
    assert_schema(&doc, "OfficerList", &list);
    assert_eq!(list["total"], 2);
    assert_eq!(list["items"][0]["cert_no"], "36010020001");
    assert_eq!(list["items"][0]["valid_to"], "2027-12-31");
    let (_, found) = gw.get("/api/officers?q=王", ADMIN).await;
    assert_eq!(found["total"], 1);

    // A second load of 南昌 (JSON this time): one gone, one changed, one new.
    let body = json!([
        {"name": "执法人员0", "cert_no": "36010020001", "status": "暂扣"},
        {"name": "赵六", "cert_no": "36010020003"}
    ]);
    let (status, second) = load_registry(
        &gw,
        ADMIN,
        &format!("?agency={AGENCY_CODE}"),
        "application/json",
        body.to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    let v = &second["versions"][0];
    assert_eq!(
        (
            &v["version"],
            &v["added"],
            &v["removed"],
            &v["changed"],
            &v["loaded_by"]
        ),
        (&json!(2), &json!(1), &json!(1), &json!(1), &json!("admin-li"))
    );
    let (_, versions) = gw
        .get(&format!("/api/officers/versions?agency={AGENCY_CODE}"), OWNER)
        .await;
    assert_schema(&doc, "OfficerVersionList", &versions);
    assert_eq!(versions["total"], 2);
    assert_eq!(versions["items"][1]["origin"], "2024名录.csv");
    let (_, audit) = gw.get("/api/audit?action=officers.load", ADMIN).await;
    assert_eq!(audit["total"], 2, "{audit}");
    assert_eq!(audit["items"][0]["actor"], "admin-li");
    assert_eq!(audit["items"][0]["detail"]["versions"][0]["removed"], 1);
    assert_eq!(audit["items"][1]["actor"], "standards-wang");

    // A bad file: every bad row named, nothing loaded.
    let bad = "姓名,执法证号,统一社会信用代码,有效期止\n张三,36010020001,11360100014523152U,2027-02-30\n,36010020009,11360100014523152U,\n";
    let (status, refused) = load_registry(&gw, OWNER, "", "text/csv", bad.to_string()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert_schema(&doc, "Error", &refused);
    assert_eq!(refused["error"]["code"], "invalid_registry");
    let details = refused["error"]["details"].as_array().expect("details");
    assert!(details
        .iter()
        .any(|d| d["line"] == 2 && d["field"] == "valid_to" && d["value"] == "2027-02-30"));
    assert!(details.iter().any(|d| d["line"] == 3 && d["field"] == "name"));
    let (_, versions) = gw.get("/api/officers/versions", ADMIN).await;
    assert_eq!(versions["total"], 3, "the refused file made no version");

    // Roles and scopes: operators read only; a department loads and reads its own agencies.
    let (status, _) = load_registry(&gw, OPERATOR, "", "text/csv", registry_csv(&["X1"])).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let mut jiujiang = String::from("姓名,执法证号,统一社会信用代码\n");
    jiujiang.push_str("王五,JJ0001,11360400014587316A\n");
    let (status, answer) = load_registry(&gw, DEPT, "", "text/csv", jiujiang).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "another department's agency: {answer}");
    let (status, own) = load_registry(
        &gw,
        DEPT,
        "?format=csv",
        "text/plain",
        registry_csv(&["36010020001", "36010020002"]),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{own}");
    let (_, mine) = gw.get("/api/officers", DEPT).await;
    assert_eq!(mine["total"], 2, "only its own agency's officers: {mine}");
    let (_, theirs) = gw.get("/api/officers", DEPT_OTHER).await;
    assert_eq!(theirs["total"], 1, "九江 by its region 3604: {theirs}");
    let (status, _) = gw.get(&format!("/api/officers?agency={JIUJIANG_AGENCY}"), DEPT).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, versions) = gw.get("/api/officers/versions", DEPT).await;
    assert_eq!(versions["total"], 3);
    let (status, _) = gw.get("/api/officers?agency=123", ADMIN).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a credit code is checked");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unregistered_officer_is_flagged_until_the_registry_is_loaded_then_quarantined_and_a_replay_follows_the_registry(
) {
    let gw = Gw::start_with(Backend::Sqlite, officers_config("auto")).await;
    // No registry of the agency yet: committed, with a warning.
    let answer = gw.push(&[nanchang_record(1, 0)]).await;
    assert_eq!(answer["results"][0]["result"], "accepted", "{answer}");
    assert!(rules_of(&answer["results"][0]["warnings"]).contains(&"rule.officer_registry_missing".to_string()));
    // The registry names one of the two officers: the other one's record is quarantined.
    let (status, _) = load_registry(&gw, OWNER, "", "text/csv", registry_csv(&["36010020001"])).await;
    assert_eq!(status, StatusCode::CREATED);
    let answer = gw.push(&[nanchang_record(2, 0)]).await;
    let result = &answer["results"][0];
    assert_eq!(result["result"], "quarantined", "{answer}");
    let violation = result["violations"]
        .as_array()
        .and_then(|v| v.iter().find(|v| v["rule"] == "rule.officer_not_registered"))
        .expect("officer_not_registered");
    assert!(violation["message_zh"]
        .as_str()
        .unwrap_or_default()
        .contains("36010020002"));
    assert_eq!(violation["pointer"], "/officers/1/cert_no");
    let qid = result["quarantine_id"].as_i64().expect("quarantine id");
    // The registry corrected: the replay commits it.
    let (status, _) = load_registry(
        &gw,
        OWNER,
        "",
        "text/csv",
        registry_csv(&["36010020001", "36010020002"]),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, replayed) = gw
        .post(&format!("/api/quarantine/{qid}/replay"), OPERATOR, json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{replayed}");
    assert_eq!(replayed["summary"]["accepted"], 1, "{replayed}");
    // A suspended certificate on the decision date refuses the record.
    let suspended = format!(
        "姓名,执法证号,统一社会信用代码,有效期起,有效期止,状态\n张三,36010020001,{AGENCY_CODE},2023-01-01,2027-12-31,有效\n李四,36010020002,{AGENCY_CODE},2024-02-01,2027-12-31,有效\n"
    );
    load_registry(&gw, OWNER, "", "text/csv", suspended).await;
    let answer = gw.push(&[nanchang_record(3, 0)]).await;
    let violations = &answer["results"][0]["violations"];
    assert!(
        rules_of(violations).contains(&"rule.officer_certificate_invalid".to_string()),
        "{answer}"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_error_severity_a_record_waits_in_the_quarantine_for_its_agencys_officer_registry() {
    let gw = Gw::start_with(Backend::Postgres, officers_config("error")).await;
    let answer = gw.push(&[nanchang_record(1, 0)]).await;
    let result = &answer["results"][0];
    assert_eq!(result["result"], "quarantined", "{answer}");
    assert_eq!(rules_of(&result["violations"]), ["rule.officer_registry_missing"]);
    let qid = result["quarantine_id"].as_i64().expect("quarantine id");
    let (status, _) = load_registry(&gw, DEPT, "", "text/csv", registry_csv(&["36010020001", "36010020002"])).await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, replayed) = gw.post(&format!("/api/quarantine/{qid}/replay"), DEPT, json!({})).await;
    assert_eq!(replayed["summary"]["accepted"], 1, "{replayed}");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_naming_its_item_gets_the_code_from_the_agencys_catalogue() {
    let catalogue_dir = tempfile::tempdir().expect("dir");
    let catalogue = catalogue_dir.path().join("catalogue.csv");
    std::fs::write(
        &catalogue,
        "年度,监管事项目录编码,监管事项名称,适用范围,领域\n\
         2024,36010000100012,价格监督检查,,\n\
         2024,36010000100017,计量器具监督检查,,\n\
         2024,36010000100018,计量器具强制检定监督检查,,\n\
         2024,36010000100019,广告发布监督检查,3604,\n",
    )
    .expect("catalogue");
    let options = Options {
        normalizer_extra: format!("catalogue = {:?}\n", catalogue.display().to_string()),
        mapping_edits: vec![(
            "from = [\"jgsxbm\", \"sxbm\"]         # 2020 年以前的记录用 sxbm\nsteps = [\"remove_spaces\", \"halfwidth\"]\nrequired = true\n".into(),
            "from = [\"jgsxbm\", \"sxbm\"]         # 2020 年以前的记录用 sxbm\nsteps = [\"remove_spaces\", \"halfwidth\"]\n\n\
             [[field]]\ntarget = \"item_name\"\nfrom = \"jgsxmc\"\nsteps = [\"trim\"]\n".into(),
        )],
        ..Options::default()
    };
    let gw = Gw::start_with(Backend::Sqlite, options).await;
    let named = |n: usize, name: &str| {
        let mut r = nanchang_record(n, 0);
        r.as_object_mut().expect("object").remove("jgsxbm");
        r["jgsxmc"] = json!(name);
        r
    };
    let answer = gw
        .push(&[
            named(1, "《价格监督》检查"),
            named(2, "计量器具"),
            named(3, "广告发布监督检查"),
        ])
        .await;
    let results = answer["results"].as_array().expect("results");
    assert_eq!(results[0]["result"], "accepted", "{answer}");
    let code = results[0]["code"].as_str().expect("code");
    let (_, case) = gw.get(&format!("/api/cases/{code}"), ADMIN).await;
    assert_eq!(case["case"]["record"]["item_code"], "36010000100012", "{case}");
    assert_eq!(case["case"]["record"]["item_name"], "《价格监督》检查");
    assert_eq!(results[1]["result"], "quarantined");
    assert_eq!(rules_of(&results[1]["violations"]), ["catalogue.item_name_ambiguous"]);
    let message = results[1]["violations"][0]["message_zh"].as_str().unwrap_or_default();
    assert!(
        message.contains("36010000100018") && message.contains(AGENCY_CODE),
        "{message}"
    );
    assert_eq!(
        rules_of(&results[2]["violations"]),
        ["catalogue.item_name_unknown"],
        "an item of 九江 does not apply to 南昌"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_officer_registry_loaded_by_another_instance_is_in_force_after_the_next_refresh() {
    let gw = Gw::start_with(Backend::Postgres, officers_config("auto")).await;
    let shutdown = Shutdown::default();
    let refresher = tokio::spawn(gateway::intake::officers::refresher(
        (*gw.runtime).clone(),
        shutdown.clone(),
    ));
    let in_force = || {
        gw.runtime
            .preparers
            .get(SOURCE)
            .and_then(|p| p.normalizer.rule_options().officers.clone())
            .map_or(0, |o| o.registry.len())
    };
    assert_eq!(in_force(), 0);
    // Another instance (or `gateway officers load`) writes to the shared store only.
    let list = normalizer::officers::parse_officers(
        registry_csv(&["36010020001"]).as_bytes(),
        normalizer::officers::RegistryFormat::Csv,
        None,
    )
    .expect("registry");
    let load = gateway::store::officers::RegistryLoad::grouped("cli:other", "other.csv", list, None);
    gateway::intake::officers::store_load(gw.runtime.store.as_ref(), &load)
        .await
        .expect("stored");
    let started = std::time::Instant::now();
    while in_force() != 1 {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "refreshed within refresh_seconds"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let answer = gw.push(&[nanchang_record(1, 0)]).await;
    assert!(
        rules_of(&answer["results"][0]["violations"]).contains(&"rule.officer_not_registered".to_string()),
        "{answer}"
    );
    shutdown.trigger();
    refresher.await.expect("refresher stops");
    gw.stop().await;
}

/// The nanchang mapping as a legacy system without supervision-item codes would need it.
fn item_code_awaits_supplement() -> Options {
    Options {
        mapping_edits: vec![(
            "from = [\"jgsxbm\", \"sxbm\"]         # 2020 年以前的记录用 sxbm\nsteps = [\"remove_spaces\", \"halfwidth\"]\nrequired = true".into(),
            "from = [\"jgsxbm\", \"sxbm\"]\nsteps = [\"remove_spaces\", \"halfwidth\"]\nsupplement = true\nreason = \"2019年以前的旧案件没有监管事项编码\"".into(),
        )],
        ..Options::default()
    }
}

async fn a_record_its_source_cannot_complete_is_accepted_awaiting_supplement_and_completed_by_its_department(
    backend: Backend,
) {
    let gw = Gw::start_with(backend, item_code_awaits_supplement()).await;
    let doc = openapi();
    let mut without_item = nanchang_record(1, 0);
    without_item.as_object_mut().expect("object").remove("jgsxbm");
    let answer = gw.push(&[without_item.clone(), nanchang_record(2, 0)]).await;
    assert_eq!(answer["results"][0]["result"], "accepted", "{answer}");
    assert_eq!(
        answer["results"][0]["warnings"][0]["rule"], "supplement.missing_field",
        "{answer}"
    );
    let code = answer["results"][0]["code"].as_str().expect("code").to_string();

    let (status, list) = gw.get("/api/supplements", DEPT).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_schema(&doc, "AwaitingList", &list);
    assert_eq!(list["total"], 1, "{list}");
    assert_eq!(list["items"][0]["code"], code.as_str());
    assert_eq!(list["items"][0]["awaiting"][0]["pointer"], "/item_code");
    assert_eq!(list["items"][0]["awaiting"][0]["title"], "监管事项目录编码");
    assert_eq!(
        list["items"][0]["awaiting"][0]["reason"],
        "2019年以前的旧案件没有监管事项编码"
    );
    assert_eq!(list["counts"][0]["cases"], 1);
    let (_, metrics) = gw.call("GET", "/metrics", Some(OPERATOR), None).await;
    let text = metrics
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| metrics.to_string());
    assert!(
        text.contains(&format!("gateway_cases_awaiting_supplement{{source=\"{SOURCE}\"}} 1")),
        "{text}"
    );

    // Another department neither sees nor completes it.
    let (_, others) = gw.get("/api/supplements", DEPT_OTHER).await;
    assert_eq!(others["total"], 0, "{others}");
    let (status, _) = gw.get(&format!("/api/supplements/{code}"), DEPT_OTHER).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let fill = json!({"fields": {"/item_code": "36010000100012"}, "note": "据纸质案卷补录"});
    let (status, _) = gw
        .post(&format!("/api/supplements/{code}/complete"), DEPT_OTHER, fill.clone())
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, detail) = gw.get(&format!("/api/supplements/{code}"), DEPT).await;
    assert_eq!(status, StatusCode::OK, "{detail}");
    assert_schema(&doc, "AwaitingDetail", &detail);
    assert_eq!(detail["record"]["supplement"]["awaiting"], json!(["/item_code"]));

    // Only awaited fields, and only valid values.
    let (status, refused) = gw
        .post(
            &format!("/api/supplements/{code}/complete"),
            DEPT,
            json!({"fields": {"/case_name": "改名"}}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert!(refused["error"]["message_en"]
        .as_str()
        .unwrap_or_default()
        .contains("/case_name"));
    let (status, invalid) = gw
        .post(
            &format!("/api/supplements/{code}/complete"),
            DEPT,
            json!({"fields": {"/item_code": "3601-0000"}}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{invalid}");
    assert_schema(&doc, "CompletionInvalid", &invalid);
    assert_eq!(invalid["violations"][0]["pointer"], "/item_code");

    let (status, done) = gw
        .post(&format!("/api/supplements/{code}/complete"), DEPT, fill.clone())
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_schema(&doc, "CompletionResult", &done);
    assert_eq!(
        (done["version"].as_i64(), done["awaiting"].as_array().map(Vec::len)),
        (Some(2), Some(0))
    );
    let (_, list) = gw.get("/api/supplements", DEPT).await;
    assert_eq!(list["total"], 0, "{list}");
    let (status, _) = gw.post(&format!("/api/supplements/{code}/complete"), DEPT, fill).await;
    assert_eq!(status, StatusCode::CONFLICT, "nothing awaits any more");

    let (_, case) = gw.get(&format!("/api/cases/{code}"), OPERATOR).await;
    assert_schema(&doc, "CaseView", &case);
    assert_eq!(case["case"]["record"]["item_code"], "36010000100012");
    assert_eq!(
        case["case"]["record"]["supplement"],
        json!({"supplied": ["/item_code"]})
    );
    assert_eq!(case["supplied"][0]["actor"], "amr-push");
    let v2 = &case["versions"][1];
    assert_eq!(v2["source_id"], SOURCE);
    assert_eq!(
        v2["deliveries"][0]["sink_id"], "platform",
        "the completion is delivered onward"
    );
    let (_, raw) = gw.get(&format!("/api/raw/{}", v2["raw_id"]), OPERATOR).await;
    assert!(raw.to_string().contains("completion_of"), "{raw}");
    let audit = gw.runtime.store.audit_log(100).await.expect("audit");
    let entry = audit
        .iter()
        .find(|a| a.action == "case.supplement")
        .unwrap_or_else(|| panic!("no case.supplement in {audit:?}"));
    assert_eq!(
        (entry.actor.as_str(), entry.subject.clone()),
        ("amr-push", format!("case:{code}"))
    );

    // The source re-sends the case, changed elsewhere and still without the code: the supplied
    // value fills the gap, the case does not fall back to awaiting.
    let mut resent = without_item;
    resent["ajmc"] = json!("测试案件1（更正）");
    let answer = gw.push(&[resent]).await;
    assert_eq!(answer["results"][0]["result"], "updated", "{answer}");
    let (_, case) = gw.get(&format!("/api/cases/{code}"), OPERATOR).await;
    assert_eq!(case["case"]["version"], 3);
    assert_eq!(case["case"]["record"]["item_code"], "36010000100012");
    assert_eq!(case["case"]["record"]["case_name"], "测试案件1（更正）");
    let (_, list) = gw.get("/api/supplements", OPERATOR).await;
    assert_eq!(list["total"], 0, "{list}");
    gw.stop().await;
}

on_both_backends!(a_record_its_source_cannot_complete_is_accepted_awaiting_supplement_and_completed_by_its_department);

/// A plan record as the plan system of `mappings/jiangxi-inspection-plans` sends it.
fn plan_record(number: &str, agency: &str, region: &str) -> Value {
    json!({
        "jhbh": number, "jhmc": format!("{number} 年度双随机抽查计划"), "jhlx": "年度计划", "jhnd": "2024",
        "bmmc": "某执法部门", "bmdm": agency, "xzqh": region, "basj": "2024-02-20", "lrsj": "2024-03-10",
        "sfsjcc": "是"
    })
}

async fn an_inspection_naming_a_plan_the_gateway_does_not_hold_is_flagged_once_plans_arrive(backend: Backend) {
    let plans = repo().join("mappings/jiangxi-inspection-plans/mapping.toml");
    let behaviour = repo().join("mappings/internet-plus-behaviour/mapping.toml");
    let extra = format!(
        "[[sources]]\nid = \"plans\"\nkind = \"push\"\nmapping = \"{}\"\n\n[[sources]]\nid = \"behaviour\"\nkind = \"push\"\nmapping = \"{}\"\n",
        plans.display(),
        behaviour.display()
    );
    let gw = Gw::start_with(
        backend,
        Options {
            extra,
            ..Options::default()
        },
    )
    .await;
    let samples: Vec<Value> =
        std::fs::read_to_string(repo().join("mappings/internet-plus-behaviour/samples/records.jsonl"))
            .expect("samples")
            .lines()
            .map(|l| serde_json::from_str(l).expect("sample"))
            .collect();
    let push = |source: &'static str, record: Value| {
        let gw = &gw;
        async move {
            let (status, answer) = gw.post(&format!("/api/ingest/{source}"), ADMIN, json!([record])).await;
            assert_eq!(status, StatusCode::OK, "{answer}");
            answer["results"][0].clone()
        }
    };
    let flagged = |result: &Value| {
        result["warnings"]
            .as_array()
            .is_some_and(|w| w.iter().any(|v| v["rule"] == "rule.plan_unknown"))
    };
    // No plan held yet (auto): not checked.
    let first = push("behaviour", samples[0].clone()).await;
    assert_eq!(first["result"], "accepted", "{first}");
    assert!(!flagged(&first), "{first}");
    // Plans flow in: a plan the gateway does not hold is flagged, a held one is not.
    let plan = push(
        "plans",
        plan_record("JH-360400-2024-0002", "113604000145872014", "360400"),
    )
    .await;
    assert_eq!(plan["result"], "accepted", "{plan}");
    assert!(
        plan["code"].as_str().unwrap_or_default().starts_with("JH2024360400"),
        "{plan}"
    );
    let unknown = push("behaviour", samples[17].clone()).await;
    assert_eq!(unknown["result"], "accepted", "{unknown}");
    assert!(flagged(&unknown), "{unknown}");
    let known = push("behaviour", samples[3].clone()).await;
    assert_eq!(known["result"], "accepted", "{known}");
    assert!(!flagged(&known), "{known}");
    // The plans held are read back from the store (at start and every few seconds).
    let held = gw.runtime.resolved.rules.known_plans.clone().expect("plan set");
    held.replace_all(Vec::<String>::new());
    let (plans_held, _) = gateway::runtime::reference::refresh(&gw.runtime)
        .await
        .expect("refresh");
    assert_eq!(plans_held, 1);
    assert!(held.contains("JH-360400-2024-0002"));
    // A plan is listed with the cases, under its own kind.
    let (_, case) = gw
        .get(
            &format!("/api/cases/{}", plan["code"].as_str().unwrap_or_default()),
            OPERATOR,
        )
        .await;
    assert_eq!(case["case"]["key"]["case_type"], "plan", "{case}");
    assert_schema(&openapi(), "CaseView", &case);
    gw.stop().await;
}

on_both_backends!(an_inspection_naming_a_plan_the_gateway_does_not_hold_is_flagged_once_plans_arrive);

// ---------------------------------------------------------------------------------------------
// Joint inspections (联合检查比对): list, side by side, merge, dismiss, undo, department scope.

mod joint_api {
    use super::support::gw::*;
    use super::support::joint::{commit, insp, AGENCY_A, AGENCY_B, AGENCY_C, OTHER_TARGET, TARGET};
    use super::support::Backend;
    use chrono::Utc;
    use gateway::store::{DeliveryStatus, Settlement};
    use reqwest::StatusCode;
    use serde_json::{json, Value};

    const THIRD_TARGET: &str = "360102199001011234";

    /// Three candidate groups: TARGET (A, B; from SOURCE), OTHER_TARGET (A, C; from SOURCE) and
    /// THIRD_TARGET (B, C; from OTHER, the other department's source).
    async fn seeded() -> Gw {
        seeded_on(Backend::Sqlite).await
    }

    async fn seeded_on(backend: Backend) -> Gw {
        let gw = Gw::start(backend).await;
        commit(
            &*gw.runtime.store,
            vec![
                insp("JA-1", AGENCY_A, TARGET, 1).source(SOURCE),
                insp("JA-2", AGENCY_B, TARGET, 4).source(SOURCE),
                insp("JA-3", AGENCY_A, OTHER_TARGET, 10).source(SOURCE),
                insp("JA-4", AGENCY_C, OTHER_TARGET, 12).source(SOURCE),
                insp("JA-5", AGENCY_B, THIRD_TARGET, 20).source(OTHER),
                insp("JA-6", AGENCY_C, THIRD_TARGET, 21).source(OTHER),
            ],
        )
        .await;
        gw
    }

    fn group_of(list: &Value, target: &str) -> i64 {
        list["items"]
            .as_array()
            .and_then(|items| items.iter().find(|g| g["target_id"] == target))
            .and_then(|g| g["group_id"].as_i64())
            .unwrap_or_else(|| panic!("no group of {target}: {list}"))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn joint_groups_list_filters_and_pages_with_exact_totals() {
        let gw = seeded().await;
        let (status, all) = gw.get("/api/joint-groups", OPERATOR).await;
        assert_eq!(status, StatusCode::OK, "{all}");
        assert_schema(&openapi(), "JointGroupList", &all);
        assert_eq!(
            (all["total"].as_i64(), all["offset"].as_i64(), all["limit"].as_i64()),
            (Some(3), Some(0), Some(100))
        );
        assert!(all["items"]
            .as_array()
            .is_some_and(|i| i.iter().all(|g| g["status"] == "candidate" && g["kind"] == "similar")));
        let (_, page) = gw.get("/api/joint-groups?limit=2&offset=2", OPERATOR).await;
        assert_eq!(
            (page["total"].as_i64(), page["items"].as_array().map(Vec::len)),
            (Some(3), Some(1))
        );
        let (_, by_agency) = gw.get(&format!("/api/joint-groups?agency={AGENCY_C}"), OWNER).await;
        assert_eq!(by_agency["total"], 2, "{by_agency}");
        let (_, by_target) = gw.get(&format!("/api/joint-groups?target={TARGET}"), OWNER).await;
        assert_eq!(by_target["total"], 1);
        let (_, merged) = gw.get("/api/joint-groups?status=merged", OPERATOR).await;
        assert_eq!(merged["total"], 0);
        let (status, bad) = gw.get("/api/joint-groups?status=open", OPERATOR).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(
            bad["error"]["message_en"]
                .as_str()
                .is_some_and(|m| m.contains("status")),
            "{bad}"
        );
        // The metrics show the open candidates.
        let (_, text) = gw.get("/metrics", ADMIN).await;
        assert!(
            text.as_str()
                .is_some_and(|t| t.contains("gateway_joint_candidate_groups 3")),
            "{text}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn merging_with_a_lead_agency_is_audited_and_queues_the_joint_record_and_undo_withdraws_it() {
        let gw = seeded().await;
        let (_, list) = gw.get("/api/joint-groups", OPERATOR).await;
        let id = group_of(&list, TARGET);
        let (status, detail) = gw.get(&format!("/api/joint-groups/{id}"), OPERATOR).await;
        assert_eq!(status, StatusCode::OK, "{detail}");
        assert_schema(&openapi(), "JointGroupDetail", &detail);
        let members = detail["members"].as_array().expect("members");
        assert_eq!(members.len(), 2);
        assert_eq!(members[0]["agency_credit_code"], AGENCY_A);
        assert_eq!(members[0]["check_date"], "2024-03-01");
        assert_eq!(members[1]["agency_credit_code"], AGENCY_B);
        assert_eq!(members[0]["result"], "no_problem");
        // A merge needs a reason and a lead agency among the members'.
        let url = format!("/api/joint-groups/{id}/merge");
        let (status, answer) = gw.post(&url, OPERATOR, json!({"reason": "同一次进门"})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            answer["error"]["message_en"]
                .as_str()
                .is_some_and(|m| m.contains("lead_agency")),
            "{answer}"
        );
        assert!(
            answer["error"]["message_zh"]
                .as_str()
                .is_some_and(|m| m.contains("lead_agency")),
            "{answer}"
        );
        let (status, answer) = gw
            .post(&url, OPERATOR, json!({"reason": "同一次进门", "lead_agency": AGENCY_C}))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        let (status, answer) = gw
            .post(&url, OPERATOR, json!({"reason": "同一次进门", "lead_agency": AGENCY_B}))
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(answer["group"]["status"], "merged");
        assert_eq!(answer["group"]["joint_id"], format!("LHJC-{id}"));
        assert_eq!(answer["group"]["decision"]["actor"], "ops-zhang");
        let (status, _) = gw
            .post(&url, OPERATOR, json!({"reason": "again", "lead_agency": AGENCY_B}))
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "merging twice");
        let audit = gw.runtime.store.audit_log(1).await.expect("audit");
        assert_eq!(
            (
                audit[0].action.as_str(),
                audit[0].actor.as_str(),
                audit[0].subject.clone()
            ),
            ("joint.merge", "ops-zhang", format!("joint-group:{id}"))
        );
        assert_eq!(audit[0].detail["reason"], "同一次进门");
        // The joint record waits in the outbox for the sink, as its own record type.
        let now = Utc::now();
        let lease = now + chrono::Duration::seconds(30);
        let claimed = gw
            .runtime
            .outbox
            .claim("platform", 100, now, lease)
            .await
            .expect("claim");
        let joint: Vec<_> = claimed
            .iter()
            .filter(|c| c.delivery.case_type == "joint_inspection")
            .collect();
        assert_eq!(joint.len(), 1, "one joint delivery");
        let d = &joint[0].delivery;
        assert_eq!(
            (d.unified_code.clone(), d.version, d.withdrawn),
            (format!("LHJC-{id}"), 1, false)
        );
        assert_eq!(d.idempotency_key, format!("LHJC-{id}:1"));
        assert_eq!(d.record["lead_agency"], AGENCY_B);
        assert_eq!(d.record["members"].as_array().map(Vec::len), Some(2));
        let settled = gw
            .runtime
            .outbox
            .settle(
                &[Settlement {
                    id: d.outbox_id,
                    status: DeliveryStatus::Delivered,
                    attempts: 1,
                    next_attempt_at: None,
                    last_error: None,
                    delivered_at: Some(Utc::now()),
                }],
                lease,
            )
            .await
            .expect("settle");
        assert_eq!(settled, 1);
        // Undo: a candidate again, the merge shown as the previous decision, the record withdrawn.
        let (status, answer) = gw
            .post(
                &format!("/api/joint-groups/{id}/undo"),
                ADMIN,
                json!({"reason": "误合并"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(answer["group"]["status"], "candidate");
        assert_eq!(answer["group"]["previous"]["status"], "merged");
        let claimed = gw
            .runtime
            .outbox
            .claim("platform", 100, Utc::now(), Utc::now() + chrono::Duration::seconds(30))
            .await
            .expect("claim");
        let withdrawal = claimed
            .iter()
            .find(|c| c.delivery.case_type == "joint_inspection")
            .expect("the withdrawal is queued");
        assert_eq!((withdrawal.delivery.version, withdrawal.delivery.withdrawn), (2, true));
        assert_eq!(withdrawal.delivery.record["operation"], "delete");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dead_joint_record_delivery_is_counted_and_re_driven_with_the_sink_sqlite() {
        dead_joint_record_delivery_is_counted_and_re_driven(Backend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dead_joint_record_delivery_is_counted_and_re_driven_with_the_sink_postgres() {
        dead_joint_record_delivery_is_counted_and_re_driven(Backend::Postgres).await;
    }

    async fn dead_joint_record_delivery_is_counted_and_re_driven(backend: Backend) {
        let gw = seeded_on(backend).await;
        let (_, list) = gw.get("/api/joint-groups", OPERATOR).await;
        let id = group_of(&list, TARGET);
        let (status, _) = gw
            .post(
                &format!("/api/joint-groups/{id}/merge"),
                OPERATOR,
                json!({"reason": "同一次进门", "lead_agency": AGENCY_A}),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let lease = Utc::now() + chrono::Duration::seconds(30);
        let claimed = gw
            .runtime
            .outbox
            .claim("platform", 100, Utc::now(), lease)
            .await
            .expect("claim");
        let joint = claimed
            .iter()
            .find(|c| c.delivery.case_type == "joint_inspection")
            .expect("the joint record");
        let dead = Settlement {
            id: joint.delivery.outbox_id,
            status: DeliveryStatus::Dead,
            attempts: 1,
            next_attempt_at: None,
            last_error: Some("422 refused".into()),
            delivered_at: None,
        };
        assert_eq!(gw.runtime.outbox.settle(&[dead], lease).await.expect("settle"), 1);
        let (_, deliveries) = gw.get("/api/deliveries", OPERATOR).await;
        let dead_count = deliveries["counts"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["sink_id"] == "platform" && c["status"] == "dead"))
            .map(|c| c["count"].clone());
        assert_eq!(dead_count, Some(json!(1)), "{deliveries}");
        let (status, answer) = gw
            .post("/api/deliveries/redrive", OPERATOR, json!({"sink": "platform"}))
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(answer["redriven"], 1);
        let again_lease = Utc::now() + chrono::Duration::seconds(30);
        let again = gw
            .runtime
            .outbox
            .claim("platform", 100, Utc::now(), again_lease)
            .await
            .expect("claim");
        let joint = again
            .iter()
            .find(|c| c.delivery.idempotency_key == format!("LHJC-{id}:1"))
            .expect("pending again");
        // One dead joint delivery re-driven by its (negative) id.
        let dead = Settlement {
            id: joint.delivery.outbox_id,
            status: DeliveryStatus::Dead,
            attempts: 2,
            next_attempt_at: None,
            last_error: Some("422 refused".into()),
            delivered_at: None,
        };
        assert_eq!(gw.runtime.outbox.settle(&[dead], again_lease).await.expect("settle"), 1);
        let url = format!("/api/deliveries/{}/redrive", joint.delivery.outbox_id);
        let (status, answer) = gw.post(&url, OPERATOR, json!({})).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(answer["redriven"], 1);
        let (status, _) = gw.post(&url, OPERATOR, json!({})).await;
        assert_eq!(status, StatusCode::CONFLICT, "no longer dead");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dismissing_needs_a_reason_named_in_both_languages() {
        let gw = seeded().await;
        let (_, list) = gw.get("/api/joint-groups", OPERATOR).await;
        let id = group_of(&list, OTHER_TARGET);
        let url = format!("/api/joint-groups/{id}/dismiss");
        for body in [json!({}), json!({"reason": "  "})] {
            let (status, answer) = gw.post(&url, OPERATOR, body).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
            assert_eq!(answer["error"]["code"], "field_required");
            assert!(answer["error"]["message_zh"]
                .as_str()
                .is_some_and(|m| m.contains("reason") && m.contains("原因")));
            assert!(answer["error"]["message_en"]
                .as_str()
                .is_some_and(|m| m.contains("reason")));
        }
        let (status, answer) = gw.post(&url, OPERATOR, json!({"reason": "不同日期的日常检查"})).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(answer["group"]["status"], "dismissed");
        assert_eq!(answer["group"]["decision"]["reason"], "不同日期的日常检查");
        let audit = gw.runtime.store.audit_log(1).await.expect("audit");
        assert_eq!(audit[0].action, "joint.dismiss");
        // Undoing a candidate is a conflict; undoing the dismissal makes it a candidate again.
        let undo = format!("/api/joint-groups/{id}/undo");
        let (status, _) = gw.post(&undo, OPERATOR, json!({"reason": "重新比对"})).await;
        assert_eq!(status, StatusCode::OK);
        let (status, _) = gw.post(&undo, OPERATOR, json!({"reason": "again"})).await;
        assert_eq!(status, StatusCode::CONFLICT);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_department_sees_only_groups_of_its_own_sources_and_decides_nothing() {
        let gw = seeded().await;
        let (_, all) = gw.get("/api/joint-groups", ADMIN).await;
        let theirs = group_of(&all, THIRD_TARGET);
        let ours = group_of(&all, TARGET);
        let (status, mine) = gw.get("/api/joint-groups", DEPT).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(mine["total"], 2, "{mine}");
        let (status, _) = gw.get(&format!("/api/joint-groups/{theirs}"), DEPT).await;
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "another department's group is not revealed"
        );
        let (status, _) = gw.get(&format!("/api/joint-groups/{ours}"), DEPT).await;
        assert_eq!(status, StatusCode::OK);
        let (_, other) = gw.get("/api/joint-groups", DEPT_OTHER).await;
        assert_eq!(other["total"], 1);
        assert_eq!(other["items"][0]["group_id"], theirs);
        let (status, _) = gw
            .post(
                &format!("/api/joint-groups/{ours}/dismiss"),
                DEPT,
                json!({"reason": "x"}),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "departments read only");
        let (status, _) = gw.get("/api/joint-groups/999999", ADMIN).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
}

/// `GET /api/publicity`: each department's penalties counted by whether they were made public
/// within 7 working days, the overdue ones listed, a department seeing its own sources only.
async fn penalties_publicity_is_counted_per_department_and_overdue_ones_are_listed(backend: Backend) {
    let gw = Gw::start(backend).await;
    let doc = openapi();
    let mut on_time = nanchang_record(1, 0);
    on_time["gsrq"] = json!("2024-01-26");
    let mut late = nanchang_record(3, 0);
    late["gsrq"] = json!("2024-02-05");
    let answer = gw.push(&[on_time, nanchang_record(2, 0), late]).await;
    assert_eq!(answer["results"][2]["result"], "accepted", "{answer}");
    assert_eq!(
        answer["results"][2]["warnings"][0]["rule"], "rule.publicity_overdue",
        "{answer}"
    );
    let unpublished = answer["results"][1]["code"].as_str().expect("code").to_string();

    // Decided 2024-01-22: the deadline is 2024-01-31.
    let (status, list) = gw.get("/api/publicity?on=2024-01-30", DEPT).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_schema(&doc, "PublicityList", &list);
    let agency = &list["agencies"][0];
    assert_eq!(agency["agency_credit_code"], AGENCY_CODE);
    assert_eq!(
        (
            agency["decided"].as_i64(),
            agency["on_time"].as_i64(),
            agency["late"].as_i64(),
            agency["due"].as_i64()
        ),
        (Some(3), Some(1), Some(1), Some(1)),
        "{list}"
    );
    let (_, list) = gw.get("/api/publicity?status=overdue", OPERATOR).await;
    assert_eq!(list["total"], 1, "{list}");
    assert_eq!(list["items"][0]["code"], unpublished.as_str());
    assert_eq!(list["items"][0]["deadline"], "2024-01-31");
    assert_eq!(list["items"][0]["status"], "overdue");

    let (_, other) = gw.get("/api/publicity", DEPT_OTHER).await;
    assert_eq!(
        (other["total"].as_i64(), other["agencies"].as_array().map(Vec::len)),
        (Some(0), Some(0))
    );
    let (status, bad) = gw.get("/api/publicity?status=soon", OPERATOR).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(bad.to_string().contains("soon"), "{bad}");
    let (status, bad) = gw.get("/api/publicity?from=2024-13-01", OPERATOR).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");

    let (_, metrics) = gw.call("GET", "/metrics", Some(OPERATOR), None).await;
    let text = metrics
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| metrics.to_string());
    assert!(text.contains("gateway_penalties_publicity_overdue 1"), "{text}");
    assert!(
        text.contains("gateway_bookkeeping_failures_total{kind=\"publicity_marks\"} 0"),
        "bookkeeping failures are served, at zero: {text}"
    );
    gw.stop().await;
}
on_both_backends!(penalties_publicity_is_counted_per_department_and_overdue_ones_are_listed);

/// The `[publicity]` rules and the joint index's mode are checked like every other key: an
/// unknown field code, an unknown penalty kind, a background index without PostgreSQL.
#[test]
fn config_check_names_wrong_publicity_rules_and_a_background_joint_index_on_sqlite() {
    let dir = tempfile::tempdir().expect("dir");
    let text = r#"[joint]
index = "background"

[publicity]
rename = { CF_NOPE = "x" }
withhold_kinds_only = ["scolding"]

[[sinks]]
id = "credit"
kind = "rest"
url = "http://127.0.0.1:9/upload"
content = "publicity"
case_types = ["coercion"]
"#;
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, text).expect("write");
    let out = support::gateway()
        .args(["config", "check", support::path_str(&path)])
        .output()
        .expect("run");
    let report = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{report}");
    for needle in [
        "joint.index",
        "needs the PostgreSQL store",
        "publicity.rename.CF_NOPE",
        "publicity.withhold_kinds_only",
        "scolding",
        "sinks[0] (id \"credit\").case_types",
        "coercion",
    ] {
        assert!(report.contains(needle), "report lacks {needle:?}:\n{report}");
    }
}
