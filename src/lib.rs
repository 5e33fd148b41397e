//! M2M Connector: an Interledger (ILPv4) connector for machine-to-machine payments.
//!
//! See `ARCHITECTURE.md` for the bird's-eye view. The packet path is
//! `btp` (sessions) → `pipeline` (admission, routing, risk, settle) → `journal`;
//! everything else is a projection of the journal.

pub mod btp;
pub mod cli;
pub mod config;
pub mod demo;
pub mod explorer;
pub mod fault;
pub mod health;
pub mod http;
pub mod ilp;
pub mod internal_events;
pub mod journal;
pub mod loadgen;
pub mod metrics;
pub mod node;
pub mod pipeline;
pub mod process;
pub mod projections;
pub mod rates;
pub mod settlement;

pub use process::{init_logging, runtime, wait_for_signal};
