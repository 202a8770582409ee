//! Waiting on a condition with a deadline, instead of sleeping and hoping.
//!
//! Each helper checks the condition at once, then every [`POLL_INTERVAL`] until it holds
//! or the deadline passes; the condition is always checked at least once, and once more
//! at (or just after) the deadline. On timeout the error says what was awaited and for how
//! long, so a failing test explains itself: `timed out after 5s waiting for: key is back`.

use std::time::{Duration, Instant};

use anyhow::bail;

/// How often the wait helpers re-check their condition (10 ms).
pub const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// Blocks the current thread until `f` returns `true`, checking every [`POLL_INTERVAL`].
///
/// Returns an error naming `what` if `f` is still `false` when `deadline` (measured from
/// the call) has passed. Use it from synchronous tests; in async code use
/// [`wait_until_async`], which does not block the runtime.
pub fn wait_until(
    deadline: Duration,
    what: &str,
    mut f: impl FnMut() -> bool,
) -> anyhow::Result<()> {
    wait_for(deadline, what, || f().then_some(()))
}

/// Blocks the current thread until `f` returns `Some(value)`, and returns that value.
///
/// Like [`wait_until`], for conditions that produce something (an id, a reply, a count).
/// Returns an error naming `what` if `f` still returns `None` when `deadline` has passed.
pub fn wait_for<T>(
    deadline: Duration,
    what: &str,
    mut f: impl FnMut() -> Option<T>,
) -> anyhow::Result<T> {
    let start = Instant::now();
    loop {
        if let Some(value) = f() {
            return Ok(value);
        }
        let elapsed = start.elapsed();
        if elapsed >= deadline {
            bail!("timed out after {deadline:?} waiting for: {what}");
        }
        std::thread::sleep(POLL_INTERVAL.min(deadline - elapsed));
    }
}

/// Waits (asynchronously, on Tokio's timer) until `f` resolves to `true`.
///
/// `f` may be an async closure (`async || ...`, which may borrow from its surroundings) or
/// a closure returning a future (`|| async move { ... }`). Each attempt is itself bounded
/// by the time left (but given at least [`POLL_INTERVAL`]), so a hung attempt, say a
/// command to a stopped server, cannot hold the wait past its deadline. Returns an error
/// naming `what` if the condition does not hold in time. Needs a Tokio runtime with the
/// time driver (`#[tokio::test]` has one).
pub async fn wait_until_async(
    deadline: Duration,
    what: &str,
    mut f: impl AsyncFnMut() -> bool,
) -> anyhow::Result<()> {
    wait_for_async(deadline, what, async || f().await.then_some(())).await
}

/// Waits (asynchronously) until `f` resolves to `Some(value)`, and returns that value.
///
/// Like [`wait_until_async`], for conditions that produce something. Returns an error
/// naming `what` if `f` still resolves to `None` (or an attempt hangs) past `deadline`.
pub async fn wait_for_async<T>(
    deadline: Duration,
    what: &str,
    mut f: impl AsyncFnMut() -> Option<T>,
) -> anyhow::Result<T> {
    let start = Instant::now();
    loop {
        let left = deadline.saturating_sub(start.elapsed());
        if let Ok(Some(value)) = tokio::time::timeout(left.max(POLL_INTERVAL), f()).await {
            return Ok(value);
        }
        let elapsed = start.elapsed();
        if elapsed >= deadline {
            bail!("timed out after {deadline:?} waiting for: {what}");
        }
        tokio::time::sleep(POLL_INTERVAL.min(deadline - elapsed)).await;
    }
}
