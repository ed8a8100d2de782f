//! A durable handler's view writes, staged for the worker's settle: [`ViewKeeper`].
//!
//! The worker runs each delivery inside a [`Staging`] scope; a keeper taken by the handler
//! stages its writes there, and the worker hands them to the backend with the settlement, so
//! the views, the outcome and the checkpoint commit in one transaction. A crash between the
//! handler and the settle then loses the staged writes with the checkpoint move, and the
//! redelivered event is applied once, to any view (one fed by many aggregates too). Each write
//! carries the version it was built on: a view another worker changed meanwhile fails the
//! settle, and the event is delivered again on the view as it is then.

use std::any::type_name;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};

use super::{already_applied, decode_view, encode, event_at, AggregateView, EventAt, View};
use crate::catalog::Location;
use crate::event::DomainEvent;
use crate::extract::{Context, FromContext};
use crate::handler::{BoxFuture, Call, Handler, Outcome};
use crate::meta::Meta;
use crate::registry::Registration;
use crate::report::ExtractError;
use crate::shim::{boxed, decode, extract, into_outcome, Durable};
use crate::sink::{ScheduleError, TimerWrite};
use crate::store::durable::{DurableStore, ViewWrite};
use crate::store::StoreError;

tokio::task_local! {
    /// The staging area of the delivery the current task runs.
    static STAGING: Arc<Staging>;
}

/// What one delivery (or a run of them) staged, for its settle.
#[derive(Debug, Default)]
pub(crate) struct Staged {
    /// The view writes.
    pub(crate) views: Vec<ViewWrite>,
    /// The timer writes, in order.
    pub(crate) timers: Vec<TimerWrite>,
}

impl Staged {
    /// Adds a later delivery's writes (a run settled in one transaction).
    pub(crate) fn extend(&mut self, later: Staged) {
        self.views.extend(later.views);
        self.timers.extend(later.timers);
    }

    /// How many writes.
    pub(crate) fn len(&self) -> usize {
        self.views.len() + self.timers.len()
    }
}

/// The view and timer writes of one delivery, until the worker takes them for its settle.
pub(crate) struct Staging {
    store: Arc<dyn DurableStore>,
    /// `None` once taken: a write staged later (by a keeper kept past its delivery) is refused.
    writes: Mutex<Option<Vec<ViewWrite>>>,
    /// The timers scheduled and cancelled, in order; `None` once taken.
    timers: Mutex<Option<Vec<TimerWrite>>>,
}

impl Staging {
    /// The staging area of a delivery by a worker on `store`.
    pub(crate) fn new(store: Arc<dyn DurableStore>) -> Arc<Self> {
        Arc::new(Self {
            store,
            writes: Mutex::new(Some(Vec::new())),
            timers: Mutex::new(Some(Vec::new())),
        })
    }

    /// The staging area of the delivery the current task runs, if any.
    pub(crate) fn current() -> Option<Arc<Self>> {
        STAGING.try_with(Arc::clone).ok()
    }

    /// Stages a timer write, committed with the delivery's checkpoint; refused once the
    /// delivery was settled.
    pub(crate) fn stage_timer(&self, write: TimerWrite) -> Result<(), ScheduleError> {
        let mut timers = self.timers.lock().unwrap_or_else(|p| p.into_inner());
        timers.as_mut().ok_or(ScheduleError::Settled)?.push(write);
        Ok(())
    }

    /// The staged timer writes, closing the area for timers.
    pub(crate) fn take_timers(&self) -> Vec<TimerWrite> {
        let mut timers = self.timers.lock().unwrap_or_else(|p| p.into_inner());
        timers.take().unwrap_or_default()
    }

    /// Runs `delivery` with this staging area for the keepers it takes.
    pub(crate) async fn scope<F: Future>(self: &Arc<Self>, delivery: F) -> F::Output {
        STAGING.scope(Arc::clone(self), delivery).await
    }

    /// The staged view writes, closing the area.
    pub(crate) fn take(&self) -> Vec<ViewWrite> {
        self.lock().take().unwrap_or_default()
    }

