//! A private Dovecot IMAP server per test, on ephemeral 127.0.0.1 ports.
//!
//! Each [`Dovecot`] owns a temporary directory with its own configuration (no include of
//! `/etc/dovecot`), `base_dir`, `state_dir`, `instance_name`, log file, passwd-file users,
//! a master user, a freshly generated CA and server certificate, and Maildir storage.
//! It is stopped (and its directory removed) when dropped.

use std::fmt;
use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::certs;
use crate::client::{Client, TlsTrust};
use crate::error::{Error, Result};

/// Default path of the Dovecot binary (Debian package `dovecot-imapd`).
pub const DEFAULT_DOVECOT_BINARY: &str = "/usr/sbin/dovecot";

/// Environment variable that overrides [`DEFAULT_DOVECOT_BINARY`].
pub const DOVECOT_BINARY_ENV: &str = "O365_MIGRATE_DOVECOT";

/// The loopback address every harness server listens on.
pub const HOST: &str = "127.0.0.1";

const START_ATTEMPTS: u32 = 5;

/// A login name and password for the harness's passwd-file.
///
/// `Debug` hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    name: String,
    password: String,
}

impl User {
    /// A user with the given login name and password.
    pub fn new(name: impl Into<String>, password: impl Into<String>) -> Self {
        User {
            name: name.into(),
            password: password.into(),
        }
    }

    /// The login name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The password (test credentials, in plain text on purpose).
    pub fn password(&self) -> &str {
        &self.password
    }

    fn validate(&self) -> Result<()> {
        let bad = |s: &str| {
            s.is_empty()
                || s.chars()
                    .any(|c| c == ':' || c == '*' || c.is_control() || c.is_whitespace())
        };
        if bad(&self.name) || self.password.is_empty() || self.password.contains([':', '\n', '\r'])
        {
            return Err(Error::InvalidOption(format!(
                "user {:?}: names must be non-empty without ':', '*', spaces or control characters; passwords non-empty without ':' or line breaks",
                self.name
            )));
        }
        Ok(())
    }
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("name", &self.name)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// How to start a [`Dovecot`]. Build with [`DovecotOptions::default`] and the `with_*` methods.
#[derive(Debug, Clone)]
pub struct DovecotOptions {
    users: Vec<User>,
    master: User,
    starttls: bool,
    untrusted_certificate: bool,
    extra_config: Vec<String>,
    binary: Option<PathBuf>,
    start_timeout: Duration,
}

impl Default for DovecotOptions {
    /// Users `alice`, `bob` and `carol` (password `<name>-secret`), master user `admin`
    /// (password `admin-secret`), STARTTLS and implicit TLS on, a trusted certificate.
    fn default() -> Self {
        DovecotOptions {
            users: ["alice", "bob", "carol"]
                .iter()
                .map(|n| User::new(*n, format!("{n}-secret")))
                .collect(),
            master: User::new("admin", "admin-secret"),
            starttls: true,
            untrusted_certificate: false,
            extra_config: Vec::new(),
            binary: None,
            start_timeout: Duration::from_secs(20),
        }
    }
}

impl DovecotOptions {
    /// Replaces the list of users.
    pub fn with_users(mut self, users: impl IntoIterator<Item = User>) -> Self {
        self.users = users.into_iter().collect();
        self
    }

    /// Adds one user.
    pub fn with_user(mut self, user: User) -> Self {
        self.users.push(user);
        self
    }

    /// Replaces the master (admin) user.
    pub fn with_master_user(mut self, master: User) -> Self {
        self.master = master;
        self
    }

    /// Turns TLS off entirely: the plain listener does not offer STARTTLS and there is no
    /// implicit-TLS listener ([`Dovecot::imaps_port`] is `None`). Dovecot's `ssl = no`.
    pub fn without_tls(mut self) -> Self {
        self.starttls = false;
        self
    }

    /// Advertises Dovecot 2.3's capabilities after login less CONDSTORE and QRESYNC: a
    /// server that offers neither (as Exchange Online's IMAP), for the paths that must work
    /// without them.
    pub fn without_condstore(self) -> Self {
        self.with_extra_config(
            "imap_capability = IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT \
             SORT=DISPLAY THREAD=REFERENCES THREAD=REFS THREAD=ORDEREDSUBJECT MULTIAPPEND \
             URL-PARTIAL CATENATE UNSELECT CHILDREN NAMESPACE UIDPLUS LIST-EXTENDED I18NLEVEL=1 \
             ESEARCH ESORT SEARCHRES WITHIN CONTEXT=SEARCH LIST-STATUS BINARY MOVE \
             SNIPPET=FUZZY LITERAL+ NOTIFY SPECIAL-USE",
        )
    }

