//! The layers of `events/src` are one-way (DESIGN.md): a module imports only from its own layer
//! or below, and from the module that defines a name, never through the crate root's re-exports.
//!
//! This test reads every source file, collects its `crate::` paths and fails on an edge that goes
//! up, or on a module that no layer names (so a new module must be placed on purpose).
//!
//! Inside the core, modules may import each other both ways; the circle they form (the strongly
//! connected component of the import graph) is capped at the named knot [`KNOT`], so a leaf
//! that starts importing the kernel fails here instead of quietly growing the circle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Layer of each top-level module, lowest first. `lib.rs` and `__private.rs` only re-export.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "core",
        &[
            "event", "registry", "handler", "report", "meta", "extract", "error", "catalog", "bus",
            "capture", "outbox", "shim", "decode", "trace", "cold", "sink",
        ],
    ),
    (
        "commands and recording aggregates",
        &["command", "command_shim", "aggregate"],
    ),
    ("store", &["store"]),
    (
        "event sourcing and projections",
        &["sourcing", "process", "testing"],
    ),
    ("durable delivery", &["worker", "stop", "nats", "transport"]),
    ("cli", &["cli"]),
];

/// The core's import circle: the modules of the core that may import each other both ways (the
/// kernel: an event type and its link-time handler list, the catalog gathered from those lists,
/// the handlers in them, the context they run in, and the bus that walks them). Every other
/// core module sits below or above it, never both: the leaves (`cold`, `error`, `meta`,
/// `report`, `trace`, `sink`, `decode`) import nothing of it, and `capture`, `outbox` and
/// `shim` import it but are not imported by it. A module joins the circle only by being added
/// here on purpose; one that leaves it must be removed.
const KNOT: &[&str] = &["event", "registry", "catalog", "handler", "extract", "bus"];

/// Files that only re-export and may name any layer.
const REEXPORTS: &[&str] = &["lib", "__private"];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|(_, mods)| mods.contains(&module))
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to: `store/sqlite/mod.rs` -> `store`, `bus.rs` -> `bus`.
fn top_module(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).expect("under src");
    let first = rel.components().next().expect("a component");
    let first = first.as_os_str().to_string_lossy();
    first.trim_end_matches(".rs").to_string()
}

/// Code without line comments (doc comments included: their examples use the public paths).
fn code(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn ident_at(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// The first segment of every `crate::` path, expanding `crate::{a::x, b}` groups.
fn crate_paths(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        let before = rest[..i].chars().last();
        rest = &rest[i + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
            continue; // `$crate::` in macros, or part of a longer name
        }
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut item_start = true;
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if item_start && !c.is_whitespace() => {
                        item_start = false;
                        found.insert(ident_at(&group[j..]).to_string());
                    }
                    _ => {}
                }
            }
        } else {
            found.insert(ident_at(rest).to_string());
        }
    }
    found
}

/// Every source file of `events/src` with its top-level module, sorted.
fn source_files() -> (PathBuf, Vec<(String, PathBuf)>) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    files.sort();
    let files = files
        .into_iter()
        .map(|f| (top_module(&src, &f), f))
        .collect();
    (src, files)
}

/// The import graph among the given modules: module -> (imported module -> a file importing it).
fn import_graph(modules: &[&str]) -> BTreeMap<String, BTreeMap<String, String>> {
    let (src, files) = source_files();
    let mut graph: BTreeMap<String, BTreeMap<String, String>> = modules
        .iter()
        .map(|m| (m.to_string(), BTreeMap::new()))
        .collect();
    for (from, file) in &files {
        if !modules.contains(&from.as_str()) {
            continue;
        }
        let text = std::fs::read_to_string(file).expect("read source");
        for target in crate_paths(&code(&text)) {
            if target != *from && modules.contains(&target.as_str()) {
                let shown = file.strip_prefix(&src).unwrap().display().to_string();
                graph.get_mut(from).unwrap().entry(target).or_insert(shown);
            }
        }
    }
    graph
}

/// The strongly connected components with more than one module: the import circles.
fn circles(graph: &BTreeMap<String, BTreeMap<String, String>>) -> Vec<BTreeSet<String>> {
    let reach = |start: &str| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![start.to_string()];
        while let Some(m) = todo.pop() {
            for next in graph[&m].keys() {
                if seen.insert(next.clone()) {
                    todo.push(next.clone());
                }
            }
        }
        seen
    };
    let reach: BTreeMap<&String, BTreeSet<String>> = graph.keys().map(|m| (m, reach(m))).collect();
    let mut out: Vec<BTreeSet<String>> = Vec::new();
    for m in graph.keys() {
        if out.iter().any(|c| c.contains(m)) {
            continue;
        }
        let circle: BTreeSet<String> = reach[m]
            .iter()
            .filter(|n| reach[*n].contains(m))
            .cloned()
            .collect();
        if circle.len() > 1 {
            out.push(circle);
        }
    }
    out
}

