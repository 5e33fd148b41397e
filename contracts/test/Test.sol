// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @notice The forge cheatcodes these tests use (npm's forge-std is older than forge 1.7, so the
/// project carries this small base instead).
interface Vm {
    function prank(address sender) external;
    function startPrank(address sender) external;
    function stopPrank() external;
    function warp(uint256 timestamp) external;
    function chainId(uint256 id) external;
    function expectRevert() external;
    function expectRevert(bytes4 selector) external;
    function expectRevert(bytes calldata revertData) external;
    function sign(uint256 privateKey, bytes32 digest) external pure returns (uint8 v, bytes32 r, bytes32 s);
    function addr(uint256 privateKey) external pure returns (address);
    function assume(bool condition) external pure;
    function label(address account, string calldata name) external;
    function assertEq(uint256 left, uint256 right, string calldata message) external pure;
    function assertEq(address left, address right, string calldata message) external pure;
    function assertEq(bytes32 left, bytes32 right, string calldata message) external pure;
    function assertTrue(bool condition, string calldata message) external pure;
    function assertLe(uint256 left, uint256 right, string calldata message) external pure;
}

/// @notice What forge's invariant runner reads from a test contract to pick call targets.
struct FuzzSelector {
    address addr;
    bytes4[] selectors;
}

abstract contract Test {
    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));

    address[] private targets;
    FuzzSelector[] private selectors;

    /// @dev Restricts the invariant runner to `target` (called from setUp).
    function targetContract(address target) internal {
        targets.push(target);
    }

    /// @dev Restricts the invariant runner to these functions of a target.
    function targetSelector(FuzzSelector memory selector) internal {
        selectors.push(selector);
    }

    function targetContracts() public view returns (address[] memory) {
        return targets;
    }

    function targetSelectors() public view returns (FuzzSelector[] memory) {
        return selectors;
    }

    /// @dev `value` mapped into [min, max] (inclusive), spreading fuzz inputs over a range.
    function bound(uint256 value, uint256 min, uint256 max) internal pure returns (uint256) {
        require(min <= max, "bound: min > max");
        if (value >= min && value <= max) return value;
        uint256 size = max - min + 1;
        return min + (value % size);
    }

    function assertEq(uint256 left, uint256 right, string memory message) internal pure {
        vm.assertEq(left, right, message);
    }

    function assertEq(address left, address right, string memory message) internal pure {
        vm.assertEq(left, right, message);
    }

    function assertEq(bytes32 left, bytes32 right, string memory message) internal pure {
        vm.assertEq(left, right, message);
    }

    function assertTrue(bool condition, string memory message) internal pure {
        vm.assertTrue(condition, message);
    }
}
