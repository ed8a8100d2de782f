//! The model of an event type, read from the derive input and checked.

use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Fields, Ident, LitStr, Member, Type};

use crate::ctxt::Ctxt;
use crate::options::{integer, set_once, skip_value, string, unknown};

pub struct Event<'a> {
    pub ident: &'a Ident,
    pub name: Option<LitStr>,
    pub version: Option<u32>,
    pub aggregate: Option<LitStr>,
    /// `upcast = path::to::fn`: brings stored payloads of older versions to this one.
    pub upcast: Option<syn::Path>,
    pub shape: Shape<'a>,
}

pub enum Shape<'a> {
    Struct {
        aggregate_id: Option<AggregateField<'a>>,
    },
    Enum {
        variants: Vec<(&'a Ident, Option<AggregateField<'a>>)>,
    },
}

/// The field marked `#[event(aggregate_id)]`.
pub struct AggregateField<'a> {
    pub member: Member,
    pub ty: &'a Type,
}

const CONTAINER_OPTIONS: &[&str] = &["name", "version", "aggregate", "upcast"];
const FIELD_OPTIONS: &[&str] = &["aggregate_id"];

impl<'a> Event<'a> {
    pub fn from_ast(input: &'a DeriveInput) -> syn::Result<Self> {
        let cx = Ctxt::new();
        let generics = &input.generics;
        if !generics.params.is_empty() || generics.where_clause.is_some() {
            cx.error_spanned_by(
                generics,
                "`DomainEvent` cannot be derived for a generic type: an event type is one concrete, named fact with its own handler list",
            );
        }
        let (name, version, aggregate, upcast) = container_options(&cx, input);
        let shape = match &input.data {
            Data::Struct(data) => Shape::Struct {
                aggregate_id: aggregate_field(&cx, &data.fields),
            },
            Data::Enum(data) => Shape::Enum {
                variants: data
                    .variants
                    .iter()
                    .map(|v| (&v.ident, aggregate_field(&cx, &v.fields)))
                    .collect(),
            },
            Data::Union(data) => {
                cx.error_spanned_by(
                    data.union_token,
                    "`DomainEvent` cannot be derived for a union; use a struct or an enum",
                );
                Shape::Struct { aggregate_id: None }
            }
        };
        cx.check()?;
        Ok(Event {
            ident: &input.ident,
            name,
            version: version.map(|o| o as u32),
            aggregate,
            upcast,
            shape,
        })
    }
}

type ContainerOptions = (
    Option<LitStr>,
    Option<i64>,
    Option<LitStr>,
    Option<syn::Path>,
);

fn container_options(cx: &Ctxt, input: &DeriveInput) -> ContainerOptions {
    let (mut name, mut version, mut aggregate, mut upcast) = (None, None, None, None);
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("event")) {
        let parsed = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("name") {
                let v = string(cx, &meta)?;
                set_once(cx, &mut name, &meta, v);
            } else if meta.path.is_ident("version") {
                let v = integer(cx, &meta, 1, i64::from(u32::MAX))?;
                set_once(cx, &mut version, &meta, v);
            } else if meta.path.is_ident("aggregate") {
                let v = string(cx, &meta)?;
                set_once(cx, &mut aggregate, &meta, v);
            } else if meta.path.is_ident("upcast") {
                let v = upcaster(cx, &meta)?;
                set_once(cx, &mut upcast, &meta, v);
            } else if meta.path.is_ident("aggregate_id") {
                cx.error_spanned_by(&meta.path, "`aggregate_id` marks a field: put `#[event(aggregate_id)]` on the field that holds the id");
                skip_value(&meta)?;
            } else {
                unknown(cx, "event", &meta, CONTAINER_OPTIONS)?;
            }
            Ok(())
        });
        if let Err(err) = parsed {
            cx.syn_error(err);
        }
    }
    if let (Some(path), None | Some(1)) = (&upcast, version) {
        cx.error_spanned_by(
            path,
            "an upcaster turns older payloads into the current version: set `version` above 1, like `#[event(version = 2, upcast = ..)]`",
        );
    }
    (name, version, aggregate, upcast)
}

/// `upcast = path::to::fn`.
fn upcaster(cx: &Ctxt, meta: &syn::meta::ParseNestedMeta) -> syn::Result<Option<syn::Path>> {
    let expr: syn::Expr = meta.value()?.parse()?;
    match expr {
        syn::Expr::Path(p) if p.qself.is_none() => Ok(Some(p.path)),
        other => {
            cx.error_spanned_by(
                other,
                "`upcast` names a function `fn(u32, serde_json::Value) -> Result<serde_json::Value, events::BoxError>`, like `upcast = card_added_v1`",
            );
            Ok(None)
        }
    }
}

fn aggregate_field<'a>(cx: &Ctxt, fields: &'a Fields) -> Option<AggregateField<'a>> {
    let mut found: Option<AggregateField<'a>> = None;
    for (index, field) in fields.iter().enumerate() {
        for attr in field.attrs.iter().filter(|a| a.path().is_ident("event")) {
            let parsed = attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("aggregate_id") {
                    if !meta.input.is_empty() && !meta.input.peek(syn::Token![,]) {
                        cx.error_spanned_by(&meta.path, "`aggregate_id` takes no value");
                        skip_value(&meta)?;
                    } else if found.is_some() {
                        cx.error_spanned_by(&meta.path, "only one field can be the `aggregate_id`");
                    } else {
                        let member = match &field.ident {
                            Some(ident) => Member::Named(ident.clone()),
                            None => Member::Unnamed(syn::Index {
                                index: index as u32,
                                span: field.ty.span(),
                            }),
                        };
                        found = Some(AggregateField {
                            member,
                            ty: &field.ty,
                        });
                    }
                } else {
                    unknown(cx, "event", &meta, FIELD_OPTIONS)?;
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
