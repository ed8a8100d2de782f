//! The no-code engine's automation as a process manager: a form submitted creates a record,
//! which triggers an automation, whose actions run one after another, each reporting
//! `ActionExecuted`; an action that has not reported within its deadline marks the run failed
//! and notifies the owner. Durable end to end on SQLite: the run's state, the commands it sends
//! and its deadline timer commit with its checkpoint, and a worker delivers it all.
//!
//! `cargo run -p record-flows --bin automation` runs two submissions: one whose actions all
//! report, and one whose second action is stuck (its deadline fails the run).

use std::time::Duration;

use events::process::Reaction;
use events::sourcing::{EventSourced, Handle};
use events::store::{connect, EventMetadata};
use events::worker::Worker;
use events::{command_handler, process_manager, Bus, Command, DomainEvent};
use serde::{Deserialize, Serialize};

/// How long an action may take to report before its run fails.
const DEADLINE: Duration = Duration::from_millis(300);

// ---- events: every one carries the run it belongs to -----------------------------------------

#[derive(DomainEvent, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "forms.submitted", aggregate = "Form")]
pub struct FormSubmitted {
    #[event(aggregate_id)]
    pub form: String,
    pub run: String,
    pub email: String,
}

#[derive(DomainEvent, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "tables.record_created", aggregate = "Record")]
pub struct RecordCreated {
    #[event(aggregate_id)]
    pub record: String,
    pub run: String,
    pub email: String,
}

#[derive(DomainEvent, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "automations.triggered", aggregate = "Run")]
pub struct AutomationTriggered {
    #[event(aggregate_id)]
    pub run: String,
    pub actions: Vec<String>,
}

#[derive(DomainEvent, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "automations.action_executed", aggregate = "Run")]
pub struct ActionExecuted {
    #[event(aggregate_id)]
    pub run: String,
    pub index: usize,
    pub action: String,
}

/// The deadline of action `index`: fired by a durable timer unless the action reported. Its
/// own stream (`RunDeadline`), not the run's: the run aggregate does not apply it.
#[derive(DomainEvent, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "automations.action_overdue", aggregate = "RunDeadline")]
pub struct ActionOverdue {
    #[event(aggregate_id)]
    pub run: String,
    pub index: usize,
}

#[derive(DomainEvent, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "automations.run_completed", aggregate = "Run")]
pub struct RunCompleted {
    #[event(aggregate_id)]
    pub run: String,
}

#[derive(DomainEvent, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "automations.run_failed", aggregate = "Run")]
pub struct RunFailed {
    #[event(aggregate_id)]
    pub run: String,
    pub reason: String,
}

events::event_set! {
    #[derive(Debug, Clone, PartialEq)]
    pub enum RecordEvent { Created(RecordCreated) }
}

events::event_set! {
    #[derive(Debug, Clone, PartialEq)]
    pub enum RunEvent {
        Triggered(AutomationTriggered),
        Executed(ActionExecuted),
        Completed(RunCompleted),
        Failed(RunFailed),
    }
}

// ---- aggregates and their commands -----------------------------------------------------------

#[derive(Default)]
pub struct Record;

impl EventSourced for Record {
    const TYPE: &'static str = "Record";
    type Event = RecordEvent;
    fn apply(&mut self, _: &RecordEvent) {}
}

#[derive(Command, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[command(aggregate = Record)]
pub struct CreateRecord {
    #[command(id)]
    pub record: String,
    pub run: String,
    pub email: String,
}

impl Handle<CreateRecord> for Record {
    type Error = String;
    type Services = ();
    async fn handle(&self, c: CreateRecord, _: &()) -> Result<Vec<RecordEvent>, String> {
        println!("record {} created from the form", c.record);
        Ok(vec![RecordEvent::Created(RecordCreated {
            record: c.record,
            run: c.run,
            email: c.email,
        })])
    }
}

/// One run of the automation: its actions run in order.
#[derive(Default)]
pub struct Run {
    failed: bool,
}

impl EventSourced for Run {
    const TYPE: &'static str = "Run";
    type Event = RunEvent;
    fn apply(&mut self, e: &RunEvent) {
        if let RunEvent::Failed(_) = e {
            self.failed = true;
        }
    }
}

#[derive(Command, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[command(aggregate = Run)]
pub struct TriggerAutomation {
    #[command(id)]
    pub run: String,
    pub email: String,
}

