//! `#[process_manager(..)]` on an `impl` block of a process manager's state: its options and
//! reactions read into a small model (`read`), checked (`check`), then expanded into the
//! `ProcessManager` impl and the registrations (`expand`), all calling `events::__private`.

use proc_macro2::{Ident, Span, TokenStream};
use quote::{quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::{FnArg, ImplItem, ImplItemFn, ItemImpl, LitStr, Path, Type};

use crate::attr::{flag, options, path, string, type_list};
use crate::ctxt::Ctxt;
use crate::registration::{sealed, Derive, Kind};

options! {
    /// The options of `#[process_manager(..)]`.
    pub struct Options for "process_manager" {
        name: LitStr = string,
        association: Path = |cx, meta| path(cx, meta, "the event field that holds the instance's id"),
        correlation: () = |cx, meta| flag(cx, meta, "#[process_manager(name = \"..\", correlation)]"),
        sends: Vec<Type> = |cx, meta| type_list(cx, meta, "command types", "CreateRecord, NotifyOwner"),
        delete_completed: () = |cx, meta| flag(cx, meta, "#[process_manager(name = \"..\", delete_completed)]"),
    }
}

/// What a reaction does to its instance.
#[derive(Clone, Copy, PartialEq)]
enum Stage {
    Start,
    Continue,
    Complete,
}

/// One reaction: a method `fn(&mut self, e: &E, ..)`.
struct Reaction<'a> {
    method: &'a ImplItemFn,
    stage: Stage,
    event: Option<&'a Type>,
    /// Per parameter after the event: `None` for the `&mut Reaction<Self>`, else an extractor.
    params: Vec<Option<&'a Type>>,
}

struct Model<'a> {
    options: Options,
    ty: &'a Type,
    reactions: Vec<Reaction<'a>>,
}

/// Expands the attribute on `input`; the `impl` block is always emitted (without the
/// `#[start]`/`#[complete]` markers), so the rest of the crate compiles against it.
pub fn expand(args: TokenStream, input: TokenStream) -> TokenStream {
    let item = match syn::parse2::<ItemImpl>(input.clone()) {
        Ok(item) => item,
        Err(_) => {
            let message = "`#[process_manager]` goes on an `impl` block of the state type: `#[process_manager(name = \"..\", association = field)] impl MyProcess { .. }`";
            let mut tokens = syn::Error::new(Span::call_site(), message).into_compile_error();
            tokens.extend(input);
            return tokens;
        }
    };
    let cx = Ctxt::new();
    let model = read(&cx, args, &item);
    check(&cx, &model, &item);
    let cleaned = strip_markers(&item);
    let generated = cx.finish(|| generate(&model), TokenStream::new);
    quote!(#cleaned #generated)
}

fn marker(method: &ImplItemFn) -> Option<(&syn::Attribute, Stage)> {
    method.attrs.iter().find_map(|a| {
        if a.path().is_ident("start") {
            Some((a, Stage::Start))
        } else if a.path().is_ident("complete") {
            Some((a, Stage::Complete))
        } else {
            None
        }
    })
}

fn read<'a>(cx: &Ctxt, args: TokenStream, item: &'a ItemImpl) -> Model<'a> {
    let options = Options::from_args(cx, args);
    let mut reactions = Vec::new();
    for impl_item in &item.items {
        let ImplItem::Fn(method) = impl_item else {
            cx.error_spanned_by(impl_item, "a `#[process_manager]` block holds only its reactions (`fn(&mut self, e: &Event, ..)`): move other items to another `impl` block");
            continue;
        };
        let markers: Vec<_> = method
            .attrs
            .iter()
            .filter(|a| a.path().is_ident("start") || a.path().is_ident("complete"))
            .collect();
        if markers.len() > 1 {
            cx.error_spanned_by(
                markers[1],
                "a reaction is either `#[start]` or `#[complete]`, not both",
            );
        }
        let stage = marker(method).map_or(Stage::Continue, |(_, s)| s);
        reactions.push(reaction(cx, method, stage));
    }
    Model {
        options,
        ty: &item.self_ty,
        reactions,
    }
}

