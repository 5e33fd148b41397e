//! Shared helpers for the integration tests: free ports, a connector process started from the
//! real binary with a generated config, plain HTTP/1.1 GETs over a `TcpStream`, and running
//! external commands with a deadline.
//!
//! Every socket is on 127.0.0.1. A started [`Connector`] is killed when it is dropped, and its
//! log (stdout and stderr of the process) is printed when the test panics, so a failing test
//! always shows what the connector said.

#![allow(dead_code)] // Each test module uses its own subset.

use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long a connector may take to answer 200 on `/health/ready` after it is spawned.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// A TCP port that was free a moment ago: bind 127.0.0.1:0 and let the OS choose. Another
/// process could take it before the connector binds it; on a test machine that is rare enough.
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("binding 127.0.0.1:0 to find a free port")
}

/// A config with node `test.m2m` (USD, scale 6) and two child peers, `alice` and `bob` (tokens
/// `alice-token` and `bob-token`), in the same asset, with no explicit routes: children are
/// reachable at their child address `test.m2m.<id>`.
pub fn two_children_config(btp_port: u16, health_port: u16) -> String {
    let mut config = format!(
        r#"[node]
id = "interop"
ilp_address = "test.m2m"
asset_code = "USD"
asset_scale = 6
bind_host = "127.0.0.1"
btp_port = {btp_port}
health_port = {health_port}

[explorer]
enabled = false
"#
    );
    for (id, token) in [("alice", "alice-token"), ("bob", "bob-token")] {
        config.push_str(&format!(
            r#"
[[peers]]
id = "{id}"
relation = "child"
asset_code = "USD"
asset_scale = 6
incoming_token = "{token}"
credit_limit = 1000000000
max_packet_amount = 1000000000
"#
        ));
    }
    config
}

/// A running `m2m-connector run --config FILE`, started in its own temporary directory (the
/// process's working directory, which also holds `config.toml` and `connector.log`). Dropping
/// it kills the process; if the thread is panicking, the log is printed to stderr first.
pub struct Connector {
    child: Option<Child>,
    dir: tempfile::TempDir,
    log_path: PathBuf,
    pub btp_port: u16,
    pub health_port: u16,
    env: Vec<(String, String)>,
}

impl Connector {
    /// Starts the connector with [`two_children_config`] on fresh ports.
    pub fn start_two_children() -> Connector {
        Connector::start_with(two_children_config)
    }

    /// Picks two free ports, writes the config `make_config(btp_port, health_port)` returns,
    /// starts the binary and waits until `/health/ready` answers 200. Panics (with the log) if
    /// the process exits or is not ready within [`READY_TIMEOUT`].
    pub fn start_with(make_config: impl FnOnce(u16, u16) -> String) -> Connector {
        Connector::start_with_env(make_config, &[])
    }

    /// [`Connector::start_with`] with these environment variables set for the process (on top
    /// of the clean environment), e.g. `SETTLEMENT_*` and `EVM_PRIVATE_KEY`.
    pub fn start_with_env(make_config: impl FnOnce(u16, u16) -> String, env: &[(String, String)]) -> Connector {
        let btp_port = free_port();
        let mut health_port = free_port();
        while health_port == btp_port {
            health_port = free_port();
        }
        let dir = tempfile::Builder::new()
            .prefix("m2m-it-connector-")
            .tempdir()
            .expect("creating a temporary directory for the connector");
        let config_path = dir.path().join("config.toml");
        fs::write(&config_path, make_config(btp_port, health_port)).expect("writing config.toml");
        let log_path = dir.path().join("connector.log");
        let mut connector = Connector {
            child: None,
            dir,
            log_path,
            btp_port,
            health_port,
            env: env.to_vec(),
        };
        connector.spawn();
        connector.wait_ready();
        connector
    }

