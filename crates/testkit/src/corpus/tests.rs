//! Unit tests for the corpus: determinism, frozen output, wire format, coverage of folders,
//! flags and structures, size caps, MIME parsing and the encoders.

use super::builder::{encode_latin1_word, encode_word, percent_encode, quoted_printable};
use super::manifest::hex;
use super::*;
use std::collections::HashSet;

#[test]
fn deterministic_and_independent_of_order() {
    let c = Corpus::new(CorpusProfile::small(11, 50));
    let forward: Vec<Vec<u8>> = c.iter().map(|m| m.bytes).collect();
    let again = Corpus::new(CorpusProfile::small(11, 50));
    for i in (0..50).rev() {
        assert_eq!(again.message(i).bytes, forward[i], "message {i}");
    }
    let other = Corpus::new(CorpusProfile::small(12, 50));
    assert_ne!(other.message(0).bytes, forward[0]);
}

#[test]
fn frozen_output() {
    // Guards against accidental changes of the generator: the corpus for a seed must not
    // change between releases (benchmarks and fixtures compare across versions).
    let c = Corpus::new(CorpusProfile::small(1, 3));
    let m = c.message(0);
    assert_eq!(
        m.meta.message_id,
        "<corpus.0000000000000001.0000000@example.org>"
    );
    let digests: Vec<String> = c
        .iter()
        .map(|m| hex(&sha256(&m.bytes))[..16].to_owned())
        .collect();
    assert_eq!(digests, FROZEN_DIGESTS.to_vec(), "generator output changed");
}

const FROZEN_DIGESTS: [&str; 3] = ["72f40d676dabdafe", "b78c00231dc415b2", "5275b59a1f5b8a54"];

#[test]
fn wire_format_crlf_line_length_unique_ids() {
    let c = Corpus::new(CorpusProfile::small(3, 300));
    let mut ids = HashSet::new();
    for m in c.iter() {
        let b = &m.bytes;
        for (i, w) in b.windows(2).enumerate() {
            assert!(
                !(w[1] == b'\n' && w[0] != b'\r'),
                "bare LF at {i} in #{}",
                m.meta.index
            );
            assert!(
                !(w[0] == b'\r' && w[1] != b'\n'),
                "bare CR at {i} in #{}",
                m.meta.index
            );
        }
        assert!(!b.contains(&0), "NUL in #{}", m.meta.index);
        assert!(
            b.split(|&x| x == b'\n').all(|l| l.len() <= 998),
            "long line in #{}",
            m.meta.index
        );
        assert!(
            ids.insert(m.meta.message_id.clone()),
            "duplicate Message-ID"
        );
        let hdr = String::from_utf8_lossy(b);
        assert!(hdr.contains(&format!("Message-ID: {}\r\n", m.meta.message_id)));
    }
}

#[test]
fn covers_folders_flags_structures_and_sizes() {
    let c = Corpus::new(CorpusProfile::small(5, 500));
    let mut folders = HashSet::new();
    let mut flags = HashSet::new();
    let mut years = HashSet::new();
    let mut offsets = HashSet::new();
    let mut kinds = HashSet::new();
    let mut sizes = Vec::new();
    for m in c.iter() {
        folders.insert(m.meta.folder.clone());
        flags.extend(m.meta.flags.iter().cloned());
        let y = 1970 + m.meta.internal_date.unix_seconds() / 31_556_952;
        years.insert(y);
        offsets.insert(m.meta.internal_date.offset_minutes());
        if m.meta.folder == "Drafts" {
            assert!(m.meta.flags.iter().any(|f| f == "\\Draft"));
        }
        if m.meta.folder == "Archive/2023" {
            assert!(
                m.meta.internal_date.to_imap().contains("-2023 ")
                    || m.meta.internal_date.to_imap().contains("-2024 ")
                    || m.meta.internal_date.to_imap().contains("-2022 ")
            );
        }
        let text = String::from_utf8_lossy(&m.bytes);
        for k in [
            "multipart/alternative",
            "multipart/related",
            "multipart/mixed",
            "Content-ID: <",
            "=?UTF-8?B?",
            "=?UTF-8?Q?",
            "=?ISO-8859-1?Q?",
            "Content-Transfer-Encoding: 8bit",
            "Content-Transfer-Encoding: quoted-printable",
            "Content-Transfer-Encoding: base64",
            "charset=\"iso-8859-1\"",
            "filename*=UTF-8''",
        ] {
            if text.contains(k) {
                kinds.insert(k);
            }
        }
        sizes.push(m.bytes.len());
    }
    let want: HashSet<String> = c
        .folders()
        .into_iter()
        .filter(|f| !["Archive", "Projects", "Überweisungen"].contains(&f.as_str()))
        .collect();
    assert_eq!(folders, want);
    for f in [
        "\\Seen",
        "\\Flagged",
        "\\Answered",
        "\\Draft",
        "$Label1",
        "Work",
    ] {
        assert!(flags.contains(f), "flag {f} never used");
    }
    assert!(years.len() >= 8, "{years:?}");
    assert!(offsets.len() >= 10, "{offsets:?}");
    assert_eq!(kinds.len(), 12, "{kinds:?}");
    sizes.sort_unstable();
    let median = sizes[sizes.len() / 2];
    assert!((2_000..=50_000).contains(&median), "median {median}");
    assert!(sizes[0] >= 1_500, "smallest {}", sizes[0]);
    assert!(*sizes.last().unwrap_or(&0) > 100_000);
    assert!(*sizes.last().unwrap_or(&0) < 420_000);
}

