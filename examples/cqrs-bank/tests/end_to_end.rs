//! The bank through its bus on SQLite: routed commands, the ledger view kept live in its
//! repository by the durable handler (delivered by a worker), and rebuilt from the log.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use cqrs_bank::bank;
use cqrs_bank::domain::BankAccountEvent::CustomerDepositedMoney;
use cqrs_bank::domain::{BankAccountApi, BankAccountCommand::*};
use cqrs_bank::ledger::BankAccountView;
use events::sourcing::{catch_up, rebuild, SqliteViews};
use events::store::{EventMetadata, EventStore, SqliteStore, StreamId};
use events::worker::Worker;
use events::{EventSet, SendError};

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
    let open = |id: &str| OpenAccount {
        account_id: id.into(),
    };
    assert_eq!(bus.send_to(id, open(id)).await.unwrap(), 1);
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
    assert_eq!(refused.rejected(), Some(&"atm rule violation"));
    let check = WriteCheck {
        check_number: "1170".into(),
        amount: 250.0,
    };
    assert_eq!(bus.send_to(id, check).await.unwrap(), 4);
    bus.send_to("ACCT-0002", open("ACCT-0002")).await.unwrap();

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

/// An ATM that counts its payouts; while it pays out, a teller deposits into the same account
/// (another writer appends between the command's load and its append).
struct BusyAtm {
    payouts: Arc<AtomicU32>,
    store: SqliteStore,
}

#[async_trait]
impl BankAccountApi for BusyAtm {
    async fn atm_withdrawal(&self, _: &str, _: f64) -> Result<(), String> {
        self.payouts.fetch_add(1, Ordering::SeqCst);
        let stream = StreamId {
            aggregate_type: "account",
            aggregate_id: "ACCT-0001",
        };
        let version = self.store.read_stream(stream).await.unwrap().len() as u64;
        let deposit = CustomerDepositedMoney {
            amount: 10.0,
            balance: 110.0,
        };
        let deposit = deposit.to_new_event(EventMetadata::default()).unwrap();
        self.store
            .append(stream.at(version), vec![deposit])
            .await
            .unwrap();
        Ok(())
    }
    async fn validate_check(&self, _: &str, _: &str) -> Result<(), String> {
        Ok(())
    }
}

#[tokio::test]
async fn an_atm_withdrawal_that_loses_the_append_race_pays_out_once_and_fails() {
    let store = SqliteStore::open_in_memory().unwrap();
    let payouts = Arc::new(AtomicU32::new(0));
    let atm = BusyAtm {
        payouts: payouts.clone(),
        store: store.clone(),
    };
    let bus = bank(&store, atm).unwrap();
    let id = "ACCT-0001";
    let open = OpenAccount {
        account_id: id.into(),
    };
    bus.send_to(id, open).await.unwrap();
    bus.send_to(id, DepositMoney { amount: 100.0 })
        .await
        .unwrap();
    let withdraw = WithdrawMoney {
        amount: 50.0,
        atm_id: "ATM-1".into(),
    };
    let err = bus.send_to(id, withdraw).await.unwrap_err();
    assert_eq!(payouts.load(Ordering::SeqCst), 1, "the ATM paid out once");
    assert!(
        matches!(
            err,
            SendError::Conflict {
                expected: 2,
                actual: 3,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.rejected(), None, "the account did not refuse it");
    let stream = StreamId {
        aggregate_type: "account",
        aggregate_id: id,
    };
    let names: Vec<_> = store
        .read_stream(stream)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(
        names,
        [
            "AccountOpened",
            "CustomerDepositedMoney",
            "CustomerDepositedMoney"
        ]
    );
}
