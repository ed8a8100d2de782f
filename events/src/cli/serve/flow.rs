//! The event flow drawn as an SVG diagram: nodes in columns by their distance from the events
//! nothing publishes, edges as curves with arrows, each kind of node in its own shape.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use super::super::flow::{Edge, Flow, Node};
use super::html::esc;

const ROW: f64 = 56.0;
const HEIGHT: f64 = 36.0;
const GAP: f64 = 90.0;
const MARGIN: f64 = 20.0;

/// A node's box: column, top-left corner, width.
struct Placed {
    x: f64,
    y: f64,
    width: f64,
    column: usize,
}

/// The diagram of `flow`, or a note when nothing is linked.
pub(super) fn svg(flow: &Flow) -> String {
    if flow.nodes.is_empty() {
        return "<p class=\"muted\">No events or handlers are linked into this program.</p>"
            .to_owned();
    }
    let placed = layout(flow);
    let width = placed.values().map(|p| p.x + p.width).fold(0.0, f64::max) + MARGIN;
    let height = placed.values().map(|p| p.y + HEIGHT).fold(0.0, f64::max) + MARGIN + ROW / 2.0;
    let mut out = format!(
        "<svg class=\"flow\" width=\"{width:.0}\" height=\"{height:.0}\" viewBox=\"0 0 {width:.0} {height:.0}\" role=\"img\" aria-label=\"event flow\">\
         <defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto-start-reverse\">\
         <path d=\"M0,0 L10,5 L0,10 z\" class=\"arrowhead\"/></marker></defs>"
    );
    for e in &flow.edges {
        if let (Some(a), Some(b)) = (placed.get(e.from.as_str()), placed.get(e.to.as_str())) {
            edge(&mut out, e, a, b);
        }
    }
    for n in &flow.nodes {
        node(&mut out, n, &placed[n.id.as_str()]);
    }
    out.push_str("</svg>");
    out
}

