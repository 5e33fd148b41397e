//! The settlement ledger: what the journal says about channels, claims and settlements in
//! progress, and the decisions that follow from it.
//!
//! Input: journal entries, in order (the forwarder applies each one it appends, a replay applies
//! each one it reads). Output: position changes (returned by [`SettlementLedger::apply`] for
//! `Balances` to book) and decisions ([`SettlementLedger::due`]): the settlement events that must
//! come next. The forwarder appends what is due right after the event that made it due;
//! `audit settlements` replays the journal and checks that what came next is exactly that.
//!
//! Pure: no clock, no IO, no randomness. Time, when a rule needs it, is an event's timestamp.
//! State is ordered maps so its serialization (snapshots, digests) does not depend on history.
//!
//! The decision rules (DESIGN.md §3):
//! - **Trigger.** A peer we pay, with no settlement in progress: when what we owe it (minus its
//!   position) reaches `threshold`, a settlement of `owed - settle_to` starts.
//! - **Claim.** A settlement in progress without a claim: as soon as the token network is known
//!   and the peer's channel is open with our deposit covering the new cumulative amount, the
//!   claim (next nonce, cumulative + amount) is signed and journaled. Until then the executor
//!   funds the channel ([`SettlementLedger::funding`]); its failures are journaled and retried.
//! - **Verdict.** A claim from a peer is accepted only if it is for our chain and contract, on an
//!   open channel between us, signed by the peer's account, with a nonce above the last accepted,
//!   a cumulative amount not below the last and within the peer's deposit, and an increase within
//!   what the peer owes plus its prepayment allowance ([`SettlementLedger::verdict`]).
//! - **Correction.** When a channel settles on chain, whatever the chain paid us differently from
//!   what the claims say (a claim never redeemed, a proof we failed to submit) moves the peer's
//!   position by the difference: the chain has the last word.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::claim::{Claim, UnsignedClaim};
use crate::journal::{
    ChannelChange, ChannelObserved, ClaimReceived, ClaimRejection, ClaimSent, ClaimVerdict, Event, JournalEntry,
    PeerSettlementTerms, SettlementConfigured, SettlementTriggered,
};

/// A settlement in progress with a peer (at most one per peer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingSettlement {
    pub settlement_id: u64,
    pub amount: u128,
    pub triggered_at_ms: i64,
    /// The claim once signed and journaled; it is sent until the peer acknowledges it.
    pub claim: Option<Claim>,
    /// Failed attempts so far, and when the next may start (event time + backoff).
    pub attempts: u32,
    pub retry_at_ms: i64,
    pub last_error: String,
}

/// What the ledger knows of one peer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerLedger {
    pub pending: Option<PendingSettlement>,
    /// The peer's channel that is not settled yet.
    pub channel: Option<String>,
    /// Sum of the amounts of our claims to this peer, and of its accepted claims to us.
    pub sent_total: u128,
    pub received_total: u128,
    pub settlements_completed: u64,
    /// Sum of the position corrections made when channels settled on chain.
    pub correction_total: i128,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChannelState {
    Open,
    Closed,
    Settled,
}

impl ChannelState {
    pub fn label(self) -> &'static str {
        match self {
            ChannelState::Open => "open",
            ChannelState::Closed => "closed",
            ChannelState::Settled => "settled",
        }
    }
}

/// One participant's side of a channel.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelSide {
    pub deposit: u128,
    pub withdrawn: u128,
    /// The newest claim this side signed that the ledger holds (ours: sent; theirs: accepted).
    pub nonce: u64,
    pub cumulative: u128,
    pub signature: Vec<u8>,
    /// The proof of this side the chain has on record after a close.
    pub onchain_nonce: u64,
    pub onchain_transferred: u128,
}

/// A channel between us and a configured peer, as the chain reported it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelLedger {
    pub peer: String,
    pub chain: String,
    pub contract: String,
    pub participant1: String,
    pub participant2: String,
    pub state: ChannelState,
    pub settle_timeout_s: u64,
    /// Chain time after which a closed channel may be settled.
    pub settle_at_s: u64,
    pub closer: Option<String>,
    pub ours: ChannelSide,
    pub theirs: ChannelSide,
    /// What settling paid each side (ours, theirs), once settled.
    pub payout: Option<(u128, u128)>,
    /// A close was requested or a cooperative settle agreed: no claim moves on it any more.
    pub closing: bool,
    /// An operator asked to close it on chain (not cooperatively): the close is retried until
    /// the chain shows it closed.
    pub close_requested: bool,
    /// Set when the channel settles: (what the chain paid us, what the claims say); the
    /// `SettlementCorrected` that books the difference clears it.
    pub correction_due: Option<(u128, i128)>,
}

impl ChannelLedger {
    /// Open on chain and not being closed: claims may move on it.
    pub fn usable(&self) -> bool {
        self.state == ChannelState::Open && !self.closing
    }

    /// What the channel holds: both deposits minus both withdrawals.
    pub fn total(&self) -> u128 {
        (self.ours.deposit + self.theirs.deposit).saturating_sub(self.ours.withdrawn + self.theirs.withdrawn)
    }

    /// The split the claims on record give (ours, theirs), within what the channel holds.
    pub fn split(&self) -> (u128, u128) {
        let total = self.total();
        let ours = u128::try_from(self.expected_payout().max(0)).unwrap_or(u128::MAX).min(total);
        (ours, total - ours)
    }

