//! Tests of the test support library itself: private redis-servers that can be killed,
//! restarted and stopped, and the deadline-bound wait helpers.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use weir_tests::{
    free_port, redis_server_available, wait_for, wait_until, wait_until_async, RedisServer,
    MISSING_REDIS_SERVER, REDIS_SERVER_BIN_ENV,
};

fn set(server: &RedisServer, key: &str, value: &str) {
    let mut con = server.connection().unwrap();
    redis::cmd("SET")
        .arg(key)
        .arg(value)
        .exec(&mut con)
        .unwrap();
}

fn get(server: &RedisServer, key: &str) -> Option<String> {
    let mut con = server.connection().unwrap();
    redis::cmd("GET").arg(key).query(&mut con).unwrap()
}

/// Whether a process with this pid exists (a zombie counts: it has not been reaped).
fn process_exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn the_server_is_private_and_answers() {
    let mut server = RedisServer::start().unwrap();
    assert_ne!(
        server.port(),
        6379,
        "tests must never use the machine's Redis"
    );
    assert!(server.is_running());
    assert_eq!(
        server.url(),
        format!("redis://127.0.0.1:{}/", server.port())
    );
    let mut con = server.connection().unwrap();
    let pong: String = redis::cmd("PING").query(&mut con).unwrap();
    assert_eq!(pong, "PONG");
    // It really is the child we started.
    let info: String = redis::cmd("INFO").arg("server").query(&mut con).unwrap();
    let pid = server.pid().unwrap();
    assert!(info.contains(&format!("process_id:{pid}\r")), "{info}");
    // Its data and log live in its own directory.
    assert!(server.dir().exists());
    assert!(
        server.log_tail(50).contains("Ready to accept connections"),
        "{}",
        server.log_tail(50)
    );
}

#[test]
fn with_aof_data_survives_kill_and_restart() {
    let mut server = RedisServer::builder().aof(true).start().unwrap();
    let port = server.port();
    set(&server, "k", "v");
    let old_pid = server.pid().unwrap();

    server.kill().unwrap();
    assert!(!server.is_running());
    assert_eq!(server.pid(), None);
    assert!(!process_exists(old_pid), "the killed server must be reaped");
    assert!(
        server.connection().is_err(),
        "a killed server must not answer"
    );

    server.restart().unwrap();
    assert!(server.is_running());
    assert_eq!(server.port(), port, "a restart keeps the port");
    assert_ne!(server.pid(), Some(old_pid));
    assert_eq!(get(&server, "k").as_deref(), Some("v"));
    let mut con = server.connection().unwrap();
    let info: String = redis::cmd("INFO")
        .arg("persistence")
        .query(&mut con)
        .unwrap();
    assert!(info.contains("aof_enabled:1"), "{info}");
    assert!(info.contains("loading:0"), "{info}");
}

#[test]
fn restart_of_a_running_server_is_a_crash_and_recovery() {
    let mut server = RedisServer::builder().aof(true).start().unwrap();
    set(&server, "k", "v");
    let old_pid = server.pid().unwrap();
    server.restart().unwrap();
    assert!(!process_exists(old_pid));
    assert_eq!(get(&server, "k").as_deref(), Some("v"));
}

#[test]
fn without_aof_a_restart_comes_back_empty() {
    let mut server = RedisServer::start().unwrap();
    set(&server, "k", "v");
    assert_eq!(get(&server, "k").as_deref(), Some("v"));
    server.kill().unwrap();
    server.restart().unwrap();
    assert_eq!(get(&server, "k"), None);
    // No snapshot was written either.
    assert!(!server.dir().join("dump.rdb").exists());
}

#[test]
fn stop_shuts_down_cleanly_and_keeps_aof_data() {
    let mut server = RedisServer::builder().aof(true).start().unwrap();
    set(&server, "k", "v");
    let pid = server.pid().unwrap();
    server.stop().unwrap();
    assert!(!server.is_running());
    assert!(!process_exists(pid));
    assert!(
        server.log_tail(20).contains("ready to exit, bye bye"),
        "{}",
        server.log_tail(20)
    );
    // Stopping or killing a stopped server does nothing.
    server.stop().unwrap();
    server.kill().unwrap();
    server.restart().unwrap();
    assert_eq!(get(&server, "k").as_deref(), Some("v"));
}

