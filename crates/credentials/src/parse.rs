//! A small RFC 4180 tokenizer that keeps line and column of every field, and delimiter detection.

use std::borrow::Cow;

/// One field of a record.
#[derive(Debug)]
pub(crate) struct RawField<'a> {
    pub(crate) value: Cow<'a, str>,
    /// 1-based line where the field starts.
    pub(crate) line: usize,
    /// 1-based character column where the field starts.
    pub(crate) column: usize,
}

/// One record (row) of the file.
#[derive(Debug)]
pub(crate) struct RawRecord<'a> {
    /// 1-based line where the record starts.
    pub(crate) line: usize,
    pub(crate) fields: Vec<RawField<'a>>,
}

/// A syntax problem found by the tokenizer.
#[derive(Debug)]
pub(crate) enum SyntaxProblem {
    /// A quoted field opened at (line, column) never closes.
    UnterminatedQuote { line: usize, column: usize },
    /// Text follows a closing quote at (line, column) before the next delimiter.
    TextAfterQuote { line: usize, column: usize },
}

pub(crate) struct Tokenizer<'a> {
    text: &'a str,
    bytes: &'a [u8],
    delim: u8,
    pos: usize,
    line: usize,
    column: usize,
    /// Blank lines skipped so far.
    pub(crate) blank_lines: usize,
    pub(crate) problems: Vec<SyntaxProblem>,
}

impl<'a> Tokenizer<'a> {
    pub(crate) fn new(text: &'a str, delim: u8) -> Self {
        Tokenizer {
            text,
            bytes: text.as_bytes(),
            delim,
            pos: 0,
            line: 1,
            column: 1,
            blank_lines: 0,
            problems: Vec::new(),
        }
    }

    /// Advances one byte, keeping the character column (UTF-8 continuation bytes do not count).
    #[inline]
    fn bump(&mut self) {
        if let Some(&b) = self.bytes.get(self.pos) {
            self.pos += 1;
            if b & 0xC0 != 0x80 {
                self.column += 1;
            }
        }
    }

    /// Consumes a line ending at `pos` if there is one; returns whether it did.
    #[inline]
    fn eat_newline(&mut self) -> bool {
        match self.bytes.get(self.pos) {
            Some(b'\n') => {
                self.pos += 1;
            }
            Some(b'\r') => {
                self.pos += 1;
                if self.bytes.get(self.pos) == Some(&b'\n') {
                    self.pos += 1;
                }
            }
            _ => return false,
        }
        self.line += 1;
        self.column = 1;
        true
    }

    fn slice(&self, start: usize, end: usize) -> &'a str {
        // start and end always sit on ASCII bytes or the text ends, so they are char boundaries;
        // fall back to an empty field rather than panic if that reasoning were ever wrong.
        self.text.get(start..end).unwrap_or("")
    }

    /// The next non-blank record, or `None` at the end of the text.
    pub(crate) fn next_record(&mut self) -> Option<RawRecord<'a>> {
        let mut record = RawRecord {
            line: 0,
            fields: Vec::with_capacity(8),
        };
        self.next_record_into(&mut record).then_some(record)
    }

    /// Reads the next non-blank record into `record`, reusing its field vector; returns false at
    /// the end of the text.
    pub(crate) fn next_record_into(&mut self, record: &mut RawRecord<'a>) -> bool {
        loop {
            if self.pos >= self.bytes.len() {
                return false;
            }
            self.read_record(record);
            let blank = record
                .fields
                .iter()
                .all(|f| matches!(&f.value, Cow::Borrowed(s) if s.trim().is_empty()));
            if blank {
                self.blank_lines += 1;
                continue;
            }
            return true;
        }
    }

    fn read_record(&mut self, record: &mut RawRecord<'a>) {
        record.line = self.line;
        record.fields.clear();
        loop {
            let field = self.read_field();
            record.fields.push(field);
            match self.bytes.get(self.pos) {
                Some(&b) if b == self.delim => {
                    self.bump();
                }
                _ => {
                    // newline or end of text
                    self.eat_newline();
                    break;
                }
            }
        }
    }

    fn read_field(&mut self) -> RawField<'a> {
        let (line, column) = (self.line, self.column);
        if self.bytes.get(self.pos) == Some(&b'"') {
            return self.read_quoted(line, column);
        }
        let start = self.pos;
        while let Some(&b) = self.bytes.get(self.pos) {
            if b == self.delim || b == b'\n' || b == b'\r' {
                break;
            }
            self.bump();
        }
        RawField {
            value: Cow::Borrowed(self.slice(start, self.pos)),
            line,
            column,
        }
    }

    fn read_quoted(&mut self, line: usize, column: usize) -> RawField<'a> {
        self.bump(); // opening quote
        let mut value = String::new();
        let mut seg_start = self.pos;
        loop {
            match self.bytes.get(self.pos) {
                None => {
                    value.push_str(self.slice(seg_start, self.pos));
                    self.problems
                        .push(SyntaxProblem::UnterminatedQuote { line, column });
                    return RawField {
                        value: Cow::Owned(value),
                        line,
                        column,
                    };
                }
                Some(b'"') => {
                    value.push_str(self.slice(seg_start, self.pos));
                    self.bump();
                    if self.bytes.get(self.pos) == Some(&b'"') {
                        value.push('"');
                        self.bump();
                        seg_start = self.pos;
                        continue;
                    }
                    // closing quote: anything up to the next delimiter/newline is stray text
                    let after = self.pos;
                    let (al, ac) = (self.line, self.column);
                    while let Some(&b) = self.bytes.get(self.pos) {
                        if b == self.delim || b == b'\n' || b == b'\r' {
                            break;
                        }
                        self.bump();
                    }
                    if self.pos > after {
                        self.problems.push(SyntaxProblem::TextAfterQuote {
                            line: al,
                            column: ac,
                        });
                        value.push_str(self.slice(after, self.pos));
                    }
                    return RawField {
                        value: Cow::Owned(value),
                        line,
                        column,
                    };
                }
                Some(b'\n') | Some(b'\r') => {
                    value.push_str(self.slice(seg_start, self.pos));
                    let nl_start = self.pos;
                    self.eat_newline();
                    value.push_str(self.slice(nl_start, self.pos));
                    seg_start = self.pos;
                }
                Some(_) => self.bump(),
            }
        }
    }
}

