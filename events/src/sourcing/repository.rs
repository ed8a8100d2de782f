//! Loading event-sourced aggregates and appending their new events with optimistic
//! concurrency.

use std::fmt;
use std::marker::PhantomData;

use crate::bus::Bus;
use crate::report::Report;
use crate::sourcing::aggregate::{EventSourced, Handle};
use crate::sourcing::set::EventSet;
use crate::sourcing::snapshot;
use crate::store::{EventMetadata, EventStore, StoreError, StoredEvent, StreamId};

/// Loads event-sourced aggregates of type `A` from a store and appends their new events.
pub struct Repository<A, S> {
    store: S,
    retry_on_conflict: u32,
    _aggregate: PhantomData<fn() -> A>,
}

impl<A, S: Clone> Clone for Repository<A, S> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            retry_on_conflict: self.retry_on_conflict,
            _aggregate: PhantomData,
        }
    }
}

impl<A, S: fmt::Debug> fmt::Debug for Repository<A, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Repository")
            .field("aggregate", &std::any::type_name::<A>())
            .field("store", &self.store)
            .finish()
    }
}

/// A command executed by [`Repository::execute`] failed: the aggregate refused it, another
/// writer appended first, or the store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExecuteError<E> {
    /// The aggregate rejected the command; shown with the aggregate's own message.
    #[error("{0}")]
    Rejected(E),
    /// Another writer appended to the stream between the load and the append (and the
    /// command had no re-run left); nothing was written.
    #[error("another writer appended to {aggregate_type} `{aggregate_id}` first (loaded at version {expected}, now at {actual}); nothing was written: send the command again, or let it re-run with `Repository::retry_on_conflict(n)`")]
    Conflict {
        /// The stream's aggregate type.
        aggregate_type: String,
        /// The stream's aggregate id.
        aggregate_id: String,
        /// The version the aggregate was loaded at.
        expected: u64,
        /// The stream's version when the append was refused.
        actual: u64,
    },
    /// Loading or appending failed in the store.
    #[error("the event store failed: {0}")]
    Store(StoreError),
}

impl<E> From<StoreError> for ExecuteError<E> {
    /// A [`StoreError::Conflict`] becomes [`ExecuteError::Conflict`]; any other error
    /// [`ExecuteError::Store`].
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict {
                aggregate_type,
                aggregate_id,
                expected,
                actual,
            } => ExecuteError::Conflict {
                aggregate_type,
                aggregate_id,
                expected,
                actual,
            },
            other => ExecuteError::Store(other),
        }
    }
}

impl<E> ExecuteError<E> {
    /// The aggregate's own error, if it rejected the command (never a conflict or a store
    /// error).
    pub fn rejected(&self) -> Option<&E> {
        match self {
            ExecuteError::Rejected(e) => Some(e),
            _ => None,
        }
    }

    /// The aggregate's own error, if it rejected the command.
    pub fn into_rejected(self) -> Option<E> {
        match self {
            ExecuteError::Rejected(e) => Some(e),
            _ => None,
        }
    }
}

/// The events a command appended, with their stored envelopes; dispatch them after the commit.
#[must_use = "committed events are not dispatched until `dispatch` or `publish` is called"]
#[derive(Debug)]
pub struct Committed<S> {
    /// The aggregate's version after the append.
    pub version: u64,
    /// Each event, typed, with how it was stored.
    pub events: Vec<(S, StoredEvent)>,
}

impl<S: EventSet> Committed<S> {
    /// Runs every event's handlers, in order, with the stored metadata (so handlers see the
    /// stored event id and can be idempotent).
    pub async fn dispatch(&self, bus: &Bus) -> Vec<Report> {
        let mut reports = Vec::with_capacity(self.events.len());
        for (event, stored) in &self.events {
            reports.push(event.dispatch_stored(bus, stored).await);
        }
        reports
    }

    /// Runs every event's sync handlers, in order, with the stored metadata.
    pub fn publish(&self, bus: &Bus) -> Vec<Report> {
        self.events
            .iter()
            .map(|(event, stored)| event.publish_with(bus, stored))
            .collect()
    }
}

impl<A: EventSourced, S: EventStore> Repository<A, S> {
    /// A repository over `store`; a command that loses an append race is not run again
    /// (see [`retry_on_conflict`](Self::retry_on_conflict)).
    pub fn new(store: S) -> Self {
        Self {
            store,
            retry_on_conflict: 0,
            _aggregate: PhantomData,
        }
    }

    /// How many times [`execute`](Self::execute) runs a command again, on the new state,
    /// after it lost an append race (default 0: the conflict is returned). Each re-run loads
    /// the aggregate and calls its `handle` again, so the services run again too: opt in only
    /// when calling them twice is harmless (an idempotent or read-only service).
    pub fn retry_on_conflict(mut self, reruns: u32) -> Self {
        self.retry_on_conflict = reruns;
        self
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    fn stream(id: &str) -> StreamId<'_> {
        StreamId {
            aggregate_type: A::TYPE,
            aggregate_id: id,
        }
    }

