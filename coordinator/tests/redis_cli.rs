//! The `weir` and `weir-worker` binaries against a real redis-server on a free port: every
//! Redis command, its JSON shape, its exit code, and each refusal, one behaviour per test.
//! The coordinator and the workers run as child processes (a graceful stop exits 0).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command as StdCommand, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use assert_cmd::Command;
use serde_json::Value;
use weir_tests::{free_port, wait_for, wait_until, RedisServer};

/// Longest a single command may take.
const CALL: Duration = Duration::from_secs(60);
/// Longest a condition may take to hold.
const DEADLINE: Duration = Duration::from_secs(30);

fn weir_path() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_weir"))
}

/// The `weir-worker` binary, next to `weir` (built by `cargo test` of the workspace, or
/// `cargo build -p weir-worker`).
fn worker_path() -> PathBuf {
    let path = weir_path().with_file_name(format!("weir-worker{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is missing: run `cargo build -p weir-worker` (or `cargo test` for the workspace)",
        path.display()
    );
    path
}

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples")
}

fn example(name: &str) -> String {
    examples().join(name).display().to_string()
}

/// A child process killed when dropped (after a failed assertion too).
struct Proc(Child);

impl Proc {
    /// SIGTERM, then the exit code (within the deadline).
    fn terminate(mut self) -> Option<i32> {
        let _ = StdCommand::new("kill")
            .arg("-TERM")
            .arg(self.0.id().to_string())
            .status();
        let code = wait_for(DEADLINE, "the process to stop after SIGTERM", || {
            self.0.try_wait().ok().flatten()
        })
        .ok()?;
        code.code()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A Redis, a coordinator and workers, all private to one test.
struct Env {
    server: RedisServer,
    ns: String,
    coordinator: Option<Proc>,
    workers: Vec<Proc>,
}

impl Env {
    fn start(workers: usize) -> Env {
        let server = RedisServer::start().expect("redis-server starts");
        let mut env = Env {
            server,
            ns: "t".into(),
            coordinator: None,
            workers: Vec::new(),
        };
        let coordinator = StdCommand::new(weir_path())
            .args(["coordinator", "--id", "c1", "--lease", "2s"])
            .envs(env.vars())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("weir coordinator starts");
        env.coordinator = Some(Proc(coordinator));
        for i in 0..workers {
            let worker = StdCommand::new(worker_path())
                .args([
                    "--id",
                    &format!("w{i}"),
                    "--concurrency",
                    "4",
                    "--grace",
                    "1s",
                ])
                .args(["--visibility-timeout", "2s", "--max-deliveries", "2"])
                .envs(env.vars())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("weir-worker starts");
            env.workers.push(Proc(worker));
        }
        env
    }

    fn vars(&self) -> Vec<(&'static str, String)> {
        vec![
            ("WEIR_REDIS_URL", self.server.url()),
            ("WEIR_NAMESPACE", self.ns.clone()),
            ("RUST_LOG", "warn".into()),
        ]
    }

    fn weir(&self) -> Command {
        let mut cmd = Command::new(weir_path());
        cmd.envs(self.vars()).write_stdin("").timeout(CALL);
        cmd
    }

    /// Runs `weir ARGS` and returns (code, stdout, stderr).
    fn run(&self, args: &[&str]) -> (i32, String, String) {
        run(self.weir().args(args))
    }

    /// Runs `weir ARGS`, expecting success; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.run(args);
        assert_eq!(code, 0, "weir {args:?} failed:\n{out}\n{err}");
        out
    }

    /// Runs `weir ARGS --json`-style, expecting success and JSON on stdout.
    fn json(&self, args: &[&str]) -> Value {
        let out = self.ok(args);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("weir {args:?}: {e}:\n{out}"))
    }

    /// Runs `weir ARGS`, expecting failure with one error line; returns it.
    fn fails(&self, args: &[&str]) -> String {
        let (code, out, err) = self.run(args);
        assert_ne!(code, 0, "weir {args:?} succeeded:\n{out}");
        one_error_line(&err).to_string()
    }

    fn redis(&self) -> redis::Connection {
        self.server.connection().expect("a connection")
    }
}

fn run(cmd: &mut Command) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("weir runs");
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

fn one_error_line(stderr: &str) -> &str {
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "expected one line on stderr, got:\n{stderr}"
    );
    assert!(lines[0].starts_with("error: "), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    lines[0]
}

fn write_temp(suffix: &str, text: &str) -> tempfile::NamedTempFile {
    let f = tempfile::Builder::new()
        .suffix(suffix)
        .tempfile()
        .expect("a temp file");
    std::fs::write(f.path(), text).expect("written");
    f
}

const ALWAYS_FAILS: &str = r#"
name: always_fails
version: "1.0.0"
steps:
  prepare: { type: machine, handler: set, config: { prepared: true } }
  charge: { type: machine, handler: fail, config: { message: "card declined" } }
edges:
  - { from: prepare, to: charge }
"#;

