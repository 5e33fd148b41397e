//! The fixed ILP timestamp of a Prepare's `expiresAt`: 17 ASCII digits `YYYYMMDDHHmmSSfff`, UTC,
//! no length prefix (RFC 27, RFC 30). Not to be confused with BTP's length-prefixed
//! GeneralizedTime.
//!
//! Instants are `i64` milliseconds since the Unix epoch in the proleptic Gregorian calendar,
//! which covers every year the format can hold (0000..=9999). RFC 30 smears leap seconds, so a
//! seconds field of 60 is invalid, and midnight is `000000000` of the next day, never `24...`.
//! The calendar arithmetic is here rather than in a date crate so that its exact acceptance rules
//! are visible and tested: a general parser would roll `...60` over into the next minute.

use crate::ilp::oer::Reason;
use std::time::{SystemTime, UNIX_EPOCH};

/// Bytes of an encoded ILP timestamp.
pub const TIMESTAMP_SIZE: usize = 17;
/// `00000101000000000`: the earliest instant the format can hold.
pub const TIMESTAMP_MS_MIN: i64 = -62_167_219_200_000;
/// `99991231235959999`: the latest instant the format can hold.
pub const TIMESTAMP_MS_MAX: i64 = 253_402_300_799_999;

const MS_PER_DAY: i64 = 86_400_000;
/// Days in a 400-year Gregorian cycle; the calendar repeats exactly after it.
const DAYS_PER_ERA: i64 = 146_097;
/// Days from 0000-03-01 to 1970-01-01, because eras below are counted from a March 1st.
const DAYS_FROM_ERA_START_TO_UNIX_EPOCH: i64 = 719_468;

/// Decodes a 17-digit ILP timestamp into milliseconds since the Unix epoch.
pub fn parse_timestamp(bytes: &[u8]) -> Result<i64, Reason> {
    let digits: &[u8; TIMESTAMP_SIZE] = bytes
        .try_into()
        .map_err(|_| Reason::Invalid("timestamp must be exactly 17 digits"))?;
    if !digits.iter().all(u8::is_ascii_digit) {
        return Err(Reason::InvalidCharacters);
    }
    let number = |range: std::ops::Range<usize>| {
        digits[range]
            .iter()
            .fold(0i64, |value, digit| value * 10 + i64::from(digit - b'0'))
    };
    let (year, month, day) = (number(0..4), number(4..6), number(6..8));
    let (hour, minute, second, millisecond) = (
        number(8..10),
        number(10..12),
        number(12..14),
        number(14..17),
    );
    if !(1..=12).contains(&month) {
        return Err(Reason::Invalid("timestamp month is not 01..12"));
    }
    if day < 1 || day > days_in_month(year, month) {
        return Err(Reason::Invalid(
            "timestamp day does not exist in that month",
        ));
    }
    if hour > 23 {
        return Err(Reason::Invalid("timestamp hour is not 00..23"));
    }
    if minute > 59 {
        return Err(Reason::Invalid("timestamp minute is not 00..59"));
    }
    if second > 59 {
        // Leap seconds are smeared (UTC-SLS), so 60 never appears.
        return Err(Reason::Invalid("timestamp second is not 00..59"));
    }
    let ms_of_day = ((hour * 60 + minute) * 60 + second) * 1000 + millisecond;
    Ok(days_from_civil(year, month, day) * MS_PER_DAY + ms_of_day)
}

/// Encodes an instant as 17 digits. Instants outside years 0000..=9999 are clamped to the
/// nearest end of that range: the format cannot express them, and an expiry can only be
/// meaningfully "as early as possible" or "as late as possible" out there.
pub fn format_timestamp(ms: i64) -> [u8; TIMESTAMP_SIZE] {
    let ms = ms.clamp(TIMESTAMP_MS_MIN, TIMESTAMP_MS_MAX);
    let (year, month, day) = civil_from_days(ms.div_euclid(MS_PER_DAY));
    let ms_of_day = ms.rem_euclid(MS_PER_DAY);
    let mut digits = [b'0'; TIMESTAMP_SIZE];
    write_digits(&mut digits[0..4], year);
    write_digits(&mut digits[4..6], month);
    write_digits(&mut digits[6..8], day);
    write_digits(&mut digits[8..10], ms_of_day / 3_600_000);
    write_digits(&mut digits[10..12], ms_of_day / 60_000 % 60);
    write_digits(&mut digits[12..14], ms_of_day / 1000 % 60);
    write_digits(&mut digits[14..17], ms_of_day % 1000);
    digits
}

/// Milliseconds since the Unix epoch, now. Negative if the clock is set before 1970.
pub fn now_ms() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(since) => i64::try_from(since.as_millis()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_millis()).map_or(i64::MIN, |ms| -ms),
    }
}

/// Writes `value` as zero-padded decimal filling `out`; `value` fits by construction.
fn write_digits(out: &mut [u8], mut value: i64) {
    for digit in out.iter_mut().rev() {
        *digit = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

fn is_leap_year(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
///
/// Years are counted from March 1st so that the leap day falls at the end of a counted year;
/// then the day of the year has a closed form (month lengths from March repeat 31,30,31,30,31
/// with a period of 153 days per five months) and whole 400-year eras have a fixed length.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year_from_march = if month <= 2 { year - 1 } else { year };
    let era = year_from_march.div_euclid(400);
    let year_of_era = year_from_march.rem_euclid(400);
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * DAYS_PER_ERA + day_of_era - DAYS_FROM_ERA_START_TO_UNIX_EPOCH
}

/// The inverse of [`days_from_civil`]: (year, month, day) of a day count since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let days_from_era_zero = days + DAYS_FROM_ERA_START_TO_UNIX_EPOCH;
    let era = days_from_era_zero.div_euclid(DAYS_PER_ERA);
    let day_of_era = days_from_era_zero.rem_euclid(DAYS_PER_ERA);
    // Undo the leap-day corrections: one day every 4 years (1460 days), none every 100
    // (36524 days), one again at the end of the era (146096).
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = era * 400 + year_of_era + i64::from(month <= 2);
    (year, month, day)
}
