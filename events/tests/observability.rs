//! Metrics: counters and the duration histogram (traces are in `tracing_spans.rs`).

use events::Bus;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use metrics_util::MetricKind;

#[path = "support/forms.rs"]
mod forms;

use forms::FormSubmitted;

#[test]
fn dispatches_failures_and_durations_are_recorded() {
    let recorder = DebuggingRecorder::new();
    // Handles are taken when the bus is built: install a recorder before building it.
    let bus = metrics::with_local_recorder(&recorder, || {
        Bus::builder().record_durations(true).build().unwrap()
    });
    for form in 0..3 {
        let _ = bus.publish(&FormSubmitted { form }).unwrap();
    }

    let metrics = Metrics::of(&recorder);
    let find = |kind, name| metrics.find(kind, name);
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

/// Without timing, `publish` of an event whose handlers take the event alone walks them inline
/// and counts nothing there: a bus built under a recorder must still count every dispatch and
/// failure.
#[test]
fn a_recorder_counts_dispatches_and_failures_without_timing() {
    let recorder = DebuggingRecorder::new();
    let bus = metrics::with_local_recorder(&recorder, || Bus::builder().build().unwrap());
    for form in 0..3 {
        let report = bus.publish(&FormSubmitted { form }).unwrap();
        assert_eq!((report.ran(), report.failures().len()), (2, 1), "{report}");
    }
    let metrics = Metrics::of(&recorder);
    for (name, count) in [
        ("events_dispatched_total{event=forms.form_submitted}", 3),
        ("events_handler_failures_total{handler=forms.validate}", 3),
        ("events_handler_failures_total{handler=forms.store}", 0),
    ] {
        assert_eq!(
            metrics.find(MetricKind::Counter, name),
            &DebugValue::Counter(count),
            "{name}"
        );
    }
}

/// A snapshot of a debugging recorder, each metric as `name{label=value,..}`.
struct Metrics(Vec<(MetricKind, String, DebugValue)>);

impl Metrics {
    fn of(recorder: &DebuggingRecorder) -> Self {
        let snapshot = recorder.snapshotter().snapshot().into_vec();
        Self(
            snapshot
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
                .collect(),
        )
    }

    fn find(&self, kind: MetricKind, name: &str) -> &DebugValue {
        self.0
            .iter()
            .find(|(k, n, _)| *k == kind && n == name)
            .map(|(_, _, v)| v)
            .unwrap_or_else(|| panic!("no {name} in {:?}", self.0))
    }
}
