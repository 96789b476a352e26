//! Records → PostgreSQL binary COPY stream, encoded by hand into large chunks.
//!
//! The producer runs on a blocking thread: it reads, splits, checks and encodes, and hands
//! chunks (64 KiB first, doubling to 1 MiB) over a bounded channel to the async COPY sink,
//! so parsing and COPY overlap and at most `CHANNEL_DEPTH` chunks are ever in memory. Each
//! staging row carries the record's file line number first, so every later check can point
//! back into the file.

use std::io::Read;

use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;

use crate::compare::{Comparer, Decision, Stop};
use crate::convert::{self, Encoding, Out};
use crate::error::Problem;
use crate::layout::{Column, Kind, Layout};
use crate::parse::{is_trailer, Fields, Next, RecordReader, ShapeError};
use crate::pgcopy;

/// Target size of one chunk handed to the COPY sink.
pub const CHUNK_BYTES: usize = 1 << 20;
/// Size of the first chunk; each next one is twice the last, up to [`CHUNK_BYTES`]. The
/// server does the COPY's work and is idle until the first chunk arrives, so a small one
/// starts it sooner: ~3 ms earlier at 64 KiB than at 1 MiB, which is 7 % of the COPY phase
/// of a 40 000-record issuer file (fastest of 30 rounds: 40 ms against 43 ms).
pub const FIRST_CHUNK_BYTES: usize = 64 * 1024;
/// Chunks in flight between the parser and the COPY sink.
pub const CHANNEL_DEPTH: usize = 8;
/// Problems collected before the parser gives up on a file.
pub const MAX_PROBLEMS: usize = 20;

/// A staging row's field count and line number, before the master table's fields.
const LINE_PREFIX: usize = 2 + 4 + 8;

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
    /// Rows sent to COPY: every record, unless a [`Comparer`] found some unchanged.
    pub staged: u64,
    pub bytes: u64,
    pub problems: Vec<Problem>,
    pub more_problems: bool,
    /// The consumer went away (the COPY failed or the load was cancelled).
    pub abandoned: bool,
    pub line_map: LineMap,
    /// A read error (not a data problem): the input itself failed.
    pub read_error: Option<std::io::Error>,
    /// Every record's key was greater than the one before (as the real files are sorted),
    /// so no key repeats and the rows arrive in key order: the database need not look for
    /// repeated keys nor sort before inserting.
    pub keys_ascending: bool,
    /// The comparison with the master stopped; nothing more was sent and COPY must not end.
    pub stopped: Option<Stop>,
}

/// Encodes one record into `out` as a COPY row, or explains every bad field in it.
pub struct RowEncoder {
    layout: &'static Layout,
    encoding: Encoding,
    fields: Fields,
    scratch: Vec<u8>,
    /// Rows start with the file line (staging); without it they fit the master table.
    line: bool,
    /// The previous row's encoded key, and whether every key so far was greater than the
    /// one before. Encoded keys compare like the keys themselves: equal bytes are equal
    /// text, and fixed-width keys order by their bytes.
    prev_key: Vec<u8>,
    ascending: bool,
    /// Per column, the shortest and the longest field of a plain record that needs no
    /// closer look: a text key is never empty, text never wider than its column. Typed
    /// columns are unbounded here; they are the `typed` ones.
    shortest: Vec<u32>,
    longest: Vec<u32>,
    /// The columns that are not text (dates and numbers), checked by their converters.
    typed: Vec<(usize, &'static Column)>,
}

impl RowEncoder {
    pub fn new(layout: &'static Layout, encoding: Encoding) -> RowEncoder {
        // The key must lead the row for the encoded key to be one contiguous slice.
        let leading = layout.columns.iter().take_while(|c| c.key).count();
        let keys = layout.columns.iter().filter(|c| c.key).count();
        RowEncoder {
            layout,
            encoding,
            fields: Fields::new(layout.columns.len()),
            scratch: Vec::new(),
            line: true,
            prev_key: Vec::new(),
            ascending: keys > 0 && leading == keys,
            shortest: (layout.columns.iter())
                .map(|c| match c.kind {
                    Kind::Varchar(_) => c.key as u32,
                    _ => 0,
                })
                .collect(),
            longest: (layout.columns.iter())
                .map(|c| match c.kind {
                    Kind::Varchar(width) => width as u32,
                    _ => u32::MAX,
                })
                .collect(),
            typed: (layout.columns.iter().enumerate())
                .filter(|(_, c)| !matches!(c.kind, Kind::Varchar(_)))
                .collect(),
        }
    }

