//! NATS JetStream behind the transport seam: the publisher (a stream, publishes carrying the
//! expected last sequence) and the consumer (a durable pull consumer).

use std::time::Duration;

use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::{self, AckKind};
use futures_util::StreamExt;

use super::{
    Acknowledge, Confirmation, Confirmed, Consumer, Delivery, LastEvent, Locator, Next, Publisher,
    Settle, TransportError,
};
use crate::nats::headers;
use crate::nats::inbox::{SOURCE_POSITION_FIELD, SOURCE_STREAM_FIELD};
use crate::nats::StreamSettings;
use crate::store::StoredEvent;

/// Connects to a NATS server; the client reconnects on its own, without limit, when the
/// connection drops.
pub(crate) async fn connect(url: &str, name: &str) -> Result<async_nats::Client, TransportError> {
    async_nats::ConnectOptions::new()
        .name(name)
        .max_reconnects(None)
        .connect(url)
        .await
        .map_err(|e| TransportError::Connect {
            broker: "NATS",
            url: url.to_owned(),
            reason: e.to_string(),
            hint: "is nats-server running there with JetStream enabled (`nats-server -js`)?",
        })
}

/// The JetStream context the relay publishes through: its own limit on acknowledgements
/// waited for stays above the relay's, so the relay's pipeline is the one that bounds them.
fn context(client: async_nats::Client, max_in_flight: usize) -> jetstream::Context {
    jetstream::ContextBuilder::new()
        .timeout(Duration::from_secs(5))
        .max_ack_inflight(max_in_flight * 2)
        .backpressure_on_inflight(true)
        .build(client)
}

/// Publishes to a JetStream stream. Each publish carries `Nats-Expected-Last-Sequence` (the
/// stream sequence the message before it got): if one is lost, every later one of the run is
/// refused by the server instead of being stored after the hole.
pub(crate) struct NatsPublisher {
    js: jetstream::Context,
    settings: StreamSettings,
    sequence: u64,
}

impl NatsPublisher {
    pub(crate) fn new(
        client: async_nats::Client,
        settings: StreamSettings,
        max_in_flight: usize,
    ) -> Self {
        Self {
            js: context(client, max_in_flight),
            settings,
            sequence: 0,
        }
    }
}

#[async_trait::async_trait]
impl Publisher for NatsPublisher {
    fn checkpoint_name(&self) -> String {
        format!("relay:{}", self.settings.name)
    }

    fn destination(&self) -> &str {
        &self.settings.name
    }

    async fn prepare(&mut self) -> Result<Option<LastEvent>, TransportError> {
        self.settings.ensure(&self.js).await?;
        let last = self.settings.last_event(&self.js).await?;
        self.sequence = last.map_or(0, |l| l.sequence);
        Ok(last.map(|l| LastEvent {
            event_id: l.event_id,
            position: l.position,
        }))
    }

    async fn send(&mut self, event: &StoredEvent) -> Result<Confirmation, TransportError> {
        let position = event.position;
        let subject = headers::subject(&self.settings.subject_prefix, event);
        let payload = serde_json::to_vec(&event.payload).expect("a JSON value serializes");
        let message = PublishMessage::build()
            .headers(headers::to_headers(event))
            .expected_last_sequence(self.sequence)
            .payload(payload.into());
        let ack =
            self.js
                .send_publish(subject, message)
                .await
                .map_err(|e| TransportError::Publish {
                    position,
                    reason: e.to_string(),
                })?;
        self.sequence += 1;
        Ok(Box::pin(async move {
            let ack = ack.await.map_err(|e| match e.kind() {
                PublishErrorKind::WrongLastSequence => TransportError::Publish {
                    position,
                    reason: "the stream did not store an earlier event of this run (refused to keep the log's order)".to_owned(),
                },
                _ => TransportError::Publish {
                    position,
                    reason: e.to_string(),
                },
            })?;
            Ok(if ack.duplicate {
                Confirmed::Duplicate
            } else {
                Confirmed::Stored
            })
        }))
    }
}

/// A durable pull consumer on a stream: every message of the stream (no subject filter),
/// explicit acknowledgement, no redelivery limit.
pub(crate) struct NatsConsumer {
    js: jetstream::Context,
    stream: String,
    consumer: String,
    batch: usize,
    ack_wait: Duration,
    max_ack_pending: i64,
    messages: Option<pull::Batch>,
}

