//! Framing a PIP byte stream into records, in bounded memory.
//!
//! The reader pulls fixed-size chunks from any `Read` (a local file today, an S3 body
//! bridged to `Read` later), so memory is bounded by the chunk size plus the longest line
//! allowed, whatever the file size. A record may straddle two chunks; the unread tail is
//! moved to the front of the buffer before the next read. Everything about line endings,
//! blank lines, the trailer and a DOS end-of-file byte is decided here and nowhere else.

use std::io::{self, Read};

/// Bytes requested from the source per read, once past the first few ([`FIRST_READ`]).
pub const CHUNK: usize = 1 << 20;

/// Bytes requested by the first read; each next read asks for twice as many, up to
/// [`CHUNK`]. Until the first rows are parsed, encoded and sent, the server's COPY waits:
/// a first read of a whole chunk (copied, and hashed by [`crate::source::Fingerprint`],
/// into pages touched for the first time) kept it waiting about a millisecond.
pub const FIRST_READ: usize = 64 * 1024;

/// The longest line accepted. A real record is at most a few KB (53 fields of ≤ 60
/// characters); anything far longer is not a PIP record, and refusing it keeps memory bounded
/// when a file has no newlines at all.
pub const MAX_LINE: usize = 1 << 20;

/// DOS end-of-file marker, tolerated at the very end of a file.
const SUB: u8 = 0x1A;

/// The trailer record starts with this issuer number; it is not data.
const TRAILER: &[u8] = b"999999";

/// A problem with the shape of the stream itself (as opposed to a value in a field).
#[derive(Debug, thiserror::Error)]
pub enum ShapeError {
    #[error("line {line} is longer than {limit} bytes; this is not a PIP record")]
    LineTooLong { line: u64, limit: usize },
    #[error("line {line} follows the 999999 trailer, which must be the last record")]
    DataAfterTrailer { line: u64 },
    #[error(
        "the file ends at line {lines} without the 999999 trailer record, so it is probably \
         truncated (use --allow-missing-trailer if this file never has one)"
    )]
    MissingTrailer { lines: u64 },
    #[error("read failed after {offset} bytes: {source}")]
    Io { offset: u64, source: io::Error },
}

/// What the reader found next.
#[derive(Debug, PartialEq, Eq)]
pub enum Next<'a> {
    /// A data record (without its line ending) and its 1-based line number.
    Record { line: u64, data: &'a [u8] },
    /// The trailer record.
    Trailer { line: u64 },
    /// End of input.
    End,
}

pub struct RecordReader<R> {
    src: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
    line: u64,
    /// Bytes consumed from `src` so far.
    offset: u64,
    trailer_line: Option<u64>,
    max_line: usize,
    /// A line ending in 0x1A, copied out while the reader looks past it.
    held: Vec<u8>,
    /// The most the next read asks for: [`FIRST_READ`], doubling.
    read_at_most: usize,
}

impl<R: Read> RecordReader<R> {
    pub fn new(src: R) -> Self {
        Self::with_limits(src, CHUNK, MAX_LINE)
    }

    pub fn with_limits(src: R, chunk: usize, max_line: usize) -> Self {
        RecordReader {
            src,
            buf: vec![0; chunk.max(16)],
            start: 0,
            end: 0,
            eof: false,
            line: 0,
            offset: 0,
            trailer_line: None,
            max_line,
            held: Vec::new(),
            read_at_most: FIRST_READ,
        }
    }

    /// Bytes read from the source so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Physical lines read so far.
    pub fn lines(&self) -> u64 {
        self.line
    }

    /// Whether the trailer has been seen (only meaningful after `Next::End`).
    pub fn saw_trailer(&self) -> bool {
        self.trailer_line.is_some()
    }