fn reaction<'a>(cx: &Ctxt, method: &'a ImplItemFn, stage: Stage) -> Reaction<'a> {
    let sig = &method.sig;
    let mut inputs = sig.inputs.iter();
    match inputs.next() {
        Some(FnArg::Receiver(r)) if r.reference.is_some() && r.mutability.is_some() => {}
        Some(other) => {
            cx.error_spanned_by(other, "a reaction takes the state as `&mut self` first")
        }
        None => cx.syn_error(syn::Error::new(
            sig.paren_token.span.join(),
            "a reaction takes `&mut self, e: &Event`",
        )),
    }
    let event = match inputs.next() {
        Some(FnArg::Typed(pat)) => match &*pat.ty {
            Type::Reference(r) if r.mutability.is_none() => Some(&*r.elem),
            other => {
                cx.error_spanned_by(
                    other,
                    "a reaction takes the event as `&E` after `&mut self`",
                );
                None
            }
        },
        _ => {
            cx.syn_error(syn::Error::new(
                sig.paren_token.span.join(),
                "a reaction takes the event as its second parameter: `fn on(&mut self, e: &Event)`",
            ));
            None
        }
    };
    let mut params = Vec::new();
    let mut context = false;
    for arg in inputs {
        let FnArg::Typed(pat) = arg else { continue };
        match &*pat.ty {
            Type::Reference(r) if r.mutability.is_some() => {
                if context {
                    cx.error_spanned_by(&pat.ty, "a reaction takes one `&mut Reaction<Self>`");
                }
                context = true;
                params.push(None);
            }
            ty => params.push(Some(ty)),
        }
    }
    if let Some(generic) = sig.generics.params.first() {
        cx.error_spanned_by(
            generic,
            "a reaction cannot be generic: it reacts to one event type",
        );
    }
    Reaction {
        method,
        stage,
        event,
        params,
    }
}

/// The rules between the options and the reactions.
fn check(cx: &Ctxt, model: &Model, item: &ItemImpl) {
    let o = &model.options;
    if o.name.key().is_none() {
        cx.error_spanned_by(&item.self_ty, "a process manager needs a stable name: `#[process_manager(name = \"orders.fulfilment\", ..)]` (its checkpoint)");
    }
    match (o.association.key(), o.correlation.key()) {
        (Some(_), Some(key)) => cx.error_spanned_by(key, "a process manager is keyed either by an event field (`association = ..`) or by the correlation id (`correlation`), not both"),
        (None, None) => cx.error_spanned_by(&item.self_ty, "say how events find their instance: `association = field` (a field of every event it handles) or `correlation`"),
        _ => {}
    }
    if let Some(generics) = item.generics.params.first() {
        cx.error_spanned_by(generics, "a process manager cannot be generic");
    }
    if !model.reactions.iter().any(|r| r.stage == Stage::Start) {
        cx.error_spanned_by(&item.self_ty, "a process manager needs a reaction marked `#[start]`: nothing would ever start an instance");
    }
    let mut seen: Vec<String> = Vec::new();
    for r in &model.reactions {
        if let Some(event) = r.event {
            let key = event.to_token_stream().to_string();
            if seen.contains(&key) {
                cx.error_spanned_by(
                    event,
                    "a process manager reacts to each event type once: merge the two reactions",
                );
            }
            seen.push(key);
        }
    }
}

/// The `impl` block as written, without the reactions' stage markers.
fn strip_markers(item: &ItemImpl) -> ItemImpl {
    let mut item = item.clone();
    for impl_item in &mut item.items {
        if let ImplItem::Fn(method) = impl_item {
            method
                .attrs
                .retain(|a| !a.path().is_ident("start") && !a.path().is_ident("complete"));
        }
    }
    item
}

