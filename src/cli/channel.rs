//! `m2m-connector channel close --peer P [--cooperative]`: asks a running node (its admin API on
//! the health port, `ADMIN_TOKEN`) to close its payment channel with a peer.
//!
//! Without `--cooperative` the node closes on chain at once with the peer's newest proof and
//! settles after the challenge period; with it, the node asks the peer to sign the split both
//! journals give and settles at once. Exit status: 0 requested; 1 refused (the node says why);
//! 2 the node could not be asked (bad arguments, no token, not reachable).

use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct ChannelArgs {
    #[command(subcommand)]
    command: ChannelCommand,
}

#[derive(clap::Subcommand, Debug)]
enum ChannelCommand {
    /// Close the payment channel with a peer (the node's admin API; ADMIN_TOKEN).
    Close {
        /// The peer id, as in the node's configuration.
        #[arg(long, value_name = "PEER")]
        peer: String,
        /// Ask the peer to sign the final split and settle at once, instead of closing on chain
        /// and waiting out the challenge period.
        #[arg(long)]
        cooperative: bool,
        /// The node's health port.
        #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:8080")]
        url: url::Url,
        /// The node's ADMIN_TOKEN.
        #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true)]
        token: String,
    },
}

pub fn run(args: ChannelArgs) -> ExitCode {
    let ChannelCommand::Close { peer, cooperative, url, token } = args.command;
    let Ok(endpoint) = url.join("/admin/settlement/close") else {
        eprintln!("channel close: {url} is not a base URL");
        return ExitCode::from(2);
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("channel close: cannot start a runtime: {error}");
            return ExitCode::from(2);
        }
    };
    let body = serde_json::json!({ "peer": peer, "cooperative": cooperative });
    let result = runtime.block_on(async {
        let client = alloy::transports::http::reqwest::Client::new();
        let response = client
            .post(endpoint.clone())
            .bearer_auth(&token)
            .json(&body)
            .timeout(std::time::Duration::from_secs(15))
            .send()
            .await?;
        let status = response.status();
        let text = response.text().await?;
        Ok::<_, alloy::transports::http::reqwest::Error>((status, text))
    });
    match result {
        Ok((status, text)) if status.is_success() => {
            let detail = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|value| value.get("detail")?.as_str().map(str::to_owned))
                .unwrap_or(text);
            println!("{detail}");
            ExitCode::SUCCESS
        }
        Ok((status, text)) => {
            let message = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|value| value.get("error")?.as_str().map(str::to_owned))
                .unwrap_or(text);
            eprintln!("channel close: the node answered {status}: {message}");
            ExitCode::from(if status.is_server_error() || status.as_u16() == 401 || status.as_u16() == 403 { 2 } else { 1 })
        }
        Err(error) => {
            eprintln!("channel close: cannot reach {endpoint}: {error}");
            ExitCode::from(2)
        }
    }
}
