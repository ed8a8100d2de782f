use events::event_handler;

#[event_handler]
struct Indexer {
    _index: Vec<String>,
}

fn main() {}