    /// Rows for a COPY straight into the master table: no leading line number.
    pub fn without_line(mut self) -> RowEncoder {
        self.line = false;
        self
    }

    /// Whether every key encoded so far was greater than the one before.
    pub fn keys_ascending(&self) -> bool {
        self.ascending
    }

    /// Appends the row, or appends its problems to `problems` and leaves `out` unchanged.
    pub fn encode<O: Out>(
        &mut self,
        out: &mut O,
        line: u64,
        data: &[u8],
        problems: &mut Vec<Problem>,
    ) -> bool {
        let expected = self.layout.columns.len();
        let split = self.fields.split(data);
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
        if !O::KEEPS && split.plain && self.passes(data) {
            return true;
        }
        let mark = out.len();
        // One reservation per row: a field never grows by more than its length word plus
        // a small numeric's header, so the puts below do not reallocate.
        out.reserve(data.len() + 20 * expected + 16);
        if self.line {
            out.int16(expected as i16 + 1);
            out.int32(8);
            out.int64(line as i64);
        } else {
            out.int16(expected as i16);
        }
        let key_start = out.len();
        let mut key_end = key_start;
        let mut ok = true;
        for (col, (s, e)) in self.layout.columns.iter().zip(self.fields.ranges()) {
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
            if col.key {
                key_end = out.len();
            }
        }
        if !ok {
            out.truncate(mark);
        } else if O::KEEPS && self.ascending {
            let key = &out.written()[key_start..key_end];
            if !self.prev_key.is_empty() && key <= self.prev_key.as_slice() {
                self.ascending = false;
            }
            self.prev_key.clear();
            self.prev_key.extend_from_slice(key);
        }
        ok
    }

    /// Checks the plain records at the start of `buf` (the reader's unread bytes) for as
    /// long as each passes, and returns the bytes and lines they take up. It stops at the
    /// first line that is not plain, not a whole line, the trailer, or not a good record,
    /// and leaves that one to the reader and [`RowEncoder::encode`], which handle it and
    /// name its problems exactly as they do for every line in a load.
    pub fn check_plain_lines(&mut self, buf: &[u8]) -> (usize, u64) {
        let (mut at, mut lines) = (0, 0);
        while let Some(len) = self.fields.split_line(&buf[at..]) {
            let data = &buf[at..at + len];
            if self.fields.count() != self.layout.columns.len()
                || is_trailer(data)
                || !self.passes(data)
            {
                break;
            }
            at += len + 1;
            lines += 1;
        }
        (at, lines)
    }

