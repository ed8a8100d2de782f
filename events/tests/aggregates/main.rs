//! Aggregates, one binary: recording aggregates, rebuilding and replaying streams, projections
//! and commands on an aggregate (`aggregate`), and snapshots (`snapshots`).

mod aggregate;
mod snapshots;
