use events::Command;

#[derive(Command)]
struct Open {
    #[command(id)]
    id: String,
}

fn main() {}
