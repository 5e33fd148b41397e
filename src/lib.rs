//! M2M Connector: an Interledger (ILPv4) connector for machine-to-machine payments.
//!
//! See `ARCHITECTURE.md` for the bird's-eye view. The packet path is
//! `btp` (sessions) → `pipeline` (admission, routing, risk, settle) → `journal`;
//! everything else is a projection of the journal.

pub mod btp;
pub mod ilp;
