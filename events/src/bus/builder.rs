//! [`BusBuilder`]: the resources and options of a [`Bus`], and the start-up checks of the whole
//! program that `build` runs once.

use std::any::{type_name, Any, TypeId};
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use super::{Bus, HandlerMetrics, Inner, Resource, Subset, Tap};
use crate::catalog::{catalog, Catalog, HandlerInfo};
use crate::error::{BuildError, Problem};
use crate::handler::HandlerKind;
use crate::sink::DurableSink;

/// Configures a [`Bus`]: the resources handlers ask for. Handlers need no registration.
///
/// [`build`](Self::build) checks the whole program once (unique names, every resource a
/// handler asks for provided, required crates and handlers linked) and lists every problem
/// in one [`BuildError`].
///
/// ```
/// use std::sync::Arc;
/// use events::{event_handler, Bus, DomainEvent, Res};
///
/// struct Mailer { from: &'static str }
/// struct Templates(Vec<String>);
///
/// #[derive(DomainEvent)]
/// struct UserRegistered { email: String }
///
/// #[event_handler(name = "users.welcome")]
/// fn welcome(e: &UserRegistered, mailer: Res<Mailer>, templates: Res<Templates>) {
///     println!("{} -> {}: {}", mailer.from, e.email, templates.0[0]);
/// }
///
/// // A resource missing: one error that names the handler and the type.
/// let error = Bus::builder().resource(Mailer { from: "hi@example.com" }).build().unwrap_err();
/// assert!(error.to_string().contains("needs resource"), "{error}");
///
/// let templates = Arc::new(Templates(vec!["Welcome!".into()])); // kept by the caller too
/// let bus = Bus::builder()
///     .resource(Mailer { from: "hi@example.com" })    // taken as `Res<Mailer>`
///     .shared_resource(Arc::clone(&templates))          // taken as `Res<Templates>`
///     .require_handlers(["users.welcome"])              // fail if it is not linked
///     .build()?;
/// assert!(bus.publish(&UserRegistered { email: "ada@example.com".into() }).is_ok());
/// # Ok::<(), events::BuildError>(())
/// ```
#[must_use]
pub struct BusBuilder {
    resources: Vec<Resource>,
    record_durations: bool,
    /// Module paths whose handlers the bus serves (empty: every linked handler).
    serve: Vec<&'static str>,
    pub(crate) tap: Option<Arc<dyn Tap>>,
    sink: Option<Arc<dyn DurableSink>>,
    required_handlers: Vec<String>,
    required_crates: Vec<String>,
}

impl Bus {
    /// Starts building a bus.
    pub fn builder() -> BusBuilder {
        BusBuilder {
            resources: Vec::new(),
            record_durations: false,
            serve: Vec::new(),
            tap: None,
            sink: None,
            required_handlers: Vec::new(),
            required_crates: Vec::new(),
        }
    }
}

