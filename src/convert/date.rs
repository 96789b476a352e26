//! Date fields in the three shapes PIP files use (`YYYY-MM-DD`, `YYYYMMDD`, `MM/DD/YYYY`),
//! as days since PostgreSQL's epoch.
//!
//! An issue record holds three dates, so dates are checked word-at-a-time and the calendar
//! is computed by hand rather than through chrono (whose checked constructor was 8 % of a
//! validate-only run); the tests hold both against chrono for every day of years 1 to 9999.

use super::{show, Out, ValueError};
use crate::pgcopy;

/// Appends a date field: its days since 2000-01-01, or NULL for the all-zero placeholder.
#[inline]
pub(super) fn encode_date<O: Out>(out: &mut O, raw: &[u8]) -> Result<(), ValueError> {
    match check_date(raw)? {
        Some((y, m, d)) => {
            out.int32(4);
            if O::KEEPS {
                out.int32(days_from_civil(y as i32, m, d) - UNIX_TO_PG_EPOCH_DAYS);
            }
        }
        None => out.int32(pgcopy::NULL),
    }
    Ok(())
}

/// Parses a date to days since 2000-01-01, or `None` for the all-zero NULL placeholder.
pub fn parse_date(raw: &[u8]) -> Result<Option<i32>, ValueError> {
    Ok(check_date(raw)?.map(|(y, m, d)| days_from_civil(y as i32, m, d) - UNIX_TO_PG_EPOCH_DAYS))
}

/// Checks a date and returns its year, month and day, or `None` for the all-zero NULL
/// placeholder. Apart from [`parse_date`] so that checking alone skips the day arithmetic.
#[inline]
fn check_date(raw: &[u8]) -> Result<Option<(u32, u32, u32)>, ValueError> {
    ymd(raw).map_err(|fault| match fault {
        DateFault::NotADate => ValueError::BadDate { value: show(raw) },
        DateFault::NoSuchDay => ValueError::NoSuchDate { value: show(raw) },
    })
}

/// Whether [`check_date`] would accept a date, without building its answer: the same
/// two steps as [`ymd`], returning a flag rather than a `Result` that comes back through
/// memory (`--validate-only` asks this three times per issue record).
#[inline(always)]
pub fn date_ok(raw: &[u8]) -> bool {
    match date_digits(raw) {
        Some((y, m, d)) => y | m | d == 0 || day_exists(y, m, d),
        None => false,
    }
}

/// Why [`ymd`] refused a date: small, so that its result comes back in registers, and the
/// message with the value is only built on the way out.
#[derive(Debug, Clone, Copy)]
enum DateFault {
    NotADate,
    NoSuchDay,
}

#[inline]
fn ymd(raw: &[u8]) -> Result<Option<(u32, u32, u32)>, DateFault> {
    let (y, m, d) = date_digits(raw).ok_or(DateFault::NotADate)?;
    if y == 0 && m == 0 && d == 0 {
        return Ok(None);
    }
    if !day_exists(y, m, d) {
        return Err(DateFault::NoSuchDay);
    }
    Ok(Some((y, m, d)))
}

/// The year, month and day written in a date of one of the three shapes, or `None` when
/// it is not one of them or not all digits. Says nothing yet about whether the day exists.
#[inline(always)]
fn date_digits(raw: &[u8]) -> Option<(u32, u32, u32)> {
    // The eight digits, gathered into one word in year-month-day order, little-endian.
    let word = match raw.len() {
        10 if raw[4] == b'-' && raw[7] == b'-' => {
            le(raw, 0, 4) | le(raw, 5, 2) << 32 | le(raw, 8, 2) << 48
        }
        10 if raw[2] == b'/' && raw[5] == b'/' => {
            le(raw, 6, 4) | le(raw, 0, 2) << 32 | le(raw, 3, 2) << 48
        }
        8 => le(raw, 0, 8),
        _ => return None,
    };
    // All eight bytes are ASCII digits at once, without a branch per byte (a date is
    // checked three times in every issue record): each byte's high nibble is 3, and still
    // is after adding 6 (which carries out of 0x3A–0x3F).
    const HIGH: u64 = 0xF0F0_F0F0_F0F0_F0F0;
    const ZEROS: u64 = 0x3030_3030_3030_3030;
    const SIXES: u64 = 0x0606_0606_0606_0606;
    if (word & HIGH) ^ ZEROS | (word.wrapping_add(SIXES) & HIGH) ^ ZEROS != 0 {
        return None;
    }
    // Digit pairs in one multiply: every even byte becomes ten times itself plus the next
    // (at most 99, so nothing carries into its neighbour).
    let v = word - ZEROS;
    let pairs = (v * 10 + (v >> 8)) & 0x00FF_00FF_00FF_00FF;
    let y = (pairs & 0xFF) as u32 * 100 + (pairs >> 16 & 0xFF) as u32;
    let m = (pairs >> 32 & 0xFF) as u32;
    let d = (pairs >> 48) as u32;
    Some((y, m, d))
}

