use events::DomainEvent;

#[derive(DomainEvent)]
struct Created<T> {
    _value: T,
}

fn main() {}
