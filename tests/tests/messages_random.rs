//! Correlated messages under random interleavings (a few fixed seeds; each run stops by
//! itself): instances start and wait on a few shared keys with a short timeout, messages
//! are sent to those keys (some resent with the same id, some with a short time to live),
//! instances are canceled, and time passes. Whatever the order, once everything settled:
//! no message id was received by two instances or twice by one (never delivered twice),
//! and every message sent with a long time to live was received by one instance or is
//! still kept (never lost inside its time to live). ARCHITECTURE.md invariant 14.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use serde_json::json;
use weir::model::{MessageFilter, MessageOutcome, SendMessage};
use weir::redis::admin;
use weir::{parse_definition, Engine, StartOptions};
use weir_tests::cluster::{client, init_logs, start_coordinator};
use weir_tests::{wait_until_async, RedisServer};

const WAITS: &str = r#"
name: waits
version: "1.0.0"
steps:
  wait_msg: { type: event, event: ping, correlation: context.key, output: got, timeout: 700ms }
"#;

const KEYS: [&str; 3] = ["k0", "k1", "k2"];

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// A message the run sent, and what the send answered.
struct Sent {
    key: &'static str,
    long: bool,
    outcome: MessageOutcome,
}

async fn run(seed: u64) -> anyhow::Result<()> {
    let redis = RedisServer::start()?;
    let url = redis.url();
    let _coordinator = start_coordinator(&url, "r").await?;
    let client = client(&url, "r").await?;
    client.register_definition(parse_definition(WAITS)?).await?;
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut instances: Vec<String> = Vec::new();
    let mut sent: HashMap<String, Sent> = HashMap::new();
    let mut order: Vec<String> = Vec::new();
    for op in 0..80 {
        match rng.below(100) {
            0..35 => {
                let key = KEYS[rng.below(KEYS.len() as u64) as usize];
                let started = client
                    .start_workflow(
                        "waits",
                        StartOptions {
                            initial_data: [("key".to_string(), json!(key))].into_iter().collect(),
                            ..StartOptions::default()
                        },
                    )
                    .await?;
                instances.push(started.id);
            }
            35..70 => {
                // A resend of an earlier long-lived message (same key and id), or a new one.
                let resend = order
                    .iter()
                    .filter(|id| sent[*id].long)
                    .nth(rng.below(order.len() as u64 + 1) as usize)
                    .filter(|_| rng.below(100) < 25)
                    .cloned();
                let (id, key, long) = match resend {
                    Some(id) => {
                        let s = &sent[&id];
                        (id.clone(), s.key, true)
                    }
                    None => (
                        format!("m-{seed}-{op}"),
                        KEYS[rng.below(KEYS.len() as u64) as usize],
                        rng.below(100) >= 30,
                    ),
                };
                let ttl = if long {
                    Duration::from_secs(3600)
                } else {
                    Duration::from_millis(300)
                };
                let answer = client
                    .send_message(
                        SendMessage::new("ping", key, json!({ "id": id }))
                            .with_id(id.clone())
                            .with_ttl(ttl),
                    )
                    .await?;
                match sent.get(&id) {
                    Some(_) => assert_eq!(
                        answer.outcome,
                        MessageOutcome::Duplicate,
                        "seed {seed}: a resend of {id} within its ttl"
                    ),
                    None => {
                        assert_ne!(answer.outcome, MessageOutcome::Duplicate, "seed {seed}");
                        order.push(id.clone());
                        sent.insert(
                            id,
                            Sent {
                                key,
                                long,
                                outcome: answer.outcome,
                            },
                        );
                    }
                }
            }
            70..85 if !instances.is_empty() => {
                let victim = &instances[rng.below(instances.len() as u64) as usize];
                // Finished already (received, timed out, canceled): refused, and fine.
                let _ = client.cancel_workflow(victim, Some("random")).await;
            }
            _ => tokio::time::sleep(Duration::from_millis(20 + rng.below(150))).await,
        }
    }

    // Settle: every instance finished (each waits at most its timeout), every hop relayed.
    wait_until_async(
        Duration::from_secs(30),
        "every instance finished",
        async || {
            for id in &instances {
                match client.get_instance(id).await {
                    Ok(v) if v.status.is_terminal() => {}
                    _ => return false,
                }
            }
            true
        },
    )
    .await?;
    common::hops_settled(&client).await?;

    let mut receivers: HashMap<String, Vec<String>> = HashMap::new();
    for id in &instances {
        for r in client.history(id).await? {
            if let Some(m) = r.note.as_deref().and_then(|n| n.strip_prefix("message ")) {
                receivers.entry(m.to_string()).or_default().push(id.clone());
            }
        }
    }
    let kept: Vec<String> = client
        .list_messages(&MessageFilter::default())
        .await?
        .into_iter()
        .map(|m| m.id)
        .collect();
    for (id, s) in &sent {
        let got = receivers.get(id).map_or(0, Vec::len);
        assert!(
            got <= 1,
            "seed {seed}: {id} was received by {:?}",
            receivers[id]
        );
        if s.long {
            let listed = kept.iter().filter(|k| *k == id).count();
            assert_eq!(
                got + listed,
                1,
                "seed {seed}: {id} ({:?}) received {got} times and listed {listed} times",
                s.outcome
            );
        }
    }
    for id in receivers.keys() {
        assert!(sent.contains_key(id), "seed {seed}: {id} was never sent");
    }
    let stats = admin::stats(client.connections()).await?;
    println!(
        "seed {seed}: {} instances, {} messages sent ({} kept at send), {} received, {} kept now, counts {:?}",
        instances.len(),
        sent.len(),
        sent.values().filter(|s| s.outcome == MessageOutcome::Kept).count(),
        receivers.len(),
        kept.len(),
        stats.messages
    );
    assert_eq!(
        stats.messages.delivered,
        receivers.values().map(Vec::len).sum::<usize>() as u64,
        "seed {seed}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_sends_waits_timeouts_and_cancels_never_deliver_twice_or_lose() -> anyhow::Result<()>
{
    init_logs();
    for seed in [1, 2, 3] {
        run(seed).await?;
    }
    Ok(())
}
