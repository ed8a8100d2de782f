//! The SQLite store as a bus's [`DurableSink`], and its outbox call: publishing events into
//! the caller's own transaction.

use rusqlite::Transaction;

use super::sqlite::SqliteStore;
use super::{outbox_records, NewEvent, StoreError, StreamId};
use crate::bus::Bus;
use crate::error::BoxError;
use crate::outbox::Outbox;
use crate::report::Report;
use crate::sink::{DurableRecord, DurableSink, TimerWrite, ViewWrite};

/// Appends a bus's record to the end of its aggregate's stream.
fn append_record(tx: &Transaction<'_>, mut record: DurableRecord) -> Result<u64, StoreError> {
    let aggregate_id = std::mem::take(&mut record.aggregate_id);
    let stream = StreamId {
        aggregate_type: record.aggregate_type,
        aggregate_id: &aggregate_id,
    };
    let event = NewEvent::from_record(record);
    Ok(SqliteStore::append_last(tx, stream, event)?.position)
}

#[async_trait::async_trait]
impl DurableSink for SqliteStore {
    async fn commit(
        &self,
        records: Vec<DurableRecord>,
        views: Vec<ViewWrite>,
        timers: Vec<TimerWrite>,
    ) -> Result<Vec<u64>, BoxError> {
        Ok(self.transaction(|tx| commit_in(tx, records, &views, &timers))?)
    }
}

/// Appends the records and writes the views and the timers in `tx`; returns the records'
/// positions.
fn commit_in(
    tx: &Transaction<'_>,
    records: Vec<DurableRecord>,
    views: &[ViewWrite],
    timers: &[TimerWrite],
) -> Result<Vec<u64>, StoreError> {
    let positions = records
        .into_iter()
        .map(|record| append_record(tx, record))
        .collect::<Result<Vec<_>, StoreError>>()?;
    super::sqlite::views::write_staged(tx, views)?;
    super::sqlite::timers::write_staged(tx, timers)?;
    Ok(positions)
}

impl SqliteStore {
    /// The transactional outbox with your own SQL: runs `f` in one write transaction, where it
    /// writes its own rows with `tx` and publishes events with `outbox.publish(event)` (or an
    /// aggregate's batch with `outbox.publish_batch(batch)`). The events with durable handlers
    /// are appended in the same transaction; after the commit, every published event runs its
    /// inline handlers, sync and async, with the metadata it was stored with (the stored
    /// event id and position are the ones they see). If `f` fails, nothing is written and
    /// nothing published. Returns `f`'s value and one report per published event.
    ///
    /// Without SQL of your own, the backend-neutral `outbox` of the handle
    /// [`connect`](crate::store::connect) returns does the same on every backend.
    ///
    /// ```
    /// use events::{event_handler, Bus, BoxError, DomainEvent};
    /// use events::store::SqliteStore;
    /// # use serde::{Deserialize, Serialize};
    /// #[derive(DomainEvent, Serialize, Deserialize)]
    /// #[event(aggregate = "Library")]
    /// struct CardAdded { #[event(aggregate_id)] library: u32, card: String }
    ///
    /// #[event_handler(durable, name = "search.index_card")]
    /// fn index_card(e: &CardAdded) { /* run later by a worker */ }
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = SqliteStore::open_in_memory()?;
    /// let bus = Bus::builder().store(store.clone()).build()?;
    /// store.transaction(|tx| Ok::<_, BoxError>(tx.execute_batch("CREATE TABLE cards (name TEXT)")?))?;
    /// let ((), reports) = store
    ///     .outbox(&bus, |tx, outbox| {
    ///         tx.execute("INSERT INTO cards (name) VALUES (?1)", ["Black Lotus"])?;
    ///         outbox.publish(CardAdded { library: 1, card: "Black Lotus".into() });
    ///         Ok::<_, BoxError>(())
    ///     })
    ///     .await?;
    /// assert!(reports[0].is_ok());
    /// assert_eq!(store.head()?, 1);
    /// # Ok::<(), BoxError>(()) }).unwrap();
    /// ```
    pub async fn outbox<T, E>(
        &self,
        bus: &Bus,
        f: impl FnOnce(&Transaction<'_>, &mut Outbox<'_>) -> Result<T, E>,
    ) -> Result<(T, Vec<Report>), E>
    where
        E: From<StoreError>,
    {
        let mut outbox = Outbox::new(bus);
        let (value, positions) = self.transaction(|tx| {
            let value = f(tx, &mut outbox)?;
            let positions = commit_in(
                tx,
                outbox_records(&outbox)?,
                outbox.views(),
                outbox.timers(),
            )?;
            Ok::<_, E>((value, positions))
        })?;
        outbox.stored(&positions);
        Ok((value, outbox.dispatch_committed().await))
    }
}
