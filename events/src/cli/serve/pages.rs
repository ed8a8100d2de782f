//! The routes: each page reads what the matching CLI command prints with `--json` (so the
//! JSON endpoints are the CLI's, field for field) and renders it as HTML.

use std::fmt::Write as _;

use axum::extract::rejection::FormRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::{Form, Json};
use serde::Deserialize;
use serde_json::Value;

use super::super::args::{LogArgs, StatusArgs, TimersArgs};
use super::super::output::one_line;
use super::super::{
    dead_letters as dead, flow as flow_model, log as log_cmd, status as status_cmd,
};
use super::super::{timers as timers_cmd, CliError};
use super::auth::{Access, COOKIE};
use super::html::{esc, page, pre, query_value, sparkline, table, val};
use super::{flow as diagram, Shared};

/// A page that could not be shown: its status and a one-line reason, as HTML or JSON.
pub(super) struct PageError {
    status: StatusCode,
    message: String,
    json: bool,
}

impl PageError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            json: false,
        }
    }

    fn json(mut self) -> Self {
        self.json = true;
        self
    }
}

impl From<CliError> for PageError {
    fn from(e: CliError) -> Self {
        let status = match e {
            CliError::Usage(_) => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        PageError::new(status, e.to_string())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        if self.json {
            return (
                self.status,
                Json(serde_json::json!({ "error": self.message })),
            )
                .into_response();
        }
        let body = format!(
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{status} · events</title></head>\
             <body><h1>{status}</h1><p class=\"error\">{}</p><p>Go back and try again.</p></body></html>\n",
            esc(&self.message),
            status = self.status
        );
        (self.status, Html(body)).into_response()
    }
}

type Page = Result<Response, PageError>;

/// The CLI's JSON output as the response body, unchanged.
fn json_body(buf: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], buf).into_response()
}

fn parse(buf: &[u8]) -> Result<Value, PageError> {
    serde_json::from_slice(buf).map_err(|e| {
        PageError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("bad JSON from the CLI: {e}"),
        )
    })
}

fn html(app: &Shared, headers: &HeaderMap, title: &str, active: &str, body: &str) -> Response {
    let access = app.auth.access(headers);
    Html(page(&app.auth.base, title, active, &access, body)).into_response()
}

// ---- overview ----

async fn status_buf(app: &Shared) -> Result<Vec<u8>, CliError> {
    let args = StatusArgs {
        json: true,
        check: false,
        max_lag: None,
        max_lag_age: None,
        max_dead: 0,
    };
    let mut buf = Vec::new();
    status_cmd::status(app.store.as_ref(), &args, &mut buf).await?;
    Ok(buf)
}

pub(super) async fn status_json(State(app): State<Shared>) -> Page {
    Ok(json_body(
        status_buf(&app)
            .await
            .map_err(|e| PageError::from(e).json())?,
    ))
}

pub(super) async fn throughput_json(State(app): State<Shared>) -> Response {
    Json(app.throughput.rates()).into_response()
}

pub(super) async fn overview(State(app): State<Shared>, headers: HeaderMap) -> Page {
    let live = overview_body(&app).await?;
    let body = format!(
        "<div id=\"live\" data-refresh=\"{}/fragment/overview\">{live}</div>",
        app.auth.base
    );
    Ok(html(&app, &headers, "Overview", "/", &body))
}

pub(super) async fn overview_fragment(State(app): State<Shared>) -> Page {
    Ok(Html(overview_body(&app).await?).into_response())
}

/// Seconds told short: `45s`, `3m12s`, `2h5m`.
fn seconds(v: &Value) -> String {
    v.as_u64().map_or("-".to_owned(), |s| {
        super::super::output::short(std::time::Duration::from_secs(s))
    })
}

