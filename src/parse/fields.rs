//! Cutting one record at its `|` delimiters, without a branch per byte.
//!
//! Splitting runs once per record on every byte of the file, so it looks at sixteen bytes
//! at a time (sixty-four when it also finds the line's end) through SSE2 masks, with a
//! portable word-at-a-time version of each mask for other CPUs that the tests hold to the
//! vector one. Only where fields start is kept, in a buffer reused between records.

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
/// [`super::RecordReader::next_record`]'s care for line endings.
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
    /// the record has the right number. A record is at most [`super::MAX_LINE`] bytes, so
    /// its offsets fit in `u32`.
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
