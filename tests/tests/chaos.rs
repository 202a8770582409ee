//! The chaos test: instances run through two coordinators and two workers (the `weir` and
//! `weir-worker` binaries, as separate processes) while, at random but from a logged seed,
//! the test kills them with SIGKILL, freezes them with SIGSTOP (past a coordinator's lease
//! or a worker's visibility timeout, and briefly) before SIGCONT, and crashes and restarts
//! Redis (with an append-only file synced at every write, so nothing acknowledged is lost).
//! Then it asserts:
//!
//! - **0 lost**: every instance started completes (starts refused during the chaos are
//!   made again afterwards with the same id: a start is idempotent);
//! - **0 doubled**: every step of every instance completed exactly once in its history,
//!   with one `StepExecuted` event, and each workflow completed once;
//! - **no handler run twice without a cause**: the `http` steps call a counting HTTP
//!   server on 127.0.0.1 with the attempt's idempotency key; a key called twice must be
//!   explained by a worker killed or frozen past its visibility timeout between the two
//!   calls (or up to a second before the first), as the chaos log shows;
//! - nothing stranded: every command, result and step stream is drained, no dead letter.
//!
//! Every failed assertion is listed at the end with the chaos log, so one run says all
//! that went wrong.
//!
//! Modes: `cargo nextest run -p weir-tests --test chaos` runs 30 s of chaos (CI, about a
//! minute in all); a soak sets `WEIR_CHAOS_SECS=600` (and `WEIR_CHAOS_SEED=N` replays a
//! run's schedule). The binaries come from the same target directory as the test: run
//! `cargo build --workspace --bins` first.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{all_events, completed_records, count_events, keys, pending, raw, xlen};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use weir::model::InstanceStatus;
use weir::redis::keys::{COORDINATOR_GROUP, WORKER_GROUP};
use weir::redis::WeirClient;
use weir::Engine;
use weir::{parse_definition, StartOptions};
use weir_tests::cluster::{client, init_logs};
use weir_tests::{wait_until_async, RedisServer};

const NAMESPACE: &str = "chaos";
/// The coordinators' lease.
const LEASE: Duration = Duration::from_secs(1);
/// The workers' visibility timeout.
const VISIBILITY: Duration = Duration::from_secs(1);
/// Attempts each worker runs at once.
const CONCURRENCY: &str = "2";
/// The load starts instances in bursts: the steps of a burst queue up beyond what the
/// workers run at once, so entries wait in a worker's hands or in the stream for longer
/// than the visibility timeout, as under a real peak.
const BURST: usize = 24;
/// The time between bursts.
const BURST_EVERY: Duration = Duration::from_secs(5);
/// How long the instances may take to finish once the chaos stops.
const DRAIN: Duration = Duration::from_secs(30);
/// How far before a key's first call a worker fault still explains a second call: the
/// worker may have read the entry a moment before the fault and called after it.
const EXCUSE_BEFORE: Duration = Duration::from_secs(1);

/// The machine steps that call the counting server, with how long it takes to answer.
const HTTP_STEPS: &[(&str, u64)] = &[("start", 100), ("left", 300), ("join", 50)];

/// The chaos definition of `faults_coordinator.rs` (fan-out, a timer, a join), with `http`
/// steps that call the counting server.
fn definition(port: u16) -> String {
    let http = |step: &str, delay: u64| {
        format!(
            "{{ type: machine, handler: http, config: {{ url: \"http://127.0.0.1:{port}/{step}?delay={delay}\", \
             headers: {{ X-Chaos-Key: \"{{idempotency_key}}\" }} }} }}"
        )
    };
    format!(
        r#"
name: chaos_http
version: "1.0.0"
steps:
  start: {}
  left: {}
  right: {{ type: machine, handler: set, config: {{ right: true }} }}
  pause: {{ type: timer, duration: 300ms }}
  join: {}
edges:
  - {{ from: start, to: left }}
  - {{ from: start, to: right }}
  - {{ from: right, to: pause }}
  - {{ from: left, to: join }}
  - {{ from: pause, to: join }}
"#,
        http("start", HTTP_STEPS[0].1),
        http("left", HTTP_STEPS[1].1),
        http("join", HTTP_STEPS[2].1),
    )
}

