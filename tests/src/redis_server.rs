//! A private `redis-server` process for one test: its own free loopback port, its own
//! temporary data directory, killed and restarted at will.
//!
//! Design notes:
//! - The port comes from binding port 0 on 127.0.0.1 and closing the socket. That is racy
//!   (another process may take the port before redis-server binds it), so a start whose
//!   server fails to bind is retried on a new port. The server that answers is checked to
//!   be ours (`INFO` `process_id` equals the child's pid), so a test never talks to a
//!   stranger that happened to grab the port.
//! - The server runs in the foreground (`--daemonize no`) as a child of the test process,
//!   in the test's process group: `cargo nextest` kills the whole group of a test that
//!   times out, and [`Drop`] kills it otherwise.
//! - `DEBUG` is enabled for local connections (`--enable-debug-command local`), so fault
//!   tests can use `DEBUG SLEEP` to make the server hang for a while.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use tempfile::TempDir;

/// How long [`RedisServerBuilder::start`], [`RedisServer::restart`] and
/// [`RedisServer::stop`] wait for the server to answer (or to exit) before giving up.
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// Environment variable that names the `redis-server` binary to run (default:
/// `redis-server`, looked up on `PATH`).
pub const REDIS_SERVER_BIN_ENV: &str = "WEIR_REDIS_SERVER";

/// The message given when the `redis-server` binary cannot be found.
pub const MISSING_REDIS_SERVER: &str = "redis-server was not found on PATH (or at $WEIR_REDIS_SERVER); \
     the tests start their own servers and need the binary: install it: apt-get install redis-server \
     (or run `bash .ci/test`, which installs it)";

/// How many fresh ports a start tries when the server fails to bind its port.
const BIND_ATTEMPTS: usize = 8;
/// How often readiness and exit are polled.
const POLL: Duration = Duration::from_millis(10);
/// Timeout of one readiness probe (connect, PING, INFO).
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
/// Read/write timeout of the connections handed out by [`RedisServer::connection`].
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);
/// How many lines of the logs an error message quotes.
const LOG_TAIL_LINES: usize = 20;

const LOG_FILE: &str = "redis.log";
const STDERR_FILE: &str = "stderr.log";

/// The `redis-server` binary the helpers run: `$WEIR_REDIS_SERVER` if set, else
/// `redis-server` (looked up on `PATH`).
pub fn redis_server_binary() -> OsString {
    std::env::var_os(REDIS_SERVER_BIN_ENV).unwrap_or_else(|| OsString::from("redis-server"))
}

/// Whether a runnable `redis-server` binary is there (`redis-server --version` succeeds).
///
/// Tests should not skip silently when it is missing: [`RedisServer::start`] then fails
/// with [`MISSING_REDIS_SERVER`], which says how to install it.
pub fn redis_server_available() -> bool {
    Command::new(redis_server_binary())
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|status| status.success())
        .unwrap_or(false)
}

/// A TCP port on 127.0.0.1 that was free a moment ago: binds port 0, reads the port the
/// kernel chose, and closes the socket.
///
/// Racy by nature (someone else may take the port before you bind it); [`RedisServer`]
/// retries on a new port when that happens, and so should other users.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .context("binding 127.0.0.1:0 to find a free port")?;
    Ok(listener
        .local_addr()
        .context("reading the port of 127.0.0.1:0")?
        .port())
}

/// Settings of a [`RedisServer`] to start; made by [`RedisServer::builder`].
///
/// Defaults: no persistence at all (no RDB snapshots, no AOF), no password, no ACL users.
#[derive(Debug, Clone, Default)]
pub struct RedisServerBuilder {
    aof: bool,
    password: Option<String>,
    acl_users: Vec<(String, String)>,
    config: Vec<(String, String)>,
}

impl RedisServerBuilder {
    /// Turns the append-only file on (`--appendonly yes --appendfsync always`) or off.
    ///
    /// With AOF on, every acknowledged write is on disk before the reply, so data survives
    /// [`RedisServer::kill`] + [`RedisServer::restart`]. With it off, a restart comes back
    /// empty.
    pub fn aof(mut self, on: bool) -> Self {
        self.aof = on;
        self
    }

    /// Sets a password on the `default` user (`--requirepass`): unauthenticated commands
    /// are refused with `NOAUTH`.
    pub fn password(mut self, password: impl Into<String>) -> Self {
        self.password = Some(password.into());
        self
    }

