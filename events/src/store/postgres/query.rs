//! The operator's event log query ([`DurableStore::query_log`](crate::store::DurableStore::query_log))
//! on PostgreSQL: a `WHERE` built from the filters given, so each one can use its index.

use tokio_postgres::types::ToSql;
use uuid::Uuid;

use super::PostgresStore;
use crate::store::durable::LogQuery;
use crate::store::{StoreError, StoredEvent};

/// The events matching `query`, in position order.
pub(super) async fn query_log(
    store: &PostgresStore,
    query: &LogQuery,
) -> Result<Vec<StoredEvent>, StoreError> {
    let from = query.from as i64;
    let to = query.to.map(|to| to.min(i64::MAX as u64) as i64);
    let correlation = query.correlation.map(|id: Uuid| id.to_string());
    let limit = query.limit.map(|n| n.min(i64::MAX as usize) as i64);
    let mut filters = Vec::new();
    let mut args: Vec<&(dyn ToSql + Sync)> = Vec::new();
    filters.push(format!("position >= ${}", args.len() + 1));
    args.push(&from);
    if let Some(to) = &to {
        filters.push(format!("position <= ${}", args.len() + 1));
        args.push(to);
    }
    if let Some((aggregate_type, aggregate_id)) = &query.aggregate {
        filters.push(format!(
            "aggregate_type = ${} AND aggregate_id = ${}",
            args.len() + 1,
            args.len() + 2
        ));
        args.push(aggregate_type);
        args.push(aggregate_id);
    }
    if let (Some(id), Some(text)) = (&query.correlation, &correlation) {
        // The chain's first event carries no correlation id of its own: its id is the chain's.
        filters.push(format!(
            "(event_id = ${} OR metadata->>'correlation_id' = ${})",
            args.len() + 1,
            args.len() + 2
        ));
        args.push(id);
        args.push(text);
    }
    if let Some(name) = &query.name {
        filters.push(format!("name = ${}", args.len() + 1));
        args.push(name);
    }
    let limit_clause = match &limit {
        Some(limit) => {
            args.push(limit);
            format!(" LIMIT ${}", args.len())
        }
        None => String::new(),
    };
    let client = store.client().await?;
    PostgresStore::read_where(
        &**client,
        &format!(
            "WHERE {} ORDER BY position{limit_clause}",
            filters.join(" AND ")
        ),
        &args,
    )
    .await
}
