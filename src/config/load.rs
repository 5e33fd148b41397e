//! Reading the configuration: a TOML file plus environment overrides, turned into a [`Config`].
//!
//! Input: the file's text and an [`Env`] (the environment as plain data, so tests never touch
//! the process environment). Output: the validated [`Config`] and its warnings, or every
//! problem found, each with its path (`peers[1].credit_limit`, `env BTP_PORT`).
//!
//! Two passes. Serde reads the file into `raw` structs (`deny_unknown_fields`, every key
//! optional), through `serde_path_to_error`, so a problem with the file's shape (a syntax
//! error, an unknown key, a value of the wrong type) comes with its path, and an unknown key
//! with the closest known one (`strsim`). Serde stops at the first such problem. Then one
//! validation pass turns the raw values into a [`Config`]: defaults, ranges, formats,
//! environment overrides and the checks across entries, reporting every problem it finds with
//! its path, so an operator fixing a config gets the whole list at once.
//!
//! This module never echoes a secret: messages about tokens name the key, never the value, and
//! URLs (which may carry API keys) are never quoted back.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use toml::Value;

use super::{
    Config, EvmSettlementConfig, ExplorerConfig, RoutingConfig, JournalConfig, NodeConfig, Retention, OutgoingLink, PeerConfig, PeerSettlementConfig,
    RateConfig, RateFeedConfig, RateFeedKind, Relation, RouteConfig, Secret, SettlementConfig, SettlementDirection, TigerBeetleConfig,
    EVM_CONFIRMATIONS_DEFAULT, EVM_POLL_INTERVAL_MS_DEFAULT, TIGERBEETLE_BATCH_MAX_DEFAULT,
};

/// Where the file is read from when neither the command line nor `CONFIG_FILE` says.
pub const CONFIG_FILE_DEFAULT: &str = "config.toml";

/// The `SETTLEMENT_*` and `TIGERBEETLE_*` variables we read; any other name with those
/// prefixes is probably a typo, so it gets a warning.
pub const ENV_KNOWN: &[&str] = &[
    "SETTLEMENT_ENABLED",
    "SETTLEMENT_EVM_RPC_URL",
    "SETTLEMENT_EVM_CHAIN_ID",
    "SETTLEMENT_EVM_CONFIRMATIONS",
    "SETTLEMENT_EVM_POLL_INTERVAL_MS",
    "SETTLEMENT_EVM_START_BLOCK",
    "SETTLEMENT_XRPL_URL",
    "SETTLEMENT_APTOS_URL",
    "EVM_PRIVATE_KEY",
    "EVM_PRIVATE_KEY_FILE",
    "TIGERBEETLE_REPLICAS",
    "TIGERBEETLE_CLUSTER_ID",
    "TIGERBEETLE_BATCH_MAX",
    "EXPLORER_ENABLED",
    "EXPLORER_PORT",
    "EXPLORER_BIND_HOST",
    "EXPLORER_TOKEN",
    "EXPLORER_INDEX_DIR",
];

const ENV_CHECKED_PREFIXES: &[&str] = &["SETTLEMENT_", "TIGERBEETLE_", "EVM_", "EXPLORER_"];

/// The schemes of RFC 15. `peer` and `self` are valid addresses but never a node's own.
const ILP_SCHEMES: &[&str] = &[
    "g", "private", "example", "peer", "self", "test", "test1", "test2", "test3", "local",
];

/// RFC 15: an ILP address is at most 1023 bytes.
const ILP_ADDRESS_SIZE_MAX: usize = 1023;

/// The largest ILP Prepare (32,767 bytes of data plus its envelope) framed in BTP; a smaller
/// `btp_message_size_max` turns away packets other implementations consider valid.
const BTP_MESSAGE_SIZE_FOR_MAXIMAL_PREPARE: usize = 32_856;

/// The environment, as data. Its `Debug` lists names only, because values may be tokens.
#[derive(Clone, Default)]
pub struct Env {
    vars: BTreeMap<String, String>,
}

impl Env {
    /// A snapshot of the process environment. Variables whose name or value is not UTF-8 are
    /// left out (a token must not be silently altered by a lossy conversion).
    pub fn from_process() -> Env {
        let vars = std::env::vars_os()
            .filter_map(|(name, value)| Some((name.into_string().ok()?, value.into_string().ok()?)))
            .collect();
        Env { vars }
    }

    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Env {
        let vars = pairs
            .into_iter()
            .map(|(name, value)| (name.into(), value.into()))
            .collect();
        Env { vars }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }

    /// `CONFIG_FILE`, or `./config.toml`.
    pub fn config_path(&self) -> PathBuf {
        PathBuf::from(self.get("CONFIG_FILE").unwrap_or(CONFIG_FILE_DEFAULT))
    }
}

impl fmt::Debug for Env {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.vars.keys()).finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The node refuses to start.
    Error,
    /// The node starts, but the operator probably meant something else.
    Warning,
}

/// One thing wrong with the configuration, at `path`: a key path in the file
/// (`peers[1].credit_limit`), `env NAME` for a variable, or `line L, column C` for syntax.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub severity: Severity,
    pub path: String,
    pub message: String,
}

