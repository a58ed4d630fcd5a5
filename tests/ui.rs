//! The handheld UI in real headless Chromium, against the real binary running the demo
//! warehouse: sign in with a badge, pick a whole picking by typing scans the way a
//! keyboard-wedge scanner does (into whatever has focus, ended by Enter), see a wrong scan
//! refused, validate, read the journal on the handheld, then count and transfer.
//! On the console: a manager signs in and sees the mode banner; a conflict made on the demo
//! (an offline pick on a picking then cancelled in its Odoo) is decided from the inbox.
//!
//! Needs Debian's `chromium` and `chromium-driver`; `scripts/test.sh` installs them. Under
//! `CI=true` a missing browser fails the test; elsewhere it is reported and skipped.

// Test code: a failed step should stop with its message.
#![allow(clippy::unwrap_used)]

#[path = "support/demo.rs"]
mod demo;
#[path = "support/webdriver.rs"]
mod webdriver;

use std::time::{Duration, Instant};

use demo::Demo;
use webdriver::{Browser, KEY_ENTER};

const T: Duration = Duration::from_secs(10);

async fn start_demo() -> Demo {
    Demo::start(T).await
}

/// Types a scan into whatever has focus, as a wedge scanner does, and waits for the answer.
async fn scan(b: &Browser, code: &str, answer: &str) {
    clear_feedback(b).await;
    b.active_element_send_keys(&format!("{code}{KEY_ENTER}"))
        .await
        .unwrap();
    b.wait_for_text("#feedback", answer, T)
        .await
        .unwrap_or_else(|e| panic!("after scanning {code}: {e}"));
}

async fn quantity(b: &Browser, q: &str, answer: &str) {
    clear_feedback(b).await;
    let field = b.find("#qty").await.unwrap();
    field.send_keys(&format!("{q}{KEY_ENTER}")).await.unwrap();
    b.wait_for_text("#feedback", answer, T)
        .await
        .unwrap_or_else(|e| panic!("after quantity {q}: {e}"));
}

/// Empties the feedback box so the next wait sees the next answer, not the last one.
async fn clear_feedback(b: &Browser) {
    b.execute(
        "document.getElementById('feedback').textContent = '';",
        vec![],
    )
    .await
    .unwrap();
}

