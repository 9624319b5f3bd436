//! A private PostgreSQL cluster per test, on a free 127.0.0.1 port, stopped on drop.
//!
//! Each [`Postgres`] owns a temporary directory holding its data directory, its unix socket,
//! its log and (with [`PostgresOptions::tls`]) a freshly generated CA and server certificate.
//! It listens on `127.0.0.1` only, on a free port (other ports are tried when one is taken in
//! between), with its unix socket in its own directory.
//!
//! - **Binaries**: the newest `/usr/lib/postgresql/<version>/bin` holding `initdb` and
//!   `postgres` (Debian package `postgresql`), else `initdb` found on `PATH`.
//! - **User**: PostgreSQL refuses to run as root, so when the tests run as root the server
//!   (and `initdb`) run as `nobody`/`nogroup` through `setpriv` (util-linux), and its files
//!   belong to that user. Otherwise it runs as the current user.
//! - **Authentication**: the superuser role is `o365m`, with a random password per instance
//!   ([`Postgres::password`]). `pg_hba`: `local all all trust` (the harness's own
//!   [`Postgres::psql`] over the unix socket), `host all all 127.0.0.1/32 scram-sha-256` (and
//!   the same as `hostssl` with TLS): a client over TCP must give the password.
//! - **Speed**: `fsync=off`, `synchronous_commit=off` and `full_page_writes=off`. These lose
//!   data only when PostgreSQL itself or the machine crashes, which the tests never do (they
//!   kill clients and connections, not the server); the cluster is thrown away at drop.
//!   `initdb` (about 1 s) runs once per machine, user and major version into a template
//!   (`<temp dir>/o365m-pg-template-<major>-<uid>`, built under an exclusive file lock so
//!   concurrent test processes build it once, and renamed into place only when complete);
//!   each start copies it (`cp -a`) into its own directory, on `/dev/shm` when that is a
//!   tmpfs with at least 1 GiB free (a tenth of the time a disk takes), else in the
//!   temporary directory. Directories left by killed test processes are removed later.
//! - **Stopping**: the postmaster runs under a small `sh` supervisor that sends it SIGQUIT
//!   (immediate shutdown) when the [`Postgres`] drops *or when the test process dies for any
//!   reason*, so no server outlives its test. Drop waits for it to exit (SIGKILL after 10 s).
//!
//! ```
//! # fn main() -> o365_migrate_testkit::Result<()> {
//! use o365_migrate_testkit::{Postgres, PostgresOptions};
//!
//! let pg = Postgres::start(PostgresOptions::default())?;
//! let url = pg.create_database("jobs")?;
//! assert_eq!(url, format!("postgres://o365m@127.0.0.1:{}/jobs", pg.port()));
//! pg.psql("jobs", "create table t (x int); insert into t values (1), (2)")?;
//! assert_eq!(pg.psql("jobs", "select x, x * 10 from t order by x")?, "1|10\n2|20");
//! // A client connects to `url` with `pg.password()`.
//! # Ok(()) }
//! ```

use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::certs;
use crate::error::{Error, Result};

/// The superuser role every cluster has (and the name of the database made at start).
pub const SUPERUSER: &str = "o365m";

/// The loopback address the server listens on.
const HOST: &str = "127.0.0.1";

/// Attempts with fresh ports when the chosen port was taken in between.
const START_ATTEMPTS: u32 = 5;

/// How long to wait for the server to accept queries.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Lines of the server log shown by [`Postgres::log_tail`] and in start errors.
const TAIL_LINES: usize = 40;

/// Environment variables that would change where or how `psql` connects.
const PG_ENV: &[&str] = &[
    "PGHOST",
    "PGHOSTADDR",
    "PGPORT",
    "PGUSER",
    "PGPASSWORD",
    "PGPASSFILE",
    "PGDATABASE",
    "PGSERVICE",
    "PGSERVICEFILE",
    "PGSSLMODE",
    "PGSSLROOTCERT",
    "PGOPTIONS",
    "PGTARGETSESSIONATTRS",
    "PSQLRC",
];

/// How to start a [`Postgres`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PostgresOptions {
    /// Turns on TLS (`ssl=on`) with a server certificate for `127.0.0.1` and `localhost`
    /// signed by a fresh CA ([`Postgres::ca_pem_path`]). Plain TCP stays allowed, so the
    /// client chooses with `sslmode`. Default: off.
    pub tls: bool,
}

