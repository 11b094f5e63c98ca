//! TLS for the gateway's PostgreSQL connections (the store's pool and the PostgreSQL sink's),
//! with rustls (the `aws-lc-rs` provider the other TLS clients of the workspace use) and libpq's
//! `sslmode` meanings:
//!
//! | `sslmode` | TLS | server certificate |
//! |---|---|---|
//! | `disable` | never | — |
//! | `prefer` (default) | when the server offers it, plain when it refuses | checked against the CA only if one is given |
//! | `require` | always | checked against the CA only if one is given (like libpq) |
//! | `verify-ca` | always | must chain to the CA |
//! | `verify-full` | always | must chain to the CA and name the host (subjectAltName; the subject's CN when the certificate has no subjectAltName, like libpq) |
//!
//! The CA file is `sslrootcert` in the connection string (URL or `key=value` form) or the
//! `ssl_root_cert` setting beside the URL; `sslrootcert=system` uses the system's trusted CAs and,
//! as in libpq, then needs `verify-full` (the default for it). tokio-postgres itself knows only
//! `disable`, `prefer` and `require` and no `sslrootcert`: [`PostgresTarget::parse`] takes both
//! out of the connection string before tokio-postgres reads the rest.
//!
//! Nothing here shows the connection string: it may hold a password. Errors name `sslmode`,
//! `sslrootcert` / `ssl_root_cert` and their values only.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{verify_server_cert_signed_by_trust_anchor, verify_server_name};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, OtherError, RootCertStore, SignatureScheme};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use tokio_postgres::config::SslMode as DriverSslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

/// The TLS connector handed to tokio-postgres and deadpool-postgres.
pub type TlsConnector = MakeRustlsConnect;

/// The name of the configuration setting that gives the CA file beside the URL.
pub const ROOT_CERT_SETTING: &str = "ssl_root_cert";

/// How a connection uses TLS: libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// No TLS.
    Disable,
    /// TLS when the server offers it, plain when it refuses (libpq's default).
    Prefer,
    /// TLS always; the certificate is checked only when a CA is given.
    Require,
    /// TLS always; the certificate must chain to the CA.
    VerifyCa,
    /// TLS always; the certificate must chain to the CA and name the host.
    VerifyFull,
}

impl SslMode {
    /// The value as written in a connection string (`verify-full`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// The mode named `value` (libpq's spelling, case-sensitive as in libpq).
    pub fn parse(value: &str) -> Option<SslMode> {
        match value {
            "disable" => Some(SslMode::Disable),
            "prefer" => Some(SslMode::Prefer),
            "require" => Some(SslMode::Require),
            "verify-ca" => Some(SslMode::VerifyCa),
            "verify-full" => Some(SslMode::VerifyFull),
            _ => None,
        }
    }

    fn verifies(self) -> bool {
        matches!(self, SslMode::VerifyCa | SslMode::VerifyFull)
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where the trusted CA certificates come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCert {
    /// A PEM file of one or more CA certificates.
    File {
        /// The file.
        path: PathBuf,
        /// The setting that named it: `sslrootcert` (in the URL) or `ssl_root_cert`.
        setting: &'static str,
    },
    /// The system's trusted CAs (`sslrootcert=system`).
    System,
}

impl fmt::Display for RootCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RootCert::File { path, setting } => write!(f, "{} ({setting})", path.display()),
            RootCert::System => f.write_str("system (sslrootcert)"),
        }
    }
}

