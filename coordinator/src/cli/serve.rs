//! `weir serve`: the HTTP API (and the dashboard) on the Redis namespace of the global flags.
//! See [`weir_coordinator::serve`] for the endpoints and the decisions.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::anyhow;
use clap::Args;
use weir::process::{self, Shutdown};
use weir_coordinator::serve::{self, Auth, AuthFile};

use super::printer::out;
use super::remote::client;
use super::Global;

/// `weir serve`.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on (port 0 picks a free one; the address is printed).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// A YAML file of API tokens:
    /// `tokens: [{ token: "...", user: "ops@example.com", admin: true }, { token: "...",
    /// user: "alice@example.com", tenant: "acme" }]`.
    #[arg(long, env = "WEIR_AUTH_FILE", value_name = "FILE")]
    pub auth_file: Option<PathBuf>,
    /// Trust this header (set by an authenticating proxy) as the user's name, e.g.
    /// X-Forwarded-User. Only behind a proxy that always sets or strips it.
    #[arg(long, value_name = "HEADER")]
    pub trusted_user_header: Option<String>,
    /// With --trusted-user-header: trust this header as the user's tenant, e.g.
    /// X-Forwarded-Tenant (requests without it are refused).
    #[arg(long, value_name = "HEADER")]
    pub trusted_tenant_header: Option<String>,
    /// With --trusted-user-header: trust this header as the user's groups, comma-separated,
    /// e.g. X-Forwarded-Groups (for human tasks with `candidate_groups`).
    #[arg(long, value_name = "HEADER")]
    pub trusted_groups_header: Option<String>,
    /// With --trusted-user-header: the proxy's address range (CIDR, e.g. 10.0.0.5/32;
    /// repeat or separate with commas). The headers are read only from these peers.
    /// Required unless --listen is a loopback address (then loopback peers are trusted).
    #[arg(long = "trusted-proxy", value_name = "CIDR")]
    pub trusted_proxies: Vec<String>,
}

/// Runs `weir serve` until SIGINT or SIGTERM.
pub(crate) async fn run(global: &Global, args: ServeArgs) -> anyhow::Result<ExitCode> {
    let tokens = match &args.auth_file {
        Some(path) => AuthFile::load(path).map_err(|e| anyhow!(e))?.tokens,
        None => Vec::new(),
    };
    let auth = Auth::new(
        tokens,
        args.trusted_user_header.as_deref(),
        args.trusted_tenant_header.as_deref(),
        &args.trusted_proxies,
        args.listen,
    )
    .and_then(|auth| auth.with_groups_header(args.trusted_groups_header.as_deref()))
    .map_err(|e| anyhow!("weir serve: {e}"))?;
    let client = client(global).await?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| {
            anyhow!(
                "cannot listen on {}: {e} (choose another --listen)",
                args.listen
            )
        })?;
    let addr = listener
        .local_addr()
        .map_err(|e| anyhow!("cannot read the listening address: {e}"))?;
    // Listen for the stop signal before saying we are up: a SIGTERM right after that line
    // must stop the server gracefully, not kill it.
    let signal = process::shutdown::signal();
    out(&format!("weir serve: listening on http://{addr}"));
    tracing::info!(%addr, namespace = %global.namespace, "serving the HTTP API; Ctrl-C or SIGTERM stops it");
    let shutdown = Shutdown::new();
    let server = serve::run(listener, client, auth, shutdown.listener());
    tokio::pin!(server);
    let served = tokio::select! {
        served = &mut server => served,
        () = signal => {
            shutdown.trigger();
            server.await
        }
    };
    served.map_err(|e| anyhow!("the HTTP server failed: {e}"))?;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}
