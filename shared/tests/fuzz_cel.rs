//! Fuzzing CEL conditions (`weir::condition`): compile, then evaluate (as a bool and as a
//! time) against random JSON contexts. No input may panic or take 100 ms or more (see
//! `fuzz_support`).
//!
//! Inputs: expressions from a CEL grammar (literals at the edges of each type, context
//! reads, operators, calls, methods, macros, list and map literals, optional access),
//! random text, and random bytes; contexts are random JSON objects whose keys are mostly
//! those the expressions read. A last target evaluates nested comprehensions over lists of
//! up to 5,000 items from the context: what a user's data can make an edge condition do.
//!
//! `PROPTEST_CASES=1000000 cargo test --release -p weir --test fuzz_cel -- --nocapture`

#[path = "../../tests/fuzz_support/mod.rs"]
mod fuzz_support;

use fuzz_support::cel::{expression, macro_name, KEYS};
use fuzz_support::{any_bytes, fuzz, json_object};
use proptest::prelude::*;
use serde_json::{Map, Value};
use weir::condition::Condition;

/// Any source a definition may hold: grammar expressions (most), random text, random
/// bytes read as UTF-8 (lossy), and a long chain near the length limit.
fn source() -> BoxedStrategy<String> {
    prop_oneof![
        8 => expression(),
        1 => ".{0,120}",
        1 => any_bytes(256).prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        1 => (1usize..1500, prop::sample::select(vec!["!", "-", "(", "[", "a.", "1 + "]))
            .prop_map(|(n, unit)| unit.repeat(n)),
    ]
    .boxed()
}

/// Compiles and, when that succeeds, evaluates against each context; whether it compiled.
fn compile_and_evaluate(source: &str, contexts: &[&Map<String, Value>]) -> bool {
    let Ok(condition) = Condition::compile(source) else {
        return false;
    };
    for context in contexts {
        let _ = condition.evaluate(context);
        let _ = condition.evaluate_time(context);
    }
    true
}

#[test]
fn grammar_expressions_and_random_text_against_random_contexts() {
    let empty = Map::new();
    fuzz(
        "cel",
        3000,
        (source(), json_object(KEYS, 3)),
        |(source, context)| compile_and_evaluate(source, &[&empty, context]),
    );
}

/// Nested comprehensions over a list of up to 5,000 items that comes from the context:
/// the data of a start or a task completion decides how much work a condition does.
fn comprehension() -> BoxedStrategy<String> {
    (1usize..=3, proptest::collection::vec(macro_name(), 3))
        .prop_map(|(depth, macros)| {
            let vars = ["a", "b", "c"];
            let mut body = ["a >= 0", "a == b", "a == b && b != c"][depth - 1].to_owned();
            for i in (0..depth).rev() {
                body = format!("context.items.{}({}, {body})", macros[i], vars[i]);
            }
            // `map` and `filter` give lists: compare their size to get a bool.
            if macros[0] == "map" || macros[0] == "filter" {
                format!("size({body}) > 0")
            } else {
                body
            }
        })
        .boxed()
}

#[test]
fn nested_comprehensions_over_large_lists_from_user_data() {
    fuzz(
        "cel-large-lists",
        40,
        (comprehension(), 0usize..=5000),
        |(source, n)| {
            let items: Vec<Value> = (0..*n as i64).map(Value::from).collect();
            let mut context = Map::new();
            context.insert("items".into(), Value::Array(items));
            compile_and_evaluate(source, &[&context])
        },
    );
}