    /// Adds an ACL user with full rights (`user NAME on >PASSWORD ~* &* +@all`).
    ///
    /// May be called several times. The first ACL user is the one [`RedisServer::url`]
    /// logs in as. The `default` user is left as it is: without [`Self::password`] it
    /// still needs no password.
    pub fn acl_user(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.acl_users.push((user.into(), password.into()));
        self
    }

    /// Passes any other configuration directive, as `--NAME VALUE` (for example
    /// `.config("maxmemory", "10mb")`). Given after the built-in ones, so it overrides them.
    pub fn config(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.config.push((name.into(), value.into()));
        self
    }

    /// Starts the server on a free port in a new temporary directory and waits (up to
    /// [`READY_TIMEOUT`]) until it answers `PING` and is not loading.
    ///
    /// If the server fails to bind its port (someone took it first), it is tried again on
    /// a new port, up to 8 times. Errors say why, quoting the server's log.
    pub fn start(self) -> anyhow::Result<RedisServer> {
        let mut last_bind_failure = String::new();
        for _ in 0..BIND_ATTEMPTS {
            let port = free_port()?;
            let dir = tempfile::Builder::new()
                .prefix("weir-redis-")
                .tempdir()
                .context("creating a temporary directory for redis-server")?;
            let mut server = RedisServer {
                settings: self.clone(),
                port,
                dir,
                child: None,
            };
            match server.launch() {
                Ok(()) => return Ok(server),
                // `server` is dropped here: its directory goes, and a new port is tried.
                Err(LaunchError::BindFailed(why)) => last_bind_failure = why,
                Err(LaunchError::Other(err)) => return Err(err),
            }
        }
        bail!("redis-server could not bind a free port in {BIND_ATTEMPTS} attempts; last failure:\n{last_bind_failure}")
    }
}

/// A `redis-server` child process that belongs to one test.
///
/// It listens on 127.0.0.1 only, on its own port, with its own temporary directory
/// (data files and `redis.log`). Dropping it kills the process (SIGKILL), reaps it and
/// removes the directory.
#[derive(Debug)]
pub struct RedisServer {
    settings: RedisServerBuilder,
    port: u16,
    dir: TempDir,
    child: Option<Child>,
}

/// Why a launch failed.
enum LaunchError {
    /// The server exited because its port was taken; the text quotes the log.
    BindFailed(String),
    /// Anything else.
    Other(anyhow::Error),
}

impl From<anyhow::Error> for LaunchError {
    fn from(err: anyhow::Error) -> Self {
        LaunchError::Other(err)
    }
}

/// Why a server did not become ready.
enum NotReady {
    Exited(ExitStatus),
    TimedOut(String),
}

impl RedisServer {
    /// Starts a server with the default settings (no persistence, no password); same as
    /// `RedisServer::builder().start()`.
    pub fn start() -> anyhow::Result<RedisServer> {
        Self::builder().start()
    }

    /// Settings for a server to start: `RedisServer::builder().aof(true).start()`.
    pub fn builder() -> RedisServerBuilder {
        RedisServerBuilder::default()
    }

    /// The port the server listens on, on 127.0.0.1. It stays the same across restarts.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL to connect with, including the credentials: `redis://127.0.0.1:PORT/`,
    /// `redis://:PASSWORD@127.0.0.1:PORT/` with a password, or
    /// `redis://USER:PASSWORD@127.0.0.1:PORT/` as the first ACL user if there is one.
    /// User and password are percent-encoded.
    pub fn url(&self) -> String {
        let auth = match (self.settings.acl_users.first(), &self.settings.password) {
            (Some((user, password)), _) => {
                format!("{}:{}@", percent_encode(user), percent_encode(password))
            }
            (None, Some(password)) => format!(":{}@", percent_encode(password)),
            (None, None) => String::new(),
        };
        format!("redis://{auth}127.0.0.1:{}/", self.port)
    }

    /// The URL without any credentials (`redis://127.0.0.1:PORT/`), to check that the
    /// server refuses unauthenticated clients.
    pub fn url_without_auth(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// A `redis::Client` for [`Self::url`] (connects lazily; works sync and async).
    pub fn client(&self) -> anyhow::Result<redis::Client> {
        redis::Client::open(self.url())
            .with_context(|| format!("opening a client for {}", self.url()))
    }

    /// A new synchronous connection to the server, authenticated as [`Self::url`] says,
    /// with 10 s read and write timeouts so that a test never hangs on it.
    pub fn connection(&self) -> anyhow::Result<redis::Connection> {
        let con = self
            .client()?
            .get_connection_with_timeout(CONNECTION_TIMEOUT)
            .with_context(|| format!("connecting to redis-server on port {}", self.port))?;
        con.set_read_timeout(Some(CONNECTION_TIMEOUT))?;
        con.set_write_timeout(Some(CONNECTION_TIMEOUT))?;
        Ok(con)
    }

    /// The server's temporary directory (data files, `redis.log`); removed on drop.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's log file (`redis.log` in [`Self::dir`]); it accumulates across restarts.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join(LOG_FILE)
    }

