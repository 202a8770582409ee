//! `http`: calls an HTTP service and puts the response body into the context.
//!
//! ```yaml
//! notify:
//!   type: machine
//!   handler: http
//!   timeout: 10s
//!   retry: { max_attempts: 5, initial_interval: 1s }
//!   config:
//!     method: POST                       # default: POST with a body, else GET
//!     url: "http://payments.local/expenses/{expense_id}/pay"
//!     headers: { Authorization: "Bearer {token}", Idempotency-Key: "{idempotency_key}" }
//!     body: { amount: 120 }             # a JSON value; a string is sent as text
//!     expected_status: [200, 201]       # default: any 2xx
//!     output: payment                   # default: <step>_response
//!     redirects: same_origin            # default; or `none`, or `any`
//! ```
//!
//! The URL and header values may name context values as `{key}` or `{key.field}` (see
//! [`super::render`]); `{idempotency_key}` is the attempt's stable idempotency key, to pass
//! to services that deduplicate. The response body is stored as JSON when it parses as
//! JSON, as text otherwise, and as `null` when empty; bodies over [`MAX_RESPONSE_BYTES`] are
//! refused.
//!
//! # Templates take user data
//!
//! Context values come from whoever started the instance or completed its tasks, so the
//! URL is rendered part by part, never pasted:
//!
//! - the scheme, host and port must be written literally: a placeholder there is a
//!   `config` error, and a rendered URL whose origin differs from the template's is refused;
//! - a value in the path or the query is percent-encoded (everything but letters, digits
//!   and `-._~`), so `../../admin?x=` stays inside one path segment or query value; a value
//!   that is exactly `.` or `..` in a path is refused (kind `http`, not retried).
//!
//! Redirects are followed (up to 10) within the request's origin only. A redirect to
//! another origin fails the step (kind `http`, not retried) unless the step says
//! `redirects: any`; even then the step's own headers (credentials) are never sent to
//! another origin. `redirects: none` returns the 3xx response as it is.
//!
//! # The worker's policy
//!
//! [`HttpPolicy`] (`weir-worker --http-allow-host`, `--http-deny-private`,
//! `--http-timeout`) bounds where any `http` step may go, whatever its definition says:
//! link-local addresses (169.254.0.0/16, fe80::/10: cloud metadata services) and
//! unspecified ones are always refused unless their host is allowed by name; with
//! `deny_private`, loopback and private ranges are too; with an allow list, only the hosts
//! listed. Names are checked after DNS resolution, so a name pointing at a refused address
//! is refused too. A refusal fails the step (kind `http`, not retried). Each request has a
//! total timeout (default 30 s) besides the step's own `timeout`.
//!
//! Errors have kind `http`. Connection failures, 5xx, 408 (Request Timeout) and 429 (Too
//! Many Requests) are retryable: the service may recover. Other unexpected statuses (4xx
//! above all) are not: the same request will get the same answer.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, LOCATION};
use reqwest::{Method, StatusCode, Url};
use serde_json::Value;
use weir::{Step, StepContext, StepError};

use super::{
    config_error, config_object, json_type, lookup, opt_string, pieces, render, value_text, Piece,
};

/// The error kind of every `http` failure except configuration.
pub(super) const HTTP_KIND: &str = "http";

/// The largest response body read, in bytes.
pub(super) const MAX_RESPONSE_BYTES: usize = 1 << 20;

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The default total time of one request ([`HttpPolicy::timeout`]).
pub(super) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The most redirects followed for one request.
const MAX_REDIRECTS: usize = 10;

/// Where a worker's `http` steps may go, whatever their definitions say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpPolicy {
    /// When not empty, the only hosts requests may go to: `host` (any port) or
    /// `host:port`, names or IP addresses, case-insensitive. A listed host is exempt from
    /// the address checks.
    pub allow_hosts: Vec<String>,
    /// Refuse loopback, private (RFC 1918, unique local, CGNAT) and link-local addresses,
    /// not only link-local ones.
    pub deny_private: bool,
    /// The total time of one request (connect, send, read), redirects included.
    pub timeout: Duration,
}

