//! Choosing a durable backend from a URL at run time.

use std::sync::Arc;

use super::durable::DurableStore;
use super::StoreError;

/// Opens the durable store a URL names:
/// - `sqlite://PATH` (`sqlite://app.db`, `sqlite:///var/lib/app/events.db`) or `sqlite:PATH`:
///   an SQLite file, created if needed;
/// - `sqlite::memory:`: a private SQLite store in memory;
/// - `postgres://...` / `postgresql://...`: PostgreSQL (feature `postgres`).
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = events::store::connect("sqlite::memory:").await?;
/// assert_eq!(store.log_head().await?, 0);
/// let err = events::store::connect("mysql://db/app").await.unwrap_err();
/// assert!(err.to_string().contains("sqlite://"), "{err}");
/// # Ok::<(), events::store::StoreError>(()) }).unwrap();
/// ```
pub async fn connect(url: &str) -> Result<Arc<dyn DurableStore>, StoreError> {
    open(url, true).await
}

/// Like [`connect`], but never creates a store: an SQLite file that does not exist is an
/// error that says so (for commands that only read, which must not leave an empty file behind
/// a mistyped path). PostgreSQL databases are never created by [`connect`] either.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let path = std::env::temp_dir().join("events-connect-existing-doc/none.db");
/// let err = events::store::connect_existing(&format!("sqlite://{}", path.display()))
///     .await
///     .unwrap_err();
/// assert!(err.to_string().contains("does not exist"), "{err}");
/// assert!(!path.exists());
/// # });
/// ```
pub async fn connect_existing(url: &str) -> Result<Arc<dyn DurableStore>, StoreError> {
    open(url, false).await
}

async fn open(url: &str, create: bool) -> Result<Arc<dyn DurableStore>, StoreError> {
    let refuse = |reason: String| StoreError::Open {
        path: url.into(),
        reason,
    };
    let (scheme, rest) = url.split_once(':').ok_or_else(|| {
        refuse("not a URL; use sqlite://PATH, sqlite::memory: or postgres://...".to_owned())
    })?;
    match scheme {
        "sqlite" => open_sqlite(url, rest, create),
        "postgres" | "postgresql" => {
            #[cfg(feature = "postgres")]
            {
                let store =
                    super::PostgresStore::connect(url)
                        .await
                        .map_err(|e| StoreError::Open {
                            path: super::postgres::redacted(url).into(),
                            reason: e.to_string(),
                        })?;
                Ok(Arc::new(store))
            }
            #[cfg(not(feature = "postgres"))]
            {
                Err(refuse(
                    "this program was built without PostgreSQL support (the `events` crate's `postgres` feature)".to_owned(),
                ))
            }
        }
        other => Err(refuse(format!(
            "unknown backend `{other}`; use sqlite://PATH, sqlite::memory: or postgres://..."
        ))),
    }
}

#[cfg(feature = "sqlite")]
fn open_sqlite(url: &str, rest: &str, create: bool) -> Result<Arc<dyn DurableStore>, StoreError> {
    use super::SqliteStore;
    if rest == ":memory:" {
        return Ok(Arc::new(SqliteStore::open_in_memory()?));
    }
    let path = rest.strip_prefix("//").unwrap_or(rest);
    if path.is_empty() || path.contains('?') {
        return Err(StoreError::Open {
            path: url.into(),
            reason:
                "give a file path (sqlite://app.db, sqlite:///abs/path.db) without query parameters"
                    .to_owned(),
        });
    }
    Ok(Arc::new(if create {
        SqliteStore::open(path)?
    } else {
        SqliteStore::open_existing(path)?
    }))
}

#[cfg(not(feature = "sqlite"))]
fn open_sqlite(url: &str, _rest: &str, _create: bool) -> Result<Arc<dyn DurableStore>, StoreError> {
    Err(StoreError::Open {
        path: url.into(),
        reason:
            "this program was built without SQLite support (the `events` crate's `sqlite` feature)"
                .to_owned(),
    })
}

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use super::*;

    #[tokio::test]
    async fn urls_pick_the_backend_or_say_what_is_accepted() {
        let dir = std::env::temp_dir().join(format!("events-connect-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("a.db");
        let store = connect(&format!("sqlite://{}", file.display()))
            .await
            .unwrap();
        assert_eq!(store.segments(), 1);
        assert!(file.exists());
        let missing = dir.join("missing.db");
        let err = connect_existing(&format!("sqlite://{}", missing.display()))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("does not exist"), "{err}");
        assert!(
            !missing.exists(),
            "a read-only open created {}",
            missing.display()
        );
        assert_eq!(
            connect_existing(&format!("sqlite://{}", file.display()))
                .await
                .unwrap()
                .location(),
            format!("sqlite://{}", file.display())
        );
        let err = connect("sqlite://").await.unwrap_err().to_string();
        assert!(err.contains("give a file path"), "{err}");
        let err = connect("redis://x").await.unwrap_err().to_string();
        assert!(err.contains("unknown backend `redis`"), "{err}");
        let err = connect("postgres://localhost/app").await.unwrap_err();
        assert!(matches!(err, StoreError::Open { .. }), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
