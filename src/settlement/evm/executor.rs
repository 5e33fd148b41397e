//! The EVM executor (in progress).
