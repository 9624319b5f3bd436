//! Loading a job file: TOML parsing, validation across tables, and errors located at file,
//! line and column with a hint ("did you mean").

use super::*;

impl Job {
    /// Reads and validates a job file.
    pub fn load(path: impl AsRef<Path>) -> Result<Job> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| Error::ConfigRead {
            file: path.to_owned(),
            source,
        })?;
        Job::parse(&text, path)
    }

    /// Parses and validates job-file text; `file` names it in errors and anchors relative paths.
    pub fn parse(text: &str, file: impl AsRef<Path>) -> Result<Job> {
        let file = file.as_ref();
        let mut job: Job = toml::from_str(text).map_err(|e| toml_error(text, file, &e))?;
        job.file = file.to_owned();
        job.validate(text)?;
        job.set_secret_origins(text);
        Ok(job)
    }

    /// The directory relative paths are resolved against (the job file's directory).
    pub fn base_dir(&self) -> PathBuf {
        match self.file.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        }
    }

    /// Resolves a path from the job file against [`Job::base_dir`].
    pub fn resolve_path(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_owned()
        } else {
            self.base_dir().join(p)
        }
    }

    /// Every secret reference in the job, with its key, e.g. for `target test` to resolve them
    /// all up front.
    pub fn secret_refs(&self) -> Vec<&SecretRef> {
        let mut v = Vec::new();
        if let Some(a) = &self.source.admin {
            v.push(&a.secret);
        }
        if let Some(g) = &self.source.google {
            v.extend(g.service_account_key.iter());
            v.extend(g.client_secret.iter());
        }
        if let Some(g) = &self.target.graph {
            v.extend(g.client_secret.iter());
            v.extend(g.certificate_secret.iter());
        }
        if let Some(i) = &self.target.imap
            && let Some(a) = &i.admin
        {
            v.push(&a.secret);
        }
        if let Some(e) = &self.target.ews {
            v.push(&e.secret);
        }
        v
    }

    fn set_secret_origins(&mut self, text: &str) {
        let file = self.file.clone();
        let base = self.base_dir();
        let fix = |r: &mut SecretRef, table: &[&str], key: &str| {
            let loc = locate(text, &file, table, Some(key));
            r.origin = format!("[{}] {key} at {loc}", table.join("."));
            if let SecretSource::File(p) = &mut r.source
                && p.is_relative()
            {
                *p = base.join(&*p);
            }
        };
        if let Some(a) = &mut self.source.admin {
            fix(&mut a.secret, &["source", "admin"], "secret");
        }
        if let Some(g) = &mut self.source.google {
            if let Some(s) = &mut g.service_account_key {
                fix(s, &["source", "google"], "service_account_key");
            }
            if let Some(s) = &mut g.client_secret {
                fix(s, &["source", "google"], "client_secret");
            }
        }
        if let Some(g) = &mut self.target.graph {
            if let Some(s) = &mut g.client_secret {
                fix(s, &["target", "graph"], "client_secret");
            }
            if let Some(s) = &mut g.certificate_secret {
                fix(s, &["target", "graph"], "certificate_secret");
            }
        }
        if let Some(i) = &mut self.target.imap
            && let Some(a) = &mut i.admin
        {
            fix(&mut a.secret, &["target", "imap", "admin"], "secret");
        }
        if let Some(e) = &mut self.target.ews {
            fix(&mut e.secret, &["target", "ews"], "secret");
        }
    }

    fn validate(&self, text: &str) -> Result<()> {
        let err = |table: &[&str], key: Option<&str>, message: String, hint: &str| Error::Config {
            message,
            location: locate(text, &self.file, table, key),
            hint: Some(hint.to_owned()),
        };
        // [source]
        let s = &self.source;
        if s.host.trim().is_empty() {
            return Err(err(
                &["source"],
                Some("host"),
                "`host` is empty".into(),
                "set the IMAP server's host name",
            ));
        }
        check_login(s.login, s.admin.is_some(), &["source"], &err)?;
        check_tls(s.security, s.accept_invalid_certs, &["source"], &err)?;
        if s.port == Some(0) {
            return Err(err(
                &["source"],
                Some("port"),
                "port 0 is not valid".into(),
                "remove `port` to use the default for `security`",
            ));
        }
        if !(1..=64).contains(&s.connections_per_host) {
            return Err(err(
                &["source"],
                Some("connections_per_host"),
                format!(
                    "connections_per_host = {} is out of range",
                    s.connections_per_host
                ),
                "use 1 to 64 (servers such as Gmail allow about 15 per user)",
            ));
        }
        if let Some(g) = &s.google {
            check_google(g, &err)?;
        }
        if self.gmail.daily_download.0 == 0 || self.gmail.download_window_seconds == 0 {
            return Err(err(
                &["gmail"],
                Some("daily_download"),
                "the Gmail download budget is 0".into(),
                "remove `daily_download` and `download_window_seconds` for Google's 2500MB a day",
            ));
        }
        // [dav]
        if let Some(d) = &self.dav {
            if d.url.is_some() && d.files.is_some() {
                return Err(err(
                    &["dav"],
                    Some("files"),
                    "both `url` and `files` are given".into(),
                    "keep one source for contacts and calendars: a DAV server (`url`) or files",
                ));
            }
            check_tls(
                if d.url.as_deref().is_some_and(|u| u.starts_with("http://")) {
                    crate::config::Security::None
                } else {
                    crate::config::Security::Tls
                },
                d.accept_invalid_certs,
                &["dav"],
                &err,
            )?;
            if let Some(z) = &d.floating_zone
                && z.parse::<chrono_tz::Tz>().is_err()
            {
                return Err(err(
                    &["dav"],
                    Some("floating_zone"),
                    format!("floating_zone = {z:?} is not an IANA time zone"),
                    "use a name such as \"Europe/Berlin\" or \"America/New_York\"",
                ));
            }
        }
        // [target]
        let t = &self.target;
        let present = [
            (TargetKind::Graph, t.graph.is_some()),
            (TargetKind::Imap, t.imap.is_some()),
            (TargetKind::Ews, t.ews.is_some()),
            (TargetKind::Eml, t.eml.is_some()),
        ];
        for (kind, is) in present {
            if kind == t.kind && !is {
                return Err(err(
                    &["target"],
                    Some("kind"),
                    format!(
                        "kind = \"{}\" but there is no [target.{}] table",
                        kind.as_str(),
                        kind.as_str()
                    ),
                    &format!(
                        "add a [target.{}] table with its settings (see `o365-migrate init`)",
                        kind.as_str()
                    ),
                ));
            }
            if kind != t.kind && is {
                return Err(err(
                    &["target", kind.as_str()],
                    None,
                    format!(
                        "[target.{}] is given but kind = \"{}\"",
                        kind.as_str(),
                        t.kind.as_str()
                    ),
                    &format!(
                        "remove [target.{}] or set kind = \"{}\"",
                        kind.as_str(),
                        kind.as_str()
                    ),
                ));
            }
        }
        if let Some(g) = &t.graph {
            let tbl = &["target", "graph"][..];
            match (&g.client_secret, &g.certificate) {
                (Some(_), Some(_)) => {
                    return Err(err(
                        tbl,
                        Some("certificate"),
                        "both `client_secret` and `certificate` are given".into(),
                        "keep exactly one credential: a client secret or a certificate",
                    ));
                }
                (None, None) => {
                    return Err(err(
                        tbl,
                        None,
                        "no app credential: neither `client_secret` nor `certificate`".into(),
                        "add `client_secret = \"env:O365_CLIENT_SECRET\"` or `certificate = \"/path/app.pem\"`",
                    ));
                }
                _ => {}
            }
            if g.certificate_secret.is_some() && g.certificate.is_none() {
                return Err(err(
                    tbl,
                    Some("certificate_secret"),
                    "`certificate_secret` without `certificate`".into(),
                    "add `certificate` or remove `certificate_secret`",
                ));
            }
            if g.tenant.trim().is_empty() || g.client_id.trim().is_empty() {
                return Err(err(
                    tbl,
                    None,
                    "`tenant` and `client_id` must not be empty".into(),
                    "copy them from the app registration's overview page",
                ));
            }
        }
        if let Some(i) = &t.imap {
            let tbl = &["target", "imap"][..];
            check_login(i.login, i.admin.is_some(), tbl, &err)?;
            check_tls(i.security, i.accept_invalid_certs, tbl, &err)?;
            if !(1..=64).contains(&i.connections_per_host) {
                return Err(err(
                    tbl,
                    Some("connections_per_host"),
                    format!(
                        "connections_per_host = {} is out of range",
                        i.connections_per_host
                    ),
                    "use 1 to 64",
                ));
            }
        }
        if let Some(e) = &t.ews
            && e.auth == EwsAuth::Basic
            && e.user.is_none()
        {
            return Err(err(
                &["target", "ews"],
                Some("auth"),
                "auth = \"basic\" needs `user`".into(),
                "add `user = \"svc-migrate@example.com\"` (an account with ApplicationImpersonation)",
            ));
        }
        // [matching]
        if self.matching.licence_sku.is_some() && self.matching.usage_location.is_none() {
            return Err(err(
                &["matching"],
                Some("licence_sku"),
                "`licence_sku` needs `usage_location`".into(),
                "Microsoft 365 assigns licences only to users with a usage location: add e.g. `usage_location = \"DE\"`",
            ));
        }
        if self.matching.allow_create
            && self
                .matching
                .create_domain
                .as_deref()
                .is_none_or(|d| d.trim().is_empty())
        {
            return Err(err(
                &["matching"],
                Some("allow_create"),
                "`allow_create = true` needs `create_domain`".into(),
                "add the verified domain new users get, e.g. `create_domain = \"contoso.onmicrosoft.com\"`",
            ));
        }
        if self.matching.allow_create && self.matching.usage_location.is_none() {
            return Err(err(
                &["matching"],
                Some("allow_create"),
                "`allow_create = true` needs `usage_location`".into(),
                "Microsoft 365 licenses only users with a usage location: add e.g. `usage_location = \"DE\"`",
            ));
        }
        if let Err(e) = o365_migrate_automatch::MatchConfig::from_names(
            &self.matching.rules,
            &self.matching.domains,
        ) {
            return Err(err(
                &["matching"],
                Some("rules"),
                e.to_string(),
                "fix `rules` in [matching], or leave it out for the default chain",
            ));
        }
        // [filters]
        if let (Some(a), Some(b)) = (self.filters.since, self.filters.before)
            && a >= b
        {
            return Err(err(
                &["filters"],
                Some("before"),
                format!("`before` ({b}) is not after `since` ({a}), so nothing would be migrated"),
                "swap or widen the dates",
            ));
        }
        if self.filters.max_message_size == Some(ByteSize(0)) {
            return Err(err(
                &["filters"],
                Some("max_message_size"),
                "max_message_size = 0 skips every message".into(),
                "remove it or give a size such as \"150MB\"",
            ));
        }
        // [folders]
        for (n, r) in self.folders.map.iter().enumerate() {
            if r.skip == r.target.is_some() {
                return Err(Error::Config {
                    message: format!(
                        "[[folders.map]] rule {} needs exactly one of `target` or `skip = true`",
                        n + 1
                    ),
                    location: locate(text, &self.file, &["folders", "map"], Some("source")),
                    hint: Some("add `target = \"Archive/$1\"` or `skip = true`".into()),
                });
            }
        }
        // [limits]
        let l = &self.limits;
        if l.mailboxes_at_once == 0 || l.max_attempts == 0 {
            return Err(err(
                &["limits"],
                None,
                "`mailboxes_at_once` and `max_attempts` must be at least 1".into(),
                "remove them to use the defaults",
            ));
        }
        if l.in_flight_bytes.0 < (1 << 20) {
            return Err(err(
                &["limits"],
                Some("in_flight_bytes"),
                "in_flight_bytes below 1MB cannot hold a normal message".into(),
                "use at least \"16MB\"; the default is \"32MB\"",
            ));
        }
        Ok(())
    }
}

