//! HTML building blocks: escaping (every text from the store goes through [`esc`]), the page
//! frame, tables, and the small inline SVG chart.

use std::fmt::Write as _;

use serde_json::Value;

use super::auth::Access;

/// `text` safe inside an element or a quoted attribute.
pub(super) fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A JSON value as escaped text: strings as they are, `null` as `-`.
pub(super) fn val(v: &Value) -> String {
    match v {
        Value::Null => "-".to_owned(),
        Value::String(s) => esc(s),
        other => esc(&other.to_string()),
    }
}

/// A JSON value pretty-printed in a `<pre>`, escaped.
pub(super) fn pre(v: &Value) -> String {
    let text = serde_json::to_string_pretty(v).unwrap_or_default();
    format!("<pre class=\"payload\">{}</pre>", esc(&text))
}

/// A query-string value, percent-encoded.
pub(super) fn query_value(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The pages of the navigation bar: (path, title).
const NAV: &[(&str, &str)] = &[
    ("/", "Overview"),
    ("/dead-letters", "Dead letters"),
    ("/log", "Event log"),
    ("/flow", "Event flow"),
    ("/timers", "Timers"),
];

/// A whole page: head, navigation (with `active` marked), the access badge, and `body`.
pub(super) fn page(base: &str, title: &str, active: &str, access: &Access, body: &str) -> String {
    let mut nav = String::new();
    for (path, name) in NAV {
        let class = if *path == active {
            " class=\"active\""
        } else {
            ""
        };
        let _ = write!(nav, "<a href=\"{base}{path}\"{class}>{name}</a>");
    }
    let badge = match access {
        Access::ReadOnly => "<span class=\"badge\">read-only</span>".to_owned(),
        Access::SignIn => {
            format!("<a class=\"badge\" href=\"{base}/sign-in\">sign in to retry and drop</a>")
        }
        Access::Act { .. } => "<span class=\"badge act\">actions enabled</span>".to_owned(),
    };
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · events</title>\
         <link rel=\"stylesheet\" href=\"{base}/assets/style.css\">\
         <script src=\"{base}/assets/app.js\" defer></script></head>\
         <body><header><span class=\"brand\">events</span><nav>{nav}</nav>{badge}</header>\
         <main><h1>{title}</h1>{body}</main></body></html>\n",
        title = esc(title),
    )
}

/// A table of already-escaped cells.
pub(super) fn table(class: &str, header: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = format!("<table class=\"{class}\"><thead><tr>");
    for h in header {
        let _ = write!(out, "<th>{h}</th>");
    }
    out.push_str("</tr></thead><tbody>");
    for row in rows {
        out.push_str("<tr>");
        for cell in row {
            let _ = write!(out, "<td>{cell}</td>");
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
    out
}

/// A line chart of `values` (oldest first), 160 by 32 pixels, scaled to its maximum.
pub(super) fn sparkline(values: &[f64]) -> String {
    const W: f64 = 160.0;
    const H: f64 = 32.0;
    if values.len() < 2 {
        return "<span class=\"muted\">collecting…</span>".to_owned();
    }
    let max = values.iter().copied().fold(0.0_f64, f64::max).max(1.0);
    let step = W / (values.len() - 1) as f64;
    let points: Vec<String> = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            format!(
                "{:.1},{:.1}",
                i as f64 * step,
                H - 2.0 - v / max * (H - 4.0)
            )
        })
        .collect();
    format!(
        "<svg class=\"spark\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" role=\"img\">\
         <title>events/s over the last minutes, peak {max:.0}</title>\
         <polyline fill=\"none\" stroke=\"#2563eb\" stroke-width=\"1.5\" points=\"{}\"/></svg>",
        points.join(" ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_store_text_is_shown_not_run() {
        assert_eq!(
            esc("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
        assert_eq!(val(&serde_json::json!("<b>")), "&lt;b&gt;");
        assert!(pre(&serde_json::json!({"note": "<img src=x>"})).contains("&lt;img src=x&gt;"));
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(query_value("Customer/4 2&x"), "Customer%2F4%202%26x");
    }
}
