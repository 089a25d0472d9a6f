//! Tenant isolation through GraphQL: a second user gets `FORBIDDEN` or `NOT_FOUND` for every
//! query, mutation and subscription on the first user's workspace, sees nothing of it in any
//! list, and changes nothing; a read-only member reads but cannot write.

mod graphql_support;

use std::time::Duration;

use serde_json::json;

use graphql_support::{refusal_code, start};

#[tokio::test]
async fn a_stranger_sees_and_changes_nothing_of_another_workspace() {
    let server = start(&[]).await;
    let (_, alice) = server.register("alice@example.com").await;
    let (bob_id, bob) = server.register("bob@example.com").await;
    let a = Some(alice.as_str());
    let b = Some(bob.as_str());

    // Alice's workspace, base, table and record.
    let ws = server
        .data(
            a,
            "mutation { createWorkspace(name: \"Secret\") { workspace { id } } }",
            json!({}),
        )
        .await["createWorkspace"]["workspace"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let base = server
        .data(
            a,
            "mutation($w: ID!) { createBase(workspaceId: $w, name: \"B\") { base { id } } }",
            json!({ "w": ws }),
        )
        .await["createBase"]["base"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let table = server
        .data(
            a,
            "mutation($b: ID!) { createTable(baseId: $b, name: \"T\", fields: [{name: \"Name\", type: \"singleLineText\"}]) { table { id fields { id } views { id } } } }",
            json!({ "b": base }),
        )
        .await["createTable"]["table"]
        .clone();
    let table_id = table["id"].as_str().unwrap().to_owned();
    let field_id = table["fields"][0]["id"].as_str().unwrap().to_owned();
    let view_id = table["views"][0]["id"].as_str().unwrap().to_owned();
    let created = server
        .data(
            a,
            "mutation($t: ID!) { createRecords(tableId: $t, records: [{Name: \"classified\"}]) { records { id } consistencyToken } }",
            json!({ "t": table_id }),
        )
        .await["createRecords"]
        .clone();
    let record = created["records"][0]["id"].as_str().unwrap().to_owned();
    let token = created["consistencyToken"].as_str().unwrap().to_owned();
    let comment = server
        .data(
            a,
            "mutation($r: ID!) { addComment(recordId: $r, text: \"mine\") { commentId consistencyToken } }",
            json!({ "r": record }),
        )
        .await["addComment"]
        .clone();
    let comment_id = comment["commentId"].as_str().unwrap().to_owned();

    // Lists show Bob nothing of it, even after the read models caught up.
    let lists = server
        .data(
            b,
            "query($c: String) { workspaces(consistencyToken: $c) { id } }",
            json!({ "c": comment["consistencyToken"] }),
        )
        .await;
    assert_eq!(lists["workspaces"], json!([]));
    let events_sub_free = server
        .post(b, "{ events(first: 10) { nodes { streamId } } }", json!({}))
        .await
        .1;
    assert_eq!(
        events_sub_free["errors"][0]["extensions"]["code"],
        "FORBIDDEN"
    );

    let denied = |code: &str| code == "NOT_FOUND" || code == "FORBIDDEN";
    let vars = json!({
        "w": ws, "b": base, "t": table_id, "r": record, "f": field_id, "v": view_id,
        "c": comment_id, "u": bob_id, "s": format!("record-{record}"), "tok": token,
    });
    let queries = [
        "query($w: ID!) { workspace(id: $w) { id members { userId } } }",
        "query($b: ID!) { base(id: $b) { id tables { id } } }",
        "query($t: ID!) { table(id: $t) { id fields { id } } }",
        "query($t: ID!, $tok: String) { records(tableId: $t, consistencyToken: $tok) { nodes { id } } }",
        "query($t: ID!) { records(tableId: $t, filter: {field: \"Name\", eq: \"classified\"}) { nodes { id } } }",
        "query($r: ID!) { record(id: $r) { id cells } }",
        "query($r: ID!) { record(id: $r, version: 1) { id cells } }",
        "query($r: ID!) { record(id: $r, asOf: \"2100-01-01T00:00:00Z\") { id } }",
        "query($t: ID!) { table(id: $t) { records(asOf: \"2100-01-01T00:00:00Z\") { nodes { id } } } }",
        "query($w: ID!) { auditLog(workspaceId: $w) { nodes { eventType } } }",
        "query($s: String!) { verifyStream(streamId: $s) { ok } }",
        "query { projections { name } }",
    ];
    for query in queries {
        let code = server.error_code(b, query, vars.clone()).await;
        assert!(denied(&code), "{query} gave {code}");
    }
    let mutations = [
        "mutation($w: ID!) { renameWorkspace(id: $w, name: \"mine\") { version } }",
        "mutation($w: ID!) { inviteMember(workspaceId: $w, email: \"eve@example.com\", role: OWNER) { version } }",
        "mutation($w: ID!, $u: ID!) { addMember(workspaceId: $w, userId: $u, role: OWNER) { version } }",
        "mutation($w: ID!) { archiveWorkspace(id: $w) { version } }",
        "mutation($w: ID!) { createBase(workspaceId: $w, name: \"x\") { version } }",
        "mutation($b: ID!) { renameBase(id: $b, name: \"x\") { version } }",
        "mutation($b: ID!) { deleteBase(id: $b) { version } }",
        "mutation($b: ID!) { createTable(baseId: $b, name: \"x\", fields: [{name: \"n\", type: \"singleLineText\"}]) { version } }",
        "mutation($t: ID!) { updateTable(tableId: $t, name: \"x\") { version } }",
        "mutation($t: ID!) { deleteTable(tableId: $t) { version } }",
        "mutation($t: ID!) { addField(tableId: $t, field: {name: \"x\", type: \"singleLineText\"}) { version } }",
        "mutation($t: ID!, $f: ID!) { updateField(tableId: $t, fieldId: $f, name: \"x\") { version } }",
        "mutation($t: ID!, $f: ID!) { deleteField(tableId: $t, fieldId: $f) { version } }",
        "mutation($t: ID!) { createView(tableId: $t, name: \"x\") { version } }",
        "mutation($t: ID!, $v: ID!) { updateView(tableId: $t, viewId: $v, name: \"x\") { version } }",
        "mutation($t: ID!) { createRecords(tableId: $t, records: [{Name: \"x\"}]) { consistencyToken } }",
        "mutation($t: ID!, $r: ID!) { updateRecords(tableId: $t, records: [{id: $r, fields: {Name: \"x\"}}]) { consistencyToken } }",
        "mutation($t: ID!, $r: ID!) { deleteRecords(tableId: $t, ids: [$r]) { consistencyToken } }",
        "mutation($r: ID!) { revertRecord(id: $r, toVersion: 1) { consistencyToken } }",
        "mutation($r: ID!) { restoreRecord(id: $r) { consistencyToken } }",
        "mutation($r: ID!) { addComment(recordId: $r, text: \"x\") { version } }",
        "mutation($r: ID!, $c: ID!) { editComment(recordId: $r, commentId: $c, text: \"x\") { version } }",
        "mutation($r: ID!, $c: ID!) { deleteComment(recordId: $r, commentId: $c) { version } }",
        "mutation { rebuildProjection(name: \"records\") { started } }",
        "mutation { retryParkedEvents(name: \"records\") { resolved } }",
    ];
    for mutation in mutations {
        let (_, body) = server.post(b, mutation, vars.clone()).await;
        let code = body["errors"][0]["extensions"]["code"]
            .as_str()
            .unwrap_or("none");
        assert!(denied(code), "{mutation} gave {body}");
    }

    // Subscriptions are refused at the start.
    let mut socket = server.ws(b).await;
    let id = socket
        .subscribe(
            "subscription($t: ID!) { recordChanges(tableId: $t) { kind } }",
            vars.clone(),
        )
        .await;
    let refused = socket
        .next(Duration::from_secs(5))
        .await
        .expect("an answer");
    assert_eq!(refused["id"], id.as_str());
    if refused["type"] == "next" {
        let done = socket.next(Duration::from_secs(5)).await.expect("complete");
        assert_eq!(done["type"], "complete", "{done}");
    }
    assert!(denied(&refusal_code(&refused)), "{refused}");
    socket
        .subscribe(
            "subscription($w: ID!) { events(filter: {workspaceIds: [$w]}) { eventType } }",
            vars.clone(),
        )
        .await;
    let refused = socket
        .next(Duration::from_secs(5))
        .await
        .expect("an answer");
    assert!(denied(&refusal_code(&refused)), "{refused}");
    if refused["type"] == "next" {
        let done = socket.next(Duration::from_secs(5)).await.expect("complete");
        assert_eq!(done["type"], "complete", "{done}");
    }

    // An unfiltered events subscription of Bob's gets nothing of Alice's writes.
    socket
        .subscribe(
            "subscription { events { eventType workspaceId } }",
            json!({}),
        )
        .await;
    server
        .data(
            a,
            "mutation($t: ID!) { createRecords(tableId: $t, records: [{Name: \"more secrets\"}]) { consistencyToken } }",
            json!({ "t": table_id }),
        )
        .await;
    let leaked = socket.next(Duration::from_millis(1500)).await;
    assert!(leaked.is_none(), "Bob received {leaked:?}");

    // Alice's data is untouched.
    let still = server
        .data(
            a,
            "query($w: ID!) { workspace(id: $w) { name members { userId role } bases { id name } } }",
            json!({ "w": ws }),
        )
        .await;
    assert_eq!(still["workspace"]["name"], "Secret");
    assert_eq!(still["workspace"]["members"].as_array().unwrap().len(), 1);
    assert_eq!(still["workspace"]["bases"][0]["name"], "B");
    let rec = server
        .data(
            a,
            "query($r: ID!) { record(id: $r) { version deleted cells } }",
            json!({ "r": record }),
        )
        .await;
    assert_eq!(
        rec["record"]["version"], 2,
        "the record has only Alice's comment on top: {rec}"
    );
    assert_eq!(rec["record"]["deleted"], false);

    // As a read-only member Bob may read, not write.
    let added = server
        .data(
            a,
            "mutation($w: ID!, $u: ID!) { addMember(workspaceId: $w, userId: $u, role: READ) { consistencyToken } }",
            vars.clone(),
        )
        .await;
    let readable = server
        .data(
            b,
            "query($t: ID!) { records(tableId: $t) { totalCount } }",
            json!({ "t": table_id }),
        )
        .await;
    assert!(readable["records"]["totalCount"].as_i64().unwrap() >= 1);
    let listed = server
        .data(
            b,
            "query($c: String) { workspaces(consistencyToken: $c) { id myRole } }",
            json!({ "c": added["addMember"]["consistencyToken"] }),
        )
        .await;
    assert_eq!(listed["workspaces"][0]["myRole"], "read");
    let code = server
        .error_code(
            b,
            "mutation($t: ID!) { createRecords(tableId: $t, records: [{Name: \"x\"}]) { consistencyToken } }",
            json!({ "t": table_id }),
        )
        .await;
    assert_eq!(code, "FORBIDDEN");

    server.stop().await;
}