    /// Every staged write (views and timers), closing the area.
    pub(crate) fn take_all(&self) -> Staged {
        Staged {
            views: self.take(),
            timers: self.take_timers(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Vec<ViewWrite>>> {
        self.writes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The store the delivery's writes go to.
    pub(crate) fn store(&self) -> &Arc<dyn DurableStore> {
        &self.store
    }

    /// The staged body and version of `view`'s `id`, if this delivery staged one.
    pub(crate) fn staged(&self, view: &str, id: &str) -> Option<(serde_json::Value, u64)> {
        let writes = self.lock();
        let write = writes
            .as_ref()?
            .iter()
            .find(|w| w.view == view && w.id == id)?;
        Some((write.body.clone(), write.version))
    }

    /// Stages `body` at `version` for `view`'s `id`, read at `read` (`None`: absent). A second
    /// write of the same view in one delivery replaces the first and keeps its expected
    /// version; it must have been built on the first (else two writes raced in one handler).
    pub(crate) fn stage(
        &self,
        view: &'static str,
        id: &str,
        read: Option<u64>,
        body: serde_json::Value,
        version: u64,
    ) -> Result<(), StoreError> {
        let mut writes = self.lock();
        let Some(writes) = writes.as_mut() else {
            return Err(StoreError::Refused(format!(
                "view `{view}` of `{id}` was staged after its delivery was settled: use the `ViewKeeper` only while the handler runs, not from a task it spawned"
            )));
        };
        match writes.iter_mut().find(|w| w.view == view && w.id == id) {
            Some(write) if Some(write.version) == read => {
                write.body = body;
                write.version = version;
            }
            Some(write) => {
                return Err(StoreError::ViewConflict {
                    view: view.to_owned(),
                    id: id.to_owned(),
                    expected: Some(write.version),
                })
            }
            None => writes.push(ViewWrite {
                view,
                id: id.to_owned(),
                body,
                expected: read,
                version,
            }),
        }
        Ok(())
    }
}

/// Keeps views of type `V` from a durable handler: reads them as stored (or as this delivery
/// staged them) and stages their writes, which the worker commits in the same transaction as
/// the handler's checkpoint. A crash between the handler and that commit writes neither, so an
/// event is applied once to every view, including one fed by many aggregates (totals), and
/// two workers updating one view cannot lose an update (the later settle finds the view
/// changed and the event is delivered again, not counted as a failure).
///
/// A handler parameter, given to durable handlers while a [`Worker`](crate::worker::Worker)
/// delivers; elsewhere its extraction fails with a message that says so (use
/// [`ViewRepository`](crate::sourcing::ViewRepository) directly there). Its writes are
/// committed only when the handler succeeds; a failed delivery discards them.
///
/// ```
/// use events::sourcing::{View, ViewKeeper};
/// use events::store::{SqliteStore, StoreError};
/// use events::{event_handler, Bus, DomainEvent};
/// use events::worker::Worker;
///
/// #[derive(DomainEvent, serde::Serialize, serde::Deserialize)]
/// #[event(aggregate = "Account")]
/// struct Deposited { #[event(aggregate_id)] account: String, cents: i64 }
///
/// /// Totals over every account: a view fed by many aggregates.
/// #[derive(serde::Serialize, serde::Deserialize, Default)]
/// struct Totals { deposits: u64, cents: i64 }
/// impl View for Totals { const NAME: &'static str = "totals"; }
///
/// #[event_handler(durable, name = "bank.totals")]
/// async fn count(e: &Deposited, totals: ViewKeeper<Totals>) -> Result<(), StoreError> {
///     totals.modify("all", |t| { t.deposits += 1; t.cents += e.cents }).await?;
///     Ok(())
/// }
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let store = SqliteStore::open_in_memory()?;
/// let bus = Bus::builder().store(store.clone()).build()?;
/// for (account, cents) in [("a", 250), ("b", 100)] {
///     bus.dispatch(&Deposited { account: account.into(), cents }).await;
/// }
/// Worker::new(&bus, &store).handlers(["bank.totals"]).drain().await?;
/// let totals = events::sourcing::ViewRepository::<Totals>::new(&store);
/// let (all, version) = totals.load("all").await?.expect("kept by the worker");
/// assert_eq!((all.deposits, all.cents, version), (2, 350, 2));
/// # Ok::<(), events::BoxError>(()) }).unwrap();
/// ```
pub struct ViewKeeper<V> {
    staging: Arc<Staging>,
    _view: PhantomData<fn() -> V>,
}

impl<V: View> FromContext for ViewKeeper<V> {
    fn from_context(_: &Context<'_>) -> Result<Self, ExtractError> {
        let staging = STAGING.try_with(Arc::clone).map_err(|_| {
            ExtractError::Other(format!(
                "`ViewKeeper<{}>` is given to durable handlers while a worker delivers (`#[event_handler(durable, ..)]`); elsewhere use a `ViewRepository`",
                type_name::<V>()
            ))
        })?;
        Ok(Self {
            staging,
            _view: PhantomData,
        })
    }
}

impl<V: View> ViewKeeper<V> {
    /// The view `id` and its version: as this delivery staged it, else as stored.
    pub async fn load(&self, id: &str) -> Result<Option<(V, u64)>, StoreError> {
        let body = match self.staging.staged(V::NAME, id) {
            Some(staged) => Some(staged),
            None => self.staging.store.load_view(V::NAME, id).await?,
        };
        body.map(|(body, version)| Ok((decode_view::<V>(id, body)?, version)))
            .transpose()
    }

    /// Changes the view `id` (a new one starts from `V::default()`) and stages it at the next
    /// version (1 for a new view); returns that version. For a view fed by many aggregates:
    /// the write and the checkpoint commit together, so a redelivered event is not applied
    /// twice.
    pub async fn modify(&self, id: &str, change: impl FnOnce(&mut V)) -> Result<u64, StoreError> {
        let loaded = self.load(id).await?;
        let read = loaded.as_ref().map(|(_, version)| *version);
        let mut view = loaded.map(|(view, _)| view).unwrap_or_default();
        change(&mut view);
        let version = read.unwrap_or(0) + 1;
        self.staging
            .stage(V::NAME, id, read, encode(&view)?, version)?;
        Ok(version)
    }

    /// Applies the event `at` to the view `at.id`, staged at its sequence, unless the view
    /// already holds it (a replay): `Ok(false)`, nothing staged.
    pub async fn update(
        &self,
        at: EventAt<'_>,
        change: impl FnOnce(&mut V),
    ) -> Result<bool, StoreError> {
        let loaded = self.load(at.id).await?;
        let read = loaded.as_ref().map(|(_, version)| *version);
        if already_applied::<V>(at, read.unwrap_or(0)) {
            return Ok(false);
        }
        let mut view = loaded.map(|(view, _)| view).unwrap_or_default();
        change(&mut view);
        self.staging
            .stage(V::NAME, at.id, read, encode(&view)?, at.sequence)?;
        Ok(true)
    }
}

impl<V: AggregateView> ViewKeeper<V> {
    /// Applies an event the handler received to the view of its aggregate, at its sequence,
    /// both read from `meta` (see [`update`](Self::update)).
    pub async fn update_with(&self, event: &V::Event, meta: &Meta) -> Result<bool, StoreError> {
        self.update(event_at::<V>(meta)?, |view| view.update(event))
            .await
    }
}

/// The durable handler `#[derive(View)]` registers for `#[view(durable = "..")]`: its name and
/// where the view is declared. Generated code implements it; not public API.
#[doc(hidden)]
pub trait KeptView: View {
    /// The handler's name.
    const HANDLER: &'static str;
    /// The view type's source location, shown as the handler's.
    const LOCATION: Location;
}

/// The registration of the durable handler that keeps `V` (see [`KeptView`]): the one place
/// generated code names `V` as an [`AggregateView`], so a view that is not one gets one error.
#[doc(hidden)]
pub const fn view_registration<V>() -> Registration
where
    V: AggregateView + KeptView,
    V::Event: DomainEvent + Durable,
{
    ViewHandler::<V>::REGISTRATION
}

/// The descriptor of the durable handler that keeps an [`AggregateView`] (see [`KeptView`]),
/// written once here: generated code only submits [`view_registration`].
#[doc(hidden)]
pub struct ViewHandler<V>(PhantomData<fn() -> V>);

impl<V> ViewHandler<V>
where
    V: AggregateView + KeptView,
    V::Event: DomainEvent + Durable,
{
    const DESCRIPTOR: &'static Handler<V::Event> = &Handler::new(
        V::HANDLER,
        0,
        Call::Durable(Self::call),
        &[],
        &[],
        V::LOCATION,
    )
    .with_encode(crate::shim::encode::<V::Event>);

    /// The handler's link-time registration.
    pub const REGISTRATION: Registration = Registration::event(Self::DESCRIPTOR);

    fn call<'a>(payload: &'a serde_json::Value, cx: &'a Context<'a>) -> BoxFuture<'a, Outcome> {
        boxed(async move {
            let event = decode::<V::Event>(payload, cx)?;
            let meta = extract::<Meta>(cx)?;
            let views = extract::<ViewKeeper<V>>(cx)?;
            into_outcome(views.update_with(&event, &meta).await.map(drop))
        })
    }
}
