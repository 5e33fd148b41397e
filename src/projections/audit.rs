//! Auditing settlement: replay the journal and derive every settlement decision again.
//!
//! The [`Auditor`] takes the journal's entries in order. Before applying each one it asks the
//! settlement ledger what was due at that point (a trigger, a claim), exactly as the forwarder
//! did when it wrote the journal; then:
//! - a decision event (`SettlementTriggered`, `ClaimSent`) must be the one that was due, field
//!   for field, and a claim's signature must recover to this node's account;
//! - any other event must not come while a decision was due (a removed decision shows here);
//! - a `ClaimReceived` must carry the verdict the rules give for its claim, with the signer its
//!   signature recovers to (an edited amount or signature shows here, and a forged acceptance);
//! - the nonces of our claims on a channel must follow each other without a gap.
//!
//! The first divergence stops the audit with the entry's seq and what differs. Decisions and
//! claims are reported as [`AuditRecord`]s with their inputs and the recorded action.

use serde_json::{json, Map, Value};

use crate::settlement::claim;
use crate::settlement::ledger::Decision;
use crate::journal::{ClaimVerdict, Event, JournalEntry};
use super::balances::Balances;
use super::Projection;

/// One audited decision or claim, with what it was decided from and what was recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    pub seq: u64,
    pub timestamp_ms: i64,
    pub kind: &'static str,
    pub peer: String,
    /// What the rules looked at.
    pub inputs: Map<String, Value>,
    /// What the journal recorded (and the audit derived again).
    pub action: Map<String, Value>,
}

impl AuditRecord {
    pub fn to_json(&self) -> Value {
        json!({
            "seq": self.seq,
            "timestamp_ms": self.timestamp_ms,
            "decision": self.kind,
            "peer": self.peer,
            "inputs": self.inputs,
            "action": self.action,
            "verified": true,
        })
    }
}

/// The first entry the audit could not derive again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("seq {seq} ({kind}): {reason}")]
pub struct Divergence {
    pub seq: u64,
    pub kind: &'static str,
    pub reason: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuditCounts {
    pub events: u64,
    pub triggers: u64,
    pub claims_sent: u64,
    pub claims_received: u64,
    pub corrections: u64,
}

pub struct Auditor {
    balances: Balances,
    counts: AuditCounts,
}

impl Auditor {
    /// Starts from `balances` (empty, or a snapshot when retention deleted older frames).
    pub fn new(balances: Balances) -> Auditor {
        Auditor { balances, counts: AuditCounts::default() }
    }

    pub fn counts(&self) -> AuditCounts {
        self.counts
    }

    pub fn balances(&self) -> &Balances {
        &self.balances
    }

    /// The decision due now: the first, in the order of the configured peers, that the ledger
    /// derives. The forwarder appends decisions peer by peer in that order.
    fn due(&self) -> Option<Decision> {
        let ledger = self.balances.settlement();
        let configured = ledger.configured()?;
        configured.peers.iter().find_map(|terms| ledger.due(&terms.peer, self.balances.position_of(&terms.peer)))
    }

