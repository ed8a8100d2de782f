//! The layers of `events/src` are one-way (DESIGN.md): a module imports only from its own layer
//! or below, and from the module that defines a name, never through the crate root's re-exports.
//!
//! This test reads every source file, collects its `crate::` paths and fails on an edge that goes
//! up, or on a module that no layer names (so a new module must be placed on purpose).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Layer of each top-level module, lowest first. `lib.rs` and `__private.rs` only re-export.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "core",
        &[
            "event", "registry", "handler", "report", "meta", "extract", "error", "catalog", "bus",
            "capture", "outbox", "shim", "decode", "trace",
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
    ("durable delivery", &["worker", "nats", "transport"]),
    ("cli", &["cli"]),
];

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

#[test]
fn layers_are_one_way() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    files.sort();
    let mut problems = Vec::new();
    for file in &files {
        let from = top_module(&src, file);
        if REEXPORTS.contains(&from.as_str()) {
            continue;
        }
        let Some(from_layer) = layer_of(&from) else {
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
