//! Compile-time tests of the `events` macros live in `tests/`.