/// The example files `Env::registered` registers, in order.
const EXAMPLES: [&str; 3] = [
    "expense_approval.yaml",
    "ticket_routing.yaml",
    "reminder_timer.yaml",
];
/// Ann's expense.
const E1_DATA: &str = r#"{"employee": "ann", "amount": 120}"#;
/// Starts Ann's expense as `acme:e1` (caller id `e1` in tenant acme).
const START_E1: [&str; 10] = [
    "start",
    "expense_approval",
    "--data",
    E1_DATA,
    "--id",
    "e1",
    "--tenant",
    "acme",
    "--created-by",
    "ann",
];
/// Gives `acme:e1`'s approval to carol, with manager as a candidate, as ops.
const REASSIGN_E1: [&str; 10] = [
    "task",
    "reassign",
    "acme:e1",
    "approve",
    "--to",
    "carol",
    "--candidate",
    "manager",
    "--by",
    "ops",
];
/// The manager approves `acme:e1`.
const COMPLETE_E1: [&str; 8] = [
    "task",
    "complete",
    "acme:e1",
    "approve",
    "--user",
    "manager",
    "--data",
    r#"{"approved": true}"#,
];
/// Starts a ticket as `f1`; it runs to its end on its own.
const START_F1: [&str; 6] = [
    "start",
    "ticket_routing",
    "--id",
    "f1",
    "--data",
    r#"{"severity": 1}"#,
];

/// Scenarios on an [`Env`]: the definitions and instances the tests start from.
impl Env {
    /// A deployment with `workers` workers, the [`EXAMPLES`] and [`ALWAYS_FAILS`]
    /// registered.
    fn registered(workers: usize) -> Env {
        let env = Env::start(workers);
        let fails = write_temp(".yaml", ALWAYS_FAILS);
        let mut args = vec!["definition".to_string(), "register".to_string()];
        args.extend(EXAMPLES.iter().map(|f| example(f)));
        args.push(fails.path().display().to_string());
        env.ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
        env
    }

    /// Ann's expense `acme:e1`, waiting on its approval.
    fn expense_waiting(&self) {
        self.ok(&START_E1);
        let v = self.json(&["wait", "acme:e1", "--timeout", "20s"]);
        assert_eq!(v["status"], "waiting", "{v}");
    }

    /// Ann's expense `acme:e1`, completed: reassigned by ops to carol (manager a
    /// candidate), then approved by the manager.
    fn expense_completed(&self) {
        self.expense_waiting();
        self.ok(&REASSIGN_E1);
        self.ok(&COMPLETE_E1);
        let v = self.json(&["wait", "acme:e1", "--timeout", "20s"]);
        assert_eq!(v["status"], "completed", "{v}");
    }

    /// An `always_fails` instance started from a data file (`{"order": 7}`), failed at
    /// `charge`; returns its id.
    fn failed_order(&self) -> String {
        let data_file = write_temp(".json", r#"{"order": 7}"#);
        let id = self.ok(&[
            "start",
            "always_fails",
            "--data-file",
            &data_file.path().display().to_string(),
        ]);
        let id = id.trim().to_string();
        let v = self.json(&["wait", &id, "--timeout", "20s"]);
        assert_eq!(v["status"], "failed", "{v}");
        assert!(v["error"]
            .as_str()
            .is_some_and(|e| e.contains("card declined")));
        id
    }

    /// Four instances: `acme:e1` completed ([`Env::expense_completed`]), `e2` canceled
    /// (reason `duplicate`), a failed order ([`Env::failed_order`]), and a reminder
    /// waiting on its timer.
    fn population(&self) {
        self.expense_completed();
        self.ok(&["start", "expense_approval", "--id", "e2", "--data", E1_DATA]);
        self.json(&["wait", "e2", "--timeout", "20s"]);
        self.ok(&["cancel", "e2", "--reason", "duplicate"]);
        self.failed_order();
        self.ok(&["start", "reminder_timer"]);
    }
}

#[test]
fn unreachable_redis_is_one_line_naming_the_url() {
    let port = free_port().expect("a free port");
    let url = format!("redis://127.0.0.1:{port}");
    for args in [
        vec!["list"],
        vec!["status", "x"],
        vec!["start", "expense_approval"],
        vec!["stats"],
        vec!["definition", "list"],
        vec!["dlq", "list"],
    ] {
        let (code, out, err) = run(Command::new(weir_path())
            .args(["--redis", &url])
            .args(&args)
            .timeout(CALL));
        assert_eq!(code, 1, "{args:?}: {out}");
        let line = one_error_line(&err);
        assert!(line.contains(&url) && line.contains("--redis"), "{line}");
    }
    let (code, _, err) = run(Command::new(worker_path())
        .args(["--redis", &url])
        .timeout(CALL));
    assert_eq!(code, 1);
    assert!(one_error_line(&err).contains(&url), "{err}");
}

// The commands on a running deployment, one behaviour per test. Each test has its own
// Redis, coordinator and workers ([`Env`]); [`Env::registered`] and [`Env::population`]
// make the definitions and instances most of them need.

#[test]
fn definition_register_stores_every_file_or_none_and_names_a_broken_edge() {
    let env = Env::start(1);
    // Register: every example; an invalid file registers nothing and names the edge.
    let mut args = vec!["definition", "register"];
    let files: Vec<String> = EXAMPLES.iter().map(|f| example(f)).collect();
    args.extend(files.iter().map(String::as_str));
    let out = env.ok(&args);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "expense_approval@1.0.0",
            "ticket_routing@1.0.0",
            "reminder_timer@1.0.0"
        ]
    );
    let bad = write_temp(
        ".yaml",
        "name: broken\nversion: \"1.0.0\"\nsteps:\n  a: { type: machine, handler: noop }\nedges:\n  - { from: a, to: b }\n",
    );
    let fails = write_temp(".yaml", ALWAYS_FAILS);
    let bad_path = bad.path().display().to_string();
    let line = env.fails(&[
        "definition",
        "register",
        &fails.path().display().to_string(),
        &bad_path,
    ]);
    assert!(
        line.contains(&bad_path) && line.contains("edge 0 (a -> b)"),
        "{line}"
    );
    let listed = env.json(&["definition", "list", "--json"]);
    let names: Vec<&str> = listed
        .as_array()
        .expect("an array")
        .iter()
        .filter_map(|d| d["name"].as_str())
        .collect();
    assert_eq!(
        names,
        ["expense_approval", "reminder_timer", "ticket_routing"]
    );
    env.ok(&[
        "definition",
        "register",
        &fails.path().display().to_string(),
    ]);
}

