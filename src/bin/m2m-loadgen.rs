//! `m2m-loadgen`: a BTP load generator for loopback measurements of an ILP connector.
//! Everything lives in `m2m_connector::loadgen`; `--help` lists the options.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    m2m_connector::loadgen::main(m2m_connector::loadgen::Args::parse())
}
