//! The security test suite, for an auditor to read: who may call what (every route × every role
//! and no token, built from the route table itself), limits on failed authentications, request
//! rates and input sizes, slow clients, TLS, and secrets kept out of logs and answers. The README's
//! security section lists what was tried and what held.

mod support;

use gateway::server::{self, Access};
use gateway::telemetry::SourceCommand;
use reqwest::StatusCode;
use serde_json::json;
use std::collections::BTreeSet;
use support::gw::*;
use support::{nanchang_record, Backend};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_401_without_a_valid_token_403_outside_the_role_and_serves_the_roles_it_names() {
    let gw = Gw::start(Backend::Sqlite).await;
    let ids = seed(&gw).await;
    let roles = [
        ("admin", ADMIN),
        ("operator", OPERATOR),
        ("standards-owner", OWNER),
        ("department", DEPT),
    ];
    for (method, path, access) in server::route_table() {
        let url = concrete(path, &ids_for(path, &ids));
        let body = body_for(path);
        if access == Access::Public {
            let (status, _) = gw.call(method, &url, None, body.clone()).await;
            assert!(status.is_success(), "{method} {path} is open, got {status}");
            continue;
        }
        for token in [None, Some(BAD)] {
            let (status, answer) = gw.call(method, &url, token, body.clone()).await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} with {token:?}: {answer}"
            );
            assert_eq!(answer["error"]["code"], "unauthorized");
        }
        for (role, token) in roles {
            let (status, answer) = gw.call(method, &url, Some(token), body.clone()).await;
            if allowed(path, role) {
                assert!(
                    status != StatusCode::UNAUTHORIZED
                        && status != StatusCode::FORBIDDEN
                        && status != StatusCode::METHOD_NOT_ALLOWED
                        && answer["error"]["code"] != "route_not_found",
                    "{role} may {method} {path} ({url}), got {status} {answer}"
                );
            } else {
                assert_eq!(
                    status,
                    StatusCode::FORBIDDEN,
                    "{role} may not {method} {path}: {answer}"
                );
                assert_eq!(answer["error"]["code"], "forbidden");
            }
        }
    }
    // A 401 names the scheme.
    let resp = gw
        .http
        .get(format!("{}/api/sources", gw.base))
        .send()
        .await
        .expect("request");
    let challenge = resp.headers().get("www-authenticate").expect("WWW-Authenticate");
    assert!(challenge.to_str().expect("text").starts_with("Bearer"));
    // Department scope: its own source's quarantine and push, not another's.
    let (status, _) = gw.get(&format!("/api/quarantine?source={OTHER}"), DEPT).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "another department's source is not revealed"
    );
    let (status, _) = gw
        .post(&format!("/api/ingest/{OTHER}"), DEPT, json!([nanchang_record(5, 0)]))
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a department pushes to its own sources only"
    );
    let (status, _) = gw.get(&format!("/api/quarantine/{}", ids["id"]), DEPT_OTHER).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "another department's quarantine entry is not revealed"
    );
    let (status, list) = gw.get("/api/quarantine", DEPT_OTHER).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        list["items"],
        json!([]),
        "a department lists its own sources' entries only"
    );
    let (status, _) = gw
        .post(
            &format!("/api/ingest/{OTHER}"),
            DEPT_OTHER,
            json!([nanchang_record(6, 0)]),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "the other department pushes to its own source");
    // Sources: pull/resync need a pulled source with a running scheduler.
    let (status, answer) = gw.post("/api/sources/backfill/pull", OPERATOR, json!({})).await;
    assert_eq!(
        (status, answer["error"]["code"].clone()),
        (StatusCode::CONFLICT, json!("not_pulled"))
    );
    let (status, answer) = gw.post("/api/sources/drop/resync", OPERATOR, json!({})).await;
    assert_eq!(
        (status, answer["error"]["code"].clone()),
        (StatusCode::CONFLICT, json!("not_running"))
    );
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    gw.runtime.sources.attach_control("drop", tx);
    let (status, answer) = gw.post("/api/sources/drop/pull", OPERATOR, json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(rx.recv().await, Some(SourceCommand::PullNow));
    let (status, _) = gw.post("/api/sources/nope/pull", OPERATOR, json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, sources) = gw.get("/api/sources", OWNER).await;
    assert_eq!(status, StatusCode::OK);
    let listed: BTreeSet<&str> = sources["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|s| s["id"].as_str())
        .collect();
    assert_eq!(listed, BTreeSet::from(["backfill", "drop", OTHER, SOURCE]));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_over_its_rate_gets_429_with_retry_after_and_other_tokens_are_unaffected() {
    let gw = Gw::start_with(
        Backend::Sqlite,
        Options {
            rate: 1,
            burst: 2,
            ..Options::default()
        },
    )
    .await;
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..4 {
        let resp = gw
            .http
            .get(format!("{}/api/me", gw.base))
            .bearer_auth(OPERATOR)
            .send()
            .await
            .expect("request");
        statuses.push(resp.status());
        if resp.status() == StatusCode::TOO_MANY_REQUESTS {
            retry_after = resp.headers().get("retry-after").cloned();
        }
    }
    assert_eq!(&statuses[..2], &[StatusCode::OK, StatusCode::OK]);
    assert!(statuses[2..].contains(&StatusCode::TOO_MANY_REQUESTS), "{statuses:?}");
    assert!(retry_after.is_some(), "429 says when to retry");
    let (status, me) = gw.get("/api/me", OWNER).await;
    assert_eq!(status, StatusCode::OK, "the limit is per token");
    assert_eq!(me["name"], "standards-wang");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_name_the_token_holder_and_never_hold_a_token() {
    let gw = Gw::start(Backend::Sqlite).await;
    for token in ALL_TOKENS {
        let _ = gw.get("/api/sources", token).await;
    }
    gw.push(&[nanchang_record(70, 0)]).await;
    gw.stop().await;
    let text = log_text();
    assert!(text.contains("token=ops-zhang"), "request spans carry the token's name");
    assert!(text.contains("route=/api/sources"), "request spans carry the route");
    assert!(text.contains("token=amr-push"));
    for token in ALL_TOKENS {
        assert!(!text.contains(token), "a token appears in the logs");
        assert!(!text.contains(&sha(token)), "a token's hash appears in the logs");
    }
}

/// Failed authentications: 200 requests with a wrong token from one address within a minute
/// are answered 401 until the limit, then 429 with `Retry-After` (counted in the metrics), and a
/// right token from the same address is still served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_tokens_from_one_address_are_limited_and_a_right_token_still_works() {
    let gw = Gw::start_with(
        Backend::Sqlite,
        Options {
            auth_failures: 20,
            ..Options::default()
        },
    )
    .await;
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..200 {
        let resp = gw
            .http
            .get(format!("{}/api/sources", gw.base))
            .bearer_auth(BAD)
            .send()
            .await
            .expect("request");
        if resp.status() == StatusCode::TOO_MANY_REQUESTS {
            retry_after = resp.headers().get("retry-after").cloned();
        }
        statuses.push(resp.status());
    }
    let unauthorized = statuses.iter().filter(|s| **s == StatusCode::UNAUTHORIZED).count();
    let limited = statuses.iter().filter(|s| **s == StatusCode::TOO_MANY_REQUESTS).count();
    assert_eq!((unauthorized, limited), (20, 180), "{statuses:?}");
    assert!(retry_after.is_some(), "429 says when to try again");
    let (status, me) = gw.get("/api/me", OPERATOR).await;
    assert_eq!(status, StatusCode::OK, "a right token is served: {me}");
    // Requests without any token are not guesses and are not limited.
    let (status, _) = gw.call("GET", "/api/sources", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let metrics = gw
        .http
        .get(format!("{}/metrics", gw.base))
        .bearer_auth(OPERATOR)
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains(r#"gateway_limit_refusals_total{limit="auth_failures"} 180"#),
        "{metrics}"
    );
    gw.stop().await;
}

/// Read what the server sends until it closes the connection (or `within` passes): the bytes,
/// and whether it closed.
async fn read_until_closed(stream: &mut tokio::net::TcpStream, within: std::time::Duration) -> (Vec<u8>, bool) {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (got, true),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => return (got, false),
        }
    }
}

/// Slow clients: connections that send half a request header are closed after
/// `header_timeout_seconds`, so are idle kept-alive ones; a body trickled slower than
/// `body_timeout_seconds` allows is answered 408 and nothing is taken; the server keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_closed_within_the_timeouts_and_others_are_still_served() {
    use tokio::io::AsyncWriteExt;
    let gw = Gw::start_with(
        Backend::Sqlite,
        Options {
            server_extra: "header_timeout_seconds = 1\nbody_timeout_seconds = 2\n".into(),
            ..Options::default()
        },
    )
    .await;
    let addr = gw.base.trim_start_matches("http://").to_string();
    let mut slow = Vec::new();
    for _ in 0..50 {
        let mut s = tokio::net::TcpStream::connect(&addr).await.expect("connect");
        s.write_all(b"GET /api/sources HTTP/1.1\r\nHost: x\r\nAuthoriz")
            .await
            .expect("write");
        slow.push(s);
    }
    // While they hang, others are served.
    let (status, _) = gw.get("/api/me", OPERATOR).await;
    assert_eq!(status, StatusCode::OK);
    let started = std::time::Instant::now();
    for s in &mut slow {
        let (_, closed) = read_until_closed(s, std::time::Duration::from_secs(5)).await;
        assert!(closed, "a half-sent header is closed");
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    // An idle kept-alive connection is closed too.
    let mut idle = tokio::net::TcpStream::connect(&addr).await.expect("connect");
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let (answer, closed) = read_until_closed(&mut idle, std::time::Duration::from_secs(4)).await;
    assert!(
        String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"),
        "served first"
    );
    assert!(closed, "then closed when idle past the header timeout");
    // A trickled body.
    let mut trickle = tokio::net::TcpStream::connect(&addr).await.expect("connect");
    let head = format!(
        "POST /api/ingest/{SOURCE} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {DEPT}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
    );
    trickle.write_all(head.as_bytes()).await.expect("write");
    let writer = tokio::spawn(async move {
        for _ in 0..20 {
            if trickle.write_all(b" ").await.is_err() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        }
        trickle
    });
    let mut trickle = writer.await.expect("writer");
    let (answer, _) = read_until_closed(&mut trickle, std::time::Duration::from_secs(3)).await;
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("body_timeout"), "{text}");
    gw.stop().await;
}

