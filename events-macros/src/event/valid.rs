//! The rules of `#[derive(DomainEvent)]` that span several options or the item's shape, checked
//! on the finished model.

use super::ast::{Event, Shape};
use crate::ctxt::Ctxt;

pub fn check(cx: &Ctxt, event: &Event) {
    let generics = &event.input.generics;
    if !generics.params.is_empty() || generics.where_clause.is_some() {
        cx.error_spanned_by(
            generics,
            "`DomainEvent` cannot be derived for a generic type: an event type is one concrete, named fact with its own handler list",
        );
    }
    if let Shape::Union(union_token) = &event.shape {
        cx.error_spanned_by(
            union_token,
            "`DomainEvent` cannot be derived for a union; use a struct or an enum",
        );
    }
    // A bad `version` value was reported already: the rule needs a valid one.
    let version_ok = event.version.key().is_none() || event.version.get().is_some();
    if let (Some(upcast), true) = (event.upcast.get(), version_ok) {
        if event.version.get().copied().unwrap_or(1) == 1 {
            cx.error_spanned_by(
                upcast,
                "an upcaster turns older payloads into the current version: set `version` above 1, like `#[event(version = 2, upcast = ..)]`",
            );
        }
    }
}
