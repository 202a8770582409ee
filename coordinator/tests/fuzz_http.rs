//! Fuzzing the HTTP API's request bodies: random JSON (shaped like each endpoint's body, and
//! not), random bytes under various content types, and random path ids, POSTed with
//! various tokens to every endpoint that takes a body, on a real `weir serve` on
//! 127.0.0.1 against a private redis-server with a coordinator and a worker running. No
//! request may get a 5xx, none may take 100 ms or more (see `tests/fuzz_support`),
//! and the server must be alive at the end.
//!
//! The endpoints: `POST /instances`, `/instances/{id}/cancel`, `/instances/{id}/retry`,
//! `/tasks/{id}/{step}/complete`, `/tasks/{id}/{step}/reassign`, `/messages`. Path ids are those of
//! instances waiting on a task, a failed one, unknown ones, and random text.
//!
//! `PROPTEST_CASES=100000 cargo test --release -p weir-coordinator --test fuzz_http -- --nocapture`
//! (after `cargo build --release --bins`).

#[path = "../../tests/fuzz_support/mod.rs"]
mod fuzz_support;

use std::path::Path;
use std::time::Duration;

use fuzz_support::{any_bytes, any_string, fuzz_measured, json_object, json_value, Measure};
use proptest::prelude::*;
use serde_json::{Map, Value};
use weir::model::InstanceStatus;
use weir::Engine;
use weir::StartOptions;
use weir_tests::serve::ServeProcess;
use weir_tests::{cluster, wait_for, RedisServer};

/// How long setting up may take (servers starting, instances reaching their state).
const DEADLINE: Duration = Duration::from_secs(30);

const ADMIN: &str = "f-admin-0123456789";
const ALICE: &str = "f-alice-0123456789";
const BOB: &str = "f-bob-0123456789";

const AUTH: &str = r#"
tokens:
  - { token: "f-admin-0123456789", user: "ops@example.com", admin: true }
  - { token: "f-alice-0123456789", user: "alice@example.com", tenant: "acme" }
  - { token: "f-bob-0123456789", user: "bob@example.com" }
"#;

const DEFINITIONS: &[&str] = &[
    r#"{ "name": "quick", "version": "1.0.0",
         "steps": { "work": { "type": "machine", "handler": "set", "config": { "done": true } } } }"#,
    r#"{ "name": "approval", "version": "1.0.0",
         "steps": {
           "approve": { "type": "human", "candidates": ["alice@example.com", "ops@example.com"],
                        "form": { "type": "object", "required": ["approved"],
                                  "properties": { "approved": { "type": "boolean" },
                                                  "amount": { "type": "number", "minimum": 0 },
                                                  "comment": { "type": "string", "maxLength": 20, "pattern": "^[a-z ]*$" } } } },
           "record": { "type": "machine", "handler": "set", "config": { "recorded": true } } },
         "edges": [ { "from": "approve", "to": "record" } ] }"#,
    r#"{ "name": "doomed", "version": "1.0.0",
         "steps": { "charge": { "type": "machine", "handler": "fail", "config": { "retryable": false } },
                    "after": { "type": "machine", "handler": "noop" } },
         "edges": [ { "from": "charge", "to": "after" } ] }"#,
];

/// Ids of instances the setup leaves: waiting on the `approve` task (in no tenant and in
/// tenant `acme`), and failed at `charge`.
const WAITING: &[&str] = &["wait-0", "wait-1", "wait-2", "acme:wait-acme"];
const FAILED: &str = "failed-0";

/// Percent-encodes one path segment (everything but ASCII letters and digits).
fn segment(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[derive(Debug, Clone)]
enum Body {
    /// JSON text of a value.
    Json(Value),
    /// Raw bytes with a content type (or none).
    Bytes(Option<&'static str>, Vec<u8>),
    /// No body at all.
    Empty,
}

#[derive(Debug, Clone)]
struct Req {
    path: String,
    token: Option<&'static str>,
    body: Body,
}

fn instance_id() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(WAITING).prop_map(str::to_owned),
        2 => Just(FAILED.to_owned()),
        1 => Just("nope".to_owned()),
        2 => any_string(),
    ]
}