    /// Rebuilds the aggregate from its stream: the aggregate and its version (0 when the
    /// stream is empty, `A::default()` then).
    ///
    /// With [`EventSourced::snapshots`], starts from the stream's snapshot (when it has one of
    /// the current version) and replays only the events after it.
    pub async fn load(&self, id: &str) -> Result<(A, u64), StoreError> {
        let stream = Self::stream(id);
        let restored = match A::snapshots() {
            Some(policy) => snapshot::restore(&self.store, stream, &policy).await?,
            None => None,
        };
        let (mut aggregate, from) = restored.unwrap_or_default();
        let events = self.store.read_stream_after(stream, from).await?;
        let version = apply_all(&mut aggregate, &events, from)?;
        Ok((aggregate, version))
    }

    /// Appends events to the aggregate's stream, expecting it at `expected_version`; a
    /// concurrent append fails with [`StoreError::Conflict`] and writes nothing.
    pub async fn append(
        &self,
        id: &str,
        expected_version: u64,
        events: Vec<A::Event>,
        metadata: EventMetadata,
    ) -> Result<Committed<A::Event>, StoreError> {
        let new = events
            .iter()
            .map(|e| e.to_new_event(metadata.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        let stored = self
            .store
            .append(Self::stream(id).at(expected_version), new)
            .await?;
        let version = stored.last().map_or(expected_version, |s| s.sequence);
        Ok(Committed {
            version,
            events: events.into_iter().zip(stored).collect(),
        })
    }

    /// Loads the aggregate, lets it handle `command` with `services`, and appends the events
    /// it decided with the version it was loaded at, each with `metadata`. When another writer
    /// appended in between, nothing is written and [`ExecuteError::Conflict`] is returned;
    /// with [`retry_on_conflict`](Self::retry_on_conflict) the whole load/decide/append runs
    /// again instead (services included) on the new state, up to that many more times. Each
    /// conflict is logged and counted (`events_command_conflicts_total`).
    pub async fn execute<C: Clone>(
        &self,
        id: &str,
        command: C,
        services: &<A as Handle<C>>::Services,
        metadata: EventMetadata,
    ) -> Result<Committed<A::Event>, ExecuteError<<A as Handle<C>>::Error>>
    where
        A: Handle<C>,
    {
        let mut reruns = 0;
        loop {
            let (aggregate, version) = self.load(id).await?;
            let events = aggregate
                .handle(command.clone(), services)
                .await
                .map_err(ExecuteError::Rejected)?;
            match self.append(id, version, events, metadata.clone()).await {
                Ok(committed) => {
                    self.snapshot(id, aggregate, version, &committed).await;
                    return Ok(committed);
                }
                Err(StoreError::Conflict { actual, .. }) if reruns < self.retry_on_conflict => {
                    metrics::counter!("events_command_conflicts_total", "aggregate" => A::TYPE)
                        .increment(1);
                    reruns += 1;
                    tracing::warn!(
                        aggregate = A::TYPE,
                        id,
                        rerun = reruns,
                        loaded = version,
                        actual,
                        "another writer appended first; running the command again on the new state (services included)"
                    );
                }
                Err(StoreError::Conflict { actual, .. }) => {
                    metrics::counter!("events_command_conflicts_total", "aggregate" => A::TYPE)
                        .increment(1);
                    tracing::warn!(
                        aggregate = A::TYPE,
                        id,
                        loaded = version,
                        actual,
                        reruns,
                        "another writer appended first; the command is not run again, its conflict is returned"
                    );
                    return Err(ExecuteError::Conflict {
                        aggregate_type: A::TYPE.to_owned(),
                        aggregate_id: id.to_owned(),
                        expected: version,
                        actual,
                    });
                }
                other => return Ok(other?),
            }
        }
    }
}

impl<A: EventSourced, S: EventStore> Repository<A, S> {
    /// Saves a snapshot when the append passed a snapshot point of `A`'s policy.
    async fn snapshot(
        &self,
        id: &str,
        mut aggregate: A,
        before: u64,
        committed: &Committed<A::Event>,
    ) {
        let Some(policy) = A::snapshots() else {
            return;
        };
        if !policy.due(before, committed.version) {
            return;
        }
        for (event, _) in &committed.events {
            aggregate.apply(event);
        }
        snapshot::save(
            &self.store,
            Self::stream(id),
            &policy,
            &aggregate,
            committed.version,
        )
        .await;
    }
}

/// Applies stored events in order to `aggregate`; the version after the last one (`version`
/// when there is none).
pub(crate) fn apply_all<A: EventSourced>(
    aggregate: &mut A,
    stream: &[StoredEvent],
    mut version: u64,
) -> Result<u64, StoreError> {
    for stored in stream {
        let event = stored
            .decode::<A::Event>()?
            .ok_or_else(|| StoreError::Decode {
                position: stored.position,
                name: stored.name.clone(),
                source: serde::de::Error::custom(format!(
                    "`{}` is not an event of aggregate `{}`",
                    stored.name,
                    A::TYPE
                )),
            })?;
        aggregate.apply(&event);
        version = stored.sequence;
    }
    Ok(version)
}
