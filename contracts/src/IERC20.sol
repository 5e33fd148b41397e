// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title IERC20
/// @notice The part of ERC-20 the payment channels use.
interface IERC20 {
    event Transfer(address indexed from, address indexed to, uint256 value);
    event Approval(address indexed owner, address indexed spender, uint256 value);

    /// @notice Tokens held by `account`.
    function balanceOf(address account) external view returns (uint256);

    /// @notice Moves `value` tokens from the caller to `to`.
    function transfer(address to, uint256 value) external returns (bool);

    /// @notice Moves `value` tokens from `from` to `to` using the caller's allowance.
    function transferFrom(address from, address to, uint256 value) external returns (bool);

    /// @notice Lets `spender` move up to `value` of the caller's tokens.
    function approve(address spender, uint256 value) external returns (bool);

    /// @notice What `spender` may still move of `owner`'s tokens.
    function allowance(address owner, address spender) external view returns (uint256);

    /// @notice Number of decimals of the token's display unit.
    function decimals() external view returns (uint8);
}