/// Builds a located config error: (table, key, message, hint).
type ErrAt<'a> = dyn Fn(&[&str], Option<&str>, String, &str) -> Error + 'a;

pub(super) fn check_login(
    mode: LoginMode,
    has_admin: bool,
    table: &[&str],
    err: &ErrAt<'_>,
) -> Result<()> {
    let t = table.join(".");
    match (mode, has_admin) {
        (LoginMode::Admin, false) => Err(err(
            table,
            Some("login"),
            format!("login = \"admin\" but there is no [{t}.admin] table"),
            &format!("add [{t}.admin] with `user` and `secret = \"env:...\"`"),
        )),
        (LoginMode::PerUser, true) => Err(err(
            table,
            Some("login"),
            format!("[{t}.admin] is given but login = \"per-user\""),
            "set login = \"admin\" or remove the admin table",
        )),
        _ => Ok(()),
    }
}

pub(super) fn check_tls(
    sec: Security,
    accept_invalid: bool,
    table: &[&str],
    err: &ErrAt<'_>,
) -> Result<()> {
    if sec == Security::None && accept_invalid {
        return Err(err(
            table,
            Some("accept_invalid_certs"),
            "accept_invalid_certs has no meaning with security = \"none\"".into(),
            "remove it, or use security = \"tls\" / \"starttls\"",
        ));
    }
    Ok(())
}

