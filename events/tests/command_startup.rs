//! Commands whose handlers live in other crates (`remote_handler`) are checked when the bus is
//! built: none, or more than one, is a start-up error that says what to do.

use events::{command_handler, Bus, Command, Problem};

/// Its handler would live in a crate this binary does not link.
#[derive(Command)]
#[command(name = "billing.charge", remote_handler)]
struct Charge;

/// Two crates both handle it.
#[derive(Command)]
#[command(name = "billing.refund", remote_handler)]
struct Refund;

#[command_handler(remote, name = "billing_a::refund")]
fn refund_here(_: Refund) -> Result<(), events::BoxError> {
    Ok(())
}

mod other_crate {
    #[events::command_handler(remote, name = "billing_b::refund")]
    fn refund_there(_: super::Refund) -> Result<(), events::BoxError> {
        Ok(())
    }
}

#[tokio::test]
async fn zero_or_two_handlers_fail_at_start_up() {
    let err = Bus::builder().build().unwrap_err();
    let problems = err.problems();
    assert!(problems.contains(&Problem::MissingCommandHandler {
        command: "billing.charge".into(),
        type_name: "command_startup::Charge".into(),
    }));
    let duplicate = problems
        .iter()
        .find_map(|p| match p {
            Problem::DuplicateCommandHandler { command, handlers } => Some((command, handlers)),
            _ => None,
        })
        .unwrap();
    assert_eq!(duplicate.0, "billing.refund");
    assert!(duplicate.1[0].starts_with("`billing_a::refund` at events/tests/command_startup.rs:"));
    assert!(duplicate.1[1].starts_with("`billing_b::refund` at events/tests/command_startup.rs:"));
    let text = err.to_string();
    assert!(text.contains("command `billing.charge` (command_startup::Charge) has no handler; write a `#[command_handler]` for it, or link the crate that holds it with `events::link!`"), "{text}");
    assert!(
        text.contains("command `billing.refund` has 2 handlers"),
        "{text}"
    );
}
