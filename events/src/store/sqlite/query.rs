//! The operator's event log query ([`DurableStore::query_log`](crate::store::DurableStore::query_log))
//! on SQLite: a `WHERE` built from the filters given, so each one can use its index.

use rusqlite::types::Value;
use rusqlite::Connection;

use super::SqliteStore;
use crate::store::durable::LogQuery;
use crate::store::{StoreError, StoredEvent};

/// The events matching `query`, in position order.
pub(super) fn query_log(
    conn: &Connection,
    query: &LogQuery,
) -> Result<Vec<StoredEvent>, StoreError> {
    let mut filters = vec!["position >= ?".to_owned()];
    let mut args = vec![Value::Integer(query.from as i64)];
    if let Some(to) = query.to {
        filters.push("position <= ?".to_owned());
        args.push(Value::Integer(to as i64));
    }
    if let Some((aggregate_type, aggregate_id)) = &query.aggregate {
        filters.push("aggregate_type = ? AND aggregate_id = ?".to_owned());
        args.push(Value::Text(aggregate_type.clone()));
        args.push(Value::Text(aggregate_id.clone()));
    }
    if let Some(correlation) = query.correlation {
        // The chain's first event carries no correlation id of its own: its id is the chain's.
        filters.push("(event_id = ? OR json_extract(metadata, '$.correlation_id') = ?)".to_owned());
        args.push(Value::Text(correlation.to_string()));
        args.push(Value::Text(correlation.to_string()));
    }
    if let Some(name) = &query.name {
        filters.push("name = ?".to_owned());
        args.push(Value::Text(name.clone()));
    }
    // SQLite reads a negative LIMIT as none.
    let limit = query.limit.map_or(-1, |n| n.min(i64::MAX as usize) as i64);
    args.push(Value::Integer(limit));
    SqliteStore::read_where(
        conn,
        &format!("WHERE {} ORDER BY position LIMIT ?", filters.join(" AND ")),
        rusqlite::params_from_iter(args),
    )
}
