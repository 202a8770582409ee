//! The `weir` binary as users run it: exit codes, what it prints, and its one-line errors.
//! None of these commands needs Redis.

use std::path::PathBuf;
use std::process::Output;

use assert_cmd::Command;

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples")
}

fn example(name: &str) -> String {
    examples().join(name).display().to_string()
}

/// `weir` with a clean environment: no RUST_LOG, no WEIR_* variables, no stdin.
fn weir() -> Command {
    let mut cmd = Command::cargo_bin("weir").expect("the weir binary is built");
    cmd.env_remove("RUST_LOG")
        .env_remove("WEIR_REDIS_URL")
        .env_remove("WEIR_NAMESPACE")
        .write_stdin("");
    cmd
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs it and returns (exit code, stdout, stderr).
fn run(cmd: &mut Command) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("weir runs");
    (status.code().unwrap_or(-1), text(&stdout), text(&stderr))
}

/// The stderr of a failed command: exactly one line, starting with `error: `.
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

fn write_temp(text: &str) -> tempfile::NamedTempFile {
    let f = tempfile::Builder::new()
        .suffix(".yaml")
        .tempfile()
        .expect("a temp file");
    std::fs::write(f.path(), text).expect("written");
    f
}

#[test]
fn run_expense_approval_with_the_task_given() {
    let (code, out, err) = run(weir().args([
        "run",
        &example("expense_approval.yaml"),
        "--data",
        r#"{"employee": "ann", "amount": 120}"#,
        "--task",
        r#"approve={"approved": true}"#,
    ]));
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("approve: completed by manager"), "{out}");
    assert!(out.contains("pay: done"), "{out}");
    assert!(out.contains("notify_rejection: skipped"), "{out}");
    assert!(out.contains("status:  completed"), "{out}");
    assert!(out.contains(r#""paid": true"#), "{out}");
}

/// A task open to a candidate group only: `weir run` plays a member of it (a user outside
/// the group would be refused for ever).
#[test]
fn run_completes_a_task_open_to_a_candidate_group() {
    let wf = write_temp(
        r#"
name: group_review
version: "1.0.0"
steps:
  review:
    type: human
    title: "Review {doc}"
    candidate_groups: [finance]
"#,
    );
    let (code, out, err) = run(weir().args([
        "run",
        &wf.path().display().to_string(),
        "--data",
        r#"{"doc": "Q4"}"#,
        "--task",
        r#"review={"ok": true}"#,
    ]));
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("status:  completed"), "{out}\n{err}");
}

#[test]
fn run_expense_rejected_takes_the_default_edge() {
    let (code, out, err) = run(weir().args([
        "run",
        &example("expense_approval.yaml"),
        "--data",
        r#"{"employee": "bob"}"#,
        "--task",
        r#"approve={"approved": false}"#,
    ]));
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("pay: skipped"), "{out}");
    assert!(out.contains("notify_rejection: done"), "{out}");
    // The `log` handler's line goes to stderr, with the context value filled in.
    assert!(err.contains("expense of bob rejected"), "{err}");
}

