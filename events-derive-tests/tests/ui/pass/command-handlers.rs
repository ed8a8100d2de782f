use events::{command_handler, Bus, Command, Meta, Publisher, Res};

#[derive(Command)]
#[command(name = "bank.open", output = u64, error = String)]
struct Open {
    owner: String,
}

#[derive(Command)]
pub struct Close(pub u64);

mod inner {
    #[derive(events::Command)]
    pub(crate) struct Ping;

    #[events::command_handler]
    fn ping(_: Ping) -> Result<(), events::BoxError> {
        Ok(())
    }
}

#[derive(Command)]
enum Adjust {
    Up(u64),
    Down(u64),
}

#[derive(Command)]
#[command(remote_handler)]
struct Remote;

struct Ids;

#[derive(Debug)]
struct Oops;

impl From<Oops> for String {
    fn from(_: Oops) -> String {
        "oops".into()
    }
}

#[command_handler]
async fn open(cmd: Open, _ids: Res<Ids>, _meta: Meta, _events: Publisher) -> Result<u64, Oops> {
    Ok(cmd.owner.len() as u64)
}

#[command_handler(name = "bank::close")]
fn close(cmd: Close) -> Result<(), std::io::Error> {
    let _ = cmd.0;
    Ok(())
}

#[command_handler]
fn adjust(cmd: Adjust, _bus: Bus) -> Result<(), events::BoxError> {
    match cmd {
        Adjust::Up(_) | Adjust::Down(_) => Ok(()),
    }
}

#[command_handler(remote)]
fn remote(_: Remote) -> Result<(), events::BoxError> {
    Ok(())
}

fn main() {
    let bus = Bus::builder().resource(Ids).build().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        assert_eq!(
            bus.send(Open {
                owner: "Ada".into()
            })
            .await
            .unwrap(),
            3
        );
        bus.send(Close(1)).await.unwrap();
        bus.send(Adjust::Up(2)).await.unwrap();
        bus.send(Remote).await.unwrap();
        bus.send(inner::Ping).await.unwrap();
    });
}
