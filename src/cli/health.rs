//! `m2m-connector health [--ready]`: asks a running node on this host whether it is alive (or
//! ready), for a container's HEALTHCHECK or an exec probe where no curl is installed.
//!
//! Exit status: 0 the node answered 200; 1 it answered something else (printed); 2 it could not
//! be asked (not listening, no answer within the timeout).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::Duration;

#[derive(clap::Args, Debug)]
pub struct HealthArgs {
    /// Ask /health/ready (taking traffic) instead of /health/live (the process works).
    #[arg(long)]
    ready: bool,
    /// The node's health port.
    #[arg(long, env = "HEALTH_PORT", default_value_t = 8080)]
    port: u16,
    /// The address the node's health listener is reachable on from here.
    #[arg(long, default_value = "127.0.0.1")]
    host: std::net::IpAddr,
    /// How long to wait for the answer, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    timeout_ms: u64,
}

pub fn run(args: HealthArgs) -> ExitCode {
    let path = if args.ready { "/health/ready" } else { "/health/live" };
    let address = SocketAddr::new(args.host, args.port);
    match ask(address, path, Duration::from_millis(args.timeout_ms.max(1))) {
        Ok((200, _)) => ExitCode::SUCCESS,
        Ok((status, body)) => {
            println!("{path} on {address}: {status} {}", body.trim());
            ExitCode::from(1)
        }
        Err(error) => {
            eprintln!("{path} on {address}: no answer ({error})");
            ExitCode::from(2)
        }
    }
}

/// One HTTP/1.0 GET: the status and the body (at most 64 KiB).
fn ask(address: SocketAddr, path: &str, timeout: Duration) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&address, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {address}\r\nConnection: close\r\n\r\n")?;
    let mut response = Vec::new();
    stream.take(64 << 10).read_to_end(&mut response)?;
    let text = String::from_utf8_lossy(&response);
    let status = text
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.get(2..5))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "not an HTTP answer"))?;
    let body = text.split_once("\r\n\r\n").map_or("", |(_, body)| body).to_owned();
    Ok((status, body))
}