#[test]
fn a_password_server_refuses_unauthenticated_commands() {
    let server = RedisServer::builder().password("s3cret").start().unwrap();
    assert_eq!(
        server.url(),
        format!("redis://:s3cret@127.0.0.1:{}/", server.port())
    );

    let anonymous = redis::Client::open(server.url_without_auth()).unwrap();
    let mut con = anonymous.get_connection().unwrap();
    let err = redis::cmd("PING").query::<String>(&mut con).unwrap_err();
    assert_eq!(err.code(), Some("NOAUTH"), "{err}");

    let wrong = redis::Client::open(format!("redis://:nope@127.0.0.1:{}/", server.port())).unwrap();
    assert!(
        wrong.get_connection().is_err(),
        "a wrong password must be refused"
    );

    let mut con = server.connection().unwrap();
    let pong: String = redis::cmd("PING").query(&mut con).unwrap();
    assert_eq!(pong, "PONG");
}

#[test]
fn a_password_server_restarts_and_stops() {
    let mut server = RedisServer::builder()
        .password("pw")
        .aof(true)
        .start()
        .unwrap();
    set(&server, "k", "v");
    server.restart().unwrap();
    assert_eq!(get(&server, "k").as_deref(), Some("v"));
    let pid = server.pid().unwrap();
    server.stop().unwrap();
    assert!(!process_exists(pid));
    assert!(
        server.log_tail(20).contains("ready to exit, bye bye"),
        "{}",
        server.log_tail(20)
    );
}

#[test]
fn an_acl_user_logs_in_with_the_url_even_with_odd_characters() {
    let password = "p w@x:/%?#";
    let server = RedisServer::builder()
        .password("default-pw")
        .acl_user("alice", password)
        .start()
        .unwrap();
    assert!(
        server.url().starts_with("redis://alice:p%20w%40x"),
        "{}",
        server.url()
    );

    let mut con = server.connection().unwrap();
    let me: String = redis::cmd("ACL").arg("WHOAMI").query(&mut con).unwrap();
    assert_eq!(me, "alice");
    redis::cmd("SET").arg("k").arg("v").exec(&mut con).unwrap();

    let anonymous = redis::Client::open(server.url_without_auth()).unwrap();
    let mut con = anonymous.get_connection().unwrap();
    let err = redis::cmd("GET")
        .arg("k")
        .query::<Option<String>>(&mut con)
        .unwrap_err();
    assert_eq!(err.code(), Some("NOAUTH"), "{err}");
}

#[test]
fn extra_config_is_applied() {
    let server = RedisServer::builder()
        .config("maxmemory", "7mb")
        .start()
        .unwrap();
    let mut con = server.connection().unwrap();
    let reply: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("maxmemory")
        .query(&mut con)
        .unwrap();
    assert_eq!(
        reply,
        vec!["maxmemory".to_string(), (7 * 1024 * 1024).to_string()]
    );
}

#[test]
fn two_servers_at_once_are_separate() {
    let a = RedisServer::start().unwrap();
    let b = RedisServer::start().unwrap();
    assert_ne!(a.port(), b.port());
    assert_ne!(a.dir(), b.dir());
    set(&a, "k", "from a");
    assert_eq!(get(&b, "k"), None);
    assert_eq!(get(&a, "k").as_deref(), Some("from a"));
}

#[test]
fn drop_leaves_no_process_and_no_directory_behind() {
    let mut server = RedisServer::builder().aof(true).start().unwrap();
    let pid = server.pid().unwrap();
    let dir = server.dir().to_path_buf();
    let port = server.port();
    assert!(process_exists(pid));
    assert!(dir.exists());
    drop(server);
    assert!(
        !process_exists(pid),
        "redis-server {pid} outlived its RedisServer"
    );
    assert!(!dir.exists(), "{} outlived its RedisServer", dir.display());
    let refused = redis::Client::open(format!("redis://127.0.0.1:{port}/"))
        .unwrap()
        .get_connection_with_timeout(Duration::from_millis(500));
    assert!(refused.is_err(), "something still answers on port {port}");
}

