//! Who may do what through GraphQL, and for how long, against the real binary: API tokens
//! (`pat…`) act within their scopes, base restriction and their owner's role and stop working
//! once revoked, over HTTP and over WebSocket; instance administrators rebuild a projection and
//! follow its progress to the end, and nobody else may; a member removed from a workspace
//! receives none of its events committed after the removal and cannot subscribe again.

mod graphql_support;

use std::time::Duration;

use serde_json::{Value, json};

use graphql_support::{ADMIN_EMAIL, Server, refusal_code, start};

const RECORDS: &str =
    "query($t: ID!, $c: String) { records(tableId: $t, consistencyToken: $c) { totalCount } }";
const CREATE: &str = "mutation($t: ID!, $n: String!) { createRecords(tableId: $t, records: [{Name: $n}]) { records { id } consistencyToken } }";
const RECORD_CHANGES: &str =
    "subscription($t: ID!) { recordChanges(tableId: $t) { kind recordId cells } }";

/// Creates an API token as the holder of `session`; returns `(token id, token)`.
async fn api_token(
    server: &Server,
    session: &str,
    scopes: &[&str],
    bases: Option<&[&str]>,
) -> (String, String) {
    let created = server
        .data(
            Some(session),
            "mutation($s: [String!]!, $b: [ID!]) { createApiToken(name: \"test\", scopes: $s, baseIds: $b) { tokenId token } }",
            json!({ "s": scopes, "b": bases }),
        )
        .await["createApiToken"]
        .clone();
    (
        created["tokenId"].as_str().expect("token id").to_owned(),
        created["token"].as_str().expect("token").to_owned(),
    )
}

/// Creates a record named `name`; returns its id and the write's consistency token.
async fn create_record(server: &Server, token: &str, table: &str, name: &str) -> (String, String) {
    let created = server
        .data(Some(token), CREATE, json!({ "t": table, "n": name }))
        .await["createRecords"]
        .clone();
    (
        created["records"][0]["id"]
            .as_str()
            .expect("record id")
            .to_owned(),
        created["consistencyToken"]
            .as_str()
            .expect("consistency token")
            .to_owned(),
    )
}

/// `records(tableId: table, consistencyToken: after)`'s variables.
fn records_vars(table: &str, after: &str) -> Value {
    json!({ "t": table, "c": after })
}

/// Waits for the next message of subscription `id`, skipping other subscriptions' messages.
async fn next_of(socket: &mut graphql_support::Ws, id: &str, timeout: Duration) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let message = socket.next(left).await?;
        if message["id"] == id || message["type"] == "close" {
            return Some(message);
        }
    }
}

