//! RabbitMQ behind the transport seam (feature `rabbitmq`, URLs `amqp://USER:PASS@HOST:PORT/VHOST`).
//!
//! **Relay** ([`RabbitPublisher`]). The log goes to a durable topic exchange (the relay's
//! destination, declared if missing). Each event is one persistent message (delivery mode 2)
//! with routing key `<prefix>.<event name>.<aggregate id>`, the event id as `message_id`, its
//! envelope in headers (see [`envelope`]) and its JSON payload as the body. Publishes go out
//! in log order on one channel in confirm mode; the relay keeps at most its in-flight bound of
//! confirmations outstanding and moves its checkpoint only past confirmed events.
//!
//! RabbitMQ drops a message that no queue is bound to take. Publishes are therefore
//! `mandatory`: an event no queue took comes back and counts as not published (the relay
//! stops its run and tries again later, its checkpoint before that event). Start each
//! consuming service once (its inbox declares its queue) before relaying, or declare the
//! queues as the operator; a queue bound later gets only what is published from then on.
//!
//! **What RabbitMQ cannot do.** A queue cannot be read back from its end, and a publish cannot
//! be made conditional on what the exchange last received: the relay cannot ask the broker for
//! the last event it holds, nor have an out-of-order publish refused. So after a failure (a
//! lost connection, a refused or timed-out confirmation) the relay republishes from its
//! checkpoint: events confirmed but not yet checkpointed, or stored but not confirmed, reach
//! the queues a second time, possibly after later ones. The inbox's de-duplication by event id
//! keeps their effects once, and its per-aggregate sequence check holds back an event whose
//! predecessor has not arrived yet (handed back, then taken once the predecessor is in).
//!
//! **Inbox** ([`RabbitConsumer`]). Each consuming service has its own durable quorum queue,
//! `<exchange>.<consumer>`, bound to the exchange with `#` (every event), declared if missing
//! with `x-single-active-consumer`. **Why single active consumer**: a queue hands its messages
//! out in its own order, but two consumers of one queue take turns and settle at different
//! speeds, so two events of one aggregate could be taken out of order, and a redelivered
//! message goes back behind later ones of other consumers. With one active consumer at a time
//! the queue's order (the relay's publish order: the log's order) is the order the inbox sees;
//! other processes of the same service attach as standby consumers and take over, from the
//! first unacknowledged message, when the active one dies (its unacknowledged messages are
//! requeued by the broker). (A consistent-hash exchange into N queues would spread the load,
//! but each queue still needs one consumer to keep order and rebalancing moves aggregates
//! between queues mid-stream; single active consumer is simpler and enough for one service.)
//!
//! **Nothing waits on a dead connection.** lapin does not always complete an operation that was
//! under way when the connection dropped (a `basic.ack` sent as RabbitMQ stopped was seen to
//! wait forever, the inbox with it). Every wait on the broker here ends when the connection is
//! lost (its status is watched) or after [`REPLY_TIMEOUT`], with a transient error: the relay
//! and the inbox connect again, and what was in hand is republished or redelivered (and
//! de-duplicated by event id).
//!
//! A message is acknowledged (`basic.ack`) only after the inbox's store commit; one handed
//! back is requeued (`basic.nack`, requeue) after the delay; one that is not an event is
//! rejected without requeue (dropped, or dead-lettered if the operator gave the queue a
//! dead-letter exchange), logged and counted. Redeliveries (after a consumer crash, or the
//! relay's republishing) are de-duplicated by event id in the inbox; dead letters of remote
//! events stay in the consuming service's own store, as with every transport.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    BasicRejectOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{
    BasicProperties, Channel, Confirmation as RabbitConfirmation, Connection, ConnectionProperties,
    ConnectionStatus, ExchangeKind,
};

use super::envelope;
use super::{
    Acknowledge, Confirmation, Confirmed, Consumer, Delivery, LastEvent, Locator, Next, Publisher,
    Settle, TransportError,
};
use crate::store::StoredEvent;

/// Metadata field naming the exchange an event came from.
pub const SOURCE_STREAM_FIELD: &str = "rabbitmq.exchange";
/// Metadata field holding the event's position in the origin's log.
pub const SOURCE_POSITION_FIELD: &str = "rabbitmq.position";