/// Oversize and malformed inputs of every kind: each is refused whole with a clear answer, or
/// quarantined with a reason, and the gateway keeps going.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_and_malformed_inputs_are_refused_or_quarantined_with_reasons() {
    use tokio::io::AsyncWriteExt;
    let gw = Gw::start_with(
        Backend::Sqlite,
        Options {
            server_extra: "max_records_per_push = 100\n".into(),
            extra: "[limits]\nmax_record_bytes = 200000\nmax_violations_per_record = 50\n".into(),
            ..Options::default()
        },
    )
    .await;
    let push = |ct: &'static str, body: Vec<u8>| gw.push_raw(SOURCE, DEPT, ct, body);

    // A 1 GiB body is refused from its declared length, without being read.
    let addr = gw.base.trim_start_matches("http://").to_string();
    let mut big = tokio::net::TcpStream::connect(&addr).await.expect("connect");
    let head = format!(
        "POST /api/ingest/{SOURCE} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {DEPT}\r\nContent-Type: application/json\r\nContent-Length: 1073741824\r\n\r\n{{"
    );
    big.write_all(head.as_bytes()).await.expect("write");
    let (answer, _) = read_until_closed(&mut big, std::time::Duration::from_secs(3)).await;
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");

    // A body over the source's byte limit (20,000 bytes).
    let (status, answer) = push("application/json", vec![b' '; 30_000]).await;
    assert_eq!(
        (status, answer["error"]["code"].clone()),
        (StatusCode::PAYLOAD_TOO_LARGE, json!("payload_too_large"))
    );

    // More records than one push may carry: nothing taken.
    let lines: String = (0..101).map(|_| "{}\n").collect();
    let (status, answer) = push("application/x-ndjson", lines.into_bytes()).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    assert_eq!(answer["error"]["code"], "too_many_records");
    assert!(answer["error"]["message_en"]
        .as_str()
        .unwrap_or_default()
        .contains("max_records_per_push"));
    assert_eq!(
        gw.runtime.store.stats().await.expect("stats").raw_records,
        0,
        "nothing was taken"
    );

    // An undecodable byte in a body whose charset is named.
    let mut gbk = encoding_rs::GBK
        .encode(&nanchang_record(1, 0).to_string())
        .0
        .into_owned();
    gbk.insert(10, 0xFF);
    let (status, answer) = push("application/json; charset=gbk", gbk).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["error"]["code"], "undecodable_body");
    assert!(
        answer["error"]["message_en"]
            .as_str()
            .unwrap_or_default()
            .contains("offset 10"),
        "{answer}"
    );

    // XML nested deeper than allowed is refused whole.
    let deep = format!("<cases>{}{}</cases>", "<a>".repeat(200), "</a>".repeat(200));
    let (status, answer) = push("application/xml", deep.into_bytes()).await;
    assert_eq!(
        (status, answer["error"]["code"].clone()),
        (StatusCode::BAD_REQUEST, json!("malformed_body")),
        "{answer}"
    );

    // Records: too large, nested too deep, and with 10,000 violations, in one JSON-lines push.
    let too_large = json!({"ajbh": "BIG-1", "wfss": "x".repeat(300_000)}).to_string();
    let deep_json = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let mut many = nanchang_record(3, 0);
    many["cflb"] = json!((0..10_000).map(|i| format!("未知{i}")).collect::<Vec<_>>().join("、"));
    let body = format!("{too_large}\n{deep_json}\n{many}\n");
    let (status, answer) = gw
        .push_raw(OTHER, DEPT_OTHER, "application/x-ndjson", body.into_bytes())
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let results = answer["results"].as_array().expect("results");
    let rules = |i: usize| -> Vec<String> {
        results[i]["violations"]
            .as_array()
            .map(|v| {
                v.iter()
                    .filter_map(|x| x["rule"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(results[0]["result"], "quarantined");
    assert_eq!(rules(0), ["input.too_large"]);
    let entry = results[0]["quarantine_id"].as_i64().expect("entry");
    let stored = gw.runtime.store.quarantine_get(entry).await.expect("entry");
    let raw = gw.runtime.store.raw_record(stored.raw_id).await.expect("raw");
    assert_eq!(raw.payload.len(), 64 * 1024, "the quarantine keeps the first 64 KiB");
    assert_eq!(
        raw.content_hash,
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(too_large.as_bytes()))
    );
    assert_eq!(rules(1), ["input.unreadable"], "JSON nested past the parser's limit");
    let many_rules = rules(2);
    assert_eq!(many_rules.len(), 51, "the first 50 violations, then their sum");
    assert_eq!(many_rules[50], "violations.truncated");
    assert_eq!(results[2]["violations"][50]["severity"], "error");
    // The gateway is still serving.
    let (status, _) = gw.get("/api/me", OPERATOR).await;
    assert_eq!(status, StatusCode::OK);
    gw.stop().await;
}

/// Run the openssl tool in `dir`.
fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("the openssl tool runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A throwaway certificate authority and a server certificate it signed for `localhost` (and
/// 127.0.0.1), made with the openssl tool: (CA certificate, server certificate chain, key).
fn test_pki(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=test CA",
        ]
        .iter()
        .copied()
        .chain(["-keyout", "ca-key.pem", "-out", "ca.pem"])
        .collect::<Vec<_>>(),
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "key.pem",
            "-out",
            "req.pem",
        ],
    );
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .expect("ext");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "req.pem",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca-key.pem",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "ext.cnf",
            "-out",
            "cert.pem",
        ],
    );
    (dir.join("ca.pem"), dir.join("cert.pem"), dir.join("key.pem"))
}

