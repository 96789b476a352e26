//! Splitting a PIP byte stream into records and fields.
//!
//! The reader pulls fixed-size chunks from any `Read` (a local file today, an S3 body
//! bridged to `Read` later), so memory is bounded by the chunk size plus the longest line
//! allowed, whatever the file size. A record may straddle two chunks; the unread tail is
//! moved to the front of the buffer before the next read.

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
    /// The scanned bytes are kept in the buffer across refills (at most `max_line` of them;
    /// a longer blank run after a record ending in 0x1A is refused as an over-long line).
    fn rest_is_blank(&mut self) -> Result<bool, ShapeError> {
        let mut scanned = 0;
        loop {
            let rest = &self.buf[self.start + scanned..self.end];
            if rest.iter().any(|&b| !matches!(b, b'\n' | b'\r' | SUB)) {
                return Ok(false);
            }
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
    /// ([`Fields::split_line`]) and leaves the rest to [`RecordReader::next_record`]. Empty
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

/// What [`Fields::split`] found in one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Split {
    /// Fields found (delimiters + 1), whether or not they all fitted.
    pub count: usize,
    /// Every byte is ASCII and none is NUL: text fields then need no per-field encoding
    /// or NUL check, only a width check, which is what makes the common case fast.
    pub plain: bool,
}

/// Bit masks, one bit per byte of a 16-byte block: which bytes are `|`, which have the
/// high bit set (not ASCII), and which are NUL.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn block_masks(block: &[u8; 16]) -> (u32, u32, u32) {
    use std::arch::x86_64::*;
    // SAFETY: SSE2 is part of the x86_64 baseline, so these intrinsics are always
    // available; the load is unaligned and reads exactly the 16 bytes of `block`.
    unsafe {
        let v = _mm_loadu_si128(block.as_ptr().cast::<__m128i>());
        let pipes = _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(b'|' as i8)));
        let nul = _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_setzero_si128()));
        let high = _mm_movemask_epi8(v);
        (pipes as u32, high as u32, nul as u32)
    }
}

/// The portable version of [`block_masks`]: eight bytes at a time in a `u64`.
#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn block_masks(block: &[u8; 16]) -> (u32, u32, u32) {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    // High bit set in exactly the bytes equal to `b` (no false positives).
    let eq = |w: u64, b: u8| {
        let x = w ^ (LO * b as u64);
        !(((x & !HI).wrapping_add(!HI)) | x) & HI
    };
    // Gathers the high bit of each byte into one bit per byte.
    let pack = |m: u64| (((m & HI) >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56) as u32;
    let mut out = (0, 0, 0);
    for (half, bytes) in block.chunks_exact(8).enumerate() {
        let mut w8 = [0u8; 8];
        w8.copy_from_slice(bytes);
        let w = u64::from_le_bytes(w8);
        let shift = 8 * half as u32;
        out.0 |= pack(eq(w, b'|')) << shift;
        out.1 |= pack(w) << shift;
        out.2 |= pack(eq(w, 0)) << shift;
    }
    out
}

/// Adds the cuts after the delimiters of one 16-byte block starting at `base`, while fewer
/// than `keep` have been found, and counts them all in `n`.
#[inline(always)]
fn block_cuts(
    b16: &[u8; 16],
    base: u32,
    cuts: &mut [u32],
    keep: usize,
    n: &mut usize,
    high: &mut u32,
    nul: &mut u32,
) {
    let (mut pipes, h, z) = block_masks(b16);
    *high |= h;
    *nul |= z;
    let found = pipes.count_ones() as usize;
    if *n < keep {
        // At most 16 writes from n + 1 ≤ keep: within keep + SLACK.
        let mut at = *n + 1;
        loop {
            for slot in &mut cuts[at..at + 4] {
                *slot = base + 1 + pipes.trailing_zeros();
                pipes &= pipes.wrapping_sub(1);
            }
            at += 4;
            if pipes == 0 {
                break;
            }
        }
    }
    *n += found;
}