    /// Presents a server certificate signed by a throw-away CA that is *not*
    /// [`Dovecot::ca_pem`], so a client that verifies certificates must refuse it.
    pub fn with_untrusted_certificate(mut self) -> Self {
        self.untrusted_certificate = true;
        self
    }

    /// Appends raw lines to the generated `dovecot.conf` (later settings win).
    pub fn with_extra_config(mut self, line: impl Into<String>) -> Self {
        self.extra_config.push(line.into());
        self
    }

    /// Uses this Dovecot binary instead of `$O365_MIGRATE_DOVECOT` or `/usr/sbin/dovecot`.
    pub fn with_binary(mut self, binary: impl Into<PathBuf>) -> Self {
        self.binary = Some(binary.into());
        self
    }

    /// How long to wait for the greeting after starting (default 20 s).
    pub fn with_start_timeout(mut self, timeout: Duration) -> Self {
        self.start_timeout = timeout;
        self
    }

    fn resolve_binary(&self) -> PathBuf {
        self.binary
            .clone()
            .or_else(|| std::env::var_os(DOVECOT_BINARY_ENV).map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DOVECOT_BINARY))
    }
}

/// A running private Dovecot. Stopped on drop; see the [module docs](self).
pub struct Dovecot {
    /// `sh` supervising the Dovecot master (see `WATCHDOG`).
    child: Option<Child>,
    /// Write end of the watchdog pipe: closing it (drop, or death of this process) makes
    /// the supervisor SIGTERM Dovecot.
    watchdog: Option<std::process::ChildStdin>,
    dir: tempfile::TempDir,
    config: PathBuf,
    log: PathBuf,
    stderr_log: PathBuf,
    instance_name: String,
    imap_port: u16,
    imaps_port: Option<u16>,
    users: Vec<User>,
    master: User,
    ca_pem: String,
    ca_path: PathBuf,
}

impl fmt::Debug for Dovecot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dovecot")
            .field("instance_name", &self.instance_name)
            .field("imap_port", &self.imap_port)
            .field("imaps_port", &self.imaps_port)
            .field("dir", &self.dir.path())
            .field("users", &self.users)
            .finish_non_exhaustive()
    }
}

static INSTANCE_COUNTER: AtomicU32 = AtomicU32::new(0);

/// Owner for mail files: (uid, gid, user name for `default_*_user`, running as root?).
struct Identity {
    uid: u32,
    gid: u32,
    root: bool,
    login_user: String,
}

fn identity() -> Identity {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|rest| rest.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u32>().ok())
    };
    let euid = field("Uid:").unwrap_or(0);
    let egid = field("Gid:").unwrap_or(0);
    let passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
    let lookup_name = |name: &str| {
        passwd.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.first() == Some(&name)).then(|| {
                (
                    f.get(2).and_then(|x| x.parse().ok()),
                    f.get(3).and_then(|x| x.parse().ok()),
                )
            })
        })
    };
    if euid == 0 {
        let (uid, gid) = match lookup_name("mail") {
            Some((Some(u), Some(g))) => (u, g),
            _ => (8, 8),
        };
        Identity {
            uid,
            gid,
            root: true,
            login_user: String::new(),
        }
    } else {
        let name = passwd
            .lines()
            .find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.get(2).and_then(|x| x.parse::<u32>().ok()) == Some(euid))
                    .then(|| f[0].to_owned())
            })
            .unwrap_or_default();
        Identity {
            uid: euid,
            gid: egid,
            root: false,
            login_user: name,
        }
    }
}

fn free_port() -> Result<u16> {
    let l = TcpListener::bind((HOST, 0))
        .map_err(|e| Error::io("binding 127.0.0.1:0 to find a free port", e))?;
    let port = l
        .local_addr()
        .map_err(|e| Error::io("reading the local address of a probe socket", e))?
        .port();
    Ok(port)
}

fn write_file(path: &Path, contents: &str, mode: u32) -> Result<()> {
    fs::write(path, contents).map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(|e| Error::io(format!("chmod {}", path.display()), e))
}

/// The last `lines` lines of a text file (lossy UTF-8), or a note when it cannot be read.
fn tail(path: &Path, lines: usize) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

