// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {Fixture} from "./Fixture.sol";
import {FuzzSelector, Test} from "./Test.sol";
import {M2MToken} from "../src/M2MToken.sol";
import {TokenNetwork} from "../src/TokenNetwork.sol";

/// Drives a network through random opens, deposits, withdrawals, closes, updates and settles
/// between three participants, keeping its own tally of what went in and out.
contract Handler is Test {
    TokenNetwork public network;
    M2MToken public token;
    uint256[3] private keys = [uint256(0xA11CE), 0xB0B, 0xCAFE];
    address[3] private actors;
    bytes32[] public channels;
    uint256 public deposited;
    uint256 public withdrawn;
    uint256 public paidOut;
    /// @dev Per channel and signer: the highest nonce signed so far (proofs only ever grow).
    mapping(bytes32 => mapping(address => uint256)) private nonces;
    mapping(bytes32 => mapping(address => uint256)) private transferred;

    constructor(TokenNetwork network_, M2MToken token_) {
        network = network_;
        token = token_;
        for (uint256 i = 0; i < 3; i++) {
            actors[i] = vm.addr(keys[i]);
        }
    }

    function actor(uint256 seed) private pure returns (uint256) {
        return seed % 3;
    }

    function openChannel(uint256 a, uint256 b) external {
        (uint256 i, uint256 j) = (actor(a), actor(b));
        if (i == j) return;
        if (network.channelOf(actors[i], actors[j]) != bytes32(0)) return;
        vm.prank(actors[i]);
        channels.push(network.openChannel(actors[j], 600));
    }

    function deposit(uint256 c, uint256 who, uint256 amount) external {
        if (channels.length == 0) return;
        bytes32 channelId = channels[c % channels.length];
        (TokenNetwork.ChannelState state, address p1, address p2,,,) = network.getChannel(channelId);
        if (state != TokenNetwork.ChannelState.Opened) return;
        address participant = who % 2 == 0 ? p1 : p2;
        (uint256 current,,,) = network.getParticipant(channelId, participant);
        amount = bound(amount, 1, 1_000e6);
        vm.prank(participant);
        network.setTotalDeposit(channelId, current + amount);
        deposited += amount;
    }

    function pay(uint256 c, uint256 who, uint256 amount) external {
        if (channels.length == 0) return;
        bytes32 channelId = channels[c % channels.length];
        (TokenNetwork.ChannelState state, address p1, address p2,,,) = network.getChannel(channelId);
        if (state != TokenNetwork.ChannelState.Opened) return;
        address payer = who % 2 == 0 ? p1 : p2;
        nonces[channelId][payer] += 1;
        transferred[channelId][payer] += bound(amount, 0, 500e6);
    }

    function withdraw(uint256 c, uint256 who, uint256 amount) external {
        if (channels.length == 0) return;
        bytes32 channelId = channels[c % channels.length];
        (TokenNetwork.ChannelState state, address p1, address p2,,,) = network.getChannel(channelId);
        if (state != TokenNetwork.ChannelState.Opened) return;
        (address participant, address partner) = who % 2 == 0 ? (p1, p2) : (p2, p1);
        uint256 available = _available(channelId, participant, partner);
        if (available == 0) return;
        amount = bound(amount, 1, available);
        (, uint256 already,,) = network.getParticipant(channelId, participant);
        uint256 total = already + amount;
        uint256 expiry = block.timestamp + 60;
        bytes memory consent = _sign(_keyOf(partner), _withdrawDigest(channelId, participant, total, expiry));
        vm.prank(participant);
        network.withdraw(channelId, total, expiry, consent);
        withdrawn += amount;
    }

    function _available(bytes32 channelId, address participant, address partner) private view returns (uint256) {
        (uint256 d1, uint256 w1,,) = network.getParticipant(channelId, participant);
        (uint256 d2, uint256 w2,,) = network.getParticipant(channelId, partner);
        return d1 + d2 - w1 - w2;
    }

    function _withdrawDigest(bytes32 channelId, address participant, uint256 total, uint256 expiry)
        private
        view
        returns (bytes32)
    {
        bytes32 typehash =
            keccak256("Withdraw(bytes32 channelId,address participant,uint256 totalWithdraw,uint256 expiry)");
        return _digest(keccak256(abi.encode(typehash, channelId, participant, total, expiry)));
    }

    function close(uint256 c, uint256 who) external {
        if (channels.length == 0) return;
        bytes32 channelId = channels[c % channels.length];
        (TokenNetwork.ChannelState state, address p1, address p2,,,) = network.getChannel(channelId);
        if (state != TokenNetwork.ChannelState.Opened) return;
        (address closer, address partner) = who % 2 == 0 ? (p1, p2) : (p2, p1);
        (TokenNetwork.BalanceProofData memory data, bytes memory signed) = _proofOf(channelId, partner);
        vm.prank(closer);
        network.closeChannel(channelId, data, signed);
        (TokenNetwork.BalanceProofData memory closerData, bytes memory closerSigned) = _proofOf(channelId, closer);
        if (closerData.nonce > 0) {
            vm.prank(partner);
            network.updateNonClosingBalanceProof(channelId, closerData, closerSigned);
        }
    }

    function settle(uint256 c) external {
        if (channels.length == 0) return;
        bytes32 channelId = channels[c % channels.length];
        (TokenNetwork.ChannelState state, address p1, address p2,, uint64 settleAt,) = network.getChannel(channelId);
        if (state != TokenNetwork.ChannelState.Closed) return;
        vm.warp(uint256(settleAt) + 1);
        uint256 before = token.balanceOf(p1) + token.balanceOf(p2);
        network.settleChannel(channelId);
        paidOut += token.balanceOf(p1) + token.balanceOf(p2) - before;
    }

    function _proofOf(bytes32 channelId, address signer)
        private
        view
        returns (TokenNetwork.BalanceProofData memory data, bytes memory signed)
    {
        data = TokenNetwork.BalanceProofData({
            nonce: nonces[channelId][signer],
            transferredAmount: transferred[channelId][signer],
            lockedAmount: 0,
            locksRoot: 0
        });
        if (data.nonce > 0) signed = _sign(_keyOf(signer), network.balanceProofDigest(channelId, data));
    }

    function _keyOf(address account) private view returns (uint256) {
        for (uint256 i = 0; i < 3; i++) {
            if (actors[i] == account) return keys[i];
        }
        revert("unknown actor");
    }

    function _digest(bytes32 structHash) private view returns (bytes32) {
        return keccak256(abi.encodePacked("\x19\x01", network.domainSeparator(), structHash));
    }

    function _sign(uint256 key, bytes32 digest) private pure returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, digest);
        return abi.encodePacked(r, s, v);
    }

    function fund() external {
        for (uint256 i = 0; i < 3; i++) {
            vm.prank(actors[i]);
            token.approve(address(network), type(uint256).max);
        }
    }

    function actorAt(uint256 i) external view returns (address) {
        return actors[i];
    }
}

contract InvariantsTest is Fixture {
    Handler private handler;

    function setUp() public override {
        super.setUp();
        handler = new Handler(network, token);
        for (uint256 i = 0; i < 3; i++) {
            token.mint(handler.actorAt(i), 1_000_000e6);
        }
        handler.fund();
        targetContract(address(handler));
        bytes4[] memory functions = new bytes4[](6);
        functions[0] = Handler.openChannel.selector;
        functions[1] = Handler.deposit.selector;
        functions[2] = Handler.pay.selector;
        functions[3] = Handler.withdraw.selector;
        functions[4] = Handler.close.selector;
        functions[5] = Handler.settle.selector;
        targetSelector(FuzzSelector({addr: address(handler), selectors: functions}));
    }

    /// A network holds exactly its channels' deposits minus withdrawals minus payouts.
    function invariant_networkHoldsDepositsMinusWithdrawals() public view {
        uint256 expected = handler.deposited() - handler.withdrawn() - handler.paidOut();
        assertEq(token.balanceOf(address(network)), expected, "token balance");
        assertEq(network.totalHeld(), expected, "totalHeld");
    }
}