    /// (participant1's balance, participant2's balance) for a split (ours, theirs).
    pub fn ordered(&self, account: &str, ours: u128, theirs: u128) -> (u128, u128) {
        if self.participant1.eq_ignore_ascii_case(account) {
            (ours, theirs)
        } else {
            (theirs, ours)
        }
    }

    /// Our unspent funds in the channel: deposited, not withdrawn, not yet claimed by the peer.
    pub fn available(&self) -> u128 {
        self.ours.deposit.saturating_sub(self.ours.withdrawn).saturating_sub(self.ours.cumulative)
    }

    /// What settling should pay us by the claims on record: our deposit minus withdrawals minus
    /// what we sent plus what we accepted.
    pub fn expected_payout(&self) -> i128 {
        let credit = self.ours.deposit.saturating_add(self.theirs.cumulative);
        let debit = self.ours.withdrawn.saturating_add(self.ours.cumulative);
        i128::try_from(credit).unwrap_or(i128::MAX) - i128::try_from(debit).unwrap_or(i128::MAX)
    }
}

/// A settlement event that must come next (see [`SettlementLedger::due`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// A settled channel paid differently from the claims: book the difference first.
    Correct(crate::journal::SettlementCorrected),
    Trigger(SettlementTriggered),
    Claim { settlement_id: u64, peer: String, amount: u128, claim: UnsignedClaim },
}

/// What the executor must do on chain before a settlement's claim can be signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Funding {
    /// Open a channel with the peer's account and deposit `deposit_total`.
    Open { partner: String, settle_timeout_s: u64, deposit_total: u128 },
    /// Raise our deposit in the open channel to `deposit_total`.
    Deposit { channel_id: String, deposit_total: u128 },
    /// The channel is closed: wait for it to settle (after its challenge period), then open anew.
    AwaitSettlement { channel_id: String, settle_at_s: u64 },
    /// Nothing to do yet: the channel is funded, or the chain is not ready.
    Nothing,
    /// The policy forbids it; retried only after a configuration change.
    Refused(String),
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettlementLedger {
    /// The latest terms, and whether they are in force: every start journals a
    /// `ConfigurationApplied` (settlement off) and, with settlement enabled, `SettlementConfigured`
    /// right after it (on again). A start without settlement decides nothing.
    configured: Option<SettlementConfigured>,
    enabled: bool,
    /// The token network, once the chain was reached (`SettlementChainReady`).
    contract: Option<String>,
    token_decimals: u8,
    peers: BTreeMap<String, PeerLedger>,
    channels: BTreeMap<String, ChannelLedger>,
    /// The next settlement's id (ids start at 1).
    next_settlement_id: u64,
    /// The last chain event applied (block, log index): anything at or before it is a repeat.
    chain_cursor: Option<(u64, u64)>,
    /// The highest block the watcher reported having read in full.
    scanned_block: Option<u64>,
}

impl SettlementLedger {
    pub fn new() -> SettlementLedger {
        SettlementLedger::default()
    }

    /// The terms in force (None while settlement is off).
    pub fn configured(&self) -> Option<&SettlementConfigured> {
        self.configured.as_ref().filter(|_| self.enabled)
    }

    pub fn contract(&self) -> Option<&str> {
        self.contract.as_deref()
    }

    pub fn token_decimals(&self) -> u8 {
        self.token_decimals
    }

    pub fn terms(&self, peer: &str) -> Option<&PeerSettlementTerms> {
        self.configured()?.peers.iter().find(|terms| terms.peer == peer)
    }

    pub fn peer(&self, peer: &str) -> Option<&PeerLedger> {
        self.peers.get(peer)
    }

    pub fn peers(&self) -> impl Iterator<Item = (&str, &PeerLedger)> {
        self.peers.iter().map(|(peer, ledger)| (peer.as_str(), ledger))
    }

    pub fn channel(&self, channel_id: &str) -> Option<&ChannelLedger> {
        self.channels.get(channel_id)
    }

    pub fn channels(&self) -> impl Iterator<Item = (&str, &ChannelLedger)> {
        self.channels.iter().map(|(id, channel)| (id.as_str(), channel))
    }

    /// The peer's channel that is not settled, if any.
    pub fn peer_channel(&self, peer: &str) -> Option<(&str, &ChannelLedger)> {
        let id = self.peers.get(peer)?.channel.as_deref()?;
        self.channels.get(id).map(|channel| (id, channel))
    }

    /// Whether the peer ever had a channel with us (settled ones included): the initial deposit
    /// opens the first channel ahead of any debt; later ones open when a settlement needs them.
    pub fn has_had_channel(&self, peer: &str) -> bool {
        self.channels.values().any(|channel| channel.peer == peer)
    }

    /// Whether a chain event at (block, log index) is new (not at or before the last applied).
    pub fn is_new_chain_event(&self, block_number: u64, log_index: u64) -> bool {
        self.chain_cursor.is_none_or(|cursor| (block_number, log_index) > cursor)
    }

    pub fn chain_cursor(&self) -> Option<(u64, u64)> {
        self.chain_cursor
    }

    /// Where a restarted watcher resumes: the block of the last chain event (its later logs are
    /// recognised as repeats) or after the last scan marker, whichever is later.
    pub fn resume_block(&self) -> Option<u64> {
        let after_marker = self.scanned_block.map(|block| block + 1);
        let at_cursor = self.chain_cursor.map(|(block, _)| block);
        after_marker.max(at_cursor)
    }

