// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title SignatureChecker
/// @notice Recovers the signer of an EIP-712 digest from a 65-byte (r, s, v) signature, refusing
/// malleable signatures (s in the upper half of the curve order, v other than 27 or 28) so one
/// signed message has exactly one valid encoding.
library SignatureChecker {
    /// @dev A signature that is not 65 bytes, has a high s or a bad v, or recovers to no one.
    error InvalidSignature();

    /// @dev secp256k1's order divided by two: the largest s a canonical signature may have.
    uint256 private constant S_MAX = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0;

    /// @notice The address whose key signed `digest`.
    function recover(bytes32 digest, bytes calldata signature) internal pure returns (address signer) {
        if (signature.length != 65) revert InvalidSignature();
        bytes32 r = bytes32(signature[0:32]);
        bytes32 s = bytes32(signature[32:64]);
        uint8 v = uint8(signature[64]);
        if (uint256(s) > S_MAX || (v != 27 && v != 28)) revert InvalidSignature();
        signer = ecrecover(digest, v, r, s);
        if (signer == address(0)) revert InvalidSignature();
    }
}
