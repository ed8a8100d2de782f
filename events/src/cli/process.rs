//! `process` and `replay`: the commands that run handlers, and what they tell the operator
//! while they do (start, each handler's progress, why they stopped; the replay's progress
//! bar).

use std::future::Future;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use super::args::ProcessArgs;
use super::commands::durable_handler;
use super::output::{count, short};
use super::CliError;
use crate::bus::Bus;
use crate::catalog::{catalog, HandlerInfo};
use crate::handler::HandlerKind;
use crate::store::durable::{DurableStore, OnReset, Owner, Rewind};
use crate::store::StoreError;
use crate::worker::{handler_status, Summary, Worker, WorkerError};

/// `process`: runs the worker, logging its start and each handler's progress every
/// `--progress-every`; the worker logs why it stopped.
pub(super) async fn process(
    bus: &Bus,
    store: &Arc<dyn DurableStore>,
    args: ProcessArgs,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let mut worker = Worker::new(bus, store)
        .poll_interval(args.poll_interval)
        .lease_ttl(args.lease_ttl)
        .concurrency(args.concurrency as usize)
        .batch_size(args.batch_size as usize);
    if !args.all {
        worker = worker.handlers(args.handlers.iter().map(String::as_str));
    }
    if let Some(limit) = args.max_runtime {
        worker = worker.max_runtime(limit);
    }
    if args.breaker_after.is_some() || args.breaker_cooldown.is_some() {
        worker = worker.breaker(args.breaker_after, args.breaker_cooldown);
    }
    // The handlers it runs; when a name is wrong the worker refuses to start and says why.
    let handlers: Vec<&'static HandlerInfo> = if args.all {
        catalog()
            .handlers()
            .iter()
            .filter(|h| h.kind() == HandlerKind::Durable)
            .collect()
    } else {
        args.handlers
            .iter()
            .filter_map(|name| durable_handler(name).ok())
            .collect()
    };
    let valid = args.all || handlers.len() == args.handlers.len();
    if valid {
        let names: Vec<_> = handlers.iter().map(|h| h.name()).collect();
        tracing::info!(
            store = %store.location(),
            handlers = %names.join(", "),
            max_runtime = %args.max_runtime.map_or("none".to_owned(), short),
            concurrency = args.concurrency,
            "worker starting"
        );
    }
    #[cfg(any(feature = "nats", feature = "redis", feature = "rabbitmq"))]
    if let Some(url) = &args.source.url {
        return super::nats::process(worker, store, url, &args.source, out).await;
    }
    let progress = |store: Arc<dyn DurableStore>| log_progress(store, handlers.clone());
    let summary = with_progress(
        worker.run(),
        args.progress_every,
        valid.then(|| progress(Arc::clone(store))),
    )
    .await?;
    // A worker that stood by the whole run (other workers held every segment) did its job:
    // its summary says so, and it exits 0.
    write!(out, "{summary}")?;
    Ok(())
}

/// Runs `work`, calling `tick` every `every` (never before the first period) until it ends.
async fn with_progress<T, F>(
    work: impl Future<Output = Result<T, WorkerError>>,
    every: Duration,
    tick: Option<impl Fn() -> F>,
) -> Result<T, CliError>
where
    F: Future<Output = ()>,
{
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tokio::pin!(work);
    loop {
        tokio::select! {
            done = &mut work => return Ok(done?),
            _ = ticks.tick(), if tick.is_some() => {
                if let Some(tick) = &tick {
                    tick().await;
                }
            }
        }
    }
}

/// Logs one line per handler: checkpoint, lag, retries, dead letters.
fn log_progress(
    store: Arc<dyn DurableStore>,
    handlers: Vec<&'static HandlerInfo>,
) -> impl Fn() -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> {
    move || {
        let (store, handlers) = (Arc::clone(&store), handlers.clone());
        Box::pin(async move {
            for h in handlers {
                match handler_status(&*store, h.name(), h.event_name()).await {
                    Ok(s) => tracing::info!(
                        handler = h.name(),
                        checkpoint = s.checkpoint,
                        lag = s.lag,
                        retrying = s.retrying,
                        dead = s.dead,
                        held = s.held,
                        "progress"
                    ),
                    Err(e) => {
                        tracing::warn!(handler = h.name(), error = %e, "cannot read the handler's progress")
                    }
                }
            }
        })
    }
}

