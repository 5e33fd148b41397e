//! The operator's HTTP server (`HEALTH_PORT`, default 8080): health checks for Kubernetes
//! probes and the Prometheus scrape endpoint.
//!
//! | Route | Answer |
//! |---|---|
//! | `GET /health` | [`HealthReport`] as JSON; 200 when healthy or degraded, else 503 |
//! | `GET /health/live` | 200 `{"status":"alive"}` while the process serves HTTP |
//! | `GET /health/ready` | 200 when the node can take traffic, else 503 with the reasons |
//! | `GET /metrics` | the metrics registry, Prometheus text format 0.0.4 |
//! | `POST /admin/...` | the operator's write API (see [`admin`]), off unless `ADMIN_TOKEN` is set |
//!
//! Anything else is a JSON 404 (or 405 for a known path with another method). The server only
//! reads shared state; it never touches the packet path.

pub mod admin;
pub mod metrics;

/// The health handle lives below every layer that reports into it (`crate::health`); kept here
/// under its old path for the HTTP routes and existing callers.
pub use crate::health;

use std::future::Future;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;

pub use health::{ComponentStatus, Health, HealthReport, NodeStatus};

use crate::metrics::Metrics;

/// What the handlers read: the node's health and the metrics registry.
#[derive(Clone)]
pub struct HttpState {
    pub health: Arc<Health>,
    pub metrics: &'static Metrics,
    pub admin: admin::AdminState,
}

impl HttpState {
    /// The node passes `crate::metrics::global()`; tests pass a leaked `Metrics::new()`.
    pub fn new(health: Arc<Health>, metrics: &'static Metrics) -> HttpState {
        HttpState { health, metrics, admin: admin::AdminState::default() }
    }

    /// With the admin API (`ADMIN_TOKEN`); attach it to the pipeline once it runs.
    pub fn with_admin(mut self, admin: admin::AdminState) -> HttpState {
        self.admin = admin;
        self
    }
}

/// The routes, for callers that want to merge more (the Explorer API) before serving.
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/health", get(health_report))
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .route("/metrics", get(metrics::metrics))
        .route("/admin/settlement/close", post(admin::close))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

/// Serves the routes on `listener` until `shutdown` completes, then stops accepting and lets
/// open requests finish. The caller binds the listener, so it reports bind errors itself.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: HttpState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn health_report(State(state): State<HttpState>) -> Response {
    let report = state.health.report();
    let code = if report.status.is_serving() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(report)).into_response()
}

#[derive(Serialize)]
struct StatusBody {
    status: &'static str,
}

async fn live() -> Json<StatusBody> {
    Json(StatusBody { status: "alive" })
}

#[derive(Serialize)]
struct NotReadyBody {
    status: &'static str,
    reasons: Vec<String>,
}