    /// Channels that are not settled yet, open first.
    pub fn open_channel_count(&self) -> usize {
        self.channels.values().filter(|channel| channel.state != ChannelState::Settled).count()
    }

    /// Applies one journal entry; returns the position change it makes, if any: `(peer, delta)`
    /// where the peer's position (what it owes us minus what we owe it) moves by `delta`.
    pub fn apply(&mut self, entry: &JournalEntry) -> Option<(String, i128)> {
        match &entry.event {
            Event::ConfigurationApplied(_) => {
                self.enabled = false;
                None
            }
            Event::SettlementConfigured(configured) => {
                self.configure(configured);
                None
            }
            Event::SettlementChainReady(ready) => {
                self.contract = Some(ready.contract.clone());
                self.token_decimals = ready.token_decimals;
                None
            }
            Event::SettlementTriggered(triggered) => {
                self.next_settlement_id = self.next_settlement_id.max(triggered.settlement_id + 1);
                self.peers.entry(triggered.peer.clone()).or_default().pending = Some(PendingSettlement {
                    settlement_id: triggered.settlement_id,
                    amount: triggered.amount,
                    triggered_at_ms: entry.timestamp_ms,
                    claim: None,
                    attempts: 0,
                    retry_at_ms: entry.timestamp_ms,
                    last_error: String::new(),
                });
                None
            }
            Event::ClaimSent(sent) => self.claim_sent(sent),
            Event::ClaimReceived(received) => self.claim_received(received),
            Event::ChannelObserved(observed) => self.channel_observed(observed),
            Event::SettlementCompleted(completed) => {
                let peer = self.peers.entry(completed.peer.clone()).or_default();
                if peer.pending.as_ref().is_some_and(|pending| pending.settlement_id == completed.settlement_id) {
                    peer.pending = None;
                    peer.settlements_completed += 1;
                }
                None
            }
            Event::ChannelCloseRequested(requested) => {
                if let Some(channel) = self.channels.get_mut(&requested.channel_id) {
                    channel.closing = true;
                    channel.close_requested |= !requested.cooperative;
                }
                None
            }
            Event::CooperativeSettleAgreed(agreed) => {
                if let Some(channel) = self.channels.get_mut(&agreed.channel_id) {
                    channel.closing = true;
                }
                None
            }
            Event::SettlementCorrected(corrected) => {
                if let Some(channel) = self.channels.get_mut(&corrected.channel_id) {
                    channel.correction_due = None;
                }
                let ledger = self.peers.entry(corrected.peer.clone()).or_default();
                ledger.correction_total = ledger.correction_total.saturating_add(corrected.delta);
                Some((corrected.peer.clone(), corrected.delta))
            }
            Event::ChainScanned(scanned) => {
                self.scanned_block = self.scanned_block.max(Some(scanned.block_number));
                None
            }
            Event::SettlementFailed(failed) => {
                let peer = self.peers.entry(failed.peer.clone()).or_default();
                if let Some(pending) = peer.pending.as_mut().filter(|pending| pending.settlement_id == failed.settlement_id) {
                    pending.attempts = failed.attempt;
                    pending.retry_at_ms = failed.retry_at_ms;
                    pending.last_error.clone_from(&failed.error);
                }
                None
            }
            _ => None,
        }
    }

    fn configure(&mut self, configured: &SettlementConfigured) {
        let same_chain = self.configured.as_ref().is_some_and(|previous| {
            previous.chain == configured.chain && previous.registry == configured.registry && previous.token == configured.token
        });
        if !same_chain {
            self.contract = None;
        }
        for terms in &configured.peers {
            self.peers.entry(terms.peer.clone()).or_default();
        }
        self.configured = Some(configured.clone());
        self.enabled = true;
    }

    fn claim_sent(&mut self, sent: &ClaimSent) -> Option<(String, i128)> {
        if let Some(channel) = self.channels.get_mut(&sent.claim.channel_id) {
            channel.ours.nonce = sent.claim.nonce;
            channel.ours.cumulative = sent.claim.cumulative;
            channel.ours.signature.clone_from(&sent.claim.signature);
        }
        let peer = self.peers.entry(sent.peer.clone()).or_default();
        if let Some(pending) = peer.pending.as_mut().filter(|pending| pending.settlement_id == sent.settlement_id) {
            pending.claim = Some(sent.claim.clone());
            pending.attempts = 0;
            pending.last_error.clear();
        }
        peer.sent_total = peer.sent_total.saturating_add(sent.amount);
        Some((sent.peer.clone(), amount_delta(sent.amount)))
    }

    fn claim_received(&mut self, received: &ClaimReceived) -> Option<(String, i128)> {
        let ClaimVerdict::Accepted { increase } = received.verdict else { return None };
        if let Some(channel) = self.channels.get_mut(&received.claim.channel_id) {
            channel.theirs.nonce = received.claim.nonce;
            channel.theirs.cumulative = received.claim.cumulative;
            channel.theirs.signature.clone_from(&received.claim.signature);
        }
        let peer = self.peers.entry(received.peer.clone()).or_default();
        peer.received_total = peer.received_total.saturating_add(increase);
        Some((received.peer.clone(), -amount_delta(increase)))
    }

