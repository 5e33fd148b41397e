//! `GET /api/events`: filters, cursor paging, and the index that drives each query.
//!
//! Pages go from the newest event to the oldest. A page holds events with seq below the cursor
//! (at first, at or below the index's position when the request came), so events that arrive
//! while a client pages never shift a page: no duplicates, no gaps. The index's posting lists
//! that apply (packet, peer, codes, kinds) are intersected, a merge of sorted seqs with no event
//! read; the other filters are checked on each event read. Without any, the journal's frames
//! are read backwards. A request examines at most [`EXAMINED_MAX`] candidates: a sparse filter over a long history then
//! answers a short page with a cursor to go on from, instead of running long.

use std::collections::HashMap;

use serde_json::{json, Value};

use super::index::{self, Dimension, IndexReader};
use crate::journal::store::StoredFrame;
use crate::journal::{Event, JournalEntry, SledStore};

pub const LIMIT_MAX: usize = 1000;
pub const LIMIT_DEFAULT: usize = 100;

/// Candidate events one request may read before it answers with what it found.
pub const EXAMINED_MAX: usize = 20_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Packets the peer sent us.
    In,
    /// Packets we forwarded to the peer.
    Out,
}

#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    pub types: Option<Vec<&'static str>>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    pub peer: Option<String>,
    pub packet: Option<u64>,
    pub direction: Option<Direction>,
    pub codes: Option<Vec<[u8; 3]>>,
    /// Packets whose destination starts with this (Prepares and Rejects; a Fulfill carries none).
    pub destination: Option<String>,
    /// Return events with seq strictly below this.
    pub cursor: Option<u64>,
    pub limit: usize,
}

const PARAMETERS: [&str; 10] = ["types", "since", "until", "peer", "packet", "direction", "code", "destination", "cursor", "limit"];

impl EventQuery {
    /// Parses the query string's parameters; the error says which one is wrong and why.
    pub fn parse(params: &HashMap<String, String>) -> Result<EventQuery, String> {
        let mut query = EventQuery { limit: LIMIT_DEFAULT, ..EventQuery::default() };
        for (name, value) in params {
            match name.as_str() {
                "types" => {
                    let mut types = Vec::new();
                    for kind in value.split(',').map(str::trim).filter(|kind| !kind.is_empty()) {
                        let known = Event::KINDS.iter().find(|known| known.eq_ignore_ascii_case(kind)).ok_or_else(|| {
                            format!("types: unknown event type {kind:?} (known: {})", Event::KINDS.join(", "))
                        })?;
                        types.push(*known);
                    }
                    if types.is_empty() {
                        return Err("types: empty (give a comma-separated list of event types)".into());
                    }
                    query.types = Some(types);
                }
                "since" => query.since_ms = Some(crate::journal::json::parse_time(value).map_err(|reason| format!("since: {reason}"))?),
                "until" => query.until_ms = Some(crate::journal::json::parse_time(value).map_err(|reason| format!("until: {reason}"))?),
                "peer" => {
                    if value.is_empty() || value.len() > 128 {
                        return Err("peer: expected a peer id".into());
                    }
                    query.peer = Some(value.clone());
                }
                "packet" => query.packet = Some(value.parse().map_err(|_| format!("packet: {value:?} is not a packet id (a whole number)"))?),
                "direction" => {
                    query.direction = Some(match value.as_str() {
                        "in" | "incoming" => Direction::In,
                        "out" | "outgoing" => Direction::Out,
                        _ => return Err(format!("direction: {value:?}: expected in or out")),
                    })
                }
                "code" => {
                    let mut codes = Vec::new();
                    for code in value.split(',').map(str::trim).filter(|code| !code.is_empty()) {
                        let bytes: [u8; 3] = code
                            .as_bytes()
                            .try_into()
                            .ok()
                            .filter(|bytes: &[u8; 3]| bytes[0].is_ascii_uppercase() && bytes[1..].iter().all(u8::is_ascii_alphanumeric))
                            .ok_or_else(|| format!("code: {code:?} is not an ILP error code such as F02"))?;
                        codes.push(bytes);
                    }
                    if codes.is_empty() {
                        return Err("code: empty".into());
                    }
                    query.codes = Some(codes);
                }
                "destination" => {
                    if value.is_empty() || value.len() > 1023 {
                        return Err("destination: expected an ILP address prefix (at most 1023 bytes)".into());
                    }
                    query.destination = Some(value.clone());
                }
                "cursor" => {
                    let seq: u64 = value.parse().map_err(|_| format!("cursor: {value:?} is not a cursor this API returned"))?;
                    query.cursor = Some(seq);
                }
                "limit" => {
                    let limit: usize = value.parse().map_err(|_| format!("limit: {value:?} is not a whole number"))?;
                    if limit == 0 || limit > LIMIT_MAX {
                        return Err(format!("limit: {limit} is outside 1..={LIMIT_MAX}"));
                    }
                    query.limit = limit;
                }
                other => return Err(format!("unknown parameter {other:?} (known: {})", PARAMETERS.join(", "))),
            }
        }
        if query.direction.is_some() && query.peer.is_none() {
            return Err("direction: needs peer (in: what the peer sent us; out: what we sent it)".into());
        }
        if let (Some(since), Some(until)) = (query.since_ms, query.until_ms) {
            if since > until {
                return Err("since: after until".into());
            }
        }
        Ok(query)
    }
}