async fn overview_body(app: &Shared) -> Result<String, PageError> {
    let status = parse(&status_buf(app).await?)?;
    let rates = app.throughput.rates();
    let base = &app.auth.base;
    let mut out = format!(
        "<p class=\"meta\">Store <code>{}</code> · log head at position <b class=\"log-head\">{}</b> · throughput sampled every {}s</p>",
        val(&status["store"]),
        val(&status["log_head"]),
        super::throughput::EVERY.as_secs()
    );
    let problems = status["problems"].as_array().cloned().unwrap_or_default();
    if problems.is_empty() {
        out.push_str("<p class=\"ok\">No problems: no dead letters, no open circuits.</p>");
    } else {
        out.push_str("<ul class=\"problems\">");
        for p in &problems {
            let _ = write!(out, "<li>{}</li>", val(p));
        }
        out.push_str("</ul>");
    }
    let mut rows = Vec::new();
    for h in items(&status["handlers"]) {
        let name = h["handler"].as_str().unwrap_or_default();
        let samples: Vec<f64> = rates
            .handlers
            .iter()
            .find(|r| r.handler == name)
            .map(|r| r.samples.iter().map(|s| s.events_per_second).collect())
            .unwrap_or_default();
        let last = samples
            .last()
            .map_or(String::new(), |r| format!(" {r:.1}/s"));
        let dead = h["dead"].as_u64().unwrap_or(0);
        let dead_cell = if dead > 0 {
            format!(
                "<a class=\"dead\" href=\"{base}/dead-letters?handler={}\">{dead}</a>",
                query_value(name)
            )
        } else {
            "0".to_owned()
        };
        rows.push(vec![
            format!("<span class=\"handler\">{}</span>", esc(name)),
            val(&h["event"]),
            val(&h["checkpoint"]),
            format!("<span class=\"lag\">{}</span>", val(&h["lag"])),
            format!(
                "<span title=\"{}\">{}</span>",
                val(&h["oldest_undelivered_at"]),
                seconds(&h["lag_age_seconds"])
            ),
            format!("{}<span class=\"rate\">{last}</span>", sparkline(&samples)),
            val(&h["retrying"]),
            dead_cell,
            val(&h["held"]),
            circuits(h),
            workers(h),
        ]);
    }
    out.push_str("<h2>Durable handlers</h2>");
    if rows.is_empty() {
        out.push_str("<p class=\"muted\">No durable handlers are linked into this program (see <code>events::link!</code>).</p>");
    } else {
        out.push_str(&table(
            "handlers",
            &[
                "Handler",
                "Event",
                "Checkpoint",
                "Lag",
                "Oldest undelivered",
                "Throughput",
                "Retrying",
                "Dead",
                "Held",
                "Circuit",
                "Workers and leases",
            ],
            &rows,
        ));
    }
    let relays: Vec<Vec<String>> = items(&status["relays"])
        .map(|r| vec![val(&r["name"]), val(&r["position"]), val(&r["behind"])])
        .collect();
    if !relays.is_empty() {
        out.push_str("<h2>Relays</h2>");
        out.push_str(&table(
            "relays",
            &["Relay", "Position", "Behind the log head"],
            &relays,
        ));
    }
    let orphans: Vec<Vec<String>> = items(&status["orphaned_checkpoints"])
        .map(|o| vec![val(&o["handler"]), val(&o["position"])])
        .collect();
    if !orphans.is_empty() {
        out.push_str("<h2>Orphaned checkpoints</h2><p class=\"muted\">No durable handler of this program has these names; after a rename, move the checkpoint with <code>rename-checkpoint OLD NEW</code>.</p>");
        out.push_str(&table("orphans", &["Checkpoint", "Position"], &orphans));
    }
    let t = &status["timers"];
    let _ = write!(
        out,
        "<h2>Timers</h2><p><a href=\"{base}/timers\">{} scheduled</a>, {} overdue (oldest due at {}), next due at {}</p>",
        val(&t["scheduled"]),
        val(&t["overdue"]),
        val(&t["oldest_overdue_at"]),
        val(&t["next_due_at"])
    );
    Ok(out)
}

/// The elements of a JSON array (none for anything else).
fn items(v: &Value) -> impl Iterator<Item = &Value> {
    v.as_array().into_iter().flatten()
}