async fn feedback_status(b: &Browser) -> String {
    b.find("#feedback")
        .await
        .unwrap()
        .attr("data-status")
        .await
        .unwrap()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_picks_validates_counts_and_transfers_on_the_handheld() {
    let browser = match Browser::start().await {
        Ok(b) => b,
        Err(e) if std::env::var("CI").as_deref() != Ok("true") => {
            eprintln!("SKIPPED: no headless Chromium here ({e}); scripts/test.sh installs it");
            return;
        }
        Err(e) => panic!("{e}"),
    };
    let demo = start_demo().await;
    let b = &browser;
    b.goto(&format!(
        "http://{}/ui/#token={}",
        demo.addr,
        holdfast::demo::DEMO_TOKEN
    ))
    .await
    .unwrap();

    // Sign in by scanning a badge; the banner shows the appliance's mode.
    b.find("#badge").await.unwrap();
    b.active_element_send_keys(&format!("OP-ALICE{KEY_ENTER}"))
        .await
        .unwrap();
    b.wait_for_text("#operator-name", "Alice", T).await.unwrap();
    b.wait_for_text("#banner-mode", "Online", T).await.unwrap();

    // Choose the picking from the list.
    b.find("[data-workflow=pick]")
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.find("#picking-list [data-picking-name='WH/INT/00001']")
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.wait_for_text("#session-title", "WH/INT/00001", T)
        .await
        .unwrap();
    b.wait_for_text("#prompt", "WH/Stock/A-02-03", T)
        .await
        .unwrap();

    // Line 1: bin, product, then the quantity typed in.
    scan(b, "WH-A-02-03", "At WH/Stock/A-02-03").await;
    scan(b, "5901230000363", "Picked 1/19").await;
    assert_eq!(feedback_status(b).await, "ok");
    // A product of another picking: refused, in red, and nothing recorded.
    scan(b, "5901230000066", "is not on WH/INT/00001").await;
    assert_eq!(feedback_status(b).await, "error");
    quantity(b, "19", "Picked 19/19").await;
    // Line 2: lot-tracked.
    scan(b, "WH-A-03-02", "At WH/Stock/A-03-02").await;
    scan(b, "5901230000035", "scan its lot").await;
    scan(b, "LOT-00004-A", "Picked 1/12").await;
    quantity(b, "12", "Picked 12/12").await;
    // Line 3: scanned one by one.
    scan(b, "WH-A-03-03", "At WH/Stock/A-03-03").await;
    for n in 1..=4 {
        scan(b, "5901230000103", &format!("Picked {n}/4")).await;
    }
    // Every line shows as done.
    let lines = b.find_all("#lines li.done").await.unwrap();
    assert_eq!(lines.len(), 3);

    b.find("#validate").await.unwrap().click().await.unwrap();
    b.wait_for_text("#home", "WH/INT/00001 validated", T)
        .await
        .unwrap();

    // The journal, as the handheld shows it: 8 picks and the validation, newest first.
    b.find("#show-journal")
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.wait_for_text("#journal-list", "validate", T)
        .await
        .unwrap();
    let kinds = b
        .execute(
            "return Array.from(document.querySelectorAll('#journal-list li')).map(li => li.dataset.kind);",
            vec![],
        )
        .await
        .unwrap();
    let kinds: Vec<&str> = kinds
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    assert_eq!(kinds[0], "validate");
    assert_eq!(kinds.iter().filter(|k| **k == "pick").count(), 8);

    // A cycle count.
    b.find("#journal .back")
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.find("[data-workflow=count]")
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.wait_for_text("#prompt", "bin to count", T).await.unwrap();
    scan(b, "WH-A-02-03", "Counting WH/Stock/A-02-03").await;
    scan(b, "5901230000363", "enter the counted quantity").await;
    quantity(b, "38", "Counted 38").await;
    b.find("#finish").await.unwrap().click().await.unwrap();
    b.wait_for_text("#home", "Count finished", T).await.unwrap();

    // A transfer between two bins.
    b.find("[data-workflow=transfer]")
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.wait_for_text("#prompt", "bin to take from", T)
        .await
        .unwrap();
    scan(b, "WH-A-02-03", "Taking from WH/Stock/A-02-03").await;
    scan(b, "5901230000363", "in hand").await;
    quantity(b, "5", "5 x").await;
    scan(b, "WH-A-01-01", "Moved 5").await;
    b.find("#finish").await.unwrap().click().await.unwrap();
    b.wait_for_text("#home", "Transfer finished", T)
        .await
        .unwrap();

    // A receipt, closed short with an explicit backorder.
    b.find("[data-workflow=receive]")
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.find("#picking-list [data-picking-name='WH/IN/00003']")
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.wait_for_text("#session-title", "WH/IN/00003", T)
        .await
        .unwrap();
    scan(b, "5901230000363", "Received 1/10").await;
    quantity(b, "10", "Received 10/10").await;
    clear_feedback(b).await;
    b.find("#validate").await.unwrap().click().await.unwrap();
    b.wait_for_text("#feedback", "some lines are short", T)
        .await
        .unwrap();
    b.find("#bo-yes").await.unwrap().click().await.unwrap();
    b.wait_for_text("#home", "backorder for the rest", T)
        .await
        .unwrap();

    // Labels from the home screen: a bin's and a product's, on the site's printer.
    for code in ["WH-A-02-03", "5901230000363"] {
        b.execute(
            "document.getElementById('label-feedback').textContent = '';",
            vec![],
        )
        .await
        .unwrap();
        let field = b.find("#label-scan").await.unwrap();
        field
            .send_keys(&format!("{code}{KEY_ENTER}"))
            .await
            .unwrap();
        b.wait_for_text("#label-feedback", "Label queued on demo-printer", T)
            .await
            .unwrap_or_else(|e| panic!("label for {code}: {e}"));
    }

    // The appliance journalled every step, and the demo's simulated cloud takes them all:
    // 8 picks + validation, a count, a transfer, 2 receipts + validation.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let status: serde_json::Value = reqwest::Client::new()
            .get(format!("http://{}/api/v1/status", demo.addr))
            .bearer_auth(holdfast::demo::DEMO_MANAGER_TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let queue = &status["queue"];
        let total: i64 = queue
            .as_object()
            .unwrap()
            .values()
            .filter_map(|v| v.as_i64())
            .sum();
        assert_eq!(total, 14, "{status}");
        if queue["applied"] == 14 {
            assert_eq!(status["conflicts"]["open"], 0, "{status}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not reconciled: {status}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_with_another_token_asks_before_replacing_the_handhelds_token() {
    let browser = match Browser::start().await {
        Ok(b) => b,
        Err(e) if std::env::var("CI").as_deref() != Ok("true") => {
            eprintln!("SKIPPED: no headless Chromium here ({e}); scripts/test.sh installs it");
            return;
        }
        Err(e) => panic!("{e}"),
    };
    let demo = start_demo().await;
    let b = &browser;
    let stored = async || {
        b.execute("return localStorage.getItem('holdfast.token');", vec![])
            .await
            .unwrap()
    };
    // A handheld without a token takes the one its set-up link carries, without asking.
    b.goto(&format!(
        "http://{}/ui/#token={}",
        demo.addr,
        holdfast::demo::DEMO_TOKEN
    ))
    .await
    .unwrap();
    b.wait_for_text("#login h1", "Sign in", T).await.unwrap();
    assert_eq!(stored().await, holdfast::demo::DEMO_TOKEN);
    assert!(
        !b.url().await.unwrap().contains("token="),
        "the token left the address bar"
    );

    // A link with another token asks first; keeping the current one changes nothing.
    let other = format!("http://{}/ui/#token=someone-elses-device-token", demo.addr);
    b.goto("about:blank").await.unwrap();
    b.goto(&other).await.unwrap();
    b.wait_for_text("#replace-token h1", "Replace this device", T)
        .await
        .unwrap();
    assert_eq!(
        stored().await,
        holdfast::demo::DEMO_TOKEN,
        "replaced before asking"
    );
    b.find("#replace-token-no")
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.wait_for_text("#login h1", "Sign in", T).await.unwrap();
    assert_eq!(stored().await, holdfast::demo::DEMO_TOKEN);

    // The same link, now accepted: the handheld uses the new token (which this appliance
    // does not know, so it asks to be set up).
    b.goto("about:blank").await.unwrap();
    b.goto(&other).await.unwrap();
    b.wait_for_text("#replace-token h1", "Replace this device", T)
        .await
        .unwrap();
    b.find("#replace-token-yes")
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.wait_for_text("#setup h1", "Set up this device", T)
        .await
        .unwrap();
}

/// The site manager's console in the browser: the overview redirects to the sign-in page, the
/// form signs in, the banner shows the mode and the script keeps the figures live; sign-out
/// (with the CSRF token from the page) ends the session.
#[tokio::test]
async fn a_manager_signs_in_to_the_console_and_sees_the_mode_banner() {
    let browser = match Browser::start().await {
        Ok(b) => b,
        Err(e) if std::env::var("CI").as_deref() != Ok("true") => {
            eprintln!("SKIPPED: no headless Chromium here ({e}); scripts/test.sh installs it");
            return;
        }
        Err(e) => panic!("{e}"),
    };
    let demo = start_demo().await;
    // A manager added on the command line, as on a site.
    add_manager(&demo, "anna", "viewer", "correct horse battery");

    let b = &browser;
    b.goto(&format!("http://{}/console/", demo.addr))
        .await
        .unwrap();
    b.wait_for_text("h1", "Holdfast console", T).await.unwrap();
    assert!(b.url().await.unwrap().ends_with("/console/login"));
    b.find("#name")
        .await
        .unwrap()
        .send_keys("anna")
        .await
        .unwrap();
    b.find("#password")
        .await
        .unwrap()
        .send_keys("correct horse battery")
        .await
        .unwrap();
    b.find("button[type=submit]")
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.wait_for_text(".who", "anna (viewer)", T).await.unwrap();
    let banner = b.find("#banner").await.unwrap();
    let class = banner.attr("class").await.unwrap().unwrap_or_default();
    assert!(class.starts_with("banner mode-"), "{class}");
    // The script ran (the CSP allows the file) and refreshed the figures from the JSON.
    b.wait_for_text("#updated", ":", T).await.unwrap();
    // The demo's simulated Odoo, with the version it reported at connect.
    b.wait_for_text("[data-field=odoo]", "(Odoo ", T)
        .await
        .unwrap();

    b.find("#signout").await.unwrap().click().await.unwrap();
    b.wait_for_text("h1", "Holdfast console", T).await.unwrap();
    b.goto(&format!("http://{}/console/", demo.addr))
        .await
        .unwrap();
    b.wait_for_text("h1", "Holdfast console", T).await.unwrap();
    assert!(
        b.url().await.unwrap().ends_with("/console/login"),
        "signed out"
    );
}

/// Adds a console account on the demo's database with the command line, as a site does.
fn add_manager(demo: &Demo, name: &str, role: &str, password: &str) {
    let (ok, _) = demo.cli(
        &["manager", "add", name, "--role", role, "--password-stdin"],
        &format!("{password}\n"),
    );
    assert!(ok, "manager add");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manager_resolves_a_conflict_from_the_inbox() {
    let browser = match Browser::start_sized(1024, 768).await {
        Ok(b) => b,
        Err(e) if std::env::var("CI").as_deref() != Ok("true") => {
            eprintln!("SKIPPED: no headless Chromium here ({e}); scripts/test.sh installs it");
            return;
        }
        Err(e) => panic!("{e}"),
    };
    let demo = start_demo().await;
    add_manager(&demo, "max", "manager", "correct horse battery");

    let id = demo.provoke_conflict().await;

    // The manager signs in, opens the conflict from the inbox, chooses, writes a note, decides.
    let b = &browser;
    let base = format!("http://{}", demo.addr);
    b.goto(&format!("{base}/console/login")).await.unwrap();
    b.find("#name")
        .await
        .unwrap()
        .send_keys("max")
        .await
        .unwrap();
    b.find("#password")
        .await
        .unwrap()
        .send_keys(&format!("correct horse battery{KEY_ENTER}"))
        .await
        .unwrap();
    b.wait_for_text(".who", "max (manager)", T).await.unwrap();
    b.goto(&format!("{base}/console/conflicts")).await.unwrap();
    b.wait_for_text("main", "picking cancelled in Odoo", T)
        .await
        .unwrap();
    let shot = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/screenshots/console-inbox.png");
    b.screenshot(&shot).await.unwrap();
    b.find(&format!("a[href='/console/conflicts/{id}']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.wait_for_text("h1", &format!("Conflict {id}"), T)
        .await
        .unwrap();
    let note = "Cancelled by the customer; goods back on A-02-03";
    b.find("#action-discard")
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.find("#note")
        .await
        .unwrap()
        .send_keys(note)
        .await
        .unwrap();
    b.find("#resolve button[type=submit]")
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    if let Err(e) = b.wait_for_text("#decision-note", note, T).await {
        // The API's refusal, if that is why, shows in the form.
        let alert = b
            .execute(
                "var a = document.querySelector('#resolve [role=alert]'); return a ? a.textContent : null;",
                vec![],
            )
            .await;
        panic!("{e}; the form says {alert:?}");
    }
    b.wait_for_text("#conflict-audit", "manager:max", T)
        .await
        .unwrap();

    // The decision in the journal, on the audit page, and on the command line.
    b.goto(&format!("{base}/console/journal?kind=resolve"))
        .await
        .unwrap();
    b.wait_for_text("main", note, T).await.unwrap();
    b.goto(&format!("{base}/console/audit?action=conflict."))
        .await
        .unwrap();
    b.wait_for_text("main", "conflict decided", T)
        .await
        .unwrap();
    b.wait_for_text("main", note, T).await.unwrap();
    let (ok, out) = demo.cli(&["conflicts", "show", &id.to_string()], "");
    assert!(ok, "{out}");
    let shown: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(shown["conflict"]["status"], "resolved", "{shown}");
    assert_eq!(shown["conflict"]["resolution"], "discard", "{shown}");
    assert_eq!(shown["conflict"]["note"], note, "{shown}");
    assert_eq!(shown["conflict"]["resolved_by"], "max", "{shown}");
}

#[tokio::test]
async fn a_manager_sees_the_backlog_chart_pulls_now_and_issues_a_token() {
    let browser = match Browser::start_sized(1024, 768).await {
        Ok(b) => b,
        Err(e) if std::env::var("CI").as_deref() != Ok("true") => {
            eprintln!("SKIPPED: no headless Chromium here ({e}); scripts/test.sh installs it");
            return;
        }
        Err(e) => panic!("{e}"),
    };
    // Pulls only at start and when asked: the next scheduled one is a day away, so a new
    // pull time can only come from the button.
    let demo = Demo::start_with(&[("HOLDFAST__SYNC__PULL_INTERVAL_SECS", "86400")], T).await;
    add_manager(&demo, "max", "manager", "correct horse battery");
    let b = &browser;
    let base = format!("http://{}", demo.addr);
    b.goto(&format!("{base}/console/login")).await.unwrap();
    b.find("#name")
        .await
        .unwrap()
        .send_keys("max")
        .await
        .unwrap();
    b.find("#password")
        .await
        .unwrap()
        .send_keys("correct horse battery")
        .await
        .unwrap();
    b.find("button[type=submit]")
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.wait_for_text(".who", "max (manager)", T).await.unwrap();

    // The backlog: the sample taken at start is a point on each chart drawn from samples.
    b.goto(&format!("{base}/console/backlog")).await.unwrap();
    b.wait_for_text("h1", "Backlog", T).await.unwrap();
    let charts = b.find_all("svg.chart[role=img]").await.unwrap();
    assert_eq!(charts.len(), 3, "{}", b.page_source().await.unwrap());
    let points = b.find_all("svg.chart circle.point").await.unwrap();
    assert!(points.len() >= 2, "depth and age have a point each");
    let summary = b.find(".summary").await.unwrap().text().await.unwrap();
    assert!(summary.contains("Queue depth"), "{summary}");
    let shots = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/screenshots");
    b.screenshot(&shots.join("console-backlog.png"))
        .await
        .unwrap();

    // The cache page: the pull at start has finished; "Pull now" brings a newer one.
    let last_pull = async || -> Option<i64> {
        let el = b.find("#last-pull").await.ok()?;
        el.attr("data-at").await.ok()??.parse().ok()
    };
    b.goto(&format!("{base}/console/cache")).await.unwrap();
    let started = Instant::now();
    let first = loop {
        if let Some(at) = last_pull().await {
            break at;
        }
        assert!(
            started.elapsed() < T,
            "the demo's first pull did not finish"
        );
        b.goto(&format!("{base}/console/cache")).await.unwrap();
    };
    b.find("#pull-now button[type=submit]")
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    // console.js reloads the page once the API took the request; the pull then runs.
    let started = Instant::now();
    loop {
        b.goto(&format!("{base}/console/cache")).await.unwrap();
        if last_pull().await.is_some_and(|at| at > first) {
            break;
        }
        assert!(
            started.elapsed() < T,
            "no newer pull after Pull now: {}",
            b.page_source().await.unwrap()
        );
    }
    b.screenshot(&shots.join("console-cache.png"))
        .await
        .unwrap();

    // Devices: a token issued from the page is shown there once, in place of a reload.
    b.goto(&format!("{base}/console/devices")).await.unwrap();
    b.find("#issue-id")
        .await
        .unwrap()
        .send_keys("tablet-7")
        .await
        .unwrap();
    b.find("#issue button[type=submit]")
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    // The page stays (no reload): the token is in the form, once.
    let shown = b.find("#issue [data-result-value]").await.unwrap();
    let token = shown.text().await.unwrap();
    assert!(
        token.len() == 64 && token.chars().all(|c| c.is_ascii_hexdigit()),
        "{token:?}"
    );
    b.execute(
        "document.querySelector('#issue [data-result]').scrollIntoView();",
        vec![],
    )
    .await
    .unwrap();
    b.screenshot(&shots.join("console-devices.png"))
        .await
        .unwrap();
    // The handheld signs in with it on the device API.
    let me = reqwest::Client::new()
        .get(format!("{base}/api/v1/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
}
