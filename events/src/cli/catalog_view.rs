//! `list`: the link-time catalog as a table or JSON. It needs no store.

use std::io::Write;

use serde::Serialize;

use super::output::{json, table};
use super::CliError;
use crate::catalog::{catalog, HandlerInfo};

/// `list --json`: one entry per event.
#[derive(Serialize)]
struct ListJson {
    events: Vec<EventJson>,
}

#[derive(Serialize)]
struct EventJson {
    name: &'static str,
    version: u32,
    handlers: Vec<HandlerJson>,
}

#[derive(Serialize)]
struct HandlerJson {
    name: &'static str,
    kind: &'static str,
    batch: bool,
    order: i32,
    location: String,
    resources: Vec<&'static str>,
}

impl HandlerJson {
    fn of(h: &HandlerInfo) -> Self {
        Self {
            name: h.name(),
            kind: h.kind().as_str(),
            batch: h.is_batch(),
            order: h.order(),
            location: h.location().to_string(),
            resources: h.resources().collect(),
        }
    }
}

/// `list`: every event and its handlers.
pub(super) fn list(out: &mut dyn Write, as_json: bool) -> Result<(), CliError> {
    let catalog = catalog();
    if as_json {
        let events = catalog
            .events()
            .iter()
            .map(|event| EventJson {
                name: event.name(),
                version: event.version(),
                handlers: catalog
                    .handlers_of(event)
                    .iter()
                    .map(HandlerJson::of)
                    .collect(),
            })
            .collect();
        return json(out, &ListJson { events });
    }
    let mut rows = Vec::new();
    for event in catalog.events() {
        let name = format!("{} v{}", event.name(), event.version());
        let handlers = catalog.handlers_of(event);
        if handlers.is_empty() {
            rows.push(vec![name.clone(), "-".into()]);
        }
        for h in handlers {
            let kind = if h.is_batch() {
                "durable batch"
            } else {
                h.kind().as_str()
            };
            rows.push(vec![
                name.clone(),
                h.name().to_owned(),
                kind.to_owned(),
                h.order().to_string(),
                h.location().to_string(),
                h.resources().collect::<Vec<_>>().join(", "),
            ]);
        }
    }
    let header = ["EVENT", "HANDLER", "KIND", "ORDER", "LOCATION", "RESOURCES"];
    write!(out, "{}", table(&header, &rows))?;
    Ok(())
}
