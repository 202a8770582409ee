//! The web dashboard: static files embedded in the binary, served at `/` and `/assets/*`.
//!
//! The dashboard is plain HTML, CSS and JavaScript modules (no build step, no framework, no
//! CDN), in `coordinator/dashboard/`. Every file is compiled into the `weir` binary with
//! `include_bytes!`, so `weir serve` needs nothing beside it and works offline. It talks to
//! the JSON API under `/api/v1` with the token the user signs in with.
//!
//! # Caching
//! Asset names carry no content hash (there is no build step to add one), so every response
//! says `Cache-Control: no-cache` with an `ETag`: the browser keeps its copy and revalidates
//! it, and the answer is a body-less `304 Not Modified` until the binary changes. After an
//! upgrade the new files are picked up at once, never mixed with stale ones.
//!
//! # Security headers
//! The page allows scripts, styles and connections from its own origin only
//! (`Content-Security-Policy`), cannot be framed, sends no referrer, and every response has
//! `X-Content-Type-Options: nosniff`. The scripts never insert data as HTML.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// One embedded file: its path under `/assets/` (`""` for the page itself), its media
/// type and its bytes.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

/// Embeds `coordinator/dashboard/<file>` as an [`Asset`] served at `/assets/<path>`.
macro_rules! asset {
    ($path:literal, $file:literal, $type:expr) => {
        Asset {
            path: $path,
            content_type: $type,
            bytes: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/dashboard/", $file)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file of the dashboard (a test checks that none in the folder is missing here).
static ASSETS: &[Asset] = &[
    asset!("", "index.html", "text/html; charset=utf-8"),
    asset!("style.css", "assets/style.css", "text/css; charset=utf-8"),
    asset!("favicon.svg", "assets/favicon.svg", "image/svg+xml"),
    asset!("app.js", "assets/app.js", JS),
    asset!("api.js", "assets/api.js", JS),
    asset!("dom.js", "assets/dom.js", JS),
    asset!("format.js", "assets/format.js", JS),
    asset!("form.js", "assets/form.js", JS),
    asset!("graph.js", "assets/graph.js", JS),
    asset!("live.js", "assets/live.js", JS),
    asset!("router.js", "assets/router.js", JS),
    asset!("views/signin.js", "assets/views/signin.js", JS),
    asset!("views/home.js", "assets/views/home.js", JS),
    asset!("views/definitions.js", "assets/views/definitions.js", JS),
    asset!("views/definition.js", "assets/views/definition.js", JS),
    asset!("views/start.js", "assets/views/start.js", JS),
    asset!("views/instances.js", "assets/views/instances.js", JS),
    asset!("views/instance.js", "assets/views/instance.js", JS),
    asset!("views/inbox.js", "assets/views/inbox.js", JS),
    asset!("views/task.js", "assets/views/task.js", JS),
    asset!("views/dlq.js", "assets/views/dlq.js", JS),
    asset!("views/schedules.js", "assets/views/schedules.js", JS),
    asset!("views/messages.js", "assets/views/messages.js", JS),
];

/// Only this origin may run scripts, load styles and be connected to; the page is never framed.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// The dashboard's routes: `GET /` (the page) and `GET /assets/{*path}` (its files). Needs no
/// state, so it merges into an app of any state type.
pub(super) fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(index))
        .route("/assets/{*path}", get(asset))
}

async fn index(headers: HeaderMap) -> Response {
    serve("", &headers)
}

async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    if path.is_empty() {
        return not_found();
    }
    serve(&path, &headers)
}

/// The ETag of each asset, in [`ASSETS`]' order: a hash of the bytes and the version.
fn etags() -> &'static [HeaderValue] {
    static ETAGS: OnceLock<Vec<HeaderValue>> = OnceLock::new();
    ETAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| {
                let mut hasher = DefaultHasher::new();
                a.bytes.hash(&mut hasher);
                let tag = format!("\"{}-{:016x}\"", env!("CARGO_PKG_VERSION"), hasher.finish());
                HeaderValue::from_str(&tag).unwrap_or(HeaderValue::from_static("\"weir\""))
            })
            .collect()
    })
}

