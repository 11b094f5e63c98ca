//! The SOAP/XML pull source against real HTTP peers on 127.0.0.1: a GBK SOAP 1.1 service that
//! checks WS-Security digests, SOAP 1.1 and 1.2 faults, a DTD smuggled into an answer, GB18030
//! answers with a malformed record.

mod support;

use adapters::sources::{PullMode, SourceError};
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::Router;
use base64::Engine as _;
use normalizer::xml_tree::{find_records, parse_xml, XmlLimits};
use serde_json::{json, Value};
use sha1::{Digest, Sha1};
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use support::{assert_exactly_once, run, serve, source};

const ENVELOPE: &str = r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:ws="http://ws.example/">
  <soapenv:Header/>
  <soapenv:Body>
    <ws:queryCases>
      <areaCode>{{areaCode}}</areaCode>
      <page>{{page}}</page>
      <size>{{page_size}}</size>
      <since>{{since}}</since>
      <until>{{until}}</until>
    </ws:queryCases>
  </soapenv:Body>
</soapenv:Envelope>
"#;

fn text(tree: &Value, path: &str) -> String {
    match find_records(tree, path).first() {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Object(m)) => m.get("#text").and_then(Value::as_str).unwrap_or_default().to_string(),
        _ => String::new(),
    }
}