    fn channel_observed(&mut self, observed: &ChannelObserved) -> Option<(String, i128)> {
        self.chain_cursor = Some((observed.block_number, observed.log_index));
        if let ChannelChange::Opened { participant1, participant2, settle_timeout_s } = &observed.change {
            self.channel_opened(observed, participant1, participant2, *settle_timeout_s);
            return None;
        }
        let account = self.configured()?.account.clone();
        let channel = self.channels.get_mut(&observed.channel_id)?;
        let is_ours = |participant: &str| participant.eq_ignore_ascii_case(&account);
        match &observed.change {
            ChannelChange::Opened { .. } => None,
            ChannelChange::Deposit { participant, total } => {
                side(channel, is_ours(participant)).deposit = *total;
                None
            }
            ChannelChange::Withdraw { participant, total } => {
                side(channel, is_ours(participant)).withdrawn = *total;
                None
            }
            ChannelChange::Closed { closer, nonce, transferred, settle_at_s } => {
                channel.state = ChannelState::Closed;
                channel.closer = Some(closer.clone());
                channel.settle_at_s = *settle_at_s;
                // The closer submitted its partner's proof.
                let partner = side(channel, !is_ours(closer));
                partner.onchain_nonce = *nonce;
                partner.onchain_transferred = *transferred;
                let peer = channel.peer.clone();
                self.end_claims_on(&peer, &observed.channel_id);
                None
            }
            ChannelChange::ProofUpdated { closer, nonce, transferred } => {
                let closer_side = side(channel, is_ours(closer));
                closer_side.onchain_nonce = *nonce;
                closer_side.onchain_transferred = *transferred;
                None
            }
            ChannelChange::Settled { amount1, amount2, .. } => {
                channel.state = ChannelState::Settled;
                let we_are_first = is_ours(&channel.participant1);
                let (ours, theirs) = if we_are_first { (*amount1, *amount2) } else { (*amount2, *amount1) };
                channel.payout = Some((ours, theirs));
                let expected = channel.expected_payout();
                if expected != amount_delta(ours) {
                    channel.correction_due = Some((ours, expected));
                }
                let peer = channel.peer.clone();
                self.end_claims_on(&peer, &observed.channel_id);
                let ledger = self.peers.entry(peer.clone()).or_default();
                if ledger.channel.as_deref() == Some(observed.channel_id.as_str()) {
                    ledger.channel = None;
                }
                None
            }
        }
    }

    fn channel_opened(&mut self, observed: &ChannelObserved, participant1: &str, participant2: &str, settle_timeout_s: u64) {
        let Some(configured) = self.configured() else { return };
        let account = &configured.account;
        let partner = if participant1.eq_ignore_ascii_case(account) {
            participant2
        } else if participant2.eq_ignore_ascii_case(account) {
            participant1
        } else {
            return;
        };
        let Some(terms) = configured.peers.iter().find(|terms| terms.address.eq_ignore_ascii_case(partner)) else {
            return;
        };
        let peer = terms.peer.clone();
        self.channels.insert(
            observed.channel_id.clone(),
            ChannelLedger {
                peer: peer.clone(),
                chain: observed.chain.clone(),
                contract: observed.contract.clone(),
                participant1: participant1.to_owned(),
                participant2: participant2.to_owned(),
                state: ChannelState::Open,
                settle_timeout_s,
                settle_at_s: 0,
                closer: None,
                ours: ChannelSide::default(),
                theirs: ChannelSide::default(),
                payout: None,
                closing: false,
                close_requested: false,
                correction_due: None,
            },
        );
        self.peers.entry(peer).or_default().channel = Some(observed.channel_id.clone());
    }

    /// A settlement whose claim is on a channel that closed is over: the claim is final as of the
    /// close (the peer redeems it or not; settling corrects the position either way).
    fn end_claims_on(&mut self, peer: &str, channel_id: &str) {
        if let Some(ledger) = self.peers.get_mut(peer) {
            let on_channel = ledger
                .pending
                .as_ref()
                .and_then(|pending| pending.claim.as_ref())
                .is_some_and(|claim| claim.channel_id == channel_id);
            if on_channel {
                ledger.pending = None;
            }
        }
    }

    /// The settlement event that must come next for `peer`, whose position is `position`, if any.
    pub fn due(&self, peer: &str, position: i128) -> Option<Decision> {
        self.configured()?;
        // We were paid `our_payout`; the claims say `expected`. More than expected means the peer
        // paid us more than booked: it owes us that much less (delta < 0).
        if let Some((channel_id, channel)) = self.channels.iter().find(|(_, channel)| channel.peer == peer && channel.correction_due.is_some()) {
            let (our_payout, expected_payout) = channel.correction_due.expect("filtered");
            return Some(Decision::Correct(crate::journal::SettlementCorrected {
                peer: peer.to_owned(),
                channel_id: channel_id.clone(),
                our_payout,
                expected_payout,
                delta: expected_payout.saturating_sub(amount_delta(our_payout)),
            }));
        }
        let terms = self.terms(peer).filter(|terms| terms.pays_peer)?;
        let ledger = self.peers.get(peer)?;
        match &ledger.pending {
            None => {
                let owed = u128::try_from(position.checked_neg()?).ok()?;
                if owed < u128::from(terms.threshold) {
                    return None;
                }
                Some(Decision::Trigger(SettlementTriggered {
                    settlement_id: self.next_settlement_id.max(1),
                    peer: peer.to_owned(),
                    position,
                    threshold: terms.threshold,
                    settle_to: terms.settle_to,
                    amount: owed - u128::from(terms.settle_to),
                }))
            }
            Some(pending) if pending.claim.is_none() => {
                let contract = self.contract.as_ref()?;
                let (channel_id, channel) = self.peer_channel(peer)?;
                if !channel.usable() || channel.contract != *contract {
                    return None;
                }
                let cumulative = channel.ours.cumulative.checked_add(pending.amount)?;
                if cumulative > channel.ours.deposit.saturating_sub(channel.ours.withdrawn) {
                    return None;
                }
                Some(Decision::Claim {
                    settlement_id: pending.settlement_id,
                    peer: peer.to_owned(),
                    amount: pending.amount,
                    claim: UnsignedClaim {
                        chain: channel.chain.clone(),
                        contract: contract.clone(),
                        channel_id: channel_id.to_owned(),
                        nonce: channel.ours.nonce + 1,
                        cumulative,
                    },
                })
            }
            Some(_) => None,
        }
    }

