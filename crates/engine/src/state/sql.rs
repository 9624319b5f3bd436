//! The SQL state store: one schema and one set of queries, on SQLite (the embedded default,
//! one file) or PostgreSQL (shared by many workers), through sqlx's `Any` driver.
//!
//! The queries are written once with `?` placeholders; [`SqlStore::q`] renumbers them `$1, $2…`
//! for PostgreSQL. Only a handful of things differ by backend, each in one place here: how the
//! store is opened, how a write transaction begins, the run lock (a file lock beside the SQLite
//! file, a session advisory lock on PostgreSQL), and case-insensitive `LIKE`.
//!
//! SQLite durability: WAL journal with `synchronous = FULL`. WAL alone (even with NORMAL) makes
//! every committed transaction survive a `kill -9` of this process, because a commit has reached
//! the OS before the call returns. NORMAL could still lose the last commits on power loss or an
//! OS crash, and a lost "migrated" record means the item is written again on resume — a
//! duplicate unless target-side dedupe catches it. FULL fsyncs the WAL at every commit; writes
//! are batched so the cost is one fsync per batch (see the bench), which is cheap against
//! network I/O. PostgreSQL commits are durable when the server says so (its own
//! `synchronous_commit`, on by default).

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, ConnectOptions, Connection, Executor, Row};

use super::{
    Batch, BoxFuture, Dialect, DoneUids, EventRecord, FolderId, FolderRecord, FolderState,
    ItemRecord, ItemStatus, MailboxId, MailboxRecord, PlannedItem, RunId, RunKind, RunLock,
    RunOutcome, RunSummary, SCHEMA_VERSION, StateStore, StatusCounts, StoredEvent, StoredRecord,
    SyncChange, SyncItem, migrations, now_ms,
};
use super::{FolderCounts, ItemPage, ItemQuery, ThroughputPoint};
use super::{Lease, LeaseEnd, LeaseSpan, WorkCounts, WorkRow, WorkScope, WorkState, WorkerRecord};
use crate::error::{Error, Result};

mod pim;

/// The state store on SQLite or PostgreSQL. Cheap to clone (a connection pool).
#[derive(Clone)]
pub struct SqlStore {
    pub(super) pool: AnyPool,
    /// How the store is named in errors: the SQLite path, or the PostgreSQL URL without its
    /// password.
    path: String,
    backend: Backend,
    write_lock: std::sync::Arc<tokio::sync::Mutex<()>>,
}

#[derive(Clone)]
enum Backend {
    Sqlite { file: PathBuf },
    Postgres { url: String },
}

impl std::fmt::Debug for SqlStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlStore")
            .field("dialect", &self.dialect())
            .field("path", &self.path)
            .finish()
    }
}

/// The advisory-lock key of the PostgreSQL run lock (`o365m` + `run`).
const PG_RUN_LOCK: i64 = 0x6f33_3635_6d72_756e;

/// PostgreSQL texts of the queries, by their SQLite text: rendered once, kept for the process
/// (the set of query shapes is finite).
fn pg_text(sql: &str) -> &'static str {
    static CACHE: OnceLock<Mutex<HashMap<String, &'static str>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut map = cache.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(t) = map.get(sql) {
        return t;
    }
    let text: &'static str = Box::leak(renumber_placeholders(sql).into_boxed_str());
    map.insert(sql.to_owned(), text);
    text
}

/// `?` placeholders outside quoted text become `$1, $2, …`.
pub(super) fn renumber_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut n = 0;
    let mut quoted = false;
    for c in sql.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                out.push(c);
            }
            '?' if !quoted => {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
            }
            _ => out.push(c),
        }
    }
    out
}

fn u64_to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn i64_to_u32(v: i64) -> u32 {
    u32::try_from(v).unwrap_or(0)
}

fn i64_to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

const ITEM_COLUMNS: &str = "i.id, f.mailbox_id, i.folder_id, f.source_path, i.uidvalidity, i.uid, \
     i.status, i.reason, i.target_id, i.attempts, i.size, i.internal_date, i.fingerprint, \
     i.message_id, i.subject, i.sender, i.updated_at";

impl SqlStore {
    /// Opens (creating if missing, owner-only `0600`) the SQLite store at `path` and applies
    /// pending schema migrations.
    ///
    /// Several processes may open the same new file at once (a `run` and a `status` started
    /// together): SQLite can answer "database is locked" at once, without waiting out its busy
    /// timeout, while another connection switches a new file to WAL or migrates it. Such an open
    /// is retried with growing pauses for up to 30 seconds; any other failure is final.
    pub async fn open(path: impl AsRef<Path>) -> Result<SqlStore> {
        let path = path.as_ref();
        retry_busy(|| Self::open_once(path)).await
    }

