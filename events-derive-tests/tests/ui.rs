//! Compile-time tests of the `events` macros.
//!
//! `pass/` holds every supported form; `fail/` holds one error per file, named after the error,
//! with the expected compiler output in the `.stderr` beside it. Regenerate the `.stderr` files
//! with `TRYBUILD=overwrite cargo test -p events-derive-tests` and read every one of them.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
