//! The bus's traces, printed as an indented tree: a `tracing` layer that writes one line per
//! span when it is first entered (its ids are recorded by then), indented by its ancestors.
//!
//! An application would send these spans to a collector (`tracing-opentelemetry`); the field
//! names follow OpenTelemetry's messaging conventions, so they arrive as the usual attributes.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::Subscriber;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// The lines written so far; shared by the layer and `main`.
#[derive(Clone, Default)]
pub struct Lines(Arc<Mutex<Vec<String>>>);

impl Lines {
    /// Installs the layer as the global subscriber (the bus's spans are at DEBUG level).
    pub fn install() -> Self {
        let lines = Lines::default();
        let layer = TreeLayer(lines.clone()).with_filter(
            tracing_subscriber::filter::Targets::new().with_target("events", tracing::Level::DEBUG),
        );
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer))
            .expect("the only subscriber");
        lines
    }

    /// Takes the lines written since the last call.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

struct TreeLayer(Lines);

/// A span's fields, kept in its extensions until it is first entered.
#[derive(Default)]
struct Fields {
    values: BTreeMap<&'static str, String>,
    written: bool,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.values.insert(field.name(), value.to_owned());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.values.insert(field.name(), format!("{value:?}"));
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for TreeLayer {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(fields);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            if let Some(fields) = span.extensions_mut().get_mut::<Fields>() {
                values.record(fields);
            }
        }
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        let Some(fields) = extensions.get_mut::<Fields>() else {
            return;
        };
        if std::mem::replace(&mut fields.written, true) {
            return;
        }
        let depth = span.scope().skip(1).count();
        let line = describe(span.name(), &fields.values, depth == 0);
        self.0
             .0
            .lock()
            .unwrap()
            .push(format!("{}{line}", "  ".repeat(depth)));
    }
}

/// One span in words: `publish <event> (message <id>, caused by <id>)` or `process <event> in
/// <handler>`. Ids are shortened to their last 8 digits (the random part of a UUID v7).
fn describe(name: &str, f: &BTreeMap<&'static str, String>, root: bool) -> String {
    let get = |key: &str| f.get(key).map(String::as_str).unwrap_or("");
    let short = |key: &str| {
        let id = get(key);
        format!("..{}", &id[id.len().saturating_sub(8)..])
    };
    let mut line = format!("{name} {}", get("messaging.destination.name"));
    if let Some(handler) = f.get("events.handler") {
        line.push_str(&format!(" in {handler}"));
    }
    if name == "publish" {
        line.push_str(&format!(" (message {}", short("messaging.message.id")));
        if f.contains_key("events.causation_id") {
            line.push_str(&format!(", caused by {}", short("events.causation_id")));
        }
        if root {
            line.push_str(&format!(
                ", conversation {} for the whole chain",
                short("messaging.message.conversation_id")
            ));
        }
        line.push(')');
    }
    line
}
