//! A small W3C WebDriver client for end-to-end tests of web pages in real headless Chromium.
//!
//! Include it from a test file of the `holdfast` package with
//! `#[path = "support/webdriver.rs"] mod webdriver;`.
//!
//! [`Browser::start`] spawns Debian's `chromedriver` (package `chromium-driver`) on a free
//! loopback port and opens one session of `/usr/bin/chromium` (package `chromium`), headless,
//! with a handheld's 412×915 touch viewport; `scripts/test.sh` installs both packages.
//! Dropping the [`Browser`] kills chromedriver's process group, and with it the browser.
//!
//! chromedriver speaks HTTP/1.1 + JSON: the client is `reqwest` (a dev-dependency of the
//! package) with `serde_json`. Besides those it uses `tokio` and the dev-dependencies
//! `tempfile` (browser profile) and `nix` (killing the process group). Every error is a
//! `String` naming the step that failed.
//!
//! ```ignore
//! let browser = Browser::start().await?;
//! browser.goto(&format!("http://{addr}/")).await?;
//! browser.find("#scan").await?.send_keys(&format!("4006381333931{KEY_ENTER}")).await?;
//! browser.wait_for_text("#result", "Pencil", DEFAULT_TIMEOUT).await?;
//! ```

// Each test file uses a different part of this module; the rest would warn as unused.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// WebDriver key code of Enter (what a keyboard-wedge scanner sends after a barcode).
pub const KEY_ENTER: &str = "\u{E007}";
/// WebDriver key code of Tab.
pub const KEY_TAB: &str = "\u{E004}";
/// WebDriver key code of Backspace.
pub const KEY_BACKSPACE: &str = "\u{E003}";
/// WebDriver key code of Escape.
pub const KEY_ESCAPE: &str = "\u{E00C}";

/// How long [`Browser::find`] waits for an element; generous for a loaded 2-core CI machine.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// How often waits poll the page.
const POLL: Duration = Duration::from_millis(50);
/// How long chromedriver may take to say it is ready.
const DRIVER_READY: Duration = Duration::from_secs(20);
/// Upper bound of one WebDriver command (a session start or page load is the slowest).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// Upper bound of one readiness probe of a chromedriver that is still starting.
const STATUS_TIMEOUT: Duration = Duration::from_secs(2);

/// The JSON key of a web element reference, fixed by the W3C spec.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// The browser's command line: headless, no sandbox (tests run as root in containers, where
/// Chromium's sandbox cannot start), no /dev/shm (often tiny in containers), nothing that
/// talks to the network on its own, and a handheld-sized window (Chromium widens it to its
/// 500 px minimum; the viewport itself comes from `mobileEmulation`, see `new_session`).
const CHROMIUM_ARGS: &[&str] = &[
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-extensions",
    "--no-first-run",
    "--window-size=412,915",
];

/// One headless Chromium session behind its own chromedriver process.
#[derive(Debug)]
pub struct Browser {
    /// chromedriver's address, `127.0.0.1:PORT`.
    addr: String,
    /// The HTTP client that talks to chromedriver.
    http: reqwest::Client,
    session: String,
    driver: Child,
    /// The browser profile and chromedriver's log; removed on drop.
    scratch: tempfile::TempDir,
}

/// A reference to an element of the current page. It becomes stale when the page replaces the
/// element; look it up again then.
#[derive(Debug, Clone)]
pub struct Element<'b> {
    browser: &'b Browser,
    id: String,
}

/// A failed WebDriver command: the W3C error code (e.g. `no such element`) when chromedriver
/// answered with one, and a readable message.
#[derive(Debug)]
struct Failure {
    code: Option<String>,
    message: String,
}

impl Failure {
    fn other(message: impl Into<String>) -> Self {
        Failure {
            code: None,
            message: message.into(),
        }
    }

    fn is(&self, code: &str) -> bool {
        self.code.as_deref() == Some(code)
    }
}

