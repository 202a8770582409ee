//! A grammar of JSON Schemas (forms of human tasks), and data to check against them, for
//! the form and definition targets.

use proptest::prelude::*;
use serde_json::{json, Map, Value};

use super::{any_number, any_string, json_value};

/// Property names of the generated forms, and keys of the generated data.
pub const FIELDS: &[&str] = &[
    "approved", "amount", "comment", "lines", "sku", "email", "when", "x",
];

/// Patterns: ordinary ones, invalid ones, and ones that backtrack on the wrong input.
const PATTERNS: &[&str] = &[
    "^[a-z]+$",
    "^\\d{3}-\\d{4}$",
    "\\p{L}+",
    "^(a+)+$",
    "^(a|a)*$",
    "^(a|aa)+b$",
    "(x+x+)+y",
    "(?=a)a",
    "(a)\\1",
    "(",
    "[",
    "a{1000}",
    "a{100000}",
    "\\",
    "",
];

const FORMATS: &[&str] = &[
    "email",
    "idn-email",
    "date",
    "date-time",
    "time",
    "duration",
    "uuid",
    "ipv4",
    "ipv6",
    "uri",
    "uri-reference",
    "iri",
    "hostname",
    "idn-hostname",
    "regex",
    "json-pointer",
    "relative-json-pointer",
    "uri-template",
    "bogus",
];

const TYPES: &[&str] = &[
    "string", "number", "integer", "boolean", "object", "array", "null",
];

const DRAFTS: &[&str] = &[
    "https://json-schema.org/draft/2020-12/schema",
    "https://json-schema.org/draft/2019-09/schema",
    "http://json-schema.org/draft-07/schema#",
    "http://json-schema.org/draft-06/schema#",
    "http://json-schema.org/draft-04/schema#",
    "http://example.com/not-a-meta-schema",
    "",
];

fn field() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(FIELDS).prop_map(str::to_owned),
        1 => any_string(),
    ]
}

fn count() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => (0u64..5).prop_map(Value::from),
        1 => any_number(),
        1 => Just(json!("3")),
    ]
}

/// A schema of one type, with constraints of that type (sometimes ill-typed ones).
fn typed() -> BoxedStrategy<Value> {
    let ty = prop_oneof![
        6 => prop::sample::select(TYPES).prop_map(Value::from),
        1 => proptest::collection::vec(prop::sample::select(TYPES), 0..3)
            .prop_map(|t| json!(t)),
        1 => any_number(),
        1 => any_string().prop_map(Value::from),
    ];
    let string = (
        proptest::option::of(count()),
        proptest::option::of(count()),
        proptest::option::of(prop::sample::select(PATTERNS)),
        proptest::option::of(prop::sample::select(FORMATS)),
    )
        .prop_map(|(min, max, pattern, format)| {
            let mut m = Map::new();
            m.insert("type".into(), json!("string"));
            min.map(|v| m.insert("minLength".into(), v));
            max.map(|v| m.insert("maxLength".into(), v));
            pattern.map(|v| m.insert("pattern".into(), json!(v)));
            format.map(|v| m.insert("format".into(), json!(v)));
            Value::Object(m)
        });
    let number = (
        prop::sample::select(vec!["number", "integer"]),
        proptest::option::of(any_number()),
        proptest::option::of(any_number()),
        proptest::option::of(prop_oneof![
            any_number(),
            prop::sample::select(vec![0.1, 0.01, 1e-308, 1e308, 3.0, 0.0]).prop_map(Value::from),
        ]),
        any::<bool>(),
    )
        .prop_map(|(ty, min, max, multiple, exclusive)| {
            let mut m = Map::new();
            m.insert("type".into(), json!(ty));
            let (lo, hi) = if exclusive {
                ("exclusiveMinimum", "exclusiveMaximum")
            } else {
                ("minimum", "maximum")
            };
            min.map(|v| m.insert(lo.into(), v));
            max.map(|v| m.insert(hi.into(), v));
            multiple.map(|v| m.insert("multipleOf".into(), v));
            Value::Object(m)
        });
    let choice = prop_oneof![
        proptest::collection::vec(json_value(FIELDS, 1), 0..4).prop_map(|v| json!({ "enum": v })),
        json_value(FIELDS, 1).prop_map(|v| json!({ "const": v })),
    ];
    prop_oneof![
        2 => ty.prop_map(|t| json!({ "type": t })),
        3 => string,
        3 => number,
        1 => choice,
        1 => prop::sample::select(vec![json!(true), json!(false), json!({})]),
    ]
    .boxed()
}

