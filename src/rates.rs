//! Exchange rates from live sources (issue 13): the [`RateSource`] trait and its three sources.
//!
//! - [`StaticSource`]: `[[rates]]` from the configuration, never stale.
//! - [`HttpSource`]: a JSON feed polled over HTTP(S) at an interval.
//! - [`FileSource`]: a JSON file another process writes (a feed pushed to us); its age is the
//!   file's modification time, so a writer that stops makes it stale.
//!
//! A feed's JSON: `{"rates": [{"from": "USD", "to": "EUR", "rate": "0.92"}, ...],
//! "timestamp_ms": 1764900000000}`; `rate` is a decimal string (read exactly) or a JSON number,
//! `timestamp_ms` (optional) is when the rates were observed. Each source runs as a task that
//! hands what it read to the forwarder ([`RatesQueue`]); the forwarder converts every packet
//! at the rate it holds when the packet arrives and records it in `PacketPrepared`, so a rate
//! that changes later never touches a packet in flight. A quote older than its source's
//! `max_age_ms` is stale: packets between those assets are refused (T00, see ARCHITECTURE.md)
//! until a fresh one comes.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::{RateFeedConfig, RateFeedKind, RateConfig};

/// One rate: one unit of `from` (at scale 0) is worth `numerator / denominator` units of `to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quote {
    pub from: String,
    pub to: String,
    pub numerator: u128,
    pub denominator: u128,
}

/// What one read of a source gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RatesUpdate {
    /// The source's name, for logs and metrics (`static`, `http:<host>`, `file:<path>`).
    pub source: String,
    pub quotes: Vec<Quote>,
    /// When the rates were observed (ms since the Unix epoch).
    pub observed_at_ms: i64,
    /// How long they stay usable after that; None: forever.
    pub max_age_ms: Option<u64>,
}

pub type Fetch<'a> = Pin<Box<dyn Future<Output = Result<RatesUpdate, String>> + Send + 'a>>;

/// A place rates come from.
pub trait RateSource: Send {
    fn name(&self) -> &str;
    /// How long to wait between reads.
    fn interval(&self) -> Duration;
    /// Reads the rates once.
    fn fetch(&mut self) -> Fetch<'_>;
}

/// Where a source's reads go (the forwarder's input queue); `false` when it is closed.
pub trait RatesQueue: Send + Sync {
    fn offer(&self, update: RatesUpdate) -> bool;
}

/// `[[rates]]`: fixed rates, read once at start.
pub struct StaticSource {
    quotes: Vec<Quote>,
}

impl StaticSource {
    pub fn new(rates: &[RateConfig]) -> StaticSource {
        let quotes = rates
            .iter()
            .map(|rate| Quote { from: rate.from.clone(), to: rate.to.clone(), numerator: rate.numerator, denominator: rate.denominator })
            .collect();
        StaticSource { quotes }
    }

    pub fn update(&self) -> RatesUpdate {
        RatesUpdate { source: "static".into(), quotes: self.quotes.clone(), observed_at_ms: now_ms(), max_age_ms: None }
    }
}

impl RateSource for StaticSource {
    fn name(&self) -> &str {
        "static"
    }

    fn interval(&self) -> Duration {
        Duration::MAX
    }

    fn fetch(&mut self) -> Fetch<'_> {
        let update = self.update();
        Box::pin(async move { Ok(update) })
    }
}

/// A JSON feed polled over HTTP(S).
pub struct HttpSource {
    name: String,
    url: String,
    interval: Duration,
    max_age_ms: u64,
    client: reqwest::Client,
}

impl HttpSource {
    pub fn new(url: &str, interval: Duration, max_age_ms: u64) -> HttpSource {
        let host = url::Url::parse(url).ok().and_then(|url| url.host_str().map(str::to_owned)).unwrap_or_default();
        let client = reqwest::Client::builder().timeout(interval.clamp(Duration::from_millis(500), Duration::from_secs(10))).build().unwrap_or_default();
        HttpSource { name: format!("http:{host}"), url: url.to_owned(), interval, max_age_ms, client }
    }
}