/// Why a PostgreSQL connection's TLS settings are unusable. Messages are in Chinese and English
/// and name the setting and its value, never the connection string.
#[derive(Debug, thiserror::Error)]
pub enum PostgresTlsError {
    /// The connection string does not parse (tokio-postgres's message never holds the password).
    #[error("无效的 PostgreSQL URL / invalid PostgreSQL URL: {0}")]
    Url(String),
    /// `sslmode` has a value this client does not know.
    #[error(
        "不支持的 sslmode / unsupported sslmode {value:?}: use disable, prefer, require, verify-ca or verify-full"
    )]
    SslMode {
        /// The value given.
        value: String,
    },
    /// `verify-ca` or `verify-full` without a CA.
    #[error(
        "sslmode={mode} 需要 CA 证书文件 / sslmode={mode} needs a CA certificate file: give sslrootcert in the URL or the {ROOT_CERT_SETTING} setting"
    )]
    MissingRootCert {
        /// The mode given.
        mode: SslMode,
    },
    /// The CA file is given both in the URL and as the setting.
    #[error(
        "CA 证书文件只能给出一次 / give the CA certificate file once: sslrootcert={url:?} in the URL and {ROOT_CERT_SETTING} = {setting:?}"
    )]
    RootCertTwice {
        /// `sslrootcert` in the URL.
        url: String,
        /// The `ssl_root_cert` setting.
        setting: PathBuf,
    },
    /// `sslrootcert=system` with a mode weaker than `verify-full` (refused by libpq too).
    #[error(
        "sslrootcert=system 只能与 sslmode=verify-full 一起使用 / sslrootcert=system needs sslmode=verify-full, got sslmode={mode}"
    )]
    SystemRootsNeedVerifyFull {
        /// The mode given.
        mode: SslMode,
    },
    /// The CA file cannot be read.
    #[error("无法读取 CA 证书文件 / cannot read the CA certificate file {root}: {reason}")]
    RootCertUnreadable {
        /// The file and the setting naming it.
        root: RootCert,
        /// The system's answer.
        reason: String,
    },
    /// The CA file holds no certificate rustls can use.
    #[error("CA 证书文件不可用 / the CA certificate file {root} is not usable: {reason}")]
    RootCertUnusable {
        /// The file and the setting naming it.
        root: RootCert,
        /// What is wrong with it.
        reason: String,
    },
    /// rustls refused the TLS configuration.
    #[error("TLS 配置失败 / cannot set up TLS: {0}")]
    Tls(String),
}

impl PostgresTlsError {
    /// The setting concerned: `ssl_root_cert` for a problem of that setting, `url` otherwise.
    pub fn setting(&self) -> &'static str {
        let root = match self {
            PostgresTlsError::RootCertTwice { .. } => return ROOT_CERT_SETTING,
            PostgresTlsError::RootCertUnreadable { root, .. } | PostgresTlsError::RootCertUnusable { root, .. } => root,
            _ => return "url",
        };
        match root {
            RootCert::File { setting, .. } if *setting == ROOT_CERT_SETTING => ROOT_CERT_SETTING,
            _ => "url",
        }
    }
}

/// A PostgreSQL connection string read for TLS: tokio-postgres's settings, the `sslmode` in
/// libpq's meaning and the CA to check the server's certificate against.
#[derive(Clone)]
pub struct PostgresTarget {
    config: tokio_postgres::Config,
    ssl_mode: SslMode,
    root_cert: Option<RootCert>,
}

impl fmt::Debug for PostgresTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The driver's config holds the password: leave it out.
        f.debug_struct("PostgresTarget")
            .field("ssl_mode", &self.ssl_mode)
            .field("root_cert", &self.root_cert)
            .finish_non_exhaustive()
    }
}

impl PostgresTarget {
    /// Read `url` (`postgres://...` or `key=value ...`). `sslmode` and `sslrootcert` are taken
    /// out and interpreted here; `root_cert_setting` is the `ssl_root_cert` setting (already made
    /// absolute by the caller). Does not read the CA file: [`PostgresTarget::connector`] does.
    pub fn parse(url: &str, root_cert_setting: Option<&Path>) -> Result<PostgresTarget, PostgresTlsError> {
        let (rest, params) = take_tls_params(url);
        let mut config = tokio_postgres::Config::from_str(&rest).map_err(|e| PostgresTlsError::Url(e.to_string()))?;
        let root_cert = match (params.sslrootcert, root_cert_setting) {
            (Some(url), Some(setting)) => {
                return Err(PostgresTlsError::RootCertTwice {
                    url,
                    setting: setting.to_path_buf(),
                })
            }
            (Some(value), None) if value == "system" => Some(RootCert::System),
            (Some(value), None) => Some(RootCert::File {
                path: PathBuf::from(value),
                setting: "sslrootcert",
            }),
            (None, Some(path)) => Some(RootCert::File {
                path: path.to_path_buf(),
                setting: ROOT_CERT_SETTING,
            }),
            (None, None) => None,
        };
        let ssl_mode = match params.sslmode {
            Some(value) => SslMode::parse(&value).ok_or(PostgresTlsError::SslMode { value })?,
            // libpq: with the system's CAs the default is verify-full.
            None if root_cert == Some(RootCert::System) => SslMode::VerifyFull,
            None => SslMode::Prefer,
        };
        if ssl_mode.verifies() && root_cert.is_none() {
            return Err(PostgresTlsError::MissingRootCert { mode: ssl_mode });
        }
        if root_cert == Some(RootCert::System) && ssl_mode != SslMode::VerifyFull {
            return Err(PostgresTlsError::SystemRootsNeedVerifyFull { mode: ssl_mode });
        }
        config.ssl_mode(match ssl_mode {
            SslMode::Disable => DriverSslMode::Disable,
            SslMode::Prefer => DriverSslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => DriverSslMode::Require,
        });
        Ok(PostgresTarget {
            config,
            ssl_mode,
            root_cert,
        })
    }

