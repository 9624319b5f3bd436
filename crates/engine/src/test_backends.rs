//! The state-store backends the engine's tests run on: every test written `async fn
//! name(kind: Kind)` and listed in [`on_both!`] runs twice, `name::sqlite` and
//! `name::postgres` (a private PostgreSQL from testkit per test).

use crate::error::Result;
use crate::state::{Schema, SqlStore};
use o365_migrate_testkit::{Postgres, PostgresOptions};

/// The backends the store's tests run on: each test in `on_both!` runs once on each.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    Sqlite,
    Postgres,
}

/// Where a test's store lives, kept alive with it: a temporary directory, or a private
/// PostgreSQL server (stopped on drop).
pub(crate) enum Home {
    Dir(tempfile::TempDir),
    Pg(Postgres),
}

impl Home {
    pub(crate) fn new(kind: Kind) -> Home {
        match kind {
            Kind::Sqlite => Home::Dir(tempfile::tempdir().unwrap()),
            Kind::Postgres => Home::Pg(Postgres::start(PostgresOptions::default()).unwrap()),
        }
    }

    /// A store on this home: each call is a new pool, as another process would have.
    pub(crate) async fn open(&self) -> SqlStore {
        self.try_open().await.unwrap()
    }

    pub(crate) async fn try_open(&self) -> Result<SqlStore> {
        match self {
            Home::Dir(d) => SqlStore::open(d.path().join("state.db")).await,
            Home::Pg(pg) => {
                // Loopback without TLS, opted out by name.
                let url = format!("{}?sslmode=disable", pg.url());
                SqlStore::connect_postgres(&url, Some(pg.password()), Schema::Migrate).await
            }
        }
    }
}

pub(crate) async fn store_on(kind: Kind) -> (Home, SqlStore) {
    let home = Home::new(kind);
    let s = home.open().await;
    (home, s)
}

/// Runs each named `async fn(Kind)` as two tests, `<name>::sqlite` and `<name>::postgres`.
macro_rules! on_both_impl {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name(crate::test_backends::Kind::Sqlite).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name(crate::test_backends::Kind::Postgres).await
                }
            }
        )*
    };
}

pub(crate) use on_both_impl as on_both;