#[test]
fn definition_show_prints_json_or_mermaid_and_names_an_unknown_one() {
    let env = Env::registered(1);
    let shown = env.json(&["definition", "show", "expense_approval", "--format", "json"]);
    assert_eq!(shown["name"], "expense_approval");
    assert!(env
        .ok(&[
            "definition",
            "show",
            "expense_approval",
            "--format",
            "mermaid"
        ])
        .starts_with("flowchart"));
    let line = env.fails(&["definition", "show", "nope"]);
    assert!(line.contains("\"nope\""), "{line}");
}

#[test]
fn a_start_prints_its_id_and_the_same_caller_id_again_starts_nothing() {
    let env = Env::registered(1);
    // Start: the id alone; the same --id twice starts one instance. Caller ids are per
    // tenant: with --tenant acme, the instance is `acme:e1`.
    assert_eq!(env.ok(&START_E1), "acme:e1\n");
    assert_eq!(env.ok(&START_E1), "acme:e1\n");
    let line = env.fails(&["start", "nope"]);
    assert!(line.contains("unknown workflow nope"), "{line}");
    let line = env.fails(&["start", "expense_approval", "--data", "[1]"]);
    assert!(line.contains("JSON object"), "{line}");
}

#[test]
fn wait_returns_at_an_open_task_and_status_shows_every_field() {
    let env = Env::registered(1);
    env.ok(&START_E1);
    // Wait: until the task is open; the status JSON shape.
    let v = env.json(&["wait", "acme:e1", "--timeout", "20s"]);
    assert_eq!(v["status"], "waiting");
    assert_eq!(v["current_steps"], serde_json::json!(["approve"]));
    let v = env.json(&["status", "acme:e1", "--json"]);
    for key in [
        "id",
        "definition",
        "version",
        "status",
        "current_steps",
        "context",
        "error",
        "tenant",
        "created_by",
        "created_at",
        "updated_at",
    ] {
        assert!(v.get(key).is_some(), "status --json lacks {key}: {v}");
    }
    assert_eq!(v["tenant"], "acme");
    assert_eq!(v["created_by"], "ann");
    assert_eq!(v["error"], Value::Null);
    assert!(env
        .ok(&["status", "acme:e1"])
        .contains("status:        waiting"));
    let line = env.fails(&["status", "no-such-id"]);
    assert!(line.contains("no-such-id"), "{line}");
}

#[test]
fn tasks_are_listed_with_their_form_and_a_refused_completion_changes_nothing() {
    let env = Env::registered(1);
    env.expense_waiting();
    let tasks = env.json(&["task", "list", "--assignee", "manager", "--json"]);
    assert_eq!(tasks.as_array().map(Vec::len), Some(1), "{tasks}");
    assert_eq!(tasks[0]["step"], "approve");
    assert_eq!(
        tasks[0]["form"]["required"],
        serde_json::json!(["approved"])
    );
    let none = env.json(&["task", "list", "--instance", "other", "--json"]);
    assert_eq!(none, serde_json::json!([]));
    let line = env.fails(&[
        "task",
        "complete",
        "acme:e1",
        "approve",
        "--user",
        "bob",
        "--data",
        r#"{"approved": true}"#,
    ]);
    assert!(line.contains("forbidden") && line.contains("bob"), "{line}");
    let line = env.fails(&[
        "task",
        "complete",
        "acme:e1",
        "approve",
        "--user",
        "manager",
        "--data",
        r#"{"approved": "yes"}"#,
    ]);
    assert!(line.contains("invalid_data"), "{line}");
    assert_eq!(
        env.json(&["status", "acme:e1", "--json"])["status"],
        "waiting"
    );
}

