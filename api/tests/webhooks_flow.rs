//! Black-box tests of webhooks against the real binary: registration in Airtable's shape,
//! payloads built from the event log and read by cursor, filters and includes, signed pings to
//! a local receiver, coalescing, retries with their results recorded, expiry, and tenant
//! isolation.

mod rest_support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use axum::routing::post;
use base64::Engine as _;
use pyairtable_api::webhooks::delivery::{MAC_HEADER, sign};
use pyairtable_eventstore::testkit::TestStore;
use reqwest::{Method, StatusCode};
use rest_support::{ALL_SCOPES, Api, account, serve, token};
use serde_json::{Value, json};

/// Environment that makes delivery fast enough for a test; webhooks may call the local
/// receiver (a loopback address, refused by default).
const FAST: &[(&str, &str)] = &[
    ("PYAIRTABLE_RATE_LIMIT_PER_BASE", "0"),
    ("PYAIRTABLE_WEBHOOK_COALESCE_MS", "150"),
    ("PYAIRTABLE_WEBHOOK_RETRY_BASE_MS", "200"),
    ("PYAIRTABLE_WEBHOOK_RETRY_MAX_MS", "400"),
    ("PYAIRTABLE_WEBHOOK_MAX_RETRIES", "2"),
    ("PYAIRTABLE_WEBHOOK_POLL_MS", "200"),
    ("PYAIRTABLE_WEBHOOK_ALLOW_PRIVATE", "127.0.0.1"),
];

/// [`FAST`] with another allow-list of private destinations (`None`: the default, none).
fn fast_allowing(allow: Option<&'static str>) -> Vec<(&'static str, &'static str)> {
    let mut env: Vec<_> = FAST
        .iter()
        .copied()
        .filter(|(k, _)| *k != "PYAIRTABLE_WEBHOOK_ALLOW_PRIVATE")
        .collect();
    if let Some(allow) = allow {
        env.push(("PYAIRTABLE_WEBHOOK_ALLOW_PRIVATE", allow));
    }
    env
}

fn error_type(body: &Value) -> &str {
    body["error"]["type"]
        .as_str()
        .or(body["error"].as_str())
        .unwrap_or("")
}

/// One request the receiver got: its MAC header and its body.
type Hit = (Option<String>, String);

/// A local notification receiver that records every request and answers a settable status.
#[derive(Clone, Default)]
struct Receiver {
    hits: Arc<Mutex<Vec<Hit>>>,
    status: Arc<AtomicU16>,
}

impl Receiver {
    async fn start() -> (Self, String) {
        let receiver = Self::default();
        receiver.status.store(200, Ordering::SeqCst);
        let app = axum::Router::new()
            .route("/hook", post(record_hit))
            .with_state(receiver.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind receiver");
        let addr: SocketAddr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (receiver, format!("http://{addr}/hook"))
    }

    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().expect("hits").clone()
    }

    fn clear(&self) {
        self.hits.lock().expect("hits").clear();
    }
}

