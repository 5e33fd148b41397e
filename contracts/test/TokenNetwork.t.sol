// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {Fixture} from "./Fixture.sol";
import {FeeToken, NoReturnToken, ReentrantToken} from "./Tokens.sol";
import {TokenNetwork} from "../src/TokenNetwork.sol";
import {SignatureChecker} from "../src/SignatureChecker.sol";
import {TokenNetworkRegistry} from "../src/TokenNetworkRegistry.sol";

/// Each test names the property it defends.
contract TokenNetworkTest is Fixture {
    // --- Opening ------------------------------------------------------------------------------

    function test_open_channelIdNeverRepeatsForAPair() public {
        bytes32 first = open(alice, bob);
        (address one, uint256 oneKey, address two, uint256 twoKey) = ordered();
        network.cooperativeSettle(first, 0, 0, signCooperative(oneKey, first, 0, 0), signCooperative(twoKey, first, 0, 0));
        bytes32 second = open(bob, alice);
        assertTrue(first != second, "a re-opened pair gets a new id");
        assertEq(network.channelOf(one, two), second, "the pair's current channel");
        bytes32 other = open(alice, mallory);
        assertTrue(other != first && other != second, "another pair, another id");
        assertEq(
            first,
            keccak256(abi.encode(one, two, uint256(1), address(network), block.chainid)),
            "id binds the pair, its counter, the network and the chain"
        );
    }

    function test_open_revertsWhileThePairHasAChannel() public {
        bytes32 channelId = open(alice, bob);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.ChannelExists.selector, channelId));
        network.openChannel(alice, SETTLE_TIMEOUT);
    }

    function test_open_revertsWithSelfZeroOrBadTimeout() public {
        vm.startPrank(alice);
        vm.expectRevert(TokenNetwork.InvalidPartner.selector);
        network.openChannel(alice, SETTLE_TIMEOUT);
        vm.expectRevert(TokenNetwork.ZeroAddress.selector);
        network.openChannel(address(0), SETTLE_TIMEOUT);
        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.SettleTimeoutOutOfRange.selector, uint64(59)));
        network.openChannel(bob, 59);
        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.SettleTimeoutOutOfRange.selector, uint64(30 days + 1)));
        network.openChannel(bob, 30 days + 1);
        vm.stopPrank();
    }

    // --- Deposits -----------------------------------------------------------------------------

    function test_deposit_setsTheTotalAndARepeatIsHarmless() public {
        bytes32 channelId = open(alice, bob);
        deposit(channelId, alice, 100e6);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.DepositNotIncreasing.selector, 100e6, 100e6));
        network.setTotalDeposit(channelId, 100e6);
        deposit(channelId, alice, 150e6);
        (uint256 deposited,,,) = network.getParticipant(channelId, alice);
        assertEq(deposited, 150e6, "total deposit");
        assertEq(token.balanceOf(address(network)), 150e6, "network holds exactly the deposits");
        assertEq(network.totalHeld(), 150e6, "totalHeld");
    }

    function test_deposit_countsOnlyTokensThatArrived() public {
        FeeToken fee = new FeeToken();
        TokenNetwork feeNetwork =
            TokenNetwork(registry.createTokenNetwork(address(fee), PARTICIPANT_LIMIT, NETWORK_LIMIT));
        fee.mint(alice, 1_000e6);
        vm.startPrank(alice);
        fee.approve(address(feeNetwork), type(uint256).max);
        bytes32 channelId = feeNetwork.openChannel(bob, SETTLE_TIMEOUT);
        // 100 asked, 99 arrive: the deposit is refused rather than booked for tokens not there.
        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.DepositNotReceived.selector, 100e6, 99e6));
        feeNetwork.setTotalDeposit(channelId, 100e6);
        vm.stopPrank();
        (uint256 deposited,,,) = feeNetwork.getParticipant(channelId, alice);
        assertEq(deposited, 0, "nothing booked");
        assertEq(feeNetwork.totalHeld(), 0, "totalHeld");
    }

    function test_deposit_worksWithTokensThatReturnNothing() public {
        NoReturnToken plain = new NoReturnToken();
        TokenNetwork plainNetwork =
            TokenNetwork(registry.createTokenNetwork(address(plain), PARTICIPANT_LIMIT, NETWORK_LIMIT));
        plain.mint(alice, 1_000e6);
        vm.startPrank(alice);
        plain.approve(address(plainNetwork), type(uint256).max);
        bytes32 channelId = plainNetwork.openChannel(bob, SETTLE_TIMEOUT);
        plainNetwork.setTotalDeposit(channelId, 10e6);
        vm.stopPrank();
        assertEq(plain.balanceOf(address(plainNetwork)), 10e6, "deposit arrived");
    }

    function test_deposit_revertsOverTheParticipantCap() public {
        bytes32 channelId = open(alice, bob);
        vm.prank(alice);
        vm.expectRevert(
            abi.encodeWithSelector(TokenNetwork.DepositLimitExceeded.selector, PARTICIPANT_LIMIT, PARTICIPANT_LIMIT + 1)
        );
        network.setTotalDeposit(channelId, PARTICIPANT_LIMIT + 1);
    }

    function test_deposit_revertsOverTheNetworkCap() public {
        TokenNetwork small = TokenNetwork(registry.createTokenNetwork(address(new NoReturnToken()), 100e6, 150e6));
        NoReturnToken plain = NoReturnToken(address(small.token()));
        plain.mint(alice, 1_000e6);
        plain.mint(mallory, 1_000e6);
        vm.prank(alice);
        plain.approve(address(small), type(uint256).max);
        vm.prank(mallory);
        plain.approve(address(small), type(uint256).max);
        vm.prank(alice);
        bytes32 first = small.openChannel(bob, SETTLE_TIMEOUT);
        vm.prank(alice);
        small.setTotalDeposit(first, 100e6);
        vm.prank(mallory);
        bytes32 second = small.openChannel(bob, SETTLE_TIMEOUT);
        vm.prank(mallory);
        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.NetworkDepositLimitExceeded.selector, 150e6, 160e6));
        small.setTotalDeposit(second, 60e6);
    }

    function test_deposit_revertsForOutsidersAndClosedChannels() public {
        bytes32 channelId = open(alice, bob);
        vm.prank(mallory);
        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.NotParticipant.selector, mallory));
        network.setTotalDeposit(channelId, 1);
        vm.prank(alice);
        network.closeChannel(channelId, proof(0, 0), "");
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.ChannelNotOpen.selector, channelId));
        network.setTotalDeposit(channelId, 1);
    }

    function test_deposit_reentryIsRefused() public {
        ReentrantToken evil = new ReentrantToken();
        TokenNetwork evilNetwork =
            TokenNetwork(registry.createTokenNetwork(address(evil), PARTICIPANT_LIMIT, NETWORK_LIMIT));
        evil.mint(alice, 1_000e6);
        vm.startPrank(alice);
        evil.approve(address(evilNetwork), type(uint256).max);
        bytes32 channelId = evilNetwork.openChannel(bob, SETTLE_TIMEOUT);
        vm.stopPrank();
        evil.arm(address(evilNetwork), channelId);
        vm.prank(alice);
        vm.expectRevert(TokenNetwork.TokenTransferFailed.selector); // the inner Reentrancy revert fails the call
        evilNetwork.setTotalDeposit(channelId, 10e6);
    }

    // --- Closing, challenging, settling -------------------------------------------------------

    function test_closeUpdateSettle_paysEachSideItsBalance() public {
        bytes32 channelId = open(alice, bob);
        deposit(channelId, alice, 100e6);
        deposit(channelId, bob, 20e6);
        // alice paid bob 30 (nonce 3), bob paid alice 5 (nonce 1).
        TokenNetwork.BalanceProofData memory aliceProof = proof(3, 30e6);
        TokenNetwork.BalanceProofData memory bobProof = proof(1, 5e6);
        uint256 aliceBefore = token.balanceOf(alice);
        uint256 bobBefore = token.balanceOf(bob);
        vm.prank(bob);
        network.closeChannel(channelId, aliceProof, signProof(ALICE_KEY, channelId, aliceProof));
        vm.prank(alice);
        network.updateNonClosingBalanceProof(channelId, bobProof, signProof(BOB_KEY, channelId, bobProof));
        vm.warp(block.timestamp + SETTLE_TIMEOUT + 1);
        network.settleChannel(channelId);
        assertEq(token.balanceOf(alice) - aliceBefore, 100e6 - 30e6 + 5e6, "alice");
        assertEq(token.balanceOf(bob) - bobBefore, 20e6 + 30e6 - 5e6, "bob");
        assertEq(token.balanceOf(address(network)), 0, "nothing left behind");
        (TokenNetwork.ChannelState state,,,,,) = network.getChannel(channelId);
        assertTrue(state == TokenNetwork.ChannelState.Settled, "settled");
    }

    function test_dispute_staleCloseIsCorrectedByTheNewerProof() public {
        bytes32 channelId = open(alice, bob);
        deposit(channelId, alice, 100e6);
        // alice (the payer) closes with bob's empty proof, leaving her own payments at nothing;
        // bob answers with her newest proof during the challenge period.
        vm.prank(alice);
        network.closeChannel(channelId, proof(0, 0), "");
        TokenNetwork.BalanceProofData memory older = proof(2, 20e6);
        TokenNetwork.BalanceProofData memory newest = proof(5, 70e6);
        vm.startPrank(bob);
        network.updateNonClosingBalanceProof(channelId, older, signProof(ALICE_KEY, channelId, older));
        network.updateNonClosingBalanceProof(channelId, newest, signProof(ALICE_KEY, channelId, newest));
        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.StaleNonce.selector, 5, 2));
        network.updateNonClosingBalanceProof(channelId, older, signProof(ALICE_KEY, channelId, older));
        vm.stopPrank();
        vm.warp(block.timestamp + SETTLE_TIMEOUT + 1);
        uint256 bobBefore = token.balanceOf(bob);
        network.settleChannel(channelId);
        assertEq(token.balanceOf(bob) - bobBefore, 70e6, "bob gets the newest proof's amount");
    }

    function test_close_revertsOnAForgedSignature() public {
        bytes32 channelId = open(alice, bob);
        TokenNetwork.BalanceProofData memory data = proof(1, 10e6);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.WrongSigner.selector, alice, mallory));
        network.closeChannel(channelId, data, signProof(MALLORY_KEY, channelId, data));
    }

    function test_close_revertsOnMalformedSignatures() public {
        bytes32 channelId = open(alice, bob);
        TokenNetwork.BalanceProofData memory data = proof(1, 10e6);
        bytes memory good = signProof(ALICE_KEY, channelId, data);
        // Flip s to n - s (and v): the same signature in its malleable form.
        bytes32 r;
        bytes32 s;
        uint8 v;
        assembly {
            r := mload(add(good, 32))
            s := mload(add(good, 64))
            v := byte(0, mload(add(good, 96)))
        }
        uint256 n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141;
        bytes memory malleable = abi.encodePacked(r, bytes32(n - uint256(s)), v == 27 ? uint8(28) : uint8(27));
        vm.startPrank(bob);
        vm.expectRevert(SignatureChecker.InvalidSignature.selector);
        network.closeChannel(channelId, data, malleable);
        vm.expectRevert(SignatureChecker.InvalidSignature.selector);
        network.closeChannel(channelId, data, hex"1234");
        vm.stopPrank();
    }

    function test_close_revertsForAWrongParticipant() public {
        bytes32 channelId = open(alice, bob);
        vm.prank(mallory);
        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.NotParticipant.selector, mallory));
        network.closeChannel(channelId, proof(0, 0), "");
    }

    function test_close_refusesLocks() public {
        bytes32 channelId = open(alice, bob);
        TokenNetwork.BalanceProofData memory data =
            TokenNetwork.BalanceProofData({nonce: 1, transferredAmount: 1, lockedAmount: 1, locksRoot: bytes32(0)});
        vm.prank(bob);
        vm.expectRevert(TokenNetwork.LocksNotSupported.selector);
        network.closeChannel(channelId, data, signProof(ALICE_KEY, channelId, data));
    }

    function test_update_revertsForTheCloserAfterTheChallengeAndOnStaleNonce() public {
        bytes32 channelId = open(alice, bob);
        TokenNetwork.BalanceProofData memory bobProof = proof(4, 4e6);
        vm.prank(alice);
        network.closeChannel(channelId, bobProof, signProof(BOB_KEY, channelId, bobProof));
        TokenNetwork.BalanceProofData memory aliceProof = proof(1, 1e6);
        bytes memory aliceSignature = signProof(ALICE_KEY, channelId, aliceProof);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.NotNonClosingParticipant.selector, alice));
        network.updateNonClosingBalanceProof(channelId, aliceProof, aliceSignature);
        vm.prank(mallory);
        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.NotParticipant.selector, mallory));
        network.updateNonClosingBalanceProof(channelId, aliceProof, aliceSignature);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.StaleNonce.selector, 0, 0));
        network.updateNonClosingBalanceProof(channelId, proof(0, 0), "");
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.WrongSigner.selector, alice, bob));
        network.updateNonClosingBalanceProof(channelId, aliceProof, signProof(BOB_KEY, channelId, aliceProof));
        (,,,, uint64 settleAt,) = network.getChannel(channelId);
        vm.warp(uint256(settleAt) + 1);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.ChallengePeriodOver.selector, settleAt));
        network.updateNonClosingBalanceProof(channelId, aliceProof, aliceSignature);
    }

    function test_settle_revertsBeforeTheChallengeEndsAndTwice() public {
        bytes32 channelId = open(alice, bob);
        deposit(channelId, alice, 10e6);
        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.ChannelNotClosed.selector, channelId));
        network.settleChannel(channelId);
        vm.prank(alice);
        network.closeChannel(channelId, proof(0, 0), "");
        (,,,, uint64 settleAt,) = network.getChannel(channelId);
        vm.warp(settleAt);
        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.ChallengePeriodNotOver.selector, settleAt));
        network.settleChannel(channelId);
        vm.warp(uint256(settleAt) + 1);
        network.settleChannel(channelId);
        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.ChannelNotClosed.selector, channelId));
        network.settleChannel(channelId);
    }

    function test_signature_cannotBeReplayedOnAnotherChannel() public {
        bytes32 first = open(alice, bob);
        deposit(first, alice, 10e6);
        TokenNetwork.BalanceProofData memory data = proof(1, 10e6);
        bytes memory signed = signProof(ALICE_KEY, first, data);
        vm.prank(bob);
        network.closeChannel(first, data, signed);
        vm.warp(block.timestamp + SETTLE_TIMEOUT + 1);
        network.settleChannel(first);
        bytes32 second = open(alice, bob);
        deposit(second, alice, 10e6);
        address signer = _recover(ALICE_KEY, second, data, signed);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.WrongSigner.selector, alice, signer));
        network.closeChannel(second, data, signed);
    }

    function test_signature_cannotBeReplayedOnAnotherChain() public {
        bytes32 channelId = open(alice, bob);
        TokenNetwork.BalanceProofData memory data = proof(1, 10e6);
        bytes memory signed = signProof(ALICE_KEY, channelId, data);
        bytes32 separator = network.domainSeparator();
        vm.chainId(block.chainid + 1);
        assertTrue(network.domainSeparator() != separator, "the domain follows the chain id");
        vm.prank(bob);
        vm.expectRevert();
        network.closeChannel(channelId, data, signed);
    }

    function test_digest_matchesAnIndependentEip712Encoding() public {
        bytes32 channelId = open(alice, bob);
        TokenNetwork.BalanceProofData memory data = proof(7, 123456);
        bytes32 structHash = keccak256(abi.encode(BALANCE_PROOF_TYPEHASH, channelId, uint256(7), uint256(123456), 0, 0));
        assertEq(network.balanceProofDigest(channelId, data), typedDigest(structHash), "digest");
        assertEq(network.domainSeparator(), domainSeparator(address(network)), "domain separator");
    }

    // --- Cooperative settle and withdraw ------------------------------------------------------

    function test_cooperativeSettle_paysTheSignedSplitAtOnce() public {
        bytes32 channelId = open(alice, bob);
        deposit(channelId, alice, 100e6);
        (address one, uint256 oneKey, address two, uint256 twoKey) = ordered();
        uint256 oneShare = one == alice ? 60e6 : 40e6;
        uint256 twoShare = 100e6 - oneShare;
        uint256 oneBefore = token.balanceOf(one);
        uint256 twoBefore = token.balanceOf(two);
        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.BalancesDoNotAddUp.selector, 100e6, 101e6));
        network.cooperativeSettle(channelId, oneShare + 1e6, twoShare, "", "");
        bytes memory forged = signCooperative(MALLORY_KEY, channelId, oneShare, twoShare);
        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.WrongSigner.selector, one, mallory));
        network.cooperativeSettle(channelId, oneShare, twoShare, forged, forged);
        bytes memory oneSignature = signCooperative(oneKey, channelId, oneShare, twoShare);
        bytes memory twoSignature = signCooperative(twoKey, channelId, oneShare, twoShare);
        network.cooperativeSettle(channelId, oneShare, twoShare, oneSignature, twoSignature);
        assertEq(token.balanceOf(one) - oneBefore, oneShare, "participant1");
        assertEq(token.balanceOf(two) - twoBefore, twoShare, "participant2");
        assertEq(network.totalHeld(), 0, "totalHeld");
    }

    function test_withdraw_needsThePartnersConsent() public {
        bytes32 channelId = open(alice, bob);
        deposit(channelId, alice, 100e6);
        uint256 expiry = block.timestamp + 100;
        // bob withdraws 30 that alice paid him, with her consent.
        bytes memory consent = signWithdraw(ALICE_KEY, channelId, bob, 30e6, expiry);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.WrongSigner.selector, alice, bob));
        network.withdraw(channelId, 30e6, expiry, signWithdraw(BOB_KEY, channelId, bob, 30e6, expiry));
        uint256 bobBefore = token.balanceOf(bob);
        vm.prank(bob);
        network.withdraw(channelId, 30e6, expiry, consent);
        assertEq(token.balanceOf(bob) - bobBefore, 30e6, "withdrawn");
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.WithdrawNotIncreasing.selector, 30e6, 30e6));
        network.withdraw(channelId, 30e6, expiry, consent);
        bytes memory tooMuch = signWithdraw(ALICE_KEY, channelId, bob, 131e6, expiry);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.WithdrawExceedsChannel.selector, 70e6, 101e6));
        network.withdraw(channelId, 131e6, expiry, tooMuch);
        vm.warp(expiry + 1);
        bytes memory late = signWithdraw(ALICE_KEY, channelId, bob, 40e6, expiry);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(TokenNetwork.WithdrawExpired.selector, expiry));
        network.withdraw(channelId, 40e6, expiry, late);
        assertEq(token.balanceOf(address(network)), network.totalHeld(), "holds deposits minus withdrawals");
        // At settle, bob's earlier withdrawal counts against what alice paid him.
        TokenNetwork.BalanceProofData memory paid = proof(1, 30e6);
        vm.prank(bob);
        network.closeChannel(channelId, paid, signProof(ALICE_KEY, channelId, paid));
        vm.warp(block.timestamp + SETTLE_TIMEOUT + 1);
        uint256 aliceBefore = token.balanceOf(alice);
        network.settleChannel(channelId);
        assertEq(token.balanceOf(alice) - aliceBefore, 70e6, "alice keeps the rest");
    }

    // --- The owner ----------------------------------------------------------------------------

    function test_pause_stopsOpensAndDepositsButNeverAnExit() public {
        bytes32 channelId = open(alice, bob);
        deposit(channelId, alice, 50e6);
        registry.pause();
        vm.prank(mallory);
        vm.expectRevert(TokenNetwork.RegistryPaused.selector);
        network.openChannel(bob, SETTLE_TIMEOUT);
        vm.prank(alice);
        vm.expectRevert(TokenNetwork.RegistryPaused.selector);
        network.setTotalDeposit(channelId, 60e6);
        uint256 aliceBefore = token.balanceOf(alice);
        vm.prank(alice);
        network.closeChannel(channelId, proof(0, 0), "");
        vm.warp(block.timestamp + SETTLE_TIMEOUT + 1);
        network.settleChannel(channelId);
        assertEq(token.balanceOf(alice) - aliceBefore, 50e6, "a paused registry still lets alice leave");
    }

    // --- Properties over any input ------------------------------------------------------------

    /// Settling pays out exactly what the channel holds, whatever the proofs say.
    function testFuzz_settle_paysOutExactlyWhatTheChannelHolds(uint256 d1, uint256 d2, uint256 t1, uint256 t2)
        public
    {
        d1 = bound(d1, 0, PARTICIPANT_LIMIT);
        d2 = bound(d2, 0, PARTICIPANT_LIMIT);
        bytes32 channelId = open(alice, bob);
        if (d1 > 0) deposit(channelId, alice, d1);
        if (d2 > 0) deposit(channelId, bob, d2);
        TokenNetwork.BalanceProofData memory aliceProof = proof(1, t1);
        TokenNetwork.BalanceProofData memory bobProof = proof(1, t2);
        vm.prank(bob);
        network.closeChannel(channelId, aliceProof, signProof(ALICE_KEY, channelId, aliceProof));
        vm.prank(alice);
        network.updateNonClosingBalanceProof(channelId, bobProof, signProof(BOB_KEY, channelId, bobProof));
        vm.warp(block.timestamp + SETTLE_TIMEOUT + 1);
        uint256 before = token.balanceOf(alice) + token.balanceOf(bob);
        network.settleChannel(channelId);
        assertEq(token.balanceOf(alice) + token.balanceOf(bob) - before, d1 + d2, "paid out = deposits");
        assertEq(token.balanceOf(address(network)), 0, "nothing left");
    }

    function _recover(uint256, bytes32 channelId, TokenNetwork.BalanceProofData memory data, bytes memory signed)
        private
        view
        returns (address)
    {
        bytes32 digest = network.balanceProofDigest(channelId, data);
        bytes32 r;
        bytes32 s;
        uint8 v;
        assembly {
            r := mload(add(signed, 32))
            s := mload(add(signed, 64))
            v := byte(0, mload(add(signed, 96)))
        }
        return ecrecover(digest, v, r, s);
    }
}

