//! The operator API's listener: accepts connections (plain TCP, or TLS when `[server]
//! tls_cert_file` / `tls_key_file` are set), at most `max_connections` at once, each served as
//! HTTP/1.1 with a deadline for its request headers (`header_timeout_seconds`, which also closes
//! a kept-alive connection that sends nothing), the client's address added to every request
//! (for limiting failed authentications per address). On shutdown it stops accepting and lets
//! the requests in progress finish (a push being committed is answered), for at most
//! `request_timeout_seconds`.

use crate::config::ServerConfig;
use crate::shutdown::Shutdown;
use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

/// How the listener treats connections (from `[server]`).
#[derive(Clone)]
pub struct ListenSettings {
    /// Deadline for a request's headers (and for a TLS handshake).
    pub header_timeout: Duration,
    /// Connections served at once; more wait in the kernel's accept queue.
    pub max_connections: usize,
    /// How long requests in progress may take to finish after shutdown.
    pub shutdown_grace: Duration,
    /// TLS, when configured.
    pub tls: Option<TlsAcceptor>,
}

/// Why TLS cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    /// A file cannot be read or holds no usable PEM item.
    #[error("TLS: 无法读取 / cannot read {setting} {path}: {reason}")]
    File {
        /// `tls_cert_file` or `tls_key_file`.
        setting: &'static str,
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The certificate and key do not make a server configuration.
    #[error("TLS: 证书与私钥不匹配或不受支持 / the certificate and key are not usable together: {0}")]
    Config(String),
}

impl ListenSettings {
    /// The settings of `server`; relative TLS file paths are relative to `base`.
    pub fn from_config(server: &ServerConfig, base: &Path) -> Result<ListenSettings, TlsSetupError> {
        let tls = match (&server.tls_cert_file, &server.tls_key_file) {
            (Some(cert), Some(key)) => Some(tls_acceptor(&resolve(base, cert), &resolve(base, key))?),
            _ => None,
        };
        Ok(ListenSettings {
            header_timeout: Duration::from_secs(server.header_timeout_seconds),
            max_connections: server.max_connections.max(1),
            shutdown_grace: Duration::from_secs(server.request_timeout_seconds),
            tls,
        })
    }
}

fn resolve(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

/// A TLS acceptor from a PEM certificate chain and private key (TLS 1.2 and 1.3, rustls with
/// the aws-lc-rs provider).
fn tls_acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, TlsSetupError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let file_error = |setting: &'static str, path: &Path, reason: String| TlsSetupError::File {
        setting,
        path: path.display().to_string(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|items| items.collect::<Result<Vec<_>, _>>())
        .map_err(|e| file_error("tls_cert_file", cert, e.to_string()))?;
    if certs.is_empty() {
        return Err(file_error(
            "tls_cert_file",
            cert,
            "没有证书 / no certificate in the file".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| file_error("tls_key_file", key, e.to_string()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsSetupError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| TlsSetupError::Config(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Serve `app` on `listener` until `shutdown`, then finish the requests in progress.
pub async fn serve(listener: TcpListener, app: Router, settings: ListenSettings, shutdown: Shutdown) {
    let permits = Arc::new(Semaphore::new(settings.max_connections));
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_timeout);
    loop {
        let permit = tokio::select! {
            biased;
            _ = shutdown.wait() => break,
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, remote) = tokio::select! {
            biased;
            _ = shutdown.wait() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: keep serving what is open.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let service = hyper::service::service_fn(move_service(app.clone(), remote));
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let tls = settings.tls.clone();
        let handshake_timeout = settings.header_timeout;
        tokio::spawn(async move {
            let _permit = permit;
            match tls {
                Some(acceptor) => {
                    let stream = match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::debug!(%remote, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%remote, "TLS handshake timed out");
                            return;
                        }
                    };
                    serve_one(&builder, stream, service, watcher, remote).await;
                }
                None => serve_one(&builder, stream, service, watcher, remote).await,
            }
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(settings.shutdown_grace) => {
            tracing::warn!("requests still in progress after the grace period; stopping anyway");
        }
    }
}

/// Serve HTTP/1.1 on one accepted connection (plain or TLS), watched for graceful shutdown.
async fn serve_one<I>(
    builder: &http1::Builder,
    io: I,
    service: impl hyper::service::Service<
            hyper::Request<Incoming>,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
            Future = Answer,
        > + Send
        + 'static,
    watcher: hyper_util::server::graceful::Watcher,
    remote: SocketAddr,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let connection = builder.serve_connection(TokioIo::new(io), service);
    if let Err(e) = watcher.watch(connection).await {
        tracing::debug!(%remote, error = %e, "connection ended with an error");
    }
}

/// What the per-connection service answers with.
type Answer = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<axum::response::Response, std::convert::Infallible>> + Send>,
>;

/// The per-connection service: `app` with the client's address in every request.
fn move_service(app: Router, remote: SocketAddr) -> impl Fn(hyper::Request<Incoming>) -> Answer + Clone {
    move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(remote));
        let app = app.clone();
        Box::pin(async move { tower::ServiceExt::oneshot(app, request.map(axum::body::Body::new)).await })
    }
}
