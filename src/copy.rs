//! Records → PostgreSQL binary COPY stream, encoded by hand into large chunks.
//!
//! The producer runs on a blocking thread: it reads, splits, checks and encodes, and hands
//! ~1 MiB chunks over a bounded channel to the async COPY sink, so parsing and COPY overlap
//! and at most `CHANNEL_DEPTH` chunks are ever in memory. Each staging row carries the
//! record's file line number first, so every later check can point back into the file.

use std::io::Read;

use bytes::{BufMut, Bytes, BytesMut};
use tokio::sync::mpsc;

use crate::convert::{self, Encoding};
use crate::error::Problem;
use crate::layout::{Kind, Layout};
use crate::parse::{split_fields, Next, RecordReader, ShapeError};

/// Target size of one chunk handed to the COPY sink.
pub const CHUNK_BYTES: usize = 1 << 20;
/// Chunks in flight between the parser and the COPY sink.
pub const CHANNEL_DEPTH: usize = 8;
/// Problems collected before the parser gives up on a file.
pub const MAX_PROBLEMS: usize = 20;

const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// Maps a COPY row number (1-based, as the server reports it) back to a file line.
///
/// Lines and rows only drift apart at blank lines, so only those change points are kept;
/// past `MAX_POINTS` of them (a file of mostly blank lines) translation is given up.
#[derive(Debug, Default, Clone)]
pub struct LineMap {
    points: Vec<(u64, u64)>,
    overflow: bool,
}

impl LineMap {
    const MAX_POINTS: usize = 100_000;

    fn note(&mut self, row: u64, line: u64) {
        let drift = line - row;
        if self.points.last().map(|&(r, l)| l - r) != Some(drift) {
            if self.points.len() >= Self::MAX_POINTS {
                self.overflow = true;
                return;
            }
            self.points.push((row, line));
        }
    }

    /// The file line of COPY row `row`, if known.
    pub fn line_of(&self, row: u64) -> Option<u64> {
        if self.overflow {
            return None;
        }
        let i = self.points.partition_point(|&(r, _)| r <= row);
        let &(r, l) = self.points.get(i.checked_sub(1)?)?;
        Some(l + (row - r))
    }
}

/// Options that change how records are read.
#[derive(Debug, Clone, Copy, Default)]
pub struct ParseOptions {
    pub encoding: Encoding,
    pub allow_missing_trailer: bool,
}

/// What the producer saw. `problems` empty means every record was sent.
#[derive(Debug, Default)]
pub struct Produced {
    pub records: u64,
    pub bytes: u64,
    pub problems: Vec<Problem>,
    pub more_problems: bool,
    /// The consumer went away (the COPY failed or the load was cancelled).
    pub abandoned: bool,
    pub line_map: LineMap,
    /// A read error (not a data problem): the input itself failed.
    pub read_error: Option<std::io::Error>,
}

/// Encodes one record into `out` as a COPY row, or explains every bad field in it.
pub struct RowEncoder {
    layout: &'static Layout,
    encoding: Encoding,
    fields: Vec<(usize, usize)>,
    scratch: Vec<u8>,
}

impl RowEncoder {
    pub fn new(layout: &'static Layout, encoding: Encoding) -> RowEncoder {
        RowEncoder {
            layout,
            encoding,
            fields: vec![(0, 0); layout.columns.len()],
            scratch: Vec::new(),
        }
    }

    /// Appends the row, or appends its problems to `problems` and leaves `out` unchanged.
    pub fn encode(
        &mut self,
        out: &mut BytesMut,
        line: u64,
        data: &[u8],
        problems: &mut Vec<Problem>,
    ) -> bool {
        let expected = self.layout.columns.len();
        let split = split_fields(data, &mut self.fields);
        let found = split.count;
        if found != expected {
            problems.push(Problem::at(
                line,
                None,
                format!(
                    "has {found} fields; a{} {} record has {expected}",
                    if self.layout.table.starts_with(['a', 'e', 'i', 'o', 'u']) {
                        "n"
                    } else {
                        ""
                    },
                    self.layout.file_type
                ),
            ));
            return false;
        }
        let mark = out.len();
        // One reservation per row: a field never grows by more than its length word plus
        // a small numeric's header, so the puts below do not reallocate.
        out.reserve(data.len() + 20 * expected + 16);
        out.put_i16(expected as i16 + 1);
        out.put_i32(8);
        out.put_i64(line as i64);
        let mut ok = true;
        for (col, &(s, e)) in self.layout.columns.iter().zip(&self.fields) {
            let raw = &data[s..e];
            let result = match col.kind {
                Kind::Varchar(width) if split.plain => {
                    convert::encode_plain_text(out, raw, width, col.key)
                }
                kind => {
                    convert::encode_field(out, raw, kind, col.key, self.encoding, &mut self.scratch)
                }
            };
            if let Err(err) = result {
                problems.push(Problem::at(line, Some(col.name), err.to_string()));
                ok = false;
            }
        }
        if !ok {
            out.truncate(mark);
        }
        ok
    }
}

