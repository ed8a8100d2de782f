//! The bank account of the cqrs-es demo: its events, commands, services and rules.

use async_trait::async_trait;
use events::{Command, DomainEvent, EventSet, EventSourced, Handle};
use serde::{Deserialize, Serialize};

/// Everything that can happen to an account, each variant stored under its own name.
#[derive(DomainEvent, EventSet, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub enum BankAccountEvent {
    AccountOpened {
        account_id: String,
    },
    CustomerDepositedMoney {
        amount: f64,
        balance: f64,
    },
    CustomerWithdrewCash {
        amount: f64,
        balance: f64,
    },
    CustomerWroteCheck {
        check_number: String,
        amount: f64,
        balance: f64,
    },
}

/// What a customer asks of an account; routed to it, no handler to write, sent with
/// `bus.send_to(account_id, command)`.
#[derive(Command, Clone, Debug)]
#[command(aggregate = BankAccount)]
pub enum BankAccountCommand {
    OpenAccount { account_id: String },
    DepositMoney { amount: f64 },
    WithdrawMoney { amount: f64, atm_id: String },
    WriteCheck { check_number: String, amount: f64 },
}

/// The ATM network and the check clearing house.
#[async_trait]
pub trait BankAccountApi: Send + Sync {
    async fn atm_withdrawal(&self, atm_id: &str, amount: f64) -> Result<(), String>;
    async fn validate_check(&self, account_id: &str, check_number: &str) -> Result<(), String>;
}

pub type BankAccountServices = Box<dyn BankAccountApi>;

#[derive(Default, Debug)]
pub struct BankAccount {
    pub account_id: String,
    pub balance: f64,
}

impl EventSourced for BankAccount {
    const TYPE: &'static str = "account";
    type Event = BankAccountEvent;

    fn apply(&mut self, event: &BankAccountEvent) {
        use BankAccountEvent::*;
        match event {
            AccountOpened { account_id } => self.account_id.clone_from(account_id),
            CustomerDepositedMoney { balance, .. }
            | CustomerWithdrewCash { balance, .. }
            | CustomerWroteCheck { balance, .. } => self.balance = *balance,
        }
    }
}

impl Handle<BankAccountCommand> for BankAccount {
    type Error = &'static str;
    type Services = BankAccountServices;

    async fn handle(
        &self,
        command: BankAccountCommand,
        api: &BankAccountServices,
    ) -> Result<Vec<BankAccountEvent>, &'static str> {
        use {BankAccountCommand::*, BankAccountEvent::*};
        let take = |amount: f64| Some(self.balance - amount).filter(|b| *b >= 0.0);
        Ok(vec![match command {
            OpenAccount { account_id } => AccountOpened { account_id },
            DepositMoney { amount } => CustomerDepositedMoney {
                amount,
                balance: self.balance + amount,
            },
            WithdrawMoney { amount, atm_id } => {
                let balance = take(amount).ok_or("funds not available")?;
                let refused = api.atm_withdrawal(&atm_id, amount).await;
                refused.map_err(|_| "atm rule violation")?;
                CustomerWithdrewCash { amount, balance }
            }
            WriteCheck {
                check_number,
                amount,
            } => {
                let balance = take(amount).ok_or("funds not available")?;
                let refused = api.validate_check(&self.account_id, &check_number).await;
                refused.map_err(|_| "check invalid")?;
                CustomerWroteCheck {
                    check_number,
                    amount,
                    balance,
                }
            }
        }])
    }
}
