//! `m2m-connector audit settlements`: replays the journal and derives every settlement decision
//! again (see `projections::audit`), printing each decision and each received claim next to its
//! inputs and the action recorded.
//!
//! Reads the live journal and, with `--archive DIR`, what retention archived, as one sequence.
//! When retention deleted the oldest frames, the audit starts from the snapshot they left and
//! says so. Exit status: 0 every decision derives again; 1 a divergence (named: seq, event, what
//! differs); 2 the audit could not run (bad arguments, unreadable or locked journal).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use crate::journal::{retention, SledStore};
use crate::projections::balances::Balances;
use crate::projections::audit::{AuditRecord, Auditor};

#[derive(clap::Args, Debug)]
pub struct AuditArgs {
    #[command(subcommand)]
    command: AuditCommand,
}

#[derive(clap::Subcommand, Debug)]
enum AuditCommand {
    /// Re-derive every settlement decision from the journal; exit 1 at the first that differs
    /// from what was recorded, or whose claim signature or nonce does not verify.
    Settlements {
        /// The journal directory (stop the node first, or audit a copy: the node holds a lock).
        #[arg(long, value_name = "DIR", env = "JOURNAL_DIR", default_value = "./data/journal")]
        dir: PathBuf,
        /// Also read what retention archived here (JOURNAL_RETENTION=archive).
        #[arg(long, value_name = "DIR")]
        archive: Option<PathBuf>,
        /// Print only this peer's decisions and claims (every one is still checked).
        #[arg(long, value_name = "PEER")]
        peer: Option<String>,
        /// Print only from this time on: RFC 3339 (2026-12-04T17:00:00Z) or Unix milliseconds.
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        /// JSON lines instead of text (a last line {"summary": ...}).
        #[arg(long)]
        json: bool,
    },
}