struct Layout<'a> {
    dir: &'a Path,
    instance_name: &'a str,
    imap_port: u16,
    imaps_port: Option<u16>,
    id: &'a Identity,
    options: &'a DovecotOptions,
}

fn render_config(l: &Layout<'_>) -> String {
    let d = l.dir.display();
    let mut c = String::new();
    let mut line = |s: &str| {
        c.push_str(s);
        c.push('\n');
    };
    line("# Generated by o365-migrate-testkit; self-contained (no /etc/dovecot include).");
    line(&format!("instance_name = {}", l.instance_name));
    // The harness recognises its own instance by this greeting (not some other server
    // that grabbed the port in between).
    line(&format!("login_greeting = {} ready.", l.instance_name));
    line(&format!("base_dir = {d}/run"));
    line(&format!("state_dir = {d}/state"));
    line(&format!("log_path = {d}/dovecot.log"));
    line(&format!("info_log_path = {d}/dovecot.log"));
    line(&format!("debug_log_path = {d}/dovecot.log"));
    line("protocols = imap");
    // No stats connections: a login process still handshaking with the stats service
    // delays shutdown by 5 s ("Timeout waiting for handshake response").
    line("stats_writer_socket_path =");
    line(&format!("listen = {HOST}"));
    line("disable_plaintext_auth = no");
    line("auth_mechanisms = plain login");
    line("auth_failure_delay = 0");
    line("auth_master_user_separator = *");
    line("first_valid_uid = 1");
    line("first_valid_gid = 1");
    if !l.id.root {
        line(&format!("default_internal_user = {}", l.id.login_user));
        line(&format!("default_login_user = {}", l.id.login_user));
    }
    line("mail_location = maildir:~/Maildir");
    if l.options.starttls {
        line("ssl = yes");
        line(&format!("ssl_cert = <{d}/tls/server.pem"));
        line(&format!("ssl_key = <{d}/tls/server.key"));
    } else {
        line("ssl = no");
    }
    line("passdb {");
    line("  driver = passwd-file");
    line(&format!(
        "  args = scheme=PLAIN username_format=%u {d}/master-users"
    ));
    line("  master = yes");
    line("}");
    line("passdb {");
    line("  driver = passwd-file");
    line(&format!(
        "  args = scheme=PLAIN username_format=%u {d}/users"
    ));
    line("}");
    line("userdb {");
    line("  driver = static");
    line(&format!(
        "  args = uid={} gid={} home={d}/mail/%u",
        l.id.uid, l.id.gid
    ));
    line("}");
    line("namespace inbox {");
    line("  inbox = yes");
    line("  separator = /");
    line("  prefix = ");
    for (name, use_) in [
        ("Sent", "\\Sent"),
        ("Drafts", "\\Drafts"),
        ("Trash", "\\Trash"),
        ("Junk", "\\Junk"),
        ("Archive", "\\Archive"),
    ] {
        line(&format!("  mailbox {name} {{"));
        line(&format!("    special_use = {use_}"));
        line("  }");
    }
    line("}");
    line("service imap-login {");
    line("  inet_listener imap {");
    line(&format!("    address = {HOST}"));
    line(&format!("    port = {}", l.imap_port));
    line("  }");
    line("  inet_listener imaps {");
    match l.imaps_port {
        Some(p) => {
            line(&format!("    address = {HOST}"));
            line(&format!("    port = {p}"));
            line("    ssl = yes");
        }
        None => line("    port = 0"),
    }
    line("  }");
    line("}");
    // No per-IP auth penalty (up to 15 s after failed logins from 127.0.0.1): tests log in
    // with wrong passwords on purpose. Dovecot's documented switch is this listener mode.
    line("service anvil {");
    line("  unix_listener anvil-auth-penalty {");
    line("    mode = 0");
    line("  }");
    line("}");
    line("service stats {");
    line("  unix_listener stats-reader {");
    line("    mode = 0600");
    line("  }");
    line("  unix_listener stats-writer {");
    line("    mode = 0666");
    line("  }");
    line("}");
    for extra in &l.options.extra_config {
        line(extra);
    }
    c
}