/// A running private PostgreSQL cluster. Stopped on drop; see the [module docs](self).
pub struct Postgres {
    /// `sh` supervising the postmaster (see `WATCHDOG`).
    child: Option<Child>,
    /// Write end of the watchdog pipe: closing it (drop, or death of this process) makes the
    /// supervisor SIGQUIT the postmaster.
    watchdog: Option<ChildStdin>,
    pid: Option<u32>,
    port: u16,
    password: String,
    psql: PathBuf,
    socket_dir: PathBuf,
    data_dir: PathBuf,
    log: PathBuf,
    ca_path: Option<PathBuf>,
    dir: tempfile::TempDir,
}

impl fmt::Debug for Postgres {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Postgres")
            .field("port", &self.port)
            .field("pid", &self.pid)
            .field("password", &"<redacted>")
            .field("dir", &self.dir.path())
            .field("tls", &self.ca_path.is_some())
            .finish_non_exhaustive()
    }
}

impl Postgres {
    /// Starts a private cluster and waits (up to 20 s) until it accepts queries; creates the
    /// database `o365m`.
    ///
    /// Blocking; fine to call from an async test. Retries with a fresh port when another
    /// process took the port in between. On failure the error holds the tail of the server
    /// log.
    pub fn start(options: PostgresOptions) -> Result<Postgres> {
        let bins = binaries()?;
        let runner = Runner::current()?;
        let template = ensure_template(bins, &runner)?;
        let pki = if options.tls {
            Some(certs::generate(false)?)
        } else {
            None
        };
        let mut last_err = None;
        for _ in 0..START_ATTEMPTS {
            match Self::try_start(bins, &runner, &template, pki.as_ref()) {
                Ok(pg) => return Ok(pg),
                Err((true, e)) => last_err = Some(e),
                Err((false, e)) => return Err(e),
            }
        }
        Err(last_err.unwrap_or_else(|| Error::InvalidOption("no start attempt made".into())))
    }

    /// One attempt; the flag in the error says whether another port may help.
    fn try_start(
        bins: &Binaries,
        runner: &Runner,
        template: &Path,
        pki: Option<&certs::TestPki>,
    ) -> std::result::Result<Postgres, (bool, Error)> {
        let fatal = |e: Error| (false, e);
        let base = instance_base();
        let dir = tempfile::Builder::new()
            .prefix(INSTANCE_PREFIX)
            .tempdir_in(base)
            .map_err(|e| {
                fatal(Error::io(
                    format!("creating a temporary directory in {}", base.display()),
                    e,
                ))
            })?;
        let root = dir.path().to_path_buf();
        write_file(&root.join(OWNER_FILE), &process_identity(), 0o644).map_err(fatal)?;
        // The server user must be able to reach its files inside.
        set_mode(&root, 0o755).map_err(fatal)?;
        let data_dir = root.join("data");
        copy_template(template, &data_dir).map_err(fatal)?;
        let socket_dir = root.join("socket");
        make_dir(&socket_dir, 0o755).map_err(fatal)?;
        runner.chown(&socket_dir).map_err(fatal)?;

        let mut hba = String::from(
            "# Generated by o365-migrate-testkit.\n\
             local all all trust\n\
             host all all 127.0.0.1/32 scram-sha-256\n",
        );
        let port = free_port().map_err(fatal)?;
        let mut settings = vec![
            ("listen_addresses", HOST.to_owned()),
            ("port", port.to_string()),
            ("unix_socket_directories", socket_dir.display().to_string()),
            ("hba_file", root.join("pg_hba.conf").display().to_string()),
            // Test speed; see the module docs for why this is safe here.
            ("fsync", "off".to_owned()),
            ("synchronous_commit", "off".to_owned()),
            ("full_page_writes", "off".to_owned()),
            ("max_connections", "200".to_owned()),
        ];
        let mut ca_path = None;
        if let Some(pki) = pki {
            let tls = root.join("tls");
            make_dir(&tls, 0o755).map_err(fatal)?;
            let ca = tls.join("ca.pem");
            let cert = tls.join("server.crt");
            let key = tls.join("server.key");
            write_file(&ca, &pki.ca_pem, 0o644).map_err(fatal)?;
            write_file(&cert, &pki.server_cert_pem, 0o644).map_err(fatal)?;
            // PostgreSQL refuses a key readable by others than its owner.
            write_file(&key, &pki.server_key_pem, 0o600).map_err(fatal)?;
            runner.chown(&key).map_err(fatal)?;
            settings.push(("ssl", "on".to_owned()));
            settings.push(("ssl_cert_file", cert.display().to_string()));
            settings.push(("ssl_key_file", key.display().to_string()));
            hba.push_str("hostssl all all 127.0.0.1/32 scram-sha-256\n");
            ca_path = Some(ca);
        }
        write_file(&root.join("pg_hba.conf"), &hba, 0o644).map_err(fatal)?;

        let log = root.join("postgres.log");
        let stderr = fs::File::create(&log)
            .map_err(|e| fatal(Error::io(format!("creating {}", log.display()), e)))?;
        let stdout = stderr
            .try_clone()
            .map_err(|e| fatal(Error::io("duplicating a file handle", e)))?;
        let mut server: Vec<OsString> = vec![
            bins.bin.join("postgres").into(),
            "-D".into(),
            data_dir.clone().into(),
        ];
        for (name, value) in &settings {
            server.push("-c".into());
            server.push(format!("{name}={value}").into());
        }
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg(WATCHDOG)
            .arg("o365m-pg-watchdog")
            .args(runner.prefix())
            .args(&server)
            .current_dir(&root)
            .stdin(Stdio::piped())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .map_err(|e| fatal(Error::io("starting /bin/sh to supervise postgres", e)))?;
        let watchdog = child.stdin.take();
        let mut pg = Postgres {
            child: Some(child),
            watchdog,
            pid: None,
            port,
            password: random_hex(16).map_err(fatal)?,
            psql: bins.psql.clone(),
            socket_dir,
            data_dir,
            log,
            ca_path,
            dir,
        };
        match pg.wait_ready().and_then(|()| pg.setup()) {
            Ok(()) => Ok(pg),
            Err(reason) => {
                pg.shutdown();
                let tail = pg.log_tail();
                let retry = tail.contains("Address already in use");
                let hint = format!(
                    "hint: the template data directory is {}; remove it to have it rebuilt",
                    template.display()
                );
                Err((
                    retry,
                    start_error(
                        &format!("{reason} (port {port})"),
                        &format!("last lines of {}", pg.log.display()),
                        &tail,
                        &hint,
                    ),
                ))
            }
        }
    }

