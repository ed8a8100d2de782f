//! Workers of one handler share its segments on PostgreSQL (issue 22): real `async-worker`
//! processes. A second worker that joins mid-stream gets its fair share within a few seconds
//! (the first hands its surplus over, no lease has to lapse); a worker killed with SIGKILL has
//! its segments taken over within the lease time; every event is handled, duplicates only
//! within what the killed worker had in hand, each customer's orders in order.

mod common;

#[path = "../../../events/tests/support/postgres.rs"]
mod pg;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::App;

const HANDLER: &str = "orders.send_confirmation";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A migrated schema of its own, through the binary's `migrate` command.
fn app(test: &str, extra: &str) -> Option<App> {
    let url = runtime().block_on(pg::schema_url(test))?;
    let app = App::on(test, format!("{url}{extra}"));
    let migrated = app.run(&["migrate"]);
    assert!(migrated.contains("migrated to version"), "{migrated}");
    Some(app)
}

/// Polls `done` every 50 ms; panics with `what` after `limit`. Returns how long it took.
fn wait(limit: Duration, what: &str, mut done: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "{what}");
        std::thread::sleep(Duration::from_millis(50));
    }
    started.elapsed()
}

/// The workers `status` lists for the handler: pid -> segments held (empty: a standby).
fn workers(app: &App) -> BTreeMap<u32, Vec<u32>> {
    let status = app.run(&["status"]);
    let Some(line) = status
        .lines()
        .skip_while(|l| !l.starts_with("workers ("))
        .find_map(|l| l.strip_prefix(&format!("  {HANDLER}: ")))
    else {
        return BTreeMap::new();
    };
    line.split("; ")
        .map(|member| {
            // `pid 123 on host: segments 0,1` or `pid 123 on host: standby`
            let pid = member["pid ".len()..].split(' ').next().unwrap();
            let held = member.rsplit(": ").next().unwrap();
            let segments = match held.strip_prefix("segments ") {
                Some(list) => list.split(',').map(|s| s.parse().unwrap()).collect(),
                None => {
                    assert_eq!(held, "standby", "{status}");
                    Vec::new()
                }
            };
            (pid.parse().unwrap(), segments)
        })
        .collect()
}

#[test]
fn a_joining_worker_gets_its_share_and_a_killed_one_is_taken_over() {
    const EVENTS: u64 = 4000;
    let Some(app) = app("pg_scale_share", "&segments=8") else {
        return;
    };
    assert_eq!(
        app.run(&["place-orders", &EVENTS.to_string(), "--customers", "200"])
            .trim(),
        format!("placed {EVENTS} orders")
    );
    let args = [
        "process",
        HANDLER,
        "--lease-ttl",
        "2s",
        "--poll-interval",
        "50ms",
        "--concurrency",
        "2",
    ];
    let mut first = app.spawn(&args, 2);
    wait(
        Duration::from_secs(60),
        "the first worker took no segment",
        || workers(&app).get(&first.id()).is_some_and(|s| s.len() == 8),
    );
    wait(
        Duration::from_secs(120),
        "the first worker made no progress",
        || app.handled().len() >= 300,
    );

    // A second worker joins mid-stream: the first hands four segments over, well before a
    // lease (2 s) would lapse had it kept renewing them.
    let second = app.spawn(&args, 2);
    let handed_over = wait(
        Duration::from_secs(30),
        "the first worker did not hand half of the segments over",
        || {
            let w = workers(&app);
            w.get(&first.id()).is_some_and(|s| s.len() == 4)
                && w.get(&second.id()).is_some_and(|s| s.len() == 4)
        },
    );
    println!("fair shares after {handed_over:?}");
    assert!(
        handed_over < Duration::from_secs(5),
        "shared after {handed_over:?}"
    );
    let at_join = app.handled().len();
    wait(
        Duration::from_secs(120),
        "the workers made no progress together",
        || app.handled().len() >= at_join + 300,
    );

    // A third joins: each of the three holds at most ceil(8 / 3) = 3 segments, all 8 held.
    let third = app.spawn(&args, 2);
    let shared = wait(
        Duration::from_secs(30),
        "the segments were not shared among three workers",
        || {
            let w = workers(&app);
            let held: Vec<usize> = [first.id(), second.id(), third.id()]
                .iter()
                .map(|pid| w.get(pid).map_or(0, Vec::len))
                .collect();
            held.iter().all(|n| (2..=3).contains(n)) && held.iter().sum::<usize>() == 8
        },
    );
    println!("shared among three after {shared:?}");
    assert!(shared < Duration::from_secs(5), "shared after {shared:?}");
    let at_third = app.handled().len();
    wait(
        Duration::from_secs(120),
        "the three workers made no progress together",
        || app.handled().len() >= at_third + 300,
    );

    // SIGKILL the first: the other two take its segments once their leases lapse (2 s),
    // four each.
    first.kill().unwrap();
    let killed_at = Instant::now();
    assert!(!first.wait().unwrap().success());
    let left = app.lag(HANDLER);
    assert!(left > 0, "the kill should land mid-stream");
    wait(
        Duration::from_secs(30),
        "the other workers did not take the killed one's segments",
        || {
            let w = workers(&app);
            w.get(&second.id()).is_some_and(|s| s.len() == 4)
                && w.get(&third.id()).is_some_and(|s| s.len() == 4)
        },
    );
    let taken_over = killed_at.elapsed();
    println!("taken over {taken_over:?} after the kill");
    // The lease time, plus a heartbeat and a poll, plus this machine's slack.
    assert!(
        taken_over < Duration::from_secs(6),
        "taken over after {taken_over:?}"
    );
    wait(
        Duration::from_secs(300),
        "the other workers did not finish the stream",
        || app.lag(HANDLER) == 0,
    );
    common::terminate(third);

    // The second worker's summary: what it delivered, and when it held what.
    let pid = second.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let out = second.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let delivered: u64 = stdout
        .strip_prefix(&format!("{HANDLER}: "))
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        delivered > 0 && delivered < EVENTS,
        "both workers delivered: {stdout}"
    );
    assert!(stdout.contains("; held segments "), "{stdout}");

    // In hand at the kill: at most the concurrency (2) per segment the killed worker held
    // (3 segments).
    let (deliveries, duplicates) = common::check_after_kill(&app, HANDLER, EVENTS, 6);
    println!("{deliveries} deliveries, {duplicates} duplicate(s); second worker: {stdout}");
}

