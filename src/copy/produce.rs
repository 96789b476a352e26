//! A whole file → binary COPY chunks, on a blocking thread.
//!
//! The producer reads, splits, checks and encodes, and hands chunks (64 KiB first, doubling
//! to 1 MiB) over a bounded channel to the async COPY sink, so parsing and COPY overlap and
//! at most `CHANNEL_DEPTH` chunks are ever in memory. Each staging row carries the record's
//! file line number first, so every later check can point back into the file; past the
//! first problem nothing more is sent, and the rest of the file is read only to report.

use std::io::Read;

use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;

use super::encode::{RowEncoder, LINE_PREFIX};
use crate::compare::{Comparer, Decision, Repeats, Stop};
use crate::convert::{self, Encoding, Out};
use crate::error::Problem;
use crate::layout::Layout;
use crate::parse::{Next, RecordReader, ShapeError};
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
    /// The keys the comparison saw repeat in adjacent runs (with a comparer only).
    pub repeats: Option<Repeats>,
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
        compare.is_none() || enc.writes_line(),
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
    p.repeats = compare.map(|c| c.repeats);
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
    use crate::copy::tests::{file_of, run, GOOD};
    use crate::layout::{ISSUE, ISSUER};
    use crate::pgcopy::HEADER;

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

    /// Checking only reads a file exactly as a load does: the same records, problems,
    /// lines and bytes, with faults of every kind at every place relative to the reader's
    /// buffer, where a line is split between two reads and the bulk path must leave it to
    /// the reader.
    #[test]
    fn validate_only_reads_a_file_as_a_load_does() {
        let good: Vec<&str> = include_str!("../../testdata/CED01-15E.PIP")
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
