use events::Command;

#[derive(Command)]
struct Transfer<T> {
    amount: T,
}

fn main() {}
