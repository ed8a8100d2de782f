//! Runs the bank: opens an account, deposits, withdraws at an ATM, writes a check, shows a
//! refused command, then lets a worker deliver the events to the ledger's durable handler and
//! prints the ledger.
//!
//! The store: `EVENTS_DATABASE_URL` (`postgres://..` with the `postgres` feature), or SQLite in
//! memory; the code is the same for both.

use async_trait::async_trait;
use cqrs_bank::domain::{BankAccountApi, BankAccountCommand::*};
use cqrs_bank::ledger::BankAccountView;
use cqrs_bank::{bank, database_url};
use events::sourcing::ViewRepository;
use events::worker::Worker;

/// A bank whose ATMs always pay out and whose checks always clear.
struct Friendly;

#[async_trait]
impl BankAccountApi for Friendly {
    async fn atm_withdrawal(&self, atm_id: &str, amount: f64) -> Result<(), String> {
        tracing::info!(atm_id, amount, "ATM pays out");
        Ok(())
    }
    async fn validate_check(&self, _: &str, check_number: &str) -> Result<(), String> {
        tracing::info!(check_number, "check cleared");
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), events::BoxError> {
    tracing_subscriber::fmt().with_target(false).init();
    let store = events::store::connect(&database_url()).await?;
    store.migrate().await?;
    let bus = bank(&store, Friendly)?;

    let account_id = "ACCT-0001".to_owned();
    bus.send_to(
        &account_id,
        OpenAccount {
            account_id: account_id.clone(),
        },
    )
    .await?;
    bus.send_to("ACCT-0001", DepositMoney { amount: 1000.0 })
        .await?;
    bus.send_to(
        "ACCT-0001",
        WithdrawMoney {
            amount: 150.0,
            atm_id: "ATM-N468290".into(),
        },
    )
    .await?;
    bus.send_to(
        "ACCT-0001",
        WriteCheck {
            check_number: "1170".into(),
            amount: 256.28,
        },
    )
    .await?;
    let refused = bus.send_to(
        "ACCT-0001",
        WithdrawMoney {
            amount: 5000.0,
            atm_id: "ATM-N468290".into(),
        },
    );
    println!("refused: {}", refused.await.unwrap_err());

    println!("{}", Worker::new(&bus, &store).drain().await?);
    let ledgers = ViewRepository::<BankAccountView>::new(&store);
    let (view, version) = ledgers
        .load("ACCT-0001")
        .await?
        .expect("the account has a ledger");
    println!(
        "ledger of ACCT-0001 at version {version}: balance {:.2}, checks written: {}",
        view.balance,
        view.written_checks.join(", ")
    );
    for (entry, amount) in &view.ledger {
        println!("  {entry:<16} {amount:>10.2}");
    }
    Ok(())
}
