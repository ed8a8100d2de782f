//! Traces: a span per handler call, failures logged inside it. Its own test binary with one
//! test and a global subscriber: a thread-local subscriber races with other tests' callsites
//! in tracing's interest cache.

use std::io::Write;
use std::sync::{Arc, Mutex};

use events::Bus;

#[path = "support/forms.rs"]
mod forms;

use forms::FormSubmitted;

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn each_handler_call_runs_in_a_span_and_failures_are_logged() {
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let bus = Bus::builder().build().unwrap();
    tracing::subscriber::set_global_default(subscriber)
        .expect("the only subscriber of this test binary");
    let _ = bus.publish(&FormSubmitted { form: 4 });
    let log = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
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
