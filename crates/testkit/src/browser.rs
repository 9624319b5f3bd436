//! A small WebDriver client driving Debian's headless Chromium through `chromedriver`, for
//! end-to-end tests of the web dashboard and for screenshots.
//!
//! [`Browser::start`] runs a private `chromedriver` on a free port of 127.0.0.1 (loopback
//! only), waits until it is ready, and opens a W3C session on a headless Chromium with a fresh
//! profile in a temporary directory. [`Element`]s are found by CSS selector. Tests
//! synchronise with [`Browser::wait_for_text`] and [`Browser::wait_until`], which poll the
//! page every 100 ms up to a deadline, never with bare sleeps.
//!
//! Dropping the [`Browser`] ends the session and kills chromedriver and every Chromium process
//! it started (they share one process group, and any process still using the profile
//! directory is killed too).
//!
//! Needs the Debian packages `chromium` and `chromium-driver`. The binaries default to
//! `/usr/bin/chromium` and `/usr/bin/chromedriver`; the environment variables `CHROMIUM` and
//! `CHROMEDRIVER` override them.
//!
//! ```no_run
//! # async fn demo() -> o365_migrate_testkit::Result<()> {
//! use std::time::Duration;
//! use o365_migrate_testkit::Browser;
//!
//! let browser = Browser::start().await?;
//! browser.goto("http://127.0.0.1:8080/").await?;
//! browser.find("#refresh").await?.click().await?;
//! browser.wait_for_text("#status", "done", Duration::from_secs(10)).await?;
//! browser.screenshot_png("dashboard.png").await?;
//! # Ok(()) }
//! ```
//!
//! chromedriver speaks HTTP/1.1 with JSON bodies; this module talks to it over a plain
//! [`tokio::net::TcpStream`] (one connection per command), so it needs no HTTP client crate.

use std::fmt::Write as _;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::error::{Error, Result};

/// The Chromium binary used unless `CHROMIUM` is set.
pub const DEFAULT_CHROMIUM: &str = "/usr/bin/chromium";

/// The chromedriver binary used unless `CHROMEDRIVER` is set.
pub const DEFAULT_CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// How long chromedriver may take to answer `GET /status` with `ready: true`.
const READY_DEADLINE: Duration = Duration::from_secs(20);

/// The longest any single WebDriver command may take (page loads are capped at 30 s by the
/// session's own timeouts, so this only trips when chromedriver hangs).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// How often the `wait_*` methods poll the page.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// The key of a web element reference in W3C WebDriver JSON.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// The flags Chromium runs with, besides `--user-data-dir`.
///
/// `--disable-background-networking`, `--disable-component-update` and `--disable-sync` keep
/// Chromium from calling Google's servers at start-up: on a machine with a closed network
/// those connections are refused and slow everything down. `--disable-quic` keeps it on TCP.
const CHROMIUM_ARGS: &[&str] = &[
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,900",
];

/// The message shown when Chromium or chromedriver is not installed.
///
/// Public so that tools (xtask, CI scripts) can show the same text.
pub fn missing_browser_message(binary: &Path) -> String {
    format!(
        "{} does not exist: the browser tests need Chromium and chromedriver.\nhint: install them with `sudo apt-get install chromium chromium-driver` (Debian/Ubuntu), or set CHROMIUM and CHROMEDRIVER to the paths of the binaries",
        binary.display()
    )
}

/// A headless Chromium driven through a private chromedriver; both are killed on drop.
#[derive(Debug)]
pub struct Browser {
    session: Arc<Session>,
    driver: Driver,
}

/// An element of the current page, found by [`Browser::find`] or [`Browser::find_all`].
///
/// It stays valid while the element is in the document; after a navigation or a re-render,
/// commands on it fail with WebDriver's `stale element reference` error.
#[derive(Debug, Clone)]
pub struct Element {
    session: Arc<Session>,
    id: String,
    selector: String,
}

