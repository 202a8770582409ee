//! A steady load for fault tests: instances started at a fixed rate, each start its own
//! task (a start slowed by a fault does not hold the next one back), every outcome kept:
//! acknowledged, or refused with its error. And a measure of the pause a fault causes: the
//! longest time without a transition among the instances of interest, from the event
//! stream's timestamps (Redis time, applied by the coordinators).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::task::JoinHandle;
use weir::model::Event;
use weir::redis::WeirClient;
use weir::{Engine, StartOptions};

/// How long one start may take before the load counts it as refused (a start waits for
/// at most the client's response timeout and its retries; this bounds a hung one).
const START_BOUND: Duration = Duration::from_secs(30);

/// What became of one start of a [`Load`].
#[derive(Debug, Clone)]
pub struct Started {
    /// The instance id the start asked for.
    pub id: String,
    /// `Ok` once acknowledged; the error's text when the start failed (it may or may not
    /// have been stored: a start with the same id again is safe).
    pub outcome: Result<(), String>,
    /// When it was sent, in epoch milliseconds ([`now_millis`]).
    pub sent_at: i64,
}

impl Started {
    /// Whether the start was acknowledged.
    pub fn acknowledged(&self) -> bool {
        self.outcome.is_ok()
    }
}

/// Instances being started at a steady rate (see [`steady_starts`]).
pub struct Load {
    ticker: JoinHandle<Vec<JoinHandle<Started>>>,
}

impl Load {
    /// Waits until every start was made and answered; returns them in start order.
    pub async fn finish(self) -> anyhow::Result<Vec<Started>> {
        let mut out = Vec::new();
        for start in self.ticker.await? {
            out.push(start.await?);
        }
        Ok(out)
    }
}

/// Starts an instance of `workflow` for each of `ids`, one every `every`, each start in a
/// task of its own so that a slow one (a failover under way) does not delay the others.
pub fn steady_starts(
    client: &WeirClient,
    workflow: &str,
    ids: Vec<String>,
    every: Duration,
) -> Load {
    let client = client.clone();
    let workflow = workflow.to_string();
    let ticker = tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut starts = Vec::with_capacity(ids.len());
        for id in ids {
            tick.tick().await;
            let client = client.clone();
            let workflow = workflow.clone();
            starts.push(tokio::spawn(async move {
                let options = StartOptions {
                    id: Some(id.clone()),
                    ..StartOptions::default()
                };
                let sent_at = now_millis();
                let outcome = match tokio::time::timeout(
                    START_BOUND,
                    client.start_workflow(&workflow, options),
                )
                .await
                {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err(format!("no answer within {START_BOUND:?}")),
                };
                Started {
                    id,
                    outcome,
                    sent_at,
                }
            }));
        }
        starts
    });
    Load { ticker }
}

/// Starts `workflow` with each of `ids` again until each is acknowledged (or `deadline`
/// passes): for starts a fault refused. A start is idempotent by id, so an instance the
/// refused start did store is answered, not started twice.
pub async fn start_again(
    client: &WeirClient,
    workflow: &str,
    ids: &[String],
    deadline: Duration,
) -> anyhow::Result<()> {
    for id in ids {
        crate::wait_until_async(
            deadline,
            &format!("a new start of {id} is acknowledged"),
            async || {
                let options = StartOptions {
                    id: Some(id.clone()),
                    ..StartOptions::default()
                };
                client.start_workflow(workflow, options).await.is_ok()
            },
        )
        .await?;
    }
    Ok(())
}

/// Milliseconds since the epoch by this machine's clock (which is the test Redis servers'
/// clock: they run on it).
pub fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The longest time without an event among `events` that `of` selects, counting only the
/// quiet spells that overlap `window` (from, to; epoch milliseconds): the pause in the
/// progress of those instances around a fault. `None` if fewer than two events were
/// selected.
pub fn longest_quiet(
    events: &[Event],
    of: impl Fn(&Event) -> bool,
    window: (i64, i64),
) -> Option<Duration> {
    let mut times: Vec<i64> = events
        .iter()
        .filter(|e| of(e))
        .map(|e| e.timestamp.millis())
        .collect();
    times.sort_unstable();
    times
        .windows(2)
        .filter(|w| w[1] >= window.0 && w[0] <= window.1)
        .map(|w| w[1] - w[0])
        .max()
        .map(|ms| Duration::from_millis(u64::try_from(ms).unwrap_or(0)))
}
