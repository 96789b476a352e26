//! Integer and numeric fields, checked to fit their column exactly and never rounded.
//!
//! The server would round a numeric with too many decimals without a word, so the decimal
//! text is checked against `numeric(p,s)` here and written as PostgreSQL's own base-10000
//! digits, built on the stack. [`numeric_surely_fits`] is the branch-light yes that
//! `--validate-only` asks first; every no goes to the full check, which says why.

use super::{show, Out, ValueError};

/// Appends an integer field, or says why the text is not an `integer`.
#[inline]
pub(super) fn encode_integer<O: Out>(out: &mut O, raw: &[u8]) -> Result<(), ValueError> {
    let n = parse_integer(raw)?;
    out.int32(4);
    out.int32(n);
    Ok(())
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
/// take (a sign, zeros past the scale) goes to [`super::encode_field`], which decides and
/// says why.
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
pub(super) fn encode_numeric<O: Out>(
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
    use crate::convert::tests::enc;
    use crate::layout::Kind;

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
}
