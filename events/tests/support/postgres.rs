//! A PostgreSQL schema of its own for each test, on the server `EVENTS_POSTGRES_URL` points at
//! (`scripts/servers.sh` starts one). Without that variable a test skips with a message, unless
//! `CI=true`: then a missing server fails the test.
#![allow(dead_code)] // each test binary uses its own part

use events::store::PostgresStore;

/// The server's URL, or `None` (after saying why) when the test should skip.
pub fn server_url(test: &str) -> Option<String> {
    match std::env::var("EVENTS_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").is_ok_and(|ci| ci == "true") => panic!(
            "EVENTS_POSTGRES_URL is not set and CI=true: start a server with `scripts/servers.sh run cargo test ...`"
        ),
        _ => {
            eprintln!("skipped {test}: EVENTS_POSTGRES_URL is not set (run the tests through `scripts/servers.sh run ...`)");
            None
        }
    }
}

/// A URL whose connections live in a fresh, empty schema named after the test.
pub async fn schema_url(test: &str) -> Option<String> {
    let url = server_url(test)?;
    let schema = format!("t_{}_{}", std::process::id(), test)
        .chars()
        .take(63)
        .collect::<String>();
    let admin = PostgresStore::connect(&url)
        .await
        .expect("the test server answers");
    admin
        .client()
        .await
        .expect("a connection")
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE; CREATE SCHEMA \"{schema}\""
        ))
        .await
        .expect("a fresh schema");
    let sep = if url.contains('?') { '&' } else { '?' };
    Some(format!("{url}{sep}options=-c%20search_path%3D{schema}"))
}

/// A migrated store in a fresh schema named after the test.
pub async fn store(test: &str) -> Option<PostgresStore> {
    let url = schema_url(test).await?;
    let store = PostgresStore::connect(&url)
        .await
        .expect("the test server answers");
    store.migrate().await.expect("migrations apply");
    Some(store)
}
