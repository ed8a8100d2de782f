//! A bank, CQRS style: commands go to exactly one handler, which loads the event-sourced
//! [`Account`] by replaying its stream, lets it decide, and appends the new events with the
//! version it loaded (a concurrent writer gets a conflict). The stored events are then
//! dispatched to a projection ([`Balances`]) and a notification handler.
//!
//! Everything is wired by the linker: [`bank`] only provides the resources.

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;

use events::store::{MemoryStore, Projection, StoreError, StoredEvent};
use events::{
    command_handler, event_handler, BuildError, Bus, Command, DomainEvent, EventSourced,
    ExecuteError, Handle, Meta, Repository, Res,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

// ---- events ----------------------------------------------------------------------------

/// An account was opened.
#[derive(DomainEvent, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "bank.account_opened", aggregate = "Account")]
pub struct AccountOpened {
    /// The account.
    #[event(aggregate_id)]
    pub account: String,
    /// Its owner.
    pub owner: String,
}

/// Money was deposited.
#[derive(DomainEvent, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "bank.money_deposited", aggregate = "Account")]
pub struct MoneyDeposited {
    /// The account.
    #[event(aggregate_id)]
    pub account: String,
    /// In cents.
    pub amount: u64,
}

/// Money was withdrawn.
#[derive(DomainEvent, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "bank.money_withdrawn", aggregate = "Account")]
pub struct MoneyWithdrawn {
    /// The account.
    #[event(aggregate_id)]
    pub account: String,
    /// In cents.
    pub amount: u64,
}

events::event_set! {
    /// Everything that can happen to an account.
    #[derive(Debug, Clone, PartialEq)]
    pub enum AccountEvent {
        Opened(AccountOpened),
        Deposited(MoneyDeposited),
        Withdrawn(MoneyWithdrawn),
    }
}

// ---- the aggregate ---------------------------------------------------------------------

/// A bank account, rebuilt from its events.
#[derive(Default, Debug)]
pub struct Account {
    /// Whether it was opened.
    pub open: bool,
    /// Its owner.
    pub owner: String,
    /// In cents.
    pub balance: u64,
}

impl EventSourced for Account {
    const TYPE: &'static str = "Account";
    type Event = AccountEvent;

    fn apply(&mut self, event: &AccountEvent) {
        match event {
            AccountEvent::Opened(e) => {
                self.open = true;
                self.owner.clone_from(&e.owner);
            }
            AccountEvent::Deposited(e) => self.balance += e.amount,
            AccountEvent::Withdrawn(e) => self.balance -= e.amount,
        }
    }
}

/// Why the bank refuses a command.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum BankError {
    /// The account is already open.
    #[error("account is already open")]
    AlreadyOpen,
    /// No such account.
    #[error("no such account")]
    NotOpen,
    /// Amounts are positive.
    #[error("amount must be positive")]
    ZeroAmount,
    /// Not enough money.
    #[error("insufficient funds: balance {balance}, requested {requested}")]
    InsufficientFunds {
        /// The balance.
        balance: u64,
        /// The amount asked for.
        requested: u64,
    },
    /// Someone else changed the account at the same time; retry.
    #[error("the account changed concurrently, retry")]
    Conflict,
    /// The store failed.
    #[error("store failure: {0}")]
    Store(String),
}

impl From<ExecuteError<BankError>> for BankError {
    fn from(e: ExecuteError<BankError>) -> Self {
        match e {
            ExecuteError::Rejected(e) => e,
            ExecuteError::Store(StoreError::Conflict { .. }) => BankError::Conflict,
            ExecuteError::Store(e) => BankError::Store(e.to_string()),
        }
    }
}

// ---- commands --------------------------------------------------------------------------

/// Opens an account.
#[derive(Command, Debug, Clone)]
#[command(name = "bank.open_account", output = u64, error = BankError)]
pub struct OpenAccount {
    /// The new account's id.
    pub account: String,
    /// Its owner.
    pub owner: String,
}

/// Deposits money.
#[derive(Command, Debug, Clone)]
#[command(name = "bank.deposit", output = u64, error = BankError)]
pub struct Deposit {
    /// The account.
    pub account: String,
    /// In cents.
    pub amount: u64,
}

