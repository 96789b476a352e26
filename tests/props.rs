//! Property tests (issue 7).
//!
//! 1. Arbitrary bytes (delimiters, line endings, 0x1A, `999999`, invalid UTF-8, NULs) through
//!    the record reader and the row encoder never panic; the reader frames records exactly as
//!    an independent model of the format does (`fuzz/src/reader_model.rs`, the one the fuzz
//!    checks use too), at any chunk size; every problem carries its
//!    line (and its column when a field is at fault); every row that is accepted encodes to
//!    well-formed binary COPY holding the field's bytes unchanged.
//! 2. Arbitrary valid records of all three layouts, generated from the layouts' column kinds
//!    (full-width multibyte text, edge dates, integer limits, numerics at their precision,
//!    empty fields), written to files and loaded by the real binary into a fresh database,
//!    read back with SELECT: every value round-trips exactly.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use bytes::BytesMut;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use cusip_loader::convert::{Discard, Encoding};
use cusip_loader::copy::{produce, produce_rows, ParseOptions, RowEncoder};
use cusip_loader::error::Problem;
use cusip_loader::layout::{Column, Kind, Layout, ISSUE, ISSUER, ISSUE_ATTR};
use cusip_loader::parse::{Next, RecordReader, ShapeError};

use common::*;

#[path = "fuzz/src/reader_model.rs"]
mod reader_model;
use reader_model::{model, physical_lines, refused_past_a_0x1a_line, Item, SUB};

const LAYOUTS: [&Layout; 3] = [&ISSUER, &ISSUE, &ISSUE_ATTR];
const ENCODINGS: [Encoding; 3] = [Encoding::Utf8, Encoding::Latin1, Encoding::Windows1252];

// ------------------------------------------------------------------ arbitrary input bytes

/// One plausible or hostile field value, as bytes.
fn field_bytes() -> impl Strategy<Value = Vec<u8>> {
    let fixed: Vec<&'static [u8]> = vec![
        b"",
        b"A",
        b"C",
        b"999999",
        b"0000-00-00",
        b"00000000",
        b"00/00/0000",
        b"2000-02-29",
        b"1900-02-29",
        b"0001-01-01",
        b"9999-12-31",
        b"12/31/9999",
        b"20240230",
        b"2147483647",
        b"-2147483648",
        b"2147483648",
        b"+0",
        b"-",
        b"999.999",
        b"-999.999",
        b"1000.0",
        b"5.2505",
        b"5.25000000",
        b".5",
        b"5.",
        b".",
        b"1e3",
        b"9999.9",
        b" 5",
        "Société Générale Zürich Ünïcôd".as_bytes(),
        "中文中文中文".as_bytes(),
        "😀😀".as_bytes(),
        b"\xC3",
        b"\xE4\xB8",
        b"\xF0\x9F\x98",
        b"\xFF\xFE",
        b"\x80\x81\x8D\x8F\x90\x9D",
        b"A\0B",
        b"\\N",
        b"'); DROP TABLE issuer; --",
        b"\x1a",
        b"\r",
    ];
    prop_oneof![
        6 => proptest::sample::select(fixed).prop_map(|b| b.to_vec()),
        3 => "[ -{}~]{0,12}".prop_map(String::into_bytes),
        2 => prop::collection::vec(any::<u8>(), 0..8),
        1 => (1usize..70, any::<u8>()).prop_map(|(n, b)| vec![b; n]),
        1 => prop::collection::vec(proptest::sample::select(vec!['é', '中', '😀', ' ', 'x']), 28..=31)
            .prop_map(|cs| cs.into_iter().collect::<String>().into_bytes()),
    ]
}

/// A record of about `n` fields (sometimes one too few or too many).
fn record_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![Just(16usize), Just(17), Just(53), 0usize..60]
        .prop_flat_map(|n| {
            let lo = n.saturating_sub(1);
            prop::collection::vec(field_bytes(), lo..=n + 1)
        })
        .prop_map(|fields| fields.join(&b'|'))
}

/// A small file: records, line endings, blank lines, trailers and raw junk, concatenated.
fn file_bytes() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        6 => record_bytes(),
        4 => Just(b"\n".to_vec()),
        2 => Just(b"\r\n".to_vec()),
        1 => Just(b"\r".to_vec()),
        1 => Just(vec![SUB]),
        1 => Just(b"\n\x1a".to_vec()),
        1 => Just(b"\x1a\r\n".to_vec()),
        1 => Just(b"999999|TRAILER|3\n".to_vec()),
        1 => Just(b"999999".to_vec()),
        2 => Just(b"|".to_vec()),
        2 => prop::collection::vec(any::<u8>(), 0..16),
    ];
    prop::collection::vec(piece, 0..24).prop_map(|p| p.concat())
}