/// With `tls_cert_file` / `tls_key_file` the API is served over HTTPS only: a client that trusts
/// the certificate is served, plain HTTP on the same port gets no answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_is_served_over_https_when_a_certificate_is_configured() {
    let certs = tempfile::tempdir().expect("temp dir");
    let (ca, cert, key) = test_pki(certs.path());
    let mut gw = Gw::start_with(
        Backend::Sqlite,
        Options {
            server_extra: format!(
                "tls_cert_file = \"{}\"\ntls_key_file = \"{}\"\n",
                cert.display(),
                key.display()
            ),
            ..Options::default()
        },
    )
    .await;
    assert!(gw.base.starts_with("https://localhost:"), "{}", gw.base);
    let pem = std::fs::read(&ca).expect("CA certificate");
    gw.http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("pem"))
        .build()
        .expect("client");
    let (status, me) = gw.get("/api/me", OPERATOR).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["name"], "ops-zhang");
    let plain = gw.base.replace("https://", "http://");
    let answer = reqwest::Client::new()
        .get(format!("{plain}/healthz"))
        .timeout(std::time::Duration::from_secs(5))
        .send()
        .await;
    assert!(
        answer.is_err(),
        "plain HTTP is not answered on an HTTPS port: {answer:?}"
    );
    let untrusted = reqwest::Client::new().get(format!("{}/healthz", gw.base)).send().await;
    assert!(
        untrusted.is_err(),
        "a client that does not trust the certificate cannot connect"
    );
    gw.stop().await;
}

