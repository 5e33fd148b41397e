//! The forwarder's side of settlement: it owns the journal, so it applies the settlement
//! ledger's decisions, signs and sends our claims, judges the claims peers send, and turns the
//! executor's reports into journal events.
//!
//! Bounds: at most one settlement per peer and one claim in flight per peer; executor jobs are
//! `try_send` into a bounded queue (a full queue delays a job to the next tick, never blocks);
//! the tick runs at most every [`TICK_INTERVAL_MS`]. Nothing here touches a packet unless a peer
//! with settlement terms was on it, so the packet path pays one vector lookup per Fulfill.

use bytes::Bytes;
use rustc_hash::FxHashMap;

use super::{Forwarder, Held, PeerIndex, SessionId};
use crate::btp::packet::{self as btp, BtpPacket, ProtocolData};
use crate::journal::{
    ChannelActionFailed, ChannelChange, ChannelObserved, ClaimReceived, ClaimSent, ClaimVerdict, Event,
    SettlementCompleted, SettlementFailed, SettlementStage,
};
use crate::metrics;
use crate::pipeline::{IncomingChannelMessage, IncomingClaim};
use crate::settlement::evm::cooperative;
use crate::settlement::{AdminError, AdminRequest};
use crate::settlement::claim::{self, Claim};
use crate::settlement::ledger::{retry_backoff_ms, ChannelState, Decision, Funding};
use crate::settlement::{JobKey, SettlementInput, SettlementJob, SettlementLink};

/// How often settlement timers are looked at (claim deliveries, funding, disputes).
pub const TICK_INTERVAL_MS: i64 = 100;

/// How long a peer has to answer a claim before we count it a failed delivery and retry.
pub const CLAIM_ANSWER_TIMEOUT_MS: i64 = 10_000;

/// How long an executor job may run before the same job is asked for again (a lost report, a
/// slow chain): long enough for a transaction to be mined on a busy L2.
const JOB_TIMEOUT_MS: i64 = 120_000;

/// After a job's transaction is mined, how long its effect may take to come back confirmed
/// before the same job is asked for again (it then finds the chain already done and does
/// nothing).
const JOB_CONFIRMATION_WAIT_MS: i64 = 30_000;

/// The settlement method label of the metrics: the chain family.
const METHOD_EVM: &str = "evm";

pub(super) struct SettlementRuntime {
    link: SettlementLink,
    /// Per peer index: whether the peer has settlement terms.
    has_terms: Vec<bool>,
    /// Peer id → index, for the peers with terms.
    index_of: FxHashMap<String, PeerIndex>,
    claims_out: FxHashMap<(SessionId, u32), ClaimOut>,
    proposals_out: FxHashMap<(SessionId, u32), ProposalOut>,
    /// Per peer: no (re)send of its settlement's claim before this time.
    next_send_ms: FxHashMap<String, i64>,
    jobs: FxHashMap<JobKey, JobState>,
    /// Channels whose dispute was already counted.
    disputes_counted: rustc_hash::FxHashSet<String>,
    next_tick_ms: i64,
}

struct ClaimOut {
    peer: String,
    settlement_id: u64,
    deadline_ms: i64,
}

#[derive(Default)]
struct JobState {
    not_before_ms: i64,
    attempts: u32,
}

impl SettlementRuntime {
    pub(super) fn new(link: SettlementLink, peer_ids: &[&str]) -> SettlementRuntime {
        let has_terms: Vec<bool> =
            peer_ids.iter().map(|id| link.configured.peers.iter().any(|terms| terms.peer == *id)).collect();
        let index_of = peer_ids
            .iter()
            .enumerate()
            .filter(|(index, _)| has_terms[*index])
            .map(|(index, id)| ((*id).to_owned(), index))
            .collect();
        SettlementRuntime {
            link,
            has_terms,
            index_of,
            claims_out: FxHashMap::default(),
            proposals_out: FxHashMap::default(),
            next_send_ms: FxHashMap::default(),
            jobs: FxHashMap::default(),
            disputes_counted: Default::default(),
            next_tick_ms: 0,
        }
    }
}

impl Forwarder {
    /// Journals the settlement terms at start and whatever they make due.
    pub(super) fn settlement_start(&mut self) {
        let Some(runtime) = self.settlement.as_ref() else { return };
        let configured = runtime.link.configured.clone();
        tracing::info!(
            chain = %configured.chain,
            account = %configured.account,
            peers = configured.peers.len(),
            "settlement enabled"
        );
        self.append(Event::SettlementConfigured(configured.clone()));
        for terms in &configured.peers {
            self.settle_due(&terms.peer);
        }
        self.publish_channel_gauge();
    }