    /// Whether a plain record whose fields have been split passes every check, looked at
    /// with as few branches as possible: lengths first, all at once, then only the typed
    /// fields. It only ever says yes when [`RowEncoder::encode`]'s field-by-field walk
    /// would find nothing; on a no, that walk runs and says what is wrong. This is what
    /// makes `--validate-only` fast, and `passes_only_what_encode_accepts` holds it to that.
    fn passes(&mut self, data: &[u8]) -> bool {
        let cuts = self.fields.cuts();
        let (shortest, longest) = (&self.shortest[..], &self.longest[..]);
        let columns = shortest.len().min(longest.len()).min(cuts.len() - 1);
        let mut out_of_bounds = false;
        for i in 0..columns {
            let n = cuts[i + 1] - cuts[i] - 1;
            out_of_bounds |= (n < shortest[i]) | (n > longest[i]);
        }
        if out_of_bounds {
            return false;
        }
        for &(i, col) in &self.typed {
            let (s, e) = self.fields.range(i);
            let raw = &data[s..e];
            // Dates and decimals, nearly every typed field, are asked by checks that return
            // a flag in a register; anything else goes through the converter.
            let ok = match col.kind {
                _ if raw.is_empty() => !col.key,
                Kind::Date => convert::date_ok(raw),
                Kind::Numeric { precision, scale } => {
                    convert::numeric_surely_fits(raw, precision, scale)
                }
                kind => convert::encode_field(
                    &mut convert::Discard,
                    raw,
                    kind,
                    col.key,
                    self.encoding,
                    &mut self.scratch,
                )
                .is_ok(),
            };
            if !ok {
                return false;
            }
        }
        true
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
    produce_rows(
        src,
        RowEncoder::new(layout, opts.encoding),
        chunk_buffer(),
        None,
        opts,
        tx,
        progress,
    )
}

/// The buffer rows are encoded into: a chunk, plus room for the row that crosses its end.
pub fn chunk_buffer() -> BytesMut {
    BytesMut::with_capacity(CHUNK_BYTES + 64 * 1024)
}

/// An [`Out`] that COPY chunks can be cut from.
pub trait Chunks: Out {
    /// Everything written so far, leaving the buffer empty.
    fn take(&mut self) -> Bytes;
}

impl Chunks for BytesMut {
    fn take(&mut self) -> Bytes {
        self.split().freeze()
    }
}

impl Chunks for convert::Discard {
    fn take(&mut self) -> Bytes {
        Bytes::new()
    }
}

/// [`produce`] with the encoder and the output given: [`RowEncoder::without_line`] makes
/// rows for the master table itself; [`convert::Discard`] as `out` checks every record and
/// sends nothing (`--validate-only`). With a [`Comparer`] (staging rows only), rows it finds
/// unchanged in the master are not sent.
pub fn produce_rows<R: Read, O: Chunks>(
    src: R,
    enc: RowEncoder,
    out: O,
    compare: Option<Comparer>,
    opts: ParseOptions,
    tx: mpsc::Sender<Bytes>,
    progress: &dyn Fn(u64, u64),
) -> Produced {
    debug_assert!(
        compare.is_none() || enc.line,
        "comparing needs staging rows"
    );
    debug_assert!(compare.is_none() || O::KEEPS, "comparing needs the rows");
    let reader = RecordReader::new(src);
    produce_records(reader, enc, out, compare, opts, tx, progress)
}

/// [`produce_rows`] from a reader already made, so that tests can choose its buffer size.
fn produce_records<R: Read, O: Chunks>(
    mut reader: RecordReader<R>,
    mut enc: RowEncoder,
    mut out: O,
    mut compare: Option<Comparer>,
    opts: ParseOptions,
    tx: mpsc::Sender<Bytes>,
    progress: &dyn Fn(u64, u64),
) -> Produced {
    out.bytes(&pgcopy::HEADER);
    let mut p = Produced::default();
    let mut sending = true;
    let mut send_at = FIRST_CHUNK_BYTES;
    let mut last_progress = 0u64;
    loop {
        if !O::KEEPS {
            // Checking only: good plain records in bulk, every other line one at a time.
            let first = reader.lines() + 1;
            let (bytes, lines) = enc.check_plain_lines(reader.buffered());
            if lines > 0 {
                reader.consume(bytes, lines);
                p.records += lines;
                p.line_map.note(p.staged + 1, first);
                p.staged += lines;
            }
        }
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
                let mark = out.len();
                if enc.encode(&mut out, line, data, &mut p.problems) {
                    let decision = match compare.as_mut() {
                        Some(c) if sending => c.decide(&out.written()[mark + LINE_PREFIX..], line),
                        _ => Ok(Decision::Stage),
                    };
                    match decision {
                        Ok(Decision::Stage) => {
                            p.staged += 1;
                            p.line_map.note(p.staged, line);
                        }
                        Ok(Decision::Unchanged) => out.truncate(mark),
                        Err(stop) => {
                            p.stopped = Some(stop);
                            break;
                        }
                    }
                } else if before == 0 {
                    // First problem: stop feeding COPY, keep reading to report the rest.
                    sending = false;
                    out.truncate(0);
                }
                if p.problems.len() >= MAX_PROBLEMS {
                    p.problems.truncate(MAX_PROBLEMS);
                    p.more_problems = true;
                    break;
                }
                if !sending {
                    out.truncate(0);
                    // Reading on only to report the rest of the problems; if nobody is
                    // left to report them to (the COPY failed mid-stream), stop: the rest of
                    // a 3 GB file is minutes of reading and hashing for nothing.
                    if tx.is_closed() {
                        p.abandoned = true;
                        break;
                    }
                }
                if O::KEEPS && out.len() >= send_at {
                    if tx.blocking_send(out.take()).is_err() {
                        p.abandoned = true;
                        break;
                    }
                    send_at = (send_at * 2).min(CHUNK_BYTES);
                }
                // The offset moves a read (1 MiB) at a time, so this calls back that often.
                let off = reader.offset();
                if off - last_progress >= CHUNK_BYTES as u64 {
                    progress(off, p.records);
                    last_progress = off;
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
    p.keys_ascending = enc.keys_ascending() && p.records > 0;
    progress(p.bytes, p.records);
    if O::KEEPS
        && p.problems.is_empty()
        && p.read_error.is_none()
        && !p.abandoned
        && sending
        && p.stopped.is_none()
    {
        out.int16(pgcopy::TRAILER);
        if tx.blocking_send(out.take()).is_err() {
            p.abandoned = true;
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::{ISSUE, ISSUER};
    use crate::pgcopy::HEADER;

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

    /// `head`, then `records` copies of [`GOOD`], then the trailer.
    fn file_of(head: &str, records: usize) -> String {
        let mut input = String::from(head);
        for _ in 0..records {
            input.push_str(GOOD);
            input.push('\n');
        }
        input.push_str("999999|END\n");
        input
    }

    #[test]
    fn bad_data_stops_being_read_once_the_consumer_has_gone() {
        let input = file_of("BAD\n", 10_000);
        let (tx, rx) = mpsc::channel(1024);
        drop(rx);
        let p = produce(
            input.as_bytes(),
            &ISSUER,
            ParseOptions::default(),
            tx,
            &|_, _| {},
        );
        assert!(p.abandoned, "{p:?}");
        assert!(p.records < 100, "read on to record {}", p.records);
        // With the consumer there, the same input is read to the end for its problems.
        let (p, _) = run(input.as_bytes(), ParseOptions::default());
        assert!(!p.abandoned);
        assert_eq!(p.records, 10_001);
    }

    #[test]
    fn chunks_start_small_and_double_up_to_the_full_size() {
        let input = file_of("", 60_000);
        let (tx, mut rx) = mpsc::channel(1024);
        let p = produce(
            input.as_bytes(),
            &ISSUER,
            ParseOptions::default(),
            tx,
            &|_, _| {},
        );
        assert!(p.problems.is_empty(), "{:?}", p.problems);
        let mut sizes = Vec::new();
        while let Ok(c) = rx.try_recv() {
            sizes.push(c.len());
        }
        // A chunk is sent at the first row end past its threshold: under one row more.
        let row = 200;
        let mut want = FIRST_CHUNK_BYTES;
        for (i, &n) in sizes[..sizes.len() - 1].iter().enumerate() {
            assert!(
                n >= want && n < want + row,
                "chunk {i}: {n} bytes, want ~{want}"
            );
            want = (want * 2).min(CHUNK_BYTES);
        }
        assert_eq!(want, CHUNK_BYTES, "never reached full size: {sizes:?}");
        assert!(sizes.len() > 6, "{sizes:?}");
    }

    #[test]
    fn a_good_file_becomes_one_binary_copy_stream() {
        let input = format!("{GOOD}\n\n{GOOD}\n999999|END\n");
        let (p, bytes) = run(input.as_bytes(), ParseOptions::default());
        assert!(p.problems.is_empty(), "{:?}", p.problems);
        assert_eq!(p.records, 2);
        assert!(bytes.starts_with(&HEADER));
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

    fn issuer_line(num: &str) -> String {
        format!("{num}|1|ACME CORP||||||||C|A||A|NY|2024-01-15\n")
    }

    #[test]
    fn ascending_keys_are_noticed_and_any_repeat_or_step_back_ends_them() {
        let file = |keys: &[&str]| {
            let mut f: String = keys.iter().map(|k| issuer_line(k)).collect();
            f.push_str("999999\n");
            f
        };
        let (p, _) = run(
            file(&["00123A", "00123B", "00124A"]).as_bytes(),
            Default::default(),
        );
        assert!(p.problems.is_empty() && p.keys_ascending);
        // A repeated key is not ascending: the database must resolve it.
        let (p, _) = run(file(&["00123A", "00123A"]).as_bytes(), Default::default());
        assert!(!p.keys_ascending);
        let (p, _) = run(
            file(&["00123B", "00123A", "00124A"]).as_bytes(),
            Default::default(),
        );
        assert!(!p.keys_ascending);
        // Encoded keys carry their length first, so a shorter key sorts low whatever its
        // text: the claim is only ever made conservatively.
        let (p, _) = run(file(&["00123A", "0013"]).as_bytes(), Default::default());
        assert!(p.problems.is_empty(), "{:?}", p.problems);
        assert!(!p.keys_ascending);
        // No record, no claim.
        let (p, _) = run(b"999999\n", Default::default());
        assert!(!p.keys_ascending);
    }

    #[test]
    fn rows_without_the_line_fit_the_master_table() {
        let input = format!("{GOOD}\n999999\n");
        let (tx, mut rx) = mpsc::channel(16);
        let enc = RowEncoder::new(&ISSUER, Encoding::default()).without_line();
        let p = produce_rows(
            input.as_bytes(),
            enc,
            BytesMut::new(),
            None,
            Default::default(),
            tx,
            &|_, _| {},
        );
        assert!(p.problems.is_empty() && p.keys_ascending);
        let bytes = rx.try_recv().unwrap();
        // 16 columns and no line: the first field is the issuer number itself.
        let row = &bytes[pgcopy::HEADER_LEN..];
        assert_eq!(&row[..2], &16i16.to_be_bytes());
        assert_eq!(&row[2..6], &6i32.to_be_bytes());
        assert_eq!(&row[6..12], b"00123A");
    }

    /// The short cut `--validate-only` takes for plain records never accepts what the
    /// field-by-field walk refuses: every field of a real record of each layout replaced
    /// in turn by values at and past each check's edge, in every encoding, must get the
    /// same verdict and the same messages with [`convert::Discard`] as with a buffer.
    #[test]
    fn passes_only_what_encode_accepts() {
        use crate::layout::ISSUE_ATTR;
        let samples = [
            (&ISSUER, include_str!("../testdata/CED01-15R.PIP")),
            (&ISSUE, include_str!("../testdata/CED01-15E.PIP")),
            (&ISSUE_ATTR, include_str!("../testdata/CED01-15A.PIP")),
        ];
        let edges: &[&[u8]] = &[
            b"",
            b"x",
            b"0",
            b"-1",
            b"1.5",
            b"2024-02-29",
            b"2023-02-29",
            b"2024-13-01",
            b"02/30/2024",
            b"12/31/1999",
            b"19990101",
            b"00000000",
            b"0000-00-00",
            b"2024-1-01",
            b"2024/01/01",
            b"99999999",
            b"123.4567",
            b"1234567.1",
            b"12345.12",
            b"2147483648",
            b"+5",
            b"A",
            b"AB",
            b"ABC",
            b"ABCDEF",
            b"\xC3\xA9",
            b"\x00",
            b"\x80",
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFGHIJ",
            b"5.",
            b".5",
            b".",
            b"..5",
            b"1.2.3",
            b"999.999",
            b"1000.000",
            b"0001.5",
            b"1.5000",
            b"-0",
            b"-999.999",
            b"\t",
            b"\r",
            b"\x1a",
            b"\x7f",
        ];
        let (mut compared, mut bulk) = (0, 0);
        for (layout, text) in samples {
            // Every sample record that is printable ASCII is taken in bulk.
            let mut enc = RowEncoder::new(layout, Encoding::Utf8);
            let plain = (text.split_inclusive('\n')).filter(|l| {
                !l.starts_with("999999") && l.trim_end().bytes().all(|b| (0x20..0x80).contains(&b))
            });
            for line in plain {
                assert_eq!(
                    enc.check_plain_lines(line.as_bytes()),
                    (line.len(), 1),
                    "{line}"
                );
                bulk += 1;
            }
            assert!(bulk > 200, "{bulk}");
            // A few records of each: every column and edge of them is thousands of cases.
            for record in text.lines().filter(|l| !l.starts_with("999999")).take(12) {
                let fields: Vec<&[u8]> = record.as_bytes().split(|&b| b == b'|').collect();
                for col in 0..fields.len() {
                    let width = match layout.columns.get(col).map(|c| c.kind) {
                        Some(Kind::Varchar(w)) => w as usize,
                        _ => 0,
                    };
                    let exactly_wide = vec![b'W'; width];
                    let too_wide = vec![b'W'; width + 1];
                    let values = edges.iter().copied().chain([&exactly_wide[..], &too_wide]);
                    for value in values {
                        let mut changed = fields.clone();
                        changed[col] = value;
                        let data = changed.join(&b'|');
                        for encoding in [Encoding::Utf8, Encoding::Latin1, Encoding::Windows1252] {
                            let (mut with, mut without) = (Vec::new(), Vec::new());
                            let mut out = BytesMut::new();
                            let ok = RowEncoder::new(layout, encoding)
                                .encode(&mut out, 7, &data, &mut with);
                            let checked = RowEncoder::new(layout, encoding).encode(
                                &mut convert::Discard,
                                7,
                                &data,
                                &mut without,
                            );
                            assert_eq!(
                                (checked, &without),
                                (ok, &with),
                                "{}",
                                convert::show(&data)
                            );
                            // Taken in bulk only when good and printable ASCII; any other
                            // line (and a good one it is not sure of, such as a signed
                            // rate) is left to the reader and `encode`.
                            let line = [&data[..], b"\n"].concat();
                            let printable = data.iter().all(|b| (0x20..0x80).contains(b));
                            let mut enc = RowEncoder::new(layout, encoding);
                            match enc.check_plain_lines(&line) {
                                (0, 0) => {}
                                taken => {
                                    assert!(
                                        ok && printable && taken == (line.len(), 1),
                                        "{}",
                                        convert::show(&data)
                                    );
                                    bulk += 1;
                                }
                            }
                            compared += 1;
                        }
                    }
                }
            }
        }
        // Every layout, every column, every edge: thousands, not a handful; and most of
        // them plain and good enough to be taken in bulk.
        assert!(compared > 5_000, "{compared}");
        assert!(bulk * 2 > compared, "{bulk} of {compared}");
    }

    /// Checking only reads a file exactly as a load does: the same records, problems,
    /// lines and bytes, with faults of every kind at every place relative to the reader's
    /// buffer, where a line is split between two reads and the bulk path must leave it to
    /// the reader.
    #[test]
    fn validate_only_reads_a_file_as_a_load_does() {
        let good: Vec<&str> = include_str!("../testdata/CED01-15E.PIP")
            .lines()
            .filter(|l| !l.starts_with("999999"))
            .take(40)
            .collect();
        let faults: &[&[u8]] = &[
            b"",
            b"\n",
            b"\r\n",
            b"00516B|13|6|BAD DATE||||||A|2022-01-24|2029-02-30||5.875||A|20230922\n",
            b"00516B|13|6|TOO FEW|||||A|2022-01-24\n",
            b"00516B|13|6|SOCI\xc9T\xc9 G\xc9N\xc9RALE||||||A|2022-01-24|2029-05-31||5.875||A|20230922\n",
            b"00516B|13|6|TAB\tINSIDE||||||A|2022-01-24|2029-05-31||5.875||A|20230922\n",
            b"00516B|13|6|SUB AT END||||||A|2022-01-24|2029-05-31||5.875||A|20230922\x1a\n",
            b"00516B|13|6|RATE||||||A|2022-01-24|2029-05-31||+5.8750||A|20230922\n",
            b"999999|TRAILER|1\n00516B|13|6|AFTER||||||A|2022-01-24|2029-05-31||5.875||A|20230922\n",
        ];
        let lines: Vec<Vec<u8>> = good
            .iter()
            .map(|l| [l.as_bytes(), b"\n"].concat())
            .collect();
        let mut cases = 0;
        for (f, fault) in faults.iter().enumerate() {
            for before in [0, 1, 2, 7, 23] {
                let mut input: Vec<u8> = lines[..before].concat();
                input.extend_from_slice(fault);
                input.extend(lines[before..].concat());
                if before == 23 {
                    // Past the problem limit too, in one stretch.
                    for _ in 0..MAX_PROBLEMS {
                        input.extend_from_slice(faults[3]);
                    }
                }
                input.extend_from_slice(b"999999|TRAILER\r\n\x1a");
                // Reads that end mid-line everywhere, and one that holds the whole file.
                let chunk = [64, 97, 150, 256, 1 << 20][(f + before) % 5];
                let reader =
                    || RecordReader::with_limits(&input[..], chunk, crate::parse::MAX_LINE);
                for enc in [Encoding::Utf8, Encoding::Latin1] {
                    let opts = ParseOptions {
                        encoding: enc,
                        allow_missing_trailer: false,
                    };
                    let run = |keep: bool| {
                        let (tx, _rx) = mpsc::channel(1024);
                        let e = RowEncoder::new(&ISSUE, enc);
                        match keep {
                            true => produce_records(
                                reader(),
                                e,
                                chunk_buffer(),
                                None,
                                opts,
                                tx,
                                &|_, _| {},
                            ),
                            false => produce_records(
                                reader(),
                                e,
                                convert::Discard,
                                None,
                                opts,
                                tx,
                                &|_, _| {},
                            ),
                        }
                    };
                    let (loaded, checked) = (run(true), run(false));
                    let what = format!(
                        "{} after {before} (chunk {chunk}, {enc:?})",
                        convert::show(fault)
                    );
                    assert_eq!(checked.records, loaded.records, "{what}");
                    assert_eq!(checked.bytes, loaded.bytes, "{what}");
                    assert_eq!(checked.problems, loaded.problems, "{what}");
                    assert_eq!(checked.more_problems, loaded.more_problems, "{what}");
                    if loaded.problems.is_empty() {
                        assert_eq!(checked.staged, loaded.staged, "{what}");
                        for row in 1..=loaded.staged {
                            assert_eq!(
                                checked.line_map.line_of(row),
                                loaded.line_map.line_of(row),
                                "{what}"
                            );
                        }
                    }
                    cases += 1;
                }
            }
        }
        assert_eq!(cases, faults.len() * 5 * 2);
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
