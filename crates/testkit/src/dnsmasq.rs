//! A real DNS server for the tests: a `dnsmasq` process on 127.0.0.1, on a free port, serving
//! the records a test gives it, killed when the guard drops.
//!
//! dnsmasq answers every name under `.test` from its own records (NXDOMAIN for the others, as
//! `--local=/test/` says) and REFUSED for names anywhere else (it has no upstream server).

use std::fs;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The records to serve.
#[derive(Debug, Default, Clone)]
pub struct Zone {
    args: Vec<String>,
    next_address: u8,
}

impl Zone {
    /// No records yet.
    pub fn new() -> Self {
        Zone::default()
    }

    /// An MX record.
    pub fn mx(mut self, name: &str, host: &str, preference: u16) -> Self {
        self.args
            .push(format!("--mx-host={name},{host},{preference}"));
        self
    }

    /// A TXT record of one string (no commas: dnsmasq splits there).
    pub fn txt(mut self, name: &str, text: &str) -> Self {
        assert!(!text.contains(','), "dnsmasq splits TXT strings at commas");
        self.args.push(format!("--txt-record={name},{text}"));
        self
    }

    /// A CNAME record. dnsmasq only serves a CNAME whose target it knows, so the target gets an
    /// address record too.
    pub fn cname(mut self, alias: &str, target: &str) -> Self {
        self.next_address += 1;
        self.args.push(format!(
            "--host-record={target},192.0.2.{}",
            self.next_address
        ));
        self.args.push(format!("--cname={alias},{target}"));
        self
    }

    /// An A record.
    pub fn a(mut self, name: &str, address: &str) -> Self {
        self.args.push(format!("--host-record={name},{address}"));
        self
    }

    /// An SRV record; `name` is `_service._proto.domain`.
    pub fn srv(mut self, name: &str, target: &str, port: u16, priority: u16, weight: u16) -> Self {
        self.args.push(format!(
            "--srv-host={name},{target},{port},{priority},{weight}"
        ));
        self
    }
}

/// A running dnsmasq; killed on drop.
pub struct Dnsmasq {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Dnsmasq {
    /// Starts dnsmasq on a free port, trying other ports when one is taken in between.
    pub fn start(zone: &Zone) -> Dnsmasq {
        let mut last = String::new();
        for _ in 0..10 {
            match Dnsmasq::start_on(free_port(), zone) {
                Ok(server) => return server,
                Err(e) => last = e,
            }
        }
        panic!("dnsmasq did not start on any of 10 ports; last error: {last}");
    }

    /// Starts dnsmasq on `port` and waits until it answers a query.
    pub fn start_on(port: u16, zone: &Zone) -> Result<Dnsmasq, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let log = dir.path().join("dnsmasq.log");
        let mut command = Command::new(dnsmasq_binary());
        command
            .arg("--keep-in-foreground")
            .arg(format!("--port={port}"))
            .arg("--listen-address=127.0.0.1")
            .arg("--bind-interfaces")
            .arg("--no-resolv")
            .arg("--no-hosts")
            .arg("--conf-file=/dev/null")
            .arg("--local=/test/")
            .arg("--no-negcache")
            .arg(format!(
                "--pid-file={}",
                dir.path().join("dnsmasq.pid").display()
            ))
            .arg(format!("--log-facility={}", log.display()))
            .arg("--log-queries");
        // Started as root, dnsmasq would drop to `nobody`, which cannot write the log in the
        // temporary directory; as anyone else it keeps its user anyway.
        if running_as_root() {
            command.arg("--user=root");
        }
        command
            .args(&zone.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let child = command.spawn().map_err(|e| {
            format!(
                "cannot run dnsmasq ({e}); install it (Debian: apt-get install dnsmasq) or set DNSMASQ to its path"
            )
        })?;
        let mut server = Dnsmasq {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            log,
            _dir: dir,
        };
        server.wait_ready()?;
        Ok(server)
    }

    /// Where it listens (127.0.0.1, UDP and TCP).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// dnsmasq's log (every query, with --log-queries).
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends queries until one gets an answer (any answer), with a deadline.
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let socket = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .map_err(|e| e.to_string())?;
        let mut id: u16 = 0x4242;
        loop {
            if let Some(status) = self.child.try_wait().map_err(|e| e.to_string())? {
                let mut stderr = String::new();
                if let Some(mut pipe) = self.child.stderr.take() {
                    use std::io::Read;
                    let _ = pipe.read_to_string(&mut stderr);
                }
                return Err(format!(
                    "dnsmasq exited ({status}) on port {}: {} {}",
                    self.port(),
                    stderr.trim(),
                    self.log().trim()
                ));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "dnsmasq on port {} did not answer within 10 s",
                    self.port()
                ));
            }
            id = id.wrapping_add(1);
            let _ = socket.send_to(&probe_query(id), self.addr);
            let mut buf = [0u8; 512];
            if let Ok((n, _)) = socket.recv_from(&mut buf)
                && n >= 2
                && buf[..2] == id.to_be_bytes()
            {
                return Ok(());
            }
        }
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A UDP socket that receives queries and never answers: a DNS server that times out.
pub struct SilentServer {
    socket: UdpSocket,
}

impl SilentServer {
    /// Binds a UDP socket on 127.0.0.1 that reads queries and never answers.
    pub fn start() -> SilentServer {
        SilentServer {
            socket: UdpSocket::bind("127.0.0.1:0").expect("bind a UDP socket"),
        }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.socket.local_addr().expect("local address")
    }
}

/// A port free for both UDP and TCP on 127.0.0.1 just now.
fn free_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind a UDP socket");
        let port = udp.local_addr().expect("local address").port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A DNS query for `ready.test` A, hand-made so readiness does not depend on the code under test.
fn probe_query(id: u16) -> Vec<u8> {
    let mut packet = Vec::new();
    packet.extend_from_slice(&id.to_be_bytes());
    packet.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]); // RD, one question
    for label in ["ready", "test"] {
        packet.push(label.len() as u8);
        packet.extend_from_slice(label.as_bytes());
    }
    packet.push(0);
    packet.extend_from_slice(&[0, 1, 0, 1]); // A, IN
    packet
}

fn dnsmasq_binary() -> String {
    if let Ok(path) = std::env::var("DNSMASQ") {
        return path;
    }
    for path in ["/usr/sbin/dnsmasq", "/usr/local/sbin/dnsmasq"] {
        if std::path::Path::new(path).exists() {
            return path.to_owned();
        }
    }
    "dnsmasq".to_owned()
}

fn running_as_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|uid| uid == "0"))
        })
        .unwrap_or(false)
}
