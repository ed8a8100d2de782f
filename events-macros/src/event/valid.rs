//! The rules of `#[derive(DomainEvent)]` that span several options or the item's shape, checked
//! on the finished model.

use super::ast::Event;
use crate::ctxt::Ctxt;
use crate::registration::check_derivable;

pub fn check(cx: &Ctxt, event: &Event) {
    let why = "an event type is one concrete, named fact with its own handler list";
    check_derivable(cx, event.input, "DomainEvent", why);
    // A bad `version` value was reported already: the rule needs a valid one.
    let version_ok = event.options.version.key().is_none() || event.options.version.get().is_some();
    if let (Some(upcast), true) = (event.options.upcast.get(), version_ok) {
        if event.options.version.get().copied().unwrap_or(1) == 1 {
            cx.error_spanned_by(
                upcast,
                "an upcaster turns older payloads into the current version: set `version` above 1, like `#[event(version = 2, upcast = ..)]`",
            );
        }
    }
}
