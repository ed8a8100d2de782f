//! Schema migrations: the `.sql` files of `migrations/`, applied in order, each once.

use super::{backend, PostgresStore};
use crate::store::StoreError;

/// Every migration, in order: (version, name, SQL). Append new files; never edit an old one.
const MIGRATIONS: &[(i32, &str, &str)] = &[
    (1, "log", include_str!("migrations/0001_log.sql")),
    (2, "delivery", include_str!("migrations/0002_delivery.sql")),
    (
        3,
        "log_correlation",
        include_str!("migrations/0003_log_correlation.sql"),
    ),
    (4, "views", include_str!("migrations/0004_views.sql")),
    (
        5,
        "snapshots",
        include_str!("migrations/0005_snapshots.sql"),
    ),
    (6, "members", include_str!("migrations/0006_members.sql")),
    (7, "circuits", include_str!("migrations/0007_circuits.sql")),
    (8, "timers", include_str!("migrations/0008_timers.sql")),
    (
        9,
        "log_causation",
        include_str!("migrations/0009_log_causation.sql"),
    ),
];

/// What [`PostgresStore::migrate`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Migrated {
    /// The schema the tables live in.
    pub schema: String,
    /// Names of the migrations applied now (empty when the schema was up to date).
    pub applied: Vec<String>,
    /// The schema's version afterwards.
    pub version: i32,
}

impl PostgresStore {
    /// Creates or upgrades the store's tables in the connection's schema. Safe to run from
    /// several processes at once (an advisory lock per schema serialises them) and to run
    /// again (applied migrations are recorded in `events_migrations`).
    pub async fn migrate(&self) -> Result<Migrated, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        tx.batch_execute(
            "SELECT pg_advisory_xact_lock(hashtext('events.migrate:' || current_schema()));
             CREATE TABLE IF NOT EXISTS events_migrations (
                 version    integer     PRIMARY KEY,
                 name       text        NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now()
             );",
        )
        .await
        .map_err(backend)?;
        let row = tx
            .query_one(
                "SELECT current_schema(), COALESCE(MAX(version), 0) FROM events_migrations",
                &[],
            )
            .await
            .map_err(backend)?;
        let (schema, from): (String, i32) = (row.get(0), row.get(1));
        let (mut version, mut applied) = (from, Vec::new());
        for &(v, name, sql) in MIGRATIONS.iter().filter(|(v, ..)| *v > from) {
            tx.batch_execute(sql).await.map_err(backend)?;
            tx.execute(
                "INSERT INTO events_migrations (version, name) VALUES ($1, $2)",
                &[&v, &name],
            )
            .await
            .map_err(backend)?;
            tracing::info!(schema, version = v, name, "events schema migrated");
            applied.push(name.to_owned());
            version = v;
        }
        tx.commit().await.map_err(backend)?;
        Ok(Migrated {
            schema,
            applied,
            version,
        })
    }
}
