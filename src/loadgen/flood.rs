//! `--role flood-replies`: a misbehaving peer. It authenticates as an ordinary account and then
//! sends, as fast as the socket takes them, replies to requests the connector never sent:
//! Fulfills, Rejects (in Response frames) and BTP Errors, each with a random request id. The
//! connector must drop them at the session (`btp_frames_dropped_total{reason="unmatched_reply"}`)
//! and keep serving its other peers; the fairness test and benchmark run it beside a sender.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use rand::Rng;
use serde::Serialize;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

use crate::btp::client::{self, LinkError};
use crate::btp::packet::{self as btp, BtpPacket};
use crate::config::Secret;
use crate::ilp::error_code::ErrorCode;
use crate::ilp::packet::{FulfillBuilder, RejectBuilder};

/// Frames fed before each flush.
const BURST: usize = 256;

#[derive(Debug, Clone)]
pub struct FloodOptions {
    pub url: url::Url,
    pub username: String,
    pub token: String,
    pub duration: Duration,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct FloodReport {
    /// Reply frames sent.
    pub frames: u64,
    pub seconds: f64,
    pub frames_per_second: f64,
    /// Why the flood ended early (the connector closed the socket), if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Floods until `duration` passes or `stop` turns true.
pub async fn run(options: &FloodOptions, mut stop: watch::Receiver<bool>) -> Result<FloodReport, LinkError> {
    let websocket = crate::btp::server::websocket_config(1 << 20);
    let socket = client::connect(&options.url, &options.username, &Secret::new(options.token.as_str()), websocket).await?;
    let (mut sink, mut stream) = socket.split();
    // Read (and ignore) whatever the connector sends, so its writes never stall on us.
    let reader = tokio::spawn(async move { while let Some(Ok(_)) = stream.next().await {} });
    let fulfill = FulfillBuilder { fulfillment: [7; 32], data: b"" }.build().expect("a valid Fulfill");
    let reject = RejectBuilder { code: ErrorCode::F99_APPLICATION_ERROR, triggered_by: "", message: "made up", data: b"" }
        .build()
        .expect("a valid Reject");
    let started = Instant::now();
    let mut rng = rand::thread_rng();
    let mut report = FloodReport::default();
    'flood: while started.elapsed() < options.duration && !*stop.borrow_and_update() {
        for _ in 0..BURST {
            let request_id: u32 = rng.gen();
            let frame = match report.frames % 3 {
                0 => btp::ilp_frame(btp::TYPE_RESPONSE, request_id, &fulfill),
                1 => btp::ilp_frame(btp::TYPE_RESPONSE, request_id, &reject),
                _ => BtpPacket::error(request_id, *b"F00", "NotAcceptedError", b"made up").encode(),
            };
            if let Err(error) = sink.feed(Message::Binary(frame)).await {
                report.error = Some(format!("the connector closed the socket: {error}"));
                break 'flood;
            }
            report.frames += 1;
        }
        if let Err(error) = sink.flush().await {
            report.error = Some(format!("the connector closed the socket: {error}"));
            break;
        }
    }
    let _ = sink.close().await;
    reader.abort();
    report.seconds = started.elapsed().as_secs_f64();
    report.frames_per_second = report.frames as f64 / report.seconds.max(1e-9);
    Ok(report)
}
