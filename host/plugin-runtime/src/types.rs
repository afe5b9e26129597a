//! The plain Rust forms of the values passed to and returned by plugins: the contract's types,
//! defined once in `ponder-contract` and re-exported here. Their JSON shapes serve
//! `ponder plugins run`, native plugins and the SDK alike.

pub use ponder_contract::{
    Candidate, JudgeOutcome, JudgeRequest, Message, OutputFormat, Pair, Parsed, PluginFailure,
    Split,
};
