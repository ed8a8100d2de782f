use std::fmt;

use events::{event_handler, Bus, DomainEvent};

#[derive(DomainEvent)]
struct PaymentFailed;

#[derive(Debug)]
struct MailError;

impl fmt::Display for MailError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the mail server is down")
    }
}

impl std::error::Error for MailError {}

#[event_handler]
fn mail_customer(_e: &PaymentFailed) -> Result<(), MailError> {
    Err(MailError)
}

#[event_handler]
fn log_it(_e: &PaymentFailed) -> Result<(), String> {
    Ok(())
}

#[event_handler]
fn boxed(_e: &PaymentFailed) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    Ok(())
}

#[event_handler]
fn boxed_alias(_e: &PaymentFailed) -> Result<(), events::BoxError> {
    Ok(())
}

fn main() {
    let bus = Bus::builder().build().unwrap();
    let report = bus.publish(&PaymentFailed).unwrap();
    assert_eq!(report.ran(), 4);
    assert!(!report.is_ok());
}
