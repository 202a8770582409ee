//! The arguments of one `start.lua` call: the starts of one partition, with what they share
//! (workflow, version, tenant, creator, start time) sent once per *shape* and each start
//! as its id, its shape and its message (see the script's header for the layout).
//!
//! Sending a batch's common values once keeps the per-start cost of the call to one key
//! and three arguments, and lets the script write the pending index with one `ZADD` per
//! call.

use std::collections::HashMap;
use std::sync::Arc;

use super::keys::PartitionKeys;
use super::scripts;
use crate::definition::Workflow;
use crate::model::InstanceStatus;
use crate::time::Timestamp;

/// A start checked and encoded, ready to be stored.
#[derive(Debug, Clone)]
pub(super) struct PreparedStart {
    /// The instance id (the caller's, tenant-scoped, or generated).
    pub(super) id: String,
    /// The workflow version it starts.
    pub(super) wf: Arc<Workflow>,
    /// Whether the caller named the version (an instance of another version with the same
    /// id is then another start).
    pub(super) version_asked: bool,
    /// The tenant, if any.
    pub(super) tenant: Option<String>,
    /// Who started it, if given.
    pub(super) creator: Option<String>,
    /// The wire-encoded Start command.
    pub(super) message: Vec<u8>,
    /// When to create it (a delayed start), if given.
    pub(super) start_at: Option<Timestamp>,
    /// How long after the Redis clock's now to create it (a delayed start), if given.
    pub(super) start_delay_ms: Option<u64>,
}

/// The keys and arguments of one `start.lua` call, in the script's order.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct StartCall {
    /// KEYS.
    pub(super) keys: Vec<String>,
    /// ARGV.
    pub(super) args: Vec<Vec<u8>>,
}

/// What starts of one call share: workflow (by identity), version asked, tenant, creator,
/// start time and delay.
type ShapeKey<'a> = (usize, bool, Option<&'a str>, Option<&'a str>, i64, u64);

fn shape_key(s: &PreparedStart) -> ShapeKey<'_> {
    (
        Arc::as_ptr(&s.wf) as usize,
        s.version_asked,
        s.tenant.as_deref(),
        s.creator.as_deref(),
        s.start_at.map_or(0, Timestamp::millis),
        s.start_delay_ms.unwrap_or(0),
    )
}

