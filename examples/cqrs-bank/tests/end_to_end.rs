//! The bank through its bus on SQLite: routed commands, the ledger view kept live in its
//! repository by the durable handler (delivered by a worker), and rebuilt from the log.

use async_trait::async_trait;
use cqrs_bank::bank;
use cqrs_bank::domain::{BankAccountApi, BankAccountCommand::*};
use cqrs_bank::ledger::BankAccountView;
use events::sourcing::{catch_up, rebuild, SqliteViews};
use events::store::SqliteStore;
use events::worker::Worker;

struct Atm;

#[async_trait]
impl BankAccountApi for Atm {
    async fn atm_withdrawal(&self, _: &str, amount: f64) -> Result<(), String> {
        if amount > 500.0 {
            return Err("daily limit".into());
        }
        Ok(())
    }
    async fn validate_check(&self, _: &str, _: &str) -> Result<(), String> {
        Ok(())
    }
}

fn entry(description: &str, amount: f64) -> (String, f64) {
    (description.into(), amount)
}

#[tokio::test]
async fn commands_are_routed_and_the_ledger_is_kept_and_rebuilt() {
    let store = SqliteStore::open_in_memory().unwrap();
    let bus = bank(&store, Atm).unwrap();
    let id = "ACCT-0001";
    assert_eq!(
        bus.send(OpenAccount {
            account_id: id.into()
        })
        .await
        .unwrap(),
        1
    );
    assert_eq!(
        bus.send_to(id, DepositMoney { amount: 1000.0 })
            .await
            .unwrap(),
        2
    );
    let atm = |amount| WithdrawMoney {
        amount,
        atm_id: "ATM-1".into(),
    };
    assert_eq!(bus.send_to(id, atm(150.0)).await.unwrap(), 3);
    let refused = bus.send_to(id, atm(600.0)).await.unwrap_err();
    assert_eq!(refused.to_string(), "command rejected: atm rule violation");
    let check = WriteCheck {
        check_number: "1170".into(),
        amount: 250.0,
    };
    assert_eq!(bus.send_to(id, check).await.unwrap(), 4);
    bus.send(OpenAccount {
        account_id: "ACCT-0002".into(),
    })
    .await
    .unwrap();

    let ledgers = SqliteViews::<BankAccountView>::new(&store).unwrap();
    assert_eq!(ledgers.load(id).unwrap(), None, "no worker ran yet");
    let summary = Worker::new(&bus, &store).drain().await.unwrap();
    assert!(
        summary.to_string().contains("bank.ledger: 5 delivered"),
        "{summary}"
    );
    let expected = BankAccountView {
        account_id: Some(id.into()),
        balance: 600.0,
        written_checks: vec!["1170".into()],
        ledger: vec![
            entry("deposit", 1000.0),
            entry("atm withdrawal", -150.0),
            entry("1170", -250.0),
        ],
    };
    assert_eq!(ledgers.load(id).unwrap(), Some((expected.clone(), 4)));

    // Catching up again from the start changes nothing: each view holds its last sequence.
    let done = catch_up(&ledgers, &store, 0).await.unwrap();
    assert_eq!((done.applied, done.position), (5, 5));
    assert_eq!(ledgers.load(id).unwrap(), Some((expected.clone(), 4)));

    // A rebuild empties the views and replays the log into them.
    ledgers.save(id, &BankAccountView::default(), 99).unwrap();
    let rebuilt = rebuild(&ledgers, &store).await.unwrap();
    assert_eq!(rebuilt.applied, 5);
    assert_eq!(ledgers.load(id).unwrap(), Some((expected, 4)));
    let other = ledgers.load("ACCT-0002").unwrap().unwrap();
    assert_eq!(
        (other.0.account_id.as_deref(), other.1),
        (Some("ACCT-0002"), 1)
    );
}