#[test]
fn a_server_that_dies_by_itself_is_seen_as_not_running() {
    let mut server = RedisServer::start().unwrap();
    let pid = server.pid().unwrap();
    let status = Command::new("kill")
        .arg("-9")
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success());
    wait_until(Duration::from_secs(5), "the server to be seen dead", || {
        !server.is_running()
    })
    .unwrap();
    server.restart().unwrap();
    assert!(server.is_running());
}

#[test]
fn a_bad_configuration_gives_an_error_with_the_log() {
    let err = RedisServer::builder()
        .config("no-such-directive", "1")
        .start()
        .unwrap_err();
    let text = format!("{err:#}");
    assert!(text.contains("exited"), "{text}");
    assert!(
        text.contains("no-such-directive"),
        "the error must quote the log: {text}"
    );
}

#[test]
fn free_ports_are_bindable() {
    let port = free_port().unwrap();
    assert_ne!(port, 0);
    std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
}

/// A missing binary must give a clear install hint. The test reruns itself in a child
/// process with `WEIR_REDIS_SERVER` pointing nowhere, so no other test sees that setting.
#[test]
fn a_missing_binary_says_how_to_install_it() {
    const CHILD: &str = "WEIR_TESTS_MISSING_BINARY_CHILD";
    if std::env::var_os(CHILD).is_some() {
        assert!(!redis_server_available());
        let err = RedisServer::start().unwrap_err();
        assert!(
            format!("{err:#}").contains("apt-get install redis-server"),
            "{err:#}"
        );
        assert_eq!(format!("{err}"), MISSING_REDIS_SERVER);
        return;
    }
    assert!(redis_server_available(), "{MISSING_REDIS_SERVER}");
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_missing_binary_says_how_to_install_it",
            "--nocapture",
        ])
        .env(CHILD, "1")
        .env(REDIS_SERVER_BIN_ENV, "/nonexistent/redis-server")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{text}");
    assert!(
        text.contains("1 passed"),
        "the child must have run the test: {text}"
    );
}

#[test]
fn wait_until_returns_once_the_condition_holds() {
    let start = Instant::now();
    let mut calls = 0;
    wait_until(Duration::from_secs(5), "three calls", || {
        calls += 1;
        calls == 3
    })
    .unwrap();
    assert_eq!(calls, 3);
    assert!(start.elapsed() < Duration::from_secs(1));
    let value = wait_for(Duration::from_secs(1), "a value", || Some(42)).unwrap();
    assert_eq!(value, 42);
}

#[test]
fn wait_until_fails_at_the_deadline_naming_what() {
    let start = Instant::now();
    let mut calls = 0;
    let err = wait_until(Duration::from_millis(100), "pigs to fly", || {
        calls += 1;
        false
    })
    .unwrap_err();
    let elapsed = start.elapsed();
    assert!(err.to_string().contains("pigs to fly"), "{err}");
    assert!(elapsed >= Duration::from_millis(100), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    assert!(calls >= 2, "it must poll, not check once: {calls}");
}

#[tokio::test]
async fn wait_until_async_polls_and_times_out() {
    let mut calls = 0;
    wait_until_async(Duration::from_secs(5), "three calls", async || {
        calls += 1;
        calls == 3
    })
    .await
    .unwrap();
    assert_eq!(calls, 3);

    let err = wait_until_async(Duration::from_millis(100), "never", || async { false })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("never"), "{err}");

    // An attempt that hangs cannot hold the wait past its deadline.
    let start = Instant::now();
    let err = wait_until_async(Duration::from_millis(200), "a hung attempt", || async {
        std::future::pending::<()>().await;
        true
    })
    .await
    .unwrap_err();
    assert!(err.to_string().contains("a hung attempt"), "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn async_clients_work_across_a_restart() {
    let mut server = RedisServer::builder().aof(true).start().unwrap();
    let client = server.client().unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("SET")
        .arg("k")
        .arg("v")
        .exec_async(&mut con)
        .await
        .unwrap();
    server.kill().unwrap();
    server.restart().unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    let value: Option<String> = redis::cmd("GET")
        .arg("k")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(value.as_deref(), Some("v"));
}
