//! Forms of human tasks: the JSON Schema that a task's completion data must fit.
//!
//! A [`FormSchema`] is compiled once, when a workflow definition is registered, and checks the
//! data of each completion. It wraps the `jsonschema` crate (0.61, default features off: no HTTP
//! client, no file access), which this module alone touches.
//!
//! # Decisions
//!
//! - **Invalid schemas are refused at registration.** The schema is checked against its
//!   meta-schema (Draft 2020-12 unless `$schema` names another draft), so `{"type": 12}` or
//!   `{"minimum": "x"}` is a [`FormError::InvalidSchema`], not a form that silently accepts
//!   everything. A `$ref` to another document cannot be resolved (no network, no files) and is
//!   refused too; `$ref`s inside the schema (`#/$defs/...`) work.
//! - **Formats are asserted.** `"format": "email"`, `"date"`, `"date-time"`, `"uuid"`, ... are
//!   checked, not just annotations as Draft 2020-12 has them by default: a form author who
//!   writes a format expects it enforced. Unknown formats are ignored.
//! - **Every violation is listed**, each as a [`FieldError`] whose `field` is the JSON pointer of
//!   the offending value in the data (`""` for the root, `/amount`, `/lines/0/sku`). A missing
//!   required property is reported on the object that lacks it (`""` for a top-level one), as
//!   JSON Schema does; its name is in the message (`"amount" is a required property`).
//!   The list stops after [`MAX_ERRORS`] entries (one last entry says so), and a message longer
//!   than [`MAX_MESSAGE_LEN`] bytes is shortened: messages quote the offending value, which is
//!   user input of any size.
//! - **No panics.** Compiling and validating run under `catch_unwind`; a panic inside the
//!   validator becomes an error.

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use serde_json::Value as Json;

/// The most violations one validation reports.
pub const MAX_ERRORS: usize = 100;

/// The longest message of one violation, in bytes; longer ones are shortened.
pub const MAX_MESSAGE_LEN: usize = 300;

/// A compiled JSON Schema for a human task's completion data.
///
/// Cheap to clone (the compiled validator is shared); `Debug` prints the schema.
#[derive(Clone)]
pub struct FormSchema {
    inner: Arc<Compiled>,
}

struct Compiled {
    schema: Json,
    validator: jsonschema::Validator,
}

impl fmt::Debug for FormSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("FormSchema")
            .field(&format_args!("{}", self.inner.schema))
            .finish()
    }
}

/// One violation of a form by completion data.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FieldError {
    /// The JSON pointer of the offending value in the data: `""` for the root, `/amount`,
    /// `/lines/0/sku`.
    pub field: String,
    /// What is wrong, for a person: `"amount" is a required property`,
    /// `-5 is less than the minimum of 0`.
    pub message: String,
}

/// Why a form could not be compiled, or why data does not fit it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FormError {
    /// The schema is not a valid JSON Schema (or refers to a document that cannot be loaded).
    #[error("invalid form schema: {message}")]
    InvalidSchema {
        /// What is wrong with the schema, and where.
        message: String,
    },
    /// The data does not fit the form: every violation, in the validator's order.
    #[error("data does not fit the form: {}", list(errors))]
    Invalid {
        /// The violations; never empty.
        errors: Vec<FieldError>,
    },
}

