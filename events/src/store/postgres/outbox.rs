//! The PostgreSQL store as a bus's [`DurableSink`], and its outbox call: publishing events into
//! the caller's own transaction.

use tokio_postgres::Transaction;

use super::{append_at_ends, backend, PostgresStore};
use crate::bus::Bus;
use crate::error::BoxError;
use crate::outbox::Outbox;
use crate::report::Report;
use crate::sink::{DurableRecord, DurableSink, TimerWrite, ViewWrite};
use crate::store::{outbox_records, NewEvent, StoreError, StreamId};

#[async_trait::async_trait]
impl DurableSink for PostgresStore {
    async fn commit(
        &self,
        records: Vec<DurableRecord>,
        views: Vec<ViewWrite>,
        timers: Vec<TimerWrite>,
    ) -> Result<Vec<u64>, BoxError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let positions = commit_in(&tx, records, &views, &timers).await?;
        tx.commit().await.map_err(backend)?;
        self.wakeups.wake();
        Ok(positions)
    }
}

/// Appends the records, each to the end of its aggregate's stream and in one insert, and
/// writes the views and the timers in `tx`; returns the records' positions.
async fn commit_in(
    tx: &Transaction<'_>,
    records: Vec<DurableRecord>,
    views: &[ViewWrite],
    timers: &[TimerWrite],
) -> Result<Vec<u64>, StoreError> {
    let ids: Vec<String> = records.iter().map(|r| r.aggregate_id.clone()).collect();
    let events = records
        .into_iter()
        .zip(&ids)
        .map(|(record, id)| {
            let stream = StreamId {
                aggregate_type: record.aggregate_type,
                aggregate_id: id,
            };
            (stream, NewEvent::from_record(record))
        })
        .collect();
    let stored = append_at_ends(tx, events).await?;
    super::views::write_staged(tx, views).await?;
    super::timers::write_staged(tx, timers).await?;
    Ok(stored.iter().map(|e| e.position).collect())
}

impl PostgresStore {
    /// The transactional outbox with your own SQL: runs `f` in one transaction, where it writes
    /// its own rows with `tx` and publishes events with `outbox.publish(event)` (or an
    /// aggregate's batch with `outbox.publish_batch(batch)`). The events with durable handlers
    /// are appended in the same transaction, after `f` (so the position counter is taken last
    /// and held briefly); after the commit, every published event runs its inline handlers,
    /// sync and async, with the metadata it was stored with. If `f` fails, nothing is written
    /// and nothing published. Returns `f`'s value and one report per published event.
    ///
    /// Without SQL of your own, the backend-neutral `outbox` of the handle
    /// [`connect`](crate::store::connect) returns does the same on every backend.
    ///
    /// ```no_run
    /// use events::{event_handler, Bus, BoxError, DomainEvent};
    /// use events::store::PostgresStore;
    /// # use serde::{Deserialize, Serialize};
    /// #[derive(DomainEvent, Serialize, Deserialize)]
    /// #[event(aggregate = "Library")]
    /// struct CardAdded { #[event(aggregate_id)] library: u32, card: String }
    ///
    /// #[event_handler(durable, name = "search.index_card")]
    /// fn index_card(e: &CardAdded) { /* run later by a worker */ }
    ///
    /// # async fn run(store: PostgresStore) -> Result<(), BoxError> {
    /// let bus = Bus::builder().store(store.clone()).build()?;
    /// let ((), reports) = store
    ///     .outbox(&bus, async |tx, outbox| {
    ///         tx.execute("INSERT INTO cards (name) VALUES ($1)", &[&"Black Lotus"]).await?;
    ///         outbox.publish(CardAdded { library: 1, card: "Black Lotus".into() });
    ///         Ok::<_, BoxError>(())
    ///     })
    ///     .await?;
    /// assert!(reports[0].is_ok());
    /// # Ok(()) }
    /// ```
    pub async fn outbox<T, E>(
        &self,
        bus: &Bus,
        f: impl AsyncFnOnce(&Transaction<'_>, &mut Outbox<'_>) -> Result<T, E>,
    ) -> Result<(T, Vec<Report>), E>
    where
        E: From<StoreError>,
    {
        let mut outbox = Outbox::new(bus);
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let value = f(&tx, &mut outbox).await?;
        let positions = commit_in(
            &tx,
            outbox_records(&outbox)?,
            outbox.views(),
            outbox.timers(),
        )
        .await?;
        tx.commit().await.map_err(backend)?;
        self.wakeups.wake();
        outbox.stored(&positions);
        Ok((value, outbox.dispatch_committed().await))
    }
}