fn circuits(h: &Value) -> String {
    let open: Vec<String> = items(&h["circuits"])
        .map(|c| {
            format!(
                "<span class=\"open\">open</span> on segment {} for {} more ({} failed in a row)",
                val(&c["segment"]),
                seconds(&c["closes_in_seconds"]),
                val(&c["failures"])
            )
        })
        .collect();
    if open.is_empty() {
        "closed".to_owned()
    } else {
        open.join("<br>")
    }
}

fn workers(h: &Value) -> String {
    let mut lines: Vec<String> = items(&h["workers"])
        .map(|w| {
            let segments: Vec<String> = items(&w["segments"]).map(val).collect();
            let holds = if segments.is_empty() {
                "standby".to_owned()
            } else {
                format!("segments {}", segments.join(", "))
            };
            format!(
                "{} pid {}: {holds}, alive until {}",
                val(&w["host"]),
                val(&w["pid"]),
                val(&w["expires_at"])
            )
        })
        .collect();
    if lines.is_empty() {
        let leases = h["leases"].as_array().map_or(0, Vec::len);
        lines.push(if leases == 0 {
            "none".to_owned()
        } else {
            format!("{leases} leases")
        });
    }
    lines.join("<br>")
}

// ---- dead letters ----

#[derive(Deserialize)]
pub(super) struct DeadLetterFilter {
    handler: Option<String>,
    done: Option<String>,
}

async fn dead_letters_buf(app: &Shared, handler: Option<&str>) -> Result<Vec<u8>, CliError> {
    let mut buf = Vec::new();
    dead::dead_letters(app.store.as_ref(), handler, true, &mut buf).await?;
    Ok(buf)
}

fn filter(handler: &Option<String>) -> Option<&str> {
    handler.as_deref().filter(|h| !h.is_empty())
}

pub(super) async fn dead_letters_json(
    State(app): State<Shared>,
    Query(q): Query<DeadLetterFilter>,
) -> Page {
    let buf = dead_letters_buf(&app, filter(&q.handler))
        .await
        .map_err(|e| PageError::from(e).json())?;
    Ok(json_body(buf))
}

/// The retry and drop buttons for dead letter `id`, for a signed-in operator.
fn actions(base: &str, access: &Access, id: &Value) -> String {
    match access {
        Access::Act { csrf } => format!(
            "<form method=\"post\" action=\"{base}/dead-letters/{id}/retry\" class=\"inline\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><button class=\"retry\">Retry</button></form>\
             <form method=\"post\" action=\"{base}/dead-letters/{id}/drop\" class=\"inline\" data-confirm=\"Drop dead letter {id}? Its event is skipped for good.\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><button class=\"drop\">Drop</button></form>",
            id = val(id),
            csrf = esc(csrf),
        ),
        Access::SignIn => format!("<a href=\"{base}/sign-in\">sign in</a>"),
        Access::ReadOnly => String::new(),
    }
}

/// A notice after an action.
fn notice(done: Option<&str>) -> String {
    match done {
        Some(text) if !text.is_empty() => format!("<p class=\"notice\">{}</p>", esc(text)),
        _ => String::new(),
    }
}