/// How long a publish may wait for its confirmation.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a wait on the broker (a connection, a reply, an acknowledgement written out) may
/// last on a connection that still looks alive. A lost connection ends the wait at once (its
/// status is looked at every 100 ms); this bound is for a broker that stopped answering, and is
/// long enough for a loaded machine or a broker recovering its queues after a restart: a wait
/// cut short is only tried again.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(60);

/// How often a wait on the broker looks whether its connection is still up.
const LIVENESS_CHECK: Duration = Duration::from_millis(100);

/// Waits for `operation` on the connection whose status is `status`, but no longer than the
/// connection lives, nor than [`REPLY_TIMEOUT`]: lapin does not always complete an operation
/// under way when the connection drops, and such a wait would never end.
async fn on<T>(
    status: &ConnectionStatus,
    name: &str,
    what: &str,
    operation: impl Future<Output = lapin::Result<T>>,
) -> Result<T, TransportError> {
    let lost = async {
        while status.connected() {
            tokio::time::sleep(LIVENESS_CHECK).await;
        }
    };
    tokio::select! {
        done = operation => done.map_err(|e| stream_error(name, what, e)),
        () = lost => Err(stream_error(name, what, "connection lost")),
        () = tokio::time::sleep(REPLY_TIMEOUT) => Err(stream_error(
            name,
            what,
            format!("no answer within {}s", REPLY_TIMEOUT.as_secs()),
        )),
    }
}

/// Connects, in at most [`REPLY_TIMEOUT`].
async fn connect(url: &str) -> Result<Connection, String> {
    match tokio::time::timeout(
        REPLY_TIMEOUT,
        Connection::connect(url, ConnectionProperties::default()),
    )
    .await
    {
        Ok(done) => done.map_err(|e| e.to_string()),
        Err(_) => Err(format!("no answer within {}s", REPLY_TIMEOUT.as_secs())),
    }
}

/// Connects again after a lost connection: a failure is transient (the broker may be
/// restarting), so the relay and the inbox try again with back-off.
async fn reopen(url: &str, name: &str) -> Result<Connection, TransportError> {
    connect(url)
        .await
        .map_err(|e| stream_error(name, "connect", e))
}

async fn open(url: &str) -> Result<Connection, TransportError> {
    connect(url)
        .await
        .map_err(|reason| TransportError::Connect {
            broker: "RabbitMQ",
            url: url.to_owned(),
            reason,
            hint: "is rabbitmq-server running there? write it as amqp://USER:PASS@HOST:PORT/VHOST",
        })
}

fn stream_error(name: &str, what: &str, e: impl std::fmt::Display) -> TransportError {
    TransportError::Stream {
        stream: name.to_owned(),
        reason: format!("{what}: {e}"),
    }
}

async fn declare_exchange(
    status: &ConnectionStatus,
    channel: &Channel,
    exchange: &str,
) -> Result<(), TransportError> {
    let declare = channel.exchange_declare(
        exchange.into(),
        ExchangeKind::Topic,
        ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        },
        FieldTable::default(),
    );
    on(status, exchange, "exchange.declare", declare).await
}

/// The routing key of an event: `<prefix>.<event name>.<aggregate id>` (`-` for none).
pub fn routing_key(prefix: &str, event: &StoredEvent) -> String {
    let id = if event.aggregate_id.is_empty() {
        "-"
    } else {
        event.aggregate_id.as_str()
    };
    let mut key = format!("{prefix}.{}.{id}", event.name);
    // AMQP short strings end at 255 bytes.
    if key.len() > 255 {
        let mut end = 255;
        while !key.is_char_boundary(end) {
            end -= 1;
        }
        key.truncate(end);
    }
    key
}

/// The message properties of an event: persistent, its id as message id, its envelope in
/// headers.
fn properties(event: &StoredEvent) -> BasicProperties {
    let mut headers = FieldTable::default();
    for (name, value) in envelope::to_fields(event) {
        headers.insert(name.into(), AMQPValue::LongString(LongString::from(value)));
    }
    BasicProperties::default()
        .with_delivery_mode(2)
        .with_message_id(ShortString::from(event.event_id.to_string()))
        .with_content_type("application/json".into())
        .with_headers(headers)
}

