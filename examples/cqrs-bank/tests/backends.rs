//! Runs the example binary, as a user would, on SQLite (the default) and on PostgreSQL (the
//! same binary, `EVENTS_DATABASE_URL` set): the same ledger.

const BIN: &str = env!("CARGO_BIN_EXE_cqrs-bank");

/// Checks what the binary printed.
fn the_bank_runs(out: &str) {
    for expected in [
        "ACCT-0001-4\nCustomerWroteCheck {\n", // the logging query: account-sequence, event
        "refused: command rejected: funds not available\n",
        "bank.ledger: 4 delivered",
        "ledger of ACCT-0001 at version 4: balance 593.72, checks written: 1170\n",
        "  atm withdrawal      -150.00\n",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
    // The ledger's next event of an account waits for the previous one's view write.
    assert!(!out.contains("view conflict"), "{out}");
}

#[test]
fn on_sqlite() {
    the_bank_runs(&store_harness::run_with_store(BIN, None));
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn on_postgres() {
    if let Some(out) = store_harness::run_on_postgres(BIN, "cqrs_bank").await {
        the_bank_runs(&out);
    }
}
