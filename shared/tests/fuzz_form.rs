//! Fuzzing the form validator (`weir::form`): random JSON Schemas (a grammar of types,
//! constraints, objects, arrays, combinators, `$ref`s and drafts, and sometimes plain random
//! JSON) are compiled, and random data is checked against those that compile. No input may
//! panic or take 100 ms or more (see `fuzz_support`).
//!
//! `PROPTEST_CASES=1000000 cargo test --release -p weir --test fuzz_form -- --nocapture`

#[path = "../../tests/fuzz_support/mod.rs"]
mod fuzz_support;

use fuzz_support::fuzz;
use fuzz_support::schema::{data, schema};
use weir::form::{FormError, FormSchema};

#[test]
fn random_schemas_and_random_data() {
    fuzz(
        "form",
        2000,
        (schema(), proptest::collection::vec(data(), 1..4)),
        |(schema, data)| {
            let Ok(form) = FormSchema::compile(schema) else {
                return false;
            };
            for d in data {
                if let Err(FormError::Invalid { errors }) = form.validate(d) {
                    // The list is never empty, and bounded (one more entry says so).
                    assert!(!errors.is_empty(), "an Invalid with no error");
                    assert!(errors.len() <= weir::form::MAX_ERRORS + 1);
                }
            }
            true
        },
    );
}
