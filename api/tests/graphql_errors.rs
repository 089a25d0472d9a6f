//! Clear errors for bad requests: malformed queries, wrong types, bad ids, oversized pages,
//! over-deep queries, bad filters, missing or bad credentials, oversized bodies; stale reads,
//! the rate limit and switched-off introspection; and the offline GraphiQL page.

mod graphql_support;

use pyairtable_eventstore::Position;
use serde_json::json;

use graphql_support::start;

#[tokio::test]
async fn bad_requests_get_clear_coded_errors() {
    let server = start(&[]).await;
    let (_, token) = server.register("carol@example.com").await;
    let t = Some(token.as_str());

    // Syntax error.
    let (status, body) = server.post(t, "{ me { id ", json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "VALIDATION",
        "{body}"
    );

    // Unknown field and wrong argument type.
    assert_eq!(
        server.error_code(t, "{ me { nope } }", json!({})).await,
        "VALIDATION"
    );
    let (_, body) = server
        .post(
            t,
            "{ records(tableId: \"tbl00000000000000\", first: \"ten\") { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "VALIDATION",
        "{body}"
    );
    let (_, body) = server
        .post(
            t,
            "query($f: Int) { records(tableId: \"tbl00000000000000\", first: $f) { totalCount } }",
            json!({ "f": "x" }),
        )
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "VALIDATION",
        "{body}"
    );

    // A malformed id names what was expected.
    let (_, body) = server
        .post(t, "{ record(id: \"nope\") { id } }", json!({}))
        .await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "VALIDATION");
    assert_eq!(body["errors"][0]["extensions"]["reason"], "INVALID_ID");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("rec"),
        "{body}"
    );

    // A real table to page and filter.
    let ws = server
        .data(
            t,
            "mutation { createWorkspace(name: \"E\") { workspace { id } } }",
            json!({}),
        )
        .await["createWorkspace"]["workspace"]["id"]
        .clone();
    let base = server
        .data(
            t,
            "mutation($w: ID!) { createBase(workspaceId: $w, name: \"B\") { base { id } } }",
            json!({ "w": ws }),
        )
        .await["createBase"]["base"]["id"]
        .clone();
    let table = server
        .data(
            t,
            "mutation($b: ID!) { createTable(baseId: $b, name: \"T\", fields: [{name: \"Name\", type: \"singleLineText\"}, {name: \"N\", type: \"number\", options: {precision: 0}}, {name: \"Double\", type: \"formula\", options: {formula: \"{N} * 2\"}}]) { table { id } consistencyToken } }",
            json!({ "b": base }),
        )
        .await["createTable"]
        .clone();
    let table_id = table["table"]["id"].clone();

    // Oversized page.
    let (_, body) = server
        .post(
            t,
            "query($t: ID!) { records(tableId: $t, first: 101) { totalCount } }",
            json!({ "t": table_id }),
        )
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "VALIDATION",
        "{body}"
    );
    assert_eq!(body["errors"][0]["extensions"]["reason"], "PAGE_TOO_LARGE");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("100")
    );
    // The largest page is fine.
    server
        .data(t, "query($t: ID!, $c: String) { records(tableId: $t, first: 100, consistencyToken: $c) { totalCount } }", json!({ "t": table_id, "c": table["consistencyToken"] }))
        .await;

    // Bad filters: unknown field, a value of the wrong type, an operator without a field.
    let filter_query =
        "query($t: ID!, $f: RecordFilter) { records(tableId: $t, filter: $f) { totalCount } }";
    for (filter, reason) in [
        (
            json!({ "field": "Nope", "eq": 1 }),
            Some("UNKNOWN_FIELD_NAME"),
        ),
        (
            json!({ "field": "N", "gt": "abc" }),
            Some("INVALID_FILTER_VALUE"),
        ),
        (json!({ "eq": 1 }), None),
        (
            json!({ "field": "Name", "gt": 3 }),
            Some("INVALID_FILTER_VALUE"),
        ),
        // Computed on read: the stored cells a filter reads do not hold it.
        (
            json!({ "field": "Double", "gt": 3 }),
            Some("COMPUTED_FIELD"),
        ),
    ] {
        let (_, body) = server
            .post(t, filter_query, json!({ "t": table_id, "f": filter }))
            .await;
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "VALIDATION",
            "{filter}: {body}"
        );
        if let Some(reason) = reason {
            assert_eq!(
                body["errors"][0]["extensions"]["reason"], reason,
                "{filter}: {body}"
            );
        }
    }
    let (_, body) = server
        .post(
            t,
            "query($t: ID!) { records(tableId: $t, sort: [{field: \"double\"}]) { totalCount } }",
            json!({ "t": table_id }),
        )
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["reason"], "COMPUTED_FIELD",
        "{body}"
    );
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("\"Double\""),
        "names the field: {body}"
    );
    let (_, body) = server
        .post(
            t,
            "query($t: ID!) { records(tableId: $t, after: \"garbage\") { totalCount } }",
            json!({ "t": table_id }),
        )
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["reason"], "INVALID_CURSOR",
        "{body}"
    );

    // Over-deep query.
    let mut deep = String::from("name");
    for _ in 0..20 {
        deep = format!("ofType {{ {deep} }}");
    }
    let (_, body) = server
        .post(
            t,
            &format!("{{ __type(name: \"Query\") {{ {deep} }} }}"),
            json!({}),
        )
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "VALIDATION",
        "{body}"
    );
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("deep"),
        "{body}"
    );

    // Credentials.
    assert_eq!(
        server.error_code(None, "{ me { id } }", json!({})).await,
        "UNAUTHENTICATED"
    );
    let (status, body) = server
        .post(Some("not-a-jwt"), "{ me { id } }", json!({}))
        .await;
    assert_eq!(status, 401);
    assert_eq!(body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");
    let (status, _) = server
        .post(Some("pat00000000000000.0000"), "{ me { id } }", json!({}))
        .await;
    assert_eq!(status, 401);

    let code = server
        .error_code(
            t,
            "{ workspaces(consistencyToken: \"x\") { id } }",
            json!({}),
        )
        .await;
    assert_eq!(code, "VALIDATION");

    // Oversized body.
    let huge = "a".repeat(2 * 1024 * 1024);
    let response = reqwest::Client::new()
        .post(format!("{}/graphql", server.base_url))
        .header("content-type", "application/json")
        .body(json!({ "query": format!("{{ me {{ id }} }} # {huge}") }).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);

    // An unknown record is reported missing, with its id.
    let (_, body) = server
        .post(t, "{ record(id: \"rec00000000000000\") { id } }", json!({}))
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "NOT_FOUND",
        "{body}"
    );

    server.stop().await;
}