    /// Checks `entry` against what the journal before it implies, then applies it. Returns the
    /// record of a decision or a received claim.
    pub fn check(&mut self, entry: &JournalEntry) -> Result<Option<AuditRecord>, Divergence> {
        let kind = entry.event.kind();
        let diverge = |reason: String| Divergence { seq: entry.seq, kind, reason };
        let due = if self.balances.settlement().configured().is_some() { self.due() } else { None };
        let record = match (&entry.event, due) {
            (Event::SettlementTriggered(recorded), Some(Decision::Trigger(derived))) => {
                if *recorded != derived {
                    return Err(diverge(format!("recorded {recorded:?}, but the journal before it gives {derived:?}")));
                }
                self.counts.triggers += 1;
                Some(self.record(entry, &recorded.peer, json!({
                    "position": recorded.position.to_string(),
                    "threshold": recorded.threshold,
                    "settle_to": recorded.settle_to,
                }), json!({ "settlement_id": recorded.settlement_id, "amount": recorded.amount.to_string() })))
            }
            (Event::ClaimSent(recorded), Some(Decision::Claim { settlement_id, peer, amount, claim: derived })) => {
                if recorded.settlement_id != settlement_id || recorded.peer != peer || recorded.amount != amount || !derived.matches(&recorded.claim) {
                    return Err(diverge(format!(
                        "recorded claim for settlement {} to {} of {} (channel {}, nonce {}, cumulative {}), but the \
                         journal before it gives settlement {settlement_id} to {peer} of {amount} (channel {}, nonce {}, \
                         cumulative {})",
                        recorded.settlement_id, recorded.peer, recorded.amount, recorded.claim.channel_id,
                        recorded.claim.nonce, recorded.claim.cumulative, derived.channel_id, derived.nonce, derived.cumulative
                    )));
                }
                let account = self.balances.settlement().configured().map(|configured| configured.account.clone()).unwrap_or_default();
                match claim::recover_signer(&recorded.claim) {
                    Ok(signer) if signer.eq_ignore_ascii_case(&account) => {}
                    Ok(signer) => return Err(diverge(format!("the claim's signature recovers to {signer}, not this node's account {account}"))),
                    Err(error) => return Err(diverge(format!("the claim's signature does not verify: {error}"))),
                }
                self.counts.claims_sent += 1;
                let channel = self.balances.settlement().channel(&recorded.claim.channel_id);
                let inputs = json!({
                    "channel": recorded.claim.channel_id,
                    "previous_nonce": channel.map_or(0, |channel| channel.ours.nonce),
                    "previous_cumulative": channel.map_or(0, |channel| channel.ours.cumulative).to_string(),
                    "deposit": channel.map_or(0, |channel| channel.ours.deposit).to_string(),
                });
                Some(self.record(entry, &recorded.peer, inputs, json!({
                    "settlement_id": recorded.settlement_id,
                    "amount": recorded.amount.to_string(),
                    "nonce": recorded.claim.nonce,
                    "cumulative": recorded.claim.cumulative.to_string(),
                    "signature": "verified",
                })))
            }
            (Event::SettlementCorrected(recorded), Some(Decision::Correct(derived))) => {
                if *recorded != derived {
                    return Err(diverge(format!("recorded {recorded:?}, but the journal before it gives {derived:?}")));
                }
                self.counts.corrections += 1;
                Some(self.record(entry, &recorded.peer, json!({
                    "channel": recorded.channel_id,
                    "paid_on_chain": recorded.our_payout.to_string(),
                    "expected_by_claims": recorded.expected_payout.to_string(),
                }), json!({ "position_delta": recorded.delta.to_string() })))
            }
            (event, Some(derived)) if event.is_settlement_decision() => {
                return Err(diverge(format!("recorded {}, but the journal before it gives {derived:?}", event.kind())));
            }
            (event, None) if event.is_settlement_decision() => {
                return Err(diverge("recorded, but nothing was due at this point of the journal".into()));
            }
            (_, Some(derived)) => {
                return Err(diverge(format!("a settlement decision was due before this event and is missing: {derived:?}")));
            }
            (Event::ClaimReceived(received), None) => {
                let signer = claim::recover_signer(&received.claim).ok();
                if signer.as_deref().unwrap_or("") != received.signer {
                    return Err(diverge(format!(
                        "recorded signer `{}`, but the claim's signature recovers to `{}`",
                        received.signer,
                        signer.as_deref().unwrap_or("nobody")
                    )));
                }
                let position = self.balances.position_of(&received.peer);
                let derived = self.balances.settlement().verdict(&received.peer, position, &received.claim, signer.as_deref());
                if derived != received.verdict {
                    return Err(diverge(format!("recorded verdict {:?}, but the rules give {derived:?}", received.verdict)));
                }
                self.counts.claims_received += 1;
                let channel = self.balances.settlement().channel(&received.claim.channel_id);
                let inputs = json!({
                    "channel": received.claim.channel_id,
                    "nonce": received.claim.nonce,
                    "cumulative": received.claim.cumulative.to_string(),
                    "signer": received.signer,
                    "previous_nonce": channel.map_or(0, |channel| channel.theirs.nonce),
                    "peer_deposit": channel.map_or(0, |channel| channel.theirs.deposit).to_string(),
                    "position": position.to_string(),
                });
                let action = match &received.verdict {
                    ClaimVerdict::Accepted { increase } => json!({ "verdict": "accepted", "increase": increase.to_string() }),
                    ClaimVerdict::Rejected { reason, detail } => json!({ "verdict": "rejected", "reason": reason.label(), "detail": detail }),
                };
                Some(self.record(entry, &received.peer, inputs, action))
            }
            (_, None) => None,
        };
        self.balances.apply(entry);
        self.counts.events += 1;
        Ok(record)
    }

    fn record(&self, entry: &JournalEntry, peer: &str, inputs: Value, action: Value) -> AuditRecord {
        let map = |value: Value| match value {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        AuditRecord {
            seq: entry.seq,
            timestamp_ms: entry.timestamp_ms,
            kind: entry.event.kind(),
            peer: peer.to_owned(),
            inputs: map(inputs),
            action: map(action),
        }
    }
}
