//! How a stored event travels as a NATS message, and back.
//!
//! The body is the event's JSON payload, exactly as stored (its schema version says how to read
//! it: a consumer upcasts it as it would a stored event). The envelope travels in headers, so a
//! consumer in any language can route and de-duplicate without parsing the body:
//!
//! | header | value |
//! |---|---|
//! | `Nats-Msg-Id` | the event id (JetStream de-duplicates on it) |
//! | `Events-Id` | the event id (UUID) |
//! | `Events-Name` | the event's stable name |
//! | `Events-Version` | the payload's schema version |
//! | `Events-Aggregate-Type`, `Events-Aggregate-Id` | the stream the event belongs to |
//! | `Events-Sequence` | its sequence in that stream, from 1 |
//! | `Events-Position` | its position in the publishing service's log, from 1 |
//! | `Events-Correlation-Id`, `Events-Causation-Id` | when set |
//! | `Events-Occurred-At` | microseconds since the Unix epoch (UTC) |
//! | `Events-Fields` | the user fields as a JSON object, when there are any |
//!
//! Text values are percent-encoded where a header cannot carry them as they are (`%`, spaces
//! and control characters), so any aggregate id round-trips exactly.
//!
//! The subject is `<prefix>.<name>.<aggregate id>`, each part reduced to one subject token
//! (see [`subject_token`]): it is for routing and filtering only, the headers hold the exact
//! values.

use std::fmt::Write as _;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::header::{HeaderMap, HeaderName, HeaderValue, NATS_MESSAGE_ID};
use uuid::Uuid;

use crate::store::{EventMetadata, StoredEvent};

/// The header names: the envelope's field names, the same on every transport.
pub use crate::transport::envelope::{
    AGGREGATE_ID, AGGREGATE_TYPE, CAUSATION_ID, CORRELATION_ID, FIELDS, ID, NAME, OCCURRED_AT,
    POSITION, SEQUENCE, VERSION,
};

/// The header names as `HeaderName`s, made at compile time: no allocation or validation per
/// message.
mod names {
    use async_nats::header::HeaderName;

    pub(super) const ID: HeaderName = HeaderName::from_static(super::ID);
    pub(super) const NAME: HeaderName = HeaderName::from_static(super::NAME);
    pub(super) const VERSION: HeaderName = HeaderName::from_static(super::VERSION);
    pub(super) const AGGREGATE_TYPE: HeaderName = HeaderName::from_static(super::AGGREGATE_TYPE);
    pub(super) const AGGREGATE_ID: HeaderName = HeaderName::from_static(super::AGGREGATE_ID);
    pub(super) const SEQUENCE: HeaderName = HeaderName::from_static(super::SEQUENCE);
    pub(super) const POSITION: HeaderName = HeaderName::from_static(super::POSITION);
    pub(super) const CORRELATION_ID: HeaderName = HeaderName::from_static(super::CORRELATION_ID);
    pub(super) const CAUSATION_ID: HeaderName = HeaderName::from_static(super::CAUSATION_ID);
    pub(super) const OCCURRED_AT: HeaderName = HeaderName::from_static(super::OCCURRED_AT);
    pub(super) const FIELDS: HeaderName = HeaderName::from_static(super::FIELDS);
}

/// A message that does not carry a stored event (a header is missing or malformed, or the body
/// is not JSON).
#[derive(Debug, thiserror::Error)]
#[error("NATS message on `{subject}` is not an event: {reason}")]
pub struct NotAnEvent {
    /// The message's subject.
    pub subject: String,
    /// What is missing or malformed.
    pub reason: String,
}

/// The subject an event is published on: `<prefix>.<name>.<aggregate id>`.
pub fn subject(prefix: &str, event: &StoredEvent) -> String {
    let mut subject =
        String::with_capacity(prefix.len() + event.name.len() + event.aggregate_id.len() + 2);
    subject.push_str(prefix);
    subject.push('.');
    push_token(&mut subject, &event.name);
    subject.push('.');
    push_token(&mut subject, &event.aggregate_id);
    subject
}

/// Reduces a text to one NATS subject token: ASCII letters, digits, `-` and `_` stay, every
/// other character (the token separator `.`, the wildcards `*` and `>`, spaces, non-ASCII)
/// becomes `_`; an empty text becomes `_`; at most 128 characters are kept.
pub fn subject_token(text: &str) -> String {
    let mut token = String::with_capacity(text.len().min(128));
    push_token(&mut token, text);
    token
}

/// Appends [`subject_token`]`(text)` to `out` (one allocation per subject, not per token).
fn push_token(out: &mut String, text: &str) {
    let start = out.len();
    out.extend(text.chars().take(128).map(|c| {
        if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
            c
        } else {
            '_'
        }
    }));
    if out.len() == start {
        out.push('_');
    }
}

