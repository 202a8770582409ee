//! The dashboard in a real browser: a private redis-server, a coordinator, a worker and
//! `weir serve` (child processes, on free loopback ports), an approval workflow registered,
//! then `node tests/browser/run.mjs`, which drives Debian's chromium headless through
//! playwright-core: sign in, start an instance from the start form, the inbox, the task's
//! form with bad data (the errors show next to the field) and good data, and the instance
//! page until it shows `completed`; tasks that say what they are about (three told apart on
//! the inbox by their shown fields), a required choice the browser refuses to leave unset,
//! and an outcome button that completes a task; an order waiting for its payment message,
//! which the Messages page sends; each page is also checked with axe-core (WCAG 2 AA).
//! Screenshots land in `target/browser-screenshots/`.
//!
//! Needs `/usr/bin/chromium` and `tests/browser/node_modules` (`bash .ci/setup.d/browser.sh`
//! installs both; CI runs it before the tests). Without them the test fails and says so.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use weir_tests::{wait_for, wait_until, RedisServer};

/// Longest a service may take to come up.
const READY: Duration = Duration::from_secs(30);
/// Longest the browser script may run (it stops itself after 120 s; nextest kills a test
/// at 180 s).
const BROWSER: Duration = Duration::from_secs(150);

const TOKEN: &str = "browser-test-token-ann";
const USER: &str = "ann@example.com";
/// A user of another tenant, who must see none of the instances.
const TENANT_TOKEN: &str = "browser-test-token-bob";
/// A candidate of the approval task, in a second browser context: sees Ann's claim.
const PEER_TOKEN: &str = "browser-test-token-pat";
const PEER: &str = "pat@example.com";
const WORKFLOW: &str = "expense_approval_ui";

/// The approval workflow: the human step's form has a required number with a minimum (the
/// browser checks it) and a `multipleOf` (left to the server), a required enum, a nested
/// object and an array; then a gateway decides.
fn workflow_yaml() -> String {
    format!(
        r#"
name: {WORKFLOW}
version: "1.0.0"
description: An expense is approved in the dashboard; approved expenses are paid.
steps:
  submit: {{ type: machine, handler: set, config: {{ submitted: true }} }}
  approve:
    type: human
    title: Approve the expense
    description: Check the amount against the receipt, then approve or reject.
    assignee: {USER}
    candidates: [{PEER}]
    form:
      type: object
      required: [amount, category]
      properties:
        amount: {{ type: number, title: Amount, description: "In euros, in steps of 5.", minimum: 1, multipleOf: 5 }}
        category: {{ title: Category, enum: [travel, meals, equipment] }}
        approved: {{ type: boolean, title: Approved }}
        receipt:
          type: object
          title: Receipt
          properties:
            number: {{ type: string, title: Receipt number, minLength: 3 }}
        tags: {{ type: array, title: Tags, items: {{ type: string }}, maxItems: 3 }}
        comment: {{ type: string, title: Comment, maxLength: 200 }}
  decide: {{ type: gateway }}
  pay: {{ type: machine, handler: set, config: {{ paid: true }} }}
  reject: {{ type: machine, handler: log, config: {{ message: "expense rejected", level: info }} }}
edges:
  - {{ from: submit, to: approve }}
  - {{ from: approve, to: decide }}
  - {{ from: decide, to: pay, condition: "context.approved == true" }}
  - {{ from: decide, to: reject, default: true }}
"#
    )
}

/// A task that says what it is about: a templated title, three shown fields, and a
/// required boolean drawn as two choices with none selected.
const CHOICE_WORKFLOW: &str = "expense_choice_ui";
/// The same approval decided by outcome buttons, with no `show` (the page shows the whole
/// context, collapsed).
const OUTCOME_WORKFLOW: &str = "expense_outcome_ui";

fn task_view_yamls() -> [String; 2] {
    let form = "form: { type: object, required: [approved], properties: {                 approved: { type: boolean, title: Approved },                 amount: { type: number, title: Amount },                 comment: { type: string, title: Comment, maxLength: 200 } } }";
    let choice = format!(
        r#"
name: {CHOICE_WORKFLOW}
version: "1.0.0"
steps:
  approve:
    type: human
    title: "Approve {{employee}}'s expense of {{amount}}"
    assignee: {USER}
    show: [employee, amount, receipt.number]
    {form}
"#
    );
    let outcome = format!(
        r#"
name: {OUTCOME_WORKFLOW}
version: "1.0.0"
steps:
  approve:
    type: human
    title: "Decide on {{employee}}'s expense"
    assignee: {USER}
    {form}
    outcomes: {{ approve: {{ approved: true }}, reject: {{ approved: false }} }}
"#
    );
    [choice, outcome]
}

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the coordinator crate is inside the workspace")
        .to_path_buf()
}

fn weir_path() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_weir"))
}

/// The `weir-worker` binary, next to `weir` (`cargo build -p weir-worker` builds it).
fn worker_path() -> PathBuf {
    let path = weir_path().with_file_name(format!("weir-worker{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is missing: run `cargo build -p weir-worker` (or `cargo build --workspace --bins`)",
        path.display()
    );
    path
}

/// A child process killed when dropped, after a failed assertion too.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn write_temp(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("a temp file is written");
    path.display().to_string()
}