impl Default for HttpPolicy {
    /// Any host but link-local and unspecified addresses; 30 s per request.
    fn default() -> HttpPolicy {
        HttpPolicy {
            allow_hosts: Vec::new(),
            deny_private: false,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

impl HttpPolicy {
    /// Whether `host` (and `port`) is on the allow list.
    fn listed(&self, host: &str, port: Option<u16>) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        self.allow_hosts.iter().any(|allowed| {
            let allowed = allowed.trim();
            let (h, p) = match allowed.rsplit_once(':') {
                Some((h, p)) if !h.contains(':') || h.ends_with(']') => (h, Some(p)),
                _ => (allowed, None),
            };
            let h = h.trim_start_matches('[').trim_end_matches(']');
            h.eq_ignore_ascii_case(host)
                && p.is_none_or(|p| port.is_some_and(|port| p == port.to_string()))
        })
    }

    /// Why a request to this URL is refused, if it is: the allow list and, for an IP
    /// address written in the URL, the address ranges (names are checked when resolved).
    fn refuses(&self, url: &Url) -> Option<String> {
        let host = url.host_str().unwrap_or_default();
        let listed = self.listed(host, url.port_or_known_default());
        if !self.allow_hosts.is_empty() && !listed {
            return Some(format!(
                "host {host} is not on this worker's allow list (--http-allow-host)"
            ));
        }
        let Ok(ip) = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        else {
            return None;
        };
        if listed {
            return None;
        }
        self.refuses_ip(ip)
    }

    /// Why an address is refused, if it is.
    fn refuses_ip(&self, ip: IpAddr) -> Option<String> {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        let (link_local, private) = match ip {
            IpAddr::V4(v4) => (
                v4.is_link_local() || v4.is_unspecified() || v4.is_broadcast(),
                v4.is_loopback()
                    || v4.is_private()
                    || (v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64),
            ),
            IpAddr::V6(v6) => (
                (v6.segments()[0] & 0xffc0) == 0xfe80 || v6.is_unspecified(),
                v6.is_loopback() || (v6.segments()[0] & 0xfe00) == 0xfc00,
            ),
        };
        if link_local {
            Some(format!(
                "address {ip} is link-local or unspecified (cloud metadata services live there); \
                 allow its host by name with --http-allow-host if it is really meant"
            ))
        } else if private && self.deny_private {
            Some(format!(
                "address {ip} is loopback or private, refused by --http-deny-private \
                 (allow its host with --http-allow-host)"
            ))
        } else {
            None
        }
    }
}

/// A request refused by the [`HttpPolicy`] (also raised from DNS resolution).
#[derive(Debug, thiserror::Error)]
#[error("refused by this worker's http policy: {0}")]
struct PolicyRefused(String);

/// Resolves names with the system resolver, then drops the addresses the policy refuses.
struct PolicyResolver(Arc<HttpPolicy>);

impl reqwest::dns::Resolve for PolicyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.0.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            // A host listed by name (any port) is trusted whatever it resolves to.
            if policy.listed(&host, None) {
                return Ok(Box::new(found.into_iter()) as reqwest::dns::Addrs);
            }
            let mut why = None;
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| match policy.refuses_ip(a.ip()) {
                    Some(reason) => {
                        why = Some(reason);
                        false
                    }
                    None => true,
                })
                .collect();
            if allowed.is_empty() {
                if let Some(reason) = why {
                    return Err(Box::new(PolicyRefused(format!("{host}: {reason}")))
                        as Box<dyn std::error::Error + Send + Sync>);
                }
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Which redirects a step follows (`redirects:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Redirects {
    /// None: a 3xx response is the answer.
    None,
    /// Within the request's origin only (the default).
    SameOrigin,
    /// Any, but the step's headers go only to its own origin.
    Any,
}

/// How much of an unexpected response's body an error message quotes.
const SNIPPET_CHARS: usize = 200;

/// The `http` handler. Holds one connection pool, created on first use.
#[derive(Debug, Default)]
pub struct Http {
    client: OnceLock<Result<reqwest::Client, String>>,
    policy: Arc<HttpPolicy>,
}

/// What one step's config asks for.
struct Request {
    method: Method,
    url: Url,
    headers: HeaderMap,
    body: Option<Value>,
    expected: Option<Vec<u16>>,
    output: String,
    redirects: Redirects,
}

impl Http {
    /// A handler with its own client (created on first use) and the default policy.
    pub fn new() -> Http {
        Http::default()
    }

    /// A handler with its own client (created on first use) under this policy.
    pub fn with_policy(policy: HttpPolicy) -> Http {
        Http {
            client: OnceLock::new(),
            policy: Arc::new(policy),
        }
    }

    /// A handler that uses this client (its pool, proxy, TLS and timeout settings). The
    /// policy's URL checks still apply; its DNS check and timeout are the client's
    /// business. The client should not follow redirects itself
    /// (`reqwest::redirect::Policy::none()`), or the redirect rules cannot apply.
    pub fn with_client(client: reqwest::Client) -> Http {
        let cell = OnceLock::new();
        let _ = cell.set(Ok(client));
        Http {
            client: cell,
            policy: Arc::default(),
        }
    }

    fn client(&self) -> Result<&reqwest::Client, StepError> {
        self.client
            .get_or_init(|| {
                reqwest::Client::builder()
                    .connect_timeout(CONNECT_TIMEOUT)
                    .timeout(self.policy.timeout)
                    // Redirects are followed by `execute`, which applies the rules.
                    .redirect(reqwest::redirect::Policy::none())
                    .dns_resolver(Arc::new(PolicyResolver(self.policy.clone())))
                    .build()
                    .map_err(|e| error_chain(&e))
            })
            .as_ref()
            .map_err(|e| {
                StepError::retryable(format!("cannot create the HTTP client: {e}"))
                    .with_kind(HTTP_KIND)
            })
    }
}

impl Request {
    fn read(ctx: &StepContext) -> Result<Request, StepError> {
        let bad = |m: String| config_error(ctx, "http", m);
        let config = config_object(ctx, "http")?;
        let body = config.get("body").filter(|b| !b.is_null()).cloned();

        let method = match opt_string(ctx, "http", &config, "method")? {
            Some(m) => {
                Method::from_bytes(m.trim().to_ascii_uppercase().as_bytes()).map_err(|_| {
                    bad(format!(
                        "`method` {m:?} is not an HTTP method: use GET, POST, PUT, PATCH or DELETE"
                    ))
                })?
            }
            None if body.is_some() => Method::POST,
            None => Method::GET,
        };

        let Some(url) = opt_string(ctx, "http", &config, "url")? else {
            return Err(bad("`url` is missing: write `url: http://host/path`".into()));
        };
        let url = render_url(&url, ctx)?;

        let mut headers = HeaderMap::new();
        match config.get("headers") {
            None | Some(Value::Null) => {}
            Some(Value::Object(map)) => {
                for (name, value) in map {
                    let text = match value {
                        Value::String(s) => render_with_key(s, ctx),
                        Value::Number(_) | Value::Bool(_) => value.to_string(),
                        other => {
                            return Err(bad(format!(
                                "header {name:?} must be a string, got {}",
                                json_type(other)
                            )))
                        }
                    };
                    let name = HeaderName::from_bytes(name.as_bytes())
                        .map_err(|_| bad(format!("{name:?} is not a valid header name")))?;
                    let value = HeaderValue::from_str(&text).map_err(|_| {
                        bad(format!(
                            "the value of header {name:?} is not valid in a header"
                        ))
                    })?;
                    headers.append(name, value);
                }
            }
            Some(other) => {
                return Err(bad(format!(
                    "`headers` must be an object of name: value, got {}",
                    json_type(other)
                )))
            }
        }

        let expected = match config.get("expected_status") {
            None | Some(Value::Null) => None,
            Some(v @ Value::Number(_)) => {
                Some(vec![status_code(v).ok_or_else(|| bad(status_fix(v)))?])
            }
            Some(Value::Array(list)) if !list.is_empty() => Some(
                list.iter()
                    .map(|v| status_code(v).ok_or_else(|| bad(status_fix(v))))
                    .collect::<Result<Vec<u16>, StepError>>()?,
            ),
            Some(other) => return Err(bad(status_fix(other))),
        };

        let output = opt_string(ctx, "http", &config, "output")?
            .unwrap_or_else(|| format!("{}_response", ctx.step()));
        if output.trim().is_empty() {
            return Err(bad("`output` must not be empty".into()));
        }

        let redirects = match opt_string(ctx, "http", &config, "redirects")?.as_deref() {
            None | Some("same_origin") => Redirects::SameOrigin,
            Some("none") => Redirects::None,
            Some("any") => Redirects::Any,
            Some(other) => {
                return Err(bad(format!(
                    "`redirects` {other:?} is not a choice: write same_origin (the default), none or any"
                )))
            }
        };

        Ok(Request {
            method,
            url,
            headers,
            body,
            expected,
            output,
            redirects,
        })
    }

