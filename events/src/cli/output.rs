//! Output helpers shared by the commands: aligned tables of one-line cells, times and ages
//! told the same way everywhere, and JSON.

use std::fmt::Write as _;
use std::io::Write;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::CliError;

/// The longest free text (an error, a payload) a table cell shows; the rest is cut with an
/// ellipsis (`--json` and the detail views have the full text).
pub(super) const MAX_TEXT: usize = 60;

/// A table: a header and rows of cells, columns separated by two spaces, every row on one
/// line. Cells must be one line already ([`one_line`]).
/// `1 dead letter`, `2 dead letters`: a count with its noun in the right number.
pub(super) fn count(n: impl Into<u64>, noun: &str) -> String {
    let n = n.into();
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

pub(super) fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::new();
        for (i, (cell, width)) in cells.zip(&widths).enumerate() {
            if i > 0 {
                text.push_str("  ");
            }
            let _ = write!(text, "{cell:<width$}");
        }
        let _ = writeln!(out, "{}", text.trim_end());
    };
    line(&mut header.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

/// `text` on one line for a table cell: line breaks and other control characters become
/// spaces, runs of spaces one, and anything past `max` characters is cut with `…`.
pub(super) fn one_line(text: &str, max: usize) -> String {
    let flat = text
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|word| !word.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    if flat.chars().count() <= max {
        return flat;
    }
    let mut cut: String = flat.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// A duration told short, with its two largest units and no spaces (`45s`, `3m12s`, `2h5m`,
/// `4d3h`), so table cells stay one word.
pub(super) fn short(d: Duration) -> String {
    let s = d.as_secs();
    let (days, hours, minutes, seconds) = (s / 86_400, s / 3_600 % 24, s / 60 % 60, s % 60);
    match () {
        () if days > 0 => format!("{days}d{hours}h"),
        () if hours > 0 => format!("{hours}h{minutes}m"),
        () if minutes > 0 => format!("{minutes}m{seconds}s"),
        () => format!("{seconds}s"),
    }
}

/// How long ago `t` was (`0s` for a time in the future: clocks of two machines differ).
pub(super) fn age(t: SystemTime, now: SystemTime) -> Duration {
    now.duration_since(t).unwrap_or_default()
}

/// `t` relative to now: `in 12s`, `due` once passed.
pub(super) fn due_in(t: SystemTime, now: SystemTime) -> String {
    match t.duration_since(now) {
        Ok(left) if left >= Duration::from_secs(1) => format!("in {}", short(left)),
        _ => "due".to_owned(),
    }
}

/// A time as RFC 3339 in UTC with milliseconds: the form of every time in `--json`.
pub(super) fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// Writes `value` as pretty JSON and a newline.
pub(super) fn json(out: &mut dyn Write, value: &impl Serialize) -> Result<(), CliError> {
    serde_json::to_writer_pretty(&mut *out, value).map_err(std::io::Error::from)?;
    writeln!(out)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_one_line_and_cut_with_an_ellipsis() {
        assert_eq!(one_line("a\n  b\r\n\tc", 10), "a b c");
        assert_eq!(one_line("abcdefghijkl", 6), "abcde…");
        assert_eq!(one_line("abcdef", 6), "abcdef");
    }

    #[test]
    fn durations_are_short_single_words() {
        assert_eq!(short(Duration::from_millis(900)), "0s");
        assert_eq!(short(Duration::from_secs(45)), "45s");
        assert_eq!(short(Duration::from_secs(192)), "3m12s");
        assert_eq!(short(Duration::from_secs(7_500)), "2h5m");
        assert_eq!(short(Duration::from_secs(4 * 86_400 + 3 * 3_600)), "4d3h");
    }

    #[test]
    fn columns_line_up() {
        let t = table(
            &["A", "BB"],
            &[
                vec!["xyz".into(), "1".into()],
                vec!["é".into(), "22".into()],
            ],
        );
        assert_eq!(t, "A    BB\nxyz  1\né    22\n");
    }
}