    /// The driver's settings (`sslmode` mapped to what tokio-postgres knows).
    pub fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }

    /// The driver's settings, to add to (timeouts, application name).
    pub fn config_mut(&mut self) -> &mut tokio_postgres::Config {
        &mut self.config
    }

    /// The `sslmode` given (or the default, `prefer`).
    pub fn ssl_mode(&self) -> SslMode {
        self.ssl_mode
    }

    /// The CA the server's certificate is checked against, if one is given.
    pub fn root_cert(&self) -> Option<&RootCert> {
        self.root_cert.as_ref()
    }

    /// The TLS connector for this target: reads the CA file (or the system's CAs) now, so an
    /// unreadable or unusable one is reported before any connection is tried.
    pub fn connector(&self) -> Result<TlsConnector, PostgresTlsError> {
        let roots = match &self.root_cert {
            None => None,
            Some(root) => Some(Arc::new(load_roots(root)?)),
        };
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier = Verifier {
            roots,
            check_name: self.ssl_mode == SslMode::VerifyFull,
            ssl_mode: self.ssl_mode,
            root_cert: self.root_cert.clone(),
            algorithms: provider.signature_verification_algorithms,
        };
        let mut config = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| PostgresTlsError::Tls(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        // PostgreSQL 17 checks the ALPN protocol on direct TLS connections; older servers ignore it.
        config.alpn_protocols = vec![b"postgresql".to_vec()];
        Ok(MakeRustlsConnect::new(config))
    }

    /// A deadpool-postgres manager connecting to this target over TLS as `sslmode` says.
    pub fn manager(
        &self,
        manager_config: deadpool_postgres::ManagerConfig,
    ) -> Result<deadpool_postgres::Manager, PostgresTlsError> {
        Ok(deadpool_postgres::Manager::from_config(
            self.config.clone(),
            self.connector()?,
            manager_config,
        ))
    }

    /// One connection (outside a pool), its connection task spawned on the current tokio
    /// runtime. For tools and tests; the gateway itself uses [`PostgresTarget::manager`].
    pub async fn connect(&self) -> Result<tokio_postgres::Client, String> {
        let connector = self.connector().map_err(|e| e.to_string())?;
        let (client, connection) = self.config.connect(connector).await.map_err(|e| error_chain(&e))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "PostgreSQL connection ended");
            }
        });
        Ok(client)
    }
}

/// An error and its causes on one line (`a: b: c`), e.g. a TLS handshake failure with the reason
/// the certificate was refused.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

// ---------------------------------------------------------------------------------------------
// Taking sslmode and sslrootcert out of the connection string.
// ---------------------------------------------------------------------------------------------

/// The TLS parameters taken out of a connection string (the last one wins, as in the driver).
#[derive(Debug, Default, PartialEq, Eq)]
struct TlsParams {
    sslmode: Option<String>,
    sslrootcert: Option<String>,
}

impl TlsParams {
    /// Keep `key`'s value if it is one of ours; true when it was.
    fn take(&mut self, key: &str, value: String) -> bool {
        match key {
            "sslmode" => self.sslmode = Some(value),
            "sslrootcert" => self.sslrootcert = Some(value),
            _ => return false,
        }
        true
    }
}

/// `url` without `sslmode` and `sslrootcert`, and their values. A string that does not parse is
/// returned unchanged, for the driver to report.
fn take_tls_params(url: &str) -> (String, TlsParams) {
    let taken = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        take_from_url(url)
    } else {
        take_from_key_values(url)
    };
    taken.unwrap_or_else(|| (url.to_string(), TlsParams::default()))
}