    /// Waits until the postmaster reports `ready` in `postmaster.pid`.
    fn wait_ready(&mut self) -> std::result::Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        let pid_file = self.data_dir.join("postmaster.pid");
        loop {
            if let Some(child) = self.child.as_mut() {
                match child.try_wait() {
                    Ok(Some(status)) => {
                        self.child = None;
                        return Err(format!("postgres exited with {status}"));
                    }
                    Ok(None) => {}
                    Err(e) => return Err(format!("cannot watch the postgres process: {e}")),
                }
            }
            // Lines: pid, data dir, start time, port, socket dir, listen address, shared
            // memory key, status ("starting", "ready", ...).
            if let Ok(text) = fs::read_to_string(&pid_file) {
                let lines: Vec<&str> = text.lines().collect();
                if lines.get(7).map(|s| s.trim()) == Some("ready") {
                    self.pid = lines.first().and_then(|p| p.trim().parse().ok());
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "not ready to accept connections within {} s",
                    START_TIMEOUT.as_secs()
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sets the superuser's password and creates the database `o365m` (the first queries).
    fn setup(&self) -> std::result::Result<(), String> {
        let sql = format!(
            "ALTER ROLE {SUPERUSER} PASSWORD '{}';\nCREATE DATABASE {SUPERUSER};\n",
            self.password
        );
        let shown = format!("ALTER ROLE {SUPERUSER} PASSWORD '<redacted>'; CREATE DATABASE ...");
        self.run_psql("postgres", &sql, &shown)
            .map(drop)
            .map_err(|e| e.to_string())
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The superuser role's name: `o365m`.
    pub fn user(&self) -> &'static str {
        SUPERUSER
    }

    /// The superuser's password (random per instance, 32 hex digits), required over TCP.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// The URL of the database `o365m`: `postgres://o365m@127.0.0.1:<port>/o365m`, without
    /// the password (give [`Postgres::password`] separately) nor TLS parameters.
    pub fn url(&self) -> String {
        self.url_for(SUPERUSER)
    }

    /// The URL of database `db` (percent-encoded): `postgres://o365m@127.0.0.1:<port>/<db>`.
    pub fn url_for(&self, db: &str) -> String {
        let mut encoded = String::new();
        for b in db.bytes() {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                encoded.push(char::from(b));
            } else {
                encoded.push_str(&format!("%{b:02X}"));
            }
        }
        format!("postgres://{SUPERUSER}@{HOST}:{}/{encoded}", self.port)
    }

    /// Path of the CA certificate (PEM) that signed the server certificate, with
    /// [`PostgresOptions::tls`]; for `sslmode=verify-full sslrootcert=<path>`.
    pub fn ca_pem_path(&self) -> Option<&Path> {
        self.ca_path.as_deref()
    }

    /// Creates database `name` (letters, digits, `_` and `-`; at most 63 bytes) and returns
    /// its URL (see [`Postgres::url_for`]).
    pub fn create_database(&self, name: &str) -> Result<String> {
        let valid = !name.is_empty()
            && name.len() <= 63
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !valid {
            return Err(Error::InvalidOption(format!(
                "database name {name:?}: use 1 to 63 letters, digits, '_' or '-'"
            )));
        }
        self.psql("postgres", &format!("CREATE DATABASE \"{name}\""))?;
        Ok(self.url_for(name))
    }

    /// Runs `sql` in database `db` as the superuser over the unix socket and returns `psql`'s
    /// standard output (`-At`: unaligned, tuples only, `|` between columns), without the
    /// final newline.
    ///
    /// `sql` is a script: statements separated by `;` run one after another (each in its own
    /// transaction unless the script says `BEGIN`), stopping at the first error, which is
    /// returned with `psql`'s message.
    pub fn psql(&self, db: &str, sql: &str) -> Result<String> {
        let excerpt: String = sql.chars().take(200).collect();
        self.run_psql(db, sql, &excerpt)
    }

    /// [`Postgres::psql`], showing `shown` for the script in an error.
    fn run_psql(&self, db: &str, sql: &str, shown: &str) -> Result<String> {
        let conninfo = format!(
            "host={} port={} user={SUPERUSER} dbname={}",
            conninfo_quote(&self.socket_dir.display().to_string()),
            self.port,
            conninfo_quote(db)
        );
        let mut command = Command::new(&self.psql);
        command
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-f",
                "-",
                "-d",
            ])
            .arg(&conninfo)
            .env("PGCONNECT_TIMEOUT", "10")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for var in PG_ENV {
            command.env_remove(var);
        }
        let mut child = command
            .spawn()
            .map_err(|e| Error::io(format!("running {}", self.psql.display()), e))?;
        let mut stdin = child.stdin.take();
        let script = sql.to_owned();
        // A separate writer so a large script cannot dead-lock against a large result.
        let writer = std::thread::spawn(move || {
            if let Some(pipe) = stdin.as_mut() {
                let _ = pipe.write_all(script.as_bytes());
            }
        });
        let output = child
            .wait_with_output()
            .map_err(|e| Error::io(format!("waiting for {}", self.psql.display()), e))?;
        let _ = writer.join();
        if !output.status.success() {
            return Err(Error::io(
                format!(
                    "psql in database {db:?} failed ({}) running {shown:?}",
                    output.status
                ),
                std::io::Error::other(String::from_utf8_lossy(&output.stderr).trim().to_owned()),
            ));
        }
        let mut out = String::from_utf8_lossy(&output.stdout).into_owned();
        if out.ends_with('\n') {
            out.pop();
        }
        Ok(out)
    }