/// Check a WS-Security UsernameToken with a PasswordDigest; returns the nonce.
fn verify_digest(tree: &Value, username: &str, password: &str) -> Result<String, String> {
    let token = "Envelope.Header.Security.UsernameToken";
    if text(tree, &format!("{token}.Username")) != username {
        return Err("wrong user".into());
    }
    let kind = find_records(tree, &format!("{token}.Password"))
        .first()
        .and_then(|p| p.get("@Type"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if !kind.ends_with("#PasswordDigest") {
        return Err(format!("not a digest: {kind}"));
    }
    let nonce_b64 = text(tree, &format!("{token}.Nonce"));
    let created = text(tree, &format!("{token}.Created"));
    let nonce = base64::engine::general_purpose::STANDARD
        .decode(&nonce_b64)
        .map_err(|e| e.to_string())?;
    let mut sha = Sha1::new();
    sha.update(&nonce);
    sha.update(created.as_bytes());
    sha.update(password.as_bytes());
    let expected = base64::engine::general_purpose::STANDARD.encode(sha.finalize());
    if text(tree, &format!("{token}.Password")) != expected {
        return Err("digest mismatch".into());
    }
    let created = chrono::DateTime::parse_from_rfc3339(&created).map_err(|e| e.to_string())?;
    if (chrono::Utc::now() - created.with_timezone(&chrono::Utc))
        .num_seconds()
        .abs()
        > 300
    {
        return Err("stale".into());
    }
    Ok(nonce_b64)
}

fn gbk(text: &str) -> Vec<u8> {
    encoding_rs::GBK.encode(text).0.into_owned()
}

#[tokio::test]
async fn a_gbk_soap11_service_with_ws_security_digest_gives_every_record_exactly_once() {
    let calls = Arc::new(AtomicUsize::new(0));
    let nonces: Arc<Mutex<HashSet<String>>> = Default::default();
    let requests: Arc<Mutex<Vec<Value>>> = Default::default();
    let (c, n, log) = (calls.clone(), nonces.clone(), requests.clone());
    let r = requests.clone();
    let router = Router::new().route(
        "/ws/CaseService",
        post(move |headers: HeaderMap, body: Bytes| async move {
            let call = c.fetch_add(1, SeqCst) + 1;
            let h = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
            assert_eq!(h("soapaction"), "\"urn:queryCases\"");
            assert!(h("content-type").starts_with("text/xml; charset=utf-8"), "{}", h("content-type"));
            let tree = parse_xml(&body, &XmlLimits::default()).unwrap();
            match verify_digest(&tree, "gateway", "pw-2024") {
                Ok(nonce) if n.lock().unwrap().insert(nonce.clone()) => {}
                Ok(_) => return (StatusCode::UNAUTHORIZED, "nonce replayed").into_response(),
                Err(e) => return (StatusCode::UNAUTHORIZED, e).into_response(),
            }
            if call == 2 {
                return (StatusCode::SERVICE_UNAVAILABLE, "busy").into_response();
            }
            assert_eq!(text(&tree, "Envelope.Body.queryCases.areaCode"), "3601<00>&");
            log.lock().unwrap().push(tree.clone());
            let page: usize = text(&tree, "Envelope.Body.queryCases.page").parse().unwrap();
            let size: usize = text(&tree, "Envelope.Body.queryCases.size").parse().unwrap();
            let mut xml = String::from(
                "<?xml version=\"1.0\" encoding=\"GBK\"?>\n<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body><ns2:queryCasesResponse xmlns:ns2=\"http://ws.example/\"><return><total>25</total>",
            );
            for i in (0..25).skip((page - 1) * size).take(size) {
                xml.push_str(&format!(
                    "<case id=\"{i}\"><ajbh>AJ{i:04}</ajbh><dsr><![CDATA[南昌<某>公司]]></dsr><wfxw>超标排放</wfxw><wfxw>未批先建</wfxw><gxsj>2024-05-01 08:00:{i:02}</gxsj></case>"
                ));
            }
            xml.push_str("</return></ns2:queryCasesResponse></soap:Body></soap:Envelope>");
            ([("content-type", "text/xml")], gbk(&xml)).into_response()
        }),
    );
    let addr = serve(router).await;
    let template = std::env::temp_dir().join(format!("gw-soap-envelope-{}.xml", std::process::id()));
    std::fs::write(&template, ENVELOPE).unwrap();
    let src = source(
        "soap",
        &format!(
            r#"
url = "http://{addr}/ws/CaseService"
action = "urn:queryCases"
envelope_template_file = "{}"
params = {{ areaCode = "3601<00>&" }}
username = "gateway"
password = "pw-2024"
ws_security = "password_digest"
records_path = "Envelope.Body.queryCasesResponse.return.case"
total_path = "Envelope.Body.queryCasesResponse.return.total"
pagination = "page"
page_size = 10
watermark_path = "gxsj"
retry_initial_ms = 10
"#,
            template.display()
        ),
    );
    let result = run(&src, None, PullMode::Incremental).await;
    std::fs::remove_file(&template).ok();
    assert!(result.error.is_none(), "{:?}", result.error);
    let ids: Vec<String> = (0..25).map(|i| format!("AJ{i:04}")).collect();
    assert_exactly_once(&result.field("ajbh"), &ids);
    assert_eq!(calls.load(SeqCst), 4, "3 pages + 1 retry");
    assert_eq!(nonces.lock().unwrap().len(), 4, "a fresh nonce for every attempt");
    let first = &result.records[0];
    assert_eq!(first["@id"], "0");
    assert_eq!(first["dsr"], "南昌<某>公司", "CDATA as text, decoded from GBK");
    assert_eq!(
        first["wfxw"],
        json!(["超标排放", "未批先建"]),
        "repeated elements as a list"
    );
    assert_eq!(serde_json::from_str::<Value>(&result.payloads[0]).unwrap(), *first);
    assert_eq!(result.positions[24], "page 3 #5");
    assert_eq!(
        result.cursors,
        [None, None, Some("2024-05-01T00:00:24.000Z".to_string())]
    );
    let first_since = text(&requests.lock().unwrap()[0], "Envelope.Body.queryCases.since");
    assert_eq!(first_since, "", "no since on a first pull");

    // The next run asks from the cursor less the default overlap of 300 seconds, China time.
    let next = run(&src, Some("2024-05-01T00:00:24.000Z"), PullMode::Incremental).await;
    assert!(next.error.is_none(), "{:?}", next.error);
    let requests = r.lock().unwrap();
    assert_eq!(
        text(&requests[3], "Envelope.Body.queryCases.since"),
        "2024-05-01 07:55:24"
    );
}

#[tokio::test]
async fn a_soap12_fault_is_an_answer_error_with_code_and_reason() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let router = Router::new().route(
        "/ws",
        post(move |headers: HeaderMap| async move {
            c.fetch_add(1, SeqCst);
            let ct = headers.get("content-type").unwrap().to_str().unwrap().to_string();
            assert_eq!(ct, "application/soap+xml; charset=utf-8; action=\"urn:queryCases\"");
            assert!(headers.get("soapaction").is_none());
            let fault = r#"<?xml version="1.0"?><env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope"><env:Body><env:Fault><env:Code><env:Value>env:Receiver</env:Value><env:Subcode><env:Value>m:DbBusy</env:Value></env:Subcode></env:Code><env:Reason><env:Text xml:lang="zh">数据库维护中</env:Text></env:Reason></env:Fault></env:Body></env:Envelope>"#;
            (StatusCode::INTERNAL_SERVER_ERROR, [("content-type", "application/soap+xml")], fault)
        }),
    );
    let addr = serve(router).await;
    let envelope = r#"<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope"><env:Body><q><page>{{page}}</page></q></env:Body></env:Envelope>"#;
    let src = source(
        "soap",
        &format!("url = \"http://{addr}/ws\"\nsoap_version = \"1.2\"\naction = \"urn:queryCases\"\nrecords_path = \"Envelope.Body.r.case\"\nenvelope_template = '{envelope}'"),
    );
    let result = run(&src, None, PullMode::Incremental).await;
    match &result.error {
        Some(SourceError::Answer { code, message }) => {
            assert_eq!(code, "env:Receiver/m:DbBusy");
            assert_eq!(message, "数据库维护中");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(calls.load(SeqCst), 1, "a fault is the service's answer: not retried");
    assert!(src.health().last_error.unwrap().1.contains("数据库维护中"));
}

#[tokio::test]
async fn a_soap11_fault_answers_a_request_with_a_plain_text_password() {
    let router = Router::new().route(
        "/ws",
        post(|body: Bytes| async move {
            let tree = parse_xml(&body, &XmlLimits::default()).unwrap();
            let password = find_records(&tree, "Envelope.Header.Security.UsernameToken.Password")[0].clone();
            assert!(password["@Type"].as_str().unwrap().ends_with("#PasswordText"));
            assert_eq!(password["#text"], "p&w<");
            assert_eq!(text(&tree, "Envelope.Body.q.user"), "gw");
            let fault = r#"<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><soap:Fault><faultcode>soap:Client</faultcode><faultstring>页码超出范围</faultstring></soap:Fault></soap:Body></soap:Envelope>"#;
            (StatusCode::INTERNAL_SERVER_ERROR, [("content-type", "text/xml; charset=utf-8")], fault)
        }),
    );
    let addr = serve(router).await;
    let envelope = r#"<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><q><user>{{username}}</user></q></soap:Body></soap:Envelope>"#;
    let src = source(
        "soap",
        &format!("url = \"http://{addr}/ws\"\nrecords_path = \"Envelope.Body.r.case\"\nenvelope_template = '{envelope}'\nusername = \"gw\"\npassword = \"p&w<\"\nws_security = \"password_text\""),
    );
    let result = run(&src, None, PullMode::Incremental).await;
    match &result.error {
        Some(SourceError::Answer { code, message }) => {
            assert_eq!((code.as_str(), message.as_str()), ("soap:Client", "页码超出范围"))
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_dtd_in_an_answer_is_refused_and_nothing_is_yielded() {
    let router = Router::new().route(
        "/ws",
        post(|| async {
            let evil = r#"<?xml version="1.0"?><!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><r><case>&xxe;</case></r></soap:Body></soap:Envelope>"#;
            ([("content-type", "text/xml")], evil)
        }),
    );
    let addr = serve(router).await;
    let envelope = r#"<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><q/></soap:Body></soap:Envelope>"#;
    let src = source(
        "soap",
        &format!(
            "url = \"http://{addr}/ws\"\nrecords_path = \"Envelope.Body.r.case\"\nenvelope_template = '{envelope}'"
        ),
    );
    let result = run(&src, None, PullMode::Incremental).await;
    assert!(result.records.is_empty() && result.unparsed.is_empty());
    match &result.error {
        Some(SourceError::Protocol(m)) => assert!(m.contains("DOCTYPE"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(src.health().failures, 1);
}

#[tokio::test]
async fn gb18030_by_content_type_wins_over_the_prolog_and_a_malformed_record_is_set_aside() {
    let router = Router::new().route(
        "/ws",
        post(|| async {
            let gb = encoding_rs::GB18030;
            let mut body = gb
                .encode("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Envelope><Body><r><case><ajbh>AJ1</ajbh><dsr>𡃁记商行</dsr></case><case><ajbh>AJ2</ajbh><dsr>坏")
                .0
                .into_owned();
            body.extend_from_slice(&[0x81, b'<']);
            body.extend_from_slice(&gb.encode("/dsr></case><case><ajbh>AJ3</ajbh><dsr>好</dsr></case></r></Body></Envelope>").0);
            ([("content-type", "text/xml; charset=GB18030")], body)
        }),
    );
    let addr = serve(router).await;
    let envelope = r#"<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><q/></soap:Body></soap:Envelope>"#;
    let src = source(
        "soap",
        &format!(
            "url = \"http://{addr}/ws\"\nrecords_path = \"Envelope.Body.r.case\"\nenvelope_template = '{envelope}'"
        ),
    );
    let result = run(&src, None, PullMode::Incremental).await;
    assert!(result.error.is_none(), "{:?}", result.error);
    assert_eq!(result.field("ajbh"), ["AJ1", "AJ3"]);
    assert_eq!(result.field("dsr"), ["𡃁记商行", "好"]);
    assert_eq!(result.unparsed.len(), 1);
    assert_eq!(result.unparsed[0].0, "page 1 #2");
    assert!(result.unparsed[0].1.contains("gb18030"), "{}", result.unparsed[0].1);
}

#[tokio::test]
async fn a_business_result_code_other_than_success_ends_the_run_with_code_and_message() {
    let code = Arc::new(Mutex::new("E002"));
    let calls = Arc::new(AtomicUsize::new(0));
    let (c, n) = (code.clone(), calls.clone());
    let router = Router::new().route(
        "/ws",
        post(move || async move {
            n.fetch_add(1, SeqCst);
            let code = *c.lock().unwrap();
            let message = if code == "E002" { "page size out of range" } else { "成功" };
            // The error answer still carries a record: none of it may be taken.
            let answer = format!(
                r#"<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><ns2:queryCasesResponse xmlns:ns2="http://ws.example/"><return><resultCode>{code}</resultCode><resultMsg>{message}</resultMsg><case><ajbh>AJ1</ajbh></case></return></ns2:queryCasesResponse></soap:Body></soap:Envelope>"#
            );
            ([("content-type", "text/xml; charset=utf-8")], answer)
        }),
    );
    let addr = serve(router).await;
    let envelope = r#"<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><q><page>{{page}}</page></q></soap:Body></soap:Envelope>"#;
    let src = source(
        "soap",
        &format!(
            "url = \"http://{addr}/ws\"\nrecords_path = \"Envelope.Body.queryCasesResponse.return.case\"\nenvelope_template = '{envelope}'\n\
             status_path = \"Envelope.Body.queryCasesResponse.return.resultCode\"\nsuccess_values = [\"0000\", \"S000\"]\n\
             message_path = \"Envelope.Body.queryCasesResponse.return.resultMsg\""
        ),
    );
    let result = run(&src, None, PullMode::Incremental).await;
    assert!(result.records.is_empty(), "{:?}", result.records);
    match &result.error {
        Some(SourceError::Answer { code, message }) => {
            assert_eq!((code.as_str(), message.as_str()), ("E002", "page size out of range"))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        calls.load(SeqCst),
        1,
        "a business error is the service's answer: not retried"
    );
    let health = src.health();
    assert_eq!(health.failures, 1);
    assert!(health.last_error.unwrap().1.contains("E002"));

    *code.lock().unwrap() = "S000";
    let result = run(&src, None, PullMode::Incremental).await;
    assert!(result.error.is_none(), "{:?}", result.error);
    assert_eq!(result.field("ajbh"), ["AJ1"]);
}
