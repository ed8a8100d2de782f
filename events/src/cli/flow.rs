//! The event flow as a graph: events, handlers (and the events they publish), process
//! managers (and the commands they send). `graph` prints it as Mermaid; the dashboard draws it.

use std::collections::HashSet;
use std::fmt::Write as _;

use serde::Serialize;

use crate::catalog::catalog;
use crate::handler::HandlerKind;
use crate::process::Stage;

/// Every node and edge of the linked program's flow.
#[derive(Serialize)]
pub(super) struct Flow {
    pub(super) nodes: Vec<Node>,
    pub(super) edges: Vec<Edge>,
}

/// An event, a handler, a process manager or a command.
#[derive(Serialize)]
pub(super) struct Node {
    /// Unique among the nodes: `e_`, `h_`, `p_` or `c_` and the name's letters and digits.
    pub(super) id: String,
    /// `event`, `handler`, `process_manager` or `command`.
    pub(super) kind: &'static str,
    pub(super) name: &'static str,
    /// A handler's kind: `sync`, `async` or `durable`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) handler_kind: Option<&'static str>,
}

/// `from` leads to `to`: an event to its handler or process manager (`starts` or `completes`
/// it, or continues it: no label), a handler to the event it publishes (`publishes`), a
/// process manager to a command (`sends`).
#[derive(Serialize)]
pub(super) struct Edge {
    pub(super) from: String,
    pub(super) to: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) label: Option<&'static str>,
}

fn id(prefix: &str, name: &str) -> String {
    let clean: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("{prefix}_{clean}")
}

/// The flow of the handlers linked into this program. A process manager's input events and
/// its durable handler are drawn as the process manager.
pub(super) fn flow() -> Flow {
    let catalog = catalog();
    let processes = crate::process::processes();
    let is_process = |name: &str| processes.iter().any(|p| p.name == name);
    let mut nodes = Vec::new();
    let mut edges = Vec::new();
    let mut edge = |from: String, to: String, label| edges.push(Edge { from, to, label });
    for event in catalog.events().iter().filter(|e| !is_process(e.name())) {
        nodes.push(Node {
            id: id("e", event.name()),
            kind: "event",
            name: event.name(),
            handler_kind: None,
        });
    }
    for p in &processes {
        let node = id("p", p.name);
        for (event, stage, _) in (p.events)() {
            let label = match stage {
                Stage::Start => Some("starts"),
                Stage::Continue => None,
                Stage::Complete => Some("completes"),
            };
            edge(id("e", event), node.clone(), label);
        }
        for command in p.sends {
            nodes.push(Node {
                id: id("c", command),
                kind: "command",
                name: command,
                handler_kind: None,
            });
            edge(node.clone(), id("c", command), Some("sends"));
        }
        nodes.push(Node {
            id: node,
            kind: "process_manager",
            name: p.name,
            handler_kind: None,
        });
    }
    for h in catalog.handlers().iter().filter(|h| !is_process(h.name())) {
        nodes.push(Node {
            id: id("h", h.name()),
            kind: "handler",
            name: h.name(),
            handler_kind: Some(h.kind().as_str()),
        });
        edge(id("e", h.event_name()), id("h", h.name()), None);
        for published in h.publishes() {
            edge(id("h", h.name()), id("e", published), Some("publishes"));
        }
    }
    // A command two process managers send is one node.
    let mut seen = HashSet::new();
    nodes.retain(|n| seen.insert(n.id.clone()));
    Flow { nodes, edges }
}

/// The event flow as a Mermaid flowchart (what `graph` prints).
pub fn graph() -> String {
    let flow = flow();
    let mut out = String::from("flowchart LR\n");
    for n in &flow.nodes {
        let _ = match (n.kind, n.handler_kind) {
            ("event", _) => writeln!(out, "    {}[[\"{}\"]]", n.id, n.name),
            ("process_manager", _) => {
                writeln!(out, "    {}{{{{\"{} (process manager)\"}}}}", n.id, n.name)
            }
            ("command", _) => writeln!(out, "    {}[/\"{}\"/]", n.id, n.name),
            (_, Some(kind)) if kind == HandlerKind::Durable.as_str() => {
                writeln!(out, "    {}[(\"{} (durable)\")]", n.id, n.name)
            }
            (_, kind) => writeln!(out, "    {}(\"{} ({})\")", n.id, n.name, kind.unwrap_or("")),
        };
    }
    for e in &flow.edges {
        let arrow = match e.label {
            None => "-->".to_owned(),
            Some("publishes") => "-.->".to_owned(),
            Some(label) => format!("-- {label} -->"),
        };
        let _ = writeln!(out, "    {} {arrow} {}", e.from, e.to);
    }
    out
}