    /// After a Fulfill moved the positions of `from` and `to`: whatever became due.
    pub(super) fn settle_after_fulfill(&mut self, from: PeerIndex, to: PeerIndex) {
        let Some(runtime) = self.settlement.as_ref() else { return };
        if !runtime.has_terms[to] && !runtime.has_terms[from] {
            return;
        }
        for peer in [to, from] {
            if self.settlement.as_ref().is_some_and(|runtime| runtime.has_terms[peer]) {
                let id = self.peers[peer].id.clone();
                self.settle_due(&id);
            }
        }
    }

    /// Appends every settlement decision now due for `peer`, in order, signing claims.
    pub(super) fn settle_due(&mut self, peer: &str) {
        loop {
            let position = self.balances.position_of(peer);
            let Some(decision) = self.balances.settlement().due(peer, position) else { return };
            match decision {
                Decision::Correct(corrected) => {
                    tracing::warn!(
                        peer,
                        channel = %corrected.channel_id,
                        paid = %corrected.our_payout,
                        expected = %corrected.expected_payout,
                        delta = %corrected.delta,
                        "the channel settled differently from the claims on record; the position follows the chain"
                    );
                    self.append(Event::SettlementCorrected(corrected));
                    self.publish_position(peer);
                }
                Decision::Trigger(triggered) => {
                    tracing::info!(
                        peer,
                        settlement_id = triggered.settlement_id,
                        position = %triggered.position,
                        threshold = triggered.threshold,
                        amount = %triggered.amount,
                        "settlement triggered: we owe the peer its threshold"
                    );
                    self.append(Event::SettlementTriggered(triggered));
                }
                Decision::Claim { settlement_id, peer: payee, amount, claim } => {
                    let Some(runtime) = self.settlement.as_ref() else { return };
                    let signed = match runtime.link.signer.sign(&claim) {
                        Ok(signed) => signed,
                        Err(error) => {
                            // A local key cannot fail to sign; if it does, stop deciding for this
                            // peer rather than loop (the audit will show the missing claim).
                            metrics::global().error(metrics::ErrorKind::Internal, &format!("signing a claim failed: {error}"));
                            return;
                        }
                    };
                    tracing::info!(
                        peer = %payee,
                        settlement_id,
                        channel = %signed.channel_id,
                        nonce = signed.nonce,
                        cumulative = %signed.cumulative,
                        amount = %amount,
                        "claim signed"
                    );
                    self.append(Event::ClaimSent(ClaimSent { settlement_id, peer: payee.clone(), amount, claim: signed.clone() }));
                    metrics::global().settlement().claim_sent();
                    self.publish_position(&payee);
                    self.send_claim(&payee, settlement_id, &signed);
                }
            }
        }
    }

    /// Sends our claim to a session of `peer`, after the journal has made everything before it
    /// durable (the frame rides the next commit's releases). Without a session, the tick sends it
    /// once the peer is back.
    fn send_claim(&mut self, peer: &str, settlement_id: u64, claim: &Claim) {
        let Some(&index) = self.settlement.as_ref().and_then(|runtime| runtime.index_of.get(peer)) else { return };
        let Some(session) = self.pick_session(index) else {
            tracing::debug!(peer, settlement_id, "claim waits for the peer to connect");
            return;
        };
        let data = match claim::encode(claim) {
            Ok(data) => data,
            Err(error) => {
                metrics::global().error(metrics::ErrorKind::Internal, &format!("encoding our claim failed: {error}"));
                return;
            }
        };
        let request_id = self.next_request_id(session);
        let Some(state) = self.sessions.get(&session) else { return };
        let frame = BtpPacket::Message {
            request_id,
            protocol_data: vec![ProtocolData::new(claim::PROTOCOL_NAME, btp::CONTENT_OCTET_STREAM, Bytes::from(data))],
        }
        .encode();
        self.held.push(Held::Request { sender: state.link.requests.clone(), frame });
        let deadline_ms = self.now_ms + CLAIM_ANSWER_TIMEOUT_MS;
        let runtime = self.settlement.as_mut().expect("checked above");
        runtime.claims_out.insert((session, request_id), ClaimOut { peer: peer.to_owned(), settlement_id, deadline_ms });
        runtime.next_send_ms.insert(peer.to_owned(), i64::MAX);
    }

    /// A reply on `(session, request_id)` that matched no packet: the answer to a claim we sent,
    /// if it matches one. Returns whether it did.
    pub(super) fn claim_answered(&mut self, session: SessionId, request_id: u32, refusal: Option<String>) -> bool {
        let Some(out) = self.settlement.as_mut().and_then(|runtime| runtime.claims_out.remove(&(session, request_id))) else {
            return false;
        };
        match refusal {
            None => self.settlement_completed(&out.peer, out.settlement_id),
            Some(message) => {
                let error = format!("the peer refused the claim: {message}");
                self.settlement_failed(&out.peer, out.settlement_id, SettlementStage::Refused, error);
            }
        }
        true
    }

