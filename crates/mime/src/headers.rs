//! A small, fast scanner over the raw top-level header block (no decoding).

/// One raw header field of the top-level header block.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawHeader<'a> {
    /// The field name as written (no colon, trailing whitespace trimmed).
    pub(crate) name: &'a [u8],
    /// Everything after the colon up to the end of the field, folding included, without
    /// the final line ending.
    pub(crate) value: &'a [u8],
    /// Offset of the first byte of the field.
    pub(crate) start: usize,
    /// Offset just past the field's final line ending.
    pub(crate) end: usize,
}

impl RawHeader<'_> {
    pub(crate) fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name.as_bytes())
    }
}

/// Returns `(line_end_exclusive_of_eol, next_line_start)` for the line starting at `pos`.
fn line_at(raw: &[u8], pos: usize) -> (usize, usize) {
    let rest = raw.get(pos..).unwrap_or_default();
    match rest.iter().position(|&b| b == b'\n') {
        Some(i) => {
            let mut end = pos + i;
            if end > pos && raw.get(end - 1) == Some(&b'\r') {
                end -= 1;
            }
            (end, pos + i + 1)
        }
        None => (raw.len(), raw.len()),
    }
}

/// Scans the header block. Returns the fields and the offset where the body starts
/// (just past the blank separator line, or the end of input when there is none).
/// Lines without a colon (and a leading mbox `From ` line) are skipped.
pub(crate) fn scan(raw: &[u8]) -> (Vec<RawHeader<'_>>, usize) {
    let mut out = Vec::with_capacity(24);
    let mut pos = 0;
    while pos < raw.len() {
        let (eol, next) = line_at(raw, pos);
        let line = raw.get(pos..eol).unwrap_or_default();
        if line.is_empty() {
            return (out, next);
        }
        // Extend over continuation lines.
        let mut field_eol = eol;
        let mut field_next = next;
        while let Some(&b) = raw.get(field_next) {
            if b != b' ' && b != b'\t' {
                break;
            }
            let (e, n) = line_at(raw, field_next);
            field_eol = e;
            field_next = n;
        }
        if let Some(colon) = line.iter().position(|&b| b == b':') {
            let name = trim_end(line.get(..colon).unwrap_or_default());
            let valid_name = !name.is_empty() && name.iter().all(|&b| (33..=126).contains(&b));
            if valid_name {
                out.push(RawHeader {
                    name,
                    value: raw.get(pos + colon + 1..field_eol).unwrap_or_default(),
                    start: pos,
                    end: field_next,
                });
            }
        }
        pos = field_next;
    }
    (out, raw.len())
}

fn trim_end(b: &[u8]) -> &[u8] {
    let mut end = b.len();
    while end > 0 && matches!(b.get(end - 1), Some(b' ' | b'\t')) {
        end -= 1;
    }
    b.get(..end).unwrap_or_default()
}

/// Unfolds a raw value: every run of CR, LF, space and tab becomes one space; trimmed.
/// Other bytes (including 8-bit ones) are kept as they are.
pub(crate) fn unfold(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len());
    let mut pending_space = false;
    for &b in value {
        if matches!(b, b' ' | b'\t' | b'\r' | b'\n') {
            pending_space = !out.is_empty();
        } else {
            if pending_space {
                out.push(b' ');
                pending_space = false;
            }
            out.push(b);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scans_folded_headers_and_finds_body() {
        let raw = b"From: a@b\r\nSubject: one\r\n two\r\nbogus line\r\nX-A:\tv\n\r\nbody";
        let (h, body) = scan(raw);
        assert_eq!(h.len(), 3);
        assert_eq!(unfold(h[1].value), b"one two");
        assert!(h[2].is("x-a"));
        assert_eq!(&raw[body..], b"body");
    }
}