/// The steps every instance completes once.
const STEPS: &[&str] = &["start", "left", "right", "pause", "join"];

// ----------------------------------------------------------------------------------------
// A seeded random source (SplitMix64): the schedule of a run is replayed from its seed.

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `lo..hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo).max(1)
    }

    fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(self.range(lo, hi))
    }
}

// ----------------------------------------------------------------------------------------
// The counting HTTP server

/// One call of an `http` step.
#[derive(Debug, Clone)]
struct Call {
    at: Instant,
    key: String,
}

/// Serves `GET /STEP?delay=MS`: waits MS, answers `{"ok": true}`, and records the call with
/// its `X-Chaos-Key` header. One request per connection (it answers `Connection: close`).
async fn counting_server() -> anyhow::Result<(u16, Arc<Mutex<Vec<Call>>>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let calls = Arc::new(Mutex::new(Vec::new()));
    let log = calls.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let _ = answer(socket, log).await;
            });
        }
    });
    Ok((port, calls))
}

async fn answer(socket: tokio::net::TcpStream, log: Arc<Mutex<Vec<Call>>>) -> anyhow::Result<()> {
    let mut reader = BufReader::new(socket);
    let mut line = String::new();
    reader.read_line(&mut line).await?;
    let target = line
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    let mut key = None;
    let mut length = 0usize;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).await? == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            match name.trim().to_ascii_lowercase().as_str() {
                "x-chaos-key" => key = Some(value.trim().to_owned()),
                "content-length" => length = value.trim().parse().unwrap_or(0),
                _ => {}
            }
        }
    }
    let mut body = vec![0; length.min(1 << 20)];
    reader.read_exact(&mut body).await?;
    let at = Instant::now();
    if let Some(key) = key {
        log.lock().unwrap().push(Call { at, key });
    }
    let delay = target
        .split_once("delay=")
        .and_then(|(_, d)| d.parse().ok())
        .unwrap_or(0);
    tokio::time::sleep(Duration::from_millis(delay)).await;
    let body = r#"{"ok":true}"#;
    let response = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    reader.get_mut().write_all(response.as_bytes()).await?;
    reader.get_mut().shutdown().await?;
    Ok(())
}

// ----------------------------------------------------------------------------------------
// The services, as processes

/// The `weir` and `weir-worker` binaries of the test's own target directory.
fn binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    // target/<profile>/deps/chaos-<hash> -> target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| anyhow::anyhow!("no target directory above {}", exe.display()))?;
    let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    anyhow::ensure!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` first",
        path.display()
    );
    Ok(path)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Coordinator,
    Worker,
}

/// A coordinator or worker process; killed when dropped.
struct Node {
    name: String,
    role: Role,
    generation: u32,
    id: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Node {
    fn new(name: &str, role: Role, logs: &Path) -> Node {
        Node {
            name: name.to_owned(),
            role,
            generation: 0,
            id: format!("{name}-g0"),
            child: None,
            log: logs.join(format!("{name}.log")),
        }
    }

    /// Starts the process (as a new id, or under its last one).
    fn spawn(&mut self, url: &str, new_id: bool) -> anyhow::Result<()> {
        if new_id {
            self.generation += 1;
            self.id = format!("{}-g{}", self.name, self.generation);
        }
        let mut cmd = match self.role {
            Role::Coordinator => {
                let mut c = Command::new(binary("weir")?);
                c.args(["coordinator", "--id", &self.id, "--lease"])
                    .arg(format!("{}ms", LEASE.as_millis()));
                c
            }
            Role::Worker => {
                let mut c = Command::new(binary("weir-worker")?);
                c.args(["--id", &self.id, "--concurrency", CONCURRENCY])
                    .arg("--visibility-timeout")
                    .arg(format!("{}ms", VISIBILITY.as_millis()))
                    // Deliveries are not what this test counts: no entry should reach the
                    // dead-letter stream because the chaos delivered it often.
                    .args(["--max-deliveries", "1000", "--grace", "1s"]);
                c
            }
        };
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let child = cmd
            .env("WEIR_REDIS_URL", url)
            .env("WEIR_NAMESPACE", NAMESPACE)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        self.child = Some(child);
        Ok(())
    }

    fn signal(&self, signal: &str) -> anyhow::Result<()> {
        let pid = self
            .child
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("{} is not running", self.name))?
            .id();
        weir_tests::process::signal(pid, signal)
    }