impl Handle<TriggerAutomation> for Run {
    type Error = String;
    type Services = ();
    async fn handle(&self, c: TriggerAutomation, _: &()) -> Result<Vec<RunEvent>, String> {
        // A lead from a test address gets an action that never reports.
        let mut actions = vec!["send-welcome-email".to_owned(), "add-to-crm".to_owned()];
        if c.email.ends_with("@stuck.test") {
            actions[1] = "call-slow-crm".to_owned();
        }
        actions.push("notify-sales".to_owned());
        Ok(vec![RunEvent::Triggered(AutomationTriggered {
            run: c.run,
            actions,
        })])
    }
}

#[derive(Command, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[command(aggregate = Run)]
pub struct RunAction {
    #[command(id)]
    pub run: String,
    pub index: usize,
    pub action: String,
}

impl Handle<RunAction> for Run {
    type Error = String;
    type Services = ();
    async fn handle(&self, c: RunAction, _: &()) -> Result<Vec<RunEvent>, String> {
        if c.action == "call-slow-crm" {
            println!(
                "run {}: action {} `{}` started; it never reports",
                c.run, c.index, c.action
            );
            return Ok(Vec::new());
        }
        println!("run {}: action {} `{}` executed", c.run, c.index, c.action);
        Ok(vec![RunEvent::Executed(ActionExecuted {
            run: c.run,
            index: c.index,
            action: c.action,
        })])
    }
}

#[derive(Command, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[command(aggregate = Run)]
pub struct CompleteRun {
    #[command(id)]
    pub run: String,
}

impl Handle<CompleteRun> for Run {
    type Error = String;
    type Services = ();
    async fn handle(&self, c: CompleteRun, _: &()) -> Result<Vec<RunEvent>, String> {
        Ok(vec![RunEvent::Completed(RunCompleted { run: c.run })])
    }
}

#[derive(Command, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[command(aggregate = Run)]
pub struct FailRun {
    #[command(id)]
    pub run: String,
    pub reason: String,
}

impl Handle<FailRun> for Run {
    type Error = String;
    type Services = ();
    async fn handle(&self, c: FailRun, _: &()) -> Result<Vec<RunEvent>, String> {
        Ok(vec![RunEvent::Failed(RunFailed {
            run: c.run,
            reason: c.reason,
        })])
    }
}

/// Tells the automation's owner that a run failed.
#[derive(Command, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct NotifyOwner {
    pub run: String,
    pub message: String,
}

#[command_handler]
fn notify_owner(c: NotifyOwner) -> Result<(), String> {
    println!("notify owner: run {}: {}", c.run, c.message);
    Ok(())
}

// ---- the process manager ----------------------------------------------------------------------

/// One submission's way through the engine.
#[derive(Default, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct AutomationFlow {
    pub email: String,
    pub actions: Vec<String>,
    /// The action running now (reported ones are before it).
    pub current: usize,
    pub failed: bool,
}

#[process_manager(
    name = "flows.automation",
    association = run,
    sends(CreateRecord, TriggerAutomation, RunAction, CompleteRun, FailRun, NotifyOwner)
)]
impl AutomationFlow {
    #[start]
    fn submitted(&mut self, e: &FormSubmitted, out: &mut Reaction<Self>) {
        self.email = e.email.clone();
        out.send(CreateRecord {
            record: format!("rec-{}", e.run),
            run: e.run.clone(),
            email: e.email.clone(),
        });
    }

    fn created(&mut self, e: &RecordCreated, out: &mut Reaction<Self>) {
        out.send(TriggerAutomation {
            run: e.run.clone(),
            email: e.email.clone(),
        });
    }

    fn triggered(&mut self, e: &AutomationTriggered, out: &mut Reaction<Self>) {
        self.actions = e.actions.clone();
        self.current = 0;
        self.start_action(&e.run, out);
    }

    fn executed(&mut self, e: &ActionExecuted, out: &mut Reaction<Self>) {
        if e.index != self.current || self.failed {
            return;
        }
        self.current += 1;
        if self.current < self.actions.len() {
            self.start_action(&e.run, out);
        } else {
            out.cancel("action");
            out.send(CompleteRun { run: e.run.clone() });
        }
    }

    fn overdue(&mut self, e: &ActionOverdue, out: &mut Reaction<Self>) {
        if e.index != self.current || self.failed {
            return;
        }
        self.failed = true;
        let action = &self.actions[e.index];
        let reason = format!(
            "action {} `{action}` did not report within {DEADLINE:?}",
            e.index
        );
        out.send(FailRun {
            run: e.run.clone(),
            reason: reason.clone(),
        });
        out.send(NotifyOwner {
            run: e.run.clone(),
            message: reason,
        });
    }

    #[complete]
    fn completed(&mut self, e: &RunCompleted) {
        println!("run {} completed: {} actions", e.run, self.actions.len());
    }

    #[complete]
    fn failed(&mut self, e: &RunFailed) {
        println!("run {} failed: {}", e.run, e.reason);
    }
}