/// Reads everything with the given chunk and line limits.
fn read_all(input: &[u8], chunk: usize, max_line: usize) -> (Vec<Item>, u64) {
    let mut r = RecordReader::with_limits(input, chunk, max_line);
    let mut out = Vec::new();
    loop {
        match r.next_record() {
            Ok(Next::Record { line, data }) => out.push(Item::Record(line, data.to_vec())),
            Ok(Next::Trailer { line }) => out.push(Item::Trailer(line)),
            Ok(Next::End) => return (out, r.offset()),
            Err(ShapeError::LineTooLong { line, .. }) => {
                out.push(Item::TooLong(line));
                return (out, r.offset());
            }
            Err(ShapeError::DataAfterTrailer { line }) => {
                out.push(Item::AfterTrailer(line));
                return (out, r.offset());
            }
            Err(e) => panic!("unexpected reader error on a slice: {e}"),
        }
    }
}

fn be_i16(b: &[u8], at: &mut usize) -> i16 {
    let v = i16::from_be_bytes([b[*at], b[*at + 1]]);
    *at += 2;
    v
}

fn be_i32(b: &[u8], at: &mut usize) -> i32 {
    let v = i32::from_be_bytes(b[*at..*at + 4].try_into().unwrap());
    *at += 4;
    v
}

/// Decoded COPY rows: each row's line number and its fields (None for NULL).
type Rows = Vec<(i64, Vec<Option<Vec<u8>>>)>;

/// Decodes binary COPY rows from `b[*at..]` for `layout`, checking every value is well
/// formed for its column, until the end marker (true) or the bytes run out (false).
/// Returns each row's line number and its fields (None for NULL).
fn decode_rows(b: &[u8], at: &mut usize, layout: &Layout) -> Result<(Rows, bool), TestCaseError> {
    let mut rows = Vec::new();
    while *at < b.len() {
        let n = be_i16(b, at);
        if n == -1 {
            return Ok((rows, true));
        }
        prop_assert_eq!(n as usize, layout.columns.len() + 1, "field count word");
        prop_assert_eq!(be_i32(b, at), 8, "the line number is an int8");
        let line = i64::from_be_bytes(b[*at..*at + 8].try_into().unwrap());
        *at += 8;
        prop_assert!(line >= 1);
        let mut fields = Vec::new();
        for col in layout.columns {
            let len = be_i32(b, at);
            if len == -1 {
                prop_assert!(!col.key, "{} is a key column but NULL", col.name);
                fields.push(None);
                continue;
            }
            prop_assert!(len >= 0);
            let v = b[*at..*at + len as usize].to_vec();
            *at += len as usize;
            match col.kind {
                Kind::Varchar(w) => {
                    let s = std::str::from_utf8(&v);
                    prop_assert!(s.is_ok(), "{}: not UTF-8: {:?}", col.name, v);
                    let s = s.unwrap();
                    prop_assert!(s.chars().count() <= w as usize, "{} over width", col.name);
                    prop_assert!(!s.contains('\0'), "{}: NUL", col.name);
                }
                Kind::Date | Kind::Integer => prop_assert_eq!(v.len(), 4, "{}", col.name),
                Kind::Numeric { scale, .. } => {
                    prop_assert!(v.len() >= 8);
                    let mut k = 0;
                    let ndigits = be_i16(&v, &mut k);
                    let _weight = be_i16(&v, &mut k);
                    let sign = be_i16(&v, &mut k) as u16;
                    let dscale = be_i16(&v, &mut k);
                    prop_assert_eq!(v.len(), 8 + 2 * ndigits as usize);
                    prop_assert!(sign == 0 || sign == 0x4000, "sign {:x}", sign);
                    prop_assert_eq!(dscale, scale as i16);
                    for _ in 0..ndigits {
                        let d = be_i16(&v, &mut k);
                        prop_assert!((0..10000).contains(&d), "base-10000 digit {}", d);
                    }
                }
            }
            fields.push(Some(v));
        }
        rows.push((line, fields));
    }
    Ok((rows, false))
}