/// Withdraws money.
#[derive(Command, Debug, Clone)]
#[command(name = "bank.withdraw", output = u64, error = BankError)]
pub struct Withdraw {
    /// The account.
    pub account: String,
    /// In cents.
    pub amount: u64,
}

impl Handle<OpenAccount> for Account {
    type Error = BankError;
    fn handle(&self, cmd: OpenAccount) -> Result<Vec<AccountEvent>, BankError> {
        if self.open {
            return Err(BankError::AlreadyOpen);
        }
        Ok(vec![AccountOpened {
            account: cmd.account,
            owner: cmd.owner,
        }
        .into()])
    }
}

impl Handle<Deposit> for Account {
    type Error = BankError;
    fn handle(&self, cmd: Deposit) -> Result<Vec<AccountEvent>, BankError> {
        if !self.open {
            return Err(BankError::NotOpen);
        }
        if cmd.amount == 0 {
            return Err(BankError::ZeroAmount);
        }
        Ok(vec![MoneyDeposited {
            account: cmd.account,
            amount: cmd.amount,
        }
        .into()])
    }
}

impl Handle<Withdraw> for Account {
    type Error = BankError;
    fn handle(&self, cmd: Withdraw) -> Result<Vec<AccountEvent>, BankError> {
        if !self.open {
            return Err(BankError::NotOpen);
        }
        if cmd.amount == 0 {
            return Err(BankError::ZeroAmount);
        }
        if cmd.amount > self.balance {
            return Err(BankError::InsufficientFunds {
                balance: self.balance,
                requested: cmd.amount,
            });
        }
        Ok(vec![MoneyWithdrawn {
            account: cmd.account,
            amount: cmd.amount,
        }
        .into()])
    }
}

/// The accounts' repository, a resource of the bus.
pub type Accounts = Repository<Account, MemoryStore>;

/// Loads the account, lets it decide, appends with the loaded version, then dispatches the
/// stored events (with their stored ids) to the projection and the notifications. Returns the
/// account's new version.
async fn execute<C>(
    accounts: &Accounts,
    bus: &Bus,
    meta: &Meta,
    id: &str,
    cmd: C,
) -> Result<u64, BankError>
where
    Account: Handle<C, Error = BankError>,
{
    let committed = accounts.execute(id, cmd, Some(meta)).await?;
    for report in committed.dispatch(bus).await {
        if !report.is_ok() {
            // A handler's failure never fails the command: it is logged and reported.
            tracing::warn!(%report, "a handler failed after the commit");
        }
    }
    Ok(committed.version)
}

/// The one handler of [`OpenAccount`].
#[command_handler]
async fn open_account(
    cmd: OpenAccount,
    accounts: Res<Accounts>,
    bus: Bus,
    meta: Meta,
) -> Result<u64, BankError> {
    tracing::info!(account = %cmd.account, owner = %cmd.owner, "opening account");
    let id = cmd.account.clone();
    execute(&accounts, &bus, &meta, &id, cmd).await
}

/// The one handler of [`Deposit`].
#[command_handler]
async fn deposit(
    cmd: Deposit,
    accounts: Res<Accounts>,
    bus: Bus,
    meta: Meta,
) -> Result<u64, BankError> {
    tracing::info!(account = %cmd.account, amount = cmd.amount, "depositing");
    let id = cmd.account.clone();
    execute(&accounts, &bus, &meta, &id, cmd).await
}

/// The one handler of [`Withdraw`].
#[command_handler]
async fn withdraw(
    cmd: Withdraw,
    accounts: Res<Accounts>,
    bus: Bus,
    meta: Meta,
) -> Result<u64, BankError> {
    tracing::info!(account = %cmd.account, amount = cmd.amount, "withdrawing");
    let id = cmd.account.clone();
    execute(&accounts, &bus, &meta, &id, cmd).await
}

// ---- the projection --------------------------------------------------------------------

/// One row of the balances read model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BalanceRow {
    /// The owner.
    pub owner: String,
    /// In cents.
    pub balance: u64,
}

/// The balances read model: updated live by event handlers, rebuilt from the store with
/// [`events::store::rebuild`]. Idempotent: an event id seen before is ignored, so a redelivery
/// or a replay over live data changes nothing.
#[derive(Default, Debug)]
pub struct Balances(Mutex<BalancesState>);

