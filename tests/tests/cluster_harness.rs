//! The test topologies themselves: a six-node Redis Cluster and a Sentinel setup come up
//! from real `redis-server` processes, serve reads and writes through cluster-aware
//! clients, survive a killed master (its replica promoted), and move a slot.

use redis::Commands;
use weir_tests::{RedisCluster, RedisSentinel};

#[test]
fn a_cluster_comes_up_survives_a_killed_master_and_moves_a_slot() -> anyhow::Result<()> {
    let mut cluster = RedisCluster::start()?;
    let client = cluster.client()?;
    let mut con = client.get_connection()?;

    // Keys in slots owned by different masters are written and read back.
    let keys = ["{a}k", "{b}k", "{c}k", "{d}k", "{e}k", "{f}k"];
    for key in keys {
        let _: () = con.set(key, format!("value of {key}"))?;
    }
    for key in keys {
        let v: String = con.get(key)?;
        assert_eq!(v, format!("value of {key}"));
    }
    let mut masters = std::collections::BTreeSet::new();
    for key in keys {
        let slot = cluster.slot_of(key)?;
        masters.insert(cluster.master_of_slot(slot)?);
    }
    assert!(
        masters.len() >= 2,
        "six keys all on one master: {masters:?}"
    );

    // A master killed: its replica takes over, and what it acknowledged to a WAIT is there.
    let slot = cluster.slot_of("{a}k")?;
    let old = cluster.master_of_slot(slot)?;
    let synced: i64 = redis::cmd("WAIT")
        .arg(1)
        .arg(5000)
        .query(&mut cluster.node(old).connection()?)?;
    assert_eq!(synced, 1, "the replica did not acknowledge the writes");
    let (killed, promoted) = cluster.kill_master_of_slot(slot)?;
    assert_eq!(killed, old);
    assert_ne!(promoted, old);
    let mut con = client.get_connection()?;
    let v: String = con.get("{a}k")?;
    assert_eq!(v, "value of {a}k");

    // The killed node comes back and rejoins (as a replica of its successor).
    cluster.restart(old)?;
    assert_eq!(cluster.master_of_slot(slot)?, promoted);

    // A slot moves to another master with its keys.
    let slot = cluster.slot_of("{b}k")?;
    let from = cluster.master_of_slot(slot)?;
    let to = (0..cluster.len())
        .find(|i| *i != from && *i != old && masters_now(&mut cluster).contains(i))
        .ok_or_else(|| anyhow::anyhow!("no other master"))?;
    cluster.migrate_slot(slot, to)?;
    assert_eq!(cluster.master_of_slot(slot)?, to);
    let mut con = client.get_connection()?;
    let v: String = con.get("{b}k")?;
    assert_eq!(v, "value of {b}k");
    let _: () = con.set("{b}k", "moved")?;
    let v: String = redis::cmd("GET")
        .arg("{b}k")
        .query(&mut cluster.node(to).connection()?)?;
    assert_eq!(v, "moved");
    Ok(())
}

/// The indexes of the nodes that are masters of some slot now.
fn masters_now(cluster: &mut RedisCluster) -> Vec<usize> {
    let mut masters = Vec::new();
    for slot in (0..weir_tests::redis_cluster::SLOTS).step_by(1000) {
        if let Ok(m) = cluster.master_of_slot(slot) {
            if !masters.contains(&m) {
                masters.push(m);
            }
        }
    }
    masters
}

#[test]
fn sentinels_promote_the_replica_when_the_primary_is_killed() -> anyhow::Result<()> {
    let mut setup = RedisSentinel::start()?;
    assert_eq!(setup.primary()?, 0);
    let mut primary = setup.server(0).connection()?;
    let _: () = primary.set("k", "v")?;
    let synced: i64 = redis::cmd("WAIT").arg(1).arg(5000).query(&mut primary)?;
    assert_eq!(synced, 1);
    let new = setup.kill_primary()?;
    assert_eq!(new, 1);
    let mut promoted = setup.server(1).connection()?;
    let v: String = promoted.get("k")?;
    assert_eq!(v, "v");
    // The promoted server takes writes.
    let _: () = promoted.set("k", "w")?;
    assert!(setup.url().starts_with("redis+sentinel://127.0.0.1:"));
    Ok(())
}
