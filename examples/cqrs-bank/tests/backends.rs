//! Runs the example binary, as a user would, on SQLite (the default) and on PostgreSQL (the
//! same binary, `EVENTS_DATABASE_URL` set): the same ledger.

/// Runs the binary with `EVENTS_DATABASE_URL` set to `url` (unset: the default) and checks
/// what it prints.
fn the_bank_runs(url: Option<&str>) {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_cqrs-bank"));
    command
        .env("NO_COLOR", "1")
        .env_remove("EVENTS_DATABASE_URL");
    if let Some(url) = url {
        command.env("EVENTS_DATABASE_URL", url);
    }
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = String::from_utf8(out.stdout).unwrap();
    for expected in [
        "refused: command rejected: funds not available\n",
        "bank.ledger: 4 delivered",
        "ledger of ACCT-0001 at version 4: balance 593.72, checks written: 1170\n",
        "  atm withdrawal      -150.00\n",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
}

#[test]
fn on_sqlite() {
    the_bank_runs(None);
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn on_postgres() {
    let Some(url) = fresh_schema("cqrs_bank").await else {
        return;
    };
    tokio::task::spawn_blocking(move || the_bank_runs(Some(&url)))
        .await
        .unwrap();
}

/// A URL whose connections live in a fresh schema on the server `EVENTS_POSTGRES_URL` points
/// at; `None` (after saying so) without one, unless `CI=true`: then a missing server fails.
#[cfg(feature = "postgres")]
async fn fresh_schema(name: &str) -> Option<String> {
    let Ok(url) = std::env::var("EVENTS_POSTGRES_URL") else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "EVENTS_POSTGRES_URL is not set and CI=true: run through scripts/servers.sh"
        );
        eprintln!("skipped: EVENTS_POSTGRES_URL is not set (run through scripts/servers.sh)");
        return None;
    };
    let schema = format!("{name}_{}", std::process::id());
    let admin = events::store::PostgresStore::connect(&url).await.unwrap();
    let sql = format!("DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}");
    admin
        .client()
        .await
        .unwrap()
        .batch_execute(&sql)
        .await
        .unwrap();
    let sep = if url.contains('?') { '&' } else { '?' };
    Some(format!("{url}{sep}options=-c%20search_path%3D{schema}"))
}
