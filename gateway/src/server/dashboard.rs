//! The web dashboard: static HTML, CSS and JavaScript (plain ES modules, no build step) embedded
//! in the binary from `gateway/dashboard/` and served at `/` and `/dashboard/{file}`.
//!
//! The page itself holds no data: it asks the operator API with the bearer token the user pastes
//! at login, so it sees exactly what the token's role lets it see. Every answer carries a strict
//! Content-Security-Policy (same-origin scripts, styles and API calls only; no inline script, no
//! frames, no plugins), `X-Content-Type-Options: nosniff` and `Referrer-Policy: no-referrer`.

use super::error::ApiError;
use axum::extract::Path;
use axum::http::header::{self, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// The Content-Security-Policy of every dashboard file.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'; object-src 'none'";

/// One embedded file: its name under `/dashboard/`, content type and bytes.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $type:expr) => {
        Asset {
            name: $name,
            content_type: $type,
            body: include_bytes!(concat!("../../dashboard/", $name)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file of the dashboard.
const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("favicon.svg", "image/svg+xml"),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("dom.js", JS),
    asset!("i18n.js", JS),
    asset!("chart.js", JS),
    asset!("ui.js", JS),
    asset!("raw.js", JS),
    asset!("cluster.js", JS),
    asset!("pages/overview.js", JS),
    asset!("pages/quarantine.js", JS),
    asset!("pages/cases.js", JS),
    asset!("pages/records.js", JS),
    asset!("pages/supplements.js", JS),
    asset!("pages/audit.js", JS),
    asset!("pages/mappings.js", JS),
    asset!("pages/deliveries.js", JS),
    asset!("pages/officers.js", JS),
    asset!("pages/joint.js", JS),
    asset!("pages/publicity.js", JS),
    asset!("pages/reconciliation.js", JS),
    asset!("pages/alerts.js", JS),
    asset!("pages/uploads.js", JS),
];

/// The names of the embedded files (for tests and docs).
pub fn asset_names() -> impl Iterator<Item = &'static str> {
    ASSETS.iter().map(|a| a.name)
}

fn serve(name: &str) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.name == name) else {
        return ApiError::not_found(
            format!("控制台没有文件 {name:?}"),
            format!("the dashboard has no file {name:?}"),
        )
        .into_response();
    };
    let headers: [(HeaderName, HeaderValue); 6] = [
        (header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type)),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ),
        (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
    ];
    (headers, asset.body).into_response()
}

async fn index() -> Response {
    serve("index.html")
}

async fn file(Path(name): Path<String>) -> Response {
    serve(&name)
}

/// The dashboard's routes: `GET /` (the page) and `GET /dashboard/{*file}` (its files). Open:
/// the files hold no data, every API call the page makes needs a token.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(index))
        .route("/dashboard/{*file}", get(file))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every file of `gateway/dashboard/` (pages included) is embedded: a new module that is not
    /// listed would answer 404 and break the page that imports it.
    #[test]
    fn every_file_of_the_dashboard_folder_is_embedded() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("dashboard");
        let mut files = Vec::new();
        let mut dirs = vec![root.clone()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).expect("read the dashboard folder") {
                let path = entry.expect("a folder entry").path();
                if path.is_dir() {
                    dirs.push(path);
                } else {
                    let name = path.strip_prefix(&root).expect("under the root");
                    files.push(name.to_string_lossy().replace('\\', "/"));
                }
            }
        }
        let embedded: Vec<&str> = asset_names().collect();
        for file in &files {
            assert!(embedded.contains(&file.as_str()), "{file} is not in ASSETS");
        }
        assert_eq!(files.len(), embedded.len());
    }
}