impl StartCall {
    /// The call that stores `starts` (all of partition `part`), in their order.
    pub(super) fn new(part: &PartitionKeys, starts: &[&PreparedStart]) -> StartCall {
        // Shapes, numbered from 1 in order of first use; each start's shape.
        let mut shapes: Vec<&PreparedStart> = Vec::new();
        let mut shape_of: HashMap<ShapeKey<'_>, usize> = HashMap::new();
        let mut start_shapes = Vec::with_capacity(starts.len());
        let mut last: Option<(ShapeKey<'_>, usize)> = None;
        for s in starts {
            let key = shape_key(s);
            let shape = match last {
                // Neighbours mostly share their shape: no hashing then.
                Some((k, d)) if k == key => d,
                _ => *shape_of.entry(key).or_insert_with(|| {
                    shapes.push(s);
                    shapes.len()
                }),
            };
            last = Some((key, shape));
            start_shapes.push(shape);
        }

        let mut keys = Vec::with_capacity(3 + starts.len());
        keys.push(part.commands());
        keys.push(part.index_status(InstanceStatus::Pending.as_str()));
        keys.push(part.due_starts());
        keys.extend(starts.iter().map(|s| part.instance(&s.id)));

        let mut args: Vec<Vec<u8>> = Vec::with_capacity(2 + 7 * shapes.len() + 3 * starts.len());
        let num = |n: usize| n.to_string().into_bytes();
        args.push(num(starts.len()));
        args.push(num(shapes.len()));
        for s in &shapes {
            args.push(s.wf.name.as_bytes().to_vec());
            args.push(s.wf.semver.to_string().into_bytes());
            args.push(if s.version_asked { b"1" } else { b"0" }.to_vec());
            args.push(s.tenant.as_deref().unwrap_or("").as_bytes().to_vec());
            args.push(s.creator.as_deref().unwrap_or("").as_bytes().to_vec());
            args.push(
                s.start_at
                    .map_or(0, Timestamp::millis)
                    .to_string()
                    .into_bytes(),
            );
            args.push(s.start_delay_ms.unwrap_or(0).to_string().into_bytes());
        }
        for (s, shape) in starts.iter().zip(start_shapes) {
            args.push(s.id.as_bytes().to_vec());
            args.push(num(shape));
            args.push(s.message.clone());
        }
        StartCall { keys, args }
    }

    /// The `start.lua` invocation.
    pub(super) fn invocation(&self) -> redis::ScriptInvocation<'static> {
        let mut inv = scripts::START.prepare_invoke();
        for k in &self.keys {
            inv.key(k);
        }
        for a in &self.args {
            inv.arg(a);
        }
        inv
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redis::keys::Keys;

    fn workflow(name: &str, version: &str) -> Arc<Workflow> {
        let def = crate::parse_definition(&format!(
            "name: {name}\nversion: \"{version}\"\nsteps:\n  a: {{ type: machine, handler: noop }}\n"
        ))
        .expect("a valid test definition");
        Arc::new(crate::definition::compile(def).expect("a compilable test definition"))
    }

    fn start(id: &str, wf: &Arc<Workflow>) -> PreparedStart {
        PreparedStart {
            id: id.into(),
            wf: wf.clone(),
            version_asked: false,
            tenant: None,
            creator: None,
            message: format!("msg-{id}").into_bytes(),
            start_at: None,
            start_delay_ms: None,
        }
    }

    fn text(args: &[Vec<u8>]) -> Vec<String> {
        args.iter()
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect()
    }

    #[test]
    fn starts_that_share_everything_but_the_id_share_one_shape() {
        let part = Keys::new("ns", 1).part(0);
        let wf = workflow("w", "1.0.0");
        let (a, b) = (start("a", &wf), start("b", &wf));
        let call = StartCall::new(&part, &[&a, &b]);
        assert_eq!(
            call.keys,
            vec![
                part.commands(),
                part.index_status("pending"),
                part.due_starts(),
                part.instance("a"),
                part.instance("b"),
            ]
        );
        assert_eq!(
            text(&call.args),
            vec![
                "2", "1", // two starts, one shape
                "w", "1.0.0", "0", "", "", "0", "0", // the shape
                "a", "1", "msg-a", "b", "1", "msg-b",
            ]
        );
    }

    #[test]
    fn each_difference_makes_a_shape() {
        let part = Keys::new("ns", 1).part(0);
        let (w1, w2) = (workflow("w", "1.0.0"), workflow("w", "2.0.0"));
        let plain = start("a", &w1);
        let tenant = PreparedStart {
            tenant: Some("t".into()),
            creator: Some("ann".into()),
            ..start("t:b", &w1)
        };
        let asked = PreparedStart {
            version_asked: true,
            ..start("c", &w2)
        };
        let delayed = PreparedStart {
            start_delay_ms: Some(5000),
            tenant: Some("t".into()),
            ..start("t:d", &w1)
        };
        let again = start("a", &w1);
        let call = StartCall::new(&part, &[&plain, &tenant, &asked, &delayed, &again]);
        // 3 fixed keys, then the 5 instance keys (a pending start is in no other index).
        assert_eq!(call.keys.len(), 8);
        assert_eq!(call.keys[7], part.instance("a"));
        let args = text(&call.args);
        assert_eq!(&args[..2], ["5", "4"]);
        let shapes: Vec<&[String]> = args[2..30].chunks(7).collect();
        assert_eq!(shapes[0], ["w", "1.0.0", "0", "", "", "0", "0"]);
        assert_eq!(shapes[1], ["w", "1.0.0", "0", "t", "ann", "0", "0"]);
        assert_eq!(shapes[2], ["w", "2.0.0", "1", "", "", "0", "0"]);
        assert_eq!(shapes[3], ["w", "1.0.0", "0", "t", "", "0", "5000"]);
        let per_start: Vec<&[String]> = args[30..].chunks(3).collect();
        let ids_and_shapes: Vec<(&str, &str)> = per_start
            .iter()
            .map(|s| (s[0].as_str(), s[1].as_str()))
            .collect();
        assert_eq!(
            ids_and_shapes,
            [
                ("a", "1"),
                ("t:b", "2"),
                ("c", "3"),
                ("t:d", "4"),
                ("a", "1")
            ]
        );
    }
}