    /// SIGKILL, and reaps it.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether it exited by itself (it should not).
    fn exited(&mut self) -> Option<String> {
        let child = self.child.as_mut()?;
        match child.try_wait() {
            Ok(Some(status)) => Some(format!("{} ({}) exited: {status}", self.name, self.id)),
            _ => None,
        }
    }

    fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

// ----------------------------------------------------------------------------------------
// The chaos

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    KillCoordinator,
    KillWorker,
    /// SIGSTOP past the lease.
    FreezeCoordinator,
    /// SIGSTOP past the visibility timeout.
    FreezeWorker,
    /// SIGSTOP of either, well below the lease and the visibility timeout.
    Hiccup,
    /// SIGKILL of redis-server, then a restart from its append-only file.
    RestartRedis,
}

const FAULTS: &[Fault] = &[
    Fault::KillCoordinator,
    Fault::KillWorker,
    Fault::FreezeCoordinator,
    Fault::FreezeWorker,
    Fault::Hiccup,
    Fault::RestartRedis,
];

/// One fault applied: when (from the test's start), to whom, how long.
#[derive(Debug, Clone)]
struct Applied {
    fault: Fault,
    target: String,
    from: Instant,
    to: Instant,
    /// Whether it may make a step run twice: a worker killed, or frozen past the
    /// visibility timeout (another worker then takes the entry over, as it should).
    excuses_doubles: bool,
}

struct Chaos {
    rng: Rng,
    nodes: Vec<Node>,
    redis: RedisServer,
    url: String,
    log: Vec<Applied>,
    t0: Instant,
}

impl Chaos {
    fn pick(&mut self, role: Role) -> usize {
        let of_role: Vec<usize> = (0..self.nodes.len())
            .filter(|i| self.nodes[*i].role == role)
            .collect();
        of_role[self.rng.range(0, of_role.len() as u64) as usize]
    }

    fn freeze(&mut self, i: usize, pause: Duration) -> anyhow::Result<()> {
        self.nodes[i].signal("STOP")?;
        std::thread::sleep(pause);
        self.nodes[i].signal("CONT")
    }

    fn apply(&mut self, fault: Fault) -> anyhow::Result<()> {
        let from = Instant::now();
        let (target, excuses) = match fault {
            Fault::KillCoordinator | Fault::KillWorker => {
                let role = if fault == Fault::KillCoordinator {
                    Role::Coordinator
                } else {
                    Role::Worker
                };
                let i = self.pick(role);
                self.nodes[i].kill();
                let down = self.rng.millis(0, 800);
                std::thread::sleep(down);
                let new_id = self.rng.range(0, 2) == 0;
                let url = self.url.clone();
                self.nodes[i].spawn(&url, new_id)?;
                let n = &self.nodes[i];
                (
                    format!("{} down {down:?}, back as {}", n.name, n.id),
                    role == Role::Worker,
                )
            }
            Fault::FreezeCoordinator => {
                let i = self.pick(Role::Coordinator);
                let pause = LEASE * 2 + self.rng.millis(0, 2000);
                self.freeze(i, pause)?;
                (format!("{} for {pause:?}", self.nodes[i].id), false)
            }
            Fault::FreezeWorker => {
                let i = self.pick(Role::Worker);
                let pause = VISIBILITY + self.rng.millis(500, 2500);
                self.freeze(i, pause)?;
                (format!("{} for {pause:?}", self.nodes[i].id), true)
            }
            Fault::Hiccup => {
                let role = if self.rng.range(0, 2) == 0 {
                    Role::Coordinator
                } else {
                    Role::Worker
                };
                let i = self.pick(role);
                // Below a third of the visibility timeout and of the lease: a process that
                // misses a heartbeat keeps what it holds.
                let pause = self.rng.millis(50, 300);
                self.freeze(i, pause)?;
                (format!("{} for {pause:?}", self.nodes[i].id), false)
            }
            Fault::RestartRedis => {
                self.redis.kill()?;
                let down = self.rng.millis(0, 500);
                std::thread::sleep(down);
                self.redis.restart()?;
                // A cause for a handler to run twice: while Redis is down and loading its
                // data, no worker can renew its claims, and an entry whose visibility
                // timeout passes meanwhile is reclaimed when Redis is back (at-least-once,
                // as after a worker frozen past its timeout). Transitions stay exactly once.
                (format!("down {down:?}"), true)
            }
        };
        let applied = Applied {
            fault,
            target,
            from,
            to: Instant::now(),
            excuses_doubles: excuses,
        };
        eprintln!("chaos: {}", self.describe(&applied));
        self.log.push(applied);
        Ok(())
    }

