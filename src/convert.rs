//! Field text → PostgreSQL binary COPY value, with every check the server would skip.
//!
//! Binary COPY hands the server finished values, so nothing textual is checked there: a
//! `varchar(n)` over width would be silently trimmed if its excess is spaces, a numeric
//! with too many decimals silently rounded. Every such check therefore lives here, and a
//! value that passes is written exactly as it appeared in the file.

use bytes::{BufMut, BytesMut};
use std::fmt;

use crate::layout::Kind;
use crate::pgcopy;

/// The text encoding of the input file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encoding {
    /// UTF-8 (of which ASCII is a subset); invalid bytes are rejected.
    #[default]
    Utf8,
    /// ISO-8859-1: every byte is the code point of the same number.
    Latin1,
    /// Windows-1252: Latin-1 except 0x80–0x9F, five of which are undefined (rejected).
    Windows1252,
}

impl Encoding {
    pub fn from_name(s: &str) -> Option<Encoding> {
        match s.to_ascii_lowercase().replace('_', "-").as_str() {
            "utf8" | "utf-8" => Some(Encoding::Utf8),
            "latin1" | "latin-1" | "iso-8859-1" | "iso8859-1" => Some(Encoding::Latin1),
            "windows-1252" | "cp1252" | "win1252" => Some(Encoding::Windows1252),
            _ => None,
        }
    }
}

/// Where encoded values go: a COPY buffer, or nowhere. Words are written big-endian, as
/// binary COPY ([`crate::pgcopy`]) has them.
///
/// `--validate-only` must find exactly the problems a load would, so it runs the very same
/// checks; only the output differs. Compiled for [`Discard`], every write vanishes and
/// work whose only product is output (day numbers, base-10000 digits) is skipped.
pub trait Out {
    /// False when nothing is kept: the caller may then skip work that only feeds output.
    const KEEPS: bool;
    fn int16(&mut self, v: i16);
    fn int32(&mut self, v: i32);
    fn int64(&mut self, v: i64);
    fn bytes(&mut self, v: &[u8]);
    /// Bytes written so far (always 0 for [`Discard`]).
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Forgets everything written after `len`.
    fn truncate(&mut self, len: usize);
    fn reserve(&mut self, additional: usize);
    /// What has been written (always empty for [`Discard`]).
    fn written(&self) -> &[u8];
}

impl Out for BytesMut {
    const KEEPS: bool = true;
    #[inline(always)]
    fn int16(&mut self, v: i16) {
        self.put_i16(v);
    }
    #[inline(always)]
    fn int32(&mut self, v: i32) {
        self.put_i32(v);
    }
    #[inline(always)]
    fn int64(&mut self, v: i64) {
        self.put_i64(v);
    }
    #[inline(always)]
    fn bytes(&mut self, v: &[u8]) {
        self.put_slice(v);
    }
    #[inline(always)]
    fn len(&self) -> usize {
        BytesMut::len(self)
    }
    #[inline(always)]
    fn truncate(&mut self, len: usize) {
        BytesMut::truncate(self, len);
    }
    #[inline(always)]
    fn reserve(&mut self, additional: usize) {
        BytesMut::reserve(self, additional);
    }
    #[inline(always)]
    fn written(&self) -> &[u8] {
        self
    }
}

/// An [`Out`] that keeps nothing: the checks of an encoder, without the encoding.
#[derive(Debug, Default, Clone, Copy)]
pub struct Discard;

impl Out for Discard {
    const KEEPS: bool = false;
    #[inline(always)]
    fn int16(&mut self, _: i16) {}
    #[inline(always)]
    fn int32(&mut self, _: i32) {}
    #[inline(always)]
    fn int64(&mut self, _: i64) {}
    #[inline(always)]
    fn bytes(&mut self, _: &[u8]) {}
    #[inline(always)]
    fn len(&self) -> usize {
        0
    }
    #[inline(always)]
    fn truncate(&mut self, _: usize) {}
    #[inline(always)]
    fn reserve(&mut self, _: usize) {}
    #[inline(always)]
    fn written(&self) -> &[u8] {
        &[]
    }
}

