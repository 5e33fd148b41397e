//! Risk policy as plain functions over plain data: expiry shortening, asset conversion, rate
//! and throughput limits. No clock is read here; the forwarder passes `now_ms` in, so every
//! decision is a function of its inputs and can be tested (and replayed) exactly.

use crate::ilp::error_code::ErrorCode;

/// Expiry shortening (RFC 18 / ilp-connector's rule): the next hop gets the incoming expiry
/// minus our safety window, capped at `max_hold_time_ms` from now, and must still have at least
/// the window itself.
pub fn outgoing_expiry_ms(
    incoming_expires_at_ms: i64,
    now_ms: i64,
    min_message_window_ms: u64,
    max_hold_time_ms: u64,
) -> Result<i64, ErrorCode> {
    if incoming_expires_at_ms <= now_ms {
        return Err(ErrorCode::R00_TRANSFER_TIMED_OUT);
    }
    let window = i64::try_from(min_message_window_ms).unwrap_or(i64::MAX);
    let hold = i64::try_from(max_hold_time_ms).unwrap_or(i64::MAX);
    let outgoing = incoming_expires_at_ms
        .saturating_sub(window)
        .min(now_ms.saturating_add(hold));
    if outgoing.saturating_sub(now_ms) < window {
        return Err(ErrorCode::R02_INSUFFICIENT_TIMEOUT);
    }
    Ok(outgoing)
}

/// Converts amounts from one asset (code, scale) to another with an exact rational rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conversion {
    /// Same asset and scale: the amount passes unchanged.
    Identity,
    /// `amount_out = floor(amount_in * numerator / denominator)`, reduced to lowest terms.
    Ratio { numerator: u128, denominator: u128 },
    /// The scale factor does not fit in 128 bits: any non-zero amount overflows (F08).
    Overflow,
    /// The scale factor is below 10^-38: any amount rounds to zero (R01).
    Underflow,
}

impl Conversion {
    /// `rate` units of the outgoing asset per unit of the incoming one, as numerator/denominator,
    /// adjusted for the two scales.
    pub fn new(rate_numerator: u128, rate_denominator: u128, scale_in: u8, scale_out: u8) -> Self {
        assert!(rate_denominator > 0, "rate denominator must be positive");
        if rate_numerator == rate_denominator && scale_in == scale_out {
            return Conversion::Identity;
        }
        let (mut numerator, mut denominator) = (rate_numerator, rate_denominator);
        if scale_out >= scale_in {
            match 10u128.checked_pow(u32::from(scale_out - scale_in)) {
                Some(factor) => match numerator.checked_mul(factor) {
                    Some(value) => numerator = value,
                    None => return Conversion::Overflow,
                },
                None => return Conversion::Overflow,
            }
        } else {
            match 10u128.checked_pow(u32::from(scale_in - scale_out)) {
                Some(factor) => match denominator.checked_mul(factor) {
                    Some(value) => denominator = value,
                    None => return Conversion::Underflow,
                },
                None => return Conversion::Underflow,
            }
        }
        let divisor = gcd(numerator, denominator);
        Conversion::Ratio { numerator: numerator / divisor, denominator: denominator / divisor }
    }

    /// The outgoing amount (rounded down), or the Reject code: F08 when it does not fit in a
    /// u64, R01 when a non-zero amount rounds to zero.
    pub fn apply(self, amount_in: u64) -> Result<u64, ErrorCode> {
        let amount_out = match self {
            Conversion::Identity => return Ok(amount_in),
            Conversion::Overflow if amount_in == 0 => 0,
            Conversion::Overflow => return Err(ErrorCode::F08_AMOUNT_TOO_LARGE),
            Conversion::Underflow => 0,
            Conversion::Ratio { numerator, denominator } => {
                let product = widening_mul(u128::from(amount_in), numerator);
                match divide_wide(product, denominator) {
                    Some(value) => u64::try_from(value).map_err(|_| ErrorCode::F08_AMOUNT_TOO_LARGE)?,
                    None => return Err(ErrorCode::F08_AMOUNT_TOO_LARGE),
                }
            }
        };
        if amount_out == 0 && amount_in > 0 {
            return Err(ErrorCode::R01_INSUFFICIENT_SOURCE_AMOUNT);
        }
        Ok(amount_out)
    }
}

fn gcd(mut a: u128, mut b: u128) -> u128 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a.max(1)
}

