//! The operator's write API, on the health port, off unless `ADMIN_TOKEN` is set.
//!
//! | Route | Does |
//! |---|---|
//! | `POST /admin/settlement/close` `{"peer": "a", "cooperative": false}` | closes the peer's channel: on chain with the peer's newest proof, or (`cooperative`) by asking the peer to sign the split our journal gives; 202 with what happens next |
//!
//! Every request needs `Authorization: Bearer <ADMIN_TOKEN>` (compared in constant time):
//! 401 without it or with another token, 403 when no `ADMIN_TOKEN` is configured. The request is
//! handed to the forwarder, which journals it and answers; 404 (no such peer), 409 (the channel
//! cannot be closed so), 503 (settlement off, chain not reached yet, or the node is stopping).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::HttpState;
use crate::config::Secret;
use crate::pipeline::Input;
use crate::settlement::{AdminError, AdminRequest};

/// How long a request waits for the forwarder's answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone, Default)]
pub struct AdminState {
    token: Option<Secret>,
    /// The forwarder's input queue, set once the pipeline runs (the HTTP server starts first).
    inputs: Arc<OnceLock<crossbeam_channel::Sender<Input>>>,
}

impl AdminState {
    pub fn new(token: Option<Secret>) -> AdminState {
        AdminState { token, inputs: Arc::default() }
    }

    /// Connects the API to the running pipeline.
    pub fn attach(&self, inputs: crossbeam_channel::Sender<Input>) {
        let _ = self.inputs.set(inputs);
    }

    // The refusal is the response itself; a large Err only costs a move on the refused path.
    #[allow(clippy::result_large_err)]
    fn check(&self, headers: &HeaderMap) -> Result<(), Response> {
        let Some(token) = &self.token else {
            return Err(error(StatusCode::FORBIDDEN, "the admin API is off: set ADMIN_TOKEN to enable it"));
        };
        let presented = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .unwrap_or("");
        if bool::from(presented.as_bytes().ct_eq(token.expose().as_bytes())) {
            Ok(())
        } else {
            let mut response = error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
            response.headers_mut().insert(axum::http::header::WWW_AUTHENTICATE, "Bearer".parse().expect("a header value"));
            Err(response)
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloseRequest {
    peer: String,
    #[serde(default)]
    cooperative: bool,
}

#[derive(Serialize)]
struct Accepted {
    status: &'static str,
    detail: String,
}

#[derive(Serialize)]
struct ErrorBody {
    error: String,
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(ErrorBody { error: message.to_owned() })).into_response()
}

pub async fn close(State(state): State<HttpState>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let admin = &state.admin;
    if let Err(response) = admin.check(&headers) {
        return response;
    }
    let request: CloseRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(parse_error) => {
            return error(StatusCode::BAD_REQUEST, &format!("expected {{\"peer\": \"<id>\", \"cooperative\": false}}: {parse_error}"));
        }
    };
    let Some(inputs) = admin.inputs.get() else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "the node is still starting");
    };
    let (reply, answer) = tokio::sync::oneshot::channel();
    let mut input = Input::Admin(AdminRequest::CloseChannel { peer: request.peer, cooperative: request.cooperative, reply });
    let deadline = tokio::time::Instant::now() + ANSWER_TIMEOUT;
    loop {
        match inputs.try_send(input) {
            Ok(()) => break,
            Err(crossbeam_channel::TrySendError::Full(returned)) if tokio::time::Instant::now() < deadline => {
                input = returned;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err(_) => return error(StatusCode::SERVICE_UNAVAILABLE, "the node is busy or stopping; retry"),
        }
    }
    match tokio::time::timeout(ANSWER_TIMEOUT, answer).await {
        Ok(Ok(Ok(detail))) => (StatusCode::ACCEPTED, Json(Accepted { status: "requested", detail })).into_response(),
        Ok(Ok(Err(refusal))) => {
            let status = match refusal {
                AdminError::NotFound(_) => StatusCode::NOT_FOUND,
                AdminError::Conflict(_) => StatusCode::CONFLICT,
                AdminError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            };
            error(status, &refusal.to_string())
        }
        Ok(Err(_)) | Err(_) => error(StatusCode::SERVICE_UNAVAILABLE, "the node did not answer in time; retry"),
    }
}
