//! What the fuzz targets check (issue 7), in one place: the cargo-fuzz targets in
//! `tests/fuzz/fuzz_targets/` call these functions, and the main crate's
//! `tests/fuzz_corpus.rs` compiles this same file (`#[path]`) to replay the committed corpus
//! on stable, without cargo-fuzz or nightly. So it uses only the loader's public API and
//! crates the main crate already depends on (bytes, chrono, tokio), and never `crate::`.
//!
//! Every check panics on a broken invariant; "no panic" alone is not the bar:
//!
//! - [`check_file`]: arbitrary bytes as a PIP file. The reader frames records exactly as an
//!   independent model of docs/design.md's rules does (`reader_model.rs`, which
//!   `tests/props.rs` holds the reader to as well), at several chunk sizes and (up to
//!   refusing a line that really is too long, or the one documented exception) line limits.
//!   Every field of every record, for each of the three layouts (the encoding rotating with
//!   the input's length), is accepted or rejected exactly as an independent oracle says
//!   (text: `str::from_utf8`, a Windows-1252 table written as characters,
//!   `chars().count()`; dates: chrono; integers: `str::parse::<i32>`; numerics: decimal
//!   strings and `str::parse::<f64>`), for the same reason, and an accepted value decodes
//!   from its binary COPY bytes to exactly that value (text: its bytes unchanged). The row
//!   encoder agrees field by field; the whole producer emits exactly those rows, or exactly
//!   those problems, every one with a line number except the missing trailer's; keys it
//!   reports ascending never repeat.
//! - [`check_value`]: one value through one converter, with the column type and its
//!   parameters (any valid varchar width, numeric precision and scale, key flag, encoding)
//!   taken from the first three bytes, against the same oracle.

use bytes::BytesMut;
use chrono::NaiveDate;

use cusip_loader::convert::{encode_field, encode_plain_text, Discard, Encoding, ValueError};
use cusip_loader::copy::{produce, produce_rows, ParseOptions, RowEncoder, MAX_PROBLEMS};
use cusip_loader::error::Problem;
use cusip_loader::layout::{Kind, Layout, ISSUE, ISSUER, ISSUE_ATTR};
use cusip_loader::parse::{Next, RecordReader, ShapeError};

mod reader_model;
use reader_model::SUB;
pub use reader_model::{model, physical_lines, Item};

pub const LAYOUTS: [&Layout; 3] = [&ISSUER, &ISSUE, &ISSUE_ATTR];
pub const ENCODINGS: [Encoding; 3] = [Encoding::Utf8, Encoding::Latin1, Encoding::Windows1252];

const COPY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

// ------------------------------------------------------------------------ the oracle

/// Why the oracle rejects a value (the loader's `ValueError` without its rendered text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Why {
    EmptyKey,
    Nul,
    InvalidUtf8 { byte: u8, offset: usize },
    Undefined1252 { byte: u8 },
    TooWide { chars: usize },
    BadDate,
    NoSuchDate,
    BadInteger,
    IntegerRange,
    BadNumeric,
    TooManyDecimals { decimals: usize },
    TooManyDigits { digits: usize },
}

impl Why {
    fn of(e: &ValueError) -> Why {
        match *e {
            ValueError::EmptyKey => Why::EmptyKey,
            ValueError::Nul { .. } => Why::Nul,
            ValueError::InvalidUtf8 { byte, offset, .. } => Why::InvalidUtf8 { byte, offset },
            ValueError::Undefined1252 { byte, .. } => Why::Undefined1252 { byte },
            ValueError::TooWide { chars, .. } => Why::TooWide { chars },
            ValueError::BadDate { .. } => Why::BadDate,
            ValueError::NoSuchDate { .. } => Why::NoSuchDate,
            ValueError::BadInteger { .. } => Why::BadInteger,
            ValueError::IntegerRange { .. } => Why::IntegerRange,
            ValueError::BadNumeric { .. } => Why::BadNumeric,
            ValueError::TooManyDecimals { decimals, .. } => Why::TooManyDecimals { decimals },
            ValueError::TooManyDigits { digits, .. } => Why::TooManyDigits { digits },
        }
    }
}