/// Reads events by seq, keeping the last frame decoded (a page's events are often neighbours).
pub struct EventReader<'a> {
    store: &'a SledStore,
    frame: Option<StoredFrame>,
}

impl<'a> EventReader<'a> {
    pub fn new(store: &'a SledStore) -> EventReader<'a> {
        EventReader { store, frame: None }
    }

    pub fn get(&mut self, seq: u64) -> Result<Option<JournalEntry>, String> {
        let cached = self.frame.as_ref().is_some_and(|frame| {
            frame.key <= seq && frame.entries.last().is_some_and(|last| last.seq >= seq)
        });
        if !cached {
            self.frame = self.store.frame_containing(seq).map_err(|error| error.to_string())?;
        }
        Ok(self.frame.as_ref().and_then(|frame| frame.entries.iter().find(|entry| entry.seq == seq).cloned()))
    }
}

pub struct Page {
    pub events: Vec<(JournalEntry, [Option<String>; 2])>,
    pub next_cursor: Option<u64>,
    pub total: u64,
    pub total_is_estimate: bool,
    /// The examination budget ran out before the page was full.
    pub partial: bool,
}

/// Runs a query over the index and the journal.
pub fn run(query: &EventQuery, index: &IndexReader, store: &SledStore) -> Result<Page, String> {
    let position = index.position();
    let mut upper = position;
    if let Some(cursor) = query.cursor {
        upper = upper.min(cursor.saturating_sub(1));
    }
    if let Some(until) = query.until_ms {
        upper = upper.min(index.seq_before(until.saturating_add(1)).unwrap_or(position));
    }
    // A `since` after every indexed second selects nothing.
    let lower = match query.since_ms {
        Some(since) => index.seq_at_or_after(since).unwrap_or(u64::MAX),
        None => 1,
    };
    let first_held = store.first_frame_key().map_err(|error| error.to_string())?.unwrap_or(0);
    let (total, total_is_estimate) = total(query, index, first_held);
    let mut page = Page { events: Vec::new(), next_cursor: None, total, total_is_estimate, partial: false };
    if upper < lower || upper == 0 {
        return Ok(page);
    }
    let mut reader = EventReader::new(store);
    let mut examined = 0usize;
    let mut last_examined = upper + 1;
    let mut accept = |seq: u64, entry: Option<JournalEntry>, reader: &mut EventReader, page: &mut Page| -> Result<bool, String> {
        examined += 1;
        last_examined = seq;
        if let Some(entry) = entry {
            if let Some(peers) = matches(query, &entry, index, reader)? {
                page.events.push((entry, peers));
            }
        }
        Ok(page.events.len() >= query.limit || examined >= EXAMINED_MAX)
    };
    // Every posting list that applies, intersected (they are sorted: a merge, no event read).
    let mut streams: Vec<Box<dyn Iterator<Item = u64>>> = Vec::new();
    if let Some(packet) = query.packet {
        let mut seqs = index.packet_seqs(packet);
        seqs.retain(|seq| (lower..=upper).contains(seq));
        streams.push(Box::new(seqs.into_iter().rev()));
    }
    if let Some(peer) = &query.peer {
        streams.push(Box::new(index.postings_rev(Dimension::Peer(peer), lower, upper)));
    }
    if let Some(codes) = &query.codes {
        streams.push(merged(codes.iter().map(|code| index.postings_rev(Dimension::Code(code), lower, upper)).collect()));
    }
    if let Some(types) = query.types.as_ref().filter(|types| types.iter().all(|kind| !index::is_packet_kind(kind))) {
        let bytes: Vec<u8> = types.iter().map(|kind| Event::KINDS.iter().position(|known| known == kind).unwrap_or(0) as u8).collect();
        streams.push(merged(bytes.iter().map(|byte| index.postings_rev(Dimension::Kind(*byte), lower, upper)).collect()));
    }
    let candidates: Option<Box<dyn Iterator<Item = u64>>> = streams.into_iter().reduce(|a, b| Box::new(intersected(a, b)));
    let mut done = false;
    match candidates {
        Some(candidates) => {
            for seq in candidates {
                let entry = reader.get(seq)?;
                if accept(seq, entry, &mut reader, &mut page)? {
                    done = true;
                    break;
                }
            }
        }
        None => {
            // No selective filter: walk the journal's frames backwards.
            'frames: for frame in store.frames_back_from(upper) {
                let frame = frame.map_err(|error| error.to_string())?;
                for entry in frame.entries.into_iter().rev() {
                    if entry.seq > upper {
                        continue;
                    }
                    if entry.seq < lower {
                        break 'frames;
                    }
                    let seq = entry.seq;
                    if accept(seq, Some(entry), &mut reader, &mut page)? {
                        done = true;
                        break 'frames;
                    }
                }
            }
        }
    }
    if done && last_examined > lower {
        page.partial = page.events.len() < query.limit;
        page.next_cursor = Some(last_examined);
    }
    Ok(page)
}

