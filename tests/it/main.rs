//! The integration tests: one binary, one module per area (rust-analyzer's layout).
//! Everything runs against real sockets on 127.0.0.1.

// Some tests assert `cfg!(feature = "fault-injection")` at run time on purpose: without the
// feature they fail with a message saying how to run them, rather than the crate not building.
#![allow(clippy::assertions_on_constants)]

mod ccp_interop;
mod chain;
mod cli;
mod crash;
mod explorer;
mod fairness;
mod fail_stop;
mod forwarding;
mod interop;
mod journal;
mod journal_cli;
mod late_fulfills;
mod loadgen;
mod rates;
mod routing;
mod settlement;
mod support;
mod tigerbeetle;