/// `GET path` over a plain socket; the status code, or None when nothing answers.
fn http_status(addr: SocketAddr, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// Missing tools fail the test with what to run, rather than a stack of playwright errors.
fn check_tools() -> PathBuf {
    let script = workspace().join("tests/browser/run.mjs");
    let ready = Path::new("/usr/bin/chromium").exists()
        && workspace()
            .join("tests/browser/node_modules/playwright-core")
            .is_dir()
        && Command::new("node")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
    assert!(
        ready,
        "the browser test needs node, /usr/bin/chromium and tests/browser/node_modules: \
         run `bash .ci/setup.d/browser.sh` (CI does)"
    );
    script
}

#[test]
fn the_dashboard_in_a_real_browser() {
    let script = check_tools();
    let server = RedisServer::start().expect("redis-server starts");
    let dir = tempfile::tempdir().expect("a temp dir");
    let vars = [
        ("WEIR_REDIS_URL", server.url()),
        ("WEIR_NAMESPACE", "browser".to_owned()),
        ("RUST_LOG", "warn".to_owned()),
    ];
    let weir = || {
        let mut cmd = Command::new(weir_path());
        // a metrics address from the environment would make every process bind it
        cmd.envs(vars.clone())
            .env_remove("WEIR_METRICS_ADDR")
            .stdin(Stdio::null());
        cmd
    };

    let definition = write_temp(dir.path(), "approval.yaml", &workflow_yaml());
    let [choice, outcome] = task_view_yamls();
    let choice = write_temp(dir.path(), "choice.yaml", &choice);
    let outcome = write_temp(dir.path(), "outcome.yaml", &outcome);
    let registered = weir()
        .args(["definition", "register", &definition, &choice, &outcome])
        .arg(workspace().join("deploy/examples/order_payment.yaml"))
        .output()
        .expect("weir definition register runs");
    assert!(
        registered.status.success(),
        "register failed: {}",
        String::from_utf8_lossy(&registered.stderr)
    );
    let auth = write_temp(
        dir.path(),
        "auth.yaml",
        &format!(
            "tokens:\n  - {{ token: \"{TOKEN}\", user: \"{USER}\", admin: true }}\n  \
             - {{ token: \"{TENANT_TOKEN}\", user: \"bob@example.com\", tenant: \"acme\" }}\n  \
             - {{ token: \"{PEER_TOKEN}\", user: \"{PEER}\" }}\n"
        ),
    );

    let _coordinator = Proc(
        weir()
            .args(["coordinator", "--id", "c1", "--lease", "2s"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("weir coordinator starts"),
    );
    let _worker = Proc(
        Command::new(worker_path())
            .args(["--id", "w1", "--concurrency", "2", "--grace", "1s"])
            .envs(vars.clone())
            .env_remove("WEIR_METRICS_ADDR")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("weir-worker starts"),
    );
    let mut serve = Proc(
        weir()
            .args(["serve", "--listen", "127.0.0.1:0", "--auth-file", &auth])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("weir serve starts"),
    );

    // `weir serve` prints `... listening on http://ADDR` once bound (port 0: a free one).
    let stdout = serve.0.stdout.take().expect("serve's stdout is piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let addr: SocketAddr = wait_for(READY, "weir serve to print its address", || {
        let line = rx.try_recv().ok()?;
        let url = line.split("http://").nth(1)?;
        url.trim().trim_end_matches('/').parse().ok()
    })
    .expect("weir serve listens");
    wait_until(READY, "GET /api/v1/health to answer 200", || {
        http_status(addr, "/api/v1/health") == Some(200)
    })
    .expect("the API is healthy");
    assert_eq!(http_status(addr, "/"), Some(200), "the dashboard is served");

    let shots = workspace().join("target/browser-screenshots");
    // this run's screenshots only (their numbers shift when steps are added)
    let _ = std::fs::remove_dir_all(&shots);
    let started = Instant::now();
    let mut node = Command::new("node")
        .arg(&script)
        .current_dir(workspace())
        .env("WEIR_URL", format!("http://{addr}/"))
        .env("WEIR_TOKEN", TOKEN)
        .env("WEIR_TENANT_TOKEN", TENANT_TOKEN)
        .env("WEIR_PEER_TOKEN", PEER_TOKEN)
        .env("WEIR_USER", USER)
        .env("WEIR_WORKFLOW", WORKFLOW)
        .env("WEIR_CHOICE_WORKFLOW", CHOICE_WORKFLOW)
        .env("WEIR_OUTCOME_WORKFLOW", OUTCOME_WORKFLOW)
        .env("WEIR_ORDER_WORKFLOW", "order_payment")
        .env("WEIR_SCREENSHOTS", &shots)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node runs tests/browser/run.mjs");
    let collect = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_string(&mut text);
            }
            text
        })
    };
    let out = collect(
        node.stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = collect(
        node.stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let status = wait_for(BROWSER, "the browser script to finish", || {
        node.try_wait().ok().flatten()
    });
    if status.is_err() {
        let _ = node.kill();
        let _ = node.wait();
    }
    let (out, err) = (
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default(),
    );
    println!("{out}{err}");
    println!(
        "browser script: {:.1}s; screenshots in {}",
        started.elapsed().as_secs_f64(),
        shots.display()
    );
    let status = status.expect("the browser script finishes in time");
    assert!(
        status.success(),
        "the browser script failed ({status}):\n{out}\n{err}"
    );
    assert!(
        shots.join("01-sign-in.png").exists(),
        "screenshots are saved"
    );
}
