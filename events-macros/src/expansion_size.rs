//! The size of the generated code: under 30 lines (after rustfmt) per derive and per handler
//! on a one-field event, because logic belongs in `events`, where it is unit-tested.

use proc_macro2::TokenStream;
use quote::quote;

/// Lines of `tokens` once formatted by rustfmt.
fn formatted_lines(tokens: &TokenStream) -> usize {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut rustfmt = Command::new(std::env::var("RUSTFMT").unwrap_or_else(|_| "rustfmt".into()))
        .args(["--edition", "2021", "--emit", "stdout"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("rustfmt runs (it ships with the toolchain)");
    let mut stdin = rustfmt.stdin.take().unwrap();
    stdin.write_all(tokens.to_string().as_bytes()).unwrap();
    drop(stdin);
    let output = rustfmt.wait_with_output().unwrap();
    assert!(output.status.success(), "rustfmt failed on:\n{tokens}");
    let text = String::from_utf8(output.stdout).unwrap();
    if std::env::var_os("EVENTS_PRINT_EXPANSION").is_some() {
        println!("{text}");
    }
    text.lines().filter(|l| !l.trim().is_empty()).count()
}

/// The generated code alone: the attribute's output without the user's function.
fn generated(
    args: TokenStream,
    function: TokenStream,
    expand: fn(TokenStream, TokenStream) -> TokenStream,
) -> TokenStream {
    let all = expand(args, function.clone()).to_string();
    let user = function.to_string();
    assert!(
        all.starts_with(&user),
        "the function comes first, as written"
    );
    all[user.len()..].parse().unwrap()
}

fn assert_small(what: &str, tokens: &TokenStream) {
    let lines = formatted_lines(tokens);
    println!("{what}: {lines} lines");
    assert!(lines < 30, "{what} generates {lines} lines:\n{tokens}");
}

#[test]
fn generated_code_stays_small() {
    let event: syn::DeriveInput = syn::parse_quote!(
        struct CardAdded {
            card: String,
        }
    );
    assert_small("derive(DomainEvent)", &crate::event::expand(&event));
    let event: syn::DeriveInput = syn::parse_quote! {
        #[event(name = "cards.added", version = 2, aggregate = "Library", upcast = v1)]
        struct CardAdded { #[event(aggregate_id)] library: u64 }
    };
    assert_small(
        "derive(DomainEvent) with every option",
        &crate::event::expand(&event),
    );
    let handler = crate::function::expand_attribute::<crate::handler::EventHandler>;
    let sync = generated(
        quote!(),
        quote!(
            fn index(e: &CardAdded, s: Res<Search>) {}
        ),
        handler,
    );
    assert_small("event_handler", &sync);
    let function = quote!(
        async fn mail(e: &CardAdded, m: Res<Mailer>) -> Result<(), E> {
            Ok(())
        }
    );
    let durable = quote!(
        durable,
        name = "cards.mail",
        max_attempts = 8,
        backoff_ms = 250
    );
    assert_small(
        "event_handler(durable)",
        &generated(durable, function, handler),
    );
    let command: syn::DeriveInput = syn::parse_quote!(
        struct Close {
            id: u64,
        }
    );
    assert_small("derive(Command)", &crate::command::expand_derive(&command));
    let routed: syn::DeriveInput = syn::parse_quote!(
        #[command(aggregate = Account)]
        struct Close {
            #[command(id)]
            id: u64,
        }
    );
    assert_small(
        "derive(Command) routed to an aggregate",
        &crate::command::expand_derive(&routed),
    );
    let function = quote!(
        async fn close(c: Close, m: Res<Mailer>) -> Result<(), E> {
            Ok(())
        }
    );
    let view: syn::DeriveInput = syn::parse_quote!(
        #[view(name = "bank_account", durable = "bank.ledger")]
        struct BankAccountView {
            balance: f64,
        }
    );
    assert_small(
        "derive(View) with its durable handler",
        &crate::view::expand(&view),
    );
    assert_small(
        "command_handler",
        &generated(
            quote!(),
            function,
            crate::function::expand_attribute::<crate::command::CommandHandler>,
        ),
    );
}