/// The seqs two newest-first streams have in common, newest first.
fn intersected<'a>(a: impl Iterator<Item = u64> + 'a, b: impl Iterator<Item = u64> + 'a) -> impl Iterator<Item = u64> + 'a {
    let (mut a, mut b) = (a.peekable(), b.peekable());
    std::iter::from_fn(move || loop {
        let (x, y) = (*a.peek()?, *b.peek()?);
        match x.cmp(&y) {
            std::cmp::Ordering::Equal => {
                a.next();
                b.next();
                return Some(x);
            }
            std::cmp::Ordering::Greater => {
                a.next();
            }
            std::cmp::Ordering::Less => {
                b.next();
            }
        }
    })
}

/// Several newest-first seq streams as one, newest first.
fn merged<'a>(streams: Vec<impl Iterator<Item = u64> + 'a>) -> Box<dyn Iterator<Item = u64> + 'a> {
    let mut streams: Vec<std::iter::Peekable<_>> = streams.into_iter().map(Iterator::peekable).collect();
    Box::new(std::iter::from_fn(move || {
        let (best, _) = streams
            .iter_mut()
            .enumerate()
            .filter_map(|(index, stream)| stream.peek().map(|seq| (index, *seq)))
            .max_by_key(|(_, seq)| *seq)?;
        streams[best].next()
    }))
}

/// Whether `entry` passes every filter; the peers it names (a packet's sender and next hop).
fn matches(query: &EventQuery, entry: &JournalEntry, index: &IndexReader, reader: &mut EventReader) -> Result<Option<[Option<String>; 2]>, String> {
    if let Some(types) = &query.types {
        if !types.contains(&entry.event.kind()) {
            return Ok(None);
        }
    }
    if query.since_ms.is_some_and(|since| entry.timestamp_ms < since) || query.until_ms.is_some_and(|until| entry.timestamp_ms > until) {
        return Ok(None);
    }
    if let Some(codes) = &query.codes {
        match &entry.event {
            Event::PacketRejected(rejected) if codes.contains(&rejected.code) => {}
            _ => return Ok(None),
        }
    }
    if let Some(packet) = query.packet {
        if packet_id(&entry.event) != Some(packet) {
            return Ok(None);
        }
    }
    if let Some(prefix) = &query.destination {
        let destination = match &entry.event {
            Event::PacketPrepared(prepared) => Some(&prepared.destination),
            Event::PacketRejected(rejected) => Some(&rejected.destination),
            _ => None,
        };
        if !destination.is_some_and(|destination| destination.starts_with(prefix.as_str())) {
            return Ok(None);
        }
    }
    let peers = peers_of(entry, index, reader)?;
    if let Some(peer) = &query.peer {
        let named = peers.iter().flatten().any(|name| name == peer) || other_peer(&entry.event) == Some(peer.as_str());
        if !named {
            return Ok(None);
        }
        // A direction selects packets: those the peer sent us (in) or we sent it (out).
        let packet = packet_id(&entry.event).is_some();
        match query.direction {
            Some(Direction::In) if !packet || peers[0].as_deref() != Some(peer) => return Ok(None),
            Some(Direction::Out) if !packet || peers[1].as_deref() != Some(peer) => return Ok(None),
            _ => {}
        }
    }
    Ok(Some(peers))
}

pub fn packet_id(event: &Event) -> Option<u64> {
    match event {
        Event::PacketPrepared(prepared) => Some(prepared.packet_id),
        Event::PacketFulfilled(fulfilled) => Some(fulfilled.packet_id),
        Event::PacketRejected(rejected) => Some(rejected.packet_id),
        _ => None,
    }
}

