//! `commit.lua` (issue 15, lows): everything is validated before the first write, so a
//! malformed batch or a reply key of the wrong type leaves its inputs unacknowledged and
//! writes nothing; and a due timer is removed only if it still has the due time read, so a
//! timer rescheduled earlier in the same batch stays. And a history is capped: the oldest
//! records past the cap are dropped and counted on the instance.

mod common;

use common::{raw, xlen};
use weir::redis::batch::{Batch, CommitError};
use weir::redis::Keys;
use weir_tests::RedisServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_that_fails_validation_writes_and_acknowledges_nothing() -> anyhow::Result<()> {
    let redis = RedisServer::start()?;
    let mut conn = raw(&redis.url()).await?;
    let part = Keys::new("t", 8).part(0);
    let _: () = redis::cmd("SET")
        .arg(part.lease())
        .arg("me")
        .query_async(&mut conn)
        .await?;
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
    let redis = RedisServer::start()?;
    let mut conn = raw(&redis.url()).await?;
    let part = Keys::new("t", 8).part(0);
    let _: () = redis::cmd("SET")
        .arg(part.lease())
        .arg("me")
        .query_async(&mut conn)
        .await?;
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
    let redis = RedisServer::start()?;
    let mut conn = raw(&redis.url()).await?;
    let part = Keys::new("t", 8).part(0);
    let _: () = redis::cmd("SET")
        .arg(part.lease())
        .arg("me")
        .query_async(&mut conn)
        .await?;
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