impl Browser {
    /// Starts chromedriver on a free loopback port, waits until it is ready and opens a
    /// session of headless Chromium (about half a second on an idle machine).
    pub async fn start() -> Result<Browser, String> {
        Browser::start_sized(412, 915).await
    }

    /// [`Browser::start`] with another viewport (CSS px), e.g. a tablet's 1024×768 for the
    /// site manager's console.
    pub async fn start_sized(width: u32, height: u32) -> Result<Browser, String> {
        let driver_bin = find_program("chromedriver", "/usr/bin/chromedriver").ok_or(
            "Browser::start: `chromedriver` is neither in PATH nor at /usr/bin/chromedriver; \
             install Debian's `chromium-driver` package (scripts/test.sh does)",
        )?;
        let chromium = find_program("chromium", "/usr/bin/chromium").ok_or(
            "Browser::start: `chromium` is neither in PATH nor at /usr/bin/chromium; \
             install Debian's `chromium` package (scripts/test.sh does)",
        )?;
        // Loopback only: never through a proxy from the environment.
        let http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(2))
            .timeout(COMMAND_TIMEOUT)
            .build()
            .map_err(|e| format!("Browser::start: building the HTTP client: {e}"))?;
        // The free port is found by binding and releasing it, so another process may take it
        // before chromedriver does; chromedriver then exits, and we try another port.
        let mut last_error = String::new();
        for _ in 0..3 {
            let scratch = tempfile::Builder::new()
                .prefix("holdfast-browser-")
                .tempdir()
                .map_err(|e| format!("Browser::start: temporary directory: {e}"))?;
            let port = free_port()?;
            let driver = spawn_driver(&driver_bin, port, scratch.path())?;
            let mut browser = Browser {
                addr: format!("127.0.0.1:{port}"),
                http: http.clone(),
                session: String::new(),
                driver,
                scratch,
            };
            // On failure, dropping `browser` kills this attempt's chromedriver.
            match browser.wait_ready().await {
                Ok(()) => {
                    browser.session = browser.new_session(&chromium, width, height).await?;
                    return Ok(browser);
                }
                Err(e) => last_error = e,
            }
        }
        Err(last_error)
    }

    /// Polls `GET /status` until chromedriver says it is ready, or fails with its log.
    async fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + DRIVER_READY;
        loop {
            if let Ok(Some(status)) = self.driver.try_wait() {
                return Err(format!(
                    "Browser::start: chromedriver exited with {status} before it was ready; \
                     its log:\n{}",
                    self.driver_log()
                ));
            }
            let status = self
                .http
                .get(format!("http://{}/status", self.addr))
                .timeout(STATUS_TIMEOUT)
                .send()
                .await;
            if let Ok(response) = status
                && response.status() == reqwest::StatusCode::OK
                && response
                    .json::<Value>()
                    .await
                    .is_ok_and(|v| v["value"]["ready"] == Value::Bool(true))
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "Browser::start: chromedriver was not ready within {DRIVER_READY:?}; \
                     its log:\n{}",
                    self.driver_log()
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `POST /session`; returns the session id.
    async fn new_session(
        &self,
        chromium: &Path,
        width: u32,
        height: u32,
    ) -> Result<String, String> {
        let profile = self.scratch.path().join("profile");
        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|a| a.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        let capabilities = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": {
                        "binary": chromium.display().to_string(),
                        "args": args,
                        // Headless Chromium keeps windows at least 500 px wide, so the
                        // handheld's viewport comes from device emulation: exactly 412×915
                        // CSS px, a touch screen (`pointer: coarse`), the desktop user agent.
                        "mobileEmulation": {
                            "deviceMetrics": {
                                "width": width, "height": height, "pixelRatio": 1.0, "touch": true,
                            },
                        },
                    },
                    // Milliseconds. No implicit wait: `find` polls by itself.
                    "timeouts": { "implicit": 0, "pageLoad": 30_000, "script": 10_000 },
                }
            }
        });
        let value = self
            .command("POST", "/session", Some(&capabilities))
            .await
            .map_err(|f| {
                format!(
                    "Browser::start: creating the Chromium session failed: {}; \
                     chromedriver's log:\n{}",
                    f.message,
                    self.driver_log()
                )
            })?;
        value["sessionId"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("Browser::start: no sessionId in the answer: {value}"))
    }

    /// The last 4 KiB of chromedriver's log, for error messages.
    fn driver_log(&self) -> String {
        let log = std::fs::read(self.scratch.path().join("chromedriver.log")).unwrap_or_default();
        let tail = &log[log.len().saturating_sub(4096)..];
        String::from_utf8_lossy(tail).into_owned()
    }

    /// Navigates to `url` and waits for the page to load.
    pub async fn goto(&self, url: &str) -> Result<(), String> {
        self.session_command("POST", "/url", Some(&json!({ "url": url })))
            .await
            .map(drop)
            .map_err(|f| format!("goto({url}): {}", f.message))
    }

    /// The current page's URL.
    pub async fn url(&self) -> Result<String, String> {
        let value = self
            .session_command("GET", "/url", None)
            .await
            .map_err(|f| format!("url(): {}", f.message))?;
        Ok(value.as_str().unwrap_or_default().to_owned())
    }

    /// The current page's title.
    pub async fn title(&self) -> Result<String, String> {
        let value = self
            .session_command("GET", "/title", None)
            .await
            .map_err(|f| format!("title(): {}", f.message))?;
        Ok(value.as_str().unwrap_or_default().to_owned())
    }

    /// Saves a PNG of the current viewport at `path` (directories made as needed): the
    /// screenshots CI keeps as artifacts.
    pub async fn screenshot(&self, path: &std::path::Path) -> Result<(), String> {
        use base64::Engine as _;
        let value = self
            .session_command("GET", "/screenshot", None)
            .await
            .map_err(|f| format!("screenshot(): {}", f.message))?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(value.as_str().unwrap_or_default())
            .map_err(|e| format!("screenshot(): not base64: {e}"))?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("screenshot(): {e}"))?;
        }
        std::fs::write(path, png).map_err(|e| format!("screenshot(): {}: {e}", path.display()))
    }

    /// The current page's HTML, as the browser serialises its DOM (for failure diagnosis).
    pub async fn page_source(&self) -> Result<String, String> {
        let value = self
            .session_command("GET", "/source", None)
            .await
            .map_err(|f| format!("page_source(): {}", f.message))?;
        Ok(value.as_str().unwrap_or_default().to_owned())
    }

    /// The first element matching the CSS selector, once it exists and is displayed; waits up
    /// to [`DEFAULT_TIMEOUT`].
    pub async fn find(&self, css: &str) -> Result<Element<'_>, String> {
        self.find_within(css, DEFAULT_TIMEOUT).await
    }

    /// [`Browser::find`] with its own timeout.
    pub async fn find_within(&self, css: &str, timeout: Duration) -> Result<Element<'_>, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let last = match self.find_now(css).await {
                Ok(Some(element)) => match element.is_displayed().await {
                    Ok(true) => return Ok(element),
                    Ok(false) => "it exists but is not displayed".to_owned(),
                    // Replaced between the two commands: look it up again.
                    Err(f) if f.contains("stale element") => "it went stale".to_owned(),
                    Err(f) => return Err(format!("find({css}): {f}")),
                },
                Ok(None) => "no element matches".to_owned(),
                Err(f) => return Err(format!("find({css}): {}", f.message)),
            };
            if Instant::now() > deadline {
                return Err(format!("find({css}): nothing within {timeout:?}: {last}"));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The first element matching the CSS selector right now, if any (no waiting).
    async fn find_now(&self, css: &str) -> Result<Option<Element<'_>>, Failure> {
        let query = json!({ "using": "css selector", "value": css });
        match self.session_command("POST", "/element", Some(&query)).await {
            Ok(value) => self.element(&value).map(Some),
            Err(f) if f.is("no such element") => Ok(None),
            Err(f) => Err(f),
        }
    }

    /// Every element matching the CSS selector right now, in document order (no waiting; use
    /// [`wait_until`] to wait for a count).
    pub async fn find_all(&self, css: &str) -> Result<Vec<Element<'_>>, String> {
        let query = json!({ "using": "css selector", "value": css });
        let value = self
            .session_command("POST", "/elements", Some(&query))
            .await
            .map_err(|f| format!("find_all({css}): {}", f.message))?;
        let items = value
            .as_array()
            .ok_or_else(|| format!("find_all({css}): not a list: {value}"))?;
        items
            .iter()
            .map(|item| self.element(item))
            .collect::<Result<_, _>>()
            .map_err(|f| format!("find_all({css}): {}", f.message))
    }

    /// The element that has the keyboard focus (`<body>` when none has).
    pub async fn active_element(&self) -> Result<Element<'_>, String> {
        let value = self
            .session_command("GET", "/element/active", None)
            .await
            .map_err(|f| format!("active_element(): {}", f.message))?;
        self.element(&value)
            .map_err(|f| format!("active_element(): {}", f.message))
    }

    /// Types `text` on the keyboard, into whatever has the focus, as a keyboard-wedge scanner
    /// does: a key down and up per character through the W3C Actions API, so the page sees
    /// real `keydown`/`keypress`/`input`/`keyup` events even when no input is focused. Key
    /// codes such as [`KEY_ENTER`] may be part of `text`.
    pub async fn active_element_send_keys(&self, text: &str) -> Result<(), String> {
        let keys: Vec<Value> = text
            .chars()
            .flat_map(|c| {
                let key = c.to_string();
                [
                    json!({ "type": "keyDown", "value": key }),
                    json!({ "type": "keyUp", "value": key }),
                ]
            })
            .collect();
        let actions = json!({
            "actions": [{ "type": "key", "id": "keyboard", "actions": keys }]
        });
        self.session_command("POST", "/actions", Some(&actions))
            .await
            .map(drop)
            .map_err(|f| format!("active_element_send_keys({text:?}): {}", f.message))
    }

    /// Runs `script` as the body of a function in the page (W3C "execute script", sync) with
    /// `args` as `arguments`, and returns what it returns. Pass elements with
    /// [`Element::to_arg`]; returned elements come back as element references.
    pub async fn execute(&self, script: &str, args: Vec<Value>) -> Result<Value, String> {
        let body = json!({ "script": script, "args": args });
        self.session_command("POST", "/execute/sync", Some(&body))
            .await
            .map_err(|f| format!("execute({script:?}): {}", f.message))
    }

    /// Polls the text of the first element matching `css` until it contains `needle`; returns
    /// that text. On timeout, the error shows the last text seen.
    pub async fn wait_for_text(
        &self,
        css: &str,
        needle: &str,
        timeout: Duration,
    ) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let last = match self.find_now(css).await {
                Ok(Some(element)) => match element.text().await {
                    Ok(text) if text.contains(needle) => return Ok(text),
                    Ok(text) => format!("last text seen: {text:?}"),
                    Err(e) if e.contains("stale element") => "it went stale".to_owned(),
                    Err(e) => return Err(format!("wait_for_text({css}, {needle:?}): {e}")),
                },
                Ok(None) => "no element matches".to_owned(),
                Err(f) => return Err(format!("wait_for_text({css}, {needle:?}): {}", f.message)),
            };
            if Instant::now() > deadline {
                return Err(format!(
                    "wait_for_text({css}, {needle:?}): not seen within {timeout:?}; {last}"
                ));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Turns an element reference from an answer into an [`Element`].
    fn element(&self, value: &Value) -> Result<Element<'_>, Failure> {
        value[ELEMENT_KEY]
            .as_str()
            .map(|id| Element {
                browser: self,
                id: id.to_owned(),
            })
            .ok_or_else(|| Failure::other(format!("not an element reference: {value}")))
    }

    /// A command of this session: `path` is relative to `/session/{id}`.
    async fn session_command(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, Failure> {
        let path = format!("/session/{}{path}", self.session);
        self.command(method, &path, body).await
    }

    /// One WebDriver command: sends it and returns the answer's `value`, or its error.
    async fn command(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, Failure> {
        let (status, bytes) = self
            .exchange(method, path, body)
            .await
            .map_err(|e| Failure::other(format!("{method} {path}: {e}")))?;
        let mut json: Value = serde_json::from_slice(&bytes).map_err(|e| {
            Failure::other(format!(
                "{method} {path}: HTTP {status}, not JSON ({e}): {}",
                String::from_utf8_lossy(&bytes)
            ))
        })?;
        let value = json["value"].take();
        match value["error"].as_str() {
            None if status == 200 => Ok(value),
            code => {
                // The first line of the message; chromedriver appends its build and stack.
                let message = value["message"].as_str().unwrap_or_default();
                let message = message.lines().next().unwrap_or_default();
                Err(Failure {
                    code: code.map(str::to_owned),
                    message: format!(
                        "{method} {path}: HTTP {status}: {}: {message}",
                        code.unwrap_or("error")
                    ),
                })
            }
        }
    }

    /// One HTTP exchange with chromedriver; returns the status and the body.
    async fn exchange(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Vec<u8>), String> {
        let method = reqwest::Method::from_bytes(method.as_bytes())
            .map_err(|e| format!("bad HTTP method: {e}"))?;
        let mut request = self
            .http
            .request(method.clone(), format!("http://{}{path}", self.addr));
        // chromedriver wants a JSON body on every POST, even an empty one.
        match body {
            Some(value) => request = request.json(value),
            None if method == reqwest::Method::POST => request = request.json(&json!({})),
            None => {}
        }
        let response = request.send().await.map_err(|e| self.http_error(&e))?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(|e| self.http_error(&e))?;
        Ok((status, bytes.to_vec()))
    }

    /// A readable message of a failed exchange, with the causes reqwest keeps behind it.
    fn http_error(&self, error: &reqwest::Error) -> String {
        if error.is_timeout() {
            return format!("no answer within {COMMAND_TIMEOUT:?}");
        }
        let mut message = if error.is_connect() {
            format!("connecting to chromedriver at {}", self.addr)
        } else {
            "talking to chromedriver".to_owned()
        };
        let mut cause: Option<&dyn std::error::Error> = Some(error);
        while let Some(e) = cause {
            message.push_str(&format!(": {e}"));
            cause = e.source();
        }
        message
    }
}

impl Drop for Browser {
    /// Kills chromedriver's whole process group, Chromium included; nothing of the session
    /// needs to survive it, and drop cannot await an HTTP exchange.
    fn drop(&mut self) {
        // chromedriver leads its own process group (see `spawn_driver`), and Chromium's
        // processes are in it too.
        if let Ok(pid) = i32::try_from(self.driver.id()) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Element<'_> {
    /// This element's reference as an argument of [`Browser::execute`].
    pub fn to_arg(&self) -> Value {
        json!({ ELEMENT_KEY: self.id })
    }

    /// Clicks the element's centre, after scrolling it into view.
    pub async fn click(&self) -> Result<(), String> {
        self.command("POST", "/click", Some(&json!({})))
            .await
            .map(drop)
            .map_err(|e| format!("click(): {e}"))
    }

    /// Focuses the element and types `text` into it (W3C "element send keys"); key codes such
    /// as [`KEY_ENTER`] may be part of `text`.
    pub async fn send_keys(&self, text: &str) -> Result<(), String> {
        self.command("POST", "/value", Some(&json!({ "text": text })))
            .await
            .map(drop)
            .map_err(|e| format!("send_keys({text:?}): {e}"))
    }

    /// Empties an input or textarea.
    pub async fn clear(&self) -> Result<(), String> {
        self.command("POST", "/clear", Some(&json!({})))
            .await
            .map(drop)
            .map_err(|e| format!("clear(): {e}"))
    }

    /// The element's rendered text, as the user sees it.
    pub async fn text(&self) -> Result<String, String> {
        let value = self
            .command("GET", "/text", None)
            .await
            .map_err(|e| format!("text(): {e}"))?;
        Ok(value.as_str().unwrap_or_default().to_owned())
    }

    /// An attribute, `None` when the element does not have it. For an input's current
    /// value, use [`Element::property`] with `value`.
    pub async fn attr(&self, name: &str) -> Result<Option<String>, String> {
        let value = self
            .command("GET", &format!("/attribute/{name}"), None)
            .await
            .map_err(|e| format!("attr({name}): {e}"))?;
        Ok(value.as_str().map(str::to_owned))
    }

    /// A DOM property (e.g. `value`, `checked`, `disabled`), `Null` when there is none.
    pub async fn property(&self, name: &str) -> Result<Value, String> {
        self.command("GET", &format!("/property/{name}"), None)
            .await
            .map_err(|e| format!("property({name}): {e}"))
    }

    /// Whether the element is displayed (chromedriver's visibility check).
    pub async fn is_displayed(&self) -> Result<bool, String> {
        let value = self
            .command("GET", "/displayed", None)
            .await
            .map_err(|e| format!("is_displayed(): {e}"))?;
        Ok(value.as_bool().unwrap_or(false))
    }

    /// Whether the element has the keyboard focus.
    pub async fn is_focused(&self) -> Result<bool, String> {
        let value = self
            .browser
            .execute(
                "return document.activeElement === arguments[0];",
                vec![self.to_arg()],
            )
            .await?;
        Ok(value.as_bool().unwrap_or(false))
    }

    /// A command on this element; errors keep chromedriver's code in the text (e.g. `stale
    /// element reference`).
    async fn command(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, String> {
        let path = format!("/element/{}{path}", self.id);
        self.browser
            .session_command(method, &path, body)
            .await
            .map_err(|f| f.message)
    }
}

/// Polls `check` until it returns `Ok(true)`, at most `timeout`; an `Err` from `check` ends
/// the wait at once. The error on timeout names `description`.
///
/// ```ignore
/// wait_until("three rows", DEFAULT_TIMEOUT, async || {
///     Ok(browser.find_all("tr").await?.len() == 3)
/// }).await?;
/// ```
pub async fn wait_until(
    description: &str,
    timeout: Duration,
    mut check: impl AsyncFnMut() -> Result<bool, String>,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        if check()
            .await
            .map_err(|e| format!("wait_until({description}): {e}"))?
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("wait_until({description}): not within {timeout:?}"));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// `name` in PATH, else `fallback` if it exists.
fn find_program(name: &str, fallback: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .chain([PathBuf::from(fallback)])
        .find(|candidate| candidate.is_file())
}

/// A loopback port that was free a moment ago.
fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|e| format!("Browser::start: finding a free port: {e}"))
}

/// Spawns chromedriver in a process group of its own (so drop can kill it with its browser),
/// logging into `dir`.
fn spawn_driver(program: &Path, port: u16, dir: &Path) -> Result<Child, String> {
    use std::os::unix::process::CommandExt;
    Command::new(program)
        .arg(format!("--port={port}"))
        .arg(format!(
            "--log-path={}",
            dir.join("chromedriver.log").display()
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("Browser::start: spawning {}: {e}", program.display()))
}

/// Standard base64 (with padding, as WebDriver sends screenshots) to bytes; `None` for any
/// other character. Twenty lines here rather than a dependency for one test helper.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes().filter(|c| !c.is_ascii_whitespace()) {
        if c == b'=' {
            break;
        }
        let v = ALPHABET.iter().position(|a| *a == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}
