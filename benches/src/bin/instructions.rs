//! Instruction counts of one dispatch, for `valgrind --tool=callgrind` (the machine is noisy;
//! instructions are not). Each `run_*` function publishes `ITERATIONS` times; callgrind counts
//! only inside the one named on the command line:
//!
//! ```text
//! cargo build --release -p events-benches --bin instructions
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null --toggle-collect='*run_publish_1*' \
//!     target/release/instructions publish_1
//! ```
//!
//! `Collected` divided by `ITERATIONS` is the cost of one call, loop included (about 3
//! instructions). `benches/instructions.sh` runs every variant and prints the table.

use std::future::Future;
use std::hint::black_box;

use events::Bus;
use events_benches::{work, IdentityTypeIdBus};

/// Calls per measurement.
const ITERATIONS: u64 = 100_000;

macro_rules! handlers {
    ($m:ident, $E:ident; $($h:ident)+) => {
        mod $m {
            use events_benches::work;

            #[derive(events::DomainEvent)]
            pub struct $E {
                pub value: u64,
            }

            $(
                #[events::event_handler]
                fn $h(e: &$E) {
                    work(e.value)
                }
            )+

            pub const HANDLERS: &[fn(&$E)] = &[$($h),+];
        }
    };
}

handlers!(n1, E1; h00);

/// One handler that takes a resource as well: its event is published with a dispatch context.
mod r1 {
    use events::Res;
    use events_benches::work;

    /// The resource the handler asks for.
    pub struct Offset(pub u64);

    #[derive(events::DomainEvent)]
    pub struct R1 {
        pub value: u64,
    }

    #[events::event_handler]
    fn h00(e: &R1, offset: Res<Offset>) {
        work(e.value + offset.0)
    }
}
handlers!(n64, E64; h00 h01 h02 h03 h04 h05 h06 h07 h08 h09 h10 h11 h12 h13 h14 h15 h16 h17 h18 h19 h20 h21 h22 h23 h24 h25 h26 h27 h28 h29 h30 h31 h32 h33 h34 h35 h36 h37 h38 h39 h40 h41 h42 h43 h44 h45 h46 h47 h48 h49 h50 h51 h52 h53 h54 h55 h56 h57 h58 h59 h60 h61 h62 h63);

macro_rules! async_handlers {
    ($m:ident, $E:ident; $($h:ident)+) => {
        mod $m {
            use events_benches::work;

            #[derive(events::DomainEvent)]
            pub struct $E {
                pub value: u64,
            }

            $(
                #[events::event_handler]
                async fn $h(e: &$E) {
                    work(e.value)
                }
            )+

            /// The floor: the handlers awaited directly.
            pub async fn direct(e: &$E) {
                $($h(e).await;)+
            }
        }
    };
}

async_handlers!(a1, A1; h00);
async_handlers!(a16, A16; h00 h01 h02 h03 h04 h05 h06 h07 h08 h09 h10 h11 h12 h13 h14 h15);

/// Polls `future` once; it must be ready (no handler here waits).
#[inline(always)]
fn ready<T>(future: impl Future<Output = T>) -> T {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match std::pin::pin!(future).poll(&mut cx) {
        std::task::Poll::Ready(output) => output,
        std::task::Poll::Pending => unreachable!("no handler waits"),
    }
}

#[inline(never)]
fn run_fn_pointer_1(handlers: &[fn(&n1::E1)], e: &n1::E1) {
    for _ in 0..ITERATIONS {
        for h in black_box(handlers) {
            h(black_box(e));
        }
    }
}

#[inline(never)]
fn run_fn_pointer_64(handlers: &[fn(&n64::E64)], e: &n64::E64) {
    for _ in 0..ITERATIONS {
        for h in black_box(handlers) {
            h(black_box(e));
        }
    }
}

#[inline(never)]
fn run_publish_1(bus: &Bus, e: &n1::E1) {
    for _ in 0..ITERATIONS {
        let _ = black_box(bus.publish(black_box(e)));
    }
}

#[inline(never)]
fn run_publish_res_1(bus: &Bus, e: &r1::R1) {
    for _ in 0..ITERATIONS {
        let _ = black_box(bus.publish(black_box(e)));
    }
}

#[inline(never)]
fn run_publish_64(bus: &Bus, e: &n64::E64) {
    for _ in 0..ITERATIONS {
        let _ = black_box(bus.publish(black_box(e)));
    }
}

#[inline(never)]
fn run_identity_map_1(bus: &IdentityTypeIdBus, e: &n1::E1) {
    for _ in 0..ITERATIONS {
        bus.publish(black_box(e));
    }
}

#[inline(never)]
fn run_direct_await_1(e: &a1::A1) {
    for _ in 0..ITERATIONS {
        ready(a1::direct(black_box(e)));
    }
}

#[inline(never)]
fn run_direct_await_16(e: &a16::A16) {
    for _ in 0..ITERATIONS {
        ready(a16::direct(black_box(e)));
    }
}

#[inline(never)]
fn run_dispatch_async_1(bus: &Bus, e: &a1::A1) {
    for _ in 0..ITERATIONS {
        let _ = black_box(ready(bus.dispatch(black_box(e))));
    }
}

#[inline(never)]
fn run_dispatch_async_16(bus: &Bus, e: &a16::A16) {
    for _ in 0..ITERATIONS {
        let _ = black_box(ready(bus.dispatch(black_box(e))));
    }
}

fn main() {
    let bus = Bus::builder()
        .resource(r1::Offset(0))
        .build()
        .expect("bus builds");
    let (e1, e64) = (n1::E1 { value: 1 }, n64::E64 { value: 1 });
    let (a1, a16) = (a1::A1 { value: 1 }, a16::A16 { value: 1 });
    let res1 = r1::R1 { value: 1 };
    let mut map = IdentityTypeIdBus::default();
    map.subscribe(|e: &u64| work(*e));
    map.subscribe(|e: &String| work(e.len() as u64));
    map.subscribe(n1::HANDLERS[0]);
    let variant = std::env::args().nth(1).unwrap_or_default();
    match variant.as_str() {
        "fn_pointer_1" => run_fn_pointer_1(n1::HANDLERS, &e1),
        "fn_pointer_64" => run_fn_pointer_64(n64::HANDLERS, &e64),
        "publish_1" => run_publish_1(&bus, &e1),
        "publish_res_1" => run_publish_res_1(&bus, &res1),
        "publish_64" => run_publish_64(&bus, &e64),
        "identity_map_1" => run_identity_map_1(&map, &e1),
        "direct_await_1" => run_direct_await_1(&a1),
        "direct_await_16" => run_direct_await_16(&a16),
        "dispatch_async_1" => run_dispatch_async_1(&bus, &a1),
        "dispatch_async_16" => run_dispatch_async_16(&bus, &a16),
        other => panic!("unknown variant {other:?}"),
    }
}
