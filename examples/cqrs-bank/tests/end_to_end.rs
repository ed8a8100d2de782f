//! Drives the bank end to end through its commands, then checks the store, the projection,
//! the notifications, and the aggregate's rules with the given/when/then fixture.

use cqrs_bank::{
    bank, Account, AccountOpened, Balances, BankError, Deposit, MoneyDeposited, MoneyWithdrawn,
    Notifier, OpenAccount, Withdraw,
};
use events::store::{rebuild, EventStore, MemoryStore, Projection};
use events::testing::given;
use events::{command_meta, SendError};

fn open(account: &str, owner: &str) -> OpenAccount {
    OpenAccount {
        account: account.into(),
        owner: owner.into(),
    }
}

#[tokio::test]
async fn commands_events_projection_and_notifications() {
    let store = MemoryStore::new();
    let bus = bank(store.clone()).unwrap();

    assert_eq!(bus.send(open("a", "Ada")).await.unwrap(), 1);
    let deposit = command_meta::<Deposit>();
    let version = bus
        .send_with(
            Deposit {
                account: "a".into(),
                amount: 50_000,
            },
            deposit.clone(),
        )
        .await
        .unwrap();
    assert_eq!(version, 2);
    assert_eq!(
        bus.send(Withdraw {
            account: "a".into(),
            amount: 15_000
        })
        .await
        .unwrap(),
        3
    );

    // Rejections are typed and write nothing.
    let err = bus
        .send(Withdraw {
            account: "a".into(),
            amount: 100_000,
        })
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        SendError::Rejected(BankError::InsufficientFunds {
            balance: 35_000,
            requested: 100_000
        })
    ));
    let err = bus
        .send(Deposit {
            account: "nobody".into(),
            amount: 1,
        })
        .await
        .unwrap_err();
    assert_eq!(err.into_rejected(), Some(BankError::NotOpen));
    assert_eq!(store.len(), 3);

    // The store: names, sequences, positions, JSON payloads, causation by the command.
    let all = store.read_all(0, 100).await.unwrap();
    let names: Vec<_> = all.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "bank.account_opened",
            "bank.money_deposited",
            "bank.money_withdrawn"
        ]
    );
    assert!(all
        .iter()
        .all(|e| e.aggregate_type == "Account" && e.aggregate_id == "a"));
    assert_eq!(
        all.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(all[1].payload["amount"], 50_000);
    assert_eq!(all[1].metadata.causation_id, Some(deposit.event_id()));
    assert_eq!(
        all[1].metadata.correlation_id,
        Some(deposit.correlation_id())
    );

    // The projection was updated live, the notifications sent.
    let balances = bus.resource::<Balances>().unwrap();
    assert_eq!(balances.balance("a"), Some(35_000));
    assert_eq!(
        bus.resource::<Notifier>().unwrap().sent(),
        ["welcome Ada", "large withdrawal of 15000 cents from a"]
    );

    // Rebuilding from position 0 gives the same read model; replaying over live data is
    // idempotent.
    let rebuilt = Balances::default();
    let done = rebuild(&rebuilt, &store).await.unwrap();
    assert_eq!(done.applied, 3);
    assert_eq!(rebuilt.rows(), balances.rows());
    for stored in &all {
        let event = stored.decode::<cqrs_bank::AccountEvent>().unwrap().unwrap();
        balances.apply(&event, stored);
    }
    assert_eq!(balances.balance("a"), Some(35_000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_commands_never_lose_money() {
    let store = MemoryStore::new();
    let bus = bank(store.clone()).unwrap();
    bus.send(open("shared", "Ada")).await.unwrap();

    // Twenty concurrent deposits of 1.00: each either commits or gets a conflict, and the
    // balance is exactly the sum of the committed ones.
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let bus = bus.clone();
            tokio::spawn(async move {
                bus.send(Deposit {
                    account: "shared".into(),
                    amount: 100,
                })
                .await
            })
        })
        .collect();
    let mut committed = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => committed += 1,
            Err(e) => assert_eq!(e.into_rejected(), Some(BankError::Conflict)),
        }
    }
    assert!(committed >= 1);
    let balances = bus.resource::<Balances>().unwrap();
    assert_eq!(balances.balance("shared"), Some(committed * 100));
    let (account, version) = events::Repository::<Account, _>::new(store)
        .load("shared")
        .await
        .unwrap();
    assert_eq!(account.balance, committed * 100);
    assert_eq!(version, committed + 1);
}

#[test]
fn the_account_rules() {
    let opened = || -> cqrs_bank::AccountEvent {
        AccountOpened {
            account: "a".into(),
            owner: "Ada".into(),
        }
        .into()
    };
    given::<Account>([]).when(open("a", "Ada")).then([opened()]);
    given::<Account>([opened()])
        .when(open("a", "Eve"))
        .then_error(BankError::AlreadyOpen);
    given::<Account>([
        opened(),
        MoneyDeposited {
            account: "a".into(),
            amount: 10,
        }
        .into(),
    ])
    .when(Withdraw {
        account: "a".into(),
        amount: 4,
    })
    .then([MoneyWithdrawn {
        account: "a".into(),
        amount: 4,
    }
    .into()]);
    given::<Account>([opened()])
        .when(Withdraw {
            account: "a".into(),
            amount: 4,
        })
        .then_error(BankError::InsufficientFunds {
            balance: 0,
            requested: 4,
        });
    given::<Account>([])
        .when(Deposit {
            account: "a".into(),
            amount: 4,
        })
        .then_error(BankError::NotOpen);
}