    async fn open_once(path: &Path) -> std::result::Result<SqlStore, Attempt> {
        let shown = path.display().to_string();
        let io_err = |operation: &'static str, e: std::io::Error| Error::State {
            path: shown.clone(),
            operation,
            message: e.to_string(),
            hint: Some("check that the directory exists and is writable by this user".into()),
        };
        create_owner_only(path).map_err(|e| Attempt::Fatal(io_err("create", e)))?;
        let file = std::path::absolute(path).map_err(|e| Attempt::Fatal(io_err("open", e)))?;
        let url = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&file)
            .create_if_missing(true)
            .to_url_lossy();
        let opts =
            AnyConnectOptions::from_url(&url).map_err(|e| Attempt::of(&shown, "open", &e))?;
        // busy_timeout first: switching to WAL may wait for another process.
        const PRAGMAS: &str = "PRAGMA busy_timeout = 30000; PRAGMA journal_mode = WAL; \
                               PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;";
        // One connection by hand first: a file that is not a database fails here with
        // SQLite's own words (the pool would retry it until its timeout).
        first_connection(&opts, Some(PRAGMAS))
            .await
            .map_err(|e| Attempt::of(&shown, "open", &e))?;
        let pool = AnyPoolOptions::new()
            .max_connections(4)
            .after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute(PRAGMAS).await?;
                    Ok(())
                })
            })
            .connect_with(opts)
            .await
            .map_err(|e| Attempt::of(&shown, "open", &e))?;
        let store = SqlStore {
            pool,
            path: shown,
            backend: Backend::Sqlite { file },
            write_lock: Default::default(),
        };
        if let Err(e) = store.migrate().await {
            store.pool.close().await;
            return Err(e);
        }
        Ok(store)
    }

    /// Connects to a PostgreSQL state store at `url` (`postgres://user@host:port/database`,
    /// with `sslmode` and `sslrootcert` as libpq spells them), signing in with `password`.
    ///
    /// TLS is verified (`sslmode=verify-full`) unless the URL names another `sslmode`. A
    /// password inside the URL is refused: pass it here, from an `env:`/`file:` reference.
    /// With [`Schema::Migrate`] pending migrations are applied (serialised by an advisory lock,
    /// so many workers starting at once migrate once); with [`Schema::RequireCurrent`] an older
    /// schema is an error that names `o365-migrate state migrate`.
    pub async fn connect_postgres(
        url: &str,
        password: Option<&str>,
        schema: Schema,
    ) -> Result<SqlStore> {
        let (opts, shown) = postgres_options(url, password)?;
        first_connection(&opts, None)
            .await
            .map_err(|e| db_err(&shown, "connect", &e))?;
        let pool = AnyPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(opts)
            .await
            .map_err(|e| db_err(&shown, "connect", &e))?;
        let store = SqlStore {
            pool,
            path: shown.clone(),
            backend: Backend::Postgres { url: shown },
            write_lock: Default::default(),
        };
        let result = match schema {
            Schema::Migrate => store.migrate().await.map_err(Attempt::into_error),
            Schema::RequireCurrent => store.require_current().await,
        };
        if let Err(e) = result {
            store.pool.close().await;
            return Err(e);
        }
        Ok(store)
    }

    /// Opens the store a job names: the PostgreSQL database of `[state] url` (password from
    /// `[state] password`), else the SQLite file `[state] path` (relative to the job file).
    pub async fn for_job(job: &crate::config::Job, schema: Schema) -> Result<SqlStore> {
        match &job.state.url {
            Some(url) => {
                let password = match &job.state.password {
                    Some(r) => Some(r.resolve()?),
                    None => None,
                };
                SqlStore::connect_postgres(url, password.as_ref().map(|p| p.expose()), schema).await
            }
            None => SqlStore::open(job.resolve_path(&job.state.path)).await,
        }
    }

    /// The SQL dialect of this store.
    pub fn dialect(&self) -> Dialect {
        match self.backend {
            Backend::Sqlite { .. } => Dialect::Sqlite,
            Backend::Postgres { .. } => Dialect::Postgres,
        }
    }

    /// The query text for this store's backend: `sql` as written (SQLite) or with `$n`
    /// placeholders (PostgreSQL).
    fn q<'s>(&self, sql: &'s str) -> &'s str {
        match self.backend {
            Backend::Sqlite { .. } => sql,
            Backend::Postgres { .. } => pg_text(sql),
        }
    }

    /// `LIKE` that ignores ASCII case on both backends (SQLite's `LIKE` already does).
    fn like(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite { .. } => "LIKE",
            Backend::Postgres { .. } => "ILIKE",
        }
    }

    /// The schema version of the open store.
    pub async fn schema_version(&self) -> Result<u32> {
        let v: Option<i64> = sqlx::query_scalar(self.q("SELECT MAX(version) FROM schema_version"))
            .fetch_one(&self.pool)
            .await
            .map_err(|e| self.err("read schema version", &e))?;
        Ok(v.map(i64_to_u32).unwrap_or(0))
    }

    /// Checks the store's integrity: SQLite's `PRAGMA integrity_check`; PostgreSQL keeps its
    /// own, so there the check is that the server answers. `Ok(true)` when sound.
    pub async fn integrity_check(&self) -> Result<bool> {
        let sql = match self.backend {
            Backend::Sqlite { .. } => "PRAGMA integrity_check",
            Backend::Postgres { .. } => "SELECT 'ok'",
        };
        let r: String = sqlx::query_scalar(sql)
            .fetch_one(&self.pool)
            .await
            .map_err(|e| self.err("integrity check", &e))?;
        Ok(r == "ok")
    }

    /// Closes the pool (on SQLite this checkpoints the WAL).
    pub async fn close(self) {
        self.pool.close().await;
    }

    fn err(&self, operation: &'static str, e: &sqlx::Error) -> Error {
        db_err(&self.path, operation, e)
    }

    /// Takes the single-writer lock and opens a transaction. Hold the guard until the
    /// transaction is committed: writes never interleave, so a batch is all or nothing.
    ///
    /// On SQLite `BEGIN IMMEDIATE` takes the file's write lock at once, waiting out the busy
    /// timeout when another process writes (a `pause` from the CLI while a run records a
    /// batch). A deferred transaction that read first could instead fail at once with
    /// "database is locked" when it tries to write over a snapshot another process has since
    /// changed. PostgreSQL locks rows as they are written.
    async fn write_tx(
        &self,
        operation: &'static str,
    ) -> Result<(
        tokio::sync::MutexGuard<'_, ()>,
        sqlx::Transaction<'static, sqlx::Any>,
    )> {
        let guard = self.write_lock.lock().await;
        let begin = match self.backend {
            Backend::Sqlite { .. } => "BEGIN IMMEDIATE",
            Backend::Postgres { .. } => "BEGIN",
        };
        let tx = self
            .pool
            .begin_with(begin)
            .await
            .map_err(|e| self.err(operation, &e))?;
        Ok((guard, tx))
    }

    async fn require_current(&self) -> Result<()> {
        let exists: Option<String> =
            sqlx::query_scalar("SELECT CAST(to_regclass('schema_version') AS TEXT)")
                .fetch_one(&self.pool)
                .await
                .map_err(|e| self.err("read schema version", &e))?;
        let current = if exists.is_some() {
            self.schema_version().await?
        } else {
            0
        };
        if current == SCHEMA_VERSION {
            return Ok(());
        }
        let (message, hint) = if current > SCHEMA_VERSION {
            (
                format!(
                    "schema version {current} is newer than this build knows ({SCHEMA_VERSION})"
                ),
                "upgrade o365-migrate on this machine; every worker must run the same version",
            )
        } else {
            (
                format!("schema version {current}; this build needs {SCHEMA_VERSION}"),
                "run `o365-migrate state migrate` once (with the same job file), then start again",
            )
        };
        Err(Error::State {
            path: self.path.clone(),
            operation: "open",
            message,
            hint: Some(hint.into()),
        })
    }

    async fn migrate(&self) -> std::result::Result<(), Attempt> {
        let _w = self.write_lock.lock().await;
        let fail =
            |operation: &'static str| move |e: sqlx::Error| Attempt::of(&self.path, operation, &e);
        let mut tx = match self.backend {
            Backend::Sqlite { .. } => {
                // IMMEDIATE takes the database's write lock at once: another process opening
                // the same new state at the same moment waits here (busy timeout), then finds
                // the versions applied and skips them.
                self.pool
                    .begin_with("BEGIN IMMEDIATE")
                    .await
                    .map_err(fail("migrate"))?
            }
            Backend::Postgres { .. } => {
                // Workers starting together wait for each other here; the lock ends with the
                // transaction.
                let mut tx = self.pool.begin().await.map_err(fail("migrate"))?;
                sqlx::query(self.q("SELECT pg_advisory_xact_lock(?)"))
                    .bind(PG_RUN_LOCK - 1)
                    .execute(&mut *tx)
                    .await
                    .map_err(fail("migrate"))?;
                tx
            }
        };
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL, applied_at BIGINT NOT NULL)",
        )
        .execute(&mut *tx)
        .await
        .map_err(fail("create schema_version"))?;
        let current: Option<i64> =
            sqlx::query_scalar(self.q("SELECT MAX(version) FROM schema_version"))
                .fetch_one(&mut *tx)
                .await
                .map_err(fail("read schema version"))?;
        let current = current.map(i64_to_u32).unwrap_or(0);
        if current > SCHEMA_VERSION {
            return Err(Attempt::Fatal(Error::State {
                path: self.path.clone(),
                operation: "open",
                message: format!(
                    "schema version {current} is newer than this build knows ({SCHEMA_VERSION})"
                ),
                hint: Some("upgrade o365-migrate; do not use an older binary on this state".into()),
            }));
        }
        for (version, sql) in migrations(self.dialect()) {
            if version <= current {
                continue;
            }
            sqlx::raw_sql(&sql)
                .execute(&mut *tx)
                .await
                .map_err(fail("migrate"))?;
            sqlx::query(self.q("INSERT INTO schema_version (version, applied_at) VALUES (?, ?)"))
                .bind(i64::from(version))
                .bind(now_ms())
                .execute(&mut *tx)
                .await
                .map_err(fail("migrate"))?;
        }
        tx.commit().await.map_err(fail("migrate"))?;
        Ok(())
    }

    async fn insert_events(
        &self,
        conn: &mut sqlx::AnyConnection,
        run: RunId,
        now: i64,
        events: &[EventRecord],
        operation: &'static str,
    ) -> Result<()> {
        for e in events {
            sqlx::query(self.q(
                "INSERT INTO events (run_id, at, mailbox_id, kind, detail) VALUES (?, ?, ?, ?, ?)",
            ))
            .bind(run.0)
            .bind(now)
            .bind(e.mailbox.map(|m| m.0))
            .bind(&e.kind)
            .bind(&e.detail)
            .execute(&mut *conn)
            .await
            .map_err(|e| self.err(operation, &e))?;
        }
        Ok(())
    }

    async fn update_watermark(&self, conn: &mut sqlx::AnyConnection, folder: i64) -> Result<()> {
        sqlx::query(self.q("UPDATE folders SET highest_uid_done = COALESCE(
                (SELECT MIN(i.uid) - 1 FROM items i
                  WHERE i.folder_id = folders.id AND i.uidvalidity = folders.uidvalidity
                    AND i.status = 'planned'),
                (SELECT MAX(i.uid) FROM items i
                  WHERE i.folder_id = folders.id AND i.uidvalidity = folders.uidvalidity),
                0)
             WHERE id = ?"))
        .bind(folder)
        .execute(&mut *conn)
        .await
        .map_err(|e| self.err("update watermark", &e))?;
        Ok(())
    }

    async fn item_query(&self, where_sql: &str, binds: Vec<Bind<'_>>) -> Result<Vec<ItemRecord>> {
        let sql = format!(
            "SELECT {ITEM_COLUMNS} FROM items i JOIN folders f ON f.id = i.folder_id WHERE {where_sql}"
        );
        let mut q = sqlx::query(self.q(&sql));
        for b in binds {
            q = match b {
                Bind::I(v) => q.bind(v),
                Bind::S(v) => q.bind(v),
            };
        }
        let rows = q
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.err("read items", &e))?;
        rows.iter().map(|r| self.item_from_row(r)).collect()
    }

    fn item_from_row(&self, r: &AnyRow) -> Result<ItemRecord> {
        let g = |e: sqlx::Error| self.err("decode item", &e);
        let status: String = r.try_get("status").map_err(g)?;
        Ok(ItemRecord {
            id: r.try_get("id").map_err(g)?,
            mailbox: MailboxId(r.try_get("mailbox_id").map_err(g)?),
            folder: FolderId(r.try_get("folder_id").map_err(g)?),
            folder_path: r.try_get("source_path").map_err(g)?,
            uidvalidity: i64_to_u32(r.try_get("uidvalidity").map_err(g)?),
            uid: i64_to_u32(r.try_get("uid").map_err(g)?),
            status: ItemStatus::parse(&status).ok_or_else(|| Error::State {
                path: self.path.clone(),
                operation: "decode item",
                message: format!("unknown status `{status}`"),
                hint: Some("the state file was changed by something else".into()),
            })?,
            reason: r.try_get("reason").map_err(g)?,
            target_id: r.try_get("target_id").map_err(g)?,
            attempts: i64_to_u32(r.try_get("attempts").map_err(g)?),
            size: r
                .try_get::<Option<i64>, _>("size")
                .map_err(g)?
                .map(i64_to_u64),
            internal_date: r.try_get("internal_date").map_err(g)?,
            fingerprint: r.try_get("fingerprint").map_err(g)?,
            message_id: r.try_get("message_id").map_err(g)?,
            subject: r.try_get("subject").map_err(g)?,
            sender: r.try_get("sender").map_err(g)?,
            updated_at: r.try_get("updated_at").map_err(g)?,
        })
    }

    fn run_from_row(&self, r: &AnyRow) -> Result<RunSummary> {
        let g = |e: sqlx::Error| self.err("decode run", &e);
        let kind: String = r.try_get("kind").map_err(g)?;
        let outcome: Option<String> = r.try_get("outcome").map_err(g)?;
        Ok(RunSummary {
            id: RunId(r.try_get("id").map_err(g)?),
            kind: RunKind::parse(&kind),
            started_at: r.try_get("started_at").map_err(g)?,
            finished_at: r.try_get("finished_at").map_err(g)?,
            outcome: outcome.as_deref().and_then(RunOutcome::parse),
            counts: StatusCounts {
                planned: 0,
                migrated: i64_to_u64(r.try_get("migrated").map_err(g)?),
                skipped: i64_to_u64(r.try_get("skipped").map_err(g)?),
                failed: i64_to_u64(r.try_get("failed").map_err(g)?),
                migrated_bytes: i64_to_u64(r.try_get("migrated_bytes").map_err(g)?),
            },
        })
    }
}

/// An `events` row: id, run, at, mailbox, kind, detail.
type EventRow = (i64, Option<i64>, i64, Option<i64>, String, String);

