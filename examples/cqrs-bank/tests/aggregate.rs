//! The eight aggregate tests of the cqrs-es demo, in the fixture, with mocked services.

use async_trait::async_trait;
use cqrs_bank::domain::BankAccountCommand::*;
use cqrs_bank::domain::BankAccountEvent::*;
use cqrs_bank::domain::{BankAccount, BankAccountApi, BankAccountServices};
use events::testing::{given, given_no_events};

/// Answers what the test told it to; a call the test did not expect fails it.
#[derive(Default)]
struct MockApi {
    atm: Option<Result<(), String>>,
    check: Option<Result<(), String>>,
}

#[async_trait]
impl BankAccountApi for MockApi {
    async fn atm_withdrawal(&self, _: &str, _: f64) -> Result<(), String> {
        self.atm
            .clone()
            .expect("the ATM was not expected to be asked")
    }
    async fn validate_check(&self, _: &str, _: &str) -> Result<(), String> {
        self.check
            .clone()
            .expect("checks were not expected to be validated")
    }
}

fn services(mock: MockApi) -> BankAccountServices {
    Box::new(mock)
}

fn opened() -> cqrs_bank::domain::BankAccountEvent {
    AccountOpened {
        account_id: "ACCT-0001".into(),
    }
}

#[test]
fn test_deposit_money() {
    given_no_events::<BankAccount>()
        .with(services(MockApi::default()))
        .when(DepositMoney { amount: 200.0 })
        .then([CustomerDepositedMoney {
            amount: 200.0,
            balance: 200.0,
        }]);
}

#[test]
fn test_deposit_money_with_balance() {
    given::<BankAccount>([CustomerDepositedMoney {
        amount: 200.0,
        balance: 200.0,
    }])
    .with(services(MockApi::default()))
    .when(DepositMoney { amount: 200.0 })
    .then([CustomerDepositedMoney {
        amount: 200.0,
        balance: 400.0,
    }]);
}

#[test]
fn test_withdraw_money() {
    given::<BankAccount>([CustomerDepositedMoney {
        amount: 200.0,
        balance: 200.0,
    }])
    .with(services(MockApi {
        atm: Some(Ok(())),
        ..MockApi::default()
    }))
    .when(WithdrawMoney {
        amount: 100.0,
        atm_id: "ATM34f1ba3c".into(),
    })
    .then([CustomerWithdrewCash {
        amount: 100.0,
        balance: 100.0,
    }]);
}

#[test]
fn test_withdraw_money_client_error() {
    let refused = MockApi {
        atm: Some(Err("ATM out of cash".into())),
        ..MockApi::default()
    };
    given::<BankAccount>([CustomerDepositedMoney {
        amount: 200.0,
        balance: 200.0,
    }])
    .with(services(refused))
    .when(WithdrawMoney {
        amount: 100.0,
        atm_id: "ATM34f1ba3c".into(),
    })
    .then_error_message("atm rule violation");
}

#[test]
fn test_withdraw_money_funds_not_available() {
    given_no_events::<BankAccount>()
        .with(services(MockApi::default()))
        .when(WithdrawMoney {
            amount: 200.0,
            atm_id: "ATM34f1ba3c".into(),
        })
        .then_error_message("funds not available");
}

#[test]
fn test_wrote_check() {
    let when = given::<BankAccount>([
        opened(),
        CustomerDepositedMoney {
            amount: 200.0,
            balance: 200.0,
        },
    ])
    .with(services(MockApi {
        check: Some(Ok(())),
        ..MockApi::default()
    }))
    .when(WriteCheck {
        check_number: "1170".into(),
        amount: 100.0,
    });
    // The result can be inspected before the assertion.
    assert_eq!(when.result().map(<[_]>::len).ok(), Some(1));
    when.then([CustomerWroteCheck {
        check_number: "1170".into(),
        amount: 100.0,
        balance: 100.0,
    }]);
}

#[test]
fn test_wrote_check_bad_check() {
    let bad = MockApi {
        check: Some(Err("unknown check".into())),
        ..MockApi::default()
    };
    given::<BankAccount>([
        opened(),
        CustomerDepositedMoney {
            amount: 200.0,
            balance: 200.0,
        },
    ])
    .with(services(bad))
    .when(WriteCheck {
        check_number: "1170".into(),
        amount: 100.0,
    })
    .then_error_message("check invalid");
}

#[test]
fn test_wrote_check_funds_not_available() {
    given_no_events::<BankAccount>()
        .with(services(MockApi::default()))
        .when(WriteCheck {
            check_number: "1170".into(),
            amount: 100.0,
        })
        .then_error_message("funds not available");
}
