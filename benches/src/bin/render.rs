//! Renders criterion's results into `benches/results.md` (tables of ns per operation, ratios
//! against the baselines, the goals, the machine) and `benches/chart.svg`.
//!
//! Reads `<criterion dir>/**/new/{benchmark,estimates}.json`, where the criterion dir is
//! `$CRITERION_HOME`, else `$CARGO_TARGET_DIR/criterion`, else the workspace's
//! `target/criterion`; also `<criterion dir>/cold_start/*.json` (written by the `types_*`
//! benchmarks), `<criterion dir>/durable_latency.json` (written by the `durable` benchmark),
//! `<criterion dir>/nats.json` (written by the `nats` benchmark) and
//! `<criterion dir>/alloc.txt` (the output of the `alloc` test, saved by `run.sh`). Times are
//! criterion's median estimate per iteration; rates (events per second) divide the
//! benchmark's `Throughput::Elements` by it.
//!
//! Usage: `cargo run -p events-benches --bin render [-- --out-dir DIR]` (default: `benches/`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// `(group, function, parameter)`.
type Key = (String, String, String);

/// `(group, function, parameter)` → median ns per iteration.
type Results = BTreeMap<Key, f64>;

/// `(group, function, parameter)` → elements per iteration, for benchmarks that declare a
/// `Throughput::Elements`.
type Elements = BTreeMap<Key, u64>;

fn main() {
    let mut out_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--out-dir" => out_dir = PathBuf::from(args.next().expect("--out-dir DIR")),
            other => {
                eprintln!("unknown argument `{other}`; usage: render [--out-dir DIR]");
                std::process::exit(2);
            }
        }
    }
    let dir = events_benches::criterion_dir();
    let mut results = Results::new();
    let mut elements = Elements::new();
    collect(&dir, &mut results, &mut elements);
    if results.is_empty() {
        eprintln!(
            "no criterion results under {}; run `cargo bench -p events-benches` first",
            dir.display()
        );
        std::process::exit(1);
    }
    let mut md = markdown(&results, &elements, &dir);
    // Instruction counts come from callgrind (`benches/instructions.sh`), not criterion: kept
    // in their own file and appended as they are.
    if let Ok(counts) = std::fs::read_to_string(out_dir.join("instructions.md")) {
        md.push('\n');
        md.push_str(&counts);
    }
    // So are the worker-process measurements (`benches/scale.sh`).
    if let Ok(scale) = std::fs::read_to_string(out_dir.join("scale.md")) {
        md.push_str(&scale);
    }
    let svg = chart(&results);
    std::fs::write(out_dir.join("results.md"), md).expect("write results.md");
    std::fs::write(out_dir.join("chart.svg"), svg).expect("write chart.svg");
    println!(
        "wrote {} and {} from {} results in {}",
        out_dir.join("results.md").display(),
        out_dir.join("chart.svg").display(),
        results.len(),
        dir.display()
    );
}

/// Walks `dir` for `new/benchmark.json` with its `new/estimates.json`.
fn collect(dir: &Path, results: &mut Results, elements: &mut Elements) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        if path.file_name().is_some_and(|n| n == "new") {
            if let Some((key, ns, n)) = read_result(&path) {
                if let Some(n) = n {
                    elements.insert(key.clone(), n);
                }
                results.insert(key, ns);
            }
        } else {
            collect(&path, results, elements);
        }
    }
}

