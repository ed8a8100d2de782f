//! Shared pieces of the `events` benchmarks: the work every handler does, the hand-written
//! runtime bus used as a baseline, benchmark configuration, and where criterion writes.
//!
//! The benchmarks themselves are in `benches/`; see `README.md` for how to run them.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
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
/// `HashMap<TypeId, Vec<Box<dyn Fn(&dyn Any)>>>`, found by the event's `TypeId` on every
/// publish and downcast back to the event type. `S` is the map's hasher: std's SipHash by
/// default, or [`IdentityHasher`] as careful crates do (a `TypeId` is already a hash).
pub struct TypeIdBus<S = std::hash::RandomState> {
    handlers: HashMap<TypeId, Vec<ErasedHandler>, S>,
}

impl<S: Default> Default for TypeIdBus<S> {
    fn default() -> Self {
        Self {
            handlers: HashMap::default(),
        }
    }
}

/// The runtime bus with an identity hasher.
pub type IdentityTypeIdBus = TypeIdBus<BuildHasherDefault<IdentityHasher>>;

/// Hashes a `TypeId` to itself: it already is a hash (the `u64` it writes).
#[derive(Default)]
pub struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }

    fn write(&mut self, bytes: &[u8]) {
        // Not the path `TypeId` takes; folded in anyway so any key still hashes.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
}

impl<S: std::hash::BuildHasher + Default> TypeIdBus<S> {
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
