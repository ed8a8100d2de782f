use events::DomainEvent;

#[derive(DomainEvent)]
union Raw {
    _int: u32,
    _float: f32,
}

fn main() {}