/// Turns a toml/serde error into a located one with a hint. Never includes the offending line
/// (it may hold a literal secret).
pub(super) fn toml_error(text: &str, file: &Path, e: &toml::de::Error) -> Error {
    let offset = e.span().map(|s| s.start).unwrap_or(0);
    let location = offset_location(text, file, offset);
    let raw = e.message().trim().to_owned();
    // A missing key is reported at its table's header; anything else at the offending key.
    let table = table_at(text, offset, !raw.starts_with("missing field"));
    let in_table = if table.is_empty() {
        String::from("at the top level")
    } else {
        format!("in [{table}]")
    };
    if let Some(rest) = raw.strip_prefix("unknown field `") {
        let name = rest.split('`').next().unwrap_or("");
        let expected = backticked_after(&raw, "expected");
        let mut hint = match did_you_mean(name, expected.iter().map(String::as_str)) {
            Some(b) => format!("did you mean `{b}`?"),
            None if !expected.is_empty() => format!("known keys here: {}", expected.join(", ")),
            None => "remove it".to_owned(),
        };
        if ["password", "secret", "pass", "client_secret", "token"].contains(&name)
            && !expected.iter().any(|x| x == name)
        {
            hint.push_str(" (secrets go in by reference, e.g. `secret = \"env:NAME\"`)");
        }
        return Error::Config {
            message: format!("unknown key `{name}` {in_table}"),
            location,
            hint: Some(hint),
        };
    }
    if let Some(rest) = raw.strip_prefix("unknown variant `") {
        let name = rest.split('`').next().unwrap_or("");
        let expected = backticked_after(&raw, "expected");
        let hint = match did_you_mean(name, expected.iter().map(String::as_str)) {
            Some(b) => format!("did you mean `{b}`? (one of {})", expected.join(", ")),
            None => format!("use one of {}", expected.join(", ")),
        };
        return Error::Config {
            message: format!("unknown value `{name}` {in_table}"),
            location,
            hint: Some(hint),
        };
    }
    if let Some(rest) = raw.strip_prefix("missing field `") {
        let name = rest.split('`').next().unwrap_or("");
        let hint = if name == "source" || name == "target" {
            format!("add a [{name}] table (see `o365-migrate init`)")
        } else {
            format!("add `{name} = ...` (see `o365-migrate init` for an example)")
        };
        return Error::Config {
            message: format!("missing key `{name}` {in_table}"),
            location,
            hint: Some(hint),
        };
    }
    if raw.starts_with("duplicate key") {
        return Error::Config {
            message: raw,
            location,
            hint: Some("remove one of the two".into()),
        };
    }
    if raw.starts_with("invalid type") {
        return Error::Config {
            message: format!("{raw} {in_table}"),
            location,
            hint: Some("check the quoting: strings in \"...\", numbers and true/false bare".into()),
        };
    }
    // Our own value errors already carry their hint after the first `;`.
    let (message, hint) = match raw.split_once("; ") {
        Some((m, h)) => (m.to_owned(), Some(h.to_owned())),
        None => (raw, None),
    };
    Error::Config {
        message,
        location,
        hint,
    }
}

