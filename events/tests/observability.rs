//! Metrics and traces: counters, duration histogram, a span per handler call.

use std::io::Write;
use std::sync::{Arc, Mutex};

use events::{event_handler, Bus, DomainEvent};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use metrics_util::MetricKind;

#[derive(DomainEvent)]
#[event(name = "forms.form_submitted")]
struct FormSubmitted {
    #[event(aggregate_id)]
    form: u32,
}

#[event_handler(name = "forms.store")]
fn store(_: &FormSubmitted) {}

#[event_handler(name = "forms.validate")]
fn validate(e: &FormSubmitted) -> Result<(), String> {
    Err(format!("form {} has no fields", e.form))
}

#[test]
fn dispatches_failures_and_durations_are_recorded() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    // Handles are taken when the bus is built: install a recorder before building it.
    let bus = metrics::with_local_recorder(&recorder, || {
        Bus::builder().record_durations(true).build().unwrap()
    });
    for form in 0..3 {
        let _ = bus.publish(&FormSubmitted { form });
    }

    let metrics: Vec<_> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let (kind, key) = key.into_parts();
            let labels: Vec<_> = key
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            (
                kind,
                format!("{}{{{}}}", key.name(), labels.join(",")),
                value,
            )
        })
        .collect();
    let find = |kind: MetricKind, name: &str| {
        metrics
            .iter()
            .find(|(k, n, _)| *k == kind && n == name)
            .map(|(_, _, v)| v)
            .unwrap_or_else(|| panic!("no {name} in {metrics:?}"))
    };
    assert_eq!(
        find(
            MetricKind::Counter,
            "events_dispatched_total{event=forms.form_submitted}"
        ),
        &DebugValue::Counter(3)
    );
    assert_eq!(
        find(
            MetricKind::Counter,
            "events_handler_failures_total{handler=forms.validate}"
        ),
        &DebugValue::Counter(3)
    );
    assert_eq!(
        find(
            MetricKind::Counter,
            "events_handler_failures_total{handler=forms.store}"
        ),
        &DebugValue::Counter(0)
    );
    match find(
        MetricKind::Histogram,
        "events_handler_duration_seconds{handler=forms.store}",
    ) {
        DebugValue::Histogram(samples) => assert_eq!(samples.len(), 3),
        other => panic!("not a histogram: {other:?}"),
    }
}

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
    tracing::subscriber::with_default(subscriber, || {
        let _ = bus.publish(&FormSubmitted { form: 4 });
    });
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
