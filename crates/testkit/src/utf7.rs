//! Modified UTF-7 for IMAP mailbox names (RFC 3501 section 5.1.3).

use crate::error::{Error, Result};

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

/// Encodes a mailbox name into IMAP modified UTF-7.
///
/// ```
/// use o365_migrate_testkit::utf7;
/// assert_eq!(utf7::encode("Überweisungen/Août"), "&ANw-berweisungen/Ao&APs-t");
/// assert_eq!(utf7::encode("Tom & Jerry"), "Tom &- Jerry");
/// ```
pub fn encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 8);
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
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out.push('-');
    pending.clear();
}

/// Decodes an IMAP modified UTF-7 mailbox name into UTF-8.
///
/// Rejects what RFC 3501 forbids: 8-bit or control characters, unterminated or empty
/// shifts, non-zero padding bits, encoded printable ASCII and unpaired surrogates.
pub fn decode(name: &str) -> Result<String> {
    let err = |detail: &str| Error::MailboxName {
        name: name.to_owned(),
        detail: detail.to_owned(),
    };
    let bytes = name.as_bytes();
    let mut out = String::with_capacity(name.len());
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if !(0x20..=0x7e).contains(&c) {
            return Err(err("contains a byte outside printable US-ASCII"));
        }
        if c != b'&' {
            out.push(c as char);
            i += 1;
            continue;
        }
        let start = i + 1;
        let end = bytes[start..]
            .iter()
            .position(|&b| b == b'-')
            .map(|p| start + p)
            .ok_or_else(|| err("unterminated '&' shift"))?;
        if end == start {
            out.push('&');
            i = end + 1;
            continue;
        }
        let mut acc: u32 = 0;
        let mut nbits = 0;
        let mut units: Vec<u16> = Vec::new();
        let mut bytes_out: Vec<u8> = Vec::new();
        for &b in &bytes[start..end] {
            let v = ALPHABET
                .iter()
                .position(|&a| a == b)
                .ok_or_else(|| err("invalid character in base64 run"))? as u32;
            acc = (acc << 6) | v;
            nbits += 6;
            if nbits >= 8 {
                nbits -= 8;
                bytes_out.push((acc >> nbits) as u8);
                acc &= (1 << nbits) - 1;
            }
        }
        if acc != 0 || nbits >= 6 || !bytes_out.len().is_multiple_of(2) {
            return Err(err("bad padding in base64 run"));
        }
        for pair in bytes_out.chunks(2) {
            units.push(u16::from_be_bytes([pair[0], pair[1]]));
        }
        let decoded = String::from_utf16(&units).map_err(|_| err("unpaired UTF-16 surrogate"))?;
        if decoded.chars().any(|ch| (' '..='~').contains(&ch)) {
            return Err(err("printable ASCII must not be base64-encoded"));
        }
        out.push_str(&decoded);
        i = end + 1;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_examples() {
        assert_eq!(
            encode("~peter/mail/台北/日本語"),
            "~peter/mail/&U,BTFw-/&ZeVnLIqe-"
        );
        assert_eq!(
            decode("~peter/mail/&U,BTFw-/&ZeVnLIqe-").unwrap(),
            "~peter/mail/台北/日本語"
        );
        assert_eq!(decode("&-").unwrap(), "&");
        assert_eq!(encode("Entwürfe"), "Entw&APw-rfe");
        assert_eq!(encode("😀"), "&2D3eAA-");
        assert_eq!(decode("&2D3eAA-").unwrap(), "😀");
    }

    #[test]
    fn rejects_invalid() {
        for bad in ["&", "&U,BTF-", "&AGE-", "a\u{e9}", "&2D0-", "&Jjo!-"] {
            assert!(decode(bad).is_err(), "{bad}");
        }
    }

    proptest::proptest! {
        #[test]
        fn roundtrip(s in "\\PC{0,30}") {
            let e = encode(&s);
            proptest::prop_assert!(e.bytes().all(|b| (0x20..=0x7e).contains(&b)));
            proptest::prop_assert_eq!(decode(&e).unwrap(), s);
        }

        #[test]
        fn decode_never_panics(s in "[ -~]{0,30}") {
            let _ = decode(&s);
        }
    }
}
