//! Projections: read models rebuilt from the whole log, and the replay of stored events to
//! their handlers.

use crate::bus::Bus;
use crate::error::BoxError;
use crate::report::Report;
use crate::sourcing::set::EventSet;
use crate::store::{EventStore, StoreError, StoredEvent};

/// A read model built from events: it can be reset and rebuilt from the store.
///
/// Live updates come from event handlers that call [`apply`](Projection::apply) (or methods
/// of their own); [`rebuild`] replays the whole store through `apply` and touches no other
/// handler, so notifications are not sent again. Both methods may fail (a database write):
/// a rebuild then stops at that event and says which one.
pub trait Projection: Send + Sync {
    /// The events it reads.
    type Event: EventSet;
    /// Empties the read model.
    fn reset(&self) -> Result<(), BoxError>;
    /// Updates the read model with one event.
    fn apply(&self, event: &Self::Event, stored: &StoredEvent) -> Result<(), BoxError>;
}

/// How many events one call to [`rebuild`] or [`replay`] read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Replayed {
    /// Events that were one of the set's and were applied or dispatched.
    pub applied: u64,
    /// Events of other types, skipped.
    pub skipped: u64,
    /// The last position read.
    pub position: u64,
}

/// A rebuild stopped; the read model holds what was applied before.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RebuildError {
    /// The read model could not be emptied; nothing was replayed.
    #[error("cannot reset the projection: {0}")]
    Reset(BoxError),
    /// Applying one event failed; the events before it are applied, none after it.
    #[error("projection rebuild stopped at position {position} (`{name}` of {aggregate_type} `{aggregate_id}`), {applied} events applied before it: {source}; fix the cause and rebuild again")]
    Apply {
        /// The event's global position.
        position: u64,
        /// The event's name.
        name: String,
        /// Its aggregate type.
        aggregate_type: String,
        /// Its aggregate id.
        aggregate_id: String,
        /// Events applied before it.
        applied: u64,
        /// Why.
        source: BoxError,
    },
    /// Reading or decoding the log failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

const PAGE: usize = 512;

/// Reads the log after `after` page by page and hands each event of the set `S` (upcast and
/// decoded) to `each`, counting the events of other types as skipped. Stops at the first
/// error of `each`.
async fn walk<S: EventSet, St: EventStore + ?Sized>(
    store: &St,
    after: u64,
    mut each: impl AsyncFnMut(S, &StoredEvent) -> Result<(), BoxError>,
) -> Result<Replayed, RebuildError> {
    let mut done = Replayed {
        position: after,
        ..Replayed::default()
    };
    loop {
        let page = store.read_all(done.position, PAGE).await?;
        if page.is_empty() {
            break;
        }
        for stored in &page {
            match stored.decode::<S>()? {
                Some(event) => {
                    each(event, stored)
                        .await
                        .map_err(|source| RebuildError::Apply {
                            position: stored.position,
                            name: stored.name.clone(),
                            aggregate_type: stored.aggregate_type.clone(),
                            aggregate_id: stored.aggregate_id.clone(),
                            applied: done.applied,
                            source,
                        })?;
                    done.applied += 1;
                }
                None => done.skipped += 1,
            }
            done.position = stored.position;
        }
    }
    Ok(done)
}

/// Resets `projection` and replays the whole store through it, from position 0. Stops at the
/// first event `apply` fails on, with [`RebuildError::Apply`] saying which.
pub async fn rebuild<P: Projection, S: EventStore + ?Sized>(
    projection: &P,
    store: &S,
) -> Result<Replayed, RebuildError> {
    projection.reset().map_err(RebuildError::Reset)?;
    let done = catch_up(projection, store, 0).await?;
    tracing::info!(
        applied = done.applied,
        skipped = done.skipped,
        "projection rebuilt"
    );
    Ok(done)
}

/// Applies the stored events after position `after` to `projection`, in order: keeps a read
/// model up to date (remember the returned position for the next call). Stops at the first
/// event `apply` fails on, with [`RebuildError::Apply`] saying which.
pub async fn catch_up<P: Projection, S: EventStore + ?Sized>(
    projection: &P,
    store: &S,
    after: u64,
) -> Result<Replayed, RebuildError> {
    walk::<P::Event, _>(store, after, async |event, stored| {
        projection.apply(&event, stored)
    })
    .await
    .inspect_err(|e| tracing::error!("{e}"))
}

/// Dispatches every stored event of the set `S` after position `after` to all of its handlers,
/// in position order, with its stored metadata: the "tracker" of a CQRS application. Returns
/// what was read and the handlers' reports.
pub async fn replay<S: EventSet, St: EventStore + ?Sized>(
    store: &St,
    bus: &Bus,
    after: u64,
) -> Result<(Replayed, Vec<Report>), RebuildError> {
    let mut reports = Vec::new();
    let done = walk::<S, _>(store, after, async |event, stored| {
        reports.push(event.dispatch_stored(bus, stored).await);
        Ok(())
    })
    .await?;
    Ok((done, reports))
}