/// Where chromedriver listens and the session's id.
#[derive(Debug)]
struct Session {
    addr: SocketAddr,
    id: String,
}

/// The chromedriver process (leader of a process group that holds Chromium too) and the
/// temporary directory with its log and Chromium's profile.
#[derive(Debug)]
struct Driver {
    child: Child,
    log: PathBuf,
    user_data_dir: PathBuf,
    // Declared last: removed after the processes using it are dead.
    _dir: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver on a free port of 127.0.0.1 and opens a session on a headless
    /// Chromium with a fresh profile.
    ///
    /// Fails with [`Error::BrowserMissing`] when a binary is not installed, and with
    /// [`Error::Browser`] (including the end of chromedriver's log) when chromedriver is not
    /// ready within 20 s or the session cannot be created.
    pub async fn start() -> Result<Browser> {
        let chromium = binary_from_env("CHROMIUM", DEFAULT_CHROMIUM);
        let chromedriver = binary_from_env("CHROMEDRIVER", DEFAULT_CHROMEDRIVER);
        for binary in [&chromedriver, &chromium] {
            if !binary.exists() {
                return Err(Error::BrowserMissing {
                    binary: binary.clone(),
                });
            }
        }

        // A port picked free may be taken before chromedriver binds it: try a few.
        let mut attempt = 0;
        let (driver, addr) = loop {
            attempt += 1;
            let port = free_port()?;
            let mut driver = Driver::spawn(&chromedriver, port)?;
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            match driver.wait_ready(addr).await {
                Ok(()) => break (driver, addr),
                Err(ReadyError::Exited(_)) if attempt < 3 => continue,
                Err(e) => {
                    return Err(Error::Browser {
                        what: format!("starting {} on port {port}", chromedriver.display()),
                        detail: format!(
                            "{}\n--- last lines of {} ---\n{}\n---",
                            e.detail(),
                            driver.log.display(),
                            driver.log_tail()
                        ),
                    });
                }
            }
        };

        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|a| a.to_string()).collect();
        args.push(format!(
            "--user-data-dir={}",
            driver.user_data_dir.display()
        ));
        let capabilities = json!({
            "capabilities": {
                "alwaysMatch": {
                    "goog:chromeOptions": {
                        "binary": chromium.display().to_string(),
                        "args": args,
                    },
                    "timeouts": { "pageLoad": 30_000, "script": 30_000, "implicit": 0 },
                }
            }
        });
        let created = command(addr, "POST", "/session", Some(&capabilities))
            .await
            .map_err(|detail| Error::Browser {
                what: format!("creating a session on {}", chromium.display()),
                detail: format!(
                    "{detail}\n--- last lines of {} ---\n{}\n---",
                    driver.log.display(),
                    driver.log_tail()
                ),
            })?;
        let id = created["sessionId"]
            .as_str()
            .ok_or_else(|| Error::Browser {
                what: "creating a session".into(),
                detail: format!("no sessionId in chromedriver's answer: {created}"),
            })?
            .to_string();
        Ok(Browser {
            session: Arc::new(Session { addr, id }),
            driver,
        })
    }

    /// Navigates to `url` and waits for the page to load (at most 30 s).
    pub async fn goto(&self, url: &str) -> Result<()> {
        self.session
            .post("/url", json!({ "url": url }))
            .await
            .map_err(|d| browser_error(format!("loading {url}"), d))?;
        Ok(())
    }

    /// The URL of the current page.
    pub async fn current_url(&self) -> Result<String> {
        let value = self
            .session
            .get("/url")
            .await
            .map_err(|d| browser_error("reading the current URL", d))?;
        expect_string(value, "reading the current URL")
    }

    /// The first element matching the CSS selector `css`; an error if there is none.
    pub async fn find(&self, css: &str) -> Result<Element> {
        let value = self
            .session
            .post("/element", json!({ "using": "css selector", "value": css }))
            .await
            .map_err(|d| browser_error(format!("finding `{css}`"), d))?;
        self.session.element(&value, css)
    }

    /// Every element matching the CSS selector `css`, in document order (maybe none).
    pub async fn find_all(&self, css: &str) -> Result<Vec<Element>> {
        let value = self
            .session
            .post(
                "/elements",
                json!({ "using": "css selector", "value": css }),
            )
            .await
            .map_err(|d| browser_error(format!("finding all `{css}`"), d))?;
        let Value::Array(items) = value else {
            return Err(browser_error(
                format!("finding all `{css}`"),
                format!("expected an array, got {value}"),
            ));
        };
        items
            .iter()
            .map(|item| self.session.element(item, css))
            .collect()
    }

    /// Runs `script` in the page as the body of a function (so it must `return` its result),
    /// with `args` as `arguments[0]`, `arguments[1]`, ...; returns the result as JSON.
    ///
    /// Pass an element as an argument with [`Element::to_arg`]; elements returned by the
    /// script come back as WebDriver element references.
    pub async fn execute(&self, script: &str, args: &[Value]) -> Result<Value> {
        self.session
            .execute(script, args)
            .await
            .map_err(|d| browser_error(format!("running script `{}`", excerpt(script)), d))
    }

    /// A PNG screenshot of the viewport (1280 pixels wide).
    pub async fn screenshot(&self) -> Result<Vec<u8>> {
        let value = self
            .session
            .get("/screenshot")
            .await
            .map_err(|d| browser_error("taking a screenshot", d))?;
        let encoded = expect_string(value, "taking a screenshot")?;
        base64::engine::general_purpose::STANDARD
            .decode(encoded.as_bytes())
            .map_err(|e| browser_error("taking a screenshot", format!("invalid base64: {e}")))
    }

    /// Takes a PNG screenshot of the viewport and writes it to `path`.
    pub async fn screenshot_png(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let png = self.screenshot().await?;
        tokio::fs::write(path, &png)
            .await
            .map_err(|e| Error::io(format!("writing screenshot {}", path.display()), e))
    }

    /// Polls the page every 100 ms until an element matching `css` has a rendered text
    /// (`innerText`) containing `needle`; returns that element's text.
    ///
    /// On timeout the error shows the texts last seen (or that nothing matched `css`).
    pub async fn wait_for_text(
        &self,
        css: &str,
        needle: &str,
        timeout: Duration,
    ) -> Result<String> {
        const SCRIPT: &str = "return Array.from(document.querySelectorAll(arguments[0]), \
                              e => e.innerText ?? e.textContent ?? '');";
        let deadline = Instant::now() + timeout;
        let mut last: String;
        loop {
            match self.session.execute(SCRIPT, &[json!(css)]).await {
                Ok(Value::Array(texts)) => {
                    let texts: Vec<&str> = texts.iter().filter_map(Value::as_str).collect();
                    if let Some(found) = texts.iter().find(|t| t.contains(needle)) {
                        return Ok(found.to_string());
                    }
                    last = if texts.is_empty() {
                        format!("no element matched `{css}`")
                    } else {
                        format!("last text seen: {texts:?}")
                    };
                }
                Ok(other) => last = format!("unexpected script result {other}"),
                Err(e) => last = format!("last error: {e}"),
            }
            if Instant::now() >= deadline {
                return Err(browser_error(
                    format!("waiting for {needle:?} in `{css}`"),
                    format!("timed out after {:.1} s; {last}", timeout.as_secs_f64()),
                ));
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Polls the page every 100 ms until the JavaScript expression `predicate` evaluates to
    /// `true` (it runs as `return (predicate);`).
    ///
    /// On timeout the error shows the value (or the script error) last seen.
    pub async fn wait_until(&self, predicate: &str, timeout: Duration) -> Result<()> {
        let script = format!("return ({predicate});");
        let deadline = Instant::now() + timeout;
        let mut last: String;
        loop {
            match self.session.execute(&script, &[]).await {
                Ok(Value::Bool(true)) => return Ok(()),
                Ok(other) => last = format!("last value: {other}"),
                Err(e) => last = format!("last error: {e}"),
            }
            if Instant::now() >= deadline {
                return Err(browser_error(
                    format!("waiting until `{}`", excerpt(predicate)),
                    format!("timed out after {:.1} s; {last}", timeout.as_secs_f64()),
                ));
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Chromium's profile directory (`--user-data-dir`), removed on drop.
    pub fn user_data_dir(&self) -> &Path {
        &self.driver.user_data_dir
    }

    /// The process id of chromedriver, which leads the process group Chromium runs in.
    pub fn driver_pid(&self) -> u32 {
        self.driver.child.id()
    }

    /// The base URL of the chromedriver (`http://127.0.0.1:PORT`).
    pub fn webdriver_url(&self) -> String {
        format!("http://{}", self.session.addr)
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Best effort: ends Chromium cleanly. The driver's own drop kills whatever remains.
        let path = format!("/session/{}", self.session.id);
        let _ = blocking_command(self.session.addr, "DELETE", &path, Duration::from_secs(5));
    }
}

impl Element {
    /// Clicks the element (scrolling it into view first).
    pub async fn click(&self) -> Result<()> {
        self.post("/click", json!({}), "clicking").await.map(drop)
    }

    /// The element's rendered text.
    pub async fn text(&self) -> Result<String> {
        let value = self.get("/text", "reading the text of").await?;
        expect_string(value, &format!("reading the text of `{}`", self.selector))
    }

    /// Types `text` into the element (after what it already holds).
    pub async fn send_keys(&self, text: &str) -> Result<()> {
        self.post("/value", json!({ "text": text }), "typing into")
            .await
            .map(drop)
    }

    /// Empties an input or textarea.
    pub async fn clear(&self) -> Result<()> {
        self.post("/clear", json!({}), "clearing").await.map(drop)
    }

    /// The value of the HTML attribute `name`, or `None` when the element has no such
    /// attribute.
    ///
    /// This is the markup's attribute: for an input, `attr("value")` stays the initial value
    /// after typing; read what the user typed with [`Element::prop`]`("value")`.
    pub async fn attr(&self, name: &str) -> Result<Option<String>> {
        let value = self
            .get(
                &format!("/attribute/{name}"),
                &format!("reading {name:?} of"),
            )
            .await?;
        match value {
            Value::Null => Ok(None),
            Value::String(s) => Ok(Some(s)),
            other => Ok(Some(other.to_string())),
        }
    }

    /// The DOM property `name` (e.g. `value`, `checked`) as JSON; `null` when unset.
    pub async fn prop(&self, name: &str) -> Result<Value> {
        self.get(
            &format!("/property/{name}"),
            &format!("reading property {name:?} of"),
        )
        .await
    }

    /// The CSS selector the element was found by.
    pub fn selector(&self) -> &str {
        &self.selector
    }

    /// The element as an argument for [`Browser::execute`].
    pub fn to_arg(&self) -> Value {
        json!({ ELEMENT_KEY: self.id })
    }

    async fn post(&self, suffix: &str, body: Value, action: &str) -> Result<Value> {
        self.session
            .post(&format!("/element/{}{suffix}", self.id), body)
            .await
            .map_err(|d| browser_error(format!("{action} `{}`", self.selector), d))
    }

    async fn get(&self, suffix: &str, action: &str) -> Result<Value> {
        self.session
            .get(&format!("/element/{}{suffix}", self.id))
            .await
            .map_err(|d| browser_error(format!("{action} `{}`", self.selector), d))
    }
}

impl Session {
    async fn post(&self, suffix: &str, body: Value) -> Result<Value, String> {
        let path = format!("/session/{}{suffix}", self.id);
        command(self.addr, "POST", &path, Some(&body)).await
    }

    async fn get(&self, suffix: &str) -> Result<Value, String> {
        let path = format!("/session/{}{suffix}", self.id);
        command(self.addr, "GET", &path, None).await
    }

    async fn execute(&self, script: &str, args: &[Value]) -> Result<Value, String> {
        self.post("/execute/sync", json!({ "script": script, "args": args }))
            .await
    }

    fn element(self: &Arc<Self>, value: &Value, css: &str) -> Result<Element> {
        let id = value[ELEMENT_KEY].as_str().ok_or_else(|| {
            browser_error(
                format!("finding `{css}`"),
                format!("no element reference in {value}"),
            )
        })?;
        Ok(Element {
            session: Arc::clone(self),
            id: id.to_string(),
            selector: css.to_string(),
        })
    }
}

/// Why chromedriver did not become ready.
enum ReadyError {
    /// It exited (perhaps because the port was taken).
    Exited(String),
    /// It did not say ready before the deadline.
    Timeout(String),
}

impl ReadyError {
    fn detail(&self) -> String {
        match self {
            ReadyError::Exited(status) => format!("chromedriver exited ({status})"),
            ReadyError::Timeout(last) => format!(
                "chromedriver was not ready within {} s (last answer to GET /status: {last})",
                READY_DEADLINE.as_secs()
            ),
        }
    }
}

impl Driver {
    fn spawn(binary: &Path, port: u16) -> Result<Driver> {
        let dir = tempfile::Builder::new()
            .prefix("o365-migrate-browser-")
            .tempdir()
            .map_err(|e| Error::io("creating the browser's temporary directory", e))?;
        let user_data_dir = dir.path().join("profile");
        let log = dir.path().join("chromedriver.log");
        let log_file = std::fs::File::create(&log)
            .map_err(|e| Error::io(format!("creating {}", log.display()), e))?;
        let log_err = log_file
            .try_clone()
            .map_err(|e| Error::io(format!("opening {}", log.display()), e))?;
        // No --allowed-ips: with it chromedriver listens on every interface (filtering by
        // peer address); without it, it binds 127.0.0.1 and ::1 only.
        let child = Command::new(binary)
            .arg(format!("--port={port}"))
            // Chromium's crash handler (chrome_crashpad_handler) starts in a session of its
            // own, outside the process group, with its database under the default config
            // directory: point that into our directory, so it stays off the user's home and
            // drop can find it by path.
            .env("XDG_CONFIG_HOME", dir.path().join("config"))
            .env("XDG_CACHE_HOME", dir.path().join("cache"))
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(log_err)
            // Its own process group, which Chromium inherits: drop kills the whole group.
            .process_group(0)
            .spawn()
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    Error::BrowserMissing {
                        binary: binary.to_path_buf(),
                    }
                } else {
                    Error::io(format!("running {}", binary.display()), e)
                }
            })?;
        Ok(Driver {
            child,
            log,
            user_data_dir,
            _dir: dir,
        })
    }

    /// Polls `GET /status` until it says `ready: true`.
    async fn wait_ready(&mut self, addr: SocketAddr) -> Result<(), ReadyError> {
        let deadline = Instant::now() + READY_DEADLINE;
        let mut last: String;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(ReadyError::Exited(status.to_string()));
            }
            match tokio::time::timeout(
                Duration::from_secs(2),
                command(addr, "GET", "/status", None),
            )
            .await
            {
                Ok(Ok(value)) if value["ready"] == Value::Bool(true) => return Ok(()),
                Ok(Ok(value)) => last = value.to_string(),
                Ok(Err(e)) => last = e,
                Err(_) => last = "no answer within 2 s".into(),
            }
            if Instant::now() >= deadline {
                return Err(ReadyError::Timeout(last));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let pgid = self.child.id();
        // The whole group: chromedriver and the Chromium processes it started.
        kill_pids(&[format!("-{pgid}")]);
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Then, until none is left (SIGKILL takes a moment), whatever is still in the group or
        // mentions our directory (the crash handler, which leaves the group).
        let marker = self._dir.path().to_string_lossy().into_owned();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let left = leftover_processes(pgid, &marker);
            if left.is_empty() || Instant::now() >= deadline {
                break;
            }
            kill_pids(&left.iter().map(u32::to_string).collect::<Vec<_>>());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Sends SIGKILL to the given process ids (`-PGID` for a group) with the shell's `kill`.
fn kill_pids(targets: &[String]) {
    if targets.is_empty() {
        return;
    }
    let _ = Command::new("sh")
        .arg("-c")
        .arg(format!("kill -s KILL -- {} 2>/dev/null", targets.join(" ")))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// The live processes (not zombies) in process group `pgid` or with `marker` in an argument.
fn leftover_processes(pgid: u32, marker: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let own = std::process::id();
    entries
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            if pid == own {
                return None;
            }
            // `pid (comm) state ppid pgrp ...`; comm may hold spaces and parentheses.
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            let mut fields = stat.get(stat.rfind(')')? + 1..)?.split_whitespace();
            let state = fields.next()?;
            let pgrp: u32 = fields.nth(1)?.parse().ok()?;
            if state == "Z" || state == "X" {
                return None;
            }
            let in_group = pgrp == pgid;
            let mentions = || {
                std::fs::read(entry.path().join("cmdline")).is_ok_and(|cmdline| {
                    cmdline
                        .split(|&b| b == 0)
                        .any(|arg| String::from_utf8_lossy(arg).contains(marker))
                })
            };
            (in_group || mentions()).then_some(pid)
        })
        .collect()
}

fn binary_from_env(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(default))
}

fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .map_err(|e| Error::io("finding a free port on 127.0.0.1", e))?;
    let port = listener
        .local_addr()
        .map_err(|e| Error::io("finding a free port on 127.0.0.1", e))?
        .port();
    Ok(port)
}

fn browser_error(what: impl Into<String>, detail: impl Into<String>) -> Error {
    Error::Browser {
        what: what.into(),
        detail: detail.into(),
    }
}

fn expect_string(value: Value, what: &str) -> Result<String> {
    match value {
        Value::String(s) => Ok(s),
        other => Err(browser_error(
            what,
            format!("expected a string, got {other}"),
        )),
    }
}

/// The first line of a script, shortened, for error messages.
fn excerpt(script: &str) -> String {
    let line = script.trim().lines().next().unwrap_or("");
    if line.chars().count() > 80 || script.trim().lines().nth(1).is_some() {
        let short: String = line.chars().take(80).collect();
        format!("{short}...")
    } else {
        line.to_string()
    }
}

/// Sends one WebDriver command and returns the `value` of its answer, or the WebDriver error
/// (`error: message`) or transport error as text.
async fn command(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<Value, String> {
    let request = build_request(addr, method, path, body);
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("cannot connect to chromedriver at {addr}: {e}"))?;
        stream
            .write_all(&request)
            .await
            .map_err(|e| format!("sending {method} {path} to chromedriver: {e}"))?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 16 * 1024];
        loop {
            let n = stream
                .read(&mut chunk)
                .await
                .map_err(|e| format!("reading chromedriver's answer to {method} {path}: {e}"))?;
            buf.extend_from_slice(&chunk[..n]);
            if let Some(result) = parse_response(&buf, n == 0) {
                return result;
            }
        }
    };
    match tokio::time::timeout(COMMAND_TIMEOUT, exchange).await {
        Ok(result) => result,
        Err(_) => Err(format!(
            "chromedriver did not answer {method} {path} within {} s",
            COMMAND_TIMEOUT.as_secs()
        )),
    }
}

