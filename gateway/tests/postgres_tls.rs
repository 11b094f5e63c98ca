//! TLS of the gateway's PostgreSQL connections against the real local server (`ssl = on`, the
//! distribution's default, with its certificate): `sslmode` as libpq users know it, for the
//! store's pool and the PostgreSQL sink. The CA a "wrong CA" test uses is made here with rcgen.

mod common;

use adapters::sinks::{Delivery, Outcome, SinkSettings};
use base64::Engine;
use common::{admin_client, pg_base_url, pg_client, PgDatabase};
use gateway::config::StoreConfig;
use gateway::store::postgres::PostgresStore;
use gateway::store::StoreError;
use std::net::ToSocketAddrs;
use std::path::{Path, PathBuf};
use tokio_postgres::config::Host;

/// The server's TLS facts the tests need; panics with a clear message when TLS is off.
struct ServerTls {
    /// The server's certificate (PEM) as a file.
    cert_file: PathBuf,
    /// A host name the certificate is for (first DNS subjectAltName, else the subject's CN).
    cert_name: String,
}

async fn server_tls() -> ServerTls {
    let admin = admin_client(&pg_base_url()).await;
    let show = |name: &'static str| {
        let admin = &admin;
        async move {
            let row = admin.query_one(&format!("SHOW {name}"), &[]).await;
            row.unwrap_or_else(|e| panic!("SHOW {name}: {e}")).get::<_, String>(0)
        }
    };
    let ssl = show("ssl").await;
    assert_eq!(
        ssl,
        "on",
        "these tests need TLS on the PostgreSQL server (ssl = on, the Debian default with the snakeoil \
         certificate); the server at {} has ssl = {ssl}. Turn it on in postgresql.conf and restart.",
        pg_base_url()
    );
    let mut cert_file = PathBuf::from(show("ssl_cert_file").await);
    if cert_file.is_relative() {
        cert_file = PathBuf::from(show("data_directory").await).join(cert_file);
    }
    let pem = std::fs::read_to_string(&cert_file).unwrap_or_else(|e| {
        panic!(
            "the server's certificate {} (ssl_cert_file) must be readable by the tests: {e}",
            cert_file.display()
        )
    });
    ServerTls {
        cert_name: certificate_name(&pem),
        cert_file,
    }
}

/// The host name a PEM certificate is for.
fn certificate_name(pem: &str) -> String {
    use x509_cert::der::oid::db::rfc4519::CN;
    use x509_cert::der::Decode;
    use x509_cert::ext::pkix::name::GeneralName;
    use x509_cert::ext::pkix::SubjectAltName;
    let body: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .expect("the server's certificate is PEM");
    let cert = x509_cert::Certificate::from_der(&der).expect("the server's certificate parses");
    if let Ok(Some((_, SubjectAltName(names)))) = cert.tbs_certificate.get::<SubjectAltName>() {
        if let Some(dns) = names.iter().find_map(|n| match n {
            GeneralName::DnsName(d) => Some(d.to_string()),
            _ => None,
        }) {
            return dns;
        }
    }
    cert.tbs_certificate
        .subject
        .0
        .iter()
        .flat_map(|rdn| rdn.0.iter())
        .find(|atv| atv.oid == CN)
        .and_then(|atv| std::str::from_utf8(atv.value.value()).ok())
        .expect("the server's certificate has a subjectAltName or a CN")
        .to_string()
}

/// `url` with one more parameter (URL or `key=value` form).
fn with_param(url: &str, key: &str, value: &str) -> String {
    if url.contains("://") {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}{key}={value}")
    } else {
        format!("{url} {key}='{value}'")
    }
}

