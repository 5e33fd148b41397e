// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {TokenNetwork} from "./TokenNetwork.sol";

/// @title TokenNetworkRegistry
/// @notice Creates at most one TokenNetwork per ERC-20 token and keeps the list. Its owner may
/// restrict which tokens get a network (a whitelist) and pause new channels and deposits; the
/// owner has no path to any participant's tokens, and a pause never stops a close, an update, a
/// settle or a withdrawal, so participants can always leave with what is theirs.
contract TokenNetworkRegistry {
    /// @dev The caller is not the owner (or, for `acceptOwnership`, not the pending owner).
    error NotOwner();
    /// @dev The registry is paused: no new token network.
    error RegistryPaused();
    /// @dev The token already has a network.
    error TokenNetworkExists(address token, address tokenNetwork);
    /// @dev The whitelist is on and the token is not on it.
    error TokenNotWhitelisted(address token);
    /// @dev An address argument is zero.
    error ZeroAddress();
    /// @dev The settle-timeout bounds are empty or zero.
    error InvalidSettleTimeouts();
    /// @dev A deposit limit is zero, or the network limit is below the per-participant one.
    error InvalidDepositLimits();

    event TokenNetworkCreated(address indexed token, address indexed tokenNetwork);
    event WhitelistEnabled(bool enabled);
    event TokenWhitelisted(address indexed token, bool whitelisted);
    event Paused(address indexed account);
    event Unpaused(address indexed account);
    event OwnershipTransferStarted(address indexed previousOwner, address indexed newOwner);
    event OwnershipTransferred(address indexed previousOwner, address indexed newOwner);

    /// @notice Shortest challenge period (seconds) a channel may be opened with.
    uint64 public immutable settleTimeoutMin;
    /// @notice Longest challenge period (seconds) a channel may be opened with.
    uint64 public immutable settleTimeoutMax;

    address public owner;
    address public pendingOwner;
    bool public paused;
    bool public whitelistEnabled;

    mapping(address token => bool) public tokenWhitelisted;
    mapping(address token => address) public tokenToTokenNetwork;

    modifier onlyOwner() {
        if (msg.sender != owner) revert NotOwner();
        _;
    }

    /// @param settleTimeoutMin_ Shortest challenge period in seconds (at least 1).
    /// @param settleTimeoutMax_ Longest challenge period in seconds.
    constructor(uint64 settleTimeoutMin_, uint64 settleTimeoutMax_) {
        if (settleTimeoutMin_ == 0 || settleTimeoutMax_ < settleTimeoutMin_) revert InvalidSettleTimeouts();
        settleTimeoutMin = settleTimeoutMin_;
        settleTimeoutMax = settleTimeoutMax_;
        owner = msg.sender;
        emit OwnershipTransferred(address(0), msg.sender);
    }

    /// @notice Deploys the TokenNetwork for `token`.
    /// @param token The ERC-20 the network's channels hold.
    /// @param participantDepositLimit Most a participant may have deposited in one channel.
    /// @param networkDepositLimit Most the whole network may hold.
    /// @return tokenNetwork The new network's address.
    function createTokenNetwork(address token, uint256 participantDepositLimit, uint256 networkDepositLimit)
        external
        returns (address tokenNetwork)
    {
        if (paused) revert RegistryPaused();
        if (token == address(0)) revert ZeroAddress();
        if (whitelistEnabled && !tokenWhitelisted[token]) revert TokenNotWhitelisted(token);
        address existing = tokenToTokenNetwork[token];
        if (existing != address(0)) revert TokenNetworkExists(token, existing);
        if (participantDepositLimit == 0 || networkDepositLimit < participantDepositLimit) {
            revert InvalidDepositLimits();
        }
        tokenNetwork = address(
            new TokenNetwork(token, address(this), settleTimeoutMin, settleTimeoutMax, participantDepositLimit, networkDepositLimit)
        );
        tokenToTokenNetwork[token] = tokenNetwork;
        emit TokenNetworkCreated(token, tokenNetwork);
    }

    /// @notice Turns the token whitelist on or off for new networks (existing ones stay).
    function setWhitelistEnabled(bool enabled) external onlyOwner {
        whitelistEnabled = enabled;
        emit WhitelistEnabled(enabled);
    }

    /// @notice Adds `token` to the whitelist, or removes it.
    function setTokenWhitelisted(address token, bool whitelisted) external onlyOwner {
        if (token == address(0)) revert ZeroAddress();
        tokenWhitelisted[token] = whitelisted;
        emit TokenWhitelisted(token, whitelisted);
    }

    /// @notice Stops new networks, new channels and deposits. Closing, updating, settling and
    /// withdrawing go on.
    function pause() external onlyOwner {
        paused = true;
        emit Paused(msg.sender);
    }

    /// @notice Lifts a pause.
    function unpause() external onlyOwner {
        paused = false;
        emit Unpaused(msg.sender);
    }

    /// @notice Starts handing the registry to `newOwner`, who must accept it.
    function transferOwnership(address newOwner) external onlyOwner {
        if (newOwner == address(0)) revert ZeroAddress();
        pendingOwner = newOwner;
        emit OwnershipTransferStarted(owner, newOwner);
    }

    /// @notice Completes a transfer started by `transferOwnership`.
    function acceptOwnership() external {
        if (msg.sender != pendingOwner) revert NotOwner();
        emit OwnershipTransferred(owner, msg.sender);
        owner = msg.sender;
        pendingOwner = address(0);
    }
}
