//! Splitting a .vcf / .ics stream into items with their line numbers, before calcard parses
//! each item on its own: one broken item must not take its neighbours down, and calcard
//! (lenient by design) does not report line numbers.

/// One unfolded content line and the (1-based) physical line it starts on.
#[derive(Debug, Clone)]
pub(crate) struct Line {
    pub(crate) no: usize,
    pub(crate) text: String,
}

/// One component (`BEGIN:X` .. `END:X`) with its lines, BEGIN and END included.
#[derive(Debug, Clone)]
pub(crate) struct Block {
    pub(crate) kind: String,
    pub(crate) lines: Vec<Line>,
}

impl Block {
    pub(crate) fn start(&self) -> usize {
        self.lines.first().map_or(0, |l| l.no)
    }

    /// The block's text, CRLF-terminated, for calcard.
    pub(crate) fn text(&self) -> String {
        let mut s = String::new();
        for l in &self.lines {
            s.push_str(&l.text);
            s.push_str("\r\n");
        }
        s
    }

    /// Line number of the first property named `name` (case-insensitive).
    pub(crate) fn line_of(&self, name: &str) -> Option<usize> {
        self.lines
            .iter()
            .find(|l| prop_name(&l.text).eq_ignore_ascii_case(name))
            .map(|l| l.no)
    }
}

/// A piece of input that is not a well-formed item: the line it was found on and why.
#[derive(Debug, Clone)]
pub(crate) struct Broken {
    pub(crate) line: usize,
    pub(crate) what: String,
}

/// Unfolds RFC 5545 §3.1 / RFC 6350 §3.2 continuation lines (a line starting with a space
/// or a tab continues the previous one).
pub(crate) fn unfold(text: &str) -> Vec<Line> {
    let mut out: Vec<Line> = Vec::new();
    for (i, raw) in text.split('\n').enumerate() {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        if let Some(rest) = raw.strip_prefix([' ', '\t'])
            && let Some(last) = out.last_mut()
        {
            last.text.push_str(rest);
            continue;
        }
        let raw = raw.strip_prefix('\u{feff}').unwrap_or(raw);
        out.push(Line {
            no: i + 1,
            text: raw.to_string(),
        });
    }
    out
}

/// `NAME;PARAMS:VALUE` -> (`NAME;PARAMS`, `VALUE`), honouring quoted parameter values.
pub(crate) fn split_line(text: &str) -> (&str, &str) {
    let mut quoted = false;
    for (i, c) in text.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ':' if !quoted => return (&text[..i], &text[i + 1..]),
            _ => {}
        }
    }
    (text, "")
}

/// The property name of a content line, without group or parameters, upper-cased.
pub(crate) fn prop_name(text: &str) -> String {
    let (head, _) = split_line(text);
    let name = head.split(';').next().unwrap_or("");
    let name = name.rsplit('.').next().unwrap_or(name);
    name.to_ascii_uppercase()
}

fn is_content_line(text: &str) -> bool {
    let (head, _) = split_line(text);
    let name = head.split(';').next().unwrap_or("");
    head.len() < text.len()
        && !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_')
}

/// What a stream splits into: the shared VTIMEZONEs and the items (or why a piece is broken).
pub(crate) struct Split {
    pub(crate) timezones: Vec<Block>,
    pub(crate) items: Vec<Result<Block, Broken>>,
}

/// Splits a stream into top-level items. For vCard, `item_kinds` is `["VCARD"]` at depth 0;
/// for iCalendar the items are the components directly inside `VCALENDAR`.
pub(crate) fn split(text: &str, calendar: bool) -> Split {
    let mut timezones = Vec::new();
    let mut items = Vec::new();
    let item_depth = if calendar { 1 } else { 0 };
    let mut depth = 0usize;
    let mut current: Option<(Block, Vec<String>)> = None; // block, stack of open kinds
    let mut broken_in_current: Option<Broken> = None;
    for line in unfold(text) {
        let trimmed = line.text.trim();
        if trimmed.is_empty() {
            continue;
        }
        let (head, value) = split_line(trimmed);
        let name = head.split(';').next().unwrap_or("").to_ascii_uppercase();
        let value = value.trim().to_ascii_uppercase();
        if let Some((block, stack)) = current.as_mut() {
            if name == "BEGIN" && depth_starts_item(&value, calendar) {
                // A new item while one is open: the open one never ended.
                let kind = block.kind.clone();
                let start = block.start();
                current = None;
                items.push(Err(Broken {
                    line: start,
                    what: format!(
                        "BEGIN:{kind} is never ended (a new BEGIN:{value} at line {})",
                        line.no
                    ),
                }));
                broken_in_current = None;
                depth = item_depth;
                // fall through to start the new item below
            } else {
                block.lines.push(line.clone());
                if name == "BEGIN" {
                    stack.push(value);
                } else if name == "END" {
                    if stack.last() == Some(&value) {
                        stack.pop();
                    } else if broken_in_current.is_none() {
                        broken_in_current = Some(Broken {
                            line: line.no,
                            what: format!(
                                "END:{value} does not close BEGIN:{}",
                                stack.last().map_or("", |s| s.as_str())
                            ),
                        });
                        stack.pop();
                    }
                    if stack.is_empty() {
                        let Some((block, _)) = current.take() else {
                            continue;
                        };
                        match broken_in_current.take() {
                            Some(b) => items.push(Err(b)),
                            None if block.kind == "VTIMEZONE" => timezones.push(block),
                            None => items.push(Ok(block)),
                        }
                    }
                } else if !is_content_line(trimmed) && broken_in_current.is_none() {
                    broken_in_current = Some(Broken {
                        line: line.no,
                        what: format!(
                            "not a content line (NAME:value expected): {:?}",
                            truncate(trimmed, 60)
                        ),
                    });
                }
                continue;
            }
        }
        if name == "BEGIN" && depth == item_depth && depth_starts_item(&value, calendar) {
            current = Some((
                Block {
                    kind: value.clone(),
                    lines: vec![line.clone()],
                },
                vec![value],
            ));
        } else if calendar && name == "BEGIN" && value == "VCALENDAR" {
            depth = 1;
        } else if calendar && name == "END" && value == "VCALENDAR" {
            depth = 0;
        } else if depth == item_depth && calendar && name == "BEGIN" {
            // Another component kind directly in VCALENDAR (VFREEBUSY, VAVAILABILITY, ...).
            current = Some((
                Block {
                    kind: value.clone(),
                    lines: vec![line.clone()],
                },
                vec![value],
            ));
        } else if !calendar || depth == 0 {
            if !(calendar && depth == 1) && is_content_line(trimmed) && name != "END" {
                items.push(Err(Broken {
                    line: line.no,
                    what: format!("{} outside any component", name),
                }));
            } else if !is_content_line(trimmed) {
                items.push(Err(Broken {
                    line: line.no,
                    what: format!("not a content line: {:?}", truncate(trimmed, 60)),
                }));
            }
        }
    }
    if let Some((block, _)) = current {
        items.push(Err(Broken {
            line: block.start(),
            what: format!("BEGIN:{} is never ended", block.kind),
        }));
    }
    Split { timezones, items }
}

fn depth_starts_item(value: &str, calendar: bool) -> bool {
    if calendar {
        matches!(value, "VEVENT" | "VTODO" | "VJOURNAL" | "VTIMEZONE")
    } else {
        value == "VCARD"
    }
}

pub(crate) fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(max).collect::<String>())
    }
}