    fn settlement_completed(&mut self, peer: &str, settlement_id: u64) {
        let pending = self.balances.settlement().peer(peer).and_then(|ledger| ledger.pending.clone());
        let Some(pending) = pending.filter(|pending| pending.settlement_id == settlement_id) else {
            return; // a late answer for a settlement already over
        };
        self.append(Event::SettlementCompleted(SettlementCompleted { settlement_id, peer: peer.to_owned() }));
        let latency_ms = self.now_ms.saturating_sub(pending.triggered_at_ms).max(0) as u64;
        let token = self.balances.settlement().configured().map(|configured| configured.token.clone()).unwrap_or_default();
        metrics::global().settlement().executed(METHOD_EVM, true, latency_ms, pending.amount, &token);
        tracing::info!(peer, settlement_id, amount = %pending.amount, latency_ms, "settlement completed: the peer acknowledged our claim");
        if let Some(runtime) = self.settlement.as_mut() {
            runtime.next_send_ms.remove(peer);
        }
        self.settle_due(peer);
    }

    fn settlement_failed(&mut self, peer: &str, settlement_id: u64, stage: SettlementStage, error: String) {
        let pending = self.balances.settlement().peer(peer).and_then(|ledger| ledger.pending.clone());
        let Some(pending) = pending.filter(|pending| pending.settlement_id == settlement_id) else { return };
        let attempt = pending.attempts.saturating_add(1);
        let retry_at_ms = self.now_ms + retry_backoff_ms(attempt);
        tracing::warn!(peer, settlement_id, attempt, stage = stage.label(), %error, retry_in_ms = retry_at_ms - self.now_ms, "settlement step failed; will retry");
        self.append(Event::SettlementFailed(SettlementFailed {
            settlement_id,
            peer: peer.to_owned(),
            attempt,
            stage,
            error,
            retry_at_ms,
        }));
        metrics::global().settlement().failed(METHOD_EVM, stage.label());
        if let Some(runtime) = self.settlement.as_mut() {
            runtime.next_send_ms.insert(peer.to_owned(), retry_at_ms);
        }
    }

    /// Claims in flight on a session that went down: failed deliveries, retried.
    pub(super) fn settlement_session_down(&mut self, session: SessionId) {
        let Some(runtime) = self.settlement.as_mut() else { return };
        let lost: Vec<(u32, ClaimOut)> = runtime
            .claims_out
            .keys()
            .filter(|(on, _)| *on == session)
            .copied()
            .collect::<Vec<_>>()
            .into_iter()
            .filter_map(|key| runtime.claims_out.remove(&key).map(|out| (key.1, out)))
            .collect();
        for (_, out) in lost {
            self.settlement_failed(&out.peer, out.settlement_id, SettlementStage::Delivery, "the peer's session closed before it answered".into());
        }
    }

    /// A claim a peer sent us: judged against the journal, journaled with its verdict, answered
    /// once the verdict is durable.
    pub(super) fn handle_claim(&mut self, incoming: IncomingClaim) {
        let IncomingClaim { session, peer, request_id, claim, signer, reply } = incoming;
        if !self.sessions.contains_key(&session) {
            return;
        }
        let peer_id = self.peers[peer].id.clone();
        let global = metrics::global();
        global.settlement().claim_received();
        if self.balances.settlement().is_repeat(&peer_id, &claim) {
            // Already accepted (a re-send after a lost answer): acknowledged again, nothing moves.
            self.held.push(Held::Reply { slot: reply, frame: ack_frame(request_id) });
            return;
        }
        let position = self.balances.position_of(&peer_id);
        let verdict = self.balances.settlement().verdict(&peer_id, position, &claim, signer.as_deref().ok());
        let frame = match &verdict {
            ClaimVerdict::Accepted { increase } => {
                tracing::info!(peer = %peer_id, channel = %claim.channel_id, nonce = claim.nonce, cumulative = %claim.cumulative, increase = %increase, "claim accepted");
                ack_frame(request_id)
            }
            ClaimVerdict::Rejected { reason, detail } => {
                global.settlement().claim_refused(*reason);
                tracing::warn!(peer = %peer_id, channel = %claim.channel_id, nonce = claim.nonce, reason = reason.label(), %detail, "claim refused; position unchanged");
                let text = format!("{}: {detail}", reason.label());
                btp::BtpErrorCode::F00_NOT_ACCEPTED.packet(request_id, text.as_bytes()).encode()
            }
        };
        let accepted = matches!(verdict, ClaimVerdict::Accepted { .. });
        self.append(Event::ClaimReceived(ClaimReceived {
            peer: peer_id.clone(),
            claim,
            signer: signer.unwrap_or_default(),
            verdict,
        }));
        self.held.push(Held::Reply { slot: reply, frame });
        if accepted {
            self.update_balance_gauges(peer, peer);
            self.settle_due(&peer_id);
        }
    }

