//! Shared pieces of the `events` benchmarks: the work every handler does, the hand-written
//! runtime bus used as a baseline, benchmark configuration, and where criterion writes.
//!
//! The benchmarks themselves are in `benches/`; see `README.md` for how to run them.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::hint::black_box;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

/// Where every handler's work goes.
pub static SINK: AtomicU64 = AtomicU64::new(0);

/// The small, real work each handler does in every variant: add the event's field into a
/// shared accumulator (a relaxed load and store, not a locked read-modify-write, so that the
/// work does not hide dispatch overhead). `black_box` keeps the compiler from folding it.
#[inline]
pub fn work(value: u64) {
    SINK.store(
        SINK.load(Ordering::Relaxed).wrapping_add(black_box(value)),
        Ordering::Relaxed,
    );
}

/// A boxed type-erased handler of the runtime bus.
type ErasedHandler = Box<dyn Fn(&dyn Any) + Send + Sync>;

/// The baseline "hand-written runtime bus": handlers registered at run time in a
/// `HashMap<TypeId, Vec<Box<dyn Fn(&dyn Any)>>>` (std's default hasher), found by the event's
/// `TypeId` on every publish and downcast back to the event type.
#[derive(Default)]
pub struct TypeIdBus {
    handlers: HashMap<TypeId, Vec<ErasedHandler>>,
}

impl TypeIdBus {
    /// Registers `handler` for events of type `E`.
    pub fn subscribe<E: 'static>(&mut self, handler: impl Fn(&E) + Send + Sync + 'static) {
        self.handlers
            .entry(TypeId::of::<E>())
            .or_default()
            .push(Box::new(move |event: &dyn Any| {
                if let Some(event) = event.downcast_ref::<E>() {
                    handler(event);
                }
            }));
    }

    /// Calls every handler of `E`, in registration order.
    pub fn publish<E: 'static>(&self, event: &E) {
        if let Some(handlers) = self.handlers.get(&TypeId::of::<E>()) {
            for handler in handlers {
                handler(event);
            }
        }
    }
}

/// Whether `EVENTS_BENCH_QUICK` asks for the short CI run.
pub fn quick() -> bool {
    std::env::var_os("EVENTS_BENCH_QUICK").is_some_and(|v| !v.is_empty() && v != "0")
}

/// criterion's output directory, as criterion picks it: `$CRITERION_HOME`, else
/// `$CARGO_TARGET_DIR/criterion`, else the workspace's `target/criterion`.
pub fn criterion_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target")),
    };
    target.join("criterion")
}
