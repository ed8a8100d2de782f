//! What the commands that run handlers say when the application installed no `tracing`
//! subscriber: the same log lines, plain, on stderr, so an operator running `process` by hand
//! or under a supervisor sees it start, progress and stop.

use tracing_subscriber::fmt::format::FmtSpan;

/// Installs a plain stderr subscriber (level INFO, no colours) as the global default, unless
/// the application set one already.
pub(super) fn log_to_stderr_unless_subscribed() {
    if tracing::dispatcher::has_been_set() {
        return;
    }
    let subscriber = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false)
        .with_max_level(tracing::Level::INFO)
        .with_span_events(FmtSpan::NONE)
        .finish();
    // Another thread may have installed one meanwhile: then that one logs, as wanted.
    let _ = tracing::subscriber::set_global_default(subscriber);
}
