//! `status`: every durable handler's progress (checkpoint, lag in events and age, retries,
//! dead letters, leases) as a table or JSON, and `--check`, the health check a monitor runs.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write;
use std::time::SystemTime;

use serde::Serialize;

use super::args::StatusArgs;
use super::commands::Outcome;
use super::output::{age, count, due_in, json, rfc3339, short, table};
use super::CliError;
use crate::catalog::catalog;
use crate::handler::HandlerKind;
use crate::store::durable::{DurableStore, FailureStatus, HandlerStatus, OpenCircuit, TimerCounts};
use crate::worker::{handler_status, orphaned_checkpoints};

/// `status --json`.
#[derive(Serialize)]
struct StatusJson {
    store: String,
    log_head: u64,
    handlers: Vec<HandlerJson>,
    orphaned_checkpoints: Vec<OrphanJson>,
    relays: Vec<RelayJson>,
    timers: TimersJson,
    problems: Vec<String>,
}

/// A relay's checkpoint (`relay:<stream>`): the last position the broker confirmed, and how
/// many positions of the log it has still to publish.
#[derive(Serialize)]
struct RelayJson {
    name: String,
    position: u64,
    behind: u64,
}

/// The stored timers: how many, how many due (a running worker fires them at once), the
/// oldest due one's due time and the next due time.
#[derive(Serialize)]
struct TimersJson {
    scheduled: u64,
    overdue: u64,
    oldest_overdue_at: Option<String>,
    next_due_at: Option<String>,
}

#[derive(Serialize)]
struct HandlerJson {
    handler: String,
    event: &'static str,
    checkpoint: u64,
    lag: u64,
    oldest_undelivered_at: Option<String>,
    lag_age_seconds: Option<u64>,
    retrying: u64,
    next_retry_at: Option<String>,
    dead: u64,
    held: u64,
    leases: Vec<LeaseJson>,
    /// The live workers of the handler, oldest first, with the segments each holds.
    workers: Vec<WorkerJson>,
    /// Its segments whose circuit breaker is open: paused until `open_until`.
    circuits: Vec<CircuitJson>,
}

#[derive(Serialize)]
struct CircuitJson {
    segment: u32,
    open_until: String,
    closes_in_seconds: u64,
    failures: u32,
}

#[derive(Serialize)]
struct WorkerJson {
    host: String,
    pid: u32,
    worker: String,
    joined_at: String,
    expires_at: String,
    /// Empty: a standby.
    segments: Vec<u32>,
}

#[derive(Serialize)]
struct LeaseJson {
    segment: u32,
    host: String,
    pid: u32,
    expires_at: String,
}

#[derive(Serialize)]
struct OrphanJson {
    handler: String,
    position: u64,
}

/// One durable handler as `status` sees it.
struct Row {
    event: &'static str,
    status: HandlerStatus,
    next_retry: Option<SystemTime>,
}

