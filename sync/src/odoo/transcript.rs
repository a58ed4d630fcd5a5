//! Wire transcripts: with `HOLDFAST_ODOO_TRANSCRIPT=<dir>` set, every HTTP exchange the client
//! makes (model calls, `authenticate`, the version probe, health checks) is written as one
//! JSON file, so that the simulator can be held to what a real Odoo answered
//! (`sync/tests/transcripts.rs` replays them).
//!
//! Layout: `<dir>/<test>/<nnnn>-<label>.json`, numbered in the order the requests were sent.
//! `<test>` is the name of the thread making the call: libtest names each test's thread after
//! the test, and `#[tokio::test]` runs the test's future on that thread; anything else is
//! recorded under `run`. The first call of a test in a process removes that test's earlier
//! files, so recording again replaces a transcript instead of mixing two runs.
//!
//! One file:
//!
//! ```json
//! {"test": "...", "seq": 3, "protocol": "jsonrpc" | "json2" | "http", "label": "stock.picking.create",
//!  "request": {"method": "POST", "path": "/jsonrpc", "headers": {...}, "body": ...},
//!  "answer": {"status": 200, "body": ..., "trimmed": [...]}}
//! ```
//!
//! or `"failure": "<error>"` instead of `answer` when no answer was read. Bodies are JSON
//! values when they parse, text otherwise (cut to 200 characters). Files are compact JSON
//! (`jq .` indents them): the `fields_get` answers of every connection would double in size
//! otherwise.
//!
//! What is kept out, because transcripts are committed: the API key (wherever its text
//! appears, and always the password argument of `execute_kw` / `authenticate`, read as
//! `"<key>"`), the `Authorization` header's credentials. What is shortened, because the client
//! needs only the head of it: `debug` tracebacks (first 300 characters) and result lists of more
//! than 4 KiB, cut to [`KEEP_RECORDS`] records (or [`KEEP_ITEMS`] plain values), each noted in
//! `answer.trimmed`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use serde_json::{Map, Value, json};

/// The variable naming the directory transcripts go to.
pub const TRANSCRIPT_ENV: &str = "HOLDFAST_ODOO_TRANSCRIPT";

/// Records kept of a longer list of records in a result.
pub const KEEP_RECORDS: usize = 5;
/// Plain values (ids) kept of a longer list in a result.
pub const KEEP_ITEMS: usize = 50;
/// Lists shorter than this (serialized) are never cut.
const KEEP_LIST_BYTES: usize = 4096;
/// Characters of a `debug` traceback kept.
const KEEP_DEBUG: usize = 300;
/// Characters of a body that is not JSON kept: as many as the client quotes in its errors
/// (an HTML page's head; its CSRF token comes later).
const KEEP_TEXT: usize = 200;
/// What stands for the API key and the password argument.
pub const KEY_PLACEHOLDER: &str = "<key>";

struct Recorder {
    dir: PathBuf,
    /// Next number per test; a test seen for the first time has its old files removed.
    next: Mutex<HashMap<String, u32>>,
}

fn recorder() -> Option<&'static Recorder> {
    static RECORDER: OnceLock<Option<Recorder>> = OnceLock::new();
    RECORDER
        .get_or_init(|| {
            let dir = std::env::var_os(TRANSCRIPT_ENV).filter(|d| !d.is_empty())?;
            Some(Recorder {
                dir: PathBuf::from(dir),
                next: Mutex::new(HashMap::new()),
            })
        })
        .as_ref()
}

/// One exchange being recorded: what was sent, waiting for its answer.
pub(crate) struct Recording {
    path: PathBuf,
    entry: Map<String, Value>,
    key: String,
}

/// The test a call belongs to: the thread's name when libtest named it, else `run`.
fn test_name() -> String {
    let thread = std::thread::current();
    let name = match thread.name() {
        Some(n) if n != "main" && !n.starts_with("tokio-") => n,
        _ => "run",
    };
    // `module::test` → `module.test`; nothing that could leave the directory.
    name.replace("::", ".")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect::<String>()
        .trim_start_matches('.')
        .to_owned()
}