    /// Starts the binary on this connector's directory and config (appending to its log).
    fn spawn(&mut self) {
        let log = fs::OpenOptions::new().create(true).append(true).open(&self.log_path).expect("opening connector.log");
        let log_for_stderr = log.try_clone().expect("duplicating the log file handle");
        // A clean environment: the connector reads overrides from it (BTP_PORT, HEALTH_PORT,
        // NODE_ID, <PEER>_INCOMING_TOKEN, SETTLEMENT_*, TIGERBEETLE_*...), and whatever the
        // test runner's shell has set must not change the config under test.
        let mut command = Command::new(env!("CARGO_BIN_EXE_m2m-connector"));
        command.env_clear();
        for passthrough in ["PATH", "RUST_BACKTRACE", "LLVM_PROFILE_FILE"] {
            if let Some(value) = std::env::var_os(passthrough) {
                command.env(passthrough, value);
            }
        }
        command.envs(self.env.iter().map(|(name, value)| (name.as_str(), value.as_str())));
        let child = command
            .arg("run")
            .arg("--config")
            .arg(self.dir.path().join("config.toml"))
            .current_dir(self.dir.path())
            .env("LOG_LEVEL", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_for_stderr))
            .spawn()
            .expect("spawning the m2m-connector binary");
        self.child = Some(child);
    }

    /// Starts the connector again after [`Connector::stop`] or [`Connector::kill9`]: same
    /// directory, config, ports and environment; waits until it is ready.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "restart needs a stopped connector");
        self.spawn();
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut last;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|child| child.try_wait().ok().flatten())
            {
                // Drop prints the log while panicking.
                panic!("m2m-connector exited before it was ready ({status})");
            }
            match http_get(self.health_port, "/health/ready", Duration::from_secs(2)) {
                Ok(response) if response.status == 200 => return,
                Ok(response) => {
                    last = format!("HTTP {}: {}", response.status, response.body.trim())
                }
                Err(error) => last = error,
            }
            if Instant::now() >= deadline {
                panic!(
                    "m2m-connector was not ready within {READY_TIMEOUT:?} (GET \
                     http://127.0.0.1:{}/health/ready; last: {last})",
                    self.health_port
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The connector's `/metrics` text (Prometheus exposition format). Panics on a non-200.
    pub fn metrics(&self) -> String {
        match http_get(self.health_port, "/metrics", Duration::from_secs(5)) {
            Ok(response) if response.status == 200 => response.body,
            Ok(response) => panic!(
                "GET /metrics answered {}: {}",
                response.status, response.body
            ),
            Err(error) => panic!("GET /metrics failed: {error}"),
        }
    }

    /// Everything the process wrote to stdout and stderr so far.
    pub fn log(&self) -> String {
        fs::read(&self.log_path)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_else(|error| format!("(cannot read {}: {error})", self.log_path.display()))
    }

    /// The log framed for a panic message or test output.
    pub fn log_section(&self) -> String {
        format!(
            "----- connector log ({}) -----\n{}\n----- end of connector log -----",
            self.log_path.display(),
            self.log()
        )
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Waits up to `timeout` for the process to exit by itself and reaps it; None if it is
    /// still running then.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            let child = self.child.as_mut().expect("the connector was started");
            if let Some(status) = child.try_wait().expect("waiting for m2m-connector") {
                self.child = None;
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Replaces the environment the next [`Connector::restart`] starts the process with.
    pub fn set_env(&mut self, env: &[(String, String)]) {
        self.env = env.to_vec();
    }

    /// True while the process is running.
    pub fn is_running(&mut self) -> bool {
        matches!(
            self.child.as_mut().map(|child| child.try_wait()),
            Some(Ok(None))
        )
    }

    /// Freezes the process (SIGSTOP) or lets it go on (SIGCONT): a node that stops answering
    /// without closing its sockets.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("the connector is running").id();
        let status = Command::new("kill").args([signal, &pid.to_string()]).status().expect("running kill");
        assert!(status.success(), "kill {signal} {pid}");
    }

    /// A crash: SIGKILL (what `Child::kill` sends on Unix), so the process gets no chance to
    /// flush, snapshot or close its sockets cleanly; then reaps it. The directory and log stay
    /// until the `Connector` is dropped.
    pub fn kill9(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("the connector is running");
        child.kill().expect("sending SIGKILL to m2m-connector");
        child.wait().expect("reaping m2m-connector")
    }

    /// A graceful stop: SIGTERM (sent with the `kill` utility, the crate has no libc binding),
    /// then waits up to `timeout` for the process to exit. Panics (with the log) if it does not.
    pub fn stop(&mut self, timeout: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("the connector is running");
        let sent = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .expect("running kill -TERM");
        assert!(sent.success(), "kill -TERM {} failed: {sent}", child.id());
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().expect("waiting for m2m-connector") {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("m2m-connector did not stop within {timeout:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Connector {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").args(["-CONT", &child.id().to_string()]).status();
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("{}", self.log_section());
        }
    }
}

/// A parsed HTTP response: status code and body (de-chunked).
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub body: String,
}

/// `GET path` on 127.0.0.1:port with HTTP/1.1 and `Connection: close`, reading to the end.
pub fn http_get(port: u16, path: &str, timeout: Duration) -> Result<HttpResponse, String> {
    http_get_with_headers(port, path, &[], timeout)
}

/// [`http_get`] with extra request headers (`Authorization`, say).
pub fn http_get_with_headers(port: u16, path: &str, headers: &[(&str, &str)], timeout: Duration) -> Result<HttpResponse, String> {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&address, timeout)
        .map_err(|e| format!("connect {address}: {e}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let extra: String = headers.iter().map(|(name, value)| format!("{name}: {value}\r\n")).collect();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nAccept: */*\r\n{extra}\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("write request: {e}"))?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .map_err(|e| format!("read response: {e}"))?;
    parse_http_response(&raw)
}

fn parse_http_response(raw: &[u8]) -> Result<HttpResponse, String> {
    let split = raw
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .ok_or_else(|| format!("no end of headers in {} bytes", raw.len()))?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let chunked = lines.any(|line| {
        let lower = line.to_ascii_lowercase();
        lower.starts_with("transfer-encoding:") && lower.contains("chunked")
    });
    let body = &raw[split + 4..];
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_vec()
    };
    Ok(HttpResponse {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn dechunk(mut body: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let line_end = body
            .windows(2)
            .position(|window| window == b"\r\n")
            .ok_or("chunk size line not terminated")?;
        let size_text = String::from_utf8_lossy(&body[..line_end]);
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if body.len() < size {
            return Err("truncated chunk".into());
        }
        out.extend_from_slice(&body[..size]);
        body = body.get(size + 2..).unwrap_or_default();
    }
}

/// What an external command did within its deadline.
#[derive(Debug)]
pub struct CommandOutput {
    /// `None` if it was killed at the deadline.
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl CommandOutput {
    pub fn success(&self) -> bool {
        self.status.is_some_and(|status| status.success())
    }

    /// Status, stdout and stderr, framed for a panic message.
    pub fn describe(&self, what: &str) -> String {
        let status = match self.status {
            Some(status) => status.to_string(),
            None => format!("killed after {:?} (deadline)", self.elapsed),
        };
        format!(
            "{what}: {status}\n----- stdout -----\n{}\n----- stderr -----\n{}\n----- end -----",
            self.stdout.trim_end(),
            self.stderr.trim_end()
        )
    }
}

/// Runs `command` with stdout and stderr captured, killing it if it has not exited after
/// `timeout`. Readers run on their own threads so a chatty child cannot block on a full pipe.
pub fn run_with_timeout(command: &mut Command, timeout: Duration) -> CommandOutput {
    let started = Instant::now();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("spawning {command:?}: {error}"));
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if started.elapsed() >= timeout => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(error) => panic!("waiting for {command:?}: {error}"),
        }
    };
    CommandOutput {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
        elapsed: started.elapsed(),
    }
}

fn drain(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// The samples of `name` in a `/metrics` text whose labels include every `(label, value)` of
/// `labels`, in whatever order the exposition writes them, as (labels, value) pairs.
pub fn metric_samples(text: &str, name: &str, labels: &[(&str, &str)]) -> Vec<(Vec<(String, String)>, f64)> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (sample_name, label_text) = match series.split_once('{') {
                Some((sample_name, rest)) => (sample_name, rest.strip_suffix('}')?),
                None => (series, ""),
            };
            if sample_name != name {
                return None;
            }
            // Label values here never hold a comma or an escaped quote.
            let sample_labels: Vec<(String, String)> = label_text
                .split(',')
                .filter(|pair| !pair.is_empty())
                .filter_map(|pair| {
                    let (key, quoted) = pair.split_once('=')?;
                    Some((key.to_string(), quoted.trim_matches('"').to_string()))
                })
                .collect();
            let wanted = labels.iter().all(|(key, value)| sample_labels.iter().any(|(k, v)| k == key && v == value));
            Some((sample_labels, value.parse::<f64>().ok()?)).filter(|_| wanted)
        })
        .collect()
}

/// The sum of [`metric_samples`]: 0 when there is none.
pub fn metric_sum(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    metric_samples(text, name, labels).iter().map(|(_, value)| value).sum()
}