/// Adds one `GROUP BY status` row to `c`.
fn add_count(c: &mut StatusCounts, status: &str, n: i64, bytes: i64) {
    let n = i64_to_u64(n);
    match ItemStatus::parse(status) {
        Some(ItemStatus::Planned) => c.planned += n,
        Some(ItemStatus::Migrated) => {
            c.migrated += n;
            c.migrated_bytes += i64_to_u64(bytes);
        }
        Some(ItemStatus::Skipped) => c.skipped += n,
        Some(ItemStatus::Failed) => c.failed += n,
        None => {}
    }
}

/// `%text%` for LIKE, with `%`, `_` and `\` in `text` matched literally (ESCAPE '\').
fn like_pattern(text: &str) -> String {
    let mut p = String::with_capacity(text.len() + 2);
    p.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

enum Bind<'a> {
    I(i64),
    S(&'a str),
}

/// How long [`SqlStore::open`] keeps retrying an open that found the file busy.
const OPEN_PATIENCE: Duration = Duration::from_secs(30);

/// Whether [`SqlStore::connect_postgres`] may change the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schema {
    /// Apply pending migrations (`o365-migrate state migrate`, tests, a single machine).
    Migrate,
    /// Use the schema as it is; an older one is an error naming `o365-migrate state migrate`
    /// (workers of a fleet, so that one upgraded binary does not change the schema under the
    /// others).
    RequireCurrent,
}

/// Runs `attempt` until it succeeds, fails for good, or stays busy for [`OPEN_PATIENCE`].
async fn retry_busy<F, Fut>(mut attempt: F) -> Result<SqlStore>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<SqlStore, Attempt>>,
{
    let deadline = std::time::Instant::now() + OPEN_PATIENCE;
    let mut pause = Duration::from_millis(10);
    loop {
        match attempt().await {
            Ok(store) => return Ok(store),
            Err(Attempt::Busy(_)) if std::time::Instant::now() + pause < deadline => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(500));
            }
            Err(e) => return Err(e.into_error()),
        }
    }
}

/// Every byte but ASCII letters and digits as `%XX`.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Opens and closes one connection (running `setup` on it), so that a failure to connect is
/// reported as the server or SQLite put it.
async fn first_connection(
    opts: &AnyConnectOptions,
    setup: Option<&str>,
) -> std::result::Result<(), sqlx::Error> {
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect_with(opts).await?;
    if let Some(sql) = setup {
        conn.execute(sql).await?;
    }
    conn.close().await
}

/// The connect options for a PostgreSQL URL and the URL as shown in errors (no password).
fn postgres_options(url: &str, password: Option<&str>) -> Result<(AnyConnectOptions, String)> {
    use sqlx::postgres::{PgConnectOptions, PgSslMode};
    let bad = |message: String, hint: &str| Error::State {
        path: "[state] url".into(),
        operation: "connect",
        message,
        hint: Some(hint.into()),
    };
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(bad(
            "the URL does not start with postgres://".into(),
            "write it as postgres://user@host:5432/database",
        ));
    }
    let authority = url
        .split_once("://")
        .map(|(_, rest)| rest.split(['/', '?']).next().unwrap_or(""))
        .unwrap_or("");
    if authority
        .rsplit_once('@')
        .is_some_and(|(userinfo, _)| userinfo.contains(':'))
    {
        return Err(bad(
            "the URL carries a password".into(),
            "remove it from the URL and give [state] password = \"env:NAME\" or \"file:PATH\"",
        ));
    }
    // Parsed here only to check it and to name it; the driver parses the URL again.
    let o: PgConnectOptions = url
        .parse()
        .map_err(|e: sqlx::Error| bad(e.to_string(), "check the URL's syntax"))?;
    let shown = format!(
        "postgres://{}@{}:{}/{}",
        o.get_username(),
        o.get_host(),
        o.get_port(),
        o.get_database().unwrap_or("")
    );
    // The URL is rebuilt by hand: `PgConnectOptions::to_url_lossy` writes `sslrootcert` in a
    // form it cannot read back (sqlx 0.8.6).
    let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let user = authority
        .rsplit_once('@')
        .map_or_else(|| percent_encode(o.get_username()), |(u, _)| u.to_owned());
    let mut full = match password {
        Some(p) => format!("{scheme}://{user}:{}@{host}{tail}", percent_encode(p)),
        None => format!("{scheme}://{user}@{host}{tail}"),
    };
    let named_mode = !matches!(o.get_ssl_mode(), PgSslMode::Prefer)
        || url
            .split_once('?')
            .is_some_and(|(_, q)| q.split('&').any(|kv| kv.starts_with("sslmode=")));
    if !named_mode {
        full.push(if full.contains('?') { '&' } else { '?' });
        full.push_str("sslmode=verify-full");
    }
    let any: AnyConnectOptions = full
        .parse()
        .map_err(|e: sqlx::Error| bad(e.to_string(), "check the URL's syntax"))?;
    Ok((any, shown))
}

/// One failed attempt to open: worth retrying (the file was busy) or final.
enum Attempt {
    Busy(Error),
    Fatal(Error),
}

impl Attempt {
    fn into_error(self) -> Error {
        match self {
            Attempt::Busy(e) | Attempt::Fatal(e) => e,
        }
    }

    fn of(path: &str, operation: &'static str, e: &sqlx::Error) -> Attempt {
        let err = db_err(path, operation, e);
        if is_busy(e) {
            Attempt::Busy(err)
        } else {
            Attempt::Fatal(err)
        }
    }
}

/// SQLITE_BUSY (5) or SQLITE_LOCKED (6), with any extended code (`BUSY_SNAPSHOT` is 517).
fn is_busy(e: &sqlx::Error) -> bool {
    let sqlx::Error::Database(d) = e else {
        return false;
    };
    d.code()
        .and_then(|c| c.parse::<i64>().ok())
        .is_some_and(|c| matches!(c & 0xff, 5 | 6))
}

fn db_err(path: &str, operation: &'static str, e: &sqlx::Error) -> Error {
    let message = e.to_string();
    let lower = message.to_ascii_lowercase();
    let hint = if lower.contains("locked") || lower.contains("busy") {
        Some("another o365-migrate process is using this state file; wait for it or stop it".into())
    } else if lower.contains("not a database") || lower.contains("malformed") {
        Some("the file is not an o365-migrate state database or is damaged; restore it from a backup or point [state] path elsewhere".into())
    } else if lower.contains("unable to open") || lower.contains("readonly") {
        Some("check the path in [state] and its permissions".into())
    } else {
        None
    };
    Error::State {
        path: path.to_owned(),
        operation,
        message,
        hint,
    }
}

/// Creates the file owner-only if missing and tightens an existing file to `0600`.
fn create_owner_only(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        // SQLite gives -wal / -shm the main file's mode; tighten leftovers from older builds.
        for suffix in ["-wal", "-shm"] {
            let mut p: PathBuf = path.to_owned();
            let mut name = p.file_name().map(|n| n.to_owned()).unwrap_or_default();
            name.push(suffix);
            p.set_file_name(name);
            if p.exists() {
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600))?;
            }
        }
    }
    #[cfg(not(unix))]
    {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
    }
    Ok(())
}

impl SqlStore {
    /// The run lock on PostgreSQL: a session advisory lock (shared for workers) on a
    /// connection of its own, taken out of the pool. It lasts as long as the guard, and the
    /// server drops it when this process dies and its connection closes.
    async fn pg_lock(&self, url: &str, shared: bool) -> Result<RunLock> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(|e| self.err("lock", &e))?
            .detach();
        let sql = if shared {
            "SELECT pg_try_advisory_lock_shared(?)"
        } else {
            "SELECT pg_try_advisory_lock(?)"
        };
        let got: bool = sqlx::query_scalar(self.q(sql))
            .bind(PG_RUN_LOCK)
            .fetch_one(&mut conn)
            .await
            .map_err(|e| self.err("lock", &e))?;
        if !got {
            let _ = conn.close().await;
            return Err(Error::State {
                path: self.path.clone(),
                operation: "lock",
                message: format!(
                    "another o365-migrate {} is working on it (advisory lock {PG_RUN_LOCK} on {url})",
                    if shared {
                        "run, rescan, sync or provision"
                    } else {
                        "run, rescan, provision or worker"
                    }
                ),
                hint: Some("wait for it to finish, or stop it with Ctrl-C / SIGTERM".into()),
            });
        }
        Ok(RunLock::new(
            Mutex::new(conn),
            format!(
                "{} advisory lock on {url}",
                if shared { "shared" } else { "exclusive" }
            ),
        ))
    }

    fn lease_from(&self, r: &AnyRow) -> Result<LeaseSpan> {
        let g = |e: sqlx::Error| self.err("read leases", &e);
        Ok(LeaseSpan {
            mailbox: MailboxId(r.try_get("mailbox_id").map_err(g)?),
            worker: r.try_get("worker").map_err(g)?,
            generation: r.try_get("generation").map_err(g)?,
            acquired_at: r.try_get("acquired_at").map_err(g)?,
            ended_at: r.try_get("ended_at").map_err(g)?,
            ended: r.try_get("ended").map_err(g)?,
        })
    }

    async fn clock_in(&self, conn: &mut sqlx::AnyConnection) -> Result<i64> {
        match self.backend {
            Backend::Sqlite { .. } => Ok(now_ms()),
            Backend::Postgres { .. } => sqlx::query_scalar(
                "SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
            )
            .fetch_one(conn)
            .await
            .map_err(|e| self.err("read the clock", &e)),
        }
    }
}