/// The test server as a `key=value` string connecting to its address but checking the
/// certificate against `host` (libpq's `host` + `hostaddr`).
fn as_host(host: &str) -> String {
    let base = pg_base_url();
    let config: tokio_postgres::Config = base.parse().expect("GATEWAY_TEST_PG_URL parses");
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let addr = match config.get_hosts().first() {
        Some(Host::Tcp(h)) => (h.as_str(), port)
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .map(|a| a.ip())
            .expect("the test server's host resolves"),
        _ => panic!("the test server must be reached over TCP"),
    };
    let mut s = format!(
        "host={host} hostaddr={addr} port={port} dbname={}",
        config.get_dbname().unwrap_or("postgres")
    );
    if let Some(user) = config.get_user() {
        s.push_str(&format!(" user={user}"));
    }
    if let Some(pw) = config.get_password() {
        s.push_str(&format!(" password='{}'", String::from_utf8_lossy(pw)));
    }
    s
}

/// A CA of the test's own, which signed nothing the server has, as a PEM file in `dir`.
fn foreign_ca(dir: &Path) -> PathBuf {
    let key = rcgen::KeyPair::generate().expect("a key pair");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "ganzhi test CA (not the server's)");
    let cert = params.self_signed(&key).expect("a self-signed CA");
    let path = dir.join("foreign-ca.pem");
    std::fs::write(&path, cert.pem()).expect("write the CA file");
    path
}

fn pool_message(result: Result<PostgresStore, StoreError>) -> String {
    match result {
        Err(StoreError::Pool(message)) => message,
        Err(other) => panic!("expected a pool error, got {other:?}"),
        Ok(_) => panic!("expected the connection to be refused"),
    }
}

#[tokio::test]
async fn sslmode_require_gives_an_encrypted_store_session() {
    server_tls().await;
    let store = PostgresStore::connect(&with_param(&pg_base_url(), "sslmode", "require"), 1)
        .await
        .expect("connect with sslmode=require");
    let tls = store.session_tls().await.expect("read pg_stat_ssl");
    assert!(tls.as_deref().is_some_and(|v| v.starts_with("TLS")), "{tls:?}");
}

#[tokio::test]
async fn sslmode_disable_gives_a_plain_store_session() {
    server_tls().await;
    let store = PostgresStore::connect(&with_param(&pg_base_url(), "sslmode", "disable"), 1)
        .await
        .expect("connect with sslmode=disable");
    assert_eq!(store.session_tls().await.expect("read pg_stat_ssl"), None);
}

#[tokio::test]
async fn without_sslmode_the_store_prefers_tls_as_libpq_does() {
    server_tls().await;
    let url = pg_base_url();
    assert!(
        !url.contains("sslmode"),
        "the default only shows without sslmode: {url}"
    );
    let store = PostgresStore::connect(&url, 1).await.expect("connect");
    assert!(store.session_tls().await.expect("read pg_stat_ssl").is_some());
}

#[tokio::test]
async fn verify_full_against_a_foreign_ca_is_refused_with_a_certificate_error() {
    let server = server_tls().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = foreign_ca(dir.path());
    let url = format!(
        "{} sslmode=verify-full sslrootcert='{}'",
        as_host(&server.cert_name),
        ca.display()
    );
    let message = pool_message(PostgresStore::connect(&url, 1).await);
    for expected in [
        "TLS handshake",
        "the server's certificate is not trusted by the CA file",
        "foreign-ca.pem (sslrootcert)",
        "sslmode=verify-full",
        "UnknownIssuer",
    ] {
        assert!(message.contains(expected), "missing {expected:?} in: {message}");
    }
}

#[tokio::test]
async fn verify_ca_with_the_servers_certificate_from_the_ssl_root_cert_setting_connects_encrypted() {
    let server = server_tls().await;
    // The setting is relative to the config file's directory.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("certs")).unwrap();
    std::fs::copy(&server.cert_file, dir.path().join("certs/server-ca.pem")).unwrap();
    let config = StoreConfig {
        backend: "postgres".into(),
        url: Some(with_param(&pg_base_url(), "sslmode", "verify-ca")),
        ssl_root_cert: Some("certs/server-ca.pem".into()),
        ..StoreConfig::default()
    };
    let target = config
        .postgres_target(dir.path())
        .expect("the store's connection string");
    // verify-ca does not look at the host name: the test server is reached as 127.0.0.1 or
    // whatever GATEWAY_TEST_PG_URL names, whatever the certificate's name.
    let store = PostgresStore::connect_to(&target, 1)
        .await
        .expect("verify-ca with the server's certificate as CA");
    assert!(store.session_tls().await.expect("read pg_stat_ssl").is_some());
}

