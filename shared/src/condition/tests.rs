//! The conditions' behaviour, from compiling to the budget.

use std::fmt;

use serde_json::{Map, Value as Json};

use super::check::*;
use super::compiled::*;
use super::functions::*;
use super::json::*;
use proptest::prelude::*;
use serde_json::json;

fn ctx(value: Json) -> Map<String, Json> {
    match value {
        Json::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

fn eval(source: &str, context: Json) -> Result<bool, ConditionError> {
    Condition::compile(source)
        .unwrap_or_else(|e| panic!("{source}: {e}"))
        .evaluate(&ctx(context))
}

fn holds(source: &str, context: Json) -> bool {
    eval(source, context).unwrap_or_else(|e| panic!("{source}: {e}"))
}

fn is_evaluate_error(result: Result<bool, ConditionError>) -> bool {
    matches!(result, Err(ConditionError::Evaluate { .. }))
}

#[test]
fn unknown_functions_are_refused_when_compiled() {
    for (source, named) in [
        ("sise(context.items) > 1", "`sise`"),
        ("context.keys().size() > 0", "`keys`"),
        (
            "len(context.x) > 0 && lower(context.y) == 'a'",
            "`len`, `lower`",
        ),
    ] {
        let err = Condition::compile(source).unwrap_err().to_string();
        assert!(
            err.contains("unknown function") && err.contains(named),
            "{source}: {err}"
        );
    }
    // What users write compiles: standard functions, macros, `get`, operators.
    for source in [
        "size(context.items) > 1 && context.items.size() > 1",
        "context.name.startsWith('a') || context.name.endsWith('z')",
        "context.name.contains('x') && string(context.n) == '1'",
        "int(context.d) == 1 && double(context.n) == 1.0 && uint(1) == 1u",
        "has(context.x) && context.get('x', 0) >= 0 && context.get('y') == null",
        "context.items.all(i, i > 0) && context.items.exists(i, i > 1)",
        "context.items.exists_one(i, i == 1) && context.items.map(i, i * 2).size() == 2",
        "context.items.filter(i, i > 1).size() == 1 && 2 in context.items",
        "timestamp(context.at) > timestamp('2020-01-01T00:00:00Z')",
        "type(context.n) == int && !(context.n < 0) && -context.n < 0",
    ] {
        Condition::compile(source).unwrap_or_else(|e| panic!("{source}: {e}"));
    }
}

#[test]
fn condition_is_send_sync_clone_debug() {
    fn assert_traits<T: Send + Sync + Clone + fmt::Debug + 'static>() {}
    assert_traits::<Condition>();
    assert_traits::<ConditionError>();
    let c = Condition::compile("context.score >= 80").expect("a valid condition");
    assert_eq!(format!("{c:?}"), r#"Condition("context.score >= 80")"#);
    assert_eq!(c.clone().source(), "context.score >= 80");
}

#[test]
fn field_access_and_python_style_get() {
    let c = json!({"score": 85});
    assert!(holds("context.score >= 80", c.clone()));
    assert!(holds("context.get('score') >= 80", c.clone()));
    assert!(holds("context['score'] >= 80", c.clone()));
    assert!(!holds("context.score >= 90", c.clone()));
    assert!(!holds("context.get('score') >= 90", c));
}

#[test]
fn get_with_default_and_null() {
    let c = json!({"score": 85, "nothing": null});
    assert!(holds("context.get('missing') == null", c.clone()));
    assert!(holds("context.get('missing', 7) == 7", c.clone()));
    assert!(holds("context.get('score', 7) == 85", c.clone()));
    // a present null is returned as is, not replaced by the default
    assert!(holds("context.get('nothing', 7) == null", c.clone()));
    // on nested maps, and on map literals
    let nested = json!({"order": {"total": 10}});
    assert!(holds("context.order.get('total') == 10", nested.clone()));
    assert!(holds("context.order.get('tax', 0) == 0", nested));
    assert!(holds("{'a': 1}.get('a') == 1", json!({})));
    assert!(holds("{'a': 1}.get('b', 2) == 2", json!({})));
    // get on something that is not a map
    assert!(is_evaluate_error(eval("'abc'.get('a') == null", json!({}))));
}

#[test]
fn missing_key_is_an_evaluate_error() {
    let err = eval("context.score >= 80", json!({})).unwrap_err();
    match &err {
        ConditionError::Evaluate {
            source_text,
            message,
        } => {
            assert_eq!(source_text, "context.score >= 80");
            assert!(message.contains("score"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("context.score >= 80"));
}

#[test]
fn get_of_missing_key_compared_is_an_error() {
    // null >= 80 has no overload: an error, which the engine treats as "not taken"
    assert!(is_evaluate_error(eval(
        "context.get('score') >= 80",
        json!({})
    )));
    // but equality with null is fine
    assert!(!holds("context.get('score') == 80", json!({})));
}

#[test]
fn has_guards_a_missing_key() {
    let source = "has(context.score) && context.score >= 80";
    assert!(!holds(source, json!({})));
    assert!(holds(source, json!({"score": 80})));
    assert!(!holds(source, json!({"score": 79})));
    assert!(holds("has(context.a.b)", json!({"a": {"b": null}})));
    assert!(!holds("has(context.a.c)", json!({"a": {"b": 1}})));
    assert!(holds("context.?score.orValue(0) == 0", json!({})));
    assert!(holds("context.?score.orValue(0) == 3", json!({"score": 3})));
}

#[test]
fn boolean_logic() {
    let c = json!({"a": true, "b": false});
    assert!(holds("context.a && !context.b", c.clone()));
    assert!(holds("context.a || context.b", c.clone()));
    assert!(!holds("context.a && context.b", c.clone()));
    assert!(holds("!(context.a && context.b)", c.clone()));
    assert!(holds("context.b ? false : true", c.clone()));
    // short-circuit: the right side's error does not matter
    assert!(holds("context.a || context.missing", c.clone()));
    assert!(!holds("context.b && context.missing", c.clone()));
    assert!(is_evaluate_error(eval("context.a && context.missing", c)));
}

#[test]
fn false_really_is_false() {
    assert!(!holds(
        "context.approved == true",
        json!({"approved": false})
    ));
    assert!(holds("context.approved == true", json!({"approved": true})));
    assert!(!holds("context.approved", json!({"approved": false})));
    assert!(!holds(
        "context.status == 'approved'",
        json!({"status": "rejected"})
    ));
    // a bool stored as a string is not a bool
    assert!(!holds(
        "context.approved == true",
        json!({"approved": "true"})
    ));
}

#[test]
fn strings() {
    let c = json!({"email": "Ann@example.com", "name": "Ann", "empty": ""});
    assert!(holds("context.email.contains('@')", c.clone()));
    assert!(holds("context.email.startsWith('Ann')", c.clone()));
    assert!(holds("context.email.endsWith('.com')", c.clone()));
    assert!(!holds("context.email.endsWith('.org')", c.clone()));
    assert!(holds("size(context.name) == 3", c.clone()));
    assert!(holds("context.name.size() == 3", c.clone()));
    assert!(holds("size(context.empty) == 0", c.clone()));
    assert!(holds("context.name == 'Ann'", c.clone()));
    assert!(holds("context.name != 'Bob'", c.clone()));
    assert!(holds("context.name + '!' == 'Ann!'", c.clone()));
    assert!(holds("context.name < 'Bob'", c.clone()));
    assert!(holds("size('héllo') == 5", c.clone())); // code points, not bytes
    assert!(is_evaluate_error(eval("context.name.contains(1)", c)));
}

#[test]
fn matches_needs_the_regex_feature() {
    let source = "context.code.matches('^[A-Z]{3}-[0-9]+$')";
    if env().has_matches {
        let c = Condition::compile(source).expect("the case is a valid condition");
        assert_eq!(c.evaluate(&ctx(json!({"code": "ABC-12"}))), Ok(true));
        assert_eq!(c.evaluate(&ctx(json!({"code": "abc-12"}))), Ok(false));
    } else {
        let err = Condition::compile(source).unwrap_err();
        assert!(err.to_string().contains("regex"), "{err}");
    }
}

#[test]
fn numbers_int_and_double() {
    for amount in [json!(150), json!(150.5), json!(150.0)] {
        let c = json!({ "amount": amount });
        assert!(holds("context.amount > 100", c.clone()), "{c}");
        assert!(holds("context.amount >= 100.0", c.clone()), "{c}");
        assert!(!holds("context.amount < 100", c.clone()), "{c}");
        assert!(holds("context.amount != 100", c.clone()), "{c}");
    }
    assert!(holds("context.score == 80", json!({"score": 80.0})));
    assert!(holds("context.score == 80.0", json!({"score": 80})));
    assert!(holds("context.score > 80", json!({"score": 80.5})));
    assert!(holds("context.n < 0", json!({"n": -3})));
    // beyond i64: a uint, still comparable
    assert!(holds("context.big > 0", json!({"big": u64::MAX})));
    // arithmetic does not mix int and double
    assert!(holds("context.a + 1 == 151", json!({"a": 150})));
    assert!(is_evaluate_error(eval(
        "context.a + 1 > 0",
        json!({"a": 150.5})
    )));
    assert!(holds(
        "double(context.a) + 1.0 > 151.0",
        json!({"a": 150.5})
    ));
    assert!(holds("double(context.a) + 1.0 > 150.0", json!({"a": 150})));
    // division by zero is an error, not a panic
    assert!(is_evaluate_error(eval(
        "context.a / 0 == 1",
        json!({"a": 1})
    )));
    // overflow too
    assert!(is_evaluate_error(eval(
        "context.a * 2 > 0",
        json!({"a": i64::MAX})
    )));
}

#[test]
fn lists() {
    let c = json!({"tags": ["vip", "eu"], "items": [1, 2, 3], "none": []});
    assert!(holds("'vip' in context.tags", c.clone()));
    assert!(!holds("'us' in context.tags", c.clone()));
    assert!(holds("size(context.items) > 2", c.clone()));
    assert!(!holds("size(context.none) > 0", c.clone()));
    assert!(holds("context.items[0] == 1", c.clone()));
    assert!(holds("context.items.all(i, i > 0)", c.clone()));
    assert!(holds("context.items.exists(i, i == 3)", c.clone()));
    assert!(holds("context.items.exists_one(i, i == 3)", c.clone()));
    assert!(holds("context.items.map(i, i * 2) == [2, 4, 6]", c.clone()));
    assert!(holds(
        "size(context.items.filter(i, i > 1)) == 2",
        c.clone()
    ));
    assert!(holds("context.tags == ['vip', 'eu']", c.clone()));
    assert!(holds("2.0 in context.items", c.clone()));
    assert!(is_evaluate_error(eval("context.items[7] == 1", c)));
}

#[test]
fn nested_objects_and_the_context_itself() {
    let c = json!({"order": {"total": 120, "lines": [{"sku": "a"}]}, "n": 1});
    assert!(holds("context.order.total > 100", c.clone()));
    assert!(holds("context.order.lines[0].sku == 'a'", c.clone()));
    assert!(holds(
        "context.order == {'total': 120, 'lines': [{'sku': 'a'}]}",
        c.clone()
    ));
    assert!(holds("'order' in context", c.clone()));
    assert!(!holds("'missing' in context", c.clone()));
    assert!(holds("size(context) == 2", c.clone()));
    assert!(holds("context.size() == 2", c.clone()));
    assert!(holds("context.exists(k, k == 'n')", c.clone()));
    assert!(holds("context.all(k, k.size() > 0)", c.clone()));
    assert!(holds(
        "context == {'order': context.order, 'n': 1}",
        c.clone()
    ));
    assert!(!holds("context == {'n': 1}", c.clone()));
    // the documented quirk: a map literal on the left only equals cel's own maps
    assert!(holds("context == {'n': 1}", json!({"n": 1})));
    assert!(!holds("{'n': 1} == context", json!({"n": 1})));
    assert!(holds("type(context) == map", c.clone()));
    assert!(holds("type(context.n) == int", c.clone()));
    assert!(!holds("1 in context", c.clone()));
    assert!(is_evaluate_error(eval("context[1] == 1", c)));
}

#[test]
fn non_bool_result_is_wrong_type() {
    let err = eval("context.score", json!({"score": 42})).unwrap_err();
    match err {
        ConditionError::WrongType {
            expected, found, ..
        } => {
            assert_eq!(expected, "a bool");
            assert_eq!(found, "int 42");
        }
        other => panic!("{other:?}"),
    }
    let err = eval("'x'", json!({})).unwrap_err();
    assert!(err.to_string().contains("string \"x\""), "{err}");
    let err = eval("context", json!({"a": 1})).unwrap_err();
    assert!(matches!(err, ConditionError::WrongType { .. }), "{err}");
    let err = eval("null", json!({})).unwrap_err();
    assert!(err.to_string().contains("null"), "{err}");
    // a long value is shortened
    let long = "y".repeat(500);
    let err = eval("context.s", json!({ "s": long })).unwrap_err();
    assert!(err.to_string().len() < 200, "{err}");
}

#[test]
fn literal_conditions() {
    assert!(holds("true", json!({})));
    assert!(!holds("false", json!({})));
    assert!(holds("1 < 2", json!({})));
}

#[test]
fn evaluate_time_accepts_timestamp_string_and_int() {
    let expected = 1_893_456_000_000_i64; // 2030-01-01T00:00:00Z
    let time = |source: &str, c: Json| {
        Condition::compile(source)
            .unwrap_or_else(|e| panic!("{e}"))
            .evaluate_time(&ctx(c))
    };
    assert_eq!(
        time("timestamp('2030-01-01T00:00:00Z')", json!({})),
        Ok(expected)
    );
    assert_eq!(time("'2030-01-01T00:00:00Z'", json!({})), Ok(expected));
    assert_eq!(time("'2030-01-01T01:00:00+01:00'", json!({})), Ok(expected));
    assert_eq!(time("1893456000000", json!({})), Ok(expected));
    assert_eq!(
        time("context.deadline", json!({"deadline": expected})),
        Ok(expected)
    );
    assert_eq!(
        time(
            "context.deadline",
            json!({"deadline": "2030-01-01T00:00:00.250Z"})
        ),
        Ok(expected + 250)
    );
    assert_eq!(
        time("timestamp(context.d)", json!({"d": "2030-01-01T00:00:00Z"})),
        Ok(expected)
    );
    assert_eq!(
        time(
            "context.a < context.b ? context.a : context.b",
            json!({"a": expected, "b": expected + 1})
        ),
        Ok(expected)
    );
    // errors
    assert!(matches!(
        time("'next tuesday'", json!({})),
        Err(ConditionError::Evaluate { .. })
    ));
    assert!(matches!(
        time("timestamp('nope')", json!({})),
        Err(ConditionError::Evaluate { .. })
    ));
    assert!(matches!(
        time("1.5", json!({})),
        Err(ConditionError::WrongType {
            expected: "a point in time",
            ..
        })
    ));
    assert!(matches!(
        time("true", json!({})),
        Err(ConditionError::WrongType { .. })
    ));
    assert!(matches!(
        time("context.missing", json!({})),
        Err(ConditionError::Evaluate { .. })
    ));
}

#[test]
fn timestamps_compare() {
    assert!(holds(
        "timestamp('2030-01-01T00:00:00Z') > timestamp('2029-12-31T23:59:59Z')",
        json!({})
    ));
    assert!(holds(
        "timestamp(context.due) < timestamp('2030-01-01T00:00:00Z')",
        json!({"due": "2029-06-01T12:00:00+02:00"})
    ));
    assert!(holds(
        "timestamp('2030-01-01T00:00:00Z') == timestamp('2030-01-01T01:00:00+01:00')",
        json!({})
    ));
    assert!(is_evaluate_error(eval(
        "timestamp('2030-01-01T00:00:00Z') > 5",
        json!({})
    )));
}

#[test]
fn compile_errors() {
    for source in [
        "context.score >=",
        ")))",
        "",
        "   \n\t",
        "context.",
        "1 +",
        "'open",
    ] {
        match Condition::compile(source) {
            Err(ConditionError::Compile {
                source_text,
                message,
            }) => {
                assert_eq!(source_text, source);
                assert!(!message.is_empty());
            }
            other => panic!("{source:?}: {other:?}"),
        }
    }
    // cel's parse error says where
    let err = Condition::compile("context.score >=").unwrap_err();
    assert!(err.to_string().contains("1:"), "{err}");
}

#[test]
fn unknown_variables_are_refused() {
    let err = Condition::compile("ctx.score > 1").unwrap_err();
    assert!(err.to_string().contains("unknown variable `ctx`"), "{err}");
    assert!(Condition::compile("context.a > 1 && other").is_err());
    // macro variables, type names and namespaces are fine
    for ok in [
        "context.items.all(x, x > 0)",
        "[1, 2].map(x, [3].map(y, x + y)) == [[4], [5]]",
        "type(context.a) == int",
        "optional.of(1).hasValue()",
        ".context.a == 1",
    ] {
        assert!(
            Condition::compile(ok).is_ok(),
            "{ok}: {:?}",
            Condition::compile(ok)
        );
    }
    // a macro variable does not leak out of its macro
    assert!(Condition::compile("context.items.all(x, x > 0) && x").is_err());
}

#[test]
fn size_and_depth_limits() {
    let long = format!("context.a == '{}'", "a".repeat(MAX_SOURCE_LEN));
    let err = Condition::compile(&long).unwrap_err();
    assert!(err.to_string().contains("bytes long"), "{err}");
    let deep = format!("{}1{}", "(".repeat(200), ")".repeat(200));
    assert!(Condition::compile(&deep).is_err());
    // long flat chains are deep trees: refused before evaluation could recurse
    let too_deep = |source: String| {
        assert!(source.len() <= MAX_SOURCE_LEN, "{}", source.len());
        let err = Condition::compile(&source).unwrap_err();
        assert!(err.to_string().contains("levels deep"), "{err}");
    };
    too_deep(format!("{} > 0", vec!["1"; 2000].join("+")));
    too_deep(format!("{} > 0", vec!["context.a"; 400].join("+")));
    too_deep(format!("context{} == 1", ".a".repeat(2000)));
    too_deep(format!("context.a{} == 1", "[0]".repeat(1300)));
    too_deep(format!("context{} == 1", ".get('a')".repeat(300)));
    // prefix operators are folded by the parser; whatever it does, no crash
    for source in [
        format!("{}true", "!".repeat(4000)),
        format!("{}1 > 0", "-".repeat(4000)),
        format!("{}true", "!(".repeat(1000)),
        format!("{}1", "[".repeat(2000)),
        format!("{}1", "{1:".repeat(1000)),
        format!("true{}", " ? true : false".repeat(250)),
        format!("{}true", "true ? ".repeat(500)),
        format!("{}true", "true && ".repeat(500)),
        format!("{}true", "false || ".repeat(450)),
        "'a' + ".repeat(680) + "'a' == 'a'",
    ] {
        if let Ok(c) = Condition::compile(&source) {
            let _ = c.evaluate(&ctx(json!({"a": [1]})));
        }
    }
    // a long but reasonable condition is fine
    let ors = (0..50)
        .map(|i| format!("context.x == {i}"))
        .collect::<Vec<_>>()
        .join(" || ");
    assert!(holds(&ors, json!({"x": 49})));
}

#[test]
fn deep_json_is_an_error_not_a_crash() {
    let mut value = json!(1);
    for _ in 0..200 {
        value = json!({ "a": value });
    }
    let c = json!({ "deep": value });
    assert!(is_evaluate_error(eval("context.deep.a == 1", c.clone())));
    assert!(holds("has(context.deep) || true", c));
}

/// Prints compile and evaluation times; asserts nothing. Run with
/// `cargo test --release -- --nocapture timings`.
/// Issue 15, item 11: a nested comprehension over 4,000 items of user data took 5.5 s
/// per evaluation; under the budget it is an error at once, however it is written.
#[test]
fn budget_stops_a_hostile_nested_comprehension() {
    let items: Vec<i64> = (0..4_000).collect();
    let small: Vec<i64> = (0..100).collect();
    let data = json!({ "a": items, "small": small, "s": "x".repeat(200_000) });
    let hostile = [
        "context.a.all(x, context.a.all(y, x != y || x == y))",
        "context.a.exists(x, context.a.exists(y, x == y + 1000000))",
        "[context.a].all(l, l.all(x, l.all(y, x == y || true)))",
        "context.a.all(x, x in context.a)",
        "context.a.map(x, context.a.filter(y, y > x)).size() > 0",
        "context.a.all(x, context.a.all(y, x == y || true)) || true",
        "context.a.all(x, context.s.contains('y') == false)",
    ];
    for source in hostile {
        let started = std::time::Instant::now();
        let result = eval(source, data.clone());
        let took = started.elapsed();
        assert!(
            matches!(&result, Err(ConditionError::Evaluate { message, .. }) if message.contains("budget")),
            "{source}: {result:?}"
        );
        // 100 ms in a release build; a debug build is about ten times slower.
        let limit = if cfg!(debug_assertions) { 1_000 } else { 100 };
        assert!(
            took < std::time::Duration::from_millis(limit),
            "{source} took {took:?}"
        );
    }
    // What conditions normally do still works, on the same data.
    assert!(holds("context.a.exists(x, x == 3999)", data.clone()));
    assert!(holds(
        "context.a.all(x, x >= 0) && size(context.a) == 4000",
        data.clone()
    ));
    assert!(holds(
        "context.a.filter(x, x > 3990).size() == 9",
        data.clone()
    ));
    assert!(holds(
        "context.small.all(x, context.small.exists(y, y == x))",
        data.clone()
    ));
    assert!(holds("context.s.startsWith('xx')", data.clone()));
    // The budget is per evaluation, not spent for good.
    assert!(holds("context.a.exists(x, x == 0)", data));
}

#[test]
fn timings() {
    use std::time::Instant as Clock;
    let source = "context.score >= 80 && context.approved == true";
    let rounds = 2_000u32;
    let start = Clock::now();
    for _ in 0..rounds {
        let _ = Condition::compile(source);
    }
    let compile = start.elapsed() / rounds;
    let cond = Condition::compile(source).expect("the case is a valid condition");
    let small = ctx(json!({"score": 85, "approved": true, "name": "Ann", "tags": ["a"]}));
    let mut big = small.clone();
    for i in 0..1000 {
        big.insert(
            format!("key{i}"),
            json!({"nested": [i, i + 1], "s": "text"}),
        );
    }
    let eval_time = |context: &Map<String, Json>| {
        let start = Clock::now();
        for _ in 0..rounds {
            let _ = cond.evaluate(context);
        }
        start.elapsed() / rounds
    };
    let small_time = eval_time(&small);
    let big_time = eval_time(&big);
    let start = Clock::now();
    for _ in 0..20 {
        let converted: Vec<_> = big.values().map(|v| json_to_val(v, 0)).collect();
        std::hint::black_box(converted);
    }
    let convert_all = start.elapsed() / 20;
    println!(
        "condition timings: compile {compile:?}; eval (4-key context) {small_time:?}; \
         eval (1004-key context) {big_time:?}; converting the 1004-key context as a whole \
         {convert_all:?}"
    );
}

fn small_context() -> Map<String, Json> {
    ctx(json!({
        "score": 85, "amount": 150.5, "name": "Ann", "approved": false,
        "tags": ["vip", "eu"], "order": {"total": 3, "lines": [1, 2]}, "nothing": null
    }))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn compile_and_evaluate_never_panic(source in any::<String>()) {
        if let Ok(c) = Condition::compile(&source) {
            let _ = c.evaluate(&small_context());
            let _ = c.evaluate_time(&small_context());
        }
    }

    #[test]
    fn cel_like_sources_never_panic(
        source in "[a-z.()\\[\\]{}'\"!&|<>=+*/%?:, 0-9-]{0,60}"
    ) {
        let source = format!("context.{source}");
        if let Ok(c) = Condition::compile(&source) {
            let _ = c.evaluate(&small_context());
            let _ = c.evaluate_time(&small_context());
        }
    }

    #[test]
    fn token_soup_never_panics(tokens in proptest::collection::vec(
        prop::sample::select(vec![
            "context", ".", "score", "amount", "name", "tags", "order", "get", "(", ")",
            "[", "]", "{", "}", "'x'", "1", "1.5", "-", "!", "&&", "||", "==", ">=", "<",
            "+", "*", "/", "%", "in", "has", "size", ",", "?", ":", "all", "map", "x",
            "timestamp", "null", "true", "u", "b'", "\"", "\\", "\u{0}", "é", "?.",
        ]),
        0..24,
    )) {
        let source = tokens.join("");
        if let Ok(c) = Condition::compile(&source) {
            let _ = c.evaluate(&small_context());
            let _ = c.evaluate_time(&small_context());
        }
        let source = tokens.join(" ");
        if let Ok(c) = Condition::compile(&source) {
            let _ = c.evaluate(&small_context());
            let _ = c.evaluate_time(&small_context());
        }
    }
}
