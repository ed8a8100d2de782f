//! Runs `run.sh`, the scenario the README shows, against a real PostgreSQL server (the ordering
//! service's store) and each real broker (nats-server, redis-server, rabbitmq-server): both services' real
//! binaries, the relay, the inbox and both workers as separate processes.

use std::process::Command;

#[test]
fn the_scenario_runs_from_its_script_over_nats() {
    let Some(postgres) = postgres_url() else {
        return;
    };
    let Some(nats) = nats_harness::server!("distributed_scenario") else {
        return;
    };
    scenario(&postgres, nats.url(), &nats.unique("ORDERS"));
}

#[test]
fn the_scenario_runs_from_its_script_over_redis() {
    let Some(postgres) = postgres_url() else {
        return;
    };
    let Some(redis) = server_url("EVENTS_REDIS_URL") else {
        return;
    };
    scenario(
        &postgres,
        &redis,
        &format!("ORDERS_distributed_{}", std::process::id()),
    );
}

#[test]
fn the_scenario_runs_from_its_script_over_rabbitmq() {
    let Some(postgres) = postgres_url() else {
        return;
    };
    let Some(rabbitmq) = server_url("EVENTS_RABBITMQ_URL") else {
        return;
    };
    scenario(
        &postgres,
        &rabbitmq,
        &format!("ORDERS_distributed_{}", std::process::id()),
    );
}

fn scenario(postgres: &str, broker: &str, stream: &str) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/run.sh");
    let out = Command::new("bash")
        .arg(script)
        .env("ORDERING_BIN", env!("CARGO_BIN_EXE_ordering"))
        .env("SHIPPING_BIN", env!("CARGO_BIN_EXE_shipping"))
        .env("BROKER_URL", broker)
        .env("EVENTS_POSTGRES_URL", postgres)
        .env(
            "ORDERING_SCHEMA",
            format!(
                "ordering_{}_{}",
                broker.split("://").next().unwrap(),
                std::process::id()
            ),
        )
        .env("DISTRIBUTED_STREAM", stream)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for expected in [
        "ordering: 20 orders placed",
        "20 receipts sent",
        "relay: 20 published, 0 duplicates",
        "inbox: 20 ingested, 0 duplicates",
        "shipping.schedule_delivery: 16 delivered, 12 failed attempts, 4 dead-lettered, 0 held back",
        "log head: position 20",
        "no carrier delivers to Atlantis (order 20)",
    ] {
        assert!(stdout.contains(expected), "missing {expected:?} in:\n{stdout}");
    }
    // Transient carrier failures were retried into deliveries; only Atlantis is dead.
    let scheduled = stdout
        .lines()
        .filter(|l| l.starts_with("shipping: delivery of order"))
        .count();
    assert_eq!(scheduled, 16, "{stdout}");
    assert!(
        stdout.contains("shipping: delivery of order 9 to 9 Main St scheduled"),
        "{stdout}"
    );
}

/// The PostgreSQL server at `EVENTS_POSTGRES_URL` (`scripts/servers.sh` starts one).
fn postgres_url() -> Option<String> {
    server_url("EVENTS_POSTGRES_URL")
}

/// The server at `var` (`scripts/servers.sh` exports it); without it the test skips, unless
/// `CI=true`: then it fails.
fn server_url(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").is_ok_and(|ci| ci == "true") => panic!(
            "{var} is not set and CI=true: run the tests through `scripts/servers.sh run cargo test ...`"
        ),
        _ => {
            eprintln!("the distributed scenario: skipped: {var} is not set (run through `scripts/servers.sh run ...`)");
            None
        }
    }
}