#[tokio::test]
async fn verify_full_accepts_the_certificates_host_name_and_refuses_another() {
    let server = server_tls().await;
    let ca = server.cert_file.display().to_string();
    let url = format!("{} sslmode=verify-full sslrootcert='{ca}'", as_host(&server.cert_name));
    let store = PostgresStore::connect(&url, 1)
        .await
        .unwrap_or_else(|e| panic!("verify-full as host {:?}: {e}", server.cert_name));
    assert!(store.session_tls().await.expect("read pg_stat_ssl").is_some());

    let url = format!(
        "{} sslmode=verify-full sslrootcert='{ca}'",
        as_host("db.example.invalid")
    );
    let message = pool_message(PostgresStore::connect(&url, 1).await);
    assert!(
        message.contains("the server's certificate is not for host \"db.example.invalid\""),
        "{message}"
    );
}

/// A postgres sink block as `gateway config check` and `gateway run` read it.
fn sink_settings(url: &str, extra: &str) -> SinkSettings {
    let table: toml::Table = toml::from_str(&format!("url = {url:?}\nschema = \"tls_test\"\n{extra}")).unwrap();
    SinkSettings::parse("postgres", &table).expect("postgres sink settings")
}

fn delivery() -> Delivery {
    Delivery {
        outbox_id: 1,
        idempotency_key: "CF20243601020000001Y:1".into(),
        unified_code: "CF20243601020000001Y".into(),
        version: 1,
        case_type: "penalty".into(),
        year: 2024,
        region: "360102".into(),
        withdrawn: false,
        committed_at: chrono::Utc::now(),
        record: serde_json::json!({"case_type": "penalty", "case_name": "TLS 测试"}),
    }
}

#[tokio::test]
async fn postgres_sink_delivers_over_tls_with_sslmode_require() {
    server_tls().await;
    let db = PgDatabase::create().await;
    let dir = tempfile::tempdir().unwrap();
    let settings = sink_settings(&with_param(&db.url, "sslmode", "require"), "");
    assert_eq!(settings.check(dir.path()), []);
    let sink = settings.build("tls-sink", dir.path()).expect("build the sink");
    assert_eq!(sink.deliver(&[delivery()]).await, [Outcome::Delivered]);

    let client = pg_client(&db.url).await.expect("connect to the sink database");
    let rows: i64 = client
        .query_one(
            "SELECT count(*) FROM tls_test.cases WHERE unified_code = 'CF20243601020000001Y'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 1);
    // The sink's pooled session (named by its application_name) is encrypted.
    let ssl: Vec<bool> = client
        .query(
            "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.application_name = $1",
            &[&"ganzhi-gateway sink tls-sink"],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(!ssl.is_empty() && ssl.iter().all(|s| *s), "{ssl:?}");
    sink.close().await;
}

#[tokio::test]
async fn postgres_sink_with_a_foreign_ca_defers_with_a_certificate_error() {
    server_tls().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = foreign_ca(dir.path());
    let settings = sink_settings(
        &with_param(&pg_base_url(), "sslmode", "verify-ca"),
        "ssl_root_cert = \"foreign-ca.pem\"",
    );
    assert_eq!(settings.check(dir.path()), [], "{}", ca.display());
    let sink = settings.build("tls-refused", dir.path()).expect("build the sink");
    let outcomes = sink.deliver(&[delivery()]).await;
    match outcomes.as_slice() {
        [Outcome::Deferred { reason }] => {
            assert!(
                reason.contains("the server's certificate is not trusted by the CA file")
                    && reason.contains("foreign-ca.pem (ssl_root_cert)")
                    && reason.contains("UnknownIssuer"),
                "{reason}"
            );
        }
        other => panic!("expected the delivery to wait, got {other:?}"),
    }
    sink.close().await;
}