impl RateSource for HttpSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn interval(&self) -> Duration {
        self.interval
    }

    fn fetch(&mut self) -> Fetch<'_> {
        Box::pin(async move {
            let response = self.client.get(&self.url).send().await.map_err(|error| format!("request failed: {error}"))?;
            let status = response.status();
            if !status.is_success() {
                return Err(format!("answered {status}"));
            }
            let body = response.bytes().await.map_err(|error| format!("reading the answer: {error}"))?;
            if body.len() > FEED_SIZE_MAX {
                return Err(format!("answer of {} bytes is larger than {FEED_SIZE_MAX}", body.len()));
            }
            let (quotes, timestamp) = parse_feed(&body)?;
            Ok(RatesUpdate { source: self.name.clone(), quotes, observed_at_ms: observed_at(timestamp, now_ms()), max_age_ms: Some(self.max_age_ms) })
        })
    }
}

/// A JSON file another process keeps writing.
pub struct FileSource {
    name: String,
    path: PathBuf,
    interval: Duration,
    max_age_ms: u64,
}

impl FileSource {
    pub fn new(path: PathBuf, interval: Duration, max_age_ms: u64) -> FileSource {
        FileSource { name: format!("file:{}", path.display()), path, interval, max_age_ms }
    }
}

impl RateSource for FileSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn interval(&self) -> Duration {
        self.interval
    }

    fn fetch(&mut self) -> Fetch<'_> {
        Box::pin(async move {
            // A small local file, read off the async workers.
            let path = self.path.clone();
            let (modified, body) = tokio::task::spawn_blocking(move || -> Result<(i64, Vec<u8>), String> {
                let shown = path.display();
                let metadata = std::fs::metadata(&path).map_err(|error| format!("{shown}: {error}"))?;
                if metadata.len() > FEED_SIZE_MAX as u64 {
                    return Err(format!("{shown} is {} bytes, larger than {FEED_SIZE_MAX}", metadata.len()));
                }
                let modified = metadata.modified().ok().and_then(|time| time.duration_since(UNIX_EPOCH).ok()).map_or(0, |since| since.as_millis() as i64);
                let body = std::fs::read(&path).map_err(|error| format!("{shown}: {error}"))?;
                Ok((modified, body))
            })
            .await
            .map_err(|error| format!("reading the file: {error}"))??;
            let (quotes, timestamp) = parse_feed(&body)?;
            // Written when it was modified, unless it says it observed the rates earlier.
            Ok(RatesUpdate { source: self.name.clone(), quotes, observed_at_ms: observed_at(timestamp, modified), max_age_ms: Some(self.max_age_ms) })
        })
    }
}

/// The largest feed read (a feed is a handful of pairs; this bounds a broken one).
pub const FEED_SIZE_MAX: usize = 1 << 20;

/// The feed's own time if it gave one, never later than when we read it.
fn observed_at(timestamp: Option<i64>, read_at_ms: i64) -> i64 {
    timestamp.map_or(read_at_ms, |stamp| stamp.min(read_at_ms))
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_millis() as i64)
}

/// Reads a feed's JSON: its quotes and its `timestamp_ms`, if any. Every problem is an error
/// naming the entry: a feed is used whole or not at all.
pub fn parse_feed(body: &[u8]) -> Result<(Vec<Quote>, Option<i64>), String> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|error| format!("not JSON: {error}"))?;
    let rates = value.get("rates").and_then(|rates| rates.as_array()).ok_or("no `rates` array")?;
    let timestamp = match value.get("timestamp_ms") {
        None | Some(serde_json::Value::Null) => None,
        Some(stamp) => Some(stamp.as_i64().ok_or("`timestamp_ms` is not a whole number")?),
    };
    let mut quotes = Vec::with_capacity(rates.len());
    for (index, entry) in rates.iter().enumerate() {
        let field = |name: &str| entry.get(name).and_then(|value| value.as_str()).map(str::to_owned);
        let (Some(from), Some(to)) = (field("from"), field("to")) else {
            return Err(format!("rates[{index}]: needs `from` and `to` asset codes"));
        };
        let text = match entry.get("rate") {
            Some(serde_json::Value::String(text)) => text.clone(),
            Some(serde_json::Value::Number(number)) => number.to_string(),
            _ => return Err(format!("rates[{index}] ({from}/{to}): `rate` must be a decimal string or a number")),
        };
        let (numerator, denominator) = crate::config::parse_rate(&text).map_err(|error| format!("rates[{index}] ({from}/{to}): {error}"))?;
        if from == to {
            return Err(format!("rates[{index}]: a rate from {from} to itself"));
        }
        quotes.push(Quote { from, to, numerator, denominator });
    }
    Ok((quotes, timestamp))
}

