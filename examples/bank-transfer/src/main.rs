//! One account's event drives another account through a command: the question Rust
//! event-sourcing users ask most ("how do I react to one aggregate's events with another
//! aggregate's command", cqrs-es #191 and #196), answered with a process manager.
//!
//! A transfer debits the sending account (`TransferSent`); the `bank.transfer` process manager
//! sends `ReceiveTransfer` to the receiving account, which credits it (`TransferReceived`) or
//! declines it (`TransferDeclined`: the account is closed); a declined transfer is refunded to
//! the sender (`RefundTransfer`). A transfer with no answer within its deadline (a durable
//! timer) is refunded too. State, commands and timer commit with the worker's checkpoint, and
//! each command takes effect once, even across a crash.
//!
//! `cargo run -p bank-transfer` runs two transfers, one received and one declined.

use std::time::Duration;

use events::process::Reaction;
use events::sourcing::{EventSourced, Handle, Repository};
use events::store::connect;
use events::worker::Worker;
use events::{process_manager, Bus, Command, DomainEvent};
use serde::{Deserialize, Serialize};

/// How long a transfer may wait for the receiving account's answer before it is refunded.
const DEADLINE: Duration = Duration::from_secs(30);

// ---- the account's events --------------------------------------------------------------------

#[derive(DomainEvent, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "bank.account_opened", aggregate = "Account")]
pub struct AccountOpened {
    #[event(aggregate_id)]
    pub account: String,
    pub deposit: u64,
}

#[derive(DomainEvent, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "bank.account_closed", aggregate = "Account")]
pub struct AccountClosed {
    #[event(aggregate_id)]
    pub account: String,
}

/// The sender's side: the amount left the account.
#[derive(DomainEvent, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "bank.transfer_sent", aggregate = "Account")]
pub struct TransferSent {
    #[event(aggregate_id)]
    pub account: String,
    pub transfer: String,
    pub to: String,
    pub amount: u64,
}

#[derive(DomainEvent, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "bank.transfer_received", aggregate = "Account")]
pub struct TransferReceived {
    #[event(aggregate_id)]
    pub account: String,
    pub transfer: String,
    pub amount: u64,
}

#[derive(DomainEvent, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "bank.transfer_declined", aggregate = "Account")]
pub struct TransferDeclined {
    #[event(aggregate_id)]
    pub account: String,
    pub transfer: String,
    pub reason: String,
}

#[derive(DomainEvent, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "bank.transfer_refunded", aggregate = "Account")]
pub struct TransferRefunded {
    #[event(aggregate_id)]
    pub account: String,
    pub transfer: String,
    pub amount: u64,
}

/// The deadline of a transfer, fired by a durable timer unless the receiver answered first.
#[derive(DomainEvent, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "bank.transfer_overdue", aggregate = "TransferDeadline")]
pub struct TransferOverdue {
    #[event(aggregate_id)]
    pub transfer: String,
}

events::event_set! {
    #[derive(Debug, Clone, PartialEq)]
    pub enum AccountEvent {
        Opened(AccountOpened),
        Closed(AccountClosed),
        Sent(TransferSent),
        Received(TransferReceived),
        Declined(TransferDeclined),
        Refunded(TransferRefunded),
    }
}

// ---- the account: one aggregate, its commands ------------------------------------------------

#[derive(Default, Debug)]
pub struct Account {
    pub open: bool,
    pub balance: u64,
}

impl EventSourced for Account {
    const TYPE: &'static str = "Account";
    type Event = AccountEvent;
    fn apply(&mut self, e: &AccountEvent) {
        match e {
            AccountEvent::Opened(e) => (self.open, self.balance) = (true, e.deposit),
            AccountEvent::Closed(_) => self.open = false,
            AccountEvent::Sent(e) => self.balance -= e.amount,
            AccountEvent::Received(e) => self.balance += e.amount,
            AccountEvent::Refunded(e) => self.balance += e.amount,
            AccountEvent::Declined(_) => {}
        }
    }
}

