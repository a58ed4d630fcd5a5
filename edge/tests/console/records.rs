//! The console's record pages over real HTTP: the conflicts inbox and a conflict's detail, the
//! journal browser and an entry, the floor sessions with a manager's cancel, the audit trail.
//! The data is made the way the appliance makes it: journal entries appended to the store, a
//! push attempt held back as a conflict (the push's own store commands), a floor session
//! started by a handheld over the device API.

use super::*;
use holdfast::store::MirrorBatch;
use holdfast::store::{AttemptFailure, Lane, NewConflict, NewEntry, OperatorRow, PushCmd, Settle};
use holdfast_sync::ops::{Operation, PickOp};
use holdfast_sync::records::{
    CompanyId, LocationId, Picking, PickingCode, PickingId, PickingState, PickingType,
    PickingTypeId, Record,
};

/// What [`fixture`] made.
struct Fixture {
    /// Entries of picking 1 (device h1, operator alice), held back by conflict 1.
    held: Vec<i64>,
    /// The open floor session (alice counting on h1).
    session: String,
}

fn pick(picking_id: i64, product_id: i64) -> Operation {
    Operation::Pick(PickOp {
        picking_id,
        move_id: picking_id * 10,
        product_id,
        location_id: 10,
        lot_name: None,
        package_id: None,
        quantity: 2.0,
        view_quantity: 0.0,
    })
}

fn picking_type() -> Record {
    Record::PickingType(PickingType {
        id: PickingTypeId(2),
        name: "Delivery Orders".into(),
        code: PickingCode::Outgoing,
        barcode: None,
        warehouse_id: None,
        default_location_src_id: None,
        default_location_dest_id: None,
    })
}

/// Picking 1 as Odoo has it.
fn delivery(state: PickingState) -> Record {
    Record::Picking(Picking {
        id: PickingId(1),
        name: "WH/OUT/00001".into(),
        state,
        picking_type_id: PickingTypeId(2),
        location_id: LocationId(10),
        location_dest_id: LocationId(20),
        partner_id: None,
        origin: None,
        scheduled_date: None,
        backorder_id: None,
        company_id: CompanyId(1),
    })
}

async fn append(server: &Server, device: &str, operator: &str, op: Operation) -> i64 {
    server
        .store
        .append(
            Lane::Device,
            NewEntry {
                id: None,
                device: device.into(),
                operator: Some(operator.into()),
                op,
            },
        )
        .await
        .unwrap()
        .seq
}

