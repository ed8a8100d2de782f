//! What handlers did, in order: a resource the dispatch tests give their buses.

use std::sync::Mutex;

/// Lines pushed by handlers, in the order they ran.
#[derive(Default)]
pub struct Journal(Mutex<Vec<String>>);

impl Journal {
    /// Adds a line.
    pub fn push(&self, line: impl Into<String>) {
        self.0.lock().unwrap().push(line.into());
    }

    /// The lines so far; the journal is left empty.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut self.0.lock().unwrap())
    }
}
