//! Operator commands besides `run`: packet decoding, configuration checks.

pub mod config;
pub mod journal;
pub mod ledger;
pub mod packet;
