//! The ledger view of the cqrs-es demo, kept per account by a `ViewRepository`, live by a
//! durable handler (a worker delivers it).

use events::sourcing::{AggregateView, View, ViewRepository};
use events::store::StoreError;
use events::{event_handler, Meta, Res};
use serde::{Deserialize, Serialize};

use crate::domain::BankAccountEvent;

#[derive(Serialize, Deserialize, Default, Clone, Debug, PartialEq)]
pub struct BankAccountView {
    pub account_id: Option<String>,
    pub balance: f64,
    pub written_checks: Vec<String>,
    pub ledger: Vec<(String, f64)>,
}

impl View for BankAccountView {
    const NAME: &'static str = "bank_account";
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

/// Each event of an account, once, into its ledger (a redelivered one is skipped by sequence).
#[event_handler(durable, name = "bank.ledger")]
fn keep_ledger(
    event: &BankAccountEvent,
    meta: Meta,
    ledgers: Res<ViewRepository<BankAccountView>>,
) -> Result<(), StoreError> {
    ledgers.update_with(event, &meta).map(drop)
}
