//! Decoding stored payloads into event types, with errors that say which field failed, which
//! versions are involved, and what to do.

use serde::de::DeserializeOwned;

/// Decodes `value` as `E`; the error names the path of the field that failed (`cards[0].id`).
pub(crate) fn from_value<E: DeserializeOwned>(
    value: &serde_json::Value,
) -> Result<E, serde_json::Error> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            inner
        } else {
            serde::de::Error::custom(format_args!("at `{path}`: {inner}"))
        }
    })
}

/// What a decode error adds: the stored and current versions, and the fix.
pub(crate) fn hint(stored: Option<u32>, current: u32) -> String {
    let stored = stored.map_or_else(|| "unknown".to_owned(), |v| v.to_string());
    format!(
        "stored as version {stored}, this program reads version {current}; if the event's shape changed, bump its `#[event(version = ..)]` and add an `upcast` that converts older payloads"
    )
}
