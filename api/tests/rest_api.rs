//! Black-box tests of the Airtable-compatible REST API against the real binary: records,
//! listing options, comments, the metadata API, Airtable's errors, tokens, tenant isolation
//! and the per-base rate limit.

mod rest_support;

use std::collections::BTreeSet;

use pyairtable_eventstore::testkit::TestStore;
use reqwest::{Method, StatusCode};
use rest_support::{ALL_SCOPES, Api, account, http, serve, token};
use serde_json::{Value, json};

fn set<S: AsRef<str>>(items: &[S]) -> BTreeSet<String> {
    items.iter().map(|s| s.as_ref().to_owned()).collect()
}

fn error_type(body: &Value) -> &str {
    body["error"]["type"]
        .as_str()
        .or(body["error"].as_str())
        .unwrap_or("")
}

/// Creates a base with a `Tasks` table covering the common field types.
async fn create_base(api: &Api, workspace_id: &str) -> (String, Value) {
    let created = api
        .ok(
            Method::POST,
            "/meta/bases",
            Some(json!({
                "name": "Project",
                "workspaceId": workspace_id,
                "tables": [{
                    "name": "Tasks",
                    "description": "things to do",
                    "fields": [
                        {"name": "Name", "type": "singleLineText"},
                        {"name": "Notes", "type": "multilineText", "options": {}},
                        {"name": "Points", "type": "number", "options": {"precision": 1}},
                        {"name": "Done", "type": "checkbox", "options": {"icon": "check", "color": "greenBright"}},
                        {"name": "Due", "type": "date", "options": {"dateFormat": {"name": "iso"}}},
                        {"name": "Status", "type": "singleSelect", "options": {"choices": [{"name": "Todo"}, {"name": "Doing"}]}},
                        {"name": "Double", "type": "formula", "options": {"formula": "{Points} * 2"}},
                    ],
                }],
            })),
        )
        .await;
    let base_id = created["id"].as_str().expect("base id").to_owned();
    (base_id, created["tables"][0].clone())
}