/// Delimiters tried by detection, in order of preference on a tie.
pub(crate) const CANDIDATES: [u8; 4] = [b',', b';', b'\t', b'|'];

/// Picks the delimiter whose field count is largest and most consistent over the first records.
/// Returns the delimiter and whether the choice was clear (false: nothing split the header).
pub(crate) fn detect_delimiter(text: &str) -> (u8, bool) {
    // Look at a bounded prefix; cut at a char boundary.
    let mut end = text.len().min(64 * 1024);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let prefix = text.get(..end).unwrap_or("");
    let mut best: Option<(u8, usize, usize)> = None; // (delim, consistent, width)
    for &d in &CANDIDATES {
        let mut tok = Tokenizer::new(prefix, d);
        let mut counts = Vec::new();
        while counts.len() < 20 {
            match tok.next_record() {
                Some(r) => counts.push(non_trailing_width(&r)),
                None => break,
            }
        }
        // The last record of a cut prefix may be partial; ignore it when we cut.
        if end < text.len() && counts.len() > 1 {
            counts.pop();
        }
        let Some(&width) = counts.first() else {
            continue;
        };
        if width < 2 {
            continue;
        }
        let consistent = counts.iter().filter(|&&c| c == width).count();
        let better = match best {
            None => true,
            Some((_, bc, bw)) => (consistent, width) > (bc, bw),
        };
        if better {
            best = Some((d, consistent, width));
        }
    }
    match best {
        Some((d, _, _)) => (d, true),
        None => (b',', false),
    }
}

/// Number of fields without trailing empty ones (trailing delimiters do not count).
pub(crate) fn non_trailing_width(r: &RawRecord<'_>) -> usize {
    let mut n = r.fields.len();
    while n > 1 && r.fields.get(n - 1).is_some_and(|f| f.value.is_empty()) {
        n -= 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(text: &str, d: u8) -> (Vec<Vec<String>>, Vec<SyntaxProblem>) {
        let mut t = Tokenizer::new(text, d);
        let mut out = Vec::new();
        while let Some(r) = t.next_record() {
            out.push(r.fields.iter().map(|f| f.value.to_string()).collect());
        }
        (out, t.problems)
    }

    #[test]
    fn quoted_fields_with_delimiters_newlines_and_quotes() {
        let (rows, problems) = all("a,\"b,c\",\"x\r\ny\"\n\"q\"\"q\",\n", b',');
        assert!(problems.is_empty());
        assert_eq!(rows, vec![vec!["a", "b,c", "x\r\ny"], vec!["q\"q", ""]]);
    }

    #[test]
    fn blank_lines_and_lone_cr() {
        let (rows, _) = all("a;b\r\r\n\n;;\rc;d", b';');
        assert_eq!(rows, vec![vec!["a", "b"], vec!["c", "d"]]);
    }

    #[test]
    fn unterminated_quote_is_located() {
        let (_, problems) = all("a,b\nc,\"oops\n", b',');
        assert!(matches!(
            problems[..],
            [SyntaxProblem::UnterminatedQuote { line: 2, column: 3 }]
        ));
    }

    #[test]
    fn columns_count_characters() {
        let mut t = Tokenizer::new("é€,x", b',');
        let r = t.next_record().unwrap();
        assert_eq!(r.fields[1].column, 4);
    }

    #[test]
    fn detects_each_delimiter() {
        assert_eq!(detect_delimiter("a,b,c\n1,2,3\n"), (b',', true));
        assert_eq!(detect_delimiter("a;b;c\n\"x, y\";2;3\n"), (b';', true));
        assert_eq!(detect_delimiter("a\tb\n1\t2\n"), (b'\t', true));
        assert_eq!(detect_delimiter("a|b\n1|2\n"), (b'|', true));
        assert_eq!(detect_delimiter("abc\n"), (b',', false));
        // Delimiters of the other kinds inside values do not mislead it.
        assert_eq!(
            detect_delimiter("Login,Password\na,x;y\nb,p;q;r\n"),
            (b',', true)
        );
        assert_eq!(
            detect_delimiter("Login;Password;Name\na;b;Doe, John\nc;d;Roe, Jane, Dr\n"),
            (b';', true)
        );
        assert_eq!(
            detect_delimiter("Login\tPassword\na\tp,q;r|s\n"),
            (b'\t', true)
        );
    }
}