/// Bit masks, one bit per byte of a 64-byte block: which bytes are `|`, and which are
/// not printable ASCII (below 0x20, which takes in `\n`, `\r`, NUL and 0x1A, or 0x80 and
/// above). A line whose first such byte is its `\n` is plain and needs nothing of
/// [`RecordReader::next_record`]'s care for line endings.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn line_masks(block: &[u8; 64]) -> (u64, u64) {
    use std::arch::x86_64::*;
    let (mut pipes, mut odd) = (0u64, 0u64);
    for (k, b16) in block.chunks_exact(16).enumerate() {
        // SAFETY: SSE2 is part of the x86_64 baseline; the unaligned load reads exactly the
        // 16 bytes of `b16`.
        let (p, o) = unsafe {
            let v = _mm_loadu_si128(b16.as_ptr().cast::<__m128i>());
            let p = _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(b'|' as i8)));
            // A signed compare: bytes from 0x80 up are negative, so below 0x20 too.
            let o = _mm_movemask_epi8(_mm_cmplt_epi8(v, _mm_set1_epi8(0x20)));
            (p as u16 as u64, o as u16 as u64)
        };
        pipes |= p << (16 * k);
        odd |= o << (16 * k);
    }
    (pipes, odd)
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn line_masks(block: &[u8; 64]) -> (u64, u64) {
    line_masks_swar(block)
}