/// Whether year `y` (from 1), month `m` and day `d` name a day of the proleptic Gregorian
/// calendar. The leap-year rule, with its divisions, is only asked for 29 February.
#[inline(always)]
fn day_exists(y: u32, m: u32, d: u32) -> bool {
    const LAST: [u8; 16] = [0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31, 0, 0, 0];
    let last = LAST[(m & 15) as usize] as u32;
    let plain = y != 0 && m <= 12 && d != 0 && d <= last;
    plain || (y != 0 && m == 2 && d == 29 && is_leap(y))
}

fn is_leap(y: u32) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

/// `n` ≤ 8 bytes of `raw` from `at`, as a little-endian word.
#[inline(always)]
fn le(raw: &[u8], at: usize, n: usize) -> u64 {
    let mut b = [0u8; 8];
    b[..n].copy_from_slice(&raw[at..at + n]);
    u64::from_le_bytes(b)
}

/// Days from 1970-01-01 to PostgreSQL's date epoch, 2000-01-01.
const UNIX_TO_PG_EPOCH_DAYS: i32 = 10_957;

/// Days since 1970-01-01 of a valid proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`). Hand-written because chrono's checked constructor was 8% of a
/// validate-only run; `dates_agree_with_chrono` checks it against chrono for every day of
/// years 1 to 9999.
fn days_from_civil(y: i32, m: u32, d: u32) -> i32 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m as i32 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i32 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_agree_with_chrono() {
        use chrono::Datelike;
        let pg_epoch = chrono::NaiveDate::from_ymd_opt(2000, 1, 1).unwrap();
        let mut day = chrono::NaiveDate::from_ymd_opt(1, 1, 1).unwrap();
        let last = chrono::NaiveDate::from_ymd_opt(9999, 12, 31).unwrap();
        while day <= last {
            let text = format!("{:04}{:02}{:02}", day.year(), day.month(), day.day());
            let want = (day - pg_epoch).num_days() as i32;
            assert_eq!(parse_date(text.as_bytes()), Ok(Some(want)), "{text}");
            day = day.succ_opt().unwrap();
        }
        for bad in [
            "19000229", "20230229", "20240230", "20240431", "00000101", "20241301", "20240100",
        ] {
            assert!(
                matches!(
                    parse_date(bad.as_bytes()),
                    Err(ValueError::NoSuchDate { .. })
                ),
                "{bad}"
            );
        }
        assert_eq!(parse_date(b"20000229"), Ok(Some(59)));
    }

    /// Every month and day number two digits can write, in years around each leap rule:
    /// the table-driven day check and the full parse agree with chrono on which exist.
    #[test]
    fn every_two_digit_month_and_day_is_judged_like_chrono() {
        for y in [0, 1, 4, 100, 400, 1900, 2000, 2023, 2024, 2100, 9996, 9999] {
            for m in 0..100u32 {
                for d in 0..100u32 {
                    let real = y > 0 && chrono::NaiveDate::from_ymd_opt(y, m, d).is_some();
                    let zero = y == 0 && m == 0 && d == 0;
                    for text in [
                        format!("{y:04}{m:02}{d:02}"),
                        format!("{y:04}-{m:02}-{d:02}"),
                        format!("{m:02}/{d:02}/{y:04}"),
                    ] {
                        assert_eq!(date_ok(text.as_bytes()), real || zero, "{text}");
                        assert_eq!(parse_date(text.as_bytes()).is_ok(), real || zero, "{text}");
                    }
                }
            }
        }
    }

    #[test]
    fn dates_in_three_formats() {
        let d = parse_date(b"2000-01-01").unwrap();
        assert_eq!(d, Some(0));
        assert_eq!(
            parse_date(b"2024-01-15").unwrap(),
            parse_date(b"20240115").unwrap()
        );
        assert_eq!(
            parse_date(b"2024-01-15").unwrap(),
            parse_date(b"01/15/2024").unwrap()
        );
        assert_eq!(parse_date(b"1999-12-31").unwrap(), Some(-1));
        assert_eq!(parse_date(b"0000-00-00").unwrap(), None);
        assert_eq!(parse_date(b"00000000").unwrap(), None);
        assert!(matches!(
            parse_date(b"2024-02-30"),
            Err(ValueError::NoSuchDate { .. })
        ));
        assert!(matches!(
            parse_date(b"0000-01-01"),
            Err(ValueError::NoSuchDate { .. })
        ));
        assert!(matches!(
            parse_date(b"2024-1-15"),
            Err(ValueError::BadDate { .. })
        ));
        assert!(matches!(
            parse_date(b"15/01/2024x"),
            Err(ValueError::BadDate { .. })
        ));
        assert!(matches!(
            parse_date(b"2024-01-1x"),
            Err(ValueError::BadDate { .. })
        ));
    }
}