#[derive(Default, Debug)]
struct BalancesState {
    rows: BTreeMap<String, BalanceRow>,
    applied: HashSet<Uuid>,
}

impl Balances {
    /// A snapshot of every row.
    pub fn rows(&self) -> BTreeMap<String, BalanceRow> {
        self.0.lock().unwrap().rows.clone()
    }

    /// The balance of one account.
    pub fn balance(&self, account: &str) -> Option<u64> {
        self.0.lock().unwrap().rows.get(account).map(|r| r.balance)
    }

    fn update(&self, account: &str, event_id: Uuid, change: impl FnOnce(&mut BalanceRow)) {
        let mut state = self.0.lock().unwrap();
        if !state.applied.insert(event_id) {
            tracing::debug!(account, %event_id, "already applied, skipped");
            return;
        }
        let row = state
            .rows
            .entry(account.to_owned())
            .or_insert_with(|| BalanceRow {
                owner: String::new(),
                balance: 0,
            });
        change(row);
    }
}

impl Projection for Balances {
    type Event = AccountEvent;

    fn reset(&self) {
        *self.0.lock().unwrap() = BalancesState::default();
    }

    fn apply(&self, event: &AccountEvent, stored: &StoredEvent) {
        let id = stored.event_id;
        match event {
            AccountEvent::Opened(e) => {
                self.update(&e.account, id, |r| r.owner.clone_from(&e.owner))
            }
            AccountEvent::Deposited(e) => self.update(&e.account, id, |r| r.balance += e.amount),
            AccountEvent::Withdrawn(e) => self.update(&e.account, id, |r| r.balance -= e.amount),
        }
    }
}

#[event_handler(name = "bank.balances.opened")]
fn balances_on_opened(e: &AccountOpened, balances: Res<Balances>, meta: Meta) {
    balances.update(&e.account, meta.event_id(), |r| {
        r.owner.clone_from(&e.owner)
    });
}

#[event_handler(name = "bank.balances.deposited")]
fn balances_on_deposit(e: &MoneyDeposited, balances: Res<Balances>, meta: Meta) {
    balances.update(&e.account, meta.event_id(), |r| r.balance += e.amount);
}

#[event_handler(name = "bank.balances.withdrawn")]
fn balances_on_withdrawal(e: &MoneyWithdrawn, balances: Res<Balances>, meta: Meta) {
    balances.update(&e.account, meta.event_id(), |r| r.balance -= e.amount);
}

// ---- notifications ---------------------------------------------------------------------

/// Sends messages to account owners (here: keeps them).
#[derive(Default, Debug)]
pub struct Notifier {
    sent: Mutex<Vec<String>>,
}

impl Notifier {
    /// Every message sent.
    pub fn sent(&self) -> Vec<String> {
        self.sent.lock().unwrap().clone()
    }
}

/// Withdrawals of this many cents or more are notified.
pub const LARGE_WITHDRAWAL: u64 = 10_000;

#[event_handler(name = "bank.notify.large_withdrawal")]
async fn notify_large_withdrawal(e: &MoneyWithdrawn, notifier: Res<Notifier>, meta: Meta) {
    if e.amount < LARGE_WITHDRAWAL {
        return;
    }
    let message = format!("large withdrawal of {} cents from {}", e.amount, e.account);
    tracing::info!(event_id = %meta.event_id(), correlation_id = %meta.correlation_id(), "{message}");
    notifier.sent.lock().unwrap().push(message);
}

#[event_handler(name = "bank.notify.welcome")]
async fn welcome(e: &AccountOpened, notifier: Res<Notifier>) {
    tracing::info!(owner = %e.owner, "welcome message sent");
    notifier
        .sent
        .lock()
        .unwrap()
        .push(format!("welcome {}", e.owner));
}

// ---- wiring ----------------------------------------------------------------------------

/// The bus of the bank over `store`: every handler is already linked in, this only provides
/// the resources they ask for.
pub fn bank(store: MemoryStore) -> Result<Bus, BuildError> {
    Bus::builder()
        .resource(Accounts::new(store))
        .resource(Balances::default())
        .resource(Notifier::default())
        .build()
}