/// What a field must become, decided without the loader's code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Want {
    Null,
    /// UTF-8 text, stored byte for byte.
    Text(Vec<u8>),
    /// A date (days since 2000-01-01) or an integer.
    Int4(i32),
    /// A numeric: its sign and digits without leading or trailing zeros.
    Decimal {
        neg: bool,
        int: String,
        frac: String,
    },
    Reject(Why),
}

/// Windows-1252 bytes 0x80–0x9F as characters (the WHATWG table, where the five bytes
/// Microsoft leaves undefined map to the C1 controls of the same number; the loader
/// rejects those five).
const CP1252_80_9F: [char; 32] = [
    '€', '\u{81}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{8D}', 'Ž', '\u{8F}',
    '\u{90}', '‘', '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\u{9D}', 'ž', 'Ÿ',
];
const CP1252_UNDEFINED: [u8; 5] = [0x81, 0x8D, 0x8F, 0x90, 0x9D];

pub fn oracle(raw: &[u8], kind: Kind, key: bool, enc: Encoding) -> Want {
    if raw.is_empty() {
        return if key {
            Want::Reject(Why::EmptyKey)
        } else {
            Want::Null
        };
    }
    match kind {
        Kind::Varchar(width) => text_oracle(raw, width, enc),
        Kind::Date => date_oracle(raw),
        Kind::Integer => integer_oracle(raw),
        Kind::Numeric { precision, scale } => numeric_oracle(raw, precision, scale),
    }
}

fn text_oracle(raw: &[u8], width: u16, enc: Encoding) -> Want {
    if raw.contains(&0) {
        return Want::Reject(Why::Nul);
    }
    let text: String = match enc {
        Encoding::Utf8 => match std::str::from_utf8(raw) {
            Ok(s) => s.to_string(),
            Err(e) => {
                let offset = e.valid_up_to();
                return Want::Reject(Why::InvalidUtf8 {
                    byte: raw[offset],
                    offset,
                });
            }
        },
        Encoding::Latin1 => raw.iter().map(|&b| char::from(b)).collect(),
        Encoding::Windows1252 => {
            let mut s = String::new();
            for &b in raw {
                if CP1252_UNDEFINED.contains(&b) {
                    return Want::Reject(Why::Undefined1252 { byte: b });
                }
                s.push(match b {
                    0x80..=0x9F => CP1252_80_9F[usize::from(b - 0x80)],
                    _ => char::from(b),
                });
            }
            s
        }
    };
    let chars = text.chars().count();
    if chars > usize::from(width) {
        return Want::Reject(Why::TooWide { chars });
    }
    Want::Text(text.into_bytes())
}

/// `YYYY-MM-DD`, `YYYYMMDD` or `MM/DD/YYYY` (`9` is any ASCII digit); all zero is NULL;
/// otherwise chrono decides whether the date exists and how many days it is from
/// 2000-01-01. PostgreSQL has no year 0.
fn date_oracle(raw: &[u8]) -> Want {
    let forms: [(&str, [(usize, usize); 3]); 3] = [
        ("9999-99-99", [(0, 4), (5, 7), (8, 10)]),
        ("99999999", [(0, 4), (4, 6), (6, 8)]),
        ("99/99/9999", [(6, 10), (0, 2), (3, 5)]),
    ];
    for (pattern, [y, m, d]) in forms {
        let fits = raw.len() == pattern.len()
            && raw.iter().zip(pattern.bytes()).all(|(&b, p)| match p {
                b'9' => b.is_ascii_digit(),
                _ => b == p,
            });
        if !fits {
            continue;
        }
        let Ok(s) = std::str::from_utf8(raw) else {
            unreachable!("an ASCII pattern matched");
        };
        let num = |(a, b): (usize, usize)| s[a..b].parse::<u32>().expect("digits");
        let (y, m, d) = (num(y), num(m), num(d));
        if (y, m, d) == (0, 0, 0) {
            return Want::Null;
        }
        let epoch = NaiveDate::from_ymd_opt(2000, 1, 1).expect("2000-01-01");
        return match NaiveDate::from_ymd_opt(y as i32, m, d) {
            Some(date) if y >= 1 => Want::Int4((date - epoch).num_days() as i32),
            _ => Want::Reject(Why::NoSuchDate),
        };
    }
    Want::Reject(Why::BadDate)
}