/// `status`: the table (or JSON), then, with `--check`, the verdict.
pub(super) async fn status(
    store: &dyn DurableStore,
    args: &StatusArgs,
    out: &mut impl Write,
) -> Result<Outcome, CliError> {
    let head = store.log_head().await?;
    let now = SystemTime::now();
    let mut next_retry: BTreeMap<String, SystemTime> = BTreeMap::new();
    for f in store.failures(None).await? {
        if let (FailureStatus::Retrying, Some(at)) = (f.status, f.next_attempt_at) {
            let next = next_retry.entry(f.handler).or_insert(at);
            *next = (*next).min(at);
        }
    }
    let mut rows = Vec::new();
    for h in catalog()
        .handlers()
        .iter()
        .filter(|h| h.kind() == HandlerKind::Durable)
    {
        rows.push(Row {
            event: h.event_name(),
            status: handler_status(store, h.name(), h.event_name()).await?,
            next_retry: next_retry.get(h.name()).copied(),
        });
    }
    let orphans = orphaned_checkpoints(store).await?;
    let positions: BTreeMap<_, _> = store
        .checkpoints()
        .await?
        .into_iter()
        .map(|c| (c.handler, c.position))
        .collect();
    let relays: Vec<RelayJson> = positions
        .iter()
        .filter(|(name, _)| name.starts_with("relay:"))
        .map(|(name, &position)| RelayJson {
            name: name.clone(),
            position,
            behind: head.saturating_sub(position),
        })
        .collect();
    let orphans: Vec<_> = orphans
        .into_iter()
        .map(|handler| OrphanJson {
            position: positions.get(&handler).copied().unwrap_or_default(),
            handler,
        })
        .collect();
    let timers = store.timer_counts(now).await?;
    let mut problems = problems(&rows, args, now);
    if let (Some(max), Some(oldest)) = (args.max_lag_age, timers.oldest_due) {
        let late = age(oldest, now);
        if late > max {
            problems.push(format!(
                "timers: {} overdue, the oldest due {} ago (more than --max-lag-age {}); is a worker running?",
                timers.overdue,
                short(late),
                short(max)
            ));
        }
    }
    if args.json {
        json(
            out,
            &StatusJson {
                store: store.location(),
                log_head: head,
                handlers: rows.iter().map(|r| handler_json(r, now)).collect(),
                orphaned_checkpoints: orphans,
                relays,
                timers: TimersJson {
                    scheduled: timers.scheduled,
                    overdue: timers.overdue,
                    oldest_overdue_at: timers.oldest_due.map(rfc3339),
                    next_due_at: timers.next_due.map(rfc3339),
                },
                problems: problems.clone(),
            },
        )?;
    } else if !args.check {
        write!(out, "{}", text(head, &rows, &orphans, now))?;
        writeln!(out, "{}", timers_line(&timers, now))?;
        for r in &relays {
            writeln!(
                out,
                "relay {}: at position {}, {} behind the log head",
                r.name,
                r.position,
                count(r.behind, "position")
            )?;
        }
    }
    if !args.check {
        return Ok(Outcome::Done);
    }
    if problems.is_empty() {
        if !args.json {
            writeln!(
                out,
                "ok: {}, log head at position {head}",
                count(rows.len() as u64, "durable handler")
            )?;
        }
        return Ok(Outcome::Done);
    }
    if !args.json {
        for problem in &problems {
            writeln!(out, "{problem}")?;
        }
    }
    Ok(Outcome::Unhealthy)
}

/// One open circuit, as a line.
fn circuit(handler: &str, c: &OpenCircuit, now: SystemTime) -> String {
    format!(
        "{handler}: circuit open on segment {} until {} (in {}) after {} fresh events failed in a row",
        c.segment,
        rfc3339(c.until),
        short(c.until.duration_since(now).unwrap_or_default()),
        c.failures
    )
}

/// What `--check` reports, one line each: open circuits, dead letters above `--max-dead`,
/// lag above `--max-lag` or older than `--max-lag-age`.
fn problems(rows: &[Row], args: &StatusArgs, now: SystemTime) -> Vec<String> {
    let mut problems = Vec::new();
    for Row { status: s, .. } in rows {
        let h = &s.handler;
        for c in &s.circuits {
            problems.push(format!(
                "{}; see the worker's log for the failures",
                circuit(h, c, now)
            ));
        }
        if s.dead > args.max_dead {
            problems.push(format!(
                "{h}: {} (more than {}); see `dead-letters --handler {h}`, then `retry` or `drop` them",
                count(s.dead, "dead letter"), args.max_dead
            ));
        }
        if let Some(max) = args.max_lag.filter(|max| s.lag > *max) {
            problems.push(format!(
                "{h}: {} events behind (more than --max-lag {max}); is its worker running?",
                s.lag
            ));
        }
        if let (Some(max), Some(since)) = (args.max_lag_age, s.lag_since) {
            let old = age(since, now);
            if old > max {
                problems.push(format!(
                    "{h}: its oldest undelivered event is {} old (more than --max-lag-age {}); is its worker running?",
                    short(old),
                    short(max)
                ));
            }
        }
    }
    problems
}