/// The configured secrets (tokens, their hashes, the store's and a sink's database passwords)
/// appear neither in the log of a whole session of requests — successful, refused and failing
/// ones — nor in any answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_appear_in_the_log_or_in_any_answer() {
    const STORE_PASSWORD: &str = "Store-Pw-7Hq2Lk9";
    const SINK_PASSWORD: &str = "Sink-Pw-3Rt8Vn5";
    let gw = Gw::start_with(
        Backend::Postgres,
        Options {
            store_password: Some(STORE_PASSWORD.into()),
            sinks: format!("[[sinks]]\nid = \"platform\"\nkind = \"postgres\"\nurl = \"postgres://gateway:{SINK_PASSWORD}@127.0.0.1:9/platform\"\n"),
            ..Options::default()
        },
    )
    .await;
    let ids = seed(&gw).await;
    let mut answers = Vec::new();
    for (method, path, _) in server::route_table() {
        let url = concrete(path, &ids_for(path, &ids));
        for token in [None, Some(BAD), Some(ADMIN), Some(DEPT)] {
            let (_, answer) = gw.call(method, &url, token, body_for(path)).await;
            answers.push(answer.to_string());
        }
    }
    // Let the sink fail against its unreachable database and log it.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    gw.stop().await;
    let log = log_text();
    let mut secrets: Vec<String> = ALL_TOKENS.iter().map(|t| t.to_string()).collect();
    secrets.extend(ALL_TOKENS.iter().map(|t| sha(t)));
    secrets.push(STORE_PASSWORD.into());
    secrets.push(SINK_PASSWORD.into());
    for secret in &secrets {
        assert!(
            !log.contains(secret.as_str()),
            "the log holds a secret ({} characters)",
            secret.len()
        );
        for answer in &answers {
            assert!(!answer.contains(secret.as_str()), "an answer holds a secret: {answer}");
        }
    }
}