    /// What must happen on chain so that `peer` can be paid `amount` more (a settlement waiting
    /// for funds, or the initial deposit when `amount` is 0), by the peer's deposit policy.
    pub fn funding(&self, peer: &str, amount: u128) -> Funding {
        let (Some(terms), Some(_)) = (self.terms(peer).filter(|terms| terms.pays_peer), self.contract.as_ref()) else {
            return Funding::Nothing;
        };
        let deposit_max = u128::from(terms.deposit_max);
        if amount > deposit_max {
            return Funding::Refused(format!(
                "a settlement of {amount} exceeds the peer's deposit_max ({deposit_max}): raise deposit_max"
            ));
        }
        // Unspent funds to have in the channel after funding: the amount plus a top-up step,
        // within deposit_max.
        let unspent_target = amount.saturating_add(u128::from(terms.deposit_topup)).min(deposit_max);
        match self.peer_channel(peer) {
            None => {
                let initial = u128::from(terms.deposit_initial).min(deposit_max);
                // The first deposit: the initial one, or more if a settlement already needs it.
                let deposit_total = if amount == 0 { initial } else { unspent_target.max(initial) };
                Funding::Open { partner: terms.address.clone(), settle_timeout_s: terms.settle_timeout_s, deposit_total }
            }
            Some((channel_id, channel)) if channel.state != ChannelState::Open => {
                Funding::AwaitSettlement { channel_id: channel_id.to_owned(), settle_at_s: channel.settle_at_s }
            }
            // Being closed on request: nothing to fund ahead; a settlement waits for the close
            // to settle, then a new channel.
            Some((channel_id, channel)) if channel.closing => {
                if amount == 0 {
                    return Funding::Nothing;
                }
                Funding::AwaitSettlement { channel_id: channel_id.to_owned(), settle_at_s: channel.settle_at_s }
            }
            Some((channel_id, channel)) => {
                if channel.available() >= amount && (amount > 0 || channel.ours.deposit > 0) {
                    return Funding::Nothing;
                }
                let target = if amount == 0 { u128::from(terms.deposit_initial).min(deposit_max) } else { unspent_target };
                let deposit_total = channel.ours.cumulative.saturating_add(channel.ours.withdrawn).saturating_add(target);
                if deposit_total <= channel.ours.deposit {
                    return Funding::Nothing;
                }
                Funding::Deposit { channel_id: channel_id.to_owned(), deposit_total }
            }
        }
    }

    /// Whether `claim` from `peer` repeats the newest one already accepted (same nonce, amount
    /// and signature): it is acknowledged again and changes nothing.
    pub fn is_repeat(&self, peer: &str, claim: &Claim) -> bool {
        self.channels.get(&claim.channel_id).is_some_and(|channel| {
            channel.peer == peer
                && channel.theirs.nonce == claim.nonce
                && channel.theirs.nonce > 0
                && channel.theirs.cumulative == claim.cumulative
                && channel.theirs.signature == claim.signature
        })
    }

    /// The verdict on a claim from `peer` (position `position`) whose signature recovers to
    /// `signer` (None: to no one). Checks in a fixed order; the first that fails names the reason.
    pub fn verdict(&self, peer: &str, position: i128, claim: &Claim, signer: Option<&str>) -> ClaimVerdict {
        match self.check_claim(peer, position, claim, signer) {
            Ok(increase) => ClaimVerdict::Accepted { increase },
            Err((reason, detail)) => ClaimVerdict::Rejected { reason, detail },
        }
    }