pub(super) async fn dead_letters(
    State(app): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<DeadLetterFilter>,
) -> Page {
    let handler = filter(&q.handler);
    let list = parse(&dead_letters_buf(&app, handler).await?)?;
    let access = app.auth.access(&headers);
    let base = &app.auth.base;
    let mut body = notice(q.done.as_deref());
    if let Some(h) = handler {
        let _ = write!(
            body,
            "<p>Handler <b>{}</b> only · <a href=\"{base}/dead-letters\">all handlers</a></p>",
            esc(h)
        );
    }
    let rows: Vec<Vec<String>> = items(&list["failures"])
        .map(|f| {
            // One line, cut as the CLI's tables cut it (the detail page has the whole text).
            let error = one_line(f["last_error"].as_str().unwrap_or("-"), 140);
            vec![
                format!(
                    "<a href=\"{base}/dead-letters/{id}\">{id}</a>",
                    id = val(&f["id"])
                ),
                val(&f["handler"]),
                format!(
                    "<span class=\"status {s}\">{s}</span>",
                    s = val(&f["status"])
                ),
                val(&f["position"]),
                val(&f["aggregate"]),
                val(&f["attempts"]),
                val(&f["held_behind"]),
                val(&f["occurred_at"]),
                val(&f["next_attempt_at"]),
                format!("<span class=\"error\">{}</span>", esc(&error)),
                actions(base, &access, &f["id"]),
            ]
        })
        .collect();
    if rows.is_empty() {
        body.push_str("<p class=\"ok\">No dead letters or retries.</p>");
    } else {
        body.push_str(&table(
            "dead-letters",
            &[
                "Id",
                "Handler",
                "Status",
                "Position",
                "Aggregate",
                "Attempts",
                "Held behind",
                "Occurred",
                "Next attempt",
                "Last error",
                "",
            ],
            &rows,
        ));
    }
    Ok(html(&app, &headers, "Dead letters", "/dead-letters", &body))
}

async fn dead_letter_buf(app: &Shared, id: i64) -> Result<Vec<u8>, PageError> {
    let mut buf = Vec::new();
    dead::dead_letter_json(app.store.as_ref(), id, &mut buf)
        .await
        .map_err(|e| match e {
            CliError::Usage(m) => PageError::new(StatusCode::NOT_FOUND, m),
            e => e.into(),
        })?;
    Ok(buf)
}

pub(super) async fn dead_letter_json(State(app): State<Shared>, Path(id): Path<i64>) -> Page {
    Ok(json_body(
        dead_letter_buf(&app, id).await.map_err(PageError::json)?,
    ))
}

pub(super) async fn dead_letter(
    State(app): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Query(q): Query<DeadLetterFilter>,
) -> Page {
    let d = parse(&dead_letter_buf(&app, id).await?)?;
    let f = &d["failure"];
    let base = &app.auth.base;
    let access = app.auth.access(&headers);
    let mut body = notice(q.done.as_deref());
    let aggregate = f["aggregate"].as_str().unwrap_or_default();
    let facts = [
        ("Handler", val(&f["handler"])),
        (
            "Status",
            format!("<span class=\"status\">{}</span>", val(&f["status"])),
        ),
        ("Position", val(&f["position"])),
        (
            "Aggregate",
            format!(
                "<a href=\"{base}/log?aggregate={}\">{}</a>",
                query_value(aggregate),
                esc(aggregate)
            ),
        ),
        ("Attempts", val(&f["attempts"])),
        ("Event occurred", val(&f["occurred_at"])),
        ("Last attempt", val(&f["last_attempt_at"])),
        ("Next attempt", val(&f["next_attempt_at"])),
        ("Events held behind it", val(&f["held_behind"])),
    ];
    body.push_str("<dl class=\"facts\">");
    for (name, value) in facts {
        let _ = write!(body, "<dt>{name}</dt><dd>{value}</dd>");
    }
    body.push_str("</dl>");
    let _ = write!(
        body,
        "<div class=\"actions\">{}</div><h2>Last error</h2><pre class=\"error full-error\">{}</pre>",
        actions(base, &access, &f["id"]),
        esc(f["last_error"].as_str().unwrap_or("-"))
    );
    let held: Vec<Vec<String>> = items(&d["held"])
        .map(|g| {
            vec![
                format!(
                    "<a href=\"{base}/log?from={p}&amp;to={p}\">{p}</a>",
                    p = val(&g["position"])
                ),
                val(&g["status"]),
                val(&g["occurred_at"]),
            ]
        })
        .collect();
    body.push_str("<h2>Held behind it</h2>");
    if held.is_empty() {
        body.push_str("<p class=\"muted\">No later event of this aggregate waits on it.</p>");
    } else {
        body.push_str(&table("held", &["Position", "Status", "Occurred"], &held));
    }
    body.push_str("<h2>Event</h2>");
    match d["event"].as_object() {
        Some(_) => body.push_str(&event_block(base, &d["event"])),
        None => body.push_str("<p class=\"muted\">The event is no longer in the log.</p>"),
    }
    let title = format!("Dead letter {id}");
    Ok(html(&app, &headers, &title, "/dead-letters", &body))
}

