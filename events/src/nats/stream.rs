//! The JetStream stream a log is relayed to: its settings, and what it holds last.

use std::time::Duration;

use async_nats::jetstream::{self, stream};

use super::headers;
use super::NatsError;

/// Where a log goes: the stream's name and the first token of its subjects.
///
/// One log, one stream: two services that relay their logs use two streams (and two
/// prefixes), so each stream is a copy of one log, in its order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamSettings {
    /// The stream's name (default `EVENTS`).
    pub name: String,
    /// The first token of every subject (default `events`): the stream takes `<prefix>.>`.
    pub subject_prefix: String,
    /// How long the server remembers a `Nats-Msg-Id` to drop a second publish of the same
    /// event (default 2 minutes). The relay does not depend on it to avoid duplicates (it
    /// reconciles its checkpoint with the stream's last event when it starts); it covers a
    /// publish retried inside one run.
    pub duplicate_window: Duration,
}

impl Default for StreamSettings {
    fn default() -> Self {
        Self {
            name: "EVENTS".to_owned(),
            subject_prefix: "events".to_owned(),
            duplicate_window: Duration::from_secs(120),
        }
    }
}

impl StreamSettings {
    /// The stream's configuration: file storage (it survives a server restart), limits
    /// retention (every consumer reads the whole history at its own pace; nothing expires
    /// unless the operator sets limits on the server), one subject space.
    pub(crate) fn config(&self) -> stream::Config {
        stream::Config {
            name: self.name.clone(),
            subjects: vec![format!("{}.>", self.subject_prefix)],
            storage: stream::StorageType::File,
            retention: stream::RetentionPolicy::Limits,
            discard: stream::DiscardPolicy::Old,
            duplicate_window: self.duplicate_window,
            num_replicas: 1,
            description: Some("domain events relayed from an events log, in log order".to_owned()),
            ..Default::default()
        }
    }

    /// Creates the stream, or brings an existing one to these settings.
    pub(crate) async fn ensure(&self, js: &jetstream::Context) -> Result<(), NatsError> {
        js.create_or_update_stream(self.config())
            .await
            .map(|_| ())
            .map_err(|e| NatsError::Stream {
                stream: self.name.clone(),
                reason: e.to_string(),
            })
    }

    /// The last event in the stream: its event id and its position in the log it came from,
    /// with its stream sequence. `None` when the stream is empty.
    pub(crate) async fn last_event(
        &self,
        js: &jetstream::Context,
    ) -> Result<Option<LastEvent>, NatsError> {
        let fail = |reason: String| NatsError::Stream {
            stream: self.name.clone(),
            reason,
        };
        let mut stream = js
            .get_stream(&self.name)
            .await
            .map_err(|e| fail(e.to_string()))?;
        let last = stream
            .info()
            .await
            .map_err(|e| fail(e.to_string()))?
            .state
            .last_sequence;
        if last == 0 {
            return Ok(None);
        }
        let message = stream
            .get_raw_message(last)
            .await
            .map_err(|e| fail(format!("cannot read its last message ({last}): {e}")))?;
        let event = headers::from_message(
            message.subject.as_str(),
            Some(&message.headers),
            &message.payload,
        )
        .map_err(|e| fail(format!("its last message ({last}) was not relayed: {e}")))?;
        Ok(Some(LastEvent {
            sequence: last,
            event_id: event.event_id,
            position: event.position,
        }))
    }
}

/// The stream's last event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LastEvent {
    pub(crate) sequence: u64,
    pub(crate) event_id: uuid::Uuid,
    pub(crate) position: u64,
}
