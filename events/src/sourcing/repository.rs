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

/// How many times [`Repository::execute`] runs a command that lost an append race before it
/// gives up with the conflict.
pub const DEFAULT_ATTEMPTS: u32 = 3;

/// Loads event-sourced aggregates of type `A` from a store and appends their new events.
pub struct Repository<A, S> {
    store: S,
    attempts: u32,
    _aggregate: PhantomData<fn() -> A>,
}

impl<A, S: Clone> Clone for Repository<A, S> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            attempts: self.attempts,
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

/// A command executed by [`Repository::execute`] (or routed to its aggregate) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExecuteError<E> {
    /// The aggregate rejected the command; shown with the aggregate's own message.
    #[error("{0}")]
    Rejected(E),
    /// Loading or appending failed; a [`StoreError::Conflict`] means other writers won every
    /// attempt.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The command was sent with `bus.send(..)` but carries no aggregate id.
    #[error("command `{0}` names no aggregate: mark the field that holds the id `#[command(id)]`, or send it with `bus.send_to(id, command)`")]
    NoAggregateId(&'static str),
}

impl<E> ExecuteError<E> {
    /// The aggregate's own error, if it rejected the command.
    pub fn rejected(&self) -> Option<&E> {
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
    /// A repository over `store`.
    pub fn new(store: S) -> Self {
        Self {
            store,
            attempts: DEFAULT_ATTEMPTS,
            _aggregate: PhantomData,
        }
    }

    /// How many times [`execute`](Self::execute) tries a command that lost an append race
    /// (at least 1; default [`DEFAULT_ATTEMPTS`]).
    pub fn attempts(mut self, attempts: u32) -> Self {
        self.attempts = attempts.max(1);
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
    /// appended in between, the whole load/decide/append runs again (up to
    /// [`attempts`](Self::attempts) times, each conflict logged), so the decision is always
    /// taken on the latest state; the services may therefore be called once per attempt.
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
        let mut attempt = 1;
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
                Err(StoreError::Conflict { actual, .. }) if attempt < self.attempts => {
                    metrics::counter!("events_command_conflicts_total", "aggregate" => A::TYPE)
                        .increment(1);
                    tracing::warn!(
                        aggregate = A::TYPE,
                        id,
                        attempt,
                        loaded = version,
                        actual,
                        "another writer appended first; running the command again on the new state"
                    );
                    attempt += 1;
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
