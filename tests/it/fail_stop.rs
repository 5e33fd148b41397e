//! Fail-stop (issue 12): a stage that panics takes the whole node down with a non-zero exit,
//! after a last log line, and the restart recovers from the journal and forwards again. Each
//! stage is made to panic in turn by the test-only fault points (`--features
//! fault-injection`, `M2M_FAULT=POINT:N`; src/fault.rs).

use std::process::Command;
use std::time::Duration;

use crate::support::{run_with_timeout, two_children_config, Connector};

fn loadgen(connector: &Connector, packets: u32) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_m2m-loadgen"));
    command.args(["--url", &format!("ws://127.0.0.1:{}", connector.btp_port)]);
    command.args(["--role", "both", "--window", "4", "--packets", &packets.to_string(), "--seconds", "20"]);
    command
}

fn dies_and_recovers(point: &str, after: u32) {
    assert!(
        cfg!(feature = "fault-injection"),
        "the fail-stop tests need the fault points: cargo test --features fault-injection (scripts/test.sh enables it)"
    );
    let fault = vec![("M2M_FAULT".to_string(), format!("{point}:{after}"))];
    let mut connector = Connector::start_with_env(two_children_config, &fault);
    // Traffic until the fault fires; the load generator then loses its links, which is fine.
    let _ = run_with_timeout(&mut loadgen(&connector, 5_000), Duration::from_secs(40));
    let status = connector
        .wait_exit(Duration::from_secs(20))
        .unwrap_or_else(|| panic!("the node is still running after {point} panicked\n{}", connector.log_section()));
    assert!(!status.success(), "a dead stage must end the process with a failure, not {status}");
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(6), "aborted (SIGABRT): {status}");
    }
    let log = connector.log();
    assert!(log.contains(&format!("fault injection: M2M_FAULT={point}:{after}")), "the panic is logged\n{}", connector.log_section());
    assert!(log.contains("fail-stop: a thread of the node panicked"), "the last line says why it stops\n{}", connector.log_section());

    // The restart, without the fault, recovers from the journal and forwards.
    connector.set_env(&[]);
    connector.restart();
    let output = run_with_timeout(&mut loadgen(&connector, 200), Duration::from_secs(40));
    assert!(output.success(), "{}", output.describe("m2m-loadgen after the restart"));
    let result: serde_json::Value = serde_json::from_str(output.stdout.trim()).expect("the load generator's JSON line");
    assert_eq!(result["fulfilled"], 200, "{result}");
    let stopped = connector.stop(Duration::from_secs(30));
    assert!(stopped.success(), "a clean stop after the restart: {stopped}");
    let journal = connector.dir().join("data/journal");
    let verify = run_with_timeout(
        Command::new(env!("CARGO_BIN_EXE_m2m-connector")).args(["journal", "verify", "--dir"]).arg(&journal),
        Duration::from_secs(60),
    );
    assert!(verify.success(), "{}", verify.describe("journal verify after the crash and the restart"));
}

#[test]
fn a_panicking_forwarder_stops_the_node_and_the_restart_recovers() {
    dies_and_recovers("forwarder", 300);
}

#[test]
fn a_panicking_journal_writer_stops_the_node_and_the_restart_recovers() {
    dies_and_recovers("journal-writer", 100);
}

#[test]
fn a_panicking_projection_stops_the_node_and_the_restart_recovers() {
    dies_and_recovers("projection-balances", 20);
}
