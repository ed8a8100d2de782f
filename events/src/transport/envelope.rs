//! How a stored event travels as a set of named fields beside its JSON payload (Redis stream
//! entries), and back. The field names are NATS's header names (see the `nats` module's
//! `headers`): `Events-Id`, `Events-Name`, `Events-Version`, `Events-Aggregate-Type`,
//! `Events-Aggregate-Id`, `Events-Sequence`, `Events-Position`, `Events-Correlation-Id`,
//! `Events-Causation-Id`, `Events-Occurred-At` (microseconds since the Unix epoch),
//! `Events-Fields` (user fields as a JSON object), and [`PAYLOAD`] for the payload. Values are
//! carried as they are (these brokers are binary-safe).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use uuid::Uuid;

use crate::store::{EventMetadata, StoredEvent};

/// The event id.
pub const ID: &str = "Events-Id";
/// The event's stable name.
pub const NAME: &str = "Events-Name";
/// The payload's schema version.
pub const VERSION: &str = "Events-Version";
/// The aggregate type.
pub const AGGREGATE_TYPE: &str = "Events-Aggregate-Type";
/// The aggregate id.
pub const AGGREGATE_ID: &str = "Events-Aggregate-Id";
/// The event's sequence in its aggregate's stream.
pub const SEQUENCE: &str = "Events-Sequence";
/// The event's position in the publishing service's log.
pub const POSITION: &str = "Events-Position";
/// The correlation id.
pub const CORRELATION_ID: &str = "Events-Correlation-Id";
/// The causation id.
pub const CAUSATION_ID: &str = "Events-Causation-Id";
/// When the event happened, in microseconds since the Unix epoch.
pub const OCCURRED_AT: &str = "Events-Occurred-At";
/// User metadata fields, as a JSON object.
pub const FIELDS: &str = "Events-Fields";
/// The event's JSON payload, exactly as stored.
pub const PAYLOAD: &str = "Events-Payload";

/// The envelope's fields (the payload not included).
pub fn to_fields(event: &StoredEvent) -> Vec<(&'static str, String)> {
    let mut f = Vec::with_capacity(11);
    f.push((ID, event.event_id.to_string()));
    f.push((NAME, event.name.clone()));
    f.push((VERSION, event.version.to_string()));
    f.push((AGGREGATE_TYPE, event.aggregate_type.clone()));
    f.push((AGGREGATE_ID, event.aggregate_id.clone()));
    f.push((SEQUENCE, event.sequence.to_string()));
    f.push((POSITION, event.position.to_string()));
    if let Some(id) = event.metadata.correlation_id {
        f.push((CORRELATION_ID, id.to_string()));
    }
    if let Some(id) = event.metadata.causation_id {
        f.push((CAUSATION_ID, id.to_string()));
    }
    f.push((OCCURRED_AT, micros(event.occurred_at).to_string()));
    if !event.metadata.fields.is_empty() {
        let json = serde_json::to_string(&event.metadata.fields).expect("fields serialize");
        f.push((FIELDS, json));
    }
    f
}

/// Reads an event back from its fields (`get` returns a field's value) and its JSON payload;
/// the error says what is missing or malformed.
pub fn from_fields<'a>(
    get: impl Fn(&str) -> Option<&'a str>,
    payload: Option<&[u8]>,
) -> Result<StoredEvent, String> {
    let text = |name: &str| get(name).ok_or_else(|| format!("field `{name}` is missing"));
    let parse = |name: &str| -> Result<u64, String> {
        text(name)?
            .parse()
            .map_err(|e| format!("field `{name}`: {e}"))
    };
    let uuid = |name: &str| -> Result<Option<Uuid>, String> {
        get(name)
            .map(|v| Uuid::parse_str(v).map_err(|e| format!("field `{name}`: {e}")))
            .transpose()
    };
    let position = parse(POSITION)?;
    let fields = match get(FIELDS) {
        None => Default::default(),
        Some(json) => serde_json::from_str(json).map_err(|e| format!("field `{FIELDS}`: {e}"))?,
    };
    let payload = payload.ok_or_else(|| format!("field `{PAYLOAD}` is missing"))?;
    let payload = serde_json::from_slice(payload)
        .map_err(|e| format!("the body is not the event's JSON payload: {e}"))?;
    let occurred_at = text(OCCURRED_AT)?
        .parse::<i64>()
        .map_err(|e| format!("field `{OCCURRED_AT}`: {e}"))?;
    Ok(StoredEvent {
        position,
        event_id: uuid(ID)?.ok_or_else(|| format!("field `{ID}` is missing"))?,
        name: text(NAME)?.to_owned(),
        version: u32::try_from(parse(VERSION)?).map_err(|e| format!("field `{VERSION}`: {e}"))?,
        aggregate_type: text(AGGREGATE_TYPE)?.to_owned(),
        aggregate_id: text(AGGREGATE_ID)?.to_owned(),
        sequence: parse(SEQUENCE)?,
        payload,
        metadata: EventMetadata {
            correlation_id: uuid(CORRELATION_ID)?,
            causation_id: uuid(CAUSATION_ID)?,
            fields,
        },
        occurred_at: UNIX_EPOCH + Duration::from_micros(occurred_at.max(0) as u64),
    })
}

/// Microseconds since the Unix epoch (the store's precision).
fn micros(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_round_trips_through_fields() {
        let e = StoredEvent {
            position: 42,
            event_id: Uuid::now_v7(),
            name: "orders.order_placed".into(),
            version: 2,
            aggregate_type: "Order".into(),
            aggregate_id: "eu/7 %\r\n*>ü".into(),
            sequence: 3,
            payload: serde_json::json!({"total": 12}),
            metadata: EventMetadata {
                correlation_id: Some(Uuid::now_v7()),
                causation_id: None,
                fields: [("tenant".to_owned(), "a b\nc".to_owned())].into(),
            },
            occurred_at: UNIX_EPOCH + Duration::from_micros(1_764_000_000_123_456),
        };
        let fields = to_fields(&e);
        let body = serde_json::to_vec(&e.payload).unwrap();
        let get = |n: &str| {
            fields
                .iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(from_fields(get, Some(&body)).unwrap(), e);
        let err = from_fields(|_| None, Some(b"{}")).unwrap_err();
        assert_eq!(err, "field `Events-Position` is missing");
        let err = from_fields(get, Some(b"\xff{")).unwrap_err();
        assert!(
            err.starts_with("the body is not the event's JSON payload"),
            "{err}"
        );
    }
}