/// [`command`] without a runtime, for `Drop`.
fn blocking_command(
    addr: SocketAddr,
    method: &str,
    path: &str,
    timeout: Duration,
) -> Result<Value, String> {
    let mut stream = std::net::TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| format!("cannot connect to chromedriver at {addr}: {e}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .and_then(|()| stream.write_all(&build_request(addr, method, path, None)))
        .map_err(|e| format!("sending {method} {path}: {e}"))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let n = stream
            .read(&mut chunk)
            .map_err(|e| format!("reading the answer to {method} {path}: {e}"))?;
        buf.extend_from_slice(&chunk[..n]);
        if let Some(result) = parse_response(&buf, n == 0) {
            return result;
        }
    }
}

fn build_request(addr: SocketAddr, method: &str, path: &str, body: Option<&Value>) -> Vec<u8> {
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut head = String::new();
    let _ = write!(
        head,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: application/json\r\nConnection: close\r\n"
    );
    if method != "GET" && method != "DELETE" {
        let _ = write!(
            head,
            "Content-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\n",
            body.len()
        );
    }
    head.push_str("\r\n");
    let mut request = head.into_bytes();
    request.extend_from_slice(body.as_bytes());
    request
}

/// Parses an HTTP response read so far: `None` while more bytes are needed, else the
/// WebDriver `value` or error.
fn parse_response(buf: &[u8], eof: bool) -> Option<Result<Value, String>> {
    let Some(head_end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return eof.then(|| {
            Err(format!(
                "chromedriver closed the connection after {} bytes without a complete answer",
                buf.len()
            ))
        });
    };
    let head = String::from_utf8_lossy(&buf[..head_end]);
    let body = &buf[head_end + 4..];
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut length = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = value.trim().parse::<usize>().ok();
        } else if name.eq_ignore_ascii_case("transfer-encoding")
            && value.trim().eq_ignore_ascii_case("chunked")
        {
            return Some(Err(
                "chromedriver sent a chunked answer, which this client does not read".into(),
            ));
        }
    }
    let body = match length {
        Some(n) if body.len() >= n => &body[..n],
        Some(n) if eof => {
            return Some(Err(format!(
                "chromedriver's answer was cut off ({} of {n} bytes)",
                body.len()
            )));
        }
        Some(_) => return None,
        None if eof => body,
        None => return None,
    };
    Some(decode_answer(status, body))
}