    fn check_claim(
        &self,
        peer: &str,
        position: i128,
        claim: &Claim,
        signer: Option<&str>,
    ) -> Result<u128, (ClaimRejection, String)> {
        let refuse = |reason, detail: String| Err((reason, detail));
        let Some(configured) = self.configured() else {
            return refuse(ClaimRejection::NotAccepted, "settlement is not enabled on this node".into());
        };
        let Some(terms) = self.terms(peer).filter(|terms| terms.peer_pays) else {
            return refuse(ClaimRejection::NotAccepted, format!("peer {peer} does not pay this node by claims"));
        };
        let Some(contract) = self.contract.as_ref() else {
            return refuse(ClaimRejection::NotReady, "the token network is not known yet; retry later".into());
        };
        if claim.chain != configured.chain || !claim.contract.eq_ignore_ascii_case(contract) {
            return refuse(
                ClaimRejection::WrongChain,
                format!("claim is for {} {}, this node settles on {} {}", claim.chain, claim.contract, configured.chain, contract),
            );
        }
        let Some(channel) = self.channels.get(&claim.channel_id).filter(|channel| channel.peer == peer) else {
            return refuse(ClaimRejection::UnknownChannel, format!("no confirmed channel {} with peer {peer}", claim.channel_id));
        };
        if channel.state != ChannelState::Open {
            return refuse(ClaimRejection::ChannelNotOpen, format!("channel {} is {}", claim.channel_id, channel.state.label()));
        }
        if channel.closing {
            return refuse(ClaimRejection::ChannelNotOpen, format!("channel {} is being closed", claim.channel_id));
        }
        match signer {
            Some(signer) if signer.eq_ignore_ascii_case(&terms.address) => {}
            Some(signer) => {
                return refuse(ClaimRejection::BadSignature, format!("signed by {signer}, not by the peer's account {}", terms.address));
            }
            None => return refuse(ClaimRejection::BadSignature, "the signature recovers to no account".into()),
        }
        if claim.nonce <= channel.theirs.nonce {
            return refuse(ClaimRejection::StaleNonce, format!("nonce {} is not above {}", claim.nonce, channel.theirs.nonce));
        }
        if claim.cumulative < channel.theirs.cumulative {
            return refuse(
                ClaimRejection::Decreasing,
                format!("cumulative {} is below the accepted {}", claim.cumulative, channel.theirs.cumulative),
            );
        }
        let deposit = channel.theirs.deposit.saturating_sub(channel.theirs.withdrawn);
        if claim.cumulative > deposit {
            return refuse(ClaimRejection::OverDeposit, format!("cumulative {} exceeds the peer's deposit {deposit}", claim.cumulative));
        }
        let increase = claim.cumulative - channel.theirs.cumulative;
        let owed = u128::try_from(position.max(0)).unwrap_or(0);
        let allowed = owed.saturating_add(u128::from(terms.prepayment_allowance));
        if increase > allowed {
            return refuse(
                ClaimRejection::OverOwed,
                format!("increase {increase} exceeds what the peer owes ({owed}) plus its prepayment allowance ({})", terms.prepayment_allowance),
            );
        }
        Ok(increase)
    }

    /// Settlements in progress, by peer.
    pub fn pending(&self) -> impl Iterator<Item = (&str, &PendingSettlement)> {
        self.peers.iter().filter_map(|(peer, ledger)| Some((peer.as_str(), ledger.pending.as_ref()?)))
    }

    /// Closed channels where the chain holds an older proof of the peer's payments than we do:
    /// we must submit ours before the challenge period ends (if the peer closed), and channels
    /// whose challenge period is over (to settle).
    pub fn disputes(&self) -> impl Iterator<Item = (&str, &ChannelLedger)> {
        let account = self.configured().map(|configured| configured.account.clone()).unwrap_or_default();
        self.channels.iter().filter_map(move |(id, channel)| {
            let closed_by_peer = channel.state == ChannelState::Closed
                && channel.closer.as_deref().is_some_and(|closer| !closer.eq_ignore_ascii_case(&account));
            (closed_by_peer && channel.theirs.nonce > channel.theirs.onchain_nonce).then_some((id.as_str(), channel))
        })
    }

    /// SHA-256 of the state's canonical serialization: equal digests, equal state.
    pub fn digest(&self) -> [u8; 32] {
        let bytes = bincode::serde::encode_to_vec(self, bincode::config::standard()).expect("the ledger serializes");
        Sha256::digest(bytes).into()
    }
}

fn side(channel: &mut ChannelLedger, ours: bool) -> &mut ChannelSide {
    if ours {
        &mut channel.ours
    } else {
        &mut channel.theirs
    }
}

/// A token amount as a position change; amounts beyond i128 saturate (they cannot occur: claims
/// are bounded by deposits).
fn amount_delta(amount: u128) -> i128 {
    i128::try_from(amount).unwrap_or(i128::MAX)
}