    fn expects(&self, status: StatusCode) -> bool {
        match &self.expected {
            Some(list) => list.contains(&status.as_u16()),
            None => status.is_success(),
        }
    }
}

/// Where in a URL template a piece is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UrlPart {
    /// Scheme, credentials, host, port.
    Origin,
    /// The path.
    Path,
    /// The query or the fragment.
    Query,
}

/// Renders a URL template part by part (see the module docs): the origin literal, values
/// percent-encoded in the path and the query, and the result's origin checked against the
/// template's.
fn render_url(template: &str, ctx: &StepContext) -> Result<Url, StepError> {
    let bad = |m: String| config_error(ctx, "http", m);
    let mut out = String::with_capacity(template.len());
    let mut origin = String::new();
    let mut part = UrlPart::Origin;
    for piece in pieces(template) {
        match piece {
            Piece::Text(text) => {
                for c in text.chars() {
                    if part == UrlPart::Origin {
                        let after_scheme = out.find("://").map(|i| i + 3);
                        if after_scheme
                            .is_some_and(|i| out.len() >= i && matches!(c, '/' | '?' | '#'))
                        {
                            origin = out.clone();
                            part = if c == '/' {
                                UrlPart::Path
                            } else {
                                UrlPart::Query
                            };
                        }
                    } else if part == UrlPart::Path && matches!(c, '?' | '#') {
                        part = UrlPart::Query;
                    }
                    out.push(c);
                }
            }
            Piece::Key(path, written) => {
                if part == UrlPart::Origin {
                    return Err(bad(format!(
                        "`url` {template:?} has {written} in its scheme, host or port: data must \
                         never choose where a request goes; write the origin literally, like \
                         https://api.example.com/items/{written}"
                    )));
                }
                let Some(value) = lookup(ctx, path) else {
                    out.push_str(written);
                    continue;
                };
                let text = value_text(value);
                if part == UrlPart::Path && (text == "." || text == "..") && out.ends_with('/') {
                    return Err(StepError::fatal(
                        HTTP_KIND,
                        format!(
                            "step {:?}: the value of {written} in `url` is {text:?}, which would \
                             move the request to another path; refused",
                            ctx.step()
                        ),
                    ));
                }
                percent_encode_into(&text, &mut out);
            }
        }
    }
    if part == UrlPart::Origin {
        origin = out.clone();
    }
    let url = Url::parse(&out).map_err(|e| {
        bad(format!(
            "`url` {out:?} is not a valid URL ({e}): write it like http://host/path"
        ))
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad(format!(
            "`url` {out:?} must start with http:// or https://"
        )));
    }
    // Defence in depth: the origin rendered must be the origin written.
    let written = Url::parse(&origin).map_err(|e| {
        bad(format!(
            "`url` {template:?} does not start with a valid origin ({e}): write it like http://host/path"
        ))
    })?;
    if written.origin() != url.origin() {
        return Err(StepError::fatal(
            HTTP_KIND,
            format!(
                "step {:?}: the rendered URL's origin {} differs from the template's {}; refused",
                ctx.step(),
                url.origin().ascii_serialization(),
                written.origin().ascii_serialization()
            ),
        ));
    }
    Ok(url)
}

