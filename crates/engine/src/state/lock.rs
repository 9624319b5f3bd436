//! The run lock: never two runs (or a run and a `provision`) on one state. SQLite keeps it as
//! an exclusive file lock on `<state>.lock`; a shared-database backend would use its own kind
//! of lock behind the same [`RunLock`] guard.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Proof that this process holds the run lock of a state store: while it lives, no other
/// `run`, `rescan` or `provision` (from the CLI or an embedder) works on the same state. The
/// lock is released when the guard is dropped, or by the operating system when the process
/// dies.
pub struct RunLock {
    _guard: Box<dyn Send + Sync>,
    what: String,
}

impl RunLock {
    /// A guard holding `guard` (whatever keeps the lock: an open locked file, a database
    /// session); `what` names it in `Debug` output.
    pub fn new(guard: impl Send + Sync + 'static, what: impl Into<String>) -> RunLock {
        RunLock {
            _guard: Box::new(guard),
            what: what.into(),
        }
    }
}

impl std::fmt::Debug for RunLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunLock").field("lock", &self.what).finish()
    }
}

/// The lock file beside a state database: `<state>.lock`.
pub(crate) fn lock_path(state: &Path) -> PathBuf {
    let mut name = state.to_owned().into_os_string();
    name.push(".lock");
    PathBuf::from(name)
}

/// Takes the exclusive lock on `<state>.lock` (created owner-only), failing at once when
/// another process holds it.
pub(crate) fn lock_file(state: &Path) -> Result<RunLock> {
    lock_file_as(state, false)
}

/// Takes `<state>.lock` shared (workers: many together, never with a run).
pub(crate) fn lock_file_shared(state: &Path) -> Result<RunLock> {
    lock_file_as(state, true)
}

fn lock_file_as(state: &Path, shared: bool) -> Result<RunLock> {
    let path = lock_path(state);
    let shown = state.display().to_string();
    let mut o = std::fs::OpenOptions::new();
    o.create(true).truncate(false).read(true).write(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let file = o.open(&path).map_err(|e| Error::State {
        path: shown.clone(),
        operation: "lock",
        message: format!("cannot open the lock file {}: {e}", path.display()),
        hint: Some("check that the directory exists and is writable by this user".into()),
    })?;
    let r = if shared {
        file.try_lock_shared()
    } else {
        file.try_lock()
    };
    match r {
        Ok(()) => Ok(RunLock::new(file, path.display().to_string())),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::State {
            path: shown,
            operation: "lock",
            message: format!(
                "another o365-migrate {} is working on it (lock {})",
                if shared {
                    "run, rescan, sync or provision"
                } else {
                    "run, rescan, provision or worker"
                },
                path.display()
            ),
            hint: Some("wait for it to finish, or stop it with Ctrl-C / SIGTERM".into()),
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::State {
            path: shown,
            operation: "lock",
            message: format!("cannot lock {}: {e}", path.display()),
            hint: None,
        }),
    }
}

/// Whether some process (this one included: each open file has its own lock) holds the
/// lock on `<state>.lock`. Takes a shared lock for an instant, so a `run` starting at that very
/// instant could be refused; callers poll at human pace.
pub(crate) fn lock_held(state: &Path) -> Result<bool> {
    let path = lock_path(state);
    let file = match std::fs::OpenOptions::new().read(true).open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => {
            return Err(Error::State {
                path: state.display().to_string(),
                operation: "probe lock",
                message: format!("cannot open the lock file {}: {e}", path.display()),
                hint: None,
            });
        }
    };
    match file.try_lock_shared() {
        Ok(()) => Ok(false),
        Err(std::fs::TryLockError::WouldBlock) => Ok(true),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::State {
            path: state.display().to_string(),
            operation: "probe lock",
            message: format!("cannot probe {}: {e}", path.display()),
            hint: None,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_state_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state.db");
        assert!(!lock_held(&state).unwrap());
        let first = lock_file(&state).unwrap();
        assert!(lock_held(&state).unwrap());
        let err = lock_file(&state).unwrap_err().to_string();
        assert!(err.contains("another o365-migrate run"), "{err}");
        assert!(err.contains("state.db.lock"), "{err}");
        drop(first);
        assert!(!lock_held(&state).unwrap());
        lock_file(&state).unwrap();
    }
}