/// One event in full: its names and ids (linked to their log views) and its payload.
fn event_block(base: &str, e: &Value) -> String {
    let aggregate = format!(
        "{}/{}",
        e["aggregate_type"].as_str().unwrap_or_default(),
        e["aggregate_id"].as_str().unwrap_or_default()
    );
    let correlation = e["correlation_id"].as_str().unwrap_or_default();
    format!(
        "<div class=\"event\"><p><b class=\"name\">{}</b> v{} at position {} · <a href=\"{base}/log?aggregate={}\">{}</a> #{} · {}<br>\
         event {} · <a href=\"{base}/log?correlation={}\">correlation {}</a> · caused by {}</p>{}</div>",
        val(&e["name"]),
        val(&e["version"]),
        val(&e["position"]),
        query_value(&aggregate),
        esc(&aggregate),
        val(&e["sequence"]),
        val(&e["occurred_at"]),
        val(&e["event_id"]),
        query_value(correlation),
        esc(correlation),
        val(&e["causation_id"]),
        pre(&e["payload"])
    )
}

#[derive(Deserialize)]
pub(super) struct ActionForm {
    csrf: Option<String>,
}

/// A retry or drop: allowed (see [`Auth::check_action`](super::auth::Auth::check_action)),
/// then done, then the browser is sent back to the page (a script gets JSON).
async fn act(app: &Shared, headers: &HeaderMap, csrf: Option<&str>, id: i64, drop: bool) -> Page {
    let script = headers.contains_key(header::AUTHORIZATION);
    let wrap = |e: PageError| if script { e.json() } else { e };
    app.auth
        .check_action(headers, csrf)
        .map_err(|m| wrap(PageError::new(StatusCode::FORBIDDEN, m)))?;
    let store = app.store.as_ref();
    let missing = || {
        wrap(PageError::new(
            StatusCode::NOT_FOUND,
            format!("no dead letter with id {id}"),
        ))
    };
    let base = &app.auth.base;
    if drop {
        if !store
            .drop_dead_letter(id)
            .await
            .map_err(|e| wrap(CliError::from(e).into()))?
        {
            return Err(missing());
        }
        tracing::info!(id, "dashboard: dead letter dropped");
        if script {
            return Ok(Json(serde_json::json!({ "dropped": id })).into_response());
        }
        let done = format!("Dead letter {id} dropped; the events held behind it are released.");
        return Ok(
            Redirect::to(&format!("{base}/dead-letters?done={}", query_value(&done)))
                .into_response(),
        );
    }
    let n = store
        .retry_dead_letters(Some(id), None)
        .await
        .map_err(|e| wrap(CliError::from(e).into()))?;
    if n == 0 {
        return Err(missing());
    }
    tracing::info!(id, "dashboard: dead letter scheduled for retry");
    if script {
        return Ok(Json(serde_json::json!({ "retried": n })).into_response());
    }
    let done = "Scheduled for retry; a running worker picks it up.";
    Ok(Redirect::to(&format!(
        "{base}/dead-letters/{id}?done={}",
        query_value(done)
    ))
    .into_response())
}

pub(super) async fn retry(
    State(app): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    form: Result<Form<ActionForm>, FormRejection>,
) -> Page {
    // A script sends no form (its token is in the Authorization header).
    let csrf = form.as_ref().ok().and_then(|f| f.csrf.as_deref());
    act(&app, &headers, csrf, id, false).await
}

pub(super) async fn drop(
    State(app): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    form: Result<Form<ActionForm>, FormRejection>,
) -> Page {
    // A script sends no form (its token is in the Authorization header).
    let csrf = form.as_ref().ok().and_then(|f| f.csrf.as_deref());
    act(&app, &headers, csrf, id, true).await
}