impl Dovecot {
    /// Starts a private Dovecot with `options` and waits until it greets on both ports.
    ///
    /// Blocking (it polls the port for up to the start timeout); fine to call from an async
    /// test. Retries with fresh ports when another process took a port in between.
    pub fn start(options: DovecotOptions) -> Result<Dovecot> {
        let binary = options.resolve_binary();
        if !binary.exists() {
            return Err(Error::DovecotMissing { binary });
        }
        let mut names = Vec::new();
        for u in options.users.iter().chain(std::iter::once(&options.master)) {
            u.validate()?;
            if names.contains(&u.name()) {
                return Err(Error::InvalidOption(format!(
                    "user {:?} is listed twice (users and master user must be distinct)",
                    u.name()
                )));
            }
            names.push(u.name());
        }
        let pki = certs::generate(options.untrusted_certificate)?;
        let id = identity();
        let mut last_err = None;
        for _ in 0..START_ATTEMPTS {
            match Self::try_start(&options, &binary, &pki, &id) {
                Ok(d) => return Ok(d),
                Err((retry, e)) => {
                    if !retry {
                        return Err(e);
                    }
                    last_err = Some(e);
                }
            }
        }
        Err(last_err.unwrap_or_else(|| Error::InvalidOption("no start attempt made".into())))
    }

    /// Starts with [`DovecotOptions::default`].
    pub fn start_default() -> Result<Dovecot> {
        Self::start(DovecotOptions::default())
    }

    fn try_start(
        options: &DovecotOptions,
        binary: &Path,
        pki: &certs::TestPki,
        id: &Identity,
    ) -> std::result::Result<Dovecot, (bool, Error)> {
        let fatal = |e: Error| (false, e);
        let dir = tempfile::Builder::new()
            .prefix("o365mt-dovecot-")
            .tempdir()
            .map_err(|e| fatal(Error::io("creating a temporary directory", e)))?;
        let root = dir.path().to_path_buf();
        fs::set_permissions(&root, fs::Permissions::from_mode(0o755))
            .map_err(|e| fatal(Error::io(format!("chmod {}", root.display()), e)))?;
        for sub in ["run", "state", "mail", "tls"] {
            let p = root.join(sub);
            fs::create_dir(&p)
                .map_err(|e| fatal(Error::io(format!("creating {}", p.display()), e)))?;
        }
        let mail = root.join("mail");
        if id.root {
            std::os::unix::fs::chown(&mail, Some(id.uid), Some(id.gid))
                .map_err(|e| fatal(Error::io(format!("chown mail {}", mail.display()), e)))?;
        }
        fs::set_permissions(&mail, fs::Permissions::from_mode(0o770))
            .map_err(|e| fatal(Error::io(format!("chmod {}", mail.display()), e)))?;
        let ca_path = root.join("tls/ca.pem");
        write_file(&ca_path, &pki.ca_pem, 0o644).map_err(fatal)?;
        write_file(&root.join("tls/server.pem"), &pki.server_cert_pem, 0o644).map_err(fatal)?;
        write_file(&root.join("tls/server.key"), &pki.server_key_pem, 0o600).map_err(fatal)?;
        let passwd = |users: &[&User]| {
            users
                .iter()
                .map(|u| format!("{}:{}\n", u.name, u.password))
                .collect::<String>()
        };
        let user_refs: Vec<&User> = options.users.iter().collect();
        write_file(&root.join("users"), &passwd(&user_refs), 0o644).map_err(fatal)?;
        write_file(
            &root.join("master-users"),
            &passwd(&[&options.master]),
            0o644,
        )
        .map_err(fatal)?;

        let n = INSTANCE_COUNTER.fetch_add(1, Ordering::Relaxed);
        let instance_name = format!("o365mt-{}-{}", std::process::id(), n);
        let imap_port = free_port().map_err(fatal)?;
        let imaps_port = if options.starttls {
            let mut p = free_port().map_err(fatal)?;
            while p == imap_port {
                p = free_port().map_err(fatal)?;
            }
            Some(p)
        } else {
            None
        };
        let config = root.join("dovecot.conf");
        let text = render_config(&Layout {
            dir: &root,
            instance_name: &instance_name,
            imap_port,
            imaps_port,
            id,
            options,
        });
        write_file(&config, &text, 0o644).map_err(fatal)?;
        let log = root.join("dovecot.log");
        let stderr_log = root.join("dovecot.stderr");
        let stderr = fs::File::create(&stderr_log)
            .map_err(|e| fatal(Error::io(format!("creating {}", stderr_log.display()), e)))?;
        let stdout = stderr
            .try_clone()
            .map_err(|e| fatal(Error::io("duplicating a file handle", e)))?;
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg(WATCHDOG)
            .arg(binary)
            .arg(&config)
            .stdin(Stdio::piped())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .map_err(|e| fatal(Error::io(format!("starting {}", binary.display()), e)))?;
        let watchdog = child.stdin.take();
        let mut d = Dovecot {
            child: Some(child),
            watchdog,
            dir,
            config,
            log,
            stderr_log,
            instance_name,
            imap_port,
            imaps_port,
            users: options.users.clone(),
            master: options.master.clone(),
            ca_pem: pki.ca_pem.clone(),
            ca_path,
        };
        match d.wait_ready(options.start_timeout) {
            Ok(()) => Ok(d),
            Err(reason) => {
                d.shutdown();
                let log_tail = d.log_tail(30);
                let retry = log_tail.contains("Address already in use");
                Err((
                    retry,
                    Error::DovecotStart {
                        reason,
                        log: d.log.clone(),
                        log_tail,
                        config: d.config.clone(),
                    },
                ))
            }
        }
    }

