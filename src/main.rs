//! `m2m-connector`: the node and its operator commands.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use m2m_connector::cli;
use m2m_connector::config;
use m2m_connector::demo;
use m2m_connector::node::Node;

/// mimalloc rather than glibc's malloc: journal batches are allocated by the BTP and journal
/// threads and freed by whichever projection drops them last, and glibc's per-arena locks made
/// those cross-thread frees contend with the packet path (BENCHMARKS.md, "Explorer").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// An Interledger (ILPv4) connector for machine-to-machine payments.
///
/// Peers connect over BTP 2.0 WebSockets (BTP_PORT, default 4000); the connector routes ILP
/// Prepares by address prefix, enforces each peer's limits, checks every fulfillment and
/// journals every decision. Health and Prometheus metrics are served on HEALTH_PORT (default
/// 8080). With no command, `run` is assumed.
#[derive(Parser)]
#[command(name = "m2m-connector", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the connector with a configuration file (CONFIG_FILE, default ./config.toml).
    Run(RunArgs),
    /// A local demo: the connector plus two simulated peers sending traffic through it.
    Demo(demo::DemoArgs),
    /// Decode an ILP packet or BTP frame to JSON, or encode JSON back to hex.
    Packet(cli::packet::PacketArgs),
    /// Check a configuration file and print every problem.
    Config(cli::config::ConfigArgs),
    /// Inspect, verify, replay and count the event journal (stop the node first: it holds the lock).
    Journal(cli::journal::JournalArgs),
    /// Compare the TigerBeetle ledger with the journal (`ledger reconcile`).
    Ledger(cli::ledger::LedgerArgs),
    /// Re-derive every settlement decision from the journal and check what was recorded.
    Audit(cli::audit::AuditArgs),
    /// Deploy the payment-channel contracts to an EVM chain (`contracts deploy`).
    Contracts(cli::contracts::ContractsArgs),
    /// Close a payment channel through a running node's admin API (`channel close`).
    Channel(cli::channel::ChannelArgs),
    /// Ask a node on this host whether it is alive (or ready): exit 0 if so (a container's
    /// HEALTHCHECK; no curl needed).
    Health(cli::health::HealthArgs),
}

#[derive(clap::Args, Default)]
struct RunArgs {
    /// Configuration file (TOML). Environment variables override it: NODE_ID, LOG_LEVEL,
    /// BTP_PORT, HEALTH_PORT, JOURNAL_DIR, JOURNAL_SNAPSHOT_EVERY, JOURNAL_RETENTION,
    /// SETTLEMENT_*, TIGERBEETLE_*.
    #[arg(long, short, env = "CONFIG_FILE", default_value = "./config.toml")]
    config: PathBuf,
}

fn main() -> ExitCode {
    m2m_connector::process::disable_transparent_huge_pages();
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Run(RunArgs { config: default_config_path() })) {
        Command::Run(args) => run(args),
        Command::Demo(args) => demo::main(args),
        Command::Packet(args) => cli::packet::run(args),
        Command::Config(args) => cli::config::run(args),
        Command::Journal(args) => cli::journal::run(args),
        Command::Ledger(args) => cli::ledger::run(args),
        Command::Audit(args) => cli::audit::run(args),
        Command::Contracts(args) => cli::contracts::run(args),
        Command::Channel(args) => cli::channel::run(args),
        Command::Health(args) => cli::health::run(args),
    }
}

fn default_config_path() -> PathBuf {
    std::env::var_os("CONFIG_FILE").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("./config.toml"))
}

fn run(args: RunArgs) -> ExitCode {
    let loaded = match config::load(&args.config, &config::Env::from_process()) {
        Ok(loaded) => loaded,
        Err(error) => {
            eprintln!("{error}");
            eprintln!("the connector was not started; `m2m-connector config validate FILE` lists every problem");
            return ExitCode::from(2);
        }
    };
    m2m_connector::init_logging(&loaded.config.node.log_level);
    m2m_connector::fault::install_fail_stop();
    raise_open_files_limit();
    for warning in &loaded.warnings {
        tracing::warn!("config: {warning}");
    }
    let runtime = match m2m_connector::runtime() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let node = match Node::start(loaded.config).await {
            Ok(node) => node,
            Err(error) => {
                tracing::error!("{error:#}");
                return ExitCode::FAILURE;
            }
        };
        m2m_connector::wait_for_signal().await;
        tracing::info!("stopping");
        node.stop().await;
        ExitCode::SUCCESS
    })
}

/// Raises the soft limit of open files to the hard one: every BTP session, unauthenticated
/// connection and Explorer client is a descriptor, and a soft limit of 1024 (a common default)
/// would refuse connections long before the listener's own bounds do.
fn raise_open_files_limit() {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: getrlimit/setrlimit with a pointer to a local, initialised struct.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 || limit.rlim_cur >= limit.rlim_max {
                return;
            }
            let soft = limit.rlim_cur;
            limit.rlim_cur = limit.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                tracing::debug!(from = soft, to = limit.rlim_max, "raised the open files limit");
            } else {
                tracing::warn!(soft, "could not raise the open files limit; connections beyond it are refused");
            }
        }
    }
}