/// 128×128 → 256-bit product as (high, low).
fn widening_mul(a: u128, b: u128) -> (u128, u128) {
    let mask = u128::from(u64::MAX);
    let (a_high, a_low) = (a >> 64, a & mask);
    let (b_high, b_low) = (b >> 64, b & mask);
    let low_low = a_low * b_low;
    let low_high = a_low * b_high;
    let high_low = a_high * b_low;
    let high_high = a_high * b_high;
    let middle = (low_low >> 64) + (low_high & mask) + (high_low & mask);
    let low = (low_low & mask) | (middle << 64);
    let high = high_high + (low_high >> 64) + (high_low >> 64) + (middle >> 64);
    (high, low)
}

/// floor((high·2^128 + low) / divisor) when it fits in 64 bits (the only results a u64
/// amount can take), or None. Only reached for rates whose numerator times the amount exceeds
/// 128 bits.
fn divide_wide((high, low): (u128, u128), divisor: u128) -> Option<u128> {
    if high == 0 {
        return Some(low / divisor);
    }
    // The quotient is below 2^64 iff the value's top 192 bits, shifted down by 64, are below
    // the divisor; that also rules out any `high` of 64 bits or more.
    if high >> 64 != 0 {
        return None;
    }
    let top = (high << 64) | (low >> 64);
    if top >= divisor {
        return None;
    }
    // Binary long division over the low 64 bits: 64 steps instead of 128.
    let mut remainder = top;
    let mut quotient = 0u128;
    for bit in (0..64).rev() {
        let carry = remainder >> 127;
        remainder = (remainder << 1) | ((low >> bit) & 1);
        quotient <<= 1;
        if carry == 1 || remainder >= divisor {
            remainder = remainder.wrapping_sub(divisor);
            quotient |= 1;
        }
    }
    Some(quotient)
}

/// A token bucket refilled continuously at `rate_per_second`, holding at most one second's worth.
/// Tokens are kept in thousandths so sub-millisecond refills are not lost.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate_per_second: u64,
    tokens_milli: u128,
    updated_at_ms: i64,
}

impl TokenBucket {
    pub fn new(rate_per_second: u64, now_ms: i64) -> Self {
        TokenBucket {
            rate_per_second,
            tokens_milli: u128::from(rate_per_second) * 1000,
            updated_at_ms: now_ms,
        }
    }

    /// Takes `count` tokens if there are enough; otherwise takes nothing.
    pub fn try_take(&mut self, count: u64, now_ms: i64) -> bool {
        let capacity_milli = u128::from(self.rate_per_second) * 1000;
        if now_ms > self.updated_at_ms {
            let elapsed_ms = (now_ms - self.updated_at_ms) as u128;
            let refill = elapsed_ms.saturating_mul(u128::from(self.rate_per_second));
            self.tokens_milli = self.tokens_milli.saturating_add(refill).min(capacity_milli);
            self.updated_at_ms = now_ms;
        }
        let wanted_milli = u128::from(count) * 1000;
        if wanted_milli > self.tokens_milli {
            return false;
        }
        self.tokens_milli -= wanted_milli;
        true
    }