    /// Refills the buffer, keeping the unread tail. Returns false at end of input.
    fn fill(&mut self) -> Result<bool, ShapeError> {
        if self.eof {
            return Ok(false);
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            if self.buf.len() >= self.max_line {
                return Err(ShapeError::LineTooLong {
                    line: self.line + 1,
                    limit: self.max_line,
                });
            }
            let grown = (self.buf.len() * 2).min(self.max_line.max(self.buf.len() + 1));
            self.buf.resize(grown, 0);
        }
        let until = self
            .buf
            .len()
            .min(self.end.saturating_add(self.read_at_most));
        loop {
            match self.src.read(&mut self.buf[self.end..until]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(false);
                }
                Ok(n) => {
                    self.end += n;
                    self.offset += n as u64;
                    self.read_at_most = self.read_at_most.saturating_mul(2);
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(ShapeError::Io {
                        offset: self.offset,
                        source,
                    })
                }
            }
        }
    }

    /// The next physical line without its `\n`, as a range of `buf`.
    fn next_line(&mut self) -> Result<Option<(usize, usize)>, ShapeError> {
        let mut searched = self.start;
        loop {
            if let Some(i) = memchr::memchr(b'\n', &self.buf[searched..self.end]) {
                let (s, e) = (self.start, searched + i);
                self.start = e + 1;
                self.line += 1;
                return Ok(Some((s, e)));
            }
            let scanned = self.end - self.start;
            if !self.fill()? {
                if self.start < self.end {
                    let (s, e) = (self.start, self.end);
                    self.start = self.end;
                    self.line += 1;
                    return Ok(Some((s, e)));
                }
                return Ok(None);
            }
            searched = self.start + scanned;
        }
    }

    /// True when nothing but line endings and 0x1A bytes remain. Consumes those bytes only
    /// when it is true: when false, everything scanned stays unread, because a `0x1A` line
    /// before more data is a record of its own and must be seen as one.
    ///
    /// The scanned bytes are kept in the buffer across refills, except whole blank lines at
    /// their front, which are counted and skipped as `next_record` would skip them: any
    /// number of blank lines may follow a record ending in 0x1A. What must be kept (lines
    /// holding 0x1A, records if data follows) is at most `max_line` bytes; a longer run of
    /// them is refused as an over-long line.
    fn rest_is_blank(&mut self) -> Result<bool, ShapeError> {
        let mut scanned = 0;
        loop {
            let rest = &self.buf[self.start + scanned..self.end];
            if rest.iter().any(|&b| !matches!(b, b'\n' | b'\r' | SUB)) {
                return Ok(false);
            }
            let (cut, lines) = blank_lines(&self.buf[self.start..self.end]);
            self.start += cut;
            self.line += lines;
            scanned = self.end - self.start;
            if !self.fill()? {
                let rest = &self.buf[self.start..self.end];
                self.line += memchr::memchr_iter(b'\n', rest).count() as u64;
                self.start = self.end;
                return Ok(true);
            }
        }
    }

    /// The unread bytes already read in, for a caller that takes plain records in bulk
    /// ([`super::Fields::split_line`]) and leaves the rest to [`RecordReader::next_record`]. Empty
    /// once the trailer has been seen: every line after it is an error that only
    /// `next_record` reports.
    pub fn buffered(&self) -> &[u8] {
        if self.trailer_line.is_some() {
            return &[];
        }
        &self.buf[self.start..self.end]
    }

    /// Marks the first `bytes` of [`RecordReader::buffered`] as read: `lines` whole lines,
    /// each a record that `next_record` would have returned as it is.
    pub fn consume(&mut self, bytes: usize, lines: u64) {
        debug_assert!(self.start + bytes <= self.end);
        self.start += bytes;
        self.line += lines;
    }

    /// The next record, skipping blank lines and handling the trailer and a final 0x1A.
    pub fn next_record(&mut self) -> Result<Next<'_>, ShapeError> {
        loop {
            let Some((s, mut e)) = self.next_line()? else {
                return Ok(Next::End);
            };
            let line = self.line;
            if e > s && self.buf[e - 1] == b'\r' {
                e -= 1;
            }
            if e > s && self.buf[e - 1] == SUB {
                // Rare: hold the line aside, because looking past it may refill the buffer.
                self.held.clear();
                self.held.extend_from_slice(&self.buf[s..e]);
                if self.rest_is_blank()? {
                    self.held.pop();
                    if self.held.last() == Some(&b'\r') {
                        self.held.pop();
                    }
                }
                if self.held.is_empty() {
                    continue;
                }
                return classify(&mut self.trailer_line, line, &self.held);
            }
            if e == s {
                continue;
            }
            return classify(&mut self.trailer_line, line, &self.buf[s..e]);
        }
    }
}

/// The length of the whole blank lines (empty, or a lone `\r`) at the front of `bytes`, and
/// how many there are.
fn blank_lines(bytes: &[u8]) -> (usize, u64) {
    let mut cut = 0;
    let mut lines = 0;
    for i in memchr::memchr_iter(b'\n', bytes) {
        let line = &bytes[cut..i];
        if !(line.is_empty() || line == b"\r") {
            break;
        }
        cut = i + 1;
        lines += 1;
    }
    (cut, lines)
}

/// Whether a line is the trailer record rather than data.
pub fn is_trailer(data: &[u8]) -> bool {
    data.starts_with(TRAILER)
}

