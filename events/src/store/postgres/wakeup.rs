//! Wake-ups through LISTEN/NOTIFY: one connection per store listens on the schema's channel
//! and wakes the workers of this process when any process commits an append.
//!
//! Notifications sent while the listener is disconnected are lost, so workers also poll; each
//! time the listener (re)starts listening it wakes everyone once, in case something was missed.

use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::AbortHandle;
use tokio_postgres::{AsyncMessage, NoTls};

/// The append signal of one store, shared by its clones: a counter that moves when some
/// process may have appended. Listening starts on the first [`subscribe`](Wakeups::subscribe)
/// and stops when the last clone is dropped.
#[derive(Clone)]
pub struct Wakeups {
    inner: Arc<Inner>,
}

struct Inner {
    config: tokio_postgres::Config,
    counter: Arc<watch::Sender<u64>>,
    listener: Mutex<Option<AbortHandle>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(task) = self.lock().take() {
            task.abort();
        }
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Option<AbortHandle>> {
        self.listener.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl std::fmt::Debug for Wakeups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wakeups")
            .field("listening", &self.inner.lock().is_some())
            .finish()
    }
}

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

impl Wakeups {
    pub(crate) fn new(config: tokio_postgres::Config) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                counter: Arc::new(watch::Sender::new(0)),
                listener: Mutex::new(None),
            }),
        }
    }

    /// The counter: it moves after each committed append of any process (and each time the
    /// listener starts listening). Look at it, read, then await `changed()`: nothing committed
    /// in between is missed. Starts the listener on first use: call it within a tokio runtime.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        let mut listener = self.inner.lock();
        if listener.is_none() {
            let task = tokio::spawn(listen(
                self.inner.config.clone(),
                Arc::downgrade(&self.inner.counter),
            ));
            *listener = Some(task.abort_handle());
        }
        self.inner.counter.subscribe()
    }

    /// Moves the counter: an append of this process committed.
    pub(crate) fn wake(&self) {
        bump(&self.inner.counter);
    }
}

fn bump(counter: &watch::Sender<u64>) {
    counter.send_modify(|n| *n = n.wrapping_add(1));
}

/// Listens until the store is dropped, reconnecting with back-off.
async fn listen(config: tokio_postgres::Config, counter: Weak<watch::Sender<u64>>) {
    let mut backoff = BACKOFF_MIN;
    loop {
        match listen_once(&config, &counter).await {
            Ok(()) => backoff = BACKOFF_MIN,
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?backoff, "events: the PostgreSQL wake-up listener lost its connection; workers poll meanwhile");
            }
        }
        if counter.strong_count() == 0 {
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// One connection's life: LISTEN, then wake on every notification until it closes.
async fn listen_once(
    config: &tokio_postgres::Config,
    counter: &Weak<watch::Sender<u64>>,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = config.connect(NoTls).await?;
    let (closed_tx, closed) = tokio::sync::oneshot::channel();
    let weak = counter.clone();
    // The connection is driven here; notifications arrive on its message stream.
    tokio::spawn(async move {
        let result = loop {
            match poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(_))) => match weak.upgrade() {
                    Some(counter) => bump(&counter),
                    None => break Ok(()),
                },
                Some(Ok(_)) => {}
                Some(Err(e)) => break Err(e),
                None => break Ok(()),
            }
        };
        let _ = closed_tx.send(result);
    });
    let channel: String = client
        .query_one("SELECT left('events:' || current_schema(), 63)", &[])
        .await?
        .get(0);
    client
        .batch_execute(&format!("LISTEN \"{}\"", channel.replace('"', "\"\"")))
        .await?;
    tracing::debug!(channel, "events: listening for appends");
    // Anything committed before we listened (or while we were away) went unannounced.
    match counter.upgrade() {
        Some(counter) => bump(&counter),
        None => return Ok(()),
    }
    // Keep `client` alive: dropping it would close the connection.
    let result = closed.await.unwrap_or(Ok(()));
    drop(client);
    result
}