fn handler_json(r: &Row, now: SystemTime) -> HandlerJson {
    let s = &r.status;
    HandlerJson {
        handler: s.handler.clone(),
        event: r.event,
        checkpoint: s.checkpoint,
        lag: s.lag,
        oldest_undelivered_at: s.lag_since.map(rfc3339),
        lag_age_seconds: s.lag_since.map(|t| age(t, now).as_secs()),
        retrying: s.retrying,
        next_retry_at: r.next_retry.map(rfc3339),
        dead: s.dead,
        held: s.held,
        leases: s
            .leases
            .iter()
            .map(|l| LeaseJson {
                segment: l.segment,
                host: l.owner.host.clone(),
                pid: l.owner.pid,
                expires_at: rfc3339(l.expires_at),
            })
            .collect(),
        workers: s
            .members
            .iter()
            .map(|m| WorkerJson {
                host: m.owner.host.clone(),
                pid: m.owner.pid,
                worker: m.owner.worker.to_string(),
                joined_at: rfc3339(m.joined_at),
                expires_at: rfc3339(m.expires_at),
                segments: m.segments.clone(),
            })
            .collect(),
        circuits: s
            .circuits
            .iter()
            .map(|c| CircuitJson {
                segment: c.segment,
                open_until: rfc3339(c.until),
                closes_in_seconds: c.until.duration_since(now).unwrap_or_default().as_secs(),
                failures: c.failures,
            })
            .collect(),
    }
}

/// `timers: 3 scheduled, 1 overdue (the oldest due 12s ago), next due in 5s`.
fn timers_line(t: &TimerCounts, now: SystemTime) -> String {
    let mut line = format!("timers: {} scheduled", t.scheduled);
    if let Some(oldest) = t.oldest_due {
        let _ = write!(
            line,
            ", {} overdue (the oldest due {} ago; a running worker fires them)",
            t.overdue,
            short(age(oldest, now))
        );
    } else {
        line.push_str(", 0 overdue");
    }
    if let Some(next) = t.next_due.filter(|at| *at > now) {
        let _ = write!(line, ", next due {}", due_in(next, now));
    }
    line
}

fn text(head: u64, rows: &[Row], orphans: &[OrphanJson], now: SystemTime) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let s = &r.status;
            let lease = s
                .leases
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ");
            vec![
                s.handler.clone(),
                r.event.to_owned(),
                s.checkpoint.to_string(),
                s.lag.to_string(),
                s.lag_since
                    .map_or("-".into(), |since| short(age(since, now))),
                s.retrying.to_string(),
                r.next_retry.map_or("-".into(), |at| due_in(at, now)),
                s.dead.to_string(),
                s.held.to_string(),
                if lease.is_empty() { "-".into() } else { lease },
            ]
        })
        .collect();
    let mut out = format!("log head: position {head}\n");
    out.push_str(&table(
        &[
            "HANDLER",
            "EVENT",
            "CHECKPOINT",
            "LAG",
            "LAG AGE",
            "RETRYING",
            "NEXT RETRY",
            "DEAD",
            "HELD",
            "LEASE",
        ],
        &cells,
    ));
    if rows.iter().any(|r| !r.status.members.is_empty()) {
        out.push_str("workers (live members of each handler; each holds at most ceil(segments / workers) segments):\n");
        for r in rows.iter().filter(|r| !r.status.members.is_empty()) {
            let members: Vec<String> = r.status.members.iter().map(ToString::to_string).collect();
            let _ = writeln!(out, "  {}: {}", r.status.handler, members.join("; "));
        }
    }
    if rows.iter().any(|r| !r.status.circuits.is_empty()) {
        out.push_str("open circuits (the handler delivers nothing new there until then; one fresh event probes after):\n");
        for r in rows {
            for c in &r.status.circuits {
                let _ = writeln!(out, "  {}", circuit(&r.status.handler, c, now));
            }
        }
    }
    if !orphans.is_empty() {
        out.push_str("orphaned checkpoints (no durable handler of this program has their name; a renamed handler starts over unless you run `rename-checkpoint OLD NEW`):\n");
        for o in orphans {
            let _ = writeln!(out, "  {} at position {}", o.handler, o.position);
        }
    }
    out
}