pub fn run(args: AuditArgs) -> ExitCode {
    let AuditCommand::Settlements { dir, archive, peer, since, json } = args.command;
    let since_ms = match since.as_deref().map(parse_time).transpose() {
        Ok(since_ms) => since_ms,
        Err(message) => return fail(2, &message),
    };
    if !dir.join("db").is_file() || !dir.join("conf").is_file() {
        return fail(2, &format!("no journal in {} (pass --dir DIR or set JOURNAL_DIR)", dir.display()));
    }
    let store = match SledStore::open(&dir) {
        Ok(store) => store,
        Err(error) => return fail(2, &format!("{error}")),
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let filter = |record: &AuditRecord| {
        peer.as_ref().is_none_or(|peer| &record.peer == peer) && since_ms.is_none_or(|since| record.timestamp_ms >= since)
    };
    let status = audit(&store, archive.as_deref(), json, &filter, &mut out);
    let _ = out.flush();
    match status {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(message) => fail(2, &message),
    }
}

fn fail(status: u8, message: &str) -> ExitCode {
    eprintln!("audit settlements: {message}");
    ExitCode::from(status)
}

/// Runs the audit; Ok(true) when everything derives again.
fn audit(
    store: &SledStore,
    archive: Option<&std::path::Path>,
    json: bool,
    filter: &dyn Fn(&AuditRecord) -> bool,
    out: &mut impl Write,
) -> Result<bool, String> {
    let started = Instant::now();
    let first_live = store.first_frame_key().map_err(|error| error.to_string())?;
    let first_archived = match archive {
        Some(dir) => retention::archive_files(dir).map_err(|error| error.to_string())?.first().map(|(seq, _)| *seq),
        None => None,
    };
    let first = first_archived.or(first_live).unwrap_or(1);
    let (balances, start_note) = if first > 1 {
        let Some((seq, bytes)) = store.latest_snapshot_at_most(first - 1).map_err(|error| error.to_string())? else {
            return Err(format!(
                "the journal starts at seq {first} and no snapshot covers the events before it: pass --archive DIR \
                 with the archived frames"
            ));
        };
        let mut balances = Balances::from_snapshot(&bytes).map_err(|reason| format!("the snapshot at seq {seq}: {reason}"))?;
        balances.set_position(seq);
        (balances, Some(format!("events before seq {} were removed by retention; audited from the snapshot at seq {seq}", seq + 1)))
    } else {
        (Balances::new(), None)
    };
    let mut last_seq = crate::projections::Projection::position(&balances);
    if let Some(note) = &start_note {
        if !json {
            let _ = writeln!(out, "note: {note}");
        }
    }
    let mut auditor = Auditor::new(balances);
    let frames = retention::frames_with_archive(store, archive, last_seq + 1).map_err(|error| error.to_string())?;
    for frame in frames {
        let frame = frame.map_err(|error| error.to_string())?;
        for entry in &frame.entries {
            if entry.seq <= last_seq {
                continue;
            }
            if entry.seq != last_seq + 1 {
                return Err(format!("the journal jumps from seq {last_seq} to {}: events are missing", entry.seq));
            }
            last_seq = entry.seq;
            match auditor.check(entry) {
                Ok(Some(record)) if filter(&record) => print_record(out, &record, json),
                Ok(_) => {}
                Err(divergence) => {
                    let message = format!("DIVERGENCE at {divergence}");
                    if json {
                        let line = serde_json::json!({ "divergence": { "seq": divergence.seq, "event": divergence.kind, "reason": divergence.reason } });
                        let _ = writeln!(out, "{line}");
                    } else {
                        let _ = writeln!(out, "audit settlements: {message}");
                    }
                    eprintln!("audit settlements: {message}");
                    return Ok(false);
                }
            }
        }
    }
    let counts = auditor.counts();
    let elapsed = started.elapsed();
    if json {
        let summary = serde_json::json!({ "summary": {
            "result": "ok",
            "events": counts.events,
            "last_seq": last_seq,
            "triggers": counts.triggers,
            "claims_sent": counts.claims_sent,
            "claims_received": counts.claims_received,
            "elapsed_ms": elapsed.as_millis() as u64,
            "note": start_note,
        }});
        let _ = writeln!(out, "{summary}");
    } else {
        let _ = writeln!(
            out,
            "audit settlements: OK: {} events replayed (to seq {last_seq}) in {:.1} s; {} triggers, {} claims sent, {} \
             claims received, each derived again from the journal before it; every claim signature and nonce verified",
            counts.events,
            elapsed.as_secs_f64(),
            counts.triggers,
            counts.claims_sent,
            counts.claims_received
        );
    }
    Ok(true)
}

fn print_record(out: &mut impl Write, record: &AuditRecord, json: bool) {
    if json {
        let _ = writeln!(out, "{}", record.to_json());
        return;
    }
    let fields = |map: &serde_json::Map<String, serde_json::Value>| {
        map.iter()
            .map(|(key, value)| match value {
                serde_json::Value::String(text) => format!("{key}={text}"),
                other => format!("{key}={other}"),
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let _ = writeln!(
        out,
        "seq {:<9} {}  {:<19} peer={:<12} from: {}  recorded: {}  ok",
        record.seq,
        crate::journal::json::rfc3339(record.timestamp_ms),
        record.kind,
        record.peer,
        fields(&record.inputs),
        fields(&record.action)
    );
}

/// `--since`: Unix milliseconds or RFC 3339 (see [`crate::journal::json::parse_time`]).
fn parse_time(text: &str) -> Result<i64, String> {
    crate::journal::json::parse_time(text).map_err(|reason| format!("--since {reason}"))
}

#[cfg(test)]
mod tests {
    use super::parse_time;

    #[test]
    fn since_takes_milliseconds_or_rfc3339() {
        assert_eq!(parse_time("1772366400250"), Ok(1_772_366_400_250));
        assert_eq!(parse_time("2026-03-01T12:00:00.250Z"), Ok(1_772_366_400_250));
        assert_eq!(parse_time("2026-03-01T12:00:00Z"), Ok(1_772_366_400_000));
        assert!(parse_time("yesterday").is_err());
        assert!(parse_time("2026-03-01 12:00:00Z").is_err());
    }
}