/// `replay`: resets the handler's checkpoint and delivers its events again, with a progress
/// bar on a terminal.
pub(super) async fn replay(
    bus: &Bus,
    store: &Arc<dyn DurableStore>,
    info: &'static HandlerInfo,
    from: u64,
    failures: OnReset,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let handler = info.name();
    let head = store.log_head().await?;
    if from > head {
        return Err(StoreError::PastHead {
            position: from,
            head,
        }
        .into());
    }
    let rewind = Rewind {
        after: from.saturating_sub(1),
        failures,
    };
    let owner = Owner::current();
    let discarded = store.reset_handler(handler, rewind, &owner).await?;
    if failures == OnReset::DiscardFailures {
        writeln!(
            out,
            "discarded {}, {} retrying and {} of {handler}",
            count(discarded.dead, "dead letter"),
            discarded.retrying,
            count(discarded.held, "held event")
        )?;
    }
    let total = handler_status(&**store, handler, info.event_name())
        .await?
        .lag;
    tracing::info!(handler, from, events = total, "replay starting");
    let bar = progress_bar(total, indicatif::ProgressDrawTarget::stderr());
    let worker = Worker::new(bus, store)
        .owner(owner)
        .handlers([handler])
        .drain();
    let tick = || {
        let bar = bar.clone();
        async move {
            if let Ok(s) = handler_status(&**store, handler, info.event_name()).await {
                bar.set_position(total.saturating_sub(s.lag));
            }
        }
    };
    let summary: Summary = with_progress(worker, Duration::from_millis(100), Some(tick)).await?;
    bar.finish_and_clear();
    if let Some(lease) = summary.held_elsewhere.get(handler) {
        let holder = lease
            .as_ref()
            .map_or_else(|| "another worker".to_owned(), ToString::to_string);
        return Err(CliError::Usage(format!(
            "the checkpoint of `{handler}` was reset, and another worker took the handler over before this replay could start: {holder}; that worker delivers the replay"
        )));
    }
    let s = summary.handlers.get(handler).copied().unwrap_or_default();
    writeln!(
        out,
        "replayed {handler} from position {from}: {} delivered, {} failed attempts, {} dead-lettered, {} held back",
        s.delivered, s.failed, s.dead_lettered, s.held
    )?;
    Ok(())
}

/// The replay's bar: as wide as the terminal leaves room for (80 columns hold it), the rate
/// in whole events per second.
fn progress_bar(total: u64, target: indicatif::ProgressDrawTarget) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::with_draw_target(Some(total), target);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "replaying [{wide_bar}] {pos}/{len} {rate} eta {eta}",
        )
        .expect("valid template")
        .with_key(
            "rate",
            |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{:.0}/s", state.per_sec());
            },
        )
        .progress_chars("=> "),
    );
    bar
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use indicatif::TermLike;

    use super::*;

    /// An 80-column terminal that keeps what is drawn on it.
    #[derive(Debug, Default, Clone)]
    struct Term80(Arc<Mutex<Vec<String>>>);

    impl TermLike for Term80 {
        fn width(&self) -> u16 {
            80
        }
        fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn write_line(&self, s: &str) -> std::io::Result<()> {
            self.write_str(s)
        }
        fn write_str(&self, s: &str) -> std::io::Result<()> {
            if !s.is_empty() {
                self.0.lock().unwrap().push(s.to_owned());
            }
            Ok(())
        }
        fn clear_line(&self) -> std::io::Result<()> {
            Ok(())
        }
        fn flush(&self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_replay_bar_fits_80_columns_with_a_whole_rate() {
        let term = Term80::default();
        let bar = progress_bar(
            12_345_678,
            indicatif::ProgressDrawTarget::term_like(Box::new(term.clone())),
        );
        for step in 1..=5u64 {
            std::thread::sleep(Duration::from_millis(30));
            bar.set_position(step * 1_234_567);
            bar.force_draw();
        }
        let drawn = term.0.lock().unwrap().clone();
        assert!(!drawn.is_empty());
        for line in &drawn {
            let width = line.chars().count();
            assert!(width <= 80, "{width} columns: {line:?}");
            assert!(line.starts_with("replaying ["), "{line:?}");
            let rate = line
                .split_whitespace()
                .find(|w| w.ends_with("/s"))
                .unwrap_or_else(|| panic!("no rate in {line:?}"));
            assert!(
                rate.trim_end_matches("/s").parse::<u64>().is_ok(),
                "rate not rounded: {line:?}"
            );
        }
    }
}