fn read_json(path: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

fn read_result(new: &Path) -> Option<(Key, f64, Option<u64>)> {
    let id = read_json(&new.join("benchmark.json"))?;
    let estimates = read_json(&new.join("estimates.json"))?;
    let text = |v: &Value| v.as_str().unwrap_or("").to_owned();
    let key = (
        text(&id["group_id"]),
        text(&id["function_id"]),
        text(&id["value_str"]),
    );
    let ns = estimates["median"]["point_estimate"].as_f64()?;
    let n = id["throughput"]["Elements"].as_u64();
    Some((key, ns, n))
}

fn get(r: &Results, group: &str, function: &str, param: &str) -> Option<f64> {
    r.get(&(group.to_owned(), function.to_owned(), param.to_owned()))
        .copied()
}

fn fmt_ns(ns: Option<f64>) -> String {
    match ns {
        None => "–".to_owned(),
        Some(ns) if ns >= 100_000.0 => format!("{:.1} µs", ns / 1000.0),
        Some(ns) if ns >= 100.0 => format!("{ns:.0}"),
        Some(ns) if ns >= 10.0 => format!("{ns:.1}"),
        Some(ns) => format!("{ns:.2}"),
    }
}

/// A duration with its unit: ns, µs or ms.
fn fmt_time(ns: Option<f64>) -> String {
    match ns {
        None => "–".to_owned(),
        Some(ns) if ns >= 1e6 => format!("{:.2} ms", ns / 1e6),
        Some(ns) if ns >= 1e3 => format!("{:.1} µs", ns / 1e3),
        Some(ns) => format!("{ns:.0} ns"),
    }
}

/// Events per second of a benchmark with `Throughput::Elements`.
fn rate(r: &Results, e: &Elements, group: &str, function: &str, param: &str) -> Option<f64> {
    let key = (group.to_owned(), function.to_owned(), param.to_owned());
    Some(*e.get(&key)? as f64 * 1e9 / r.get(&key)?)
}

fn fmt_rate(per_s: Option<f64>) -> String {
    match per_s {
        None => "–".to_owned(),
        Some(x) if x >= 1e6 => format!("{:.2} M", x / 1e6),
        Some(x) if x >= 1e3 => format!("{:.1} k", x / 1e3),
        Some(x) => format!("{x:.0}"),
    }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    Some(a? / b?)
}

fn fmt_ratio(r: Option<f64>) -> String {
    r.map_or_else(|| "–".to_owned(), |r| format!("{r:.2}×"))
}

fn command_line(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned())
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, model)| model.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    let nproc = command_line("nproc", &[]);
    let rustc = command_line("rustc", &["--version"]);
    let os = command_line("uname", &["-sr"]);
    format!("- CPU: {cpu}\n- `nproc`: {nproc}\n- {rustc}\n- OS: {os}\n")
}

const SYNC: &[(&str, &str)] = &[
    ("direct", "direct calls (floor)"),
    (
        "fn_pointer",
        "calls through a slice of `fn` pointers (floor of any bus)",
    ),
    ("vec_box_dyn_fn", "`Vec<Box<dyn Fn(&E)>>`"),
    (
        "hashmap_typeid_bus",
        "`HashMap<TypeId, Vec<Box<dyn Fn(&dyn Any)>>>`, SipHash",
    ),
    (
        "hashmap_typeid_identity",
        "the same `HashMap` with an identity hasher",
    ),
    ("tokio_broadcast", "`tokio::sync::broadcast` send + recv"),
    ("events_publish", "**events** `publish` (default)"),
    (
        "events_publish_timed",
        "**events** `publish`, `record_durations(true)`",
    ),
];
const SYNC_SIZES: &[&str] = &["1", "4", "16", "64"];

const ASYNC: &[(&str, &str)] = &[
    ("direct_await", "direct `.await` (floor)"),
    ("tokio_mpsc", "`tokio::sync::mpsc` send + recv, per handler"),
    (
        "events_dispatch",
        "**events** `dispatch(..).await` (default)",
    ),
    (
        "events_dispatch_timed",
        "**events** `dispatch(..).await`, `record_durations(true)`",
    ),
];
const ASYNC_SIZES: &[&str] = &["1", "16"];

fn table(
    out: &mut String,
    r: &Results,
    group: &str,
    rows: &[(&str, &str)],
    sizes: &[&str],
    floor: &str,
) {
    let _ = write!(out, "| {group} (ns per event) |");
    for s in sizes {
        let _ = write!(out, " {} |", handlers(s));
    }
    for s in sizes {
        let _ = write!(out, " ×{floor} @{s} |");
    }
    out.push_str("\n|---|");
    for _ in 0..sizes.len() * 2 {
        out.push_str("---:|");
    }
    out.push('\n');
    for (id, label) in rows {
        let _ = write!(out, "| {label} |");
        for s in sizes {
            let _ = write!(out, " {} |", fmt_ns(get(r, group, id, s)));
        }
        for s in sizes {
            let x = ratio(get(r, group, id, s), get(r, group, floor, s));
            let _ = write!(out, " {} |", fmt_ratio(x));
        }
        out.push('\n');
    }
    out.push('\n');
}