    /// The last lines of the server log (its stderr).
    pub fn log_tail(&self) -> String {
        tail(&self.log, TAIL_LINES)
    }

    /// Path of the server log.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Process id of the postmaster.
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// The directory holding the unix socket (`.s.PGSQL.<port>`).
    pub fn socket_dir(&self) -> &Path {
        &self.socket_dir
    }

    /// The cluster's data directory (removed on drop).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Closes the watchdog pipe (the supervisor then SIGQUITs the postmaster: immediate
    /// shutdown, which also ends every backend), waits up to 10 s for both to exit, then
    /// SIGKILLs. True when clean.
    fn shutdown(&mut self) -> bool {
        drop(self.watchdog.take());
        let Some(mut child) = self.child.take() else {
            return true;
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match child.try_wait() {
                Ok(Some(_)) => return true,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                _ => {
                    if let Some(pid) = self.pid {
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

impl Drop for Postgres {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Supervisor script run by `/bin/sh -c` with the server's command line as `"$@"`.
///
/// The server runs in the foreground of a background job; a second job reads the pipe on
/// fd 3 (our stdin) and SIGQUITs the server at EOF, which happens when the harness drops the
/// [`Postgres`] *or when the test process dies for any reason*. The postmaster then stops
/// every backend before exiting. The script exits with the server's status.
const WATCHDOG: &str = r#"exec 3<&0
"$@" </dev/null 3<&- &
pid=$!
( cat <&3 >/dev/null; kill -QUIT "$pid" 2>/dev/null ) &
exec 3<&-
wait "$pid"
"#;

/// Name prefix of the instance directories.
const INSTANCE_PREFIX: &str = "o365m-pg-run-";

/// File in an instance directory naming the test process that owns it.
const OWNER_FILE: &str = "owner";

/// Where instance directories go: `/dev/shm` when it is a tmpfs with at least 1 GiB free
/// (copying the template there takes a tenth of the time it takes on a disk), else the
/// temporary directory. Leftovers of test processes that died without dropping their
/// [`Postgres`] are removed the first time.
fn instance_base() -> &'static Path {
    static BASE: OnceLock<PathBuf> = OnceLock::new();
    BASE.get_or_init(|| {
        let shm = Path::new("/dev/shm");
        // "<type> <free blocks for unprivileged users> <block size>"
        let roomy = Command::new("stat")
            .args(["-f", "-c", "%T %a %S"])
            .arg(shm)
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .is_some_and(|o| {
                let text = String::from_utf8_lossy(&o.stdout).into_owned();
                let f: Vec<&str> = text.split_whitespace().collect();
                let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
                f.first() == Some(&"tmpfs") && n(1).saturating_mul(n(2)) >= 1 << 30
            });
        let writable = || {
            tempfile::Builder::new()
                .prefix(INSTANCE_PREFIX)
                .tempdir_in(shm)
                .is_ok()
        };
        let base = if roomy && writable() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        remove_stale_instances(&base);
        base
    })
}

/// `"<pid> <start time>"` of this process, to tell later whether it still runs.
fn process_identity() -> String {
    let pid = std::process::id();
    format!("{pid} {}", start_time(pid).unwrap_or_default())
}

/// Field 22 of `/proc/<pid>/stat`: when the process started (tells a reused pid apart).
fn start_time(pid: u32) -> Option<String> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid ..."; comm may hold spaces, so count after the last ')'.
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(19)
        .map(str::to_owned)
}

/// Removes the instance directories in `base` whose owning test process is gone (it was
/// killed: its watchdog has stopped the server, but nobody removed the directory).
fn remove_stale_instances(base: &Path) {
    let Ok(entries) = fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        if !entry
            .file_name()
            .to_string_lossy()
            .starts_with(INSTANCE_PREFIX)
        {
            continue;
        }
        // No owner file (yet): leave it alone.
        let Ok(owner) = fs::read_to_string(entry.path().join(OWNER_FILE)) else {
            continue;
        };
        let mut fields = owner.split_whitespace();
        let (Some(pid), Some(started)) = (fields.next(), fields.next()) else {
            continue;
        };
        let alive = pid
            .parse::<u32>()
            .ok()
            .and_then(start_time)
            .is_some_and(|now| now == started);
        if !alive {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// The PostgreSQL installation used.
struct Binaries {
    bin: PathBuf,
    psql: PathBuf,
    /// Major version, e.g. `15`.
    major: String,
}

fn binaries() -> Result<&'static Binaries> {
    static FOUND: OnceLock<std::result::Result<Binaries, String>> = OnceLock::new();
    FOUND.get_or_init(find_binaries).as_ref().map_err(|e| {
        Error::io(
            "PostgreSQL is not installed",
            std::io::Error::new(std::io::ErrorKind::NotFound, e.clone()),
        )
    })
}

fn find_binaries() -> std::result::Result<Binaries, String> {
    let complete = |bin: &Path| bin.join("initdb").is_file() && bin.join("postgres").is_file();
    let mut best: Option<(Vec<u32>, String, PathBuf)> = None;
    if let Ok(entries) = fs::read_dir("/usr/lib/postgresql") {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Ok(version) = name
                .split('.')
                .map(str::parse::<u32>)
                .collect::<std::result::Result<Vec<u32>, _>>()
            else {
                continue;
            };
            let bin = entry.path().join("bin");
            if complete(&bin) && best.as_ref().is_none_or(|(v, _, _)| version > *v) {
                best = Some((version, name, bin));
            }
        }
    }
    let (bin, major) = match best {
        Some((_, major, bin)) => (bin, major),
        None => {
            let initdb = std::env::var_os("PATH")
                .iter()
                .flat_map(std::env::split_paths)
                .map(|dir| dir.join("initdb"))
                .find(|p| p.is_file())
                .ok_or_else(|| {
                    "no /usr/lib/postgresql/*/bin/initdb and no initdb on PATH\nhint: install it with `sudo apt-get install postgresql` (Debian/Ubuntu)".to_owned()
                })?;
            let initdb = fs::canonicalize(&initdb).unwrap_or(initdb);
            let bin = initdb.parent().map(Path::to_path_buf).unwrap_or_default();
            if !complete(&bin) {
                return Err(format!("{} has no `postgres` next to it", initdb.display()));
            }
            let out = Command::new(&initdb)
                .arg("--version")
                .output()
                .map_err(|e| format!("running {} --version: {e}", initdb.display()))?;
            // "initdb (PostgreSQL) 16.2"
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let major = text
                .split_whitespace()
                .last()
                .and_then(|v| v.split('.').next())
                .filter(|m| !m.is_empty() && m.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| format!("cannot read the version from {text:?}"))?
                .to_owned();
            (bin, major)
        }
    };
    let psql = if bin.join("psql").is_file() {
        bin.join("psql")
    } else {
        PathBuf::from("psql")
    };
    Ok(Binaries { bin, psql, major })
}

/// Who runs the server: the current user, or `nobody` through `setpriv` when we are root.
pub(crate) struct Runner {
    /// The test process's effective uid (names the template).
    euid: u32,
    /// The server's uid and gid when it differs from ours (we are root).
    switch_to: Option<(u32, u32)>,
}

impl Runner {
    pub(crate) fn current() -> Result<Runner> {
        let status = fs::read_to_string("/proc/self/status")
            .map_err(|e| Error::io("reading /proc/self/status", e))?;
        // "Uid:\treal\teffective\tsaved\tfs"
        let euid = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|rest| rest.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0);
        if euid != 0 {
            return Ok(Runner {
                euid,
                switch_to: None,
            });
        }
        let field = |file: &str, name: &str, index: usize| {
            fs::read_to_string(file).ok().and_then(|text| {
                text.lines().find_map(|l| {
                    let f: Vec<&str> = l.split(':').collect();
                    (f.first() == Some(&name))
                        .then(|| f.get(index).and_then(|v| v.parse::<u32>().ok()))
                        .flatten()
                })
            })
        };
        let uid = field("/etc/passwd", "nobody", 2).unwrap_or(65534);
        let gid = field("/etc/group", "nogroup", 2)
            .or_else(|| field("/etc/passwd", "nobody", 3))
            .unwrap_or(65534);
        Ok(Runner {
            euid,
            switch_to: Some((uid, gid)),
        })
    }

    /// The server's uid.
    fn uid(&self) -> u32 {
        self.switch_to.map_or(self.euid, |(uid, _)| uid)
    }

    /// Arguments to put before a command so it runs as the server user.
    pub(crate) fn prefix(&self) -> Vec<OsString> {
        match self.switch_to {
            None => Vec::new(),
            Some((uid, gid)) => vec![
                "setpriv".into(),
                format!("--reuid={uid}").into(),
                format!("--regid={gid}").into(),
                "--clear-groups".into(),
                "--".into(),
            ],
        }
    }

    /// A command for `program` running as the server user.
    fn command(&self, program: &Path) -> Command {
        let prefix = self.prefix();
        match prefix.split_first() {
            None => Command::new(program),
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(program);
                c
            }
        }
    }

    /// Gives `path` to the server user (when that is not us).
    pub(crate) fn chown(&self, path: &Path) -> Result<()> {
        if let Some((uid, gid)) = self.switch_to {
            std::os::unix::fs::chown(path, Some(uid), Some(gid))
                .map_err(|e| Error::io(format!("chown {}", path.display()), e))?;
        }
        Ok(())
    }
}

/// A complete template: a directory owned by the server user with the files a cluster needs.
/// (A half-built one is never at this path; this also catches one pruned by a /tmp cleaner.)
fn template_ok(path: &Path, runner: &Runner) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.is_dir() && m.uid() == runner.uid())
        && [
            "PG_VERSION",
            "global/pg_control",
            "base/1/PG_VERSION",
            "pg_wal",
        ]
        .iter()
        .all(|f| path.join(f).exists())
}

/// Returns the template data directory, running `initdb` into it first if needed.
fn ensure_template(bins: &Binaries, runner: &Runner) -> Result<PathBuf> {
    let base = std::env::temp_dir();
    let name = format!("o365m-pg-template-{}-{}", bins.major, runner.euid);
    let path = base.join(&name);
    if template_ok(&path, runner) {
        return Ok(path);
    }
    let lock_path = base.join(format!("{name}.lock"));
    let lock = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| Error::io(format!("opening {}", lock_path.display()), e))?;
    lock.lock()
        .map_err(|e| Error::io(format!("locking {}", lock_path.display()), e))?;
    // Another process may have built it while we waited.
    if template_ok(&path, runner) {
        return Ok(path);
    }
    let remove = |p: &Path| -> Result<()> {
        if fs::symlink_metadata(p).is_ok() {
            fs::remove_dir_all(p)
                .or_else(|_| fs::remove_file(p))
                .map_err(|e| Error::io(format!("removing the stale {}", p.display()), e))?;
        }
        Ok(())
    };
    remove(&path)?;
    // Under the lock nobody else is building: a leftover is from a crashed build.
    let building = base.join(format!("{name}.building"));
    remove(&building)?;
    make_dir(&building, 0o700)?;
    runner.chown(&building)?;
    let initdb = bins.bin.join("initdb");
    let output = runner
        .command(&initdb)
        .arg("-D")
        .arg(&building)
        .args([
            "--username",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--no-locale",
            "--no-sync",
            "--no-instructions",
            // Every start copies pg_wal: 1 MB segments instead of 16 MB.
            "--wal-segsize=1",
        ])
        .current_dir(&base)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::io(format!("running {}", initdb.display()), e))?;
    if !output.status.success() {
        let _ = fs::remove_dir_all(&building);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let lines: Vec<&str> = text.lines().collect();
        return Err(start_error(
            &format!("initdb failed ({})", output.status),
            &format!("output of {}", initdb.display()),
            &lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n"),
            "hint: initdb runs as the server user (nobody when the tests run as root)",
        ));
    }
    fs::rename(&building, &path).map_err(|e| {
        Error::io(
            format!("renaming {} to {}", building.display(), path.display()),
            e,
        )
    })?;
    drop(lock);
    Ok(path)
}