#[tokio::test]
async fn records_metadata_and_errors_behave_like_airtable() {
    let store = TestStore::new().await;
    let owner = account(&store, "owner@example.com", ALL_SCOPES);
    let server = serve(&store, &[("PYAIRTABLE_RATE_LIMIT_PER_BASE", "0")]);
    let api = Api::new(&server, &owner.token);

    // Authentication.
    let anonymous = api.with_token("");
    // No Authorization header at all.
    let status = http()
        .get(format!("{}/meta/whoami", api.base_url))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = anonymous.get("/meta/whoami").await;
    assert_eq!(
        (status, error_type(&body)),
        (StatusCode::UNAUTHORIZED, "AUTHENTICATION_REQUIRED")
    );
    let (status, body) = api
        .with_token("patXXXXXXXXXXXXXX.0000")
        .get("/meta/whoami")
        .await;
    assert_eq!(
        (status, error_type(&body)),
        (StatusCode::UNAUTHORIZED, "AUTHENTICATION_REQUIRED")
    );
    let me = api.ok(Method::GET, "/meta/whoami", None).await;
    assert_eq!(me["id"], owner.user_id.as_str());
    assert_eq!(me["email"], "owner@example.com");
    assert!(
        me["scopes"]
            .as_array()
            .unwrap()
            .contains(&json!("data.records:read"))
    );

    // Metadata: create a base, list it, read its schema, add and rename things.
    let (base_id, table) = create_base(&api, &owner.workspace_id).await;
    assert_eq!(table["name"], "Tasks");
    assert_eq!(table["fields"][2]["options"]["precision"], 1);
    let bases = api.ok(Method::GET, "/meta/bases", None).await;
    assert_eq!(
        bases["bases"],
        json!([{"id": base_id, "name": "Project", "permissionLevel": "create"}])
    );
    let schema = api
        .ok(Method::GET, &format!("/meta/bases/{base_id}/tables"), None)
        .await;
    let table_id = schema["tables"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(schema["tables"][0]["views"][0]["type"], "grid");
    assert_eq!(
        schema["tables"][0]["primaryFieldId"],
        schema["tables"][0]["fields"][0]["id"]
    );
    let field = api
        .ok(
            Method::POST,
            &format!("/meta/bases/{base_id}/tables/{table_id}/fields"),
            Some(json!({"name": "Owner", "type": "email", "description": "who"})),
        )
        .await;
    assert_eq!(
        (field["name"].as_str(), field["type"].as_str()),
        (Some("Owner"), Some("email"))
    );
    let renamed = api
        .ok(
            Method::PATCH,
            &format!(
                "/meta/bases/{base_id}/tables/{table_id}/fields/{}",
                field["id"].as_str().unwrap()
            ),
            Some(json!({"name": "Assignee"})),
        )
        .await;
    assert_eq!(renamed["name"], "Assignee");
    let other = api
        .ok(
            Method::POST,
            &format!("/meta/bases/{base_id}/tables"),
            Some(
                json!({"name": "Scratch", "fields": [{"name": "Title", "type": "singleLineText"}]}),
            ),
        )
        .await;
    let other_id = other["id"].as_str().unwrap();
    let patched = api
        .ok(
            Method::PATCH,
            &format!("/meta/bases/{base_id}/tables/{other_id}"),
            Some(json!({"name": "Scratchpad", "description": "misc"})),
        )
        .await;
    assert_eq!(
        (patched["name"].as_str(), patched["description"].as_str()),
        (Some("Scratchpad"), Some("misc"))
    );

    // Create: batch with typecast (new select choice), and the single-record form.
    let tasks = format!("/{base_id}/Tasks");
    let created = api
        .ok(
            Method::POST,
            &tasks,
            Some(json!({"typecast": true, "records": [
                {"fields": {"Name": "Write docs", "Points": "3", "Status": "Blocked", "Due": "2024-03-01"}},
                {"fields": {"Name": "Ship it's \"done\"", "Points": 5, "Done": true, "Due": "2024-05-01"}},
                {"fields": {"Name": "Plan", "Points": 1.5, "Notes": "", "Status": "Todo"}},
            ]})),
        )
        .await;
    let records = created["records"].as_array().unwrap();
    assert_eq!(records.len(), 3);
    assert_eq!(records[0]["fields"]["Points"], 3.0);
    assert_eq!(records[0]["fields"]["Status"], "Blocked");
    assert_eq!(records[0]["fields"]["Double"], 6.0);
    assert!(
        records[2]["fields"].get("Notes").is_none(),
        "empty cells are left out"
    );
    assert!(records[0]["createdTime"].as_str().unwrap().ends_with('Z'));
    let single = api
        .ok(
            Method::POST,
            &tasks,
            Some(json!({"fields": {"Name": "Solo", "Points": 8}})),
        )
        .await;
    let solo_id = single["id"].as_str().unwrap().to_owned();
    assert_eq!(single["fields"]["Name"], "Solo");

    // Errors on write.
    let (status, body) = api
        .call(
            Method::POST,
            &tasks,
            Some(json!({"records": [{"fields": {"Nope": 1}}]})),
        )
        .await;
    assert_eq!(
        (status, error_type(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "UNKNOWN_FIELD_NAME"),
        "{body}"
    );
    let (status, body) = api
        .call(
            Method::POST,
            &tasks,
            Some(json!({"records": [{"fields": {"Points": "many"}}]})),
        )
        .await;
    assert_eq!(
        (status, error_type(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "INVALID_VALUE_FOR_COLUMN"),
        "{body}"
    );
    let (status, body) = api
        .call(
            Method::POST,
            &tasks,
            Some(json!({"records": [{"fields": {"Status": "Nope"}}]})),
        )
        .await;
    assert_eq!(
        (status, error_type(&body)),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "INVALID_MULTIPLE_CHOICE_OPTIONS"
        ),
        "{body}"
    );
    let eleven: Vec<Value> = (0..11)
        .map(|i| json!({"fields": {"Name": format!("n{i}")}}))
        .collect();
    let (status, _) = api
        .call(Method::POST, &tasks, Some(json!({"records": eleven})))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, body) = api
        .client
        .post(format!("{}{tasks}", api.base_url))
        .bearer_auth(&api.token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .map(|r| (r.status(), ()))
        .unwrap();
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body:?}");
    let (status, body) = api.get(&format!("/{base_id}/Nope")).await;
    assert_eq!(
        (status, error_type(&body)),
        (StatusCode::NOT_FOUND, "NOT_FOUND")
    );
    let (status, body) = api.get(&format!("{tasks}/rec00000000000000")).await;
    assert_eq!(
        (status, body),
        (StatusCode::NOT_FOUND, json!({"error": "NOT_FOUND"}))
    );
    let (status, body) = api.get("/nowhere/at/all/really/deep").await;
    assert_eq!(
        (status, body),
        (StatusCode::NOT_FOUND, json!({"error": "NOT_FOUND"}))
    );

    // Listing: all, paged, limited, projected, filtered, sorted, by field id, as strings.
    let all = api.ok(Method::GET, &tasks, None).await;
    assert_eq!(all["records"].as_array().unwrap().len(), 4);
    assert!(all.get("offset").is_none());
    let page1 = api
        .ok(Method::GET, &format!("{tasks}?pageSize=3"), None)
        .await;
    assert_eq!(page1["records"].as_array().unwrap().len(), 3);
    let offset = page1["offset"].as_str().expect("offset").to_owned();
    let page2 = api
        .ok(
            Method::GET,
            &format!("{tasks}?pageSize=3&offset={offset}"),
            None,
        )
        .await;
    assert_eq!(page2["records"].as_array().unwrap().len(), 1);
    assert_eq!(page2["records"][0]["id"], solo_id.as_str());
    assert!(page2.get("offset").is_none());
    let (status, body) = api.get(&format!("{tasks}?offset=itrbogus")).await;
    assert_eq!(
        (status, error_type(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "INVALID_OFFSET_VALUE")
    );
    let limited = api
        .ok(
            Method::GET,
            &format!("{tasks}?maxRecords=3&pageSize=2"),
            None,
        )
        .await;
    let next = limited["offset"].as_str().unwrap().to_owned();
    let rest = api
        .ok(
            Method::GET,
            &format!("{tasks}?maxRecords=3&pageSize=2&offset={next}"),
            None,
        )
        .await;
    assert_eq!(rest["records"].as_array().unwrap().len(), 1);
    assert!(rest.get("offset").is_none());
    let projected = api
        .ok(
            Method::GET,
            &format!("{tasks}?fields%5B%5D=Name&sort%5B0%5D%5Bfield%5D=Name&maxRecords=1"),
            None,
        )
        .await;
    assert_eq!(projected["records"][0]["fields"], json!({"Name": "Plan"}));
    let (status, body) = api.get(&format!("{tasks}?fields[]=Nope")).await;
    assert_eq!(
        (status, error_type(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "UNKNOWN_FIELD_NAME")
    );

    let names = |v: &Value| -> Vec<String> {
        v["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["fields"]["Name"].as_str().unwrap_or("").to_owned())
            .collect()
    };
    let filter = |f: &str| {
        let encoded: String = f.bytes().map(|b| format!("%{b:02X}")).collect();
        format!("{tasks}?filterByFormula={encoded}")
    };
    // Records of one batch share a creation time; only their set is defined, not their order.
    let v = api.ok(Method::GET, &filter("{Points} >= 3"), None).await;
    assert_eq!(
        set(&names(&v)),
        set(&["Write docs", "Ship it's \"done\"", "Solo"])
    );
    let v = api
        .ok(
            Method::GET,
            &filter(r#"{Name} = "Ship it's \"done\"""#),
            None,
        )
        .await;
    assert_eq!(names(&v), ["Ship it's \"done\""]);
    let v = api
        .ok(Method::GET, &filter("IS_BEFORE({Due}, '2024-04-01')"), None)
        .await;
    assert_eq!(names(&v), ["Write docs"]);
    let v = api
        .ok(
            Method::GET,
            &filter("AND({Done}, FIND('Ship', {Name}))"),
            None,
        )
        .await;
    assert_eq!(names(&v), ["Ship it's \"done\""]);
    let v = api.ok(Method::GET, &filter("{Double} < 4"), None).await;
    assert_eq!(names(&v), ["Plan"]);
    let v = api.ok(Method::GET, &filter("{Points} < 2"), None).await;
    assert_eq!(names(&v), ["Plan"]);
    let (status, body) = api.get(&filter("{Points} >= ")).await;
    assert_eq!(
        (status, error_type(&body)),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "INVALID_FILTER_BY_FORMULA"
        )
    );
    let (status, body) = api.get(&filter("{Missing} = 1")).await;
    assert_eq!(
        (status, error_type(&body)),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "INVALID_FILTER_BY_FORMULA"
        )
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Missing"),
        "{body}"
    );

    let sorted = api
        .ok(
            Method::GET,
            &format!("{tasks}?sort[0][field]=Points&sort[0][direction]=desc&pageSize=2"),
            None,
        )
        .await;
    assert_eq!(names(&sorted), ["Solo", "Ship it's \"done\""]);
    let after = sorted["offset"].as_str().unwrap().to_owned();
    let sorted2 = api
        .ok(
            Method::GET,
            &format!(
                "{tasks}?sort[0][field]=Points&sort[0][direction]=desc&pageSize=2&offset={after}"
            ),
            None,
        )
        .await;
    assert_eq!(names(&sorted2), ["Write docs", "Plan"]);
    let (status, body) = api
        .get(&format!("{tasks}?sort[0][field]=Points&offset={after}"))
        .await;
    assert_eq!(
        (status, error_type(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "INVALID_OFFSET_VALUE"),
        "an offset belongs to its query"
    );

    let posted = api
        .ok(
            Method::POST,
            &format!("{tasks}/listRecords"),
            Some(json!({"filterByFormula": "{Points} > 1", "sort": [{"field": "Name"}], "fields": ["Name", "Points"], "returnFieldsByFieldId": true})),
        )
        .await;
    let name_id = schema["tables"][0]["fields"][0]["id"].as_str().unwrap();
    let by_id: Vec<&str> = posted["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["fields"][name_id].as_str().unwrap())
        .collect();
    assert_eq!(by_id, ["Plan", "Ship it's \"done\"", "Solo", "Write docs"]);

    let strings = api
        .ok(Method::GET, &format!("{tasks}?cellFormat=string&timeZone=Europe%2FParis&userLocale=en-us&filterByFormula=%7BDone%7D"), None)
        .await;
    assert_eq!(strings["records"][0]["fields"]["Points"], "5.0");
    assert_eq!(strings["records"][0]["fields"]["Done"], "checked");
    assert_eq!(strings["records"][0]["fields"]["Due"], "5/1/2024");
    let (status, _) = api.get(&format!("{tasks}?cellFormat=string")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    // userLocale decides the date order and the decimal separator.
    let german = api
        .ok(Method::GET, &format!("{tasks}?cellFormat=string&timeZone=Europe%2FBerlin&userLocale=de&filterByFormula=%7BDone%7D"), None)
        .await;
    assert_eq!(german["records"][0]["fields"]["Points"], "5,0");
    assert_eq!(german["records"][0]["fields"]["Due"], "1.5.2024");
    let british = api
        .ok(
            Method::GET,
            &format!(
                "{tasks}?cellFormat=string&timeZone=UTC&userLocale=en-gb&filterByFormula=%7BDone%7D"
            ),
            None,
        )
        .await;
    assert_eq!(british["records"][0]["fields"]["Due"], "01/05/2024");
    for bad in [
        "cellFormat=string&timeZone=UTC",
        "cellFormat=string&userLocale=en-us",
        "cellFormat=string&timeZone=UTC&userLocale=tlh",
        "cellFormat=string&timeZone=Mars%2FOlympus&userLocale=en-us",
    ] {
        let (status, body) = api.get(&format!("{tasks}?{bad}")).await;
        assert_eq!(
            (status, error_type(&body)),
            (StatusCode::UNPROCESSABLE_ENTITY, "INVALID_REQUEST_UNKNOWN"),
            "{bad}: {body}"
        );
    }

    // Get, PATCH merges, PUT replaces.
    let one = api
        .ok(Method::GET, &format!("{tasks}/{solo_id}"), None)
        .await;
    assert_eq!(one["fields"]["Points"], 8.0);
    let patched = api
        .ok(
            Method::PATCH,
            &format!("{tasks}/{solo_id}"),
            Some(json!({"fields": {"Notes": "hi"}})),
        )
        .await;
    assert_eq!(
        (
            patched["fields"]["Name"].as_str(),
            patched["fields"]["Notes"].as_str()
        ),
        (Some("Solo"), Some("hi"))
    );
    let replaced = api
        .ok(
            Method::PUT,
            &tasks,
            Some(json!({"records": [{"id": solo_id, "fields": {"Name": "Solo 2"}}]})),
        )
        .await;
    // A formula over a now-empty number is 0, as in Airtable.
    assert_eq!(
        replaced["records"][0]["fields"],
        json!({"Name": "Solo 2", "Double": 0.0})
    );
    let read_back = api
        .ok(Method::GET, &format!("{tasks}/{solo_id}"), None)
        .await;
    assert_eq!(
        read_back["fields"], replaced["records"][0]["fields"],
        "a write is visible to the next read"
    );

    // Upsert by Name: one update, one create.
    let upserted = api
        .ok(
            Method::PATCH,
            &tasks,
            Some(
                json!({"performUpsert": {"fieldsToMergeOn": ["Name"]}, "records": [
                    {"fields": {"Name": "Plan", "Points": 2}},
                    {"fields": {"Name": "Brand new", "Points": 9}},
                ]}),
            ),
        )
        .await;
    assert_eq!(upserted["updatedRecords"].as_array().unwrap().len(), 1);
    assert_eq!(upserted["createdRecords"].as_array().unwrap().len(), 1);
    assert_eq!(upserted["records"][0]["fields"]["Points"], 2.0);
    assert_eq!(
        upserted["records"][0]["fields"]["Status"], "Todo",
        "PATCH upsert merges"
    );
    let new_id = upserted["createdRecords"][0].as_str().unwrap().to_owned();

    // An upsert is one atomic write: when its update part fails, nothing is created ...
    let (status, body) = api
        .call(
            Method::PATCH,
            &tasks,
            Some(
                json!({"performUpsert": {"fieldsToMergeOn": ["Name"]}, "records": [
                    {"fields": {"Name": "Atomic one", "Points": 1}},
                    {"id": "recAAAAAAAAAAAAAA", "fields": {"Points": 3}},
                ]}),
            ),
        )
        .await;
    assert_ne!(status, StatusCode::OK, "{body}");
    let leftover = api
        .ok(
            Method::POST,
            &format!("{tasks}/listRecords"),
            Some(json!({"filterByFormula": "{Name} = 'Atomic one'"})),
        )
        .await;
    assert_eq!(
        leftover["records"],
        json!([]),
        "a failed upsert created a record"
    );
    // ... and when its create part fails, nothing is updated.
    let (status, body) = api
        .call(
            Method::PATCH,
            &tasks,
            Some(
                json!({"performUpsert": {"fieldsToMergeOn": ["Name"]}, "records": [
                    {"fields": {"Name": "Plan", "Points": 7}},
                    {"fields": {"Name": "Atomic two", "Points": "not a number"}},
                ]}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(error_type(&body), "INVALID_VALUE_FOR_COLUMN");
    let plan = api
        .ok(
            Method::POST,
            &format!("{tasks}/listRecords"),
            Some(json!({"filterByFormula": "OR({Name} = 'Plan', {Name} = 'Atomic two')"})),
        )
        .await;
    assert_eq!(plan["records"].as_array().unwrap().len(), 1, "{plan}");
    assert_eq!(
        plan["records"][0]["fields"]["Points"], 2.0,
        "a failed upsert updated a record"
    );

    // Comments.
    let comments = format!("{tasks}/{solo_id}/comments");
    let c1 = api
        .ok(Method::POST, &comments, Some(json!({"text": "first"})))
        .await;
    let c2 = api
        .ok(Method::POST, &comments, Some(json!({"text": "second"})))
        .await;
    assert_eq!(c1["author"]["email"], "owner@example.com");
    let listed = api.ok(Method::GET, &comments, None).await;
    let texts: Vec<&str> = listed["comments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["second", "first"], "newest first");
    let edited = api
        .ok(
            Method::PATCH,
            &format!("{comments}/{}", c1["id"].as_str().unwrap()),
            Some(json!({"text": "first!"})),
        )
        .await;
    assert_eq!(edited["text"], "first!");
    assert!(edited["lastUpdatedTime"].is_string());
    let deleted = api
        .ok(
            Method::DELETE,
            &format!("{comments}/{}", c2["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(deleted["deleted"], true);
    let listed = api
        .ok(Method::GET, &format!("{comments}?pageSize=1"), None)
        .await;
    assert_eq!(listed["comments"].as_array().unwrap().len(), 1);
    assert!(listed["offset"].is_null());

    // Delete one and a batch.
    let gone = api
        .ok(Method::DELETE, &format!("{tasks}/{solo_id}"), None)
        .await;
    assert_eq!(gone, json!({"id": solo_id, "deleted": true}));
    let batch = api
        .ok(
            Method::DELETE,
            &format!(
                "{tasks}?records[]={new_id}&records%5B%5D={}",
                records[0]["id"].as_str().unwrap()
            ),
            None,
        )
        .await;
    assert_eq!(batch["records"].as_array().unwrap().len(), 2);
    let left = api.ok(Method::GET, &tasks, None).await;
    assert_eq!(set(&names(&left)), set(&["Ship it's \"done\"", "Plan"]));
    let (status, _) = api.get(&format!("{tasks}/{solo_id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Tenant isolation and token limits.
    let stranger = account(&store, "stranger@example.com", ALL_SCOPES);
    let other = api.with_token(&stranger.token);
    let (status, body) = other.get(&tasks).await;
    assert_eq!(
        (status, error_type(&body)),
        (
            StatusCode::FORBIDDEN,
            "INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND"
        )
    );
    let (status, body) = other.get(&format!("/meta/bases/{base_id}/tables")).await;
    assert_eq!(
        (status, error_type(&body)),
        (
            StatusCode::FORBIDDEN,
            "INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND"
        )
    );
    let (status, _) = other.get("/appXXXXXXXXXXXXXX/Tasks").await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a missing base looks like a forbidden one"
    );
    let theirs = other.ok(Method::GET, "/meta/bases", None).await;
    assert_eq!(theirs["bases"], json!([]));
    let read_only = api.with_token(&token(
        &store,
        "owner@example.com",
        "data.records:read",
        &[],
    ));
    read_only.ok(Method::GET, &tasks, None).await;
    let (status, body) = read_only
        .call(Method::POST, &tasks, Some(json!({"fields": {"Name": "x"}})))
        .await;
    assert_eq!(
        (status, error_type(&body)),
        (
            StatusCode::FORBIDDEN,
            "INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND"
        )
    );
    let (status, _) = read_only.get("/meta/whoami").await;
    assert_eq!(status, StatusCode::OK);
    let (_, other_base_table) = create_base(&api, &owner.workspace_id).await;
    assert_eq!(other_base_table["name"], "Tasks");
    let pinned = api.with_token(&token(&store, "owner@example.com", ALL_SCOPES, &[&base_id]));
    pinned.ok(Method::GET, &tasks, None).await;
    let listed = pinned.ok(Method::GET, "/meta/bases", None).await;
    assert_eq!(
        listed["bases"].as_array().unwrap().len(),
        1,
        "a pinned token lists its bases only"
    );
    let all_bases = api.ok(Method::GET, "/meta/bases", None).await;
    assert_eq!(all_bases["bases"].as_array().unwrap().len(), 2);

    drop(server);
    store.cleanup().await.unwrap();
}

#[tokio::test]
async fn the_rate_limit_answers_429_before_applying_anything() {
    let store = TestStore::new().await;
    let owner = account(&store, "busy@example.com", ALL_SCOPES);
    let server = serve(&store, &[("PYAIRTABLE_RATE_LIMIT_PER_BASE", "3")]);
    let api = Api::new(&server, &owner.token);
    let (base_id, _) = create_base(&api, &owner.workspace_id).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;

    let path = format!("/{base_id}/Tasks");
    let sends = (0..12).map(|i| {
        let api = &api;
        let path = &path;
        async move {
            let response = api
                .client
                .post(format!("{}{path}", api.base_url))
                .bearer_auth(&api.token)
                .json(&json!({"fields": {"Name": format!("task {i}")}}))
                .send()
                .await
                .unwrap();
            let status = response.status();
            let retry_after = response
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned());
            let body: Value = response.json().await.unwrap();
            (i, status, retry_after, body)
        }
    });
    let results = futures::future::join_all(sends).await;
    let mut applied = BTreeSet::new();
    let mut limited = 0;
    for (i, status, retry_after, body) in results {
        match status {
            StatusCode::OK => {
                applied.insert(format!("task {i}"));
            }
            StatusCode::TOO_MANY_REQUESTS => {
                limited += 1;
                assert_eq!(error_type(&body), "TOO_MANY_REQUESTS");
                let secs: u64 = retry_after.expect("Retry-After").parse().unwrap();
                assert!((1..=1).contains(&secs));
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert!(limited >= 8, "only {limited} of 12 were limited");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let list = api.ok(Method::GET, &path, None).await;
    let stored: BTreeSet<String> = list["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["fields"]["Name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(stored, applied, "exactly the accepted writes were applied");

    // Another base has its own budget.
    let (other_base, _) = create_base(&api, &owner.workspace_id).await;
    api.ok(Method::GET, &format!("/{other_base}/Tasks"), None)
        .await;

    drop(server);
    store.cleanup().await.unwrap();
}

/// Upsert matching reads only candidate records for a text merge field (a pre-filter through
/// the cells' index): it must still match texts exactly, find every duplicate, and behave the
/// same when the merge fields leave no pre-filter (numbers) and the whole table is read.
#[tokio::test]
async fn upsert_matching_is_exact_and_finds_every_match() {
    let store = TestStore::new().await;
    let owner = account(&store, "owner@example.com", ALL_SCOPES);
    let server = serve(&store, &[("PYAIRTABLE_RATE_LIMIT_PER_BASE", "0")]);
    let api = Api::new(&server, &owner.token);
    let (base_id, _) = create_base(&api, &owner.workspace_id).await;
    let tasks = format!("/{base_id}/Tasks");
    api.ok(
        Method::POST,
        &tasks,
        Some(json!({"records": [
            {"fields": {"Name": "Plan", "Points": 1}},
            {"fields": {"Name": "it's \"quoted\" ünï", "Points": 2}},
            {"fields": {"Name": "Twin", "Points": 3}},
            {"fields": {"Name": "Twin", "Points": 3}},
        ]})),
    )
    .await;
    let upsert = |merge: Value, records: Value| json!({"performUpsert": {"fieldsToMergeOn": merge}, "records": records});
    // Exact texts: case differs, so "plan" is new; quotes and accents match as given.
    let out = api
        .ok(
            Method::PATCH,
            &tasks,
            Some(upsert(
                json!(["Name"]),
                json!([
                    {"fields": {"Name": "plan", "Points": 5}},
                    {"fields": {"Name": "it's \"quoted\" ünï", "Points": 6}},
                ]),
            )),
        )
        .await;
    assert_eq!(out["createdRecords"].as_array().unwrap().len(), 1, "{out}");
    assert_eq!(out["updatedRecords"].as_array().unwrap().len(), 1, "{out}");
    assert_eq!(out["records"][1]["fields"]["Points"], 6.0);
    // Two records match: refused, by the pre-filtered path (text) and the full read (number).
    for merge in [
        json!(["Name"]),
        json!(["Points"]),
        json!(["Points", "Name"]),
    ] {
        let (status, body) = api
            .call(
                Method::PATCH,
                &tasks,
                Some(upsert(
                    merge.clone(),
                    json!([{"fields": {"Name": "Twin", "Points": 3}}]),
                )),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{merge}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap_or("")
                .contains("2 records match"),
            "{merge}: {body}"
        );
    }
    let all = api.ok(Method::GET, &tasks, None).await;
    assert_eq!(all["records"].as_array().unwrap().len(), 5, "{all}");
}