/// Every problem is located: a line within the file, and a column of this layout when a
/// field is at fault; only the missing trailer is about the whole file.
fn check_problem(p: &Problem, layout: &Layout, lines: u64) -> Result<(), TestCaseError> {
    match (p.line, &p.column) {
        (Some(l), Some(c)) => {
            prop_assert!(l >= 1 && l <= lines, "line {} of {}: {:?}", l, lines, p);
            prop_assert!(
                layout.columns.iter().any(|col| col.name == c),
                "unknown column {:?}",
                p
            );
        }
        (Some(l), None) => {
            prop_assert!(l >= 1 && l <= lines, "line {} of {}: {:?}", l, lines, p);
            prop_assert!(
                p.message.contains(" fields; a")
                    || p.message.contains("is longer than")
                    || p.message.contains("follows the 999999 trailer"),
                "a record problem that is not about the record's shape: {:?}",
                p
            );
        }
        (None, None) => {
            // The last "line" may be a lone 0x1A, which is not counted.
            let at: Option<u64> = p
                .message
                .split("ends at line ")
                .nth(1)
                .and_then(|r| r.split(' ').next())
                .and_then(|n| n.parse().ok());
            prop_assert!(
                p.message.contains("without the 999999 trailer")
                    && at.is_some_and(|n| n <= lines && n + 1 >= lines),
                "a file-level problem other than the missing trailer: {:?} ({} lines)",
                p,
                lines
            );
        }
        (None, Some(_)) => prop_assert!(false, "a column without a line: {:?}", p),
    }
    Ok(())
}

/// The fields of a record, split the obvious way.
fn naive_split(data: &[u8]) -> Vec<&[u8]> {
    data.split(|&b| b == b'|').collect()
}

/// Cases per property: `PROPTEST_CASES` for a longer run, else `default`.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