/// Copies the template with `cp -a`, which keeps the server user as owner.
fn copy_template(template: &Path, dest: &Path) -> Result<()> {
    let output = Command::new("cp")
        .arg("-a")
        .arg(template)
        .arg(dest)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::io("running cp", e))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(Error::io(
            format!(
                "copying the template {} to {}",
                template.display(),
                dest.display()
            ),
            std::io::Error::other(String::from_utf8_lossy(&output.stderr).trim().to_owned()),
        ))
    }
}

/// A start failure with the end of the server's (or initdb's) output.
fn start_error(reason: &str, what: &str, output: &str, hint: &str) -> Error {
    Error::io(
        "PostgreSQL did not start",
        std::io::Error::other(format!("{reason}\n--- {what} ---\n{output}\n---\n{hint}")),
    )
}

pub(crate) fn free_port() -> Result<u16> {
    let listener = TcpListener::bind((HOST, 0))
        .map_err(|e| Error::io("binding 127.0.0.1:0 to find a free port", e))?;
    Ok(listener
        .local_addr()
        .map_err(|e| Error::io("reading the local address of a probe socket", e))?
        .port())
}

/// `n` random bytes from /dev/urandom, as hex.
fn random_hex(n: usize) -> Result<String> {
    use std::io::Read;
    let mut bytes = vec![0u8; n];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| Error::io("reading /dev/urandom", e))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// A libpq conninfo value in single quotes.
