//! `#[command(aggregate = Type)]`: the command is routed to its aggregate. The derive
//! registers the one generic routing handler (so a `#[command_handler]` for it is a conflicting
//! impl, as with any second handler) and reads the aggregate id from the field marked
//! `#[command(id)]` (per variant in an enum).

use proc_macro2::{Span, TokenStream};
use quote::{quote, ToTokens};
use syn::{Data, DeriveInput, Fields, Ident, Member, Path, Type};

use crate::attr::{flag, options};
use crate::ctxt::Ctxt;
use crate::registration::{location, member};

options! {
    /// The options of `#[command(..)]` on a field.
    pub struct FieldOptions for "command" {
        /// The field holds the aggregate id.
        id: () = |cx, meta| flag(cx, meta, "#[command(id)]"),
    }
}

/// A field marked `#[command(id)]`: its variant (in an enum), its member, and the key as
/// written (for errors).
pub struct IdField {
    pub variant: Option<Ident>,
    pub member: Member,
    pub key: Path,
}

/// The fields marked `#[command(id)]`, at most one per struct or variant.
pub struct IdFields {
    pub fields: Vec<IdField>,
    /// Whether the struct, or every variant of the enum, has one: then `bus.send` can route
    /// the command by itself.
    pub complete: bool,
}

impl IdFields {
    pub fn from_ast(cx: &Ctxt, input: &DeriveInput) -> Self {
        let mut fields = Vec::new();
        let shapes = match &input.data {
            Data::Struct(data) => {
                fields.extend(marked(cx, None, &data.fields));
                1
            }
            Data::Enum(data) => {
                for v in &data.variants {
                    fields.extend(marked(cx, Some(&v.ident), &v.fields));
                }
                data.variants.len()
            }
            Data::Union(_) => 1,
        };
        let complete = fields.len() == shapes;
        IdFields { fields, complete }
    }
}

fn marked(cx: &Ctxt, variant: Option<&Ident>, fields: &Fields) -> Option<IdField> {
    let mut found: Option<IdField> = None;
    for (index, field) in fields.iter().enumerate() {
        let options = FieldOptions::from_attrs(cx, &field.attrs);
        let Some(key) = options.id.key() else {
            continue;
        };
        if found.is_some() {
            cx.error_spanned_by(key, "only one field can be the aggregate `id`");
            continue;
        }
        let member = member(index, field);
        found = Some(IdField {
            variant: variant.cloned(),
            member,
            key: key.clone(),
        });
    }
    found
}

/// The `AggregateCommand` impl (which brings `HandledCommand`, the marker of the one handler),
/// `Addressed` when every shape carries the id (so `bus.send` takes it), and the routing
/// handler's registration.
pub fn expand(
    ident: &Ident,
    aggregate: &Type,
    ids: &IdFields,
    retry_on_conflict: Option<&u32>,
) -> TokenStream {
    let aggregate_id = aggregate_id(ident, ids);
    let retry = retry_on_conflict.map(|n| quote!(const RETRY_ON_CONFLICT: u32 = #n;));
    let addressed = ids.complete.then(|| super::expand::addressed(ident));
    let aggregate_name = aggregate.to_token_stream().to_string().replace(' ', "");
    let name = format!("{ident} -> {aggregate_name}");
    let location = location(ident);
    quote! {
        #[automatically_derived]
        impl ::events::AggregateCommand for #ident {
            type Aggregate = #aggregate;
            #retry
            #aggregate_id
        }
        #addressed
        // `HandledCommand` comes with `AggregateCommand`: a `#[command_handler]` conflicts.
        __events::inventory::submit!(__events::Registration::routed(&__events::route::<#ident>(
            ::core::concat!(::core::module_path!(), "::", #name), #location
        )));
    }
}

/// `aggregate_id`: the marked field of a struct, or of the variant in an enum.
fn aggregate_id(ident: &Ident, ids: &IdFields) -> TokenStream {
    // `mixed_site`: never shadowed by, nor shadowing, the user's names.
    let id = Ident::new("__events_id", Span::mixed_site());
    let signature = quote!(fn aggregate_id(&self) -> ::core::option::Option<::std::string::String>);
    if let [IdField {
        variant: None,
        member,
        ..
    }] = &ids.fields[..]
    {
        return quote!(__events::aggregate_id_field!(#member););
    }
    let arms = ids.fields.iter().map(
        |IdField {
             variant, member, ..
         }| {
            let path = match variant {
                Some(v) => quote!(#ident::#v),
                None => quote!(#ident),
            };
            quote!(#path { #member: #id, .. } => __events::aggregate_id(#id))
        },
    );
    quote! {
        #[allow(unreachable_patterns)]
        #signature { match self { #(#arms,)* _ => ::core::option::Option::None } }
    }
}