#[tokio::test]
async fn rate_limit_introspection_switch_and_offline_graphiql() {
    let server = start(&[
        ("PYAIRTABLE_GRAPHQL_RATE_LIMIT", "8"),
        ("PYAIRTABLE_GRAPHQL_INTROSPECTION", "false"),
        ("PYAIRTABLE_CONSISTENCY_TIMEOUT_MS", "300"),
    ])
    .await;
    let (_, token) = server.register("dave@example.com").await;

    // A consistency token the read models cannot reach in time.
    let future = Position {
        epoch: 9,
        xid: 1,
        pos: 1,
    }
    .to_token();
    let code = server
        .error_code(
            Some(&token),
            "query($c: String) { workspaces(consistencyToken: $c) { id } }",
            json!({ "c": future }),
        )
        .await;
    assert_eq!(code, "STALE_READ");

    // Introspection is off: the schema is not described (GraphQL answers `null`).
    let (_, body) = server
        .post(Some(&token), "{ __schema { types { name } } }", json!({}))
        .await;
    assert!(body["data"]["__schema"].is_null(), "{body}");
    assert!(!body.to_string().contains("Workspace"), "{body}");

    // The GraphiQL page and its assets come from the binary.
    let http = reqwest::Client::new();
    let page = http
        .get(format!("{}/graphql", server.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("/graphiql/assets/graphiql.min.js"));
    assert!(!html.contains("https://"), "no CDN");
    for asset in [
        "graphiql.min.js",
        "graphiql.min.css",
        "react.production.min.js",
        "react-dom.production.min.js",
    ] {
        let response = http
            .get(format!("{}/graphiql/assets/{asset}", server.base_url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{asset}");
        assert!(response.bytes().await.unwrap().len() > 1000, "{asset}");
    }

    // The per-token limit: 8 per window, shared by every request of the token.
    let mut limited = None;
    for _ in 0..12 {
        let response = http
            .post(format!("{}/graphql", server.base_url))
            .bearer_auth(&token)
            .json(&json!({ "query": "{ me { id } }" }))
            .send()
            .await
            .unwrap();
        if response.status() == 429 {
            limited = Some(response);
            break;
        }
    }
    let limited = limited.expect("the limit applies");
    let retry_after: u64 = limited
        .headers()
        .get("retry-after")
        .expect("Retry-After header")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after));
    let body: serde_json::Value = limited.json().await.unwrap();
    assert_eq!(body["errors"][0]["extensions"]["code"], "RATE_LIMITED");
    assert_eq!(body["errors"][0]["extensions"]["retryAfter"], retry_after);

    server.stop().await;
}