fn conninfo_quote(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

pub(crate) fn make_dir(path: &Path, mode: u32) -> Result<()> {
    fs::create_dir(path).map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
    set_mode(path, mode)
}

pub(crate) fn set_mode(path: &Path, mode: u32) -> Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(|e| Error::io(format!("chmod {}", path.display()), e))
}

pub(crate) fn write_file(path: &Path, contents: &str, mode: u32) -> Result<()> {
    fs::write(path, contents).map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    set_mode(path, mode)
}

/// The last `lines` lines of a text file (lossy UTF-8), or a note when it cannot be read.
pub(crate) fn tail(path: &Path, lines: usize) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Output;

    /// Runs the harness's `psql` over TCP with `conninfo` (a URL or key=value string).
    fn tcp_psql(pg: &Postgres, conninfo: &str, password: Option<&str>, sql: &str) -> Output {
        let mut command = Command::new(&pg.psql);
        command
            .args([
                "-X",
                "-w",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
                "-d",
            ])
            .arg(conninfo)
            .stdin(Stdio::null());
        for var in PG_ENV {
            command.env_remove(var);
        }
        if let Some(password) = password {
            command.env("PGPASSWORD", password);
        }
        command.output().expect("run psql")
    }

    fn stdout(o: &Output) -> String {
        String::from_utf8_lossy(&o.stdout).trim().to_owned()
    }

    fn stderr(o: &Output) -> String {
        String::from_utf8_lossy(&o.stderr).trim().to_owned()
    }

    /// Pids of the processes whose parent is `pid` (the postmaster's backends and workers).
    fn children_of(pid: u32) -> Vec<u32> {
        let mut found = Vec::new();
        for entry in fs::read_dir("/proc").expect("read /proc").flatten() {
            let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            // "pid (comm) state ppid ..."; comm may hold spaces, so split after the last ')'.
            let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            if ppid == Some(pid) {
                found.push(child);
            }
        }
        found
    }

    #[test]
    fn databases_are_independent_tcp_needs_the_password_and_drop_stops_the_server() {
        let pg = Postgres::start(PostgresOptions::default()).expect("start PostgreSQL");
        assert_eq!(pg.ca_pem_path(), None);
        assert_eq!(
            pg.url(),
            format!("postgres://o365m@127.0.0.1:{}/o365m", pg.port())
        );
        assert_eq!(
            pg.psql("o365m", "select current_database()").unwrap(),
            "o365m"
        );

        let alpha = pg.create_database("alpha").expect("create alpha");
        let beta = pg.create_database("beta").expect("create beta");
        assert_eq!(alpha, pg.url_for("alpha"));
        assert!(beta.ends_with(&format!(":{}/beta", pg.port())), "{beta}");
        assert!(pg.create_database("alpha").is_err(), "alpha twice");
        assert!(pg.create_database("bad name").is_err());

        pg.psql(
            "alpha",
            "create table only_in_alpha (x int); insert into only_in_alpha values (42);",
        )
        .expect("create a table in alpha");
        assert_eq!(
            pg.psql("alpha", "select x from only_in_alpha").unwrap(),
            "42"
        );
        assert_eq!(
            pg.psql(
                "beta",
                "select count(*) from pg_tables where tablename = 'only_in_alpha'"
            )
            .unwrap(),
            "0"
        );
        let err = pg
            .psql("beta", "select x from only_in_alpha")
            .expect_err("the table is not in beta")
            .to_string();
        assert!(err.contains("does not exist"), "{err}");

        // Over TCP, with the URL and the password.
        let ok = tcp_psql(
            &pg,
            &alpha,
            Some(pg.password()),
            "select x from only_in_alpha",
        );
        assert!(ok.status.success(), "{}", stderr(&ok));
        assert_eq!(stdout(&ok), "42");
        let ssl = tcp_psql(
            &pg,
            &alpha,
            Some(pg.password()),
            "select ssl from pg_stat_ssl where pid = pg_backend_pid()",
        );
        assert_eq!(stdout(&ssl), "f", "{}", stderr(&ssl));
        // A wrong password, or none, is refused.
        let wrong = tcp_psql(&pg, &alpha, Some("not-the-password"), "select 1");
        assert!(!wrong.status.success());
        assert!(
            stderr(&wrong).contains("password authentication failed for user \"o365m\""),
            "{}",
            stderr(&wrong)
        );
        let none = tcp_psql(&pg, &alpha, None, "select 1");
        assert!(!none.status.success());
        assert!(
            stderr(&none).contains("no password supplied"),
            "{}",
            stderr(&none)
        );

        // Drop stops the postmaster, every backend and the supervisor, and removes the
        // directory.
        let pid = pg.pid().expect("postmaster pid");
        let mut pids = children_of(pid);
        assert!(!pids.is_empty(), "the postmaster has no children?");
        pids.push(pid);
        // The supervisor too: exited and reaped, not a zombie.
        pids.push(pg.child.as_ref().expect("the supervisor").id());
        let dir = pg.dir.path().to_path_buf();
        assert!(Path::new(&format!("/proc/{pid}")).exists());
        drop(pg);
        for p in pids {
            assert!(
                !Path::new(&format!("/proc/{p}")).exists(),
                "process {p} still runs after drop"
            );
        }
        assert!(!dir.exists(), "{} still exists", dir.display());
    }

    #[test]
    fn tls_verifies_against_the_harness_ca() {
        let pg = Postgres::start(PostgresOptions { tls: true }).expect("start PostgreSQL");
        let ca = pg.ca_pem_path().expect("a CA with tls").to_path_buf();
        let key = pg.dir.path().join("tls/server.key");
        let meta = fs::metadata(&key).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o600);
        assert_eq!(meta.uid(), Runner::current().unwrap().uid());

        let conninfo = |root: &Path, host: &str| {
            format!(
                "sslmode=verify-full sslrootcert={} host={host} port={} user=o365m dbname=o365m",
                root.display(),
                pg.port()
            )
        };
        let sql = "select ssl from pg_stat_ssl where pid = pg_backend_pid()";
        for host in ["127.0.0.1", "localhost"] {
            let out = tcp_psql(&pg, &conninfo(&ca, host), Some(pg.password()), sql);
            assert!(out.status.success(), "{host}: {}", stderr(&out));
            assert_eq!(stdout(&out), "t");
        }

        // Another CA is refused. (Both CAs have the same subject name, so OpenSSL checks the
        // signature with the other CA's key and reports "SSL error: EVP lib" here rather
        // than "certificate verify failed".)
        let other = certs::generate(false).unwrap();
        let other_ca = pg.dir.path().join("other-ca.pem");
        fs::write(&other_ca, other.ca_pem).unwrap();
        let out = tcp_psql(&pg, &conninfo(&other_ca, HOST), Some(pg.password()), sql);
        assert!(!out.status.success(), "{}", stdout(&out));
        assert!(stderr(&out).contains("SSL error"), "{}", stderr(&out));
    }
}
