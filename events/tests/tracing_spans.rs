//! Traces: a span per publish and per handler call, failures logged inside them. Its own test binary with one
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
    // Inside the handler's `process` span, inside the event's `publish` span, with
    // OpenTelemetry's messaging field names (`trace_chain.rs` checks the parent chain).
    for span in [
        "publish{otel.kind=\"producer\" messaging.system=\"events\" messaging.operation=\"publish\" messaging.destination.name=\"forms.form_submitted\" messaging.message.id=",
        "}:process{otel.kind=\"consumer\" messaging.system=\"events\" messaging.operation=\"process\" messaging.destination.name=\"forms.form_submitted\" events.handler=\"forms.validate\" messaging.message.id=",
    ] {
        assert!(line.contains(span), "{span} in {line}");
    }
    assert!(line.ends_with("handler failed: form 4 has no fields event=\"forms.form_submitted\" handler=\"forms.validate\""), "{line}");
}