/// Reads an event back from a message's headers and body.
fn read_message(properties: &BasicProperties, body: &[u8]) -> Result<StoredEvent, String> {
    let empty = FieldTable::default();
    let headers = properties.headers().as_ref().unwrap_or(&empty);
    let fields: std::collections::HashMap<&str, String> = headers
        .inner()
        .iter()
        .filter_map(|(k, v)| match v {
            AMQPValue::LongString(s) => Some((
                k.as_str(),
                String::from_utf8_lossy(s.as_bytes()).into_owned(),
            )),
            AMQPValue::ShortString(s) => Some((k.as_str(), s.as_str().to_owned())),
            _ => None,
        })
        .collect();
    envelope::from_fields(|name| fields.get(name).map(String::as_str), Some(body))
}

/// Publishes to a RabbitMQ topic exchange: see the [module](self) docs.
pub struct RabbitPublisher {
    url: String,
    exchange: String,
    prefix: String,
    conn: Option<Connection>,
    channel: Option<Channel>,
}

impl RabbitPublisher {
    /// A publisher to the topic exchange `exchange` at `url`, routing keys under `prefix`
    /// (connected again when the relay starts a run).
    pub async fn connect(url: &str, exchange: &str, prefix: &str) -> Result<Self, TransportError> {
        // Reach the server once now, so a wrong URL fails here, in one line.
        let conn = open(url).await?;
        Ok(Self {
            url: url.to_owned(),
            exchange: exchange.to_owned(),
            prefix: prefix.to_owned(),
            conn: Some(conn),
            channel: None,
        })
    }
}

#[async_trait::async_trait]
impl Publisher for RabbitPublisher {
    fn checkpoint_name(&self) -> String {
        format!("relay:amqp:{}", self.exchange)
    }

    fn destination(&self) -> &str {
        &self.exchange
    }

    fn reads_back(&self) -> bool {
        false
    }

    async fn prepare(&mut self) -> Result<Option<LastEvent>, TransportError> {
        self.channel = None;
        // A new run on a new connection: nothing of the failed run is still in flight on it.
        let conn = match self.conn.take() {
            Some(c) if c.status().connected() => c,
            Some(c) => {
                let _ = c.close(0, "reconnecting".into()).await;
                reopen(&self.url, &self.exchange).await?
            }
            None => reopen(&self.url, &self.exchange).await?,
        };
        let status = conn.status().clone();
        let name = self.exchange.as_str();
        let channel = on(&status, name, "channel.open", conn.create_channel()).await?;
        let confirm = channel.confirm_select(ConfirmSelectOptions::default());
        on(&status, name, "confirm.select", confirm).await?;
        declare_exchange(&status, &channel, name).await?;
        self.conn = Some(conn);
        self.channel = Some(channel);
        // RabbitMQ cannot say what it holds last: the relay goes on from its checkpoint.
        Ok(None)
    }

    async fn send(&mut self, event: &StoredEvent) -> Result<Confirmation, TransportError> {
        let position = event.position;
        let publish_error = move |reason: String| TransportError::Publish { position, reason };
        let Some(channel) = &self.channel else {
            return Err(publish_error("not connected".to_owned()));
        };
        let Some(status) = self.conn.as_ref().map(|c| c.status().clone()) else {
            return Err(publish_error("not connected".to_owned()));
        };
        let body = serde_json::to_vec(&event.payload).expect("a JSON value serializes");
        let publish = channel.basic_publish(
            self.exchange.as_str().into(),
            routing_key(&self.prefix, event).into(),
            // Returned if no queue is bound: not confirmed as stored (see the module docs).
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            &body,
            properties(event),
        );
        let confirm = on(&status, &self.exchange, "basic.publish", publish)
            .await
            .map_err(|e| {
                self.conn = None;
                publish_error(e.to_string())
            })?;
        Ok(Box::pin(async move {
            match tokio::time::timeout(CONFIRM_TIMEOUT, confirm).await {
                Ok(Ok(RabbitConfirmation::Ack(None))) => Ok(Confirmed::Stored),
                Ok(Ok(RabbitConfirmation::Ack(Some(_)))) => Err(publish_error(
                    "no queue is bound to the exchange (unroutable): start the consuming service once (`process --source`) so that its queue exists".to_owned(),
                )),
                Ok(Ok(RabbitConfirmation::Nack(_))) => Err(publish_error(
                    "the broker refused it (basic.nack)".to_owned(),
                )),
                Ok(Ok(RabbitConfirmation::NotRequested)) => {
                    Err(publish_error("confirm mode is off".to_owned()))
                }
                Ok(Err(e)) => Err(publish_error(e.to_string())),
                Err(_) => Err(publish_error(format!(
                    "no confirmation within {}s",
                    CONFIRM_TIMEOUT.as_secs()
                ))),
            }
        }))
    }
}