proptest! {
    #![proptest_config(Config { cases: cases(512), failure_persistence: None, ..Config::default() })]

    /// The reader frames records exactly as the model does, at every chunk size.
    #[test]
    fn the_reader_frames_records_like_the_model(input in file_bytes(), chunk in 16usize..80) {
        let want = model(&input);
        let (big, offset) = read_all(&input, 1 << 20, 1 << 20);
        prop_assert_eq!(&big, &want);
        if !matches!(want.last(), Some(Item::AfterTrailer(_))) {
            prop_assert_eq!(offset, input.len() as u64, "everything is read");
        }
        // The same bytes are framed the same way wherever chunk boundaries fall (a record
        // ending in 0x1A mid-file once lost the blank bytes after it at a boundary).
        let (small, _) = read_all(&input, chunk, 1 << 20);
        prop_assert_eq!(&small, &want, "chunk size {}", chunk);
        // With a tiny line limit the result is the same up to a refusal of a line that
        // really is that long.
        let (tiny, _) = read_all(&input, 16, 64);
        let lines: Vec<&[u8]> = input.split(|&b| b == b'\n').collect();
        match tiny.last() {
            Some(Item::TooLong(l)) => {
                let before = &tiny[..tiny.len() - 1];
                prop_assert_eq!(Some(before), want.get(..before.len()));
                let len = lines.get(*l as usize - 1).map_or(0, |x| x.len());
                // Or the reader, looking past a record ending in 0x1A for the end of the
                // file, had to keep 64 bytes from a line of CR and 0x1A bytes on.
                prop_assert!(
                    len >= 64 || refused_past_a_0x1a_line(&input, *l, 64),
                    "line {} of {} bytes refused as too long", l, len
                );
            }
            _ => prop_assert_eq!(&tiny, &want),
        }
    }

    /// The row encoder on any record: never panics; accepted rows are well-formed COPY
    /// holding each field's bytes, rejected ones add nothing and name line and column.
    #[test]
    fn the_encoder_keeps_bytes_or_names_the_column(
        data in record_bytes(),
        which in 0usize..3,
        enc in 0usize..3,
        line in 1u64..1_000_000,
    ) {
        let layout = LAYOUTS[which];
        let mut e = RowEncoder::new(layout, ENCODINGS[enc]);
        let mut out = BytesMut::from(&b"prefix"[..]);
        let mut problems = vec![Problem::file("earlier")];
        let ok = e.encode(&mut out, line, &data, &mut problems);
        // `--validate-only`'s encoder, which writes nothing, finds exactly the same.
        let mut checked = vec![Problem::file("earlier")];
        let checked_ok = RowEncoder::new(layout, ENCODINGS[enc])
            .encode(&mut Discard, line, &data, &mut checked);
        prop_assert_eq!((checked_ok, &checked), (ok, &problems));
        let fields = naive_split(&data);
        if ok {
            prop_assert_eq!(problems.len(), 1, "accepted but problems added: {:?}", problems);
            prop_assert_eq!(fields.len(), layout.columns.len());
            let mut at = 6;
            let mut bytes = out.to_vec();
            bytes.extend_from_slice(&(-1i16).to_be_bytes());
            let (rows, ended) = decode_rows(&bytes, &mut at, layout)?;
            prop_assert!(ended && at == bytes.len());
            prop_assert_eq!(rows.len(), 1);
            prop_assert_eq!(rows[0].0, line as i64);
            for ((col, raw), got) in layout.columns.iter().zip(&fields).zip(&rows[0].1) {
                if raw.is_empty() {
                    prop_assert!(got.is_none(), "{}: empty is NULL", col.name);
                    continue;
                }
                if let (Kind::Varchar(_), Some(v)) = (col.kind, got) {
                    if ENCODINGS[enc] == Encoding::Utf8 || raw.is_ascii() {
                        prop_assert_eq!(v.as_slice(), *raw, "{}: bytes changed", col.name);
                    }
                }
                if let (Kind::Date, None) = (col.kind, got) {
                    prop_assert!(raw.iter().all(|&b| matches!(b, b'0' | b'-' | b'/')),
                        "{}: {:?} became NULL", col.name, raw);
                }
            }
        } else {
            prop_assert_eq!(&out[..], b"prefix", "a rejected row left bytes behind");
            prop_assert!(problems.len() > 1, "rejected without a problem");
            for p in &problems[1..] {
                prop_assert_eq!(p.line, Some(line));
                match &p.column {
                    Some(c) => prop_assert!(layout.columns.iter().any(|col| col.name == c)),
                    None => {
                        prop_assert_ne!(fields.len(), layout.columns.len());
                        prop_assert!(
                            p.message.starts_with(&format!("has {} fields; a", fields.len())),
                            "{:?}", p
                        );
                    }
                }
            }
        }
    }

    /// The whole producer on any file: never panics, problems located and at most 20, a
    /// rejected file never completes the COPY, an accepted one is exactly its records.
    #[test]
    fn the_producer_locates_every_problem(
        input in file_bytes(),
        which in 0usize..3,
        enc in 0usize..3,
        allow_missing_trailer in any::<bool>(),
    ) {
        let layout = LAYOUTS[which];
        let (tx, mut rx) = tokio::sync::mpsc::channel(64);
        let opts = ParseOptions { encoding: ENCODINGS[enc], allow_missing_trailer };
        let p = produce(&input[..], layout, opts, tx, &|_, _| {});
        let mut sent = Vec::new();
        while let Ok(c) = rx.try_recv() {
            sent.extend_from_slice(&c);
        }
        let lines = physical_lines(&input);
        prop_assert!(p.problems.len() <= 20);
        prop_assert!(p.read_error.is_none());
        for pr in &p.problems {
            check_problem(pr, layout, lines)?;
        }
        let want = model(&input);
        let records: Vec<(u64, Vec<u8>)> = want
            .iter()
            .filter_map(|i| match i {
                Item::Record(l, d) => Some((*l, d.clone())),
                _ => None,
            })
            .collect();
        if p.problems.is_empty() {
            // Accepted: the model agrees there is nothing wrong with the file's shape.
            prop_assert!(!want.iter().any(|i| matches!(i, Item::AfterTrailer(_))));
            prop_assert!(allow_missing_trailer || want.iter().any(|i| matches!(i, Item::Trailer(_))));
            prop_assert_eq!(p.records, records.len() as u64);
            prop_assert!(sent.starts_with(b"PGCOPY\n\xff\r\n\0"));
            let mut at = 19;
            let (rows, ended) = decode_rows(&sent, &mut at, layout)?;
            prop_assert!(ended && at == sent.len(), "the COPY stream is complete");
            prop_assert_eq!(rows.len(), records.len());
            for ((line, _), (want_line, data)) in rows.iter().zip(&records) {
                prop_assert_eq!(*line, *want_line as i64);
                prop_assert_eq!(naive_split(data).len(), layout.columns.len());
            }
        } else {
            prop_assert!(!sent.ends_with(&[0xff, 0xff]), "a rejected file completed the COPY");
            // The first problem is where the model says the first fault is, or earlier
            // for a bad value (the model only knows shapes).
            if let Some(Item::AfterTrailer(l)) = want.last() {
                let first = p.problems[0].line;
                prop_assert!(first.is_some_and(|f| f <= *l), "{:?} vs line {}", p.problems, l);
            }
        }
    }
}

/// A record of `layout` with every value valid (code columns as plain text), its text all
/// printable ASCII when `ascii`, as most real records are.
fn valid_record(layout: &'static Layout, ascii: bool) -> BoxedStrategy<Vec<u8>> {
    let text = |s: BoxedStrategy<(String, Option<String>)>| s.prop_map(|(t, _)| t).boxed();
    let parts: Vec<BoxedStrategy<String>> = (layout.columns.iter())
        .map(|c| match c.kind {
            Kind::Varchar(w) if ascii => {
                let min = c.key as usize;
                let re = |r: String| proptest::string::string_regex(&r).expect("a valid regex");
                prop_oneof![
                    Just(" ".repeat(min)),
                    re(format!("[ -{{}}~]{{{min},{w}}}")),
                    re(format!("[A-Z0-9 ]{{{w}}}")),
                ]
                .boxed()
            }
            Kind::Varchar(w) => varchar(w as usize, c.key),
            Kind::Date => text(date()),
            Kind::Integer => text(integer()),
            Kind::Numeric { precision, scale } => text(numeric(precision, scale)),
        })
        .collect();
    parts.prop_map(|v| v.join("|").into_bytes()).boxed()
}

