//! Bad payloads and schema evolution: old rows are upcast on every read path (the worker,
//! aggregates, projections); payloads that do not decode become dead letters.

use super::*;

// --- bad payloads and schema evolution -------------------------------------------------------

/// Version 2 split `name` into first and last name; version 1 rows are upcast on read.
#[derive(DomainEvent, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "users.user_registered", version = 2, aggregate = "User", upcast = user_registered_v1)]
struct UserRegistered {
    #[event(aggregate_id)]
    user: u32,
    first_name: String,
    last_name: String,
}

fn user_registered_v1(
    version: u32,
    mut payload: serde_json::Value,
) -> Result<serde_json::Value, events::BoxError> {
    assert_eq!(version, 1);
    let name = payload["name"]
        .as_str()
        .ok_or("v1 payload without `name`")?
        .to_owned();
    let (first, last) = name.split_once(' ').unwrap_or((&name, ""));
    payload["first_name"] = first.into();
    payload["last_name"] = last.into();
    Ok(payload)
}

static WELCOMED: Mutex<Vec<UserRegistered>> = Mutex::new(Vec::new());

#[event_handler(durable, name = "test.welcome")]
async fn welcome(e: &UserRegistered) {
    WELCOMED.lock().unwrap().push(e.clone());
}

/// Appends a row as an older (or newer) program would have written it.
async fn append_raw(
    store: &Arc<dyn DurableStore>,
    user: u32,
    version: u32,
    payload: serde_json::Value,
) {
    let row = events::store::NewEvent {
        event_id: uuid::Uuid::now_v7(),
        name: "users.user_registered".into(),
        version,
        payload,
        metadata: EventMetadata::default(),
        occurred_at: std::time::SystemTime::now(),
    };
    let stream = events::store::StreamId {
        aggregate_type: "User",
        aggregate_id: &user.to_string(),
    };
    store
        .append_to(AppendAt::Version(stream.at(0)), vec![row])
        .await
        .unwrap();
}

#[tokio::test]
async fn old_rows_are_upcast_and_bad_payloads_become_dead_letters() {
    for store in stores().await {
        old_rows_are_upcast_and_bad_payloads_become_dead_letters_on(store).await;
    }
}

async fn old_rows_are_upcast_and_bad_payloads_become_dead_letters_on(store: Arc<dyn DurableStore>) {
    use serde_json::json;
    let bus = bus();
    append_raw(&store, 1, 1, json!({"user": 1, "name": "Ada Lovelace"})).await; // a real v1 row
    append_raw(&store, 2, 1, json!({"user": 2})).await; // v1 without a name: the upcaster fails
    append_raw(&store, 3, 2, json!({"user": 3, "first_name": 7})).await; // v2, wrong type
    append_raw(&store, 4, 3, json!({"user": 4})).await; // from a newer program
    let grace = UserRegistered {
        user: 5,
        first_name: "Grace".into(),
        last_name: "Hopper".into(),
    };
    append(&store, &grace).await;

    let summary = drain(&bus, &store, "test.welcome").await;
    assert_eq!(summary.handlers["test.welcome"].delivered, 2);
    assert_eq!(summary.handlers["test.welcome"].dead_lettered, 3);
    let welcomed: Vec<_> = WELCOMED
        .lock()
        .unwrap()
        .drain(..)
        .map(|u| format!("{} {} {}", u.user, u.first_name, u.last_name))
        .collect();
    assert_eq!(welcomed, ["1 Ada Lovelace", "5 Grace Hopper"]);

    let dead = dead_letters(&store, "test.welcome").await;
    let errors: Vec<_> = dead
        .iter()
        .map(|d| (d.position, d.attempts, d.last_error.clone().unwrap()))
        .collect();
    assert_eq!(
        errors[0],
        (
            2,
            1,
            "cannot decode the stored payload: v1 payload without `name`".to_owned()
        )
    );
    // The field's path, the stored and current versions, and what to do (issue 9, item 7).
    assert_eq!(
        errors[1].2,
        "cannot decode the stored payload: `users.user_registered`: at `first_name`: invalid type: integer `7`, expected a string; \
         stored as version 2, this program reads version 2; \
         if the event's shape changed, bump its `#[event(version = ..)]` and add an `upcast` that converts older payloads",
        "{errors:?}"
    );
    assert!(
        errors[2]
            .2
            .contains("stored with schema version 3, and this program knows version 2"),
        "{errors:?}"
    );
}

fn sqlite_insert_raw(store: &SqliteStore, position: u32, version: u32, payload: &str) {
    store
        .transaction(|tx| {
            tx.execute(
                "INSERT INTO events_log (position, event_id, name, version, aggregate_type, aggregate_id, sequence, payload, metadata, occurred_at)
                 VALUES (?1, ?2, 'users.user_registered', ?3, 'User', ?1, 1, ?4, '{}', 0)",
                rusqlite::params![position, uuid::Uuid::now_v7().to_string(), version, payload],
            )
            .map_err(|e| StoreError::Backend(e.into()))
        })
        .unwrap();
}

#[tokio::test]
async fn sqlite_a_payload_that_is_not_json_becomes_a_dead_letter() {
    let sqlite = SqliteStore::open_in_memory().unwrap();
    sqlite_insert_raw(&sqlite, 1, 2, "not json at all");
    let store: Arc<dyn DurableStore> = Arc::new(sqlite);
    let summary = drain(&bus(), &store, "test.welcome").await;
    assert_eq!(summary.handlers["test.welcome"].dead_lettered, 1);
    let dead = dead_letters(&store, "test.welcome").await;
    let error = dead[0].last_error.as_deref().unwrap();
    assert!(
        error.contains("invalid type: string \"not json at all\""),
        "{error}"
    );
}

// --- every read path upcasts -----------------------------------------------------------------

events::event_set! {
    #[derive(Debug, Clone, PartialEq)]
    enum UserEvent {
        Registered(UserRegistered),
    }
}

#[tokio::test]
async fn sqlite_aggregates_and_projections_read_old_rows_through_the_upcaster() {
    use events::store::{EventStore, StreamId};

    let store = SqliteStore::open_in_memory().unwrap();
    sqlite_insert_raw(&store, 1, 1, r#"{"user": 1, "name": "Ada Lovelace"}"#);
    sqlite_insert_raw(&store, 2, 1, r#"{"user": 2}"#);
    let stream = store
        .read_stream(StreamId {
            aggregate_type: "User",
            aggregate_id: "1",
        })
        .await
        .unwrap();
    let decoded = stream[0].decode::<UserEvent>().unwrap();
    let expected = UserRegistered {
        user: 1,
        first_name: "Ada".into(),
        last_name: "Lovelace".into(),
    };
    assert_eq!(decoded, Some(UserEvent::Registered(expected)));

    let all = store.read_all(0, 10).await.unwrap();
    let err = all[1].decode::<UserEvent>().unwrap_err();
    assert!(
        matches!(err, StoreError::Upcast { position: 2, .. }),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "cannot upcast event `users.user_registered` at position 2: v1 payload without `name`"
    );
}