/// A device write with a fresh idempotency key.
async fn device_post(base: &str, path: &str, body: Value) -> Value {
    let key = format!(
        "{:08x}-0000-4000-8000-{:012x}",
        fastrand::u32(..),
        fastrand::u64(..) & 0xffff_ffff_ffff
    );
    let answer = client()
        .post(format!("{base}{path}"))
        .bearer_auth(DEVICE)
        .header("Idempotency-Key", key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = answer.status();
    let body: Value = answer.json().await.unwrap();
    assert!(status.is_success(), "POST {path}: {status} {body}");
    body
}

/// Managers max (manager) and vera (viewer); 3 picks of picking 1 (WH/OUT/00001) on h1 by
/// alice held back as an open `picking_cancelled` conflict (1) after a push attempt, and a pull
/// that sees the picking cancelled; 2 picks of picking 2 on h2
/// by bob applied with a flagged `over_pick` conflict (2); alice counting on h1.
async fn fixture(server: &Server) -> Fixture {
    server.add_manager("max", "manager").await;
    server.add_manager("vera", "viewer").await;
    // The mirror knows picking 1 as WH/OUT/00001, ready.
    server
        .store
        .apply_mirror(MirrorBatch {
            epoch: None,
            upserts: vec![picking_type(), delivery(PickingState::Assigned)],
            deletes: Vec::new(),
        })
        .await
        .unwrap();
    let mut held = Vec::new();
    for product in 1..=3 {
        held.push(append(server, "h1", "alice", pick(1, product)).await);
    }
    let mut applied = Vec::new();
    for product in 4..=5 {
        applied.push(append(server, "h2", "bob", pick(2, product)).await);
    }
    // The push: an attempt of picking 1 that Odoo answers with a cancelled picking...
    let store = &server.store;
    store
        .push(PushCmd::Begin { seqs: held.clone() })
        .await
        .unwrap();
    store
        .push(PushCmd::Settle {
            seqs: held.clone(),
            settle: Settle::Hold {
                rejected: false,
                conflict: NewConflict {
                    kind: "picking_cancelled".into(),
                    policy: "manual".into(),
                    message: "WH/OUT/00001 was cancelled in Odoo".into(),
                    edge: json!({"state": "assigned", "picked": 6}),
                    cloud: json!({"state": "cancel", "picked": 0}),
                },
            },
            failure: Some(AttemptFailure {
                call: Some("stock.picking.write".into()),
                class: "conflict".into(),
                message: "the picking is cancelled in Odoo".into(),
            }),
        })
        .await
        .unwrap();
    // A pull then sees the picking cancelled in Odoo: a change on a picking the floor owns.
    let epoch = store.begin_pull().await.unwrap();
    let pulled = store
        .apply_mirror(MirrorBatch {
            epoch: Some(epoch),
            upserts: vec![delivery(PickingState::Cancel)],
            deletes: Vec::new(),
        })
        .await
        .unwrap();
    assert_eq!(pulled.changes, 1);
    // ...and one of picking 2, applied though Odoo had less in the bin.
    store
        .push(PushCmd::Begin {
            seqs: applied.clone(),
        })
        .await
        .unwrap();
    store
        .push(PushCmd::Settle {
            seqs: applied,
            settle: Settle::Applied {
                remote_ref: Some("stock.picking,2".into()),
                note: None,
                flagged: vec![NewConflict {
                    kind: "over_pick".into(),
                    policy: "edge_wins".into(),
                    message: "4 picked from a bin Odoo says holds 3".into(),
                    // What Odoo sends back is data: shown, never interpreted.
                    edge: json!({"picked": 4, "lot": "<script>alert(1)</script>"}),
                    cloud: json!({"on_hand": 3}),
                }],
            },
            failure: None,
        })
        .await
        .unwrap();
    // Alice signs in on h1 and starts counting.
    store
        .floor(holdfast::store::FloorCmd::AddOperator(OperatorRow {
            id: "alice".into(),
            name: "Alice Example".into(),
            badge: Some("OP-ALICE".into()),
            pin_hash: None,
            active: true,
            language: None,
        }))
        .await
        .unwrap();
    device_post(&server.base, "/api/v1/login", json!({"badge": "OP-ALICE"})).await;
    let started = device_post(
        &server.base,
        "/api/v1/sessions",
        json!({"workflow": "count"}),
    )
    .await;
    Fixture {
        held,
        session: started["session"]["id"].as_str().unwrap().to_owned(),
    }
}

/// The cookie of a form sign-in.
async fn page_cookie(http: &reqwest::Client, base: &str, name: &str) -> String {
    let answer = sign_in_by_form(http, base, name, PASSWORD).await;
    assert_eq!(answer.status(), 303);
    answer.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

/// A console page's HTML (200 with the console's headers asserted).
async fn page(http: &reqwest::Client, base: &str, path: &str, cookie: &str) -> String {
    let answer = http
        .get(format!("{base}{path}"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200, "{path}");
    assert_page_headers(&answer);
    // The template engine escapes `/` too; the assertions read the text a browser shows.
    answer.text().await.unwrap().replace("&#x2f;", "/")
}

/// The page's "next page" link, as a browser follows it.
fn next_link(body: &str) -> Option<String> {
    let end = body.find("\" rel=\"next\"")?;
    let start = body[..end].rfind("href=\"")? + "href=\"".len();
    Some(body[start..end].replace("&amp;", "&"))
}

/// How many journal entries a page links to (each list row links its entry).
fn entry_rows(body: &str) -> usize {
    body.matches("<td><a href=\"/console/journal/").count()
}

#[tokio::test]
async fn the_inbox_lists_filters_and_shows_a_conflict_a_manager_then_decides() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let fx = fixture(&server).await;
    let http = page_client();
    let base = &server.base;
    let max = page_cookie(&http, base, "max").await;
    let vera = page_cookie(&http, base, "vera").await;

    // Both wait for a person (open and flagged); the filters narrow the list.
    let inbox = page(&http, base, "/console/conflicts", &max).await;
    assert!(
        inbox.contains(r#"<a href="/console/conflicts/1">"#),
        "{inbox}"
    );
    assert!(
        inbox.contains(r#"<a href="/console/conflicts/2">"#),
        "{inbox}"
    );
    assert!(inbox.contains("picking cancelled in Odoo"), "{inbox}");
    assert!(
        inbox.contains("WH/OUT/00001 was cancelled in Odoo"),
        "{inbox}"
    );
    let by_kind = page(
        &http,
        base,
        "/console/conflicts?state=open&kind=over_pick",
        &max,
    )
    .await;
    assert!(
        !by_kind.contains(r#"href="/console/conflicts/1""#),
        "{by_kind}"
    );
    assert!(
        by_kind.contains(r#"href="/console/conflicts/2""#),
        "{by_kind}"
    );
    let by_picking = page(&http, base, "/console/conflicts?picking=1", &max).await;
    assert!(by_picking.contains(r#"href="/console/conflicts/1""#));
    assert!(!by_picking.contains(r#"href="/console/conflicts/2""#));
    // By the picking's name, as a person knows it; the list names it too.
    let by_name = page(
        &http,
        base,
        "/console/conflicts?picking=WH%2FOUT%2F00001",
        &max,
    )
    .await;
    assert!(
        by_name.contains(r#"href="/console/conflicts/1""#),
        "{by_name}"
    );
    assert!(!by_name.contains(r#"href="/console/conflicts/2""#));
    assert!(by_name.contains("<td>WH/OUT/00001</td>"), "{by_name}");
    let decided = page(&http, base, "/console/conflicts?state=resolved", &max).await;
    assert!(decided.contains("No conflict matches."), "{decided}");
    let unknown = page(&http, base, "/console/conflicts?picking=WH%2FNOPE", &max).await;
    assert!(
        unknown.contains("No picking is named “WH/NOPE”."),
        "{unknown}"
    );

    // The detail: both sides, the policy, the held entries, the decisions for a manager.
    let detail = page(&http, base, "/console/conflicts/1", &max).await;
    for text in [
        "Conflict 1: picking cancelled in Odoo",
        "manual: waits for a person",
        "<th scope=\"row\">state</th><td>assigned</td><td>cancel</td>",
        r#"data-api="/api/v1/conflicts/1/resolve" data-method="POST""#,
        r#"<input type="radio" id="action-discard" name="action" value="discard""#,
        r#"<label for="note">"#,
        // What the pull saw change in Odoo.
        "stock.picking 1</td><td>state assigned, from 10 to 20 -&gt; state cancel, from 10 to 20",
    ] {
        assert!(detail.contains(text), "{text} in {detail}");
    }
    for seq in &fx.held {
        assert!(detail.contains(&format!(r#"href="/console/journal/{seq}""#)));
    }
    // A viewer reads it but gets no form, and the API refuses the viewer's decision.
    let as_viewer = page(&http, base, "/console/conflicts/1", &vera).await;
    assert!(!as_viewer.contains("data-api=\"/api/v1/conflicts/1/resolve\""));
    assert!(as_viewer.contains("A manager decides this conflict"));
    let viewer = sign_in(&client(), base, "vera").await;
    let manager = sign_in(&client(), base, "max").await;
    let decide = |session: &Session| {
        client()
            .post(format!("{base}/api/v1/conflicts/1/resolve"))
            .header("cookie", &session.cookie)
            .header("x-csrf-token", &session.csrf)
            .json(&json!({"action": "discard", "note": "cancelled upstream; goods back on A-01"}))
    };
    assert_eq!(decide(&viewer).send().await.unwrap().status(), 403);
    assert_eq!(decide(&manager).send().await.unwrap().status(), 200);

    // Decided: the decision and its note, no form, the audit trail, the resolution's entry.
    let detail = page(&http, base, "/console/conflicts/1", &max).await;
    assert!(!detail.contains("data-api=\"/api/v1/conflicts/1/resolve\""));
    assert!(
        detail.contains(r#"<dd id="decision-note">cancelled upstream; goods back on A-01</dd>"#),
        "{detail}"
    );
    assert!(
        detail.contains("<td>manager:max</td><td>conflict decided</td>"),
        "{detail}"
    );
    let resolution = server
        .store
        .read(|r| r.conflict(1))
        .unwrap()
        .unwrap()
        .resolution_seq
        .unwrap();
    assert!(detail.contains(&format!(r#"href="/console/journal/{resolution}""#)));
    let decided = page(&http, base, "/console/conflicts?state=resolved", &max).await;
    assert!(decided.contains(r#"href="/console/conflicts/1""#));
    assert!(!decided.contains(r#"href="/console/conflicts/2""#));

    // A flagged conflict takes only an acknowledgement.
    let flagged = page(&http, base, "/console/conflicts/2", &max).await;
    assert!(flagged.contains(r#"value="acknowledge""#), "{flagged}");
    assert!(!flagged.contains(r#"value="discard""#), "{flagged}");
    assert!(!flagged.contains("<script>alert"), "{flagged}");
    assert!(
        flagged.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{flagged}"
    );
    // A conflict that does not exist is a page saying so, not a stack of JSON.
    let missing = http
        .get(format!("{base}/console/conflicts/999"))
        .header("cookie", &max)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert_page_headers(&missing);
    let missing = missing.text().await.unwrap();
    assert!(missing.contains("<h1>Not found</h1>"), "{missing}");
    server.stop().await;
}

#[tokio::test]
async fn the_journal_filters_pages_and_shows_an_entrys_attempts() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let fx = fixture(&server).await;
    let http = page_client();
    let base = &server.base;
    let vera = page_cookie(&http, base, "vera").await;

    let all = page(&http, base, "/console/journal", &vera).await;
    assert_eq!(entry_rows(&all), 5, "{all}");
    // A picking's name leads to its entries.
    assert!(
        all.contains(r#"<a href="/console/journal?picking=WH%2FOUT%2F00001">WH/OUT/00001</a>"#),
        "{all}"
    );
    for (query, rows) in [
        ("device=h2", 2),
        ("operator=alice", 3),
        ("picking=2", 2),
        ("picking=WH%2FOUT%2F00001", 3),
        ("state=conflict", 3),
        ("state=applied&device=h1", 0),
        ("kind=pick&from=2000-01-01T00%3A00", 5),
        ("from=2999-01-01T00%3A00", 0),
        ("to=2000-01-01", 0),
    ] {
        let body = page(&http, base, &format!("/console/journal?{query}"), &vera).await;
        assert_eq!(entry_rows(&body), rows, "{query}: {body}");
    }
    let bad = page(&http, base, "/console/journal?from=yesterday", &vera).await;
    assert!(bad.contains("“yesterday” is not a time"), "{bad}");

    // An entry: its push attempt (the call, the outcome, Odoo's message), its conflict.
    let entry = page(
        &http,
        base,
        &format!("/console/journal/{}", fx.held[0]),
        &vera,
    )
    .await;
    for text in [
        "Push attempts",
        "stock.picking.write (conflict)",
        "the picking is cancelled in Odoo",
        r#"href="/console/conflicts/1""#,
    ] {
        assert!(entry.contains(text), "{text} in {entry}");
    }
    // By its id as well as by its number.
    let id = server
        .store
        .read(|r| r.journal_entry(&fx.held[0].to_string()))
        .unwrap()
        .unwrap()
        .id;
    let by_id = page(&http, base, &format!("/console/journal/{id}"), &vera).await;
    assert!(
        by_id.contains(&format!("<h1>entry {}: pick</h1>", fx.held[0])),
        "{by_id}"
    );
    let missing = http
        .get(format!("{base}/console/journal/999999"))
        .header("cookie", &vera)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);

    // 60 entries more: the newest 50, then a link to the older ones by sequence number.
    for n in 0..60 {
        append(&server, "h3", "carol", pick(3, 100 + n)).await;
    }
    let first = page(&http, base, "/console/journal?device=h3", &vera).await;
    assert_eq!(entry_rows(&first), 50);
    let next = next_link(&first).expect("a next page link");
    assert!(
        next.starts_with("/console/journal?device=h3&before="),
        "{next}"
    );
    let second = page(&http, base, &next, &vera).await;
    assert_eq!(entry_rows(&second), 10, "{second}");
    assert_eq!(next_link(&second), None);
    server.stop().await;
}

#[tokio::test]
async fn a_manager_cancels_a_floor_session_and_the_audit_page_shows_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let fx = fixture(&server).await;
    let http = page_client();
    let base = &server.base;
    let max = page_cookie(&http, base, "max").await;
    let vera = page_cookie(&http, base, "vera").await;

    let sessions = page(&http, base, "/console/sessions", &max).await;
    for text in ["Alice Example", "<td>h1</td>", "counting", "Cancel"] {
        assert!(sessions.contains(text), "{text} in {sessions}");
    }
    let cancel = format!("/api/v1/floor-sessions/{}/cancel", fx.session);
    assert!(
        sessions.contains(&format!(r#"data-api="{cancel}""#)),
        "{sessions}"
    );
    let as_viewer = page(&http, base, "/console/sessions", &vera).await;
    assert!(as_viewer.contains("Alice Example"));
    assert!(!as_viewer.contains(&cancel), "{as_viewer}");

    let viewer = sign_in(&client(), base, "vera").await;
    let manager = sign_in(&client(), base, "max").await;
    let post = |session: &Session| {
        client()
            .post(format!("{base}{cancel}"))
            .header("cookie", &session.cookie)
            .header("x-csrf-token", &session.csrf)
            .json(&json!({}))
    };
    assert_eq!(post(&viewer).send().await.unwrap().status(), 403);
    assert_eq!(post(&manager).send().await.unwrap().status(), 200);
    assert_eq!(post(&manager).send().await.unwrap().status(), 404, "once");
    let sessions = page(&http, base, "/console/sessions", &max).await;
    assert!(sessions.contains("Nobody is working on the floor right now."));
    let rows = audit(&client(), base).await;
    let cancelled: Vec<_> = rows
        .iter()
        .filter(|r| r["action"] == "session.cancel")
        .collect();
    assert_eq!(cancelled.len(), 1, "{rows:?}");
    assert_eq!(cancelled[0]["actor"], "manager:max");
    assert_eq!(cancelled[0]["target"], format!("session:{}", fx.session));
    assert_eq!(cancelled[0]["detail"]["operator"], "alice");

    // The audit page: newest first, by action (a prefix) and by actor.
    let trail = page(&http, base, "/console/audit", &vera).await;
    let cancel_at = trail.find(r#"data-action="session.cancel""#).unwrap();
    let login_at = trail.find(r#"data-action="login.success""#).unwrap();
    assert!(cancel_at < login_at, "newest first");
    let by_action = page(&http, base, "/console/audit?action=session.", &vera).await;
    assert_eq!(
        by_action.matches("<tr data-action=").count(),
        1,
        "{by_action}"
    );
    assert!(by_action.contains("session cancelled"));
    let by_actor = page(&http, base, "/console/audit?actor=vera", &vera).await;
    assert!(by_actor.contains(r#"data-action="login.success""#));
    assert!(!by_actor.contains(r#"data-action="session.cancel""#));
    server.stop().await;
}

#[tokio::test]
async fn the_record_pages_speak_german() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    fixture(&server).await;
    let http = page_client();
    let base = &server.base;
    let vera = page_cookie(&http, base, "vera").await;

    // The browser's language...
    let german = |path: &str| {
        http.get(format!("{base}{path}"))
            .header("cookie", &vera)
            .header("accept-language", "de-DE,de;q=0.9")
            .send()
    };
    let inbox = german("/console/conflicts")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(inbox.contains("<h1>Konflikte</h1>"), "{inbox}");
    assert!(inbox.contains("Auftrag in Odoo storniert"), "{inbox}");
    let journal = german("/console/journal")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(journal.contains("Entnahme"), "{journal}");
    assert!(journal.contains("Von (UTC)"), "{journal}");

    // ...or the manager's own choice, whatever the browser says.
    let max = sign_in(&client(), base, "max").await;
    let chosen = client()
        .post(format!("{base}/console/language"))
        .header("cookie", &max.cookie)
        .header("x-csrf-token", &max.csrf)
        .json(&json!({"language": "de"}))
        .send()
        .await
        .unwrap();
    assert_eq!(chosen.status(), 200);
    for (path, text) in [
        ("/console/sessions", "<h1>Sitzungen im Lager</h1>"),
        ("/console/sessions", "Abbrechen"),
        ("/console/audit", "<h1>Prüfprotokoll</h1>"),
        ("/console/conflicts/1", "manuell: wartet auf eine Person"),
        ("/console/conflicts/1", "Verwerfen"),
        ("/console/journal/1", "Sendeversuche"),
    ] {
        let body = page(&http, base, path, &max.cookie).await;
        assert!(body.contains(text), "{path}: {text} in {body}");
        assert!(body.contains(r#"<html lang="de">"#), "{path}");
    }
    server.stop().await;
}

#[tokio::test]
async fn list_pages_answer_hostile_query_strings_without_a_server_error() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    fixture(&server).await;
    let http = page_client();
    let base = &server.base;
    let vera = page_cookie(&http, base, "vera").await;
    let long = "x".repeat(20_000);
    let mut queries: Vec<String> = [
        "before=-9223372036854775808",
        "before=9223372036854775807",
        "before=-1",
        "before=0",
        "before=99999999999999999999",
        "before=abc",
        "state=open&state=all",
        "picking=%FF%FE",
        "picking=%00",
        "kind=%2F..%2F",
        "from=9999999-01-01&to=-0001-01-01",
    ]
    .iter()
    .map(|q| q.to_string())
    .collect();
    queries.push(format!("picking={long}&device={long}&actor={long}"));
    for path in ["/console/journal", "/console/conflicts", "/console/audit"] {
        for query in &queries {
            let answer = http
                .get(format!("{base}{path}?{query}"))
                .header("cookie", &vera)
                .send()
                .await
                .unwrap_or_else(|e| panic!("{path}?{query}: {e}"));
            let status = answer.status().as_u16();
            assert!(
                status == 200 || status == 400,
                "{path}?{}: {status}",
                &query[..query.len().min(80)]
            );
        }
    }
    for path in [
        "/console/conflicts/-9223372036854775808",
        "/console/conflicts/99999999999999999999",
        "/console/journal/-9223372036854775808",
        "/console/journal/%FF",
    ] {
        let answer = http
            .get(format!("{base}{path}"))
            .header("cookie", &vera)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        let status = answer.status().as_u16();
        assert!(matches!(status, 400 | 404), "{path}: {status}");
    }
    server.stop().await;
}

#[tokio::test]
async fn the_audit_page_links_only_to_records_it_can_name() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    fixture(&server).await;
    for target in [
        "journal:../../api/v1/demo/cloud",
        "journal:1?x=1",
        "journal:7",
        "conflict:2/../x",
    ] {
        server
            .store
            .managers(ManagerCmd::Audit(NewAudit {
                actor: "cli:test".into(),
                action: "test.target".into(),
                target: Some(target.into()),
                detail: json!({}),
            }))
            .await
            .unwrap();
    }
    let http = page_client();
    let base = &server.base;
    let vera = page_cookie(&http, base, "vera").await;
    let trail = page(&http, base, "/console/audit?action=test.", &vera).await;
    assert!(
        trail.contains(r#"<a href="/console/journal/7">"#),
        "{trail}"
    );
    for target in ["../../api", "1?x=1", "2/../x"] {
        assert!(
            !trail.contains(&format!("href=\"/console/journal/{target}")),
            "{trail}"
        );
        assert!(
            !trail.contains(&format!("href=\"/console/conflicts/{target}")),
            "{trail}"
        );
    }
    assert_eq!(
        trail.matches("<a href=\"/console/journal/").count(),
        1,
        "{trail}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_picking_the_mirror_does_not_hold_leads_to_its_entries() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    fixture(&server).await;
    let http = page_client();
    let base = &server.base;
    let vera = page_cookie(&http, base, "vera").await;
    // Picking 2 is not in the mirror: its entries name it by its key, and link to it so.
    let all = page(&http, base, "/console/journal", &vera).await;
    let link = r#"<a href="/console/journal?picking=picking%3A2">picking:2</a>"#;
    assert!(all.contains(link), "{all}");
    let body = page(&http, base, "/console/journal?picking=picking%3A2", &vera).await;
    assert_eq!(entry_rows(&body), 2, "{body}");
    assert!(!body.contains("role=\"alert\""), "{body}");
    server.stop().await;
}

#[tokio::test]
async fn an_audit_filter_reads_a_window_of_the_trail_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    fixture(&server).await;
    let record = |action: &str| {
        ManagerCmd::Audit(NewAudit {
            actor: "cli:test".into(),
            action: action.into(),
            target: None,
            detail: json!({}),
        })
    };
    // One old record, then a window's worth of newer ones the filter does not match.
    server.store.managers(record("test.old")).await.unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..holdfast::store::AUDIT_WINDOW {
        let store = server.store.clone();
        let cmd = record("test.filler");
        tasks.spawn(async move { store.managers(cmd).await.unwrap() });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    let http = page_client();
    let base = &server.base;
    let vera = page_cookie(&http, base, "vera").await;
    let first = page(&http, base, "/console/audit?action=test.old", &vera).await;
    assert!(!first.contains(r#"data-action="test.old""#), "{first}");
    assert!(first.contains("Searched back to record"), "{first}");
    let next = next_link(&first).expect("a link further back");
    assert!(
        next.starts_with("/console/audit?action=test.old&before="),
        "{next}"
    );
    let second = page(&http, base, &next, &vera).await;
    assert!(second.contains(r#"data-action="test.old""#), "{second}");
    assert_eq!(next_link(&second), None, "{second}");
    server.stop().await;
}
