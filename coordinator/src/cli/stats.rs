//! `weir stats [--json]`: instances per status, queue depths and pending entries, consumers,
//! dead letters, the Redis node of each partition, leases, live coordinators and workers,
//! counters.

use std::process::ExitCode;

use clap::Args;
use weir::redis::admin;

use super::printer::out;
use super::remote::{connections, print_json, redis_error};
use super::Global;

/// `weir stats`.
#[derive(Debug, Args)]
pub(crate) struct StatsArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `weir stats`.
pub(crate) async fn run(global: &Global, args: StatsArgs) -> anyhow::Result<ExitCode> {
    let c = connections(global).await?;
    let s = admin::stats(&c).await.map_err(|e| redis_error(global, e))?;
    if args.json {
        print_json(&s)?;
        return Ok(ExitCode::SUCCESS);
    }
    out(&format!(
        "namespace {} ({} partitions)",
        s.namespace, s.partitions
    ));
    let counts: Vec<String> = s
        .instances
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    out(&format!("instances:    {}", counts.join(", ")));
    out(&format!("open tasks:   {}", s.open_tasks));
    out(&format!("timers:       {}", s.timers));
    out(&format!(
        "schedules:    {} (delayed starts waiting: {})",
        s.schedules, s.delayed_starts
    ));
    let queues: Vec<String> = s.queues.iter().map(|(k, v)| format!("{k} {v}")).collect();
    out(&format!(
        "queues:       {}",
        if queues.is_empty() {
            "none yet".to_string()
        } else {
            queues.join(", ")
        }
    ));
    out(&format!(
        "messages:     delivered {}, kept {} (kept now: {}), expired {}, duplicates {}, hops not relayed {}",
        s.messages.delivered,
        s.messages.kept,
        s.kept_messages,
        s.messages.expired,
        s.messages.duplicates,
        s.outbox
    ));
    out(&format!("dead letters: {}", s.dlq));
    // The Redis node of each partition (one on a single server; a cluster's slot owners).
    let mut nodes: Vec<(&str, Vec<String>)> = Vec::new();
    for l in &s.leases {
        let part = format!("p{}", l.partition);
        match nodes.iter_mut().find(|(node, _)| *node == l.node) {
            Some((_, parts)) => parts.push(part),
            None => nodes.push((&l.node, vec![part])),
        }
    }
    out(&format!("redis nodes:  {}", nodes.len()));
    for (node, parts) in &nodes {
        out(&format!("  {node}: {}", parts.join(" ")));
    }
    let held = s.leases.iter().filter(|l| l.holder.is_some()).count();
    out(&format!(
        "leases:       {held} of {} partitions held",
        s.partitions
    ));
    for l in &s.leases {
        if let Some(h) = &l.holder {
            out(&format!(
                "  p{:<3} {h} ({} ms left)",
                l.partition,
                l.ttl_ms.unwrap_or(0)
            ));
        }
    }
    out(&format!("coordinators: {}", s.coordinators.len()));
    for p in &s.coordinators {
        out(&format!("  {} (seen {} ms ago)", p.id, p.last_seen_ms_ago));
    }
    out(&format!("workers:      {}", s.workers.len()));
    for p in &s.workers {
        out(&format!("  {} (seen {} ms ago)", p.id, p.last_seen_ms_ago));
    }
    if !s.streams.is_empty() {
        out("streams:");
        for st in &s.streams {
            out(&format!(
                "  {}  length {}, pending {}",
                st.stream, st.length, st.pending
            ));
            for c in &st.consumers {
                out(&format!(
                    "    {}: {} pending, idle {} ms",
                    c.name, c.pending, c.idle_ms
                ));
            }
        }
    }
    if !s.counters.is_empty() {
        let counters: Vec<String> = s.counters.iter().map(|(k, v)| format!("{k} {v}")).collect();
        out(&format!("counters:     {}", counters.join(", ")));
    }
    Ok(ExitCode::SUCCESS)
}