fn step() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => Just("approve".to_owned()),
        1 => prop::sample::select(vec!["record", "charge", "work"]).prop_map(str::to_owned),
        1 => any_string(),
    ]
}

const BODY_KEYS: &[&str] = &[
    "workflow",
    "version",
    "data",
    "id",
    "tenant",
    "reason",
    "from_step",
    "assignee",
    "candidates",
    "approved",
    "amount",
    "comment",
    "name",
    "key",
    "ttl",
];

/// Sometimes an unknown field more.
fn with_extra(mut m: Map<String, Value>, extra: Option<(String, Value)>) -> Value {
    if let Some((k, v)) = extra {
        m.entry(k).or_insert(v);
    }
    Value::Object(m)
}

fn extra() -> impl Strategy<Value = Option<(String, Value)>> {
    proptest::option::weighted(0.2, (any_string(), json_value(BODY_KEYS, 1)))
}

/// A value for a field: the right type mostly, any JSON sometimes.
fn field(right: BoxedStrategy<Value>) -> BoxedStrategy<Value> {
    prop_oneof![4 => right, 1 => json_value(BODY_KEYS, 2)].boxed()
}

fn text(choices: Vec<&'static str>) -> BoxedStrategy<Value> {
    prop_oneof![
        3 => prop::sample::select(choices).prop_map(Value::from),
        1 => any_string().prop_map(Value::from),
    ]
    .boxed()
}

fn start_body() -> BoxedStrategy<Value> {
    (
        field(text(vec!["quick", "approval", "doomed", "missing"])),
        proptest::option::of(field(text(vec!["1.0.0", "2.0.0", "1", "latest"]))),
        proptest::option::of(field(
            json_object(BODY_KEYS, 2).prop_map(Value::Object).boxed(),
        )),
        proptest::option::of(field(text(vec!["wait-0", "new-1", "failed-0"]))),
        proptest::option::of(field(text(vec!["acme", "globex"]))),
        extra(),
    )
        .prop_map(|(workflow, version, data, id, tenant, extra)| {
            let mut m = Map::new();
            m.insert("workflow".into(), workflow);
            for (k, v) in [
                ("version", version),
                ("data", data),
                ("id", id),
                ("tenant", tenant),
            ] {
                if let Some(v) = v {
                    m.insert(k.into(), v);
                }
            }
            with_extra(m, extra)
        })
        .boxed()
}

fn complete_body() -> BoxedStrategy<Value> {
    let data = prop_oneof![
        2 => (
            proptest::option::of(field(any::<bool>().prop_map(Value::from).boxed())),
            proptest::option::of(field(fuzz_support::any_number().boxed())),
            proptest::option::of(field(text(vec!["ok", "fine by me", "NOT OK"]))),
        )
            .prop_map(|(approved, amount, comment)| {
                let mut m = Map::new();
                for (k, v) in [("approved", approved), ("amount", amount), ("comment", comment)] {
                    if let Some(v) = v {
                        m.insert(k.into(), v);
                    }
                }
                Value::Object(m)
            }),
        1 => json_value(BODY_KEYS, 3),
    ];
    (proptest::option::of(data), extra())
        .prop_map(|(data, extra)| {
            let mut m = Map::new();
            if let Some(d) = data {
                m.insert("data".into(), d);
            }
            with_extra(m, extra)
        })
        .boxed()
}

fn reassign_body() -> BoxedStrategy<Value> {
    let user = || {
        text(vec![
            "alice@example.com",
            "ops@example.com",
            "mallory@example.com",
            "",
        ])
    };
    (
        proptest::option::of(field(user())),
        proptest::option::of(field(
            proptest::collection::vec(user(), 0..4)
                .prop_map(Value::Array)
                .boxed(),
        )),
        extra(),
    )
        .prop_map(|(assignee, candidates, extra)| {
            let mut m = Map::new();
            assignee.map(|v| m.insert("assignee".into(), v));
            candidates.map(|v| m.insert("candidates".into(), v));
            with_extra(m, extra)
        })
        .boxed()
}