fn goal(out: &mut String, name: &str, measured: Option<f64>, shown: String, met: bool) {
    let verdict = match measured {
        None => "not measured",
        Some(_) if met => "met",
        Some(_) => "**missed**",
    };
    let _ = writeln!(out, "| {name} | {shown} | {verdict} |");
}

fn markdown(r: &Results, e: &Elements, dir: &Path) -> String {
    let mut out = String::new();
    out.push_str(
        "# Benchmark results\n\n\
         Generated by `benches/run.sh` (`cargo run -p events-benches --bin render`) from \
         criterion's median estimates; one run, on a shared machine, so read the ratios rather \
         than the absolute numbers. Every handler in every variant does the same work (adds a \
         field into a shared accumulator).\n\n## Machine\n\n",
    );
    out.push_str(&machine());

    out.push_str("\n## Goals\n\n| goal | measured | |\n|---|---|---|\n");
    let sync = |id: &str, s: &str| get(r, "sync_dispatch", id, s);
    for (size, limit) in [("1", 2.0), ("64", 1.3)] {
        let x = ratio(sync("events_publish", size), sync("fn_pointer", size));
        goal(
            &mut out,
            &format!(
                "`events_publish` within {limit}× of calls through `fn` pointers, {}",
                handlers(size)
            ),
            x,
            fmt_ratio(x),
            x.is_some_and(|x| x <= limit),
        );
    }
    let x = ratio(
        sync("hashmap_typeid_identity", "1"),
        sync("events_publish", "1"),
    );
    goal(
        &mut out,
        "`events_publish` faster than the identity-hasher `HashMap<TypeId>` bus, 1 handler",
        x,
        format!("{} faster", fmt_ratio(x)),
        x.is_some_and(|x| x > 1.0),
    );
    let alloc = std::fs::read_to_string(dir.join("alloc.txt")).ok();
    let alloc_lines: Vec<&str> = alloc
        .as_deref()
        .map(|a| a.lines().filter(|l| l.starts_with("alloc: ")).collect())
        .unwrap_or_default();
    let sync_allocs: Vec<&str> = alloc_lines
        .iter()
        .filter(|l| !l.contains("(boxed)"))
        .copied()
        .collect();
    let zero = sync_allocs
        .iter()
        .all(|l| l.contains(": 0 allocations per call"));
    goal(
        &mut out,
        "zero allocations per dispatch (sync handlers; async ones with small futures)",
        (!sync_allocs.is_empty()).then_some(0.0),
        if zero {
            format!("0 in all {} cases (test `alloc`)", sync_allocs.len())
        } else {
            "see below".to_owned()
        },
        zero,
    );
    for s in ASYNC_SIZES {
        let n: f64 = s.parse().expect("numeric size");
        let per = get(r, "async_dispatch", "events_dispatch", s)
            .zip(get(r, "async_dispatch", "direct_await", s))
            .map(|(a, d)| (a - d) / n);
        goal(
            &mut out,
            &format!(
                "`events_dispatch` overhead < 30 ns per handler over `.await`, {}",
                handlers(s)
            ),
            per,
            per.map_or_else(|| "–".to_owned(), |p| format!("{p:.1} ns per handler")),
            per.is_some_and(|p| p < 30.0),
        );
    }
    let batched = rate(r, e, "durable", "append", "100");
    goal(
        &mut out,
        "SQLite append of batched events ≥ 50k events/s (batches of 100)",
        batched,
        format!("{} events/s", fmt_rate(batched)),
        batched.is_some_and(|x| x >= 50_000.0),
    );
    let latency = read_json(&dir.join("durable_latency.json"));
    let p50 = latency.as_ref().and_then(|v| v["p50_ns"].as_f64());
    goal(
        &mut out,
        "commit-to-handler latency p50 < 5 ms (worker running, in-process wake-up)",
        p50,
        p50.map_or_else(|| "–".to_owned(), |p| format!("{:.3} ms", p / 1e6)),
        p50.is_some_and(|p| p < 5e6),
    );

    out.push_str("\n## Sync dispatch (group `sync_dispatch`)\n\n");
    table(&mut out, r, "sync_dispatch", SYNC, SYNC_SIZES, "direct");
    out.push_str("Speed-up of **events** over the baselines (baseline time / events time):\n\n");
    out.push_str("| baseline | events | 1 | 4 | 16 | 64 |\n|---|---|---:|---:|---:|---:|\n");
    for (base, base_label) in &SYNC[1..6] {
        for id in ["events_publish", "events_publish_timed"] {
            let _ = write!(out, "| {base_label} | `{id}` |");
            for s in SYNC_SIZES {
                let _ = write!(out, " {} |", fmt_ratio(ratio(sync(base, s), sync(id, s))));
            }
            out.push('\n');
        }
    }

    out.push_str("\n## Number of event types (groups `event_types`, `startup`)\n\n");
    out.push_str(
        "The same benchmark in a program with 1 event type (`types_1`) and in one with 1,000 \
         generated types with one handler each (`types_1000`, see `build.rs`).\n\n\
         | ns | 1 type | 1,000 types | 1,000 / 1 |\n|---|---:|---:|---:|\n",
    );
    for (group, id, label) in [
        (
            "event_types",
            "events_publish",
            "`publish` of one type (default)",
        ),
        (
            "event_types",
            "events_publish_timed",
            "`publish` of one type, `record_durations(true)`",
        ),
        (
            "startup",
            "bus_build",
            "`Bus::builder().build()` (catalog already gathered)",
        ),
    ] {
        let one = get(r, group, id, "1");
        let many = get(r, group, id, "1000");
        let _ = writeln!(
            out,
            "| {label} | {} | {} | {} |",
            fmt_ns(one),
            fmt_ns(many),
            fmt_ratio(ratio(many, one))
        );
    }
    let cold = |types: &str| {
        read_json(&dir.join("cold_start").join(format!("{types}.json")))
            .and_then(|v| v["ns"].as_f64())
    };
    let _ = writeln!(
        out,
        "| first `build()` of the process, gathering the catalog (one sample) | {} | {} | {} |",
        fmt_ns(cold("1")),
        fmt_ns(cold("1000")),
        fmt_ratio(ratio(cold("1000"), cold("1")))
    );
    out.push_str(
        "\nThe catalog (walking the link-time registry, sorting each event's handlers) is gathered \
         once per process, behind a `OnceLock`, by the first `build()` (or `events::catalog()`, \
         or first dispatch); later builds only run the start-up checks and create the metrics \
         handles.\n",
    );

    out.push_str("\n## Async dispatch (group `async_dispatch`, current-thread tokio)\n\n");
    table(
        &mut out,
        r,
        "async_dispatch",
        ASYNC,
        ASYNC_SIZES,
        "direct_await",
    );

    durable(&mut out, r, e, latency.as_ref());
    nats(&mut out, read_json(&dir.join("nats.json")).as_ref());

    out.push_str("## Allocations (test `alloc`)\n\n");
    if alloc_lines.is_empty() {
        out.push_str(
            "Not recorded: run `cargo test -p events-benches --test alloc -- --nocapture`.\n",
        );
    } else {
        for l in &alloc_lines {
            let _ = writeln!(out, "- {}", l.trim_start_matches("alloc: "));
        }
    }
    out
}

