//! Group `sync_dispatch`: one event to 1, 4, 16 and 64 sync handlers.
//!
//! Every variant calls the same handler functions, which all do the same small real work
//! ([`events_benches::work`]):
//! - `direct`: the handlers called one after the other in code (the floor);
//! - `fn_pointer`: the handlers called through a slice of `fn` pointers (the physical floor of
//!   any bus whose handlers are chosen at run or link time: an indirect call each);
//! - `vec_box_dyn_fn`: a `Vec<Box<dyn Fn(&E)>>` walked in order;
//! - `hashmap_typeid_bus`: a hand-written runtime bus, `HashMap<TypeId, Vec<Box<dyn Fn(&dyn Any)>>>`
//!   with a downcast per handler ([`events_benches::TypeIdBus`]), std's SipHash;
//! - `hashmap_typeid_identity`: the same map with an identity hasher, as careful crates do
//!   ([`events_benches::IdentityTypeIdBus`]);
//! - `tokio_broadcast`: `tokio::sync::broadcast` with one receiver per handler: one `send`, then
//!   each receiver's `try_recv` (a clone of the event) handed to its handler;
//! - `events_publish`: `Bus::publish` with the default configuration (untimed);
//! - `events_publish_timed`: `Bus::publish` with `record_durations(true)`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use events::Bus;
use events_benches::{work, IdentityTypeIdBus, TypeIdBus};
use tokio::sync::broadcast;

mod common;

/// Defines module `$m` with event type `$E`, its `$n` handlers (registered with `events` at link
/// time), the list of them for the baselines, and the direct calls.
macro_rules! handlers {
    ($m:ident, $E:ident, $n:literal; $($h:ident)+) => {
        mod $m {
            use events_benches::work;

            #[derive(events::DomainEvent, Clone, Debug)]
            pub struct $E {
                pub value: u64,
            }

            $(
                #[events::event_handler]
                fn $h(e: &$E) {
                    work(e.value)
                }
            )+

            /// The handlers, for the baselines that register them at run time.
            pub const HANDLERS: &[fn(&$E)] = &[$($h),+];
            pub const N: usize = $n;

            /// The floor: the handlers called directly.
            #[inline]
            pub fn direct(e: &$E) {
                $($h(e);)+
            }

            pub fn event() -> $E {
                $E { value: 1 }
            }
        }
    };
}

handlers!(n1, E1, 1; h00);
handlers!(n4, E4, 4; h00 h01 h02 h03);
handlers!(n16, E16, 16; h00 h01 h02 h03 h04 h05 h06 h07 h08 h09 h10 h11 h12 h13 h14 h15);
handlers!(n64, E64, 64; h00 h01 h02 h03 h04 h05 h06 h07 h08 h09 h10 h11 h12 h13 h14 h15 h16 h17 h18 h19 h20 h21 h22 h23 h24 h25 h26 h27 h28 h29 h30 h31 h32 h33 h34 h35 h36 h37 h38 h39 h40 h41 h42 h43 h44 h45 h46 h47 h48 h49 h50 h51 h52 h53 h54 h55 h56 h57 h58 h59 h60 h61 h62 h63);

/// Benchmarks every variant for one event type `E` of module `$m`.
macro_rules! bench_size {
    ($group:ident, $m:ident) => {{
        let n = $m::N;
        let event = $m::event();
        let handlers = $m::HANDLERS;

        $group.bench_with_input(BenchmarkId::new("direct", n), &event, |b, e| {
            b.iter(|| $m::direct(black_box(e)))
        });

        $group.bench_with_input(BenchmarkId::new("fn_pointer", n), &event, |b, e| {
            b.iter(|| {
                for h in black_box(handlers) {
                    h(black_box(e));
                }
            })
        });

        let boxed: Vec<Box<dyn Fn(&_)>> = handlers
            .iter()
            .map(|&h| Box::new(h) as Box<dyn Fn(&_)>)
            .collect();
        $group.bench_with_input(BenchmarkId::new("vec_box_dyn_fn", n), &event, |b, e| {
            b.iter(|| {
                for h in &boxed {
                    h(black_box(e));
                }
            })
        });

        let mut runtime_bus = TypeIdBus::<std::hash::RandomState>::default();
        let mut identity_bus = IdentityTypeIdBus::default();
        // A few other event types, as in any program with a bus.
        runtime_bus.subscribe(|e: &u64| work(*e));
        runtime_bus.subscribe(|e: &String| work(e.len() as u64));
        runtime_bus.subscribe(|e: &(u32, u32)| work(u64::from(e.0)));
        identity_bus.subscribe(|e: &u64| work(*e));
        identity_bus.subscribe(|e: &String| work(e.len() as u64));
        identity_bus.subscribe(|e: &(u32, u32)| work(u64::from(e.0)));
        for &h in handlers {
            runtime_bus.subscribe(h);
            identity_bus.subscribe(h);
        }
        $group.bench_with_input(BenchmarkId::new("hashmap_typeid_bus", n), &event, |b, e| {
            b.iter(|| runtime_bus.publish(black_box(e)))
        });
        $group.bench_with_input(
            BenchmarkId::new("hashmap_typeid_identity", n),
            &event,
            |b, e| b.iter(|| identity_bus.publish(black_box(e))),
        );

        let (tx, _) = broadcast::channel(16);
        let mut receivers: Vec<_> = handlers.iter().map(|&h| (tx.subscribe(), h)).collect();
        $group.bench_with_input(BenchmarkId::new("tokio_broadcast", n), &event, |b, e| {
            b.iter(|| {
                tx.send(black_box(e).clone()).expect("receivers exist");
                for (rx, h) in &mut receivers {
                    h(&rx.try_recv().expect("just sent"));
                }
            })
        });

        let bus = Bus::builder().build().expect("bus builds");
        let report = bus.publish(&event).expect("no durable handlers");
        assert!(report.is_ok() && report.ran() == n, "{report}");
        $group.bench_with_input(BenchmarkId::new("events_publish", n), &event, |b, e| {
            b.iter(|| bus.publish(black_box(e)))
        });

        let bus = Bus::builder()
            .record_durations(true)
            .build()
            .expect("bus builds");
        $group.bench_with_input(
            BenchmarkId::new("events_publish_timed", n),
            &event,
            |b, e| b.iter(|| bus.publish(black_box(e))),
        );
    }};
}

fn sync_dispatch(c: &mut Criterion) {
    let mut group = c.benchmark_group("sync_dispatch");
    bench_size!(group, n1);
    bench_size!(group, n4);
    bench_size!(group, n16);
    bench_size!(group, n64);
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = sync_dispatch
}
criterion_main!(benches);