fn serve(path: &str, request: &HeaderMap) -> Response {
    let Some(index) = ASSETS.iter().position(|a| a.path == path) else {
        return not_found();
    };
    let asset = &ASSETS[index];
    let etag = &etags()[index];
    let mut headers = HeaderMap::new();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(header::ETAG, etag.clone());
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if path.is_empty() {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
    }
    if matches_etag(request, etag) {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    (StatusCode::OK, headers, asset.bytes).into_response()
}

/// Whether `If-None-Match` names this ETag (or is `*`).
fn matches_etag(request: &HeaderMap, etag: &HeaderValue) -> bool {
    let Ok(etag) = etag.to_str() else {
        return false;
    };
    request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == etag || t == "*")
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        "no such dashboard file\n",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::path::{Path as FsPath, PathBuf};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    /// A response read off the socket: status, headers (lowercase names), body.
    struct Reply {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    }

    impl Reply {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        }
    }

    async fn start() -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app: Router<()> = router();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        addr
    }

    /// One HTTP/1.1 request over a real socket (`Connection: close`, so the body ends at EOF).
    async fn get(addr: std::net::SocketAddr, path: &str, extra: &str) -> Reply {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{extra}\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.unwrap();
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = String::from_utf8(raw[..split].to_vec()).unwrap();
        let mut lines = head.split("\r\n");
        let status = lines.next().unwrap().split(' ').nth(1).unwrap();
        let headers = lines
            .map(|l| {
                let (n, v) = l.split_once(':').unwrap();
                (n.trim().to_ascii_lowercase(), v.trim().to_owned())
            })
            .collect();
        Reply {
            status: status.parse().unwrap(),
            headers,
            body: raw[split + 4..].to_vec(),
        }
    }

    #[tokio::test]
    async fn serves_the_page_and_its_assets_with_types_and_cache_headers() {
        let addr = start().await;
        let page = get(addr, "/", "").await;
        assert_eq!(page.status, 200);
        assert_eq!(
            page.header("content-type"),
            Some("text/html; charset=utf-8")
        );
        assert_eq!(page.header("cache-control"), Some("no-cache"));
        assert!(page
            .header("content-security-policy")
            .unwrap()
            .contains("script-src 'self'"));
        let html = String::from_utf8(page.body.clone()).unwrap();
        assert!(html.contains(r#"src="assets/app.js""#), "{html}");

        for (path, ty) in [
            ("/assets/app.js", "text/javascript; charset=utf-8"),
            ("/assets/views/task.js", "text/javascript; charset=utf-8"),
            ("/assets/style.css", "text/css; charset=utf-8"),
            ("/assets/favicon.svg", "image/svg+xml"),
        ] {
            let r = get(addr, path, "").await;
            assert_eq!(r.status, 200, "{path}");
            assert_eq!(r.header("content-type"), Some(ty), "{path}");
            assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
            assert!(r.header("etag").is_some(), "{path}");
            assert!(!r.body.is_empty(), "{path}");
        }
    }

    #[tokio::test]
    async fn a_matching_etag_gets_304_without_a_body_and_a_stale_one_the_file() {
        let addr = start().await;
        let first = get(addr, "/assets/api.js", "").await;
        let etag = first.header("etag").unwrap().to_owned();
        let again = get(
            addr,
            "/assets/api.js",
            &format!("If-None-Match: {etag}\r\n"),
        )
        .await;
        assert_eq!(again.status, 304);
        assert!(again.body.is_empty());
        assert_eq!(again.header("etag"), Some(etag.as_str()));
        let stale = get(addr, "/assets/api.js", "If-None-Match: \"0.0.0-old\"\r\n").await;
        assert_eq!(stale.status, 200);
        assert_eq!(stale.body, first.body);
    }

    #[tokio::test]
    async fn unknown_files_and_path_tricks_are_404() {
        let addr = start().await;
        for path in [
            "/assets/nope.js",
            "/assets/",
            "/assets/../Cargo.toml",
            "/assets/%2e%2e/index.html",
            "/assets/views",
        ] {
            let r = get(addr, path, "").await;
            assert_eq!(r.status, 404, "{path}");
        }
    }

    fn dashboard_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("dashboard")
    }

    fn files_under(dir: &FsPath, out: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                files_under(&path, out);
            } else {
                let rel = path.strip_prefix(dashboard_dir()).unwrap();
                out.insert(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }

    #[test]
    fn every_file_of_the_dashboard_folder_is_embedded() {
        let mut on_disk = BTreeSet::new();
        files_under(&dashboard_dir(), &mut on_disk);
        let embedded: BTreeSet<String> = ASSETS
            .iter()
            .map(|a| {
                if a.path.is_empty() {
                    "index.html".to_owned()
                } else {
                    format!("assets/{}", a.path)
                }
            })
            .collect();
        assert_eq!(on_disk, embedded, "add new dashboard files to ASSETS");
    }

    /// Each `from './x.js'` import of each module names an embedded module: a typo would
    /// otherwise only show in a browser.
    #[test]
    fn every_module_import_resolves_to_an_embedded_file() {
        let known: BTreeSet<&str> = ASSETS.iter().map(|a| a.path).collect();
        for a in ASSETS.iter().filter(|a| a.path.ends_with(".js")) {
            let text = std::str::from_utf8(a.bytes).unwrap();
            let dir = a.path.rsplit_once('/').map_or("", |(d, _)| d);
            for spec in text.split(" from '").skip(1) {
                let spec = spec.split('\'').next().unwrap();
                let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
                for part in spec.split('/') {
                    match part {
                        "." => {}
                        ".." => {
                            parts.pop();
                        }
                        p => parts.push(p),
                    }
                }
                let target = parts.join("/");
                assert!(
                    known.contains(target.as_str()),
                    "{} imports {spec}, which is not embedded",
                    a.path
                );
            }
        }
    }
}
