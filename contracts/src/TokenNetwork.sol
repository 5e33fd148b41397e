// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {IERC20} from "./IERC20.sol";
import {SignatureChecker} from "./SignatureChecker.sol";

/// @notice What a TokenNetwork asks of the registry that created it.
interface IRegistryPause {
    function paused() external view returns (bool);
}

/// @title TokenNetwork
/// @notice Two-party payment channels over one ERC-20 token, in the lineage of Raiden's
/// TokenNetwork: participants deposit on chain, pay each other off chain with signed balance
/// proofs (EIP-712, cumulative amounts and increasing nonces), and settle on chain either
/// cooperatively (both sign the final split) or by closing with the counterparty's newest proof,
/// letting the other side answer with the closer's newest proof during a challenge period, and
/// settling after it.
/// @dev Invariant: the tokens this contract holds equal the sum over its channels of deposits
/// minus withdrawals (`totalHeld`): a deposit is refused unless its tokens arrived in full. Every state change emits an event. Every external function that
/// moves tokens is guarded against re-entry and makes its transfer last.
contract TokenNetwork {
    using SignatureChecker for bytes32;

    /// @notice The off-chain part of a balance proof (the channel id is the function's argument).
    /// @dev Locks are part of the signed type for compatibility with Raiden-style tooling; this
    /// network has no on-chain lock unlocking, so proofs submitted on chain must carry none.
    struct BalanceProofData {
        uint256 nonce;
        uint256 transferredAmount;
        uint256 lockedAmount;
        bytes32 locksRoot;
    }

    enum ChannelState {
        NonExistent,
        Opened,
        Closed,
        Settled
    }

    struct Channel {
        ChannelState state;
        uint64 settleTimeout;
        uint64 settleAt;
        address participant1;
        address participant2;
        address closer;
    }

    struct Participant {
        uint256 deposit;
        uint256 withdrawn;
        uint256 transferredAmount;
        uint256 nonce;
    }

    error RegistryPaused();
    error Reentrancy();
    error ZeroAddress();
    error InvalidPartner();
    error SettleTimeoutOutOfRange(uint64 settleTimeout);
    error ChannelExists(bytes32 channelId);
    error ChannelNotOpen(bytes32 channelId);
    error ChannelNotClosed(bytes32 channelId);
    error NotParticipant(address account);
    error NotNonClosingParticipant(address account);
    error DepositNotIncreasing(uint256 current, uint256 requested);
    error DepositLimitExceeded(uint256 limit, uint256 requested);
    error NetworkDepositLimitExceeded(uint256 limit, uint256 requested);
    error DepositNotReceived(uint256 booked, uint256 held);
    error WithdrawNotIncreasing(uint256 current, uint256 requested);
    error WithdrawExceedsChannel(uint256 available, uint256 requested);
    error WithdrawExpired(uint256 expiry);
    error WrongSigner(address expected, address actual);
    error StaleNonce(uint256 current, uint256 submitted);
    error LocksNotSupported();
    error ChallengePeriodOver(uint64 settleAt);
    error ChallengePeriodNotOver(uint64 settleAt);
    error BalancesDoNotAddUp(uint256 channelTotal, uint256 proposed);
    error TokenTransferFailed();

    event ChannelOpened(
        bytes32 indexed channelId, address indexed participant1, address indexed participant2, uint64 settleTimeout
    );
    event ChannelNewDeposit(bytes32 indexed channelId, address indexed participant, uint256 totalDeposit);
    event ChannelWithdraw(bytes32 indexed channelId, address indexed participant, uint256 totalWithdraw);
    event ChannelClosed(
        bytes32 indexed channelId,
        address indexed closingParticipant,
        uint256 nonce,
        uint256 transferredAmount,
        uint64 settleAt
    );
    event NonClosingBalanceProofUpdated(
        bytes32 indexed channelId, address indexed closingParticipant, uint256 nonce, uint256 transferredAmount
    );
    event ChannelSettled(
        bytes32 indexed channelId, uint256 participant1Amount, uint256 participant2Amount, bool cooperative
    );

    bytes32 public constant BALANCE_PROOF_TYPEHASH = keccak256(
        "BalanceProof(bytes32 channelId,uint256 nonce,uint256 transferredAmount,uint256 lockedAmount,bytes32 locksRoot)"
    );
    bytes32 public constant WITHDRAW_TYPEHASH =
        keccak256("Withdraw(bytes32 channelId,address participant,uint256 totalWithdraw,uint256 expiry)");
    bytes32 public constant COOPERATIVE_SETTLE_TYPEHASH =
        keccak256("CooperativeSettle(bytes32 channelId,uint256 participant1Balance,uint256 participant2Balance)");
    bytes32 private constant DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    bytes32 private constant NAME_HASH = keccak256("TokenNetwork");
    bytes32 private constant VERSION_HASH = keccak256("1");

    /// @notice The ERC-20 every channel of this network holds.
    IERC20 public immutable token;
    /// @notice The registry that created this network (its pause stops opens and deposits).
    address public immutable registry;
    uint64 public immutable settleTimeoutMin;
    uint64 public immutable settleTimeoutMax;
    /// @notice Most one participant may have deposited in one channel.
    uint256 public immutable participantDepositLimit;
    /// @notice Most the whole network may hold.
    uint256 public immutable networkDepositLimit;

    uint256 private immutable cachedChainId;
    bytes32 private immutable cachedDomainSeparator;

    /// @notice Tokens held for all channels: deposits minus withdrawals minus payouts.
    uint256 public totalHeld;

    mapping(bytes32 channelId => Channel) private channels;
    mapping(bytes32 channelId => mapping(address participant => Participant)) private participants;
    /// @dev Channels ever opened per pair: part of the channel id, so ids never repeat.
    mapping(bytes32 pairKey => uint256) public pairChannelCount;
    /// @dev The pair's channel that is not settled yet (zero if none): one at a time per pair.
    mapping(bytes32 pairKey => bytes32) private pairChannel;

    uint256 private entered = 1;

    modifier nonReentrant() {
        if (entered != 1) revert Reentrancy();
        entered = 2;
        _;
        entered = 1;
    }

    modifier whenNotPaused() {
        if (IRegistryPause(registry).paused()) revert RegistryPaused();
        _;
    }

    /// @param token_ The ERC-20. @param registry_ The creating registry.
    /// @param settleTimeoutMin_ Shortest challenge period (s). @param settleTimeoutMax_ Longest (s).
    /// @param participantDepositLimit_ Per participant and channel. @param networkDepositLimit_ In all.
    constructor(
        address token_,
        address registry_,
        uint64 settleTimeoutMin_,
        uint64 settleTimeoutMax_,
        uint256 participantDepositLimit_,
        uint256 networkDepositLimit_
    ) {
        if (token_ == address(0) || registry_ == address(0)) revert ZeroAddress();
        token = IERC20(token_);
        registry = registry_;
        settleTimeoutMin = settleTimeoutMin_;
        settleTimeoutMax = settleTimeoutMax_;
        participantDepositLimit = participantDepositLimit_;
        networkDepositLimit = networkDepositLimit_;
        cachedChainId = block.chainid;
        cachedDomainSeparator = _buildDomainSeparator();
    }

    // --- Opening and funding ------------------------------------------------------------------

    /// @notice Opens a channel between the caller and `partner`. A pair has at most one channel
    /// that is not settled.
    /// @param partner The other participant.
    /// @param settleTimeout The challenge period after a close, in seconds.
    /// @return channelId The new channel's id: unique across pairs, re-opens, networks and chains.
    function openChannel(address partner, uint64 settleTimeout)
        external
        nonReentrant
        whenNotPaused
        returns (bytes32 channelId)
    {
        if (partner == address(0)) revert ZeroAddress();
        if (partner == msg.sender) revert InvalidPartner();
        if (settleTimeout < settleTimeoutMin || settleTimeout > settleTimeoutMax) {
            revert SettleTimeoutOutOfRange(settleTimeout);
        }
        (address participant1, address participant2) = _sorted(msg.sender, partner);
        bytes32 pairKey = keccak256(abi.encode(participant1, participant2));
        bytes32 existing = pairChannel[pairKey];
        if (existing != bytes32(0)) revert ChannelExists(existing);
        uint256 count = pairChannelCount[pairKey] + 1;
        pairChannelCount[pairKey] = count;
        channelId = keccak256(abi.encode(participant1, participant2, count, address(this), block.chainid));
        pairChannel[pairKey] = channelId;
        channels[channelId] = Channel({
            state: ChannelState.Opened,
            settleTimeout: settleTimeout,
            settleAt: 0,
            participant1: participant1,
            participant2: participant2,
            closer: address(0)
        });
        emit ChannelOpened(channelId, participant1, participant2, settleTimeout);
    }

    /// @notice Raises the caller's deposit in `channelId` to `totalDeposit`, pulling the
    /// difference (approve it first). Giving the total rather than an increment makes a repeated
    /// call harmless: it reverts instead of depositing twice.
    /// @dev The deposit is booked first, then the tokens are pulled and their arrival checked: a
    /// token that delivers less than asked (a fee on transfer) makes the deposit revert.
    function setTotalDeposit(bytes32 channelId, uint256 totalDeposit) external nonReentrant whenNotPaused {
        Channel storage channel = channels[channelId];
        if (channel.state != ChannelState.Opened) revert ChannelNotOpen(channelId);
        _requireParticipant(channel, msg.sender);
        Participant storage participant = participants[channelId][msg.sender];
        uint256 current = participant.deposit;
        if (totalDeposit <= current) revert DepositNotIncreasing(current, totalDeposit);
        if (totalDeposit > participantDepositLimit) revert DepositLimitExceeded(participantDepositLimit, totalDeposit);
        uint256 added = totalDeposit - current;
        if (totalHeld + added > networkDepositLimit) {
            revert NetworkDepositLimitExceeded(networkDepositLimit, totalHeld + added);
        }
        participant.deposit = totalDeposit;
        totalHeld += added;
        emit ChannelNewDeposit(channelId, msg.sender, totalDeposit);
        _pull(msg.sender, added);
    }

    /// @notice Withdraws from an open channel up to a total the partner signed off on.
    /// @param totalWithdraw The caller's withdrawals in this channel after this one.
    /// @param expiry Last timestamp the partner's consent is valid.
    /// @param partnerSignature The partner's EIP-712 signature of
    /// `Withdraw(channelId, caller, totalWithdraw, expiry)`.
    function withdraw(bytes32 channelId, uint256 totalWithdraw, uint256 expiry, bytes calldata partnerSignature)
        external
        nonReentrant
    {
        Channel storage channel = channels[channelId];
        if (channel.state != ChannelState.Opened) revert ChannelNotOpen(channelId);
        address partner = _partnerOf(channel, msg.sender);
        if (block.timestamp > expiry) revert WithdrawExpired(expiry);
        Participant storage participant = participants[channelId][msg.sender];
        uint256 current = participant.withdrawn;
        if (totalWithdraw <= current) revert WithdrawNotIncreasing(current, totalWithdraw);
        uint256 amount = totalWithdraw - current;
        uint256 available = _channelTotal(channelId, channel);
        if (amount > available) revert WithdrawExceedsChannel(available, amount);
        bytes32 digest =
            _hashTypedData(keccak256(abi.encode(WITHDRAW_TYPEHASH, channelId, msg.sender, totalWithdraw, expiry)));
        address signer = digest.recover(partnerSignature);
        if (signer != partner) revert WrongSigner(partner, signer);
        participant.withdrawn = totalWithdraw;
        totalHeld -= amount;
        emit ChannelWithdraw(channelId, msg.sender, totalWithdraw);
        _push(msg.sender, amount);
    }

    // --- Closing ----------------------------------------------------------------------------

    /// @notice Closes an open channel with the partner's newest balance proof (what the partner
    /// has transferred to the caller). A proof with nonce 0 means the partner transferred
    /// nothing. The challenge period starts now.
    /// @param proof The partner's balance proof. @param signature The partner's EIP-712 signature.
    function closeChannel(bytes32 channelId, BalanceProofData calldata proof, bytes calldata signature)
        external
        nonReentrant
    {
        Channel storage channel = channels[channelId];
        if (channel.state != ChannelState.Opened) revert ChannelNotOpen(channelId);
        address partner = _partnerOf(channel, msg.sender);
        if (proof.nonce > 0) {
            _checkProof(channelId, proof, signature, partner);
            Participant storage partnerState = participants[channelId][partner];
            partnerState.nonce = proof.nonce;
            partnerState.transferredAmount = proof.transferredAmount;
        }
        uint64 settleAt = uint64(block.timestamp) + channel.settleTimeout;
        channel.state = ChannelState.Closed;
        channel.closer = msg.sender;
        channel.settleAt = settleAt;
        emit ChannelClosed(channelId, msg.sender, proof.nonce, proof.transferredAmount, settleAt);
    }

    /// @notice During the challenge period, the non-closing participant submits the closer's
    /// newest balance proof (what the closer transferred to it), replacing any older one.
    /// @param proof The closer's balance proof. @param signature The closer's EIP-712 signature.
    function updateNonClosingBalanceProof(bytes32 channelId, BalanceProofData calldata proof, bytes calldata signature)
        external
        nonReentrant
    {
        Channel storage channel = channels[channelId];
        if (channel.state != ChannelState.Closed) revert ChannelNotClosed(channelId);
        address closer = channel.closer;
        if (msg.sender == closer) revert NotNonClosingParticipant(msg.sender);
        _requireParticipant(channel, msg.sender);
        if (block.timestamp > channel.settleAt) revert ChallengePeriodOver(channel.settleAt);
        Participant storage closerState = participants[channelId][closer];
        if (proof.nonce <= closerState.nonce) revert StaleNonce(closerState.nonce, proof.nonce);
        _checkProof(channelId, proof, signature, closer);
        closerState.nonce = proof.nonce;
        closerState.transferredAmount = proof.transferredAmount;
        emit NonClosingBalanceProofUpdated(channelId, closer, proof.nonce, proof.transferredAmount);
    }

    /// @notice After the challenge period, pays each participant its deposit minus its
    /// withdrawals, minus what it transferred, plus what it received, within what the channel
    /// holds. Anyone may call it; the tokens go to the participants.
    function settleChannel(bytes32 channelId) external nonReentrant {
        Channel storage channel = channels[channelId];
        if (channel.state != ChannelState.Closed) revert ChannelNotClosed(channelId);
        if (block.timestamp <= channel.settleAt) revert ChallengePeriodNotOver(channel.settleAt);
        (uint256 amount1, uint256 amount2) = _payouts(channelId, channel);
        _finish(channelId, channel, amount1, amount2, false);
    }

    /// @notice Settles an open (or closed, not yet settled) channel at once with a split both
    /// participants signed.
    /// @param participant1Balance What participant1 receives. @param participant2Balance Likewise.
    /// @param signature1 participant1's EIP-712 signature of `CooperativeSettle`.
    /// @param signature2 participant2's.
    function cooperativeSettle(
        bytes32 channelId,
        uint256 participant1Balance,
        uint256 participant2Balance,
        bytes calldata signature1,
        bytes calldata signature2
    ) external nonReentrant {
        Channel storage channel = channels[channelId];
        if (channel.state != ChannelState.Opened && channel.state != ChannelState.Closed) {
            revert ChannelNotOpen(channelId);
        }
        uint256 total = _channelTotal(channelId, channel);
        uint256 proposed = participant1Balance + participant2Balance;
        if (proposed != total) revert BalancesDoNotAddUp(total, proposed);
        bytes32 digest = _hashTypedData(
            keccak256(abi.encode(COOPERATIVE_SETTLE_TYPEHASH, channelId, participant1Balance, participant2Balance))
        );
        address signer1 = digest.recover(signature1);
        if (signer1 != channel.participant1) revert WrongSigner(channel.participant1, signer1);
        address signer2 = digest.recover(signature2);
        if (signer2 != channel.participant2) revert WrongSigner(channel.participant2, signer2);
        _finish(channelId, channel, participant1Balance, participant2Balance, true);
    }

    // --- Views ------------------------------------------------------------------------------

    /// @notice A channel's state, participants (sorted), challenge period, settle time and closer.
    function getChannel(bytes32 channelId)
        external
        view
        returns (
            ChannelState state,
            address participant1,
            address participant2,
            uint64 settleTimeout,
            uint64 settleAt,
            address closer
        )
    {
        Channel storage channel = channels[channelId];
        return (
            channel.state,
            channel.participant1,
            channel.participant2,
            channel.settleTimeout,
            channel.settleAt,
            channel.closer
        );
    }

    /// @notice One participant's deposit, withdrawals and the balance proof on record for it.
    function getParticipant(bytes32 channelId, address participant)
        external
        view
        returns (uint256 deposit, uint256 withdrawn, uint256 transferredAmount, uint256 nonce)
    {
        Participant storage state = participants[channelId][participant];
        return (state.deposit, state.withdrawn, state.transferredAmount, state.nonce);
    }

    /// @notice The pair's channel that is not settled yet, or zero.
    function channelOf(address a, address b) external view returns (bytes32) {
        (address participant1, address participant2) = _sorted(a, b);
        return pairChannel[keccak256(abi.encode(participant1, participant2))];
    }

    /// @notice The EIP-712 domain separator on the current chain.
    function domainSeparator() external view returns (bytes32) {
        return _domainSeparator();
    }

    /// @notice The digest a participant signs for a balance proof (for off-chain cross-checks).
    function balanceProofDigest(bytes32 channelId, BalanceProofData calldata proof) external view returns (bytes32) {
        return _balanceProofDigest(channelId, proof);
    }

    // --- Internals --------------------------------------------------------------------------

    function _checkProof(
        bytes32 channelId,
        BalanceProofData calldata proof,
        bytes calldata signature,
        address expectedSigner
    ) private view {
        if (proof.lockedAmount != 0 || proof.locksRoot != bytes32(0)) revert LocksNotSupported();
        address signer = _balanceProofDigest(channelId, proof).recover(signature);
        if (signer != expectedSigner) revert WrongSigner(expectedSigner, signer);
    }

    function _balanceProofDigest(bytes32 channelId, BalanceProofData calldata proof) private view returns (bytes32) {
        return _hashTypedData(
            keccak256(
                abi.encode(
                    BALANCE_PROOF_TYPEHASH,
                    channelId,
                    proof.nonce,
                    proof.transferredAmount,
                    proof.lockedAmount,
                    proof.locksRoot
                )
            )
        );
    }

    /// @dev Marks the channel settled, frees the pair for a new channel, then pays out.
    function _finish(bytes32 channelId, Channel storage channel, uint256 amount1, uint256 amount2, bool cooperative)
        private
    {
        address participant1 = channel.participant1;
        address participant2 = channel.participant2;
        channel.state = ChannelState.Settled;
        delete pairChannel[keccak256(abi.encode(participant1, participant2))];
        delete participants[channelId][participant1];
        delete participants[channelId][participant2];
        totalHeld -= amount1 + amount2;
        emit ChannelSettled(channelId, amount1, amount2, cooperative);
        if (amount1 > 0) _push(participant1, amount1);
        if (amount2 > 0) _push(participant2, amount2);
    }

    /// @dev Deposits minus withdrawals of both participants: what the channel holds.
    function _channelTotal(bytes32 channelId, Channel storage channel) private view returns (uint256) {
        Participant storage one = participants[channelId][channel.participant1];
        Participant storage two = participants[channelId][channel.participant2];
        return one.deposit + two.deposit - one.withdrawn - two.withdrawn;
    }

    /// @dev participant1 gets deposit1 − withdrawn1 − transferred1 + transferred2, clamped to
    /// [0, total]; participant2 the rest. Transferred amounts are signed data of any size, so the
    /// sums saturate instead of reverting: a settle can never be made impossible.
    function _payouts(bytes32 channelId, Channel storage channel)
        private
        view
        returns (uint256 amount1, uint256 amount2)
    {
        Participant storage one = participants[channelId][channel.participant1];
        Participant storage two = participants[channelId][channel.participant2];
        uint256 total = one.deposit + two.deposit - one.withdrawn - two.withdrawn;
        uint256 credit = _saturatingAdd(one.deposit, two.transferredAmount);
        uint256 debit = _saturatingAdd(one.withdrawn, one.transferredAmount);
        amount1 = credit > debit ? credit - debit : 0;
        if (amount1 > total) amount1 = total;
        amount2 = total - amount1;
    }

    function _saturatingAdd(uint256 a, uint256 b) private pure returns (uint256) {
        unchecked {
            uint256 sum = a + b;
            return sum < a ? type(uint256).max : sum;
        }
    }

    function _requireParticipant(Channel storage channel, address account) private view {
        if (account != channel.participant1 && account != channel.participant2) revert NotParticipant(account);
    }

    function _partnerOf(Channel storage channel, address account) private view returns (address) {
        if (account == channel.participant1) return channel.participant2;
        if (account == channel.participant2) return channel.participant1;
        revert NotParticipant(account);
    }

    function _sorted(address a, address b) private pure returns (address, address) {
        return a < b ? (a, b) : (b, a);
    }

    function _domainSeparator() private view returns (bytes32) {
        return block.chainid == cachedChainId ? cachedDomainSeparator : _buildDomainSeparator();
    }

    function _buildDomainSeparator() private view returns (bytes32) {
        return keccak256(abi.encode(DOMAIN_TYPEHASH, NAME_HASH, VERSION_HASH, block.chainid, address(this)));
    }

    function _hashTypedData(bytes32 structHash) private view returns (bytes32) {
        return keccak256(abi.encodePacked("\x19\x01", _domainSeparator(), structHash));
    }

    /// @dev Pulls `amount` from `from`, after the deposit is booked (checks-effects-interactions),
    /// then checks the tokens arrived: the network must hold at least everything it has booked.
    /// A token that delivers less than asked (a fee on transfer) fails the deposit, so the books
    /// never count a token that is not there.
    function _pull(address from, uint256 amount) private {
        _call(abi.encodeCall(IERC20.transferFrom, (from, address(this), amount)));
        uint256 held = token.balanceOf(address(this));
        if (held < totalHeld) revert DepositNotReceived(totalHeld, held);
    }

    function _push(address to, uint256 amount) private {
        _call(abi.encodeCall(IERC20.transfer, (to, amount)));
    }

    /// @dev Calls the token, accepting tokens that return nothing as well as those returning true.
    function _call(bytes memory data) private {
        (bool success, bytes memory returned) = address(token).call(data);
        if (!success || (returned.length != 0 && !abi.decode(returned, (bool)))) revert TokenTransferFailed();
        if (returned.length == 0 && address(token).code.length == 0) revert TokenTransferFailed();
    }
}
