//! `weir serve` over a real socket: the `weir` binary serving the API against a private
//! redis-server, with a coordinator and a worker running (in-process, from `weir-tests`).
//! Every endpoint, every error code of the contract, tenant isolation (list, detail, tasks,
//! events), that nobody completes a task in another's name, the SSE stream, pagination,
//! the auth configuration, graceful shutdown, and schemathesis against the OpenAPI document;
//! one behaviour per test.

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use weir::redis::WeirClient;
use weir::Engine;
use weir_tests::cluster::{self, Service};
use weir_tests::serve::ServeProcess;
use weir_tests::RedisServer;

/// Longest a condition may take to hold.
const DEADLINE: Duration = Duration::from_secs(30);

const ADMIN: &str = "t-admin-0123456789";
const ALICE: &str = "t-alice-0123456789"; // tenant acme
const MANAGER: &str = "t-manager-0123456789"; // tenant acme, may approve
const BOB: &str = "t-bob-0123456789"; // tenant globex
const CAROL: &str = "t-carol-0123456789"; // no tenant, not an admin
const DORA: &str = "t-dora-0123456789"; // tenant acme, group finance

const AUTH: &str = r#"
tokens:
  - { token: "t-admin-0123456789", user: "ops@example.com", admin: true }
  - { token: "t-alice-0123456789", user: "alice@example.com", tenant: "acme" }
  - { token: "t-manager-0123456789", user: "manager@example.com", tenant: "acme" }
  - { token: "t-bob-0123456789", user: "bob@example.com", tenant: "globex" }
  - { token: "t-carol-0123456789", user: "carol@example.com" }
  - { token: "t-dora-0123456789", user: "dora@example.com", tenant: "acme", groups: ["finance"] }
"#;

/// Definitions the tests use.
const DEFINITIONS: &[&str] = &[
    r#"{ "name": "quick", "version": "1.0.0", "description": "one machine step",
         "steps": { "work": { "type": "machine", "handler": "set", "config": { "done": true } } } }"#,
    r#"{ "name": "quick", "version": "1.1.0", "description": "one machine step, again",
         "steps": { "work": { "type": "machine", "handler": "set", "config": { "done": 2 } } } }"#,
    r#"{ "name": "approval", "version": "1.0.0", "description": "a manager approves",
         "steps": {
           "approve": { "type": "human", "title": "Approve it", "candidates": ["manager@example.com"],
                        "form": { "type": "object", "required": ["approved"],
                                  "properties": { "approved": { "type": "boolean" },
                                                  "amount": { "type": "number", "minimum": 0 } } } },
           "record": { "type": "machine", "handler": "set", "config": { "recorded": true } } },
         "edges": [ { "from": "approve", "to": "record" } ] }"#,
    r#"{ "name": "gated_approval", "version": "1.0.0", "description": "a manager approves, after a pause",
         "steps": {
           "pause": { "type": "timer", "duration": "300ms" },
           "approve": { "type": "human", "title": "Approve it", "candidates": ["manager@example.com"] } },
         "edges": [ { "from": "pause", "to": "approve" } ] }"#,
    r#"{ "name": "group_review", "version": "1.0.0", "description": "finance or the manager reviews",
         "steps": {
           "review": { "type": "human", "title": "Review it", "candidates": ["manager@example.com"],
                       "candidate_groups": ["finance"], "due": "2d" } } }"#,
    r#"{ "name": "globex_only", "version": "1.0.0", "tenants": ["globex"],
         "steps": { "call": { "type": "machine", "handler": "set",
                              "config": { "api_key": "s3cret-globex", "called": true } } } }"#,
    r#"{ "name": "fails_once", "version": "1.0.0",
         "steps": {
           "charge": { "type": "machine", "handler": "fail", "config": { "times": 1, "message": "card declined" } },
           "record": { "type": "machine", "handler": "set", "config": { "charged": true } } },
         "edges": [ { "from": "charge", "to": "record" } ] }"#,
];

fn weir_path() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_weir"))
}

/// Bob's approval (tenant globex, caller id `globex-1`) of [`Stack::approvals`].
const GLOBEX_APPROVAL: &str = "globex:globex-1";

/// The instances of [`Stack::approvals`].
struct Approvals {
    /// Alice's approval, in tenant acme.
    acme: String,
}

/// The instances of [`Stack::population`].
struct Population {
    approvals: Approvals,
    /// Alice's approval that was canceled while pending.
    canceled: String,
    /// Carol's completed `quick`, in no tenant.
    carols: String,
}

/// Redis, a coordinator, a worker and `weir serve`, private to one test.
struct Stack {
    base: String,
    http: reqwest::Client,
    _client: WeirClient,
    serve: Option<ServeProcess>,
    _services: Vec<Service>,
    _auth: tempfile::NamedTempFile,
    _server: RedisServer,
}

impl Stack {
    async fn start() -> Stack {
        let server = RedisServer::start().expect("redis-server starts");
        let ns = "api";
        let coordinator = cluster::start_coordinator(&server.url(), ns)
            .await
            .expect("coordinator starts");
        let worker = cluster::start_worker(&server.url(), ns)
            .await
            .expect("worker starts");
        let client = cluster::client(&server.url(), ns)
            .await
            .expect("client connects");
        for text in DEFINITIONS {
            let def = weir::parse_definition(text).expect("test definition parses");
            client
                .register_definition(def)
                .await
                .expect("definition registers");
        }
        let auth = tempfile::Builder::new()
            .suffix(".yaml")
            .tempfile()
            .expect("temp file");
        std::fs::write(auth.path(), AUTH).expect("auth file written");
        let serve = spawn_serve(
            &server.url(),
            ns,
            &["--auth-file", &auth.path().display().to_string()],
        );
        Stack {
            base: serve.base().to_string(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("http client"),
            _client: client,
            serve: Some(serve),
            _services: vec![coordinator, worker],
            _auth: auth,
            _server: server,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.base)
    }

    /// A request with a token (or none), and an optional JSON body: (status, body).
    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method.clone(), self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = resp.status();
        let problem = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/problem+json"));
        let text = resp.text().await.expect("body");
        let value: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{method} {path}: {status} body is not JSON ({e}): {text}"));
        if !status.is_success() {
            assert!(
                problem,
                "{method} {path}: {status} is not a problem document"
            );
            assert_eq!(value["status"], status.as_u16(), "{value}");
            assert!(
                value["type"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("https://weir.dev/problems/")),
                "{value}"
            );
            assert!(value["detail"].is_string(), "{value}");
        }
        (status, value)
    }