/// `/amount: ...; (root): ...`, for [`FormError`]'s `Display`.
fn list(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| {
            let field = if e.field.is_empty() {
                "(root)"
            } else {
                &e.field
            };
            format!("{field}: {}", e.message)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The largest compiled size of a `pattern` in a form (256 KiB, approximate). Forms come
/// from definitions a user registers: without a cap, a pattern like `a{100000}` takes a
/// quarter of a second and megabytes to compile. Real patterns (an IBAN, an order number,
/// `[a-z]{2,40}`) compile to a few KiB.
pub const MAX_PATTERN_BYTES: usize = 256 * 1024;

impl FormSchema {
    /// Compiles `schema`; done once, when a definition is registered.
    ///
    /// Fails with [`FormError::InvalidSchema`] when the schema does not fit its meta-schema
    /// (`{"type": 12}`, `{"minimum": "x"}`, a schema that is not an object or a bool), or when it
    /// refers to a document that cannot be loaded.
    pub fn compile(schema: &Json) -> Result<FormSchema, FormError> {
        let built = catch_unwind(AssertUnwindSafe(|| {
            jsonschema::options()
                .should_validate_formats(true)
                .with_pattern_options(
                    jsonschema::PatternOptions::fancy_regex().size_limit(MAX_PATTERN_BYTES),
                )
                .build(schema)
                .map_err(|e| shorten(e.to_string()))
        }));
        match built {
            Ok(Ok(validator)) => Ok(FormSchema {
                inner: Arc::new(Compiled {
                    schema: schema.clone(),
                    validator,
                }),
            }),
            Ok(Err(message)) => Err(FormError::InvalidSchema { message }),
            Err(_) => Err(FormError::InvalidSchema {
                message: "the schema validator failed on this schema".to_owned(),
            }),
        }
    }

    /// The schema as given to [`FormSchema::compile`].
    pub fn schema(&self) -> &Json {
        &self.inner.schema
    }

    /// Checks completion data: `Ok(())`, or [`FormError::Invalid`] listing every violation
    /// (up to [`MAX_ERRORS`]).
    pub fn validate(&self, data: &Json) -> Result<(), FormError> {
        self.check(data, false)
    }

    /// Checks the data of an outcome button (checked when a definition is registered): as
    /// [`FormSchema::validate`] does, except that a top-level required field may be
    /// missing, as the person fills it in beside the button. Whatever the outcome sets
    /// must fit the form.
    pub fn validate_outcome(&self, data: &Json) -> Result<(), FormError> {
        self.check(data, true)
    }

    fn check(&self, data: &Json, partial: bool) -> Result<(), FormError> {
        let checked = catch_unwind(AssertUnwindSafe(|| {
            let mut errors = Vec::new();
            for error in self.inner.validator.iter_errors(data) {
                if partial
                    && error.instance_path().as_str().is_empty()
                    && matches!(
                        error.kind(),
                        jsonschema::error::ValidationErrorKind::Required { .. }
                    )
                {
                    continue;
                }
                if errors.len() == MAX_ERRORS {
                    errors.push(FieldError {
                        field: String::new(),
                        message: format!("more violations, not listed (only {MAX_ERRORS} are)"),
                    });
                    break;
                }
                errors.push(FieldError {
                    field: error.instance_path().as_str().to_owned(),
                    message: shorten(error.to_string()),
                });
            }
            errors
        }));
        let errors = checked.unwrap_or_else(|_| {
            vec![FieldError {
                field: String::new(),
                message: "the schema validator failed on this data".to_owned(),
            }]
        });
        if errors.is_empty() {
            Ok(())
        } else {
            Err(FormError::Invalid { errors })
        }
    }
}

/// Cuts `message` to at most [`MAX_MESSAGE_LEN`] bytes, on a character boundary.
fn shorten(mut message: String) -> String {
    if message.len() > MAX_MESSAGE_LEN {
        let mut end = MAX_MESSAGE_LEN - 3;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push_str("...");
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn form(schema: Json) -> FormSchema {
        FormSchema::compile(&schema).unwrap_or_else(|e| panic!("{schema}: {e}"))
    }

    fn errors(form: &FormSchema, data: Json) -> Vec<FieldError> {
        match form.validate(&data) {
            Err(FormError::Invalid { errors }) => errors,
            other => panic!("{data}: expected violations, got {other:?}"),
        }
    }

    fn approval() -> FormSchema {
        form(json!({
            "type": "object",
            "required": ["amount", "approved"],
            "properties": {
                "amount": {"type": "number", "minimum": 0},
                "approved": {"type": "boolean"},
                "decision": {"enum": ["approve", "reject", "escalate"]},
                "comment": {"type": "string", "maxLength": 10},
                "reviewer": {
                    "type": "object",
                    "required": ["email"],
                    "properties": {
                        "email": {"type": "string", "format": "email"},
                        "level": {"type": "integer", "minimum": 1, "maximum": 3}
                    }
                },
                "lines": {"type": "array", "items": {"type": "object", "required": ["sku"]}}
            },
            "additionalProperties": false
        }))
    }

    #[test]
    fn form_is_send_sync_clone_debug() {
        fn assert_traits<T: Send + Sync + Clone + fmt::Debug + 'static>() {}
        assert_traits::<FormSchema>();
        assert_traits::<FormError>();
        let f = form(json!({"type": "object"}));
        assert_eq!(format!("{f:?}"), r#"FormSchema({"type":"object"})"#);
        assert_eq!(f.clone().schema(), &json!({"type": "object"}));
    }

    #[test]
    fn valid_data_passes() {
        let f = approval();
        assert_eq!(f.validate(&json!({"amount": 10, "approved": true})), Ok(()));
        assert_eq!(
            f.validate(&json!({
                "amount": 0.5, "approved": false, "decision": "reject", "comment": "ok",
                "reviewer": {"email": "ann@example.com", "level": 2},
                "lines": [{"sku": "a"}]
            })),
            Ok(())
        );
    }

    #[test]
    fn required_fields() {
        let errs = errors(&approval(), json!({"approved": true}));
        assert_eq!(
            errs,
            vec![FieldError {
                field: String::new(),
                message: "\"amount\" is a required property".to_owned()
            }]
        );
    }

    #[test]
    fn types() {
        let errs = errors(&approval(), json!({"amount": "ten", "approved": "yes"}));
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(errs
            .iter()
            .any(|e| e.field == "/amount" && e.message == "\"ten\" is not of type \"number\""));
        assert!(errs
            .iter()
            .any(|e| e.field == "/approved" && e.message.contains("boolean")));
        // the root itself
        let errs = errors(&approval(), json!([1, 2]));
        assert_eq!(errs[0].field, "");
        assert!(errs[0].message.contains("object"), "{errs:?}");
    }

    #[test]
    fn minimum_and_maximum() {
        let errs = errors(&approval(), json!({"amount": -5, "approved": true}));
        assert_eq!(
            errs,
            vec![FieldError {
                field: "/amount".to_owned(),
                message: "-5 is less than the minimum of 0".to_owned()
            }]
        );
    }

    #[test]
    fn enums() {
        let errs = errors(
            &approval(),
            json!({"amount": 1, "approved": true, "decision": "maybe"}),
        );
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, "/decision");
        assert!(errs[0].message.contains("maybe"), "{errs:?}");
    }

    #[test]
    fn nested_objects() {
        let errs = errors(
            &approval(),
            json!({"amount": 1, "approved": true, "reviewer": {"level": 9}}),
        );
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert!(fields.contains(&"/reviewer"), "{errs:?}"); // email is missing
        assert!(fields.contains(&"/reviewer/level"), "{errs:?}");
        let errs = errors(
            &approval(),
            json!({"amount": 1, "approved": true, "lines": [{"sku": "a"}, {}]}),
        );
        assert_eq!(errs[0].field, "/lines/1");
    }

    #[test]
    fn formats_are_asserted() {
        let errs = errors(
            &approval(),
            json!({"amount": 1, "approved": true, "reviewer": {"email": "not an email"}}),
        );
        assert_eq!(errs[0].field, "/reviewer/email");
        assert!(errs[0].message.contains("email"), "{errs:?}");
        let dates = form(json!({"type": "string", "format": "date"}));
        assert_eq!(dates.validate(&json!("2030-01-31")), Ok(()));
        assert!(dates.validate(&json!("2030-02-31")).is_err());
        // unknown formats are ignored
        let custom = form(json!({"type": "string", "format": "weir-custom"}));
        assert_eq!(custom.validate(&json!("anything")), Ok(()));
    }

    #[test]
    fn every_violation_is_listed() {
        let errs = errors(
            &approval(),
            json!({"amount": -1, "approved": 3, "comment": "far too long a comment", "x": 1}),
        );
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        for field in ["/amount", "/approved", "/comment", ""] {
            assert!(fields.contains(&field), "{field} in {errs:?}");
        }
        assert_eq!(errs.len(), 4, "{errs:?}");
        let text = FormError::Invalid { errors: errs }.to_string();
        assert!(text.starts_with("data does not fit the form: "), "{text}");
        assert!(
            text.contains("/amount: -1 is less than the minimum of 0"),
            "{text}"
        );
        assert!(text.contains("; "), "{text}");
        assert!(text.contains("(root): Additional properties"), "{text}");
    }

    #[test]
    fn display_is_compact() {
        let err = FormError::Invalid {
            errors: vec![
                FieldError {
                    field: "/amount".into(),
                    message: "-5 is less than the minimum of 0".into(),
                },
                FieldError {
                    field: "".into(),
                    message: "\"approved\" is a required property".into(),
                },
            ],
        };
        assert_eq!(
            err.to_string(),
            "data does not fit the form: /amount: -5 is less than the minimum of 0; \
             (root): \"approved\" is a required property"
        );
        let json = serde_json::to_value(&FieldError {
            field: "/a".into(),
            message: "m".into(),
        })
        .unwrap();
        assert_eq!(json, json!({"field": "/a", "message": "m"}));
    }

    #[test]
    fn too_many_violations_are_capped() {
        let f = form(json!({"type": "array", "items": {"type": "string"}}));
        let data = Json::Array((0..500).map(|i| json!(i)).collect());
        let errs = errors(&f, data);
        assert_eq!(errs.len(), MAX_ERRORS + 1);
        assert!(errs[MAX_ERRORS].message.contains("not listed"));
    }

    #[test]
    fn long_values_are_shortened_in_messages() {
        let f = form(json!({"type": "object", "properties": {"n": {"type": "number"}}}));
        let errs = errors(&f, json!({"n": "é".repeat(5000)}));
        assert!(
            errs[0].message.len() <= MAX_MESSAGE_LEN,
            "{}",
            errs[0].message.len()
        );
        assert!(errs[0].message.ends_with("..."));
    }

    #[test]
    fn a_pattern_too_large_to_compile_quickly_is_refused_at_once() {
        let started = std::time::Instant::now();
        match FormSchema::compile(&json!({"type": "string", "pattern": "a{100000}"})) {
            Err(FormError::InvalidSchema { message }) => {
                assert!(message.contains("a{100000}"), "{message}")
            }
            other => panic!("expected InvalidSchema, got {other:?}"),
        }
        let limit = if cfg!(debug_assertions) { 1_000 } else { 100 };
        assert!(
            started.elapsed().as_millis() < limit,
            "{:?}",
            started.elapsed()
        );
        // A pattern of a real form still compiles.
        FormSchema::compile(
            &json!({"type": "string", "pattern": "^[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}$"}),
        )
        .expect("an IBAN pattern compiles");
    }

    #[test]
    fn outcome_data_may_leave_out_what_the_person_fills_in() {
        let f = approval();
        assert_eq!(f.validate_outcome(&json!({"approved": true})), Ok(()));
        let errs = match f.validate_outcome(&json!({"approved": "yes", "bogus": 1})) {
            Err(FormError::Invalid { errors }) => errors,
            other => panic!("expected violations, got {other:?}"),
        };
        let mut fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        fields.sort_unstable();
        assert_eq!(fields, ["", "/approved"], "{errs:?}");
        // A nested object it sets must still be whole.
        assert!(f.validate_outcome(&json!({"reviewer": {}})).is_err());
        // The full check still wants every required field.
        assert!(f.validate(&json!({"approved": true})).is_err());
    }

    #[test]
    fn invalid_schemas_are_refused() {
        for schema in [
            json!({"type": 12}),
            json!({"type": "invalid_type"}),
            json!({"minimum": "x"}),
            json!({"required": "amount"}),
            json!({"properties": {"a": {"type": ["string", 3]}}}),
            json!({"enum": "not an array"}),
            json!({"pattern": "(unclosed"}),
            json!(12),
            json!("string"),
            json!({"$ref": "https://example.invalid/schema.json"}),
            json!({"$ref": "#/$defs/missing"}),
            json!({"$schema": "https://example.invalid/unknown-draft"}),
        ] {
            match FormSchema::compile(&schema) {
                Err(FormError::InvalidSchema { message }) => {
                    assert!(!message.is_empty(), "{schema}")
                }
                other => panic!("{schema}: expected InvalidSchema, got {other:?}"),
            }
        }
        let err = FormSchema::compile(&json!({"type": 12})).unwrap_err();
        assert!(
            err.to_string().starts_with("invalid form schema: "),
            "{err}"
        );
    }

    #[test]
    fn empty_and_trivial_schemas() {
        let any = form(json!({}));
        for data in [
            json!(null),
            json!(1),
            json!("x"),
            json!({"a": [1]}),
            json!([]),
        ] {
            assert_eq!(any.validate(&data), Ok(()), "{data}");
        }
        assert_eq!(form(json!(true)).validate(&json!({"a": 1})), Ok(()));
        assert!(form(json!(false)).validate(&json!({})).is_err());
    }

    #[test]
    fn local_refs_and_other_drafts() {
        let f = form(json!({
            "$defs": {"money": {"type": "number", "minimum": 0}},
            "type": "object",
            "properties": {"amount": {"$ref": "#/$defs/money"}}
        }));
        assert_eq!(f.validate(&json!({"amount": 3})), Ok(()));
        assert_eq!(errors(&f, json!({"amount": -3}))[0].field, "/amount");
        let draft7 = form(json!({
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "properties": {"n": {"type": "integer"}}
        }));
        assert!(draft7.validate(&json!({"n": 1.5})).is_err());
        assert_eq!(draft7.validate(&json!({"n": 1})), Ok(()));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        #[test]
        fn arbitrary_data_never_panics(data in arb_json()) {
            let _ = approval().validate(&data);
        }

        #[test]
        fn arbitrary_schemas_never_panic(schema in arb_json(), data in arb_json()) {
            if let Ok(f) = FormSchema::compile(&schema) {
                let _ = f.validate(&data);
            }
        }
    }

    fn arb_json() -> impl Strategy<Value = Json> {
        let leaf = prop_oneof![
            Just(Json::Null),
            any::<bool>().prop_map(Json::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            (-1e6f64..1e6).prop_map(|n| json!(n)),
            prop::sample::select(vec![
                "type",
                "object",
                "string",
                "number",
                "integer",
                "minimum",
                "required",
                "properties",
                "items",
                "enum",
                "$ref",
                "#",
                "#/$defs/a",
                "format",
                "email",
                "pattern",
                "^a+$",
                "",
                "é",
            ])
            .prop_map(|s| json!(s)),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Json::Array),
                prop::collection::vec(
                    (
                        prop::sample::select(vec![
                            "type",
                            "minimum",
                            "maximum",
                            "required",
                            "properties",
                            "items",
                            "enum",
                            "const",
                            "$ref",
                            "$defs",
                            "a",
                            "b",
                            "format",
                            "pattern",
                            "allOf",
                            "anyOf",
                            "not",
                            "additionalProperties",
                            "minLength",
                        ]),
                        inner
                    ),
                    0..6
                )
                .prop_map(|entries| Json::Object(
                    entries
                        .into_iter()
                        .map(|(k, v)| (k.to_owned(), v))
                        .collect()
                )),
            ]
        })
    }
}