/// Capped exponential backoff for settlement retries: 1 s, 2 s, 4 s ... up to 60 s.
pub fn retry_backoff_ms(attempt: u32) -> i64 {
    const BACKOFF_BASE_MS: i64 = 1_000;
    const BACKOFF_MAX_MS: i64 = 60_000;
    BACKOFF_BASE_MS.saturating_mul(1i64 << attempt.saturating_sub(1).min(16)).min(BACKOFF_MAX_MS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{ClaimVerdict, SettlementChainReady, SettlementCompleted};

    const ACCOUNT: &str = "0x00000000000000000000000000000000000000aa";
    const BOB: &str = "0x00000000000000000000000000000000000000bb";
    const CHAIN: &str = "eip155:31337";
    const CONTRACT: &str = "0x00000000000000000000000000000000000000cc";
    const CHANNEL: &str = "0x1111111111111111111111111111111111111111111111111111111111111111";

    fn terms() -> PeerSettlementTerms {
        PeerSettlementTerms {
            peer: "bob".into(),
            address: BOB.into(),
            pays_peer: true,
            peer_pays: true,
            threshold: 1_000,
            settle_to: 100,
            prepayment_allowance: 0,
            deposit_initial: 2_000,
            deposit_topup: 2_000,
            deposit_max: 10_000,
            settle_timeout_s: 600,
        }
    }

    /// A ledger fed with `events`, one seq each.
    struct Fixture {
        ledger: SettlementLedger,
        seq: u64,
        position: i128,
    }

    impl Fixture {
        fn new() -> Fixture {
            let mut fixture = Fixture { ledger: SettlementLedger::new(), seq: 0, position: 0 };
            fixture.apply(Event::SettlementConfigured(SettlementConfigured {
                chain: CHAIN.into(),
                registry: "0x01".into(),
                token: "0x02".into(),
                account: ACCOUNT.into(),
                confirmations: 2,
                peers: vec![terms()],
            }));
            fixture
        }

        fn apply(&mut self, event: Event) {
            self.seq += 1;
            let entry = JournalEntry { seq: self.seq, timestamp_ms: 1_000 * self.seq as i64, event };
            if let Some((_, delta)) = self.ledger.apply(&entry) {
                self.position += delta;
            }
        }

        fn ready(&mut self) {
            self.apply(Event::SettlementChainReady(SettlementChainReady {
                chain: CHAIN.into(),
                contract: CONTRACT.into(),
                token: "0x02".into(),
                token_decimals: 6,
            }));
        }

        fn observe(&mut self, change: ChannelChange) {
            let block_number = self.seq;
            self.apply(Event::ChannelObserved(ChannelObserved {
                chain: CHAIN.into(),
                contract: CONTRACT.into(),
                channel_id: CHANNEL.into(),
                tx_hash: "0x".into(),
                block_number,
                log_index: 0,
                block_timestamp_s: 0,
                change,
            }));
        }

        fn open_and_fund(&mut self, ours: u128, theirs: u128) {
            self.observe(ChannelChange::Opened { participant1: ACCOUNT.into(), participant2: BOB.into(), settle_timeout_s: 600 });
            self.observe(ChannelChange::Deposit { participant: ACCOUNT.into(), total: ours });
            self.observe(ChannelChange::Deposit { participant: BOB.into(), total: theirs });
        }

        /// Appends whatever is due, as the forwarder does (claims "signed" with a fixed byte).
        fn settle_due(&mut self) -> Vec<Decision> {
            let mut made = Vec::new();
            while let Some(decision) = self.ledger.due("bob", self.position) {
                made.push(decision.clone());
                match decision {
                    Decision::Correct(corrected) => self.apply(Event::SettlementCorrected(corrected)),
                    Decision::Trigger(triggered) => self.apply(Event::SettlementTriggered(triggered)),
                    Decision::Claim { settlement_id, peer, amount, claim } => {
                        let claim = Claim {
                            chain: claim.chain,
                            contract: claim.contract,
                            channel_id: claim.channel_id,
                            nonce: claim.nonce,
                            cumulative: claim.cumulative,
                            signature: vec![7; 65],
                        };
                        self.apply(Event::ClaimSent(ClaimSent { settlement_id, peer, amount, claim }));
                    }
                }
            }
            made
        }

        fn claim(&self, nonce: u64, cumulative: u128) -> Claim {
            Claim {
                chain: CHAIN.into(),
                contract: CONTRACT.into(),
                channel_id: CHANNEL.into(),
                nonce,
                cumulative,
                signature: vec![nonce as u8; 65],
            }
        }
    }

    #[test]
    fn owing_the_threshold_triggers_a_settlement_down_to_settle_to_and_a_funded_channel_gets_the_claim() {
        let mut fixture = Fixture::new();
        fixture.position = -999;
        assert!(fixture.settle_due().is_empty(), "below the threshold nothing is due");
        fixture.position = -1_000;
        let made = fixture.settle_due();
        assert!(matches!(&made[..], [Decision::Trigger(t)] if t.amount == 900 && t.settlement_id == 1));
        assert!(fixture.settle_due().is_empty(), "one settlement at a time; no chain yet, so no claim");
        assert_eq!(fixture.ledger.funding("bob", 900), Funding::Nothing, "nothing to fund before the chain is ready");
        fixture.ready();
        assert!(matches!(fixture.ledger.funding("bob", 900), Funding::Open { deposit_total: 2_900, .. }));
        fixture.open_and_fund(500, 0);
        assert!(fixture.settle_due().is_empty(), "500 deposited cannot cover 900");
        assert_eq!(
            fixture.ledger.funding("bob", 900),
            Funding::Deposit { channel_id: CHANNEL.into(), deposit_total: 2_900 }
        );
        fixture.observe(ChannelChange::Deposit { participant: ACCOUNT.into(), total: 2_900 });
        let made = fixture.settle_due();
        match &made[..] {
            [Decision::Claim { amount: 900, claim, .. }] => assert_eq!((claim.nonce, claim.cumulative), (1, 900)),
            other => panic!("expected one claim, got {other:?}"),
        }
        assert_eq!(fixture.position, -100, "the claim paid the peer down to settle_to");
        fixture.apply(Event::SettlementCompleted(SettlementCompleted { settlement_id: 1, peer: "bob".into() }));
        fixture.position -= 1_500;
        let made = fixture.settle_due();
        assert!(matches!(&made[..], [Decision::Trigger(t), Decision::Claim { claim, .. }]
            if t.settlement_id == 2 && t.amount == 1_500 && claim.nonce == 2 && claim.cumulative == 2_400));
    }

    #[test]
    fn verdicts_name_the_first_rule_a_claim_breaks() {
        let mut fixture = Fixture::new();
        let claim = fixture.claim(1, 100);
        let reason = |fixture: &Fixture, position: i128, claim: &Claim, signer: Option<&str>| {
            match fixture.ledger.verdict("bob", position, claim, signer) {
                ClaimVerdict::Accepted { increase } => Ok(increase),
                ClaimVerdict::Rejected { reason, .. } => Err(reason),
            }
        };
        assert_eq!(reason(&fixture, 1_000, &claim, Some(BOB)), Err(ClaimRejection::NotReady));
        fixture.ready();
        assert_eq!(reason(&fixture, 1_000, &claim, Some(BOB)), Err(ClaimRejection::UnknownChannel));
        fixture.open_and_fund(0, 500);
        let mut other_chain = claim.clone();
        other_chain.chain = "eip155:1".into();
        assert_eq!(reason(&fixture, 1_000, &other_chain, Some(BOB)), Err(ClaimRejection::WrongChain));
        assert_eq!(reason(&fixture, 1_000, &claim, Some(ACCOUNT)), Err(ClaimRejection::BadSignature));
        assert_eq!(reason(&fixture, 1_000, &claim, None), Err(ClaimRejection::BadSignature));
        assert_eq!(reason(&fixture, 1_000, &fixture.claim(1, 501), Some(BOB)), Err(ClaimRejection::OverDeposit));
        assert_eq!(reason(&fixture, 99, &claim, Some(BOB)), Err(ClaimRejection::OverOwed));
        assert_eq!(reason(&fixture, 100, &claim, Some(BOB)), Ok(100));
        assert_eq!(fixture.ledger.verdict("carol", 100, &claim, Some(BOB)), ClaimVerdict::Rejected {
            reason: ClaimRejection::NotAccepted,
            detail: "peer carol does not pay this node by claims".into(),
        });
        fixture.apply(Event::ClaimReceived(ClaimReceived {
            peer: "bob".into(),
            claim: claim.clone(),
            signer: BOB.into(),
            verdict: ClaimVerdict::Accepted { increase: 100 },
        }));
        assert_eq!(fixture.position, -100, "an accepted claim lowers what the peer owes");
        assert!(fixture.ledger.is_repeat("bob", &claim), "the same claim again is a repeat");
        assert_eq!(reason(&fixture, 1_000, &claim, Some(BOB)), Err(ClaimRejection::StaleNonce));
        assert_eq!(reason(&fixture, 1_000, &fixture.claim(2, 99), Some(BOB)), Err(ClaimRejection::Decreasing));
        assert_eq!(reason(&fixture, 1_000, &fixture.claim(2, 300), Some(BOB)), Ok(200));
        fixture.observe(ChannelChange::Closed { closer: BOB.into(), nonce: 0, transferred: 0, settle_at_s: 700 });
        assert_eq!(reason(&fixture, 1_000, &fixture.claim(2, 300), Some(BOB)), Err(ClaimRejection::ChannelNotOpen));
    }

    #[test]
    fn settling_on_chain_corrects_the_position_by_what_the_chain_paid_differently() {
        let mut fixture = Fixture::new();
        fixture.ready();
        fixture.open_and_fund(1_000, 0);
        fixture.position = -1_000;
        fixture.settle_due();
        assert_eq!(fixture.position, -100);
        // The peer never got our claim and closes with nothing of ours: the chain pays us our
        // whole deposit back, 900 more than the books say, so we owe the peer 900 again.
        fixture.observe(ChannelChange::Closed { closer: BOB.into(), nonce: 0, transferred: 0, settle_at_s: 700 });
        assert!(fixture.ledger.peer("bob").unwrap().pending.is_none(), "a close ends the settlement its claim was for");
        fixture.observe(ChannelChange::Settled { amount1: 1_000, amount2: 0, cooperative: false });
        assert_eq!(fixture.position, -100, "the settle itself moves nothing...");
        let made = fixture.settle_due();
        assert!(matches!(&made[0], Decision::Correct(c) if c.delta == -900 && c.our_payout == 1_000 && c.expected_payout == 100));
        assert_eq!(fixture.position, -1_000, "...the correction it makes due does");
        assert_eq!(fixture.ledger.peer("bob").unwrap().channel, None);
        assert_eq!(fixture.ledger.peer("bob").unwrap().correction_total, -900);
    }

    #[test]
    fn a_peer_closing_with_an_older_proof_of_its_payments_is_a_dispute() {
        let mut fixture = Fixture::new();
        fixture.ready();
        fixture.open_and_fund(0, 1_000);
        let claim = fixture.claim(3, 400);
        fixture.apply(Event::ClaimReceived(ClaimReceived {
            peer: "bob".into(),
            claim,
            signer: BOB.into(),
            verdict: ClaimVerdict::Accepted { increase: 400 },
        }));
        fixture.observe(ChannelChange::Closed { closer: BOB.into(), nonce: 0, transferred: 0, settle_at_s: 700 });
        assert_eq!(fixture.ledger.disputes().count(), 1);
        fixture.observe(ChannelChange::ProofUpdated { closer: BOB.into(), nonce: 3, transferred: 400 });
        assert_eq!(fixture.ledger.disputes().count(), 0, "answered with our newest proof");
        fixture.observe(ChannelChange::Settled { amount1: 400, amount2: 600, cooperative: false });
        assert_eq!(fixture.ledger.peer("bob").unwrap().correction_total, 0, "the chain paid what the claims say");
    }

    #[test]
    fn repeated_chain_events_are_recognised_by_block_and_log_index() {
        let mut fixture = Fixture::new();
        fixture.ready();
        fixture.open_and_fund(10, 0);
        let (block, index) = fixture.ledger.chain_cursor().unwrap();
        assert!(!fixture.ledger.is_new_chain_event(block, index));
        assert!(!fixture.ledger.is_new_chain_event(block - 1, 9));
        assert!(fixture.ledger.is_new_chain_event(block, index + 1));
    }

    #[test]
    fn backoff_doubles_up_to_a_minute() {
        let delays: Vec<i64> = (1..=9).map(retry_backoff_ms).collect();
        assert_eq!(delays, [1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000, 60_000]);
    }
}