impl NatsConsumer {
    pub(crate) fn new(
        client: async_nats::Client,
        stream: String,
        consumer: String,
        ack_wait: Duration,
    ) -> Self {
        Self {
            js: jetstream::ContextBuilder::new()
                .timeout(Duration::from_secs(5))
                .build(client),
            stream,
            consumer,
            batch: 100,
            ack_wait,
            max_ack_pending: 1000,
            messages: None,
        }
    }

    fn consumer_config(&self) -> pull::Config {
        pull::Config {
            durable_name: Some(self.consumer.clone()),
            description: Some(
                "events inbox: appends each event to the service's own log".to_owned(),
            ),
            deliver_policy: DeliverPolicy::All,
            ack_policy: AckPolicy::Explicit,
            ack_wait: self.ack_wait,
            max_deliver: -1,
            max_ack_pending: self.max_ack_pending,
            ..Default::default()
        }
    }

    fn error(&self, reason: String) -> TransportError {
        TransportError::Stream {
            stream: self.stream.clone(),
            reason,
        }
    }

    /// One pull request. `Ok(None)` when draining and nothing is pending.
    async fn fetch(&self, drain: bool) -> Result<Option<pull::Batch>, TransportError> {
        let stream = self
            .js
            .get_stream(&self.stream)
            .await
            .map_err(|e| self.error(e.to_string()))?;
        let consumer: jetstream::consumer::Consumer<pull::Config> = stream
            .get_or_create_consumer(&self.consumer, self.consumer_config())
            .await
            .map_err(|e| self.error(format!("consumer `{}`: {e}", self.consumer)))?;
        if drain {
            let info = consumer
                .get_info()
                .await
                .map_err(|e| self.error(format!("consumer `{}`: {e}", self.consumer)))?;
            if info.num_pending == 0 && info.num_ack_pending == 0 {
                return Ok(None);
            }
        }
        consumer
            .batch()
            .max_messages(self.batch)
            .expires(Duration::from_millis(if drain { 200 } else { 1000 }))
            .messages()
            .await
            .map(Some)
            .map_err(|e| self.error(format!("fetch: {e}")))
    }
}

#[async_trait::async_trait]
impl Consumer for NatsConsumer {
    fn source(&self) -> &str {
        &self.stream
    }

    fn fields(&self) -> (&'static str, &'static str) {
        (SOURCE_STREAM_FIELD, SOURCE_POSITION_FIELD)
    }

    async fn next(&mut self, drain: bool) -> Result<Next, TransportError> {
        let Some(messages) = &mut self.messages else {
            self.messages = match self.fetch(drain).await? {
                Some(batch) => Some(batch),
                None => return Ok(Next::Drained),
            };
            return Ok(Next::Idle);
        };
        match messages.next().await {
            Some(Ok(message)) => {
                let info = message.info().ok();
                let stream_sequence = info.as_ref().map_or(0, |i| i.stream_sequence);
                let delivered = info.as_ref().map_or(1, |i| i.delivered.max(1));
                let event = headers::from_message(
                    message.subject.as_str(),
                    message.headers.as_ref(),
                    &message.payload,
                )
                .map_err(|e| e.to_string());
                Ok(Next::Message(Delivery {
                    event,
                    at: Locator {
                        field: "stream_sequence",
                        value: stream_sequence.to_string(),
                    },
                    attempt: u32::try_from(delivered).unwrap_or(u32::MAX),
                    handle: Box::new(NatsAck {
                        message,
                        stream: self.stream.clone(),
                    }),
                }))
            }
            Some(Err(e)) => {
                self.messages = None;
                Err(self.error(format!("fetch: {e}")))
            }
            None => {
                self.messages = None;
                Ok(Next::Idle)
            }
        }
    }
}

struct NatsAck {
    message: jetstream::Message,
    stream: String,
}

#[async_trait::async_trait]
impl Acknowledge for NatsAck {
    async fn settle(self: Box<Self>, how: Settle) -> Result<(), TransportError> {
        let kind = match how {
            Settle::Ack => AckKind::Ack,
            Settle::Retry(delay) if delay.is_zero() => AckKind::Nak(None),
            Settle::Retry(delay) => AckKind::Nak(Some(delay)),
            Settle::Reject => AckKind::Term,
        };
        self.message
            .ack_with(kind)
            .await
            .map_err(|e| TransportError::Stream {
                stream: self.stream.clone(),
                reason: format!("acknowledgement failed: {e}"),
            })
    }
}