async fn record_hit(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> AxumStatus {
    let mac = headers
        .get(MAC_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    r.hits
        .lock()
        .expect("hits")
        .push((mac, String::from_utf8_lossy(&body).into_owned()));
    AxumStatus::from_u16(r.status.load(Ordering::SeqCst)).unwrap_or(AxumStatus::OK)
}

/// Polls `check` every 100 ms until it returns `Some`, for at most 20 s.
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Creates a base with tables `Tasks` (Name, Points, Notes) and `Other` (Title).
async fn create_base(api: &Api, workspace_id: &str) -> (String, Value, Value) {
    let created = api
        .ok(
            Method::POST,
            "/meta/bases",
            Some(json!({
                "name": "Hooks",
                "workspaceId": workspace_id,
                "tables": [
                    {"name": "Tasks", "fields": [
                        {"name": "Name", "type": "singleLineText"},
                        {"name": "Points", "type": "number", "options": {"precision": 0}},
                        {"name": "Notes", "type": "multilineText"},
                    ]},
                    {"name": "Other", "fields": [{"name": "Title", "type": "singleLineText"}]},
                ],
            })),
        )
        .await;
    let base_id = created["id"].as_str().expect("base id").to_owned();
    (
        base_id,
        created["tables"][0].clone(),
        created["tables"][1].clone(),
    )
}

fn field_id(table: &Value, name: &str) -> String {
    table["fields"]
        .as_array()
        .and_then(|f| f.iter().find(|f| f["name"] == name))
        .and_then(|f| f["id"].as_str())
        .unwrap_or_else(|| panic!("field {name} in {table}"))
        .to_owned()
}

async fn payloads(api: &Api, base: &str, hook: &str, query: &str) -> Value {
    api.ok(
        Method::GET,
        &format!("/bases/{base}/webhooks/{hook}/payloads{query}"),
        None,
    )
    .await
}

async fn wait_payloads(api: &Api, base: &str, hook: &str, at_least: usize) -> Vec<Value> {
    eventually(&format!("{at_least} payloads of {hook}"), || async {
        let page = payloads(api, base, hook, "").await;
        let list = page["payloads"].as_array().cloned().unwrap_or_default();
        (list.len() >= at_least).then_some(list)
    })
    .await
}

async fn webhook_json(api: &Api, base: &str, hook: &str) -> Value {
    let list = api
        .ok(Method::GET, &format!("/bases/{base}/webhooks"), None)
        .await;
    list["webhooks"]
        .as_array()
        .and_then(|w| w.iter().find(|w| w["id"] == hook))
        .cloned()
        .unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payloads_pings_retries_and_expiry_behave_like_airtable() {
    let store = TestStore::new().await;
    let owner = account(&store, "hooks@example.com", ALL_SCOPES);
    let server = serve(&store, FAST);
    let api = Api::new(&server, &owner.token);
    let (receiver, url) = Receiver::start().await;
    let (base, tasks, other) = create_base(&api, &owner.workspace_id).await;
    let tasks_id = tasks["id"].as_str().expect("tasks id").to_owned();
    let other_id = other["id"].as_str().expect("other id").to_owned();
    let (name, points, notes) = (
        field_id(&tasks, "Name"),
        field_id(&tasks, "Points"),
        field_id(&tasks, "Notes"),
    );

    // Registration: Airtable's response shape, a MAC secret shown once, a 7-day expiry.
    let created = api
        .ok(
            Method::POST,
            &format!("/bases/{base}/webhooks"),
            Some(json!({
                "notificationUrl": url,
                "specification": {"options": {
                    "filters": {"dataTypes": ["tableData"], "recordChangeScope": tasks_id},
                    "includes": {"includeCellValuesInFieldIds": [notes.clone()],
                                 "includePreviousCellValues": true},
                }},
            })),
        )
        .await;
    let hook = created["id"].as_str().expect("webhook id").to_owned();
    assert!(hook.starts_with("ach") && hook.len() == 17, "{hook}");
    let secret = base64::engine::general_purpose::STANDARD
        .decode(created["macSecretBase64"].as_str().expect("secret"))
        .expect("base64 secret");
    assert_eq!(secret.len(), 32);
    let expires = chrono::DateTime::parse_from_rfc3339(
        created["expirationTime"].as_str().expect("expirationTime"),
    )
    .expect("iso time");
    let days = (expires.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_hours();
    assert!((167..=168).contains(&days), "expires in {days} h");

    // A second webhook: only record creations in `Other`, no notification URL.
    let adds = api
        .ok(
            Method::POST,
            &format!("/bases/{base}/webhooks"),
            Some(json!({"specification": {"options": {"filters": {
                "dataTypes": ["tableData"], "recordChangeScope": other_id, "changeTypes": ["add"],
            }}}})),
        )
        .await["id"]
        .as_str()
        .expect("id")
        .to_owned();

    let listed = webhook_json(&api, &base, &hook).await;
    assert_eq!(listed["areNotificationsEnabled"], true);
    assert_eq!(listed["isHookEnabled"], true);
    assert_eq!(listed["cursorForNextPayload"], 1);
    assert_eq!(listed["notificationUrl"], url.as_str());
    assert_eq!(
        listed["specification"]["options"]["filters"]["recordChangeScope"],
        tasks_id.as_str()
    );
    assert!(listed["lastNotificationResult"].is_null());
    assert!(listed.get("macSecretBase64").is_none());

    // Create, update and delete a record.
    let record = api
        .ok(
            Method::POST,
            &format!("/{base}/Tasks"),
            Some(json!({"fields": {"Name": "Write", "Points": 3, "Notes": "keep"}})),
        )
        .await;
    let rec = record["id"].as_str().expect("record id").to_owned();
    api.ok(
        Method::PATCH,
        &format!("/{base}/Tasks/{rec}"),
        Some(json!({"fields": {"Points": 5}})),
    )
    .await;
    api.ok(Method::DELETE, &format!("/{base}/Tasks/{rec}"), None)
        .await;

    let list = wait_payloads(&api, &base, &hook, 3).await;
    assert_eq!(list.len(), 3, "{list:#?}");
    for p in &list {
        assert_eq!(p["payloadFormat"], "v0");
        assert_eq!(p["actionMetadata"]["source"], "publicApi");
        assert_eq!(
            p["actionMetadata"]["sourceMetadata"]["user"]["email"],
            "hooks@example.com"
        );
        assert_eq!(
            p["actionMetadata"]["sourceMetadata"]["user"]["permissionLevel"],
            "create"
        );
        assert!(p["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')));
        assert!(p["baseTransactionNumber"].as_u64().is_some());
    }
    assert!(list[0]["baseTransactionNumber"].as_u64() < list[1]["baseTransactionNumber"].as_u64());
    let created_rec = &list[0]["changedTablesById"][&tasks_id]["createdRecordsById"][&rec];
    assert_eq!(created_rec["cellValuesByFieldId"][&name], "Write");
    assert_eq!(created_rec["cellValuesByFieldId"][&points], 3);
    assert!(created_rec["createdTime"].as_str().is_some());
    let changed = &list[1]["changedTablesById"][&tasks_id]["changedRecordsById"][&rec];
    assert_eq!(
        changed["current"]["cellValuesByFieldId"],
        json!({&points: 5})
    );
    assert_eq!(
        changed["previous"]["cellValuesByFieldId"],
        json!({&points: 3})
    );
    assert_eq!(
        changed["unchanged"]["cellValuesByFieldId"],
        json!({&notes: "keep"})
    );
    assert_eq!(
        list[2]["changedTablesById"][&tasks_id]["destroyedRecordIds"],
        json!([rec])
    );

    // Cursors: a page of one, then the rest; an empty page keeps the cursor.
    let page = payloads(&api, &base, &hook, "?cursor=2&limit=1").await;
    assert_eq!(page["payloads"].as_array().map(Vec::len), Some(1));
    assert_eq!(page["payloads"][0], list[1]);
    assert_eq!(
        (page["cursor"].clone(), page["mightHaveMore"].clone()),
        (json!(3), json!(true))
    );
    let page = payloads(&api, &base, &hook, "?cursor=3").await;
    assert_eq!(
        (page["cursor"].clone(), page["mightHaveMore"].clone()),
        (json!(4), json!(false))
    );
    let page = payloads(&api, &base, &hook, "?cursor=4").await;
    assert_eq!(page["payloads"], json!([]));
    assert_eq!(page["cursor"], 4);
    let (status, body) = api
        .call(
            Method::GET,
            &format!("/bases/{base}/webhooks/{hook}/payloads?cursor=0"),
            None,
        )
        .await;
    assert_eq!(
        (status, error_type(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "INVALID_REQUEST_UNKNOWN")
    );

    // Pings: signed with the secret, one per coalescing window at most.
    let hits = eventually("a ping", || async {
        let hits = receiver.hits();
        (!hits.is_empty()).then_some(hits)
    })
    .await;
    assert!(hits.len() <= 3, "{hits:?}");
    for (mac, body) in &hits {
        assert_eq!(
            mac.as_deref(),
            Some(sign(&secret, body.as_bytes()).as_str())
        );
        let body: Value = serde_json::from_str(body).expect("ping json");
        assert_eq!(body["base"]["id"], base.as_str());
        assert_eq!(body["webhook"]["id"], hook.as_str());
        assert!(body["timestamp"].as_str().is_some());
    }
    let listed = eventually("a recorded success", || async {
        let w = webhook_json(&api, &base, &hook).await;
        (w["lastNotificationResult"]["success"] == true).then_some(w)
    })
    .await;
    assert_eq!(listed["cursorForNextPayload"], 4);
    assert_eq!(listed["lastNotificationResult"]["retryNumber"], 0);
    assert!(listed["lastSuccessfulNotificationTime"].as_str().is_some());

    // The scoped webhook: an update in `Other` is filtered out, a creation is reported.
    let o = api
        .ok(
            Method::POST,
            &format!("/{base}/Other"),
            Some(json!({"fields": {"Title": "a"}})),
        )
        .await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    api.ok(
        Method::PATCH,
        &format!("/{base}/Other/{o}"),
        Some(json!({"fields": {"Title": "b"}})),
    )
    .await;
    let o2 = api
        .ok(
            Method::POST,
            &format!("/{base}/Other"),
            Some(json!({"fields": {"Title": "c"}})),
        )
        .await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let scoped = wait_payloads(&api, &base, &adds, 2).await;
    assert_eq!(scoped.len(), 2, "{scoped:#?}");
    let tables = |p: &Value| {
        p["changedTablesById"]
            .as_object()
            .map(|o| o.keys().cloned().collect::<Vec<_>>())
    };
    assert_eq!(tables(&scoped[0]), Some(vec![other_id.clone()]));
    assert!(scoped[0]["changedTablesById"][&other_id]["createdRecordsById"][&o].is_object());
    assert!(scoped[1]["changedTablesById"][&other_id]["createdRecordsById"][&o2].is_object());
    assert!(
        scoped[1]["changedTablesById"][&other_id]
            .get("changedRecordsById")
            .is_none()
    );
    // And nothing of `Other` reached the `Tasks` webhook.
    let page = payloads(&api, &base, &hook, "?cursor=4").await;
    assert_eq!(page["payloads"], json!([]));

    // Refresh extends the expiry.
    let refreshed = api
        .ok(
            Method::POST,
            &format!("/bases/{base}/webhooks/{hook}/refresh"),
            None,
        )
        .await;
    assert!(refreshed["expirationTime"].as_str().is_some());

    // Disabled notifications: payloads still recorded, no ping.
    api.ok(
        Method::POST,
        &format!("/bases/{base}/webhooks/{hook}/enableNotifications"),
        Some(json!({"enable": false})),
    )
    .await;
    receiver.clear();
    api.ok(
        Method::POST,
        &format!("/{base}/Tasks"),
        Some(json!({"fields": {"Name": "quiet"}})),
    )
    .await;
    wait_payloads(&api, &base, &hook, 4).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(receiver.hits().is_empty(), "{:?}", receiver.hits());
    assert_eq!(
        webhook_json(&api, &base, &hook).await["areNotificationsEnabled"],
        false
    );

    // A failing receiver: the first try and each retry are recorded, then notifications are
    // turned off (and that is visible), never silently.
    receiver.status.store(500, Ordering::SeqCst);
    api.ok(
        Method::POST,
        &format!("/bases/{base}/webhooks/{hook}/enableNotifications"),
        Some(json!({"enable": true})),
    )
    .await;
    let failed = eventually("retries to run out", || async {
        let w = webhook_json(&api, &base, &hook).await;
        (w["areNotificationsEnabled"] == false).then_some(w)
    })
    .await;
    let result = &failed["lastNotificationResult"];
    assert_eq!(result["success"], false);
    assert_eq!(result["retryNumber"], 2);
    assert_eq!(result["willBeRetried"], false);
    assert!(
        result["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("500"))
    );
    assert_eq!(receiver.hits().len(), 3, "first try and two retries");
    // Back to a healthy receiver: re-enabling delivers the pending ping.
    receiver.status.store(204, Ordering::SeqCst);
    receiver.clear();
    api.ok(
        Method::POST,
        &format!("/bases/{base}/webhooks/{hook}/enableNotifications"),
        Some(json!({"enable": true})),
    )
    .await;
    eventually("a ping after re-enabling", || async {
        let w = webhook_json(&api, &base, &hook).await;
        (w["lastNotificationResult"]["success"] == true && !receiver.hits().is_empty())
            .then_some(())
    })
    .await;

    // Expiry: an expired webhook stops, its payloads and refresh are refused.
    sqlx::query("UPDATE webhooks SET expires_at = now() - interval '1 minute' WHERE id = $1")
        .bind(&hook)
        .execute(store.store().pool())
        .await
        .expect("expire");
    let (status, body) = api
        .call(
            Method::GET,
            &format!("/bases/{base}/webhooks/{hook}/payloads"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, body) = api
        .call(
            Method::POST,
            &format!("/bases/{base}/webhooks/{hook}/refresh"),
            None,
        )
        .await;
    assert_eq!(
        (status, error_type(&body)),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "CANNOT_REFRESH_DISABLED_WEBHOOK"
        )
    );
    assert_eq!(
        webhook_json(&api, &base, &hook).await["isHookEnabled"],
        false
    );

    // Delete.
    let (status, _) = api
        .call(
            Method::DELETE,
            &format!("/bases/{base}/webhooks/{hook}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(webhook_json(&api, &base, &hook).await.is_null());
    let (status, body) = api
        .call(
            Method::DELETE,
            &format!("/bases/{base}/webhooks/{hook}"),
            None,
        )
        .await;
    assert_eq!(
        (status, error_type(&body)),
        (StatusCode::NOT_FOUND, "NOT_FOUND")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_isolated_between_tenants_and_checked() {
    let store = TestStore::new().await;
    let owner = account(&store, "owner-wh@example.com", ALL_SCOPES);
    let outsider = account(&store, "outsider-wh@example.com", ALL_SCOPES);
    let server = serve(&store, FAST);
    let api = Api::new(&server, &owner.token);
    let theirs = Api::new(&server, &outsider.token);
    let (base, tasks, _) = create_base(&api, &owner.workspace_id).await;
    let (their_base, _, _) = create_base(&theirs, &outsider.workspace_id).await;
    let spec = json!({"specification": {"options": {"filters": {"dataTypes": ["tableData"]}}}});

    // Another workspace's token can neither list nor create webhooks on the base.
    for (method, body) in [(Method::GET, None), (Method::POST, Some(spec.clone()))] {
        let (status, body) = theirs
            .call(method, &format!("/bases/{base}/webhooks"), body)
            .await;
        assert_eq!(
            (status, error_type(&body)),
            (
                StatusCode::FORBIDDEN,
                "INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND"
            ),
        );
    }
    // Without the webhook:manage scope, or restricted to another base: refused.
    let no_scope = token(
        &store,
        "owner-wh@example.com",
        "data.records:read,data.records:write,schema.bases:read",
        &[],
    );
    let (status, _) = Api::new(&server, &no_scope)
        .call(Method::GET, &format!("/bases/{base}/webhooks"), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let elsewhere = token(
        &store,
        "owner-wh@example.com",
        ALL_SCOPES,
        &["appAAAAAAAAAAAAAA"],
    );
    let (status, _) = Api::new(&server, &elsewhere)
        .call(
            Method::POST,
            &format!("/bases/{base}/webhooks"),
            Some(spec.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // A webhook with tableData needs data.records:read too.
    let manage_only = token(&store, "owner-wh@example.com", "webhook:manage", &[]);
    let (status, _) = Api::new(&server, &manage_only)
        .call(
            Method::POST,
            &format!("/bases/{base}/webhooks"),
            Some(spec.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Bad input: 422 and nothing registered.
    for body in [
        json!({"notificationUrl": "ftp://example.com/x", "specification": spec["specification"]}),
        json!({"notificationUrl": "not a url", "specification": spec["specification"]}),
        json!({"specification": {"options": {"filters": {"dataTypes": []}}}}),
        json!({"specification": {"options": {"filters": {"dataTypes": ["tableData"], "recordChangeScope": "tblAAAAAAAAAAAAAA"}}}}),
        json!({}),
    ] {
        let (status, answer) = api
            .call(
                Method::POST,
                &format!("/bases/{base}/webhooks"),
                Some(body.clone()),
            )
            .await;
        assert_eq!(
            (status, error_type(&answer)),
            (StatusCode::UNPROCESSABLE_ENTITY, "INVALID_REQUEST_UNKNOWN"),
            "{body}"
        );
    }
    let listed = api
        .ok(Method::GET, &format!("/bases/{base}/webhooks"), None)
        .await;
    assert_eq!(listed, json!({"webhooks": []}));

    // Each tenant's webhook sees only its own base.
    let mine = api
        .ok(
            Method::POST,
            &format!("/bases/{base}/webhooks"),
            Some(spec.clone()),
        )
        .await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let their_hook = theirs
        .ok(
            Method::POST,
            &format!("/bases/{their_base}/webhooks"),
            Some(spec.clone()),
        )
        .await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    // Someone else's webhook id under one's own base is unknown.
    let (status, _) = theirs
        .call(
            Method::GET,
            &format!("/bases/{their_base}/webhooks/{mine}/payloads"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = theirs
        .call(
            Method::DELETE,
            &format!("/bases/{their_base}/webhooks/{mine}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = theirs
        .call(
            Method::GET,
            &format!("/bases/{base}/webhooks/{mine}/payloads"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (status, _) = Api::new(&server, &elsewhere)
        .call(
            Method::GET,
            &format!("/bases/{base}/webhooks/{mine}/payloads"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    api.ok(
        Method::POST,
        &format!("/{base}/Tasks"),
        Some(json!({"fields": {"Name": "mine"}})),
    )
    .await;
    theirs
        .ok(
            Method::POST,
            &format!("/{their_base}/Tasks"),
            Some(json!({"fields": {"Name": "theirs"}})),
        )
        .await;
    let my_payloads = wait_payloads(&api, &base, &mine, 1).await;
    let their_payloads = wait_payloads(&theirs, &their_base, &their_hook, 1).await;
    let tasks_id = tasks["id"].as_str().expect("id");
    assert_eq!(my_payloads.len(), 1);
    assert_eq!(their_payloads.len(), 1);
    assert!(my_payloads[0]["changedTablesById"][tasks_id].is_object());
    assert!(
        their_payloads[0]["changedTablesById"]
            .get(tasks_id)
            .is_none()
    );
    let text = their_payloads[0].to_string();
    assert!(!text.contains("mine") && text.contains("theirs"), "{text}");

    // Schema changes: a field renamed, a table renamed, a table created.
    let schema = api
        .ok(
            Method::POST,
            &format!("/bases/{base}/webhooks"),
            Some(json!({"specification": {"options": {
                "filters": {"dataTypes": ["tableFields", "tableMetadata"]},
                "includes": {"includePreviousFieldDefinitions": true},
            }}})),
        )
        .await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let points = field_id(&tasks, "Points");
    api.ok(
        Method::PATCH,
        &format!("/meta/bases/{base}/tables/{tasks_id}/fields/{points}"),
        Some(json!({"name": "Score"})),
    )
    .await;
    api.ok(
        Method::PATCH,
        &format!("/meta/bases/{base}/tables/{tasks_id}"),
        Some(json!({"name": "Chores"})),
    )
    .await;
    let new_table = api
        .ok(
            Method::POST,
            &format!("/meta/bases/{base}/tables"),
            Some(json!({"name": "Later", "fields": [{"name": "Title", "type": "singleLineText"}]})),
        )
        .await;
    let new_table_id = new_table["id"].as_str().expect("table id");
    let changes = wait_payloads(&api, &base, &schema, 3).await;
    assert_eq!(
        changes[0]["changedTablesById"][tasks_id]["changedFieldsById"][&points],
        json!({"current": {"name": "Score", "type": "number"},
               "previous": {"name": "Points", "type": "number"}})
    );
    let metadata = &changes[1]["changedTablesById"][tasks_id]["changedMetadata"];
    assert_eq!(metadata["current"]["name"], "Chores");
    assert_eq!(metadata["previous"]["name"], "Tasks");
    let created = &changes[2]["createdTablesById"][new_table_id];
    assert_eq!(created["metadata"]["name"], "Later");
    assert_eq!(
        created["fieldsById"]
            .as_object()
            .map(|f| f.values().cloned().collect::<Vec<_>>()),
        Some(vec![json!({"name": "Title", "type": "singleLineText"})])
    );
    // Record changes are not schema changes.
    assert!(
        changes
            .iter()
            .all(|p| !p.to_string().contains("RecordsById"))
    );
}

/// Creates a webhook watching the base's records that pings `url`; returns its id.
async fn hook_to(api: &Api, base: &str, url: &str) -> String {
    api.ok(
        Method::POST,
        &format!("/bases/{base}/webhooks"),
        Some(json!({"notificationUrl": url,
                    "specification": {"options": {"filters": {"dataTypes": ["tableData"]}}}})),
    )
    .await["id"]
        .as_str()
        .expect("webhook id")
        .to_owned()
}

/// The webhook ids of the pings the receiver got.
fn pinged_hooks(receiver: &Receiver) -> Vec<String> {
    receiver
        .hits()
        .iter()
        .filter_map(|(_, body)| serde_json::from_str::<Value>(body).ok())
        .filter_map(|b| b["webhook"]["id"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notification_urls_cannot_reach_private_addresses_unless_allowed() {
    let store = TestStore::new().await;
    let owner = account(&store, "ssrf@example.com", ALL_SCOPES);
    let (receiver, url) = Receiver::start().await;
    let port = url
        .rsplit(':')
        .next()
        .and_then(|p| p.split('/').next())
        .expect("receiver port")
        .to_owned();
    let spec = json!({"options": {"filters": {"dataTypes": ["tableData"]}}});

    // The default policy: every spelling of a non-public address is refused at creation,
    // with a 422 naming the problem, and nothing is registered.
    let strict = serve(&store, &fast_allowing(None));
    let api = Api::new(&strict, &owner.token);
    let (base, _, _) = create_base(&api, &owner.workspace_id).await;
    let refused = [
        (url.clone(), "loopback"),
        ("http://2130706433/hook".to_owned(), "loopback"),
        ("http://0x7f.0.0.1/hook".to_owned(), "loopback"),
        ("http://0177.0.0.1/hook".to_owned(), "loopback"),
        ("http://127.1/hook".to_owned(), "loopback"),
        ("http://10.0.0.5/hook".to_owned(), "private network"),
        ("http://172.16.3.4/hook".to_owned(), "private network"),
        ("https://192.168.0.10/hook".to_owned(), "private network"),
        (
            "http://169.254.169.254/latest/meta-data/".to_owned(),
            "link-local",
        ),
        ("http://0.0.0.0:8000/".to_owned(), "unspecified"),
        ("http://[::1]:8000/hook".to_owned(), "loopback"),
        ("http://[::ffff:127.0.0.1]/hook".to_owned(), "loopback"),
        ("http://[fd00:ec2::254]/".to_owned(), "unique local"),
        ("http://[fe80::1]/hook".to_owned(), "link-local"),
        (format!("http://localhost:{port}/hook"), "resolves to"),
        ("http://LOCALHOST./hook".to_owned(), "resolves to"),
        ("gopher://example.com/".to_owned(), "http or https"),
        ("file:///etc/passwd".to_owned(), "http or https"),
    ];
    for (target, named) in &refused {
        let (status, body) = api
            .call(
                Method::POST,
                &format!("/bases/{base}/webhooks"),
                Some(json!({"notificationUrl": target, "specification": spec})),
            )
            .await;
        assert_eq!(
            (status, error_type(&body)),
            (StatusCode::UNPROCESSABLE_ENTITY, "INVALID_REQUEST_UNKNOWN"),
            "{target}: {body}"
        );
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("notificationUrl") && message.contains(named),
            "{target}: {message}"
        );
    }
    let listed = api
        .ok(Method::GET, &format!("/bases/{base}/webhooks"), None)
        .await;
    assert_eq!(listed, json!({"webhooks": []}));
    // A public address is accepted (and never pinged: nothing changes while it exists).
    let public = hook_to(&api, &base, "https://93.184.215.14/airtable-hook").await;
    api.ok(
        Method::DELETE,
        &format!("/bases/{base}/webhooks/{public}"),
        None,
    )
    .await;
    drop(strict);

    // The operator's allow-list opens exactly what it names: the loopback network and the
    // name `localhost`, not the rest of the private ranges.
    let open = serve(&store, &fast_allowing(Some("127.0.0.0/8, localhost")));
    let api = Api::new(&open, &owner.token);
    let (status, _) = api
        .call(
            Method::POST,
            &format!("/bases/{base}/webhooks"),
            Some(json!({"notificationUrl": "http://10.0.0.5/hook", "specification": spec})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let by_address = hook_to(&api, &base, &url).await;
    let by_name = hook_to(&api, &base, &format!("http://localhost:{port}/hook")).await;
    api.ok(
        Method::POST,
        &format!("/{base}/Tasks"),
        Some(json!({"fields": {"Name": "allowed"}})),
    )
    .await;
    eventually("pings to both allowed webhooks", || async {
        let pinged = pinged_hooks(&receiver);
        (pinged.contains(&by_address) && pinged.contains(&by_name)).then_some(())
    })
    .await;
    drop(open);
    receiver.clear();

    // The operator tightens the policy (or the name now resolves elsewhere): delivery checks
    // the addresses again at every ping, refuses to connect, and records why like any other
    // failure; the receiver hears nothing.
    let strict = serve(&store, &fast_allowing(None));
    let api = Api::new(&strict, &owner.token);
    api.ok(
        Method::POST,
        &format!("/{base}/Tasks"),
        Some(json!({"fields": {"Name": "refused"}})),
    )
    .await;
    for hook in [&by_address, &by_name] {
        let failed = eventually("a refused ping to be recorded", || async {
            let w = webhook_json(&api, &base, hook).await;
            (w["lastNotificationResult"]["success"] == false).then_some(w)
        })
        .await;
        assert_eq!(
            failed["lastNotificationResult"]["error"]["message"],
            pyairtable_api::webhooks::delivery::REFUSED_MESSAGE,
            "{failed:#}"
        );
        let attempts = pyairtable_api::webhooks::delivery::attempts(store.store().pool(), hook)
            .await
            .expect("attempts");
        assert_eq!(attempts[0]["success"], false, "{attempts:?}");
        assert_eq!(
            attempts[0]["error"],
            pyairtable_api::webhooks::delivery::REFUSED_MESSAGE
        );
        assert!(attempts[0]["statusCode"].is_null());
    }
    assert!(receiver.hits().is_empty(), "{:?}", receiver.hits());
}
