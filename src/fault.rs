//! Fail-stop: a panic anywhere in the node ends the process.
//!
//! A stage thread (the forwarder, the journal writer, a projection) that died used to leave the
//! node up: sessions answered T00 forever while `/health/live` said 200, so nothing restarted
//! it. [`install_fail_stop`] makes every panic, on any thread, log one last line, count
//! `connector_errors_total{type="internal"}`, and abort the process (a non-zero exit, SIGABRT),
//! so the supervisor (Kubernetes, systemd) restarts it and the restart recovers from the
//! journal. Aborting loses nothing the node promised: a Fulfill leaves only after its batch is
//! durable, and recovery checks every frame.
//!
//! [`hit`] is the fault-injection hook for the tests that show it: with the cargo feature
//! `fault-injection` and `M2M_FAULT=POINT:N`, the N-th pass through `POINT` (`forwarder`,
//! `journal-writer`, `projection-balances`, ...) panics. [`delay`] is its slow twin:
//! `M2M_FAULT_DELAY=POINT:MS` makes every pass through `POINT` (`journal-release`: a journal
//! that takes that long to make Fulfills durable; `btp-session-up-PEER`: a new BTP session of
//! that peer whose task waits that long for a core before it registers with the forwarder) sleep. Without the feature both compile to
//! nothing; release builds never enable it.

/// Makes any panic fatal to the whole process, after a last log line and metric.
pub fn install_fail_stop() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default_hook(info);
        let thread = std::thread::current();
        let thread = thread.name().unwrap_or("unnamed");
        crate::metrics::global().count_error(crate::metrics::ErrorKind::Internal);
        tracing::error!(
            thread,
            panic = %info,
            "fail-stop: a thread of the node panicked; aborting so that the node restarts and recovers from its journal"
        );
        std::process::abort();
    }));
}

/// A fault-injection point (see the module's documentation); nothing without the
/// `fault-injection` feature.
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn hit(_point: &str) {}

/// A fault-injection point: panics on the N-th pass when `M2M_FAULT=POINT:N` names it.
#[cfg(feature = "fault-injection")]
pub fn hit(point: &str) {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::LazyLock;
    static FAULT: LazyLock<Option<(String, u64)>> = LazyLock::new(|| {
        let text = std::env::var("M2M_FAULT").ok()?;
        let (point, after) = text.split_once(':').unwrap_or((text.as_str(), "1"));
        Some((point.to_owned(), after.parse().unwrap_or(1)))
    });
    static PASSES: AtomicU64 = AtomicU64::new(0);
    if let Some((wanted, after)) = FAULT.as_ref() {
        if wanted == point && PASSES.fetch_add(1, Ordering::Relaxed) + 1 == *after {
            panic!("fault injection: M2M_FAULT={wanted}:{after}");
        }
    }
}

/// A delay point (see the module's documentation); nothing without the `fault-injection`
/// feature.
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn delay(_point: &str) {}

/// A delay point: sleeps on every pass when `M2M_FAULT_DELAY=POINT:MS` names it.
#[cfg(feature = "fault-injection")]
pub fn delay(point: &str) {
    if let Some(delay) = delay_of(point) {
        std::thread::sleep(delay);
    }
}

/// How long `M2M_FAULT_DELAY` makes `point` wait, if it names it: for a delay point in async
/// code, which must sleep without holding its runtime worker.
#[cfg(feature = "fault-injection")]
pub fn delay_of(point: &str) -> Option<std::time::Duration> {
    use std::sync::LazyLock;
    static DELAY: LazyLock<Option<(String, u64)>> = LazyLock::new(|| {
        let text = std::env::var("M2M_FAULT_DELAY").ok()?;
        let (point, ms) = text.split_once(':')?;
        Some((point.to_owned(), ms.parse().ok()?))
    });
    DELAY.as_ref().filter(|(wanted, _)| wanted == point).map(|(_, ms)| std::time::Duration::from_millis(*ms))
}