/// A JSON Schema from the grammar: objects, arrays, combinators and `$ref`s over typed
/// leaves, sometimes with a `$schema` naming another draft (or none that exists), and now
/// and then arbitrary JSON where a schema should be.
pub fn schema() -> BoxedStrategy<Value> {
    let tree = typed().prop_recursive(4, 48, 5, |inner| {
        let object = (
            proptest::collection::vec((field(), inner.clone()), 0..5),
            proptest::collection::vec(field(), 0..3),
            proptest::option::of(prop_oneof![any::<bool>().prop_map(Value::from), inner.clone()]),
            proptest::option::of((prop::sample::select(PATTERNS), inner.clone())),
            proptest::option::of(count()),
        )
            .prop_map(|(props, required, additional, pattern_props, max)| {
                let mut m = Map::new();
                m.insert("type".into(), json!("object"));
                m.insert(
                    "properties".into(),
                    Value::Object(props.into_iter().collect()),
                );
                m.insert("required".into(), json!(required));
                additional.map(|v| m.insert("additionalProperties".into(), v));
                pattern_props.map(|(p, s)| m.insert("patternProperties".into(), json!({ p: s })));
                max.map(|v| m.insert("maxProperties".into(), v));
                Value::Object(m)
            });
        let array = (
            inner.clone(),
            proptest::option::of(proptest::collection::vec(inner.clone(), 0..3)),
            proptest::option::of(count()),
            proptest::option::of(count()),
            any::<bool>(),
            proptest::option::of(inner.clone()),
        )
            .prop_map(|(items, prefix, min, max, unique, contains)| {
                let mut m = Map::new();
                m.insert("type".into(), json!("array"));
                m.insert("items".into(), items);
                prefix.map(|v| m.insert("prefixItems".into(), json!(v)));
                min.map(|v| m.insert("minItems".into(), v));
                max.map(|v| m.insert("maxItems".into(), v));
                m.insert("uniqueItems".into(), json!(unique));
                contains.map(|v| m.insert("contains".into(), v));
                Value::Object(m)
            });
        let combinator = (
            prop::sample::select(vec!["allOf", "anyOf", "oneOf"]),
            proptest::collection::vec(inner.clone(), 0..4),
        )
            .prop_map(|(k, v)| json!({ k: v }));
        let conditional = (inner.clone(), inner.clone(), inner.clone())
            .prop_map(|(i, t, e)| json!({ "if": i, "then": t, "else": e }));
        let reference = (
            inner.clone(),
            prop::sample::select(vec![
                "#/$defs/d",
                "#",
                "#/$defs/missing",
                "#/properties/x",
                "other.json",
                "http://127.0.0.1:1/schema.json",
                "#/$defs/d/items/0",
            ]),
        )
            .prop_map(|(d, r)| {
                json!({ "$defs": { "d": d }, "type": "object", "properties": { "x": { "$ref": r } } })
            });
        prop_oneof![
            3 => object,
            2 => array,
            1 => combinator,
            1 => inner.clone().prop_map(|s| json!({ "not": s })),
            1 => conditional,
            1 => reference,
        ]
    });
    (
        tree,
        proptest::option::of(prop::sample::select(DRAFTS)),
        0u8..20,
    )
        .prop_flat_map(|(mut schema, draft, noise)| {
            if let (Some(d), Value::Object(m)) = (draft, &mut schema) {
                m.insert("$schema".into(), json!(d));
            }
            if noise == 0 {
                json_value(FIELDS, 3).boxed()
            } else {
                Just(schema).boxed()
            }
        })
        .boxed()
}

/// Data to check against a form: random JSON (keys mostly the form's fields), and strings
/// made to make backtracking patterns work hard.
pub fn data() -> BoxedStrategy<Value> {
    prop_oneof![
        6 => json_value(FIELDS, 4),
        1 => (1usize..64, prop::sample::select(vec!["!", "b", "y", ""])).prop_map(|(n, end)| {
            let s = format!("{}{end}", "a".repeat(n));
            json!({ "comment": s, "x": s, "sku": s })
        }),
        1 => (1usize..64).prop_map(|n| Value::String(format!("{}!", "x".repeat(n)))),
    ]
    .boxed()
}
