//! The model of an event type, read from the derive input (its options and its aggregate id
//! field). Problems are reported into the context; the model holds what was valid.

use syn::{Data, DeriveInput, Fields, Ident, LitStr, Member, Type};

use crate::attr::{flag, integer, options, parse_attributes, path, skip_value, string, Attr};
use crate::ctxt::Ctxt;
use crate::registration::member;

pub struct Event<'a> {
    pub input: &'a DeriveInput,
    pub options: EventOptions,
    pub shape: Shape<'a>,
}

options! {
    /// The options of `#[event(..)]` on the type.
    pub struct EventOptions for "event" {
        name: LitStr = string,
        version: u32 = |cx, meta| Ok(integer(cx, meta, 1, i64::from(u32::MAX))?.map(|v| v as u32)),
        aggregate: LitStr = string,
        /// Brings stored payloads of older versions to this one.
        upcast: syn::Path = |cx, meta| {
            let example = "a function `fn(u32, serde_json::Value) -> Result<serde_json::Value, events::BoxError>`";
            path(cx, meta, example)
        },
    }
}

pub enum Shape<'a> {
    Struct {
        aggregate_id: Option<AggregateField<'a>>,
    },
    Enum {
        variants: Vec<(&'a Ident, Option<AggregateField<'a>>)>,
    },
    /// Reported by `valid`.
    Union,
}

/// The field marked `#[event(aggregate_id)]`.
pub struct AggregateField<'a> {
    pub member: Member,
    pub ty: &'a Type,
}

const FIELD_OPTIONS: &[&str] = &["aggregate_id"];

impl<'a> Event<'a> {
    pub fn from_ast(cx: &Ctxt, input: &'a DeriveInput) -> Self {
        let mut options = EventOptions::new();
        parse_attributes(cx, "event", EventOptions::KNOWN, &input.attrs, |meta| {
            if meta.path.is_ident("aggregate_id") {
                cx.error_spanned_by(&meta.path, "`aggregate_id` marks a field: put `#[event(aggregate_id)]` on the field that holds the id");
                skip_value(meta)?;
                return Ok(true);
            }
            options.read(cx, meta)
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
            Data::Union(_) => Shape::Union,
        };
        Event {
            input,
            options,
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
            let member = member(index, field);
            found = Some(AggregateField {
                member,
                ty: &field.ty,
            });
        }
    }
    found
}