impl StateStore for SqlStore {
    fn upsert_pim_collection<'a>(
        &'a self,
        mailbox: MailboxId,
        collection: &'a super::PimCollectionRow,
    ) -> BoxFuture<'a, Result<super::PimCollectionId>> {
        Box::pin(self.pim_upsert_collection(mailbox, collection))
    }

    fn pim_collections(
        &self,
        mailbox: MailboxId,
    ) -> BoxFuture<'_, Result<Vec<super::PimCollectionRow>>> {
        Box::pin(self.pim_collections_of(mailbox))
    }

    fn set_pim_sync_token<'a>(
        &'a self,
        collection: super::PimCollectionId,
        token: Option<&'a str>,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.pim_set_sync_token(collection, token))
    }

    fn pim_items(
        &self,
        collection: super::PimCollectionId,
    ) -> BoxFuture<'_, Result<Vec<super::PimItemRow>>> {
        Box::pin(self.pim_items_of(collection))
    }

    fn record_pim_item<'a>(
        &'a self,
        run: RunId,
        collection: super::PimCollectionId,
        item: &'a super::PimItemRow,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.pim_record_item(run, collection, item))
    }

    fn pim_counts(
        &self,
        mailbox: Option<MailboxId>,
    ) -> BoxFuture<'_, Result<Vec<super::PimCollectionCounts>>> {
        Box::pin(self.pim_counts_of(mailbox))
    }

    fn lock_runs(&self) -> BoxFuture<'_, Result<RunLock>> {
        Box::pin(async move {
            match &self.backend {
                Backend::Sqlite { file } => super::lock::lock_file(file),
                Backend::Postgres { url } => self.pg_lock(url, false).await,
            }
        })
    }

    fn lock_workers(&self) -> BoxFuture<'_, Result<RunLock>> {
        Box::pin(async move {
            match &self.backend {
                Backend::Sqlite { file } => super::lock::lock_file_shared(file),
                Backend::Postgres { url } => self.pg_lock(url, true).await,
            }
        })
    }

    fn begin_run(&self, kind: RunKind) -> BoxFuture<'_, Result<RunId>> {
        Box::pin(async move {
            let _w = self.write_lock.lock().await;
            let id: i64 = sqlx::query_scalar(
                self.q("INSERT INTO runs (kind, started_at) VALUES (?, ?) RETURNING id"),
            )
            .bind(kind.as_str())
            .bind(now_ms())
            .fetch_one(&self.pool)
            .await
            .map_err(|e| self.err("begin run", &e))?;
            Ok(RunId(id))
        })
    }

    fn finish_run(&self, run: RunId, outcome: RunOutcome) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let _w = self.write_lock.lock().await;
            sqlx::query(self.q("UPDATE runs SET finished_at = ?, outcome = ? WHERE id = ?"))
                .bind(now_ms())
                .bind(outcome.as_str())
                .bind(run.0)
                .execute(&self.pool)
                .await
                .map_err(|e| self.err("finish run", &e))?;
            Ok(())
        })
    }

    fn upsert_mailbox<'a>(
        &'a self,
        source: &'a str,
        target: &'a str,
    ) -> BoxFuture<'a, Result<MailboxId>> {
        Box::pin(async move {
            let _w = self.write_lock.lock().await;
            let now = now_ms();
            let id: i64 = sqlx::query_scalar(self.q(
                "INSERT INTO mailboxes (source_address, target_address, created_at, updated_at)
                 VALUES (?, ?, ?, ?)
                 ON CONFLICT (source_address) DO UPDATE SET
                   target_address = excluded.target_address, updated_at = excluded.updated_at
                 RETURNING id",
            ))
            .bind(source)
            .bind(target)
            .bind(now)
            .bind(now)
            .fetch_one(&self.pool)
            .await
            .map_err(|e| self.err("upsert mailbox", &e))?;
            Ok(MailboxId(id))
        })
    }

    fn upsert_folder<'a>(
        &'a self,
        mailbox: MailboxId,
        source_path: &'a str,
        target_path: &'a str,
        uidvalidity: u32,
    ) -> BoxFuture<'a, Result<FolderState>> {
        Box::pin(async move {
            let (_w, mut tx) = self.write_tx("upsert folder").await?;
            let prev: Option<(i64, i64)> =
                sqlx::query_as(self.q(
                    "SELECT id, uidvalidity FROM folders WHERE mailbox_id = ? AND source_path = ?",
                ))
                .bind(mailbox.0)
                .bind(source_path)
                .fetch_optional(&mut *tx)
                .await
                .map_err(|e| self.err("upsert folder", &e))?;
            let now = now_ms();
            let (id, previous) = match prev {
                Some((id, old)) => {
                    sqlx::query(self.q("UPDATE folders SET target_path = ?, uidvalidity = ?, updated_at = ? WHERE id = ?",))
                    .bind(target_path)
                    .bind(i64::from(uidvalidity))
                    .bind(now)
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| self.err("upsert folder", &e))?;
                    let old = i64_to_u32(old);
                    (id, (old != uidvalidity).then_some(old))
                }
                None => {
                    let id: i64 = sqlx::query_scalar(self.q("INSERT INTO folders (mailbox_id, source_path, target_path, uidvalidity, updated_at)
                         VALUES (?, ?, ?, ?, ?) RETURNING id",))
                    .bind(mailbox.0)
                    .bind(source_path)
                    .bind(target_path)
                    .bind(i64::from(uidvalidity))
                    .bind(now)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(|e| self.err("upsert folder", &e))?;
                    (id, None)
                }
            };
            self.update_watermark(&mut tx, id).await?;
            if previous.is_some() {
                // A new UIDVALIDITY: the mod-sequences of the old one mean nothing.
                sqlx::query(self.q("UPDATE folders SET highest_modseq = NULL WHERE id = ?"))
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| self.err("upsert folder", &e))?;
            }
            let (wm, modseq): (i64, Option<i64>) = sqlx::query_as(
                self.q("SELECT highest_uid_done, highest_modseq FROM folders WHERE id = ?"),
            )
            .bind(id)
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| self.err("upsert folder", &e))?;
            tx.commit()
                .await
                .map_err(|e| self.err("upsert folder", &e))?;
            Ok(FolderState {
                id: FolderId(id),
                uidvalidity,
                previous_uidvalidity: previous,
                highest_uid_done: i64_to_u32(wm),
                highest_modseq: modseq.and_then(|m| u64::try_from(m).ok()),
            })
        })
    }

    fn mark_planned<'a>(
        &'a self,
        folder: FolderId,
        uidvalidity: u32,
        items: &'a [PlannedItem],
    ) -> BoxFuture<'a, Result<u64>> {
        Box::pin(async move {
            let (_w, mut tx) = self.write_tx("mark planned").await?;
            let now = now_ms();
            let mut new = 0u64;
            for it in items {
                let m = &it.meta;
                let r = sqlx::query(self.q("INSERT INTO items (folder_id, uidvalidity, uid, fingerprint, message_id, subject,
                        sender, size, internal_date, status, attempts, created_at, updated_at)
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'planned', 0, ?, ?)
                     ON CONFLICT (folder_id, uidvalidity, uid) DO NOTHING",))
                .bind(folder.0)
                .bind(i64::from(uidvalidity))
                .bind(i64::from(it.uid))
                .bind(m.fingerprint.as_deref())
                .bind(m.message_id.as_deref())
                .bind(m.subject.as_deref())
                .bind(m.sender.as_deref())
                .bind(m.size.map(u64_to_i64))
                .bind(m.internal_date)
                .bind(now)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.err("mark planned", &e))?;
                new += r.rows_affected();
            }
            self.update_watermark(&mut tx, folder.0).await?;
            tx.commit()
                .await
                .map_err(|e| self.err("mark planned", &e))?;
            Ok(new)
        })
    }

    fn record_batch<'a>(&'a self, run: RunId, batch: &'a Batch) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            for o in &batch.outcomes {
                if o.status == ItemStatus::Planned {
                    return Err(Error::State {
                        path: self.path.clone(),
                        operation: "record batch",
                        message: format!("outcome for UID {} has status planned", o.uid),
                        hint: Some(
                            "record migrated, skipped or failed; use mark_planned to plan".into(),
                        ),
                    });
                }
                if matches!(o.status, ItemStatus::Skipped | ItemStatus::Failed)
                    && o.reason.as_deref().is_none_or(|r| r.trim().is_empty())
                {
                    return Err(Error::State {
                        path: self.path.clone(),
                        operation: "record batch",
                        message: format!("{} outcome for UID {} has no reason", o.status, o.uid),
                        hint: Some("every skipped or failed item needs a reason".into()),
                    });
                }
            }
            let (_w, mut tx) = self.write_tx("record batch").await?;
            let now = now_ms();
            let mut folders = BTreeSet::new();
            let (mut mig, mut skip, mut fail, mut bytes) = (0i64, 0i64, 0i64, 0i64);
            for o in &batch.outcomes {
                let m = &o.meta;
                // Never downgrade a migrated item: it is in the target.
                let prior: Option<String> = sqlx::query_scalar(self.q(
                    "SELECT status FROM items WHERE folder_id = ? AND uidvalidity = ? AND uid = ?",
                ))
                .bind(o.folder.0)
                .bind(i64::from(o.uidvalidity))
                .bind(i64::from(o.uid))
                .fetch_optional(&mut *tx)
                .await
                .map_err(|e| self.err("record batch", &e))?;
                if prior.as_deref() == Some("migrated") && o.status != ItemStatus::Migrated {
                    continue;
                }
                sqlx::query(self.q("INSERT INTO items (folder_id, uidvalidity, uid, fingerprint, message_id, subject,
                        sender, size, internal_date, target_id, status, reason, attempts, run_id,
                        created_at, updated_at, flags)
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?)
                     ON CONFLICT (folder_id, uidvalidity, uid) DO UPDATE SET
                        flags = COALESCE(excluded.flags, items.flags),
                        fingerprint = COALESCE(excluded.fingerprint, items.fingerprint),
                        message_id = COALESCE(excluded.message_id, items.message_id),
                        subject = COALESCE(excluded.subject, items.subject),
                        sender = COALESCE(excluded.sender, items.sender),
                        size = COALESCE(excluded.size, items.size),
                        internal_date = COALESCE(excluded.internal_date, items.internal_date),
                        target_id = COALESCE(excluded.target_id, items.target_id),
                        status = excluded.status,
                        reason = excluded.reason,
                        attempts = items.attempts + 1,
                        run_id = excluded.run_id,
                        updated_at = excluded.updated_at",))
                .bind(o.folder.0)
                .bind(i64::from(o.uidvalidity))
                .bind(i64::from(o.uid))
                .bind(m.fingerprint.as_deref())
                .bind(m.message_id.as_deref())
                .bind(m.subject.as_deref())
                .bind(m.sender.as_deref())
                .bind(m.size.map(u64_to_i64))
                .bind(m.internal_date)
                .bind(o.target_id.as_deref())
                .bind(o.status.as_str())
                .bind(o.reason.as_deref())
                .bind(run.0)
                .bind(now)
                .bind(now)
                .bind(m.flags.as_deref())
                .execute(&mut *tx)
                .await
                .map_err(|e| self.err("record batch", &e))?;
                match o.status {
                    ItemStatus::Migrated => {
                        mig += 1;
                        bytes = bytes.saturating_add(m.size.map(u64_to_i64).unwrap_or(0));
                    }
                    ItemStatus::Skipped => skip += 1,
                    ItemStatus::Failed => fail += 1,
                    ItemStatus::Planned => {}
                }
                folders.insert(o.folder.0);
            }
            self.insert_events(&mut tx, run, now, &batch.events, "record batch")
                .await?;
            sqlx::query(self.q("UPDATE runs SET migrated = migrated + ?, skipped = skipped + ?, failed = failed + ?,
                    migrated_bytes = migrated_bytes + ? WHERE id = ?",))
            .bind(mig)
            .bind(skip)
            .bind(fail)
            .bind(bytes)
            .bind(run.0)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err("record batch", &e))?;
            for f in folders {
                self.update_watermark(&mut tx, f).await?;
            }
            tx.commit()
                .await
                .map_err(|e| self.err("record batch", &e))?;
            Ok(())
        })
    }

    fn sync_items(&self, folder: FolderId) -> BoxFuture<'_, Result<Vec<SyncItem>>> {
        Box::pin(async move {
            type Row = (
                i64,
                i64,
                Option<String>,
                Option<String>,
                Option<i64>,
                Option<String>,
                Option<String>,
            );
            let rows: Vec<Row> = sqlx::query_as(self.q(
                "SELECT i.id, i.uid, i.target_id, i.fingerprint, i.size, i.flags, i.gone
                       FROM items i JOIN folders f ON f.id = i.folder_id
                      WHERE i.folder_id = ? AND i.uidvalidity = f.uidvalidity
                        AND i.status = 'migrated' AND (i.gone IS NULL OR i.gone = 'kept')
                      ORDER BY i.uid",
            ))
            .bind(folder.0)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.err("read sync items", &e))?;
            Ok(rows
                .into_iter()
                .map(
                    |(id, uid, target_id, fingerprint, size, flags, gone)| SyncItem {
                        kept: gone.is_some(),
                        id,
                        uid: i64_to_u32(uid),
                        target_id,
                        fingerprint,
                        size: size.and_then(|s| u64::try_from(s).ok()),
                        flags,
                    },
                )
                .collect())
        })
    }

    fn record_sync<'a>(
        &'a self,
        run: RunId,
        changes: &'a [SyncChange],
        events: &'a [EventRecord],
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let (_w, mut tx) = self.write_tx("record sync").await?;
            let now = now_ms();
            let mut folders = BTreeSet::new();
            for c in changes {
                let q = match c {
                    SyncChange::Flags { id, flags } => {
                        sqlx::query(self.q("UPDATE items SET flags = ?, updated_at = ? WHERE id = ?"))
                            .bind(flags.as_str())
                            .bind(now)
                            .bind(*id)
                    }
                    SyncChange::Moved {
                        id,
                        folder,
                        uidvalidity,
                        uid,
                        target_id,
                        flags,
                    } => {
                        let from: i64 = sqlx::query_scalar(self.q("SELECT folder_id FROM items WHERE id = ?"))
                            .bind(*id)
                            .fetch_one(&mut *tx)
                            .await
                            .map_err(|e| self.err("record sync", &e))?;
                        folders.insert(from);
                        folders.insert(folder.0);
                        // A row planned for the destination UID by an interrupted pass is this
                        // item: it gives way to the moved row.
                        sqlx::query(self.q("DELETE FROM items WHERE folder_id = ? AND uidvalidity = ? AND uid = ? AND id <> ?",))
                        .bind(folder.0)
                        .bind(i64::from(*uidvalidity))
                        .bind(i64::from(*uid))
                        .bind(*id)
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| self.err("record sync", &e))?;
                        sqlx::query(self.q("UPDATE items SET folder_id = ?, uidvalidity = ?, uid = ?, target_id = ?,
                                flags = ?, run_id = ?, updated_at = ? WHERE id = ?",))
                        .bind(folder.0)
                        .bind(i64::from(*uidvalidity))
                        .bind(i64::from(*uid))
                        .bind(target_id.as_str())
                        .bind(flags.as_str())
                        .bind(run.0)
                        .bind(now)
                        .bind(*id)
                    }
                    SyncChange::Gone { id, gone } => sqlx::query(self.q("UPDATE items SET gone = ?, gone_at = ?, run_id = ?, updated_at = ? WHERE id = ?",))
                    .bind(gone.as_str())
                    .bind(now)
                    .bind(run.0)
                    .bind(now)
                    .bind(*id),
                };
                q.execute(&mut *tx)
                    .await
                    .map_err(|e| self.err("record sync", &e))?;
            }
            self.insert_events(&mut tx, run, now, events, "record sync")
                .await?;
            for f in folders {
                self.update_watermark(&mut tx, f).await?;
            }
            tx.commit().await.map_err(|e| self.err("record sync", &e))?;
            Ok(())
        })
    }

    fn set_highest_modseq(
        &self,
        folder: FolderId,
        modseq: Option<u64>,
        if_unset: bool,
    ) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let (_w, mut tx) = self.write_tx("store HIGHESTMODSEQ").await?;
            let sql = if if_unset {
                "UPDATE folders SET highest_modseq = ? WHERE id = ? AND highest_modseq IS NULL"
            } else {
                "UPDATE folders SET highest_modseq = ? WHERE id = ?"
            };
            sqlx::query(self.q(sql))
                .bind(modseq.map(u64_to_i64))
                .bind(folder.0)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.err("store HIGHESTMODSEQ", &e))?;
            tx.commit()
                .await
                .map_err(|e| self.err("store HIGHESTMODSEQ", &e))?;
            Ok(())
        })
    }

    fn kept_target_ids(&self, folder: FolderId) -> BoxFuture<'_, Result<Vec<String>>> {
        Box::pin(async move {
            sqlx::query_scalar(self.q("SELECT target_id FROM items
                  WHERE folder_id = ? AND gone = 'kept' AND target_id IS NOT NULL"))
            .bind(folder.0)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.err("read kept items", &e))
        })
    }

    fn done_uids(&self, folder: FolderId) -> BoxFuture<'_, Result<DoneUids>> {
        Box::pin(async move {
            let mut tx = self
                .pool
                .begin()
                .await
                .map_err(|e| self.err("read done UIDs", &e))?;
            let (uv, wm): (i64, i64) = sqlx::query_as(
                self.q("SELECT uidvalidity, highest_uid_done FROM folders WHERE id = ?"),
            )
            .bind(folder.0)
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| self.err("read done UIDs", &e))?
            .ok_or_else(|| Error::State {
                path: self.path.clone(),
                operation: "read done UIDs",
                message: format!("no folder with id {}", folder.0),
                hint: Some("call upsert_folder first".into()),
            })?;
            let rows: Vec<(i64, String)> = sqlx::query_as(self.q("SELECT uid, status FROM items WHERE folder_id = ? AND uidvalidity = ? ORDER BY uid",))
            .bind(folder.0)
            .bind(uv)
            .fetch_all(&mut *tx)
            .await
            .map_err(|e| self.err("read done UIDs", &e))?;
            tx.commit()
                .await
                .map_err(|e| self.err("read done UIDs", &e))?;
            let mut d = DoneUids {
                uidvalidity: i64_to_u32(uv),
                watermark: i64_to_u32(wm),
                ..DoneUids::default()
            };
            for (uid, status) in rows {
                let uid = i64_to_u32(uid);
                match ItemStatus::parse(&status) {
                    Some(ItemStatus::Migrated | ItemStatus::Skipped) => d.done.push(uid),
                    Some(ItemStatus::Failed) => d.failed.push(uid),
                    _ => d.planned.push(uid),
                }
            }
            Ok(d)
        })
    }

    fn failed_items(
        &self,
        mailbox: Option<MailboxId>,
        limit: u32,
    ) -> BoxFuture<'_, Result<Vec<ItemRecord>>> {
        Box::pin(async move {
            match mailbox {
                Some(m) => {
                    self.item_query(
                        "i.status = 'failed' AND f.mailbox_id = ? ORDER BY i.updated_at, i.id LIMIT ?",
                        vec![Bind::I(m.0), Bind::I(i64::from(limit))],
                    )
                    .await
                }
                None => {
                    self.item_query(
                        "i.status = 'failed' ORDER BY i.updated_at, i.id LIMIT ?",
                        vec![Bind::I(i64::from(limit))],
                    )
                    .await
                }
            }
        })
    }

    fn find_by_fingerprint<'a>(
        &'a self,
        mailbox: MailboxId,
        fingerprint: &'a str,
    ) -> BoxFuture<'a, Result<Vec<ItemRecord>>> {
        Box::pin(self.item_query(
            "i.fingerprint = ? AND f.mailbox_id = ? AND i.status = 'migrated' ORDER BY i.id",
            vec![Bind::S(fingerprint), Bind::I(mailbox.0)],
        ))
    }

    fn find_by_message_id<'a>(
        &'a self,
        mailbox: MailboxId,
        message_id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<ItemRecord>>> {
        Box::pin(self.item_query(
            "i.message_id = ? AND f.mailbox_id = ? AND i.status = 'migrated' ORDER BY i.id",
            vec![Bind::S(message_id), Bind::I(mailbox.0)],
        ))
    }

    fn mailboxes(&self) -> BoxFuture<'_, Result<Vec<MailboxRecord>>> {
        Box::pin(async move {
            let rows: Vec<(i64, String, String)> = sqlx::query_as(self.q(
                "SELECT id, source_address, target_address FROM mailboxes ORDER BY source_address",
            ))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.err("read mailboxes", &e))?;
            Ok(rows
                .into_iter()
                .map(|(id, source, target)| MailboxRecord {
                    id: MailboxId(id),
                    source,
                    target,
                })
                .collect())
        })
    }

    fn folders(&self, mailbox: MailboxId) -> BoxFuture<'_, Result<Vec<FolderRecord>>> {
        Box::pin(async move {
            let rows: Vec<(i64, String, String, i64, i64)> = sqlx::query_as(self.q(
                "SELECT id, source_path, target_path, uidvalidity, highest_uid_done FROM folders
                 WHERE mailbox_id = ? ORDER BY source_path",
            ))
            .bind(mailbox.0)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.err("read folders", &e))?;
            Ok(rows
                .into_iter()
                .map(|(id, sp, tp, uv, wm)| FolderRecord {
                    id: FolderId(id),
                    mailbox,
                    source_path: sp,
                    target_path: tp,
                    uidvalidity: i64_to_u32(uv),
                    highest_uid_done: i64_to_u32(wm),
                })
                .collect())
        })
    }

    fn items(
        &self,
        mailbox: Option<MailboxId>,
        after_id: i64,
        limit: u32,
    ) -> BoxFuture<'_, Result<Vec<ItemRecord>>> {
        Box::pin(async move {
            match mailbox {
                Some(m) => {
                    self.item_query(
                        "i.id > ? AND f.mailbox_id = ? ORDER BY i.id LIMIT ?",
                        vec![Bind::I(after_id), Bind::I(m.0), Bind::I(i64::from(limit))],
                    )
                    .await
                }
                None => {
                    self.item_query(
                        "i.id > ? ORDER BY i.id LIMIT ?",
                        vec![Bind::I(after_id), Bind::I(i64::from(limit))],
                    )
                    .await
                }
            }
        })
    }

    fn search_items<'a>(&'a self, query: &'a ItemQuery) -> BoxFuture<'a, Result<ItemPage>> {
        Box::pin(async move {
            let limit = match query.limit {
                0 => 50,
                n => n.min(500),
            };
            let mut conds: Vec<String> = vec!["i.id > ?".into()];
            let mut binds: Vec<Bind<'_>> = vec![Bind::I(query.after_id)];
            if let Some(m) = query.mailbox {
                conds.push("f.mailbox_id = ?".into());
                binds.push(Bind::I(m.0));
            }
            if let Some(f) = query.folder {
                conds.push("i.folder_id = ?".into());
                binds.push(Bind::I(f.0));
            }
            if let Some(st) = query.status {
                conds.push("i.status = ?".into());
                binds.push(Bind::S(st.as_str()));
            }
            let like = self.like();
            let cond = |col: &str| format!("{col} {like} ? ESCAPE '\\'");
            let patterns: Vec<(String, String)> = [
                (cond("i.subject"), &query.subject),
                (cond("i.sender"), &query.sender),
                (cond("i.reason"), &query.reason),
                (cond("f.source_path"), &query.folder_path),
            ]
            .into_iter()
            .filter_map(|(c, v)| {
                v.as_deref()
                    .filter(|v| !v.is_empty())
                    .map(|v| (c, like_pattern(v)))
            })
            .collect();
            let text = query
                .text
                .as_deref()
                .filter(|t| !t.is_empty())
                .map(like_pattern);
            for (c, p) in &patterns {
                conds.push(c.clone());
                binds.push(Bind::S(p));
            }
            if let Some(t) = &text {
                let any_of = ["i.subject", "i.sender", "i.reason", "f.source_path"]
                    .map(cond)
                    .join(" OR ");
                conds.push(format!("({any_of})"));
                for _ in 0..4 {
                    binds.push(Bind::S(t));
                }
            }
            if let Some(v) = query.since {
                conds.push("i.internal_date >= ?".into());
                binds.push(Bind::I(v));
            }
            if let Some(v) = query.before {
                conds.push("i.internal_date < ?".into());
                binds.push(Bind::I(v));
            }
            let where_sql = conds.join(" AND ");
            // The total ignores the page position: count from the first row.
            let count_sql = format!(
                "SELECT COUNT(*) FROM items i JOIN folders f ON f.id = i.folder_id WHERE {where_sql}"
            );
            let mut q = sqlx::query_scalar::<_, i64>(self.q(&count_sql)).bind(0_i64);
            for b in &binds[1..] {
                q = match b {
                    Bind::I(v) => q.bind(*v),
                    Bind::S(v) => q.bind(*v),
                };
            }
            let total = q
                .fetch_one(&self.pool)
                .await
                .map_err(|e| self.err("search items", &e))?;
            let mut page_binds = binds;
            page_binds.push(Bind::I(i64::from(limit) + 1));
            let mut items = self
                .item_query(&format!("{where_sql} ORDER BY i.id LIMIT ?"), page_binds)
                .await?;
            let next_after = if items.len() > limit as usize {
                items.truncate(limit as usize);
                items.last().map(|i| i.id)
            } else {
                None
            };
            Ok(ItemPage {
                items,
                total: i64_to_u64(total),
                next_after,
            })
        })
    }

    fn folder_counts(&self, mailbox: MailboxId) -> BoxFuture<'_, Result<Vec<FolderCounts>>> {
        Box::pin(async move {
            let sql =
                "SELECT i.folder_id, i.status, COUNT(*), CAST(COALESCE(SUM(i.size), 0) AS BIGINT) FROM items i
                       JOIN folders f ON f.id = i.folder_id
                       WHERE f.mailbox_id = ? GROUP BY i.folder_id, i.status ORDER BY i.folder_id";
            let rows: Vec<(i64, String, i64, i64)> = sqlx::query_as(self.q(sql))
                .bind(mailbox.0)
                .fetch_all(&self.pool)
                .await
                .map_err(|e| self.err("count folder items", &e))?;
            let mut out: Vec<FolderCounts> = Vec::new();
            for (folder, status, n, bytes) in rows {
                if out.last().is_none_or(|l| l.folder.0 != folder) {
                    out.push(FolderCounts {
                        folder: FolderId(folder),
                        counts: StatusCounts::default(),
                    });
                }
                if let Some(l) = out.last_mut() {
                    add_count(&mut l.counts, &status, n, bytes);
                }
            }
            Ok(out)
        })
    }

    fn migrated_over_time(
        &self,
        mailbox: Option<MailboxId>,
        since_ms: i64,
        bucket_ms: i64,
    ) -> BoxFuture<'_, Result<Vec<ThroughputPoint>>> {
        Box::pin(async move {
            let bucket = bucket_ms.max(1);
            let sql = "SELECT (i.updated_at / ?) * ? AS b, COUNT(*), CAST(COALESCE(SUM(i.size), 0) AS BIGINT)
                       FROM items i JOIN folders f ON f.id = i.folder_id
                       WHERE i.status = 'migrated' AND i.updated_at >= ?
                         AND (? IS NULL OR f.mailbox_id = ?)
                       GROUP BY b ORDER BY b";
            let rows: Vec<(i64, i64, i64)> = sqlx::query_as(self.q(sql))
                .bind(bucket)
                .bind(bucket)
                .bind(since_ms)
                .bind(mailbox.map(|m| m.0))
                .bind(mailbox.map(|m| m.0))
                .fetch_all(&self.pool)
                .await
                .map_err(|e| self.err("read throughput", &e))?;
            Ok(rows
                .into_iter()
                .map(|(at, items, bytes)| ThroughputPoint {
                    at,
                    items: i64_to_u64(items),
                    bytes: i64_to_u64(bytes),
                })
                .collect())
        })
    }

    fn events_after(&self, after_id: i64, limit: u32) -> BoxFuture<'_, Result<Vec<StoredEvent>>> {
        Box::pin(async move {
            let rows: Vec<EventRow> = sqlx::query_as(self.q(
                "SELECT id, run_id, at, mailbox_id, kind, detail FROM events WHERE id > ?
                 ORDER BY id LIMIT ?",
            ))
            .bind(after_id)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.err("read events", &e))?;
            Ok(rows
                .into_iter()
                .map(|(id, run, at, mailbox, kind, detail)| StoredEvent {
                    id,
                    run: run.map(RunId),
                    at,
                    mailbox: mailbox.map(MailboxId),
                    kind,
                    detail,
                })
                .collect())
        })
    }

    fn run_lock_held(&self) -> BoxFuture<'_, Result<bool>> {
        Box::pin(async move {
            match &self.backend {
                Backend::Sqlite { file } => super::lock::lock_held(file),
                Backend::Postgres { .. } => {
                    // Advisory locks on a bigint key show as classid = high 32 bits,
                    // objid = low 32 bits, objsubid = 1.
                    let n: i64 = sqlx::query_scalar(self.q(
                        "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND granted \
                         AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
                         AND classid::bigint = ? AND objid::bigint = ? AND objsubid = 1",
                    ))
                    .bind(PG_RUN_LOCK >> 32)
                    .bind(PG_RUN_LOCK & 0xffff_ffff)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(|e| self.err("probe the run lock", &e))?;
                    Ok(n > 0)
                }
            }
        })
    }

    fn counts(&self, mailbox: Option<MailboxId>) -> BoxFuture<'_, Result<StatusCounts>> {
        Box::pin(async move {
            let sql =
                "SELECT i.status, COUNT(*), CAST(COALESCE(SUM(i.size), 0) AS BIGINT) FROM items i
                       JOIN folders f ON f.id = i.folder_id
                       WHERE (? IS NULL OR f.mailbox_id = ?) GROUP BY i.status";
            let rows: Vec<(String, i64, i64)> = sqlx::query_as(self.q(sql))
                .bind(mailbox.map(|m| m.0))
                .bind(mailbox.map(|m| m.0))
                .fetch_all(&self.pool)
                .await
                .map_err(|e| self.err("count items", &e))?;
            let mut c = StatusCounts::default();
            for (status, n, bytes) in rows {
                add_count(&mut c, &status, n, bytes);
            }
            Ok(c)
        })
    }

    fn run_summary(&self, run: RunId) -> BoxFuture<'_, Result<RunSummary>> {
        Box::pin(async move {
            let row = sqlx::query(self.q("SELECT * FROM runs WHERE id = ?"))
                .bind(run.0)
                .fetch_optional(&self.pool)
                .await
                .map_err(|e| self.err("read run", &e))?
                .ok_or_else(|| Error::State {
                    path: self.path.clone(),
                    operation: "read run",
                    message: format!("no run with id {}", run.0),
                    hint: Some("list runs with `o365-migrate status`".into()),
                })?;
            self.run_from_row(&row)
        })
    }

    fn runs(&self) -> BoxFuture<'_, Result<Vec<RunSummary>>> {
        Box::pin(async move {
            let rows = sqlx::query(self.q("SELECT * FROM runs ORDER BY id"))
                .fetch_all(&self.pool)
                .await
                .map_err(|e| self.err("read runs", &e))?;
            rows.iter().map(|r| self.run_from_row(r)).collect()
        })
    }

    fn events<'a>(&'a self, kinds: &'a [&'a str]) -> BoxFuture<'a, Result<Vec<StoredEvent>>> {
        Box::pin(async move {
            let rows = sqlx::query(
                self.q("SELECT id, run_id, at, mailbox_id, kind, detail FROM events ORDER BY id"),
            )
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.err("read events", &e))?;
            let mut out = Vec::new();
            for r in &rows {
                let kind: String = r.try_get("kind").map_err(|e| self.err("read events", &e))?;
                if !kinds.is_empty() && !kinds.contains(&kind.as_str()) {
                    continue;
                }
                let run: Option<i64> = r
                    .try_get("run_id")
                    .map_err(|e| self.err("read events", &e))?;
                let mailbox: Option<i64> = r
                    .try_get("mailbox_id")
                    .map_err(|e| self.err("read events", &e))?;
                out.push(StoredEvent {
                    id: r.try_get("id").map_err(|e| self.err("read events", &e))?,
                    run: run.map(RunId),
                    at: r.try_get("at").map_err(|e| self.err("read events", &e))?,
                    mailbox: mailbox.map(MailboxId),
                    kind,
                    detail: r
                        .try_get("detail")
                        .map_err(|e| self.err("read events", &e))?,
                });
            }
            Ok(out)
        })
    }
    fn put_record<'a>(
        &'a self,
        name: &'a str,
        value: Option<&'a str>,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let (_w, mut tx) = self.write_tx("store record").await?;
            match value {
                Some(v) => sqlx::query(self.q(
                    "INSERT INTO records (name, value, updated_at) VALUES (?, ?, ?)
                     ON CONFLICT (name) DO UPDATE SET value = excluded.value,
                        updated_at = excluded.updated_at",
                ))
                .bind(name)
                .bind(v)
                .bind(now_ms()),
                None => sqlx::query(self.q("DELETE FROM records WHERE name = ?")).bind(name),
            }
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err("store record", &e))?;
            tx.commit().await.map_err(|e| self.err("store record", &e))
        })
    }

    fn record<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<StoredRecord>>> {
        Box::pin(async move {
            let row: Option<(String, i64)> =
                sqlx::query_as(self.q("SELECT value, updated_at FROM records WHERE name = ?"))
                    .bind(name)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(|e| self.err("read record", &e))?;
            Ok(row.map(|(value, updated_at)| StoredRecord { value, updated_at }))
        })
    }

    fn clock(&self) -> BoxFuture<'_, Result<i64>> {
        Box::pin(async move {
            let mut conn = self
                .pool
                .acquire()
                .await
                .map_err(|e| self.err("read the clock", &e))?;
            self.clock_in(&mut conn).await
        })
    }

    fn enqueue_mailboxes<'a>(&'a self, mailboxes: &'a [MailboxId]) -> BoxFuture<'a, Result<u64>> {
        Box::pin(async move {
            let (_w, mut tx) = self.write_tx("enqueue mailboxes").await?;
            let now = now_ms();
            let mut new = 0;
            for m in mailboxes {
                let r = sqlx::query(self.q(
                    "INSERT INTO work (mailbox_id, state, updated_at) VALUES (?, 'waiting', ?)
                     ON CONFLICT (mailbox_id) DO NOTHING",
                ))
                .bind(m.0)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.err("enqueue mailboxes", &e))?;
                new += r.rows_affected();
            }
            tx.commit()
                .await
                .map_err(|e| self.err("enqueue mailboxes", &e))?;
            Ok(new)
        })
    }

    fn requeue_mailboxes(&self) -> BoxFuture<'_, Result<u64>> {
        Box::pin(async move {
            let (_w, mut tx) = self.write_tx("requeue mailboxes").await?;
            let r = sqlx::query(self.q(
                "UPDATE work SET state = 'waiting', reason = NULL, updated_at = ?
                 WHERE state <> 'waiting'",
            ))
            .bind(now_ms())
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err("requeue mailboxes", &e))?;
            tx.commit()
                .await
                .map_err(|e| self.err("requeue mailboxes", &e))?;
            Ok(r.rows_affected())
        })
    }

    fn lease_mailbox<'a>(
        &'a self,
        worker: &'a str,
        ttl_ms: i64,
        max_live: Option<u64>,
    ) -> BoxFuture<'a, Result<Option<Lease>>> {
        Box::pin(async move {
            // Compare-and-set on the generation: on PostgreSQL two workers may pick the same
            // candidate; the second UPDATE finds the generation moved on and picks again.
            for _ in 0..32 {
                let (_w, mut tx) = self.write_tx("lease a mailbox").await?;
                if max_live.is_some() && matches!(self.backend, Backend::Postgres { .. }) {
                    // Counting live leases and taking one must not interleave between
                    // workers, or two could both take the last place.
                    sqlx::query(self.q("SELECT pg_advisory_xact_lock(?)"))
                        .bind(PG_RUN_LOCK - 2)
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| self.err("lease a mailbox", &e))?;
                }
                let now = self.clock_in(&mut tx).await?;
                if let Some(max) = max_live {
                    let live: i64 = sqlx::query_scalar(self.q("SELECT COUNT(*) FROM work
                          WHERE state = 'waiting' AND worker IS NOT NULL AND lease_until >= ?"))
                    .bind(now)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(|e| self.err("lease a mailbox", &e))?;
                    if i64_to_u64(live) >= max {
                        return Ok(None);
                    }
                }
                let cand: Option<(i64, i64, Option<String>, i64, String)> = sqlx::query_as(self.q(
                    "SELECT w.mailbox_id, w.generation, w.worker, w.lease_until, m.source_address
                           FROM work w JOIN mailboxes m ON m.id = w.mailbox_id
                          WHERE w.state = 'waiting' AND (w.worker IS NULL OR w.lease_until < ?)
                          ORDER BY CASE WHEN w.generation = 0 THEN 0 ELSE 1 END, w.lease_until,
                                   m.source_address
                          LIMIT 1",
                ))
                .bind(now)
                .fetch_optional(&mut *tx)
                .await
                .map_err(|e| self.err("lease a mailbox", &e))?;
                let Some((mailbox, generation, previous, previous_until, source)) = cand else {
                    return Ok(None);
                };
                let until = now + ttl_ms;
                let r = sqlx::query(self.q(
                    "UPDATE work SET worker = ?, generation = generation + 1, lease_until = ?,
                        updated_at = ?
                     WHERE mailbox_id = ? AND generation = ? AND state = 'waiting'",
                ))
                .bind(worker)
                .bind(until)
                .bind(now)
                .bind(mailbox)
                .bind(generation)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.err("lease a mailbox", &e))?;
                if r.rows_affected() != 1 {
                    continue;
                }
                if previous.is_some() {
                    // Taken over: the previous lease ended when it expired.
                    sqlx::query(self.q("UPDATE leases SET ended_at = ?, ended = 'expired'
                         WHERE mailbox_id = ? AND generation = ? AND ended IS NULL"))
                    .bind(previous_until)
                    .bind(mailbox)
                    .bind(generation)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| self.err("lease a mailbox", &e))?;
                }
                sqlx::query(self.q(
                    "INSERT INTO leases (mailbox_id, worker, generation, acquired_at)
                     VALUES (?, ?, ?, ?)",
                ))
                .bind(mailbox)
                .bind(worker)
                .bind(generation + 1)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.err("lease a mailbox", &e))?;
                tx.commit()
                    .await
                    .map_err(|e| self.err("lease a mailbox", &e))?;
                return Ok(Some(Lease {
                    mailbox: MailboxId(mailbox),
                    source,
                    worker: worker.to_owned(),
                    generation: generation + 1,
                    until,
                }));
            }
            Err(Error::State {
                path: self.path.clone(),
                operation: "lease a mailbox",
                message: "32 attempts in a row lost the race for a mailbox".into(),
                hint: Some("too many workers for too few mailboxes; start fewer workers".into()),
            })
        })
    }

    fn reserve_budget(
        &self,
        slot: i64,
        requests: u64,
        bytes: u64,
        max_requests: u64,
        max_bytes: u64,
    ) -> BoxFuture<'_, Result<bool>> {
        Box::pin(async move {
            let (_w, mut tx) = self.write_tx("book the shared budget").await?;
            let fail = |e: sqlx::Error| self.err("book the shared budget", &e);
            sqlx::query(
                self.q("INSERT INTO budget (slot, requests, bytes) VALUES (?, 0, 0)
                 ON CONFLICT (slot) DO NOTHING"),
            )
            .bind(slot)
            .execute(&mut *tx)
            .await
            .map_err(fail)?;
            let (r, b) = (u64_to_i64(requests), u64_to_i64(bytes));
            let booked = sqlx::query(self.q(
                "UPDATE budget SET requests = requests + ?, bytes = bytes + ?
                  WHERE slot = ?
                    AND ((requests + ? <= ? AND bytes + ? <= ?)
                         OR (requests = 0 AND bytes = 0))",
            ))
            .bind(r)
            .bind(b)
            .bind(slot)
            .bind(r)
            .bind(u64_to_i64(max_requests))
            .bind(b)
            .bind(u64_to_i64(max_bytes))
            .execute(&mut *tx)
            .await
            .map_err(fail)?
            .rows_affected()
                == 1;
            if slot % 64 == 0 {
                sqlx::query(self.q("DELETE FROM budget WHERE slot < ?"))
                    .bind(slot - 60)
                    .execute(&mut *tx)
                    .await
                    .map_err(fail)?;
            }
            tx.commit().await.map_err(fail)?;
            Ok(booked)
        })
    }

    fn renew_lease<'a>(
        &'a self,
        lease: &'a Lease,
        ttl_ms: i64,
    ) -> BoxFuture<'a, Result<Option<i64>>> {
        Box::pin(async move {
            let (_w, mut tx) = self.write_tx("renew a lease").await?;
            let until = self.clock_in(&mut tx).await? + ttl_ms;
            let r = sqlx::query(self.q(
                "UPDATE work SET lease_until = ? WHERE mailbox_id = ? AND generation = ?
                   AND worker = ? AND state = 'waiting'",
            ))
            .bind(until)
            .bind(lease.mailbox.0)
            .bind(lease.generation)
            .bind(&lease.worker)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err("renew a lease", &e))?;
            tx.commit()
                .await
                .map_err(|e| self.err("renew a lease", &e))?;
            Ok((r.rows_affected() == 1).then_some(until))
        })
    }

    fn end_lease<'a>(&'a self, lease: &'a Lease, end: &'a LeaseEnd) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move {
            let (_w, mut tx) = self.write_tx("end a lease").await?;
            let now = self.clock_in(&mut tx).await?;
            let (state, ended, reason) = match end {
                LeaseEnd::Done => ("done", "done", None),
                LeaseEnd::Failed(r) => ("failed", "failed", Some(r.as_str())),
                LeaseEnd::Released => ("waiting", "released", None),
            };
            let r = sqlx::query(self.q(
                "UPDATE work SET state = ?, worker = NULL, lease_until = 0, reason = ?,
                    updated_at = ?
                 WHERE mailbox_id = ? AND generation = ? AND worker = ? AND state = 'waiting'",
            ))
            .bind(state)
            .bind(reason)
            .bind(now)
            .bind(lease.mailbox.0)
            .bind(lease.generation)
            .bind(&lease.worker)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err("end a lease", &e))?;
            if r.rows_affected() != 1 {
                return Ok(false);
            }
            sqlx::query(self.q(
                "UPDATE leases SET ended_at = ?, ended = ? WHERE mailbox_id = ? AND generation = ?",
            ))
            .bind(now)
            .bind(ended)
            .bind(lease.mailbox.0)
            .bind(lease.generation)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err("end a lease", &e))?;
            tx.commit().await.map_err(|e| self.err("end a lease", &e))?;
            Ok(true)
        })
    }

    fn work_counts(&self, now: i64) -> BoxFuture<'_, Result<WorkCounts>> {
        Box::pin(async move {
            let row: (i64, i64, i64, i64, i64) = sqlx::query_as(self.q("SELECT
                    CAST(COALESCE(SUM(CASE WHEN state = 'waiting' THEN 1 ELSE 0 END), 0) AS BIGINT),
                    CAST(COALESCE(SUM(CASE WHEN state = 'waiting' AND worker IS NOT NULL
                                  AND lease_until >= ? THEN 1 ELSE 0 END), 0) AS BIGINT),
                    CAST(COALESCE(SUM(CASE WHEN state = 'waiting' AND worker IS NOT NULL
                                  AND lease_until < ? THEN 1 ELSE 0 END), 0) AS BIGINT),
                    CAST(COALESCE(SUM(CASE WHEN state = 'done' THEN 1 ELSE 0 END), 0) AS BIGINT),
                    CAST(COALESCE(SUM(CASE WHEN state = 'failed' THEN 1 ELSE 0 END), 0) AS BIGINT)
                   FROM work"))
            .bind(now)
            .bind(now)
            .fetch_one(&self.pool)
            .await
            .map_err(|e| self.err("count the work queue", &e))?;
            let n = |v: i64| u64::try_from(v).unwrap_or(0);
            Ok(WorkCounts {
                waiting: n(row.0),
                leased: n(row.1),
                stuck: n(row.2),
                done: n(row.3),
                failed: n(row.4),
            })
        })
    }

    fn work_queue(&self, scope: WorkScope) -> BoxFuture<'_, Result<Vec<WorkRow>>> {
        Box::pin(async move {
            type Row = (
                i64,
                String,
                String,
                Option<String>,
                i64,
                i64,
                Option<String>,
                i64,
            );
            let rows: Vec<Row> = sqlx::query_as(self.q(
                "SELECT w.mailbox_id, m.source_address, w.state, w.worker, w.generation,
                        w.lease_until, w.reason, w.updated_at
                   FROM work w JOIN mailboxes m ON m.id = w.mailbox_id
                  WHERE ? OR (w.state = 'waiting' AND w.worker IS NOT NULL)
                     OR w.state = 'failed'
                  ORDER BY m.source_address",
            ))
            .bind(scope == WorkScope::All)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.err("read the work queue", &e))?;
            rows.into_iter()
                .map(
                    |(mailbox, source, state, worker, generation, lease_until, reason, at)| {
                        Ok(WorkRow {
                            mailbox: MailboxId(mailbox),
                            source,
                            state: WorkState::parse(&state).ok_or_else(|| Error::State {
                                path: self.path.clone(),
                                operation: "read the work queue",
                                message: format!("unknown work state `{state}`"),
                                hint: Some("the state was changed by something else".into()),
                            })?,
                            worker,
                            generation,
                            lease_until,
                            reason,
                            updated_at: at,
                        })
                    },
                )
                .collect()
        })
    }

    fn lease_history(&self) -> BoxFuture<'_, Result<Vec<LeaseSpan>>> {
        Box::pin(async move {
            let rows = sqlx::query(self.q(
                "SELECT mailbox_id, worker, generation, acquired_at, ended_at, ended FROM leases
                 ORDER BY mailbox_id, generation",
            ))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.err("read leases", &e))?;
            rows.iter().map(|r| self.lease_from(r)).collect()
        })
    }

    fn worker_seen<'a>(
        &'a self,
        id: &'a str,
        host: &'a str,
        pid: u32,
        stopped: bool,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let (_w, mut tx) = self.write_tx("record a worker").await?;
            let now = self.clock_in(&mut tx).await?;
            sqlx::query(self.q(
                "INSERT INTO workers (id, host, pid, started_at, heartbeat_at, stopped_at)
                 VALUES (?, ?, ?, ?, ?, ?)
                 ON CONFLICT (id) DO UPDATE SET host = excluded.host, pid = excluded.pid,
                    heartbeat_at = excluded.heartbeat_at, stopped_at = excluded.stopped_at,
                    started_at = CASE WHEN workers.pid = excluded.pid
                                      AND workers.stopped_at IS NULL
                                      THEN workers.started_at ELSE excluded.started_at END",
            ))
            .bind(id)
            .bind(host)
            .bind(i64::from(pid))
            .bind(now)
            .bind(now)
            .bind(stopped.then_some(now))
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err("record a worker", &e))?;
            tx.commit()
                .await
                .map_err(|e| self.err("record a worker", &e))?;
            Ok(())
        })
    }

    fn workers(&self) -> BoxFuture<'_, Result<Vec<WorkerRecord>>> {
        Box::pin(async move {
            type Row = (String, String, i64, i64, i64, Option<i64>, i64, i64);
            let rows: Vec<Row> = sqlx::query_as(self.q(
                "SELECT w.id, w.host, w.pid, w.started_at, w.heartbeat_at, w.stopped_at,
                        CAST(COALESCE(SUM(r.migrated), 0) AS BIGINT),
                        CAST(COALESCE(SUM(r.migrated_bytes), 0) AS BIGINT)
                   FROM workers w LEFT JOIN runs r ON r.worker = w.id
                  GROUP BY w.id, w.host, w.pid, w.started_at, w.heartbeat_at, w.stopped_at
                  ORDER BY w.id",
            ))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.err("read workers", &e))?;
            Ok(rows
                .into_iter()
                .map(
                    |(id, host, pid, started, beat, stopped, mig, bytes)| WorkerRecord {
                        id,
                        host,
                        pid: u32::try_from(pid).unwrap_or(0),
                        started_at: started,
                        heartbeat_at: beat,
                        stopped_at: stopped,
                        migrated: i64_to_u64(mig),
                        migrated_bytes: i64_to_u64(bytes),
                    },
                )
                .collect())
        })
    }

    fn tag_run<'a>(&'a self, run: RunId, worker: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let (_w, mut tx) = self.write_tx("tag a run").await?;
            sqlx::query(self.q("UPDATE runs SET worker = ? WHERE id = ?"))
                .bind(worker)
                .bind(run.0)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.err("tag a run", &e))?;
            tx.commit().await.map_err(|e| self.err("tag a run", &e))
        })
    }
}
