//! The queries of the cqrs-es demo: the ledger view, one per account, kept live by the durable
//! handler `bank.ledger` that `#[derive(View)]` registers (a worker delivers it), and the
//! logging query, an inline handler that prints each event as it is published.

use events::sourcing::{AggregateView, View};
use events::{event_handler, Meta};
use serde::{Deserialize, Serialize};

use crate::domain::BankAccountEvent;

#[derive(View, Serialize, Deserialize, Default, Clone, Debug, PartialEq)]
#[view(name = "bank_account", durable = "bank.ledger")]
pub struct BankAccountView {
    pub account_id: Option<String>,
    pub balance: f64,
    pub written_checks: Vec<String>,
    pub ledger: Vec<(String, f64)>,
}

impl AggregateView for BankAccountView {
    type Event = BankAccountEvent;

    fn update(&mut self, event: &BankAccountEvent) {
        use BankAccountEvent::*;
        let (description, amount, balance) = match event {
            AccountOpened { account_id } => return self.account_id = Some(account_id.clone()),
            CustomerDepositedMoney { amount, balance } => ("deposit", *amount, *balance),
            CustomerWithdrewCash { amount, balance } => ("atm withdrawal", -amount, *balance),
            CustomerWroteCheck {
                check_number,
                amount,
                balance,
            } => {
                self.written_checks.push(check_number.clone());
                (check_number.as_str(), -amount, *balance)
            }
        };
        self.ledger.push((description.into(), amount));
        self.balance = balance;
    }
}

/// The demo's simplest query: prints each event with its account and sequence.
#[event_handler(name = "bank.log")]
fn log_event(event: &BankAccountEvent, meta: Meta) {
    let (account, sequence) = (meta.aggregate_id().unwrap_or("?"), meta.sequence());
    println!("{account}-{}\n{event:#?}", sequence.unwrap_or_default());
}
