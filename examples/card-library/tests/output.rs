//! Runs the example binary: its output reads as prose (no `Debug` of options or vectors).

#[test]
fn the_output_reads_as_prose() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_card-library"))
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = String::from_utf8(out.stdout).unwrap();
    for expected in [
        "analytics: 2 cards added, 2 collections created\n",
        "search `lotus`: Black Lotus\n",
        "notifications sent:\n  library 1: new collection `Vintage`\n",
        "reported, not failed: `library.collection_created`: 2 handlers ran, 1 failed\n",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
    for debug in ["Some(", "None", "[\"", "(s)"] {
        assert!(!out.contains(debug), "{debug:?} in:\n{out}");
    }
}