/// The portable [`line_masks`], eight bytes at a time in a `u64`.
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
#[inline(always)]
fn line_masks_swar(block: &[u8; 64]) -> (u64, u64) {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    // Gathers the high bit of each byte into one bit per byte.
    let pack = |m: u64| ((m & HI) >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56;
    let (mut pipes, mut odd) = (0u64, 0u64);
    for (k, bytes) in block.chunks_exact(8).enumerate() {
        let mut w8 = [0u8; 8];
        w8.copy_from_slice(bytes);
        let w = u64::from_le_bytes(w8);
        let x = w ^ (LO * b'|' as u64);
        let is_pipe = !(((x & !HI).wrapping_add(!HI)) | x) & HI;
        // The low seven bits plus 0x60 reach 0x80 exactly when they are 0x20 or more;
        // no byte carries into the next.
        let printable = (w & !HI).wrapping_add(LO * 0x60) & !w & HI;
        pipes |= pack(is_pipe) << (8 * k);
        odd |= pack(!printable & HI) << (8 * k);
    }
    (pipes, odd)
}

/// One record split on `|`, kept between records so that splitting allocates nothing.
///
/// Only where each field starts is stored: field `i` is `cuts[i] .. cuts[i + 1] - 1`, so a
/// field's length is a subtraction, and checking every length of a record is one loop
/// without branches.
#[derive(Debug, Clone)]
pub struct Fields {
    /// `cuts[0]` is 0, `cuts[i + 1]` one past the end of field `i` plus the delimiter.
    /// Room for `columns` fields, plus slack for the splitter's unconditional writes.
    cuts: Vec<u32>,
    /// Fields kept: the first `columns` of a record; the rest are only counted.
    columns: usize,
    /// Fields in the last record split.
    count: usize,
    /// The CPU has `popcnt` and `bmi1`: asked once here, not once per record.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    bit_counts: bool,
}

/// Slack past the kept cuts for the unconditional writes: a 64-byte block holds at most 64
/// delimiters, written four at a time.
const SLACK: usize = 68;

impl Fields {
    pub fn new(columns: usize) -> Fields {
        Fields {
            cuts: vec![0; columns + 1 + SLACK],
            columns,
            count: 0,
            #[cfg(target_arch = "x86_64")]
            bit_counts: std::is_x86_feature_detected!("popcnt")
                && std::is_x86_feature_detected!("bmi1"),
            #[cfg(not(target_arch = "x86_64"))]
            bit_counts: false,
        }
    }

    /// Splits a record, returning the number of fields found and whether it is plain
    /// ASCII. Only the first `columns` fields are kept; the count tells the caller whether
    /// the record has the right number. A record is at most [`MAX_LINE`] bytes, so its
    /// offsets fit in `u32`.
    ///
    /// One pass, sixteen bytes at a time: a record has a delimiter every few bytes, so
    /// calling `memchr` per field costs more in call setup than it saves. A block's
    /// delimiters are written four at a time whatever their number (the writes past them
    /// land in slack the next block overwrites), so the common block, with up to four, takes
    /// no branch that depends on the data (`cargo bench --bench parse`, `split`).
    pub fn split(&mut self, record: &[u8]) -> Split {
        #[cfg(target_arch = "x86_64")]
        if self.bit_counts {
            // SAFETY: `new` found the CPU to have the features this copy of the splitter
            // is compiled for.
            return unsafe { self.split_popcnt_bmi1(record) };
        }
        self.split_any(record)
    }

    /// [`Fields::split`] compiled for CPUs with one-instruction bit counts (every x86_64
    /// since about 2013; the baseline has neither, and counting by shifts was a third of
    /// the splitter's instructions).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "popcnt,bmi1")]
    unsafe fn split_popcnt_bmi1(&mut self, record: &[u8]) -> Split {
        self.split_any(record)
    }

    #[inline(always)]
    fn split_any(&mut self, record: &[u8]) -> Split {
        debug_assert!(record.len() < u32::MAX as usize);
        let keep = self.columns;
        let cuts = &mut self.cuts;
        cuts[0] = 0;
        let mut n = 0usize;
        let mut high = 0u32;
        let mut nul = 0u32;
        let blocks = record.chunks_exact(16);
        let tail = blocks.remainder();
        for (k, block) in blocks.enumerate() {
            let mut b16 = [0u8; 16];
            b16.copy_from_slice(block);
            block_cuts(
                &b16,
                (k * 16) as u32,
                cuts,
                keep,
                &mut n,
                &mut high,
                &mut nul,
            );
        }
        if !tail.is_empty() {
            // The last few bytes as one more block, padded with a byte that is plain and no
            // delimiter: no byte-at-a-time loop with a branch per byte.
            let mut b16 = [b' '; 16];
            b16[..tail.len()].copy_from_slice(tail);
            let base = (record.len() - tail.len()) as u32;
            block_cuts(&b16, base, cuts, keep, &mut n, &mut high, &mut nul);
        }
        if n < keep {
            cuts[n + 1] = record.len() as u32 + 1;
        }
        self.count = n + 1;
        Split {
            count: n + 1,
            plain: high == 0 && nul == 0,
        }
    }

    /// Splits the line at the start of `buf` as [`Fields::split`] would split it, if it is
    /// plain: it ends in `\n`, and every byte before is printable ASCII (0x20–0x7F).
    /// Returns the line's length without the `\n`, or `None` for any other line (a `\r`, a
    /// control or non-ASCII byte, or no `\n` in `buf`), which is then left to the reader.
    ///
    /// Finding the line's end and its delimiters is one pass, 64 bytes at a time: the
    /// first byte that is not printable ends the line, so there is no separate newline
    /// search per line (`--validate-only` takes records this way).
    pub fn split_line(&mut self, buf: &[u8]) -> Option<usize> {
        #[cfg(target_arch = "x86_64")]
        if self.bit_counts {
            // SAFETY: `new` found the CPU to have the features this copy is compiled for.
            return unsafe { self.split_line_popcnt_bmi1(buf) };
        }
        self.split_line_any(buf)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "popcnt,bmi1")]
    unsafe fn split_line_popcnt_bmi1(&mut self, buf: &[u8]) -> Option<usize> {
        self.split_line_any(buf)
    }

    #[inline(always)]
    fn split_line_any(&mut self, buf: &[u8]) -> Option<usize> {
        let keep = self.columns;
        let cuts = &mut self.cuts;
        cuts[0] = 0;
        let mut n = 0usize;
        let mut base = 0usize;
        loop {
            let rest = &buf[base..];
            let (pipes, odd) = match rest.first_chunk::<64>() {
                Some(block) => line_masks(block),
                None => {
                    // Padded with NUL, which is not printable: a line that does not end
                    // within `buf` stops at the padding and is refused below.
                    let mut block = [0u8; 64];
                    block[..rest.len()].copy_from_slice(rest);
                    line_masks(&block)
                }
            };
            let (pipes, end) = match odd {
                0 => (pipes, None),
                _ => {
                    let c = odd.trailing_zeros();
                    (pipes & ((1u64 << c) - 1), Some(base + c as usize))
                }
            };
            if n < keep {
                // At most 64 writes from n + 1 ≤ keep, in fours: within keep + SLACK.
                let mut pipes = pipes;
                let mut at = n + 1;
                while pipes != 0 {
                    for slot in &mut cuts[at..at + 4] {
                        *slot = (base as u32) + 1 + pipes.trailing_zeros();
                        pipes &= pipes.wrapping_sub(1);
                    }
                    at += 4;
                }
            }
            n += pipes.count_ones() as usize;
            if let Some(len) = end {
                if buf.get(len) != Some(&b'\n') || len >= u32::MAX as usize {
                    return None;
                }
                if n < keep {
                    cuts[n + 1] = len as u32 + 1;
                }
                self.count = n + 1;
                return Some(len);
            }
            base += 64;
        }
    }

    /// Fields in the last record split, whether or not they were all kept.
    pub fn count(&self) -> usize {
        self.count
    }

    /// The kept fields of the last record split, as (start, end) byte offsets.
    pub fn ranges(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        let kept = self.count.min(self.columns);
        self.cuts[..=kept]
            .windows(2)
            .map(|w| (w[0] as usize, w[1] as usize - 1))
    }

    /// The (start, end) of kept field `i` of the last record split.
    pub fn range(&self, i: usize) -> (usize, usize) {
        debug_assert!(i < self.count.min(self.columns));
        (self.cuts[i] as usize, self.cuts[i + 1] as usize - 1)
    }

    /// Every kept field's length, in order.
    pub fn lens(&self) -> impl Iterator<Item = u32> + '_ {
        self.cuts().windows(2).map(|w| w[1] - w[0] - 1)
    }

    /// Where each kept field starts, then one past the end of the last plus one: field
    /// `i`'s length is `cuts[i + 1] - cuts[i] - 1`.
    pub fn cuts(&self) -> &[u32] {
        &self.cuts[..=self.count.min(self.columns)]
    }
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

    #[test]
    fn fields() {
        let mut f = Fields::new(3);
        assert_eq!(f.split(b"a||c").count, 3);
        assert_eq!(f.ranges().collect::<Vec<_>>(), [(0, 1), (2, 2), (3, 4)]);
        assert_eq!(f.lens().collect::<Vec<_>>(), [1, 0, 1]);
        assert_eq!(f.range(2), (3, 4));
        assert_eq!(f.split(b"a|b").count, 2);
        assert_eq!(f.ranges().collect::<Vec<_>>(), [(0, 1), (2, 3)]);
        assert_eq!(f.split(b"a|b|c|d|e").count, 5);
        assert_eq!(f.ranges().collect::<Vec<_>>(), [(0, 1), (2, 3), (4, 5)]);
        assert_eq!(f.split(b"").count, 1);
        assert_eq!(f.ranges().collect::<Vec<_>>(), [(0, 0)]);
        // Sixteen delimiters in one block, and more than the fields kept.
        let all_pipes = [b'|'; 40];
        assert_eq!(f.split(&all_pipes).count, 41);
        assert_eq!(f.ranges().collect::<Vec<_>>(), [(0, 0), (1, 1), (2, 2)]);
    }

    /// The word-at-a-time splitter against the obvious one, on many records mixing
    /// delimiters, NULs and high bytes at every offset of a word.
    #[test]
    fn split_matches_the_naive_split() {
        let alphabet = [b'a', b'|', 0u8, 0xC3, 0xA9, b' ', 0x7F, 0x80, b'{', 0xFF];
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        for len in 0..70 {
            for _ in 0..40 {
                let rec: Vec<u8> = (0..len)
                    .map(|_| {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        alphabet[(seed % alphabet.len() as u64) as usize]
                    })
                    .collect();
                let mut want = Vec::new();
                let mut start = 0;
                for (i, &b) in rec.iter().enumerate() {
                    if b == b'|' {
                        want.push((start, i));
                        start = i + 1;
                    }
                }
                want.push((start, rec.len()));
                // Keeping every field, and fewer than there are.
                for keep in [want.len(), want.len() / 2, 1] {
                    let mut f = Fields::new(keep);
                    let split = f.split(&rec);
                    assert_eq!(split.count, want.len(), "{rec:?}");
                    let got: Vec<_> = f.ranges().collect();
                    assert_eq!(got, want[..keep.min(want.len())], "{rec:?} keep {keep}");
                    let lens: Vec<_> = f.lens().map(|n| n as usize).collect();
                    let want_lens: Vec<_> = got.iter().map(|&(s, e)| e - s).collect();
                    assert_eq!(lens, want_lens);
                }
                let split = Fields::new(want.len()).split(&rec);
                assert_eq!(
                    split.plain,
                    rec.iter().all(|&b| b != 0 && b < 0x80),
                    "{rec:?}"
                );
            }
        }
    }

    /// A xorshift stream of bytes drawn from `alphabet`.
    fn noise(seed: &mut u64, alphabet: &[u8], len: usize) -> Vec<u8> {
        (0..len)
            .map(|_| {
                *seed ^= *seed << 13;
                *seed ^= *seed >> 7;
                *seed ^= *seed << 17;
                alphabet[(*seed % alphabet.len() as u64) as usize]
            })
            .collect()
    }

    #[test]
    fn portable_line_masks_agree_with_the_vector_ones() {
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let all: Vec<u8> = (0..=255).collect();
        for _ in 0..2000 {
            let bytes = noise(&mut seed, &all, 64);
            let mut block = [0u8; 64];
            block.copy_from_slice(&bytes);
            let (pipes, odd) = line_masks_swar(&block);
            assert_eq!((pipes, odd), line_masks(&block), "{bytes:?}");
            for (i, &b) in bytes.iter().enumerate() {
                assert_eq!(pipes >> i & 1 == 1, b == b'|', "{b:#x}");
                assert_eq!(odd >> i & 1 == 1, !(0x20..0x80).contains(&b), "{b:#x}");
            }
        }
    }

    /// `split_line` takes a line exactly when its first byte outside 0x20–0x7F is its
    /// `\n`, and then splits it as `split` does, from every offset of buffers mixing long
    /// and short lines, runs of delimiters, and every kind of byte it must not take.
    #[test]
    fn split_line_takes_plain_lines_and_splits_them_like_split() {
        let alphabet = [
            b'a', b'|', b'|', b'\n', b' ', b'~', 0x7F, 0x1F, b'\r', 0x1A, 0, 0x80, 0xC3, b'0',
        ];
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        for round in 0..300 {
            let len = [0, 1, 63, 64, 65, 130, 300][round % 7];
            // Mostly plain bytes, so that many lines are whole and plain.
            let plain = round % 3 != 0;
            let pick: &[u8] = if plain { &alphabet[..7] } else { &alphabet };
            let mut buf = noise(&mut seed, pick, len);
            if plain && len > 0 {
                let at = (seed as usize) % len;
                buf[at] = b'\n';
            }
            for keep in [1, 3, 17, 80] {
                let mut f = Fields::new(keep);
                let mut g = Fields::new(keep);
                for start in 0..=buf.len() {
                    let rest = &buf[start..];
                    let first_odd = rest.iter().position(|b| !(0x20..0x80).contains(b));
                    let want = first_odd.filter(|&i| rest[i] == b'\n');
                    let got = f.split_line(rest);
                    assert_eq!(got, want, "{rest:?}");
                    if let Some(n) = got {
                        let split = g.split(&rest[..n]);
                        assert!(split.plain);
                        assert_eq!(f.count(), split.count, "{rest:?}");
                        assert_eq!(f.cuts(), g.cuts(), "{rest:?} keep {keep}");
                    }
                }
            }
        }
    }
}
