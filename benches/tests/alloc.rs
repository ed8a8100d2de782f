//! Allocations per dispatch, counted by a `#[global_allocator]`: a sync `publish` of a borrowed
//! event must not allocate, with or without handler timing, nor must a `dispatch(..).await` of an
//! event whose handlers are sync or async with small futures (run in place). An async handler
//! whose future is larger than the inline size (`INLINE_FUTURE_SIZE` in `events/src/handler.rs`)
//! is boxed: one allocation.
//!
//! Run with `cargo test -p events-benches --test alloc -- --nocapture` to see the counts.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};

use events::Bus;
use events_benches::work;

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Counting is per thread: the test harness's other threads may allocate at any time (it
    /// did on a loaded machine), and only the dispatching thread's allocations are ours.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

/// Whether this thread counts (false while its thread-locals are torn down).
fn counting() -> bool {
    COUNTING.try_with(Cell::get).unwrap_or(false)
}

// SAFETY: forwards to `System`, only counting.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if counting() {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if counting() {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as ours.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if counting() {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[derive(events::DomainEvent)]
struct OneHandler {
    value: u64,
}

#[events::event_handler]
fn one(e: &OneHandler) {
    work(e.value)
}

#[derive(events::DomainEvent)]
struct FourHandlers {
    value: u64,
}

#[events::event_handler(order = 1)]
fn four_a(e: &FourHandlers) {
    work(e.value)
}

#[events::event_handler(order = 2)]
fn four_b(e: &FourHandlers) {
    work(e.value)
}

#[events::event_handler(order = 3)]
fn four_c(e: &FourHandlers) -> Result<(), std::io::Error> {
    work(e.value);
    Ok(())
}

#[events::event_handler(order = 4)]
fn four_d(e: &FourHandlers, meta: events::Meta) {
    // Asks for nothing costly from the metadata: only the event's name, known statically.
    work(e.value + meta.event_name().len() as u64)
}

#[derive(events::DomainEvent)]
struct AsyncHandlers {
    value: u64,
}

#[events::event_handler]
async fn async_a(e: &AsyncHandlers) {
    work(e.value)
}

#[events::event_handler]
async fn async_b(e: &AsyncHandlers) {
    work(e.value)
}

#[derive(events::DomainEvent)]
struct LargeFuture {
    value: u64,
}

/// Holds a buffer across an `.await`: its future is too large to run in place.
#[events::event_handler]
async fn large_future(e: &LargeFuture) {
    let buffer = [e.value; 64];
    std::future::ready(()).await;
    work(buffer.iter().sum())
}

const ROUNDS: u64 = 1000;

/// Allocations per call of `f`, over [`ROUNDS`] calls after a warm-up call.
fn allocations_per_call(mut f: impl FnMut()) -> f64 {
    f(); // The first use of an event type initialises its handler list.
    ALLOCATIONS.store(0, Ordering::SeqCst);
    COUNTING.with(|c| c.set(true));
    for _ in 0..ROUNDS {
        f();
    }
    COUNTING.with(|c| c.set(false));
    ALLOCATIONS.load(Ordering::SeqCst) as f64 / ROUNDS as f64
}

/// Polls a future to completion without a runtime (these never wait).
fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

fn buses() -> [(&'static str, Bus); 2] {
    [
        ("default", Bus::builder().build().unwrap()),
        (
            "record_durations(true)",
            Bus::builder().record_durations(true).build().unwrap(),
        ),
    ]
}

// One test, so that no other test thread allocates while counting.
#[test]
fn allocations_per_dispatch() {
    let one_event = OneHandler { value: 1 };
    let four_event = FourHandlers { value: 2 };
    let async_event = AsyncHandlers { value: 3 };
    let large_event = LargeFuture { value: 4 };
    let mut failures = Vec::new();
    for (config, bus) in buses() {
        let mut expect = |what: &str, expected: f64, per_call: f64| {
            let noun = if per_call == 1.0 {
                "allocation"
            } else {
                "allocations"
            };
            println!("alloc: {what} [{config}]: {per_call} {noun} per call");
            if per_call != expected {
                failures.push(format!("{what} [{config}]: {per_call}, not {expected}"));
            }
        };
        expect(
            "publish, 1 sync handler",
            0.0,
            allocations_per_call(|| assert!(bus.publish(&one_event).is_ok())),
        );
        expect(
            "publish, 4 sync handlers",
            0.0,
            allocations_per_call(|| assert!(bus.publish(&four_event).is_ok())),
        );
        expect(
            "dispatch, 4 sync handlers",
            0.0,
            allocations_per_call(|| assert!(block_on(bus.dispatch(&four_event)).is_ok())),
        );
        expect(
            "dispatch, 2 async handlers",
            0.0,
            allocations_per_call(|| assert!(block_on(bus.dispatch(&async_event)).is_ok())),
        );
        expect(
            "dispatch, 1 async handler with a large future (boxed)",
            1.0,
            allocations_per_call(|| assert!(block_on(bus.dispatch(&large_event)).is_ok())),
        );
    }
    assert!(
        failures.is_empty(),
        "allocations per dispatch not as expected: {failures:?}"
    );
}
