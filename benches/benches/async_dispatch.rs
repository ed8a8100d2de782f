//! Group `async_dispatch`: one event to 1 and 16 async handlers, on a current-thread tokio
//! runtime (criterion's `to_async`: one `block_on` per batch of iterations, not per iteration).
//!
//! Every variant awaits the same `async fn` handlers, which all do the same small real work:
//! - `direct_await`: the handlers awaited one after the other in code (the floor);
//! - `tokio_mpsc`: one bounded `tokio::sync::mpsc` channel per handler (a queue per handler, as a
//!   hand-rolled async bus would have): `send(..).await` a clone of the event, `recv().await` it,
//!   await the handler on it;
//! - `events_dispatch`: `Bus::dispatch(..).await`, default configuration (handler timing on);
//! - `events_dispatch_timed`: the same with `record_durations(true)`.

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use events::Bus;

mod common;

/// Defines module `$m` with event type `$E` and its `$n` async handlers (registered with `events`
/// at link time), plus the direct and mpsc variants calling them.
macro_rules! handlers {
    ($m:ident, $E:ident, $n:literal; $($h:ident)+) => {
        mod $m {
            use events_benches::work;
            use tokio::sync::mpsc;

            #[derive(events::DomainEvent, Clone, Debug)]
            pub struct $E {
                pub value: u64,
            }

            $(
                #[events::event_handler]
                async fn $h(e: &$E) {
                    work(e.value)
                }
            )+

            pub const N: usize = $n;

            /// The floor: the handlers awaited directly.
            pub async fn direct(e: &$E) {
                $($h(e).await;)+
            }

            pub type Channel = (mpsc::Sender<$E>, mpsc::Receiver<$E>);

            /// One channel per handler.
            pub fn channels() -> Vec<Channel> {
                (0..N).map(|_| mpsc::channel(16)).collect()
            }

            /// Each handler's queue: send the event, receive it, handle it.
            pub async fn via_mpsc(channels: &mut [Channel], e: &$E) {
                let mut channels = channels.iter_mut();
                $(
                    let (tx, rx) = channels.next().expect("one channel per handler");
                    tx.send(e.clone()).await.expect("receiver alive");
                    $h(&rx.recv().await.expect("just sent")).await;
                )+
            }

            pub fn event() -> $E {
                $E { value: 1 }
            }
        }
    };
}

handlers!(n1, A1, 1; h00);
handlers!(n16, A16, 16; h00 h01 h02 h03 h04 h05 h06 h07 h08 h09 h10 h11 h12 h13 h14 h15);

macro_rules! bench_size {
    ($group:ident, $rt:ident, $m:ident) => {{
        let n = $m::N;
        let event = $m::event();

        $group.bench_with_input(BenchmarkId::new("direct_await", n), &event, |b, e| {
            b.to_async(&$rt).iter(|| $m::direct(black_box(e)))
        });

        $group.bench_with_input(BenchmarkId::new("tokio_mpsc", n), &event, |b, e| {
            // The channels are made per sample, outside the timed loop.
            b.to_async(&$rt).iter_custom(|iters| async move {
                let mut channels = $m::channels();
                let start = Instant::now();
                for _ in 0..iters {
                    $m::via_mpsc(&mut channels, black_box(e)).await;
                }
                start.elapsed()
            })
        });

        let bus = Bus::builder().build().expect("bus builds");
        let report = $rt
            .block_on(bus.dispatch(&event))
            .expect("no durable handlers");
        assert!(report.is_ok() && report.ran() == n, "{report}");
        $group.bench_with_input(BenchmarkId::new("events_dispatch", n), &event, |b, e| {
            b.to_async(&$rt).iter(|| bus.dispatch(black_box(e)))
        });

        let bus = Bus::builder()
            .record_durations(true)
            .build()
            .expect("bus builds");
        $group.bench_with_input(
            BenchmarkId::new("events_dispatch_timed", n),
            &event,
            |b, e| b.to_async(&$rt).iter(|| bus.dispatch(black_box(e))),
        );
    }};
}

fn async_dispatch(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio runtime");
    let mut group = c.benchmark_group("async_dispatch");
    bench_size!(group, rt, n1);
    bench_size!(group, rt, n16);
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = async_dispatch
}
criterion_main!(benches);