    /// A report from the executor.
    pub(super) fn handle_settlement_input(&mut self, input: SettlementInput) {
        if self.settlement.is_none() {
            return;
        }
        match input {
            SettlementInput::ChainReady(ready) => {
                if self.balances.settlement().contract() == Some(ready.contract.as_str())
                    && self.balances.settlement().token_decimals() == ready.token_decimals
                {
                    return;
                }
                tracing::info!(chain = %ready.chain, token_network = %ready.contract, "settlement chain ready");
                self.append(Event::SettlementChainReady(ready));
                let peers: Vec<String> = self.settlement_peers();
                for peer in peers {
                    self.settle_due(&peer);
                }
            }
            SettlementInput::Observed(observed) => self.channel_observed(observed),
            SettlementInput::JobDone { job, detail } => {
                tracing::info!(?job, %detail, "settlement transaction done");
                let now_ms = self.now_ms;
                if let Some(state) = self.settlement.as_mut().map(|runtime| runtime.jobs.entry(job).or_default()) {
                    state.attempts = 0;
                    state.not_before_ms = now_ms + JOB_CONFIRMATION_WAIT_MS;
                }
            }
            SettlementInput::JobWaiting { job, retry_after_ms } => {
                let now_ms = self.now_ms;
                if let Some(state) = self.settlement.as_mut().map(|runtime| runtime.jobs.entry(job).or_default()) {
                    state.not_before_ms = now_ms + i64::try_from(retry_after_ms).unwrap_or(i64::MAX / 2);
                }
            }
            SettlementInput::JobFailed { job, error } => self.job_failed(job, error),
            SettlementInput::Scanned { block } => {
                let chain = self.balances.settlement().configured().map(|configured| configured.chain.clone());
                if let Some(chain) = chain {
                    self.append(Event::ChainScanned(crate::journal::ChainScanned { chain, block_number: block }));
                }
            }
        }
    }

    fn job_failed(&mut self, job: JobKey, error: String) {
        let now_ms = self.now_ms;
        let attempts = {
            let Some(runtime) = self.settlement.as_mut() else { return };
            let state = runtime.jobs.entry(job.clone()).or_default();
            state.attempts = state.attempts.saturating_add(1);
            state.not_before_ms = now_ms + retry_backoff_ms(state.attempts);
            state.attempts
        };
        match &job {
            JobKey::Fund { peer } => {
                let pending = self.balances.settlement().peer(peer).and_then(|ledger| ledger.pending.clone());
                match pending.filter(|pending| pending.claim.is_none()) {
                    Some(pending) => {
                        self.settlement_failed(peer, pending.settlement_id, SettlementStage::Funding, error);
                    }
                    None => self.channel_action_failed(peer, "", "fund", error, attempts),
                }
            }
            JobKey::UpdateProof { channel_id } | JobKey::Settle { channel_id } | JobKey::Close { channel_id } => {
                let action = match job {
                    JobKey::Settle { .. } => "settle",
                    JobKey::Close { .. } => "close",
                    _ => "update_proof",
                };
                let peer = self.balances.settlement().channel(channel_id).map(|channel| channel.peer.clone()).unwrap_or_default();
                self.channel_action_failed(&peer, channel_id, action, error, attempts);
            }
        }
    }

    fn channel_action_failed(&mut self, peer: &str, channel_id: &str, action: &str, error: String, attempts: u32) {
        tracing::warn!(peer, channel = channel_id, action, attempts, %error, "channel transaction failed; will retry");
        metrics::global().settlement().failed(METHOD_EVM, action);
        self.append(Event::ChannelActionFailed(ChannelActionFailed {
            peer: peer.to_owned(),
            channel_id: channel_id.to_owned(),
            action: action.to_owned(),
            error,
        }));
    }

    fn channel_observed(&mut self, observed: ChannelObserved) {
        let ledger = self.balances.settlement();
        if !ledger.is_new_chain_event(observed.block_number, observed.log_index) {
            return;
        }
        let Some(configured) = ledger.configured() else { return };
        let relevant = match &observed.change {
            ChannelChange::Opened { participant1, participant2, .. } => {
                let account = &configured.account;
                let partner = if participant1.eq_ignore_ascii_case(account) {
                    Some(participant2)
                } else if participant2.eq_ignore_ascii_case(account) {
                    Some(participant1)
                } else {
                    None
                };
                partner.is_some_and(|partner| configured.peers.iter().any(|terms| terms.address.eq_ignore_ascii_case(partner)))
            }
            _ => ledger.channel(&observed.channel_id).is_some(),
        };
        if !relevant {
            return;
        }
        let account = configured.account.clone();
        let global = metrics::global().settlement();
        let our_deposit = matches!(&observed.change, ChannelChange::Deposit { participant, .. } if participant.eq_ignore_ascii_case(&account));
        match &observed.change {
            _ if our_deposit => global.channel_funded(),
            ChannelChange::Closed { .. } => global.channel_closed(),
            _ => {}
        }
        tracing::info!(
            channel = %observed.channel_id,
            change = observed.change.label(),
            block = observed.block_number,
            tx = %observed.tx_hash,
            "channel event confirmed"
        );
        let channel_id = observed.channel_id.clone();
        self.append(Event::ChannelObserved(observed));
        self.publish_channel_gauge();
        let peer = self.balances.settlement().channel(&channel_id).map(|channel| channel.peer.clone());
        if let Some(peer) = peer {
            // A settle moved the position; a deposit may make a claim due.
            self.publish_position(&peer);
            // Our deposit confirmed: what the last funding job did is in the ledger, so a new
            // one may be asked for at once if a settlement still needs more.
            if our_deposit {
                if let Some(runtime) = self.settlement.as_mut() {
                    runtime.jobs.remove(&JobKey::Fund { peer: peer.clone() });
                }
            }
            self.settle_due(&peer);
        }
    }