fn generate(model: &Model) -> TokenStream {
    let o = &model.options;
    let ty = model.ty;
    let name = o.name.get().expect("checked");
    let state_view = LitStr::new(&format!("process:{}", name.value()), name.span());
    let outbox_view = LitStr::new(&format!("commands:{}", name.value()), name.span());
    let on_complete = if o.delete_completed.get().is_some() {
        quote!(::events::process::Completion::Delete)
    } else {
        quote!(::events::process::Completion::Keep)
    };
    let reactions: Vec<_> = model
        .reactions
        .iter()
        .map(|r| reaction_fn(model, r))
        .collect();
    let variants = model.reactions.iter().filter_map(|r| r.event).map(|e| {
        quote_spanned!(e.span()=> __events::Variant {
            name: <#e as ::events::DomainEvent>::NAME,
            version: <#e as ::events::DomainEvent>::VERSION,
            tag: <#e as ::events::DomainEvent>::NAME,
        })
    });
    // Each event it handles is stored when published, as for a durable handler of its own.
    let stored = model
        .reactions
        .iter()
        .filter_map(|r| r.event)
        .enumerate()
        .map(|(i, e)| {
            let stored = quote::format_ident!("__EVENTS_STORED_{}", i);
            let encode = quote_spanned!(e.span()=> __events::encode::<#e>);
            quote! {
                static #stored: __events::StoredFor<#e> = __events::StoredFor::new(#name, #encode);
                __events::inventory::submit!(__events::Registration::stored(&#stored));
            }
        });
    let handled_by = model
        .reactions
        .iter()
        .filter_map(|r| r.event)
        .map(|e| quote_spanned!(e.span()=> impl ::events::process::HandledBy<#ty> for #e {}));
    let requires = model
        .reactions
        .iter()
        .flat_map(|r| r.params.iter().flatten())
        .map(|t| quote_spanned!(t.span()=> <#t as __events::FromContext>::REQUIRES));
    let sends = o.sends.get().cloned().unwrap_or_default();
    let sent_by = sends
        .iter()
        .map(|c| quote_spanned!(c.span()=> impl ::events::process::SentBy<#ty> for #c {}));
    let routes = sends.iter().map(|c| {
        let route = quote_spanned!(c.span()=> __events::command_route::<#c>());
        quote!(__events::inventory::submit!(#route);)
    });
    let send_names = sends
        .iter()
        .map(|c| quote_spanned!(c.span()=> <#c as ::events::Command>::NAME));
    let input: syn::DeriveInput = syn::parse_quote!(
        struct __EventsProcessInput;
    );
    let input_event = Derive {
        kind: Kind::Event,
        input: &input,
        name: Some(name),
        registry_options: None,
        items: TokenStream::new(),
        after: None,
    }
    .expand();
    let location = quote_spanned!(ty.span()=>
        __events::Location::new(::core::file!(), ::core::line!(), ::core::module_path!())
    );
    sealed(quote! {
        struct __EventsProcessInput;
        #input_event
        __events::inventory::submit!(__events::SetVariants {
            set: #name,
            variants: &[#(#variants),*],
        });
        static __EVENTS_HANDLER: __events::Handler<__EventsProcessInput> = __events::Handler::new(
            #name, 0, __events::Call::Durable(__events::process_call::<#ty>),
            &[#(#requires),*], &[], #location,
        );
        __events::inventory::submit!(__events::Registration::event(&__EVENTS_HANDLER));
        #[automatically_derived]
        impl ::events::process::ProcessManager for #ty {
            const NAME: &'static str = #name;
            const ON_COMPLETE: ::events::process::Completion = #on_complete;
            const STATE_VIEW: &'static str = #state_view;
            const OUTBOX_VIEW: &'static str = #outbox_view;
            const REACTIONS: &'static [__events::ReactionFn<Self>] = &[#(#reactions),*];
        }
        #(#sent_by)*
        #(#handled_by)*
        #(#stored)*
        #(#routes)*
        __events::inventory::submit!(__events::process_entry::<#ty>(&[#(#send_names),*]));
    })
}

/// The table entry of one reaction: its key (the association id) and its call.
fn reaction_fn(model: &Model, r: &Reaction) -> TokenStream {
    let ty = model.ty;
    let event = r.event.expect("checked");
    let method = &r.method.sig.ident;
    let method_name = method.to_string();
    let local = |name: &str| Ident::new(name, Span::mixed_site());
    let (payload, meta, state, out, cx, e) = (
        local("__events_payload"),
        local("__events_meta"),
        local("__events_state"),
        local("__events_out"),
        local("__events_cx"),
        local("__events_e"),
    );
    let stage = match r.stage {
        Stage::Start => quote!(Start),
        Stage::Continue => quote!(Continue),
        Stage::Complete => quote!(Complete),
    };
    // The association id: a field every handled event must carry, read where the user named
    // it, so a missing field is "no field `run_id` on type `E`" on the event's type.
    let key = match model.options.association.get() {
        Some(field) => {
            // Spanned on the event type: "no field `run` on type `E`" points at `&E` in the
            // reaction that takes an event without it.
            let field = match field.get_ident() {
                Some(ident) => Ident::new(&ident.to_string(), event.span()).to_token_stream(),
                None => field.to_token_stream(),
            };
            let read = quote_spanned!(event.span()=> &#e.#field);
            let to_id = quote_spanned!(event.span()=> __events::aggregate_id(#read));
            quote! {
                let #e: #event = __events::serde_json::from_value(#payload.clone())?;
                ::core::result::Result::Ok(#to_id.unwrap_or_default())
            }
        }
        None => quote! {
            let _ = #payload;
            ::core::result::Result::Ok(::std::string::ToString::to_string(&#meta.correlation_id()))
        },
    };
    let args: Vec<_> = (0..r.params.len())
        .map(|i| local(&format!("__events_arg{i}")))
        .collect();
    let extract = r.params.iter().zip(&args).map(|(p, arg)| match p {
        Some(t) => quote_spanned!(t.span()=> let #arg = __events::extract::<#t>(#cx)?;),
        None => quote!(let #arg = &mut *#out;),
    });
    let is_async = r.method.sig.asyncness.is_some();
    let await_ = is_async.then(|| quote!(.await));
    let ret = quote_spanned!(r.method.sig.output.span()=> __events_ret);
    let check_return = quote_spanned!(r.method.sig.output.span()=> __events::into_outcome(#ret));
    let decode =
        quote_spanned!(event.span()=> __events::serde_json::from_value::<#event>(#payload.clone()));
    quote! {
        __events::ReactionFn {
            name: #method_name,
            event: <#event as ::events::DomainEvent>::NAME,
            stage: ::events::process::Stage::#stage,
            key: |#payload, #meta| { let _ = &#meta; #key },
            call: |#state, #payload, #out, #cx| __events::boxed(async move {
                let #e: #event = #decode.map_err(|e| ::std::boxed::Box::new(
                    __events::FailureCause::Decode(::std::string::ToString::to_string(&e))))?;
                #(#extract)*
                let #ret = <#ty>::#method(#state, &#e, #(#args),*)#await_;
                #check_return
            }),
        }
    }
}
