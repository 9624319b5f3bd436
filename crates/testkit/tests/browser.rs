//! The WebDriver client against a real headless Chromium: a tiny page served on 127.0.0.1,
//! clicked, typed into, waited on and photographed; no Chromium left behind afterwards.

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use o365_migrate_testkit::{Browser, Error};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const PAGE: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>testkit browser</title></head>
<body>
  <h1>Dashboard</h1>
  <p>Status: <span id="status">idle</span></p>
  <input id="name" value="preset">
  <button id="go" class="action">Greet</button>
  <button id="other" class="action">Other</button>
  <script>
    document.getElementById('go').addEventListener('click', () => {
      const name = document.getElementById('name').value;
      // Later, like a dashboard waiting for its API: tests must wait, not read at once.
      setTimeout(() => { document.getElementById('status').textContent = 'hello ' + name; }, 300);
    });
  </script>
</body></html>
"#;

/// Serves `PAGE` at `/` (404 for anything else) until the test ends.
async fn serve_page() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let first = String::from_utf8_lossy(&request);
                let (status, body) = if first.starts_with("GET / ") {
                    ("200 OK", PAGE)
                } else {
                    ("404 Not Found", "not found")
                };
                let answer = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(answer.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    addr
}

/// Processes whose command line holds `pattern` (`pgrep -f`).
fn pgrep(pattern: &str) -> Vec<String> {
    let out = Command::new("pgrep")
        .args(["-a", "-f", "--", pattern])
        .output()
        .expect("run pgrep");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_drives_chromium_through_a_page() {
    let started = Instant::now();
    let addr = serve_page().await;
    let url = format!("http://{addr}/");
    let wait = Duration::from_secs(10);

    let browser = Browser::start().await.expect("start the browser");
    let profile = browser.user_data_dir().to_path_buf();
    let root = profile
        .parent()
        .expect("the browser's directory")
        .to_path_buf();
    let driver_pid = browser.driver_pid();
    eprintln!("browser started in {:?}", started.elapsed());

    browser.goto(&url).await.expect("goto");
    assert_eq!(browser.current_url().await.expect("current url"), url);
    assert_eq!(
        browser.find("h1").await.unwrap().text().await.unwrap(),
        "Dashboard"
    );

    // Chromium is running from our profile, in chromedriver's process group.
    assert!(!pgrep(&format!("--user-data-dir={}", profile.display())).is_empty());

    // A selector matching nothing: an error naming the selector and WebDriver's message.
    let missing = browser
        .find("#nope")
        .await
        .expect_err("no #nope on the page");
    let text = missing.to_string();
    assert!(matches!(missing, Error::Browser { .. }), "{text}");
    assert!(
        text.contains("#nope") && text.contains("no such element"),
        "{text}"
    );
    assert!(browser.find_all("#nope").await.unwrap().is_empty());

    let buttons = browser.find_all("button.action").await.expect("find_all");
    assert_eq!(buttons.len(), 2);
    assert_eq!(buttons[1].text().await.unwrap(), "Other");
    assert_eq!(buttons[0].attr("id").await.unwrap().as_deref(), Some("go"));
    assert_eq!(buttons[0].attr("data-nothing").await.unwrap(), None);

    let input = browser.find("#name").await.expect("find input");
    assert_eq!(
        input.attr("value").await.unwrap().as_deref(),
        Some("preset")
    );
    input.clear().await.expect("clear");
    input.send_keys("Alice").await.expect("send_keys");
    assert_eq!(input.prop("value").await.unwrap(), json!("Alice"));
    // The attribute is the markup's, unchanged by typing.
    assert_eq!(
        input.attr("value").await.unwrap().as_deref(),
        Some("preset")
    );

    browser
        .find("#go")
        .await
        .unwrap()
        .click()
        .await
        .expect("click");
    let seen = browser
        .wait_for_text("#status", "hello Alice", wait)
        .await
        .expect("the click's text");
    assert_eq!(seen, "hello Alice");

    // A wait that cannot succeed reports what it last saw.
    let timeout = browser
        .wait_for_text("#status", "goodbye", Duration::from_millis(300))
        .await
        .expect_err("never says goodbye")
        .to_string();
    assert!(
        timeout.contains("timed out") && timeout.contains("hello Alice"),
        "{timeout}"
    );

    browser
        .wait_until("document.title === 'testkit browser'", wait)
        .await
        .expect("wait_until");
    let until = browser
        .wait_until("1 === 2", Duration::from_millis(200))
        .await
        .expect_err("1 is not 2")
        .to_string();
    assert!(
        until.contains("1 === 2") && until.contains("false"),
        "{until}"
    );

    let sum = browser
        .execute(
            "return arguments[0] + arguments[1].length;",
            &[json!(40), json!("ab")],
        )
        .await
        .expect("execute");
    assert_eq!(sum, json!(42));
    let tag = browser
        .execute("return arguments[0].tagName;", &[input.to_arg()])
        .await
        .expect("execute with an element");
    assert_eq!(tag, json!("INPUT"));

    let dir = tempfile::tempdir().unwrap();
    let shot = dir.path().join("page.png");
    browser.screenshot_png(&shot).await.expect("screenshot");
    let png = std::fs::read(&shot).expect("read screenshot");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
    assert_eq!(&png[12..16], b"IHDR");
    let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(png[20..24].try_into().unwrap());
    assert_eq!(width, 1280, "screenshot width");
    assert!((500..=900).contains(&height), "screenshot height {height}");
    assert!(
        png.len() > 2_000 && png.len() < 5_000_000,
        "{} bytes",
        png.len()
    );

    drop(browser);
    // Nothing left that uses our directory (Chromium, its crash handler), nor alive in
    // chromedriver's process group (zombies waiting for init to reap them are dead already).
    let left = pgrep(&root.display().to_string());
    assert!(left.is_empty(), "Chromium left running: {left:#?}");
    let group = Command::new("ps")
        .args(["-o", "pid=,stat=,args=", "-g", &driver_pid.to_string()])
        .output()
        .expect("run ps");
    let alive: Vec<String> = String::from_utf8_lossy(&group.stdout)
        .lines()
        .filter(|l| {
            l.split_whitespace()
                .nth(1)
                .is_some_and(|stat| !stat.starts_with('Z'))
        })
        .map(str::to_string)
        .collect();
    assert!(
        alive.is_empty(),
        "left in chromedriver's process group: {alive:#?}"
    );
    assert!(!profile.exists(), "profile directory removed");
    eprintln!("whole test took {:?}", started.elapsed());
}