fn message_body() -> BoxedStrategy<Value> {
    (
        field(text(vec!["payment_received", "go", "bad name", ""])),
        field(text(vec!["A-17", "wait-0", ""])),
        proptest::option::of(json_value(BODY_KEYS, 2)),
        proptest::option::of(field(text(vec!["m-1", "m-2", ""]))),
        proptest::option::of(field(text(vec!["1s", "10m", "0s", "soon"]))),
        proptest::option::of(field(text(vec!["acme", "globex", "a:b"]))),
        extra(),
    )
        .prop_map(|(name, key, data, id, ttl, tenant, extra)| {
            let mut m = Map::new();
            m.insert("name".into(), name);
            m.insert("key".into(), key);
            for (k, v) in [("data", data), ("id", id), ("ttl", ttl), ("tenant", tenant)] {
                if let Some(v) = v {
                    m.insert(k.into(), v);
                }
            }
            with_extra(m, extra)
        })
        .boxed()
}

fn one_field_body(key: &'static str, choices: Vec<&'static str>) -> BoxedStrategy<Value> {
    (proptest::option::of(field(text(choices))), extra())
        .prop_map(move |(v, extra)| {
            let mut m = Map::new();
            v.map(|v| m.insert(key.into(), v));
            with_extra(m, extra)
        })
        .boxed()
}

/// A body: shaped like the endpoint's (most), any JSON, raw bytes, or nothing.
fn body(shaped: BoxedStrategy<Value>) -> BoxedStrategy<Body> {
    prop_oneof![
        6 => shaped.prop_map(Body::Json),
        2 => json_value(BODY_KEYS, 3).prop_map(Body::Json),
        2 => (
            prop::sample::select(vec![
                Some("application/json"),
                Some("application/json; charset=utf-16"),
                Some("text/plain"),
                Some("application/x-www-form-urlencoded"),
                Some("multipart/form-data; boundary=x"),
                Some("application/problem+json"),
                None,
            ]),
            prop_oneof![
                4 => any_bytes(512),
                1 => (1usize..3_000_000).prop_map(|n| {
                    let mut b = b"{\"data\": \"".to_vec();
                    b.resize(n, b'a');
                    b
                }),
                1 => (1usize..50_000).prop_map(|n| {
                    let mut b = "[".repeat(n).into_bytes();
                    b.extend("]".repeat(n).into_bytes());
                    b
                }),
            ],
        )
            .prop_map(|(ct, b)| Body::Bytes(ct, b)),
        1 => Just(Body::Empty),
    ]
    .boxed()
}

fn request() -> BoxedStrategy<Req> {
    let token = prop::sample::select(vec![
        Some(ADMIN),
        Some(ALICE),
        Some(BOB),
        Some("f-wrong-0123456789"),
        None,
    ]);
    let endpoint = prop_oneof![
        2 => body(start_body()).prop_map(|b| ("/instances".to_owned(), b)),
        1 => (instance_id(), body(one_field_body("reason", vec!["no longer needed", ""])))
            .prop_map(|(id, b)| (format!("/instances/{}/cancel", segment(&id)), b)),
        1 => (instance_id(), body(one_field_body("from_step", vec!["charge", "after", "approve"])))
            .prop_map(|(id, b)| (format!("/instances/{}/retry", segment(&id)), b)),
        3 => (instance_id(), step(), body(complete_body())).prop_map(|(id, s, b)| {
            (format!("/tasks/{}/{}/complete", segment(&id), segment(&s)), b)
        }),
        2 => (instance_id(), step(), body(reassign_body())).prop_map(|(id, s, b)| {
            (format!("/tasks/{}/{}/reassign", segment(&id), segment(&s)), b)
        }),
        1 => body(message_body()).prop_map(|b| ("/messages".to_owned(), b)),
    ];
    (endpoint, token)
        .prop_map(|((path, body), token)| Req { path, token, body })
        .boxed()
}