    fn wait_ready(&mut self, timeout: Duration) -> std::result::Result<(), String> {
        let deadline = Instant::now() + timeout;
        let mut imap_ok = false;
        loop {
            if let Some(child) = self.child.as_mut() {
                match child.try_wait() {
                    Ok(Some(status)) => {
                        self.child = None;
                        return Err(format!("dovecot exited with {status}"));
                    }
                    Ok(None) => {}
                    Err(e) => return Err(format!("cannot watch the dovecot process: {e}")),
                }
            }
            if !imap_ok {
                imap_ok = greets(self.imap_addr(), &self.instance_name).is_ok();
            }
            if imap_ok {
                match self.imaps_port {
                    None => return Ok(()),
                    Some(p) => {
                        if TcpStream::connect_timeout(
                            &SocketAddr::from(([127, 0, 0, 1], p)),
                            Duration::from_millis(500),
                        )
                        .is_ok()
                        {
                            return Ok(());
                        }
                    }
                }
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "no IMAP greeting on {} within {} s",
                    self.imap_addr(),
                    timeout.as_secs()
                ));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// The host every listener binds: `127.0.0.1`.
    pub fn host(&self) -> &'static str {
        HOST
    }

    /// Port of the plain IMAP listener (STARTTLS offered unless [`DovecotOptions::without_tls`]).
    pub fn imap_port(&self) -> u16 {
        self.imap_port
    }

    /// Port of the implicit-TLS (IMAPS) listener; `None` with [`DovecotOptions::without_tls`].
    pub fn imaps_port(&self) -> Option<u16> {
        self.imaps_port
    }