    /// The peer's position gauge, after settlement moved it.
    fn publish_position(&self, peer: &str) {
        if let Some(&index) = self.settlement.as_ref().and_then(|runtime| runtime.index_of.get(peer)) {
            self.update_balance_gauges(index, index);
        }
    }

    fn publish_channel_gauge(&self) {
        let active = self.balances.settlement().open_channel_count();
        metrics::global().settlement().set_channels_active(active);
    }

    fn settlement_peers(&self) -> Vec<String> {
        self.settlement
            .as_ref()
            .map(|runtime| runtime.link.configured.peers.iter().map(|terms| terms.peer.clone()).collect())
            .unwrap_or_default()
    }

    /// Timers: answers overdue, claims to (re)send, channels to fund, disputes to answer,
    /// channels to settle. At most every [`TICK_INTERVAL_MS`].
    pub(super) fn settlement_tick(&mut self) {
        let Some(runtime) = self.settlement.as_mut() else { return };
        if self.now_ms < runtime.next_tick_ms {
            return;
        }
        runtime.next_tick_ms = self.now_ms + TICK_INTERVAL_MS;
        self.expire_claims();
        self.deliver_claims();
        self.request_jobs();
    }

    fn expire_claims(&mut self) {
        let now_ms = self.now_ms;
        let Some(runtime) = self.settlement.as_mut() else { return };
        let overdue: Vec<(SessionId, u32)> =
            runtime.claims_out.iter().filter(|(_, out)| out.deadline_ms <= now_ms).map(|(key, _)| *key).collect();
        for key in overdue {
            let Some(out) = self.settlement.as_mut().and_then(|runtime| runtime.claims_out.remove(&key)) else { continue };
            let error = format!("no answer to the claim within {} ms", CLAIM_ANSWER_TIMEOUT_MS);
            self.settlement_failed(&out.peer, out.settlement_id, SettlementStage::Delivery, error);
        }
    }

    fn deliver_claims(&mut self) {
        let now_ms = self.now_ms;
        let due: Vec<(String, u64, Claim)> = {
            let Some(runtime) = self.settlement.as_ref() else { return };
            self.balances
                .settlement()
                .pending()
                .filter_map(|(peer, pending)| {
                    let claim = pending.claim.as_ref()?;
                    let next = runtime.next_send_ms.get(peer).copied().unwrap_or(pending.retry_at_ms);
                    (now_ms >= next.max(pending.retry_at_ms)).then(|| (peer.to_owned(), pending.settlement_id, claim.clone()))
                })
                .collect()
        };
        for (peer, settlement_id, claim) in due {
            self.send_claim(&peer, settlement_id, &claim);
        }
    }

    fn request_jobs(&mut self) {
        let now_ms = self.now_ms;
        let mut jobs: Vec<SettlementJob> = Vec::new();
        let ledger = self.balances.settlement();
        if ledger.contract().is_none() {
            return;
        }
        for terms in ledger.configured().map(|configured| configured.peers.as_slice()).unwrap_or_default() {
            if !terms.pays_peer {
                continue;
            }
            let pending = ledger.peer(&terms.peer).and_then(|peer| peer.pending.as_ref());
            let (settlement_id, amount) = match pending {
                Some(pending) if pending.claim.is_some() => continue,
                Some(pending) if now_ms < pending.retry_at_ms => continue,
                Some(pending) => (Some(pending.settlement_id), pending.amount),
                // The initial deposit, ahead of any debt, for the first channel only.
                None if ledger.has_had_channel(&terms.peer) && ledger.peer_channel(&terms.peer).is_none() => continue,
                None => (None, 0),
            };
            match ledger.funding(&terms.peer, amount) {
                Funding::Nothing => {}
                Funding::Refused(reason) => {
                    if let Some(settlement_id) = settlement_id {
                        jobs.push(SettlementJob::Fund { peer: terms.peer.clone(), settlement_id: Some(settlement_id), funding: Funding::Refused(reason) });
                    }
                }
                Funding::AwaitSettlement { channel_id, settle_at_s } => {
                    jobs.push(SettlementJob::Settle { peer: terms.peer.clone(), channel_id, settle_at_s });
                }
                funding => jobs.push(SettlementJob::Fund { peer: terms.peer.clone(), settlement_id, funding }),
            }
        }
        for (channel_id, channel) in ledger.disputes() {
            let claim = Claim {
                chain: channel.chain.clone(),
                contract: channel.contract.clone(),
                channel_id: channel_id.to_owned(),
                nonce: channel.theirs.nonce,
                cumulative: channel.theirs.cumulative,
                signature: channel.theirs.signature.clone(),
            };
            jobs.push(SettlementJob::UpdateProof { peer: channel.peer.clone(), channel_id: channel_id.to_owned(), claim });
        }
        for (channel_id, channel) in ledger.channels() {
            if channel.state == ChannelState::Open && channel.close_requested {
                let claim = (channel.theirs.nonce > 0).then(|| Claim {
                    chain: channel.chain.clone(),
                    contract: channel.contract.clone(),
                    channel_id: channel_id.to_owned(),
                    nonce: channel.theirs.nonce,
                    cumulative: channel.theirs.cumulative,
                    signature: channel.theirs.signature.clone(),
                });
                jobs.push(SettlementJob::Close { peer: channel.peer.clone(), channel_id: channel_id.to_owned(), claim });
            }
            let settle_job_wanted = channel.state == ChannelState::Closed;
            if settle_job_wanted && !jobs.iter().any(|job| job.key() == (JobKey::Settle { channel_id: channel_id.to_owned() })) {
                jobs.push(SettlementJob::Settle { peer: channel.peer.clone(), channel_id: channel_id.to_owned(), settle_at_s: channel.settle_at_s });
            }
        }
        for job in jobs {
            self.request_job(job);
        }
    }

