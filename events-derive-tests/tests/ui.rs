//! Compile-time tests of the `events` macros.
//!
//! `pass/` holds every supported form; `fail/` holds one misuse per file, named after it, with
//! the expected compiler output in the `.stderr` beside it: exactly one error, on the user's
//! token. Regenerate the `.stderr` files with `TRYBUILD=overwrite cargo test -p
//! events-derive-tests` and read every one of them.

use std::path::Path;

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}

/// One misuse, one error: a follow-up error (a second bound checked on the same token, a
/// missing impl after a rejected attribute) would hide the first in a real build.
#[test]
fn every_fail_case_has_exactly_one_error() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui/fail");
    let mut cases = 0;
    let mut wrong = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        cases += 1;
        let stderr = path.with_extension("stderr");
        let text = std::fs::read_to_string(&stderr)
            .unwrap_or_else(|_| panic!("{} has no committed .stderr", path.display()));
        let errors = text
            .lines()
            .filter(|line| line.starts_with("error[") || line.starts_with("error:"))
            .count();
        if errors != 1 {
            wrong.push(format!("{}: {errors} errors", stderr.display()));
        }
    }
    assert!(cases > 0, "no compile-fail case found in {}", dir.display());
    wrong.sort();
    assert!(
        wrong.is_empty(),
        "expected exactly one error each:\n{}",
        wrong.join("\n")
    );
}
