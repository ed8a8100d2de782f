//! The durable backends a worker behaviour is run on: SQLite in memory (one segment), and
//! PostgreSQL with 4 segments in a schema of the test's own when a server runs (see
//! `postgres.rs`, which the including test declares as `mod pg`).

use std::sync::Arc;

use events::store::{DurableStore, SqliteStore};

/// A fresh store per backend for `test`.
pub async fn backends(test: &str) -> Vec<Arc<dyn DurableStore>> {
    let sqlite: Arc<dyn DurableStore> =
        Arc::new(SqliteStore::open_in_memory().expect("store opens"));
    #[allow(unused_mut)]
    let mut stores = vec![sqlite];
    #[cfg(feature = "postgres")]
    if let Some(store) = super::pg::store(test).await {
        stores.push(Arc::new(store.with_segments(4)));
    }
    #[cfg(not(feature = "postgres"))]
    let _ = test;
    stores
}
