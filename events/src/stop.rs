//! Stopping the long-running loops of durable delivery: the worker's subscriptions, timers and
//! membership, and the transports' relay and inbox all wait on a [`Stop`], and stop on a signal
//! ([`shutdown_signal`]) or a deadline. Shared by the worker and the transports, so neither
//! imports the other.

use std::time::{Duration, Instant};

use tokio::sync::watch;

/// When to stop: a stop was sent, or the run's deadline passed (checked on the clock too, so
/// a subscription that has not yielded for a while still sees it).
pub(crate) struct Stop {
    stopped: watch::Receiver<bool>,
    deadline: Option<Instant>,
}

impl Stop {
    pub(crate) fn new(stopped: watch::Receiver<bool>, deadline: Option<Instant>) -> Self {
        Self { stopped, deadline }
    }

    pub(crate) fn requested(&self) -> bool {
        *self.stopped.borrow() || self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// Waits for `timeout` or a stop, without taking the stop's receiver; `true` when stopped.
    pub(crate) async fn pause(&self, timeout: Duration) -> bool {
        let mut stopped = self.stopped.clone();
        tokio::select! {
            _ = stopped.changed() => {}
            () = tokio::time::sleep(timeout) => {}
        }
        self.requested()
    }

    /// Waits for `timeout`, a stop, or `wake`; `true` when stopped.
    pub(crate) async fn wait(
        &mut self,
        timeout: Duration,
        wake: Option<&mut watch::Receiver<u64>>,
    ) -> bool {
        let woken = async {
            match wake {
                Some(w) => {
                    if w.changed().await.is_err() {
                        std::future::pending::<()>().await;
                    }
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = self.stopped.changed() => {}
            () = tokio::time::sleep(timeout) => {}
            () = woken => {}
        }
        self.requested()
    }
}

/// Completes on SIGINT (Ctrl-C) or, on Unix, SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}