impl AutomationFlow {
    /// Runs the current action, with its deadline (re-scheduled: one per run at a time).
    fn start_action(&self, run: &str, out: &mut Reaction<Self>) {
        out.send(RunAction {
            run: run.to_owned(),
            index: self.current,
            action: self.actions[self.current].clone(),
        });
        let overdue = ActionOverdue {
            run: run.to_owned(),
            index: self.current,
        };
        out.schedule("action", DEADLINE, &overdue);
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), events::BoxError> {
    let store = connect("sqlite::memory:").await?;
    let bus = Bus::builder().event_store(store.clone()).build()?;
    for (run, email) in [("1", "ada@example.com"), ("2", "bob@stuck.test")] {
        let submitted = FormSubmitted {
            form: "contact".into(),
            run: run.into(),
            email: email.into(),
        };
        store
            .append_event(&submitted, EventMetadata::default())
            .await?;
    }
    let summary = Worker::new(&bus, &store)
        .poll_interval(Duration::from_millis(20))
        .max_runtime(DEADLINE * 4)
        .run()
        .await?;
    println!("worker: {summary}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use events::testing::process;

    fn triggered(run: &str) -> AutomationTriggered {
        AutomationTriggered {
            run: run.into(),
            actions: vec!["a".into(), "b".into()],
        }
    }

    fn submitted(run: &str) -> FormSubmitted {
        FormSubmitted {
            form: "contact".into(),
            run: run.into(),
            email: "ada@example.com".into(),
        }
    }

    #[test]
    fn a_submitted_form_creates_its_record() {
        process::<AutomationFlow>()
            .when(submitted("7"))
            .then_sends([CreateRecord {
                record: "rec-7".into(),
                run: "7".into(),
                email: "ada@example.com".into(),
            }]);
    }

    #[test]
    fn actions_run_in_order_each_with_its_deadline() {
        process::<AutomationFlow>()
            .given(submitted("7"))
            .when(triggered("7"))
            .then_sends([RunAction {
                run: "7".into(),
                index: 0,
                action: "a".into(),
            }])
            .then_schedules(
                "action",
                ActionOverdue {
                    run: "7".into(),
                    index: 0,
                },
            );
        process::<AutomationFlow>()
            .given(submitted("7"))
            .given(triggered("7"))
            .when(ActionExecuted {
                run: "7".into(),
                index: 0,
                action: "a".into(),
            })
            .then_sends([RunAction {
                run: "7".into(),
                index: 1,
                action: "b".into(),
            }])
            .then_schedules(
                "action",
                ActionOverdue {
                    run: "7".into(),
                    index: 1,
                },
            );
    }

    #[test]
    fn the_last_report_completes_the_run_and_cancels_the_deadline() {
        let executed = |index: usize, action: &str| ActionExecuted {
            run: "7".into(),
            index,
            action: action.into(),
        };
        process::<AutomationFlow>()
            .given(submitted("7"))
            .given(triggered("7"))
            .given(executed(0, "a"))
            .when(executed(1, "b"))
            .then_sends([CompleteRun { run: "7".into() }])
            .then_cancels("action");
    }

    #[test]
    fn an_action_past_its_deadline_fails_the_run_and_notifies() {
        let reason = "action 0 `a` did not report within 300ms".to_owned();
        let then = process::<AutomationFlow>()
            .given(submitted("7"))
            .given(triggered("7"))
            .when_clock_advances(DEADLINE);
        let sent: Vec<_> = then
            .sent()
            .iter()
            .map(|c| (c.name, c.payload.clone()))
            .collect();
        assert_eq!(
            sent,
            [
                ("FailRun", serde_json::json!({"run": "7", "reason": reason})),
                (
                    "NotifyOwner",
                    serde_json::json!({"run": "7", "message": reason})
                ),
            ]
        );
        assert!(then.state().unwrap().failed);
    }

    #[test]
    fn a_report_in_time_leaves_no_deadline_to_fire() {
        let run = process::<AutomationFlow>()
            .given(submitted("7"))
            .given(triggered("7"))
            .given(ActionExecuted {
                run: "7".into(),
                index: 0,
                action: "a".into(),
            })
            .when_clock_advances(DEADLINE);
        // The deadline of action 0 was replaced by that of action 1, which fires.
        assert_eq!(run.sent().len(), 2);
        assert!(run.state().unwrap().failed);
    }

    #[test]
    fn a_completed_run_ignores_late_events() {
        process::<AutomationFlow>()
            .given(submitted("7"))
            .given(RunCompleted { run: "7".into() })
            .when(ActionOverdue {
                run: "7".into(),
                index: 0,
            })
            .then_skipped();
    }
}
