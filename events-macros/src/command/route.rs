//! `#[command(aggregate = Type)]`: the command is routed to its aggregate. The derive
//! registers the one generic routing handler (so a `#[command_handler]` for it is a conflicting
//! impl, as with any second handler) and reads the aggregate id from the field marked
//! `#[command(id)]` (per variant in an enum).

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Fields, Member, Type};

use crate::ctxt::Ctxt;
use crate::options::{skip_value, unknown};

const FIELD_OPTIONS: &[&str] = &["id"];

/// The fields marked `#[command(id)]`: `(variant, member)` per struct or variant that has one.
pub struct IdFields(Vec<(Option<syn::Ident>, Member)>);

pub fn id_fields(cx: &Ctxt, input: &DeriveInput) -> IdFields {
    let mut found = Vec::new();
    match &input.data {
        Data::Struct(data) => {
            if let Some(member) = marked(cx, &data.fields) {
                found.push((None, member));
            }
        }
        Data::Enum(data) => {
            for v in &data.variants {
                if let Some(member) = marked(cx, &v.fields) {
                    found.push((Some(v.ident.clone()), member));
                }
            }
        }
        Data::Union(_) => {}
    }
    IdFields(found)
}

fn marked(cx: &Ctxt, fields: &Fields) -> Option<Member> {
    let mut found: Option<Member> = None;
    for (index, field) in fields.iter().enumerate() {
        for attr in field.attrs.iter().filter(|a| a.path().is_ident("command")) {
            let parsed = attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("id") {
                    if !meta.input.is_empty() && !meta.input.peek(syn::Token![,]) {
                        cx.error_spanned_by(&meta.path, "`id` takes no value");
                        skip_value(&meta)?;
                    } else if found.is_some() {
                        cx.error_spanned_by(&meta.path, "only one field can be the aggregate `id`");
                    } else {
                        found = Some(match &field.ident {
                            Some(ident) => Member::Named(ident.clone()),
                            None => Member::Unnamed(syn::Index {
                                index: index as u32,
                                span: field.ty.span(),
                            }),
                        });
                    }
                } else {
                    unknown(cx, "command", &meta, FIELD_OPTIONS)?;
                }
                Ok(())
            });
            if let Err(err) = parsed {
                cx.syn_error(err);
            }
        }
    }
    found
}

/// A routed command's handler is generated: it declares no output, error or remote handler of
/// its own; and a marked id needs `aggregate`.
pub fn check(
    cx: &Ctxt,
    aggregate: Option<&Type>,
    ids: &IdFields,
    declared: [&Option<Type>; 2],
    remote: bool,
) {
    if aggregate.is_some() {
        for ty in declared.into_iter().flatten() {
            cx.error_spanned_by(
                ty,
                "a command routed to its aggregate returns the aggregate's version (`u64`) or `events::ExecuteError<..>` of the aggregate's `Handle::Error`: remove `output` and `error`",
            );
        }
        if remote {
            cx.error_spanned_by(
                aggregate,
                "a command routed to its aggregate is handled where it is defined: remove `remote_handler`",
            );
        }
    } else if let Some((variant, member)) = ids.0.first() {
        let at = variant.as_ref().map_or(quote!(#member), |v| quote!(#v));
        cx.error_spanned_by(
            at,
            "`#[command(id)]` marks the aggregate id of a command routed to its aggregate: add `#[command(aggregate = MyAggregate)]` to the command",
        );
    }
}

/// The routing handler, the `AggregateCommand` impl and the marker of the one handler.
pub fn expand(ident: &syn::Ident, aggregate: &Type, ids: &IdFields) -> TokenStream {
    let arms = ids.0.iter().map(|(variant, member)| {
        let path = match variant {
            Some(v) => quote!(#ident::#v),
            None => quote!(#ident),
        };
        quote!(#path { #member: __events_id, .. } => ::events::__private::aggregate_id(__events_id))
    });
    let services = quote_spanned!(aggregate.span()=>
        <<#aggregate as ::events::Handle<#ident>>::Services as ::events::Services>::REQUIRES
    );
    quote! {
        #[automatically_derived]
        impl ::events::AggregateCommand for #ident {
            type Aggregate = #aggregate;
            #[allow(unreachable_patterns)]
            fn aggregate_id(&self) -> ::core::option::Option<::std::string::String> {
                match self { #(#arms,)* _ => ::core::option::Option::None }
            }
        }

        static __EVENTS_COMMAND_HANDLER: ::events::__private::CommandHandler<#ident> =
            ::events::__private::CommandHandler::new(
                ::core::concat!(::core::module_path!(), "::", ::core::stringify!(#ident), " -> ", ::core::stringify!(#aggregate)),
                ::events::__private::CommandCall::Async(::events::__private::route_command::<#ident>),
                &[
                    ::core::option::Option::Some(::events::__private::Requirement::resource::<::events::sourcing::SharedStore>()),
                    #services,
                ],
                ::events::__private::Location::new(::core::file!(), ::core::line!(), ::core::module_path!()),
            );

        ::events::__private::inventory::submit! {
            __EventsCommandSlot::new(&__EVENTS_COMMAND_HANDLER)
        }

        #[automatically_derived]
        impl ::events::HandledCommand for #ident {}
    }
}
