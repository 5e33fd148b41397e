//! `m2m-loadgen`: a BTP load generator for loopback measurements of a connector (this one, or
//! the JavaScript reference `ilp-connector`), bounded in packet count and time.
//!
//! Roles: `sender` keeps a window of Prepares in flight as one account and checks every reply;
//! `fulfiller` answers Prepares as another account; `both` runs the two in one process (two
//! connections); `echo` is a trivial BTP server that fulfills everything itself, to measure the
//! generator alone (`--echo` starts one in-process for a sender); `flood-replies` is a
//! misbehaving peer that sends replies to requests never made (the fairness test).
//!
//! Output: one JSON line on stdout at the end; progress (`--progress`) and failures on stderr.
//! Exit status: 0 the run completed; 1 a connection failed or was lost; 2 bad arguments; 3
//! `--expect-all-fulfilled` was not met.
//!
//! Modules: [`payload`] (data, fulfillment and condition), [`sender`], [`fulfiller`], [`echo`].

pub mod echo;
pub mod flood;
pub mod fulfiller;
pub mod payload;
pub mod sender;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;

use crate::btp::client;
use crate::config::Secret;
use fulfiller::{Answerer, Counters, FulfillerOptions, FulfillerReport};
use sender::{SenderOptions, SenderReport};

/// Hard upper bound of `--packets`: more than an hour (`SECONDS_MAX`) at 250k packets/s.
pub const PACKETS_MAX: u64 = 1_000_000_000;
/// Hard upper bound of `--seconds`, and how long a run lasts when only `--packets` is given.
pub const SECONDS_MAX: f64 = 3600.0;
/// How long a sender runs when neither `--packets` nor `--seconds` is given.
pub const SECONDS_DEFAULT: f64 = 10.0;
/// Largest `--window`.
pub const WINDOW_MAX: usize = 65_536;

pub const EXIT_LINK_FAILED: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
pub const EXIT_EXPECTATION_FAILED: u8 = 3;

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Sender,
    Fulfiller,
    Both,
    Echo,
    FloodReplies,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Sender => "sender",
            Role::Fulfiller => "fulfiller",
            Role::Both => "both",
            Role::Echo => "echo",
            Role::FloodReplies => "flood-replies",
        }
    }
}

/// A BTP load generator for loopback measurements of an ILP connector.
///
/// The sender keeps WINDOW Prepares in flight until PACKETS are sent or SECONDS have passed,
/// then waits (at most the expiry plus 2 s) for the outstanding replies and prints one JSON
/// line. Every Prepare is unique; its condition is the SHA-256 of a fulfillment that the
/// fulfiller derives from the packet's data.
#[derive(clap::Parser, Debug, Clone)]
#[command(name = "m2m-loadgen", version)]
pub struct Args {
    /// sender: send Prepares; fulfiller: answer them; both: one of each (two connections);
    /// echo: a trivial BTP server on --listen that fulfills everything itself; flood-replies:
    /// authenticate as --username (default carol) and send Fulfills, Rejects and BTP Errors
    /// with random request ids as fast as the connector takes them, for --seconds.
    #[arg(long, value_enum, default_value_t = Role::Sender)]
    pub role: Role,
    /// The connector's BTP WebSocket URL.
    #[arg(long, default_value = "ws://127.0.0.1:4000")]
    pub url: String,
    /// Account (auth_username) of this role [default: alice for a sender, bob for a fulfiller].
    #[arg(long)]
    pub username: Option<String>,
    /// Token (auth_token) of that account [default: <username>-token].
    #[arg(long)]
    pub token: Option<String>,
    /// Account of the fulfiller with --role both.
    #[arg(long, default_value = "bob")]
    pub fulfiller_username: String,
    /// Token of the fulfiller with --role both [default: <fulfiller-username>-token].
    #[arg(long)]
    pub fulfiller_token: Option<String>,
    /// ILP address the Prepares go to.
    #[arg(long, default_value = "test.m2m.bob")]
    pub destination: String,
    /// Append a segment `.p<counter>` to each packet's destination.
    #[arg(long)]
    pub unique_suffix: bool,
    /// Amount of each Prepare, in the sender's units.
    #[arg(long, default_value_t = 1)]
    pub amount: u64,
    /// Each Prepare expires this long after it is built.
    #[arg(long, default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pub expiry_ms: u64,
    /// Prepares kept in flight.
    #[arg(long, default_value_t = 16, value_parser = parse_window)]
    pub window: usize,
    /// Sender: send at most this many Prepares a second (paced from the start of the run; the
    /// window still caps those in flight). Unset: as fast as the window allows. A fixed rate
    /// below what the machine can carry makes CPU per packet comparable between two runs.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub rate: Option<u64>,
    /// Stop after this many Prepares (at most 1,000,000,000).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=PACKETS_MAX))]
    pub packets: Option<u64>,
    /// Stop after this many seconds (at most 3600) [default: 10 if --packets is not given].
    #[arg(long, value_parser = parse_seconds)]
    pub seconds: Option<f64>,
    /// Fulfiller: share of Prepares rejected with F99 (0.0..=1.0).
    #[arg(long, default_value_t = 0.0, value_parser = parse_share)]
    pub reject_share: f64,
    /// Fulfiller: triggeredBy of its Rejects [default: --destination].
    #[arg(long)]
    pub address: Option<String>,
    /// Tokio worker threads: 1 runs everything on one thread and leaves the other cores to the
    /// connector.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub threads: u64,
    /// A progress line per second on stderr (sender).
    #[arg(long)]
    pub progress: bool,
    /// Exit 3, with the reason on stderr, unless every sent packet was fulfilled and none was
    /// lost or timed out.
    #[arg(long)]
    pub expect_all_fulfilled: bool,
    /// Echo: where to listen (127.0.0.1 only).
    #[arg(long, default_value = "127.0.0.1:4100")]
    pub listen: SocketAddr,
    /// Sender: start an in-process echo server (own thread) and send to it instead of --url.
    #[arg(long)]
    pub echo: bool,
    /// Sender: append a line `<condition hex> <fulfillment hex>` to FILE for every valid
    /// Fulfill received, flushed at once (crash tests join it with the connector's journal).
    #[arg(long, value_name = "FILE")]
    pub fulfilled_log: Option<std::path::PathBuf>,
}

