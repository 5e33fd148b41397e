//! Operator commands besides `run`: packet decoding, configuration checks.

pub mod audit;
pub mod channel;
pub mod config;
pub mod contracts;
pub mod health;
pub mod journal;
pub mod ledger;
pub mod packet;