async fn ready(State(state): State<HttpState>) -> Response {
    let reasons = state.health.not_ready_reasons();
    if reasons.is_empty() {
        return Json(StatusBody { status: "ready" }).into_response();
    }
    let body = NotReadyBody {
        status: "not_ready",
        reasons,
    };
    (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
}

#[derive(Serialize)]
struct ErrorBody {
    error: &'static str,
    path: String,
}

async fn not_found(uri: Uri) -> Response {
    let body = ErrorBody {
        error: "not found",
        path: uri.path().to_owned(),
    };
    (StatusCode::NOT_FOUND, Json(body)).into_response()
}

async fn method_not_allowed(uri: Uri) -> Response {
    let body = ErrorBody {
        error: "method not allowed",
        path: uri.path().to_owned(),
    };
    (StatusCode::METHOD_NOT_ALLOWED, Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{PacketKind, PacketStatus};
    use std::net::SocketAddr;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::oneshot;
    use tokio::task::JoinHandle;

    /// A response as read off the socket.
    struct Reply {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    }

    impl Reply {
        fn header(&self, name: &str) -> Option<&str> {
            let found = self
                .headers
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(name));
            found.map(|(_, value)| value.as_str())
        }

        fn json(&self) -> serde_json::Value {
            serde_json::from_str(&self.body).expect("body is JSON")
        }
    }

    /// One HTTP/1.1 request over a fresh connection, written by hand; the server closes the
    /// connection after answering, so the response is everything up to EOF.
    async fn request(address: SocketAddr, method: &str, path: &str) -> Reply {
        let mut stream = TcpStream::connect(address).await.expect("connect");
        let head =
            format!("{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
        stream
            .write_all(head.as_bytes())
            .await
            .expect("write request");
        let mut raw = Vec::new();
        let read = stream.read_to_end(&mut raw);
        tokio::time::timeout(std::time::Duration::from_secs(10), read)
            .await
            .expect("response within 10 s")
            .expect("read response");
        parse_response(&raw, method != "HEAD")
    }

    /// Parses a response; a reply to HEAD has the headers of a GET and no body.
    fn parse_response(raw: &[u8], has_body: bool) -> Reply {
        let text = std::str::from_utf8(raw).expect("response is UTF-8");
        let (head, body) = text
            .split_once("\r\n\r\n")
            .expect("head ends in a blank line");
        let mut lines = head.split("\r\n");
        let status_line = lines.next().expect("status line");
        let status = status_line
            .split(' ')
            .nth(1)
            .expect("status code")
            .parse()
            .unwrap();
        let headers: Vec<(String, String)> = lines
            .map(|line| {
                let (name, value) = line.split_once(':').expect("header has a colon");
                (name.trim().to_owned(), value.trim().to_owned())
            })
            .collect();
        let mut reply = Reply {
            status,
            headers,
            body: String::new(),
        };
        reply.body = if !has_body {
            assert!(body.is_empty(), "HEAD reply has no body");
            String::new()
        } else if reply.header("transfer-encoding") == Some("chunked") {
            decode_chunked(body)
        } else {
            let length: usize = reply
                .header("content-length")
                .expect("length")
                .parse()
                .unwrap();
            assert_eq!(body.len(), length, "body has its content-length");
            body.to_owned()
        };
        reply
    }

    fn decode_chunked(mut body: &str) -> String {
        let mut decoded = String::new();
        loop {
            let (size, rest) = body.split_once("\r\n").expect("chunk size line");
            let size = usize::from_str_radix(size.trim(), 16).expect("hex chunk size");
            if size == 0 {
                return decoded;
            }
            decoded.push_str(&rest[..size]);
            body = rest[size..]
                .strip_prefix("\r\n")
                .expect("chunk ends in CRLF");
        }
    }

    /// A server on 127.0.0.1:0 with its own registry; dropping `stop` shuts it down.
    struct TestServer {
        address: SocketAddr,
        health: Arc<Health>,
        metrics: &'static Metrics,
        stop: Option<oneshot::Sender<()>>,
        task: JoinHandle<std::io::Result<()>>,
    }

    impl TestServer {
        async fn start(peers_total: u32, ready_peers_min: u32) -> TestServer {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let address = listener.local_addr().unwrap();
            let health = Arc::new(Health::new("node-a", "0.1.0", peers_total, ready_peers_min));
            let metrics: &'static Metrics = Box::leak(Box::new(Metrics::new()));
            let (stop, stopped) = oneshot::channel::<()>();
            let state = HttpState::new(Arc::clone(&health), metrics);
            let shutdown = async move {
                let _ = stopped.await;
            };
            let task = tokio::spawn(serve(listener, state, shutdown));
            TestServer {
                address,
                health,
                metrics,
                stop: Some(stop),
                task,
            }
        }

        async fn get(&self, path: &str) -> Reply {
            request(self.address, "GET", path).await
        }

        async fn shut_down(mut self) {
            drop(self.stop.take());
            let result = tokio::time::timeout(std::time::Duration::from_secs(10), self.task)
                .await
                .expect("server stops within 10 s");
            result
                .expect("server task did not panic")
                .expect("server returned Ok");
        }
    }

    #[tokio::test]
    async fn health_follows_node_state() {
        let server = TestServer::start(2, 1).await;

        let reply = server.get("/health").await;
        assert_eq!(reply.status, 503, "starting: BTP not listening");
        assert!(reply
            .header("content-type")
            .unwrap()
            .starts_with("application/json"));
        let body = reply.json();
        assert_eq!(body["status"], "starting");
        assert_eq!(body["nodeId"], "node-a");
        assert_eq!(body["version"], "0.1.0");
        assert_eq!(
            body["peers"],
            serde_json::json!({"connected": 0, "total": 2})
        );
        assert!(body["uptime"].as_f64().unwrap() >= 0.0);
        assert_eq!(body["components"]["btp"]["status"], "starting");

        server.health.set_btp_listening(true);
        server.health.peer_connected();
        let reply = server.get("/health").await;
        assert_eq!(
            (reply.status, reply.json()["status"].clone()),
            (200, "degraded".into())
        );

        server.health.peer_connected();
        let reply = server.get("/health").await;
        assert_eq!(
            (reply.status, reply.json()["status"].clone()),
            (200, "healthy".into())
        );

        let failed = ComponentStatus::Failed("connection refused".into());
        server.health.set_component("tigerbeetle", failed);
        let reply = server.get("/health").await;
        assert_eq!(reply.status, 503);
        let body = reply.json();
        assert_eq!(body["status"], "unhealthy");
        assert_eq!(body["components"]["tigerbeetle"]["status"], "failed");
        assert_eq!(
            body["components"]["tigerbeetle"]["message"],
            "connection refused"
        );

        server.shut_down().await;
    }

    #[tokio::test]
    async fn live_and_ready() {
        let server = TestServer::start(1, 1).await;

        let reply = server.get("/health/live").await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.json(), serde_json::json!({"status": "alive"}));

        let reply = server.get("/health/ready").await;
        assert_eq!(reply.status, 503);
        let body = reply.json();
        assert_eq!(body["status"], "not_ready");
        assert_eq!(body["reasons"].as_array().unwrap().len(), 2, "{body}");

        server.health.set_btp_listening(true);
        server.health.peer_connected();
        let reply = server.get("/health/ready").await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.json(), serde_json::json!({"status": "ready"}));

        server.health.set_stopping();
        let reply = server.get("/health/ready").await;
        assert_eq!(reply.status, 503);
        assert_eq!(
            reply.json()["reasons"],
            serde_json::json!(["node is stopping"])
        );
        assert_eq!(
            server.get("/health/live").await.status,
            200,
            "alive while stopping"
        );

        server.shut_down().await;
    }

    #[tokio::test]
    async fn metrics_are_served_as_text_0_0_4() {
        let server = TestServer::start(0, 0).await;
        server
            .metrics
            .packet_processed(PacketKind::Prepare, PacketStatus::Rejected);
        server.metrics.register_peer("alice", "USD").set_balance(42);

        let reply = server.get("/metrics").await;
        assert_eq!(reply.status, 200);
        assert_eq!(
            reply.header("content-type"),
            Some(metrics::CONTENT_TYPE_TEXT_0_0_4)
        );
        assert!(reply
            .body
            .contains("# TYPE ilp_packets_processed_total counter\n"));
        // The exposition writes label names in lexical order.
        let line = "ilp_packets_processed_total{status=\"rejected\",type=\"prepare\"} 1\n";
        assert!(reply.body.contains(line), "{}", reply.body);
        let balance = "account_balance_units{peer_id=\"alice\",token_id=\"USD\"} 42\n";
        assert!(reply.body.contains(balance));

        server.shut_down().await;
    }

    #[tokio::test]
    async fn unknown_paths_and_methods_are_json_errors() {
        let server = TestServer::start(0, 0).await;

        let reply = server.get("/nope?x=1").await;
        assert_eq!(reply.status, 404);
        assert_eq!(
            reply.json(),
            serde_json::json!({"error": "not found", "path": "/nope"})
        );

        let reply = request(server.address, "POST", "/health").await;
        assert_eq!(reply.status, 405);
        assert_eq!(reply.json()["error"], "method not allowed");

        let reply = request(server.address, "HEAD", "/health/live").await;
        assert_eq!(reply.status, 200, "HEAD is answered like GET");

        server.shut_down().await;
    }
}
