//! `m2m-connector config validate [FILE]`: checks a configuration file and the environment
//! exactly as the node would at start, and prints every problem, one per line.
//!
//! Exit status: 0 when the node would start (warnings allowed), 1 when it would refuse, 2 when
//! the file can't be read.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::config::{self, Env, LoadError, LoadedConfig};

#[derive(Debug, clap::Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    command: ConfigCommand,
}

#[derive(Debug, clap::Subcommand)]
enum ConfigCommand {
    /// Check a configuration file, with the environment's overrides, and list every problem.
    Validate {
        /// The TOML file to check.
        #[arg(env = "CONFIG_FILE", default_value = config::CONFIG_FILE_DEFAULT)]
        file: PathBuf,
    },
}

pub fn run(args: ConfigArgs) -> ExitCode {
    match args.command {
        ConfigCommand::Validate { file } => {
            let env = Env::from_process();
            let mut stdout = std::io::stdout().lock();
            ExitCode::from(validate(&file, &env, &mut stdout))
        }
    }
}

/// Writes the report for `file` to `out` and returns the exit status.
fn validate(file: &Path, env: &Env, out: &mut dyn Write) -> u8 {
    // A closed stdout is not a configuration problem; the exit status still tells the result.
    let (lines, status) = report(file, env);
    for line in lines {
        let _ = writeln!(out, "{line}");
    }
    status
}

fn report(file: &Path, env: &Env) -> (Vec<String>, u8) {
    match config::load(file, env) {
        Ok(LoadedConfig { config, warnings }) => {
            let mut lines: Vec<String> = warnings.iter().map(|w| w.in_file(file)).collect();
            let mut summary = format!(
                "{}: ok ({}, {}, {}",
                file.display(),
                plural(config.peers.len(), "peer"),
                plural(config.routes.len(), "route"),
                plural(config.rates.len(), "rate"),
            );
            if !warnings.is_empty() {
                summary.push_str(&format!(", {}", plural(warnings.len(), "warning")));
            }
            summary.push(')');
            lines.push(summary);
            (lines, 0)
        }
        Err(LoadError::Invalid { problems, .. }) => {
            let mut lines: Vec<String> =
                problems.problems.iter().map(|p| p.in_file(file)).collect();
            lines.push(format!(
                "{}: invalid ({}, {})",
                file.display(),
                plural(problems.error_count(), "error"),
                plural(problems.warning_count(), "warning"),
            ));
            (lines, 1)
        }
        Err(error @ LoadError::Unreadable { .. }) => (vec![error.to_string()], 2),
    }
}

fn plural(count: usize, noun: &str) -> String {
    if count == 1 {
        format!("1 {noun}")
    } else {
        format!("{count} {noun}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(subcommand)]
        command: Command,
    }

    #[derive(Debug, clap::Subcommand)]
    enum Command {
        Config(ConfigArgs),
    }

    fn check(text: Option<&str>, env: &[(&str, &str)], expect_status: u8, expect_output: &str) {
        let directory = tempfile::tempdir().unwrap();
        let file = directory.path().join("config.toml");
        if let Some(text) = text {
            std::fs::write(&file, text).unwrap();
        }
        let mut out = Vec::new();
        let status = validate(&file, &Env::from_pairs(env.iter().copied()), &mut out);
        let output = String::from_utf8(out).unwrap();
        let output = output.replace(&file.display().to_string(), "FILE");
        assert_eq!(status, expect_status, "{output}");
        assert_eq!(output.trim_end(), expect_output.trim(), "{output}");
    }

    const NODE: &str = r#"
[node]
id = "n"
ilp_address = "test.n"
asset_code = "USD"
asset_scale = 6
"#;

    #[test]
    fn valid_file_prints_a_summary() {
        let text = format!(
            "{NODE}\n[[peers]]\nid = \"a\"\nrelation = \"child\"\nasset_code = \"USD\"\n\
             asset_scale = 6\nincoming_token = \"t\"\ncredit_limit = 0\n\
             [[routes]]\nprefix = \"test.a\"\npeer = \"a\"\n"
        );
        check(Some(&text), &[], 0, "FILE: ok (1 peer, 1 route, 0 rates)");
    }

    #[test]
    fn warnings_do_not_fail() {
        let text = format!(
            "{NODE}\n[[peers]]\nid = \"a\"\nrelation = \"peer\"\nasset_code = \"USD\"\n\
             asset_scale = 6\ncredit_limit = 0\n"
        );
        check(
            Some(&text),
            &[],
            0,
            "warning: FILE: peers[0]: neither incoming_token(_env) nor [outgoing]: this peer can never connect\n\
             FILE: ok (1 peer, 0 routes, 0 rates, 1 warning)",
        );
    }

    #[test]
    fn errors_exit_1_and_are_all_listed() {
        let text = NODE.replace("asset_scale = 6", "asset_scale = 600\nbtp_port = 70000");
        check(
            Some(&text),
            &[("SETTLEMENT_TYPO", "x")],
            1,
            "FILE: node.asset_scale: must be 0 to 255\n\
             FILE: node.btp_port: must be a port number, 0 to 65535\n\
             warning: FILE: env SETTLEMENT_TYPO: unknown variable, ignored (known: SETTLEMENT_ENABLED, SETTLEMENT_EVM_RPC_URL, SETTLEMENT_EVM_CHAIN_ID, SETTLEMENT_EVM_CONFIRMATIONS, SETTLEMENT_EVM_POLL_INTERVAL_MS, SETTLEMENT_EVM_START_BLOCK, SETTLEMENT_XRPL_URL, SETTLEMENT_APTOS_URL)\n\
             FILE: invalid (2 errors, 1 warning)",
        );
    }

    #[test]
    fn unreadable_file_exits_2() {
        let directory = tempfile::tempdir().unwrap();
        let file = directory.path().join("missing.toml");
        let mut out = Vec::new();
        assert_eq!(validate(&file, &Env::default(), &mut out), 2);
        let output = String::from_utf8(out).unwrap();
        assert!(output.contains("missing.toml: cannot read"), "{output}");
    }

    #[test]
    fn command_line_parses() {
        let cli = Cli::try_parse_from(["m2m-connector", "config", "validate", "x.toml"]).unwrap();
        let Command::Config(ConfigArgs {
            command: ConfigCommand::Validate { file },
        }) = cli.command;
        assert_eq!(file, PathBuf::from("x.toml"));
        assert!(Cli::try_parse_from(["m2m-connector", "config", "frobnicate"]).is_err());
    }
}