#[test]
fn huge_messages_one_per_block_and_cap() {
    let p = CorpusProfile::realistic(9, 2000);
    // Which indices are huge is decided per block of 1,000.
    let c = Corpus::new(p.clone().with_max_message_bytes(Some(64 * 1024)));
    for i in 0..40 {
        assert!(c.message(i).bytes.len() < 70 * 1024, "cap ignored for #{i}");
    }
    let mut huge = 0;
    let c = Corpus::new(p.clone().with_attachment_per_mille(0));
    for block in 0..2u64 {
        let chosen = (derive(9, block, 3) % 1000) as usize + block as usize * 1000;
        let m = c.message(chosen);
        assert!(
            m.bytes.len() > 20 * 1024 * 1024,
            "#{chosen} is {}",
            m.bytes.len()
        );
        huge += 1;
        assert!(c.message(chosen ^ 1).bytes.len() < 60 * 1024);
    }
    assert_eq!(huge, 2);
    let no_huge = Corpus::new(p.with_huge_every(None).with_attachment_per_mille(0));
    let chosen = (derive(9, 0, 3) % 1000) as usize;
    assert!(no_huge.message(chosen).bytes.len() < 60 * 1024);
}

#[test]
fn messages_parse_as_mime() {
    let c = Corpus::new(CorpusProfile::small(21, 120));
    let mut non_ascii_subjects = 0;
    let mut attachments = 0;
    for m in c.iter() {
        let parsed = mail_parser::MessageParser::default()
            .parse(&m.bytes)
            .unwrap_or_else(|| panic!("#{} does not parse", m.meta.index));
        let subject = parsed.subject().unwrap_or_default();
        assert!(!subject.contains("=?"), "undecoded subject {subject:?}");
        if !subject.is_ascii() {
            non_ascii_subjects += 1;
        }
        assert_eq!(
            parsed.message_id().map(|id| format!("<{id}>")),
            Some(m.meta.message_id.clone())
        );
        for a in parsed.attachments() {
            attachments += 1;
            assert!(!a.contents().is_empty());
        }
        assert!(parsed.body_text(0).is_some() || parsed.body_html(0).is_some());
    }
    assert!(non_ascii_subjects > 5);
    assert!(attachments > 5);
}

#[test]
fn qp_and_encoded_words() {
    let mut out = Vec::new();
    quoted_printable("Grüße = 100 €  \r\nx".as_bytes(), &mut out);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "Gr=C3=BC=C3=9Fe =3D 100 =E2=82=AC =20\r\nx"
    );
    assert_eq!(encode_word("Zoë", true), "=?UTF-8?B?Wm/Dqw==?=");
    assert_eq!(encode_word("a b", false), "=?UTF-8?Q?a_b?=");
    assert_eq!(
        encode_latin1_word("Müller").as_deref(),
        Some("=?ISO-8859-1?Q?M=FCller?=")
    );
    assert_eq!(percent_encode("Résumé_0.pdf"), "R%C3%A9sum%C3%A9_0.pdf");
}
