//! `serve`: the operator dashboard, in the application's own binary (where its handlers are
//! linked) and on its store. An application with an HTTP server of its own mounts
//! [`dashboard`], an axum [`Router`], instead (`under` makes its links point below the prefix):
//!
//! ```no_run
//! # async fn main_(store: std::sync::Arc<dyn events::store::DurableStore>) {
//! use events::cli::{dashboard, DashboardOptions};
//!
//! let events = dashboard(store, DashboardOptions::read_only().under("/events"));
//! let app = axum::Router::new().nest("/events", events);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await.unwrap();
//! axum::serve(listener, app).await.unwrap();
//! # }
//! ```
//!
//! **Pages** (each also as JSON under `/api`, with the field names of the CLI's `--json`):
//! `/` the overview (`/api/status`, as `status --json`, and `/api/throughput`), refreshed
//! every two seconds; `/dead-letters` (`/api/dead-letters`, as `dead-letters --json`) and
//! `/dead-letters/{id}` (`/api/dead-letters/{id}`: the failure, the failures held behind it,
//! the event); `/log` with the filters of `log` as query parameters (`/api/log`, as
//! `log --json`); `/flow`, the event flow drawn as a diagram (`/api/flow`: nodes and edges);
//! `/timers` (`/api/timers`, as `timers --json`).
//!
//! **Safe by default.** Read-only unless built with [`DashboardOptions::allow_actions`] (the
//! `serve --allow-actions` command reads the token from `EVENTS_DASHBOARD_TOKEN`): an operator
//! then signs in with the token once, and the retry and drop forms carry a per-session
//! anti-forgery token and are refused from another origin. A script posts with
//! `Authorization: Bearer TOKEN` instead. Every text from the store is escaped, the pages load
//! nothing from elsewhere (the style sheet and the script are in the binary), and a content
//! security policy forbids inline scripts.

mod auth;
mod flow;
mod html;
mod pages;
mod throughput;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::{header, HeaderValue};
use axum::routing::{get, post};
use axum::Router;

use super::CliError;
use crate::store::durable::DurableStore;

pub use auth::DashboardOptions;

/// What every page handler shares: the store, who may act, the throughput samples.
struct App {
    store: Arc<dyn DurableStore>,
    auth: auth::Auth,
    throughput: throughput::History,
}

type Shared = Arc<App>;

/// The dashboard as an axum router, to serve on its own or nest in an application's router
/// (its links are relative, so it works under any prefix). Samples each durable handler's
/// progress every few seconds for the throughput charts while the router lives (on the tokio
/// runtime it is created on).
pub fn dashboard(store: Arc<dyn DurableStore>, options: DashboardOptions) -> Router {
    let app = Arc::new(App {
        store,
        auth: auth::Auth::new(options),
        throughput: throughput::History::default(),
    });
    throughput::spawn_sampler(Arc::downgrade(&app));
    Router::new()
        .route("/", get(pages::overview))
        .route("/fragment/overview", get(pages::overview_fragment))
        .route("/api/status", get(pages::status_json))
        .route("/api/throughput", get(pages::throughput_json))
        .route("/dead-letters", get(pages::dead_letters))
        .route("/api/dead-letters", get(pages::dead_letters_json))
        .route("/dead-letters/{id}", get(pages::dead_letter))
        .route("/api/dead-letters/{id}", get(pages::dead_letter_json))
        .route("/dead-letters/{id}/retry", post(pages::retry))
        .route("/dead-letters/{id}/drop", post(pages::drop))
        .route("/log", get(pages::log))
        .route("/api/log", get(pages::log_json))
        .route("/flow", get(pages::flow))
        .route("/api/flow", get(pages::flow_json))
        .route("/timers", get(pages::timers))
        .route("/api/timers", get(pages::timers_json))
        .route("/sign-in", get(pages::sign_in_form).post(pages::sign_in))
        .route("/assets/style.css", get(pages::style))
        .route("/assets/app.js", get(pages::script))
        .layer(axum::middleware::map_response(secure_headers))
        .with_state(app)
}

/// Headers on every response: no inline or foreign script, style or frame; no sniffing; no
/// referrer leaving the dashboard.
async fn secure_headers(mut response: axum::response::Response) -> axum::response::Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `serve`: the dashboard on `listen` until SIGINT or SIGTERM; says where on stderr at once.
pub(super) async fn serve(
    store: Arc<dyn DurableStore>,
    listen: SocketAddr,
    options: DashboardOptions,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| {
        CliError::Usage(format!(
            "cannot listen on {listen}: {e}; pick another address with --listen"
        ))
    })?;
    let addr = listener.local_addr()?;
    let mode = if options.allows_actions() {
        "actions allowed to holders of the token"
    } else {
        "read-only; --allow-actions with EVENTS_DASHBOARD_TOKEN set allows retry and drop"
    };
    eprintln!("dashboard: http://{addr}/ ({mode}); stop with Ctrl-C");
    axum::serve(listener, dashboard(store, options))
        .with_graceful_shutdown(crate::stop::shutdown_signal())
        .await?;
    writeln!(out, "dashboard stopped")?;
    Ok(())
}
