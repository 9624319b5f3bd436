//! Text encoding detection and decoding.

use std::borrow::Cow;

use serde::Serialize;

use crate::report::{ProblemCode, Severity};

/// A text encoding a credentials file may be in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[non_exhaustive]
pub enum TextEncoding {
    /// UTF-8 (with or without byte order mark). Excel's "CSV UTF-8".
    #[serde(rename = "utf-8")]
    Utf8,
    /// UTF-16 little endian. Excel's "Unicode text" (tab-separated) on Windows.
    #[serde(rename = "utf-16le")]
    Utf16Le,
    /// UTF-16 big endian.
    #[serde(rename = "utf-16be")]
    Utf16Be,
    /// Windows-1252 (Western European "ANSI"); used as a fallback for files that are not UTF-8.
    #[serde(rename = "windows-1252")]
    Windows1252,
}

impl TextEncoding {
    /// The usual name of the encoding.
    pub fn name(self) -> &'static str {
        match self {
            TextEncoding::Utf8 => "UTF-8",
            TextEncoding::Utf16Le => "UTF-16LE",
            TextEncoding::Utf16Be => "UTF-16BE",
            TextEncoding::Windows1252 => "Windows-1252",
        }
    }

    /// Parses an encoding name as an admin would type it (`utf-8`, `utf16le`, `cp1252`, `latin1`…).
    pub fn from_name(name: &str) -> Option<Self> {
        let n: String = name
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        match n.as_str() {
            "utf8" => Some(TextEncoding::Utf8),
            "utf16" | "utf16le" | "unicode" => Some(TextEncoding::Utf16Le),
            "utf16be" => Some(TextEncoding::Utf16Be),
            "windows1252" | "cp1252" | "latin1" | "iso88591" | "ansi" => {
                Some(TextEncoding::Windows1252)
            }
            _ => None,
        }
    }
}

/// A problem found while decoding, located by byte offset into the decoded text.
pub(crate) struct DecodeProblem {
    pub(crate) severity: Severity,
    pub(crate) code: ProblemCode,
    /// Byte offset in the *decoded* text where the problem is.
    pub(crate) offset: usize,
    pub(crate) message: String,
    pub(crate) hint: String,
}

pub(crate) struct Decoded<'a> {
    pub(crate) text: Cow<'a, str>,
    pub(crate) encoding: TextEncoding,
    pub(crate) bom: bool,
    pub(crate) fallback: bool,
    pub(crate) problems: Vec<DecodeProblem>,
}