    /// Socket address of the plain IMAP listener.
    pub fn imap_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.imap_port))
    }

    /// Socket address of the implicit-TLS listener, if any.
    pub fn imaps_addr(&self) -> Option<SocketAddr> {
        self.imaps_port
            .map(|p| SocketAddr::from(([127, 0, 0, 1], p)))
    }

    /// The regular users (with passwords).
    pub fn users(&self) -> &[User] {
        &self.users
    }

    /// Looks up a regular user by login name.
    pub fn user(&self, name: &str) -> Option<&User> {
        self.users.iter().find(|u| u.name == name)
    }

    /// The master (admin) user. Log in as `user*master` with the master's password, or
    /// AUTHENTICATE PLAIN with authorization identity `user`.
    pub fn master_user(&self) -> &User {
        &self.master
    }

    /// The login name for a master-user login as `user`: `"user*admin"`.
    pub fn master_login_name(&self, user: &str) -> String {
        format!("{user}*{}", self.master.name)
    }

    /// PEM of the CA that signed the server certificate (unless the certificate is
    /// deliberately untrusted, see [`DovecotOptions::with_untrusted_certificate`]).
    pub fn ca_pem(&self) -> &[u8] {
        self.ca_pem.as_bytes()
    }

    /// Path of the CA PEM file.
    pub fn ca_path(&self) -> &Path {
        &self.ca_path
    }

    /// The instance's temporary directory (removed on drop).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Directory holding every user's home (`<mail_root>/<user>/Maildir`).
    pub fn mail_root(&self) -> PathBuf {
        self.dir.path().join("mail")
    }

    /// The Maildir of one user.
    pub fn maildir(&self, user: &str) -> PathBuf {
        self.mail_root().join(user).join("Maildir")
    }

    /// Dovecot's log file.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The generated `dovecot.conf`.
    pub fn config_path(&self) -> &Path {
        &self.config
    }

    /// Dovecot's `instance_name` (unique per instance; shown in `ps`).
    pub fn instance_name(&self) -> &str {
        &self.instance_name
    }

    /// Process id of the Dovecot master process (from `base_dir/master.pid`), while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref()?;
        fs::read_to_string(self.dir.path().join("run/master.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// The last `lines` lines of Dovecot's log and of its stderr.
    pub fn log_tail(&self, lines: usize) -> String {
        let mut s = tail(&self.log, lines);
        let err = tail(&self.stderr_log, lines);
        if !err.trim().is_empty() {
            s.push_str("\n--- stderr ---\n");
            s.push_str(&err);
        }
        s
    }

    /// Connects to the plain listener (no TLS).
    pub async fn connect_plain(&self) -> Result<Client> {
        Client::connect_plain(self.host(), self.imap_port).await
    }

    /// Connects to the plain listener and upgrades with STARTTLS, trusting the harness CA.
    pub async fn connect_starttls(&self) -> Result<Client> {
        Client::connect_starttls(self.host(), self.imap_port, TlsTrust::Pem(self.ca_pem())).await
    }

    /// Connects to the implicit-TLS listener, trusting the harness CA.
    pub async fn connect_tls(&self) -> Result<Client> {
        let port = self.imaps_port.ok_or_else(|| {
            Error::InvalidOption(
                "this Dovecot was started without TLS; there is no IMAPS listener".into(),
            )
        })?;
        Client::connect_tls(self.host(), port, TlsTrust::Pem(self.ca_pem())).await
    }

    /// Connects (plain) and logs in as `user` with its password from the passwd-file.
    pub async fn login(&self, user: &str) -> Result<Client> {
        let u = self.user(user).ok_or_else(|| {
            Error::InvalidOption(format!(
                "no user {user:?} in this Dovecot; configure it with DovecotOptions::with_user"
            ))
        })?;
        let mut c = self.connect_plain().await?;
        c.login(u.name(), u.password()).await?;
        Ok(c)
    }

    /// Stops Dovecot now (also done on drop) and reports whether it stopped cleanly.
    pub fn stop(mut self) -> Result<()> {
        if self.shutdown() {
            Ok(())
        } else {
            Err(Error::Timeout {
                what: format!("stopping Dovecot {} (it was killed)", self.instance_name),
                seconds: 10,
            })
        }
    }

    /// Closes the watchdog pipe (the supervisor then SIGTERMs Dovecot), waits up to 10 s
    /// for Dovecot and its supervisor to exit, then SIGKILLs. True when clean.
    fn shutdown(&mut self) -> bool {
        let master = self.pid();
        drop(self.watchdog.take());
        let Some(mut child) = self.child.take() else {
            return true;
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match child.try_wait() {
                Ok(Some(_)) => return true,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                _ => {
                    if let Some(pid) = master {
                        let _ = Command::new("kill")
                            .args(["-KILL", &pid.to_string()])
                            .stdout(Stdio::null())
                            .stderr(Stdio::null())
                            .status();
                    }
                    let _ = child.kill();
                    let _ = child.wait();
                    return false;
                }
            }
        }
    }
}

/// Supervisor script run by `/bin/sh -c` with `$0` = dovecot binary, `$1` = config.
///
/// Dovecot runs in the foreground of a background job; a second job reads the pipe on
/// fd 3 (our stdin) and SIGTERMs Dovecot at EOF, which happens when the harness drops the
/// [`Dovecot`] *or when the test process dies for any reason* (abort, SIGKILL), so no
/// server outlives its test. The script exits with Dovecot's status.
const WATCHDOG: &str = r#"exec 3<&0
"$0" -F -c "$1" </dev/null 3<&- &
pid=$!
( cat <&3 >/dev/null; kill -TERM "$pid" 2>/dev/null ) &
exec 3<&-
wait "$pid"
"#;

impl Drop for Dovecot {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Connects and reads the greeting line; Ok when it starts with `* OK` and names `instance`.
fn greets(addr: SocketAddr, instance: &str) -> std::io::Result<()> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut buf = [0u8; 512];
    let mut got = Vec::new();
    while !got.contains(&b'\n') {
        let n = s.read(&mut buf)?;
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    let _ = s.write_all(b"z LOGOUT\r\n");
    let line = String::from_utf8_lossy(&got);
    if line.starts_with("* OK") && line.contains(&format!("{instance} ready.")) {
        Ok(())
    } else {
        Err(std::io::Error::other("no IMAP greeting"))
    }
}