    fn request_job(&mut self, job: SettlementJob) {
        let now_ms = self.now_ms;
        if let SettlementJob::Fund { peer, settlement_id: Some(settlement_id), funding: Funding::Refused(reason) } = &job {
            let (peer, settlement_id, reason) = (peer.clone(), *settlement_id, reason.clone());
            self.settlement_failed(&peer, settlement_id, SettlementStage::Funding, reason);
            return;
        }
        let key = job.key();
        let Some(runtime) = self.settlement.as_mut() else { return };
        let state = runtime.jobs.entry(key.clone()).or_default();
        if now_ms < state.not_before_ms {
            return;
        }
        if let SettlementJob::UpdateProof { channel_id, .. } = &job {
            if runtime.disputes_counted.insert(channel_id.clone()) {
                metrics::global().settlement().dispute();
                tracing::warn!(channel = %channel_id, "the peer closed the channel with an older proof of its payments than ours: submitting ours");
            }
        }
        // Full: the executor is busy; the next tick asks again. Closed: the executor stopped
        // (node stopping).
        if runtime.link.jobs.try_send(job).is_ok() {
            state.not_before_ms = now_ms + JOB_TIMEOUT_MS;
        }
    }
}

/// A BTP Response with no protocol data: the claim is accepted (or was already).
fn ack_frame(request_id: u32) -> Bytes {
    BtpPacket::Response { request_id, protocol_data: Vec::new() }.encode()
}

// ---------------------------------------------------------------------------------------------
// Closing on request, and cooperative settles

/// A cooperative settle we proposed, waiting for the peer's signature.
pub(super) struct ProposalOut {
    peer: String,
    channel_id: String,
    balance1: u128,
    balance2: u128,
    signature: Vec<u8>,
}

impl Forwarder {
    pub(super) fn handle_admin(&mut self, request: AdminRequest) {
        match request {
            AdminRequest::CloseChannel { peer, cooperative, reply } => {
                let result = self.close_channel(&peer, cooperative);
                let _ = reply.send(result);
            }
        }
    }

