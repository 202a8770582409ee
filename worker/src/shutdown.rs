//! The shutdown signal every Weir process stops on: SIGINT (Ctrl-C) or SIGTERM.

use std::future::Future;

/// Starts listening for SIGINT and SIGTERM at once, and returns a future that resolves on
/// the first of them.
///
/// The handlers are installed by this call, not when the future is first polled: a process
/// that spawns its work and only then awaits the signal would otherwise die of a SIGTERM
/// sent in between (the default action), without its graceful stop. Call it before
/// starting the work it stops.
pub fn signal() -> impl Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        // Either may fail only when the process cannot install handlers at all; it then
        // stops on the other, or never (as a process without handlers would).
        let interrupt = signal(SignalKind::interrupt()).ok();
        let terminate = signal(SignalKind::terminate()).ok();
        async move {
            let recv = |s: Option<tokio::signal::unix::Signal>| async move {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = recv(interrupt) => {}
                () = recv(terminate) => {}
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}