/// A file of mostly good records of one layout, with hostile pieces among them.
fn mostly_valid_file() -> impl Strategy<Value = (usize, Vec<u8>)> {
    (0usize..3).prop_flat_map(|which| {
        let layout = LAYOUTS[which];
        let good = prop_oneof![3 => valid_record(layout, true), 1 => valid_record(layout, false)];
        // A good record with one field replaced by a plausible or hostile value.
        let spoilt = (good.clone(), any::<prop::sample::Index>(), field_bytes()).prop_map(
            |(r, i, value)| {
                let mut fields: Vec<&[u8]> = r.split(|&b| b == b'|').collect();
                let at = i.index(fields.len());
                fields[at] = &value;
                [fields.join(&b'|'), b"\n".to_vec()].concat()
            },
        );
        let piece = prop_oneof![
            8 => good.clone().prop_map(|r| [r, b"\n".to_vec()].concat()),
            1 => good.prop_map(|r| [r, b"\r\n".to_vec()].concat()),
            2 => spoilt,
            2 => file_bytes(),
        ];
        (
            Just(which),
            prop::collection::vec(piece, 0..30).prop_map(|p| p.concat()),
        )
    })
}

proptest! {
    #![proptest_config(Config { cases: cases(256), failure_persistence: None, ..Config::default() })]

    /// `--validate-only` takes good plain records in bulk and leaves every other line to
    /// the reader; whatever the file, it must find exactly what a load finds.
    #[test]
    fn validate_only_finds_what_a_load_finds(
        (which, input) in mostly_valid_file(),
        enc in 0usize..3,
        allow_missing_trailer in any::<bool>(),
    ) {
        let layout = LAYOUTS[which];
        let opts = ParseOptions { encoding: ENCODINGS[enc], allow_missing_trailer };
        let (tx, _rx) = tokio::sync::mpsc::channel(64);
        let loaded = produce(&input[..], layout, opts, tx, &|_, _| {});
        let (tx, _rx) = tokio::sync::mpsc::channel(1);
        let enc = RowEncoder::new(layout, ENCODINGS[enc]);
        let checked = produce_rows(&input[..], enc, Discard, None, opts, tx, &|_, _| {});
        prop_assert_eq!(checked.records, loaded.records);
        prop_assert_eq!(checked.bytes, loaded.bytes);
        prop_assert_eq!(&checked.problems, &loaded.problems);
        prop_assert_eq!(checked.more_problems, loaded.more_problems);
        if loaded.problems.is_empty() {
            prop_assert_eq!(checked.staged, loaded.staged);
            for row in 1..=loaded.staged {
                prop_assert_eq!(checked.line_map.line_of(row), loaded.line_map.line_of(row));
            }
        }
    }
}