#[derive(Command, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[command(aggregate = Account)]
pub struct OpenAccount {
    #[command(id)]
    pub account: String,
    pub deposit: u64,
}

impl Handle<OpenAccount> for Account {
    type Error = String;
    type Services = ();
    async fn handle(&self, c: OpenAccount, _: &()) -> Result<Vec<AccountEvent>, String> {
        Ok(vec![AccountEvent::Opened(AccountOpened {
            account: c.account,
            deposit: c.deposit,
        })])
    }
}

#[derive(Command, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[command(aggregate = Account)]
pub struct CloseAccount {
    #[command(id)]
    pub account: String,
}

impl Handle<CloseAccount> for Account {
    type Error = String;
    type Services = ();
    async fn handle(&self, c: CloseAccount, _: &()) -> Result<Vec<AccountEvent>, String> {
        Ok(vec![AccountEvent::Closed(AccountClosed {
            account: c.account,
        })])
    }
}

/// The application's command: send `amount` from `account` to `to`.
#[derive(Command, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[command(aggregate = Account)]
pub struct SendTransfer {
    #[command(id)]
    pub account: String,
    pub transfer: String,
    pub to: String,
    pub amount: u64,
}

impl Handle<SendTransfer> for Account {
    type Error = String;
    type Services = ();
    async fn handle(&self, c: SendTransfer, _: &()) -> Result<Vec<AccountEvent>, String> {
        if !self.open || self.balance < c.amount {
            return Err(format!("account {} cannot send {}", c.account, c.amount));
        }
        Ok(vec![AccountEvent::Sent(TransferSent {
            account: c.account,
            transfer: c.transfer,
            to: c.to,
            amount: c.amount,
        })])
    }
}

/// The process manager's command to the receiving account.
#[derive(Command, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[command(aggregate = Account)]
pub struct ReceiveTransfer {
    #[command(id)]
    pub account: String,
    pub transfer: String,
    pub amount: u64,
}

impl Handle<ReceiveTransfer> for Account {
    type Error = String;
    type Services = ();
    async fn handle(&self, c: ReceiveTransfer, _: &()) -> Result<Vec<AccountEvent>, String> {
        if !self.open {
            return Ok(vec![AccountEvent::Declined(TransferDeclined {
                reason: format!("account {} is closed", c.account),
                account: c.account,
                transfer: c.transfer,
            })]);
        }
        Ok(vec![AccountEvent::Received(TransferReceived {
            account: c.account,
            transfer: c.transfer,
            amount: c.amount,
        })])
    }
}

/// The process manager's command back to the sender.
#[derive(Command, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[command(aggregate = Account)]
pub struct RefundTransfer {
    #[command(id)]
    pub account: String,
    pub transfer: String,
    pub amount: u64,
}

impl Handle<RefundTransfer> for Account {
    type Error = String;
    type Services = ();
    async fn handle(&self, c: RefundTransfer, _: &()) -> Result<Vec<AccountEvent>, String> {
        Ok(vec![AccountEvent::Refunded(TransferRefunded {
            account: c.account,
            transfer: c.transfer,
            amount: c.amount,
        })])
    }
}

// ---- the process manager: one instance per transfer -------------------------------------------

/// One transfer's way between two accounts.
#[derive(Default, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Transfer {
    pub from: String,
    pub amount: u64,
    pub refunded: bool,
}

#[process_manager(
    name = "bank.transfer",
    association = transfer,
    sends(ReceiveTransfer, RefundTransfer)
)]
impl Transfer {
    #[start]
    fn sent(&mut self, e: &TransferSent, out: &mut Reaction<Self>) {
        (self.from, self.amount) = (e.account.clone(), e.amount);
        out.send(ReceiveTransfer {
            account: e.to.clone(),
            transfer: e.transfer.clone(),
            amount: e.amount,
        });
        let overdue = TransferOverdue {
            transfer: e.transfer.clone(),
        };
        out.schedule("answer", DEADLINE, &overdue);
    }

