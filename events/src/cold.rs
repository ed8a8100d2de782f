//! Out-of-line drops for what the hot paths rarely hold: the smallest piece of the core, with
//! no imports of the crate, so the leaves (metadata, reports, errors) need nothing above it.

use std::mem::ManuallyDrop;
use std::sync::OnceLock;

/// Drops what a hot path rarely holds, out of line, so the check alone stays inline.
#[cold]
#[inline(never)]
pub(crate) fn drop_cold<T>(value: T) {
    drop(value);
}

/// A `OnceLock` whose drop is one inline check, its value dropped out of line: the hot paths
/// that never fill it (most dispatches) pay a load and a branch.
pub(crate) struct ColdCell<T>(ManuallyDrop<OnceLock<T>>);

impl<T> ColdCell<T> {
    #[inline]
    pub(crate) const fn new() -> Self {
        Self(ManuallyDrop::new(OnceLock::new()))
    }

    pub(crate) fn with(value: T) -> Self {
        Self(ManuallyDrop::new(OnceLock::from(value)))
    }

    #[inline]
    pub(crate) fn get(&self) -> Option<&T> {
        self.0.get()
    }

    #[inline]
    pub(crate) fn get_or_init(&self, init: impl FnOnce() -> T) -> &T {
        self.0.get_or_init(init)
    }
}

impl<T> Drop for ColdCell<T> {
    #[inline]
    fn drop(&mut self) {
        if self.0.get().is_some() {
            // What is left behind is empty, and `ManuallyDrop` never drops it.
            drop_cold(std::mem::take(&mut *self.0));
        }
    }
}