/// Reads `src` to the end, sending COPY chunks on `tx` until the first problem, then only
/// collecting problems (up to `MAX_PROBLEMS`). Calls `progress` with the byte offset.
pub fn produce<R: Read>(
    src: R,
    layout: &'static Layout,
    opts: ParseOptions,
    tx: mpsc::Sender<Bytes>,
    progress: &dyn Fn(u64, u64),
) -> Produced {
    let mut reader = RecordReader::new(src);
    let mut enc = RowEncoder::new(layout, opts.encoding);
    let mut out = BytesMut::with_capacity(CHUNK_BYTES + 64 * 1024);
    out.put_slice(HEADER);
    let mut p = Produced::default();
    let mut sending = true;
    let mut last_progress = 0u64;
    loop {
        let next = match reader.next_record() {
            Ok(n) => n,
            Err(ShapeError::Io { source, .. }) => {
                p.read_error = Some(source);
                break;
            }
            Err(e @ ShapeError::LineTooLong { line, .. })
            | Err(e @ ShapeError::DataAfterTrailer { line }) => {
                p.problems.push(Problem::at(line, None, e.to_string()));
                break;
            }
            Err(e) => {
                p.problems.push(Problem::file(e.to_string()));
                break;
            }
        };
        match next {
            Next::Record { line, data } => {
                p.records += 1;
                let before = p.problems.len();
                if enc.encode(&mut out, line, data, &mut p.problems) {
                    p.line_map.note(p.records, line);
                } else if before == 0 {
                    // First problem: stop feeding COPY, keep reading to report the rest.
                    sending = false;
                    out.clear();
                }
                if p.problems.len() >= MAX_PROBLEMS {
                    p.problems.truncate(MAX_PROBLEMS);
                    p.more_problems = true;
                    break;
                }
                if !sending {
                    out.clear();
                }
                if out.len() >= CHUNK_BYTES {
                    if tx.blocking_send(out.split().freeze()).is_err() {
                        p.abandoned = true;
                        break;
                    }
                    let off = reader.offset();
                    if off - last_progress >= CHUNK_BYTES as u64 {
                        progress(off, p.records);
                        last_progress = off;
                    }
                }
            }
            Next::Trailer { .. } => {}
            Next::End => {
                if !reader.saw_trailer() && !opts.allow_missing_trailer {
                    p.problems.push(Problem::file(
                        ShapeError::MissingTrailer {
                            lines: reader.lines(),
                        }
                        .to_string(),
                    ));
                }
                break;
            }
        }
    }
    p.bytes = reader.offset();
    progress(p.bytes, p.records);
    if p.problems.is_empty() && p.read_error.is_none() && !p.abandoned && sending {
        out.put_i16(-1);
        if tx.blocking_send(out.freeze()).is_err() {
            p.abandoned = true;
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::{ISSUE, ISSUER};

    fn run(input: &[u8], opts: ParseOptions) -> (Produced, Vec<u8>) {
        let (tx, mut rx) = mpsc::channel(1024);
        let p = produce(input, &ISSUER, opts, tx, &|_, _| {});
        let mut all = Vec::new();
        while let Ok(c) = rx.try_recv() {
            all.extend_from_slice(&c);
        }
        (p, all)
    }

    const GOOD: &str = "00123A|1|ACME CORP||||||||C|A||A|NY|2024-01-15";

    #[test]
    fn a_good_file_becomes_one_binary_copy_stream() {
        let input = format!("{GOOD}\n\n{GOOD}\n999999|END\n");
        let (p, bytes) = run(input.as_bytes(), ParseOptions::default());
        assert!(p.problems.is_empty(), "{:?}", p.problems);
        assert_eq!(p.records, 2);
        assert!(bytes.starts_with(HEADER));
        assert!(bytes.ends_with(&[0xff, 0xff]));
        // field count word of the first row: 16 columns + line
        assert_eq!(&bytes[HEADER.len()..HEADER.len() + 2], &17i16.to_be_bytes());
        // the second record is on line 3: the map knows
        assert_eq!(p.line_map.line_of(1), Some(1));
        assert_eq!(p.line_map.line_of(2), Some(3));
    }

    #[test]
    fn problems_are_collected_up_to_the_limit_and_nothing_more_is_sent() {
        let bad = "00123A|1|ACME CORP||||||||C|A||A|NY|2024-02-30";
        let mut input = String::new();
        for _ in 0..30 {
            input.push_str(bad);
            input.push('\n');
        }
        input.push_str("999999\n");
        let (p, bytes) = run(input.as_bytes(), ParseOptions::default());
        assert_eq!(p.problems.len(), MAX_PROBLEMS);
        assert!(p.more_problems);
        assert_eq!(p.problems[0].line, Some(1));
        assert_eq!(p.problems[0].column.as_deref(), Some("issuer_update_date"));
        assert!(
            !bytes.ends_with(&[0xff, 0xff]),
            "a rejected file must not complete the COPY"
        );
    }

    #[test]
    fn field_count_names_both_counts() {
        let (p, _) = run(b"a|b|c\n999999\n", ParseOptions::default());
        assert_eq!(
            p.problems[0].render("F"),
            "F line 1: has 3 fields; an issuer record has 16"
        );
        let (tx, _rx) = mpsc::channel(4);
        let p = produce(
            &b"a|b\n999999\n"[..],
            &ISSUE,
            ParseOptions::default(),
            tx,
            &|_, _| {},
        );
        assert_eq!(
            p.problems[0].message,
            "has 2 fields; an issue record has 17"
        );
    }

    #[test]
    fn missing_trailer_is_refused_unless_allowed() {
        let input = format!("{GOOD}\n");
        let (p, _) = run(input.as_bytes(), ParseOptions::default());
        assert!(
            p.problems[0].message.contains("truncated"),
            "{:?}",
            p.problems
        );
        let opts = ParseOptions {
            allow_missing_trailer: true,
            ..Default::default()
        };
        let (p, bytes) = run(input.as_bytes(), opts);
        assert!(p.problems.is_empty());
        assert!(bytes.ends_with(&[0xff, 0xff]));
    }

    #[test]
    fn line_map_survives_many_rows() {
        let mut m = LineMap::default();
        for row in 1..=1000u64 {
            m.note(row, row + row / 100);
        }
        assert_eq!(m.line_of(1), Some(1));
        assert_eq!(m.line_of(250), Some(252));
        assert_eq!(m.line_of(1000), Some(1010));
        assert!(m.points.len() <= 11);
    }
}
