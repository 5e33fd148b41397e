// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {M2MToken} from "../src/M2MToken.sol";

/// @notice A token that keeps 1% of every transfer: a deposit must count what arrived.
contract FeeToken is M2MToken {
    constructor() M2MToken("Fee", "FEE", 6) {}

    function transferFrom(address from, address to, uint256 value) external override returns (bool) {
        uint256 fee = value / 100;
        allowance[from][msg.sender] -= value;
        balanceOf[from] -= value;
        balanceOf[to] += value - fee;
        totalSupply -= fee;
        emit Transfer(from, to, value - fee);
        return true;
    }
}

/// @notice A token that returns nothing from transfer/transferFrom (as USDT does).
contract NoReturnToken {
    mapping(address => uint256) public balanceOf;
    mapping(address => mapping(address => uint256)) public allowance;

    function mint(address to, uint256 value) external {
        balanceOf[to] += value;
    }

    function approve(address spender, uint256 value) external {
        allowance[msg.sender][spender] = value;
    }

    function transfer(address to, uint256 value) external {
        balanceOf[msg.sender] -= value;
        balanceOf[to] += value;
    }

    function transferFrom(address from, address to, uint256 value) external {
        allowance[from][msg.sender] -= value;
        balanceOf[from] -= value;
        balanceOf[to] += value;
    }

    function decimals() external pure returns (uint8) {
        return 6;
    }
}

interface IReenter {
    function setTotalDeposit(bytes32 channelId, uint256 totalDeposit) external;
}

/// @notice A token that calls back into the network from transferFrom, as an attacker would.
contract ReentrantToken is M2MToken {
    address public network;
    bytes32 public channelId;

    constructor() M2MToken("Reenter", "RE", 6) {}

    function arm(address network_, bytes32 channelId_) external {
        network = network_;
        channelId = channelId_;
    }

    function transferFrom(address from, address to, uint256 value) external override returns (bool) {
        if (network != address(0)) {
            IReenter(network).setTotalDeposit(channelId, value * 2);
        }
        allowance[from][msg.sender] -= value;
        balanceOf[from] -= value;
        balanceOf[to] += value;
        return true;
    }
}
