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
