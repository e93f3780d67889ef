//! girok: the binary crate. The command line ([`cli`]), the layered configuration
//! ([`config`]), and the composition root ([`compose`]): the one place that builds every part
//! (the engine with its log writer, dataflow, hub and search indexer; the analytics sink; the
//! frontends' state and listeners) from the configuration, starts them, and stops them in
//! order. Everything else lives in the library crates: storage, engine, analytics, frontends.

pub mod cli;
pub mod compose;
pub mod config;