#[tokio::test]
async fn api_tokens_act_within_their_scopes_and_role_and_stop_when_revoked() {
    let server = start(&[]).await;
    let (_, alice) = server.register("alice@example.com").await;
    let (bob_id, bob) = server.register("bob@example.com").await;
    let (_, admin) = server.register(ADMIN_EMAIL).await;
    let home = server.workspace_with_table(&alice).await;
    let elsewhere = server.workspace_with_table(&alice).await;
    let (_, first) = create_record(&server, &alice, &home.table_id, "by session").await;
    let vars = json!({ "t": home.table_id });

    // A read-only token reads, and is refused every write.
    let (read_id, read) = api_token(
        &server,
        &alice,
        &["data.records:read", "schema.bases:read"],
        None,
    )
    .await;
    assert!(read.starts_with("pat"), "{read}");
    let counted = server
        .data(Some(&read), RECORDS, records_vars(&home.table_id, &first))
        .await;
    assert_eq!(counted["records"]["totalCount"], 1);
    let base = server
        .data(
            Some(&read),
            "query($b: ID!) { base(id: $b) { tables { id } } }",
            json!({ "b": home.base_id }),
        )
        .await;
    assert_eq!(base["base"]["tables"][0]["id"], home.table_id.as_str());
    let write = json!({ "t": home.table_id, "n": "by read token" });
    assert_eq!(
        server.error_code(Some(&read), CREATE, write.clone()).await,
        "FORBIDDEN"
    );
    assert_eq!(
        server
            .error_code(
                Some(&read),
                "mutation($b: ID!) { createTable(baseId: $b, name: \"X\", fields: [{name: \"A\", type: \"singleLineText\"}]) { table { id } } }",
                json!({ "b": home.base_id }),
            )
            .await,
        "FORBIDDEN"
    );

    // A token restricted to another base is refused this one, whatever its scopes.
    let (_, narrow) = api_token(
        &server,
        &alice,
        &["data.records:read", "data.records:write"],
        Some(&[elsewhere.base_id.as_str()]),
    )
    .await;
    assert_eq!(
        server
            .error_code(Some(&narrow), RECORDS, vars.clone())
            .await,
        "FORBIDDEN"
    );
    assert_eq!(
        server
            .error_code(Some(&narrow), CREATE, write.clone())
            .await,
        "FORBIDDEN"
    );
    create_record(&server, &narrow, &elsewhere.table_id, "in its base").await;

    // A write token writes, and the write is recorded as the token's.
    let (write_id, writer) = api_token(
        &server,
        &alice,
        &["data.records:read", "data.records:write"],
        None,
    )
    .await;
    let (record, written) = create_record(&server, &writer, &home.table_id, "by token").await;
    let history = server
        .data(
            Some(&alice),
            "query($r: ID!, $c: String) { record(id: $r, consistencyToken: $c) { history { actor { kind id userId } } } }",
            json!({ "r": record, "c": written }),
        )
        .await;
    let actor = &history["record"]["history"][0]["actor"];
    assert_eq!(actor["kind"], "api_token", "{history}");
    assert_eq!(actor["id"], write_id.as_str());

    // A token never goes beyond its owner's role: Bob reads Alice's workspace only.
    server
        .data(
            Some(&alice),
            "mutation($w: ID!, $u: ID!) { addMember(workspaceId: $w, userId: $u, role: READ) { version } }",
            json!({ "w": home.workspace_id, "u": bob_id }),
        )
        .await;
    let (_, bobs) = api_token(
        &server,
        &bob,
        &["data.records:read", "data.records:write"],
        None,
    )
    .await;
    assert_eq!(
        server
            .data(Some(&bobs), RECORDS, records_vars(&home.table_id, &written))
            .await["records"]["totalCount"],
        2
    );
    assert_eq!(
        server.error_code(Some(&bobs), CREATE, write.clone()).await,
        "FORBIDDEN"
    );
    // Nor may a token do what needs a session: administration, even an administrator's.
    let (_, admins) = api_token(&server, &admin, &["data.records:read"], None).await;
    assert_eq!(
        server
            .error_code(Some(&admins), "{ projections { name } }", json!({}))
            .await,
        "FORBIDDEN"
    );

    // Someone else cannot revoke Alice's token.
    let revoke = "mutation($id: ID!) { revokeApiToken(tokenId: $id) { version } }";
    let code = server
        .error_code(Some(&bob), revoke, json!({ "id": read_id }))
        .await;
    assert!(code == "NOT_FOUND" || code == "FORBIDDEN", "{code}");
    assert_eq!(
        server
            .data(Some(&read), RECORDS, records_vars(&home.table_id, &written))
            .await["records"]["totalCount"],
        2
    );

    // A subscription over a WebSocket signed in with the token delivers…
    let mut socket = server.ws(Some(&read)).await;
    let sub = socket.subscribe(RECORD_CHANGES, vars.clone()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (live, _) = create_record(&server, &alice, &home.table_id, "seen live").await;
    let seen = next_of(&mut socket, &sub, Duration::from_secs(5))
        .await
        .expect("CREATED");
    assert_eq!(
        seen["payload"]["data"]["recordChanges"]["recordId"],
        live.as_str()
    );

    // …until Alice revokes the token: every request is refused from then on, and the open
    // subscription ends at its next event (its token is checked again at least every 2 s).
    server
        .data(Some(&alice), revoke, json!({ "id": read_id }))
        .await;
    let (status, body) = server.post(Some(&read), RECORDS, vars.clone()).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");
    let (_, refused) = server.ws_init(Some(&read)).await;
    assert_ne!(refused["type"], "connection_ack", "{refused}");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (after, last) = create_record(&server, &alice, &home.table_id, "after revocation").await;
    let ended = next_of(&mut socket, &sub, Duration::from_secs(5))
        .await
        .expect("the subscription ends");
    assert_eq!(refusal_code(&ended), "UNAUTHENTICATED", "{ended}");
    assert!(!ended.to_string().contains(&after), "{ended}");
    // Other tokens are untouched.
    assert_eq!(
        server
            .data(Some(&writer), RECORDS, records_vars(&home.table_id, &last))
            .await["records"]["totalCount"],
        4
    );

    server.stop().await;
}

#[tokio::test]
async fn an_admin_rebuilds_a_projection_and_follows_it_to_done_and_nobody_else_may() {
    let server = start(&[]).await;
    let (_, admin) = server.register(ADMIN_EMAIL).await;
    let (_, bob) = server.register("bob@example.com").await;
    let fixture = server.workspace_with_table(&admin).await;
    let mut written = String::new();
    for name in ["one", "two", "three"] {
        written = create_record(&server, &admin, &fixture.table_id, name)
            .await
            .1;
    }
    let records = server
        .data(
            Some(&admin),
            RECORDS,
            records_vars(&fixture.table_id, &written),
        )
        .await;
    assert_eq!(records["records"]["totalCount"], 3);
    let rebuild = "mutation($n: String!) { rebuildProjection(name: $n) { projection started } }";
    let progress = "subscription($n: String!) { projectionProgress(name: $n) { projection generation phase done total rate etaSeconds } }";
    let status = "{ projections { name generation state } }";
    let generation = |listed: &Value| {
        listed["projections"]
            .as_array()
            .and_then(|p| p.iter().find(|p| p["name"] == "records"))
            .and_then(|p| p["generation"].as_i64())
            .expect("records projection")
    };
    let before = generation(&server.data(Some(&admin), status, json!({})).await);

    // Nobody but a signed-in administrator: not a user, not a stranger, not an admin's token.
    let (_, admins_token) = api_token(&server, &admin, &["data.records:read"], None).await;
    for token in [Some(bob.as_str()), Some(admins_token.as_str())] {
        assert_eq!(
            server
                .error_code(token, rebuild, json!({ "n": "records" }))
                .await,
            "FORBIDDEN"
        );
        let mut socket = server.ws(token).await;
        socket.subscribe(progress, json!({ "n": "records" })).await;
        let refused = socket
            .next(Duration::from_secs(5))
            .await
            .expect("an answer");
        assert_eq!(refusal_code(&refused), "FORBIDDEN", "{refused}");
    }
    assert_eq!(
        server
            .error_code(None, rebuild, json!({ "n": "records" }))
            .await,
        "UNAUTHENTICATED"
    );
    assert_eq!(
        server
            .error_code(Some(&admin), rebuild, json!({ "n": "nope" }))
            .await,
        "NOT_FOUND"
    );

    // The administrator watches a rebuild from its start to its switch.
    let mut socket = server.ws(Some(&admin)).await;
    let sub = socket.subscribe(progress, json!({ "n": "records" })).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = server
        .data(Some(&admin), rebuild, json!({ "n": "records" }))
        .await;
    assert_eq!(
        started["rebuildProjection"],
        json!({ "projection": "records", "started": true })
    );
    let order = ["REPLAYING", "SWITCHING", "DONE"];
    let mut phases: Vec<String> = Vec::new();
    let last = loop {
        let message = next_of(&mut socket, &sub, Duration::from_secs(60))
            .await
            .expect("progress within a minute");
        assert_eq!(message["type"], "next", "{message}");
        let p = message["payload"]["data"]["projectionProgress"].clone();
        assert_eq!(p["projection"], "records", "{p}");
        let phase = p["phase"].as_str().expect("phase").to_owned();
        assert_ne!(phase, "FAILED", "{p}");
        if phases.last() != Some(&phase) {
            phases.push(phase.clone());
        }
        if phase == "DONE" {
            break p;
        }
    };
    let ranks: Vec<usize> = phases
        .iter()
        .map(|p| order.iter().position(|o| o == p).expect("known phase"))
        .collect();
    assert!(ranks.windows(2).all(|w| w[0] < w[1]), "{phases:?}");
    assert_eq!(phases, order, "every phase is reported");
    // Everything in the store was replayed: at least the workspace, base, table, 3 records.
    assert!(last["total"].as_i64().is_some_and(|t| t >= 6), "{last}");
    assert!(last["done"].as_i64() >= last["total"].as_i64(), "{last}");
    assert!(
        last["generation"].as_i64().is_some_and(|g| g > before),
        "{last}"
    );

    // A rebuild started elsewhere (here the CLI, in another process) is followed too.
    let sub = socket
        .subscribe(progress, json!({ "n": "audit_log" }))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let cli = server.cli(&["projections", "rebuild", "audit_log"]).await;
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    let mut seen = Vec::new();
    loop {
        let message = next_of(&mut socket, &sub, Duration::from_secs(30))
            .await
            .expect("progress of the CLI's rebuild");
        let p = message["payload"]["data"]["projectionProgress"].clone();
        assert_eq!(p["projection"], "audit_log", "{p}");
        let phase = p["phase"].as_str().expect("phase").to_owned();
        seen.push(phase.clone());
        if phase == "DONE" {
            break;
        }
        assert_ne!(phase, "FAILED", "{p}");
    }
    assert!(seen.contains(&"REPLAYING".to_owned()), "{seen:?}");

    // The switched read model serves queries, and the projection runs again.
    let listed = server.data(Some(&admin), status, json!({})).await;
    assert!(generation(&listed) > before, "{listed}");
    // No consistency token: the new generation holds everything from the start.
    let records = server
        .data(Some(&admin), RECORDS, json!({ "t": fixture.table_id }))
        .await;
    assert_eq!(records["records"]["totalCount"], 3);
    let (after_rebuild, written) = create_record(&server, &admin, &fixture.table_id, "four").await;
    let found = server
        .data(
            Some(&admin),
            "query($r: ID!, $c: String) { record(id: $r, consistencyToken: $c) { id } }",
            json!({ "r": after_rebuild, "c": written }),
        )
        .await;
    assert_eq!(found["record"]["id"], after_rebuild.as_str());

    server.stop().await;
}

#[tokio::test]
async fn a_removed_member_gets_no_further_events_and_cannot_subscribe_again() {
    let server = start(&[]).await;
    let (_, alice) = server.register("alice@example.com").await;
    let (bob_id, bob) = server.register("bob@example.com").await;
    let fixture = server.workspace_with_table(&alice).await;
    // A creator may follow both the table's records and the workspace's audit events.
    server
        .data(
            Some(&alice),
            "mutation($w: ID!, $u: ID!) { addMember(workspaceId: $w, userId: $u, role: CREATOR) { version } }",
            json!({ "w": fixture.workspace_id, "u": bob_id }),
        )
        .await;
    let table_vars = json!({ "t": fixture.table_id });
    let events = "subscription($w: ID!) { events(filter: {workspaceIds: [$w], aggregateKinds: [\"record\"]}) { eventType streamId } }";
    let workspace_vars = json!({ "w": fixture.workspace_id });

    let mut socket = server.ws(Some(&bob)).await;
    let changes = socket.subscribe(RECORD_CHANGES, table_vars.clone()).await;
    let feed = socket.subscribe(events, workspace_vars.clone()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    // While a member, Bob sees Alice's write on both.
    let (first, _) = create_record(&server, &alice, &fixture.table_id, "while a member").await;
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let message = socket
            .next(Duration::from_secs(5))
            .await
            .expect("both subscriptions deliver");
        assert_eq!(message["type"], "next", "{message}");
        seen.push(message);
    }
    assert!(
        seen.iter().all(|m| m.to_string().contains(&first)),
        "{seen:?}"
    );

    // Alice removes Bob and writes at once, well inside the periodic re-check interval: the
    // removal reaches Bob's subscriptions before the write does, and ends them.
    server
        .data(
            Some(&alice),
            "mutation($w: ID!, $u: ID!) { removeMember(workspaceId: $w, userId: $u) { version } }",
            json!({ "w": fixture.workspace_id, "u": bob_id }),
        )
        .await;
    let (secret, _) = create_record(&server, &alice, &fixture.table_id, "after the removal").await;
    let mut ended = Vec::new();
    let mut after_removal = Vec::new();
    while let Some(message) = socket.next(Duration::from_secs(3)).await {
        after_removal.push(message.clone());
        if message["type"] == "next" && !message["payload"]["errors"].is_null() {
            assert_eq!(refusal_code(&message), "FORBIDDEN", "{message}");
            ended.push(message["id"].as_str().unwrap_or_default().to_owned());
        }
    }
    let text = Value::Array(after_removal.clone()).to_string();
    assert!(!text.contains(&secret), "Bob received {text}");
    ended.sort();
    let mut expected = vec![changes.clone(), feed.clone()];
    expected.sort();
    assert_eq!(ended, expected, "both subscriptions end: {text}");
    for id in [&changes, &feed] {
        assert!(
            after_removal
                .iter()
                .any(|m| m["id"] == id.as_str() && m["type"] == "complete"),
            "subscription {id} completes: {text}"
        );
    }

    // Bob cannot subscribe again: the workspace is unknown to him now.
    for (query, vars) in [(RECORD_CHANGES, &table_vars), (events, &workspace_vars)] {
        let id = socket.subscribe(query, vars.clone()).await;
        let refused = next_of(&mut socket, &id, Duration::from_secs(5))
            .await
            .expect("an answer");
        assert_eq!(refusal_code(&refused), "NOT_FOUND", "{refused}");
    }
    // And an unfiltered feed of his own shows nothing of it.
    socket
        .subscribe("subscription { events { eventType streamId } }", json!({}))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (later, _) = create_record(&server, &alice, &fixture.table_id, "later").await;
    while let Some(message) = socket.next(Duration::from_millis(1500)).await {
        assert!(
            !message.to_string().contains(&later) && message["type"] != "next",
            "Bob received {message}"
        );
    }

    server.stop().await;
}