pub(super) fn backticked_after(msg: &str, word: &str) -> Vec<String> {
    let Some(i) = msg.find(word) else {
        return Vec::new();
    };
    msg[i..]
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// The closest candidate by edit distance, if close enough to be a plausible typo.
pub(crate) fn did_you_mean<'a>(
    input: &str,
    candidates: impl Iterator<Item = &'a str>,
) -> Option<&'a str> {
    let inp = input.to_ascii_lowercase();
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        let lc = c.to_ascii_lowercase();
        let mut d = levenshtein(&inp, &lc);
        if lc.contains(&inp) && inp.len() >= 4 || inp.contains(&lc) && lc.len() >= 4 {
            d = d.min(2);
        }
        if best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    let limit = (input.chars().count() / 3).max(2);
    best.filter(|(d, _)| *d <= limit).map(|(_, c)| c)
}

pub(super) fn levenshtein(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j + 1] + 1).min(cur[j] + 1).min(prev[j] + cost);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

pub(super) fn offset_location(text: &str, file: &Path, offset: usize) -> Location {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let column = before
        .get(line_start..)
        .map(|s| s.chars().count())
        .unwrap_or(0)
        + 1;
    Location {
        file: file.to_owned(),
        line,
        column,
    }
}

/// Parses a table header line `[a.b]` / `[[a.b]]` into its dotted name.
pub(super) fn header_name(line: &str) -> Option<String> {
    let l = line.trim();
    let inner = l
        .strip_prefix("[[")
        .and_then(|r| r.split("]]").next())
        .or_else(|| l.strip_prefix('[').and_then(|r| r.split(']').next()))?;
    Some(
        inner
            .split('.')
            .map(|p| p.trim().trim_matches('"'))
            .collect::<Vec<_>>()
            .join("."),
    )
}