#[test]
fn run_every_machine_only_example() {
    for (file, data, shows) in [
        (
            "order_fanout.yaml",
            r#"{"order": "A-17"}"#,
            r#""shipped": true"#,
        ),
        (
            "ticket_routing.yaml",
            r#"{"severity": 2}"#,
            r#""queue": "support""#,
        ),
        (
            "ticket_routing.yaml",
            r#"{"severity": 0}"#,
            r#""queue": "backlog""#,
        ),
        ("reminder_timer.yaml", "{}", r#""reminder": "sent""#),
        ("flaky_payment.yaml", "{}", r#""charged": true"#),
    ] {
        let (code, out, err) = run(weir().args(["run", &example(file), "--data", data]));
        assert_eq!(code, 0, "{file}: {out}\n{err}");
        assert!(out.contains("status:  completed"), "{file}: {out}");
        assert!(out.contains(shows), "{file}: {out}");
    }
}

#[test]
fn run_shows_retries_and_the_timer() {
    let (_, out, _) = run(weir().args(["run", &example("flaky_payment.yaml")]));
    assert!(out.contains("charge: attempt 1 failed"), "{out}");
    assert!(out.contains("charge: attempt 3 started"), "{out}");
    assert!(out.contains("2 steps, 4 attempts"), "{out}");
    let (_, out, _) = run(weir().args(["run", &example("reminder_timer.yaml")]));
    assert!(out.contains("wait: timer set, fires in 1s"), "{out}");
    assert!(out.contains("wait: timer fired"), "{out}");
}

#[test]
fn a_failed_workflow_exits_3_with_one_line() {
    let f = write_temp(
        r#"
name: always_fails
version: "1.0.0"
steps:
  charge: { type: machine, handler: fail, config: { times: -1, message: "card declined" } }
"#,
    );
    let (code, out, err) = run(weir().arg("run").arg(f.path()));
    assert_eq!(code, 3, "{out}\n{err}");
    assert!(out.contains("status:  failed"), "{out}");
    let line = one_error_line(&err);
    assert!(
        line.contains("always_fails@1.0.0 failed at step \"charge\""),
        "{line}"
    );
    assert!(line.contains("card declined"), "{line}");
}

#[test]
fn a_human_step_without_data_and_without_a_terminal_is_a_clear_error() {
    let (code, _, err) = run(weir().args(["run", &example("expense_approval.yaml")]));
    assert_eq!(code, 1);
    let line = one_error_line(&err);
    assert!(line.contains("human step \"approve\""), "{line}");
    assert!(line.contains("--task approve="), "{line}");
}

#[test]
fn task_data_that_fails_the_form_is_refused() {
    let (code, _, err) = run(weir().args([
        "run",
        &example("expense_approval.yaml"),
        "--task",
        r#"approve={"approved": "yes"}"#,
    ]));
    assert_eq!(code, 1);
    let line = one_error_line(&err);
    assert!(line.contains("refused"), "{line}");
    assert!(line.contains("approved"), "{line}");
}

#[test]
fn bad_flags_are_one_line_errors() {
    for (args, says) in [
        (vec!["--data", "[1]"], "--data must be a JSON object"),
        (vec!["--data", "{"], "--data is not JSON"),
        (vec!["--task", "approve"], "STEP=JSON"),
        (vec!["--task", "pay={}"], "not a human step"),
        (vec!["--task", "nope={}"], "has no step \"nope\""),
    ] {
        let (code, _, err) = run(weir()
            .args(["run", &example("expense_approval.yaml")])
            .args(&args));
        assert_eq!(code, 1, "{args:?}: {err}");
        assert!(one_error_line(&err).contains(says), "{args:?}: {err}");
    }
}

/// A bad start time or delay is refused while the flags are read, before any connection
/// (the Redis URL here is unreachable), saying once what to write.
#[test]
fn a_bad_start_time_is_refused_before_connecting() {
    for (flag, value, says) in [
        ("--at", "tomorrow", "\"tomorrow\" is not an RFC 3339 time"),
        ("--delay", "soon", "invalid duration \"soon\""),
    ] {
        let (code, _, err) = run(weir().args([
            "--redis",
            "redis://127.0.0.1:1",
            "start",
            "approval",
            flag,
            value,
        ]));
        assert_eq!(code, 2, "{flag}: {err}");
        assert!(err.contains(says), "{flag}: {err}");
        assert_eq!(err.matches("write it like").count(), 1, "{flag}: {err}");
        assert!(!err.contains("unreachable"), "{flag}: {err}");
    }
}

/// `weir message send|list` check every flag before connecting (the Redis URL here is
/// unreachable): one line saying what to fix, and nothing sent.
#[test]
fn a_bad_message_is_refused_before_connecting() {
    let send = |extra: &[&str]| {
        let mut args = vec![
            "--redis",
            "redis://127.0.0.1:1",
            "message",
            "send",
            "payment_received",
            "--key",
            "A-17",
        ];
        args.extend_from_slice(extra);
        args.into_iter().map(str::to_string).collect::<Vec<_>>()
    };
    let with_name = |name: &str| {
        vec![
            "--redis".to_string(),
            "redis://127.0.0.1:1".into(),
            "message".into(),
            "send".into(),
            name.into(),
            "--key".into(),
            "A-17".into(),
        ]
    };
    for (args, says) in [
        (send(&["--data", "{"]), "--data is not JSON"),
        (send(&["--ttl", "0s"]), "ttl must be longer than zero"),
        (send(&["--id", ""]), "invalid message id"),
        (send(&["--tenant", "a:b"]), "--tenant"),
        (with_name("has space"), "invalid message name"),
        (
            vec![
                "--redis".into(),
                "redis://127.0.0.1:1".into(),
                "message".into(),
                "list".into(),
                "--name".into(),
                "no/slash".into(),
            ],
            "--name: invalid message name",
        ),
    ] {
        let (code, _, err) = run(weir().args(&args));
        assert_eq!(code, 1, "{args:?}: {err}");
        let line = one_error_line(&err);
        assert!(line.contains(says), "{args:?}: {line}");
        assert!(!line.contains("unreachable"), "{args:?}: {line}");
    }
    // Usage errors are clap's (exit 2): a duration it cannot read, a missing key.
    let (code, _, err) = run(weir().args(send(&["--ttl", "soon"])));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("invalid duration \"soon\""), "{err}");
    assert!(!err.contains("unreachable"), "{err}");
    let (code, _, err) = run(weir().args(["message", "send", "payment_received"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--key"), "{err}");
}

#[test]
fn a_bad_file_is_a_one_line_error_naming_the_problem() {
    let f = write_temp(
        "name: broken\nversion: \"1.0.0\"\nsteps:\n  a: { type: machine, handler: noop }\nedges:\n  - { from: a, to: b }\n",
    );
    let name = f.path().display().to_string();
    for cmd in ["run", "validate"] {
        let mut c = weir();
        if cmd == "validate" {
            c.args(["definition", "validate"]);
        } else {
            c.arg("run");
        }
        let (code, out, err) = run(c.arg(&name));
        assert_eq!(code, 1, "{cmd}: {out} {err}");
        let line = one_error_line(&err);
        assert!(line.contains(&name), "{line}");
        assert!(
            line.contains("edge 0 (a -> b)") && line.contains("unknown step \"b\""),
            "{line}"
        );
    }

    let f = write_temp("name: x\nversion: \"1.0.0\"\nsteps:\n  a: {type: machin}\n");
    let (code, _, err) = run(weir().arg("run").arg(f.path()));
    assert_eq!(code, 1);
    let line = one_error_line(&err);
    assert!(
        line.contains("line 4 column 7") && line.contains("machin"),
        "{line}"
    );

    let (code, _, err) = run(weir().args(["run", "no/such/file.yaml"]));
    assert_eq!(code, 1);
    assert!(
        one_error_line(&err).contains("no/such/file.yaml: cannot read the file"),
        "{err}"
    );
}

#[test]
fn an_unknown_handler_is_refused_before_running() {
    let f = write_temp(
        "name: x\nversion: \"1.0.0\"\nsteps:\n  pay: { type: machine, handler: stripe }\n",
    );
    let (code, out, err) = run(weir().arg("run").arg(f.path()));
    assert_eq!(code, 1);
    assert!(out.is_empty(), "{out}");
    assert!(one_error_line(&err).contains("handler \"stripe\""), "{err}");
}

#[test]
fn usage_errors_exit_2() {
    let (code, _, err) = run(weir().args(["run"]));
    assert_eq!(code, 2, "{err}");
    let (code, _, _) = run(weir().args(["definition", "show", "x.yaml", "--format", "png"]));
    assert_eq!(code, 2);
    let (code, _, _) = run(weir().args(["frobnicate"]));
    assert_eq!(code, 2);
}

#[test]
fn demo_runs_every_example_and_prints_the_summary() {
    // From another directory: the examples are built into the binary.
    let dir = tempfile::tempdir().expect("a temp dir");
    let started = std::time::Instant::now();
    let (code, out, err) = run(weir().arg("demo").current_dir(dir.path()));
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    assert!(out.contains("Summary"), "{out}");
    for name in [
        "expense_approval",
        "order_fanout",
        "ticket_routing",
        "reminder_timer",
        "flaky_payment",
        "order_payment",
    ] {
        let row = out
            .lines()
            .find(|l| l.starts_with(name) && l.contains("completed"))
            .unwrap_or_else(|| panic!("no summary row for {name}:\n{out}"));
        assert!(row.ends_with("ok"), "{row}");
    }
    assert!(out.contains("approve: completing as manager"), "{out}");
    assert!(
        out.contains("wait_payment: sending message payment_received with key A-17"),
        "{out}"
    );
    assert!(out.contains("All 6 workflows ended as expected."), "{out}");
}

#[test]
fn validate_prints_name_at_version_for_each_file() {
    let files: Vec<String> = [
        "expense_approval.yaml",
        "order_fanout.yaml",
        "ticket_routing.yaml",
        "reminder_timer.yaml",
        "flaky_payment.yaml",
    ]
    .iter()
    .map(|f| example(f))
    .collect();
    let (code, out, err) = run(weir().args(["definition", "validate"]).args(&files));
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        vec![
            "expense_approval@1.0.0",
            "order_fanout@1.0.0",
            "ticket_routing@1.0.0",
            "reminder_timer@1.0.0",
            "flaky_payment@1.0.0",
        ]
    );

    // One bad file among good ones: the good ones are listed, the bad one named, exit 1.
    let bad = write_temp("name: x\nversion: one\nsteps:\n  a: { type: machine, handler: noop }\n");
    let (code, out, err) = run(weir()
        .args(["definition", "validate", &files[0]])
        .arg(bad.path()));
    assert_eq!(code, 1);
    assert_eq!(out.trim(), "expense_approval@1.0.0");
    assert!(err.contains(&bad.path().display().to_string()), "{err}");
    assert!(err.contains("not a semantic version"), "{err}");
}

#[test]
fn show_prints_yaml_json_and_mermaid() {
    let file = example("expense_approval.yaml");
    let (code, out, err) = run(weir().args(["definition", "show", &file, "--format", "mermaid"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("flowchart"), "{out}");
    assert!(out.contains("approve<br/><i>human: manager</i>"), "{out}");
    assert!(out.contains("|\"default\"|"), "{out}");

    let (code, out, _) = run(weir().args(["definition", "show", &file, "--format", "json"]));
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v["name"], "expense_approval");
    assert_eq!(v["steps"]["approve"]["type"], "human");

    // YAML by default, and what it prints validates again.
    let (code, out, _) = run(weir().args(["definition", "show", &file]));
    assert_eq!(code, 0);
    assert!(out.contains("name: expense_approval"), "{out}");
    let again = write_temp(&out);
    let (code, out, err) = run(weir().args(["definition", "validate"]).arg(again.path()));
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "expense_approval@1.0.0");
}

#[test]
fn bench_redis_cluster_refuses_a_redis_url_and_says_what_to_do() {
    // It starts its own server and cluster; an existing Redis is not supported yet, and
    // nothing is sent to it (the port here is closed).
    let (code, out, err) = run(weir().args([
        "bench",
        "redis",
        "--cluster",
        "--smoke",
        "--redis",
        "redis://127.0.0.1:1",
    ]));
    assert_eq!(code, 1, "{out}\n{err}");
    let line = one_error_line(&err);
    assert!(line.contains("does not take --redis"), "{line}");
    assert!(line.contains("leave --redis out"), "{line}");
}