#[test]
fn a_task_shows_what_it_is_about_and_completes_with_an_outcome() {
    let env = Env::registered(1);
    // A name with terminal escapes: printed as text, never obeyed.
    let data = r#"{"employee": "ann\u001b[2J", "amount": 120, "receipt": {"number": "R-7"}}"#;
    env.ok(&["start", "expense_approval", "--id", "e3", "--data", data]);
    let v = env.json(&["wait", "e3", "--timeout", "20s"]);
    assert_eq!(v["status"], "waiting", "{v}");
    let tasks = env.json(&["task", "list", "--instance", "e3", "--json"]);
    assert_eq!(
        tasks[0]["title"], "Approve ann\u{1b}[2J's expense of 120",
        "{tasks}"
    );
    assert_eq!(tasks[0]["fields"][1]["title"], "Amount (EUR)", "{tasks}");
    assert_eq!(tasks[0]["fields"][2]["value"], "R-7", "{tasks}");
    assert_eq!(tasks[0]["outcomes"][0]["name"], "approve", "{tasks}");
    let text = env.ok(&["task", "list", "--instance", "e3"]);
    assert!(!text.contains('\u{1b}'), "{text:?}");
    assert!(
        text.contains("Approve ann\\u{1b}[2J's expense of 120"),
        "{text}"
    );
    assert!(
        text.contains("employee: ann\\u{1b}[2J · Amount (EUR): 120 · receipt.number: R-7"),
        "{text}"
    );
    assert!(text.contains("outcomes: approve, reject"), "{text}");
    let line = env.fails(&[
        "task",
        "complete",
        "e3",
        "approve",
        "--user",
        "manager",
        "--outcome",
        "maybe",
    ]);
    assert!(
        line.contains("no outcome \"maybe\"") && line.contains("approve, reject"),
        "{line}"
    );
    env.ok(&[
        "task",
        "complete",
        "e3",
        "approve",
        "--user",
        "manager",
        "--outcome",
        "reject",
        "--data",
        r#"{"comment": "no receipt"}"#,
    ]);
    let v = env.json(&["wait", "e3", "--timeout", "20s"]);
    assert_eq!(v["status"], "completed", "{v}");
    let v = env.json(&["status", "e3", "--json"]);
    assert_eq!(v["context"]["approved"], false, "{v}");
    assert_eq!(v["context"]["comment"], "no receipt", "{v}");
}

#[test]
fn a_reassigned_task_is_listed_for_its_new_assignee_and_completes_once() {
    let env = Env::registered(1);
    env.expense_waiting();
    // Reassigning: to no one is refused; to carol, with manager as a candidate, is listed.
    let line = env.fails(&["task", "reassign", "acme:e1", "approve", "--by", "ops"]);
    assert!(line.contains("invalid_data"), "{line}");
    env.ok(&REASSIGN_E1);
    let tasks = env.json(&["task", "list", "--assignee", "carol", "--json"]);
    assert_eq!(
        tasks[0]["candidates"],
        serde_json::json!(["manager"]),
        "{tasks}"
    );
    env.ok(&COMPLETE_E1);
    let line = env.fails(&COMPLETE_E1);
    assert!(line.contains("refused"), "{line}");
    let v = env.json(&["wait", "acme:e1", "--timeout", "20s"]);
    assert_eq!(v["status"], "completed", "{v}");
    assert_eq!(v["context"]["paid"], true);
}

#[test]
fn history_lists_one_entry_per_attempt_with_who_did_it() {
    let env = Env::registered(1);
    env.expense_completed();
    let h = env.json(&["history", "acme:e1", "--json"]);
    let steps: Vec<&str> = h
        .as_array()
        .expect("an array")
        .iter()
        .filter_map(|r| r["step"].as_str())
        .collect();
    assert_eq!(
        steps,
        ["submit", "approve", "approve", "decide", "pay"],
        "{h}"
    );
    assert_eq!(h[1]["status"], "reassigned", "{h}");
    assert_eq!(
        h[1]["note"], "assigned to carol; candidates: manager",
        "{h}"
    );
    for key in [
        "step",
        "attempt",
        "status",
        "started_at",
        "finished_at",
        "worker",
        "error",
    ] {
        assert!(h[0].get(key).is_some(), "history lacks {key}: {h}");
    }
    assert_eq!(h[1]["worker"], "ops");
    assert_eq!(h[2]["worker"], "manager");
    assert!(env.ok(&["history", "acme:e1"]).contains("approve"));
}

#[test]
fn cancel_refuses_a_finished_instance_and_cancels_a_waiting_one_with_its_reason() {
    let env = Env::registered(1);
    env.expense_completed();
    let line = env.fails(&["cancel", "acme:e1"]);
    assert!(line.contains("wrong_status"), "{line}");
    env.ok(&["start", "expense_approval", "--id", "e2", "--data", E1_DATA]);
    env.json(&["wait", "e2", "--timeout", "20s"]);
    assert_eq!(
        env.ok(&["cancel", "e2", "--reason", "duplicate"]),
        "e2 canceled\n"
    );
    let v = env.json(&["status", "e2", "--json"]);
    assert_eq!(v["status"], "canceled");
    assert_eq!(v["error"], "duplicate");
}