    /// Gives back tokens taken for a packet that was refused by a later check.
    pub fn give_back(&mut self, count: u64) {
        let capacity_milli = u128::from(self.rate_per_second) * 1000;
        self.tokens_milli = (self.tokens_milli + u128::from(count) * 1000).min(capacity_milli);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_shortening() {
        let now = 1_000_000;
        // Plenty of time: capped by max hold.
        assert_eq!(outgoing_expiry_ms(now + 60_000, now, 1000, 30_000), Ok(now + 30_000));
        // Incoming minus window.
        assert_eq!(outgoing_expiry_ms(now + 5_000, now, 1000, 30_000), Ok(now + 4_000));
        // Exactly the window left after shortening is enough.
        assert_eq!(outgoing_expiry_ms(now + 2_000, now, 1000, 30_000), Ok(now + 1_000));
        assert_eq!(outgoing_expiry_ms(now + 1_999, now, 1000, 30_000), Err(ErrorCode::R02_INSUFFICIENT_TIMEOUT));
        assert_eq!(outgoing_expiry_ms(now, now, 1000, 30_000), Err(ErrorCode::R00_TRANSFER_TIMED_OUT));
        assert_eq!(outgoing_expiry_ms(now - 1, now, 1000, 30_000), Err(ErrorCode::R00_TRANSFER_TIMED_OUT));
    }

    fn check(conversion: Conversion, amount_in: u64, expect: Result<u64, ErrorCode>) {
        assert_eq!(conversion.apply(amount_in), expect, "{conversion:?} of {amount_in}");
    }

    #[test]
    fn conversions() {
        check(Conversion::new(1, 1, 6, 6), 123, Ok(123));
        // Scale 6 → 9: ×1000.
        check(Conversion::new(1, 1, 6, 9), 123, Ok(123_000));
        // Scale 9 → 6: floor(÷1000); below one unit is R01, zero stays zero.
        check(Conversion::new(1, 1, 9, 6), 123_999, Ok(123));
        check(Conversion::new(1, 1, 9, 6), 999, Err(ErrorCode::R01_INSUFFICIENT_SOURCE_AMOUNT));
        check(Conversion::new(1, 1, 9, 6), 0, Ok(0));
        // Rate 0.9 at equal scales, floored.
        check(Conversion::new(9, 10, 2, 2), 1001, Ok(900));
        // Overflow of u64 → F08.
        check(Conversion::new(2, 1, 0, 0), u64::MAX, Err(ErrorCode::F08_AMOUNT_TOO_LARGE));
        check(Conversion::new(1, 1, 0, 200), 1, Err(ErrorCode::F08_AMOUNT_TOO_LARGE));
        check(Conversion::new(1, 1, 200, 0), u64::MAX, Err(ErrorCode::R01_INSUFFICIENT_SOURCE_AMOUNT));
        // A huge numerator and denominator still divide exactly.
        let big = Conversion::Ratio { numerator: u128::MAX / 3, denominator: u128::MAX / 3 };
        check(big, u64::MAX, Ok(u64::MAX));
    }

    #[test]
    fn wide_arithmetic_matches_u128_when_it_fits() {
        for (a, b) in [(0u128, 5u128), (u64::MAX as u128, u64::MAX as u128), (1 << 100, 3)] {
            let (high, low) = widening_mul(a, b);
            assert_eq!(high, 0);
            assert_eq!(low, a * b);
        }
        assert_eq!(widening_mul(u128::MAX, 2), (1, u128::MAX - 1));
        // 2^128 / 2^65 = 2^63 fits in 64 bits; 2^128 / 2 does not.
        assert_eq!(divide_wide((1, 0), 1 << 65), Some(1u128 << 63));
        assert_eq!(divide_wide((1, 0), 2), None);
        assert_eq!(divide_wide((1, 0), 1), None);
        // (2^128 + 5) / (2^64 + 1): checked against exact arithmetic on smaller pieces.
        let divisor = (1u128 << 64) + 1;
        let quotient = divide_wide((1, 5), divisor).unwrap();
        let (high, low) = widening_mul(quotient, divisor);
        assert_eq!(high, 0);
        let remainder = (1u128 << 127).wrapping_sub(low).wrapping_add(1u128 << 127).wrapping_add(5);
        assert!(remainder < divisor, "floor division: remainder {remainder}");
    }

    proptest::proptest! {
        /// The wide path agrees with plain u128 arithmetic wherever the product fits in u128.
        #[test]
        fn conversion_matches_exact_arithmetic(
            amount in proptest::prelude::any::<u64>(),
            numerator in 1u128..=u128::MAX,
            denominator in 1u128..=u128::MAX,
        ) {
            let conversion = Conversion::Ratio { numerator, denominator };
            let (high, low) = widening_mul(u128::from(amount), numerator);
            if high == 0 {
                let exact = low / denominator;
                let expect = match u64::try_from(exact) {
                    Ok(0) if amount > 0 => Err(ErrorCode::R01_INSUFFICIENT_SOURCE_AMOUNT),
                    Ok(value) => Ok(value),
                    Err(_) => Err(ErrorCode::F08_AMOUNT_TOO_LARGE),
                };
                proptest::prop_assert_eq!(conversion.apply(amount), expect);
            } else if let Ok(value) = conversion.apply(amount) {
                // Beyond u128: the result times the denominator must bracket the product.
                let (q_high, q_low) = widening_mul(u128::from(value), denominator);
                proptest::prop_assert!((q_high, q_low) <= (high, low));
            }
        }
    }

    #[test]
    fn token_bucket_refills_per_millisecond() {
        let mut bucket = TokenBucket::new(1000, 0);
        for _ in 0..1000 {
            assert!(bucket.try_take(1, 0));
        }
        assert!(!bucket.try_take(1, 0));
        assert!(bucket.try_take(1, 1));
        assert!(!bucket.try_take(1, 1));
        assert!(bucket.try_take(500, 600));
        bucket.give_back(10);
        assert!(bucket.try_take(10, 600));
    }
}