contract RegistryTest is Fixture {
    function test_oneNetworkPerToken() public {
        vm.expectRevert(
            abi.encodeWithSelector(TokenNetworkRegistry.TokenNetworkExists.selector, address(token), address(network))
        );
        registry.createTokenNetwork(address(token), PARTICIPANT_LIMIT, NETWORK_LIMIT);
    }

    function test_whitelist_andPause() public {
        FeeToken other = new FeeToken();
        registry.setWhitelistEnabled(true);
        vm.expectRevert(abi.encodeWithSelector(TokenNetworkRegistry.TokenNotWhitelisted.selector, address(other)));
        registry.createTokenNetwork(address(other), 1, 1);
        registry.setTokenWhitelisted(address(other), true);
        registry.pause();
        vm.expectRevert(TokenNetworkRegistry.RegistryPaused.selector);
        registry.createTokenNetwork(address(other), 1, 1);
        registry.unpause();
        assertTrue(registry.createTokenNetwork(address(other), 1, 1) != address(0), "created once whitelisted");
    }

    function test_onlyTheOwnerAdministers() public {
        vm.startPrank(mallory);
        vm.expectRevert(TokenNetworkRegistry.NotOwner.selector);
        registry.pause();
        vm.expectRevert(TokenNetworkRegistry.NotOwner.selector);
        registry.setWhitelistEnabled(true);
        vm.expectRevert(TokenNetworkRegistry.NotOwner.selector);
        registry.transferOwnership(mallory);
        vm.stopPrank();
        registry.transferOwnership(alice);
        vm.prank(mallory);
        vm.expectRevert(TokenNetworkRegistry.NotOwner.selector);
        registry.acceptOwnership();
        vm.prank(alice);
        registry.acceptOwnership();
        assertEq(registry.owner(), alice, "two-step transfer");
    }

    function test_invalidLimits() public {
        FeeToken other = new FeeToken();
        vm.expectRevert(TokenNetworkRegistry.InvalidDepositLimits.selector);
        registry.createTokenNetwork(address(other), 0, 1);
        vm.expectRevert(TokenNetworkRegistry.InvalidDepositLimits.selector);
        registry.createTokenNetwork(address(other), 2, 1);
    }
}