    #[complete]
    fn received(&mut self, e: &TransferReceived, out: &mut Reaction<Self>) {
        out.cancel("answer");
        println!(
            "transfer {}: {} received {}",
            e.transfer, e.account, e.amount
        );
    }

    fn declined(&mut self, e: &TransferDeclined, out: &mut Reaction<Self>) {
        out.cancel("answer");
        println!("transfer {} declined: {}", e.transfer, e.reason);
        self.refund(&e.transfer, out);
    }

    fn overdue(&mut self, e: &TransferOverdue, out: &mut Reaction<Self>) {
        println!("transfer {}: no answer within {DEADLINE:?}", e.transfer);
        self.refund(&e.transfer, out);
    }

    #[complete]
    fn refunded(&mut self, e: &TransferRefunded) {
        println!(
            "transfer {} refunded to {}: {}",
            e.transfer, e.account, e.amount
        );
    }
}

impl Transfer {
    fn refund(&mut self, transfer: &str, out: &mut Reaction<Self>) {
        if !std::mem::replace(&mut self.refunded, true) {
            out.send(RefundTransfer {
                account: self.from.clone(),
                transfer: transfer.to_owned(),
                amount: self.amount,
            });
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), events::BoxError> {
    let store = connect("sqlite::memory:").await?;
    let bus = Bus::builder().event_store(store.clone()).build()?;
    for (account, deposit) in [("alice", 100), ("bob", 0), ("carol", 0)] {
        bus.send(OpenAccount {
            account: account.into(),
            deposit,
        })
        .await?;
    }
    bus.send(CloseAccount {
        account: "carol".into(),
    })
    .await?;
    for (transfer, to, amount) in [("t-1", "bob", 30), ("t-2", "carol", 20)] {
        bus.send(SendTransfer {
            account: "alice".into(),
            transfer: transfer.into(),
            to: to.into(),
            amount,
        })
        .await?;
    }
    // The worker runs the process manager until every transfer is settled.
    Worker::new(&bus, &store)
        .handlers(["bank.transfer"])
        .drain()
        .await?;
    let accounts = Repository::<Account, _>::new(store.clone());
    for account in ["alice", "bob", "carol"] {
        let (state, _) = accounts.load(account).await?;
        println!("{account}: {}", state.balance);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use events::testing::process;

    fn sent(transfer: &str) -> TransferSent {
        TransferSent {
            account: "alice".into(),
            transfer: transfer.into(),
            to: "bob".into(),
            amount: 30,
        }
    }

    #[test]
    fn a_sent_transfer_asks_the_receiver_with_a_deadline() {
        process::<Transfer>()
            .when(sent("t-1"))
            .then_sends([ReceiveTransfer {
                account: "bob".into(),
                transfer: "t-1".into(),
                amount: 30,
            }])
            .then_schedules(
                "answer",
                TransferOverdue {
                    transfer: "t-1".into(),
                },
            );
    }

    #[test]
    fn a_declined_transfer_is_refunded_to_the_sender() {
        process::<Transfer>()
            .given(sent("t-2"))
            .when(TransferDeclined {
                account: "bob".into(),
                transfer: "t-2".into(),
                reason: "closed".into(),
            })
            .then_cancels("answer")
            .then_sends([RefundTransfer {
                account: "alice".into(),
                transfer: "t-2".into(),
                amount: 30,
            }]);
    }

    #[test]
    fn no_answer_within_the_deadline_refunds_once() {
        process::<Transfer>()
            .given(sent("t-3"))
            .when_clock_advances(DEADLINE)
            .then_sends([RefundTransfer {
                account: "alice".into(),
                transfer: "t-3".into(),
                amount: 30,
            }]);
    }

    #[test]
    fn a_received_transfer_completes() {
        process::<Transfer>()
            .given(sent("t-4"))
            .when(TransferReceived {
                account: "bob".into(),
                transfer: "t-4".into(),
                amount: 30,
            })
            .then_cancels("answer")
            .then_sends_nothing()
            .then_completed();
    }
}
