//! A trivial BTP server that fulfills every Prepare itself: no routing, no accounting. It
//! measures the load generator alone (`--echo`, or `--role echo` as its own process), so a
//! connector's number can be read against what the harness can do.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

use super::fulfiller::{self, Answerer, Counters, FulfillerReport};
use crate::btp::packet::BtpPacket;

/// Accepts connections on `listener` until `stop` turns true. Any auth is accepted; every
/// Prepare is fulfilled (or a `reject_share` rejected). Returns the counters of all connections.
pub async fn serve(
    listener: TcpListener,
    answerer: Arc<Answerer>,
    mut stop: watch::Receiver<bool>,
) -> FulfillerReport {
    let started = std::time::Instant::now();
    let counters = Arc::new(Counters::default());
    let mut connections = Vec::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.changed() => break,
        };
        let Ok((stream, _)) = accepted else { continue };
        let _ = stream.set_nodelay(true);
        let (answerer, counters, stop) = (answerer.clone(), counters.clone(), stop.clone());
        connections.push(tokio::spawn(async move {
            if let Some(socket) = accept(stream).await {
                fulfiller::serve(socket, answerer, counters, stop).await;
            }
        }));
    }
    for connection in connections {
        let _ = tokio::time::timeout(Duration::from_secs(3), connection).await;
    }
    let load =
        |counter: &std::sync::atomic::AtomicU64| counter.load(std::sync::atomic::Ordering::Relaxed);
    FulfillerReport {
        prepares: load(&counters.prepares),
        fulfilled: load(&counters.fulfilled),
        rejected: load(&counters.rejected),
        foreign: load(&counters.foreign),
        unexpected_frames: load(&counters.unexpected_frames),
        seconds: started.elapsed().as_secs_f64(),
        error: None,
    }
}

/// The WebSocket handshake and BTP auth: the first binary frame must be a Message; it gets an
/// empty Response whatever its credentials.
async fn accept(stream: TcpStream) -> Option<tokio_tungstenite::WebSocketStream<TcpStream>> {
    let websocket = crate::btp::server::websocket_config(1 << 20);
    let mut socket = tokio_tungstenite::accept_async_with_config(stream, Some(websocket))
        .await
        .ok()?;
    let auth = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match socket.next().await? {
                Ok(Message::Binary(data)) => return BtpPacket::parse(data).ok(),
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
    })
    .await
    .ok()??;
    let BtpPacket::Message { request_id, .. } = auth else {
        return None;
    };
    let reply = BtpPacket::Response {
        request_id,
        protocol_data: Vec::new(),
    };
    socket.send(Message::Binary(reply.encode())).await.ok()?;
    Some(socket)
}

/// An echo server on its own thread and single-threaded runtime, so it does not share the
/// sender's. Stops (and joins the thread) when dropped.
pub struct EchoThread {
    pub address: SocketAddr,
    stop: watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<FulfillerReport>>,
}

impl EchoThread {
    /// Listens on 127.0.0.1 on a port the OS chooses.
    pub fn start() -> std::io::Result<EchoThread> {
        // Bound here, so the caller knows the address; registered with the echo's own runtime
        // inside its thread (this may be called from within another runtime).
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
        listener.set_nonblocking(true)?;
        let address = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let answerer = Arc::new(Answerer::new(0.0, "test.echo").expect("a valid address"));
        let (stop, stop_rx) = watch::channel(false);
        let thread = std::thread::Builder::new()
            .name("loadgen-echo".into())
            .spawn(move || {
                runtime.block_on(async move {
                    match TcpListener::from_std(listener) {
                        Ok(listener) => serve(listener, answerer, stop_rx).await,
                        Err(error) => FulfillerReport {
                            error: Some(format!("echo listener: {error}")),
                            ..FulfillerReport::default()
                        },
                    }
                })
            })?;
        Ok(EchoThread {
            address,
            stop,
            thread: Some(thread),
        })
    }

    /// Stops the server and returns what it answered.
    pub fn finish(mut self) -> FulfillerReport {
        let _ = self.stop.send(true);
        self.thread
            .take()
            .and_then(|thread| thread.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for EchoThread {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
