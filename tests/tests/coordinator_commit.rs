//! `commit.lua` (issue 15, lows): everything is validated before the first write, so a
//! malformed batch or a reply key of the wrong type leaves its inputs unacknowledged and
//! writes nothing; and a due timer is removed only if it still has the due time read, so a
//! timer rescheduled earlier in the same batch stays. And a history is capped: the oldest
//! records past the cap are dropped and counted on the instance. A batch groups its
//! sorted-set writes and counters per key, and its events per stream, without changing
//! what they write.

mod common;

use common::{raw, xlen};
use redis::aio::MultiplexedConnection;
use weir::redis::batch::{Batch, CommitError};
use weir::redis::keys::PartitionKeys;
use weir::redis::Keys;
use weir_tests::RedisServer;

/// A private Redis where coordinator `me` holds the lease of partition 0 of namespace `t`.
async fn leased() -> anyhow::Result<(RedisServer, MultiplexedConnection, PartitionKeys)> {
    let redis = RedisServer::start()?;
    let mut conn = raw(&redis.url()).await?;
    let part = Keys::new("t", 8).part(0);
    let _: () = redis::cmd("SET")
        .arg(part.lease())
        .arg("me")
        .query_async(&mut conn)
        .await?;
    Ok((redis, conn, part))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_that_fails_validation_writes_and_acknowledges_nothing() -> anyhow::Result<()> {
    let (_redis, mut conn, part) = leased().await?;
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(part.commands())
        .arg("coordinators")
        .arg("0")
        .arg("MKSTREAM")
        .query_async(&mut conn)
        .await?;
    let entry: String = redis::cmd("XADD")
        .arg(part.commands())
        .arg("*")
        .arg("m")
        .arg("x")
        .query_async(&mut conn)
        .await?;
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("coordinators")
        .arg("me")
        .arg("STREAMS")
        .arg(part.commands())
        .arg(">")
        .query_async(&mut conn)
        .await?;
    // A reply key that someone made a string.
    let reply = part.reply("r1");
    let _: () = redis::cmd("SET")
        .arg(&reply)
        .arg("not a list")
        .query_async(&mut conn)
        .await?;
    let mut b = Batch::new(part.lease());
    b.ack(&part.commands(), "coordinators", &entry);
    b.rpush_capped(
        &part.history("i"),
        10,
        &part.instance("i"),
        "history_dropped",
        b"record",
    );
    b.reply(&reply, 60_000, b"verdict");
    let err = b.commit(&mut conn.clone(), "me").await.unwrap_err();
    assert!(matches!(err, CommitError::Rejected(_)), "{err:?}");
    assert!(err.to_string().contains("holds a string"), "{err}");
    // Nothing happened: the entry is still there and pending, no history written.
    assert_eq!(xlen(&mut conn, &part.commands()).await?, 1);
    assert_eq!(
        common::pending(&mut conn, &part.commands(), "coordinators").await?,
        1
    );
    let history: u64 = redis::cmd("LLEN")
        .arg(part.history("i"))
        .query_async(&mut conn)
        .await?;
    assert_eq!(history, 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_due_timer_rescheduled_in_the_same_batch_is_kept() -> anyhow::Result<()> {
    let (_redis, mut conn, part) = leased().await?;
    let member = "i|s|timeout";
    let _: () = redis::cmd("ZADD")
        .arg(part.timers())
        .arg(1000)
        .arg(member)
        .query_async(&mut conn)
        .await?;
    // An earlier transition of the batch reschedules the timer; then the stale due one
    // (read with due time 1000) is removed.
    let mut b = Batch::new(part.lease());
    b.zadd(&part.timers(), 5000, member);
    b.zrem_if(&part.timers(), 1000, member);
    b.commit(&mut conn.clone(), "me").await?;
    let score: Option<i64> = redis::cmd("ZSCORE")
        .arg(part.timers())
        .arg(member)
        .query_async(&mut conn)
        .await?;
    assert_eq!(score, Some(5000), "the rescheduled timer stays");
    // A timer still at its due time is removed.
    let mut b = Batch::new(part.lease());
    b.zrem_if(&part.timers(), 5000, member);
    b.commit(&mut conn.clone(), "me").await?;
    let score: Option<i64> = redis::cmd("ZSCORE")
        .arg(part.timers())
        .arg(member)
        .query_async(&mut conn)
        .await?;
    assert_eq!(score, None);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_history_keeps_its_last_records_and_counts_those_dropped() -> anyhow::Result<()> {
    let (_redis, mut conn, part) = leased().await?;
    let (history, instance) = (part.history("i"), part.instance("i"));
    // Seven records under a cap of 4: three turns, the last one pushing several at once.
    for records in [&[0u8, 1][..], &[2, 3, 4], &[5, 6]] {
        let mut b = Batch::new(part.lease());
        for r in records {
            b.rpush_capped(&history, 4, &instance, "history_dropped", &[b'r', b'0' + r]);
        }
        b.commit(&mut conn.clone(), "me").await?;
    }
    let kept: Vec<String> = redis::cmd("LRANGE")
        .arg(&history)
        .arg(0)
        .arg(-1)
        .query_async(&mut conn)
        .await?;
    assert_eq!(kept, ["r3", "r4", "r5", "r6"]);
    let dropped: u64 = redis::cmd("HGET")
        .arg(&instance)
        .arg("history_dropped")
        .query_async(&mut conn)
        .await?;
    assert_eq!(dropped, 3);
    Ok(())
}

/// One write applied to the keys of a partition, by a [`Batch`] or one command at a time.
#[derive(Debug, Clone)]
enum Write {
    Add(usize, usize, i64),
    Remove(usize, usize),
    RemoveIf(usize, usize, i64),
    Count(usize, i64),
    Set(usize, i64),
    Unset(usize),
}

/// The sorted sets, the counters hash and the hash the writes of [`Write`] name, in
/// partition `p`.
fn targets(p: &weir::redis::keys::PartitionKeys) -> (Vec<String>, String, String) {
    let zsets = (0..3).map(|k| format!("{}:z{k}", p.timers())).collect();
    (zsets, p.stats(), p.instance("i"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grouped_sorted_set_hash_and_counter_writes_end_as_if_written_one_by_one(
) -> anyhow::Result<()> {
    let (_redis, mut conn, batched) = leased().await?;
    let direct = Keys::new("t", 8).part(1);
    let (b_zsets, b_stats, b_hash) = targets(&batched);
    let (d_zsets, d_stats, d_hash) = targets(&direct);
    // A fixed pseudo-random sequence (a linear congruential generator): the same run each
    // time, with adds, removes and conditional removes of few members, so that members
    // are written several times in one batch, in every order.
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move |n: u64| {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        (seed >> 33) % n
    };
    for round in 0..40 {
        let writes: Vec<Write> = (0..1 + next(24))
            .map(|_| {
                let (k, m, s) = (next(3) as usize, next(5) as usize, next(4) as i64);
                match next(10) {
                    0..=2 => Write::Add(k, m, s),
                    3 | 4 => Write::Remove(k, m),
                    5 => Write::RemoveIf(k, m, s),
                    6 => Write::Count(k, s - 1),
                    7 | 8 => Write::Set(m, s),
                    _ => Write::Unset(m),
                }
            })
            .collect();
        let mut b = Batch::new(batched.lease());
        for w in &writes {
            let member = |m: &usize| format!("m{m}");
            match w {
                Write::Add(k, m, s) => {
                    b.zadd(&b_zsets[*k], *s, &member(m));
                    let _: () = redis::cmd("ZADD")
                        .arg(&d_zsets[*k])
                        .arg(*s)
                        .arg(member(m))
                        .query_async(&mut conn)
                        .await?;
                }
                Write::Remove(k, m) => {
                    b.zrem(&b_zsets[*k], &member(m));
                    let _: () = redis::cmd("ZREM")
                        .arg(&d_zsets[*k])
                        .arg(member(m))
                        .query_async(&mut conn)
                        .await?;
                }
                Write::RemoveIf(k, m, s) => {
                    b.zrem_if(&b_zsets[*k], *s, &member(m));
                    let score: Option<i64> = redis::cmd("ZSCORE")
                        .arg(&d_zsets[*k])
                        .arg(member(m))
                        .query_async(&mut conn)
                        .await?;
                    if score == Some(*s) {
                        let _: () = redis::cmd("ZREM")
                            .arg(&d_zsets[*k])
                            .arg(member(m))
                            .query_async(&mut conn)
                            .await?;
                    }
                }
                Write::Set(f, v) => {
                    let value = v.to_string();
                    b.hset(&b_hash, &[(format!("f{f}").as_str(), value.as_bytes())]);
                    let _: () = redis::cmd("HSET")
                        .arg(&d_hash)
                        .arg(format!("f{f}"))
                        .arg(*v)
                        .query_async(&mut conn)
                        .await?;
                }
                Write::Unset(f) => {
                    b.hdel(&b_hash, &format!("f{f}"));
                    let _: () = redis::cmd("HDEL")
                        .arg(&d_hash)
                        .arg(format!("f{f}"))
                        .query_async(&mut conn)
                        .await?;
                }
                Write::Count(k, n) => {
                    b.hincr(&b_stats, &format!("c{k}"), *n);
                    let _: () = redis::cmd("HINCRBY")
                        .arg(&d_stats)
                        .arg(format!("c{k}"))
                        .arg(*n)
                        .query_async(&mut conn)
                        .await?;
                }
            }
        }
        b.commit(&mut conn.clone(), "me").await?;
        for (bk, dk) in b_zsets.iter().zip(&d_zsets) {
            let read = |key: &str| {
                redis::cmd("ZRANGE")
                    .arg(key)
                    .arg(0)
                    .arg(-1)
                    .arg("WITHSCORES")
                    .clone()
            };
            let got: Vec<(String, i64)> = read(bk).query_async(&mut conn).await?;
            let want: Vec<(String, i64)> = read(dk).query_async(&mut conn).await?;
            assert_eq!(got, want, "round {round}, writes {writes:?}");
        }
        let counters = |key: &str| redis::cmd("HGETALL").arg(key).clone();
        for (bk, dk) in [(&b_stats, &d_stats), (&b_hash, &d_hash)] {
            let got: std::collections::BTreeMap<String, i64> =
                counters(bk).query_async(&mut conn).await?;
            let want: std::collections::BTreeMap<String, i64> =
                counters(dk).query_async(&mut conn).await?;
            assert_eq!(got, want, "round {round}, writes {writes:?}");
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_sends_one_call_per_sorted_set_and_one_event_entry_per_stream() -> anyhow::Result<()>
{
    let (_redis, mut conn, part) = leased().await?;
    let (running, done) = (part.index_status("running"), part.index_status("completed"));
    for i in 0..20 {
        let _: () = redis::cmd("ZADD")
            .arg(&running)
            .arg(i)
            .arg(format!("i{i}"))
            .query_async(&mut conn)
            .await?;
    }
    let event = |i: usize, step: &str| weir::model::Event {
        instance_id: format!("i{i}").into(),
        timestamp: weir::time::Timestamp(1_000 + i as i64),
        kind: weir::model::EventKind::StepExecuted {
            step: step.into(),
            attempt: 1,
        },
    };
    // Twenty instances complete in one commit, each with two events; one event goes to
    // another partition's stream.
    let mut b = Batch::new(part.lease());
    let mut written = Vec::new();
    for i in 0..20 {
        b.zrem(&running, &format!("i{i}"));
        b.zadd(&done, 100 + i, &format!("i{i}"));
        b.hincr(&part.stats(), "completed", 1);
        for step in ["a", "b"] {
            let e = event(i as usize, step);
            b.event(&part.events(), 100, "e", serde_json::to_vec(&e)?);
            written.push(e);
        }
    }
    let lone = event(99, "z");
    let other = Keys::new("t", 8).part(1).events();
    b.event(&other, 100, "e", serde_json::to_vec(&lone)?);
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut conn)
        .await?;
    b.commit(&mut conn.clone(), "me").await?;
    let calls = common::command_calls(&mut conn).await?;
    for (command, want) in [("zadd", 1), ("zrem", 1), ("hincrby", 1), ("xadd", 2)] {
        assert_eq!(
            calls.get(command).copied(),
            Some(want),
            "{command}: {calls:?}"
        );
    }
    let members: Vec<String> = redis::cmd("ZRANGE")
        .arg(&done)
        .arg(0)
        .arg(-1)
        .query_async(&mut conn)
        .await?;
    assert_eq!(members.len(), 20);
    let left: u64 = redis::cmd("ZCARD")
        .arg(&running)
        .query_async(&mut conn)
        .await?;
    assert_eq!(left, 0);
    let completed: i64 = redis::cmd("HGET")
        .arg(part.stats())
        .arg("completed")
        .query_async(&mut conn)
        .await?;
    assert_eq!(completed, 20);
    // One entry per stream: the forty events in order, and the lone one as an object.
    let entries = common::stream_entries(&mut conn, &part.events()).await?;
    assert_eq!(entries.len(), 1);
    let text = String::from_utf8(entries[0].1["e"].clone())?;
    assert_eq!(weir::redis::effects::decode_events(&text), written);
    let entries = common::stream_entries(&mut conn, &other).await?;
    let text = String::from_utf8(entries[0].1["e"].clone())?;
    assert!(text.starts_with('{'), "{text}");
    assert_eq!(weir::redis::effects::decode_events(&text), vec![lone]);
    Ok(())
}
