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
//! ```
//!
//! The URL and header values may name context values as `{key}` or `{key.field}` (see
//! [`super::render`]); `{idempotency_key}` is the attempt's stable idempotency key, to pass
//! to services that deduplicate. The response body is stored as JSON when it parses as
//! JSON, as text otherwise, and as `null` when empty; bodies over [`MAX_RESPONSE_BYTES`] are
//! refused.
//!
//! Errors have kind `http`. Connection failures, 5xx, 408 (Request Timeout) and 429 (Too
//! Many Requests) are retryable: the service may recover. Other unexpected statuses (4xx
//! above all) are not: the same request will get the same answer. There is no request
//! timeout of its own beyond a 10 s connect timeout: give the step a `timeout`.

use std::sync::OnceLock;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use serde_json::Value;
use weir::{Step, StepContext, StepError};

use super::{config_error, config_object, json_type, opt_string, render};

/// The error kind of every `http` failure except configuration.
pub const HTTP_KIND: &str = "http";

/// The largest response body read, in bytes.
pub const MAX_RESPONSE_BYTES: usize = 1 << 20;

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How much of an unexpected response's body an error message quotes.
const SNIPPET_CHARS: usize = 200;

/// The `http` handler. Holds one connection pool, created on first use.
#[derive(Debug, Default)]
pub struct Http {
    client: OnceLock<Result<reqwest::Client, String>>,
}

/// What one step's config asks for.
struct Request {
    method: Method,
    url: Url,
    headers: HeaderMap,
    body: Option<Value>,
    expected: Option<Vec<u16>>,
    output: String,
}

impl Http {
    /// A handler with its own client (created on first use).
    pub fn new() -> Http {
        Http::default()
    }

    /// A handler that uses this client (its pool, proxy, TLS and timeout settings).
    pub fn with_client(client: reqwest::Client) -> Http {
        let cell = OnceLock::new();
        let _ = cell.set(Ok(client));
        Http { client: cell }
    }

    fn client(&self) -> Result<&reqwest::Client, StepError> {
        self.client
            .get_or_init(|| {
                reqwest::Client::builder()
                    .connect_timeout(CONNECT_TIMEOUT)
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
        let rendered = render(&url, ctx);
        let url = Url::parse(&rendered).map_err(|e| {
            bad(format!(
                "`url` {rendered:?} is not a valid URL ({e}): write it like http://host/path"
            ))
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(bad(format!(
                "`url` {rendered:?} must start with http:// or https://"
            )));
        }

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

        Ok(Request {
            method,
            url,
            headers,
            body,
            expected,
            output,
        })
    }

    fn expects(&self, status: StatusCode) -> bool {
        match &self.expected {
            Some(list) => list.contains(&status.as_u16()),
            None => status.is_success(),
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

#[async_trait]
impl Step for Http {
    async fn execute(&self, ctx: &mut StepContext) -> Result<(), StepError> {
        let req = Request::read(ctx)?;
        let client = self.client()?;
        let what = format!("{} {}", req.method, req.url);
        let mut builder = client
            .request(req.method.clone(), req.url.clone())
            .headers(req.headers.clone());
        builder = match &req.body {
            None => builder,
            Some(Value::String(text)) => builder.body(text.clone()),
            Some(json) => builder.json(json),
        };
        let mut resp = builder.send().await.map_err(|e| {
            StepError::retryable(format!("{what}: {}", error_chain(&e))).with_kind(HTTP_KIND)
        })?;
        let status = resp.status();
        let body = read_body(&mut resp).await.map_err(|e| StepError {
            kind: HTTP_KIND.into(),
            message: format!("{what}: {e}"),
            retryable: false,
        })?;
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
                    snippet(&body)
                ),
                retryable: retryable_status(status),
            });
        }
        ctx.set(req.output, body);
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
            (json!("http://h/"), "expected an object"),
        ] {
            let (r, _) = run("s", config.clone(), json!({})).await;
            let e = r.unwrap_err();
            assert_eq!(e.kind, CONFIG_ERROR, "{config}");
            assert!(!e.retryable);
            assert!(e.message.contains(says), "{config}: {}", e.message);
        }
    }

    #[test]
    fn long_bodies_are_cut_in_messages() {
        let s = snippet(&json!("é".repeat(500)));
        assert_eq!(s.chars().count(), 2 + SNIPPET_CHARS + 3);
        assert_eq!(snippet(&Value::Null), "");
    }
}
