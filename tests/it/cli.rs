//! The real binary's operator commands: exit statuses and one-line errors.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_m2m-connector"))
}

fn run(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = binary()
        .args(args)
        .env_remove("CONFIG_FILE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary starts");
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// ILP-01 of the shared vectors: a Prepare of 107 to example.alice.
const PREPARE_HEX: &str = "0c68000000000000006b323031373132323330313231343035343974e1136dc71c9e5f283bec83461cbf1261c4014f72d48f8dd65453a0b84e7de10d6578616d706c652e616c696365205db343fdc41898f6df4202329139dc242dd0f558a811b46b28918fdab37c6cb0";

#[test]
fn packet_decode_then_encode_round_trips() {
    let decoded = run(&["packet", "decode", PREPARE_HEX], None);
    assert!(decoded.status.success(), "{}", text(&decoded.stderr));
    let json: serde_json::Value = serde_json::from_slice(&decoded.stdout).unwrap();
    assert_eq!(json["amount"], 107);
    assert_eq!(json["destination"], "example.alice");
    assert_eq!(json["expiresAt"], "20171223012140549");
    let encoded = run(&["packet", "encode", "-"], Some(&text(&decoded.stdout)));
    assert!(encoded.status.success(), "{}", text(&encoded.stderr));
    assert_eq!(text(&encoded.stdout).trim(), PREPARE_HEX);
}

#[test]
fn packet_decode_errors_name_offset_and_field_and_exit_2() {
    // The destination's first byte replaced by a space.
    let bad = PREPARE_HEX.replacen("6578616d706c652e616c696365", "2078616d706c652e616c696365", 1);
    let output = run(&["packet", "decode", &bad], None);
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains("at byte") && stderr.contains("destination"), "{stderr}");
    // Truncated input, and input that isn't hex.
    for input in [&PREPARE_HEX[..40], "zz"] {
        let output = run(&["packet", "decode", input], None);
        assert_eq!(output.status.code(), Some(2), "{input}");
        assert_eq!(text(&output.stderr).trim().lines().count(), 1);
    }
}

#[test]
fn config_validate_reports_every_problem() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/config.example.toml");
    // The example reads three tokens from the environment, as a Kubernetes secret would.
    let output = binary()
        .args(["config", "validate", example])
        .env("UPSTREAM_TOKEN", "t1")
        .env("BOB_INCOMING_TOKEN", "t2")
        .env("BOB_OUTGOING_TOKEN", "t3")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}{}", text(&output.stdout), text(&output.stderr));
    let output = run(&["config", "validate", example], None);
    assert_eq!(output.status.code(), Some(1), "unset token variables are errors");
    assert!(text(&output.stdout).contains("UPSTREAM_TOKEN is not set"));

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[node]\nid = \"n\"\nilp_address = \"test..bad\"\nasset_code = \"USD\"\nasset_scale = 6\n\
         [[peers]]\nid = \"a\"\nrelation = \"cousin\"\nasset_code = \"USD\"\nasset_scale = 6\ncredit_limit = 1\n\
         incoming_token = \"secret-value\"\n",
    )
    .unwrap();
    let output = run(&["config", "validate", path.to_str().unwrap()], None);
    assert_eq!(output.status.code(), Some(1));
    let report = text(&output.stdout) + &text(&output.stderr);
    assert!(report.contains("node.ilp_address"), "{report}");
    assert!(report.contains("peers[0].relation"), "{report}");
    assert!(!report.contains("secret-value"), "secrets never printed: {report}");

    // The node refuses to start half-configured, and says why.
    let output = run(&["run", "--config", path.to_str().unwrap()], None);
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("node.ilp_address"));
    let output = run(&["run", "--config", "/nonexistent/config.toml"], None);
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("cannot read"), "{}", text(&output.stderr));
}

#[test]
fn help_explains_the_commands() {
    let output = run(&["--help"], None);
    assert!(output.status.success());
    let help = text(&output.stdout);
    for word in ["run", "demo", "packet", "config", "BTP_PORT", "HEALTH_PORT"] {
        assert!(help.contains(word), "--help mentions {word}:\n{help}");
    }
}