// ---- the log ----

/// `log`'s filters as query parameters (empty form fields are absent).
#[derive(Deserialize, Default)]
pub(super) struct LogParams {
    aggregate: Option<String>,
    correlation: Option<String>,
    name: Option<String>,
    from: Option<String>,
    to: Option<String>,
    limit: Option<String>,
}

fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

fn number<T: std::str::FromStr>(v: &Option<String>, what: &str) -> Result<Option<T>, PageError> {
    given(v)
        .map(|text| {
            text.parse().map_err(|_| {
                PageError::new(
                    StatusCode::BAD_REQUEST,
                    format!("{what} `{text}` is not a number"),
                )
            })
        })
        .transpose()
}

impl LogParams {
    fn args(&self) -> Result<LogArgs, PageError> {
        let correlation = given(&self.correlation)
            .map(|text| {
                text.parse().map_err(|_| {
                    PageError::new(
                        StatusCode::BAD_REQUEST,
                        format!("correlation `{text}` is not an event id (a UUID)"),
                    )
                })
            })
            .transpose()?;
        Ok(LogArgs {
            aggregate: given(&self.aggregate).map(str::to_owned),
            correlation,
            name: given(&self.name).map(str::to_owned),
            from: number(&self.from, "from")?.unwrap_or(1),
            to: number(&self.to, "to")?,
            limit: number(&self.limit, "limit")?.unwrap_or(100),
            json: true,
        })
    }
}

async fn log_buf(app: &Shared, params: &LogParams) -> Result<Vec<u8>, PageError> {
    let mut buf = Vec::new();
    log_cmd::log(app.store.as_ref(), &params.args()?, &mut buf).await?;
    Ok(buf)
}

pub(super) async fn log_json(State(app): State<Shared>, Query(q): Query<LogParams>) -> Page {
    Ok(json_body(log_buf(&app, &q).await.map_err(PageError::json)?))
}

pub(super) async fn log(
    State(app): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<LogParams>,
) -> Page {
    let base = &app.auth.base;
    let field = |name: &str, label: &str, v: &Option<String>, hint: &str| {
        format!(
            "<label>{label} <input name=\"{name}\" value=\"{}\" placeholder=\"{hint}\"></label>",
            esc(given(v).unwrap_or_default())
        )
    };
    let mut body = format!(
        "<form class=\"filters\" method=\"get\" action=\"{base}/log\">{}{}{}{}{}{}<button>Show</button></form>",
        field("aggregate", "Aggregate", &q.aggregate, "Type/id"),
        field("correlation", "Correlation", &q.correlation, "event id"),
        field("name", "Name", &q.name, "event name"),
        field("from", "From", &q.from, "1"),
        field("to", "To", &q.to, "head"),
        field("limit", "Limit", &q.limit, "100"),
    );
    let log = parse(&log_buf(&app, &q).await?)?;
    let events = log["events"].as_array().cloned().unwrap_or_default();
    if events.is_empty() {
        body.push_str("<p class=\"muted\">No events match.</p>");
    } else if given(&q.correlation).is_some() {
        body.push_str("<h2>The chain, in causal order</h2>");
        body.push_str(&tree(base, &events));
    } else {
        let rows: Vec<Vec<String>> = events
            .iter()
            .map(|e| {
                let aggregate = format!(
                    "{}/{}",
                    e["aggregate_type"].as_str().unwrap_or_default(),
                    e["aggregate_id"].as_str().unwrap_or_default()
                );
                let correlation = e["correlation_id"].as_str().unwrap_or_default();
                vec![
                    val(&e["position"]),
                    val(&e["occurred_at"]),
                    format!(
                        "<a href=\"{base}/log?name={}\">{}</a>",
                        query_value(e["name"].as_str().unwrap_or_default()),
                        val(&e["name"])
                    ),
                    format!(
                        "<a href=\"{base}/log?aggregate={}\">{}</a> #{}",
                        query_value(&aggregate),
                        esc(&aggregate),
                        val(&e["sequence"])
                    ),
                    format!(
                        "<a href=\"{base}/log?correlation={}\">chain</a>",
                        query_value(correlation)
                    ),
                    pre(&e["payload"]),
                ]
            })
            .collect();
        body.push_str(&table(
            "log",
            &[
                "Position",
                "Occurred",
                "Name",
                "Aggregate",
                "Correlation",
                "Payload",
            ],
            &rows,
        ));
    }
    if log["more"].as_bool() == Some(true) {
        body.push_str(
            "<p class=\"notice\">More events match: raise the limit or narrow the range.</p>",
        );
    }
    Ok(html(&app, &headers, "Event log", "/log", &body))
}