    /// An operator asked to close the peer's channel. Journals the request (no claim moves on
    /// the channel from here on), then closes on chain at once with the peer's newest proof, or
    /// proposes the split our journal gives to the peer and settles with both signatures.
    fn close_channel(&mut self, peer: &str, cooperative: bool) -> Result<String, AdminError> {
        if self.settlement.is_none() {
            return Err(AdminError::Unavailable("settlement is not enabled on this node (SETTLEMENT_ENABLED)".into()));
        }
        let ledger = self.balances.settlement();
        if ledger.terms(peer).is_none() {
            return Err(AdminError::NotFound(format!("no settlement terms for peer `{peer}`")));
        }
        let Some(contract) = ledger.contract().map(str::to_owned) else {
            return Err(AdminError::Unavailable("the chain has not been reached since start; retry later".into()));
        };
        let Some((channel_id, channel)) = ledger.peer_channel(peer) else {
            return Err(AdminError::Conflict(format!("peer `{peer}` has no channel that is not settled")));
        };
        if channel.state != ChannelState::Open {
            return Err(AdminError::Conflict(format!("channel {channel_id} is already {}", channel.state.label())));
        }
        if channel.close_requested {
            return Err(AdminError::Conflict(format!("a close of channel {channel_id} on chain was already requested")));
        }
        let channel_id = channel_id.to_owned();
        let channel = channel.clone();
        let account = ledger.configured().map(|configured| configured.account.clone()).unwrap_or_default();
        self.append(Event::ChannelCloseRequested(crate::journal::ChannelCloseRequested {
            peer: peer.to_owned(),
            channel_id: channel_id.clone(),
            cooperative,
        }));
        if !cooperative {
            let claim = (channel.theirs.nonce > 0).then(|| Claim {
                chain: channel.chain.clone(),
                contract: channel.contract.clone(),
                channel_id: channel_id.clone(),
                nonce: channel.theirs.nonce,
                cumulative: channel.theirs.cumulative,
                signature: channel.theirs.signature.clone(),
            });
            let nonce = channel.theirs.nonce;
            self.request_job(SettlementJob::Close { peer: peer.to_owned(), channel_id: channel_id.clone(), claim });
            tracing::info!(peer, channel = %channel_id, nonce, "close requested: closing on chain with the peer's newest proof");
            return Ok(format!(
                "closing channel {channel_id} on chain with the peer's newest proof (nonce {nonce}); it settles after its \
                 challenge period ({} s)",
                channel.settle_timeout_s
            ));
        }
        let (ours, theirs) = channel.split();
        let (balance1, balance2) = channel.ordered(&account, ours, theirs);
        let proposal = self.sign_proposal(&channel, &channel_id, &contract, balance1, balance2)?;
        let Some(&index) = self.settlement.as_ref().and_then(|runtime| runtime.index_of.get(peer)) else {
            return Err(AdminError::NotFound(format!("peer `{peer}` is not configured")));
        };
        let Some(session) = self.pick_session(index) else {
            return Err(AdminError::Unavailable(format!(
                "peer `{peer}` is not connected, so it cannot sign a cooperative settle; close without --cooperative instead"
            )));
        };
        let request_id = self.next_request_id(session);
        let frame = BtpPacket::Message {
            request_id,
            protocol_data: vec![ProtocolData::new(cooperative::PROTOCOL_NAME, btp::CONTENT_OCTET_STREAM, Bytes::from(proposal.encode()))],
        }
        .encode();
        let Some(state) = self.sessions.get(&session) else { return Err(AdminError::Unavailable("session gone".into())) };
        self.held.push(Held::Request { sender: state.link.requests.clone(), frame });
        let out = ProposalOut { peer: peer.to_owned(), channel_id: channel_id.clone(), balance1, balance2, signature: proposal.signature.to_vec() };
        if let Some(runtime) = self.settlement.as_mut() {
            runtime.proposals_out.insert((session, request_id), out);
        }
        tracing::info!(peer, channel = %channel_id, ours = %ours, theirs = %theirs, "cooperative settle proposed to the peer");
        Ok(format!("proposed to settle channel {channel_id} cooperatively: {ours} to us, {theirs} to the peer; it is submitted once the peer signs"))
    }

    fn sign_proposal(
        &self,
        channel: &crate::settlement::ledger::ChannelLedger,
        channel_id: &str,
        contract: &str,
        balance1: u128,
        balance2: u128,
    ) -> Result<cooperative::Proposal, AdminError> {
        let invalid = |what: &str| AdminError::Conflict(format!("the channel's {what} is not an EVM value"));
        let chain_id = crate::settlement::evm::chain_id_of(&channel.chain).ok_or_else(|| invalid("chain"))?;
        let token_network: alloy::primitives::Address = contract.parse().map_err(|_| invalid("contract"))?;
        let channel_b256: alloy::primitives::B256 = channel_id.parse().map_err(|_| invalid("id"))?;
        let digest = cooperative::digest(chain_id, token_network, channel_b256, balance1, balance2);
        let runtime = self.settlement.as_ref().expect("checked by the caller");
        let signature = runtime.link.signer.sign_digest(&digest.0).map_err(AdminError::Unavailable)?;
        let signature: [u8; 65] = signature.try_into().map_err(|_| AdminError::Unavailable("a signature is 65 bytes".into()))?;
        Ok(cooperative::Proposal { chain_id, token_network, channel_id: channel_b256, balance1, balance2, signature })
    }

    /// Whether a claim or channel message of ours awaits an answer on `(session, request_id)`.
    pub(super) fn settlement_request_pending(&self, session: SessionId, request_id: u32) -> bool {
        self.settlement.as_ref().is_some_and(|runtime| {
            runtime.claims_out.contains_key(&(session, request_id)) || runtime.proposals_out.contains_key(&(session, request_id))
        })
    }

