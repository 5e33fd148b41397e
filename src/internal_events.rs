//! Operating errors as typed events: one place that writes the log line and counts
//! `connector_errors_total{type,severity}` together, so no failure is only a log line and no
//! count lacks the line that explains it (the pattern of Vector's internal events).
//!
//! Each event is a struct holding what the line reports; [`emit`] writes it at the level its
//! [`ErrorKind`]'s severity gives, with `error_type` and `severity` fields, and counts it. The
//! packet path's hot counters (codec errors, unexpected replies) keep their direct
//! `metrics::global().error(..)` calls, which do the same for a plain message.

use std::fmt::Display;

use crate::metrics::{self, ErrorKind, Severity};

/// An operating error worth a log line and a count.
pub trait InternalEvent {
    /// The counter's `type` (and through it, the severity and the log level).
    fn kind(&self) -> ErrorKind;
    /// The log line's message.
    fn message(&self) -> String;
}

/// Logs `event` at its severity and counts it in `connector_errors_total`.
pub fn emit(event: impl InternalEvent) {
    let kind = event.kind();
    metrics::global().count_error(kind);
    let error_type = kind.type_label();
    let message = event.message();
    match kind.severity() {
        Severity::Warning => tracing::warn!(error_type, severity = "warning", "{message}"),
        Severity::Error => tracing::error!(error_type, severity = "error", "{message}"),
        Severity::Critical => tracing::error!(error_type, severity = "critical", "{message}"),
    }
}

/// The journal could not write or make a batch durable: the node stops acknowledging Fulfills.
pub struct JournalWriteFailed<'a> {
    pub error: &'a dyn Display,
}

impl InternalEvent for JournalWriteFailed<'_> {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Journal
    }
    fn message(&self) -> String {
        format!("journal write failed; no further Fulfill will be acknowledged: {}", self.error)
    }
}

/// Closing the journal at a stop failed (the next start recovers from the commit log).
pub struct JournalCloseFailed<'a> {
    pub error: &'a dyn Display,
}

impl InternalEvent for JournalCloseFailed<'_> {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Journal
    }
    fn message(&self) -> String {
        format!("closing the journal store failed; the next start recovers from the commit log: {}", self.error)
    }
}

/// Journal retention could not archive or remove frames (they stay in the journal).
pub struct RetentionFailed<'a> {
    pub error: &'a dyn Display,
}

impl InternalEvent for RetentionFailed<'_> {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Journal
    }
    fn message(&self) -> String {
        format!("journal retention failed; frames stay in the journal: {}", self.error)
    }
}

/// A projection could not apply a batch; it retries with a backoff.
pub struct ProjectionBatchFailed<'a> {
    pub projection: &'a str,
    pub message: &'a str,
    pub retry_in_ms: u64,
}

impl InternalEvent for ProjectionBatchFailed<'_> {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Projection
    }
    fn message(&self) -> String {
        format!("projection {} batch failed; retrying in {} ms: {}", self.projection, self.retry_in_ms, self.message)
    }
}

/// A projection stopped: the journal could not be read under it.
pub struct ProjectionStopped<'a> {
    pub projection: &'a str,
    pub error: &'a dyn Display,
}

impl InternalEvent for ProjectionStopped<'_> {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Journal
    }
    fn message(&self) -> String {
        format!("projection {} stopped: journal unreadable: {}", self.projection, self.error)
    }
}

/// A projection's checkpoint could not be saved (the next start replays more).
pub struct CheckpointFailed<'a> {
    pub projection: &'a str,
    pub error: &'a dyn Display,
}

impl InternalEvent for CheckpointFailed<'_> {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Projection
    }
    fn message(&self) -> String {
        format!("saving the {} projection's checkpoint failed; the next start replays from the last one: {}", self.projection, self.error)
    }
}

/// The Explorer's index could not be written (retried with the next batch; rebuildable).
pub struct ExplorerIndexFailed<'a> {
    pub action: &'static str,
    pub error: &'a dyn Display,
}

impl InternalEvent for ExplorerIndexFailed<'_> {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Projection
    }
    fn message(&self) -> String {
        format!("Explorer index: {} failed: {}", self.action, self.error)
    }
}

/// An HTTP server (health and metrics, or the Explorer) stopped serving.
pub struct ServerFailed<'a> {
    pub server: &'static str,
    pub error: &'a dyn Display,
}

impl InternalEvent for ServerFailed<'_> {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Internal
    }
    fn message(&self) -> String {
        format!("the {} server failed: {}", self.server, self.error)
    }
}

/// A BTP link we dial (a parent or peer) failed; it is dialled again after the backoff.
pub struct LinkFailed<'a> {
    pub peer: &'a str,
    pub url: &'a str,
    pub error: &'a dyn Display,
    pub retry_in_ms: u64,
}

impl InternalEvent for LinkFailed<'_> {
    fn kind(&self) -> ErrorKind {
        ErrorKind::PeerUnreachable
    }
    fn message(&self) -> String {
        format!("BTP link to {} ({}) failed; retrying in {} ms: {}", self.peer, self.url, self.retry_in_ms, self.error)
    }
}

/// Accepting a BTP connection failed at the socket.
pub struct AcceptFailed<'a> {
    pub error: &'a dyn Display,
}

impl InternalEvent for AcceptFailed<'_> {
    fn kind(&self) -> ErrorKind {
        ErrorKind::BtpProtocol
    }
    fn message(&self) -> String {
        format!("accepting a BTP connection failed: {}", self.error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Emitting counts under the event's type and severity: what `/metrics` renders.
    #[test]
    fn an_event_is_counted_under_its_type() {
        let count = |kind: ErrorKind| {
            let text = metrics::global().render();
            // Label names come in lexical order: severity, then type.
            let wanted = format!("connector_errors_total{{severity=\"{}\",type=\"{}\"}} ", kind.severity().label(), kind.type_label());
            text.lines().filter_map(|line| line.strip_prefix(&wanted)?.parse::<u64>().ok()).sum::<u64>()
        };
        let before = count(ErrorKind::Projection);
        emit(ProjectionBatchFailed { projection: "test", message: "no", retry_in_ms: 10 });
        emit(CheckpointFailed { projection: "test", error: &"disk full" });
        assert_eq!(count(ErrorKind::Projection), before + 2);
        let before = count(ErrorKind::Journal);
        emit(JournalWriteFailed { error: &"no space left on device" });
        assert_eq!(count(ErrorKind::Journal), before + 1);
    }
}
