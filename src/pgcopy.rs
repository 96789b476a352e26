//! The framing of PostgreSQL's binary COPY format, written down once.
//!
//! The loader speaks this format in both directions: it encodes the file's rows into it
//! (`copy`, `convert`), and it reads the master table back in it to compare (`compare`).
//! The two sides must agree to the byte, because equal bytes are taken to mean equal
//! values, so the signature, the header's layout, the words that end the stream and mark
//! NULL, and how the big-endian words are read all live here rather than in each user.
//! How each column type's value is encoded is not framing; that stays with the converters.

/// The 11 bytes every binary COPY stream starts with.
pub const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";

/// Where the header's extension length word stands: after the signature and the 32-bit
/// flags word.
pub const EXTENSION_LEN_AT: usize = SIGNATURE.len() + 4;

/// The header without its extension: signature, flags word, extension length word.
pub const HEADER_LEN: usize = EXTENSION_LEN_AT + 4;

/// The header the loader writes: no flags (no OIDs), no extension.
pub const HEADER: [u8; HEADER_LEN] = header();

const fn header() -> [u8; HEADER_LEN] {
    let mut out = [0; HEADER_LEN];
    let mut i = 0;
    while i < SIGNATURE.len() {
        out[i] = SIGNATURE[i];
        i += 1;
    }
    out
}

/// The field count word that ends the stream in place of a row.
pub const TRAILER: i16 = -1;

/// The length word of a NULL field, which has no bytes after it.
pub const NULL: i32 = -1;

/// The big-endian 16-bit word (a row's field count) at `at`, or `None` if `buf` ends
/// before it.
#[inline]
pub fn i16_at(buf: &[u8], at: usize) -> Option<i16> {
    Some(i16::from_be_bytes(*buf.get(at..)?.first_chunk()?))
}

/// The big-endian 32-bit word (a field's length word) at `at`, or `None` if `buf` ends
/// before it.
#[inline]
pub fn i32_at(buf: &[u8], at: usize) -> Option<i32> {
    Some(i32::from_be_bytes(*buf.get(at..)?.first_chunk()?))
}

/// Splits the next field (its value, without the length word) off a row's field
/// sequence, or `None` when not even a length word is left. NULL reads as empty, and a
/// length past the end of `rest` is cut to what is there.
#[inline]
pub fn next_field<'a>(rest: &mut &'a [u8]) -> Option<&'a [u8]> {
    let len = i32_at(rest, 0)?.max(0) as usize;
    let end = (4 + len).min(rest.len());
    let field = &rest[4..end];
    *rest = &rest[end..];
    Some(field)
}

/// The first `n` fields of a field sequence, length words included (fewer if it holds
/// fewer).
pub fn leading_fields(fields: &[u8], n: usize) -> &[u8] {
    let mut rest = fields;
    for _ in 0..n {
        if next_field(&mut rest).is_none() {
            break;
        }
    }
    &fields[..fields.len() - rest.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_is_the_signature_then_zero_flags_and_no_extension() {
        assert_eq!(&HEADER, b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0");
        assert_eq!(i32_at(&HEADER, EXTENSION_LEN_AT), Some(0));
    }

    #[test]
    fn words_are_big_endian_and_never_read_past_the_end() {
        let b = [0x00, 0x11, 0xFF, 0xFF, 0xFF, 0xFE];
        assert_eq!(i16_at(&b, 0), Some(17));
        assert_eq!(i32_at(&b, 2), Some(-2));
        assert_eq!(i16_at(&b, 5), None);
        assert_eq!(i32_at(&b, 3), None);
        assert_eq!(i32_at(&b, 99), None);
    }

    #[test]
    fn fields_are_split_by_their_length_words() {
        let mut seq = Vec::new();
        seq.extend_from_slice(&2i32.to_be_bytes());
        seq.extend_from_slice(b"AB");
        seq.extend_from_slice(&NULL.to_be_bytes());
        seq.extend_from_slice(&5i32.to_be_bytes());
        seq.extend_from_slice(b"cut");
        assert_eq!(leading_fields(&seq, 1), &seq[..6]);
        assert_eq!(leading_fields(&seq, 2), &seq[..10]);
        assert_eq!(leading_fields(&seq, 9), &seq[..]);
        let mut rest = &seq[..];
        assert_eq!(next_field(&mut rest), Some(&b"AB"[..]));
        assert_eq!(next_field(&mut rest), Some(&b""[..]));
        assert_eq!(next_field(&mut rest), Some(&b"cut"[..]));
        assert_eq!(next_field(&mut rest), None);
    }
}