    /// The peer's answer to a cooperative settle we proposed: with its signature, the executor
    /// submits the settle; a refusal is logged (the operator may close without the peer).
    pub(super) fn channel_message_answered(&mut self, session: SessionId, request_id: u32, answer: Result<Bytes, String>) -> bool {
        let Some(out) = self.settlement.as_mut().and_then(|runtime| runtime.proposals_out.remove(&(session, request_id))) else {
            return false;
        };
        let signature = answer.and_then(|data| cooperative::decode_signature(&data));
        let their_signature = match signature {
            Ok(signature) => signature.to_vec(),
            Err(error) => {
                let text = format!("the peer did not sign the cooperative settle: {error}");
                let attempts = 1;
                self.channel_action_failed(&out.peer, &out.channel_id, "cooperative_settle", text, attempts);
                return true;
            }
        };
        let account = self.balances.settlement().configured().map(|configured| configured.account.clone()).unwrap_or_default();
        let we_are_first = self
            .balances
            .settlement()
            .channel(&out.channel_id)
            .is_some_and(|channel| channel.participant1.eq_ignore_ascii_case(&account));
        let (signature1, signature2) =
            if we_are_first { (out.signature.clone(), their_signature) } else { (their_signature, out.signature.clone()) };
        tracing::info!(peer = %out.peer, channel = %out.channel_id, "the peer signed the cooperative settle; submitting it");
        self.request_job(SettlementJob::CooperativeSettle {
            peer: out.peer,
            channel_id: out.channel_id,
            balance1: out.balance1,
            balance2: out.balance2,
            signature1,
            signature2,
        });
        true
    }

    /// A cooperative settle a peer proposes: signed if the split is the one our journal gives
    /// and the proposal is signed by the peer's account; journaled before the answer leaves.
    pub(super) fn handle_channel_message(&mut self, message: IncomingChannelMessage) {
        let IncomingChannelMessage { session, peer, request_id, data, reply } = message;
        if !self.sessions.contains_key(&session) {
            return;
        }
        let peer_id = self.peers[peer].id.clone();
        let answer = self.judge_proposal(&peer_id, &data);
        let frame = match answer {
            Ok((agreed, signature)) => {
                tracing::info!(peer = %peer_id, channel = %agreed.channel_id, ours = %agreed.our_balance, theirs = %agreed.their_balance, "cooperative settle signed");
                self.append(Event::CooperativeSettleAgreed(agreed));
                BtpPacket::Response {
                    request_id,
                    protocol_data: vec![ProtocolData::new(
                        cooperative::PROTOCOL_NAME,
                        btp::CONTENT_OCTET_STREAM,
                        Bytes::from(cooperative::encode_signature(&signature)),
                    )],
                }
                .encode()
            }
            Err(reason) => {
                tracing::warn!(peer = %peer_id, %reason, "cooperative settle proposal refused");
                btp::BtpErrorCode::F00_NOT_ACCEPTED.packet(request_id, reason.as_bytes()).encode()
            }
        };
        self.held.push(Held::Reply { slot: reply, frame });
    }

    fn judge_proposal(&self, peer: &str, data: &[u8]) -> Result<(crate::journal::CooperativeSettleAgreed, [u8; 65]), String> {
        let runtime = self.settlement.as_ref().ok_or("settlement is not enabled on this node")?;
        let ledger = self.balances.settlement();
        let proposal = cooperative::Proposal::decode(data)?;
        let terms = ledger.terms(peer).ok_or_else(|| format!("no settlement terms for peer {peer}"))?;
        let contract = ledger.contract().ok_or("the token network is not known yet")?;
        let channel_id = crate::settlement::evm::hex_b256(proposal.channel_id);
        let channel = ledger.channel(&channel_id).filter(|channel| channel.peer == peer).ok_or("no such channel with you")?;
        if crate::settlement::evm::caip2(proposal.chain_id) != channel.chain
            || !crate::settlement::evm::hex_address(proposal.token_network).eq_ignore_ascii_case(contract)
        {
            return Err("another chain or contract than ours".into());
        }
        if !channel.usable() {
            return Err(format!("channel {channel_id} is {}", if channel.closing { "being closed" } else { channel.state.label() }));
        }
        let signer = crate::settlement::evm::claim::recover(&proposal.digest(), &proposal.signature)?;
        if !crate::settlement::evm::hex_address(signer).eq_ignore_ascii_case(&terms.address) {
            return Err("the proposal is not signed by your account".into());
        }
        let account = ledger.configured().map(|configured| configured.account.clone()).unwrap_or_default();
        let (ours, theirs) = channel.split();
        let expected = channel.ordered(&account, ours, theirs);
        if (proposal.balance1, proposal.balance2) != expected {
            return Err(format!(
                "the split does not match our journal: we have {} for participant1 and {} for participant2 (a claim may be \
                 in flight; retry once it is acknowledged)",
                expected.0, expected.1
            ));
        }
        let signature = runtime.link.signer.sign_digest(&proposal.digest().0)?;
        let signature: [u8; 65] = signature.try_into().map_err(|_| "a signature is 65 bytes".to_string())?;
        let agreed = crate::journal::CooperativeSettleAgreed { peer: peer.to_owned(), channel_id, our_balance: ours, their_balance: theirs };
        Ok((agreed, signature))
    }
}
