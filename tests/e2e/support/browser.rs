//! Debian's Chromium, headless, driven over the DevTools protocol (a
//! WebSocket carrying JSON commands): loading a page, reading it with
//! JavaScript, clicking, and taking screenshots. Killed on drop.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

use super::server::TempDir;

/// Longest a command to the browser may take.
const COMMAND_WITHIN: Duration = Duration::from_secs(30);

/// A headless Chromium with one page.
pub struct Browser {
    child: Child,
    socket: Mutex<WebSocket<MaybeTlsStream<TcpStream>>>,
    next_id: AtomicU64,
    _profile: TempDir,
}

/// The Chromium binary: `SHOAL_CHROMIUM`, else `chromium` on PATH
/// (`deploy/tools.sh` installs Debian's package).
fn chromium() -> PathBuf {
    std::env::var_os("SHOAL_CHROMIUM").map_or_else(|| PathBuf::from("chromium"), PathBuf::from)
}

impl Browser {
    /// Starts Chromium headless on a blank page and attaches to that page.
    pub fn launch() -> Self {
        let profile = TempDir::new("chromium");
        let child = Command::new(chromium())
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                "--window-size=1280,900",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| {
                panic!(
                    "cannot start {} (install Debian's chromium, or run deploy/tools.sh): {err}",
                    chromium().display()
                )
            });
        let port = devtools_port(profile.path());
        let page = page_socket_url(port);
        let (socket, _) = tungstenite::connect(page.as_str()).expect("attach to the page");
        if let MaybeTlsStream::Plain(stream) = socket.get_ref() {
            stream
                .set_read_timeout(Some(COMMAND_WITHIN))
                .expect("a read timeout");
        }
        let browser = Self {
            child,
            socket: Mutex::new(socket),
            next_id: AtomicU64::new(1),
            _profile: profile,
        };
        browser.call("Page.enable", json!({}));
        browser
    }

    /// Sends one command and returns its result, skipping the events between.
    pub fn call(&self, method: &str, params: Value) -> Value {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut socket = self.socket.lock().expect("the socket");
        let command = json!({ "id": id, "method": method, "params": params });
        socket
            .send(Message::text(command.to_string()))
            .unwrap_or_else(|err| panic!("{method}: cannot send: {err}"));
        let deadline = Instant::now() + COMMAND_WITHIN;
        while Instant::now() < deadline {
            let message = socket
                .read()
                .unwrap_or_else(|err| panic!("{method}: no answer: {err}"));
            let Message::Text(text) = message else {
                continue;
            };
            let answer: Value = serde_json::from_str(&text).expect("JSON from the browser");
            if answer["id"] == json!(id) {
                if let Some(error) = answer.get("error") {
                    panic!("{method} failed: {error}");
                }
                return answer["result"].clone();
            }
        }
        panic!("{method}: no answer within {COMMAND_WITHIN:?}")
    }

    /// Opens `url` in the page.
    pub fn open(&self, url: &str) {
        self.call("Page.navigate", json!({ "url": url }));
    }

    /// The value of a JavaScript expression in the page (promises awaited);
    /// `Err` with the exception's text when it threw.
    pub fn eval(&self, expression: &str) -> Result<Value, String> {
        let result = self.call(
            "Runtime.evaluate",
            json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
        );
        match result.get("exceptionDetails") {
            Some(details) => Err(details["exception"]["description"]
                .as_str()
                .unwrap_or("an exception")
                .to_string()),
            None => Ok(result["result"]["value"].clone()),
        }
    }

    /// The page's text content of the first element matching `selector`.
    pub fn text(&self, selector: &str) -> Result<String, String> {
        let expression = format!(
            "(() => {{ const node = document.querySelector({}); return node ? node.textContent : null; }})()",
            json!(selector)
        );
        match self.eval(&expression)? {
            Value::String(text) => Ok(text),
            _ => Err(format!("nothing matches {selector}")),
        }
    }

    /// Clicks the first element matching `selector`.
    pub fn click(&self, selector: &str) -> Result<(), String> {
        let expression = format!(
            "(() => {{ const node = document.querySelector({}); if (!node) return false; node.click(); return true; }})()",
            json!(selector)
        );
        match self.eval(&expression)? {
            Value::Bool(true) => Ok(()),
            _ => Err(format!("nothing to click at {selector}")),
        }
    }

    /// Saves a PNG screenshot of the page at `path` and returns its bytes.
    pub fn screenshot(&self, path: &Path) -> Vec<u8> {
        let shot = self.call("Page.captureScreenshot", json!({ "format": "png" }));
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("image data"))
            .expect("base64 image data");
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("the artifacts folder");
        }
        std::fs::write(path, &png).expect("write the screenshot");
        png
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The DevTools port Chromium chose, from the file it writes in its profile.
fn devtools_port(profile: &Path) -> u16 {
    let file = profile.join("DevToolsActivePort");
    let deadline = Instant::now() + COMMAND_WITHIN;
    while Instant::now() < deadline {
        if let Ok(text) = std::fs::read_to_string(&file) {
            if let Some(port) = text.lines().next().and_then(|line| line.parse().ok()) {
                return port;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "Chromium wrote no {} within {COMMAND_WITHIN:?}",
        file.display()
    )
}

/// The WebSocket of the browser's first page, from its `/json/list`.
fn page_socket_url(port: u16) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("reach the DevTools port");
    std::io::Write::write_all(
        &mut stream,
        format!("GET /json/list HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n").as_bytes(),
    )
    .expect("ask for the pages");
    let mut reader = BufReader::new(stream);
    let mut length = 0;
    let mut line = String::new();
    while reader
        .read_line(&mut line)
        .map(|read| read > 2)
        .unwrap_or(false)
    {
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().expect("a length");
            }
        }
        line.clear();
    }
    let mut body = vec![0; length];
    std::io::Read::read_exact(&mut reader, &mut body).expect("the page list");
    let pages: Value = serde_json::from_slice(&body).expect("the page list as JSON");
    pages
        .as_array()
        .and_then(|pages| pages.iter().find(|page| page["type"] == "page"))
        .and_then(|page| page["webSocketDebuggerUrl"].as_str())
        .expect("a page to attach to")
        .to_string()
}

/// Where tests keep what a person may want to look at after a run.
pub fn artifact(name: &str) -> PathBuf {
    super::server::repo_dir()
        .join("target")
        .join("e2e-artifacts")
        .join(name)
}
