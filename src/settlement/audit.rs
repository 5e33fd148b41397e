//! `audit settlements` (in progress).