/// The table whose body contains `offset`; for an offset inside a header `[a.b]`, the table
/// that header's last key belongs to (`a`, or the top level).
pub(super) fn table_at(text: &str, offset: usize, header_is_parent: bool) -> String {
    let mut current = String::new();
    let mut pos = 0;
    for line in text.split_inclusive('\n') {
        let on_this_line = offset >= pos && offset < pos + line.len();
        if let Some(h) = header_name(line) {
            if on_this_line && !header_is_parent {
                return h;
            }
            if on_this_line {
                return h
                    .rsplit_once('.')
                    .map(|(p, _)| p.to_owned())
                    .unwrap_or_default();
            }
            current = h;
        }
        if on_this_line {
            break;
        }
        pos += line.len();
    }
    current
}

/// Finds `key` in table `table` (first occurrence), else the table header, else 1:1.
pub(super) fn locate(text: &str, file: &Path, table: &[&str], key: Option<&str>) -> Location {
    let want = table.join(".");
    let mut current = String::new();
    let mut header_at = None;
    let mut pos = 0;
    for line in text.split_inclusive('\n') {
        if let Some(h) = header_name(line) {
            current = h;
            if current == want && header_at.is_none() {
                header_at = Some(pos + (line.len() - line.trim_start().len()));
            }
        } else if current == want
            && let Some(k) = key
        {
            let t = line.trim_start();
            if let Some(rest) = t.strip_prefix(k)
                && rest.trim_start().starts_with('=')
            {
                return offset_location(text, file, pos + (line.len() - t.len()));
            }
        }
        pos += line.len();
    }
    offset_location(text, file, header_at.unwrap_or(0))
}

/// `[source.google]`: one way to sign in, complete; `{login}` in the refresh-token reference.
fn check_google(g: &crate::config::GoogleSignIn, err: &ErrAt<'_>) -> Result<()> {
    let t = &["source", "google"];
    let refresh = g.client_id.is_some() || g.client_secret.is_some() || g.refresh_token.is_some();
    match (&g.service_account_key, refresh) {
        (Some(_), true) => Err(err(
            t,
            Some("service_account_key"),
            "both a service account key and refresh-token settings are given".into(),
            "keep `service_account_key` (Google Workspace, domain-wide delegation) or \
             `client_id` + `client_secret` + `refresh_token` (per-user OAuth), not both",
        )),
        (None, false) => Err(err(
            t,
            None,
            "no way to sign in is given".into(),
            "set `service_account_key = \"file:/path/key.json\"`, or `client_id`, \
             `client_secret` and `refresh_token = \"file:/path/{login}.token\"`",
        )),
        (None, true) => {
            for (key, present) in [
                ("client_id", g.client_id.is_some()),
                ("client_secret", g.client_secret.is_some()),
                ("refresh_token", g.refresh_token.is_some()),
            ] {
                if !present {
                    return Err(err(
                        t,
                        None,
                        format!("`{key}` is missing"),
                        "per-user OAuth needs `client_id`, `client_secret` and `refresh_token`",
                    ));
                }
            }
            let r = g.refresh_token.as_deref().unwrap_or_default();
            if let Err(m) = SecretRef::parse(r) {
                return Err(err(
                    t,
                    Some("refresh_token"),
                    m,
                    "e.g. `file:/etc/o365-migrate/google/{login}.token`",
                ));
            }
            if !r.contains("{login}") {
                return Err(err(
                    t,
                    Some("refresh_token"),
                    "`refresh_token` does not contain `{login}`".into(),
                    "each user has a refresh token of their own: write e.g. \
                     `file:/etc/o365-migrate/google/{login}.token`",
                ));
            }
            Ok(())
        }
        (Some(_), false) => Ok(()),
    }
}