/// A shortest import path from `from` to `to` inside the graph, each step with its file.
fn path(graph: &BTreeMap<String, BTreeMap<String, String>>, from: &str, to: &str) -> String {
    let mut came: BTreeMap<String, String> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([from.to_string()]);
    while let Some(m) = queue.pop_front() {
        if m == to && m != from {
            break;
        }
        for next in graph[&m].keys() {
            if !came.contains_key(next) {
                came.insert(next.clone(), m.clone());
                queue.push_back(next.clone());
            }
        }
    }
    let mut steps = Vec::new();
    let mut at = to.to_string();
    while let Some(prev) = came.get(&at) {
        steps.push(format!("{at} (imported in {})", graph[prev][&at]));
        at = prev.clone();
        if at == from {
            break;
        }
    }
    steps.push(from.to_string());
    steps.reverse();
    steps.join(" -> ")
}

#[test]
fn the_core_circle_is_only_the_knot() {
    let core = LAYERS[0].1;
    let graph = import_graph(core);
    let mut problems = Vec::new();
    let mut in_circle = BTreeSet::new();
    for circle in circles(&graph) {
        let outside: Vec<&String> = circle
            .iter()
            .filter(|m| !KNOT.contains(&m.as_str()))
            .collect();
        for m in &outside {
            let inside = circle.iter().find(|n| n != m).unwrap();
            problems.push(format!(
                "`{m}` is in the core's import circle ({}; and back: {}); move what it needs from \
                 the kernel below it, or add it to KNOT on purpose",
                path(&graph, m, inside),
                path(&graph, inside, m),
            ));
        }
        in_circle.extend(circle);
    }
    for m in KNOT {
        if !in_circle.contains(*m) {
            problems.push(format!(
                "`{m}` is no longer in the core's import circle: remove it from KNOT"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "{} import-circle problems (circle: {:?}):\n  {}",
        problems.len(),
        in_circle,
        problems.join("\n  ")
    );
}

#[test]
fn a_back_edge_closes_a_circle() {
    let graph: BTreeMap<String, BTreeMap<String, String>> = [
        ("a", &["b"][..]),
        ("b", &["c"][..]),
        ("c", &["a"][..]),
        ("d", &["a"][..]),
        ("e", &[][..]),
    ]
    .into_iter()
    .map(|(m, to)| {
        let to = to
            .iter()
            .map(|t| (t.to_string(), format!("{m}.rs")))
            .collect();
        (m.to_string(), to)
    })
    .collect();
    let found = circles(&graph);
    assert_eq!(found.len(), 1);
    let found: Vec<&str> = found[0].iter().map(String::as_str).collect();
    assert_eq!(found, ["a", "b", "c"]);
    assert_eq!(
        path(&graph, "d", "c"),
        "d -> a (imported in d.rs) -> b (imported in a.rs) -> c (imported in b.rs)"
    );
}

#[test]
fn layers_are_one_way() {
    let (src, files) = source_files();
    let mut problems = Vec::new();
    for (from, file) in &files {
        if REEXPORTS.contains(&from.as_str()) {
            continue;
        }
        let Some(from_layer) = layer_of(from) else {
            problems.push(format!(
                "module `{from}` is in no layer: add it to LAYERS in {}",
                file!()
            ));
            continue;
        };
        let text = std::fs::read_to_string(file).expect("read source");
        for target in crate_paths(&code(&text)) {
            let shown = file.strip_prefix(&src).unwrap().display();
            if target == "__private" {
                problems.push(format!(
                    "{shown} imports through `crate::__private`; import from the defining module"
                ));
                continue;
            }
            match layer_of(&target) {
                None if target.chars().next().is_some_and(char::is_uppercase)
                    || !target.chars().all(|c| c.is_lowercase() || c == '_') =>
                {
                    problems.push(format!(
                        "{shown} uses `crate::{target}` (a root re-export); import it from its defining module"
                    ))
                }
                None => problems.push(format!(
                    "{shown} uses `crate::{target}`, a module in no layer: add it to LAYERS"
                )),
                Some(to) if to > from_layer => problems.push(format!(
                    "{shown} ({}) imports `crate::{target}` ({}), a higher layer",
                    LAYERS[from_layer].0, LAYERS[to].0
                )),
                Some(_) => {}
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} layering problems:\n  {}",
        problems.len(),
        problems.join("\n  ")
    );
}

#[test]
fn the_parser_sees_grouped_and_plain_paths() {
    let seen = crate_paths(
        "use crate::{bus::Bus, store::{A, B}, meta};\nlet x = crate::worker::run();\n$crate::x",
    );
    let seen: Vec<_> = seen.iter().map(String::as_str).collect();
    assert_eq!(seen, ["bus", "meta", "store", "worker"]);
}