    async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, Some(token), None).await
    }

    async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    /// GET expecting 200.
    async fn ok(&self, path: &str, token: &str) -> Value {
        let (status, body) = self.get(path, token).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        body
    }

    /// Starts an instance through the API, expecting 202 (stored, pending), and waits until
    /// the coordinator created it; returns the start's answer.
    async fn start_instance(&self, token: &str, body: Value) -> Value {
        let (status, v) = self.post("/instances", token, body.clone()).await;
        assert_eq!(status, StatusCode::ACCEPTED, "start {body}: {v}");
        let id = v["id"].as_str().unwrap_or_default().to_string();
        let deadline = tokio::time::Instant::now() + DEADLINE;
        while self.ok(&format!("/instances/{id}"), token).await["status"] == "pending" {
            assert!(
                tokio::time::Instant::now() < deadline,
                "instance {id} was never created"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        v
    }

    /// Waits until an instance has a status.
    async fn wait_status(&self, id: &str, token: &str, want: &str) -> Value {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let v = self.ok(&format!("/instances/{id}"), token).await;
            if v["status"] == want {
                return v;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "instance {id} is not {want}: {v}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Two approvals waiting on their `approve` task, which the manager may complete:
    /// Alice's in tenant acme (with `amount: 5`), and Bob's [`GLOBEX_APPROVAL`].
    async fn approvals(&self) -> Approvals {
        let a = self
            .start_instance(
                ALICE,
                json!({ "workflow": "approval", "data": { "amount": 5 } }),
            )
            .await;
        let acme = a["id"].as_str().expect("an id").to_string();
        self.start_instance(BOB, json!({ "workflow": "approval", "id": "globex-1" }))
            .await;
        self.wait_status(GLOBEX_APPROVAL, BOB, "waiting").await;
        self.wait_status(&acme, ALICE, "waiting").await;
        Approvals { acme }
    }

    /// Five instances over every kind of caller: the [`approvals`](Stack::approvals);
    /// Alice's `acme:globex-1`, canceled while pending; the admin's `quick` 1.0.0 in tenant
    /// globex; and Carol's `quick` in no tenant, completed.
    async fn population(&self) -> Population {
        let approvals = self.approvals().await;
        let (status, v) = self
            .post(
                "/instances",
                ALICE,
                json!({ "workflow": "approval", "id": "globex-1" }),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{v}");
        let canceled = v["id"].as_str().expect("an id").to_string();
        let (status, v) = self
            .post(&format!("/instances/{canceled}/cancel"), ALICE, json!({}))
            .await;
        assert_eq!(status, StatusCode::OK, "{v}");
        self.start_instance(
            ADMIN,
            json!({ "workflow": "quick", "version": "1.0.0", "tenant": "globex" }),
        )
        .await;
        let c = self
            .start_instance(CAROL, json!({ "workflow": "quick" }))
            .await;
        let carols = c["id"].as_str().expect("an id").to_string();
        self.wait_status(&carols, CAROL, "completed").await;
        Population {
            approvals,
            canceled,
            carols,
        }
    }

    /// Opens the event stream.
    async fn events(&self, query: &str, token: Option<&str>) -> SseReader {
        let mut req = self.http.get(self.url(&format!("/events{query}")));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.expect("events request");
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream")));
        SseReader {
            resp,
            buf: String::new(),
        }
    }
}

/// Spawns `weir serve --listen 127.0.0.1:0 ARGS` on namespace `ns` and reads the address
/// it prints.
fn spawn_serve(url: &str, ns: &str, args: &[&str]) -> ServeProcess {
    ServeProcess::spawn(&weir_path(), url, ns, args).expect("weir serve starts")
}

/// Reads Server-Sent Events from a response.
struct SseReader {
    resp: reqwest::Response,
    buf: String,
}

impl SseReader {
    /// The next event (type, data), or `None` when the stream ends or `wait` passes.
    async fn next(&mut self, wait: Duration) -> Option<(String, Value)> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            while let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut kind = None;
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        kind = Some(v.trim().to_string());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if data.is_empty() {
                    continue; // a comment (`: connected`, keep-alives)
                }
                // Events are unnamed messages: the kind is the data's `type`.
                assert_eq!(kind, None, "events carry no `event:` name: {block:?}");
                let value: Value = serde_json::from_str(&data).expect("event data is JSON");
                let kind = value["type"]
                    .as_str()
                    .unwrap_or_else(|| panic!("event data has a type: {value}"))
                    .to_string();
                return Some((kind, value));
            }
            let chunk = tokio::time::timeout_at(deadline, self.resp.chunk())
                .await
                .ok()?
                .ok()??;
            self.buf.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// Events until one of `instance` has type `until`; panics after the deadline.
    async fn until(&mut self, instance: &str, until: &str) -> Vec<(String, Value)> {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let Some((kind, data)) = self.next(left).await else {
                panic!("no {until} event of {instance}; saw {seen:?}");
            };
            let done = kind == until && data["instance_id"] == instance;
            seen.push((kind, data));
            if done {
                return seen;
            }
        }
    }
}

// The API, one behaviour per test. Each test has its own Redis, coordinator, worker and
// `weir serve` ([`Stack`]); [`Stack::approvals`] and [`Stack::population`] make the
// instances most of them need.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_the_openapi_document_need_no_token() {
    let s = Stack::start().await;
    let (status, health) = s.call(Method::GET, "/health", None, None).await;
    assert_eq!(
        (status, health["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
    let (status, doc) = s.call(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    for path in [
        "/api/v1/me",
        "/api/v1/definitions/{name}/graph",
        "/api/v1/instances",
        "/api/v1/instances/{id}/retry",
        "/api/v1/tasks/{instance_id}/{step}/complete",
        "/api/v1/events",
        "/api/v1/stats",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} is documented");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_but_health_and_the_document_needs_the_bearer_token() {
    let s = Stack::start().await;
    let (_, doc) = s.call(Method::GET, "/openapi.json", None, None).await;
    // Operation ids are unique, and every operation but health and the document itself
    // needs the bearer token.
    let mut op_ids = HashSet::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let id = op["operationId"].as_str().unwrap_or_default().to_string();
            assert!(
                op_ids.insert(id.clone()),
                "{method} {path}: duplicate operationId {id:?}"
            );
            let public = op["security"] == json!([{}]);
            assert_eq!(
                public,
                path.ends_with("/health") || path.ends_with("/openapi.json"),
                "{method} {path}: security {}",
                op["security"]
            );
        }
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_error_is_a_problem_response_declared_once() {
    let s = Stack::start().await;
    let (_, doc) = s.call(Method::GET, "/openapi.json", None, None).await;
    let declared = doc["components"]["responses"]
        .as_object()
        .expect("problem responses are components");
    for (name, response) in declared {
        assert_eq!(
            response["content"]["application/problem+json"]["schema"]["$ref"],
            "#/components/schemas/Problem",
            "{name}: {response}"
        );
        assert!(
            response["description"]
                .as_str()
                .is_some_and(|d| d.len() > 20),
            "{name} says when it happens: {response}"
        );
    }
    let mut used = HashSet::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            for (status, response) in responses {
                if !status.starts_with('4') && !status.starts_with('5') {
                    continue;
                }
                let name = response["$ref"]
                    .as_str()
                    .and_then(|r| r.strip_prefix("#/components/responses/"))
                    .unwrap_or_else(|| {
                        panic!("{method} {path} {status}: not a declared problem: {response}")
                    });
                assert!(
                    declared.contains_key(name),
                    "{method} {path} {status}: {name} is not declared"
                );
                used.insert(name.to_string());
            }
            // Whatever needs a token documents that it can be refused.
            if op["security"] != json!([{}]) {
                assert!(
                    responses.contains_key("401"),
                    "{method} {path}: no 401 documented"
                );
            }
            // Whatever reads a body documents that it can be too large.
            if op.get("requestBody").is_some() {
                assert!(
                    responses.contains_key("413"),
                    "{method} {path}: no 413 documented"
                );
            }
        }
    }
    let unused: Vec<&String> = declared.keys().filter(|n| !used.contains(*n)).collect();
    assert!(unused.is_empty(), "declared but never used: {unused:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_without_a_known_bearer_token_is_401() {
    let s = Stack::start().await;
    // 401: no token, an unknown one, another scheme.
    let (status, p) = s.call(Method::GET, "/me", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{p}");
    assert_eq!(s.get("/me", "nope").await.0, StatusCode::UNAUTHORIZED);
    let basic = s
        .http
        .get(s.url("/me"))
        .header("authorization", "Basic Zm9vOmJhcg==")
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn me_names_the_caller_its_tenant_and_whether_it_is_an_admin() {
    let s = Stack::start().await;
    assert_eq!(
        s.ok("/me", ALICE).await,
        json!({ "user": "alice@example.com", "tenant": "acme", "admin": false, "groups": [] })
    );
    assert_eq!(s.ok("/me", ADMIN).await["admin"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn definitions_are_listed_shown_and_drawn() {
    let s = Stack::start().await;
    let defs = s.ok("/definitions", ALICE).await;
    let quick = defs
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "quick")
        .expect("quick is listed");
    assert_eq!(quick["latest_version"], "1.1.0");
    assert_eq!(quick["versions"], json!(["1.0.0", "1.1.0"]));
    assert_eq!(quick["steps"], 1);
    let d = s.ok("/definitions/approval", ALICE).await;
    assert_eq!(
        (d["version"].as_str(), d["initial_step"].as_str()),
        (Some("1.0.0"), Some("approve"))
    );
    assert_eq!(d["steps"]["approve"]["type"], "human");
    assert_eq!(d["edges"][0]["to"], "record");
    assert_eq!(
        s.ok("/definitions/quick?version=1.0.0", ALICE).await["version"],
        "1.0.0"
    );
    let g = s.ok("/definitions/approval/graph", ALICE).await;
    assert!(g["mermaid"].as_str().unwrap().starts_with("flowchart TD"));
    assert_eq!(g["nodes"].as_array().unwrap().len(), 2);
    assert_eq!(
        g["edges"][0],
        json!({ "from": "approve", "to": "record", "default": false, "on": "success" })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_definition_version_is_400_and_an_unknown_definition_404() {
    let s = Stack::start().await;
    let (status, p) = s.get("/definitions/quick?version=one", ALICE).await;
    assert_eq!(
        (status, p["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("version"))
    );
    assert_eq!(
        s.get("/definitions/nope", ALICE).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        s.get("/definitions/quick/graph?version=9.9.9", ALICE)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_is_stored_as_the_caller_in_the_callers_tenant() {
    let s = Stack::start().await;
    // Start: 202 (stored, pending), as the caller, in the caller's tenant.
    let a = s
        .start_instance(
            ALICE,
            json!({ "workflow": "approval", "data": { "amount": 5 } }),
        )
        .await;
    assert_eq!(a["created_by"], "alice@example.com");
    assert_eq!(a["tenant"], "acme");
    assert_eq!(a["workflow"], "approval");
    assert_eq!(a["context"], json!({ "amount": 5 }));
    let b = s
        .start_instance(BOB, json!({ "workflow": "approval", "id": "globex-1" }))
        .await;
    assert_eq!(b["tenant"], "globex");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_start_again_returns_the_instance_and_another_under_its_id_is_409() {
    let s = Stack::start().await;
    s.start_instance(BOB, json!({ "workflow": "approval", "id": "globex-1" }))
        .await;
    // The same id again returns the instance (200) and starts nothing.
    let (status, again) = s
        .post(
            "/instances",
            BOB,
            json!({ "workflow": "approval", "id": "globex-1" }),
        )
        .await;
    assert_eq!(
        (status, again["id"].as_str()),
        (StatusCode::OK, Some("globex:globex-1"))
    );
    // ... another workflow under that id is refused.
    let (status, p) = s
        .post(
            "/instances",
            BOB,
            json!({ "workflow": "quick", "id": "globex-1" }),
        )
        .await;
    assert_eq!(
        (status, p["field"].as_str()),
        (StatusCode::CONFLICT, Some("id"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caller_ids_are_per_tenant_and_a_pending_start_can_be_canceled() {
    let s = Stack::start().await;
    s.start_instance(BOB, json!({ "workflow": "approval", "id": "globex-1" }))
        .await;
    // Another tenant's id is its own, and says nothing of globex's.
    let (status, p) = s
        .post(
            "/instances",
            ALICE,
            json!({ "workflow": "approval", "id": "globex-1" }),
        )
        .await;
    assert_eq!(
        (status, p["id"].as_str()),
        (StatusCode::ACCEPTED, Some("acme:globex-1"))
    );
    // A pending start can be canceled (here, or once the coordinator created it).
    let (status, canceled) = s
        .post("/instances/acme:globex-1/cancel", ALICE, json!({}))
        .await;
    assert_eq!(
        (status, canceled["status"].as_str()),
        (StatusCode::OK, Some("canceled")),
        "{canceled}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_start_is_400_naming_what_to_fix() {
    let s = Stack::start().await;
    for (body, field) in [
        (json!({ "workflow": "quick", "data": [1] }), "data"),
        (json!({ "workflow": "quick", "id": "has space" }), "id"),
        (json!({ "workflow": "quick", "version": "x" }), "version"),
    ] {
        let (status, p) = s.post("/instances", ALICE, body.clone()).await;
        assert_eq!(
            (status, p["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some(field)),
            "{body}: {p}"
        );
    }
    // The creator is the caller: the body has no such field.
    let (status, p) = s
        .post(
            "/instances",
            ALICE,
            json!({ "workflow": "quick", "created_by": "mallory" }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{p}");
    let malformed = s
        .http
        .post(s.url("/instances"))
        .bearer_auth(ALICE)
        .header("content-type", "application/json")
        .body("{\"workflow\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        malformed.headers()["content-type"],
        "application/problem+json"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_of_an_unknown_workflow_is_404_and_in_another_tenant_403() {
    let s = Stack::start().await;
    assert_eq!(
        s.post("/instances", ALICE, json!({ "workflow": "nope" }))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    let (status, p) = s
        .post(
            "/instances",
            ALICE,
            json!({ "workflow": "quick", "tenant": "globex" }),
        )
        .await;
    assert_eq!(
        (status, p["field"].as_str()),
        (StatusCode::FORBIDDEN, Some("tenant"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_starts_in_any_tenant_and_an_unbound_user_in_none() {
    let s = Stack::start().await;
    let q = s
        .start_instance(
            ADMIN,
            json!({ "workflow": "quick", "version": "1.0.0", "tenant": "globex" }),
        )
        .await;
    assert_eq!(
        (q["tenant"].as_str(), q["version"].as_str()),
        (Some("globex"), Some("1.0.0"))
    );
    let c = s
        .start_instance(CAROL, json!({ "workflow": "quick" }))
        .await;
    assert_eq!(c["tenant"], Value::Null);
    s.wait_status(c["id"].as_str().unwrap(), CAROL, "completed")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_lists_only_its_own_instances_whatever_it_asks() {
    let s = Stack::start().await;
    let p = s.population().await;
    let ids = |v: &Value| -> HashSet<String> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_string())
            .collect()
    };
    let alice_list = s.ok("/instances", ALICE).await;
    assert_eq!(
        ids(&alice_list),
        HashSet::from([p.approvals.acme.clone(), p.canceled.clone()])
    );
    assert_eq!(alice_list["next_cursor"], Value::Null);
    assert!(ids(&s.ok("/instances?tenant=globex", ALICE).await).is_empty());
    assert_eq!(ids(&s.ok("/instances", ADMIN).await).len(), 5);
    assert_eq!(ids(&s.ok("/instances?tenant=globex", ADMIN).await).len(), 2);
    assert_eq!(
        ids(&s
            .ok("/instances?status=waiting&workflow=approval", ADMIN)
            .await)
        .len(),
        2
    );
    assert_eq!(
        ids(&s.ok("/instances?created_by=carol@example.com", CAROL).await),
        HashSet::from([p.carols.clone()])
    );
    assert!(ids(&s.ok("/instances?since=2999-01-01T00:00:00Z", ADMIN).await).is_empty());
    assert_eq!(
        ids(&s.ok("/instances?until=2999-01-01T00:00:00Z", ADMIN).await).len(),
        5
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_list_filter_is_400_naming_the_parameter() {
    let s = Stack::start().await;
    for (query, field) in [
        ("status=bogus", "status"),
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("since=yesterday", "since"),
        ("cursor=not-a-cursor", "cursor"),
    ] {
        let (status, p) = s.get(&format!("/instances?{query}"), ADMIN).await;
        assert_eq!(
            (status, p["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some(field)),
            "{query}: {p}"
        );
    }
    assert_eq!(
        s.get("/instances?limit=ten", ADMIN).await.0,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_shows_its_open_task_and_its_graph_the_state_of_each_step() {
    let s = Stack::start().await;
    let a = s.approvals().await;
    let waiting = s.ok(&format!("/instances/{}", a.acme), ALICE).await;
    assert_eq!(waiting["current_steps"], json!(["approve"]));
    assert_eq!(waiting["tasks"][0]["step"], "approve");
    assert_eq!(waiting["tasks"][0]["allowed"], false);
    let graph = s.ok(&format!("/instances/{}/graph", a.acme), ALICE).await;
    assert_eq!(
        graph["states"],
        json!({ "approve": "waiting", "record": "pending" })
    );
    assert!(graph["mermaid"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenants_instance_does_not_exist() {
    let s = Stack::start().await;
    s.approvals().await;
    assert_eq!(
        s.get(&format!("/instances/{GLOBEX_APPROVAL}"), ALICE)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        s.get(&format!("/instances/{GLOBEX_APPROVAL}/graph"), ALICE)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        s.get("/instances/nope", ADMIN).await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_lists_only_its_own_tasks_and_allowed_and_mine_follow_the_caller() {
    let s = Stack::start().await;
    let a = s.approvals().await;
    let tasks = s.ok("/tasks", ALICE).await;
    assert_eq!(tasks.as_array().unwrap().len(), 1, "{tasks}");
    assert_eq!(tasks[0]["instance_id"], a.acme.as_str());
    assert_eq!(tasks[0]["workflow"], "approval");
    assert_eq!(tasks[0]["form"]["required"], json!(["approved"]));
    assert_eq!(s.ok("/tasks", ADMIN).await.as_array().unwrap().len(), 2);
    assert!(s
        .ok("/tasks?mine=true", ALICE)
        .await
        .as_array()
        .unwrap()
        .is_empty());
    let mine = s.ok("/tasks?mine=true&status=open", MANAGER).await;
    assert_eq!(mine.as_array().unwrap().len(), 1);
    assert_eq!(mine[0]["allowed"], true);
    assert_eq!(
        s.ok("/tasks?candidate=manager@example.com", ADMIN)
            .await
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert!(s
        .ok("/tasks?assignee=x", ADMIN)
        .await
        .as_array()
        .unwrap()
        .is_empty());
    assert_eq!(
        s.ok(&format!("/tasks?instance_id={}", a.acme), ADMIN)
            .await
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let (status, p) = s.get("/tasks?status=done", ADMIN).await;
    assert_eq!(
        (status, p["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("status"))
    );
    assert!(s.ok("/tasks", BOB).await[0]["instance_id"] == GLOBEX_APPROVAL);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_task_is_shown_in_its_tenant_and_a_step_without_one_is_404() {
    let s = Stack::start().await;
    let a = s.approvals().await;
    let task = s.ok(&format!("/tasks/{}/approve", a.acme), MANAGER).await;
    assert_eq!(
        (task["title"].as_str(), task["allowed"].as_bool()),
        (Some("Approve it"), Some(true))
    );
    assert_eq!(
        s.get(&format!("/tasks/{}/approve", a.acme), BOB).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        s.get(&format!("/tasks/{}/record", a.acme), ADMIN).await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_is_completed_only_as_a_user_it_allows_with_data_that_fits_its_form() {
    let s = Stack::start().await;
    let a = s.approvals().await;
    // Only as oneself; 403 for a user the task does not allow (even an admin), 404 for
    // another tenant, 400 with each field for bad data.
    let complete = format!("/tasks/{}/approve/complete", a.acme);
    let (status, p) = s
        .post(&complete, ALICE, json!({ "data": { "approved": true } }))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{p}");
    assert_eq!(
        s.post(&complete, ADMIN, json!({ "data": { "approved": true } }))
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    // Naming the manager in the body changes nothing: there is no such field.
    let (status, _) = s
        .post(
            &complete,
            ALICE,
            json!({ "data": { "approved": true }, "user": "manager@example.com" }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        s.post(&complete, BOB, json!({ "data": { "approved": true } }))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    let (status, p) = s
        .post(
            &complete,
            MANAGER,
            json!({ "data": { "approved": "yes", "amount": -1 } }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{p}");
    assert_eq!(p["type"], "https://weir.dev/problems/form-invalid");
    let fields: HashSet<&str> = p["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, HashSet::from(["/approved", "/amount"]), "{p}");
    assert_eq!(
        s.post(
            &format!("/tasks/{}/nope/complete", a.acme),
            MANAGER,
            json!({ "data": {} })
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_is_reassigned_by_a_user_it_allows_and_the_history_records_it() {
    let s = Stack::start().await;
    let a = s.approvals().await;
    // An admin or a user the task allows; recorded in the history.
    let reassign = format!("/tasks/{}/approve/reassign", a.acme);
    let to_both = json!({ "candidates": ["manager@example.com", "alice@example.com"] });
    assert_eq!(
        s.post(&reassign, ALICE, to_both.clone()).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        s.post(&reassign, BOB, to_both.clone()).await.0,
        StatusCode::NOT_FOUND
    );
    let (status, p) = s
        .post(&reassign, MANAGER, json!({ "candidates": [" "] }))
        .await;
    assert_eq!(
        (status, p["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("assignee"))
    );
    assert_eq!(
        s.post(
            &format!("/tasks/{}/nope/reassign", a.acme),
            ADMIN,
            to_both.clone()
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
    let (status, t) = s.post(&reassign, MANAGER, to_both.clone()).await;
    assert_eq!(status, StatusCode::OK, "{t}");
    assert_eq!(t["candidates"], to_both["candidates"]);
    assert_eq!(
        s.ok(&format!("/tasks/{}/approve", a.acme), ALICE).await["allowed"],
        true
    );
    let history = s.ok(&format!("/instances/{}", a.acme), ALICE).await["history"].clone();
    let record = history
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["status"] == "reassigned")
        .unwrap_or_else(|| panic!("no reassigned record: {history}"));
    assert_eq!(record["worker"], "manager@example.com");
    assert!(record["note"]
        .as_str()
        .unwrap()
        .contains("alice@example.com"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_done_task_completes_its_instance_and_cannot_be_reassigned_or_completed_again() {
    let s = Stack::start().await;
    let a = s.approvals().await;
    let complete = format!("/tasks/{}/approve/complete", a.acme);
    let reassign = format!("/tasks/{}/approve/reassign", a.acme);
    let to_both = json!({ "candidates": ["manager@example.com", "alice@example.com"] });
    let (status, done) = s
        .post(&complete, MANAGER, json!({ "data": { "approved": true } }))
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    let done = s.wait_status(&a.acme, ALICE, "completed").await;
    assert_eq!(done["context"]["approved"], true);
    assert!(done["history"]
        .as_array()
        .unwrap()
        .iter()
        .any(|h| h["step"] == "approve" && h["worker"] == "manager@example.com"));
    assert_eq!(
        s.post(&reassign, ADMIN, to_both.clone()).await.0,
        StatusCode::CONFLICT,
        "a done task cannot be reassigned"
    );
    let (status, p) = s
        .post(&complete, MANAGER, json!({ "data": { "approved": true } }))
        .await;
    assert_eq!(
        (status, p["type"].as_str()),
        (
            StatusCode::CONFLICT,
            Some("https://weir.dev/problems/conflict")
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_is_404_in_another_tenant_then_200_then_409() {
    let s = Stack::start().await;
    s.approvals().await;
    let cancel = format!("/instances/{GLOBEX_APPROVAL}/cancel");
    assert_eq!(
        s.post(&cancel, ALICE, json!({})).await.0,
        StatusCode::NOT_FOUND
    );
    let (status, canceled) = s
        .post(&cancel, BOB, json!({ "reason": "not needed" }))
        .await;
    assert_eq!(
        (status, canceled["status"].as_str()),
        (StatusCode::OK, Some("canceled"))
    );
    assert_eq!(canceled["error"], "not needed");
    assert_eq!(
        s.post(&cancel, BOB, json!({})).await.0,
        StatusCode::CONFLICT
    );
    assert_eq!(
        s.post("/instances/nope/cancel", ADMIN, json!({})).await.0,
        StatusCode::NOT_FOUND
    );
    let (status, p) = s
        .call(Method::POST, &cancel, Some(BOB), Some(json!([1])))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{p}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_of_an_instance_not_failed_and_a_cancel_of_a_finished_one_are_409() {
    let s = Stack::start().await;
    let a = s.approvals().await;
    assert_eq!(
        s.post(&format!("/instances/{}/retry", a.acme), ALICE, json!({}))
            .await
            .0,
        StatusCode::CONFLICT
    );
    let c = s
        .start_instance(CAROL, json!({ "workflow": "quick" }))
        .await;
    let c_id = c["id"].as_str().unwrap();
    s.wait_status(c_id, CAROL, "completed").await;
    // A cancel with no body at all.
    let empty = s
        .http
        .post(s.url(&format!("/instances/{c_id}/cancel")))
        .bearer_auth(CAROL)
        .send()
        .await
        .unwrap();
    assert_eq!(
        empty.status(),
        StatusCode::CONFLICT,
        "completed: cannot cancel"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_instance_is_retried_from_a_known_step_and_completes() {
    let s = Stack::start().await;
    // An unknown step is a 400, another tenant's instance a 404; then it resumes.
    let f = s
        .start_instance(ALICE, json!({ "workflow": "fails_once" }))
        .await;
    let f_id = f["id"].as_str().unwrap();
    let failed = s.wait_status(f_id, ALICE, "failed").await;
    assert_eq!(failed["failed_step"], "charge");
    let (status, p) = s
        .post(
            &format!("/instances/{f_id}/retry"),
            ALICE,
            json!({ "from_step": "nope" }),
        )
        .await;
    assert_eq!(
        (status, p["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("from_step"))
    );
    assert_eq!(
        s.post(&format!("/instances/{f_id}/retry"), BOB, json!({}))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    let (status, _) = s
        .post(
            &format!("/instances/{f_id}/retry"),
            ALICE,
            json!({ "from_step": "charge" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    s.wait_status(f_id, ALICE, "completed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_and_dead_letters_are_for_admins_only() {
    let s = Stack::start().await;
    for _ in 0..3 {
        let c = s
            .start_instance(CAROL, json!({ "workflow": "quick" }))
            .await;
        s.wait_status(c["id"].as_str().unwrap(), CAROL, "completed")
            .await;
    }
    let stats = s.ok("/stats", ADMIN).await;
    assert!(
        stats["instances"]["completed"].as_u64().unwrap() >= 3,
        "{stats}"
    );
    assert!(s.ok("/dlq?limit=10", ADMIN).await.is_array());
    for token in [ALICE, CAROL] {
        assert_eq!(s.get("/stats", token).await.0, StatusCode::FORBIDDEN);
        assert_eq!(s.get("/dlq", token).await.0, StatusCode::FORBIDDEN);
    }
    let (status, p) = s.get("/dlq?limit=0", ADMIN).await;
    assert_eq!(
        (status, p["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("limit"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_path_is_a_404_problem() {
    let s = Stack::start().await;
    // `call` checks that every error is a problem document.
    assert_eq!(s.get("/nope", ADMIN).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_the_open_event_streams_and_exits_0() {
    let s = Stack::start().await;
    // Graceful stop, with an event stream open: the stream ends and the exit code is 0.
    let mut open = s.events("", Some(ADMIN)).await;
    let mut s = s;
    let code = s.serve.take().expect("serve runs").terminate();
    assert_eq!(code, Some(0), "weir serve stops cleanly on SIGTERM");
    assert!(open.next(DEADLINE).await.is_none(), "the stream ended");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_stream_live_and_per_tenant() {
    let s = Stack::start().await;
    // EventSource cannot set headers: the token may come as ?access_token=.
    let mut one = s
        .events(
            &format!("?instance_id=acme:ev-1&access_token={ADMIN}"),
            None,
        )
        .await;
    let mut bob = s.events("", Some(BOB)).await;
    let (status, _) = s
        .call(
            Method::GET,
            "/events?instance_id=acme:ev-1&access_token=wrong",
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // ?access_token= is for the event stream only.
    assert_eq!(
        s.call(
            Method::GET,
            &format!("/me?access_token={ADMIN}"),
            None,
            None
        )
        .await
        .0,
        StatusCode::UNAUTHORIZED
    );

    // An acme instance runs to its end first; then a globex one.
    s.start_instance(ALICE, json!({ "workflow": "quick", "id": "ev-1" }))
        .await;
    let seen = one.until("acme:ev-1", "WorkflowCompleted").await;
    let types: Vec<&str> = seen.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(types.first(), Some(&"WorkflowStarted"), "{types:?}");
    assert!(types.contains(&"StepExecuted"), "{types:?}");
    for (kind, data) in &seen {
        assert_eq!(data["type"], kind.as_str());
        assert_eq!(
            data["instance_id"], "acme:ev-1",
            "only the instance asked for"
        );
        assert!(data["timestamp"].is_string());
    }
    s.wait_status("acme:ev-1", ALICE, "completed").await;
    // A reassignment is announced.
    let mut three = s.events("?instance_id=acme:ev-3", Some(ALICE)).await;
    s.start_instance(ALICE, json!({ "workflow": "approval", "id": "ev-3" }))
        .await;
    s.wait_status("acme:ev-3", ALICE, "waiting").await;
    let (status, _) = s
        .post(
            "/tasks/acme:ev-3/approve/reassign",
            ADMIN,
            json!({ "assignee": "alice@example.com" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let seen = three.until("acme:ev-3", "HumanTaskReassigned").await;
    let (_, event) = seen.last().unwrap();
    assert_eq!(event["assignee"], "alice@example.com");
    assert_eq!(event["by"], "ops@example.com");
    s.start_instance(BOB, json!({ "workflow": "quick", "id": "ev-2" }))
        .await;
    let bobs = bob.until("globex:ev-2", "WorkflowCompleted").await;
    assert!(
        bobs.iter().all(|(_, d)| d["instance_id"] == "globex:ev-2"),
        "bob (globex) saw another tenant's events: {bobs:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagination_returns_every_instance_once() {
    let s = Stack::start().await;
    let mut started = HashSet::new();
    for i in 0..23 {
        let token = if i % 3 == 0 { BOB } else { ALICE };
        let v = s
            .start_instance(token, json!({ "workflow": "quick", "data": { "i": i } }))
            .await;
        started.insert(v["id"].as_str().unwrap().to_string());
    }
    let walk = |token: &'static str, query: &'static str| {
        let s = &s;
        async move {
            let mut seen: Vec<String> = Vec::new();
            let mut cursor: Option<String> = None;
            for _ in 0..100 {
                let path = match &cursor {
                    Some(c) => format!("/instances?limit=4{query}&cursor={c}"),
                    None => format!("/instances?limit=4{query}"),
                };
                let page = s.ok(&path, token).await;
                let items = page["items"].as_array().unwrap();
                assert!(items.len() <= 4);
                let mut last: Option<(String, String)> = None;
                for item in items {
                    let pos = (
                        item["created_at"].as_str().unwrap().to_string(),
                        item["id"].as_str().unwrap().to_string(),
                    );
                    if let Some(prev) = &last {
                        assert!(pos < *prev, "newest first");
                    }
                    last = Some(pos.clone());
                    seen.push(pos.1);
                }
                match page["next_cursor"].as_str() {
                    Some(c) => cursor = Some(c.to_string()),
                    None => return seen,
                }
            }
            panic!("the listing never ended");
        }
    };
    let all = walk(ADMIN, "").await;
    assert_eq!(all.len(), started.len(), "each instance once");
    assert_eq!(all.iter().cloned().collect::<HashSet<_>>(), started);
    let alice = walk(ALICE, "").await;
    assert_eq!(alice.len(), 15);
    assert_eq!(alice.iter().collect::<HashSet<_>>().len(), 15);
    let bob = walk(BOB, "&workflow=quick").await;
    assert_eq!(bob.len(), 8);
    assert!(bob.iter().all(|id| !alice.contains(id)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trusted_headers_and_secure_defaults() {
    // No tokens and no trusted header: refuses to start, saying what to do.
    let out = Command::new(weir_path())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env_remove("WEIR_AUTH_FILE")
        .env("WEIR_REDIS_URL", "redis://127.0.0.1:1")
        .output()
        .expect("weir serve runs");
    assert_ne!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--auth-file"), "{err}");
    // A broken auth file is refused too.
    let bad = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
    std::fs::write(bad.path(), "tokens: [{ token: x }]").unwrap();
    let out = Command::new(weir_path())
        .args(["serve", "--auth-file", &bad.path().display().to_string()])
        .output()
        .expect("weir serve runs");
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("auth file"));

    // Behind a proxy: the user and tenant come from headers.
    let server = RedisServer::start().expect("redis-server starts");
    let serve = spawn_serve(
        &server.url(),
        "hdr",
        &[
            "--trusted-user-header",
            "X-User",
            "--trusted-tenant-header",
            "X-Tenant",
            "--trusted-groups-header",
            "X-Groups",
        ],
    );
    let base = serve.base().to_string();
    let http = reqwest::Client::new();
    let me = http
        .get(format!("{base}/api/v1/me"))
        .header("x-user", "dana@example.com")
        .header("x-tenant", "acme")
        .header("x-groups", "finance, ops,")
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), StatusCode::OK);
    assert_eq!(
        me.json::<Value>().await.unwrap(),
        json!({ "user": "dana@example.com", "tenant": "acme", "admin": false,
                "groups": ["finance", "ops"] })
    );
    let no_tenant = http
        .get(format!("{base}/api/v1/me"))
        .header("x-user", "dana@example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(no_tenant.status(), StatusCode::UNAUTHORIZED);
    let nobody = http.get(format!("{base}/api/v1/me")).send().await.unwrap();
    assert_eq!(nobody.status(), StatusCode::UNAUTHORIZED);
    assert!(nobody.headers().contains_key("www-authenticate"));

    // Redis gone: 503 problems, and the server keeps answering.
    let mut server = server;
    server.kill().expect("redis-server killed");
    for path in ["/api/v1/health", "/api/v1/definitions", "/api/v1/instances"] {
        let resp = http
            .get(format!("{base}{path}"))
            .header("x-user", "dana@example.com")
            .header("x-tenant", "acme")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert_eq!(resp.headers()["content-type"], "application/problem+json");
        let p: Value = resp.json().await.unwrap();
        assert_eq!(p["type"], "https://weir.dev/problems/unavailable", "{p}");
    }
}

/// Issue 15, item 9: handler `config` is redacted for callers who are not admins, and a
/// definition with a tenant allowlist is invisible to, and cannot be started by, other
/// tenants.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn definitions_are_redacted_and_kept_to_their_tenants() {
    let s = Stack::start().await;
    let names = |defs: &Value| -> Vec<String> {
        defs.as_array()
            .expect("a list")
            .iter()
            .map(|d| d["name"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    // Listing: only the tenants the definition names (and admins, and unbound callers).
    for (token, sees) in [(ALICE, false), (BOB, true), (ADMIN, true), (CAROL, true)] {
        let defs = s.ok("/definitions", token).await;
        assert_eq!(
            names(&defs).contains(&"globex_only".to_string()),
            sees,
            "{token}: {defs}"
        );
    }
    // One by one: the same 404 as an unknown workflow, for the definition and its graph.
    for path in ["/definitions/globex_only", "/definitions/globex_only/graph"] {
        let (status, p) = s.get(path, ALICE).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {p}");
        let (_, unknown) = s
            .get(&path.replace("globex_only", "nope_only"), ALICE)
            .await;
        assert_eq!(
            p["detail"].as_str().map(|d| d.replace("globex_only", "X")),
            unknown["detail"]
                .as_str()
                .map(|d| d.replace("nope_only", "X")),
        );
    }
    // Config: redacted for everyone but admins.
    for token in [BOB, CAROL] {
        let d = s.ok("/definitions/globex_only", token).await;
        assert_eq!(d["steps"]["call"]["config"], "[redacted]", "{d}");
        assert!(!d.to_string().contains("s3cret"), "{d}");
        assert_eq!(d["tenants"], json!(["globex"]));
    }
    let d = s.ok("/definitions/globex_only", ADMIN).await;
    assert_eq!(d["steps"]["call"]["config"]["api_key"], "s3cret-globex");
    let quick = s.ok("/definitions/quick", ALICE).await;
    assert_eq!(quick["steps"]["work"]["config"], "[redacted]");

    // Starts: another tenant gets 404 (as for an unknown workflow); an admin starting it for
    // a tenant it does not admit, or for none, gets 403 with what to do; globex starts it.
    let (status, _) = s
        .post("/instances", ALICE, json!({ "workflow": "globex_only" }))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    for body in [
        json!({ "workflow": "globex_only", "tenant": "acme" }),
        json!({ "workflow": "globex_only" }),
    ] {
        let (status, p) = s.post("/instances", ADMIN, body.clone()).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}: {p}");
        assert!(
            p["detail"].as_str().unwrap_or("").contains("tenants"),
            "{p}"
        );
    }
    let started = s
        .start_instance(BOB, json!({ "workflow": "globex_only", "id": "g-1" }))
        .await;
    assert_eq!(started["tenant"], "globex");
    let done = s.wait_status("globex:g-1", BOB, "completed").await;
    assert_eq!(done["context"]["called"], true);
}

/// Issue 15 (low): an instance id reused by another tenant once the first instance is gone
/// (expired by retention, here deleted) must not send the new instance's events to the
/// first one's tenant through the event hub's tenant cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_follow_a_reused_id_to_its_new_tenant() {
    let s = Stack::start().await;
    let mut alice = s.events("", Some(ALICE)).await;
    s.start_instance(ALICE, json!({ "workflow": "quick", "id": "reused" }))
        .await;
    alice.until("acme:reused", "WorkflowCompleted").await;
    // The instance goes away, as retention would do it.
    let c = s._client.connections();
    let keys = c.keys.part_of("acme:reused");
    let _: i64 = redis::cmd("DEL")
        .arg(keys.instance("acme:reused"))
        .arg(keys.history("acme:reused"))
        .query_async(&mut c.conn.clone())
        .await
        .expect("instance deleted");
    let mut bob = s.events("", Some(BOB)).await;
    s.start_instance(BOB, json!({ "workflow": "quick", "id": "reused" }))
        .await;
    bob.until("globex:reused", "WorkflowCompleted").await;
    // A marker of Alice's own, after Bob's instance: everything before it was seen.
    s.start_instance(ALICE, json!({ "workflow": "quick", "id": "marker" }))
        .await;
    let seen = alice.until("acme:marker", "WorkflowCompleted").await;
    let leaked: Vec<_> = seen
        .iter()
        .filter(|(_, d)| d["instance_id"] == "globex:reused")
        .collect();
    assert!(leaked.is_empty(), "globex events reached acme: {leaked:?}");
}

/// Issue 15 (low): `GET /tasks` pages (oldest first, `Weir-Next-Cursor`), and one
/// corrupt task record no longer breaks the listing for everyone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_listing_pages_and_skips_corrupt_records() {
    let s = Stack::start().await;
    const TASKS: usize = 5;
    for i in 0..TASKS {
        let id = format!("page-{i}");
        s.start_instance(ALICE, json!({ "workflow": "approval", "id": id }))
            .await;
        s.wait_status(&format!("acme:{id}"), ALICE, "waiting").await;
    }
    // One indexed task's record corrupted where it lives: it is skipped and counted, and
    // the listing goes on for everyone.
    let c = s._client.connections();
    let _: i64 = redis::cmd("HSET")
        .arg(c.keys.part_of("acme:page-0").tasks())
        .arg("acme:page-0|approve")
        .arg(b"\xff\x00 not a task".as_slice())
        .query_async(&mut c.conn.clone())
        .await
        .expect("garbage written");

    let resp = s
        .http
        .get(s.url("/tasks"))
        .bearer_auth(MANAGER)
        .send()
        .await
        .expect("list");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()
            .get("weir-unreadable-tasks")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    let all: Value = resp.json().await.expect("body");
    assert_eq!(all.as_array().map(Vec::len), Some(TASKS - 1), "{all}");
    // Two at a time: every task once, in the same order, then no cursor.
    let mut walked = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..TASKS + 1 {
        let url = match &cursor {
            Some(c) => format!("/tasks?limit=2&cursor={c}"),
            None => "/tasks?limit=2".to_string(),
        };
        let resp = s
            .http
            .get(s.url(&url))
            .bearer_auth(MANAGER)
            .send()
            .await
            .expect("page");
        assert_eq!(resp.status(), StatusCode::OK);
        cursor = resp
            .headers()
            .get("weir-next-cursor")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let page: Value = resp.json().await.expect("page body");
        let page = page.as_array().expect("an array").clone();
        assert!(page.len() <= 2);
        walked.extend(page.iter().map(|t| t["instance_id"].clone()));
        if cursor.is_none() {
            break;
        }
    }
    assert!(cursor.is_none(), "the listing ends");
    let all_ids: Vec<Value> = all
        .as_array()
        .expect("an array")
        .iter()
        .map(|t| t["instance_id"].clone())
        .collect();
    assert_eq!(walked, all_ids);
    for bad in ["/tasks?limit=0", "/tasks?limit=1001", "/tasks?cursor=nope"] {
        let (status, p) = s.get(bad, MANAGER).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {p}");
    }
}

/// Issue 15 (low): the history is paged (`GET /instances/{id}/history`), and the detail
/// says how many records there are in all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_is_paged() {
    let s = Stack::start().await;
    s.start_instance(ALICE, json!({ "workflow": "approval", "id": "h-1" }))
        .await;
    s.wait_status("acme:h-1", ALICE, "waiting").await;
    let (status, _) = s
        .post(
            "/tasks/acme:h-1/approve/reassign",
            ADMIN,
            json!({ "candidates": ["manager@example.com"] }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let detail = s.ok("/instances/acme:h-1", ALICE).await;
    let whole = detail["history"].as_array().expect("history").clone();
    // A reassignment, then the open task in flight.
    assert_eq!(whole.len(), 2, "{detail}");
    assert_eq!(detail["history_total"], 2);
    let mut walked = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..whole.len() + 1 {
        let url = match &cursor {
            Some(c) => format!("/instances/acme:h-1/history?limit=1&cursor={c}"),
            None => "/instances/acme:h-1/history?limit=1".to_string(),
        };
        let page = s.ok(&url, ALICE).await;
        assert_eq!(page["total"], 2, "{page}");
        walked.extend(page["items"].as_array().expect("items").iter().cloned());
        cursor = page["next_cursor"].as_str().map(str::to_string);
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(walked, whole);
    let all = s.ok("/instances/acme:h-1/history", ALICE).await;
    assert_eq!(all["items"].as_array().map(Vec::len), Some(2));
    assert!(all["next_cursor"].is_null());
    for bad in ["?limit=0", "?limit=1001", "?cursor=zz"] {
        let (status, p) = s
            .get(&format!("/instances/acme:h-1/history{bad}"), ALICE)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {p}");
    }
    assert_eq!(
        s.get("/instances/acme:h-1/history", BOB).await.0,
        StatusCode::NOT_FOUND,
        "another tenant's history is not found"
    );
    // Nothing dropped yet; once the cap dropped records (counted on the instance, as the
    // coordinator's commit does), the page and the detail say how many.
    assert_eq!(all["dropped"], 0, "{all}");
    assert_eq!(detail["history_dropped"], 0, "{detail}");
    let c = s._client.connections();
    let keys = c.keys.part_of("acme:h-1");
    let _: i64 = redis::cmd("HINCRBY")
        .arg(keys.instance("acme:h-1"))
        .arg("history_dropped")
        .arg(7)
        .query_async(&mut c.conn.clone())
        .await
        .expect("count set");
    let all = s.ok("/instances/acme:h-1/history", ALICE).await;
    assert_eq!(all["dropped"], 7, "{all}");
    let detail = s.ok("/instances/acme:h-1", ALICE).await;
    assert_eq!(detail["history_dropped"], 7, "{detail}");
}

/// Issue 15, item 6: a start with a 5 MB context is refused by the Redis client before
/// anything is sent (it would otherwise exceed the 4 MiB message limit and hang), and by
/// the API (413, or 413 from the body limit before that).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_with_a_context_over_the_limit_is_refused() {
    let s = Stack::start().await;
    let mut data = serde_json::Map::new();
    data.insert("blob".into(), json!("x".repeat(5_000_000)));
    let options = weir::StartOptions {
        initial_data: data,
        id: Some("huge-1".into()),
        ..Default::default()
    };
    let err = s
        ._client
        .start_workflow("quick", options)
        .await
        .expect_err("a 5 MB context is refused");
    assert_eq!(err.kind(), "too_large", "{err}");
    assert!(err.to_string().contains("1 MiB"), "{err}");
    let (status, _) = s.get("/instances/huge-1", ADMIN).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing was stored");
    // Over 1 MiB but under the 2 MiB body limit: the engine's limit answers.
    let (status, p) = s
        .post(
            "/instances",
            ADMIN,
            json!({ "workflow": "quick", "data": { "blob": "x".repeat(1_500_000) } }),
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{p}");
    assert!(p["detail"].as_str().unwrap_or("").contains("1 MiB"), "{p}");
}

/// Issue 15, item 12: trusted headers are read only from a `--trusted-proxy` peer, and a
/// non-loopback `--listen` with the header flags needs `--trusted-proxy` to start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trusted_headers_only_from_a_trusted_proxy() {
    // Listening on every interface with the header flags and no proxy: refused before
    // anything listens.
    let out = Command::new(weir_path())
        .args([
            "serve",
            "--listen",
            "0.0.0.0:0",
            "--trusted-user-header",
            "X-User",
        ])
        .env_remove("WEIR_AUTH_FILE")
        .env("WEIR_REDIS_URL", "redis://127.0.0.1:1")
        .output()
        .expect("weir serve runs");
    assert_ne!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--trusted-proxy"), "{err}");

    let server = RedisServer::start().expect("redis-server starts");
    let http = reqwest::Client::new();
    let me = async |base: &str| {
        http.get(format!("{base}/api/v1/me"))
            .header("x-user", "mallory@example.com")
            .send()
            .await
            .expect("request")
    };
    // This test's peer (127.0.0.1) is not the trusted proxy: the header is refused.
    let elsewhere = spawn_serve(
        &server.url(),
        "proxy",
        &[
            "--trusted-user-header",
            "X-User",
            "--trusted-proxy",
            "10.0.0.0/8",
        ],
    );
    let base = elsewhere.base().to_string();
    let resp = me(&base).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let p: Value = resp.json().await.expect("problem");
    assert!(
        p["detail"].as_str().unwrap_or("").contains("trusted proxy"),
        "{p}"
    );
    // The same request from a trusted proxy's address is accepted.
    let here = spawn_serve(
        &server.url(),
        "proxy",
        &[
            "--trusted-user-header",
            "X-User",
            "--trusted-proxy",
            "10.0.0.0/8,127.0.0.1/32",
        ],
    );
    let base = here.base().to_string();
    let resp = me(&base).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.json::<Value>().await.expect("me")["user"],
        "mallory@example.com"
    );
}

/// The schemathesis command: `WEIR_SCHEMATHESIS`, else the virtual environment that
/// `.ci/setup.d/schemathesis.sh` makes, else `schemathesis` on the PATH.
fn schemathesis() -> PathBuf {
    if let Some(p) = std::env::var_os("WEIR_SCHEMATHESIS") {
        return PathBuf::from(p);
    }
    let venv =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/api-fuzz-venv/bin/schemathesis");
    if venv.exists() {
        return venv;
    }
    PathBuf::from("schemathesis")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error() {
    let s = Stack::start().await;
    // The instance the fuzzer's path parameters name (tests/api-fuzz/schemathesis.toml).
    s.start_instance(ADMIN, json!({ "workflow": "approval", "id": "fuzz-1" }))
        .await;
    s.wait_status("fuzz-1", ADMIN, "waiting").await;
    let config =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/api-fuzz/schemathesis.toml");
    let program = schemathesis();
    // Its cache goes into a directory of the test's own.
    let workdir = tempfile::tempdir().expect("temp dir");
    let child = Command::new(&program)
        .current_dir(workdir.path())
        .arg("--config-file")
        .arg(&config)
        .arg("run")
        .arg(s.url("/openapi.json"))
        .arg("--no-color")
        .env("WEIR_FUZZ_TOKEN", ADMIN)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} ({e}): install it with `bash .ci/setup.d/schemathesis.sh` \
                 (or set WEIR_SCHEMATHESIS)",
                program.display()
            )
        });
    let pid = child.id();
    // A bound whatever happens (under nextest's 180 s): the run takes 4 to 10 s here.
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let output = match rx.recv_timeout(Duration::from_secs(150)) {
        Ok(out) => out.expect("schemathesis runs"),
        Err(_) => {
            let _ = Command::new("kill").arg(pid.to_string()).status();
            panic!("schemathesis did not finish within 150 s");
        }
    };
    let report = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // Shown with --no-capture, or when the test fails.
    eprintln!("{report}");
    assert!(
        output.status.success(),
        "schemathesis found problems:\n{report}"
    );
    assert!(report.contains("passed"), "{report}");
    // The server is still healthy afterwards.
    assert_eq!(
        s.call(Method::GET, "/health", None, None).await.0,
        StatusCode::OK
    );
}

/// Issue 15, item 1: a user the task does not allow spams reassignments at the moment the
/// task opens. None is ever granted: the permission is decided by the core when the
/// coordinator applies the reassignment, not by a read the API made before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reassignment_racing_the_task_opening_is_never_granted() {
    let s = Stack::start().await;
    const INSTANCES: usize = 4;
    const ATTACKERS_PER_INSTANCE: usize = 4;
    // Requests each attacker still sends once it saw the task open (the window is over by
    // then: the task is open and the core decides).
    const AFTER_OPEN: usize = 10;
    let mut ids = Vec::new();
    for i in 0..INSTANCES {
        let id = format!("race-{i}");
        s.start_instance(ALICE, json!({ "workflow": "gated_approval", "id": id }))
            .await;
        // Alice's tenant scopes her caller id.
        ids.push(format!("acme:{id}"));
    }
    let mut attackers = tokio::task::JoinSet::new();
    for id in &ids {
        for _ in 0..ATTACKERS_PER_INSTANCE {
            let http = s.http.clone();
            let url = s.url(&format!("/tasks/{id}/approve/reassign"));
            attackers.spawn(async move {
                let deadline = tokio::time::Instant::now() + DEADLINE;
                let mut statuses = Vec::new();
                let mut after_open = 0;
                while after_open < AFTER_OPEN && tokio::time::Instant::now() < deadline {
                    let resp = http
                        .post(&url)
                        .bearer_auth(ALICE)
                        .json(&json!({ "assignee": "alice@example.com" }))
                        .send()
                        .await
                        .expect("reassign request");
                    let status = resp.status();
                    // 409 until the task opens; then the core refuses (403).
                    if status != StatusCode::CONFLICT {
                        after_open += 1;
                    }
                    statuses.push(status);
                }
                statuses
            });
        }
    }
    let mut seen = Vec::new();
    while let Some(statuses) = attackers.join_next().await {
        seen.extend(statuses.expect("attacker task"));
    }
    assert!(
        seen.iter().all(|s| *s != StatusCode::OK),
        "a reassignment by a user the task does not allow was granted: {seen:?}"
    );
    assert!(
        seen.contains(&StatusCode::FORBIDDEN),
        "the task never opened during the attack: {seen:?}"
    );
    for id in &ids {
        let task = s.ok(&format!("/tasks/{id}/approve"), MANAGER).await;
        assert_eq!(task["assignee"], Value::Null, "{id}: {task}");
        assert_eq!(
            task["candidates"],
            json!(["manager@example.com"]),
            "{id}: {task}"
        );
        let history = s.ok(&format!("/instances/{id}"), ADMIN).await["history"].clone();
        assert!(
            !history
                .as_array()
                .expect("history is a list")
                .iter()
                .any(|h| h["status"] == "reassigned"),
            "{id}: {history}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_starts_is_checked_whole_then_answered_per_item() {
    let s = Stack::start().await;
    async fn count(s: &Stack) -> Option<usize> {
        s.ok("/instances?limit=500", ADMIN).await["items"]
            .as_array()
            .map(Vec::len)
    }
    let before = count(&s).await;
    // A bad item refuses the batch: nothing stored, the item named.
    let (status, p) = s
        .post(
            "/instances/batch",
            ALICE,
            json!({ "workflow": "quick", "items": [{ "data": {} }, { "data": [1] }] }),
        )
        .await;
    assert_eq!(
        (status, p["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("items[1].data")),
        "{p}"
    );
    let (status, p) = s
        .post(
            "/instances/batch",
            ALICE,
            json!({ "workflow": "quick", "items": [] }),
        )
        .await;
    assert_eq!(
        (status, p["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("items"))
    );
    let too_many: Vec<Value> = (0..1001).map(|_| json!({})).collect();
    let (status, _) = s
        .post(
            "/instances/batch",
            ALICE,
            json!({ "workflow": "quick", "items": too_many }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = s
        .post(
            "/instances/batch",
            ALICE,
            json!({ "workflow": "nope", "items": [{}] }),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(count(&s).await, before, "a refused batch stored something");

    // One result per item, in order: stored, made already, or refused on its own.
    s.start_instance(ALICE, json!({ "workflow": "approval", "id": "b-taken" }))
        .await;
    let (status, v) = s
        .post(
            "/instances/batch",
            ALICE,
            json!({ "workflow": "quick", "items": [
                { "data": { "n": 0 } },
                { "id": "b-1" },
                { "id": "b-1" },
                { "id": "b-taken" },
            ] }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let items = v["items"].as_array().cloned().unwrap_or_default();
    let statuses: Vec<u64> = items.iter().filter_map(|i| i["status"].as_u64()).collect();
    assert_eq!(statuses, [202, 202, 200, 409], "{v}");
    assert_eq!(items[1]["id"], "acme:b-1");
    assert_eq!(items[2]["id"], "acme:b-1");
    assert_eq!(items[3]["problem"]["field"], "id");
    let first = items[0]["id"].as_str().unwrap_or_default().to_string();
    let done = s.wait_status(&first, ALICE, "completed").await;
    assert_eq!(done["context"]["n"], 0);
    assert_eq!(done["tenant"], "acme");
    s.wait_status("acme:b-1", ALICE, "completed").await;
}

/// An expense approval whose task says what it is about and offers outcome buttons.
const EXPENSE: &str = r#"
name: expense
version: "1.0.0"
steps:
  approve:
    type: human
    title: "Approve {employee}'s expense of {amount}"
    candidates: [manager@example.com]
    show: [employee, amount, receipt.number]
    form:
      type: object
      required: [approved]
      properties:
        approved: { type: boolean }
        amount: { type: number, title: "Amount (EUR)" }
    outcomes:
      approve: { approved: true }
      reject: { approved: false }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_resource_carries_its_rendered_title_shown_fields_and_outcomes() {
    let s = Stack::start().await;
    s._client
        .register_definition(weir::parse_definition(EXPENSE).expect("parses"))
        .await
        .expect("registers");
    let hostile = "<script>alert(1)</script>\u{1b}[31m";
    let v = s
        .start_instance(
            ALICE,
            json!({ "workflow": "expense",
                    "data": { "employee": hostile, "amount": 150, "receipt": { "number": "R-2" } } }),
        )
        .await;
    let id = v["id"].as_str().expect("an id").to_string();
    s.wait_status(&id, ALICE, "waiting").await;

    // The text comes back exactly as the context had it, as JSON text (never HTML).
    let task = s.ok(&format!("/tasks/{id}/approve"), MANAGER).await;
    assert_eq!(
        task["title"],
        format!("Approve {hostile}'s expense of 150"),
        "{task}"
    );
    assert_eq!(
        task["fields"],
        json!([
            { "path": "employee", "title": null, "value": hostile },
            { "path": "amount", "title": "Amount (EUR)", "value": 150 },
            { "path": "receipt.number", "title": null, "value": "R-2" },
        ])
    );
    assert_eq!(
        task["outcomes"],
        json!([
            { "name": "approve", "data": { "approved": true } },
            { "name": "reject", "data": { "approved": false } },
        ])
    );
    let listed = s.ok("/tasks?mine=true", MANAGER).await;
    assert_eq!(listed[0]["fields"][1]["value"], 150, "{listed}");
    let (_, doc) = s.call(Method::GET, "/openapi.json", None, None).await;
    let schemas = &doc["components"]["schemas"];
    assert!(
        schemas["TaskView"]["properties"]["fields"].is_object(),
        "{}",
        schemas["TaskView"]
    );
    assert!(schemas["TaskView"]["properties"]["outcomes"].is_object());
    assert!(schemas["CompleteBody"]["properties"]["outcome"].is_object());

    // An outcome the task does not offer is a 400 naming the field; nothing changes.
    let complete = format!("/tasks/{id}/approve/complete");
    let (status, p) = s
        .post(&complete, MANAGER, json!({ "outcome": "escalate" }))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{p}");
    assert_eq!(p["field"], "outcome");
    assert!(
        p["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("approve, reject"),
        "{p}"
    );
    // The outcome's data is merged over the data: its keys win; the form checks the rest.
    let (status, p) = s
        .post(
            &complete,
            MANAGER,
            json!({ "outcome": "reject", "data": { "approved": true, "amount": "x" } }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{p}");
    assert_eq!(p["errors"][0]["field"], "/amount", "{p}");
    let (status, done) = s
        .post(
            &complete,
            MANAGER,
            json!({ "outcome": "reject", "data": { "amount": 140 } }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["context"]["approved"], false, "{done}");
    assert_eq!(done["context"]["amount"], 140, "{done}");
    // Done: the same outcome again is the engine's 409, as without one.
    let (status, p) = s
        .post(&complete, MANAGER, json!({ "outcome": "reject" }))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{p}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_reaches_the_waiting_step_once_per_id_and_is_409_when_none_waits() {
    let s = Stack::start().await;
    let def = weir::parse_definition(
        r#"{ "name": "signalled", "version": "1.0.0",
             "steps": { "wait_go": { "type": "event", "event": "go", "output": "go" },
                        "wait_more": { "type": "event", "event": "more" } },
             "edges": [ { "from": "wait_go", "to": "wait_more" } ] }"#,
    )
    .expect("parses");
    s._client.register_definition(def).await.expect("registers");
    let started = s
        .start_instance(ALICE, json!({ "workflow": "signalled" }))
        .await;
    let id = started["id"].as_str().unwrap_or_default().to_string();
    s.wait_status(&id, ALICE, "waiting").await;
    let path = format!("/instances/{id}/signal");

    // No step waits on `more`: 409, nothing changed.
    let (status, p) = s.post(&path, ALICE, json!({ "name": "more" })).await;
    assert_eq!(status, StatusCode::CONFLICT, "{p}");
    assert!(p["detail"].as_str().unwrap_or("").contains("more"), "{p}");
    // A body without a name: 400. Another tenant: 404, as if it did not exist.
    let (status, p) = s.post(&path, ALICE, json!({ "data": {} })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{p}");
    let (status, p) = s.post(&path, BOB, json!({ "name": "go" })).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{p}");
    let v = s.ok(&format!("/instances/{id}"), ALICE).await;
    assert_eq!(v["status"], "waiting", "{v}");
    assert!(v["context"].get("go").is_none(), "{v}");

    // Delivered; the same id again changes nothing.
    let body = json!({ "name": "go", "data": { "by": "ops" }, "id": "m1" });
    let (status, v) = s.post(&path, ALICE, body).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["context"]["go"]["by"], "ops", "{v}");
    let again = json!({ "name": "go", "data": { "by": "x" }, "id": "m1" });
    let (status, v) = s.post(&path, ALICE, again).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["context"]["go"]["by"], "ops", "{v}");
    let (status, v) = s.post(&path, ALICE, json!({ "name": "more" })).await;
    assert_eq!(
        (status, v["status"].as_str()),
        (StatusCode::OK, Some("completed")),
        "{v}"
    );
}

/// An order that waits for its payment by its order id (an event step with `correlation`).
const ORDER_PAYMENT: &str = r#"{ "name": "order_payment", "version": "1.0.0",
     "steps": { "reserve": { "type": "machine", "handler": "set", "config": { "reserved": true } },
                "wait_payment": { "type": "event", "event": "payment_received",
                                  "correlation": "context.order_id", "output": "payment", "timeout": "2h" },
                "ship": { "type": "machine", "handler": "set", "config": { "shipped": true } } },
     "edges": [ { "from": "reserve", "to": "wait_payment" }, { "from": "wait_payment", "to": "ship" } ] }"#;

/// Issue 14: `POST /messages` and `GET /messages`, tenant-scoped by the caller's token. A
/// message nobody waits for is kept (201) and listed to its tenant only; its id is used
/// once; an order reaching the step receives it; an order waiting shows what it waits for
/// and receives its tenant's message (200, delivered), never another tenant's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_are_kept_listed_per_tenant_and_delivered_by_key() {
    let s = Stack::start().await;
    let def = weir::parse_definition(ORDER_PAYMENT).expect("parses");
    s._client.register_definition(def).await.expect("registers");

    let paid = json!({ "name": "payment_received", "key": "A-1", "data": { "amount": 5 },
                       "id": "m1", "ttl": "10m" });
    let (status, v) = s.post("/messages", ALICE, paid.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert_eq!(
        (v["id"].as_str(), v["outcome"].as_str()),
        (Some("m1"), Some("kept")),
        "{v}"
    );
    let listed = s.ok("/messages", ALICE).await;
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(listed[0]["tenant"], "acme", "{listed}");
    assert_eq!(listed[0]["data"]["amount"], 5, "{listed}");
    assert_eq!(s.ok("/messages?key=A-9", ALICE).await, json!([]));
    assert_eq!(s.ok("/messages", BOB).await, json!([]), "another tenant's");
    assert_eq!(s.ok("/messages?tenant=acme", BOB).await, json!([]));
    let admin = s
        .ok("/messages?tenant=acme&name=payment_received", ADMIN)
        .await;
    assert_eq!(admin.as_array().map(Vec::len), Some(1), "{admin}");
    let (status, v) = s.post("/messages", ALICE, paid).await;
    assert_eq!(
        (status, v["outcome"].as_str()),
        (StatusCode::OK, Some("duplicate")),
        "{v}"
    );

    // Bad input: 400 naming the field (403 for another tenant), nothing sent.
    for (body, code, field) in [
        (
            json!({ "name": "bad name", "key": "k" }),
            StatusCode::BAD_REQUEST,
            "name",
        ),
        (
            json!({ "name": "p", "key": "" }),
            StatusCode::BAD_REQUEST,
            "key",
        ),
        (
            json!({ "name": "p", "key": "k", "id": "" }),
            StatusCode::BAD_REQUEST,
            "id",
        ),
        (
            json!({ "name": "p", "key": "k", "ttl": "soon" }),
            StatusCode::BAD_REQUEST,
            "ttl",
        ),
        (
            json!({ "name": "p", "key": "k", "ttl": "0s" }),
            StatusCode::BAD_REQUEST,
            "ttl",
        ),
        (
            json!({ "name": "p", "key": "k", "tenant": "globex" }),
            StatusCode::FORBIDDEN,
            "tenant",
        ),
    ] {
        let (status, p) = s.post("/messages", ALICE, body.clone()).await;
        assert_eq!(
            (status, p["field"].as_str()),
            (code, Some(field)),
            "{body}: {p}"
        );
    }
    let (status, p) = s
        .post(
            "/messages",
            ALICE,
            json!({ "name": "p", "key": "k", "to": "x" }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{p}");
    let (status, p) = s.get("/messages?limit=0", ALICE).await;
    assert_eq!(
        (status, p["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("limit")),
        "{p}"
    );
    assert_eq!(
        s.ok("/messages", ALICE).await.as_array().map(Vec::len),
        Some(1)
    );

    // The order reaching the step receives the kept message.
    let o1 = s
        .start_instance(
            ALICE,
            json!({ "workflow": "order_payment", "data": { "order_id": "A-1" } }),
        )
        .await;
    let o1 = o1["id"].as_str().unwrap_or_default().to_string();
    let v = s.wait_status(&o1, ALICE, "completed").await;
    assert_eq!(v["context"]["payment"]["amount"], 5, "{v}");
    assert_eq!(s.ok("/messages", ALICE).await, json!([]));

    // A waiting order shows what it waits for; globex's message does not reach it.
    let o2 = s
        .start_instance(
            ALICE,
            json!({ "workflow": "order_payment", "data": { "order_id": "A-2" } }),
        )
        .await;
    let o2 = o2["id"].as_str().unwrap_or_default().to_string();
    let v = s.wait_status(&o2, ALICE, "waiting").await;
    // Its subscription is relayed to the message's partition just after the commit that
    // made it wait: once no hop is left in an outbox, a message finds it waiting.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while s.ok("/stats", ADMIN).await["outbox"] != 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "o2's subscription is never relayed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        v["waiting_for"],
        json!([{ "step": "wait_payment", "event": "payment_received", "key": "A-2" }]),
        "{v}"
    );
    let listed = s.ok("/instances?status=waiting", ALICE).await;
    assert_eq!(
        listed["items"][0]["waiting_for"][0]["key"], "A-2",
        "{listed}"
    );
    let (status, v) = s
        .post(
            "/messages",
            BOB,
            json!({ "name": "payment_received", "key": "A-2" }),
        )
        .await;
    assert_eq!(
        (status, v["outcome"].as_str()),
        (StatusCode::CREATED, Some("kept")),
        "{v}"
    );
    let (status, v) = s
        .post(
            "/messages",
            ALICE,
            json!({ "name": "payment_received", "key": "A-2",
                                          "data": { "amount": 7 } }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(
        (v["outcome"].as_str(), v["instance_id"].as_str()),
        (Some("delivered"), Some(o2.as_str())),
        "{v}"
    );
    let v = s.wait_status(&o2, ALICE, "completed").await;
    assert_eq!(v["context"]["payment"]["amount"], 7, "{v}");
    assert_eq!(v["waiting_for"], json!([]), "{v}");
}

/// Issue 16 (claim, groups, inbox): a member of a candidate group (from the auth file) sees
/// the task under `view=groups` and claims it; the others see it taken and are refused;
/// an admin releases it; the filters narrow the inbox.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_is_claimed_by_a_group_member_seen_taken_released_by_an_admin_and_filtered() {
    let s = Stack::start().await;
    s.start_instance(ALICE, json!({ "workflow": "group_review", "id": "gr-1" }))
        .await;
    s.wait_status("acme:gr-1", ALICE, "waiting").await;
    let a = s.approvals().await;
    let count = |v: &Value| v.as_array().map(Vec::len).unwrap_or(usize::MAX);

    let groups = s.ok("/tasks?view=groups", DORA).await;
    assert_eq!(count(&groups), 1, "{groups}");
    assert_eq!(groups[0]["claimable"], true);
    assert_eq!(groups[0]["candidate_groups"], json!(["finance"]));
    assert_eq!(count(&s.ok("/tasks?view=groups", MANAGER).await), 0);
    assert_eq!(count(&s.ok("/tasks?view=all", ALICE).await), 0);
    let manager_all = s.ok("/tasks?view=all", MANAGER).await;
    assert_eq!(count(&manager_all), 2, "{manager_all}");
    let only_reviews = s
        .ok("/tasks?view=all&workflow=group_review&sort=due", MANAGER)
        .await;
    assert_eq!(count(&only_reviews), 1, "{only_reviews}");
    assert_eq!(only_reviews[0]["instance_id"], "acme:gr-1");
    assert_eq!(only_reviews[0]["overdue"], false);
    for bad in ["/tasks?view=everyone", "/tasks?sort=newest"] {
        assert_eq!(s.get(bad, DORA).await.0, StatusCode::BAD_REQUEST, "{bad}");
    }

    let task = "/tasks/acme:gr-1/review";
    let (status, t) = s.post(&format!("{task}/claim"), DORA, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{t}");
    assert_eq!(t["claimed_by"], "dora@example.com");
    assert_eq!(count(&s.ok("/tasks?view=mine", DORA).await), 1);
    // The manager sees it taken, and may neither claim nor complete it.
    let seen = s.ok(task, MANAGER).await;
    assert_eq!(
        (seen["claimed_by"].as_str(), seen["allowed"].as_bool()),
        (Some("dora@example.com"), Some(false))
    );
    let (status, p) = s.post(&format!("{task}/claim"), MANAGER, json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{p}");
    assert!(
        p["detail"].as_str().unwrap_or_default().contains("dora"),
        "{p}"
    );
    let (status, _) = s
        .post(&format!("{task}/complete"), MANAGER, json!({ "data": {} }))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        s.post(&format!("{task}/claim"), ALICE, json!({})).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        s.post(&format!("{task}/release"), MANAGER, json!({}))
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    // An admin releases anyone's claim; then the manager claims and completes it.
    let (status, t) = s.post(&format!("{task}/release"), ADMIN, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{t}");
    assert_eq!(t["claimed_by"], Value::Null);
    assert_eq!(count(&s.ok("/tasks?view=mine", DORA).await), 0);
    assert_eq!(
        s.post(&format!("{task}/claim"), MANAGER, json!({})).await.0,
        StatusCode::OK
    );
    let (status, done) = s
        .post(&format!("{task}/complete"), MANAGER, json!({ "data": {} }))
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    let history = s.ok("/instances/acme:gr-1", ALICE).await["history"].clone();
    let statuses: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| h["status"].as_str())
        .collect();
    assert!(
        statuses.contains(&"claimed") && statuses.contains(&"released"),
        "{history}"
    );
    assert_eq!(count(&s.ok("/tasks?view=groups", DORA).await), 0);
    let _ = a;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_and_delayed_starts_over_http() {
    let s = Stack::start().await;
    // A delayed start: pending with its start time, canceled before it.
    let (status, started) = s
        .post(
            "/instances",
            ADMIN,
            json!({ "workflow": "approval", "id": "later-1", "delay": "1h" }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    assert_eq!(started["status"], "pending");
    assert!(started["start_at"].is_string(), "{started}");
    let (status, p) = s
        .post(
            "/instances",
            ADMIN,
            json!({ "workflow": "approval", "delay": "soon" }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{p}");
    // A bad time or duration names its field and says once what to write.
    assert_eq!(p["field"], "delay", "{p}");
    let detail = p["detail"].as_str().unwrap_or_default();
    assert_eq!(detail.matches("write it like").count(), 1, "{p}");
    let (status, p) = s
        .post(
            "/instances",
            ADMIN,
            json!({ "workflow": "approval", "start_at": "tomorrow" }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{p}");
    assert_eq!(p["field"], "start_at", "{p}");
    let detail = p["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("\"tomorrow\" is not an RFC 3339 time")
            && detail.matches("write it like").count() == 1,
        "{p}"
    );
    let (status, canceled) = s.post("/instances/later-1/cancel", ADMIN, json!({})).await;
    assert_eq!(
        (status, canceled["status"].as_str()),
        (StatusCode::OK, Some("canceled"))
    );
    // Schedules: admin only; created, shown with five fire times, paused, deleted.
    let body = json!({ "name": "hourly", "workflow": "approval", "cron": "0 * * * *", "timezone": "Europe/Paris" });
    let (status, _) = s.post("/schedules", ALICE, body.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, created) = s.post("/schedules", ADMIN, body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (status, shown) = s
        .call(Method::GET, "/schedules/hourly", Some(ADMIN), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        shown["upcoming"].as_array().map(Vec::len),
        Some(5),
        "{shown}"
    );
    let (status, p) = s
        .post(
            "/schedules",
            ADMIN,
            json!({ "name": "bad", "workflow": "approval", "cron": "99 * * * *" }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{p}");
    let (status, paused) = s.post("/schedules/hourly/pause", ADMIN, json!({})).await;
    assert_eq!(
        (status, paused["paused"].as_bool()),
        (StatusCode::OK, Some(true))
    );
    let (status, fired) = s.post("/schedules/hourly/trigger", ADMIN, json!({})).await;
    assert_eq!(
        (status, fired["outcome"].as_str()),
        (StatusCode::OK, Some("started")),
        "{fired}"
    );
    let (status, deleted) = s
        .call(Method::DELETE, "/schedules/hourly", Some(ADMIN), None)
        .await;
    assert_eq!(
        (status, deleted["deleted"].as_str()),
        (StatusCode::OK, Some("hourly"))
    );
    let (status, _) = s
        .call(Method::GET, "/schedules/hourly", Some(ADMIN), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