/// Starts recording `request` when transcripts are on; `key` is scrubbed from it.
pub(crate) fn begin(request: &reqwest::Request, key: &str) -> Option<Recording> {
    let recorder = recorder()?;
    let test = test_name();
    let seq = {
        let mut next = recorder.next.lock().unwrap_or_else(|p| p.into_inner());
        let n = next.entry(test.clone()).or_insert_with(|| {
            clear(&recorder.dir.join(&test));
            1
        });
        let seq = *n;
        *n += 1;
        seq
    };
    let path = request.url().path().to_owned();
    let body = request
        .body()
        .and_then(reqwest::Body::as_bytes)
        .map(|b| scrubbed_body(b, key))
        .unwrap_or(Value::Null);
    let protocol = if path == "/jsonrpc" {
        "jsonrpc"
    } else if path.starts_with("/json/2/") {
        "json2"
    } else {
        "http"
    };
    let label = label(&path, &body);
    let mut headers = Map::new();
    for (name, value) in request.headers() {
        let value = value.to_str().unwrap_or_default();
        match name.as_str() {
            // Only the scheme: the rest is the key.
            "authorization" => {
                let scheme = value.split_whitespace().next().unwrap_or_default();
                headers.insert(
                    name.to_string(),
                    json!(format!("{scheme} {KEY_PLACEHOLDER}")),
                );
            }
            "x-odoo-database" => {
                headers.insert(name.to_string(), json!(value));
            }
            _ => {}
        }
    }
    let file = recorder
        .dir
        .join(&test)
        .join(format!("{seq:04}-{}.json", file_safe(&label)));
    let mut entry = Map::new();
    entry.insert("test".into(), json!(test));
    entry.insert("seq".into(), json!(seq));
    entry.insert("protocol".into(), json!(protocol));
    entry.insert("label".into(), json!(label));
    entry.insert(
        "request".into(),
        json!({"method": request.method().as_str(), "path": path, "headers": headers, "body": body}),
    );
    Some(Recording {
        path: file,
        entry,
        key: key.to_owned(),
    })
}

impl Recording {
    /// Adds the answer (status and body as received) or why there was none, and writes the
    /// file. A transcript that cannot be written is logged, never an error of the call.
    pub(crate) fn finish(mut self, outcome: Result<(u16, &[u8]), String>) {
        match outcome {
            Ok((status, body)) => {
                let mut body = scrubbed_body(body, &self.key);
                let mut trimmed = Vec::new();
                trim_answer(&mut body, &mut trimmed);
                let mut answer = json!({"status": status, "body": body});
                if !trimmed.is_empty() {
                    answer["trimmed"] = Value::Array(trimmed);
                }
                self.entry.insert("answer".into(), answer);
            }
            Err(failure) => {
                let failure = scrub_text(&failure, &self.key);
                self.entry.insert("failure".into(), json!(failure));
            }
        }
        let write = || -> std::io::Result<()> {
            if let Some(parent) = self.path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let text =
                serde_json::to_string(&Value::Object(self.entry)).map_err(std::io::Error::other)?;
            std::fs::write(&self.path, text + "\n")
        };
        if let Err(e) = write() {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot write the wire transcript");
        }
    }
}

/// Removes a test's transcript files of an earlier run (only `*.json`: nothing else there is
/// ours to delete).
fn clear(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "json")
            && let Err(e) = std::fs::remove_file(&path)
        {
            tracing::warn!(path = %path.display(), error = %e, "cannot remove an old transcript");
        }
    }
}

/// What a call was, for the file name: `model.method`, `common.authenticate`, `web.health`.
fn label(path: &str, body: &Value) -> String {
    if let Some(route) = path.strip_prefix("/json/2/") {
        return route.replace('/', ".");
    }
    if path == "/jsonrpc" {
        let params = &body["params"];
        let service = params["service"].as_str().unwrap_or("?");
        let method = params["method"].as_str().unwrap_or("?");
        if service == "object" && method == "execute_kw" {
            let args = &params["args"];
            return format!(
                "{}.{}",
                args[3].as_str().unwrap_or("?"),
                args[4].as_str().unwrap_or("?")
            );
        }
        return format!("{service}.{method}");
    }
    format!("web.{}", path.rsplit('/').next().unwrap_or_default())
}