/// Sends a signal to a worker process.
fn signal(child: &std::process::Child, name: &str) {
    let ok = std::process::Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{name}");
}

/// Sessions of this database that sit "idle in transaction" for more than 200 ms holding
/// locks (a transaction id: a row locked or written): only a frozen worker's (a running
/// worker's transactions last a few milliseconds).
const STUCK_SESSIONS: &str = "SELECT COUNT(*) FROM pg_stat_activity
     WHERE datname = current_database() AND state = 'idle in transaction'
       AND backend_xid IS NOT NULL
       AND now() - state_change > interval '200 milliseconds'";

#[test]
fn a_worker_frozen_inside_a_transaction_loses_its_segments_within_the_lease_time() {
    const EVENTS: u64 = 6000;
    let Some(app) = app("pg_scale_frozen", "&segments=4") else {
        return;
    };
    app.run(&["place-orders", &EVENTS.to_string(), "--customers", "100"]);
    let args = [
        "process",
        HANDLER,
        "--lease-ttl",
        "2s",
        "--poll-interval",
        "50ms",
        "--concurrency",
        "2",
    ];
    let frozen = app.spawn(&args, 0);
    let other = app.spawn(&args, 0);
    wait(
        Duration::from_secs(60),
        "the workers did not share the segments",
        || {
            let w = workers(&app);
            w.get(&frozen.id()).is_some_and(|s| s.len() == 2)
                && w.get(&other.id()).is_some_and(|s| s.len() == 2)
        },
    );

    // Freeze the worker (SIGSTOP) until it is caught inside a transaction: a claim or a settle,
    // holding its segment's row locked.
    let rt = runtime();
    let admin = rt
        .block_on(events::store::PostgresStore::connect(
            app.url.as_deref().unwrap(),
        ))
        .unwrap();
    let client = rt.block_on(admin.client()).unwrap();
    let stuck_sessions = || {
        rt.block_on(client.query_one(STUCK_SESSIONS, &[]))
            .unwrap()
            .get::<_, i64>(0)
    };
    let mut tries = 0;
    loop {
        assert!(
            app.lag(HANDLER) > 0,
            "the stream ended before the worker froze mid-settle"
        );
        signal(&frozen, "STOP");
        std::thread::sleep(Duration::from_millis(300));
        if stuck_sessions() > 0 {
            break;
        }
        signal(&frozen, "CONT");
        tries += 1;
        assert!(tries < 100, "never caught the worker inside a transaction");
        std::thread::sleep(Duration::from_millis(7 * (tries % 5) + 3));
    }
    let frozen_at = Instant::now();

    // The server ends the frozen session (its row locks go with it) and the other worker takes
    // every segment once the frozen one's leases lapse (2 s).
    wait(
        Duration::from_secs(30),
        "the frozen worker's segments were not taken over",
        || workers(&app).get(&other.id()).is_some_and(|s| s.len() == 4),
    );
    let taken_over = frozen_at.elapsed();
    println!(
        "taken over {taken_over:?} after the freeze ({tries} tries to catch it in a transaction)"
    );
    assert!(
        taken_over < Duration::from_secs(6),
        "taken over after {taken_over:?}"
    );
    assert_eq!(stuck_sessions(), 0, "the frozen session was ended");

    // Thawed, the frozen worker commits nothing stale: its session is gone, and fencing
    // refuses the claims it lost. It stands by (or gets a share again) and exits cleanly.
    signal(&frozen, "CONT");
    wait(
        Duration::from_secs(300),
        "the workers did not finish the stream",
        || app.lag(HANDLER) == 0,
    );
    for worker in [frozen, other] {
        signal(&worker, "TERM");
        let out = worker.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // At most the events the frozen worker had in hand (its concurrency, 2, per segment it
    // held) were handled twice.
    let (deliveries, duplicates) = common::check_after_kill(&app, HANDLER, EVENTS, 4);
    println!("{deliveries} deliveries, {duplicates} duplicate(s)");
}