/// The URL form, read as tokio-postgres reads it: user info up to the first `@`, then the host
/// and path up to the first `?`, then `key=value` pairs separated by `&`, percent-encoded.
fn take_from_url(url: &str) -> Option<(String, TlsParams)> {
    let after_credentials = url.find('@').map_or(0, |i| i + 1);
    let Some(q) = url[after_credentials..].find('?').map(|i| after_credentials + i) else {
        return Some((url.to_string(), TlsParams::default()));
    };
    let mut params = TlsParams::default();
    let mut kept = Vec::new();
    let mut rest = &url[q + 1..];
    while !rest.is_empty() {
        let eq = rest.find('=')?;
        let key = percent_decode(&rest[..eq])?;
        let after_key = &rest[eq + 1..];
        let (value, next) = match after_key.find('&') {
            Some(amp) => (&after_key[..amp], &after_key[amp + 1..]),
            None => (after_key, ""),
        };
        if !params.take(&key, percent_decode(value)?) {
            kept.push(&rest[..eq + 1 + value.len()]);
        }
        rest = next;
    }
    let mut out = url[..q].to_string();
    if !kept.is_empty() {
        out.push('?');
        out.push_str(&kept.join("&"));
    }
    Some((out, params))
}

fn percent_decode(s: &str) -> Option<String> {
    // As the driver's decoder: `%` not followed by two hex digits stays as it is.
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// The `key=value` form, read as tokio-postgres reads it (values bare or in single quotes, `\`
/// escaping the next character); the rest is written back with every value quoted.
fn take_from_key_values(s: &str) -> Option<(String, TlsParams)> {
    let mut params = TlsParams::default();
    let mut kept = Vec::new();
    let mut it = s.chars().peekable();
    loop {
        while it.next_if(|c| c.is_whitespace()).is_some() {}
        let mut key = String::new();
        while let Some(c) = it.next_if(|c| !c.is_whitespace() && *c != '=') {
            key.push(c);
        }
        if key.is_empty() {
            break;
        }
        while it.next_if(|c| c.is_whitespace()).is_some() {}
        it.next_if_eq(&'=')?;
        while it.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if it.next_if_eq(&'\'').is_some() {
            loop {
                match it.next()? {
                    '\'' => break,
                    '\\' => value.push(it.next()?),
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = it.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    if let Some(escaped) = it.next() {
                        value.push(escaped);
                    }
                } else {
                    value.push(c);
                }
            }
            if value.is_empty() {
                return None;
            }
        }
        if !params.take(&key, value.clone()) {
            kept.push(format!("{key}='{}'", value.replace('\\', "\\\\").replace('\'', "\\'")));
        }
    }
    Some((kept.join(" "), params))
}

// ---------------------------------------------------------------------------------------------
// Checking the server's certificate.
// ---------------------------------------------------------------------------------------------

fn load_roots(root: &RootCert) -> Result<RootCertStore, PostgresTlsError> {
    let mut store = RootCertStore::empty();
    match root {
        RootCert::System => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                let reason = found.errors.first().map_or_else(
                    || "没有找到证书 / no certificate found".to_string(),
                    ToString::to_string,
                );
                return Err(PostgresTlsError::RootCertUnusable {
                    root: root.clone(),
                    reason,
                });
            }
        }
        RootCert::File { path, .. } => {
            let pem = std::fs::read(path).map_err(|e| PostgresTlsError::RootCertUnreadable {
                root: root.clone(),
                reason: e.to_string(),
            })?;
            let unusable = |reason: String| PostgresTlsError::RootCertUnusable {
                root: root.clone(),
                reason,
            };
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| unusable(format!("PEM: {e}")))?;
                store.add(cert).map_err(|e| unusable(e.to_string()))?;
            }
            if store.is_empty() {
                return Err(unusable(
                    "没有 PEM 格式的证书（-----BEGIN CERTIFICATE-----）/ no PEM certificate (-----BEGIN CERTIFICATE-----) in it"
                        .into(),
                ));
            }
        }
    }
    Ok(store)
}

/// Checks the server's certificate as `sslmode` says; handshake signatures are always checked.
#[derive(Debug)]
struct Verifier {
    /// The trusted CAs; `None`: any certificate is accepted (`prefer`/`require` without a CA).
    roots: Option<Arc<RootCertStore>>,
    /// Whether the certificate must name the host (`verify-full`).
    check_name: bool,
    ssl_mode: SslMode,
    root_cert: Option<RootCert>,
    algorithms: WebPkiSupportedAlgorithms,
}