/// Appends `text` percent-encoded: every byte but ASCII letters, digits and `-._~`.
fn percent_encode_into(text: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in text.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 15) as usize] as char);
        }
    }
}

/// [`render`], with `{idempotency_key}` as the attempt's idempotency key.
fn render_with_key(template: &str, ctx: &StepContext) -> String {
    render(template, ctx).replace("{idempotency_key}", &ctx.idempotency_key())
}

fn status_code(v: &Value) -> Option<u16> {
    v.as_u64()
        .filter(|n| (100..=599).contains(n))
        .and_then(|n| u16::try_from(n).ok())
}

fn status_fix(v: &Value) -> String {
    format!("`expected_status` {v} is not a status code: write a code like 201 or a list like [200, 204]")
}

/// An error and its sources, `: `-separated (reqwest's own message hides the cause).
fn error_chain(e: &dyn std::error::Error) -> String {
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

/// A status worth retrying: the service may answer otherwise later.
fn retryable_status(status: StatusCode) -> bool {
    status.is_server_error()
        || status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
}

/// Reads a body up to [`MAX_RESPONSE_BYTES`]: JSON when it parses, text otherwise, null when
/// empty.
async fn read_body(resp: &mut reqwest::Response) -> Result<Value, String> {
    let mut bytes: Vec<u8> = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| error_chain(&e))? {
        if bytes.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(format!(
                "the response body is larger than {MAX_RESPONSE_BYTES} bytes"
            ));
        }
        bytes.extend_from_slice(&chunk);
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    Ok(serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned())))
}