/// A correlation chain as nested lists: each event under the event that caused it (through a
/// process manager's command, too); `events` are in causal order already.
fn tree(base: &str, events: &[Value]) -> String {
    let index: std::collections::HashMap<&str, usize> = events
        .iter()
        .enumerate()
        .map(|(i, e)| (e["event_id"].as_str().unwrap_or_default(), i))
        .collect();
    let mut children = vec![Vec::new(); events.len()];
    let mut roots = Vec::new();
    for (i, e) in events.iter().enumerate() {
        let cause = e["command"]["cause"]
            .as_str()
            .or_else(|| e["causation_id"].as_str());
        match cause.and_then(|c| index.get(c)).filter(|&&p| p != i) {
            Some(&p) => children[p].push(i),
            None => roots.push(i),
        }
    }
    let mut shown = vec![false; events.len()];
    let mut out = String::new();
    chain(base, events, &children, &roots, &mut shown, &mut out);
    let rest: Vec<usize> = (0..events.len()).filter(|&i| !shown[i]).collect();
    if !rest.is_empty() {
        // Only a damaged log has a cycle of causes: its events are shown, not dropped.
        out.push_str("<p class=\"notice\">These events' causes form a cycle (a damaged log): in position order.</p>");
        chain(base, events, &children, &rest, &mut shown, &mut out);
    }
    out
}

/// `items` and, under each, the events it caused, as nested lists; each event once.
fn chain(
    base: &str,
    events: &[Value],
    children: &[Vec<usize>],
    items: &[usize],
    shown: &mut [bool],
    out: &mut String,
) {
    if items.iter().all(|&i| shown[i]) {
        return;
    }
    out.push_str("<ol class=\"chain\">");
    for &i in items {
        if std::mem::replace(&mut shown[i], true) {
            continue;
        }
        let e = &events[i];
        let via = match e["command"].as_object() {
            Some(c) => format!(
                "<p class=\"via\">after command {} sent by {}</p>",
                val(&e["causation_id"]),
                esc(c.get("process").and_then(Value::as_str).unwrap_or_default())
            ),
            None => String::new(),
        };
        let _ = write!(out, "<li>{via}{}", event_block(base, e));
        chain(base, events, children, &children[i], shown, out);
        out.push_str("</li>");
    }
    out.push_str("</ol>");
}

// ---- flow, timers, sign-in, assets ----

pub(super) async fn flow_json() -> Response {
    Json(flow_model::flow()).into_response()
}

pub(super) async fn flow(State(app): State<Shared>, headers: HeaderMap) -> Page {
    let body = format!(
        "<p class=\"legend\"><span class=\"key event\">event</span><span class=\"key handler\">handler</span>\
         <span class=\"key durable\">durable handler</span><span class=\"key process-manager\">process manager</span>\
         <span class=\"key command\">command</span> · dotted: publishes</p><div class=\"diagram\">{}</div>",
        diagram::svg(&flow_model::flow())
    );
    Ok(html(&app, &headers, "Event flow", "/flow", &body))
}

async fn timers_buf(app: &Shared) -> Result<Vec<u8>, CliError> {
    let mut buf = Vec::new();
    let args = TimersArgs {
        json: true,
        action: None,
    };
    timers_cmd::timers(app.store.as_ref(), args, &mut buf).await?;
    Ok(buf)
}

