//! BTP 2.0 (RFC 23): the frame codec, the listener that peers dial, the client that dials
//! peers, and the per-connection sessions that join them to the pipeline.

pub mod client;
pub mod endpoint;
pub mod packet;
pub mod server;
pub mod session;