fn parse_window(text: &str) -> Result<usize, String> {
    let window: usize = text.parse().map_err(|error| format!("{error}"))?;
    if !(1..=WINDOW_MAX).contains(&window) {
        return Err(format!("must be 1..={WINDOW_MAX}"));
    }
    Ok(window)
}

fn parse_seconds(text: &str) -> Result<f64, String> {
    let seconds: f64 = text.parse().map_err(|error| format!("{error}"))?;
    if !(seconds > 0.0 && seconds <= SECONDS_MAX) {
        return Err(format!("must be more than 0 and at most {SECONDS_MAX}"));
    }
    Ok(seconds)
}

fn parse_share(text: &str) -> Result<f64, String> {
    let share: f64 = text.parse().map_err(|error| format!("{error}"))?;
    if !(0.0..=1.0).contains(&share) {
        return Err("must be 0.0..=1.0".into());
    }
    Ok(share)
}

/// Why a run could not start or finish.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Link(String),
}

impl RunError {
    pub fn exit_code(&self) -> u8 {
        match self {
            RunError::Usage(_) => EXIT_USAGE,
            RunError::Link(_) => EXIT_LINK_FAILED,
        }
    }
}

/// What a run observed: the sender's report, the fulfiller's, or both.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub role: Role,
    pub sender: Option<SenderReport>,
    pub fulfiller: Option<FulfillerReport>,
    pub flood: Option<flood::FloodReport>,
}

