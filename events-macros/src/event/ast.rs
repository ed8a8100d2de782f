//! The model of an event type, read from the derive input (its options and its aggregate id
//! field). Problems are reported into the context; the model holds what was valid.

use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Fields, Ident, LitStr, Member, Type};

use crate::attr::{flag, integer, parse_attributes, path, string, Attr};
use crate::ctxt::Ctxt;

pub struct Event<'a> {
    pub input: &'a DeriveInput,
    pub ident: &'a Ident,
    pub name: Attr<LitStr>,
    pub version: Attr<u32>,
    pub aggregate: Attr<LitStr>,
    /// `upcast = path::to::fn`: brings stored payloads of older versions to this one.
    pub upcast: Attr<syn::Path>,
    pub shape: Shape<'a>,
}

pub enum Shape<'a> {
    Struct {
        aggregate_id: Option<AggregateField<'a>>,
    },
    Enum {
        variants: Vec<(&'a Ident, Option<AggregateField<'a>>)>,
    },
    Union(&'a syn::token::Union),
}

/// The field marked `#[event(aggregate_id)]`.
pub struct AggregateField<'a> {
    pub member: Member,
    pub ty: &'a Type,
}

const CONTAINER_OPTIONS: &[&str] = &["name", "version", "aggregate", "upcast"];
const FIELD_OPTIONS: &[&str] = &["aggregate_id"];

impl<'a> Event<'a> {
    pub fn from_ast(cx: &Ctxt, input: &'a DeriveInput) -> Self {
        let mut name = Attr::none("name");
        let mut version = Attr::none("version");
        let mut aggregate = Attr::none("aggregate");
        let mut upcast = Attr::none("upcast");
        parse_attributes(cx, "event", CONTAINER_OPTIONS, &input.attrs, |meta| {
            if name.is(meta) {
                name.set(cx, meta, string(cx, meta)?);
            } else if version.is(meta) {
                let v = integer(cx, meta, 1, i64::from(u32::MAX))?;
                version.set(cx, meta, v.map(|v| v as u32));
            } else if aggregate.is(meta) {
                aggregate.set(cx, meta, string(cx, meta)?);
            } else if upcast.is(meta) {
                let example = "a function `fn(u32, serde_json::Value) -> Result<serde_json::Value, events::BoxError>`";
                upcast.set(cx, meta, path(cx, meta, example)?);
            } else if meta.path.is_ident("aggregate_id") {
                cx.error_spanned_by(&meta.path, "`aggregate_id` marks a field: put `#[event(aggregate_id)]` on the field that holds the id");
                crate::attr::skip_value(meta)?;
            } else {
                return Ok(false);
            }
            Ok(true)
        });
        let shape = match &input.data {
            Data::Struct(data) => Shape::Struct {
                aggregate_id: aggregate_field(cx, &data.fields),
            },
            Data::Enum(data) => Shape::Enum {
                variants: data
                    .variants
                    .iter()
                    .map(|v| (&v.ident, aggregate_field(cx, &v.fields)))
                    .collect(),
            },
            Data::Union(data) => Shape::Union(&data.union_token),
        };
        Event {
            input,
            ident: &input.ident,
            name,
            version,
            aggregate,
            upcast,
            shape,
        }
    }
}

fn aggregate_field<'a>(cx: &Ctxt, fields: &'a Fields) -> Option<AggregateField<'a>> {
    let mut found: Option<AggregateField<'a>> = None;
    for (index, field) in fields.iter().enumerate() {
        let mut marked = Attr::none("aggregate_id");
        parse_attributes(cx, "event", FIELD_OPTIONS, &field.attrs, |meta| {
            if !marked.is(meta) {
                return Ok(false);
            }
            let usage = "#[event(aggregate_id)]";
            let given = flag(cx, meta, usage)?;
            if given.is_some() && found.is_some() {
                cx.error_spanned_by(&meta.path, "only one field can be the `aggregate_id`");
            }
            marked.set(cx, meta, given);
            Ok(true)
        });
        if marked.get().is_some() && found.is_none() {
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
    }
    found
}
