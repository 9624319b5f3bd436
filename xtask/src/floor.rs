//! The raw server floor for `cargo xtask bench side-by-side`: the least work any IMAP-to-IMAP
//! copy can do. One source connection streams `UID FETCH 1:* (FLAGS INTERNALDATE BODY.PEEK[])`
//! per folder; one target connection APPENDs each message (LITERAL+) as it arrives, pipelined,
//! with a separate task draining the target's replies. Bodies go from the source socket to the
//! target socket without being held whole in memory when FLAGS and INTERNALDATE precede the
//! literal (Dovecot's order).
//!
//! Run as a child process (`xtask bench-floor ...`) so its CPU time and peak RSS are measured
//! the same way as o365-migrate's and mbsync's.

use anyhow::{Context, Result, bail, ensure};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// `xtask bench-floor SRC_PORT SRC_USER SRC_PASS DST_PORT DST_USER DST_PASS` (all on 127.0.0.1,
/// plaintext). Prints `floor: N messages, B bytes`.
pub(crate) fn main(args: &[String]) -> Result<()> {
    let [sport, suser, spass, dport, duser, dpass] = args else {
        bail!("usage: xtask bench-floor SRC_PORT SRC_USER SRC_PASS DST_PORT DST_USER DST_PASS");
    };
    let sport: u16 = sport.parse().context("SRC_PORT")?;
    let dport: u16 = dport.parse().context("DST_PORT")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let (n, bytes) = rt.block_on(copy_all(sport, suser, spass, dport, duser, dpass))?;
    println!("floor: {n} messages, {bytes} bytes");
    Ok(())
}

/// One IMAP connection driven line by line.
struct Conn {
    r: BufReader<OwnedReadHalf>,
    w: BufWriter<OwnedWriteHalf>,
    tag: u32,
}

impl Conn {
    async fn connect(port: u16, user: &str, pass: &str) -> Result<Conn> {
        let s = TcpStream::connect(("127.0.0.1", port))
            .await
            .with_context(|| format!("connecting to 127.0.0.1:{port}"))?;
        s.set_nodelay(true)?;
        let (r, w) = s.into_split();
        let mut c = Conn {
            r: BufReader::with_capacity(256 * 1024, r),
            w: BufWriter::with_capacity(256 * 1024, w),
            tag: 0,
        };
        let mut line = Vec::new();
        c.line(&mut line).await?;
        ensure!(line.starts_with(b"* OK"), "no greeting: {}", lossy(&line));
        c.command(&format!("LOGIN {} {}", quote(user), quote(pass)))
            .await?;
        Ok(c)
    }

    async fn line(&mut self, buf: &mut Vec<u8>) -> Result<()> {
        buf.clear();
        let n = self.r.read_until(b'\n', buf).await?;
        ensure!(n > 0, "connection closed");
        Ok(())
    }

    fn next_tag(&mut self) -> String {
        self.tag += 1;
        format!("F{}", self.tag)
    }