    /// The last `lines` lines of the server's log (and of its stderr, where configuration
    /// errors go), for error messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let mut out = tail_lines(&read_from(&self.log_path(), 0), lines);
        let stderr = tail_lines(&read_from(&self.dir.path().join(STDERR_FILE), 0), lines);
        if !stderr.trim().is_empty() {
            out.push_str("\n--- stderr ---\n");
            out.push_str(&stderr);
        }
        out
    }

    /// The process id of the running server, or `None` after [`Self::kill`] or
    /// [`Self::stop`] (or if it has exited).
    pub fn pid(&mut self) -> Option<u32> {
        if self.is_running() {
            self.child.as_ref().map(Child::id)
        } else {
            None
        }
    }

    /// Whether the server process is still alive (it may have exited by itself, been
    /// killed, or been stopped).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Kills the server with SIGKILL, as a crash would, and waits until it has exited.
    /// Nothing is saved beyond what AOF already has. Does nothing if it is not running.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            if child.try_wait().context("checking redis-server")?.is_none() {
                child.kill().context("sending SIGKILL to redis-server")?;
            }
            child.wait().context("waiting for redis-server to exit")?;
        }
        Ok(())
    }

    /// Stops the server cleanly (`SHUTDOWN NOSAVE`) and waits until it has exited; if it
    /// cannot be reached or has not exited within [`READY_TIMEOUT`], kills it. Does
    /// nothing if it is not running.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        if !self.is_running() {
            return self.kill(); // reaps an exited child, if any
        }
        if let Ok(client) = redis::Client::open(self.url()) {
            if let Ok(mut con) = client.get_connection_with_timeout(PROBE_TIMEOUT) {
                let _ = con.set_read_timeout(Some(READY_TIMEOUT));
                // The server closes the connection instead of replying: an error is normal.
                let _ = redis::cmd("SHUTDOWN").arg("NOSAVE").exec(&mut con);
            }
        }
        let deadline = Instant::now() + READY_TIMEOUT;
        while self.is_running() && Instant::now() < deadline {
            std::thread::sleep(POLL);
        }
        self.kill()
    }

    /// Brings the server back on the same port with the same directory and settings, so
    /// that with AOF on its data comes back. If it is still running it is first killed
    /// with SIGKILL (so `restart` alone simulates a crash and recovery).
    ///
    /// Waits (up to [`READY_TIMEOUT`]) until it answers and has finished loading its data.
    /// Fails if another process has taken the port meanwhile and does not let go within
    /// that time.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill()?;
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            match self.launch() {
                Ok(()) => return Ok(()),
                Err(LaunchError::BindFailed(why)) => {
                    if Instant::now() >= deadline {
                        bail!(
                            "restarting redis-server: port {} is taken by another process:\n{why}",
                            self.port
                        );
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(LaunchError::Other(err)) => return Err(err.context("restarting redis-server")),
            }
        }
    }

    /// The command line of the server.
    fn args(&self) -> Vec<OsString> {
        let s = &self.settings;
        let mut args: Vec<OsString> = Vec::new();
        let mut push = |words: &[&str]| args.extend(words.iter().map(OsString::from));
        push(&["--port", &self.port.to_string(), "--bind", "127.0.0.1"]);
        push(&["--daemonize", "no", "--save", ""]);
        push(&["--appendonly", if s.aof { "yes" } else { "no" }]);
        if s.aof {
            push(&["--appendfsync", "always"]);
        }
        push(&["--enable-debug-command", "local"]);
        if let Some(password) = &s.password {
            push(&["--requirepass", password]);
        }
        for (user, password) in &s.acl_users {
            push(&[
                "--user",
                user,
                "on",
                &format!(">{password}"),
                "~*",
                "&*",
                "+@all",
            ]);
        }
        for (name, value) in &s.config {
            push(&[&format!("--{name}"), value]);
        }
        args.push("--dir".into());
        args.push(self.dir.path().into());
        args.push("--logfile".into());
        args.push(self.log_path().into());
        args
    }

    /// Spawns the server and waits until it is ready.
    fn launch(&mut self) -> Result<(), LaunchError> {
        let log_start = file_len(&self.log_path());
        let stderr_path = self.dir.path().join(STDERR_FILE);
        let stderr_start = file_len(&stderr_path);
        let stderr = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&stderr_path)
            .context("creating redis-server's stderr file")?;
        let child = Command::new(redis_server_binary())
            .args(self.args())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|err| match err.kind() {
                io::ErrorKind::NotFound => anyhow!(MISSING_REDIS_SERVER),
                _ => anyhow!(err).context(format!("spawning {:?}", redis_server_binary())),
            })?;
        self.child = Some(child);

        let not_ready = match self.wait_ready() {
            Ok(()) => return Ok(()),
            Err(not_ready) => not_ready,
        };
        let log = format!(
            "{}{}",
            tail_lines(&read_from(&self.log_path(), log_start), LOG_TAIL_LINES),
            tail_lines(&read_from(&stderr_path, stderr_start), LOG_TAIL_LINES)
        );
        // Reap (or kill) the failed process; an error here would only hide the real one.
        let _ = self.kill();
        match not_ready {
            NotReady::Exited(_) if log.contains("Could not create server TCP listening socket") => {
                Err(LaunchError::BindFailed(log))
            }
            NotReady::Exited(status) => Err(anyhow!(
                "redis-server on port {} exited ({status}) before answering PING; its log:\n{log}",
                self.port
            )
            .into()),
            NotReady::TimedOut(last) => Err(anyhow!(
                "redis-server on port {} did not answer PING within {READY_TIMEOUT:?} \
                 (last probe: {last}); its log:\n{log}",
                self.port
            )
            .into()),
        }
    }

    /// Polls until our process answers and has loaded its data, exits, or time runs out.
    fn wait_ready(&mut self) -> Result<(), NotReady> {
        let start = Instant::now();
        loop {
            let Some(child) = self.child.as_mut() else {
                return Err(NotReady::TimedOut("no process".into()));
            };
            match child.try_wait() {
                Ok(Some(status)) => return Err(NotReady::Exited(status)),
                Ok(None) => {}
                Err(err) => {
                    return Err(NotReady::TimedOut(format!(
                        "cannot check the process: {err}"
                    )))
                }
            }
            let pid = child.id();
            let last = match self.probe(pid) {
                Ok(()) => return Ok(()),
                Err(err) => format!("{err:#}"),
            };
            if start.elapsed() >= READY_TIMEOUT {
                return Err(NotReady::TimedOut(last));
            }
            std::thread::sleep(POLL);
        }
    }

    /// One readiness check: PING answers (not `LOADING`), the answering server is our
    /// process, and it is not loading data.
    fn probe(&self, pid: u32) -> anyhow::Result<()> {
        let client = redis::Client::open(self.url())?;
        let mut con = client.get_connection_with_timeout(PROBE_TIMEOUT)?;
        con.set_read_timeout(Some(PROBE_TIMEOUT))?;
        con.set_write_timeout(Some(PROBE_TIMEOUT))?;
        redis::cmd("PING").query::<String>(&mut con)?;
        let info: String = redis::cmd("INFO").query(&mut con)?;
        let field = |name: &str| {
            info.lines()
                .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
                .map(str::trim)
        };
        if field("process_id") != Some(pid.to_string().as_str()) {
            bail!(
                "the server on port {} is not ours (process_id {:?}, ours {pid})",
                self.port,
                field("process_id")
            );
        }
        if field("loading") != Some("0") {
            bail!("still loading its data");
        }
        Ok(())
    }
}

impl Drop for RedisServer {
    /// Kills the server (SIGKILL) and reaps it; the temporary directory is removed after.
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters (for URL userinfo).
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn file_len(path: &Path) -> u64 {
    fs::metadata(path).map(|meta| meta.len()).unwrap_or(0)
}

/// The text of a file from byte `offset` on (empty if it cannot be read).
fn read_from(path: &Path, offset: u64) -> String {
    let mut bytes = Vec::new();
    if let Ok(mut file) = File::open(path) {
        if file.seek(SeekFrom::Start(offset)).is_ok() {
            let _ = file.read_to_end(&mut bytes);
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

fn tail_lines(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    let mut out = all[all.len().saturating_sub(lines)..].join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_encoding_keeps_unreserved_and_escapes_the_rest() {
        assert_eq!(percent_encode("aZ09-._~"), "aZ09-._~");
        assert_eq!(percent_encode("p w@x:/%"), "p%20w%40x%3A%2F%25");
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail_lines("a\nb\nc\n", 2), "b\nc\n");
        assert_eq!(tail_lines("", 2), "");
        assert_eq!(tail_lines("a", 5), "a\n");
    }
}
