//! Traces: a span per handler call, failures logged inside it. Its own test binary with one
//! test and a global subscriber: a thread-local subscriber races with other tests' callsites
//! in tracing's interest cache.

use events::Bus;

#[path = "support/forms.rs"]
mod forms;

use forms::FormSubmitted;

#[path = "support/log_buffer.rs"]
mod log_buffer;

#[test]
fn each_handler_call_runs_in_a_span_and_failures_are_logged() {
    let bus = Bus::builder().build().unwrap();
    let buffer = log_buffer::Buffer::install(tracing::Level::DEBUG);
    let _ = bus.publish(&FormSubmitted { form: 4 });
    let log = buffer.text();
    let line = log
        .lines()
        .find(|l| l.contains("handler failed"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(line.contains(" WARN "), "{line}");
    assert!(
        line.contains(
            "event_handler{event=\"forms.form_submitted\" handler=\"forms.validate\" event_id="
        ),
        "{line}"
    );
    assert!(line.ends_with("handler failed: form 4 has no fields event=\"forms.form_submitted\" handler=\"forms.validate\""), "{line}");
}