#[test]
fn retry_resumes_a_failed_instance_with_its_context_and_refuses_another() {
    let env = Env::registered(1);
    env.expense_completed();
    let id = env.failed_order();
    // The status printed is read right after the retry applied: a fast worker may already
    // have failed the step again.
    let printed = env.ok(&["retry", &id, "--from-step", "charge"]);
    assert!(
        [format!("{id} running"), format!("{id} failed")].contains(&printed.trim().to_string()),
        "{printed}"
    );
    let v = env.json(&["wait", &id, "--timeout", "20s"]);
    assert_eq!(v["status"], "failed");
    assert_eq!(v["context"]["order"], 7);
    let line = env.fails(&["retry", "acme:e1"]);
    assert!(line.contains("wrong_status"), "{line}");
}

#[test]
fn a_wait_that_times_out_is_exit_code_4_with_one_line() {
    let env = Env::registered(1);
    let id = env.ok(&["start", "reminder_timer"]);
    let id = id.trim();
    let (code, _, err) = env.run(&["wait", id, "--timeout", "50ms"]);
    assert_eq!(code, 4, "{err}");
    assert!(one_error_line(&err).contains(id));
}

#[test]
fn list_filters_by_status_creator_tenant_and_definition() {
    let env = Env::registered(1);
    env.population();
    let all = env.json(&["list", "--json"]);
    assert_eq!(all.as_array().map(Vec::len), Some(4), "{all}");
    let done = env.json(&["list", "--status", "completed", "--json"]);
    assert_eq!(done[0]["id"], "acme:e1");
    let by = env.json(&["list", "--created-by", "ann", "--tenant", "acme", "--json"]);
    assert_eq!(by.as_array().map(Vec::len), Some(1), "{by}");
    let one = env.json(&[
        "list",
        "--definition",
        "expense_approval",
        "--limit",
        "1",
        "--json",
    ]);
    assert_eq!(one.as_array().map(Vec::len), Some(1));
    assert!(env.ok(&["list"]).contains("expense_approval@1.0.0"));
    let (code, _, _) = env.run(&["list", "--status", "sleeping"]);
    assert_eq!(code, 2);
}

#[test]
fn events_are_json_lines_of_the_instance_asked_for() {
    let env = Env::registered(1);
    env.expense_completed();
    let out = env.ok(&["events", "--instance", "acme:e1", "--json"]);
    let events: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert!(events.iter().all(|e| e["instance_id"] == "acme:e1"
        && e["type"].is_string()
        && e["timestamp"].is_string()));
    assert!(events
        .iter()
        .any(|e| e["type"] == "HumanTaskCompleted" && e["user"] == "manager"));
    assert!(env.ok(&["events"]).contains("workflow completed"));
}

#[test]
fn events_follow_prints_new_events_until_sigterm() {
    let env = Env::registered(1);
    let mut follow = StdCommand::new(weir_path())
        .args(["events", "--follow", "--json", "--instance", "f1"])
        .envs(env.vars())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("weir events --follow starts");
    let stdout = follow.stdout.take().expect("stdout");
    let follow = Proc(follow);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    env.ok(&START_F1);
    let completed = wait_for(DEADLINE, "the followed instance to complete", || {
        while let Ok(line) = rx.try_recv() {
            let e: Value = serde_json::from_str(&line).ok()?;
            if e["type"] == "WorkflowCompleted" {
                return Some(e);
            }
        }
        None
    })
    .expect("followed events");
    assert_eq!(completed["instance_id"], "f1");
    assert_eq!(follow.terminate(), Some(0));
}

#[test]
fn stats_count_instances_queues_dead_letters_leases_and_processes() {
    let env = Env::registered(2);
    env.population();
    env.ok(&START_F1);
    let v = env.json(&["wait", "f1", "--timeout", "20s"]);
    assert_eq!(v["status"], "completed", "{v}");
    let s = env.json(&["stats", "--json"]);
    assert_eq!(s["instances"]["completed"], 2, "{s}");
    assert_eq!(s["instances"]["canceled"], 1, "{s}");
    assert_eq!(s["instances"]["failed"], 1, "{s}");
    assert!(s["queues"].get("default").is_some(), "{s}");
    assert_eq!(s["dlq"], 0);
    assert_eq!(s["coordinators"][0]["id"], "c1", "{s}");
    assert_eq!(s["workers"].as_array().map(Vec::len), Some(2), "{s}");
    assert!(s["leases"]
        .as_array()
        .expect("leases")
        .iter()
        .all(|l| l["holder"] == "c1"));
    assert!(env.ok(&["stats"]).contains("dead letters: 0"));
}