fn snippet(body: &Value) -> String {
    let text = match body {
        Value::Null => return String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut short: String = text.chars().take(SNIPPET_CHARS).collect();
    if short.len() < text.len() {
        short.push_str("...");
    }
    format!(": {short}")
}

/// Whether two URLs share scheme, host and port.
fn same_origin(a: &Url, b: &Url) -> bool {
    a.origin() == b.origin()
}

/// A failure of a request that retrying may fix (connection, timeout), unless the policy
/// refused it.
fn send_error(what: &str, e: &reqwest::Error) -> StepError {
    let mut source: Option<&dyn std::error::Error> = Some(e);
    while let Some(s) = source {
        if let Some(refused) = s.downcast_ref::<PolicyRefused>() {
            return StepError::fatal(HTTP_KIND, format!("{what}: {refused}"));
        }
        source = s.source();
    }
    StepError::retryable(format!("{what}: {}", error_chain(e))).with_kind(HTTP_KIND)
}

#[async_trait]
impl Step for Http {
    async fn execute(&self, ctx: &mut StepContext) -> Result<(), StepError> {
        let req = Request::read(ctx)?;
        let client = self.client()?;
        let mut url = req.url.clone();
        let mut method = req.method.clone();
        let mut body = req.body.clone();
        let mut redirects = 0;
        let (status, body_value, what) = loop {
            let what = format!("{method} {url}");
            if let Some(reason) = self.policy.refuses(&url) {
                return Err(StepError::fatal(
                    HTTP_KIND,
                    format!("{what}: {}", PolicyRefused(reason)),
                ));
            }
            let mut builder = client.request(method.clone(), url.clone());
            // The step's headers (credentials, often) go to its own origin only.
            if same_origin(&url, &req.url) {
                builder = builder.headers(req.headers.clone());
            }
            builder = match &body {
                None => builder,
                Some(Value::String(text)) => builder.body(text.clone()),
                Some(json) => builder.json(json),
            };
            let mut resp = builder.send().await.map_err(|e| send_error(&what, &e))?;
            let status = resp.status();
            let location = resp
                .headers()
                .get(LOCATION)
                .and_then(|l| l.to_str().ok())
                .and_then(|l| url.join(l).ok());
            if let (true, Some(next)) = (status.is_redirection(), location) {
                if req.redirects != Redirects::None {
                    if !same_origin(&next, &req.url) && req.redirects != Redirects::Any {
                        return Err(StepError::fatal(
                            HTTP_KIND,
                            format!(
                                "{what}: status {status} redirects to another origin ({}); \
                                 refused: write `redirects: any` in the step's config to follow \
                                 it (the step's headers are never sent there)",
                                next.origin().ascii_serialization()
                            ),
                        ));
                    }
                    redirects += 1;
                    if redirects > MAX_REDIRECTS {
                        return Err(StepError::fatal(
                            HTTP_KIND,
                            format!("{what}: more than {MAX_REDIRECTS} redirects"),
                        ));
                    }
                    // 303, and 301/302 after a POST, turn into a GET without a body (as
                    // browsers do); 307 and 308 repeat the request as it was.
                    let becomes_get = status == StatusCode::SEE_OTHER
                        || (matches!(status, StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND)
                            && method == Method::POST);
                    if becomes_get && method != Method::HEAD {
                        method = Method::GET;
                        body = None;
                    }
                    url = next;
                    continue;
                }
            }
            let value = read_body(&mut resp).await.map_err(|e| StepError {
                kind: HTTP_KIND.into(),
                message: format!("{what}: {e}"),
                retryable: false,
            })?;
            break (status, value, what);
        };
        if !req.expects(status) {
            let expected = match &req.expected {
                Some(list) => list
                    .iter()
                    .map(u16::to_string)
                    .collect::<Vec<_>>()
                    .join(" or "),
                None => "2xx".into(),
            };
            return Err(StepError {
                kind: HTTP_KIND.into(),
                message: format!(
                    "{what}: status {status}, expected {expected}{}",
                    snippet(&body_value)
                ),
                retryable: retryable_status(status),
            });
        }
        ctx.set(req.output, body_value);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use serde_json::json;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tokio::task::JoinHandle;

    use super::*;
    use crate::handlers::testing::ctx;
    use crate::handlers::CONFIG_ERROR;

    /// One canned answer: status, content type, body.
    type Canned = (u16, &'static str, String);

    /// A tiny HTTP/1.1 server on 127.0.0.1 that answers each connection with the next
    /// canned response and returns the raw requests it received.
    async fn serve(responses: Vec<Canned>) -> (SocketAddr, JoinHandle<Vec<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let mut seen = Vec::new();
            for (status, content_type, body) in responses {
                let (mut sock, _) = listener.accept().await.unwrap();
                seen.push(read_request(&mut sock).await);
                let reply = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                sock.write_all(reply.as_bytes()).await.unwrap();
                sock.shutdown().await.unwrap();
            }
            seen
        });
        (addr, task)
    }

    async fn read_request(sock: &mut tokio::net::TcpStream) -> String {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = sock.read(&mut chunk).await.unwrap();
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buf).to_string();
            if let Some(end) = text.find("\r\n\r\n") {
                let len = text[..end]
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or(0);
                if buf.len() >= end + 4 + len {
                    break;
                }
            }
        }
        String::from_utf8_lossy(&buf).to_string()
    }

    async fn run(
        step: &str,
        config: Value,
        context: Value,
    ) -> (Result<(), StepError>, StepContext) {
        let mut c = ctx(step, 1, config, context);
        let r = Http::new().execute(&mut c).await;
        (r, c)
    }

    #[tokio::test]
    async fn get_puts_the_json_body_under_step_response() {
        let (addr, server) = serve(vec![(
            200,
            "application/json",
            r#"{"id":42,"ok":true}"#.into(),
        )])
        .await;
        let (r, c) = run(
            "fetch",
            json!({ "url": format!("http://{addr}/items/{{item}}") }),
            json!({ "item": 42 }),
        )
        .await;
        r.unwrap();
        assert_eq!(
            c.get("fetch_response"),
            Some(&json!({ "id": 42, "ok": true }))
        );
        let requests = server.await.unwrap();
        assert!(
            requests[0].starts_with("GET /items/42 HTTP/1.1"),
            "{}",
            requests[0]
        );
    }

    #[tokio::test]
    async fn post_sends_json_body_and_headers_and_stores_text_under_output() {
        let (addr, server) = serve(vec![(201, "text/plain", "created".into())]).await;
        let (r, c) = run(
            "pay",
            json!({
                "url": format!("http://{addr}/pay"),
                "headers": { "X-Who": "{who}", "X-Key": "{idempotency_key}", "X-Num": 7 },
                "body": { "amount": 12 },
                "expected_status": 201,
                "output": "payment",
            }),
            json!({ "who": "ann" }),
        )
        .await;
        r.unwrap();
        assert_eq!(c.get("payment"), Some(&json!("created")));
        let req = server.await.unwrap().remove(0).to_ascii_lowercase();
        assert!(req.starts_with("post /pay http/1.1"), "{req}");
        assert!(req.contains("x-who: ann"), "{req}");
        assert!(req.contains("x-key: i-1:pay:1"), "{req}");
        assert!(req.contains("x-num: 7"), "{req}");
        assert!(req.contains("content-type: application/json"), "{req}");
        assert!(req.ends_with(r#"{"amount":12}"#), "{req}");
    }

    #[tokio::test]
    async fn an_empty_body_is_null_and_a_listed_status_is_accepted() {
        let (addr, _server) = serve(vec![(404, "text/plain", String::new())]).await;
        let (r, c) = run(
            "probe",
            json!({ "method": "delete", "url": format!("http://{addr}/x"), "expected_status": [200, 404] }),
            json!({}),
        )
        .await;
        r.unwrap();
        assert_eq!(c.get("probe_response"), Some(&Value::Null));
    }

    #[tokio::test]
    async fn server_errors_are_retryable_and_client_errors_are_not() {
        let (addr, _server) = serve(vec![
            (503, "text/plain", "try later".into()),
            (429, "text/plain", String::new()),
            (
                404,
                "application/json",
                r#"{"error":"no such item"}"#.into(),
            ),
            (200, "text/plain", "ok".into()),
        ])
        .await;
        let url = format!("http://{addr}/x");
        let (r, _) = run("s", json!({ "url": url }), json!({})).await;
        let e = r.unwrap_err();
        assert_eq!(e.kind, HTTP_KIND);
        assert!(e.retryable);
        assert!(
            e.message.contains("503") && e.message.contains("try later"),
            "{}",
            e.message
        );

        let (r, _) = run("s", json!({ "url": url }), json!({})).await;
        assert!(r.unwrap_err().retryable, "429 is retryable");

        let (r, c) = run("s", json!({ "url": url }), json!({})).await;
        let e = r.unwrap_err();
        assert_eq!(e.kind, HTTP_KIND);
        assert!(!e.retryable);
        assert!(
            e.message.contains("404") && e.message.contains("no such item"),
            "{}",
            e.message
        );
        assert!(c.output().is_empty());

        // An unexpected success is not retried either.
        let (r, _) = run(
            "s",
            json!({ "url": url, "expected_status": 201 }),
            json!({}),
        )
        .await;
        let e = r.unwrap_err();
        assert!(!e.retryable);
        assert!(e.message.contains("expected 201"), "{}", e.message);
    }

    #[tokio::test]
    async fn connection_refused_is_retryable() {
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            l.local_addr().unwrap().port()
        };
        let (r, _) = run(
            "s",
            json!({ "url": format!("http://127.0.0.1:{port}/") }),
            json!({}),
        )
        .await;
        let e = r.unwrap_err();
        assert_eq!(e.kind, HTTP_KIND);
        assert!(e.retryable);
        assert!(e.message.contains(&port.to_string()), "{}", e.message);
    }

    #[tokio::test]
    async fn bad_configs_are_config_errors() {
        for (config, says) in [
            (json!({}), "`url` is missing"),
            (json!({ "url": "not a url" }), "not a valid URL"),
            (json!({ "url": "ftp://host/x" }), "http://"),
            (
                json!({ "url": "http://h/", "method": "GE T" }),
                "not an HTTP method",
            ),
            (
                json!({ "url": "http://h/", "headers": ["a"] }),
                "`headers` must be an object",
            ),
            (
                json!({ "url": "http://h/", "headers": { "a b": "x" } }),
                "not a valid header name",
            ),
            (
                json!({ "url": "http://h/", "headers": { "a": {} } }),
                "must be a string",
            ),
            (
                json!({ "url": "http://h/", "expected_status": "2xx" }),
                "like 201",
            ),
            (
                json!({ "url": "http://h/", "expected_status": [200, 999] }),
                "like 201",
            ),
            (json!({ "url": "http://h/", "output": "" }), "`output`"),
            (
                json!({ "url": "http://h/", "redirects": "sometimes" }),
                "`redirects`",
            ),
            (json!("http://h/"), "expected an object"),
        ] {
            let (r, _) = run("s", config.clone(), json!({})).await;
            let e = r.unwrap_err();
            assert_eq!(e.kind, CONFIG_ERROR, "{config}");
            assert!(!e.retryable);
            assert!(e.message.contains(says), "{config}: {}", e.message);
        }
    }

    #[tokio::test]
    async fn context_values_stay_inside_their_path_segment_or_query_value() {
        let (addr, server) = serve(vec![(200, "text/plain", "ok".into())]).await;
        let (r, _) = run(
            "refund",
            json!({ "url": format!("http://{addr}/orders/{{order}}/refund?note={{note}}") }),
            json!({ "order": "../../admin/refund-all?", "note": "a&b=c #d" }),
        )
        .await;
        r.unwrap();
        let req = server.await.unwrap().remove(0);
        assert!(
            req.starts_with(
                "GET /orders/..%2F..%2Fadmin%2Frefund-all%3F/refund?note=a%26b%3Dc%20%23d HTTP/1.1"
            ),
            "{req}"
        );
        // A value that is a whole dot segment would climb the path: refused.
        let (r, _) = run(
            "refund",
            json!({ "url": format!("http://{addr}/orders/{{order}}/refund") }),
            json!({ "order": ".." }),
        )
        .await;
        let e = r.unwrap_err();
        assert_eq!(e.kind, HTTP_KIND);
        assert!(!e.retryable);
        assert!(e.message.contains("another path"), "{}", e.message);
    }

    #[tokio::test]
    async fn a_placeholder_in_the_origin_is_a_config_error() {
        for url in [
            "http://{host}/pay",
            "http://127.0.0.1:{port}/pay",
            "{scheme}://127.0.0.1/pay",
            "http://user:{password}@127.0.0.1/",
        ] {
            let (r, _) = run(
                "pay",
                json!({ "url": url, "headers": { "Authorization": "Bearer secret" } }),
                json!({ "host": "evil.example", "port": 1, "scheme": "http", "password": "x" }),
            )
            .await;
            let e = r.unwrap_err();
            assert_eq!(e.kind, CONFIG_ERROR, "{url}");
            assert!(
                e.message.contains("origin literally"),
                "{url}: {}",
                e.message
            );
        }
    }

    /// A listener that answers every request with a redirect to `location`, and returns the
    /// requests it received.
    async fn redirector(location: String) -> (SocketAddr, JoinHandle<Vec<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let req = read_request(&mut sock).await;
            let reply = format!(
                "HTTP/1.1 302 Found\r\nlocation: {location}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
            sock.write_all(reply.as_bytes()).await.unwrap();
            sock.shutdown().await.unwrap();
            vec![req]
        });
        (addr, task)
    }

    #[tokio::test]
    async fn a_redirect_to_another_origin_is_refused_and_never_gets_the_headers() {
        // "Another origin": the same host on another port.
        let (target, target_seen) = serve(vec![(
            200,
            "application/json",
            r#"{"internal":true}"#.into(),
        )])
        .await;
        let (addr, _seen) = redirector(format!("http://{target}/internal")).await;
        let config = json!({
            "url": format!("http://{addr}/start"),
            "headers": { "X-Api-Key": "top-secret" },
        });
        let (r, c) = run("call", config.clone(), json!({})).await;
        let e = r.unwrap_err();
        assert_eq!(e.kind, HTTP_KIND);
        assert!(!e.retryable);
        assert!(e.message.contains("another origin"), "{}", e.message);
        assert!(
            c.output().is_empty(),
            "the internal answer stays out of the context"
        );

        // Opted in: followed, but the secret header stays home.
        let (addr, _seen) = redirector(format!("http://{target}/internal")).await;
        let mut config = config;
        config["url"] = json!(format!("http://{addr}/start"));
        config["redirects"] = json!("any");
        let (r, c) = run("call", config, json!({})).await;
        r.unwrap();
        assert_eq!(c.get("call_response"), Some(&json!({ "internal": true })));
        let req = target_seen.await.unwrap().remove(0).to_ascii_lowercase();
        assert!(req.starts_with("get /internal"), "{req}");
        assert!(!req.contains("top-secret"), "{req}");
    }

    #[tokio::test]
    async fn a_same_origin_redirect_is_followed_with_the_headers() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let mut seen = Vec::new();
            for reply in [
                "HTTP/1.1 301 Moved\r\nlocation: /v2/x\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
            ] {
                let (mut sock, _) = listener.accept().await.unwrap();
                seen.push(read_request(&mut sock).await);
                sock.write_all(reply.as_bytes()).await.unwrap();
                sock.shutdown().await.unwrap();
            }
            seen
        });
        let (r, c) = run(
            "s",
            json!({ "url": format!("http://{addr}/x"), "headers": { "X-Api-Key": "k1" } }),
            json!({}),
        )
        .await;
        r.unwrap();
        assert_eq!(c.get("s_response"), Some(&json!("ok")));
        let seen = server.await.unwrap();
        assert!(seen[1].starts_with("GET /v2/x"), "{}", seen[1]);
        assert!(
            seen[1].to_ascii_lowercase().contains("x-api-key: k1"),
            "{}",
            seen[1]
        );
    }

    #[tokio::test]
    async fn the_worker_policy_refuses_hosts_and_addresses() {
        let (addr, _server) = serve(vec![(200, "text/plain", "ok".into())]).await;
        let url = format!("http://{addr}/x");
        let refused = async |policy: HttpPolicy, url: &str| {
            let mut c = ctx("s", 1, json!({ "url": url }), json!({}));
            Http::with_policy(policy).execute(&mut c).await
        };
        let deny = HttpPolicy {
            deny_private: true,
            ..HttpPolicy::default()
        };
        let e = refused(deny.clone(), &url).await.unwrap_err();
        assert!(!e.retryable);
        assert!(e.message.contains("--http-deny-private"), "{}", e.message);
        // By name too: `localhost` resolves to loopback.
        let e = refused(deny, &format!("http://localhost:{}/x", addr.port()))
            .await
            .unwrap_err();
        assert!(!e.retryable, "{}", e.message);
        assert!(e.message.contains("--http-deny-private"), "{}", e.message);
        let only = HttpPolicy {
            allow_hosts: vec!["api.example.com".into()],
            ..HttpPolicy::default()
        };
        let e = refused(only, &url).await.unwrap_err();
        assert!(e.message.contains("allow list"), "{}", e.message);
        // Link-local (cloud metadata) is refused by default.
        let e = refused(
            HttpPolicy::default(),
            "http://169.254.169.254/latest/meta-data",
        )
        .await
        .unwrap_err();
        assert!(!e.retryable);
        assert!(e.message.contains("link-local"), "{}", e.message);
        // An allowed host passes, private or not.
        let allowed = HttpPolicy {
            allow_hosts: vec![format!("127.0.0.1:{}", addr.port())],
            deny_private: true,
            ..HttpPolicy::default()
        };
        refused(allowed, &url).await.unwrap();
    }

    #[tokio::test]
    async fn a_request_past_the_policy_timeout_fails_retryably() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _hold = tokio::spawn(async move {
            let (sock, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(30)).await;
            drop(sock);
        });
        let policy = HttpPolicy {
            timeout: Duration::from_millis(300),
            ..HttpPolicy::default()
        };
        let mut c = ctx(
            "s",
            1,
            json!({ "url": format!("http://{addr}/") }),
            json!({}),
        );
        let started = std::time::Instant::now();
        let e = Http::with_policy(policy).execute(&mut c).await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(10));
        assert!(e.retryable);
        assert_eq!(e.kind, HTTP_KIND);
    }

    #[test]
    fn long_bodies_are_cut_in_messages() {
        let s = snippet(&json!("é".repeat(500)));
        assert_eq!(s.chars().count(), 2 + SNIPPET_CHARS + 3);
        assert_eq!(snippet(&Value::Null), "");
    }
}
