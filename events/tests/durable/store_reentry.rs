//! Using the SQLite store from inside its own transaction is a clear error, not a hang.

use events::store::{EventMetadata, EventStore, NewEvent, SqliteStore, StoreError, StreamId};
use events::BoxError;

#[derive(events::DomainEvent, serde::Serialize)]
struct CardAdded {
    card: String,
}

#[tokio::test]
async fn the_store_used_inside_its_own_transaction_fails_with_a_clear_error() {
    let store = SqliteStore::open_in_memory().unwrap();
    let inner = store.clone();
    let err = store
        .transaction(|_tx| -> Result<u64, BoxError> { Ok(inner.head()?) })
        .unwrap_err();
    assert!(
        err.to_string().contains("inside its own `transaction`"),
        "{err}"
    );
    assert!(matches!(
        err.downcast_ref::<StoreError>(),
        Some(StoreError::Reentered)
    ));

    let err = store
        .transaction(|_tx| -> Result<(), StoreError> {
            inner.transaction(|_| Ok::<_, StoreError>(()))
        })
        .unwrap_err();
    assert!(matches!(err, StoreError::Reentered), "{err}");

    // What a transaction needs takes the transaction, and the store works afterwards.
    let stream = StreamId {
        aggregate_type: "Library",
        aggregate_id: "1",
    };
    store
        .transaction(|tx| {
            let card = CardAdded {
                card: "Black Lotus".into(),
            };
            let e = NewEvent::new(&card, EventMetadata::default())?;
            SqliteStore::append_in(tx, stream.at(0), vec![e])?;
            assert_eq!(SqliteStore::head_in(tx)?, 1);
            Ok::<_, StoreError>(())
        })
        .unwrap();
    assert_eq!(store.read_stream(stream).await.unwrap().len(), 1);
}