fn classify<'a>(
    trailer_line: &mut Option<u64>,
    line: u64,
    data: &'a [u8],
) -> Result<Next<'a>, ShapeError> {
    if trailer_line.is_some() {
        return Err(ShapeError::DataAfterTrailer { line });
    }
    if is_trailer(data) {
        *trailer_line = Some(line);
        return Ok(Next::Trailer { line });
    }
    Ok(Next::Record { line, data })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A source that notes how many bytes each read asked for.
    struct Asks<'a> {
        data: &'a [u8],
        asked: Vec<usize>,
    }

    impl Read for Asks<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.asked.push(buf.len());
            self.data.read(buf)
        }
    }

    #[test]
    fn the_first_read_is_small_and_reads_double_up_to_a_chunk() {
        let line = b"00123A|1|ACME CORP||||||||C|A||A|NY|2024-01-15\n";
        let lines = 8 * CHUNK / line.len();
        let data: Vec<u8> = line
            .iter()
            .copied()
            .cycle()
            .take(lines * line.len())
            .collect();
        let mut r = RecordReader::new(Asks {
            data: &data,
            asked: Vec::new(),
        });
        let mut records = 0;
        while let Next::Record { .. } = r.next_record().unwrap_or(Next::End) {
            records += 1;
        }
        assert_eq!(records, lines);
        let asked = &r.src.asked;
        assert_eq!(asked[0], FIRST_READ, "{asked:?}");
        // Each read asks for at most twice the last, less the unread tail kept.
        for w in asked.windows(2).take(4) {
            assert!(w[1] <= 2 * w[0] && w[1] > w[0], "{asked:?}");
        }
        assert!(asked.iter().all(|&a| a <= CHUNK), "{asked:?}");
        assert!(
            asked[6..].iter().all(|&a| a > CHUNK - line.len()),
            "{asked:?}"
        );
    }

    /// Reads everything with a tiny chunk size so records straddle chunk boundaries.
    fn all(input: &[u8], chunk: usize) -> Result<(Vec<(u64, String)>, bool), ShapeError> {
        let mut r = RecordReader::with_limits(input, chunk, 64);
        let mut out = Vec::new();
        loop {
            match r.next_record()? {
                Next::Record { line, data } => {
                    out.push((line, String::from_utf8_lossy(data).into_owned()))
                }
                Next::Trailer { line } => out.push((line, "<trailer>".into())),
                Next::End => return Ok((out, r.saw_trailer())),
            }
        }
    }

    #[test]
    fn lines_crlf_blank_and_trailer_at_every_chunk_size() {
        let input = b"a|b\r\n\r\nc|d\n\n999999|END\r\n";
        for chunk in [16, 17, 19, 23, 64] {
            let (recs, trailer) = all(input, chunk).unwrap();
            assert_eq!(
                recs,
                vec![
                    (1, "a|b".into()),
                    (3, "c|d".into()),
                    (5, "<trailer>".into())
                ],
                "chunk {chunk}"
            );
            assert!(trailer);
        }
    }

    #[test]
    fn sub_byte_at_the_end_before_or_after_the_last_newline() {
        for input in [
            &b"a|b\n999999|x\n\x1a"[..],
            b"a|b\n999999|x\x1a\n",
            b"a|b\n999999|x\x1a",
            b"a|b\n999999|x\r\n\x1a\r\n\n",
            b"a|b\x1a",
        ] {
            let (recs, _) = all(input, 16).unwrap();
            assert_eq!(recs[0], (1, "a|b".into()), "{input:?}");
            assert!(recs.iter().all(|(_, r)| !r.contains('\x1a')), "{input:?}");
        }
    }

    #[test]
    fn sub_byte_inside_the_file_is_data() {
        let (recs, _) = all(b"a\x1a\nb\n", 16).unwrap();
        assert_eq!(recs, vec![(1, "a\x1a".into()), (2, "b".into())]);
    }

    #[test]
    fn no_final_newline() {
        let (recs, trailer) = all(b"a|b\nc|d", 16).unwrap();
        assert_eq!(recs, vec![(1, "a|b".into()), (2, "c|d".into())]);
        assert!(!trailer);
    }

    #[test]
    fn data_after_trailer_is_refused() {
        let e = all(b"a\n999999\nb\n", 16).unwrap_err();
        assert!(matches!(e, ShapeError::DataAfterTrailer { line: 3 }), "{e}");
    }

    #[test]
    fn any_number_of_blank_lines_may_follow_a_record_ending_in_0x1a() {
        // Found by tests/props.rs: 0x1A, CR, 65 blank lines, then data, read with a 64-byte
        // line limit, was refused as an over-long line 2.
        let mut input = b"\x1a\r".to_vec();
        input.extend(std::iter::repeat_n(b'\n', 65));
        input.extend_from_slice(b"|||\n");
        let (recs, _) = all(&input, 16).unwrap();
        assert_eq!(recs, vec![(1, "\x1a".into()), (66, "|||".into())]);
        // And the same run with only blank lines after it: the 0x1A is the end of the file.
        let mut input = b"a|b\n\x1a".to_vec();
        input.extend(std::iter::repeat_n(b'\n', 200));
        let (recs, _) = all(&input, 16).unwrap();
        assert_eq!(recs, vec![(1, "a|b".into())]);
    }

    #[test]
    fn overlong_line_is_refused_with_bounded_memory() {
        let input = vec![b'x'; 1000];
        let e = all(&input, 16).unwrap_err();
        assert!(
            matches!(e, ShapeError::LineTooLong { line: 1, limit: 64 }),
            "{e}"
        );
        // Exactly at the limit with a newline is still fine.
        let mut ok = vec![b'x'; 63];
        ok.push(b'\n');
        assert_eq!(all(&ok, 16).unwrap().0.len(), 1);
    }
}
