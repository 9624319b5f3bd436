//! A tokio runtime on its own thread for in-process servers, so they keep answering while a
//! test blocks its own thread (e.g. waiting for the `o365-migrate` binary). Stopped on drop:
//! every task on it is cancelled.

use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::{Error, Result};

/// The runtime's handle and what stops it.
#[derive(Debug)]
pub(crate) struct Background {
    handle: tokio::runtime::Handle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Background {
    /// Starts a single-threaded runtime on a thread named `name`.
    pub(crate) fn start(name: &str) -> Result<Background> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| Error::Io {
                context: format!("starting the runtime for {name}"),
                source,
            })?;
        let handle = rt.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                let _ = rt.block_on(stopped);
                rt.shutdown_timeout(Duration::from_secs(1));
            })
            .map_err(|source| Error::Io {
                context: format!("starting the thread for {name}"),
                source,
            })?;
        Ok(Background {
            handle,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Spawns `task` on the runtime.
    pub(crate) fn spawn<F>(&self, task: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.handle.spawn(task);
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Binds a listener on 127.0.0.1 (ephemeral port), ready for `tokio::net::TcpListener::from_std`.
pub(crate) fn bind_loopback(what: &str) -> Result<(std::net::TcpListener, std::net::SocketAddr)> {
    let io = |source| Error::Io {
        context: format!("binding {what} on 127.0.0.1"),
        source,
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(io)?;
    listener.set_nonblocking(true).map_err(io)?;
    let addr = listener.local_addr().map_err(io)?;
    Ok((listener, addr))
}