/// After a record that ends in 0x1A (data: mid-file, 0x1A is not an end marker), the
/// reader looks ahead to see whether only blank bytes follow. It used to consume the
/// CR/LF/0x1A bytes it had scanned when the buffer ended first, so at a chunk boundary a
/// following line of only 0x1A vanished and a following line's leading CR was dropped (here
/// turning "\r999999|X" into the trailer). Regression test for that.
#[test]
fn bytes_after_a_record_ending_in_0x1a_are_kept_at_every_chunk_size() {
    let cases: [(&[u8], Vec<Item>); 2] = [
        (
            b"0000000000\x1a\r\n\x1a\r\n999999|TRAILER|3\n",
            vec![
                Item::Record(1, b"0000000000\x1a".to_vec()),
                Item::Record(2, b"\x1a".to_vec()),
                Item::Trailer(3),
            ],
        ),
        (
            b"00000000000000\x1a\n\r999999|X\n999999|TRAILER|2\n",
            vec![
                Item::Record(1, b"00000000000000\x1a".to_vec()),
                Item::Record(2, b"\r999999|X".to_vec()),
                Item::Trailer(3),
            ],
        ),
    ];
    let mut wrong = Vec::new();
    for (input, want) in cases {
        assert_eq!(model(input), want);
        assert_eq!(read_all(input, 1 << 20, 1 << 20).0, want, "1 MiB chunks");
        for chunk in 16..input.len() + 1 {
            let got = read_all(input, chunk, 1 << 20).0;
            if got != want {
                wrong.push(format!(
                    "\"{}\" at chunk {chunk}: {got:?}",
                    input.escape_ascii()
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "framed differently:\n{}",
        wrong.join("\n")
    );
}

// --------------------------------------------------------------- valid records round trip

/// Characters for text: printable ASCII but `|`, weighted towards edge cases, and multibyte
/// characters of 2, 3 and 4 bytes.
fn text_char() -> BoxedStrategy<char> {
    prop_oneof![
        6 => proptest::char::range(' ', '~').prop_filter("delimiter", |c| *c != '|'),
        1 => Just(' '),
        1 => proptest::sample::select(vec!['"', '\'', '\\', '%', ';', '$', '\t']),
        2 => proptest::sample::select(vec!['é', 'ß', 'Ω', 'ñ', '\u{a0}', '中', '語', '€', '😀', '🎉']),
    ]
    .boxed()
}

fn text(min: usize, max: usize) -> BoxedStrategy<String> {
    prop::collection::vec(text_char(), min..=max)
        .prop_map(|cs| cs.into_iter().collect())
        .boxed()
}

/// A varchar(w) value: empty (NULL) unless a key, short, exactly full width, or full width
/// of multibyte characters only.
fn varchar(w: usize, key: bool) -> BoxedStrategy<String> {
    let multibyte =
        prop::collection::vec(proptest::sample::select(vec!['é', '中', '😀', '€']), w..=w)
            .prop_map(|cs| cs.into_iter().collect::<String>());
    let s = prop_oneof![
        4 => text(1, w),
        2 => text(w, w),
        1 => multibyte,
        1 => text(1, w).prop_map(move |s| {
            // Spaces at both edges, never trimmed.
            let inner: String = s.chars().take(w.saturating_sub(2)).collect();
            if w >= 2 { format!(" {inner} ") } else { " ".to_string() }
        }),
    ];
    if key {
        s.boxed()
    } else {
        prop_oneof![1 => Just(String::new()), 5 => s].boxed()
    }
}

fn valid_ymd() -> BoxedStrategy<(u32, u32, u32)> {
    prop_oneof![
        2 => proptest::sample::select(vec![
            (1, 1, 1), (9999, 12, 31), (2000, 2, 29), (1900, 2, 28), (2024, 2, 29),
            (1999, 12, 31), (2000, 1, 1), (1970, 1, 1), (1, 12, 31), (9999, 1, 1),
        ]),
        3 => (1u32..=9999, 1u32..=12, 1u32..=31).prop_filter("a real date", |&(y, m, d)| {
            chrono::NaiveDate::from_ymd_opt(y as i32, m, d).is_some()
        }),
    ]
    .boxed()
}

/// (file text, expected text of the column: ISO date or NULL).
fn date() -> BoxedStrategy<(String, Option<String>)> {
    prop_oneof![
        1 => Just((String::new(), None)),
        1 => proptest::sample::select(vec!["0000-00-00", "00000000", "00/00/0000"])
            .prop_map(|z| (z.to_string(), None)),
        6 => (valid_ymd(), 0..3).prop_map(|((y, m, d), f)| {
            let text = match f {
                0 => format!("{y:04}-{m:02}-{d:02}"),
                1 => format!("{y:04}{m:02}{d:02}"),
                _ => format!("{m:02}/{d:02}/{y:04}"),
            };
            (text, Some(format!("{y:04}-{m:02}-{d:02}")))
        }),
    ]
    .boxed()
}

fn integer() -> BoxedStrategy<(String, Option<String>)> {
    let n = prop_oneof![
        Just(i32::MIN),
        Just(i32::MAX),
        Just(0),
        Just(-1),
        any::<i32>()
    ];
    prop_oneof![
        1 => Just((String::new(), None)),
        6 => (n, 0..4).prop_map(|(n, style)| {
            let text = match style {
                0 => n.to_string(),
                1 if n >= 0 => format!("+{n}"),
                2 => {
                    let s = n.unsigned_abs().to_string();
                    format!("{}{:0>12}", if n < 0 { "-" } else { "" }, s)
                }
                _ if n == 0 => "-0".to_string(),
                _ => n.to_string(),
            };
            (text, Some(n.to_string()))
        }),
    ]
    .boxed()
}

/// numeric(p,s): up to p-s integer digits (plus leading zeros) and up to s significant
/// decimals (plus trailing zeros), any sign, `.5` and `5.` forms. The expected text is
/// PostgreSQL's: no leading zeros, exactly s decimals, no negative zero.
fn numeric(p: u8, s: u8) -> BoxedStrategy<(String, Option<String>)> {
    let (ip, s) = ((p - s) as usize, s as usize);
    let max = (
        Just(ip),
        Just(s),
        Just(0usize),
        Just(0usize),
        Just(true),
        any::<bool>(),
    );
    let digits_strategy = (
        0..=ip,
        0..=s,
        0usize..3,
        0usize..3,
        any::<bool>(),
        any::<bool>(),
    );
    let shape = prop_oneof![1 => max, 4 => digits_strategy];
    let value = (
        shape,
        prop::collection::vec(0u8..10, ip),
        prop::collection::vec(0u8..10, s),
        0..3,
    )
        .prop_map(move |((ni, nf, lead, trail, nines, dot), id, fd, sign)| {
            let d = |v: &[u8], n: usize| -> String {
                v[..n]
                    .iter()
                    .map(|&x| char::from(b'0' + if nines { 9 } else { x }))
                    .collect()
            };
            let int = d(&id, ni);
            let frac = d(&fd, nf);
            let mut text = match sign {
                0 => String::new(),
                1 => "-".to_string(),
                _ => "+".to_string(),
            };
            text.push_str(&"0".repeat(lead));
            text.push_str(&int);
            if nf > 0 || trail > 0 || (dot && !(int.is_empty() && lead == 0)) {
                text.push('.');
                text.push_str(&frac);
                text.push_str(&"0".repeat(trail));
            }
            if text
                .trim_start_matches(['-', '+'])
                .trim_matches('.')
                .is_empty()
            {
                text.push('0');
            }
            // Expected: PostgreSQL's numeric(p,s) output.
            let int_norm = int.trim_start_matches('0');
            let int_norm = if int_norm.is_empty() { "0" } else { int_norm };
            let frac_norm = format!("{frac:0<s$}");
            let zero = int_norm == "0" && frac_norm.chars().all(|c| c == '0');
            let mut want = String::new();
            if sign == 1 && !zero {
                want.push('-');
            }
            want.push_str(int_norm);
            if s > 0 {
                want.push('.');
                want.push_str(&frac_norm);
            }
            (text, Some(want))
        });
    prop_oneof![1 => Just((String::new(), None)), 6 => value].boxed()
}

/// (file text, expected column text) for one column of a record.
fn value(
    col: &Column,
    codes: &BTreeMap<String, Vec<String>>,
) -> BoxedStrategy<(String, Option<String>)> {
    if let Some(t) = col.code_table {
        let known = codes[t].clone();
        return prop_oneof![
            1 => Just((String::new(), None)),
            4 => proptest::sample::select(known).prop_map(|c| (c.clone(), Some(c))),
        ]
        .boxed();
    }
    match col.kind {
        Kind::Varchar(w) => varchar(w as usize, col.key)
            .prop_map(|s| {
                let want = (!s.is_empty()).then(|| s.clone());
                (s, want)
            })
            .boxed(),
        Kind::Date => date(),
        Kind::Integer => integer(),
        Kind::Numeric { precision, scale } => numeric(precision, scale),
    }
}

/// The non-key columns of a record of `layout`.
fn tail(
    layout: &'static Layout,
    codes: &BTreeMap<String, Vec<String>>,
) -> BoxedStrategy<Vec<(String, Option<String>)>> {
    let parts: Vec<_> = layout
        .columns
        .iter()
        .filter(|c| !c.key)
        .map(|c| value(c, codes))
        .collect();
    parts.boxed()
}

type Row = Vec<(String, Option<String>)>;

#[derive(Debug, Clone)]
struct Day {
    issuers: Vec<Row>,
    /// (index into issuers for the parent key, issue_num, rest)
    issues: Vec<(prop::sample::Index, (String, Option<String>), Row)>,
    /// (index into issues for the parent key, rest)
    attrs: Vec<(prop::sample::Index, Row)>,
    crlf: [bool; 3],
    sub_at_end: bool,
}

fn key6() -> BoxedStrategy<(String, Option<String>)> {
    prop_oneof![
        1 => proptest::sample::select(vec!["00001A", "中文", " "]).prop_map(str::to_string),
        4 => varchar(6, true),
    ]
    .prop_filter("999999 starts the trailer", |k| !k.starts_with("999999"))
    .prop_map(|k| (k.clone(), Some(k)))
    .boxed()
}

fn day(codes: &BTreeMap<String, Vec<String>>) -> impl Strategy<Value = Day> {
    let issuer = (key6(), tail(&ISSUER, codes)).prop_map(|(k, mut rest)| {
        rest.insert(0, k);
        rest
    });
    let issue_num = varchar(2, true).prop_map(|k| (k.clone(), Some(k)));
    (
        prop::collection::vec(issuer, 1..6),
        prop::collection::vec(
            (any::<prop::sample::Index>(), issue_num, tail(&ISSUE, codes)),
            0..7,
        ),
        prop::collection::vec(
            (any::<prop::sample::Index>(), tail(&ISSUE_ATTR, codes)),
            0..5,
        ),
        any::<[bool; 3]>(),
        any::<bool>(),
    )
        .prop_map(|(issuers, issues, attrs, crlf, sub_at_end)| Day {
            issuers,
            issues,
            attrs,
            crlf,
            sub_at_end,
        })
}

impl Day {
    /// Full rows (keys first) per layout, in file order.
    fn rows(&self) -> [Vec<Row>; 3] {
        let issuers = self.issuers.clone();
        let issues: Vec<Row> = self
            .issues
            .iter()
            .map(|(i, num, rest)| {
                let mut r = vec![i.get(&issuers)[0].clone(), num.clone()];
                r.extend(rest.iter().cloned());
                r
            })
            .collect();
        let attrs: Vec<Row> = if issues.is_empty() {
            Vec::new()
        } else {
            self.attrs
                .iter()
                .map(|(i, rest)| {
                    let parent = i.get(&issues);
                    let mut r = vec![parent[0].clone(), parent[1].clone()];
                    r.extend(rest.iter().cloned());
                    r
                })
                .collect()
        };
        [issuers, issues, attrs]
    }
}

/// Last record per key wins; sorted by key bytes.
fn expected(rows: &[Row], keys: usize) -> Vec<Vec<Option<String>>> {
    let mut m: BTreeMap<Vec<String>, Vec<Option<String>>> = BTreeMap::new();
    for r in rows {
        let k = r[..keys].iter().map(|(t, _)| t.clone()).collect();
        m.insert(k, r.iter().map(|(_, w)| w.clone()).collect());
    }
    m.into_values().collect()
}

fn write_file(path: &Path, rows: &[Row], crlf: bool, sub: bool) {
    let eol = if crlf { "\r\n" } else { "\n" };
    let mut s = String::new();
    for r in rows {
        let fields: Vec<&str> = r.iter().map(|(t, _)| t.as_str()).collect();
        s.push_str(&fields.join("|"));
        s.push_str(eol);
    }
    s.push_str(&format!("999999|TRAILER|{}{eol}", rows.len()));
    if sub {
        s.push('\x1a');
    }
    std::fs::write(path, s).unwrap();
}

/// Every row of `layout`'s table, each column as the server's text (ISO dates), sorted.
fn select_all(db: &Db, layout: &Layout) -> Vec<Vec<Option<String>>> {
    let cols: Vec<String> = layout
        .columns
        .iter()
        .map(|c| format!("{}::text", c.name))
        .collect();
    let out = db.sql(&format!(
        "SET datestyle = ISO; SELECT json_build_array({})::text FROM {}",
        cols.join(", "),
        layout.table
    ));
    let mut rows: Vec<Vec<Option<String>>> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let keys = layout.key_names().len();
    rows.sort_by(|a, b| a[..keys].cmp(&b[..keys]));
    rows
}

#[test]
fn valid_records_of_every_kind_round_trip_exactly() {
    let codes_db = Db::new("codes");
    let mut codes = BTreeMap::new();
    for l in LAYOUTS {
        for c in l.columns {
            if let Some(t) = c.code_table {
                let list: Vec<String> = codes_db
                    .sql(&format!("SELECT code FROM {t} ORDER BY code"))
                    .lines()
                    .map(str::to_string)
                    .collect();
                assert!(!list.is_empty(), "{t} is empty");
                codes.insert(t.to_string(), list);
            }
        }
    }
    let mut runner = TestRunner::new(Config {
        cases: 24,
        max_shrink_iters: 64,
        failure_persistence: None,
        ..Config::default()
    });
    let cases = std::cell::Cell::new(0);
    let values = std::cell::Cell::new(0usize);
    let result = runner.run(&day(&codes), |d| {
        cases.set(cases.get() + 1);
        let db = Db::new("roundtrip");
        let dir = tempfile::tempdir().unwrap();
        let rows = d.rows();
        let mut files = Vec::new();
        for (i, (layout, rows)) in LAYOUTS.iter().zip(&rows).enumerate() {
            let f = dir
                .path()
                .join(format!("CED05-01{}.PIP", layout.file_type.letter()));
            write_file(&f, rows, d.crlf[i], d.sub_at_end && i == 2);
            files.push(f);
        }
        let (code, out, err) = run(db.loader().args(&files));
        prop_assert_eq!(code, 0, "{}\n{}", out, err);
        for (layout, rows) in LAYOUTS.iter().zip(&rows) {
            let want = expected(rows, layout.key_names().len());
            let got = select_all(&db, layout);
            prop_assert_eq!(got.len(), want.len(), "{} row count", layout.table);
            for (g, w) in got.iter().zip(&want) {
                for ((col, gv), wv) in layout.columns.iter().zip(g).zip(w) {
                    prop_assert_eq!(
                        gv,
                        wv,
                        "{}.{} (row key {:?})",
                        layout.table,
                        col.name,
                        &w[..2]
                    );
                    values.set(values.get() + 1);
                }
            }
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    println!("{} cases, {} values compared", cases.get(), values.get());
    assert!(cases.get() >= 24 && values.get() > 24 * 16);
}