/// The section of the `durable` benchmark: store appends, worker delivery, latency.
fn durable(out: &mut String, r: &Results, e: &Elements, latency: Option<&Value>) {
    out.push_str(
        "## Durable (SQLite) (group `durable`)\n\n\
         `SqliteStore::open` on a file in a temporary directory (WAL, `synchronous = NORMAL`). \
         Appends time the serialization of the events (`NewEvent::new`) as well as the SQL.\n\n\
         | durable | time per iteration | events per iteration | events/s |\n|---|---:|---:|---:|\n",
    );
    for (function, param, label) in [
        (
            "append",
            "1",
            "append one event per transaction (`append_event`)",
        ),
        (
            "append",
            "100",
            "append batches of 100 events, one transaction each (`transaction` + `append_in`)",
        ),
        (
            "worker_drain",
            "noop_handler",
            "worker delivery to a no-op durable handler (`Worker::drain`, from checkpoint 0)",
        ),
    ] {
        let key = ("durable".to_owned(), function.to_owned(), param.to_owned());
        let _ = writeln!(
            out,
            "| {label} | {} | {} | {} |",
            fmt_time(get(r, "durable", function, param)),
            e.get(&key).map_or_else(|| "–".to_owned(), u64::to_string),
            fmt_rate(rate(r, e, "durable", function, param)),
        );
    }
    out.push_str(
        "\nCommit-to-handler latency: a worker runs (`run_until`, 60 s poll interval) on a 2-worker \
         multi-thread tokio runtime; the bench thread appends one event (`append_event`) carrying \
         the time just before the append, and the durable handler notes when it runs. The append's \
         own transaction is included; the wake-up is the store's in-process `Notify`. Samples are \
         1 ms apart, after 50 warm-up probes.\n\n",
    );
    let ns = |field: &str| latency.and_then(|v| v[field].as_f64());
    let time = |field: &str| fmt_time(ns(field));
    let _ = writeln!(
        out,
        "| commit → handler | samples | p50 | p99 | min | mean | max |\n|---|---:|---:|---:|---:|---:|---:|\n\
         | `append_event` → durable handler | {} | {} | {} | {} | {} | {} |\n",
        ns("samples").map_or_else(|| "–".to_owned(), |n| format!("{n:.0}")),
        time("p50_ns"),
        time("p99_ns"),
        time("min_ns"),
        time("mean_ns"),
        time("max_ns"),
    );
}

