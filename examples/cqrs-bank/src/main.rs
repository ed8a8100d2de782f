//! Runs the bank: opens accounts, moves money, shows a rejected command and a conflict, then
//! rebuilds the balances projection from the store and checks it matches the live one.

use cqrs_bank::{bank, Balances, BankError, Deposit, Notifier, OpenAccount, Withdraw};
use events::store::{rebuild, MemoryStore};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_target(false)
        .init();

    let store = MemoryStore::new();
    let bus = bank(store.clone())?;

    bus.send(OpenAccount {
        account: "acc-1".into(),
        owner: "Ada".into(),
    })
    .await?;
    bus.send(OpenAccount {
        account: "acc-2".into(),
        owner: "Grace".into(),
    })
    .await?;
    bus.send(Deposit {
        account: "acc-1".into(),
        amount: 25_000,
    })
    .await?;
    bus.send(Deposit {
        account: "acc-2".into(),
        amount: 4000,
    })
    .await?;
    bus.send(Withdraw {
        account: "acc-1".into(),
        amount: 12_000,
    })
    .await?;

    match bus
        .send(Withdraw {
            account: "acc-2".into(),
            amount: 9000,
        })
        .await
    {
        Err(e) => tracing::warn!("rejected as expected: {:?}", e.rejected()),
        Ok(_) => unreachable!("Grace has only 40.00"),
    }
    assert!(matches!(
        bus.send(OpenAccount {
            account: "acc-1".into(),
            owner: "Eve".into()
        })
        .await
        .unwrap_err()
        .into_rejected(),
        Some(BankError::AlreadyOpen)
    ));

    let live = bus.resource::<Balances>().unwrap().rows();
    for (account, row) in &live {
        println!(
            "{account}: {} has {}.{:02}",
            row.owner,
            row.balance / 100,
            row.balance % 100
        );
    }
    for message in bus.resource::<Notifier>().unwrap().sent() {
        println!("notified: {message}");
    }

    let rebuilt = Balances::default();
    let replayed = rebuild(&rebuilt, &store).await?;
    println!(
        "rebuilt the balances from {} stored events",
        replayed.applied
    );
    assert_eq!(
        rebuilt.rows(),
        live,
        "the rebuilt projection matches the live one"
    );
    Ok(())
}
