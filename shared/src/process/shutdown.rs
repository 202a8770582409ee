//! How a Weir process stops: on SIGINT (Ctrl-C) or SIGTERM ([`signal`]), told to each of
//! its long-running parts through one [`Shutdown`].
//!
//! # One shutdown type
//!
//! Every part that runs until its process stops takes a [`ShutdownListener`]: the
//! coordinator service, the worker's consume and reclaim loops, the metrics and health
//! server ([`serve`](super::serve)), the HTTP API and its event streams. It is a
//! `tokio::sync::watch::Receiver<bool>` that turns `true` once, never back: a loop can
//! `select!` on `changed()` next to its work and check `*borrow()` between two pieces of
//! it, and any number of parts can hold a clone. The process owns the one [`Shutdown`]
//! that turns it, when [`signal`] resolves (or, in tests, when the test says so).
//!
//! A listener whose [`Shutdown`] was dropped without being triggered never turns: nobody
//! can ask for a stop any more, so the part runs until its process ends.

use std::future::Future;

use tokio::sync::watch;

/// What a long-running part is handed to learn that its process stops: `true` once it
/// should stop (see the [module docs](self)).
pub type ShutdownListener = watch::Receiver<bool>;

/// The one stop switch of a process (or of a service inside a test): it hands out
/// [`ShutdownListener`]s and turns them all to `true` at once.
#[derive(Debug)]
pub struct Shutdown {
    switch: watch::Sender<bool>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown::new()
    }
}

impl Shutdown {
    /// A switch not triggered yet.
    pub fn new() -> Shutdown {
        Shutdown {
            switch: watch::Sender::new(false),
        }
    }

    /// A listener for one part; it sees a trigger that happened before it was made, too.
    pub fn listener(&self) -> ShutdownListener {
        self.switch.subscribe()
    }

    /// Tells every listener to stop. Triggering twice is the same as once.
    pub fn trigger(&self) {
        self.switch.send_replace(true);
    }

    /// Whether [`trigger`](Shutdown::trigger) was called.
    pub fn is_triggered(&self) -> bool {
        *self.switch.borrow()
    }
}

/// Resolves once `listener` has turned `true`, at once when it already has. Never
/// resolves when its [`Shutdown`] is dropped untriggered (see the [module docs](self)).
pub async fn requested(listener: &mut ShutdownListener) {
    if listener.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_trigger_reaches_listeners_made_before_and_after_it() {
        let shutdown = Shutdown::new();
        let mut before = shutdown.listener();
        assert!(!*before.borrow());
        shutdown.trigger();
        let mut after = shutdown.listener();
        assert!(shutdown.is_triggered());
        tokio::time::timeout(Duration::from_secs(5), async {
            requested(&mut before).await;
            requested(&mut after).await;
        })
        .await
        .expect("both listeners see the trigger");
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_switch_never_asks_for_a_stop() {
        let shutdown = Shutdown::new();
        let mut listener = shutdown.listener();
        drop(shutdown);
        let waited = tokio::time::timeout(Duration::from_secs(60), requested(&mut listener)).await;
        assert!(
            waited.is_err(),
            "a listener without a switch must not resolve"
        );
    }
}
