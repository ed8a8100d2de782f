//! Runs the example binary, as a user would, on SQLite (the default) and on PostgreSQL (the
//! same binary, `EVENTS_DATABASE_URL` set): the same output, and it reads as prose (no `Debug`
//! of options or vectors).

const BIN: &str = env!("CARGO_BIN_EXE_card-library");

/// Checks what the binary printed.
fn the_output_reads_as_prose(out: &str) {
    for expected in [
        "analytics: 2 cards added, 2 collections created\n",
        "search `lotus`: Black Lotus\n",
        "notifications sent:\n  library 1: new collection `Vintage`\n",
        "reported, not failed: `library.collection_created`: 2 handlers ran, 1 failed\n",
        "audit log (delivered by a worker from the store):\n  library 1: card Black Lotus added\n  library 1: card Lotus Petal added\n",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
    for debug in ["Some(", "None", "[\"", "(s)"] {
        assert!(!out.contains(debug), "{debug:?} in:\n{out}");
    }
}

#[test]
fn on_sqlite() {
    the_output_reads_as_prose(&store_harness::run_with_store(BIN, None));
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn on_postgres() {
    if let Some(out) = store_harness::run_on_postgres(BIN, "card_library").await {
        the_output_reads_as_prose(&out);
    }
}