/// Why the server's certificate was refused, for the connection error.
#[derive(Debug)]
struct Refused(String);

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// A refusal whose message reaches the connection error as written (rustls shows a
/// `CertificateError::Other` only in its debug form).
fn refused(message: String) -> rustls::Error {
    rustls::Error::Other(OtherError(Arc::new(Refused(message))))
}

impl Verifier {
    fn root_label(&self) -> String {
        self.root_cert
            .as_ref()
            .map_or_else(|| "-".to_string(), ToString::to_string)
    }
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(roots) = &self.roots else {
            return Ok(ServerCertVerified::assertion());
        };
        let cert = ParsedCertificate::try_from(end_entity).map_err(|e| {
            refused(format!(
                "服务器证书无法解析 / the server's certificate cannot be read (sslmode={}): {e}",
                self.ssl_mode
            ))
        })?;
        verify_server_cert_signed_by_trust_anchor(&cert, roots, intermediates, now, self.algorithms.all).map_err(
            |e| {
                refused(format!(
                    "服务器证书未通过 CA 校验 / the server's certificate is not trusted by the CA file {} (sslmode={}): {}",
                    self.root_label(),
                    self.ssl_mode,
                    certificate_problem(&e)
                ))
            },
        )?;
        if self.check_name {
            match verify_server_name(&cert, server_name) {
                Ok(()) => {}
                Err(rustls::Error::InvalidCertificate(
                    CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
                )) if common_name_fallback(end_entity, &server_name.to_str()) == Some(true) => {}
                Err(e) => {
                    return Err(refused(format!(
                    "服务器证书与主机名不符 / the server's certificate is not for host {:?} (sslmode=verify-full): {}",
                    server_name.to_str(),
                    certificate_problem(&e)
                )))
                }
            }
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// A certificate error in words.
fn certificate_problem(e: &rustls::Error) -> String {
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer => "签发者不受信任 / issued by a CA not in the file (UnknownIssuer)".into(),
            CertificateError::BadSignature => "签名无效 / bad signature".into(),
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                format!("证书已过期 / the certificate has expired ({c:?})")
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                format!("证书尚未生效 / the certificate is not valid yet ({c:?})")
            }
            CertificateError::NotValidForNameContext { presented, .. } if !presented.is_empty() => {
                // webpki writes `DnsName("db.example.cn")`: show the name alone.
                let names: Vec<&str> = presented
                    .iter()
                    .map(|n| {
                        n.strip_prefix("DnsName(\"")
                            .and_then(|n| n.strip_suffix("\")"))
                            .unwrap_or(n)
                    })
                    .collect();
                format!("证书所列名称 / the certificate names {}", names.join(", "))
            }
            other => format!("{other:?}"),
        },
        other => other.to_string(),
    }
}

/// libpq's rule for certificates without subjectAltName: the subject's common name must match
/// the host (case-insensitively; `*.` matching one label). `None` when the certificate has a
/// subjectAltName (then only that counts) or cannot be read.
fn common_name_fallback(end_entity: &CertificateDer<'_>, host: &str) -> Option<bool> {
    use x509_cert::der::oid::db::{rfc4519::CN, rfc5280::ID_CE_SUBJECT_ALT_NAME};
    use x509_cert::der::{Decode, Tag, Tagged};
    let cert = x509_cert::Certificate::from_der(end_entity.as_ref()).ok()?;
    let tbs = &cert.tbs_certificate;
    if tbs
        .extensions
        .iter()
        .flatten()
        .any(|e| e.extn_id == ID_CE_SUBJECT_ALT_NAME)
    {
        return None;
    }
    let names = tbs
        .subject
        .0
        .iter()
        .flat_map(|rdn| rdn.0.iter())
        .filter(|atv| atv.oid == CN)
        .filter(|atv| {
            matches!(
                atv.value.tag(),
                Tag::Utf8String | Tag::PrintableString | Tag::Ia5String | Tag::TeletexString
            )
        })
        .filter_map(|atv| std::str::from_utf8(atv.value.value()).ok());
    let mut any = false;
    for name in names {
        any = true;
        if host_matches(name, host) {
            return Some(true);
        }
    }
    any.then_some(false)
}

