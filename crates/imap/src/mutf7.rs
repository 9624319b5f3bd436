//! Modified UTF-7 mailbox names (RFC 3501 §5.1.3), both directions.

use crate::Error;

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

fn b64_value(c: u8) -> Option<u32> {
    ALPHABET.iter().position(|&a| a == c).map(|p| p as u32)
}

/// Encodes a UTF-8 mailbox name into modified UTF-7.
///
/// ```
/// assert_eq!(o365_migrate_imap::mutf7::encode("Entwürfe"), "Entw&APw-rfe");
/// assert_eq!(o365_migrate_imap::mutf7::encode("A&B"), "A&-B");
/// ```
pub fn encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut pending: Vec<u16> = Vec::new();
    for ch in name.chars() {
        if (' '..='~').contains(&ch) {
            flush(&mut out, &mut pending);
            if ch == '&' {
                out.push_str("&-");
            } else {
                out.push(ch);
            }
        } else {
            let mut buf = [0u16; 2];
            pending.extend_from_slice(ch.encode_utf16(&mut buf));
        }
    }
    flush(&mut out, &mut pending);
    out
}

fn flush(out: &mut String, pending: &mut Vec<u16>) {
    if pending.is_empty() {
        return;
    }
    out.push('&');
    let bytes: Vec<u8> = pending.iter().flat_map(|u| u.to_be_bytes()).collect();
    for chunk in bytes.chunks(3) {
        let b0 = u32::from(chunk.first().copied().unwrap_or(0));
        let b1 = u32::from(chunk.get(1).copied().unwrap_or(0));
        let b2 = u32::from(chunk.get(2).copied().unwrap_or(0));
        let n = (b0 << 16) | (b1 << 8) | b2;
        let chars = chunk.len() + 1;
        for i in 0..chars {
            let idx = ((n >> (18 - 6 * i)) & 63) as usize;
            out.push(char::from(ALPHABET[idx]));
        }
    }
    out.push('-');
    pending.clear();
}

/// Decodes a modified UTF-7 mailbox name into UTF-8.
///
/// ```
/// assert_eq!(o365_migrate_imap::mutf7::decode("Entw&APw-rfe").unwrap(), "Entwürfe");
/// assert!(o365_migrate_imap::mutf7::decode("bad&AP").is_err());
/// ```
pub fn decode(name: &str) -> Result<String, Error> {
    let bad = |why: &str| {
        Error::protocol(
            format!("invalid modified UTF-7 mailbox name: {why}"),
            name.as_bytes(),
        )
    };
    let bytes = name.as_bytes();
    let mut out = String::with_capacity(name.len());
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c != b'&' {
            if !(0x20..=0x7e).contains(&c) {
                // Not valid mUTF-7, but some servers send raw UTF-8; keep it as is.
                let rest = &name[i..];
                let ch = rest.chars().next().ok_or_else(|| bad("truncated"))?;
                out.push(ch);
                i += ch.len_utf8();
                continue;
            }
            out.push(char::from(c));
            i += 1;
            continue;
        }
        let end = bytes[i + 1..]
            .iter()
            .position(|&b| b == b'-')
            .map(|p| p + i + 1)
            .ok_or_else(|| bad("unterminated '&' sequence"))?;
        let seg = &bytes[i + 1..end];
        if seg.is_empty() {
            out.push('&');
        } else {
            let mut bits: u32 = 0;
            let mut nbits = 0u32;
            let mut units: Vec<u16> = Vec::new();
            let mut byte_acc: Vec<u8> = Vec::new();
            for &b in seg {
                let v = b64_value(b).ok_or_else(|| bad("character outside the base64 alphabet"))?;
                bits = (bits << 6) | v;
                nbits += 6;
                if nbits >= 8 {
                    nbits -= 8;
                    byte_acc.push(((bits >> nbits) & 0xff) as u8);
                }
            }
            if !byte_acc.len().is_multiple_of(2) {
                return Err(bad("odd number of UTF-16 bytes"));
            }
            for pair in byte_acc.chunks(2) {
                units.push(u16::from_be_bytes([pair[0], pair[1]]));
            }
            let s = String::from_utf16(&units).map_err(|_| bad("invalid UTF-16"))?;
            out.push_str(&s);
        }
        i = end + 1;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc3501_example() {
        // RFC 3501 §5.1.3: "~peter/mail/台北/日本語"
        let utf8 = "~peter/mail/\u{53f0}\u{5317}/\u{65e5}\u{672c}\u{8a9e}";
        let enc = "~peter/mail/&U,BTFw-/&ZeVnLIqe-";
        assert_eq!(encode(utf8), enc);
        assert_eq!(decode(enc).unwrap(), utf8);
    }

    #[test]
    fn ampersand_and_astral() {
        assert_eq!(decode("&-").unwrap(), "&");
        let s = "Mail 📧 & Ordner Ünïcödé";
        assert_eq!(decode(&encode(s)).unwrap(), s);
        assert!(decode("&Jjo!-").is_err());
        assert!(decode("&AA-").is_err());
    }

    proptest! {
        #[test]
        fn round_trip(s in "\\PC{0,40}") {
            prop_assert_eq!(decode(&encode(&s)).unwrap(), s);
        }
        #[test]
        fn decode_never_panics(s in "\\PC{0,40}") {
            let _ = decode(&s);
        }
    }
}