#[test]
fn a_message_no_worker_can_read_is_dead_lettered_replayed_and_purged() {
    let env = Env::start(1);
    // A message no worker can read is dead-lettered; replay puts it back (and it is
    // dead-lettered again); purge drops it.
    let mut con = env.redis();
    let _: String = redis::cmd("XADD")
        .arg("{t:p0}:q:default")
        .arg("*")
        .arg("m")
        .arg("not messagepack")
        .query(&mut con)
        .expect("XADD");
    let letters = wait_for(DEADLINE, "a dead letter", || {
        let v = env.json(&["dlq", "list", "--json"]);
        (v.as_array().map(Vec::len) == Some(1)).then_some(v)
    })
    .expect("dead-lettered");
    let dl = &letters[0];
    assert_eq!(dl["source"], "{t:p0}:q:default");
    assert_eq!(dl["size"], "not messagepack".len());
    assert!(
        dl["error"].is_string() && dl["deliveries"].is_number(),
        "{dl}"
    );
    let dl_id = dl["id"].as_str().expect("an id").to_string();
    assert_eq!(
        env.ok(&["dlq", "replay", &dl_id]),
        format!("{dl_id} replayed\n")
    );
    let line = env.fails(&["dlq", "replay", &dl_id]);
    assert!(line.contains(&dl_id), "{line}");
    wait_until(DEADLINE, "the replayed message dead-lettered again", || {
        env.json(&["dlq", "list", "--json"])
            .as_array()
            .map(Vec::len)
            == Some(1)
    })
    .expect("dead-lettered again");
    let out = env.ok(&["dlq", "purge", "--all"]);
    assert!(out.ends_with(" purged\n"), "{out}");
    assert_eq!(env.json(&["dlq", "list", "--json"]), serde_json::json!([]));
    let (code, _, _) = env.run(&["dlq", "purge"]);
    assert_eq!(code, 2, "an id or --all is required");
}

#[test]
fn the_coordinator_and_workers_stop_gracefully_on_sigterm_with_exit_code_0() {
    let mut env = Env::registered(2);
    env.expense_completed();
    for w in env.workers.drain(..) {
        assert_eq!(w.terminate(), Some(0));
    }
    if let Some(c) = env.coordinator.take() {
        assert_eq!(c.terminate(), Some(0));
    }
}

#[test]
fn demo_runs_distributed_and_bench_runs() {
    let server = RedisServer::start().expect("redis-server starts");
    let url = server.url();
    let (code, out, err) = run(Command::new(weir_path())
        .args(["demo", "--redis", &url])
        .env("RUST_LOG", "warn")
        .timeout(CALL));
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("distributed"), "{out}");
    assert!(out.contains("All 6 workflows ended as expected."), "{out}");
    // The order waits for its payment, which the demo sends by the order's key.
    assert!(
        out.contains("wait_payment: sending message payment_received with key A-17"),
        "{out}"
    );
    assert!(out.contains("approve: completed by manager"), "{out}");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*weir-demo-*")
        .query(&mut server.connection().expect("a connection"))
        .expect("KEYS");
    assert!(keys.is_empty(), "the demo namespace is left: {keys:?}");

    let (code, out, err) = run(Command::new(weir_path())
        .args(["bench", "local", "--instances", "20"])
        .timeout(CALL));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("bench_linear") && out.contains("steps/s"),
        "{out}"
    );
    let (code, out, err) = run(Command::new(weir_path())
        .args(["bench", "redis", "--smoke", "--redis", &url])
        .env("RUST_LOG", "warn")
        .timeout(Duration::from_secs(120)));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("linear 10 x noop"), "{out}");
}

#[test]
fn starts_need_no_coordinator_and_a_jsonl_file_starts_one_per_line() {
    let mut env = Env::start(1);
    env.ok(&["definition", "register", &example("order_fanout.yaml")]);
    // No coordinator from here on: starts are stored, pending.
    if let Some(c) = env.coordinator.take() {
        assert_eq!(c.terminate(), Some(0));
    }
    let id = env.ok(&["start", "order_fanout", "--id", "o1"]);
    assert_eq!(id, "o1\n");
    let v = env.json(&["status", "o1", "--json"]);
    assert_eq!(v["status"], "pending", "{v}");
    let listed = env.json(&["list", "--status", "pending", "--json"]);
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");

    // One start per line, ids in line order; a bad line starts nothing of the file.
    let dir = tempfile::tempdir().expect("a temp dir");
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, "{\"order\": \"A-1\"}\n\n[3]\n").expect("written");
    let line = env.fails(&[
        "start",
        "order_fanout",
        "--data-file",
        &bad.display().to_string(),
    ]);
    assert!(line.contains("line 3"), "{line}");
    assert!(line.contains("nothing was started"), "{line}");
    assert_eq!(
        env.json(&["list", "--status", "pending", "--json"])
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    let good = dir.path().join("orders.jsonl");
    std::fs::write(
        &good,
        "{\"order\": \"A-1\"}\n\n{\"order\": \"A-2\"}\n{\"order\": \"A-3\"}\n",
    )
    .expect("written");
    let out = env.ok(&[
        "start",
        "order_fanout",
        "--data-file",
        &good.display().to_string(),
    ]);
    let ids: Vec<&str> = out.lines().collect();
    assert_eq!(ids.len(), 3, "{out}");
    for (id, order) in ids.iter().zip(["A-1", "A-2", "A-3"]) {
        let v = env.json(&["status", id, "--json"]);
        assert_eq!(v["status"], "pending", "{v}");
        assert_eq!(v["context"]["order"], order, "ids are in line order");
    }
    // A pending start is canceled at once; --wait gives up with exit 4, still stored.
    let out = env.ok(&["cancel", ids[2]]);
    assert!(out.contains("canceled"), "{out}");
    let (code, _, err) = env.run(&[
        "start",
        "order_fanout",
        "--id",
        "o2",
        "--wait",
        "--wait-timeout",
        "300ms",
    ]);
    assert_eq!(code, 4, "{err}");
    assert!(one_error_line(&err).contains("pending"), "{err}");

    // A coordinator comes: it creates and runs them, and not the canceled one.
    let coordinator = StdCommand::new(weir_path())
        .args(["coordinator", "--id", "c2", "--lease", "2s"])
        .envs(env.vars())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("weir coordinator starts");
    env.coordinator = Some(Proc(coordinator));
    for id in ["o1", "o2", ids[0], ids[1]] {
        let v = env.json(&["wait", id, "--timeout", "30s"]);
        assert_eq!(v["status"], "completed", "{v}");
    }
    assert_eq!(
        env.ok(&["start", "order_fanout", "--id", "o3", "--wait"]),
        "o3\n"
    );
    assert_ne!(env.json(&["status", "o3", "--json"])["status"], "pending");
    assert_eq!(
        env.json(&["status", ids[2], "--json"])["status"],
        "canceled"
    );
    if let Some(c) = env.coordinator.take() {
        assert_eq!(c.terminate(), Some(0));
    }
}

