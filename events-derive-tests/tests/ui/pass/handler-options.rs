use events::{event_handler, Bus, DomainEvent};

#[derive(DomainEvent)]
struct OrderPlaced;

#[derive(DomainEvent)]
struct InvoiceSent;

#[derive(DomainEvent)]
struct StockReserved;

#[event_handler(name = "billing.send_invoice", order = -10, publishes(InvoiceSent, StockReserved))]
fn send_invoice(_e: &OrderPlaced) {}

#[event_handler(order = 5)]
fn reserve(_e: &OrderPlaced) {}

#[event_handler(name = "billing.trailing", publishes(InvoiceSent,))]
fn trailing_commas(_e: &OrderPlaced) {}

#[event_handler(publishes())]
fn publishes_nothing(_e: &OrderPlaced) {}

fn main() {
    let bus = Bus::builder().build().unwrap();
    assert_eq!(bus.publish(&OrderPlaced).unwrap().ran(), 4);
    let handler = events::catalog().handler("billing.send_invoice").unwrap();
    assert_eq!(handler.order(), -10);
    assert_eq!(handler.publishes(), ["InvoiceSent", "StockReserved"]);
}