impl Problem {
    /// `FILE: path: message`, or `warning: FILE: path: message`.
    pub fn in_file(&self, file: &Path) -> String {
        match self.severity {
            Severity::Error => format!("{}: {}: {}", file.display(), self.path, self.message),
            Severity::Warning => {
                format!(
                    "warning: {}: {}: {}",
                    file.display(),
                    self.path,
                    self.message
                )
            }
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.severity == Severity::Warning {
            f.write_str("warning: ")?;
        }
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every problem found (errors and warnings, in the order found); there is at least one error.
#[derive(Debug, Clone)]
pub struct ConfigErrors {
    pub problems: Vec<Problem>,
}

impl ConfigErrors {
    pub fn error_count(&self) -> usize {
        self.problems
            .iter()
            .filter(|p| p.severity == Severity::Error)
            .count()
    }

    pub fn warning_count(&self) -> usize {
        self.problems.len() - self.error_count()
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, problem) in self.problems.iter().enumerate() {
            if index > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// A configuration the node can start with, and what it should still warn about.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    pub config: Config,
    pub warnings: Vec<Problem>,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read (missing, not permitted, not UTF-8).
    #[error("{}: cannot read: {error}", path.display())]
    Unreadable {
        path: PathBuf,
        error: std::io::Error,
    },
    /// The file was read; these are its problems.
    #[error("{}: invalid configuration:\n{}", path.display(), in_file(path, problems))]
    Invalid {
        path: PathBuf,
        problems: ConfigErrors,
    },
}

fn in_file(path: &Path, problems: &ConfigErrors) -> String {
    let lines: Vec<String> = problems.problems.iter().map(|p| p.in_file(path)).collect();
    lines.join("\n")
}

/// Reads and validates the file at `path`, with `env` overriding it where it applies.
pub fn load(path: &Path, env: &Env) -> Result<LoadedConfig, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|error| LoadError::Unreadable {
        path: path.to_path_buf(),
        error,
    })?;
    parse(&text, env).map_err(|problems| LoadError::Invalid {
        path: path.to_path_buf(),
        problems,
    })
}

/// [`load`] from `CONFIG_FILE` (default `./config.toml`) and the process environment.
pub fn load_from_process_env() -> Result<LoadedConfig, LoadError> {
    let env = Env::from_process();
    load(&env.config_path(), &env)
}

/// Validates a configuration given as TOML text.
pub fn parse(text: &str, env: &Env) -> Result<LoadedConfig, ConfigErrors> {
    let file: raw::File = match serde_path_to_error::deserialize(toml::Deserializer::new(text)) {
        Ok(file) => file,
        Err(error) => return Err(ConfigErrors { problems: vec![shape_problem(text, error)] }),
    };
    let mut report = Report::default();
    let config = read_config(&mut report, file, env);
    report.finish(config)
}

fn syntax_error_position(text: &str, error: &toml::de::Error) -> String {
    let Some(span) = error.span() else {
        return "syntax".to_string();
    };
    let before = &text.as_bytes()[..span.start.min(text.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let column = String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count()
        + 1;
    format!("line {line}, column {column}")
}

impl Config {
    /// The exact rate from one asset to another, as `(numerator, denominator)`: 1/1 for the
    /// same asset, a configured rate, or the inverse of the one configured the other way.
    pub fn rate(&self, from: &str, to: &str) -> Option<(u128, u128)> {
        if from == to {
            return Some((1, 1));
        }
        self.rates.iter().find_map(|rate| {
            if rate.from == from && rate.to == to {
                Some((rate.numerator, rate.denominator))
            } else if rate.from == to && rate.to == from {
                Some((rate.denominator, rate.numerator))
            } else {
                None
            }
        })
    }

    pub fn peer(&self, id: &str) -> Option<&PeerConfig> {
        self.peers.iter().find(|peer| peer.id == id)
    }
}

// --- Collecting problems ----------------------------------------------------------------------

#[derive(Default)]
struct Report {
    problems: Vec<Problem>,
}

impl Report {
    fn error(&mut self, path: impl Into<String>, message: impl Into<String>) {
        let (path, message) = (path.into(), message.into());
        self.problems.push(Problem {
            severity: Severity::Error,
            path,
            message,
        });
    }

    fn warning(&mut self, path: impl Into<String>, message: impl Into<String>) {
        let (path, message) = (path.into(), message.into());
        self.problems.push(Problem {
            severity: Severity::Warning,
            path,
            message,
        });
    }

    fn finish(self, config: Config) -> Result<LoadedConfig, ConfigErrors> {
        if self.problems.iter().any(|p| p.severity == Severity::Error) {
            Err(ConfigErrors {
                problems: self.problems,
            })
        } else {
            Ok(LoadedConfig {
                config,
                warnings: self.problems,
            })
        }
    }
}

/// One key's outcome. `Invalid` means the problem is already reported.
enum Field<T> {
    Absent(String),
    Invalid,
    Valid(T),
}

impl<T> Field<T> {
    fn is_absent(&self) -> bool {
        matches!(self, Field::Absent(_))
    }

    fn optional(self) -> Option<T> {
        match self {
            Field::Valid(value) => Some(value),
            Field::Absent(_) | Field::Invalid => None,
        }
    }

    fn or(self, default: T) -> Option<T> {
        match self {
            Field::Valid(value) => Some(value),
            Field::Absent(_) => Some(default),
            Field::Invalid => None,
        }
    }

    fn required(self, report: &mut Report) -> Option<T> {
        if let Field::Absent(path) = &self {
            report.error(path.as_str(), "missing (this key is required)");
        }
        self.optional()
    }

    /// The environment variable `name`, if set, replaces this value (and is checked instead).
    fn overridden_by(
        self,
        report: &mut Report,
        env: &Env,
        name: &str,
        check: impl FnOnce(&str) -> Result<T, String>,
    ) -> Field<T> {
        match env.get(name) {
            None => self,
            Some(text) => match check(text) {
                Ok(value) => Field::Valid(value),
                Err(message) => {
                    report.error(format!("env {name}"), message);
                    Field::Invalid
                }
            },
        }
    }
}

/// The known key within two edits of `key`, if any: most unknown keys are typos.
fn closest<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|candidate| (strsim::levenshtein(key, candidate), *candidate))
        .filter(|(distance, _)| *distance <= 2)
        .min()
        .map(|(_, candidate)| candidate)
}

// --- The file's shape ---------------------------------------------------------------------------

/// The file as serde reads it: every table with `deny_unknown_fields`, every key optional, so
/// a missing key, a default and an invalid value are all decided by one validation pass below,
/// which reports every problem with its path. Integers are `i64` (what TOML holds), checked
/// for sign and range there.
mod raw {
    use serde::Deserialize;

    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    pub struct File {
        pub node: Node,
        pub journal: Journal,
        pub explorer: Explorer,
        pub routing: Routing,
        pub peers: Vec<Peer>,
        pub routes: Vec<Route>,
        pub rates: Vec<Rate>,
        pub rate_feeds: Vec<RateFeed>,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    pub struct RateFeed {
        pub kind: Option<String>,
        pub url: Option<String>,
        pub path: Option<String>,
        pub poll_interval_ms: Option<i64>,
        pub max_age_ms: Option<i64>,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    pub struct Node {
        pub id: Option<String>,
        pub ilp_address: Option<String>,
        pub asset_code: Option<String>,
        pub asset_scale: Option<i64>,
        pub bind_host: Option<String>,
        pub btp_port: Option<i64>,
        pub health_port: Option<i64>,
        pub log_level: Option<String>,
        pub min_message_window_ms: Option<i64>,
        pub max_hold_time_ms: Option<i64>,
        pub reflection: Option<bool>,
        pub ilp_trailing_bytes_allowed: Option<bool>,
        pub btp_message_size_max: Option<i64>,
        pub btp_auth_timeout_ms: Option<i64>,
        pub btp_session_in_flight_max: Option<i64>,
        pub pipeline_queue_max: Option<i64>,
        pub max_sessions_per_peer: Option<i64>,
        pub ready_peers_min: Option<i64>,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    pub struct Journal {
        pub dir: Option<String>,
        pub snapshot_every: Option<i64>,
        pub retention: Option<String>,
        pub archive_dir: Option<String>,
        pub durable: Option<bool>,
        pub commit_log_mib: Option<i64>,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    pub struct Routing {
        pub enabled: Option<bool>,
        pub broadcast_interval_ms: Option<i64>,
        pub route_expiry_ms: Option<i64>,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    pub struct Explorer {
        pub enabled: Option<bool>,
        pub bind_host: Option<String>,
        pub port: Option<i64>,
        pub index_dir: Option<String>,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    pub struct Peer {
        pub id: Option<String>,
        pub relation: Option<String>,
        pub asset_code: Option<String>,
        pub asset_scale: Option<i64>,
        pub incoming_token: Option<String>,
        pub incoming_token_env: Option<String>,
        pub outgoing: Option<Outgoing>,
        pub max_packet_amount: Option<i64>,
        pub credit_limit: Option<i64>,
        pub packets_per_second_max: Option<i64>,
        pub throughput_per_second_max: Option<i64>,
        pub send_routes: Option<bool>,
        pub receive_routes: Option<bool>,
        pub settlement: Option<PeerSettlement>,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    pub struct Outgoing {
        pub url: Option<String>,
        pub token: Option<String>,
        pub token_env: Option<String>,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    pub struct PeerSettlement {
        pub chain: Option<String>,
        pub threshold: Option<i64>,
        pub settle_to: Option<i64>,
        pub address: Option<String>,
        pub direction: Option<String>,
        pub prepayment_allowance: Option<i64>,
        pub deposit_initial: Option<i64>,
        pub deposit_topup: Option<i64>,
        pub deposit_max: Option<i64>,
        pub settle_timeout_s: Option<i64>,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    pub struct Route {
        pub prefix: Option<String>,
        pub peer: Option<String>,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    pub struct Rate {
        pub from: Option<String>,
        pub to: Option<String>,
        /// A decimal string ("0.9") or a whole number; a float is refused (it is not exact).
        pub rate: Option<toml::Value>,
    }
}

/// A problem with the file's shape (a syntax error, an unknown key, a value of the wrong type),
/// with its path. Serde stops at the first one, so there is only ever one.
fn shape_problem(text: &str, error: serde_path_to_error::Error<toml::de::Error>) -> Problem {
    let path = error.path().to_string();
    let inner = error.into_inner();
    let message = inner.message().trim().replace('\n', "; ");
    // A syntax error has no path (serde never got to a key): point at the line instead.
    let path = if path == "." || path.is_empty() { syntax_error_position(text, &inner) } else { path };
    let message = match unknown_field(&message) {
        Some((key, expected)) => {
            let path = path.rsplit_once('.').map_or(String::new(), |(table, _)| table.to_string());
            let at = if path.is_empty() { key.to_string() } else { format!("{path}.{key}") };
            let message = match closest(key, &expected) {
                Some(known) => format!("unknown key (did you mean `{known}`?)"),
                None => format!("unknown key (expected one of: {})", expected.join(", ")),
            };
            return Problem { severity: Severity::Error, path: at, message };
        }
        None => with_array_hint(&path, readable_type_error(&message)),
    };
    Problem { severity: Severity::Error, path, message }
}

/// serde's "unknown field `x`, expected one of `a`, `b`" (or "expected `a`"), taken apart.
fn unknown_field(message: &str) -> Option<(&str, Vec<&str>)> {
    let rest = message.strip_prefix("unknown field `")?;
    let (key, rest) = rest.split_once('`')?;
    let expected = rest.split('`').skip(1).step_by(2).collect();
    Some((key, expected))
}

/// serde's "invalid type: string \"x\", expected i64" in the words the rest of the checks use.
fn readable_type_error(message: &str) -> String {
    let Some(rest) = message.strip_prefix("invalid type: ") else {
        return message.to_string();
    };
    let (found, expected) = rest.split_once(", expected ").unwrap_or((rest, ""));
    let found = match found.split_whitespace().next().unwrap_or(found) {
        "integer" => "integer",
        "string" => "string",
        "boolean" => "boolean",
        "floating" => "float",
        "map" => "table",
        "sequence" => "array",
        other => other,
    };
    let expected = match expected {
        "i64" => "an integer",
        "a string" | "string" => "a string",
        "a boolean" => "true or false",
        "a sequence" => "an array of tables",
        other if other.starts_with("struct ") => "a table",
        other => other,
    };
    format!("expected {expected}, found {found}")
}

/// `peers: expected an array of tables` names the TOML that makes one: `([[peers]])`.
fn with_array_hint(path: &str, message: String) -> String {
    match message.strip_prefix("expected an array of tables,") {
        Some(rest) if !path.contains('.') && !path.contains('[') => format!("expected an array of tables ([[{path}]]),{rest}"),
        _ => message,
    }
}

// --- Reading the file ---------------------------------------------------------------------------

/// `value` at `path`, checked.
fn string<T>(report: &mut Report, path: String, value: Option<String>, check: impl FnOnce(&str) -> Result<T, String>) -> Field<T> {
    match value {
        None => Field::Absent(path),
        Some(text) => match check(&text) {
            Ok(value) => Field::Valid(value),
            Err(message) => {
                report.error(path, message);
                Field::Invalid
            }
        },
    }
}

/// An integer at `path`: not negative, then checked.
fn unsigned<T>(report: &mut Report, path: String, value: Option<i64>, check: impl FnOnce(u64) -> Result<T, String>) -> Field<T> {
    match value {
        None => Field::Absent(path),
        Some(integer) => match u64::try_from(integer).map_err(|_| "must not be negative".to_string()).and_then(check) {
            Ok(value) => Field::Valid(value),
            Err(message) => {
                report.error(path, message);
                Field::Invalid
            }
        },
    }
}

fn boolean(path: String, value: Option<bool>) -> Field<bool> {
    match value {
        None => Field::Absent(path),
        Some(value) => Field::Valid(value),
    }
}

fn read_config(report: &mut Report, file: raw::File, env: &Env) -> Config {
    let node = read_node(report, file.node, env);
    let journal = read_journal(report, file.journal, env);
    let explorer = read_explorer(report, file.explorer, env, &node, &journal);
    let routing = read_routing(report, file.routing);
    let peers: Vec<PeerConfig> =
        file.peers.into_iter().enumerate().map(|(index, peer)| read_peer(report, format!("peers[{index}]"), peer, env)).collect();
    let routes: Vec<RouteConfig> =
        file.routes.into_iter().enumerate().map(|(index, route)| read_route(report, format!("routes[{index}]"), route)).collect();
    let rates: Vec<Option<RateConfig>> =
        file.rates.into_iter().enumerate().map(|(index, rate)| read_rate(report, format!("rates[{index}]"), rate)).collect();

    let rate_feeds: Vec<RateFeedConfig> = file
        .rate_feeds
        .into_iter()
        .enumerate()
        .filter_map(|(index, feed)| read_rate_feed(report, format!("rate_feeds[{index}]"), feed))
        .collect();
    let settlement = read_settlement_env(report, env);
    let tigerbeetle = read_tigerbeetle_env(report, env);
    warn_unknown_env(report, env);

    check_node(report, &node, env);
    check_peers(report, &node, &peers);
    check_routes(report, &node, &peers, &routes);
    check_rates(report, &peers, &rates, !rate_feeds.is_empty());
    check_settlement(report, &peers, &settlement, env);
    let rates = rates.into_iter().flatten().collect();
    Config { node, peers, routes, rates, rate_feeds, settlement, tigerbeetle, journal, explorer, routing }
}

fn read_rate_feed(report: &mut Report, path: String, raw: raw::RateFeed) -> Option<RateFeedConfig> {
    let r = report;
    let at = |key: &str| format!("{path}.{key}");
    let kind = string(r, at("kind"), raw.kind, non_empty).required(r);
    let poll_interval_ms = unsigned(r, at("poll_interval_ms"), raw.poll_interval_ms, positive).or(1000);
    let max_age_ms = unsigned(r, at("max_age_ms"), raw.max_age_ms, positive).or(30_000);
    let kind = match kind.as_deref() {
        Some("http") => {
            if raw.path.is_some() {
                r.error(at("path"), "only for kind = \"file\"");
            }
            match raw.url {
                Some(url) if url.starts_with("http://") || url.starts_with("https://") => Some(RateFeedKind::Http { url }),
                Some(_) => {
                    r.error(at("url"), "must start with http:// or https://");
                    None
                }
                None => {
                    r.error(at("url"), "required for kind = \"http\"");
                    None
                }
            }
        }
        Some("file") => {
            if raw.url.is_some() {
                r.error(at("url"), "only for kind = \"http\"");
            }
            match raw.path {
                Some(file) if !file.is_empty() => Some(RateFeedKind::File { path: PathBuf::from(file) }),
                _ => {
                    r.error(at("path"), "required for kind = \"file\"");
                    None
                }
            }
        }
        Some(other) => {
            r.error(at("kind"), format!("`{other}` is not a rate feed kind (http or file)"));
            None
        }
        None => None,
    };
    let (poll_interval_ms, max_age_ms) = (poll_interval_ms.unwrap_or_default(), max_age_ms.unwrap_or_default());
    if poll_interval_ms > 0 && max_age_ms > 0 && max_age_ms <= poll_interval_ms {
        r.error(at("max_age_ms"), format!("must be longer than poll_interval_ms ({poll_interval_ms}), or every quote goes stale before the next read"));
    }
    Some(RateFeedConfig { kind: kind?, poll_interval_ms, max_age_ms })
}

fn read_routing(report: &mut Report, raw: raw::Routing) -> RoutingConfig {
    let r = report;
    let at = |key: &str| format!("routing.{key}");
    let enabled = boolean(at("enabled"), raw.enabled).or(true);
    let broadcast_interval_ms = unsigned(r, at("broadcast_interval_ms"), raw.broadcast_interval_ms, positive).or(30_000);
    let route_expiry_ms = unsigned(r, at("route_expiry_ms"), raw.route_expiry_ms, positive_u32).or(45_000);
    let (broadcast_interval_ms, route_expiry_ms) = (broadcast_interval_ms.unwrap_or_default(), route_expiry_ms.unwrap_or_default());
    if broadcast_interval_ms > 0 && route_expiry_ms > 0 && u64::from(route_expiry_ms) <= broadcast_interval_ms {
        r.error(
            "routing.route_expiry_ms",
            format!(
                "must be longer than broadcast_interval_ms ({broadcast_interval_ms}): peers drop our routes when no \
                 update comes within it, and updates come once an interval"
            ),
        );
    }
    RoutingConfig { enabled: enabled.unwrap_or(true), broadcast_interval_ms, route_expiry_ms }
}

fn read_explorer(report: &mut Report, raw: raw::Explorer, env: &Env, node: &NodeConfig, journal: &JournalConfig) -> ExplorerConfig {
    let r = report;
    let at = |key: &str| format!("explorer.{key}");
    let enabled = boolean(at("enabled"), raw.enabled).overridden_by(r, env, "EXPLORER_ENABLED", env_bool).or(true);
    let bind_host = string(r, at("bind_host"), raw.bind_host, bind_host).overridden_by(r, env, "EXPLORER_BIND_HOST", bind_host).optional();
    let port = unsigned(r, at("port"), raw.port, listen_port).overridden_by(r, env, "EXPLORER_PORT", env_port).or(5173);
    let index_dir = string(r, at("index_dir"), raw.index_dir, non_empty).overridden_by(r, env, "EXPLORER_INDEX_DIR", non_empty).optional();
    let token = match env.get("EXPLORER_TOKEN") {
        Some(token) if token.len() < 16 => {
            r.error("env EXPLORER_TOKEN", "must be at least 16 characters (it guards the Explorer's API)");
            None
        }
        Some(token) => Some(Secret::new(token)),
        None => None,
    };
    let enabled = enabled.unwrap_or(true);
    let bind = SocketAddr::new(bind_host.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)), port.unwrap_or(5173));
    if enabled && bind.port() != 0 && (bind.port() == node.btp_bind.port() || bind.port() == node.health_bind.port()) {
        r.error(
            if env.get("EXPLORER_PORT").is_some() { "env EXPLORER_PORT" } else { "explorer.port" },
            "must differ from the BTP and health ports",
        );
    }
    if enabled && token.is_none() && !bind.ip().is_loopback() {
        r.warning(
            "explorer",
            format!(
                "the Explorer listens on {bind} with no EXPLORER_TOKEN: anyone who reaches it reads the \
                 node's traffic and balances (no secrets). Set EXPLORER_TOKEN, bind it to 127.0.0.1 \
                 (EXPLORER_BIND_HOST), or EXPLORER_ENABLED=false"
            ),
        );
    }
    let index_dir = match index_dir {
        Some(dir) => PathBuf::from(dir),
        None => journal.dir.parent().unwrap_or(Path::new(".")).join("explorer-index"),
    };
    ExplorerConfig { enabled, bind, token, index_dir }
}

fn env_bool(text: &str) -> Result<bool, String> {
    match text {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err("must be true or false".to_string()),
    }
}

fn read_journal(report: &mut Report, raw: raw::Journal, env: &Env) -> JournalConfig {
    let r = report;
    let at = |key: &str| format!("journal.{key}");
    let dir = string(r, at("dir"), raw.dir, non_empty).overridden_by(r, env, "JOURNAL_DIR", non_empty).or("./data/journal".into());
    let snapshot_every = unsigned(r, at("snapshot_every"), raw.snapshot_every, positive)
        .overridden_by(r, env, "JOURNAL_SNAPSHOT_EVERY", env_positive)
        .or(100_000);
    let retention =
        string(r, at("retention"), raw.retention, retention).overridden_by(r, env, "JOURNAL_RETENTION", retention).or(Retention::Keep);
    let archive_dir = string(r, at("archive_dir"), raw.archive_dir, non_empty).optional();
    let durable = boolean(at("durable"), raw.durable).or(true);
    let commit_log_mib = unsigned(r, at("commit_log_mib"), raw.commit_log_mib, commit_log_mib)
        .overridden_by(r, env, "JOURNAL_COMMIT_LOG_MIB", |text| {
            text.parse::<u64>().map_err(|_| "must be a whole number".to_string()).and_then(commit_log_mib)
        })
        .or(super::COMMIT_LOG_BYTES_DEFAULT >> 20);
    if !durable.unwrap_or(true) {
        r.warning(
            "journal.durable",
            "false: Fulfills are acknowledged before their events reach the disk; a crash can \
             lose them. Use only to measure what durability costs",
        );
    }
    let dir = PathBuf::from(dir.unwrap_or_default());
    let archive_dir = match archive_dir {
        Some(archive_dir) => PathBuf::from(archive_dir),
        None => dir.parent().unwrap_or(Path::new(".")).join("journal-archive"),
    };
    JournalConfig {
        dir,
        snapshot_every: snapshot_every.unwrap_or(100_000),
        retention: retention.unwrap_or(Retention::Keep),
        archive_dir,
        durable: durable.unwrap_or(true),
        commit_log_bytes: commit_log_mib.unwrap_or(super::COMMIT_LOG_BYTES_DEFAULT >> 20) << 20,
    }
}

/// The commit log's size in MiB: 1 to 4096.
fn commit_log_mib(value: u64) -> Result<u64, String> {
    if (1..=4096).contains(&value) {
        Ok(value)
    } else {
        Err("must be 1 to 4096 (MiB)".to_string())
    }
}

fn retention(text: &str) -> Result<Retention, String> {
    match text {
        "keep" => Ok(Retention::Keep),
        "archive" => Ok(Retention::Archive),
        "delete" => Ok(Retention::Delete),
        _ => Err("must be keep, archive or delete".to_string()),
    }
}

fn env_positive(text: &str) -> Result<u64, String> {
    text.parse::<u64>().map_err(|_| "must be a whole number".to_string()).and_then(positive)
}

fn read_node(report: &mut Report, raw: raw::Node, env: &Env) -> NodeConfig {
    let r = report;
    let at = |key: &str| format!("node.{key}");
    let id = string(r, at("id"), raw.id, node_id).overridden_by(r, env, "NODE_ID", node_id).required(r);
    let ilp_address = string(r, at("ilp_address"), raw.ilp_address, node_address).required(r);
    let asset_code = string(r, at("asset_code"), raw.asset_code, asset_code).required(r);
    let asset_scale = unsigned(r, at("asset_scale"), raw.asset_scale, asset_scale).required(r);
    let bind_host = string(r, at("bind_host"), raw.bind_host, bind_host).or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let btp_port = unsigned(r, at("btp_port"), raw.btp_port, listen_port).overridden_by(r, env, "BTP_PORT", env_port).or(4000);
    let health_port =
        unsigned(r, at("health_port"), raw.health_port, listen_port).overridden_by(r, env, "HEALTH_PORT", env_port).or(8080);
    let log_level = string(r, at("log_level"), raw.log_level, log_level).overridden_by(r, env, "LOG_LEVEL", log_level).or("info".into());
    let min_message_window_ms = unsigned(r, at("min_message_window_ms"), raw.min_message_window_ms, positive).or(1000);
    let max_hold_time_ms = unsigned(r, at("max_hold_time_ms"), raw.max_hold_time_ms, positive).or(30_000);
    let reflection = boolean(at("reflection"), raw.reflection).or(false);
    let ilp_trailing_bytes_allowed = boolean(at("ilp_trailing_bytes_allowed"), raw.ilp_trailing_bytes_allowed).or(true);
    let btp_message_size_max = unsigned(r, at("btp_message_size_max"), raw.btp_message_size_max, positive_usize).or(65_536);
    let btp_auth_timeout_ms = unsigned(r, at("btp_auth_timeout_ms"), raw.btp_auth_timeout_ms, positive).or(10_000);
    let btp_session_in_flight_max = unsigned(r, at("btp_session_in_flight_max"), raw.btp_session_in_flight_max, positive_usize).or(4096);
    let pipeline_queue_max = unsigned(r, at("pipeline_queue_max"), raw.pipeline_queue_max, positive_usize).or(8192);
    let max_sessions_per_peer = unsigned(r, at("max_sessions_per_peer"), raw.max_sessions_per_peer, positive_usize).or(8);
    let ready_peers_min = unsigned(r, at("ready_peers_min"), raw.ready_peers_min, any_usize).or(0);

    let bind_host = bind_host.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    NodeConfig {
        id: id.unwrap_or_default(),
        ilp_address: ilp_address.unwrap_or_default(),
        asset_code: asset_code.unwrap_or_default(),
        asset_scale: asset_scale.unwrap_or_default(),
        btp_bind: SocketAddr::new(bind_host, btp_port.unwrap_or_default()),
        health_bind: SocketAddr::new(bind_host, health_port.unwrap_or_default()),
        log_level: log_level.unwrap_or_default(),
        min_message_window_ms: min_message_window_ms.unwrap_or_default(),
        max_hold_time_ms: max_hold_time_ms.unwrap_or_default(),
        reflection: reflection.unwrap_or_default(),
        ilp_trailing_bytes_allowed: ilp_trailing_bytes_allowed.unwrap_or_default(),
        btp_message_size_max: btp_message_size_max.unwrap_or_default(),
        btp_auth_timeout_ms: btp_auth_timeout_ms.unwrap_or_default(),
        btp_session_in_flight_max: btp_session_in_flight_max.unwrap_or_default(),
        pipeline_queue_max: pipeline_queue_max.unwrap_or_default(),
        max_sessions_per_peer: max_sessions_per_peer.unwrap_or_default(),
        ready_peers_min: ready_peers_min.unwrap_or_default(),
        admin_token: admin_token(r, env),
    }
}

/// `ADMIN_TOKEN`: at least 16 characters, so it is not guessed; never echoed.
fn admin_token(report: &mut Report, env: &Env) -> Option<Secret> {
    let token = env.get("ADMIN_TOKEN")?;
    if token.len() < 16 {
        report.error("env ADMIN_TOKEN", "must be at least 16 characters (it guards the admin API)");
        return None;
    }
    Some(Secret::new(token))
}

/// Checks between node settings. An invalid setting reads as 0 here and is already reported,
/// so each check skips zeros.
fn check_node(report: &mut Report, node: &NodeConfig, env: &Env) {
    let (window, hold) = (node.min_message_window_ms, node.max_hold_time_ms);
    if window > 0 && hold > 0 && hold < window {
        let message = format!("must be at least min_message_window_ms ({window})");
        report.error("node.max_hold_time_ms", message);
    }
    let btp_port = node.btp_bind.port();
    if btp_port > 0 && btp_port == node.health_bind.port() {
        let path = match env.get("HEALTH_PORT") {
            Some(_) => "env HEALTH_PORT",
            None => "node.health_port",
        };
        report.error(
            path,
            "must differ from the BTP port: both listeners bind the same host",
        );
    }
    let size = node.btp_message_size_max;
    if size > 0 && size < BTP_MESSAGE_SIZE_FOR_MAXIMAL_PREPARE {
        let message = format!(
            "{size} is below {BTP_MESSAGE_SIZE_FOR_MAXIMAL_PREPARE}, the size of a maximal \
             Prepare in BTP: peers sending large packets will be cut off"
        );
        report.warning("node.btp_message_size_max", message);
    }
}

fn read_peer(report: &mut Report, path: String, raw: raw::Peer, env: &Env) -> PeerConfig {
    let r = report;
    let at = |key: &str| format!("{path}.{key}");
    let id = string(r, at("id"), raw.id, peer_id).required(r);
    let relation = string(r, at("relation"), raw.relation, relation).required(r);
    let asset_code = string(r, at("asset_code"), raw.asset_code, asset_code).required(r);
    let asset_scale = unsigned(r, at("asset_scale"), raw.asset_scale, asset_scale).required(r);
    let reachable = raw.incoming_token.is_some() || raw.incoming_token_env.is_some() || raw.outgoing.is_some();
    let incoming_token =
        read_secret(r, env, [(at("incoming_token"), raw.incoming_token), (at("incoming_token_env"), raw.incoming_token_env)], false);
    let outgoing = raw.outgoing.and_then(|outgoing| read_outgoing(r, at("outgoing"), outgoing, env));
    let max_packet_amount = unsigned(r, at("max_packet_amount"), raw.max_packet_amount, positive).optional();
    let credit_limit = unsigned(r, at("credit_limit"), raw.credit_limit, any).required(r);
    let packets_per_second_max = unsigned(r, at("packets_per_second_max"), raw.packets_per_second_max, positive_u32).optional();
    let throughput_per_second_max = unsigned(r, at("throughput_per_second_max"), raw.throughput_per_second_max, positive).optional();
    let send_routes = boolean(at("send_routes"), raw.send_routes).optional();
    let receive_routes = boolean(at("receive_routes"), raw.receive_routes).optional();
    let settlement = raw.settlement.and_then(|settlement| read_peer_settlement(r, at("settlement"), settlement));
    if !reachable {
        r.warning(path.as_str(), "neither incoming_token(_env) nor [outgoing]: this peer can never connect");
    }
    let relation = relation.unwrap_or(Relation::Peer);
    // As the reference connector: a child neither hears nor tells routes unless asked to.
    let exchanges_routes = relation != Relation::Child;
    PeerConfig {
        id: id.unwrap_or_default(),
        relation,
        send_routes: send_routes.unwrap_or(exchanges_routes),
        receive_routes: receive_routes.unwrap_or(exchanges_routes),
        asset_code: asset_code.unwrap_or_default(),
        asset_scale: asset_scale.unwrap_or_default(),
        incoming_token,
        outgoing,
        max_packet_amount,
        credit_limit: credit_limit.unwrap_or_default(),
        packets_per_second_max,
        throughput_per_second_max,
        settlement,
    }
}

/// A token given either in the file (the first key) or as the name of an environment variable
/// holding it (the second), never both.
fn read_secret(report: &mut Report, env: &Env, keys: [(String, Option<String>); 2], required: bool) -> Option<Secret> {
    let [(key_path, direct), (env_key_path, variable)] = keys;
    let key = key_path.rsplit('.').next().unwrap_or_default().to_string();
    let env_key = env_key_path.rsplit('.').next().unwrap_or_default().to_string();
    let direct = string(report, key_path, direct, secret);
    let variable = string(report, env_key_path.clone(), variable, env_name);
    if !direct.is_absent() && !variable.is_absent() {
        report.error(env_key_path, format!("set either {key} or {env_key}, not both"));
        return None;
    }
    match (direct, variable) {
        (Field::Valid(token), _) => Some(token),
        (Field::Absent(_), Field::Valid(name)) => match env.get(&name).map(secret) {
            Some(Ok(token)) => Some(token),
            Some(Err(_)) => {
                report.error(env_key_path, format!("environment variable {name} is empty"));
                None
            }
            None => {
                report.error(env_key_path, format!("environment variable {name} is not set"));
                None
            }
        },
        (Field::Absent(path), Field::Absent(_)) => {
            if required {
                report.error(path, format!("missing: set {key} or {env_key}"));
            }
            None
        }
        _ => None,
    }
}

fn read_outgoing(report: &mut Report, path: String, raw: raw::Outgoing, env: &Env) -> Option<OutgoingLink> {
    let at = |key: &str| format!("{path}.{key}");
    let url = string(report, at("url"), raw.url, outgoing_url).required(report);
    let token = read_secret(report, env, [(at("token"), raw.token), (at("token_env"), raw.token_env)], true);
    Some(OutgoingLink { url: url?, token: token? })
}

fn read_peer_settlement(report: &mut Report, path: String, raw: raw::PeerSettlement) -> Option<PeerSettlementConfig> {
    let r = report;
    let at = |key: &str| format!("{path}.{key}");
    let chain = string(r, at("chain"), raw.chain, chain).required(r);
    let threshold = unsigned(r, at("threshold"), raw.threshold, positive).required(r);
    let settle_to = unsigned(r, at("settle_to"), raw.settle_to, any).or(0);
    let address = raw.address;
    let direction = string(r, at("direction"), raw.direction, settlement_direction).or(SettlementDirection::Both);
    let prepayment_allowance = unsigned(r, at("prepayment_allowance"), raw.prepayment_allowance, any).or(0);
    let double = threshold.map_or(0, |threshold| threshold.saturating_mul(2));
    let deposit_initial = unsigned(r, at("deposit_initial"), raw.deposit_initial, any);
    let initial_given = !deposit_initial.is_absent();
    let deposit_topup = unsigned(r, at("deposit_topup"), raw.deposit_topup, any).or(double);
    let deposit_max =
        unsigned(r, at("deposit_max"), raw.deposit_max, positive).or(threshold.map_or(1, |threshold| threshold.saturating_mul(10)));
    // Not given: twice the threshold, within deposit_max.
    let deposit_initial = deposit_initial.or(double.min(deposit_max.unwrap_or(u64::MAX)));
    let settle_timeout_s = unsigned(r, at("settle_timeout_s"), raw.settle_timeout_s, positive).or(86_400);
    if let (Some(threshold), Some(settle_to)) = (threshold, settle_to) {
        if settle_to >= threshold {
            r.error(at("settle_to"), format!("must be less than threshold ({threshold})"));
        }
    }
    if let (Some(initial), Some(maximum), true) = (deposit_initial, deposit_max, initial_given) {
        if initial > maximum {
            r.error(at("deposit_initial"), format!("must not exceed deposit_max ({maximum})"));
        }
    }
    if let (Some(threshold), Some(maximum)) = (threshold, deposit_max) {
        if maximum < threshold {
            let message = format!("{maximum} is below threshold ({threshold}): a settlement could never be funded");
            r.error(at("deposit_max"), message);
        }
    }
    if let (Some(chain), Some(address)) = (&chain, &address) {
        if let Err(message) = chain_address(chain, address) {
            r.error(at("address"), message);
        }
    }
    Some(PeerSettlementConfig {
        chain: chain?,
        threshold: threshold?,
        settle_to: settle_to?,
        address,
        direction: direction?,
        prepayment_allowance: prepayment_allowance?,
        deposit_initial: deposit_initial?,
        deposit_topup: deposit_topup?,
        deposit_max: deposit_max?,
        settle_timeout_s: settle_timeout_s?,
    })
}

fn read_route(report: &mut Report, path: String, raw: raw::Route) -> RouteConfig {
    let prefix = string(report, format!("{path}.prefix"), raw.prefix, route_prefix).required(report);
    let peer = string(report, format!("{path}.peer"), raw.peer, non_empty).required(report);
    RouteConfig { prefix: prefix.unwrap_or_default(), peer: peer.unwrap_or_default() }
}

fn read_rate(report: &mut Report, path: String, raw: raw::Rate) -> Option<RateConfig> {
    let at = |key: &str| format!("{path}.{key}");
    let from = string(report, at("from"), raw.from, asset_code).required(report);
    let to = string(report, at("to"), raw.to, asset_code).required(report);
    let rate = match raw.rate {
        None => Field::Absent(at("rate")),
        Some(value) => {
            let parsed = match value {
                Value::String(text) => parse_rate(&text),
                Value::Integer(integer) => match u128::try_from(integer) {
                    Ok(0) | Err(_) => Err("must be greater than 0".to_string()),
                    Ok(integer) => Ok((integer, 1)),
                },
                Value::Float(_) => Err("write the rate as a string (for example \"0.9\") so it is read exactly".to_string()),
                other => Err(format!("expected a decimal string, found {}", other.type_str())),
            };
            match parsed {
                Ok(rate) => Field::Valid(rate),
                Err(message) => {
                    report.error(at("rate"), message);
                    Field::Invalid
                }
            }
        }
    };
    let rate = rate.required(report);
    if from.is_some() && from == to {
        report.error(at("to"), "a rate needs two different assets");
    }
    let (numerator, denominator) = rate?;
    Some(RateConfig { from: from?, to: to?, numerator, denominator })
}

// --- The environment ----------------------------------------------------------------------------

fn read_settlement_env(report: &mut Report, env: &Env) -> SettlementConfig {
    let enabled = match env.get("SETTLEMENT_ENABLED") {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => {
            report.error("env SETTLEMENT_ENABLED", "must be true or false");
            false
        }
    };
    let evm_rpc_url = match (env.get("SETTLEMENT_EVM_RPC_URL"), env.get("BASE_L2_RPC_URL")) {
        (Some(_), Some(_)) => {
            report.error("env BASE_L2_RPC_URL", "set SETTLEMENT_EVM_RPC_URL or its alias BASE_L2_RPC_URL, not both");
            None
        }
        (None, Some(_)) => env_url(report, env, "BASE_L2_RPC_URL", &["http", "https"]),
        _ => env_url(report, env, "SETTLEMENT_EVM_RPC_URL", &["http", "https"]),
    };
    SettlementConfig {
        enabled,
        evm: read_evm_env(report, env),
        evm_rpc_url,
        xrpl_url: env_url(
            report,
            env,
            "SETTLEMENT_XRPL_URL",
            &["http", "https", "ws", "wss"],
        ),
        aptos_url: env_url(report, env, "SETTLEMENT_APTOS_URL", &["http", "https"]),
    }
}

/// The EVM chain's variables. The private key is checked (0x and 64 hex digits, a valid
/// secp256k1 key) but never echoed.
fn read_evm_env(report: &mut Report, env: &Env) -> EvmSettlementConfig {
    let chain_id = env.get("SETTLEMENT_EVM_CHAIN_ID").and_then(|text| match text.parse::<u64>() {
        Ok(id) if id > 0 => Some(id),
        _ => {
            report.error("env SETTLEMENT_EVM_CHAIN_ID", "must be a decimal chain id above 0 (8453 for Base, 84532 for Base Sepolia)");
            None
        }
    });
    let mut address = |name: &str| {
        let text = env.get(name)?;
        match evm_address(text) {
            Ok(address) => Some(address),
            Err(message) => {
                report.error(format!("env {name}"), message);
                None
            }
        }
    };
    let registry = address("TOKEN_NETWORK_REGISTRY");
    let token = address("M2M_TOKEN_ADDRESS");
    let confirmations = match env.get("SETTLEMENT_EVM_CONFIRMATIONS").map(str::parse::<u64>) {
        None => EVM_CONFIRMATIONS_DEFAULT,
        Some(Ok(depth)) if depth <= 1_000 => depth,
        Some(_) => {
            report.error("env SETTLEMENT_EVM_CONFIRMATIONS", "must be a whole number of blocks, 0 to 1000");
            EVM_CONFIRMATIONS_DEFAULT
        }
    };
    let poll_interval_ms = match env.get("SETTLEMENT_EVM_POLL_INTERVAL_MS").map(str::parse::<u64>) {
        None => EVM_POLL_INTERVAL_MS_DEFAULT,
        Some(Ok(ms)) if (50..=600_000).contains(&ms) => ms,
        Some(_) => {
            report.error("env SETTLEMENT_EVM_POLL_INTERVAL_MS", "must be 50 to 600000 (milliseconds)");
            EVM_POLL_INTERVAL_MS_DEFAULT
        }
    };
    let private_key = match (env.get("EVM_PRIVATE_KEY"), env.get("EVM_PRIVATE_KEY_FILE")) {
        (Some(_), Some(_)) => {
            report.error("env EVM_PRIVATE_KEY_FILE", "set EVM_PRIVATE_KEY or EVM_PRIVATE_KEY_FILE, not both");
            None
        }
        (Some(key), None) => checked_private_key(report, "env EVM_PRIVATE_KEY", key.trim()),
        (None, Some(path)) => match std::fs::read_to_string(path) {
            Ok(text) => checked_private_key(report, "env EVM_PRIVATE_KEY_FILE", text.trim()),
            Err(error) => {
                report.error("env EVM_PRIVATE_KEY_FILE", format!("cannot read {path}: {error}"));
                None
            }
        },
        (None, None) => None,
    };
    let start_block = env.get("SETTLEMENT_EVM_START_BLOCK").and_then(|text| match text.parse::<u64>() {
        Ok(block) => Some(block),
        Err(_) => {
            report.error("env SETTLEMENT_EVM_START_BLOCK", "must be a block number");
            None
        }
    });
    EvmSettlementConfig { chain_id, registry, token, confirmations, poll_interval_ms, private_key, start_block }
}

/// A private key: 0x and 64 hex digits that make a valid secp256k1 key. The message never
/// quotes the value.
fn checked_private_key(report: &mut Report, path: &str, text: &str) -> Option<Secret> {
    let digits = text.strip_prefix("0x").unwrap_or(text);
    let well_formed = digits.len() == 64 && digits.chars().all(|c| c.is_ascii_hexdigit());
    if !well_formed || digits.parse::<alloy::signers::local::PrivateKeySigner>().is_err() {
        report.error(path, "not a private key (64 hex digits, optionally after 0x, a valid secp256k1 key); the value is not shown");
        return None;
    }
    Some(Secret::new(format!("0x{digits}")))
}

/// An EVM address: 0x and 40 hex digits, returned in lower case.
fn evm_address(text: &str) -> Result<String, String> {
    let digits = text.strip_prefix("0x").unwrap_or("");
    if digits.len() != 40 || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!("`{text}` is not an EVM address (0x and 40 hex digits)"));
    }
    Ok(format!("0x{}", digits.to_ascii_lowercase()))
}

fn settlement_direction(text: &str) -> Result<SettlementDirection, String> {
    match text {
        "pay" => Ok(SettlementDirection::Pay),
        "receive" => Ok(SettlementDirection::Receive),
        "both" => Ok(SettlementDirection::Both),
        _ => Err(format!("`{text}` must be pay (we pay the peer), receive (the peer pays us) or both")),
    }
}

/// A URL from the environment, checked but never echoed: RPC URLs often carry an API key.
fn env_url(report: &mut Report, env: &Env, name: &str, schemes: &[&str]) -> Option<String> {
    let text = env.get(name)?;
    let problem = match url::Url::parse(text) {
        Err(error) => format!("not a valid URL ({error})"),
        Ok(url) if !schemes.contains(&url.scheme()) => {
            format!("scheme must be one of: {}", schemes.join(", "))
        }
        Ok(url) if url.host().is_none() => "has no host".to_string(),
        Ok(_) => return Some(text.to_string()),
    };
    report.error(format!("env {name}"), problem);
    None
}

fn read_tigerbeetle_env(report: &mut Report, env: &Env) -> TigerBeetleConfig {
    let mut replicas = Vec::new();
    if let Some(text) = env
        .get("TIGERBEETLE_REPLICAS")
        .filter(|t| !t.trim().is_empty())
    {
        for (index, item) in text.split(',').map(str::trim).enumerate() {
            match replica_address(item) {
                Ok(()) => replicas.push(item.to_string()),
                Err(message) => report.error(
                    "env TIGERBEETLE_REPLICAS",
                    format!("item {}: {message}", index + 1),
                ),
            }
        }
    }
    let cluster_id = match env.get("TIGERBEETLE_CLUSTER_ID").map(|t| t.parse::<u128>()) {
        None => 0,
        Some(Ok(id)) => id,
        Some(Err(_)) => {
            report.error(
                "env TIGERBEETLE_CLUSTER_ID",
                "must be a decimal integer below 2^128",
            );
            0
        }
    };
    let batch_max = match env.get("TIGERBEETLE_BATCH_MAX").map(|t| t.parse::<usize>()) {
        None => TIGERBEETLE_BATCH_MAX_DEFAULT,
        Some(Ok(max)) if (2..=TIGERBEETLE_BATCH_MAX_DEFAULT).contains(&max) => max,
        Some(_) => {
            report.error(
                "env TIGERBEETLE_BATCH_MAX",
                format!("must be a whole number from 2 to {TIGERBEETLE_BATCH_MAX_DEFAULT}"),
            );
            TIGERBEETLE_BATCH_MAX_DEFAULT
        }
    };
    let ready_required = match env.get("READY_REQUIRES_TIGERBEETLE") {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => {
            report.error("env READY_REQUIRES_TIGERBEETLE", "must be true or false");
            false
        }
    };
    TigerBeetleConfig {
        replicas,
        cluster_id,
        batch_max,
        ready_required,
    }
}

/// `port`, `host:port` or `[ipv6]:port`; syntax only, nothing is resolved.
fn replica_address(item: &str) -> Result<(), String> {
    let port_text = match item.rsplit_once(':') {
        None => item,
        Some((host, port_text)) => {
            let host_ok = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
                Some(ipv6) => ipv6.parse::<std::net::Ipv6Addr>().is_ok(),
                None => {
                    !host.is_empty()
                        && host
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
                }
            };
            if !host_ok {
                return Err(format!("`{item}`: the host is not a valid name or address"));
            }
            port_text
        }
    };
    port_text
        .parse::<u64>()
        .map_err(|_| "must be a port number, 1 to 65535".to_string())
        .and_then(port)
        .map(|_| ())
        .map_err(|message| format!("`{item}`: port {message}"))
}

fn warn_unknown_env(report: &mut Report, env: &Env) {
    for name in env.vars.keys() {
        let Some(prefix) = ENV_CHECKED_PREFIXES.iter().find(|prefix| name.starts_with(*prefix)) else {
            continue;
        };
        if ENV_KNOWN.contains(&name.as_str()) {
            continue;
        }
        let same_prefix: Vec<&str> = ENV_KNOWN.iter().copied().filter(|known| known.starts_with(prefix)).collect();
        let message = match closest(name, &same_prefix) {
            Some(known) => format!("unknown variable, ignored (did you mean {known}?)"),
            None => format!("unknown variable, ignored (known: {})", same_prefix.join(", ")),
        };
        report.warning(format!("env {name}"), message);
    }
}

// --- Checks across entries ----------------------------------------------------------------------

fn check_peers(report: &mut Report, node: &NodeConfig, peers: &[PeerConfig]) {
    let mut ids: HashMap<&str, usize> = HashMap::new();
    let mut tokens: HashMap<&str, usize> = HashMap::new();
    for (index, peer) in peers.iter().enumerate() {
        if !peer.id.is_empty() {
            if let Some(first) = first_seen(&mut ids, &peer.id, index) {
                report.error(
                    format!("peers[{index}].id"),
                    format!("duplicate peer id `{}` (also peers[{first}])", peer.id),
                );
            }
        }
        if let Some(token) = &peer.incoming_token {
            if let Some(first) = first_seen(&mut tokens, token.expose(), index) {
                let message = format!(
                    "same token as peers[{first}]: a connecting peer could not be told apart"
                );
                report.error(format!("peers[{index}].incoming_token"), message);
            }
        }
        let child_address = peer.child_address(&node.ilp_address);
        let addressable = node.ilp_address.is_empty()
            || peer.id.is_empty()
            || is_valid_ilp_address(&child_address);
        if peer.relation == Relation::Child && !addressable {
            let message = format!("the child address `{child_address}` is too long (RFC 15: at most {ILP_ADDRESS_SIZE_MAX} bytes)");
            report.error(format!("peers[{index}].id"), message);
        }
    }
    if node.ready_peers_min > peers.len() {
        let message = format!(
            "{} exceeds the number of peers ({}): the node would never be ready",
            node.ready_peers_min,
            peers.len()
        );
        report.error("node.ready_peers_min", message);
    }
}

fn check_routes(
    report: &mut Report,
    node: &NodeConfig,
    peers: &[PeerConfig],
    routes: &[RouteConfig],
) {
    let mut prefixes: HashMap<&str, usize> = HashMap::new();
    let node_network = network(&node.ilp_address);
    for (index, route) in routes.iter().enumerate() {
        if !route.peer.is_empty() && !peers.iter().any(|peer| peer.id == route.peer) {
            report.error(
                format!("routes[{index}].peer"),
                format!("no peer with id `{}`", route.peer),
            );
        }
        if route.prefix.is_empty() {
            continue;
        }
        if let Some(first) = first_seen(&mut prefixes, &route.prefix, index) {
            report.error(
                format!("routes[{index}].prefix"),
                format!("duplicate prefix (also routes[{first}])"),
            );
        }
        if let (Some(ours), Some(theirs)) = (node_network, network(&route.prefix)) {
            if ours != theirs {
                let message = format!("a {ours}-network node rejects {theirs}-network destinations (RFC 34): this route is never used");
                report.warning(format!("routes[{index}].prefix"), message);
            }
        }
    }
}

fn check_rates(report: &mut Report, peers: &[PeerConfig], rates: &[Option<RateConfig>], fed: bool) {
    let mut pairs: HashMap<(&str, &str), usize> = HashMap::new();
    for (index, rate) in rates.iter().enumerate() {
        let Some(rate) = rate else { continue };
        let pair = if rate.from < rate.to {
            (&*rate.from, &*rate.to)
        } else {
            (&*rate.to, &*rate.from)
        };
        if let Some(first) = first_seen(&mut pairs, pair, index) {
            let message = format!("a second rate between {} and {} (also rates[{first}]); one rate serves both directions", pair.0, pair.1);
            report.error(format!("rates[{index}]"), message);
        }
    }
    let assets: BTreeSet<&str> = (peers.iter())
        .map(|p| p.asset_code.as_str())
        .filter(|a| !a.is_empty())
        .collect();
    for (position, &a) in assets.iter().enumerate() {
        for &b in assets.iter().skip(position + 1) {
            // With feeds, a pair may come from them: nothing to say until a packet finds none.
            if !pairs.contains_key(&(a, b)) && !fed {
                let message = format!("no rate between {a} and {b}: packets between peers in these assets will be rejected");
                report.warning("rates", message);
            }
        }
    }
}

/// Records `key` at `index` unless already seen; returns where it was first seen.
fn first_seen<K: std::hash::Hash + Eq>(
    seen: &mut HashMap<K, usize>,
    key: K,
    index: usize,
) -> Option<usize> {
    match seen.entry(key) {
        std::collections::hash_map::Entry::Occupied(entry) => Some(*entry.get()),
        std::collections::hash_map::Entry::Vacant(entry) => {
            entry.insert(index);
            None
        }
    }
}

fn check_settlement(report: &mut Report, peers: &[PeerConfig], settlement: &SettlementConfig, env: &Env) {
    if !settlement.enabled {
        return;
    }
    let mut evm_peers = 0;
    let mut addresses: HashMap<String, usize> = HashMap::new();
    for (index, peer) in peers.iter().enumerate() {
        let Some(peer_settlement) = &peer.settlement else {
            continue;
        };
        let (url, name) = match peer_settlement.chain.as_str() {
            "evm" => (&settlement.evm_rpc_url, "SETTLEMENT_EVM_RPC_URL"),
            "xrpl" => (&settlement.xrpl_url, "SETTLEMENT_XRPL_URL"),
            _ => (&settlement.aptos_url, "SETTLEMENT_APTOS_URL"),
        };
        let path = format!("peers[{index}].settlement");
        if url.is_none() {
            let message = format!("settlement is enabled but {name} is not set (or is invalid)");
            report.error(format!("{path}.chain"), message);
        }
        if peer_settlement.chain != "evm" {
            let message = format!("{} settlement is not in this build yet (evm is); this peer will not settle", peer_settlement.chain);
            report.warning(format!("{path}.chain"), message);
            continue;
        }
        evm_peers += 1;
        match &peer_settlement.address {
            None => report.error(format!("{path}.address"), "required to settle on evm: the peer's account (its claims' signer, our channel's counterparty)"),
            Some(address) => {
                if let Some(first) = first_seen(&mut addresses, address.to_ascii_lowercase(), index) {
                    let message = format!("same address as peers[{first}]: channels and claims could not be told apart");
                    report.error(format!("{path}.address"), message);
                }
            }
        }
        if peer_settlement.direction.peer_pays() && peer_settlement.direction.pays_peer()
            && peer_settlement.prepayment_allowance >= peer_settlement.threshold
        {
            let message = "at or above threshold with direction both: a prepayment could be paid straight back";
            report.warning(format!("{path}.prepayment_allowance"), message);
        }
    }
    if evm_peers == 0 {
        return;
    }
    let evm = &settlement.evm;
    let required = [
        ("SETTLEMENT_EVM_CHAIN_ID", evm.chain_id.is_none()),
        ("TOKEN_NETWORK_REGISTRY", evm.registry.is_none()),
        ("M2M_TOKEN_ADDRESS", evm.token.is_none()),
        ("EVM_PRIVATE_KEY", evm.private_key.is_none() && env.get("EVM_PRIVATE_KEY_FILE").is_none()),
    ];
    for (name, missing) in required {
        // An invalid value is already reported where it was read.
        if missing && env.get(name).is_none() {
            let message = "required to settle on evm (SETTLEMENT_ENABLED=true and a peer with chain = \"evm\"); not set, or invalid";
            report.error(format!("env {name}"), message);
        }
    }
}

// --- Single values ------------------------------------------------------------------------------

fn any(value: u64) -> Result<u64, String> {
    Ok(value)
}

fn any_usize(value: u64) -> Result<usize, String> {
    usize::try_from(value).map_err(|_| "is too large".to_string())
}

fn positive(value: u64) -> Result<u64, String> {
    if value == 0 {
        return Err("must be greater than 0".to_string());
    }
    Ok(value)
}

fn positive_usize(value: u64) -> Result<usize, String> {
    positive(value).and_then(any_usize)
}

fn positive_u32(value: u64) -> Result<u32, String> {
    let value = positive(value)?;
    u32::try_from(value).map_err(|_| format!("must be at most {}", u32::MAX))
}

/// A remote port: 1 to 65535.
fn port(value: u64) -> Result<u16, String> {
    match u16::try_from(value) {
        Ok(port) if port > 0 => Ok(port),
        _ => Err("must be a port number, 1 to 65535".to_string()),
    }
}

/// A port to listen on; 0 asks the system for a free one (tests start nodes that way).
fn listen_port(value: u64) -> Result<u16, String> {
    u16::try_from(value).map_err(|_| "must be a port number, 0 to 65535".to_string())
}

fn env_port(text: &str) -> Result<u16, String> {
    let value = text
        .parse::<u64>()
        .map_err(|_| "must be a port number, 0 to 65535".to_string())?;
    listen_port(value)
}

fn non_empty(text: &str) -> Result<String, String> {
    if text.is_empty() {
        return Err("must not be empty".to_string());
    }
    Ok(text.to_string())
}

fn secret(text: &str) -> Result<Secret, String> {
    if text.is_empty() {
        return Err("must not be empty".to_string());
    }
    Ok(Secret::new(text))
}

fn env_name(text: &str) -> Result<String, String> {
    let valid = !text.is_empty() && !text.contains('=') && !text.contains('\0');
    if !valid {
        return Err("must be the name of an environment variable".to_string());
    }
    Ok(text.to_string())
}

fn node_id(text: &str) -> Result<String, String> {
    let valid = (1..=64).contains(&text.len())
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_~-.".contains(c));
    if !valid {
        return Err("must be 1 to 64 letters, digits, `_`, `~`, `-` or `.`".to_string());
    }
    Ok(text.to_string())
}

fn node_address(text: &str) -> Result<String, String> {
    if !is_valid_ilp_address(text) {
        return Err(format!("`{text}` is not a valid ILP address (RFC 15: a scheme such as g, test or private, then one or more `.segment` of letters, digits, `_`, `~`, `-`)"));
    }
    if matches!(scheme(text), "peer" | "self") {
        return Err(format!(
            "`{text}`: peer. and self. addresses are link-local, not a node's address"
        ));
    }
    Ok(text.to_string())
}

fn route_prefix(text: &str) -> Result<String, String> {
    let scheme_only = ILP_SCHEMES.contains(&text);
    if !scheme_only && !is_valid_ilp_address(text) {
        return Err(format!(
            "`{text}` is not a valid ILP address or scheme (RFC 15)"
        ));
    }
    if matches!(scheme(text), "peer" | "self") {
        return Err(format!(
            "`{text}`: peer. and self. destinations are never forwarded"
        ));
    }
    Ok(text.to_string())
}

fn asset_code(text: &str) -> Result<String, String> {
    let valid = !text.is_empty() && text.chars().all(|c| c.is_ascii_graphic());
    if !valid {
        return Err("must be a non-empty code without spaces, such as USD".to_string());
    }
    Ok(text.to_string())
}

fn asset_scale(value: u64) -> Result<u8, String> {
    u8::try_from(value).map_err(|_| "must be 0 to 255".to_string())
}

fn bind_host(text: &str) -> Result<IpAddr, String> {
    text.parse()
        .map_err(|_| format!("`{text}` is not an IP address (such as 0.0.0.0 or 127.0.0.1)"))
}

fn log_level(text: &str) -> Result<String, String> {
    let valid = !text.is_empty() && !text.chars().any(char::is_whitespace);
    if !valid {
        return Err(
            "must be a non-empty filter directive without spaces, such as info".to_string(),
        );
    }
    Ok(text.to_string())
}

fn peer_id(text: &str) -> Result<String, String> {
    if !is_valid_segment(text) {
        return Err(format!(
            "`{text}` must be one ILP address segment: letters, digits, `_`, `~`, `-`"
        ));
    }
    Ok(text.to_string())
}

/// `btp+ws`, `btp+wss`, `ws` or `wss`, stored without `btp+`. Never echoed: a URL may hold
/// credentials, which belong in `token` instead.
fn outgoing_url(text: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(text.strip_prefix("btp+").unwrap_or(text))
        .map_err(|error| format!("not a valid URL ({error})"))?;
    if !matches!(url.scheme(), "ws" | "wss") {
        return Err("scheme must be btp+ws, btp+wss, ws or wss".to_string());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(
            "must not contain user:password@; put the token in token or token_env".to_string(),
        );
    }
    if url.host().is_none() {
        return Err("has no host".to_string());
    }
    Ok(url)
}

fn relation(text: &str) -> Result<Relation, String> {
    match text {
        "parent" => Ok(Relation::Parent),
        "peer" => Ok(Relation::Peer),
        "child" => Ok(Relation::Child),
        _ => Err(format!("`{text}` must be parent, peer or child")),
    }
}

fn chain(text: &str) -> Result<String, String> {
    if !matches!(text, "evm" | "xrpl" | "aptos") {
        return Err(format!("`{text}` must be evm, xrpl or aptos"));
    }
    Ok(text.to_string())
}

/// Syntax of a settlement address on its chain; checksums are the executors' business.
fn chain_address(chain: &str, address: &str) -> Result<(), String> {
    let hex_digits = |digits: &str| digits.chars().all(|c| c.is_ascii_hexdigit());
    let valid = match chain {
        "evm" => address
            .strip_prefix("0x")
            .is_some_and(|d| d.len() == 40 && hex_digits(d)),
        "aptos" => address
            .strip_prefix("0x")
            .is_some_and(|d| (1..=64).contains(&d.len()) && hex_digits(d)),
        _ => {
            let base58 = |c: char| c.is_ascii_alphanumeric() && !"0OIl".contains(c);
            address.starts_with('r')
                && (25..=35).contains(&address.len())
                && address.chars().all(base58)
        }
    };
    if !valid {
        let expected = match chain {
            "evm" => "0x and 40 hex digits",
            "aptos" => "0x and 1 to 64 hex digits",
            _ => "a classic address: r and 24 to 34 base58 characters",
        };
        return Err(format!(
            "`{address}` is not an address on {chain} ({expected})"
        ));
    }
    Ok(())
}

/// A positive decimal such as `0.9` or `1250`, as an exact reduced fraction.
/// A positive decimal (`"0.9"`) as an exact fraction in lowest terms.
pub fn parse_rate(text: &str) -> Result<(u128, u128), String> {
    let invalid = || format!("`{text}` is not a positive decimal number such as \"0.9\"");
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty()
        || !digits(whole)
        || !digits(fraction)
        || (text.contains('.') && fraction.is_empty())
    {
        return Err(invalid());
    }
    let fraction = fraction.trim_end_matches('0');
    let too_precise = || format!("`{text}` has too many digits to be represented exactly");
    let fraction_digits = u32::try_from(fraction.len()).map_err(|_| too_precise())?;
    let denominator = 10u128
        .checked_pow(fraction_digits)
        .ok_or_else(too_precise)?;
    let numerator = format!("{whole}{fraction}")
        .parse::<u128>()
        .map_err(|_| too_precise())?;
    if numerator == 0 {
        return Err("must be greater than 0".to_string());
    }
    let divisor = gcd(numerator, denominator);
    Ok((numerator / divisor, denominator / divisor))
}

fn gcd(mut a: u128, mut b: u128) -> u128 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

fn scheme(address: &str) -> &str {
    address.split('.').next().unwrap_or("")
}

/// `test` for the test networks, `live` for `g`, None for the others (RFC 34).
fn network(address: &str) -> Option<&'static str> {
    match scheme(address) {
        "g" => Some("live"),
        "test" | "test1" | "test2" | "test3" => Some("test"),
        _ => None,
    }
}

/// RFC 15. Private until `crate::ilp::address` settles; then this defers to it.
fn is_valid_ilp_address(address: &str) -> bool {
    crate::ilp::address::Address::is_valid(address.as_bytes())
}

fn is_valid_segment(segment: &str) -> bool {
    !segment.is_empty()
        && segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_~-".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs each case of a table. Cases are separated by `---` lines; in a case, `=> path: text`
    /// expects a problem (`=> warning: path: text` a warning) at `path` whose message contains
    /// `text`, `$ NAME=value` sets a variable, `@node` stands for a minimal valid [node] and
    /// `@peer ID` for a minimal valid peer, each optionally followed by `key = value` (set) or
    /// `-key` (remove) edits separated by `;`. Other lines are TOML.
    #[track_caller]
    fn check_cases(table: &str) {
        for case in table.split("\n---\n") {
            let mut text = String::new();
            let mut env = Vec::new();
            let mut expect = Vec::new();
            for line in case.lines() {
                if let Some(problem) = line.strip_prefix("=> ") {
                    expect.push(problem);
                } else if let Some(variable) = line.strip_prefix("$ ") {
                    env.push(variable.split_once('=').expect("$ NAME=value"));
                } else if let Some(edits) = line.strip_prefix("@node") {
                    text += &edit(NODE, edits);
                } else if let Some(rest) = line.strip_prefix("@peer ") {
                    let (id, edits) = rest.split_once(' ').unwrap_or((rest, ""));
                    text += &edit(&peer(id), edits);
                } else {
                    text += line;
                    text += "\n";
                }
            }
            check(&text, &env, &expect);
        }
    }

    const NODE: &str =
        "[node]\nid = \"n\"\nilp_address = \"test.n\"\nasset_code = \"USD\"\nasset_scale = 6\n";

    fn peer(id: &str) -> String {
        format!(
            "[[peers]]\nid = \"{id}\"\nrelation = \"peer\"\nasset_code = \"USD\"\nasset_scale = 6\n\
             incoming_token = \"token-{id}\"\ncredit_limit = 0\n"
        )
    }

    fn edit(table: &str, edits: &str) -> String {
        let mut lines: Vec<String> = table.lines().map(String::from).collect();
        for edit in edits.split(';').map(str::trim).filter(|e| !e.is_empty()) {
            let key = edit.trim_start_matches('-').split(" = ").next().unwrap();
            let position = lines
                .iter()
                .position(|l| l.starts_with(&format!("{key} = ")));
            match (edit.starts_with('-'), position) {
                (true, Some(position)) => drop(lines.remove(position)),
                (false, Some(position)) => lines[position] = edit.to_string(),
                (false, None) => lines.push(edit.to_string()),
                (true, None) => panic!("no key {key} to remove"),
            }
        }
        lines.join("\n") + "\n"
    }

    /// Each expected problem matches exactly one actual one, and every actual one is expected.
    #[track_caller]
    fn check(text: &str, env: &[(&str, &str)], expect: &[&str]) {
        let all: Vec<String> = match parse(text, &Env::from_pairs(env.iter().copied())) {
            Ok(loaded) => loaded.warnings.iter().map(Problem::to_string).collect(),
            Err(errors) => errors.problems.iter().map(Problem::to_string).collect(),
        };
        let context = || format!("in:\n{text}\nenv: {env:?}\nproblems:\n{}", all.join("\n"));
        let mut unmatched = all.clone();
        for expected in expect {
            let (warning, rest) = match expected.strip_prefix("warning: ") {
                Some(rest) => ("warning: ", rest),
                None => ("", *expected),
            };
            let (path, needle) = rest.split_once(": ").unwrap_or((rest, ""));
            let prefix = format!("{warning}{path}: ");
            let found = (unmatched.iter()).position(|line| {
                line.starts_with(&prefix) && line[prefix.len()..].contains(needle)
            });
            match found {
                Some(index) => drop(unmatched.remove(index)),
                None => panic!("expected `{expected}`, {}", context()),
            }
        }
        assert!(
            unmatched.is_empty(),
            "unexpected {unmatched:?}, {}",
            context()
        );
    }

    #[test]
    fn journal_commit_log_size() {
        check_cases(
            r#"
@node
[journal]
commit_log_mib = 0
=> journal.commit_log_mib: 1 to 4096
---
@node
[journal]
commit_log_mib = 4097
=> journal.commit_log_mib: 1 to 4096
---
@node
$ JOURNAL_COMMIT_LOG_MIB=lots
=> env JOURNAL_COMMIT_LOG_MIB: whole number"#,
        );
        let parsed = |text: &str, env: &[(&str, &str)]| {
            parse(text, &Env::from_pairs(env.iter().copied())).unwrap().config.journal.commit_log_bytes
        };
        assert_eq!(parsed(NODE, &[]), 64 << 20);
        let text = format!("{NODE}[journal]\ncommit_log_mib = 8\n");
        assert_eq!(parsed(&text, &[]), 8 << 20);
        assert_eq!(parsed(&text, &[("JOURNAL_COMMIT_LOG_MIB", "2")]), 2 << 20);
    }

    #[test]
    fn node() {
        check_cases(
            r#"
@node
---
=> node.id: missing
=> node.ilp_address: missing
=> node.asset_code: missing
=> node.asset_scale: missing
---
@node ilp_address = "test"
=> node.ilp_address: `test` is not a valid ILP address
---
@node ilp_address = "what.n"
=> node.ilp_address: not a valid ILP address
---
@node ilp_address = "test..n"
=> node.ilp_address: not a valid ILP address
---
@node ilp_address = "peer.n"
=> node.ilp_address: peer. and self.
---
@node ilp_address = "self.n"
=> node.ilp_address: peer. and self.
---
@node asset_scale = 256
=> node.asset_scale: 0 to 255
---
@node asset_scale = -1
=> node.asset_scale: must not be negative
---
@node asset_code = ""
=> node.asset_code: non-empty
---
@node asset_code = 840
=> node.asset_code: expected a string, found integer
---
@node id = "a b"
=> node.id: letters, digits
---
@node bind_host = "localhost"
=> node.bind_host: not an IP address
---
@node log_level = ""
=> node.log_level: non-empty
---
@node reflection = "yes"
=> node.reflection: expected true or false, found string
---
@node ilp_trailing_bytes_allowed = 1
=> node.ilp_trailing_bytes_allowed: expected true or false, found integer
---
@node btp_port = "4000"
=> node.btp_port: expected an integer, found string
---
@node btp_port = 0; health_port = 0
---
@node health_port = 65536
=> node.health_port: 0 to 65535
---
@node btp_port = 9000; health_port = 9000
=> node.health_port: must differ from the BTP port
---
@node min_message_window_ms = 0
=> node.min_message_window_ms: greater than 0
---
@node min_message_window_ms = 2000; max_hold_time_ms = 1999
=> node.max_hold_time_ms: at least min_message_window_ms (2000)
---
@node max_hold_time_ms = 1000
---
@node btp_message_size_max = 0; btp_auth_timeout_ms = 0; btp_session_in_flight_max = 0; pipeline_queue_max = 0
=> node.btp_message_size_max: greater than 0
=> node.btp_auth_timeout_ms: greater than 0
=> node.btp_session_in_flight_max: greater than 0
=> node.pipeline_queue_max: greater than 0
---
@node max_sessions_per_peer = 0
=> node.max_sessions_per_peer: greater than 0
---
@node btp_message_size_max = 32855
=> warning: node.btp_message_size_max: below 32856
---
@node btp_message_size_max = 32856
---
@node ready_peers_min = 1
=> node.ready_peers_min: exceeds the number of peers (0)
---
@node ready_peers_min = 1
@peer a
"#,
        );
    }

    #[test]
    fn route_exchange_settings() {
        let text = format!(
            "{NODE}{}{}{}",
            peer("up").replace("\"peer\"", "\"parent\""),
            peer("kid").replace("\"peer\"", "\"child\""),
            edit(&peer("told").replace("\"peer\"", "\"child\""), "send_routes = true"),
        );
        let config = parse(&(text.clone() + &edit(&peer("quiet"), "receive_routes = false")), &Env::default()).unwrap().config;
        let flags: Vec<(bool, bool)> = config.peers.iter().map(|peer| (peer.send_routes, peer.receive_routes)).collect();
        // Defaults by relation (children neither), each overridable.
        assert_eq!(flags, [(true, true), (false, false), (true, false), (true, false)]);
        assert_eq!((config.routing.enabled, config.routing.broadcast_interval_ms, config.routing.route_expiry_ms), (true, 30_000, 45_000));
        check_cases(
            r#"
@node
[routing]
broadcast_interval_ms = 1000
route_expiry_ms = 1000
=> routing.route_expiry_ms: must be longer than broadcast_interval_ms (1000)
---
@node
[routing]
enabled = "no"
route_expiry_ms = 0
=> routing.enabled: expected true or false
---
@node
@peer a send_routes = 1
=> peers[0].send_routes: expected true or false
"#,
        );
    }

    #[test]
    fn rate_feeds() {
        let text = format!(
            "{NODE}[[rate_feeds]]\nkind = \"http\"\nurl = \"https://rates.example/fx\"\n[[rate_feeds]]\nkind = \"file\"\npath = \"/run/fx.json\"\npoll_interval_ms = 250\nmax_age_ms = 5000\n"
        );
        let config = parse(&text, &Env::default()).unwrap().config;
        assert!(matches!(&config.rate_feeds[0].kind, RateFeedKind::Http { url } if url == "https://rates.example/fx"));
        assert_eq!((config.rate_feeds[0].poll_interval_ms, config.rate_feeds[0].max_age_ms), (1000, 30_000));
        assert!(matches!(&config.rate_feeds[1].kind, RateFeedKind::File { path } if path == Path::new("/run/fx.json")));
        check_cases(
            r#"
@node
[[rate_feeds]]
kind = "ftp"
=> rate_feeds[0].kind: `ftp` is not a rate feed kind (http or file)
---
@node
[[rate_feeds]]
kind = "http"
url = "ws://x"
path = "/x"
=> rate_feeds[0].url: must start with http:// or https://
=> rate_feeds[0].path: only for kind = "file"
---
@node
[[rate_feeds]]
kind = "file"
=> rate_feeds[0].path: required for kind = "file"
---
@node
[[rate_feeds]]
kind = "file"
path = "/x"
poll_interval_ms = 1000
max_age_ms = 1000
=> rate_feeds[0].max_age_ms: must be longer than poll_interval_ms (1000)
"#,
        );
    }

    #[test]
    fn node_address_length() {
        let address = |length: usize| format!("ilp_address = \"test.{}\"", "a".repeat(length - 5));
        check(&edit(NODE, &address(1023)), &[], &[]);
        check(
            &edit(NODE, &address(1024)),
            &[],
            &["node.ilp_address: not a valid ILP address"],
        );
        let child = edit(&peer("c"), "relation = \"child\"");
        check(&(edit(NODE, &address(1021)) + &child), &[], &[]);
        check(
            &(edit(NODE, &address(1022)) + &child),
            &[],
            &["peers[0].id: the child address"],
        );
    }

    #[test]
    fn unknown_keys_and_syntax() {
        check_cases(
            r#"
colour = 1
@node
=> colour: unknown key (expected one of: node, journal, explorer, routing, peers, routes, rates, rate_feeds)
---
@node btp_prot = 1
=> node.btp_prot: unknown key (did you mean `btp_port`?)
---
@node
@peer a
[peers.outgoing]
url = "ws://h"
tokn = "t"
=> peers[0].outgoing.tokn: did you mean `token`?
---
@node
@peer a
[peers.settlement]
chain = "evm"
threshold = 10
setle_to = 0
=> peers[0].settlement.setle_to: unknown key (did you mean `settle_to`?)
---
@node
[peers]
id = "a"
=> peers: expected an array of tables ([[peers]]), found table
---
peers = [1]
@node
=> peers[0]: expected a table, found integer
---
node = 1
=> node: expected a table, found integer
---
[node]
id =
=> line 2, column 5: invalid string; expected `"`, `'`
---
[node]
id = "a"
id = "b"
=> line 3, column 1: duplicate key
"#,
        );
    }

    #[test]
    fn peers() {
        check_cases(
            r#"
@node
@peer a
---
@node
[[peers]]
=> peers[0].id: missing
=> peers[0].relation: missing
=> peers[0].asset_code: missing
=> peers[0].asset_scale: missing
=> peers[0].credit_limit: missing
=> warning: peers[0]: neither incoming_token(_env) nor [outgoing]
---
@node
@peer a.b
=> peers[0].id: `a.b` must be one ILP address segment
---
@node
@peer a!
=> peers[0].id: `a!` must be one ILP address segment
---
@node
@peer a relation = "friend"
=> peers[0].relation: `friend` must be parent, peer or child
---
@node
@peer a asset_scale = 300; asset_code = ""
=> peers[0].asset_scale: 0 to 255
=> peers[0].asset_code: non-empty
---
@node
@peer a
@peer a incoming_token = "other"
=> peers[1].id: duplicate peer id `a` (also peers[0])
---
@node
@peer a max_packet_amount = 0; packets_per_second_max = 0; throughput_per_second_max = 0
=> peers[0].max_packet_amount: greater than 0
=> peers[0].packets_per_second_max: greater than 0
=> peers[0].throughput_per_second_max: greater than 0
---
@node
@peer a packets_per_second_max = 4294967296
=> peers[0].packets_per_second_max: at most 4294967295
---
@node
@peer a credit_limit = -5
=> peers[0].credit_limit: must not be negative
---
@node
@peer a -credit_limit
=> peers[0].credit_limit: missing
"#,
        );
    }

    #[test]
    fn tokens() {
        check_cases(
            r#"
@node
@peer a -incoming_token
=> warning: peers[0]: neither incoming_token(_env) nor [outgoing]: this peer can never connect
---
@node
@peer a incoming_token = ""
=> peers[0].incoming_token: must not be empty
---
@node
@peer a incoming_token_env = "A"
$ A=x
=> peers[0].incoming_token_env: set either incoming_token or incoming_token_env, not both
---
@node
@peer a -incoming_token; incoming_token_env = "A_TOKEN"
$ A_TOKEN=x
---
@node
@peer a -incoming_token; incoming_token_env = "A_TOKEN"
=> peers[0].incoming_token_env: environment variable A_TOKEN is not set
---
@node
@peer a -incoming_token; incoming_token_env = "A_TOKEN"
$ A_TOKEN=
=> peers[0].incoming_token_env: environment variable A_TOKEN is empty
---
@node
@peer a -incoming_token; incoming_token_env = ""
=> peers[0].incoming_token_env: must be the name of an environment variable
---
@node
@peer a
@peer b incoming_token = "token-a"
@peer c incoming_token = "token-a"
=> peers[1].incoming_token: same token as peers[0]
=> peers[2].incoming_token: same token as peers[0]
---
@node
@peer a
@peer b -incoming_token; incoming_token_env = "B"
$ B=token-a
=> peers[1].incoming_token: same token as peers[0]
"#,
        );
        let text =
            NODE.to_string() + &edit(&peer("a"), "-incoming_token; incoming_token_env = \"A\"");
        let loaded = parse(&text, &Env::from_pairs([("A", "x")])).unwrap();
        assert_eq!(
            loaded.config.peers[0].incoming_token,
            Some(Secret::new("x"))
        );
    }

    #[test]
    fn outgoing_links() {
        check_cases(
            r#"
@node
@peer a
[peers.outgoing]
url = "btp+ws://127.0.0.1:4001"
token = "t"
---
@node
@peer a
[peers.outgoing]
url = "wss://h.example/btp"
token_env = "T"
$ T=t
---
@node
@peer a
[peers.outgoing]
url = "ws://h"
=> peers[0].outgoing.token: missing: set token or token_env
---
@node
@peer a
[peers.outgoing]
token = "t"
=> peers[0].outgoing.url: missing
---
@node
@peer a
[peers.outgoing]
url = "http://h"
token = ""
=> peers[0].outgoing.url: scheme must be btp+ws, btp+wss, ws or wss
=> peers[0].outgoing.token: must not be empty
---
@node
@peer a
[peers.outgoing]
url = "btp+http://h"
token = "t"
=> peers[0].outgoing.url: scheme must be btp+ws
---
@node
@peer a
[peers.outgoing]
url = "not a url"
token = "t"
=> peers[0].outgoing.url: not a valid URL
---
@node
@peer a
[peers.outgoing]
url = "btp+ws://name:password@h"
token = "t"
=> peers[0].outgoing.url: must not contain user:password@
---
@node
@peer a outgoing = 1
=> peers[0].outgoing: expected a table, found integer
"#,
        );
        let text = NODE.to_string()
            + &peer("a")
            + "[peers.outgoing]\nurl = \"btp+wss://h.example/btp\"\ntoken = \"t\"\n";
        let config = parse(&text, &Env::default()).unwrap().config;
        let outgoing = config.peers[0].outgoing.as_ref().unwrap();
        assert_eq!(outgoing.url.as_str(), "wss://h.example/btp");
        assert_eq!(outgoing.token, Secret::new("t"));
    }

    #[test]
    fn peer_settlement() {
        check_cases(
            r#"
@node
@peer a
[peers.settlement]
chain = "evm"
threshold = 10
---
@node
@peer a
[peers.settlement]
chain = "btc"
=> peers[0].settlement.chain: `btc` must be evm, xrpl or aptos
=> peers[0].settlement.threshold: missing
---
@node
@peer a
[peers.settlement]
chain = "evm"
threshold = 10
settle_to = 10
=> peers[0].settlement.settle_to: must be less than threshold (10)
---
@node
@peer a
[peers.settlement]
chain = "evm"
threshold = 0
=> peers[0].settlement.threshold: greater than 0
---
@node
@peer a
[peers.settlement]
chain = "evm"
threshold = 10
address = "0x12"
=> peers[0].settlement.address: `0x12` is not an address on evm (0x and 40 hex digits)
---
@node
@peer a
[peers.settlement]
chain = "aptos"
threshold = 10
address = "0x1"
---
@node
@peer a
[peers.settlement]
chain = "xrpl"
threshold = 10
address = "rN7n7otQDd6FczFgLdSqtcsAUxDkw6fzRH"
---
@node
@peer a
[peers.settlement]
chain = "xrpl"
threshold = 10
address = "0x1"
=> peers[0].settlement.address: not an address on xrpl
---
@node
@peer a
[peers.settlement]
chain = "evm"
threshold = 10
$ SETTLEMENT_ENABLED=true
=> peers[0].settlement.chain: settlement is enabled but SETTLEMENT_EVM_RPC_URL is not set
=> peers[0].settlement.address: required to settle on evm
=> env SETTLEMENT_EVM_CHAIN_ID: required to settle on evm
=> env TOKEN_NETWORK_REGISTRY: required to settle on evm
=> env M2M_TOKEN_ADDRESS: required to settle on evm
=> env EVM_PRIVATE_KEY: required to settle on evm
---
@node
@peer a
[peers.settlement]
chain = "evm"
threshold = 10
$ SETTLEMENT_ENABLED=true
$ SETTLEMENT_EVM_RPC_URL=http://127.0.0.1:8545
=> peers[0].settlement.address: required to settle on evm
=> env SETTLEMENT_EVM_CHAIN_ID: required to settle on evm
=> env TOKEN_NETWORK_REGISTRY: required to settle on evm
=> env M2M_TOKEN_ADDRESS: required to settle on evm
=> env EVM_PRIVATE_KEY: required to settle on evm
---
@node
@peer a
[peers.settlement]
chain = "evm"
threshold = 10
address = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
direction = "receive"
prepayment_allowance = 5
$ SETTLEMENT_ENABLED=true
$ BASE_L2_RPC_URL=https://sepolia.base.org
$ SETTLEMENT_EVM_CHAIN_ID=84532
$ TOKEN_NETWORK_REGISTRY=0x5FbDB2315678afecb367f032d93F642f64180aa3
$ M2M_TOKEN_ADDRESS=0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512
$ EVM_PRIVATE_KEY=0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80
---
@node
@peer a
@peer b
[peers.settlement]
chain = "evm"
threshold = 10
address = "0x70997970c51812dc3a010c7d01b50e0d17dc79c8"
direction = "sideways"
deposit_initial = 200
deposit_max = 100
[[peers]]
id = "c"
relation = "child"
asset_code = "USD"
asset_scale = 6
incoming_token = "c-token"
credit_limit = 0
[peers.settlement]
chain = "evm"
threshold = 1000
address = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
deposit_max = 999
$ SETTLEMENT_ENABLED=true
$ SETTLEMENT_EVM_RPC_URL=ws://127.0.0.1:8545
$ SETTLEMENT_EVM_CHAIN_ID=zero
$ TOKEN_NETWORK_REGISTRY=0x5FbDB
$ M2M_TOKEN_ADDRESS=0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512
$ EVM_PRIVATE_KEY=0xnot-a-key-S3CRET
$ SETTLEMENT_EVM_CONFIRMATIONS=many
$ EVM_PRIVATE_KEY_FIEL=/tmp/key
=> peers[1].settlement.direction: `sideways` must be pay
=> peers[1].settlement.deposit_initial: must not exceed deposit_max (100)
=> peers[2].settlement.deposit_max: 999 is below threshold (1000)
=> env SETTLEMENT_EVM_RPC_URL: scheme must be one of: http, https
=> env SETTLEMENT_EVM_CHAIN_ID: must be a decimal chain id
=> env TOKEN_NETWORK_REGISTRY: `0x5FbDB` is not an EVM address
=> env EVM_PRIVATE_KEY: not a private key
=> env SETTLEMENT_EVM_CONFIRMATIONS: must be a whole number of blocks
=> peers[2].settlement.chain: settlement is enabled but SETTLEMENT_EVM_RPC_URL is not set
=> warning: env EVM_PRIVATE_KEY_FIEL: unknown variable, ignored (did you mean EVM_PRIVATE_KEY_FILE?)
---
@node
@peer a
[peers.settlement]
chain = "evm"
threshold = 10
address = "0x70997970c51812dc3a010c7d01b50e0d17dc79c8"
@peer b
[peers.settlement]
chain = "evm"
threshold = 10
address = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
$ SETTLEMENT_ENABLED=true
$ SETTLEMENT_EVM_RPC_URL=http://127.0.0.1:8545
$ SETTLEMENT_EVM_CHAIN_ID=31337
$ TOKEN_NETWORK_REGISTRY=0x5FbDB2315678afecb367f032d93F642f64180aa3
$ M2M_TOKEN_ADDRESS=0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512
$ EVM_PRIVATE_KEY=ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80
=> peers[1].settlement.address: same address as peers[0]
"#,
        );
    }

    #[test]
    fn routes() {
        check_cases(
            r#"
@node
@peer a
@peer b
[[routes]]
prefix = "test.a"
peer = "a"
[[routes]]
prefix = "test"
peer = "b"
[[routes]]
prefix = "example.x"
peer = "b"
---
@node
@peer a
[[routes]]
prefix = "test.c"
peer = "c"
=> routes[0].peer: no peer with id `c`
---
@node
@peer a
@peer b
[[routes]]
prefix = "test.a"
peer = "a"
[[routes]]
prefix = "test.a"
peer = "b"
=> routes[1].prefix: duplicate prefix (also routes[0])
---
@node
@peer a
[[routes]]
prefix = "test..a"
peer = "a"
[[routes]]
prefix = "nope"
peer = "a"
=> routes[0].prefix: `test..a` is not a valid ILP address or scheme
=> routes[1].prefix: `nope` is not a valid ILP address or scheme
---
@node
@peer a
[[routes]]
prefix = "peer.config"
peer = "a"
=> routes[0].prefix: peer. and self. destinations are never forwarded
---
@node
@peer a
[[routes]]
prefix = "g"
peer = "a"
=> warning: routes[0].prefix: a test-network node rejects live-network destinations
---
@node
[[routes]]
=> routes[0].prefix: missing
=> routes[0].peer: missing
"#,
        );
    }

    #[test]
    fn rates() {
        check_cases(
            r#"
@node
@peer a
@peer b asset_code = "EUR"
=> warning: rates: no rate between EUR and USD
---
@node
@peer a
@peer b asset_code = "EUR"
@peer c asset_code = "JPY"
[[rates]]
from = "USD"
to = "EUR"
rate = "0.9"
=> warning: rates: no rate between EUR and JPY
=> warning: rates: no rate between JPY and USD
---
@node
@peer a
@peer b asset_code = "EUR"
[[rates]]
from = "EUR"
to = "USD"
rate = 2
---
@node
@peer a
@peer b asset_code = "EUR"
[[rates]]
from = "USD"
to = "EUR"
rate = "0.9"
[[rates]]
from = "EUR"
to = "USD"
rate = "1.1"
=> rates[1]: a second rate between EUR and USD (also rates[0])
---
@node
[[rates]]
from = "USD"
to = "EUR"
rate = 0.9
[[rates]]
from = "USD"
to = "JPY"
rate = "0"
[[rates]]
from = "USD"
to = "CHF"
rate = 0
[[rates]]
from = "USD"
to = "GBP"
rate = "-1"
[[rates]]
from = "USD"
to = "CAD"
rate = true
=> rates[0].rate: write the rate as a string (for example "0.9")
=> rates[1].rate: must be greater than 0
=> rates[2].rate: must be greater than 0
=> rates[3].rate: `-1` is not a positive decimal number
=> rates[4].rate: expected a decimal string, found boolean
---
@node
[[rates]]
from = "USD"
to = "USD"
rate = "1"
[[rates]]
from = ""
to = "EUR"
rate = "1"
[[rates]]
=> rates[0].to: a rate needs two different assets
=> rates[1].from: non-empty
=> rates[2].from: missing
=> rates[2].to: missing
=> rates[2].rate: missing
"#,
        );
        let text = NODE.to_string() + "[[rates]]\nfrom = \"USD\"\nto = \"EUR\"\nrate = \"0.90\"\n";
        let config = parse(&text, &Env::default()).unwrap().config;
        assert_eq!(
            (config.rates[0].numerator, config.rates[0].denominator),
            (9, 10)
        );
        assert_eq!(config.rate("USD", "EUR"), Some((9, 10)));
        assert_eq!(config.rate("EUR", "USD"), Some((10, 9)));
        assert_eq!(config.rate("EUR", "EUR"), Some((1, 1)));
        assert_eq!(config.rate("EUR", "JPY"), None);
    }

    #[test]
    fn rate_parsing() {
        let cases: &[(&str, Option<(u128, u128)>)] = &[
            ("0.9", Some((9, 10))),
            ("1", Some((1, 1))),
            ("1.50", Some((3, 2))),
            ("0.000001", Some((1, 1_000_000))),
            ("1250", Some((1250, 1))),
            ("007.5", Some((15, 2))),
            (
                "0.00000000000000000000000000000000000001",
                Some((1, 10u128.pow(38))),
            ),
            ("0.000000000000000000000000000000000000001", None),
            ("1000000000000000000000000000000000000000", None),
            ("0", None),
            ("0.0", None),
            ("1.", None),
            (".5", None),
            ("-1", None),
            ("+1", None),
            ("1e3", None),
            (" 1", None),
            ("", None),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_rate(text).ok(), *expected, "{text}");
        }
    }

    #[test]
    fn ilp_addresses() {
        let valid =
            "g.a test.a.b test1.x test3.x private.a-b_c~d local.1 peer.config self.x example.A";
        let invalid = "g test. .g.a g..a test4.x what.x g.a!b g.a/b G.a g.é";
        for address in valid.split(' ') {
            assert!(is_valid_ilp_address(address), "{address}");
        }
        for address in invalid.split(' ').chain(["", "g.a b"]) {
            assert!(!is_valid_ilp_address(address), "{address}");
        }
        assert!(is_valid_ilp_address(&format!("g.{}", "a".repeat(1021))));
        assert!(!is_valid_ilp_address(&format!("g.{}", "a".repeat(1022))));
    }

    #[test]
    fn environment() {
        check_cases(
            r#"
@node -id
$ NODE_ID=pod-0
---
@node
$ BTP_PORT=abc
=> env BTP_PORT: must be a port number, 0 to 65535
---
@node btp_port = 70000
$ BTP_PORT=65536
$ HEALTH_PORT=99999
=> node.btp_port: 0 to 65535
=> env BTP_PORT: 0 to 65535
=> env HEALTH_PORT: 0 to 65535
---
@node
$ HEALTH_PORT=4000
=> env HEALTH_PORT: must differ from the BTP port
---
@node
$ NODE_ID=
$ LOG_LEVEL=
=> env NODE_ID: letters, digits
=> env LOG_LEVEL: non-empty
---
@node
$ SETTLEMENT_ENABLED=yes
$ SETTLEMENT_EVM_RPC_URL=ftp://h
$ SETTLEMENT_XRPL_URL=nope
$ SETTLEMENT_APTOS_URL=wss://h
=> env SETTLEMENT_ENABLED: must be true or false
=> env SETTLEMENT_EVM_RPC_URL: scheme must be one of: http, https
=> env SETTLEMENT_XRPL_URL: not a valid URL
=> env SETTLEMENT_APTOS_URL: scheme must be one of: http, https
---
@node
$ SETTLEMENT_EVM_RPX_URL=http://h
$ TIGERBEETLE_REPLICA=3000
$ OTHER_VARIABLE=x
=> warning: env SETTLEMENT_EVM_RPX_URL: unknown variable, ignored
=> warning: env TIGERBEETLE_REPLICA: unknown variable, ignored
---
@node
$ TIGERBEETLE_CLUSTER_ID=-1
$ TIGERBEETLE_REPLICAS=3000,,bad host:1 ,h:0,[::1:3
=> env TIGERBEETLE_CLUSTER_ID: must be a decimal integer below 2^128
=> env TIGERBEETLE_REPLICAS: item 2: ``: port must be a port number
=> env TIGERBEETLE_REPLICAS: item 3: `bad host:1`: the host is not a valid name or address
=> env TIGERBEETLE_REPLICAS: item 4: `h:0`: port must be a port number
=> env TIGERBEETLE_REPLICAS: item 5: `[::1:3`: the host
---
@node
$ TIGERBEETLE_BATCH_MAX=1
$ READY_REQUIRES_TIGERBEETLE=yes
=> env TIGERBEETLE_BATCH_MAX: must be a whole number from 2 to 8189
=> env READY_REQUIRES_TIGERBEETLE: must be true or false
"#,
        );

        let env = Env::from_pairs([
            ("NODE_ID", "pod-0"),
            ("BTP_PORT", "5000"),
            ("HEALTH_PORT", "5001"),
            ("LOG_LEVEL", "debug"),
            ("SETTLEMENT_ENABLED", "true"),
            ("SETTLEMENT_EVM_RPC_URL", "https://rpc.example/v1/KEY"),
            (
                "TIGERBEETLE_REPLICAS",
                "3000, 10.0.0.2:3001 ,tb-1.tb:3000,[::1]:3002",
            ),
            (
                "TIGERBEETLE_CLUSTER_ID",
                "340282366920938463463374607431768211455",
            ),
            ("TIGERBEETLE_BATCH_MAX", "253"),
            ("READY_REQUIRES_TIGERBEETLE", "true"),
        ]);
        let config = parse(&edit(NODE, "bind_host = \"127.0.0.1\""), &env)
            .unwrap()
            .config;
        assert_eq!(
            (config.node.id.as_str(), config.node.log_level.as_str()),
            ("pod-0", "debug")
        );
        assert_eq!(config.node.btp_bind, "127.0.0.1:5000".parse().unwrap());
        assert_eq!(config.node.health_bind, "127.0.0.1:5001".parse().unwrap());
        assert!(config.settlement.enabled);
        assert_eq!(
            config.settlement.evm_rpc_url.as_deref(),
            Some("https://rpc.example/v1/KEY")
        );
        let replicas = ["3000", "10.0.0.2:3001", "tb-1.tb:3000", "[::1]:3002"];
        assert_eq!(config.tigerbeetle.replicas, replicas);
        assert_eq!(config.tigerbeetle.cluster_id, u128::MAX);
        assert_eq!(config.tigerbeetle.batch_max, 253);
        assert!(config.tigerbeetle.ready_required);

        assert_eq!(Env::default().config_path(), PathBuf::from("config.toml"));
        let env = Env::from_pairs([("CONFIG_FILE", "/etc/m2m.toml")]);
        assert_eq!(env.config_path(), PathBuf::from("/etc/m2m.toml"));
    }

    #[test]
    fn defaults() {
        let config = parse(NODE, &Env::default()).unwrap().config;
        let node = &config.node;
        assert_eq!(node.btp_bind, "0.0.0.0:4000".parse().unwrap());
        assert_eq!(node.health_bind, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(node.log_level, "info");
        assert_eq!(
            (node.min_message_window_ms, node.max_hold_time_ms),
            (1000, 30_000)
        );
        assert!(!node.reflection && node.ilp_trailing_bytes_allowed);
        assert_eq!(
            (node.btp_message_size_max, node.btp_auth_timeout_ms),
            (65_536, 10_000)
        );
        assert_eq!(
            (node.btp_session_in_flight_max, node.pipeline_queue_max),
            (4096, 8192)
        );
        assert_eq!(node.ready_peers_min, 0);
        assert!(!config.settlement.enabled);
        assert_eq!(
            (
                config.tigerbeetle.replicas.len(),
                config.tigerbeetle.cluster_id
            ),
            (0, 0)
        );
        assert_eq!(config.tigerbeetle.batch_max, 8189);
        assert!(!config.tigerbeetle.ready_required);
    }

    #[test]
    fn several_problems_at_once() {
        check_cases(
            r#"
@node asset_scale = 300; btp_port = 70000
@peer a
@peer a
[[routes]]
prefix = "test.z"
peer = "z"
$ HEALTH_PORT=x
=> node.asset_scale: 0 to 255
=> node.btp_port: 0 to 65535
=> env HEALTH_PORT: 0 to 65535
=> peers[1].id: duplicate peer id
=> peers[1].incoming_token: same token
=> routes[0].peer: no peer with id `z`
"#,
        );
    }

    /// Serde reads the file's shape first and stops at its first problem; the values are
    /// validated (every problem at once) only once the shape is right.
    #[test]
    fn a_shape_problem_comes_alone_with_its_path() {
        check_cases(
            r#"
@node asset_scale = 300; bogus = 1
@peer a credit_limit = "lots"
=> node.bogus: unknown key
---
@node asset_scale = 300
@peer a credit_limit = "lots"
=> peers[0].credit_limit: expected an integer, found string
---
@node asset_scale = 300
@peer a
=> node.asset_scale: 0 to 255
"#,
        );
    }

    const EXAMPLE: &str = include_str!("../../config.example.toml");
    const EXAMPLE_ENV: [(&str, &str); 3] = [
        ("UPSTREAM_TOKEN", "upstream-token"),
        ("BOB_INCOMING_TOKEN", "bob-in"),
        ("BOB_OUTGOING_TOKEN", "bob-out"),
    ];

    #[test]
    fn example_file() {
        check(EXAMPLE, &EXAMPLE_ENV, &[]);
        let config = parse(EXAMPLE, &Env::from_pairs(EXAMPLE_ENV))
            .unwrap()
            .config;
        assert_eq!(config.node.ilp_address, "test.m2m");
        let ids: Vec<&str> = config.peers.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids, ["upstream", "alice", "bob"]);
        let bob = config.peer("bob").unwrap();
        assert_eq!(bob.incoming_token, Some(Secret::new("bob-in")));
        assert_eq!(
            bob.outgoing.as_ref().unwrap().url.as_str(),
            "ws://127.0.0.1:4001/"
        );
        assert_eq!(bob.settlement.as_ref().unwrap().threshold, 1_000_000);
        assert_eq!((config.routes.len(), config.rates.len()), (3, 1));
        let expect = [
            "peers[0].outgoing.token_env: UPSTREAM_TOKEN is not set",
            "peers[2].incoming_token_env: BOB_INCOMING_TOKEN is not set",
            "peers[2].outgoing.token_env: BOB_OUTGOING_TOKEN is not set",
        ];
        check(EXAMPLE, &[], &expect);
    }

    /// Every key in the example sits under a comment (directly or after other keys), so the
    /// example stays the documentation.
    #[test]
    fn example_file_documents_every_key() {
        let mut documented = false;
        for line in EXAMPLE.lines() {
            if line.starts_with('#') {
                documented = true;
            } else if line.trim().is_empty() {
                documented = false;
            } else if line.contains(" = ") {
                assert!(documented, "undocumented key: {line}");
            }
        }
    }

    #[test]
    fn secrets_never_shown() {
        const SECRET: &str = "S3CRET";
        let peer_with =
            |id: &str, token_line: &str| edit(&peer(id), &format!("-incoming_token; {token_line}"));
        let text = NODE.to_string()
            + &peer_with("a", "incoming_token = \"S3CRET-1\"")
            + "[peers.outgoing]\nurl = \"btp+ws://user:S3CRET-2@h\"\ntoken = \"S3CRET-3\"\n"
            + &peer_with("b", "incoming_token_env = \"B\"")
            + &peer_with("c", "incoming_token = \"S3CRET-1\"");
        let env = [
            ("B", "S3CRET-1"),
            ("SETTLEMENT_EVM_RPC_URL", "ftp://h/S3CRET-5"),
            ("SETTLEMENT_OTHER", "S3CRET-6"),
        ];
        let expect = [
            "peers[0].outgoing.url: must not contain user:password@",
            "peers[1].incoming_token: same token as peers[0]",
            "peers[2].incoming_token: same token as peers[0]",
            "env SETTLEMENT_EVM_RPC_URL: scheme must be one of",
            "warning: env SETTLEMENT_OTHER: unknown variable",
        ];
        check(&text, &env, &expect);
        let errors = parse(&text, &Env::from_pairs(env)).unwrap_err();
        let quoted = parse(&format!("{NODE}x = \"{SECRET}\n"), &Env::default()).unwrap_err();
        let bare = parse(&format!("{NODE}x = {SECRET}\n"), &Env::default()).unwrap_err();
        let missing = load(Path::new("/nonexistent/config.toml"), &Env::from_pairs(env));
        let invalid = LoadError::Invalid {
            path: "c.toml".into(),
            problems: errors.clone(),
        };

        let valid = (text.replace("user:S3CRET-2@", "")).replacen("S3CRET-1", "S3CRET-7", 1);
        let env_valid = [
            ("B", "S3CRET-8"),
            ("SETTLEMENT_EVM_RPC_URL", "https://h/S3CRET-9?k=S3CRET"),
        ];
        let loaded = parse(&valid, &Env::from_pairs(env_valid)).unwrap();
        assert_eq!(loaded.config.peers.len(), 3);

        let outputs = [
            errors.to_string(),
            format!("{errors:?}"),
            quoted.to_string(),
            bare.to_string(),
            missing.unwrap_err().to_string(),
            invalid.to_string(),
            format!("{invalid:?}"),
            format!("{loaded:?}"),
            format!("{:?}", Env::from_pairs(env)),
        ];
        for output in outputs {
            assert!(!output.contains(SECRET), "secret shown in:\n{output}");
        }
    }
}
#[cfg(test)]
mod debug_dump {
    #[test]
    fn dump() {
        let text = "\n[node]\nid = \"test-node\"\nilp_address = \"test.m2m\"\nasset_code = \"USD\"\nasset_scale = 6\nbind_host = \"127.0.0.1\"\nbtp_port = 0\nhealth_port = 0\n\n[explorer]\nenabled = false\n\n[[peers]]\nid = \"alice\"\nrelation = \"child\"\nasset_code = \"USD\"\nasset_scale = 6\nincoming_token = \"alice-token\"\ncredit_limit = 1000000\nmax_packet_amount = 500000\n\n[[rates]]\nfrom = \"USD\"\nto = \"EUR\"\nrate = \"0.5\"\n\n[journal]\ndir = \"/tmp/x\"\nsnapshot_every = 25\n";
        let loaded = super::parse(text, &super::Env::default()).unwrap();
        eprintln!("{:#?}", loaded.config);
    }
}