/// An instance that waits for two signals in turn (event steps without `correlation`).
const SIGNALLED: &str = r#"
name: signalled
version: "1.0.0"
steps:
  wait_go: { type: event, event: go, output: go }
  wait_more: { type: event, event: more }
edges:
  - { from: wait_go, to: wait_more }
"#;

#[test]
fn signal_delivers_to_the_waiting_step_once_per_id_and_refuses_when_none_waits() {
    let env = Env::start(0);
    let def = write_temp(".yaml", SIGNALLED);
    env.ok(&["definition", "register", &def.path().display().to_string()]);
    env.ok(&["start", "signalled", "--id", "s1"]);
    let v = env.json(&["wait", "s1", "--timeout", "20s"]);
    assert_eq!(v["status"], "waiting", "{v}");
    // No step waits on `more` yet: refused, nothing changed.
    let line = env.fails(&["signal", "s1", "more"]);
    assert!(line.contains("not_waiting"), "{line}");
    let line = env.fails(&["signal", "s1", "go", "--data", "{not json"]);
    assert!(line.contains("--data is not JSON"), "{line}");
    assert_eq!(
        env.ok(&[
            "signal",
            "s1",
            "go",
            "--data",
            r#"{"by": "ops"}"#,
            "--id",
            "m1"
        ]),
        "s1 waiting wait_more\n"
    );
    // The same id again: delivered once, nothing changed.
    assert_eq!(
        env.ok(&[
            "signal",
            "s1",
            "go",
            "--data",
            r#"{"by": "x"}"#,
            "--id",
            "m1"
        ]),
        "s1 waiting wait_more\n"
    );
    let v = env.json(&["status", "s1", "--json"]);
    assert_eq!(v["context"]["go"]["by"], "ops", "{v}");
    assert_eq!(env.ok(&["signal", "s1", "more"]), "s1 completed\n");
    let line = env.fails(&["signal", "nope", "go"]);
    assert!(line.contains("no instance \"nope\""), "{line}");
}