/// The headers of an event's message, `Nats-Msg-Id` included.
pub fn to_headers(event: &StoredEvent) -> HeaderMap {
    let mut h = HeaderMap::new();
    let id = event.event_id.to_string();
    h.insert(NATS_MESSAGE_ID, id.as_str());
    h.insert(names::ID, id);
    h.insert(names::NAME, encode(&event.name));
    h.insert(names::VERSION, event.version.to_string());
    h.insert(names::AGGREGATE_TYPE, encode(&event.aggregate_type));
    h.insert(names::AGGREGATE_ID, encode(&event.aggregate_id));
    h.insert(names::SEQUENCE, event.sequence.to_string());
    h.insert(names::POSITION, event.position.to_string());
    if let Some(id) = event.metadata.correlation_id {
        h.insert(names::CORRELATION_ID, id.to_string());
    }
    if let Some(id) = event.metadata.causation_id {
        h.insert(names::CAUSATION_ID, id.to_string());
    }
    h.insert(names::OCCURRED_AT, micros(event.occurred_at).to_string());
    if !event.metadata.fields.is_empty() {
        let json = serde_json::to_string(&event.metadata.fields).expect("fields serialize");
        h.insert(names::FIELDS, encode(&json));
    }
    h
}

/// Reads an event back from a message's subject, headers and body. The position is the one in
/// the publishing service's log.
pub fn from_message(
    subject: &str,
    headers: Option<&HeaderMap>,
    payload: &[u8],
) -> Result<StoredEvent, NotAnEvent> {
    let fail = |reason: String| NotAnEvent {
        subject: subject.to_owned(),
        reason,
    };
    let h = headers.ok_or_else(|| fail("it has no headers".to_owned()))?;
    let text = |name: &str| -> Result<String, NotAnEvent> {
        let value = get(h, name).ok_or_else(|| fail(format!("header `{name}` is missing")))?;
        decode(value).ok_or_else(|| fail(format!("header `{name}` is not percent-encoded UTF-8")))
    };
    let parse = |name: &str| -> Result<u64, NotAnEvent> {
        text(name)?
            .parse()
            .map_err(|e| fail(format!("header `{name}`: {e}")))
    };
    let uuid = |name: &str| -> Result<Option<Uuid>, NotAnEvent> {
        match get(h, name) {
            None => Ok(None),
            Some(v) => Uuid::parse_str(v)
                .map(Some)
                .map_err(|e| fail(format!("header `{name}`: {e}"))),
        }
    };
    let fields = match get(h, FIELDS) {
        None => Default::default(),
        Some(_) => serde_json::from_str(&text(FIELDS)?)
            .map_err(|e| fail(format!("header `{FIELDS}`: {e}")))?,
    };
    let payload = serde_json::from_slice(payload)
        .map_err(|e| fail(format!("the body is not the event's JSON payload: {e}")))?;
    Ok(StoredEvent {
        position: parse(POSITION)?,
        event_id: uuid(ID)?.ok_or_else(|| fail(format!("header `{ID}` is missing")))?,
        name: text(NAME)?,
        version: u32::try_from(parse(VERSION)?)
            .map_err(|e| fail(format!("header `{VERSION}`: {e}")))?,
        aggregate_type: text(AGGREGATE_TYPE)?,
        aggregate_id: text(AGGREGATE_ID)?,
        sequence: parse(SEQUENCE)?,
        payload,
        metadata: EventMetadata {
            correlation_id: uuid(CORRELATION_ID)?,
            causation_id: uuid(CAUSATION_ID)?,
            fields,
        },
        occurred_at: occurred_at(&text(OCCURRED_AT)?)
            .ok_or_else(|| fail(format!("header `{OCCURRED_AT}` is not a number")))?,
    })
}

fn occurred_at(text: &str) -> Option<SystemTime> {
    text.parse::<i64>().ok().map(from_micros)
}

/// Microseconds since the Unix epoch (the store's precision).
fn micros(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

fn from_micros(us: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_micros(us.max(0) as u64)
}

/// A header's last value.
pub(crate) fn get<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let name = HeaderName::from_str(name).ok()?;
    h.get_last(name).map(HeaderValue::as_str)
}

/// Percent-encodes `%`, spaces and control characters: what a header value cannot carry as it
/// is (line breaks end a header; servers trim surrounding spaces).
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c == '%' || c == ' ' || c.is_control() {
            let mut buf = [0; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                let _ = write!(out, "%{b:02X}");
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> StoredEvent {
        StoredEvent {
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
            occurred_at: from_micros(1_764_000_000_123_456),
        }
    }

    #[test]
    fn an_event_round_trips_through_headers() {
        let e = event();
        let h = to_headers(&e);
        assert_eq!(
            get(&h, "Nats-Msg-Id"),
            Some(e.event_id.to_string().as_str())
        );
        let body = serde_json::to_vec(&e.payload).unwrap();
        let back = from_message("events.x.y", Some(&h), &body).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn subjects_are_three_safe_tokens() {
        let e = event();
        assert_eq!(
            subject("events", &e),
            "events.orders_order_placed.eu_7_______"
        );
        assert_eq!(subject_token(""), "_");
        assert_eq!(subject_token(&"x".repeat(300)).len(), 128);
    }

    #[test]
    fn a_message_without_the_envelope_is_not_an_event() {
        let err = from_message("events.x.y", None, b"{}").unwrap_err();
        assert_eq!(
            err.to_string(),
            "NATS message on `events.x.y` is not an event: it has no headers"
        );
        let mut h = to_headers(&event());
        h.insert(POSITION, "minus one");
        let err = from_message("events.x.y", Some(&h), b"{}").unwrap_err();
        assert!(
            err.to_string().contains("header `Events-Position`"),
            "{err}"
        );
        let h = to_headers(&event());
        let err = from_message("events.x.y", Some(&h), b"\xff{not json").unwrap_err();
        assert!(
            err.to_string()
                .contains("the body is not the event's JSON payload"),
            "{err}"
        );
    }
}