/// Columns by longest path from a source over the edges that close no cycle (an edge back to
/// a node on the current depth-first path is drawn, but does not push its target right);
/// rows in order of first appearance within a column.
fn layout(flow: &Flow) -> HashMap<&str, Placed> {
    let back = back_edges(flow);
    let mut column: HashMap<&str, usize> = flow.nodes.iter().map(|n| (n.id.as_str(), 0)).collect();
    // Without back edges the graph is acyclic: a longest path has fewer edges than nodes.
    for _ in 0..flow.nodes.len() {
        let mut changed = false;
        for (i, e) in flow.edges.iter().enumerate() {
            let (Some(&from), Some(&to)) = (column.get(e.from.as_str()), column.get(e.to.as_str()))
            else {
                continue;
            };
            if !back.contains(&i) && to <= from {
                column.insert(e.to.as_str(), from + 1);
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let columns = column.values().copied().max().unwrap_or(0) + 1;
    let mut widths = vec![0.0_f64; columns];
    let mut rows = vec![0usize; columns];
    let mut placed = HashMap::new();
    for n in &flow.nodes {
        let c = column[n.id.as_str()];
        widths[c] = widths[c].max(node_width(n));
    }
    let mut x = vec![MARGIN; columns];
    for c in 1..columns {
        x[c] = x[c - 1] + widths[c - 1] + GAP;
    }
    for n in &flow.nodes {
        let c = column[n.id.as_str()];
        placed.insert(
            n.id.as_str(),
            Placed {
                x: x[c],
                y: MARGIN + rows[c] as f64 * ROW,
                width: widths[c],
                column: c,
            },
        );
        rows[c] += 1;
    }
    placed
}

/// The edges (by index) that lead back to a node on the depth-first path: one per cycle.
fn back_edges(flow: &Flow) -> HashSet<usize> {
    fn visit<'a>(
        node: &'a str,
        out: &HashMap<&'a str, Vec<(usize, &'a str)>>,
        state: &mut HashMap<&'a str, bool>,
        back: &mut HashSet<usize>,
    ) {
        // false: on the path; true: done.
        state.insert(node, false);
        for &(i, to) in out.get(node).into_iter().flatten() {
            match state.get(to) {
                Some(false) => {
                    back.insert(i);
                }
                Some(true) => {}
                None => visit(to, out, state, back),
            }
        }
        state.insert(node, true);
    }
    let mut out: HashMap<&str, Vec<(usize, &str)>> = HashMap::new();
    for (i, e) in flow.edges.iter().enumerate() {
        out.entry(e.from.as_str())
            .or_default()
            .push((i, e.to.as_str()));
    }
    let mut state = HashMap::new();
    let mut back = HashSet::new();
    for n in &flow.nodes {
        if !state.contains_key(n.id.as_str()) {
            visit(n.id.as_str(), &out, &mut state, &mut back);
        }
    }
    back
}

fn label(n: &Node) -> String {
    match (n.kind, n.handler_kind) {
        ("process_manager", _) => format!("{} (process manager)", n.name),
        ("handler", Some(kind)) => format!("{} ({kind})", n.name),
        _ => n.name.to_owned(),
    }
}

fn node_width(n: &Node) -> f64 {
    label(n).chars().count() as f64 * 7.2 + 28.0
}

fn node(out: &mut String, n: &Node, p: &Placed) {
    let class = match (n.kind, n.handler_kind) {
        ("handler", Some(kind)) => format!("node handler {kind}"),
        (kind, _) => format!("node {}", kind.replace('_', "-")),
    };
    let (x, y, w, h) = (p.x, p.y, p.width, HEIGHT);
    let _ = write!(
        out,
        "<g class=\"{class}\" data-id=\"{}\"><title>{}</title>",
        esc(&n.id),
        esc(&label(n))
    );
    let _ = match n.kind {
        "command" => write!(
            out,
            "<polygon points=\"{:.1},{y:.1} {:.1},{y:.1} {:.1},{:.1} {x:.1},{:.1}\"/>",
            x + 10.0,
            x + w,
            x + w - 10.0,
            y + h,
            y + h
        ),
        "process_manager" => write!(
            out,
            "<polygon points=\"{x:.1},{:.1} {:.1},{y:.1} {:.1},{y:.1} {:.1},{:.1} {:.1},{:.1} {:.1},{:.1}\"/>",
            y + h / 2.0,
            x + 12.0,
            x + w - 12.0,
            x + w,
            y + h / 2.0,
            x + w - 12.0,
            y + h,
            x + 12.0,
            y + h
        ),
        "event" => write!(out, "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{h:.1}\" rx=\"4\"/>"),
        _ => write!(out, "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{h:.1}\" rx=\"16\"/>"),
    };
    let _ = write!(
        out,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text></g>",
        x + w / 2.0,
        y + h / 2.0 + 4.5,
        esc(&label(n))
    );
}

fn edge(out: &mut String, e: &Edge, a: &Placed, b: &Placed) {
    let (x1, y1) = (a.x + a.width, a.y + HEIGHT / 2.0);
    let (x2, y2) = (b.x, b.y + HEIGHT / 2.0);
    let class = match e.label {
        Some("publishes") => "edge publishes",
        _ => "edge",
    };
    let (path, lx, ly) = if b.column > a.column {
        let bend = (x2 - x1) / 2.0;
        (
            format!(
                "M{x1:.1},{y1:.1} C{:.1},{y1:.1} {:.1},{y2:.1} {x2:.1},{y2:.1}",
                x1 + bend,
                x2 - bend
            ),
            (x1 + x2) / 2.0,
            (y1 + y2) / 2.0 - 4.0,
        )
    } else {
        // Back to an earlier column (a cycle): loop below both boxes.
        let low = a.y.max(b.y) + HEIGHT + ROW / 2.0;
        (
            format!(
                "M{x1:.1},{y1:.1} C{:.1},{low:.1} {:.1},{low:.1} {x2:.1},{y2:.1}",
                x1 + 40.0,
                x2 - 40.0
            ),
            (x1 + x2) / 2.0,
            low - 4.0,
        )
    };
    let _ = write!(
        out,
        "<path class=\"{class}\" d=\"{path}\" marker-end=\"url(#arrow)\"/>"
    );
    if let Some(label) = e.label {
        let _ = write!(
            out,
            "<text class=\"edge-label\" x=\"{lx:.1}\" y=\"{ly:.1}\" text-anchor=\"middle\">{label}</text>"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, kind: &'static str, name: &'static str) -> Node {
        Node {
            id: id.into(),
            kind,
            name,
            handler_kind: (kind == "handler").then_some("durable"),
        }
    }

    fn edge(from: &str, to: &str, label: Option<&'static str>) -> Edge {
        Edge {
            from: from.into(),
            to: to.into(),
            label,
        }
    }

    #[test]
    fn a_chain_goes_left_to_right_and_a_cycle_ends() {
        let flow = Flow {
            nodes: vec![
                node("e_a", "event", "a"),
                node("h_x", "handler", "x"),
                node("e_b", "event", "b<script>"),
                node("h_y", "handler", "y"),
            ],
            edges: vec![
                edge("e_a", "h_x", None),
                edge("h_x", "e_b", Some("publishes")),
                edge("e_b", "h_y", None),
                // y publishes a again: a cycle.
                edge("h_y", "e_a", Some("publishes")),
            ],
        };
        let placed = layout(&flow);
        let column = |id: &str| placed[id].column;
        assert!(column("e_a") < column("h_x"));
        assert!(column("h_x") < column("e_b"));
        assert!(column("e_b") < column("h_y"));
        let svg = svg(&flow);
        assert_eq!(svg.matches("<path class=\"edge").count(), 4);
        assert!(svg.contains("b&lt;script&gt;") && !svg.contains("b<script>"));
        assert!(svg.contains("x (durable)"));
    }
}