impl Outcome {
    /// The one JSON line printed at the end.
    pub fn json_line(&self) -> String {
        if let Some(report) = &self.flood {
            #[derive(Serialize)]
            struct FloodJson<'a> {
                role: &'static str,
                #[serde(flatten)]
                report: &'a flood::FloodReport,
            }
            return serde_json::to_string(&FloodJson { role: self.role.name(), report }).expect("the report serializes");
        }
        let fulfiller = self.fulfiller.as_ref().map(fulfiller_json);
        let line = match &self.sender {
            Some(report) => serde_json::to_string(&SenderJson::new(self.role, report, fulfiller)),
            None => serde_json::to_string(&FulfillerJson {
                role: self.role.name(),
                report: fulfiller.unwrap_or_default(),
            }),
        };
        line.expect("the report serializes")
    }

    /// Why the run did not complete (a link was lost), if it did not.
    pub fn link_error(&self) -> Option<String> {
        if let Some(error) = self.flood.as_ref().and_then(|report| report.error.clone()) {
            return Some(format!("flood: {error}"));
        }
        let sender = self.sender.as_ref().and_then(|report| report.error.clone());
        let fulfiller = self.fulfiller.as_ref().and_then(|report| {
            report
                .error
                .clone()
                .map(|error| format!("fulfiller: {error}"))
        });
        sender.or(fulfiller)
    }

    /// `Ok` if every sent packet was fulfilled and none was lost, else the reason in one line.
    pub fn check_all_fulfilled(&self) -> Result<(), String> {
        let Some(report) = &self.sender else {
            return Err("--expect-all-fulfilled needs a sender (--role sender or both)".into());
        };
        if let Some(error) = self.link_error() {
            return Err(format!("the run did not complete: {error}"));
        }
        if report.sent == 0 {
            return Err("no packet was sent".into());
        }
        let mut problems = Vec::new();
        if report.fulfilled != report.sent {
            problems.push(format!(
                "{} of {} sent packets fulfilled",
                report.fulfilled, report.sent
            ));
        }
        let rejected = report.rejected_total();
        if rejected > 0 {
            let codes: Vec<String> = report
                .rejected
                .iter()
                .map(|(code, count)| format!("{code}×{count}"))
                .collect();
            problems.push(format!("{rejected} rejected ({})", codes.join(" ")));
        }
        if report.fulfill_invalid > 0 {
            problems.push(format!(
                "{} fulfillments did not match their condition",
                report.fulfill_invalid
            ));
        }
        if report.link_errors > 0 {
            problems.push(format!("{} BTP errors", report.link_errors));
        }
        if report.timeouts > 0 {
            problems.push(format!(
                "{} packets got no reply (timeouts)",
                report.timeouts
            ));
        }
        let accounted = report.answered() + report.timeouts;
        if accounted != report.sent {
            problems.push(format!(
                "{} sent but {} accounted for",
                report.sent, accounted
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }
}

#[derive(Serialize)]
struct Latency {
    p50: u64,
    p99: u64,
    p999: u64,
    max: u64,
}

#[derive(Serialize)]
struct SenderJson<'a> {
    role: &'static str,
    sent: u64,
    fulfilled: u64,
    rejected: &'a BTreeMap<String, u64>,
    fulfill_invalid: u64,
    link_errors: u64,
    timeouts: u64,
    seconds: f64,
    packets_per_second: f64,
    latency_us: Latency,
    window: usize,
    late_replies: u64,
    unexpected_frames: u64,
    probes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    fulfiller: Option<FulfillerReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
}

impl<'a> SenderJson<'a> {
    fn new(role: Role, report: &'a SenderReport, fulfiller: Option<FulfillerReport>) -> Self {
        let histogram = &report.latency_us;
        let quantile = |q: f64| {
            if histogram.is_empty() {
                0
            } else {
                histogram.value_at_quantile(q)
            }
        };
        SenderJson {
            role: role.name(),
            sent: report.sent,
            fulfilled: report.fulfilled,
            rejected: &report.rejected,
            fulfill_invalid: report.fulfill_invalid,
            link_errors: report.link_errors,
            timeouts: report.timeouts,
            seconds: round(report.seconds, 1000.0),
            packets_per_second: round(report.packets_per_second(), 10.0),
            latency_us: Latency {
                p50: quantile(0.5),
                p99: quantile(0.99),
                p999: quantile(0.999),
                max: histogram.max(),
            },
            window: report.window,
            late_replies: report.late_replies,
            unexpected_frames: report.unexpected_frames,
            probes: report.probes,
            fulfiller,
            error: report.error.as_deref(),
        }
    }
}

#[derive(Serialize)]
struct FulfillerJson {
    role: &'static str,
    #[serde(flatten)]
    report: FulfillerReport,
}

fn fulfiller_json(report: &FulfillerReport) -> FulfillerReport {
    FulfillerReport {
        seconds: round(report.seconds, 1000.0),
        ..report.clone()
    }
}

fn round(value: f64, scale: f64) -> f64 {
    (value * scale).round() / scale
}

/// The checked plan of a run.
struct Plan {
    sender: Option<SenderOptions>,
    flood: Option<flood::FloodOptions>,
    fulfiller: Option<FulfillerOptions>,
    /// How long a fulfiller or echo runs at most (a sender has its own bounds).
    duration: Duration,
}

fn plan(args: &Args) -> Result<Plan, RunError> {
    let usage = |message: String| RunError::Usage(message);
    let url = url::Url::parse(&args.url)
        .map_err(|error| usage(format!("--url {}: {error}", args.url)))?;
    if url.scheme() != "ws" {
        return Err(usage(format!(
            "--url {}: only ws:// URLs are supported",
            args.url
        )));
    }
    crate::ilp::Address::validate(args.destination.as_bytes())
        .map_err(|error| usage(format!("--destination {}: {error}", args.destination)))?;
    let address = args
        .address
        .clone()
        .unwrap_or_else(|| args.destination.clone());
    crate::ilp::Address::validate(address.as_bytes())
        .map_err(|error| usage(format!("--address {address}: {error}")))?;
    if args.role == Role::Echo && !args.listen.ip().is_loopback() {
        return Err(usage(format!(
            "--listen {}: only loopback addresses",
            args.listen
        )));
    }
    let seconds = match (args.seconds, args.packets) {
        (Some(seconds), _) => seconds,
        (None, Some(_)) => SECONDS_MAX,
        (None, None) => SECONDS_DEFAULT,
    };
    let duration = Duration::from_secs_f64(seconds);
    let fulfilled_log = match &args.fulfilled_log {
        Some(path) => Some(Arc::new(sender::FulfilledLog::open(path).map_err(
            |error| usage(format!("--fulfilled-log {}: {error}", path.display())),
        )?)),
        None => None,
    };
    let token_of = |token: &Option<String>, username: &str| {
        token.clone().unwrap_or_else(|| format!("{username}-token"))
    };
    let sender = matches!(args.role, Role::Sender | Role::Both).then(|| {
        let username = args.username.clone().unwrap_or_else(|| "alice".into());
        SenderOptions {
            url: url.clone(),
            token: token_of(&args.token, &username),
            username,
            destination: args.destination.clone(),
            unique_suffix: args.unique_suffix,
            amount: args.amount,
            expiry_ms: args.expiry_ms,
            window: args.window,
            rate: args.rate,
            packets: args.packets.unwrap_or(PACKETS_MAX),
            duration,
            progress: args.progress,
            fulfilled_log,
        }
    });
    let fulfiller = match args.role {
        Role::Fulfiller => {
            let username = args.username.clone().unwrap_or_else(|| "bob".into());
            Some(FulfillerOptions {
                url: url.clone(),
                token: token_of(&args.token, &username),
                username,
                reject_share: args.reject_share,
                address: address.clone(),
            })
        }
        Role::Both => Some(FulfillerOptions {
            url: url.clone(),
            username: args.fulfiller_username.clone(),
            token: token_of(&args.fulfiller_token, &args.fulfiller_username),
            reject_share: args.reject_share,
            address: address.clone(),
        }),
        Role::Sender | Role::Echo | Role::FloodReplies => None,
    };
    let flood = (args.role == Role::FloodReplies).then(|| {
        let username = args.username.clone().unwrap_or_else(|| "carol".into());
        flood::FloodOptions { url: url.clone(), token: token_of(&args.token, &username), username, duration }
    });
    // A fulfiller alone, or an echo server, runs until stopped: bound it too.
    let duration = match args.seconds {
        Some(_) => duration,
        None => Duration::from_secs_f64(SECONDS_MAX),
    };
    Ok(Plan {
        sender,
        flood,
        fulfiller,
        duration,
    })
}

/// Runs what `args` describes until it ends by itself or `stop` turns true.
pub async fn run(args: &Args, stop: watch::Receiver<bool>) -> Result<Outcome, RunError> {
    let plan = plan(args)?;
    match args.role {
        Role::FloodReplies => {
            let options = plan.flood.expect("a flood plan");
            let report = flood::run(&options, stop)
                .await
                .map_err(|error| link_failed("flood", &options.url, &options.username, error))?;
            Ok(Outcome { role: Role::FloodReplies, sender: None, fulfiller: None, flood: Some(report) })
        }
        Role::Echo => {
            let answerer = Answerer::new(
                args.reject_share,
                args.address.as_deref().unwrap_or(&args.destination),
            )
            .map_err(RunError::Usage)?;
            let listener = tokio::net::TcpListener::bind(args.listen)
                .await
                .map_err(|error| {
                    RunError::Link(format!("cannot listen on {}: {error}", args.listen))
                })?;
            eprintln!(
                "m2m-loadgen echo listening on ws://{}",
                listener
                    .local_addr()
                    .map_err(|error| RunError::Link(error.to_string()))?
            );
            let stop = stop_after(stop, plan.duration);
            let report = echo::serve(listener, Arc::new(answerer), stop).await;
            Ok(Outcome {
                role: Role::Echo,
                sender: None,
                fulfiller: Some(report),
                flood: None,
            })
        }
        Role::Fulfiller => {
            let options = plan.fulfiller.expect("a fulfiller plan");
            let stop = stop_after(stop, plan.duration);
            let report = fulfiller::run(&options, stop).await.map_err(|error| {
                link_failed("fulfiller", &options.url, &options.username, error)
            })?;
            Ok(Outcome {
                role: Role::Fulfiller,
                sender: None,
                fulfiller: Some(report),
                flood: None,
            })
        }
        Role::Sender => {
            let mut options = plan.sender.expect("a sender plan");
            let echo = if args.echo {
                let echo = echo::EchoThread::start().map_err(|error| {
                    RunError::Link(format!("cannot start the echo server: {error}"))
                })?;
                options.url =
                    url::Url::parse(&format!("ws://{}", echo.address)).expect("a valid URL");
                Some(echo)
            } else {
                None
            };
            let report = sender::run(&options, stop)
                .await
                .map_err(|error| link_failed("sender", &options.url, &options.username, error))?;
            let fulfiller = echo.map(echo::EchoThread::finish);
            Ok(Outcome {
                role: Role::Sender,
                sender: Some(report),
                fulfiller,
                flood: None,
            })
        }
        Role::Both => {
            let fulfiller_options = plan.fulfiller.expect("a fulfiller plan");
            let sender_options = plan.sender.expect("a sender plan");
            let answerer =
                Answerer::new(fulfiller_options.reject_share, &fulfiller_options.address)
                    .map_err(RunError::Usage)?;
            let websocket = crate::btp::server::websocket_config(1 << 20);
            let socket = client::connect(
                &fulfiller_options.url,
                &fulfiller_options.username,
                &Secret::new(fulfiller_options.token.as_str()),
                websocket,
            )
            .await
            .map_err(|error| {
                link_failed(
                    "fulfiller",
                    &fulfiller_options.url,
                    &fulfiller_options.username,
                    error,
                )
            })?;
            let (fulfiller_stop, fulfiller_stop_rx) = watch::channel(false);
            let fulfiller = tokio::spawn(fulfiller::serve(
                socket,
                Arc::new(answerer),
                Arc::new(Counters::default()),
                fulfiller_stop_rx,
            ));
            let sent = sender::run(&sender_options, stop).await;
            let _ = fulfiller_stop.send(true);
            let fulfiller_report = fulfiller.await.unwrap_or_else(|error| FulfillerReport {
                error: Some(format!("fulfiller task failed: {error}")),
                ..FulfillerReport::default()
            });
            let report = sent.map_err(|error| {
                link_failed(
                    "sender",
                    &sender_options.url,
                    &sender_options.username,
                    error,
                )
            })?;
            Ok(Outcome {
                role: Role::Both,
                sender: Some(report),
                fulfiller: Some(fulfiller_report),
                flood: None,
            })
        }
    }
}

fn link_failed(role: &str, url: &url::Url, username: &str, error: client::LinkError) -> RunError {
    RunError::Link(format!(
        "{role} could not connect to {url} as {username}: {error}"
    ))
}

/// A stop signal that also turns true after `duration`.
fn stop_after(mut stop: watch::Receiver<bool>, duration: Duration) -> watch::Receiver<bool> {
    let (timed, timed_rx) = watch::channel(*stop.borrow());
    tokio::spawn(async move {
        tokio::select! {
            _ = tokio::time::sleep(duration) => {}
            _ = async { while stop.changed().await.is_ok() { if *stop.borrow() { return; } } std::future::pending::<()>().await } => {}
        }
        let _ = timed.send(true);
    });
    timed_rx
}

/// The binary: runs on a `--threads` runtime, stops on SIGINT or SIGTERM, prints the JSON line.
pub fn main(args: Args) -> ExitCode {
    let runtime = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads as usize)
            .thread_name("loadgen")
            .enable_all()
            .build()
    };
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("m2m-loadgen: cannot start the async runtime: {error}");
            return ExitCode::from(EXIT_LINK_FAILED);
        }
    };
    let outcome = runtime.block_on(async {
        let (stop, stop_rx) = watch::channel(false);
        tokio::spawn(async move {
            crate::process::wait_for_signal().await;
            let _ = stop.send(true);
        });
        run(&args, stop_rx).await
    });
    // Do not wait for tasks still parked on a dead link.
    runtime.shutdown_timeout(Duration::from_millis(100));
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(error) => {
            eprintln!("m2m-loadgen: {error}");
            return ExitCode::from(error.exit_code());
        }
    };
    println!("{}", outcome.json_line());
    if let Some(error) = outcome.link_error() {
        eprintln!("m2m-loadgen: {error}");
        return ExitCode::from(EXIT_LINK_FAILED);
    }
    if args.expect_all_fulfilled {
        if let Err(reason) = outcome.check_all_fulfilled() {
            eprintln!("m2m-loadgen: not all fulfilled: {reason}");
            return ExitCode::from(EXIT_EXPECTATION_FAILED);
        }
    }
    ExitCode::SUCCESS
}
