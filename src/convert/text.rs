//! Text fields: checked for NUL, decoded in the file's encoding, and counted in characters
//! against `varchar(n)`.
//!
//! Text is most of every record, so its common case (a record that is all ASCII without
//! NUL, [`crate::parse::Split::plain`]) has a path of its own that checks only the width;
//! the general path decodes UTF-8 or transcodes Latin-1 and Windows-1252 into a scratch
//! buffer the caller keeps, so a good value allocates nothing once that buffer has grown.

use super::{show, Encoding, Out, ValueError};
use crate::pgcopy;

/// Appends a text field for `raw` (any bytes), or says why it is not valid text of
/// `width` characters in `encoding`.
pub(super) fn encode_text<O: Out>(
    out: &mut O,
    raw: &[u8],
    width: u16,
    encoding: Encoding,
    scratch: &mut Vec<u8>,
) -> Result<(), ValueError> {
    if memchr::memchr(0, raw).is_some() {
        return Err(ValueError::Nul { value: show(raw) });
    }
    let text: &[u8] = if raw.is_ascii() {
        raw
    } else {
        match encoding {
            Encoding::Utf8 => {
                if let Err(e) = std::str::from_utf8(raw) {
                    let offset = e.valid_up_to();
                    return Err(ValueError::InvalidUtf8 {
                        value: show(raw),
                        byte: raw[offset],
                        offset,
                    });
                }
                raw
            }
            Encoding::Latin1 | Encoding::Windows1252 => {
                transcode(raw, encoding, scratch)?;
                scratch
            }
        }
    };
    // Characters never outnumber bytes, so only long values need counting.
    if text.len() > width as usize {
        let chars = if text.is_ascii() {
            text.len()
        } else {
            text.iter().filter(|&&b| (b as i8) >= -0x40).count()
        };
        if chars > width as usize {
            return Err(ValueError::TooWide {
                value: show(text),
                chars,
                width,
            });
        }
    }
    out.int32(text.len() as i32);
    out.bytes(text);
    Ok(())
}

/// A text field of a record already known to be ASCII without NUL (see
/// [`crate::parse::Split::plain`]): then bytes are characters, and only the width needs
/// checking. Empty means NULL, as in [`super::encode_field`].
#[inline]
pub fn encode_plain_text<O: Out>(
    out: &mut O,
    raw: &[u8],
    width: u16,
    is_key: bool,
) -> Result<(), ValueError> {
    if raw.is_empty() {
        if is_key {
            return Err(ValueError::EmptyKey);
        }
        out.int32(pgcopy::NULL);
    } else if raw.len() > width as usize {
        return Err(ValueError::TooWide {
            value: show(raw),
            chars: raw.len(),
            width,
        });
    } else {
        out.int32(raw.len() as i32);
        out.bytes(raw);
    }
    Ok(())
}

/// The code points of Windows-1252 bytes 0x80–0x9F; 0 marks the five undefined ones.
const CP1252_HIGH: [u16; 32] = [
    0x20AC, 0, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160, 0x2039,
    0x0152, 0, 0x017D, 0, 0, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014, 0x02DC,
    0x2122, 0x0161, 0x203A, 0x0153, 0, 0x017E, 0x0178,
];

fn transcode(raw: &[u8], encoding: Encoding, out: &mut Vec<u8>) -> Result<(), ValueError> {
    out.clear();
    let mut buf = [0u8; 4];
    for &b in raw {
        let cp = if b < 0x80 {
            out.push(b);
            continue;
        } else if encoding == Encoding::Windows1252 && (0x80..0xA0).contains(&b) {
            match CP1252_HIGH[(b - 0x80) as usize] {
                0 => {
                    return Err(ValueError::Undefined1252 {
                        value: show(raw),
                        byte: b,
                    })
                }
                cp => cp as u32,
            }
        } else {
            b as u32
        };
        // Every value above is a valid scalar value (no surrogates), so this cannot fail.
        let c = char::from_u32(cp).unwrap_or(char::REPLACEMENT_CHARACTER);
        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::tests::{enc, enc_bytes};
    use crate::layout::Kind;

    #[test]
    fn varchar_counts_characters_not_bytes() {
        let full = "Société Générale Zürich Ünïcôdé"; // 31 chars? keep it at 30 below
        let thirty: String = full.chars().take(30).collect();
        assert!(enc(&thirty, Kind::Varchar(30)).is_ok());
        let e = enc(&format!("{thirty}x"), Kind::Varchar(30)).unwrap_err();
        assert!(
            matches!(
                e,
                ValueError::TooWide {
                    chars: 31,
                    width: 30,
                    ..
                }
            ),
            "{e:?}"
        );
    }

    #[test]
    fn varchar_keeps_spaces_and_rejects_trailing_space_overflow() {
        let out = enc(" A B ", Kind::Varchar(5)).unwrap();
        assert_eq!(&out[4..], b" A B ");
        assert!(enc("ABCDE ", Kind::Varchar(5)).is_err());
    }

    #[test]
    fn quotes_and_backslashes_are_data() {
        let out = enc(r#"A "B" \C"#, Kind::Varchar(30)).unwrap();
        assert_eq!(&out[4..], br#"A "B" \C"#);
    }

    #[test]
    fn nul_and_bad_utf8_are_rejected() {
        assert!(matches!(
            enc("A\0B", Kind::Varchar(9)),
            Err(ValueError::Nul { .. })
        ));
        let e = enc_bytes(b"Caf\xE9", Kind::Varchar(9), Encoding::Utf8).unwrap_err();
        assert!(matches!(
            e,
            ValueError::InvalidUtf8 {
                byte: 0xE9,
                offset: 3,
                ..
            }
        ));
        assert!(e.to_string().contains("Caf\\xE9"), "{e}");
    }

    #[test]
    fn transcodes_latin1_and_cp1252() {
        let out = enc_bytes(b"Caf\xE9", Kind::Varchar(4), Encoding::Latin1).unwrap();
        assert_eq!(&out[4..], "Café".as_bytes());
        let out = enc_bytes(b"\x80\x93x\x94", Kind::Varchar(4), Encoding::Windows1252).unwrap();
        assert_eq!(&out[4..], "€“x”".as_bytes());
        // In true ISO-8859-1, 0x80 is the C1 control U+0080.
        let out = enc_bytes(b"\x80", Kind::Varchar(1), Encoding::Latin1).unwrap();
        assert_eq!(&out[4..], "\u{80}".as_bytes());
        assert!(matches!(
            enc_bytes(b"\x81", Kind::Varchar(1), Encoding::Windows1252),
            Err(ValueError::Undefined1252 { byte: 0x81, .. })
        ));
    }
}
