//! Shared fixture directory and a compact outcome rendering for table tests.
#![allow(dead_code, unreachable_pub)]

use o365_migrate_automatch::{DirectoryUser, Outcome};

/// A small directory with the interesting cases.
pub fn directory() -> Vec<DirectoryUser> {
    vec![
        DirectoryUser::new("u-alice", "alice@new.example")
            .with_mail("alice@new.example")
            .with_proxy("SMTP:alice@new.example")
            .with_proxy("smtp:alice@old.example")
            .with_proxy("smtp:a.liddell@old.example")
            .with_proxy("X500:/o=Org/cn=alice")
            .with_name("Alice", "Liddell")
            .with_display("Alice Liddell"),
        DirectoryUser::new("u-bob", "bob.smith@new.example")
            .with_proxy("SMTP:Bob.Smith@New.Example")
            .with_name("Bob", "Smith")
            .with_display("Bob Smith"),
        // Two users share a proxy address (a broken tenant or a merged export).
        DirectoryUser::new("u-shared1", "sales1@new.example")
            .with_proxy("SMTP:sales1@new.example")
            .with_proxy("smtp:info@old.example"),
        DirectoryUser::new("u-shared2", "sales2@new.example")
            .with_proxy("SMTP:sales2@new.example")
            .with_proxy("smtp:info@old.example"),
        // One address primary on one user, secondary on another.
        DirectoryUser::new("u-prim", "hr@new.example").with_proxy("SMTP:jobs@new.example"),
        DirectoryUser::new("u-sec", "recruiting@new.example")
            .with_proxy("SMTP:recruiting@new.example")
            .with_proxy("smtp:jobs@new.example"),
        DirectoryUser::new("u-jose", "jose.garcia@new.example")
            .with_name("José", "García")
            .with_display("José García"),
        DirectoryUser::new("u-mueller", "juergen.mueller@new.example")
            .with_name("Jürgen", "Müller")
            .with_display("Jürgen Müller"),
        DirectoryUser::new("u-carol", "c0042@new.example")
            .with_name("Carol", "Smith")
            .with_display("Smith, Carol"),
        DirectoryUser::new("u-admin", "admin@new.example").with_proxy("SMTP:admin@new.example"),
        {
            let mut u =
                DirectoryUser::new("u-fresh", "fresh.user@new.example").with_name("Fresh", "User");
            u.has_mailbox = false;
            u.licensed = false;
            u
        },
        // Same display name twice.
        DirectoryUser::new("u-pat1", "p.one@new.example").with_display("Pat Doe"),
        DirectoryUser::new("u-pat2", "p.two@new.example").with_display("Pat Doe"),
    ]
}

/// Compact rendering: `matched <id> <rule> <confidence>`,
/// `ambiguous <rule> <id,id>`, `unmatched`, `create <upn>`, `excluded`;
/// conflicts add ` conflict`.
pub fn short(o: &Outcome) -> String {
    match o {
        Outcome::Matched(m) => {
            let mut s = format!("matched {} {} {}", m.target.id, m.rule, m.confidence);
            if !m.conflicts.is_empty() {
                s.push_str(" conflict");
            }
            s
        }
        Outcome::Ambiguous { rule, candidates } => format!(
            "ambiguous {rule} {}",
            candidates
                .iter()
                .map(|c| c.target.id.as_str())
                .collect::<Vec<_>>()
                .join(",")
        ),
        Outcome::Unmatched { .. } => "unmatched".into(),
        Outcome::Create(p) => format!("create {}", p.upn),
        Outcome::Excluded { .. } => "excluded".into(),
        other => format!("{other:?}"),
    }
}
