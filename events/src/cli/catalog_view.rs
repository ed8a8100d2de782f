//! `list` and `graph`: the link-time catalog as a table, JSON, or a Mermaid diagram. They need
//! no store.

use std::fmt::Write as _;
use std::io::Write;

use serde::Serialize;

use super::output::{json, table};
use super::CliError;
use crate::catalog::{catalog, HandlerInfo};
use crate::handler::HandlerKind;
use crate::process::Stage;

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

/// The event flow as a Mermaid flowchart.
pub fn graph() -> String {
    let catalog = catalog();
    let id = |prefix: &str, name: &str| {
        let clean: String = name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        format!("{prefix}_{clean}")
    };
    let mut out = String::from("flowchart LR\n");
    // A process manager's input and durable handler are drawn as the process manager.
    let processes = crate::process::processes();
    let is_process = |name: &str| processes.iter().any(|p| p.name == name);
    for event in catalog.events().iter().filter(|e| !is_process(e.name())) {
        let _ = writeln!(out, "    {}[[\"{}\"]]", id("e", event.name()), event.name());
    }
    for p in &processes {
        let node = id("p", p.name);
        let _ = writeln!(out, "    {node}{{{{\"{} (process manager)\"}}}}", p.name);
        for (event, stage, _) in (p.events)() {
            let arrow = match stage {
                Stage::Start => "-- starts -->",
                Stage::Continue => "-->",
                Stage::Complete => "-- completes -->",
            };
            let _ = writeln!(out, "    {} {arrow} {node}", id("e", event));
        }
        for command in p.sends {
            let _ = writeln!(out, "    {}[/\"{command}\"/]", id("c", command));
            let _ = writeln!(out, "    {node} -- sends --> {}", id("c", command));
        }
    }
    for h in catalog.handlers().iter().filter(|h| !is_process(h.name())) {
        let shape = match h.kind() {
            HandlerKind::Durable => format!("[(\"{} (durable)\")]", h.name()),
            kind => format!("(\"{} ({})\")", h.name(), kind.as_str()),
        };
        let _ = writeln!(out, "    {}{shape}", id("h", h.name()));
        let _ = writeln!(
            out,
            "    {} --> {}",
            id("e", h.event_name()),
            id("h", h.name())
        );
        for published in h.publishes() {
            let _ = writeln!(out, "    {} -.-> {}", id("h", h.name()), id("e", published));
        }
    }
    out
}