fn file_safe(label: &str) -> String {
    label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn scrub_text(text: &str, key: &str) -> String {
    if key.is_empty() {
        text.to_owned()
    } else {
        text.replace(key, KEY_PLACEHOLDER)
    }
}

/// A body as JSON (text when it is not), with the key and the password argument scrubbed.
fn scrubbed_body(bytes: &[u8], key: &str) -> Value {
    let text = scrub_text(&String::from_utf8_lossy(bytes), key);
    match serde_json::from_str::<Value>(&text) {
        Ok(mut value) => {
            // `execute_kw(db, uid, password, ...)` and `authenticate(db, login, password, ...)`:
            // the third argument is a credential whatever its text (a wrong key is one too).
            if let Some(params) = value.get_mut("params")
                && matches!(
                    params.get("method").and_then(Value::as_str),
                    Some("execute_kw" | "execute" | "authenticate" | "login")
                )
                && let Some(password) = params.get_mut("args").and_then(|a| a.get_mut(2))
            {
                *password = json!(KEY_PLACEHOLDER);
            }
            value
        }
        Err(_) => {
            let mut cut = text;
            if cut.len() > KEEP_TEXT {
                cut.truncate(cut.floor_char_boundary(KEEP_TEXT));
                cut.push_str(" [cut]");
            }
            Value::String(cut)
        }
    }
}

/// Shortens what the client does not need whole: `debug` tracebacks and long result lists.
fn trim_answer(body: &mut Value, notes: &mut Vec<Value>) {
    // JSON-RPC errors carry it in `error.data`, JSON-2 errors at the top.
    for pointer in ["/error/data/debug", "/debug"] {
        if let Some(Value::String(text)) = body.pointer_mut(pointer)
            && text.len() > KEEP_DEBUG
        {
            let total = text.len();
            text.truncate(text.floor_char_boundary(KEEP_DEBUG));
            notes.push(json!({"at": "debug", "kept_chars": text.len(), "of_chars": total}));
        }
    }
    let (at, list) = match body {
        Value::Array(_) => ("", Some(body)),
        Value::Object(map) => ("/result", map.get_mut("result")),
        _ => ("", None),
    };
    if let Some(Value::Array(items)) = list {
        let keep = if items.iter().any(Value::is_object) {
            KEEP_RECORDS
        } else {
            KEEP_ITEMS
        };
        // Small lists stay whole whatever their length (`ir.model` answers name every
        // model the client may use).
        if items.len() > keep
            && serde_json::to_vec(&*items).map_or(0, |b| b.len()) > KEEP_LIST_BYTES
        {
            let total = items.len();
            items.truncate(keep);
            notes.push(json!({"at": at, "kept": keep, "of": total}));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_and_the_password_argument_are_scrubbed() {
        let body = json!({"jsonrpc": "2.0", "method": "call", "params": {"service": "object", "method": "execute_kw",
            "args": ["db", 2, "s3cret-key", "res.partner", "write", [[1]], {"vals": {"comment": "s3cret-key"}}]}});
        let scrubbed = scrubbed_body(body.to_string().as_bytes(), "s3cret-key");
        assert!(!scrubbed.to_string().contains("s3cret"), "{scrubbed}");
        assert_eq!(scrubbed["params"]["args"][2], KEY_PLACEHOLDER);
        // A wrong key is a credential too: scrubbed although it is not the configured key.
        let body = json!({"params": {"service": "common", "method": "authenticate", "args": ["db", "me", "other", {}]}});
        let scrubbed = scrubbed_body(body.to_string().as_bytes(), "s3cret-key");
        assert_eq!(scrubbed["params"]["args"][2], KEY_PLACEHOLDER);
        assert_eq!(
            scrubbed_body(b"<html>s3cret-key</html>", "s3cret-key"),
            json!("<html><key></html>")
        );
    }

    #[test]
    fn answers_keep_what_the_client_needs() {
        let mut rpc = json!({"jsonrpc": "2.0", "id": 1, "result": (0..200).map(|i| json!({"id": i, "name": "a product"})).collect::<Vec<_>>()});
        let mut notes = Vec::new();
        trim_answer(&mut rpc, &mut notes);
        assert_eq!(rpc["result"].as_array().map(Vec::len), Some(KEEP_RECORDS));
        assert_eq!(notes, vec![json!({"at": "/result", "kept": 5, "of": 200})]);
        let mut small = json!({"result": (0..20).map(|i| json!({"id": i})).collect::<Vec<_>>()});
        let mut notes = Vec::new();
        trim_answer(&mut small, &mut notes);
        assert_eq!(
            small["result"].as_array().map(Vec::len),
            Some(20),
            "small lists stay whole"
        );

        let mut ids = json!((0..30).collect::<Vec<_>>());
        let mut notes = Vec::new();
        trim_answer(&mut ids, &mut notes);
        assert_eq!(
            ids.as_array().map(Vec::len),
            Some(30),
            "short id lists stay whole"
        );
        assert!(notes.is_empty());

        let mut err =
            json!({"name": "odoo.exceptions.UserError", "message": "m", "debug": "x".repeat(5000)});
        let mut notes = Vec::new();
        trim_answer(&mut err, &mut notes);
        assert_eq!(err["debug"].as_str().map(str::len), Some(KEEP_DEBUG));
        assert_eq!(err["message"], "m");
        assert_eq!(notes.len(), 1);
    }

    #[test]
    fn labels_name_the_call() {
        let rpc = json!({"params": {"service": "object", "method": "execute_kw", "args": ["db", 2, "k", "stock.picking", "button_validate"]}});
        assert_eq!(label("/jsonrpc", &rpc), "stock.picking.button_validate");
        let auth = json!({"params": {"service": "common", "method": "authenticate"}});
        assert_eq!(label("/jsonrpc", &auth), "common.authenticate");
        assert_eq!(
            label("/json/2/stock.quant/search_read", &Value::Null),
            "stock.quant.search_read"
        );
        assert_eq!(
            label("/web/webclient/version_info", &Value::Null),
            "web.version_info"
        );
    }
}