/// A non-packet event's peer.
fn other_peer(event: &Event) -> Option<&str> {
    match event {
        Event::PeerConnected { peer, .. } | Event::PeerDisconnected { peer, .. } => Some(peer),
        Event::SettlementTriggered(event) => Some(&event.peer),
        Event::ClaimSent(event) => Some(&event.peer),
        Event::ClaimReceived(event) => Some(&event.peer),
        Event::SettlementCompleted(event) => Some(&event.peer),
        Event::SettlementFailed(event) => Some(&event.peer),
        Event::ChannelActionFailed(event) => Some(&event.peer),
        Event::ChannelCloseRequested(event) => Some(&event.peer),
        Event::CooperativeSettleAgreed(event) => Some(&event.peer),
        Event::RouteLearned(event) => Some(&event.peer),
        Event::RouteWithdrawn(event) => Some(&event.peer),
        Event::SettlementCorrected(event) => Some(&event.peer),
        Event::FulfillUndelivered(event) => Some(&event.from_peer),
        _ => None,
    }
}

/// (sender, next hop) of a packet event: from the event itself, or from the packet's
/// `PacketPrepared` (found through the index) for a Fulfill or a downstream Reject.
pub fn peers_of(entry: &JournalEntry, index: &IndexReader, reader: &mut EventReader) -> Result<[Option<String>; 2], String> {
    match &entry.event {
        Event::PacketPrepared(prepared) => Ok([Some(prepared.from_peer.clone()), Some(prepared.to_peer.clone())]),
        Event::PacketFulfilled(_) | Event::PacketRejected(_) => {
            let id = packet_id(&entry.event).unwrap_or_default();
            let from = match &entry.event {
                Event::PacketRejected(rejected) => Some(rejected.from_peer.clone()),
                _ => None,
            };
            if matches!(&entry.event, Event::PacketRejected(rejected) if !rejected.prepared) {
                return Ok([from, None]);
            }
            let prepared_seq = index.packet_seqs(id).into_iter().find(|seq| *seq < entry.seq);
            if let Some(seq) = prepared_seq {
                if let Some(JournalEntry { event: Event::PacketPrepared(prepared), .. }) = reader.get(seq)? {
                    return Ok([Some(prepared.from_peer), Some(prepared.to_peer)]);
                }
            }
            Ok([from, None])
        }
        other => Ok([other_peer(other).map(str::to_owned), None]),
    }
}

/// `total` for the filters: exact for one dimension (or none), else the smallest count of any
/// filter, marked as an estimate. `first_held` is the journal's first seq: the counts kept with
/// the index still include the events retention removed before it, so the total of all events
/// drops them (seqs are dense, one per event), and a total from the per-kind, per-peer or
/// per-code counts is then an upper bound, marked as an estimate.
fn total(query: &EventQuery, index: &IndexReader, first_held: u64) -> (u64, bool) {
    let counts = index.counts();
    let removed = first_held.saturating_sub(counts.first_seq.max(1));
    let mut bounds: Vec<u64> = Vec::new();
    let mut from_counts = false;
    if let Some(types) = &query.types {
        bounds.push(types.iter().map(|kind| counts.kinds.get(*kind).copied().unwrap_or(0)).sum());
        from_counts = true;
    }
    if let Some(peer) = &query.peer {
        bounds.push(counts.peers.get(peer).copied().unwrap_or(0));
        from_counts = true;
    }
    if let Some(codes) = &query.codes {
        bounds.push(codes.iter().map(|code| counts.codes.get(&*String::from_utf8_lossy(code)).copied().unwrap_or(0)).sum());
        from_counts = true;
    }
    if let Some(packet) = query.packet {
        // Read from the packet's slots, which retention's trim empties with the journal.
        bounds.push(index.packet_seqs(packet).len() as u64);
    }
    let others = query.since_ms.is_some() || query.until_ms.is_some() || query.direction.is_some() || query.destination.is_some() || query.cursor.is_some();
    match bounds.iter().min() {
        None => (counts.events.saturating_sub(removed), others),
        Some(min) => (*min, others || bounds.len() > 1 || (from_counts && removed > 0)),
    }
}

/// A page as JSON.
pub fn page_json(page: Page) -> Value {
    let events: Vec<Value> = page
        .events
        .iter()
        .map(|(entry, peers)| super::api::event_json(entry, [peers[0].as_deref(), peers[1].as_deref()]))
        .collect();
    json!({
        "events": events,
        "next_cursor": page.next_cursor.map(|seq| seq.to_string()),
        "total": page.total,
        "total_is_estimate": page.total_is_estimate,
        "partial": page.partial,
    })
}