/// Why a value was rejected. The caller adds file, line and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueError {
    TooWide {
        value: String,
        chars: usize,
        width: u16,
    },
    EmptyKey,
    Nul {
        value: String,
    },
    InvalidUtf8 {
        value: String,
        byte: u8,
        offset: usize,
    },
    Undefined1252 {
        value: String,
        byte: u8,
    },
    BadDate {
        value: String,
    },
    NoSuchDate {
        value: String,
    },
    BadInteger {
        value: String,
    },
    IntegerRange {
        value: String,
    },
    BadNumeric {
        value: String,
    },
    TooManyDecimals {
        value: String,
        decimals: usize,
        precision: u8,
        scale: u8,
    },
    TooManyDigits {
        value: String,
        digits: usize,
        precision: u8,
        scale: u8,
    },
}

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ValueError::*;
        match self {
            TooWide {
                value,
                chars,
                width,
            } => {
                write!(
                    f,
                    "\"{value}\" is {chars} characters; varchar({width}) allows {width}"
                )
            }
            EmptyKey => write!(f, "is empty but is part of the key"),
            Nul { value } => write!(
                f,
                "\"{value}\" contains a NUL byte, which is never valid in text"
            ),
            InvalidUtf8 {
                value,
                byte,
                offset,
            } => write!(
                f,
                "\"{value}\" has byte 0x{byte:02X} at offset {offset}, which is not valid UTF-8 \
                 (if the file is Latin-1 or Windows-1252, say so with --encoding)"
            ),
            Undefined1252 { value, byte } => {
                write!(
                    f,
                    "\"{value}\" has byte 0x{byte:02X}, which Windows-1252 does not define"
                )
            }
            BadDate { value } => {
                write!(
                    f,
                    "\"{value}\" is not a date (expected YYYY-MM-DD, YYYYMMDD or MM/DD/YYYY)"
                )
            }
            NoSuchDate { value } => write!(f, "\"{value}\" is not a valid calendar date"),
            BadInteger { value } => write!(f, "\"{value}\" is not an integer"),
            IntegerRange { value } => write!(f, "\"{value}\" is out of range for integer"),
            BadNumeric { value } => write!(f, "\"{value}\" is not a decimal number"),
            TooManyDecimals {
                value,
                decimals,
                precision,
                scale,
            } => write!(
                f,
                "\"{value}\" has {decimals} decimals; numeric({precision},{scale}) allows {scale}"
            ),
            TooManyDigits {
                value,
                digits,
                precision,
                scale,
            } => write!(
                f,
                "\"{value}\" has {digits} integer digits; numeric({precision},{scale}) allows {}",
                precision - scale
            ),
        }
    }
}

/// Renders raw field bytes for an error message: valid UTF-8 as is, other bytes as `\xNN`,
/// control characters escaped, long values shortened.
pub fn show(raw: &[u8]) -> String {
    const MAX: usize = 120;
    let mut out = String::new();
    for chunk in raw.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c.is_control() {
                out.extend(c.escape_default());
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02X}"));
        }
        if out.len() > MAX {
            let mut cut = MAX;
            while !out.is_char_boundary(cut) {
                cut -= 1;
            }
            out.truncate(cut);
            out.push('…');
            break;
        }
    }
    out
}