pub(super) async fn timers_json(State(app): State<Shared>) -> Page {
    Ok(json_body(
        timers_buf(&app)
            .await
            .map_err(|e| PageError::from(e).json())?,
    ))
}

pub(super) async fn timers(State(app): State<Shared>, headers: HeaderMap) -> Page {
    let list = parse(&timers_buf(&app).await?)?;
    let rows: Vec<Vec<String>> = items(&list["timers"])
        .map(|t| {
            vec![
                val(&t["id"]),
                val(&t["due_at"]),
                format!("{:.0}s", t["overdue_seconds"].as_f64().unwrap_or(0.0)),
                val(&t["owner"]),
                val(&t["key"]),
                val(&t["event"]),
                format!("{}/{}", val(&t["aggregate_type"]), val(&t["aggregate_id"])),
                pre(&t["payload"]),
            ]
        })
        .collect();
    let body = if rows.is_empty() {
        "<p class=\"muted\">No timers are scheduled.</p>".to_owned()
    } else {
        table(
            "timers",
            &[
                "Id",
                "Due at",
                "Overdue",
                "Owner",
                "Key",
                "Fires",
                "Aggregate",
                "Payload",
            ],
            &rows,
        )
    };
    Ok(html(&app, &headers, "Timers", "/timers", &body))
}

pub(super) async fn sign_in_form(State(app): State<Shared>, headers: HeaderMap) -> Response {
    let body = if app.auth.allows_actions() {
        format!(
            "<form method=\"post\" action=\"{}/sign-in\" class=\"sign-in\"><label>Token \
             <input type=\"password\" name=\"token\" autocomplete=\"current-password\"></label>\
             <button>Sign in</button></form>",
            app.auth.base
        )
    } else {
        "<p>This dashboard is read-only: start <code>serve --allow-actions</code> with \
         <code>EVENTS_DASHBOARD_TOKEN</code> set to retry and drop dead letters.</p>"
            .to_owned()
    };
    html(&app, &headers, "Sign in", "", &body)
}

#[derive(Deserialize)]
pub(super) struct SignIn {
    token: String,
}

pub(super) async fn sign_in(State(app): State<Shared>, Form(form): Form<SignIn>) -> Page {
    let Some(session) = app.auth.sign_in(&form.token) else {
        tracing::warn!("dashboard: sign-in with a wrong token refused");
        return Err(PageError::new(
            StatusCode::UNAUTHORIZED,
            "wrong token: use the value of EVENTS_DASHBOARD_TOKEN the dashboard was started with",
        ));
    };
    let base = &app.auth.base;
    let path = if base.is_empty() { "/" } else { base.as_str() };
    let cookie = format!("{COOKIE}={session}; HttpOnly; SameSite=Strict; Path={path}");
    Ok((
        [(header::SET_COOKIE, cookie)],
        Redirect::to(&format!("{base}/")),
    )
        .into_response())
}

pub(super) async fn style() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("assets/style.css"),
    )
        .into_response()
}

pub(super) async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("assets/app.js"),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(id: &str, cause: Option<&str>) -> Value {
        json!({"event_id": id, "causation_id": cause, "name": format!("n-{id}"), "payload": {}})
    }

    #[test]
    fn a_chain_nests_each_event_under_its_cause_and_keeps_a_cycle() {
        let events = [
            event("a", None),
            event("b", Some("a")),
            event("c", Some("b")),
            event("x", Some("y")),
            event("y", Some("x")),
        ];
        let html = tree("", &events);
        for name in ["n-a", "n-b", "n-c", "n-x", "n-y"] {
            assert_eq!(
                html.matches(&format!(">{name}<")).count(),
                1,
                "{name} once: {html}"
            );
        }
        let (a, b, c) = (html.find(">n-a<"), html.find(">n-b<"), html.find(">n-c<"));
        assert!(a < b && b < c, "{html}");
        assert!(html.contains("form a cycle"), "{html}");
    }
}