    /// Sends one command and returns its untagged lines (no literals expected).
    async fn command(&mut self, cmd: &str) -> Result<Vec<String>> {
        let tag = self.next_tag();
        self.w
            .write_all(format!("{tag} {cmd}\r\n").as_bytes())
            .await?;
        self.w.flush().await?;
        let mut out = Vec::new();
        let mut line = Vec::new();
        loop {
            self.line(&mut line).await?;
            let text = lossy(&line);
            if let Some(rest) = text.strip_prefix(&format!("{tag} ")) {
                ensure!(
                    rest.starts_with("OK"),
                    "`{}` failed: {}",
                    cmd.split(' ').next().unwrap_or(""),
                    rest.trim_end()
                );
                return Ok(out);
            }
            out.push(text.trim_end().to_owned());
        }
    }
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A LIST line's mailbox name as it goes on the wire (quoted) and whether it can be selected.
fn parse_list(line: &str) -> Option<(String, bool)> {
    let rest = line.strip_prefix("* LIST (")?;
    let (attrs, rest) = rest.split_once(')')?;
    let noselect = attrs
        .split_whitespace()
        .any(|a| a.eq_ignore_ascii_case("\\Noselect") || a.eq_ignore_ascii_case("\\NonExistent"));
    let rest = rest.trim_start();
    // The delimiter: "x" or NIL.
    let rest = if let Some(r) = rest.strip_prefix("NIL") {
        r
    } else {
        let r = rest.strip_prefix('"')?;
        let end = if r.starts_with('\\') { 3 } else { 2 };
        r.get(end..)?
    };
    let name = rest.trim();
    let wire = if name.starts_with('"') {
        name.to_owned()
    } else {
        quote(name)
    };
    Some((wire, !noselect))
}

/// Source and target sessions, then every folder in turn.
async fn copy_all(
    sport: u16,
    suser: &str,
    spass: &str,
    dport: u16,
    duser: &str,
    dpass: &str,
) -> Result<(u64, u64)> {
    let mut src = Conn::connect(sport, suser, spass).await?;
    let mut dst = Conn::connect(dport, duser, dpass).await?;
    let mut folders: Vec<(String, bool)> = src
        .command("LIST \"\" \"*\"")
        .await?
        .iter()
        .filter_map(|l| parse_list(l))
        .collect();
    // Parents before children.
    folders.sort_by_key(|(name, _)| (name.matches('/').count(), name.clone()));
    for (name, _) in &folders {
        if name.eq_ignore_ascii_case("\"INBOX\"") {
            continue;
        }
        if let Err(e) = dst.command(&format!("CREATE {name}")).await
            && !e.to_string().contains("ALREADYEXISTS")
        {
            return Err(e);
        }
    }
    // From here the target's replies are drained by their own task.
    let Conn {
        r: dst_r,
        w: mut dst_w,
        ..
    } = dst;
    let drain = tokio::spawn(drain_replies(dst_r));
    let mut tag = 0u64;
    let mut bytes = 0u64;
    for (name, selectable) in &folders {
        if !selectable {
            continue;
        }
        let exists = src
            .command(&format!("EXAMINE {name}"))
            .await?
            .iter()
            .filter_map(|l| {
                l.strip_suffix(" EXISTS")?
                    .strip_prefix("* ")?
                    .parse::<u64>()
                    .ok()
            })
            .next_back()
            .unwrap_or(0);
        if exists == 0 {
            continue;
        }
        // Dovecot APPENDs into the selected mailbox without opening it per message; the SELECT
        // is pipelined like the APPENDs (its reply is untagged lines and an `S` tag).
        dst_w
            .write_all(format!("S{} SELECT {name}\r\n", tag + 1).as_bytes())
            .await?;
        let t = std::time::Instant::now();
        bytes += copy_folder(&mut src, &mut dst_w, name, &mut tag).await?;
        eprintln!(
            "floor: {name}: {exists} messages sent in {:.2?}",
            t.elapsed()
        );
    }
    // A last NOOP: its reply comes after every APPEND's.
    dst_w.write_all(b"Z NOOP\r\n").await?;
    dst_w.flush().await?;
    let t = std::time::Instant::now();
    let acked = drain.await.context("reply task")??;
    eprintln!(
        "floor: last acknowledgement {:.2?} after the last APPEND was sent",
        t.elapsed()
    );
    ensure!(acked == tag, "{tag} APPENDs sent, {acked} acknowledged");
    src.command("LOGOUT").await.ok();
    Ok((tag, bytes))
}

/// Counts the APPENDs' tagged OKs until the final NOOP's reply; a NO or BAD is an error.
async fn drain_replies(mut r: BufReader<OwnedReadHalf>) -> Result<u64> {
    let mut line = Vec::new();
    let mut acked = 0u64;
    loop {
        line.clear();
        let n = r.read_until(b'\n', &mut line).await?;
        ensure!(n > 0, "target closed the connection after {acked} APPENDs");
        if line.starts_with(b"Z ") {
            return Ok(acked);
        }
        if line.first() == Some(&b'S') {
            let text = lossy(&line);
            ensure!(
                text.split(' ').nth(1) == Some("OK"),
                "SELECT failed: {}",
                text.trim_end()
            );
        }
        if line.first() == Some(&b'A') {
            let text = lossy(&line);
            let status = text.split(' ').nth(1).unwrap_or("");
            ensure!(status == "OK", "APPEND failed: {}", text.trim_end());
            acked += 1;
        }
    }
}

/// Streams one folder's messages from the source into APPENDs on the target.
async fn copy_folder(
    src: &mut Conn,
    dst: &mut BufWriter<OwnedWriteHalf>,
    mailbox: &str,
    tag: &mut u64,
) -> Result<u64> {
    let ftag = src.next_tag();
    src.w
        .write_all(format!("{ftag} UID FETCH 1:* (FLAGS INTERNALDATE BODY.PEEK[])\r\n").as_bytes())
        .await?;
    src.w.flush().await?;
    let mut line = Vec::new();
    let mut bytes = 0u64;
    loop {
        src.line(&mut line).await?;
        if line.starts_with(ftag.as_bytes()) {
            ensure!(
                line[ftag.len()..].starts_with(b" OK"),
                "FETCH failed: {}",
                lossy(&line)
            );
            return Ok(bytes);
        }
        let text = lossy(&line);
        let Some(size) = literal_size(&text) else {
            continue;
        };
        let head = text.clone();
        let flags = item_flags(&head);
        let date = item_date(&head);
        *tag += 1;
        match (flags, date) {
            (Some(flags), Some(date)) => {
                dst.write_all(
                    format!("A{tag} APPEND {mailbox} ({flags}) \"{date}\" {{{size}+}}\r\n")
                        .as_bytes(),
                )
                .await?;
                let copied = tokio::io::copy(&mut (&mut src.r).take(size), dst).await?;
                ensure!(copied == size, "source closed mid-message");
                dst.write_all(b"\r\n").await?;
                // The rest of the FETCH line: ")".
                src.line(&mut line).await?;
            }
            _ => {
                let mut body = vec![0u8; usize::try_from(size)?];
                src.r.read_exact(&mut body).await?;
                src.line(&mut line).await?;
                let all = format!("{head} {}", lossy(&line));
                let flags = item_flags(&all).unwrap_or_default();
                let date = item_date(&all).context("no INTERNALDATE in FETCH reply")?;
                dst.write_all(
                    format!("A{tag} APPEND {mailbox} ({flags}) \"{date}\" {{{size}+}}\r\n")
                        .as_bytes(),
                )
                .await?;
                dst.write_all(&body).await?;
                dst.write_all(b"\r\n").await?;
            }
        }
        bytes += size;
    }
}

fn literal_size(line: &str) -> Option<u64> {
    let l = line.trim_end().strip_suffix('}')?;
    let open = l.rfind('{')?;
    l[open + 1..].parse().ok()
}

/// `FLAGS (...)` without `\Recent`.
fn item_flags(text: &str) -> Option<String> {
    let at = text.find("FLAGS (")? + "FLAGS (".len();
    let end = text[at..].find(')')? + at;
    Some(
        text[at..end]
            .split_whitespace()
            .filter(|f| !f.eq_ignore_ascii_case("\\Recent"))
            .collect::<Vec<_>>()
            .join(" "),
    )
}

fn item_date(text: &str) -> Option<String> {
    let at = text.find("INTERNALDATE \"")? + "INTERNALDATE \"".len();
    let end = text[at..].find('"')? + at;
    Some(text[at..end].to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fetch_items_and_list_lines() {
        let l = "* 3 FETCH (UID 7 FLAGS (\\Seen \\Recent $Work) INTERNALDATE \"01-Jan-2024 10:00:00 +0000\" BODY[] {1234}\r\n";
        assert_eq!(literal_size(l), Some(1234));
        assert_eq!(item_flags(l).as_deref(), Some("\\Seen $Work"));
        assert_eq!(item_date(l).as_deref(), Some("01-Jan-2024 10:00:00 +0000"));
        assert_eq!(
            parse_list("* LIST (\\HasNoChildren) \"/\" \"Kunden &- Partner\""),
            Some(("\"Kunden &- Partner\"".to_owned(), true))
        );
        assert_eq!(
            parse_list("* LIST (\\Noselect \\HasChildren) \"/\" Archive"),
            Some(("\"Archive\"".to_owned(), false))
        );
        assert_eq!(
            parse_list("* LIST (\\HasNoChildren) \"/\" INBOX"),
            Some(("\"INBOX\"".to_owned(), true))
        );
    }
}
