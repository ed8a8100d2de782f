//! Running one parsed command: open the store it needs, run it, write its output. The
//! commands too small for a module of their own (`migrate`, `retry`, `drop`,
//! `rename-checkpoint`) live here.

use std::io::Write;

use super::args::Command;
use super::output::count;
use super::source::StoreSource;
use super::{catalog_view, dead_letters, flow, log, process, status, timers, CliError};
use crate::bus::Bus;
use crate::catalog::{catalog, HandlerInfo};
use crate::handler::HandlerKind;
use crate::store::durable::OnReset;
use crate::worker::unknown_handler;

/// How a command that did not fail ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Outcome {
    /// It did its work.
    Done,
    /// `status --check` found problems.
    Unhealthy,
}

/// Runs `command`, opening the store only when it needs one (and creating it only for the
/// commands that may); with `announce`, names the store on stderr.
pub(super) async fn execute(
    bus: &Bus,
    source: StoreSource,
    command: Command,
    mut out: &mut dyn Write,
    announce: bool,
) -> Result<Outcome, CliError> {
    match &command {
        Command::List { json } => {
            catalog_view::list(out, *json)?;
            return Ok(Outcome::Done);
        }
        Command::Graph => {
            write!(out, "{}", flow::graph())?;
            return Ok(Outcome::Done);
        }
        _ => debug_assert!(command.needs_store()),
    }
    let store = source.open(command.creates_store()).await?;
    #[cfg(feature = "prometheus")]
    super::serve_metrics::sample_gauges(&store);
    if announce {
        eprintln!("store: {}", store.location());
    }
    match command {
        Command::List { .. } | Command::Graph => unreachable!("answered above"),
        Command::Migrate => writeln!(out, "{}", store.migrate().await?)?,
        Command::Process(args) => process::process(bus, &store, args, out).await?,
        Command::Status(args) => return status::status(store.as_ref(), &args, &mut out).await,
        Command::DeadLetters { handler, json } => {
            handler_filter(handler.as_deref())?;
            dead_letters::dead_letters(store.as_ref(), handler.as_deref(), json, &mut out).await?
        }
        Command::Retry {
            id,
            all: _,
            handler,
        } => {
            handler_filter(handler.as_deref())?;
            let n = store.retry_dead_letters(id, handler.as_deref()).await?;
            if n == 0 {
                return Err(CliError::Usage(match id {
                    Some(id) => format!("no dead letter with id {id}"),
                    None => "no dead letters to retry".to_owned(),
                }));
            }
            writeln!(
                out,
                "{} scheduled for retry; a running worker picks them up",
                count(n as u64, "dead letter")
            )?;
        }
        Command::Drop { id } => {
            if !store.drop_dead_letter(id).await? {
                return Err(CliError::Usage(format!("no dead letter with id {id}")));
            }
            writeln!(
                out,
                "dead letter {id} dropped; events held behind it are released"
            )?;
        }
        Command::Replay {
            handler,
            from,
            discard_failures,
        } => {
            let failures = if discard_failures {
                OnReset::DiscardFailures
            } else {
                OnReset::KeepFailures
            };
            let info = durable_handler(&handler)?;
            process::replay(bus, &store, info, from, failures, out).await?
        }
        Command::Log(args) => log::log(store.as_ref(), &args, &mut out).await?,
        Command::Timers(args) => timers::timers(store.as_ref(), args, &mut out).await?,
        Command::RenameCheckpoint { old, new } => {
            durable_handler(&new)?;
            store.rename_checkpoint(&old, &new).await?;
            writeln!(out, "checkpoint `{old}` is now `{new}`")?;
        }
        #[cfg(feature = "dashboard")]
        Command::Serve(args) => {
            let options = if args.allow_actions {
                let token = std::env::var("EVENTS_DASHBOARD_TOKEN").map_err(|_| {
                    CliError::Usage(
                        "--allow-actions needs a token: set EVENTS_DASHBOARD_TOKEN to a long random string (e.g. `openssl rand -hex 32`)".into(),
                    )
                })?;
                super::serve::DashboardOptions::allow_actions(token)?
            } else {
                super::serve::DashboardOptions::read_only()
            };
            let options = options.under(args.base_path);
            super::serve::serve(store, args.listen, options, out).await?;
        }
        #[cfg(any(feature = "nats", feature = "redis", feature = "rabbitmq"))]
        Command::Relay(args) => {
            let summary = super::nats::relay(&store, args).await?;
            writeln!(out, "{summary}")?;
        }
    }
    Ok(Outcome::Done)
}

/// The durable handler of that name, or a one-line error listing the valid names.
pub(super) fn durable_handler(name: &str) -> Result<&'static HandlerInfo, CliError> {
    match catalog().handler(name) {
        Some(h) if h.kind() == HandlerKind::Durable => Ok(h),
        Some(h) => Err(CliError::Usage(format!(
            "handler `{name}` is {}, not durable: it has no checkpoint or dead letters",
            h.kind().as_str()
        ))),
        None => Err(CliError::Usage(unknown_handler(name))),
    }
}

/// Checks an optional `--handler` filter.
fn handler_filter(name: Option<&str>) -> Result<(), CliError> {
    name.map_or(Ok(()), |n| durable_handler(n).map(|_| ()))
}
