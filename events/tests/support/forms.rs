//! The event and handlers the observability tests watch: one handler that succeeds, one that
//! fails.

use events::{event_handler, DomainEvent};

#[derive(DomainEvent)]
#[event(name = "forms.form_submitted")]
pub struct FormSubmitted {
    #[event(aggregate_id)]
    pub form: u32,
}

#[event_handler(name = "forms.store")]
fn store(_: &FormSubmitted) {}

#[event_handler(name = "forms.validate")]
fn validate(e: &FormSubmitted) -> Result<(), String> {
    Err(format!("form {} has no fields", e.form))
}