impl BusBuilder {
    /// Provides a resource that handlers take as `Res<T>`.
    pub fn resource<T: Send + Sync + 'static>(self, value: T) -> Self {
        self.shared_resource(Arc::new(value))
    }

    /// Provides a resource that is already shared.
    pub fn shared_resource<T: Send + Sync + 'static>(mut self, value: Arc<T>) -> Self {
        let value: Arc<dyn Any + Send + Sync> = value;
        self.resources.push(Resource {
            type_id: TypeId::of::<T>(),
            type_name: type_name::<T>(),
            value,
        });
        self
    }

    /// Whether to time every inline handler call for the `events_handler_duration_seconds`
    /// histogram (default: off). Timing costs one clock read per handler call, which is most of
    /// the cost of dispatching to a small handler (see `benches/`). Durable handlers, which do
    /// I/O, are always timed by the worker.
    pub fn record_durations(mut self, on: bool) -> Self {
        self.record_durations = on;
        self
    }

    /// The store that events with durable handlers are appended to when they are published
    /// (every store backend is a [`DurableSink`]; for SQLite: `.store(sqlite_store.clone())`).
    /// The stored event has the id the inline handlers see in their [`Meta`](crate::Meta).
    /// Without a store, publishing such an event reports its durable handlers as skipped.
    pub fn store(mut self, store: impl DurableSink) -> Self {
        self.sink = Some(Arc::new(store));
        self
    }

    /// Fails [`build`](Self::build) unless a handler with each of these names is linked into
    /// the program: the guard against a forgotten [`link!`](crate::link).
    pub fn require_handlers<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.required_handlers
            .extend(names.into_iter().map(Into::into));
        self
    }

    /// Fails [`build`](Self::build) unless each of these crates (by the first segment of
    /// their module paths, like `billing_handlers`) contributes at least one handler: the
    /// guard against a forgotten [`link!`](crate::link).
    pub fn require_crates<S: Into<String>>(mut self, crates: impl IntoIterator<Item = S>) -> Self {
        self.required_crates
            .extend(crates.into_iter().map(Into::into));
        self
    }

    /// Serves only the handlers defined in the module `path` or below it (like
    /// `"billing::handlers"`); call it once per module. Other linked handlers do not run on
    /// this bus and their resources are not required: a tool that links the domain crate for a
    /// few handlers does not have to provide the resources of all the others. Command handlers
    /// outside the subset are not checked for resources either.
    pub fn serve_module(mut self, path: &'static str) -> Self {
        self.serve.push(path);
        self
    }

    /// Whether a handler defined in `module_path` is served.
    fn selected(&self, module_path: &str) -> bool {
        self.serve.is_empty()
            || self.serve.iter().any(|p| {
                module_path
                    .strip_prefix(p)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
            })
    }

    /// Checks the whole program once and builds the bus, or lists every problem found:
    /// duplicate handler or event names, resources that handlers need but were not provided,
    /// resources provided twice, required handlers or crates that are not linked.
    ///
    /// Logs the crates that contributed handlers (info), each event type without any handler
    /// (warn: its handlers' crate may need [`link!`](crate::link)), and each sync handler that
    /// declares `publishes(X)` for an `X` with async handlers (warn: those run only when the
    /// chain is dispatched with `dispatch(..).await`).
    pub fn build(self) -> Result<Bus, BuildError> {
        let catalog = catalog();
        let problems = self.problems(catalog);
        if !problems.is_empty() {
            return Err(BuildError::new(problems));
        }
        Ok(self.assemble())
    }

    /// The bus without the program's start-up checks: a test fixture's, which runs one
    /// process manager's reactions and sends nothing.
    #[cfg(feature = "durable")]
    pub(crate) fn build_unchecked(self) -> Bus {
        self.assemble()
    }

    fn assemble(self) -> Bus {
        let catalog = catalog();
        // Without a recorder (the no-op one is the only zero-sized recorder) there are no
        // counter handles at all, and counting a dispatch costs one bounds check.
        let counting = metrics::with_recorder(|r| std::mem::size_of_val(r) != 0);
        let events = catalog
            .events()
            .iter()
            .filter(|_| counting)
            .map(|e| metrics::counter!("events_dispatched_total", "event" => e.name()))
            .collect();
        let handlers = catalog
            .handlers()
            .iter()
            .map(|h| HandlerMetrics {
                failures: metrics::counter!("events_handler_failures_total", "handler" => h.name()),
                duration: metrics::histogram!("events_handler_duration_seconds", "handler" => h.name()),
            })
            .collect();
        let subset = (!self.serve.is_empty()).then(|| {
            let served = |h: &HandlerInfo| self.selected(h.location().module_path());
            Subset {
                served: catalog.handlers().iter().map(served).collect(),
                states: catalog.events().iter().map(|_| OnceLock::new()).collect(),
            }
        });
        let plain = self.tap.is_none() && !self.record_durations && subset.is_none();
        tracing::info!(
            events = catalog.events().len(),
            handlers = catalog.handlers().len(),
            resources = self.resources.len(),
            crates = %handler_crates(catalog).join(", "),
            "event bus built; handlers linked from these crates"
        );
        self.warn_about(catalog);
        Bus {
            inner: Arc::new(Inner {
                resources: self.resources,
                events,
                handlers,
                record_durations: self.record_durations,
                bare: plain && !counting,
                plain,
                subset,
                tap: self.tap,
                sink: self.sink,
            }),
        }
    }

    fn problems(&self, catalog: &Catalog) -> Vec<Problem> {
        let mut problems = Vec::new();

        let mut by_name: BTreeMap<&str, Vec<&HandlerInfo>> = BTreeMap::new();
        for h in catalog.handlers() {
            by_name.entry(h.name()).or_default().push(h);
        }
        for (name, handlers) in by_name {
            if handlers.len() > 1 {
                let locations = handlers.iter().map(|h| h.location().to_string()).collect();
                problems.push(Problem::DuplicateHandlerName {
                    name: name.to_owned(),
                    locations,
                });
            }
        }

        let mut events: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for e in catalog.events() {
            events.entry(e.name()).or_default().push(e.type_name());
        }
        for (name, types) in events {
            if types.len() > 1 {
                problems.push(Problem::DuplicateEventName {
                    name: name.to_owned(),
                    types: types.join(", "),
                });
            }
        }

        let mut provided: BTreeMap<TypeId, (&str, usize)> = BTreeMap::new();
        for r in &self.resources {
            provided.entry(r.type_id).or_insert((r.type_name, 0)).1 += 1;
        }
        let mut twice: Vec<_> = provided.values().filter(|(_, n)| *n > 1).collect();
        twice.sort();
        for (name, count) in twice {
            problems.push(Problem::DuplicateResource {
                resource: (*name).to_owned(),
                count: *count,
            });
        }

        for h in catalog.handlers() {
            if !self.selected(h.location().module_path()) {
                continue;
            }
            for req in h.requirements() {
                if !provided.contains_key(&(req.type_id)()) {
                    problems.push(Problem::MissingResource {
                        handler: h.name().to_owned(),
                        location: h.location().to_string(),
                        resource: req.type_name().to_owned(),
                    });
                }
            }
        }
        problems.extend(crate::registry::command_problems(
            &|id| provided.contains_key(&id),
            &|module| self.selected(module),
        ));

        for name in &self.required_handlers {
            if catalog.handler(name).is_none() {
                problems.push(Problem::MissingHandler { name: name.clone() });
            }
        }
        let crates = handler_crates(catalog);
        for krate in &self.required_crates {
            if !crates.contains(&krate.as_str()) {
                problems.push(Problem::MissingCrate {
                    krate: krate.clone(),
                    linked: crates.join(", "),
                });
            }
        }
        problems
    }

    /// Start-up warnings: what is not wrong for sure, but usually a mistake.
    fn warn_about(&self, catalog: &Catalog) {
        for event in catalog.events() {
            let handlers = catalog.handlers_of(event);
            if handlers.is_empty() {
                tracing::warn!(
                    event = event.name(),
                    "event type has no handler in this program; if its handlers live in another crate, link that crate with `events::link!`"
                );
            }
        }
        for h in catalog.handlers() {
            if h.kind() != HandlerKind::Sync {
                continue;
            }
            for published in h.publishes() {
                let Some(event) = catalog.event(published) else {
                    continue;
                };
                let asynchronous: Vec<_> = catalog
                    .handlers_of(event)
                    .iter()
                    .filter(|f| f.kind() == HandlerKind::Async)
                    .map(HandlerInfo::name)
                    .collect();
                if !asynchronous.is_empty() {
                    tracing::warn!(
                        handler = h.name(),
                        event = published,
                        "sync handler `{}` publishes `{published}`, whose async handlers ({}) run only when the chain is dispatched with `dispatch(..).await` or `spawn`; under `publish` they are skipped",
                        h.name(),
                        asynchronous.join(", ")
                    );
                }
            }
        }
        let durable = catalog
            .handlers()
            .iter()
            .filter(|h| h.kind() == HandlerKind::Durable)
            .count();
        // Debug only: a bus that only delivers (the worker, the CLI) needs no store; publishing
        // without one is logged at warn for each event.
        if durable > 0 && self.sink.is_none() {
            tracing::debug!(
                durable,
                "the bus has no store: published events will not reach durable handlers (they are reported skipped); give it one with `Bus::builder().store(..)`"
            );
        }
    }
}

/// The crates that contributed handlers (first segments of their module paths), sorted.
fn handler_crates(catalog: &Catalog) -> Vec<&'static str> {
    let crates: std::collections::BTreeSet<_> = catalog
        .handlers()
        .iter()
        .map(|h| {
            let path = h.location().module_path();
            path.split("::").next().unwrap_or(path)
        })
        .collect();
    crates.into_iter().collect()
}