/// Decodes the file's bytes. Never fails: undecodable input becomes replacement characters plus
/// an error problem pointing at the first one.
pub(crate) fn decode(bytes: &[u8], forced: Option<TextEncoding>) -> Decoded<'_> {
    let (bom_enc, bom_len) = match bytes {
        [0xEF, 0xBB, 0xBF, ..] => (Some(TextEncoding::Utf8), 3),
        [0xFF, 0xFE, ..] => (Some(TextEncoding::Utf16Le), 2),
        [0xFE, 0xFF, ..] => (Some(TextEncoding::Utf16Be), 2),
        _ => (None, 0),
    };
    let mut problems = Vec::new();
    let (encoding, bom, body) = match (forced, bom_enc) {
        (Some(f), Some(b)) if f == b => (f, true, bytes.get(bom_len..).unwrap_or_default()),
        (Some(f), Some(b)) => {
            problems.push(DecodeProblem {
                severity: Severity::Warning,
                code: ProblemCode::EncodingOverride,
                offset: 0,
                message: format!(
                    "the file starts with a {} byte order mark but was read as {} as requested",
                    b.name(),
                    f.name()
                ),
                hint: "drop the encoding override to let the byte order mark decide".into(),
            });
            (f, false, bytes)
        }
        (Some(f), None) => (f, false, bytes),
        (None, Some(b)) => (b, true, bytes.get(bom_len..).unwrap_or_default()),
        (None, None) => (
            sniff_utf16(bytes).unwrap_or(TextEncoding::Utf8),
            false,
            bytes,
        ),
    };

    match encoding {
        TextEncoding::Utf8 => match std::str::from_utf8(body) {
            Ok(s) => Decoded {
                text: Cow::Borrowed(s),
                encoding,
                bom,
                fallback: false,
                problems,
            },
            Err(e) if forced.is_none() && !bom => {
                let valid = e.valid_up_to();
                let (text, _) = encoding_rs::WINDOWS_1252.decode_without_bom_handling(body);
                let prefix = body.get(..valid).unwrap_or(&[]);
                let (prefix_text, _) =
                    encoding_rs::WINDOWS_1252.decode_without_bom_handling(prefix);
                let offset = prefix_text.len();
                if prefix.is_ascii() {
                    problems.push(DecodeProblem {
                        severity: Severity::Warning,
                        code: ProblemCode::NotUtf8,
                        offset,
                        message: "the file is not UTF-8 (first non-UTF-8 byte here); read it as Windows-1252".into(),
                        hint: "check accented names and passwords; to be sure, save the file as \"CSV UTF-8\" in Excel or pass the encoding explicitly".into(),
                    });
                } else {
                    problems.push(DecodeProblem {
                        severity: Severity::Error,
                        code: ProblemCode::BadEncoding,
                        offset,
                        message: "the file mixes UTF-8 with other bytes (first non-UTF-8 byte here): no single encoding reads it correctly".into(),
                        hint: "the file was pasted together from differently encoded sources; re-export it from the spreadsheet as \"CSV UTF-8\", or pass the encoding explicitly".into(),
                    });
                }
                Decoded {
                    text: Cow::Owned(text.into_owned()),
                    encoding: TextEncoding::Windows1252,
                    bom,
                    fallback: true,
                    problems,
                }
            }
            Err(_) => {
                let text = String::from_utf8_lossy(body).into_owned();
                push_replacement_error(&text, encoding, &mut problems);
                Decoded {
                    text: Cow::Owned(text),
                    encoding,
                    bom,
                    fallback: false,
                    problems,
                }
            }
        },
        TextEncoding::Utf16Le | TextEncoding::Utf16Be | TextEncoding::Windows1252 => {
            let enc = match encoding {
                TextEncoding::Utf16Le => encoding_rs::UTF_16LE,
                TextEncoding::Utf16Be => encoding_rs::UTF_16BE,
                _ => encoding_rs::WINDOWS_1252,
            };
            let (text, had_errors) = enc.decode_without_bom_handling(body);
            let text = text.into_owned();
            if had_errors {
                push_replacement_error(&text, encoding, &mut problems);
            }
            Decoded {
                text: Cow::Owned(text),
                encoding,
                bom,
                fallback: false,
                problems,
            }
        }
    }
}

fn push_replacement_error(text: &str, encoding: TextEncoding, problems: &mut Vec<DecodeProblem>) {
    let count = text.matches('\u{FFFD}').count();
    let offset = text.find('\u{FFFD}').unwrap_or(0);
    problems.push(DecodeProblem {
        severity: Severity::Error,
        code: ProblemCode::BadEncoding,
        offset,
        message: format!(
            "{count} byte sequence(s) are not valid {}; the first is here",
            encoding.name()
        ),
        hint: "the file is damaged or in another encoding; re-export it from the spreadsheet as \"CSV UTF-8\"".into(),
    });
}

/// Recognises UTF-16 without a byte order mark: ASCII-heavy text has a zero byte in every
/// other position.
fn sniff_utf16(bytes: &[u8]) -> Option<TextEncoding> {
    let sample = bytes.get(..bytes.len().min(1024) & !1).unwrap_or_default();
    if sample.len() < 4 {
        return None;
    }
    let pairs = sample.len() / 2;
    let (mut even_zero, mut odd_zero) = (0usize, 0usize);
    for pair in sample.chunks_exact(2) {
        if let [first, second] = pair {
            even_zero += usize::from(*first == 0);
            odd_zero += usize::from(*second == 0);
        }
    }
    if odd_zero * 10 >= pairs * 7 && even_zero * 20 <= pairs {
        Some(TextEncoding::Utf16Le)
    } else if even_zero * 10 >= pairs * 7 && odd_zero * 20 <= pairs {
        Some(TextEncoding::Utf16Be)
    } else {
        None
    }
}