/// Consumes a RabbitMQ quorum queue with a single active consumer: see the [module](self)
/// docs.
pub struct RabbitConsumer {
    url: String,
    exchange: String,
    queue: String,
    prefetch: u16,
    conn: Option<Connection>,
    channel: Option<Channel>,
    consumer: Option<lapin::Consumer>,
    /// Messages handed out and not settled yet.
    in_flight: Arc<AtomicUsize>,
    /// Set when settling a message of the current connection failed: the next fetch connects
    /// again (the connection may still look alive).
    broken: Arc<AtomicBool>,
}

impl RabbitConsumer {
    /// The consumer of service `consumer` on the exchange `exchange` at `url`: the quorum
    /// queue `<exchange>.<consumer>`, declared and bound if missing.
    pub async fn connect(
        url: &str,
        exchange: &str,
        consumer: &str,
    ) -> Result<Self, TransportError> {
        let mut this = Self {
            url: url.to_owned(),
            exchange: exchange.to_owned(),
            queue: format!("{exchange}.{consumer}"),
            prefetch: 256,
            conn: None,
            channel: None,
            consumer: None,
            in_flight: Arc::new(AtomicUsize::new(0)),
            broken: Arc::new(AtomicBool::new(false)),
        };
        this.conn = Some(open(url).await?);
        this.consume().await?;
        Ok(this)
    }

    /// The queue's name.
    pub fn queue(&self) -> &str {
        &self.queue
    }

    fn reset(&mut self) {
        self.consumer = None;
        self.channel = None;
        self.conn = None;
        // What was handed out through the lost channel is requeued by the broker.
        self.in_flight.store(0, Ordering::SeqCst);
    }

    /// Declares the exchange, the queue and its binding, and starts consuming.
    async fn consume(&mut self) -> Result<(), TransportError> {
        let conn = match self.conn.take() {
            Some(c) if c.status().connected() => c,
            _ => reopen(&self.url, &self.queue).await?,
        };
        let status = conn.status().clone();
        let queue = self.queue.as_str();
        let channel = on(&status, queue, "channel.open", conn.create_channel()).await?;
        declare_exchange(&status, &channel, &self.exchange).await?;
        let mut args = FieldTable::default();
        args.insert(
            "x-queue-type".into(),
            AMQPValue::LongString("quorum".into()),
        );
        args.insert("x-single-active-consumer".into(), AMQPValue::Boolean(true));
        let declare = channel.queue_declare(
            queue.into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            args,
        );
        on(&status, queue, "queue.declare", declare).await?;
        let bind = channel.queue_bind(
            queue.into(),
            self.exchange.as_str().into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        );
        on(&status, queue, "queue.bind", bind).await?;
        let qos = channel.basic_qos(self.prefetch, BasicQosOptions::default());
        on(&status, queue, "basic.qos", qos).await?;
        let tag = format!(
            "{}-{}",
            gethostname::gethostname().to_string_lossy(),
            std::process::id()
        );
        let consume = channel.basic_consume(
            queue.into(),
            tag.into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        );
        let consumer = on(&status, queue, "basic.consume", consume).await?;
        self.in_flight.store(0, Ordering::SeqCst);
        // A new flag for the new connection: a late failure on the old one does not break it.
        self.broken = Arc::new(AtomicBool::new(false));
        self.conn = Some(conn);
        self.channel = Some(channel);
        self.consumer = Some(consumer);
        Ok(())
    }

    /// Messages ready in the queue (not handed out).
    async fn ready(&mut self) -> Result<u32, TransportError> {
        let (Some(channel), Some(conn)) = (&self.channel, &self.conn) else {
            return Ok(0);
        };
        let declare = channel.queue_declare(
            self.queue.as_str().into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        );
        match on(
            conn.status(),
            &self.queue,
            "queue.declare (passive)",
            declare,
        )
        .await
        {
            Ok(q) => Ok(q.message_count()),
            Err(e) => {
                self.reset();
                Err(e)
            }
        }
    }
}

#[async_trait::async_trait]
impl Consumer for RabbitConsumer {
    fn source(&self) -> &str {
        &self.exchange
    }

    fn fields(&self) -> (&'static str, &'static str) {
        (SOURCE_STREAM_FIELD, SOURCE_POSITION_FIELD)
    }