/// libpq's `wildcard_certificate_match`: equal ignoring ASCII case, or `*.rest` matching one
/// first label followed by `.rest`.
fn host_matches(pattern: &str, host: &str) -> bool {
    if pattern.eq_ignore_ascii_case(host) {
        return true;
    }
    let Some(suffix) = pattern.strip_prefix('*') else {
        return false;
    };
    if !suffix.starts_with('.') || host.len() <= suffix.len() {
        return false;
    }
    let (label, rest) = host.split_at(host.len() - suffix.len());
    rest.eq_ignore_ascii_case(suffix) && !label.is_empty() && !label.contains('.')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> Result<PostgresTarget, PostgresTlsError> {
        PostgresTarget::parse(url, None)
    }

    #[test]
    fn default_mode_is_prefer_as_in_libpq() {
        let t = parse("postgres://gw@db.example/gw").unwrap();
        assert_eq!(t.ssl_mode(), SslMode::Prefer);
        assert_eq!(t.config().get_ssl_mode(), DriverSslMode::Prefer);
        assert_eq!(t.root_cert(), None);
    }

    #[test]
    fn verify_modes_are_taken_out_of_a_url_and_become_require_for_the_driver() {
        let t = parse("postgres://gw:p%40ss@db.example:5433/gw?application_name=x&sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&connect_timeout=3").unwrap();
        assert_eq!(t.ssl_mode(), SslMode::VerifyFull);
        assert_eq!(t.config().get_ssl_mode(), DriverSslMode::Require);
        assert_eq!(
            t.root_cert(),
            Some(&RootCert::File {
                path: "/etc/ca.pem".into(),
                setting: "sslrootcert"
            })
        );
        assert_eq!(t.config().get_password(), Some(&b"p@ss"[..]));
        assert_eq!(t.config().get_dbname(), Some("gw"));
        assert_eq!(t.config().get_ports(), &[5433]);
        assert_eq!(t.config().get_application_name(), Some("x"));
        assert_eq!(
            t.config().get_connect_timeout(),
            Some(&std::time::Duration::from_secs(3))
        );
    }

    #[test]
    fn a_question_mark_in_the_password_does_not_start_the_parameters() {
        let (rest, params) = take_tls_params("postgres://gw:a?b@db/gw?sslmode=require");
        assert_eq!(rest, "postgres://gw:a?b@db/gw");
        assert_eq!(params.sslmode.as_deref(), Some("require"));
    }

    #[test]
    fn verify_modes_are_taken_out_of_the_key_value_form() {
        let t = PostgresTarget::parse(
            "host=db.example user=gw password='it''s' dbname=gw sslmode=verify-ca",
            Some(Path::new("/etc/ca.pem")),
        );
        // 'it''s' is not valid for the driver either: the string goes back to it unchanged.
        assert!(matches!(t, Err(PostgresTlsError::Url(_))), "{t:?}");

        let t = PostgresTarget::parse(
            "host=db.example user=gw password='a b\\'c' dbname = gw sslmode=verify-ca",
            Some(Path::new("/etc/ca.pem")),
        )
        .unwrap();
        assert_eq!(t.ssl_mode(), SslMode::VerifyCa);
        assert_eq!(t.config().get_ssl_mode(), DriverSslMode::Require);
        assert_eq!(t.config().get_password(), Some(&b"a b'c"[..]));
        assert_eq!(t.config().get_dbname(), Some("gw"));
        assert_eq!(
            t.root_cert(),
            Some(&RootCert::File {
                path: "/etc/ca.pem".into(),
                setting: ROOT_CERT_SETTING
            })
        );
    }

    #[test]
    fn an_unknown_sslmode_is_refused_naming_the_value() {
        for url in ["postgres://db/gw?sslmode=verify_full", "host=db sslmode=allow"] {
            let e = parse(url).unwrap_err();
            assert!(matches!(e, PostgresTlsError::SslMode { .. }), "{e:?}");
            let text = e.to_string();
            assert!(text.contains("sslmode") && text.contains("verify-full"), "{text}");
        }
        assert!(parse("postgres://db/gw?sslmode=verify_full")
            .unwrap_err()
            .to_string()
            .contains("\"verify_full\""));
    }

    #[test]
    fn verification_without_a_ca_is_refused() {
        for mode in ["verify-ca", "verify-full"] {
            let e = parse(&format!("postgres://gw:secret@db/gw?sslmode={mode}")).unwrap_err();
            assert!(matches!(e, PostgresTlsError::MissingRootCert { .. }), "{e:?}");
            let text = e.to_string();
            assert!(
                text.contains(mode) && text.contains("sslrootcert") && text.contains(ROOT_CERT_SETTING),
                "{text}"
            );
            assert!(!text.contains("secret"), "{text}");
        }
    }

    #[test]
    fn the_ca_file_may_be_given_once() {
        let e = PostgresTarget::parse("postgres://db/gw?sslrootcert=/a.pem", Some(Path::new("/b.pem"))).unwrap_err();
        assert!(matches!(e, PostgresTlsError::RootCertTwice { .. }), "{e:?}");
        assert_eq!(e.setting(), ROOT_CERT_SETTING);
    }

    #[test]
    fn system_roots_default_to_verify_full_and_refuse_weaker_modes() {
        let t = parse("postgres://db/gw?sslrootcert=system").unwrap();
        assert_eq!(t.ssl_mode(), SslMode::VerifyFull);
        assert_eq!(t.root_cert(), Some(&RootCert::System));
        let e = parse("postgres://db/gw?sslrootcert=system&sslmode=require").unwrap_err();
        assert!(matches!(e, PostgresTlsError::SystemRootsNeedVerifyFull { .. }), "{e:?}");
    }

    #[test]
    fn a_missing_or_empty_ca_file_is_reported_with_its_setting() {
        let dir = std::env::temp_dir().join(format!("pg-tls-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing.pem");
        let t = PostgresTarget::parse("postgres://db/gw?sslmode=verify-ca", Some(&missing)).unwrap();
        let e = t.connector().err().unwrap();
        assert!(matches!(e, PostgresTlsError::RootCertUnreadable { .. }), "{e:?}");
        assert_eq!(e.setting(), ROOT_CERT_SETTING);
        assert!(e.to_string().contains("missing.pem"), "{e}");

        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let url = format!("postgres://db/gw?sslmode=verify-full&sslrootcert={}", empty.display());
        let e = parse(&url).unwrap().connector().err().unwrap();
        assert!(matches!(e, PostgresTlsError::RootCertUnusable { .. }), "{e:?}");
        assert_eq!(e.setting(), "url");
        assert!(e.to_string().contains("empty.pem (sslrootcert)"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn parameters_other_than_ours_stay_in_the_url() {
        let (rest, params) = take_tls_params("postgresql://db/gw?sslmode=disable");
        assert_eq!(rest, "postgresql://db/gw");
        assert_eq!(params.sslmode.as_deref(), Some("disable"));
        let (rest, _) = take_tls_params("postgres://db/gw?a=1&sslrootcert=x&b=2");
        assert_eq!(rest, "postgres://db/gw?a=1&b=2");
    }

    #[test]
    fn wildcard_common_names_match_one_label() {
        assert!(host_matches("localhost", "LOCALHOST"));
        assert!(host_matches("*.example.cn", "db.example.cn"));
        assert!(!host_matches("*.example.cn", "a.db.example.cn"));
        assert!(!host_matches("*.example.cn", "example.cn"));
        assert!(!host_matches("db.example.cn", "db2.example.cn"));
    }

    /// A CA and a server certificate it signed, with `sans` as subjectAltName (none: CN only).
    fn ca_and_server(cn: &str, sans: &[&str]) -> (CertificateDer<'static>, CertificateDer<'static>) {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, format!("test CA for {cn}"));
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let mut server = rcgen::CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        server.distinguished_name.push(rcgen::DnType::CommonName, cn);
        let server_cert = server.signed_by(&key, &issuer).unwrap();
        (ca_cert.der().clone(), server_cert.der().clone())
    }

    fn verifier(mode: SslMode, ca: Option<&CertificateDer<'static>>) -> Verifier {
        let roots = ca.map(|ca| {
            let mut store = RootCertStore::empty();
            store.add(ca.clone()).unwrap();
            Arc::new(store)
        });
        Verifier {
            roots,
            check_name: mode == SslMode::VerifyFull,
            ssl_mode: mode,
            root_cert: None,
            algorithms: rustls::crypto::aws_lc_rs::default_provider().signature_verification_algorithms,
        }
    }

    fn verify(v: &Verifier, cert: &CertificateDer<'static>, host: &str) -> Result<(), String> {
        let name = ServerName::try_from(host.to_string()).unwrap();
        v.verify_server_cert(cert, &[], &name, &[], UnixTime::now())
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn verify_full_checks_the_chain_and_the_subject_alt_name() {
        let (ca, server) = ca_and_server("ignored.example.cn", &["db.example.cn"]);
        let v = verifier(SslMode::VerifyFull, Some(&ca));
        assert_eq!(verify(&v, &server, "db.example.cn"), Ok(()));
        let e = verify(&v, &server, "ignored.example.cn").unwrap_err();
        assert!(
            e.contains("not for host \"ignored.example.cn\"") && e.contains("names db.example.cn"),
            "{e}"
        );
        let (other_ca, _) = ca_and_server("x", &["x"]);
        let e = verify(
            &verifier(SslMode::VerifyFull, Some(&other_ca)),
            &server,
            "db.example.cn",
        )
        .unwrap_err();
        assert!(
            e.contains("not trusted by the CA file") && e.contains("UnknownIssuer"),
            "{e}"
        );
    }

    #[test]
    fn verify_full_falls_back_to_the_common_name_without_subject_alt_name_as_libpq_does() {
        let (ca, server) = ca_and_server("db.example.cn", &[]);
        let v = verifier(SslMode::VerifyFull, Some(&ca));
        assert_eq!(verify(&v, &server, "DB.example.cn"), Ok(()));
        assert!(verify(&v, &server, "db2.example.cn").is_err());
    }

    #[test]
    fn verify_ca_ignores_the_name_and_require_without_a_ca_accepts_any_certificate() {
        let (ca, server) = ca_and_server("db.example.cn", &["db.example.cn"]);
        assert_eq!(
            verify(&verifier(SslMode::VerifyCa, Some(&ca)), &server, "elsewhere.cn"),
            Ok(())
        );
        assert_eq!(
            verify(&verifier(SslMode::Require, None), &server, "elsewhere.cn"),
            Ok(())
        );
        let (other_ca, _) = ca_and_server("x", &["x"]);
        assert!(verify(&verifier(SslMode::VerifyCa, Some(&other_ca)), &server, "db.example.cn").is_err());
        // libpq: with a CA given, require checks the chain too.
        assert!(verify(&verifier(SslMode::Require, Some(&other_ca)), &server, "db.example.cn").is_err());
    }

    /// A server that refuses TLS (`N` to the SSL request) and answers the plain startup that
    /// may follow with an error naming it; returns the client's error.
    async fn against_a_server_without_tls(sslmode: &str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut ssl_request = [0u8; 8];
            socket.read_exact(&mut ssl_request).await.unwrap();
            assert_eq!(ssl_request, [0, 0, 0, 8, 4, 210, 22, 47], "an SSLRequest comes first");
            socket.write_all(b"N").await.unwrap();
            let mut startup = [0u8; 8];
            if socket.read_exact(&mut startup).await.is_ok() && startup[4..] == [0, 3, 0, 0] {
                let fields = b"SFATAL\0C28000\0Mplain startup after the refusal\0\0";
                let mut answer = vec![b'E'];
                answer.extend_from_slice(&(fields.len() as u32 + 4).to_be_bytes());
                answer.extend_from_slice(fields);
                socket.write_all(&answer).await.unwrap();
            }
        });
        let url = format!("host=127.0.0.1 port={port} user=gw dbname=gw sslmode={sslmode} connect_timeout=5");
        let Err(e) = parse(&url).unwrap().connect().await else {
            panic!("the fake server lets nobody in");
        };
        server.await.unwrap();
        e
    }

    #[tokio::test]
    async fn prefer_falls_back_to_plain_when_the_server_refuses_tls_and_require_does_not() {
        let e = against_a_server_without_tls("prefer").await;
        assert!(e.contains("plain startup after the refusal"), "{e}");
        let e = against_a_server_without_tls("require").await;
        assert!(e.contains("server does not support TLS"), "{e}");
    }

    #[test]
    fn debug_output_leaves_the_password_out() {
        let t = parse("postgres://gw:s3cret@db/gw").unwrap();
        assert!(!format!("{t:?}").contains("s3cret"));
    }
}