/// The sources `[[rate_feeds]]` configures.
pub fn sources(feeds: &[RateFeedConfig]) -> Vec<Box<dyn RateSource>> {
    feeds
        .iter()
        .map(|feed| -> Box<dyn RateSource> {
            let interval = Duration::from_millis(feed.poll_interval_ms);
            match &feed.kind {
                RateFeedKind::Http { url } => Box::new(HttpSource::new(url, interval, feed.max_age_ms)),
                RateFeedKind::File { path } => Box::new(FileSource::new(path.clone(), interval, feed.max_age_ms)),
            }
        })
        .collect()
}

/// Runs each source as a task until `shutdown`: read, hand over, wait its interval. A failed
/// read is logged (once per change of error) and counted; the rates it would have refreshed go
/// stale on their own.
pub fn spawn(sources: Vec<Box<dyn RateSource>>, queue: std::sync::Arc<dyn RatesQueue>, shutdown: tokio::sync::watch::Receiver<bool>) -> Vec<tokio::task::JoinHandle<()>> {
    sources
        .into_iter()
        .map(|mut source| {
            let queue = queue.clone();
            let mut shutdown = shutdown.clone();
            tokio::spawn(async move {
                let mut last_error: Option<String> = None;
                loop {
                    match source.fetch().await {
                        Ok(update) => {
                            if last_error.take().is_some() {
                                tracing::info!(source = source.name(), "rate feed readable again");
                            }
                            crate::metrics::global().rate_feed_read(source.name(), "ok");
                            if !queue.offer(update) {
                                return;
                            }
                        }
                        Err(error) => {
                            crate::metrics::global().rate_feed_read(source.name(), "error");
                            if last_error.as_deref() != Some(error.as_str()) {
                                tracing::warn!(source = source.name(), %error, "rate feed unreadable; its rates go stale after their max age");
                                last_error = Some(error);
                            }
                        }
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(source.interval()) => {}
                        _ = shutdown.changed() => return,
                    }
                }
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feeds_are_read_exactly_and_refused_whole() {
        let (quotes, stamp) = parse_feed(br#"{"rates": [{"from": "USD", "to": "EUR", "rate": "0.92"}, {"from": "EUR", "to": "XRP", "rate": 2}], "timestamp_ms": 17}"#).unwrap();
        assert_eq!(stamp, Some(17));
        assert_eq!(quotes[0], Quote { from: "USD".into(), to: "EUR".into(), numerator: 23, denominator: 25 });
        assert_eq!((quotes[1].numerator, quotes[1].denominator), (2, 1));
        for (body, wanted) in [
            (&br#"{"rates": {}}"#[..], "no `rates` array"),
            (br#"{"rates": [{"from": "USD", "rate": "1"}]}"#, "rates[0]: needs `from` and `to`"),
            (br#"{"rates": [{"from": "USD", "to": "EUR", "rate": "-1"}]}"#, "rates[0] (USD/EUR):"),
            (br#"{"rates": [{"from": "USD", "to": "EUR", "rate": "0"}]}"#, "greater than 0"),
            (br#"{"rates": [{"from": "USD", "to": "USD", "rate": "1"}]}"#, "to itself"),
            (br#"{"rates": [], "timestamp_ms": "now"}"#, "timestamp_ms"),
            (b"rates", "not JSON"),
        ] {
            let error = parse_feed(body).unwrap_err();
            assert!(error.contains(wanted), "{error}");
        }
        assert_eq!(observed_at(Some(5_000), 4_000), 4_000, "never in the future");
    }
}
