//! The partition count of a namespace (ARCHITECTURE.md invariant 8): fixed in `NS:meta`
//! by the first process that uses the namespace, taken by every later one, and a process
//! configured with another count refuses to start, saying what to fix.

use weir::redis::keys::DEFAULT_PARTITIONS;
use weir::redis::{Connections, RedisConfig, RedisError};
use weir_tests::RedisServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_process_fixes_the_count_and_another_count_is_refused() -> anyhow::Result<()> {
    let redis = RedisServer::start()?;
    let url = redis.url();

    // A new namespace without a configured count gets the default.
    let plain = Connections::connect(&RedisConfig::new(&url, "fresh")).await?;
    assert_eq!(plain.keys.partitions(), DEFAULT_PARTITIONS);

    // The first process configured with 16 fixes 16; one without a count takes it.
    let first = Connections::connect(&RedisConfig::new(&url, "t").with_partitions(16)).await?;
    assert_eq!(first.keys.partitions(), 16);
    let later = Connections::connect(&RedisConfig::new(&url, "t")).await?;
    assert_eq!(later.keys.partitions(), 16);
    let same = Connections::connect(&RedisConfig::new(&url, "t").with_partitions(16)).await?;
    assert_eq!(same.keys.partitions(), 16);
    let stored: Option<String> = redis::cmd("HGET")
        .arg("t:meta")
        .arg("partitions")
        .query(&mut redis.connection()?)?;
    assert_eq!(stored.as_deref(), Some("16"));

    // Another count is refused, with what to fix.
    let err = Connections::connect(&RedisConfig::new(&url, "t").with_partitions(8))
        .await
        .unwrap_err();
    assert!(matches!(err, RedisError::Config(_)), "{err:?}");
    let text = err.to_string();
    for part in [
        "has 16 partitions",
        "configured with 8",
        "t:meta",
        "configure 16",
    ] {
        assert!(text.contains(part), "{part:?} missing from: {text}");
    }
    // The default namespace's count is not the configured one either: refused too.
    let err = Connections::connect(&RedisConfig::new(&url, "fresh").with_partitions(4))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains(&format!("has {DEFAULT_PARTITIONS} partitions")),
        "{err}"
    );
    // A count of zero is refused before anything is stored.
    let err = Connections::connect(&RedisConfig::new(&url, "zero").with_partitions(0))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("at least 1"), "{err}");
    let exists: bool = redis::cmd("EXISTS")
        .arg("zero:meta")
        .query(&mut redis.connection()?)?;
    assert!(!exists);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_racing_on_a_new_namespace_agree_on_one_count() -> anyhow::Result<()> {
    let redis = RedisServer::start()?;
    let url = redis.url();
    // Several processes connect at once, one configured with 12, the rest without a count:
    // HSETNX lets exactly one value in, and every process ends up with the stored one.
    let mut joins = Vec::new();
    for i in 0..6 {
        let mut config = RedisConfig::new(&url, "race");
        if i == 3 {
            config = config.with_partitions(12);
        }
        joins.push(tokio::spawn(
            async move { Connections::connect(&config).await },
        ));
    }
    let mut counts = Vec::new();
    let mut refused = 0;
    for join in joins {
        match join.await? {
            Ok(c) => counts.push(c.keys.partitions()),
            Err(RedisError::Config(_)) => refused += 1,
            Err(e) => return Err(e.into()),
        }
    }
    let stored: String = redis::cmd("HGET")
        .arg("race:meta")
        .arg("partitions")
        .query(&mut redis.connection()?)?;
    let stored: u16 = stored.parse()?;
    assert!(stored == 12 || stored == DEFAULT_PARTITIONS, "{stored}");
    assert!(
        counts.iter().all(|c| *c == stored),
        "{counts:?} vs {stored}"
    );
    // Only the process configured with 12 can be refused, and only if it lost the race.
    assert_eq!(refused, usize::from(stored != 12));
    Ok(())
}