    fn describe(&self, a: &Applied) -> String {
        format!(
            "+{:.2}s..+{:.2}s {:?} {}",
            (a.from - self.t0).as_secs_f64(),
            (a.to - self.t0).as_secs_f64(),
            a.fault,
            a.target
        )
    }

    /// Applies faults until `until`: first each kind once (in a random order), then any.
    fn run(&mut self, until: Instant) -> anyhow::Result<()> {
        let mut plan: Vec<Fault> = FAULTS.to_vec();
        for i in (1..plan.len()).rev() {
            let j = self.rng.range(0, i as u64 + 1) as usize;
            plan.swap(i, j);
        }
        let mut planned = plan.into_iter();
        while Instant::now() < until {
            let gap = self.rng.millis(200, 1500);
            std::thread::sleep(gap);
            let fault = match planned.next() {
                Some(f) => f,
                None => FAULTS[self.rng.range(0, FAULTS.len() as u64) as usize],
            };
            self.apply(fault)?;
        }
        Ok(())
    }
}

// ----------------------------------------------------------------------------------------
// The load

/// Starts instances in bursts until told to stop; returns (id, whether its start was
/// acknowledged).
async fn load(
    client: WeirClient,
    prefix: String,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    let mut n = 0;
    while !*stop.borrow() {
        let mut burst = tokio::task::JoinSet::new();
        for _ in 0..BURST {
            let id = format!("{prefix}-{n}");
            n += 1;
            let client = client.clone();
            burst.spawn(async move {
                let options = StartOptions {
                    id: Some(id.clone()),
                    ..StartOptions::default()
                };
                let ok = client.start_workflow("chaos_http", options).await.is_ok();
                (id, ok)
            });
        }
        while let Some(started) = burst.join_next().await {
            if let Ok(started) = started {
                out.push(started);
            }
        }
        tokio::time::sleep(BURST_EVERY).await;
    }
    out
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kills_freezes_and_redis_restarts_lose_nothing_and_double_nothing() -> anyhow::Result<()> {
    init_logs();
    let chaos_for = Duration::from_secs(env_u64("WEIR_CHAOS_SECS").unwrap_or(30));
    let seed = env_u64("WEIR_CHAOS_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    eprintln!(
        "chaos: seed {seed} (WEIR_CHAOS_SEED={seed} replays the schedule), {chaos_for:?} of chaos"
    );
    let logs = tempfile::tempdir()?;
    let redis = RedisServer::builder().aof(true).start()?;
    let url = redis.url();
    let (port, calls) = counting_server().await?;
    let client = client(&url, NAMESPACE)
        .await?
        .with_reply_timeout(Duration::from_secs(3));
    client
        .register_definition(parse_definition(&definition(port))?)
        .await?;
    let mut nodes = vec![
        Node::new("c1", Role::Coordinator, logs.path()),
        Node::new("c2", Role::Coordinator, logs.path()),
        Node::new("w1", Role::Worker, logs.path()),
        Node::new("w2", Role::Worker, logs.path()),
    ];
    for n in &mut nodes {
        n.spawn(&url, false)?;
    }
    let t0 = Instant::now();
    let (stop_load, stop_rx) = tokio::sync::watch::channel(false);
    let loader = tokio::spawn(load(client.clone(), format!("i{seed}"), stop_rx));

    let mut chaos = Chaos {
        rng: Rng(seed),
        nodes,
        redis,
        url: url.clone(),
        log: Vec::new(),
        t0,
    };
    let until = t0 + chaos_for;
    let chaos = tokio::task::spawn_blocking(move || {
        let result = chaos.run(until);
        (chaos, result)
    });
    let (mut chaos, result) = chaos.await?;
    let _ = stop_load.send(true);
    let started = loader.await?;
    let mut failures: Vec<String> = Vec::new();
    if let Err(e) = result {
        failures.push(format!("the chaos itself failed: {e:#}"));
    }
    for n in &mut chaos.nodes {
        if let Some(exit) = n.exited() {
            failures.push(exit);
        }
    }
    let chaos_ended = Instant::now();
    eprintln!(
        "chaos: done after {:.1}s; {} instances started, {} of them acknowledged at once",
        (chaos_ended - t0).as_secs_f64(),
        started.len(),
        started.iter().filter(|(_, ok)| *ok).count()
    );

    // Starts not acknowledged during the chaos are made again: the same id starts at most
    // one instance, so each id ends with exactly one.
    let ids: Vec<String> = started.iter().map(|(id, _)| id.clone()).collect();
    for (id, ok) in &started {
        if *ok {
            continue;
        }
        let again = wait_until_async(
            Duration::from_secs(15),
            "a start is acknowledged",
            async || {
                client
                    .start_workflow(
                        "chaos_http",
                        StartOptions {
                            id: Some(id.clone()),
                            ..StartOptions::default()
                        },
                    )
                    .await
                    .is_ok()
            },
        )
        .await;
        if let Err(e) = again {
            failures.push(format!("{id}: {e}"));
        }
    }

    // 0 lost: every instance completes.
    let all_done = wait_until_async(DRAIN, "every instance completes", async || {
        let mut done = 0;
        for id in &ids {
            match client.get_instance(id).await {
                Ok(v) if v.status == InstanceStatus::Completed => done += 1,
                _ => return false,
            }
        }
        done == ids.len()
    })
    .await;
    let mut statuses: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for id in &ids {
        let status = match client.get_instance(id).await {
            Ok(v) if v.status == InstanceStatus::Completed => continue,
            Ok(v) => format!("{} at {:?}", v.status.as_str(), v.current_steps),
            Err(e) => format!("unreadable: {e}"),
        };
        statuses.entry(status).or_default().push(id.clone());
    }
    if all_done.is_err() || !statuses.is_empty() {
        let lost: usize = statuses.values().map(Vec::len).sum();
        failures.push(format!(
            "LOST: {lost} of {} instances did not complete within {DRAIN:?} after the chaos: {}",
            ids.len(),
            statuses
                .iter()
                .map(|(s, v)| format!("{} {s} (e.g. {})", v.len(), v[0]))
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }

    // 0 doubled: each step completed once in history and in events; each workflow once.
    let events = all_events(&client).await.unwrap_or_default();
    let mut doubled = Vec::new();
    for id in &ids {
        for step in STEPS {
            let n = completed_records(&client, id, step)
                .await
                .unwrap_or(usize::MAX);
            let executed = events
                .iter()
                .filter(|e| &*e.instance_id == id.as_str() && common::is_executed(e, step))
                .count();
            if n > 1 || executed > 1 {
                doubled.push(format!(
                    "{id}/{step}: {n} completed records, {executed} StepExecuted"
                ));
            }
        }
        let completed = count_events(&events, id, "WorkflowCompleted");
        if completed > 1 {
            doubled.push(format!("{id}: {completed} WorkflowCompleted"));
        }
    }
    if !doubled.is_empty() {
        failures.push(format!(
            "DOUBLED: {} transitions applied twice: {}",
            doubled.len(),
            doubled.join("; ")
        ));
    }

    // No handler run twice without a cause.
    let calls = calls.lock().unwrap().clone();
    let mut by_key: HashMap<&str, Vec<Instant>> = HashMap::new();
    for c in &calls {
        by_key.entry(&c.key).or_default().push(c.at);
    }
    let faults_of_workers: Vec<&Applied> = chaos.log.iter().filter(|a| a.excuses_doubles).collect();
    let (mut excused, mut unexplained) = (0, Vec::new());
    for (key, times) in &by_key {
        for pair in times.windows(2) {
            let (first, second) = (pair[0], pair[1]);
            let window_start = first.checked_sub(EXCUSE_BEFORE).unwrap_or(first);
            let cause = faults_of_workers
                .iter()
                .any(|a| a.from <= second && a.to >= window_start);
            if cause {
                excused += 1;
            } else {
                unexplained.push(format!(
                    "{key} at +{:.2}s and +{:.2}s",
                    (first - t0).as_secs_f64(),
                    (second - t0).as_secs_f64()
                ));
            }
        }
    }
    // Every completed http step was called (its key is in the log).
    let mut never_called = Vec::new();
    for id in &ids {
        if let Ok(history) = client.history(id).await {
            for r in history.iter().filter(|r| {
                r.status == weir::model::AttemptStatus::Completed
                    && HTTP_STEPS.iter().any(|(s, _)| *s == &*r.step)
            }) {
                let key = format!("{id}:{}:{}", r.step, r.attempt);
                if !by_key.contains_key(key.as_str()) {
                    never_called.push(key);
                }
            }
        }
    }
    if !never_called.is_empty() {
        failures.push(format!(
            "{} http steps completed without calling the server: {}",
            never_called.len(),
            never_called.join(", ")
        ));
    }
    eprintln!(
        "chaos: {} handler calls for {} keys; {} repeated calls explained by a worker killed or \
         frozen past its visibility timeout or a Redis restart, {} unexplained",
        calls.len(),
        by_key.len(),
        excused,
        unexplained.len()
    );
    if !unexplained.is_empty() {
        unexplained.sort();
        failures.push(format!(
            "HANDLER RUN TWICE WITHOUT A CAUSE: {} times (no worker killed or frozen past its \
             visibility timeout, and no Redis restart, between the calls): {}",
            unexplained.len(),
            unexplained.join("; ")
        ));
    }

    // Nothing stranded: streams drained, nothing dead-lettered.
    let keys = keys(&client);
    let mut conn = raw(&url).await?;
    let drained = wait_until_async(Duration::from_secs(10), "streams drained", async || {
        stranded(&mut conn.clone(), &keys)
            .await
            .is_ok_and(|s| s.is_empty())
    })
    .await;
    if drained.is_err() {
        let left = stranded(&mut conn, &keys).await.unwrap_or_default();
        failures.push(format!("STRANDED entries: {}", left.join("; ")));
    }

    let log: Vec<String> = chaos.log.iter().map(|a| chaos.describe(a)).collect();
    eprintln!("chaos log:\n  {}", log.join("\n  "));
    if !failures.is_empty() {
        let tails: Vec<String> = chaos
            .nodes
            .iter()
            .map(|n| format!("--- {} log (last 15 lines):\n{}", n.name, n.log_tail(15)))
            .collect();
        panic!(
            "chaos run with seed {seed} failed ({} assertions):\n- {}\n\nchaos log:\n  {}\n\n{}",
            failures.len(),
            failures.join("\n- "),
            log.join("\n  "),
            tails.join("\n")
        );
    }
    Ok(())
}

/// Streams that still hold entries or pending deliveries, and dead letters.
async fn stranded(
    conn: &mut redis::aio::MultiplexedConnection,
    keys: &weir::redis::Keys,
) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for part in keys.all_parts() {
        for (stream, group) in [
            (part.commands(), COORDINATOR_GROUP),
            (part.results(), COORDINATOR_GROUP),
            (part.queue("default"), WORKER_GROUP),
        ] {
            let (len, pend) = (
                xlen(conn, &stream).await?,
                pending(conn, &stream, group).await?,
            );
            if len > 0 || pend > 0 {
                out.push(format!("{stream}: {len} entries, {pend} pending"));
            }
        }
        let dead = xlen(conn, &part.dlq()).await?;
        if dead > 0 {
            out.push(format!("{}: {dead} dead letters", part.dlq()));
        }
    }
    Ok(out)
}
