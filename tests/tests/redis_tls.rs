//! `rediss://`: a coordinator, a worker and a client run a workflow over TLS to a
//! redis-server whose certificate a private CA signed (certificates made here with the
//! `openssl` command), with and without a client certificate (and a server that requires
//! one admits only a client that has it); without the CA, or in plain text, the connection
//! is refused with an error that says so.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context};
use weir::model::InstanceStatus;
use weir::redis::{RedisConfig, TlsFiles, WeirClient};
use weir::Engine;
use weir::{parse_definition, StartOptions};
use weir_coordinator::service::{Coordinator, CoordinatorConfig};
use weir_tests::cluster::{init_logs, start_coordinator_with, start_worker_with};
use weir_tests::{free_port, RedisServer};
use weir_worker::WorkerConfig;

const FLOW: &str = r#"
name: over_tls
version: "1.0.0"
steps:
  a: { type: machine, handler: set, config: { a: 1 } }
  b: { type: machine, handler: set, config: { b: 2 } }
edges:
  - { from: a, to: b }
"#;

/// Runs `openssl` with `args` in `dir`, failing with its output.
fn openssl(dir: &Path, args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .context("running openssl (install it: apt-get install openssl)")?;
    if !out.status.success() {
        bail!(
            "openssl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by it.
fn make_certificates(dir: &Path) -> anyhow::Result<()> {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509", "-days", "2", "-subj", "/CN=weir test CA"];
    ca.extend(ec);
    ca.extend(["-keyout", "ca.key", "-out", "ca.crt"]);
    ca.extend(["-addext", "basicConstraints=critical,CA:TRUE"]);
    ca.extend(["-addext", "keyUsage=critical,keyCertSign,cRLSign"]);
    openssl(dir, &ca)?;
    for (name, ext) in [
        (
            "server",
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
        ),
        ("client", "extendedKeyUsage=clientAuth\n"),
    ] {
        let (key, csr, crt, extfile) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.crt"),
            format!("{name}.ext"),
        );
        let subject = format!("/CN=weir test {name}");
        let mut req = vec!["req", "-new", "-subj", &subject];
        req.extend(ec);
        req.extend(["-keyout", &key, "-out", &csr]);
        openssl(dir, &req)?;
        std::fs::write(dir.join(&extfile), ext)?;
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                &extfile,
                "-out",
                &crt,
            ],
        )?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workflow_runs_over_tls_and_plain_text_or_an_unknown_ca_is_refused() -> anyhow::Result<()>
{
    init_logs();
    let certs = tempfile::tempdir()?;
    let dir = certs.path();
    make_certificates(dir)?;
    let file = |name: &str| dir.join(name).to_string_lossy().into_owned();
    let tls_port = free_port()?;
    let _redis = RedisServer::builder()
        .config("tls-port", tls_port.to_string())
        .config("tls-cert-file", file("server.crt"))
        .config("tls-key-file", file("server.key"))
        .config("tls-ca-cert-file", file("ca.crt"))
        .config("tls-auth-clients", "optional")
        .start()?;
    let url = format!("rediss://127.0.0.1:{tls_port}/");
    let ca_only = TlsFiles {
        ca_file: Some(dir.join("ca.crt")),
        ..TlsFiles::default()
    };
    let mutual = TlsFiles {
        cert_file: Some(dir.join("client.crt")),
        key_file: Some(dir.join("client.key")),
        ..ca_only.clone()
    };
    let config = |tls: &TlsFiles| RedisConfig::new(&url, "t").with_tls(tls.clone());

    // The coordinator with a client certificate, the worker and the client with the CA only.
    let mut coordinator = CoordinatorConfig::new(config(&mutual));
    coordinator.lease = Duration::from_secs(1);
    let _coordinator = start_coordinator_with(coordinator).await?;
    let mut worker = WorkerConfig::new(config(&ca_only));
    worker.visibility_timeout = Duration::from_secs(2);
    let _worker = start_worker_with(worker, weir_worker::builtin_handlers()).await?;
    let client = WeirClient::connect(&config(&ca_only)).await?;
    client.register_definition(parse_definition(FLOW)?).await?;
    let inst = client
        .start_workflow("over_tls", StartOptions::default())
        .await?;
    let done = client.wait(&inst.id, Duration::from_secs(10)).await?;
    assert_eq!(done.status, InstanceStatus::Completed, "{done:?}");
    assert_eq!(done.context["b"], 2);

    // Readiness connects as the worker does, with its CA (and, for mutual TLS, its client
    // certificate): ready, not stuck not-ready while the worker works.
    for tls in [&ca_only, &mutual] {
        let ready = weir::process::redis_readiness(&config(tls))?;
        let answer = ready().await;
        assert_eq!(answer, Ok(()), "ready over TLS with {tls:?}");
    }

    // A server that requires client certificates admits the one with a certificate only.
    let strict_port = free_port()?;
    let _strict = RedisServer::builder()
        .config("tls-port", strict_port.to_string())
        .config("tls-cert-file", file("server.crt"))
        .config("tls-key-file", file("server.key"))
        .config("tls-ca-cert-file", file("ca.crt"))
        .config("tls-auth-clients", "yes")
        .start()?;
    let strict_url = format!("rediss://127.0.0.1:{strict_port}/");
    let strict = |tls: &TlsFiles| RedisConfig::new(&strict_url, "t").with_tls(tls.clone());
    let with_cert = WeirClient::connect(&strict(&mutual)).await?;
    assert!(with_cert.list_definitions().await?.is_empty());
    let ready = weir::process::redis_readiness(&strict(&mutual))?;
    assert_eq!(ready().await, Ok(()), "mutual TLS readiness");
    let not_ready = weir::process::redis_readiness(&strict(&ca_only))?;
    assert!(
        not_ready().await.is_err(),
        "no client certificate, not ready"
    );
    assert!(
        WeirClient::connect(&strict(&ca_only)).await.is_err(),
        "no client certificate, no entry"
    );

    // Without the private CA, the server's certificate is not trusted.
    let err = WeirClient::connect(&RedisConfig::new(&url, "t"))
        .await
        .expect_err("an unknown CA must be refused");
    let text = err.to_string();
    assert!(
        text.contains("127.0.0.1"),
        "the error names the server: {text}"
    );

    // Plain text to the TLS port fails; TLS files with a redis:// URL are a config error.
    let plain_url = format!("redis://127.0.0.1:{tls_port}/");
    let mut quick = RedisConfig::new(&plain_url, "t");
    quick.response_timeout = Duration::from_secs(1);
    assert!(WeirClient::connect(&quick).await.is_err());
    let err = Coordinator::connect(CoordinatorConfig::new(
        RedisConfig::new(&plain_url, "t").with_tls(ca_only.clone()),
    ))
    .await
    .err()
    .expect("TLS files need rediss://");
    assert!(err.to_string().contains("rediss://"), "{err}");

    // A missing file is named.
    let missing = TlsFiles {
        ca_file: Some(dir.join("nope.crt")),
        ..TlsFiles::default()
    };
    let err = WeirClient::connect(&config(&missing))
        .await
        .expect_err("a missing CA file");
    assert!(err.to_string().contains("nope.crt"), "{err}");
    Ok(())
}
