use events::{command_handler, Command};

#[derive(Command)]
struct Close;

struct Service;

impl Service {
    #[command_handler]
    fn close(&self, _cmd: Close) -> Result<(), events::BoxError> {
        Ok(())
    }
}

fn main() {}
