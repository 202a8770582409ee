//! A grammar of CEL expressions over `context`, for the CEL and definition targets.

use proptest::prelude::*;

/// Keys of contexts, and the fields expressions read.
pub const KEYS: &[&str] = &[
    "x", "y", "score", "items", "name", "approved", "when", "tags", "amount", "e",
];

/// Literals of every CEL type, at and past their edges.
pub fn literal() -> BoxedStrategy<String> {
    prop_oneof![
        any::<i64>().prop_map(|i| i.to_string()),
        (-3i64..=3).prop_map(|i| i.to_string()),
        prop::sample::select(vec![
            "9223372036854775807",
            "-9223372036854775808",
            "9223372036854775808",
            "0x7fffffffffffffff",
            "0xFFFFFFFFFFFFFFFFFF",
            "18446744073709551615u",
            "18446744073709551616u",
            "0u",
            "1u",
            "1.5",
            "-0.0",
            "1e308",
            "1e309",
            "1e-400",
            ".5",
            "5.",
            "true",
            "false",
            "null",
            "''",
            "'abc'",
            "\"s\"",
            "'\\n\\t\\\\\\''",
            "'\\x41\\u00e9\\U0001F600'",
            "'\\400'",
            "'\\uD800'",
            "r'\\d+'",
            "'''a\nb'''",
            "b'\\xff\\x00'",
            "b''",
            "'2030-01-01T00:00:00Z'",
            "'not a time'",
            "'^(a+)+$'",
        ])
        .prop_map(str::to_owned),
        "[a-z ]{0,6}".prop_map(|s| format!("'{s}'")),
    ]
    .boxed()
}

pub fn binary_op() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "+", "-", "*", "/", "%", "==", "!=", "<", "<=", ">", ">=", "&&", "||", "in",
    ])
}

pub fn function() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "size",
        "int",
        "uint",
        "double",
        "string",
        "bytes",
        "bool",
        "type",
        "dyn",
        "timestamp",
        "duration",
        "max",
        "min",
        "has",
        "matches",
        "exists",
        "sise",
    ])
}

pub fn method() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "size",
        "startsWith",
        "endsWith",
        "contains",
        "matches",
        "get",
        "orValue",
        "hasValue",
        "value",
        "keys",
        "lowerAscii",
        "getFullYear",
    ])
}

pub fn macro_name() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["all", "exists", "exists_one", "map", "filter"])
}

/// A CEL expression from the grammar.
pub fn expression() -> BoxedStrategy<String> {
    let leaf = prop_oneof![
        3 => literal(),
        1 => Just("context".to_owned()),
        4 => prop::sample::select(KEYS).prop_map(|k| format!("context.{k}")),
        1 => prop::sample::select(KEYS).prop_map(|k| format!("context['{k}']")),
        1 => prop::sample::select(KEYS).prop_map(|k| format!("context.?{k}")),
        1 => prop::sample::select(vec!["e", "ctx", "optional.none()", "int", "null_type"])
            .prop_map(str::to_owned),
    ];
    leaf.prop_recursive(6, 64, 4, |inner| {
        prop_oneof![
            (inner.clone(), binary_op(), inner.clone(), any::<bool>()).prop_map(
                |(a, op, b, paren)| if paren {
                    format!("({a} {op} {b})")
                } else {
                    format!("{a} {op} {b}")
                }
            ),
            (
                prop::sample::select(vec!["!", "-", "!!", "--"]),
                inner.clone()
            )
                .prop_map(|(op, a)| format!("{op}{a}")),
            (inner.clone(), inner.clone(), inner.clone())
                .prop_map(|(c, a, b)| format!("{c} ? {a} : {b}")),
            (inner.clone(), prop::sample::select(KEYS)).prop_map(|(a, k)| format!("{a}.{k}")),
            (inner.clone(), inner.clone()).prop_map(|(a, i)| format!("{a}[{i}]")),
            (function(), proptest::collection::vec(inner.clone(), 0..3))
                .prop_map(|(f, args)| format!("{f}({})", args.join(", "))),
            (
                inner.clone(),
                method(),
                proptest::collection::vec(inner.clone(), 0..3)
            )
                .prop_map(|(a, m, args)| format!("{a}.{m}({})", args.join(", "))),
            (inner.clone(), macro_name(), inner.clone())
                .prop_map(|(a, m, body)| format!("{a}.{m}(e, {body})")),
            proptest::collection::vec(inner.clone(), 0..4)
                .prop_map(|items| format!("[{}]", items.join(", "))),
            proptest::collection::vec((inner.clone(), inner.clone()), 0..3).prop_map(|kv| {
                let entries: Vec<String> = kv.iter().map(|(k, v)| format!("{k}: {v}")).collect();
                format!("{{{}}}", entries.join(", "))
            }),
            (inner.clone(), prop::sample::select(KEYS)).prop_map(|(a, k)| format!("has({a}.{k})")),
            (inner, prop::sample::select(KEYS), any::<bool>()).prop_map(|(a, k, b)| {
                format!(
                    "context.get('{k}', {a}) {} {b}",
                    if b { "==" } else { "!=" }
                )
            }),
        ]
    })
    .boxed()
}