#[test]
fn random_bodies_on_every_endpoint_get_no_server_error() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let server = RedisServer::start().expect("redis-server starts");
    let url = server.url();
    let ns = "fuzz";
    let (services, client) = rt.block_on(async {
        let coordinator = cluster::start_coordinator(&url, ns)
            .await
            .expect("coordinator starts");
        let worker = cluster::start_worker(&url, ns)
            .await
            .expect("worker starts");
        let client = cluster::client(&url, ns).await.expect("client connects");
        for text in DEFINITIONS {
            let def = weir::parse_definition(text).expect("test definition parses");
            client.register_definition(def).await.expect("registers");
        }
        (vec![coordinator, worker], client)
    });
    let auth = tempfile::Builder::new()
        .suffix(".yaml")
        .tempfile()
        .expect("temp file");
    std::fs::write(auth.path(), AUTH).expect("auth file written");
    let auth_file = auth.path().display().to_string();
    let mut serve = ServeProcess::spawn(
        Path::new(env!("CARGO_BIN_EXE_weir")),
        &url,
        ns,
        &["--auth-file", &auth_file],
    )
    .expect("weir serve starts");
    let base = serve.base().to_string();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        // A new connection per request: on a kept-alive connection, a request now and then
        // failed with "connection closed before message completed" after another input
        // (none in 5,000 inputs without reuse); this target is about bodies, and that
        // finding is reported on its own.
        .pool_max_idle_per_host(0)
        .build()
        .expect("http client");

    // Instances in the states the bodies aim at: tasks to complete and reassign, a failed
    // instance to retry. The inputs complete, reassign, retry and cancel them; the rest of
    // the run meets them in whatever state that left them, a state worth fuzzing too.
    rt.block_on(async {
        for id in WAITING {
            // A tenant's caller id names the instance `TENANT:ID`.
            let (tenant, caller_id) = match id.split_once(':') {
                Some((t, rest)) => (Some(t.to_owned()), rest),
                None => (None, *id),
            };
            client
                .start_workflow(
                    "approval",
                    StartOptions {
                        id: Some(caller_id.into()),
                        tenant_id: tenant,
                        ..StartOptions::default()
                    },
                )
                .await
                .expect("start");
        }
        client
            .start_workflow(
                "doomed",
                StartOptions {
                    id: Some(FAILED.into()),
                    ..StartOptions::default()
                },
            )
            .await
            .expect("start");
    });
    let statuses = |ids: &[&str]| {
        rt.block_on(async {
            let mut out = Vec::new();
            for id in ids {
                out.push(client.get_instance(id).await.map(|v| v.status).ok());
            }
            out
        })
    };
    wait_for(DEADLINE, "the setup instances reach their states", || {
        let mut ids = WAITING.to_vec();
        ids.push(FAILED);
        let s = statuses(&ids);
        let want: Vec<_> = WAITING
            .iter()
            .map(|_| Some(InstanceStatus::Waiting))
            .chain([Some(InstanceStatus::Failed)])
            .collect();
        (s == want).then_some(())
    })
    .expect("setup");

    let send = |req: &Req| {
        rt.block_on(async {
            let mut r = http.post(format!("{base}/api/v1{}", req.path));
            if let Some(t) = req.token {
                r = r.bearer_auth(t);
            }
            r = match &req.body {
                Body::Json(v) => r
                    .header("content-type", "application/json")
                    .body(v.to_string()),
                Body::Bytes(ct, b) => {
                    let r = match ct {
                        Some(ct) => r.header("content-type", *ct),
                        None => r,
                    };
                    r.body(b.clone())
                }
                Body::Empty => r,
            };
            let resp = match r.send().await {
                Ok(resp) => resp,
                // The server may answer before it reads the body (401 without a token, 413
                // over the size limit) and close the connection unread, as HTTP allows:
                // the client's body write then fails, or the kernel resets the connection
                // before the client reads the answer. So a failure to get an answer counts
                // only when the server does not answer a plain request right after it (it
                // crashed or hangs).
                Err(e) => {
                    let health = http.get(format!("{base}/api/v1/health")).send().await;
                    assert!(
                        health.as_ref().is_ok_and(|r| r.status().is_success()),
                        "POST {}: no answer ({e:?}), and then /health: {health:?}",
                        req.path
                    );
                    return false;
                }
            };
            let status = resp.status();
            let text = resp.text().await.unwrap_or_default();
            assert!(
                !status.is_server_error(),
                "POST {}: {status}: {text}",
                req.path
            );
            status.is_success()
        })
    };
    // The server does the work in its own process: its answer time is wall time.
    let figures = fuzz_measured("http", Measure::Wall, 400, request(), send);
    assert!(figures.inputs > 0);
    assert!(serve.is_running(), "weir serve is no longer running");
    drop(services);
}
