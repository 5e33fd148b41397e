// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {Test} from "./Test.sol";
import {M2MToken} from "../src/M2MToken.sol";
import {TokenNetwork} from "../src/TokenNetwork.sol";
import {TokenNetworkRegistry} from "../src/TokenNetworkRegistry.sol";

/// @notice A registry, a 6-decimal token and its network, two funded participants with known
/// keys, and signing helpers that build EIP-712 digests independently of the contract.
abstract contract Fixture is Test {
    uint256 internal constant ALICE_KEY = 0xA11CE;
    uint256 internal constant BOB_KEY = 0xB0B;
    uint256 internal constant MALLORY_KEY = 0xBAD;
    uint64 internal constant SETTLE_TIMEOUT = 600;
    uint256 internal constant PARTICIPANT_LIMIT = 1_000_000e6;
    uint256 internal constant NETWORK_LIMIT = 10_000_000e6;

    bytes32 internal constant BALANCE_PROOF_TYPEHASH = keccak256(
        "BalanceProof(bytes32 channelId,uint256 nonce,uint256 transferredAmount,uint256 lockedAmount,bytes32 locksRoot)"
    );
    bytes32 internal constant WITHDRAW_TYPEHASH =
        keccak256("Withdraw(bytes32 channelId,address participant,uint256 totalWithdraw,uint256 expiry)");
    bytes32 internal constant COOPERATIVE_SETTLE_TYPEHASH =
        keccak256("CooperativeSettle(bytes32 channelId,uint256 participant1Balance,uint256 participant2Balance)");

    TokenNetworkRegistry internal registry;
    M2MToken internal token;
    TokenNetwork internal network;
    address internal alice;
    address internal bob;
    address internal mallory;

    function setUp() public virtual {
        alice = vm.addr(ALICE_KEY);
        bob = vm.addr(BOB_KEY);
        mallory = vm.addr(MALLORY_KEY);
        vm.warp(1_700_000_000);
        registry = new TokenNetworkRegistry(60, 30 days);
        token = new M2MToken("M2M", "M2M", 6);
        network = TokenNetwork(registry.createTokenNetwork(address(token), PARTICIPANT_LIMIT, NETWORK_LIMIT));
        address[3] memory accounts = [alice, bob, mallory];
        for (uint256 i = 0; i < accounts.length; i++) {
            token.mint(accounts[i], 5_000_000e6);
            vm.prank(accounts[i]);
            token.approve(address(network), type(uint256).max);
        }
    }

    function open(address from, address to) internal returns (bytes32 channelId) {
        vm.prank(from);
        channelId = network.openChannel(to, SETTLE_TIMEOUT);
    }

    function deposit(bytes32 channelId, address participant, uint256 total) internal {
        vm.prank(participant);
        network.setTotalDeposit(channelId, total);
    }

    function domainSeparator(address verifyingContract) internal view returns (bytes32) {
        return keccak256(
            abi.encode(
                keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"),
                keccak256("TokenNetwork"),
                keccak256("1"),
                block.chainid,
                verifyingContract
            )
        );
    }

    function typedDigest(bytes32 structHash) internal view returns (bytes32) {
        return keccak256(abi.encodePacked("\x19\x01", domainSeparator(address(network)), structHash));
    }

    function proof(uint256 nonce, uint256 amount) internal pure returns (TokenNetwork.BalanceProofData memory) {
        return TokenNetwork.BalanceProofData({nonce: nonce, transferredAmount: amount, lockedAmount: 0, locksRoot: 0});
    }

    function signature(uint256 key, bytes32 digest) internal pure returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, digest);
        return abi.encodePacked(r, s, v);
    }

    function signProof(uint256 key, bytes32 channelId, TokenNetwork.BalanceProofData memory data)
        internal
        view
        returns (bytes memory)
    {
        bytes32 structHash = keccak256(
            abi.encode(
                BALANCE_PROOF_TYPEHASH, channelId, data.nonce, data.transferredAmount, data.lockedAmount, data.locksRoot
            )
        );
        return signature(key, typedDigest(structHash));
    }

    function signWithdraw(uint256 key, bytes32 channelId, address participant, uint256 total, uint256 expiry)
        internal
        view
        returns (bytes memory)
    {
        return signature(
            key, typedDigest(keccak256(abi.encode(WITHDRAW_TYPEHASH, channelId, participant, total, expiry)))
        );
    }

    function signCooperative(uint256 key, bytes32 channelId, uint256 balance1, uint256 balance2)
        internal
        view
        returns (bytes memory)
    {
        return signature(
            key, typedDigest(keccak256(abi.encode(COOPERATIVE_SETTLE_TYPEHASH, channelId, balance1, balance2)))
        );
    }

    /// @dev The channel's participants in contract order, with their keys.
    function ordered() internal view returns (address one, uint256 oneKey, address two, uint256 twoKey) {
        return alice < bob ? (alice, ALICE_KEY, bob, BOB_KEY) : (bob, BOB_KEY, alice, ALICE_KEY);
    }
}