/// Optional sign and ASCII digits; the value is whatever `str::parse::<i32>` says.
fn integer_oracle(raw: &[u8]) -> Want {
    let Ok(s) = std::str::from_utf8(raw) else {
        return Want::Reject(Why::BadInteger);
    };
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    if body.is_empty() || !body.chars().all(|c| c.is_ascii_digit()) {
        return Want::Reject(Why::BadInteger);
    }
    match s.parse::<i32>() {
        Ok(n) => Want::Int4(n),
        Err(_) => Want::Reject(Why::IntegerRange),
    }
}

/// Plain decimal text: optional sign, digits, at most one point, at least one digit. More
/// than `scale` decimals once trailing zeros go is an error (checked first), as is more
/// than `precision - scale` integer digits once leading zeros go.
fn numeric_oracle(raw: &[u8], precision: u8, scale: u8) -> Want {
    let Ok(s) = std::str::from_utf8(raw) else {
        return Want::Reject(Why::BadNumeric);
    };
    let neg = s.starts_with('-');
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    let digits = |t: &str| t.chars().all(|c| c.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !digits(int) || !digits(frac) {
        return Want::Reject(Why::BadNumeric);
    }
    let int = int.trim_start_matches('0');
    let frac = frac.trim_end_matches('0');
    if frac.len() > usize::from(scale) {
        return Want::Reject(Why::TooManyDecimals {
            decimals: frac.len(),
        });
    }
    if int.len() > usize::from(precision - scale) {
        return Want::Reject(Why::TooManyDigits { digits: int.len() });
    }
    // Whatever the loader accepts, Rust's float parser must take too.
    assert!(s.parse::<f64>().is_ok(), "{s:?} is not a number to Rust");
    Want::Decimal {
        neg: neg && !(int.is_empty() && frac.is_empty()),
        int: int.to_string(),
        frac: frac.to_string(),
    }
}

// ------------------------------------------------------------- reading COPY values back

fn be16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// A binary numeric value as (negative, integer digits, fraction digits), with leading and
/// trailing zeros stripped, after checking it is well formed and normalised.
fn decode_numeric(v: &[u8], scale: u8) -> (bool, String, String) {
    assert!(v.len() >= 8, "numeric of {} bytes", v.len());
    let (ndigits, weight, sign, dscale) = (be16(v, 0), be16(v, 2), be16(v, 4) as u16, be16(v, 6));
    assert!(ndigits >= 0 && v.len() == 8 + 2 * ndigits as usize, "{v:?}");
    assert!(sign == 0 || sign == 0x4000, "sign {sign:#x}");
    assert_eq!(dscale, i16::from(scale), "dscale");
    let groups: Vec<i32> = (0..ndigits as usize)
        .map(|k| i32::from(be16(v, 8 + 2 * k)))
        .collect();
    assert!(groups.iter().all(|g| (0..10_000).contains(g)), "{groups:?}");
    if groups.is_empty() {
        assert!(
            sign == 0 && weight == 0,
            "zero is positive, weight 0: {v:?}"
        );
        return (false, String::new(), String::new());
    }
    assert!(
        groups[0] != 0 && groups[groups.len() - 1] != 0,
        "not normalised: {groups:?}"
    );
    let (n, weight) = (groups.len() as i32, i32::from(weight));
    let group = |exp: i32| {
        let k = weight - exp;
        if (0..n).contains(&k) {
            groups[k as usize]
        } else {
            0
        }
    };
    let int: String = (0..=weight.max(-1))
        .rev()
        .map(|e| format!("{:04}", group(e)))
        .collect();
    let frac: String = (weight - n + 1..=-1)
        .rev()
        .map(|e| format!("{:04}", group(e)))
        .collect();
    (
        sign == 0x4000,
        int.trim_start_matches('0').to_string(),
        frac.trim_end_matches('0').to_string(),
    )
}

/// Checks one encoded field (length word and value) against what the oracle wants.
fn check_encoded(field: &[u8], want: &Want, kind: Kind, raw: &[u8]) {
    assert!(field.len() >= 4, "{raw:?}: no length word");
    let len = be32(field, 0);
    let value = &field[4..];
    if *want == Want::Null {
        assert_eq!((len, value.len()), (-1, 0), "{raw:?} must be NULL");
        return;
    }
    assert_eq!(len as usize, value.len(), "{raw:?}: length word");
    match (want, kind) {
        (Want::Text(t), Kind::Varchar(_)) => {
            assert_eq!(value, &t[..], "{kind} {raw:?}: stored bytes differ")
        }
        (Want::Int4(n), Kind::Date | Kind::Integer) => {
            assert_eq!(value.len(), 4, "{kind} {raw:?}");
            assert_eq!(be32(value, 0), *n, "{kind} {raw:?}");
        }
        (Want::Decimal { neg, int, frac }, Kind::Numeric { scale, .. }) => {
            let (dneg, dint, dfrac) = decode_numeric(value, scale);
            assert_eq!(
                (dneg, dint.as_str(), dfrac.as_str()),
                (*neg, int.as_str(), frac.as_str()),
                "{kind} {raw:?}"
            );
            // And numerically, as Rust's float parser reads both texts.
            let text = String::from_utf8_lossy(raw);
            let back = format!("{}{}.{}", if dneg { "-" } else { "" }, dint, dfrac);
            let back = if dint.is_empty() && dfrac.is_empty() {
                "0".to_string()
            } else {
                back
            };
            assert_eq!(text.parse::<f64>().ok(), back.parse::<f64>().ok(), "{text}");
        }
        _ => panic!("{kind} {raw:?}: the oracle wants {want:?}"),
    }
}

/// One field through `encode_field` (and, for plain ASCII text, `encode_plain_text`, which
/// must agree), checked against the oracle. Returns the encoded field or the message.
pub fn check_field(raw: &[u8], kind: Kind, key: bool, enc: Encoding) -> Result<Vec<u8>, String> {
    let want = oracle(raw, kind, key, enc);
    let mut out = BytesMut::new();
    // Scratch space left dirty by an earlier field must not leak into this one.
    let mut scratch = b"left over".to_vec();
    let got = encode_field(&mut out, raw, kind, key, enc, &mut scratch);
    if let Kind::Varchar(width) = kind {
        if raw.is_ascii() && !raw.contains(&0) {
            let mut plain = BytesMut::new();
            let got_plain = encode_plain_text(&mut plain, raw, width, key);
            assert_eq!(
                got_plain, got,
                "plain and general text paths differ: {raw:?}"
            );
            if got.is_ok() {
                assert_eq!(plain, out, "plain and general text paths differ: {raw:?}");
            }
        }
    }
    match (got, &want) {
        (Err(e), Want::Reject(why)) => {
            assert_eq!(&Why::of(&e), why, "{kind} key={key} {enc:?} {raw:?}: {e}");
            let msg = e.to_string();
            assert!(
                !msg.contains(['\n', '\r']) && msg.len() <= 400,
                "an error message must be one short line: {msg:?}"
            );
            Err(msg)
        }
        (Err(e), _) => panic!("{kind} key={key} {enc:?} {raw:?}: rejected ({e}); want {want:?}"),
        (Ok(()), Want::Reject(why)) => {
            panic!("{kind} key={key} {enc:?} {raw:?}: accepted; want {why:?}")
        }
        (Ok(()), _) => {
            check_encoded(&out, &want, kind, raw);
            Ok(out.to_vec())
        }
    }
}

// ------------------------------------------------------------------------- framing

/// Everything the reader yields with the given chunk size and line limit.
pub fn read_all(input: &[u8], chunk: usize, max_line: usize) -> Vec<Item> {
    let mut r = RecordReader::with_limits(input, chunk, max_line);
    let mut out = Vec::new();
    loop {
        let last_line = r.lines();
        match r.next_record() {
            Ok(Next::Record { line, data }) => out.push(Item::Record(line, data.to_vec())),
            Ok(Next::Trailer { line }) => out.push(Item::Trailer(line)),
            Ok(Next::End) => {
                assert_eq!(r.offset(), input.len() as u64, "stopped before the end");
                // A last line of only CR and 0x1A bytes after a final 0x1A may go uncounted.
                let lines = physical_lines(input);
                let last = input.rsplit(|&b| b == b'\n').next().unwrap_or(&[]);
                assert!(
                    r.lines() == lines
                        || r.lines() + 1 == lines && last.iter().all(|&b| matches!(b, b'\r' | SUB)),
                    "{} lines counted of {lines}",
                    r.lines()
                );
                return out;
            }
            Err(ShapeError::LineTooLong { line, limit }) => {
                assert_eq!(limit, max_line);
                assert!(line > last_line, "line {line} was already read");
                out.push(Item::TooLong(line));
                return out;
            }
            Err(ShapeError::DataAfterTrailer { line }) => {
                out.push(Item::AfterTrailer(line));
                return out;
            }
            Err(e) => panic!("a reader of a byte slice failed: {e}"),
        }
        if let Some(Item::Record(line, _) | Item::Trailer(line)) = out.last() {
            assert!(*line > last_line && *line <= r.lines(), "line {line}");
        }
    }
}

/// With a small line limit the reader yields what the model does, up to refusing a line
/// that really is at least that long.
fn check_line_limit(input: &[u8], want: &[Item], chunk: usize, max_line: usize) {
    let got = read_all(input, chunk, max_line);
    let Some(Item::TooLong(l)) = got.last() else {
        assert_eq!(got, want, "line limit {max_line}, chunk {chunk}");
        return;
    };
    let before = &got[..got.len() - 1];
    assert_eq!(Some(before), want.get(..before.len()), "limit {max_line}");
    let lines: Vec<&[u8]> = input.split(|&b| b == b'\n').collect();
    let len = lines.get(*l as usize - 1).map_or(0, |x| x.len());
    if len >= max_line {
        return;
    }
    // Or the one documented exception, found by this target (the input is
    // `regressions/records/blank-run-after-a-0x1a-line`); since then blank lines alone never
    // count.
    assert!(
        reader_model::refused_past_a_0x1a_line(input, *l, max_line),
        "line {l} of {len} bytes refused as longer than {max_line} (chunk {chunk})"
    );
}

// -------------------------------------------------------------------------- records

/// Splits a record on `|` the obvious way.
fn naive_split(data: &[u8]) -> Vec<&[u8]> {
    data.split(|&b| b == b'|').collect()
}

/// One record through `enc` (reused across records, as the producer does), checked field
/// by field against [`check_field`]. Returns the row's bytes and its problems.
fn check_row(
    enc: &mut RowEncoder,
    layout: &'static Layout,
    e: Encoding,
    line: u64,
    data: &[u8],
) -> (Vec<u8>, Vec<Problem>) {
    let mut out = BytesMut::from(&b"before"[..]);
    let mut problems = vec![Problem::file("earlier")];
    let ok = enc.encode(&mut out, line, data, &mut problems);
    let new_problems = problems.split_off(1);
    // `--validate-only` runs the same checks writing nothing (and takes a short cut for
    // plain records): it must come to exactly the same verdict and messages.
    let mut checked = Vec::new();
    let checked_ok = RowEncoder::new(layout, e).encode(&mut Discard, line, data, &mut checked);
    assert_eq!(
        (checked_ok, &checked),
        (ok, &new_problems),
        "--validate-only disagrees"
    );
    let fields = naive_split(data);
    let n = layout.columns.len();
    if fields.len() != n {
        assert!(
            !ok && &out[..] == b"before",
            "{} fields accepted as a {}",
            fields.len(),
            layout.table
        );
        assert_eq!(new_problems.len(), 1, "{new_problems:?}");
        let p = &new_problems[0];
        assert_eq!((p.line, p.column.as_deref()), (Some(line), None));
        assert!(
            p.message
                .starts_with(&format!("has {} fields; a", fields.len()))
                && p.message.ends_with(&format!(" record has {n}")),
            "{p:?}"
        );
        return (Vec::new(), new_problems);
    }
    let mut want_row = Vec::new();
    want_row.extend_from_slice(&(n as i16 + 1).to_be_bytes());
    want_row.extend_from_slice(&8i32.to_be_bytes());
    want_row.extend_from_slice(&(line as i64).to_be_bytes());
    let mut want_problems = Vec::new();
    for (col, raw) in layout.columns.iter().zip(&fields) {
        match check_field(raw, col.kind, col.key, e) {
            Ok(bytes) => want_row.extend_from_slice(&bytes),
            Err(msg) => want_problems.push(Problem::at(line, Some(col.name), msg)),
        }
    }
    assert_eq!(
        new_problems, want_problems,
        "{} {e:?} line {line}",
        layout.table
    );
    assert_eq!(ok, want_problems.is_empty());
    if ok {
        assert_eq!(&out[..6], b"before");
        assert_eq!(
            &out[6..],
            &want_row[..],
            "{} {e:?} line {line}",
            layout.table
        );
        (want_row, new_problems)
    } else {
        assert_eq!(&out[..], b"before", "a rejected row left bytes behind");
        (Vec::new(), new_problems)
    }
}

/// Arbitrary bytes as a PIP file. See the module documentation.
pub fn check_file(input: &[u8]) {
    let n = input.len();
    let want = model(input);
    // First the whole input in one read, as the loader's 1 MiB buffer reads any input of
    // this size (without allocating 1 MiB per call, which is slow under ASan); then the
    // same framing wherever chunk boundaries fall.
    for chunk in [(n + 1).max(16), 16, 16 + n % 41] {
        assert_eq!(read_all(input, chunk, 1 << 20), want, "chunk {chunk}");
    }
    check_line_limit(input, &want, 16, 64);
    let chunk = 16 + n % 23;
    check_line_limit(input, &want, chunk, chunk + n % 97);

    // Every record through the row encoder of each layout, the encoding rotating with the
    // input's length (the values target covers every encoding for every column type), and
    // the whole producer (2 MiB of buffers per call) for one of the layouts.
    let lines = physical_lines(input);
    for (l, layout) in LAYOUTS.into_iter().enumerate() {
        let e = ENCODINGS[(l + n / 3) % 3];
        let mut x = expect_produced(&want, layout, e);
        if l != n % 3 {
            continue;
        }
        let allow_missing_trailer = (n / 9) % 2 == 1;
        if x.needs_trailer && !allow_missing_trailer {
            x.problems.push(Problem::file(
                ShapeError::MissingTrailer {
                    lines: lines_read(input),
                }
                .to_string(),
            ));
        }
        let (tx, mut rx) = tokio::sync::mpsc::channel(64);
        let opts = ParseOptions {
            encoding: e,
            allow_missing_trailer,
        };
        let p = produce(input, layout, opts, tx, &|_, _| {});
        let mut sent = Vec::new();
        while let Ok(c) = rx.try_recv() {
            sent.extend_from_slice(&c);
        }
        assert!(p.read_error.is_none() && !p.abandoned);
        assert_eq!(p.bytes, input.len() as u64);
        // Every problem carries its line, except the one about the whole file.
        for pr in &p.problems {
            match pr.line {
                Some(l) => assert!(l >= 1 && l <= lines, "line {l} of {lines}: {pr:?}"),
                None => assert!(
                    pr.column.is_none() && pr.message.contains("without the 999999 trailer"),
                    "a problem without a line: {pr:?}"
                ),
            }
        }
        assert_eq!(p.problems, x.problems, "{} {e:?}", layout.table);
        assert_eq!(p.more_problems, x.more);
        // `--validate-only`, which takes good plain records in bulk, finds the same.
        let (tx, _rx) = tokio::sync::mpsc::channel(1);
        let enc = RowEncoder::new(layout, e);
        let v = produce_rows(input, enc, Discard, None, opts, tx, &|_, _| {});
        assert_eq!(
            v.problems, x.problems,
            "validate-only {} {e:?}",
            layout.table
        );
        assert_eq!((v.more_problems, v.bytes), (x.more, p.bytes));
        if x.problems.is_empty() {
            assert_eq!(v.records, x.records);
        }
        if x.problems.is_empty() {
            assert_eq!(p.records, x.records);
            let mut full = COPY_HEADER.to_vec();
            full.extend_from_slice(&x.rows);
            full.extend_from_slice(&(-1i16).to_be_bytes());
            assert!(
                sent == full,
                "{} {e:?}: the COPY stream differs",
                layout.table
            );
            for (row, line) in x.record_lines.iter().enumerate() {
                assert_eq!(p.line_map.line_of(row as u64 + 1), Some(*line));
            }
            // Keys seen to ascend let the loader skip looking for repeated keys: then no
            // key may repeat.
            if p.keys_ascending {
                let nkeys = layout.key_names().len();
                let mut keys: Vec<Vec<&[u8]>> = want
                    .iter()
                    .filter_map(|i| match i {
                        Item::Record(_, data) => Some(naive_split(data)[..nkeys].to_vec()),
                        _ => None,
                    })
                    .collect();
                let all = keys.len();
                keys.sort();
                keys.dedup();
                assert_eq!(keys.len(), all, "a repeated key while keys_ascending");
            }
        } else {
            assert!(sent.is_empty(), "a rejected small file sent COPY data");
        }
    }
}

/// What the producer must yield for a file framed as `want`.
struct Expected {
    rows: Vec<u8>,
    record_lines: Vec<u64>,
    problems: Vec<Problem>,
    more: bool,
    records: u64,
    /// The file ended without a trailer (a problem unless that is allowed).
    needs_trailer: bool,
}

/// Every record of `want` through one row encoder (reused, as the producer does), checked
/// field by field, and what the producer must therefore report.
fn expect_produced(want: &[Item], layout: &'static Layout, e: Encoding) -> Expected {
    let mut enc = RowEncoder::new(layout, e);
    let mut x = Expected {
        rows: Vec::new(),
        record_lines: Vec::new(),
        problems: Vec::new(),
        more: false,
        records: 0,
        needs_trailer: true,
    };
    for item in want {
        match item {
            Item::Record(line, data) => {
                x.records += 1;
                let (row, p) = check_row(&mut enc, layout, e, *line, data);
                if p.is_empty() {
                    x.rows.extend_from_slice(&row);
                    x.record_lines.push(*line);
                }
                x.problems.extend(p);
                if x.problems.len() >= MAX_PROBLEMS {
                    x.problems.truncate(MAX_PROBLEMS);
                    x.more = true;
                    x.needs_trailer = false;
                    return x;
                }
            }
            Item::Trailer(_) => x.needs_trailer = false,
            Item::TooLong(_) => unreachable!("the model has no line limit"),
            Item::AfterTrailer(line) => {
                x.problems.push(Problem::at(
                    *line,
                    None,
                    ShapeError::DataAfterTrailer { line: *line }.to_string(),
                ));
                x.needs_trailer = false;
                return x;
            }
        }
    }
    x
}

/// The line count the reader reports at the end (a lone 0x1A after the last newline is
/// not a line).
fn lines_read(input: &[u8]) -> u64 {
    let mut r = RecordReader::with_limits(input, 64, 1 << 20);
    while let Ok(Next::Record { .. } | Next::Trailer { .. }) = r.next_record() {}
    r.lines()
}

// --------------------------------------------------------------------------- values

/// One value through one converter. Byte 0 picks the type (bits 0–1: varchar, date,
/// integer, numeric), the key flag (bit 2) and the encoding (bits 3–4); bytes 1–2 give the
/// varchar width (byte 1 alone, 1–127, when its high bit is clear, else both, little-endian)
/// or the numeric precision (byte 1, 1–255) and scale (byte 2, 0–precision: the typmods
/// PostgreSQL accepts, as far as `u8` reaches). The rest is the field's text.
pub fn check_value(data: &[u8]) {
    let [sel, a, b, raw @ ..] = data else {
        return;
    };
    let kind = match sel & 3 {
        0 if a & 0x80 == 0 => Kind::Varchar(u16::from(*a).max(1)),
        0 => Kind::Varchar(u16::from_le_bytes([*a & 0x7F, *b]).max(1)),
        1 => Kind::Date,
        2 => Kind::Integer,
        _ => {
            let precision = (*a).max(1);
            let scale = (u16::from(*b) % (u16::from(precision) + 1)) as u8;
            Kind::Numeric { precision, scale }
        }
    };
    let key = sel & 4 != 0;
    let enc = ENCODINGS[usize::from((sel >> 3) & 3) % 3];
    let _ = check_field(raw, kind, key, enc);
}