/// At most `max_connections` connections are served at once: with all taken by clients that
/// never finish their headers, the next client waits in the accept queue and is served as soon
/// as the header timeout frees a place; it is not refused and the gateway does not fall over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_limit_wait_for_a_free_place_and_are_then_served() {
    use tokio::io::AsyncWriteExt;
    let gw = Gw::start_with(
        Backend::Sqlite,
        Options {
            server_extra: "header_timeout_seconds = 1\nmax_connections = 3\n".into(),
            ..Options::default()
        },
    )
    .await;
    let addr = gw.base.trim_start_matches("http://").to_string();
    let mut hogs = Vec::new();
    for _ in 0..3 {
        let mut s = tokio::net::TcpStream::connect(&addr).await.expect("connect");
        s.write_all(b"GET /healthz HTTP/1.1\r\nHo").await.expect("write");
        hogs.push(s);
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let started = std::time::Instant::now();
    let (status, me) = gw.get("/api/me", OPERATOR).await;
    let waited = started.elapsed();
    assert_eq!(status, StatusCode::OK, "{me}");
    assert!(
        waited >= std::time::Duration::from_millis(500),
        "served only once a place was free ({waited:?})"
    );
    assert!(waited < std::time::Duration::from_secs(5), "{waited:?}");
    gw.stop().await;
}