/// Appends one binary COPY field (length word and value) for `raw`, or an error.
///
/// `scratch` is reused for transcoding so that the common all-ASCII case allocates nothing.
pub fn encode_field<O: Out>(
    out: &mut O,
    raw: &[u8],
    kind: Kind,
    is_key: bool,
    encoding: Encoding,
    scratch: &mut Vec<u8>,
) -> Result<(), ValueError> {
    if raw.is_empty() {
        if is_key {
            return Err(ValueError::EmptyKey);
        }
        out.int32(pgcopy::NULL);
        return Ok(());
    }
    match kind {
        Kind::Varchar(width) => encode_text(out, raw, width, encoding, scratch),
        Kind::Date => {
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
        Kind::Integer => {
            let n = parse_integer(raw)?;
            out.int32(4);
            out.int32(n);
            Ok(())
        }
        Kind::Numeric { precision, scale } => encode_numeric(out, raw, precision, scale),
    }
}

fn encode_text<O: Out>(
    out: &mut O,
    raw: &[u8],
    width: u16,
    encoding: Encoding,
    scratch: &mut Vec<u8>,
) -> Result<(), ValueError> {
    if memchr::memchr(0, raw).is_some() {
        return Err(ValueError::Nul { value: show(raw) });
    }
    let text: &[u8] = if raw.is_ascii() {
        raw
    } else {
        match encoding {
            Encoding::Utf8 => {
                if let Err(e) = std::str::from_utf8(raw) {
                    let offset = e.valid_up_to();
                    return Err(ValueError::InvalidUtf8 {
                        value: show(raw),
                        byte: raw[offset],
                        offset,
                    });
                }
                raw
            }
            Encoding::Latin1 | Encoding::Windows1252 => {
                transcode(raw, encoding, scratch)?;
                scratch
            }
        }
    };
    // Characters never outnumber bytes, so only long values need counting.
    if text.len() > width as usize {
        let chars = if text.is_ascii() {
            text.len()
        } else {
            text.iter().filter(|&&b| (b as i8) >= -0x40).count()
        };
        if chars > width as usize {
            return Err(ValueError::TooWide {
                value: show(text),
                chars,
                width,
            });
        }
    }
    out.int32(text.len() as i32);
    out.bytes(text);
    Ok(())
}

/// A text field of a record already known to be ASCII without NUL (see
/// [`crate::parse::Split::plain`]): then bytes are characters, and only the width needs
/// checking. Empty means NULL, as in [`encode_field`].
#[inline]
pub fn encode_plain_text<O: Out>(
    out: &mut O,
    raw: &[u8],
    width: u16,
    is_key: bool,
) -> Result<(), ValueError> {
    if raw.is_empty() {
        if is_key {
            return Err(ValueError::EmptyKey);
        }
        out.int32(pgcopy::NULL);
    } else if raw.len() > width as usize {
        return Err(ValueError::TooWide {
            value: show(raw),
            chars: raw.len(),
            width,
        });
    } else {
        out.int32(raw.len() as i32);
        out.bytes(raw);
    }
    Ok(())
}

/// The code points of Windows-1252 bytes 0x80–0x9F; 0 marks the five undefined ones.
const CP1252_HIGH: [u16; 32] = [
    0x20AC, 0, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160, 0x2039,
    0x0152, 0, 0x017D, 0, 0, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014, 0x02DC,
    0x2122, 0x0161, 0x203A, 0x0153, 0, 0x017E, 0x0178,
];

fn transcode(raw: &[u8], encoding: Encoding, out: &mut Vec<u8>) -> Result<(), ValueError> {
    out.clear();
    let mut buf = [0u8; 4];
    for &b in raw {
        let cp = if b < 0x80 {
            out.push(b);
            continue;
        } else if encoding == Encoding::Windows1252 && (0x80..0xA0).contains(&b) {
            match CP1252_HIGH[(b - 0x80) as usize] {
                0 => {
                    return Err(ValueError::Undefined1252 {
                        value: show(raw),
                        byte: b,
                    })
                }
                cp => cp as u32,
            }
        } else {
            b as u32
        };
        // Every value above is a valid scalar value (no surrogates), so this cannot fail.
        let c = char::from_u32(cp).unwrap_or(char::REPLACEMENT_CHARACTER);
        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
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

pub fn parse_integer(raw: &[u8]) -> Result<i32, ValueError> {
    let (neg, body) = match raw.first() {
        Some(b'-') => (true, &raw[1..]),
        Some(b'+') => (false, &raw[1..]),
        _ => (false, raw),
    };
    if body.is_empty() || !body.iter().all(u8::is_ascii_digit) {
        return Err(ValueError::BadInteger { value: show(raw) });
    }
    let mut n: i64 = 0;
    for &d in body {
        n = n * 10 + (d - b'0') as i64;
        if n > i32::MAX as i64 + 1 {
            return Err(ValueError::IntegerRange { value: show(raw) });
        }
    }
    let n = if neg { -n } else { n };
    i32::try_from(n).map_err(|_| ValueError::IntegerRange { value: show(raw) })
}

/// Whether a decimal surely fits numeric(p,s), asked without building anything: digits
/// with at most one point, no sign, and no more digits on either side than the type
/// allows, leading and trailing zeros counted. A no is not a refusal: what this does not
/// take (a sign, zeros past the scale) goes to [`encode_field`], which decides and says why.
#[inline(always)]
pub fn numeric_surely_fits(raw: &[u8], precision: u8, scale: u8) -> bool {
    let mut dot = usize::MAX;
    for (i, &b) in raw.iter().enumerate() {
        if b == b'.' && dot == usize::MAX {
            dot = i;
        } else if !b.is_ascii_digit() {
            return false;
        }
    }
    let (int_len, frac_len) = match dot {
        usize::MAX => (raw.len(), 0),
        i => (i, raw.len() - i - 1),
    };
    int_len + frac_len > 0
        && int_len <= precision.saturating_sub(scale) as usize
        && frac_len <= scale as usize
}

/// Checks a decimal against numeric(p,s) and appends its binary form (base-10000 digits).
fn encode_numeric<O: Out>(
    out: &mut O,
    raw: &[u8],
    precision: u8,
    scale: u8,
) -> Result<(), ValueError> {
    let bad = || ValueError::BadNumeric { value: show(raw) };
    let (neg, body) = match raw.first() {
        Some(b'-') => (true, &raw[1..]),
        Some(b'+') => (false, &raw[1..]),
        _ => (false, raw),
    };
    let (int_part, frac_part) = match memchr::memchr(b'.', body) {
        Some(i) => (&body[..i], &body[i + 1..]),
        None => (body, &body[..0]),
    };
    if int_part.is_empty() && frac_part.is_empty()
        || !int_part.iter().all(u8::is_ascii_digit)
        || !frac_part.iter().all(u8::is_ascii_digit)
    {
        return Err(bad());
    }
    let first_nonzero = int_part
        .iter()
        .position(|&b| b != b'0')
        .unwrap_or(int_part.len());
    let int_digits = &int_part[first_nonzero..];
    let frac_len = frac_part
        .iter()
        .rposition(|&b| b != b'0')
        .map_or(0, |i| i + 1);
    let frac_digits = &frac_part[..frac_len];
    if frac_digits.len() > scale as usize {
        return Err(ValueError::TooManyDecimals {
            value: show(raw),
            decimals: frac_digits.len(),
            precision,
            scale,
        });
    }
    if int_digits.len() > (precision - scale) as usize {
        return Err(ValueError::TooManyDigits {
            value: show(raw),
            digits: int_digits.len(),
            precision,
            scale,
        });
    }
    if !O::KEEPS {
        return Ok(());
    }
    // Base-10000 groups: the integer part aligned from the decimal point leftwards, the
    // fraction rightwards. p ≤ 6 here, but nothing below depends on that.
    let int_groups = int_digits.len().div_ceil(4);
    let frac_groups = frac_digits.len().div_ceil(4);
    // At most ceil((p-s)/4) + ceil(s/4) ≤ 255/4 + 2 groups: a stack array, so a numeric
    // field allocates nothing.
    let mut groups = [0i16; 66];
    let mut ng = 0;
    let pad = int_groups * 4 - int_digits.len();
    let mut acc = 0i16;
    for (i, &d) in int_digits.iter().enumerate() {
        acc = acc * 10 + (d - b'0') as i16;
        if (i + pad + 1) % 4 == 0 {
            groups[ng] = acc;
            ng += 1;
            acc = 0;
        }
    }
    for i in 0..frac_groups * 4 {
        let d = frac_digits.get(i).map_or(0, |&d| (d - b'0') as i16);
        acc = acc * 10 + d;
        if (i + 1) % 4 == 0 {
            groups[ng] = acc;
            ng += 1;
            acc = 0;
        }
    }
    let lead = groups[..ng].iter().take_while(|&&g| g == 0).count();
    let mut weight = int_groups as i16 - 1 - lead as i16;
    let mut digits = &groups[lead..ng];
    while let [rest @ .., 0] = digits {
        digits = rest;
    }
    let sign: u16 = if neg && !digits.is_empty() { 0x4000 } else { 0 };
    if digits.is_empty() {
        weight = 0;
    }
    out.int32(8 + 2 * digits.len() as i32);
    out.int16(digits.len() as i16);
    out.int16(weight);
    out.int16(sign as i16);
    out.int16(scale as i16);
    for &g in digits {
        out.int16(g);
    }
    Ok(())
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

    fn enc(raw: &str, kind: Kind) -> Result<Vec<u8>, ValueError> {
        enc_bytes(raw.as_bytes(), kind, Encoding::Utf8)
    }

    fn enc_bytes(raw: &[u8], kind: Kind, e: Encoding) -> Result<Vec<u8>, ValueError> {
        let mut out = BytesMut::new();
        encode_field(&mut out, raw, kind, false, e, &mut Vec::new())?;
        Ok(out.to_vec())
    }

    fn numeric(raw: &str, p: u8, s: u8) -> Result<(i16, i16, u16, i16, Vec<i16>), ValueError> {
        let b = enc(
            raw,
            Kind::Numeric {
                precision: p,
                scale: s,
            },
        )?;
        let w = |i: usize| crate::pgcopy::i16_at(&b, i).expect("a whole word");
        let n = w(4) as usize;
        let groups = (0..n).map(|k| w(12 + 2 * k)).collect();
        Ok((w(4), w(6), w(8) as u16, w(10), groups))
    }

    #[test]
    fn varchar_counts_characters_not_bytes() {
        let full = "Société Générale Zürich Ünïcôdé"; // 31 chars? keep it at 30 below
        let thirty: String = full.chars().take(30).collect();
        assert!(enc(&thirty, Kind::Varchar(30)).is_ok());
        let e = enc(&format!("{thirty}x"), Kind::Varchar(30)).unwrap_err();
        assert!(
            matches!(
                e,
                ValueError::TooWide {
                    chars: 31,
                    width: 30,
                    ..
                }
            ),
            "{e:?}"
        );
    }

    #[test]
    fn varchar_keeps_spaces_and_rejects_trailing_space_overflow() {
        let out = enc(" A B ", Kind::Varchar(5)).unwrap();
        assert_eq!(&out[4..], b" A B ");
        assert!(enc("ABCDE ", Kind::Varchar(5)).is_err());
    }

    #[test]
    fn quotes_and_backslashes_are_data() {
        let out = enc(r#"A "B" \C"#, Kind::Varchar(30)).unwrap();
        assert_eq!(&out[4..], br#"A "B" \C"#);
    }

    #[test]
    fn nul_and_bad_utf8_are_rejected() {
        assert!(matches!(
            enc("A\0B", Kind::Varchar(9)),
            Err(ValueError::Nul { .. })
        ));
        let e = enc_bytes(b"Caf\xE9", Kind::Varchar(9), Encoding::Utf8).unwrap_err();
        assert!(matches!(
            e,
            ValueError::InvalidUtf8 {
                byte: 0xE9,
                offset: 3,
                ..
            }
        ));
        assert!(e.to_string().contains("Caf\\xE9"), "{e}");
    }

    #[test]
    fn transcodes_latin1_and_cp1252() {
        let out = enc_bytes(b"Caf\xE9", Kind::Varchar(4), Encoding::Latin1).unwrap();
        assert_eq!(&out[4..], "Café".as_bytes());
        let out = enc_bytes(b"\x80\x93x\x94", Kind::Varchar(4), Encoding::Windows1252).unwrap();
        assert_eq!(&out[4..], "€“x”".as_bytes());
        // In true ISO-8859-1, 0x80 is the C1 control U+0080.
        let out = enc_bytes(b"\x80", Kind::Varchar(1), Encoding::Latin1).unwrap();
        assert_eq!(&out[4..], "\u{80}".as_bytes());
        assert!(matches!(
            enc_bytes(b"\x81", Kind::Varchar(1), Encoding::Windows1252),
            Err(ValueError::Undefined1252 { byte: 0x81, .. })
        ));
    }

    #[test]
    fn empty_is_null_except_in_keys() {
        assert_eq!(enc("", Kind::Date).unwrap(), (-1i32).to_be_bytes());
        let mut out = BytesMut::new();
        let e = encode_field(
            &mut out,
            b"",
            Kind::Varchar(6),
            true,
            Encoding::Utf8,
            &mut Vec::new(),
        );
        assert_eq!(e, Err(ValueError::EmptyKey));
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

    #[test]
    fn integers() {
        assert_eq!(parse_integer(b"42"), Ok(42));
        assert_eq!(parse_integer(b"-2147483648"), Ok(i32::MIN));
        assert_eq!(parse_integer(b"+7"), Ok(7));
        assert!(matches!(
            parse_integer(b"2147483648"),
            Err(ValueError::IntegerRange { .. })
        ));
        assert!(matches!(
            parse_integer(b"99999999999999999999"),
            Err(ValueError::IntegerRange { .. })
        ));
        assert!(matches!(
            parse_integer(b"4 2"),
            Err(ValueError::BadInteger { .. })
        ));
        assert!(matches!(
            parse_integer(b"-"),
            Err(ValueError::BadInteger { .. })
        ));
    }

    #[test]
    fn numerics_encode_exactly() {
        assert_eq!(numeric("5.25", 6, 3).unwrap(), (2, 0, 0, 3, vec![5, 2500]));
        assert_eq!(numeric("5.250", 6, 3).unwrap(), (2, 0, 0, 3, vec![5, 2500]));
        assert_eq!(
            numeric("5.2500", 6, 3).unwrap(),
            (2, 0, 0, 3, vec![5, 2500])
        );
        assert_eq!(numeric(".5", 6, 3).unwrap(), (1, -1, 0, 3, vec![5000]));
        assert_eq!(
            numeric("999.999", 6, 3).unwrap(),
            (2, 0, 0, 3, vec![999, 9990])
        );
        assert_eq!(
            numeric("-0.001", 6, 3).unwrap(),
            (1, -1, 0x4000, 3, vec![10])
        );
        assert_eq!(numeric("0", 6, 3).unwrap(), (0, 0, 0, 3, vec![]));
        assert_eq!(numeric("-0.000", 6, 3).unwrap(), (0, 0, 0, 3, vec![]));
        assert_eq!(
            numeric("9999.9", 5, 1).unwrap(),
            (2, 0, 0, 1, vec![9999, 9000])
        );
        assert_eq!(
            numeric("0012.5", 5, 1).unwrap(),
            (2, 0, 0, 1, vec![12, 5000])
        );
        assert_eq!(numeric("5.", 5, 1).unwrap(), (1, 0, 0, 1, vec![5]));
    }

    #[test]
    fn numerics_never_round() {
        let e = numeric("5.2505", 6, 3).unwrap_err();
        assert_eq!(
            e.to_string(),
            "\"5.2505\" has 4 decimals; numeric(6,3) allows 3"
        );
        let e = numeric("1234.5", 6, 3).unwrap_err();
        assert_eq!(
            e.to_string(),
            "\"1234.5\" has 4 integer digits; numeric(6,3) allows 3"
        );
        for bad in [".", "", "1e3", "1.2.3", " 5", "5 ", "--5", "+"] {
            if bad.is_empty() {
                continue;
            }
            assert!(
                matches!(numeric(bad, 6, 3), Err(ValueError::BadNumeric { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn show_escapes_what_a_terminal_would_mangle() {
        assert_eq!(show(b"a\tb\x01"), "a\\tb\\u{1}");
        assert_eq!(show(b"\xFFok"), "\\xFFok");
        assert!(show(&[b'x'; 500]).len() < 130);
    }
}
