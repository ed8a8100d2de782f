//! Wake-ups through LISTEN/NOTIFY: one connection per store listens on the schema's channel
//! and wakes the workers of this process when any process commits an append.
//!
//! Notifications sent while the listener is disconnected are lost, so workers also poll; after
//! a reconnect the listener wakes everyone once, in case something was missed.

use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::AbortHandle;
use tokio_postgres::{AsyncMessage, NoTls};

/// The append signal of one store, shared by its clones. Listening starts on the first
/// [`notify`](Wakeups::notify) and stops when the last clone is dropped.
#[derive(Clone)]
pub struct Wakeups {
    inner: Arc<Inner>,
}

struct Inner {
    config: tokio_postgres::Config,
    notify: Arc<Notify>,
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
                notify: Arc::new(Notify::new()),
                listener: Mutex::new(None),
            }),
        }
    }

    /// The signal: `notify_waiters` is called after each committed append of any process (and
    /// after the listener reconnects). Starts the listener on first use; call it from within a
    /// tokio runtime.
    pub fn notify(&self) -> &Notify {
        let mut listener = self.inner.lock();
        if listener.is_none() {
            let task = tokio::spawn(listen(
                self.inner.config.clone(),
                Arc::downgrade(&self.inner.notify),
            ));
            *listener = Some(task.abort_handle());
        }
        &self.inner.notify
    }
}

/// Listens until the store is dropped, reconnecting with back-off.
async fn listen(config: tokio_postgres::Config, notify: Weak<Notify>) {
    let mut backoff = BACKOFF_MIN;
    loop {
        match listen_once(&config, &notify).await {
            Ok(()) => backoff = BACKOFF_MIN,
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?backoff, "events: the PostgreSQL wake-up listener lost its connection; workers poll meanwhile");
            }
        }
        let Some(n) = notify.upgrade() else { return };
        // Anything committed while we were away went unannounced.
        n.notify_waiters();
        drop(n);
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// One connection's life: LISTEN, then wake on every notification until it closes.
async fn listen_once(
    config: &tokio_postgres::Config,
    notify: &Weak<Notify>,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = config.connect(NoTls).await?;
    let (closed_tx, closed) = tokio::sync::oneshot::channel();
    let weak = notify.clone();
    // The connection is driven here; notifications arrive on its message stream.
    tokio::spawn(async move {
        let result = loop {
            match poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(_))) => match weak.upgrade() {
                    Some(n) => n.notify_waiters(),
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
    // Keep `client` alive: dropping it would close the connection.
    let result = closed.await.unwrap_or(Ok(()));
    drop(client);
    result
}