    async fn next(&mut self, drain: bool) -> Result<Next, TransportError> {
        if self.broken.load(Ordering::SeqCst) {
            // Settling a message failed: what this connection handed out comes back through
            // the next one.
            self.reset();
        }
        if self.consumer.is_none() {
            self.consume().await?;
        }
        let wait = Duration::from_millis(if drain { 200 } else { 1000 });
        let consumer = self.consumer.as_mut().expect("consuming");
        let message = match tokio::time::timeout(wait, consumer.next()).await {
            Err(_) => {
                // A lost connection does not always end the consumer's stream: look.
                if !self.conn.as_ref().is_some_and(|c| c.status().connected()) {
                    self.reset();
                    return Err(stream_error(&self.queue, "consume", "connection lost"));
                }
                if drain && self.in_flight.load(Ordering::SeqCst) == 0 && self.ready().await? == 0 {
                    return Ok(Next::Drained);
                }
                return Ok(Next::Idle);
            }
            Ok(None) => {
                self.reset();
                return Err(stream_error(
                    &self.queue,
                    "consume",
                    "the consumer was cancelled",
                ));
            }
            Ok(Some(Err(e))) => {
                self.reset();
                return Err(stream_error(&self.queue, "consume", e));
            }
            Ok(Some(Ok(m))) => m,
        };
        let attempt = match message
            .properties
            .headers()
            .as_ref()
            .and_then(|h| h.inner().get("x-delivery-count").cloned())
        {
            Some(AMQPValue::LongLongInt(n)) => u32::try_from(n).unwrap_or(u32::MAX - 1) + 1,
            Some(AMQPValue::LongInt(n)) => u32::try_from(n).unwrap_or(u32::MAX - 1) + 1,
            _ if message.redelivered => 2,
            _ => 1,
        };
        let event = read_message(&message.properties, &message.data);
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        Ok(Next::Message(Delivery {
            event,
            at: Locator {
                field: "delivery_tag",
                value: message.delivery_tag.to_string(),
            },
            attempt,
            handle: Box::new(RabbitAck {
                acker: message.acker,
                queue: self.queue.clone(),
                in_flight: Arc::clone(&self.in_flight),
                status: self
                    .conn
                    .as_ref()
                    .expect("consuming on a connection")
                    .status()
                    .clone(),
                broken: Arc::clone(&self.broken),
            }),
        }))
    }
}

struct RabbitAck {
    acker: lapin::Acker,
    queue: String,
    in_flight: Arc<AtomicUsize>,
    /// The status of the connection the message came through.
    status: ConnectionStatus,
    /// Set when settling fails: the consumer connects again.
    broken: Arc<AtomicBool>,
}

impl RabbitAck {
    fn done(&self) {
        let _ = self
            .in_flight
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
    }

    /// Waits for `settle` on the message's connection (never longer than it lives); a failure
    /// marks the consumer for a new connection.
    async fn on(
        &self,
        what: &str,
        settle: impl Future<Output = lapin::Result<bool>>,
    ) -> Result<(), TransportError> {
        let settled = on(&self.status, &self.queue, what, settle).await;
        self.done();
        match settled {
            Ok(true) => Ok(()),
            // The acker was poisoned: its channel ended, the message comes back.
            Ok(false) => {
                self.broken.store(true, Ordering::SeqCst);
                Err(stream_error(&self.queue, what, "the channel was closed"))
            }
            Err(e) => {
                self.broken.store(true, Ordering::SeqCst);
                Err(e)
            }
        }
    }
}

#[async_trait::async_trait]
impl Acknowledge for RabbitAck {
    async fn settle(self: Box<Self>, how: Settle) -> Result<(), TransportError> {
        match how {
            Settle::Ack => {
                self.on("basic.ack", self.acker.ack(BasicAckOptions::default()))
                    .await
            }
            Settle::Reject => {
                let reject = self.acker.reject(BasicRejectOptions { requeue: false });
                self.on("basic.reject", reject).await
            }
            Settle::Retry(delay) => {
                // Held by this consumer until the delay is over, then requeued; the inbox
                // goes on with the next messages meanwhile.
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let nack = self.acker.nack(BasicNackOptions {
                        requeue: true,
                        ..Default::default()
                    });
                    // Requeued by the broker all the same if the connection is lost.
                    let _ = self.on("basic.nack", nack).await;
                });
                Ok(())
            }
        }
    }
}