/// Issue 14: `weir message send|list` on the Redis engine. A message before the step is
/// kept (listed, filtered), its id is used once, and the order reaching the step receives
/// it; an order already waiting (as `weir status` shows) receives the next one at once.
#[test]
fn messages_are_kept_listed_and_delivered_by_key_once_per_id() {
    let env = Env::start(1);
    env.ok(&["definition", "register", &example("order_payment.yaml")]);

    // Nobody waits on A-1 yet: kept, and listed.
    let out = env.ok(&[
        "message",
        "send",
        "payment_received",
        "--key",
        "A-1",
        "--data",
        r#"{"amount": 5}"#,
        "--id",
        "m1",
        "--ttl",
        "10m",
    ]);
    assert!(out.starts_with("kept m1 until "), "{out}");
    assert!(out.contains("with key A-1"), "{out}");
    let kept = env.json(&["message", "list", "--json"]);
    assert_eq!(kept.as_array().map(Vec::len), Some(1), "{kept}");
    assert_eq!(kept[0]["id"], "m1", "{kept}");
    assert_eq!(kept[0]["key"], "A-1", "{kept}");
    assert_eq!(kept[0]["data"]["amount"], 5, "{kept}");
    let table = env.ok(&["message", "list", "--name", "payment_received"]);
    assert!(table.lines().any(|l| l.starts_with("m1 ")), "{table}");
    assert_eq!(
        env.ok(&["message", "list", "--key", "A-9"]),
        "no kept messages\n"
    );
    // The same id again: nothing done.
    let out = env.ok(&[
        "message",
        "send",
        "payment_received",
        "--key",
        "A-1",
        "--id",
        "m1",
    ]);
    assert!(out.starts_with("duplicate m1"), "{out}");

    // The order reaching the step receives the kept message at once.
    env.ok(&[
        "start",
        "order_payment",
        "--id",
        "o1",
        "--data",
        r#"{"order_id": "A-1"}"#,
    ]);
    // (`weir wait` would return at `waiting`: the instance waits for a moment, until its
    // subscription reaches the message's partition and the kept message comes back.)
    let v = wait_for(DEADLINE, "o1 to complete", || {
        let v = env.json(&["status", "o1", "--json"]);
        (v["status"] == "completed").then_some(v)
    })
    .expect("o1 completes");
    assert_eq!(v["context"]["payment"]["amount"], 5, "{v}");
    assert_eq!(
        env.ok(&["message", "list"]),
        "no kept messages\n",
        "a received message is no longer kept"
    );

    // An order waiting: status says what for; the message goes to it.
    env.ok(&[
        "start",
        "order_payment",
        "--id",
        "o2",
        "--data",
        r#"{"order_id": "A-2"}"#,
    ]);
    let v = env.json(&["wait", "o2", "--timeout", "20s"]);
    assert_eq!(v["status"], "waiting", "{v}");
    // Its subscription is relayed to the message's partition just after the commit that
    // made it wait: once no hop is left in an outbox, a message finds it waiting.
    wait_until(DEADLINE, "o2's subscription relayed", || {
        env.json(&["stats", "--json"])["outbox"] == 0
    })
    .expect("the outboxes empty");
    let status = env.ok(&["status", "o2"]);
    assert!(
        status.contains("message payment_received with key A-2 at wait_payment"),
        "{status}"
    );
    let sent = env.json(&[
        "message",
        "send",
        "payment_received",
        "--key",
        "A-2",
        "--data",
        r#"{"amount": 7}"#,
        "--json",
    ]);
    assert_eq!(sent["outcome"], "delivered", "{sent}");
    assert_eq!(sent["instance_id"], "o2", "{sent}");
    let v = wait_for(DEADLINE, "o2 to complete", || {
        let v = env.json(&["status", "o2", "--json"]);
        (v["status"] == "completed").then_some(v)
    })
    .expect("o2 completes");
    assert_eq!(v["context"]["payment"]["amount"], 7, "{v}");

    // Tenants: a message for acme is listed under acme only.
    let out = env.ok(&[
        "message",
        "send",
        "payment_received",
        "--key",
        "A-3",
        "--tenant",
        "acme",
    ]);
    assert!(out.starts_with("kept "), "{out}");
    let acme = env.json(&["message", "list", "--tenant", "acme", "--json"]);
    assert_eq!(acme.as_array().map(Vec::len), Some(1), "{acme}");
    assert_eq!(acme[0]["tenant_id"], "acme", "{acme}");
    let globex = env.json(&["message", "list", "--tenant", "globex", "--json"]);
    assert_eq!(globex, serde_json::json!([]));
}

/// Issue 16: `weir task claim` and `release`, and the inbox filters of `weir task list`.
#[test]
fn a_task_is_claimed_refused_to_others_released_by_an_admin_and_filtered() {
    let env = Env::registered(1);
    env.expense_waiting();
    // Carol is the assignee now, the manager a candidate.
    env.ok(&REASSIGN_E1);
    fn claim(user: &str) -> [&str; 6] {
        ["task", "claim", "acme:e1", "approve", "--user", user]
    }
    env.ok(&claim("manager"));
    let line = env.fails(&claim("carol"));
    assert!(
        line.contains("claimed") && line.contains("manager"),
        "{line}"
    );
    let line = env.fails(&claim("mallory"));
    assert!(line.contains("forbidden"), "{line}");
    let mine = env.json(&[
        "task", "list", "--user", "manager", "--view", "mine", "--json",
    ]);
    assert_eq!(mine.as_array().map(Vec::len), Some(1), "{mine}");
    assert_eq!(mine[0]["claimed_by"], "manager");
    let text = env.ok(&["task", "list", "--user", "carol"]);
    assert!(text.contains("taken by manager"), "{text}");
    let line = env.fails(&[
        "task",
        "complete",
        "acme:e1",
        "approve",
        "--user",
        "carol",
        "--data",
        r#"{"approved": true}"#,
    ]);
    assert!(line.contains("claimed"), "{line}");
    let release = ["task", "release", "acme:e1", "approve", "--user", "carol"];
    let line = env.fails(&release);
    assert!(line.contains("forbidden"), "{line}");
    env.ok(&[
        "task", "release", "acme:e1", "approve", "--user", "ops", "--admin",
    ]);
    let mine = env.json(&[
        "task", "list", "--user", "manager", "--view", "mine", "--json",
    ]);
    assert_eq!(mine, serde_json::json!([]));
    let by_group = env.json(&[
        "task", "list", "--user", "zoe", "--group", "finance", "--view", "groups", "--json",
    ]);
    assert_eq!(by_group, serde_json::json!([]));
    let by_workflow = env.json(&[
        "task",
        "list",
        "--workflow",
        "expense_approval",
        "--sort",
        "due",
        "--json",
    ]);
    assert_eq!(
        by_workflow.as_array().map(Vec::len),
        Some(1),
        "{by_workflow}"
    );
    let line = env.fails(&["task", "list", "--sort", "newest"]);
    assert!(line.contains("--sort"), "{line}");
    env.ok(&COMPLETE_E1);
}