/// The section of the `nats` benchmark: relay throughput, commit to remote handler latency.
fn nats(out: &mut String, run: Option<&Value>) {
    out.push_str("## NATS JetStream (bench `nats`)\n\n");
    let Some(run) = run else {
        out.push_str("Not recorded: run `cargo bench -p events-benches --bench nats` (needs `nats-server`).\n\n");
        return;
    };
    let field = |name: &str| run[name].as_f64();
    let rate = field("relay_events_per_s");
    let p99 = field("p99_ns");
    let ms =
        |ns: Option<f64>| ns.map_or_else(|| "–".to_owned(), |ns| format!("{:.2} ms", ns / 1e6));
    let _ = writeln!(
        out,
        "SQLite file stores, nats-server on loopback (file storage).\n\n\
         | goal | measured | |\n|---|---|---|\n\
         | relay ≥ 50k events/s, log to acknowledged in the stream | {} events/s ({} events) | {} |\n\
         | commit → remote handler p99 < 20 ms (relay, JetStream, inbox, worker) | p50 {}, p99 {} ({} samples) | {} |\n",
        fmt_rate(rate),
        field("relay_events").map_or_else(|| "–".to_owned(), |n| format!("{n:.0}")),
        if rate.is_some_and(|x| x >= 50_000.0) { "met" } else { "**missed**" },
        ms(field("p50_ns")),
        ms(p99),
        field("samples").map_or_else(|| "–".to_owned(), |n| format!("{n:.0}")),
        if p99.is_some_and(|p| p < 20e6) { "met" } else { "**missed**" },
    );
}

/// One panel of grouped bars on a log scale.
struct Panel<'a> {
    title: &'a str,
    group: &'a str,
    rows: &'a [(&'a str, &'a str)],
    sizes: &'a [&'a str],
}

const COLORS: &[&str] = &[
    "#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860",
];

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace(['`', '*'], "")
}