/// The `value` of a WebDriver answer, or its error as `error: message`.
fn decode_answer(status: u16, body: &[u8]) -> Result<Value, String> {
    let json: Value = serde_json::from_slice(body).map_err(|e| {
        format!(
            "HTTP {status} with a body that is not JSON ({e}): {}",
            String::from_utf8_lossy(&body[..body.len().min(300)])
        )
    })?;
    let value = json.get("value").cloned().unwrap_or(Value::Null);
    if let Some(error) = value.get("error").and_then(Value::as_str) {
        let message = value
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("")
            .trim();
        return Err(if message.starts_with(error) {
            message.to_string()
        } else {
            format!("{error}: {message}")
        });
    }
    if !(200..300).contains(&status) {
        return Err(format!("HTTP {status}: {json}"));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_binary_names_the_debian_packages() {
        let e = Error::BrowserMissing {
            binary: PathBuf::from("/nowhere/chromedriver"),
        };
        let text = e.to_string();
        assert!(text.contains("/nowhere/chromedriver"), "{text}");
        assert!(
            text.contains("apt-get install chromium chromium-driver"),
            "{text}"
        );
    }

    #[test]
    fn parses_answers_and_errors() {
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length:14\r\n\r\n{\"value\":true}";
        assert_eq!(parse_response(&ok[..ok.len() - 1], false), None);
        assert_eq!(parse_response(ok, false), Some(Ok(Value::Bool(true))));
        let err = br#"HTTP/1.1 404 Not Found
Content-Length: 82

{"value":{"error":"no such element","message":"no such element: x","stacktrace":""}}"#;
        let err = String::from_utf8_lossy(err).replace('\n', "\r\n");
        let len = err.split("\r\n\r\n").nth(1).map(str::len).unwrap_or(0);
        let err = err.replace("Content-Length: 82", &format!("Content-Length: {len}"));
        assert_eq!(
            parse_response(err.as_bytes(), false),
            Some(Err("no such element: x".to_string()))
        );
        assert!(matches!(
            parse_response(b"HTTP/1.1 200", true),
            Some(Err(_))
        ));
    }
}