fn chart(r: &Results) -> String {
    let panels = [
        Panel {
            title: "Sync dispatch: ns per event (log scale), by number of handlers",
            group: "sync_dispatch",
            rows: SYNC,
            sizes: SYNC_SIZES,
        },
        Panel {
            title: "Async dispatch: ns per event (log scale), by number of handlers",
            group: "async_dispatch",
            rows: ASYNC,
            sizes: ASYNC_SIZES,
        },
    ];
    let (width, panel_h) = (960.0, 330.0);
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{}" font-family="sans-serif" font-size="12">"#,
        panel_h * panels.len() as f64
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    for (p, panel) in panels.iter().enumerate() {
        let top = p as f64 * panel_h;
        let (left, right, plot_top, plot_h) = (60.0, 330.0, top + 40.0, panel_h - 90.0);
        let plot_w = width - left - right;
        let values: Vec<f64> = panel
            .rows
            .iter()
            .flat_map(|(id, _)| {
                panel
                    .sizes
                    .iter()
                    .filter_map(|s| get(r, panel.group, id, s))
            })
            .collect();
        if values.is_empty() {
            continue;
        }
        let lo = values.iter().copied().fold(f64::MAX, f64::min).max(0.1);
        let hi = values.iter().copied().fold(0.0, f64::max);
        let (lo_exp, hi_exp) = (
            lo.log10().floor(),
            hi.log10().ceil().max(lo.log10().floor() + 1.0),
        );
        let y = |ns: f64| plot_top + plot_h * (1.0 - (ns.log10() - lo_exp) / (hi_exp - lo_exp));
        let _ = writeln!(
            svg,
            r#"<text x="{left}" y="{}" font-size="14" font-weight="bold">{}</text>"#,
            top + 22.0,
            escape(panel.title)
        );
        let mut e = lo_exp;
        while e <= hi_exp {
            let yy = y(10f64.powf(e));
            let _ = writeln!(
                svg,
                r##"<line x1="{left}" x2="{}" y1="{yy:.1}" y2="{yy:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
                left + plot_w,
                left - 6.0,
                yy + 4.0,
                fmt_ns(Some(10f64.powf(e)))
            );
            e += 1.0;
        }
        let slot = plot_w / panel.sizes.len() as f64;
        let bar = (slot * 0.8) / panel.rows.len() as f64;
        for (si, size) in panel.sizes.iter().enumerate() {
            let x0 = left + slot * si as f64 + slot * 0.1;
            for (ri, (id, _)) in panel.rows.iter().enumerate() {
                if let Some(ns) = get(r, panel.group, id, size) {
                    let yy = y(ns.max(10f64.powf(lo_exp)));
                    let _ = writeln!(
                        svg,
                        r#"<rect x="{:.1}" y="{yy:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{id} @{size}: {} ns</title></rect>"#,
                        x0 + bar * ri as f64,
                        bar * 0.9,
                        plot_top + plot_h - yy,
                        COLORS[ri % COLORS.len()],
                        fmt_ns(Some(ns))
                    );
                }
            }
            let _ = writeln!(
                svg,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                x0 + slot * 0.4,
                plot_top + plot_h + 18.0,
                handlers(size)
            );
        }
        let _ = writeln!(
            svg,
            r##"<line x1="{left}" x2="{left}" y1="{plot_top}" y2="{}" stroke="#333"/>"##,
            plot_top + plot_h
        );
        for (ri, (_, label)) in panel.rows.iter().enumerate() {
            let ly = plot_top + 10.0 + 22.0 * ri as f64;
            let lx = left + plot_w + 20.0;
            let _ = writeln!(
                svg,
                r#"<rect x="{lx}" y="{}" width="12" height="12" fill="{}"/><text x="{}" y="{ly}">{}</text>"#,
                ly - 10.0,
                COLORS[ri % COLORS.len()],
                lx + 18.0,
                escape(label)
            );
        }
    }
    svg.push_str("</svg>\n");
    svg
}

/// `1 handler`, `64 handlers`: a column or goal label in the right number.
fn handlers(size: &str) -> String {
    if size == "1" {
        "1 handler".to_owned()
    } else {
        format!("{size} handlers")
    }
}
