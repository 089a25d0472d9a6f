//! The whole GraphQL journey against the real binary: register, workspace, base, a table with
//! several field types, records; filter, sort and page; update; history; time travel; revert;
//! delete and restore; comments; the audit log; hash-chain verification.

mod graphql_support;

use serde_json::{Value, json};

use graphql_support::start;

fn field_id(table: &Value, name: &str) -> String {
    table["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == name)
        .unwrap_or_else(|| panic!("no field {name} in {table}"))["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn register_build_write_read_travel_revert_audit_and_verify() {
    let server = start(&[]).await;
    let (alice, token) = server.register("alice@example.com").await;
    let t = Some(token.as_str());

    let me = server
        .data(t, "{ me { id email isAdmin } }", json!({}))
        .await;
    assert_eq!(me["me"]["id"], alice.as_str());
    assert_eq!(me["me"]["email"], "alice@example.com");
    assert_eq!(me["me"]["isAdmin"], false);

    // Workspace and base.
    let ws = server
        .data(
            t,
            "mutation { createWorkspace(name: \"Acme\") { workspace { id name myRole members { userId role } } version consistencyToken } }",
            json!({}),
        )
        .await["createWorkspace"]
        .clone();
    let workspace_id = ws["workspace"]["id"].as_str().unwrap().to_owned();
    assert_eq!(ws["workspace"]["myRole"], "owner");
    assert_eq!(ws["version"], 1);
    let listed = server
        .data(
            t,
            "query($c: String) { workspaces(consistencyToken: $c) { id name } }",
            json!({ "c": ws["consistencyToken"] }),
        )
        .await;
    assert_eq!(listed["workspaces"][0]["id"], workspace_id.as_str());

    let base = server
        .data(
            t,
            "mutation($w: ID!) { createBase(workspaceId: $w, name: \"Projects\") { base { id name } consistencyToken } }",
            json!({ "w": workspace_id }),
        )
        .await["createBase"]
        .clone();
    let base_id = base["base"]["id"].as_str().unwrap().to_owned();

    // A table with text, number, checkbox, date and single-select fields.
    let fields = json!([
        { "name": "Name", "type": "singleLineText" },
        { "name": "Count", "type": "number", "options": { "precision": 0 } },
        { "name": "Done", "type": "checkbox", "options": { "icon": "check", "color": "greenBright" } },
        { "name": "Due", "type": "date", "options": { "dateFormat": { "name": "iso" } } },
        { "name": "Status", "type": "singleSelect", "options": { "choices": [
            { "id": "selTodo0000000000", "name": "Todo" },
            { "id": "selDone0000000000", "name": "Done" }
        ] } }
    ]);
    let table = server
        .data(
            t,
            "mutation($b: ID!, $f: [JSON!]!) { createTable(baseId: $b, name: \"Tasks\", fields: $f) \
             { table { id name fields { id name type options } views { id name isDefault } } version consistencyToken } }",
            json!({ "b": base_id, "f": fields }),
        )
        .await["createTable"]
        .clone();
    let table_id = table["table"]["id"].as_str().unwrap().to_owned();
    assert_eq!(table["table"]["fields"].as_array().unwrap().len(), 5);
    assert_eq!(table["table"]["views"][0]["isDefault"], true);
    let name = field_id(&table["table"], "Name");
    let count = field_id(&table["table"], "Count");
    let due = field_id(&table["table"], "Due");

    // The schema through the read model, once it has caught up with the table's creation.
    let base_read = server
        .data(
            t,
            "query($id: ID!, $c: String) { base(id: $id, consistencyToken: $c) { id name tables { id name fields { name type } views { name } } } }",
            json!({ "id": base_id, "c": table["consistencyToken"] }),
        )
        .await;
    assert_eq!(base_read["base"]["tables"][0]["id"], table_id.as_str());
    assert_eq!(base_read["base"]["tables"][0]["fields"][3]["type"], "date");

    // Records, in one all-or-nothing batch.
    let created = server
        .data(
            t,
            "mutation($t: ID!, $r: [JSON!]!) { createRecords(tableId: $t, records: $r) { records { id version cells } consistencyToken } }",
            json!({ "t": table_id, "r": [
                { "Name": "Write spec", "Count": 3, "Due": "2024-05-01", "Status": "Todo" },
                { "Name": "Build", "Count": 8, "Status": "Todo" },
                { "Name": "Ship", "Count": 1, "Done": true, "Status": "Done" }
            ] }),
        )
        .await["createRecords"]
        .clone();
    let ids: Vec<String> = created["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 3);
    assert_eq!(created["records"][0]["version"], 1);
    let token_after_create = created["consistencyToken"].as_str().unwrap().to_owned();

    // A batch with one bad cell writes nothing.
    let bad = server
        .post(
            t,
            "mutation($t: ID!, $r: [JSON!]!) { createRecords(tableId: $t, records: $r) { consistencyToken } }",
            json!({ "t": table_id, "r": [{ "Name": "ok" }, { "Count": "not a number" }] }),
        )
        .await
        .1;
    assert_eq!(
        bad["errors"][0]["extensions"]["code"], "VALIDATION",
        "{bad}"
    );

    let query = "query($t: ID!, $f: RecordFilter, $s: [RecordSort!], $first: Int, $after: String, $c: String) { \
        records(tableId: $t, filter: $f, sort: $s, first: $first, after: $after, consistencyToken: $c) { \
          totalCount nodes { id cells version } pageInfo { hasNextPage endCursor } } }";
    let all = server
        .data(t, query, json!({ "t": table_id, "c": token_after_create }))
        .await["records"]
        .clone();
    assert_eq!(all["totalCount"], 3);

    // Typed filter and sort: Count > 2, largest first.
    let big = server
        .data(
            t,
            query,
            json!({ "t": table_id, "f": { "field": "Count", "gt": 2 }, "s": [{ "field": "Count", "direction": "DESC" }] }),
        )
        .await["records"]
        .clone();
    let counts: Vec<i64> = big["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["cells"][&count].as_i64().unwrap())
        .collect();
    assert_eq!(counts, vec![8, 3]);

    // Contains (case-insensitive), isEmpty, in, and a boolean combination.
    let ship = server
        .data(
            t,
            query,
            json!({ "t": table_id, "f": { "field": "Name", "contains": "SHIP" } }),
        )
        .await["records"]["nodes"]
        .clone();
    assert_eq!(ship.as_array().unwrap().len(), 1);
    assert_eq!(ship[0]["id"], ids[2].as_str());
    let no_due = server
        .data(
            t,
            query,
            json!({ "t": table_id, "f": { "field": "Due", "isEmpty": true } }),
        )
        .await["records"]["nodes"]
        .clone();
    assert_eq!(no_due.as_array().unwrap().len(), 2);
    let in_set = server
        .data(
            t,
            query,
            json!({ "t": table_id, "f": { "or": [
                { "field": "Status", "in": ["Done"] },
                { "and": [{ "field": "Count", "gte": 8 }, { "not": { "field": "Done", "eq": true } }] }
            ] }, "s": [{ "field": "Name" }] }),
        )
        .await["records"]["nodes"]
        .clone();
    let in_ids: Vec<&str> = in_set
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    assert_eq!(in_ids, vec![ids[1].as_str(), ids[2].as_str()]);
    let dated = server
        .data(
            t,
            query,
            json!({ "t": table_id, "f": { "field": "Due", "lte": "2024-12-31" } }),
        )
        .await["records"]["nodes"]
        .clone();
    assert_eq!(dated.as_array().unwrap().len(), 1);

    // Cursor paging over a sort: two, then the last one.
    let page1 = server
        .data(
            t,
            query,
            json!({ "t": table_id, "s": [{ "field": "Count" }], "first": 2 }),
        )
        .await["records"]
        .clone();
    assert_eq!(page1["pageInfo"]["hasNextPage"], true);
    let page2 = server
        .data(
            t,
            query,
            json!({ "t": table_id, "s": [{ "field": "Count" }], "first": 2, "after": page1["pageInfo"]["endCursor"] }),
        )
        .await["records"]
        .clone();
    assert_eq!(page2["pageInfo"]["hasNextPage"], false);
    let paged: Vec<i64> = page1["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .chain(page2["nodes"].as_array().unwrap())
        .map(|n| n["cells"][&count].as_i64().unwrap())
        .collect();
    assert_eq!(paged, vec![1, 3, 8]);

    // Update, then read the history.
    let updated = server
        .data(
            t,
            "mutation($t: ID!, $r: [RecordUpdateInput!]!) { updateRecords(tableId: $t, records: $r) { records { id version cells } consistencyToken } }",
            json!({ "t": table_id, "r": [{ "id": ids[0], "fields": { "Count": 5, "Name": "Write the spec" } }] }),
        )
        .await["updateRecords"]
        .clone();
    assert_eq!(updated["records"][0]["version"], 2, "{updated}");
    let rec_query = "query($id: ID!, $c: String) { record(id: $id, consistencyToken: $c) { id version cells deleted \
        history { version eventType actor { kind userId } recordedAt changes { fieldId old new } } } }";
    let rec = server
        .data(
            t,
            rec_query,
            json!({ "id": ids[0], "c": updated["consistencyToken"] }),
        )
        .await["record"]
        .clone();
    assert_eq!(rec["version"], 2);
    assert_eq!(rec["cells"][&count], 5);
    let history = rec["history"].as_array().unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0]["eventType"], "RecordCreated");
    assert_eq!(history[1]["eventType"], "RecordUpdated");
    assert_eq!(history[1]["actor"]["userId"], alice.as_str());
    let count_change = history[1]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["fieldId"] == count.as_str())
        .expect("Count changed");
    assert_eq!(count_change["old"], 3);
    assert_eq!(count_change["new"], 5);
    assert!(
        history[1]["changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["fieldId"] == name.as_str() && c["new"] == "Write the spec")
    );

    // Time travel: by version and by instant, for the record and for the whole table.
    let v1 = server
        .data(
            t,
            "query($id: ID!) { record(id: $id, version: 1) { version cells } }",
            json!({ "id": ids[0] }),
        )
        .await;
    assert_eq!(v1["record"]["version"], 1);
    assert_eq!(v1["record"]["cells"][&count], 3);
    let created_at = history[0]["recordedAt"].clone();
    let at = server
        .data(
            t,
            "query($id: ID!, $at: DateTime!) { record(id: $id, asOf: $at) { cells } }",
            json!({ "id": ids[0], "at": created_at }),
        )
        .await;
    assert_eq!(at["record"]["cells"][&count], 3);
    let before = server
        .data(
            t,
            "query($id: ID!) { record(id: $id, asOf: \"2000-01-01T00:00:00Z\") { id } }",
            json!({ "id": ids[0] }),
        )
        .await;
    assert!(
        before["record"].is_null(),
        "the record did not exist in 2000"
    );
    let table_then = server
        .data(
            t,
            "query($t: ID!, $at: DateTime!) { table(id: $t) { records(asOf: $at) { nodes { id cells } } } }",
            json!({ "t": table_id, "at": created_at }),
        )
        .await;
    let then_nodes = table_then["table"]["records"]["nodes"].as_array().unwrap();
    assert_eq!(then_nodes.len(), 3);
    let first_then = then_nodes
        .iter()
        .find(|n| n["id"] == ids[0].as_str())
        .unwrap();
    assert_eq!(first_then["cells"][&count], 3);
    assert_eq!(first_then["cells"][&due], "2024-05-01");

    // Revert to version 1: a new version with the old cells.
    let reverted = server
        .data(
            t,
            "mutation($id: ID!) { revertRecord(id: $id, toVersion: 1) { records { version cells } consistencyToken } }",
            json!({ "id": ids[0] }),
        )
        .await["revertRecord"]
        .clone();
    assert_eq!(reverted["records"][0]["version"], 3);
    assert_eq!(reverted["records"][0]["cells"][&count], 3);
    assert_eq!(reverted["records"][0]["cells"][&name], "Write spec");

    // Delete and restore.
    let deleted = server
        .data(
            t,
            "mutation($t: ID!, $ids: [ID!]!) { deleteRecords(tableId: $t, ids: $ids) { records { id deleted } consistencyToken } }",
            json!({ "t": table_id, "ids": [ids[2]] }),
        )
        .await["deleteRecords"]
        .clone();
    assert_eq!(deleted["records"][0]["deleted"], true);
    let live = server
        .data(
            t,
            query,
            json!({ "t": table_id, "c": deleted["consistencyToken"] }),
        )
        .await["records"]["totalCount"]
        .clone();
    assert_eq!(live, 2);
    let restored = server
        .data(
            t,
            "mutation($id: ID!) { restoreRecord(id: $id) { records { id deleted version } consistencyToken } }",
            json!({ "id": ids[2] }),
        )
        .await["restoreRecord"]
        .clone();
    assert_eq!(restored["records"][0]["deleted"], false);
    let live = server
        .data(
            t,
            query,
            json!({ "t": table_id, "c": restored["consistencyToken"] }),
        )
        .await["records"]["totalCount"]
        .clone();
    assert_eq!(live, 3);

    // Comments.
    let comment = server
        .data(
            t,
            "mutation($id: ID!) { addComment(recordId: $id, text: \"Looks good\") { commentId consistencyToken } }",
            json!({ "id": ids[1] }),
        )
        .await;
    assert!(
        comment["addComment"]["commentId"]
            .as_str()
            .unwrap()
            .starts_with("com")
    );
    let comments = server
        .data(
            t,
            "query($id: ID!) { record(id: $id) { comments { text authorId } } }",
            json!({ "id": ids[1] }),
        )
        .await;
    assert_eq!(comments["record"]["comments"][0]["text"], "Looks good");

    // The audit log, whole and filtered.
    let audit_query = "query($w: ID!, $f: AuditFilter, $c: String, $first: Int, $after: String) { \
        auditLog(workspaceId: $w, filter: $f, consistencyToken: $c, first: $first, after: $after) { \
          nodes { eventType streamId version actor { userId } } endCursor hasNextPage } }";
    let audit = server
        .data(
            t,
            audit_query,
            json!({ "w": workspace_id, "c": comment["addComment"]["consistencyToken"], "first": 100 }),
        )
        .await["auditLog"]
        .clone();
    let types: Vec<&str> = audit["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["eventType"].as_str().unwrap())
        .collect();
    for expected in [
        "WorkspaceCreated",
        "BaseCreated",
        "TableCreated",
        "RecordCreated",
        "RecordUpdated",
        "RecordReverted",
        "RecordDeleted",
        "RecordRestored",
        "CommentAdded",
    ] {
        assert!(
            types.contains(&expected),
            "{expected} missing from {types:?}"
        );
    }
    let stream = format!("record-{}", ids[0]);
    let one_stream = server
        .data(
            t,
            audit_query,
            json!({ "w": workspace_id, "f": { "streamId": stream } }),
        )
        .await["auditLog"]["nodes"]
        .clone();
    let versions: Vec<i64> = one_stream
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["version"].as_i64().unwrap())
        .collect();
    assert_eq!(versions, vec![1, 2, 3]);
    let reverts = server
        .data(
            t,
            audit_query,
            json!({ "w": workspace_id, "f": { "eventTypes": ["RecordReverted"], "actor": alice } }),
        )
        .await["auditLog"]["nodes"]
        .clone();
    assert_eq!(reverts.as_array().unwrap().len(), 1);
    let first_two = server
        .data(t, audit_query, json!({ "w": workspace_id, "first": 2 }))
        .await["auditLog"]
        .clone();
    assert_eq!(first_two["hasNextPage"], true);
    let next = server
        .data(
            t,
            audit_query,
            json!({ "w": workspace_id, "first": 2, "after": first_two["endCursor"] }),
        )
        .await["auditLog"]["nodes"]
        .clone();
    assert_eq!(next[0]["eventType"], audit["nodes"][2]["eventType"]);

    // The record's hash chain holds.
    let verdict = server
        .data(
            t,
            "query($s: String!) { verifyStream(streamId: $s) { streamId ok eventsChecked brokenAtVersion } }",
            json!({ "s": stream }),
        )
        .await["verifyStream"]
        .clone();
    assert_eq!(verdict["ok"], true);
    assert_eq!(verdict["eventsChecked"], 3);
    assert!(verdict["brokenAtVersion"].is_null());

    server.stop().await;
}

/// Auto numbers and created and modified times are computed, but from columns of the record:
/// filters and sorts read them there, cursors page over them, and they compare as the APIs
/// print them.
#[tokio::test]
async fn filters_and_sorts_read_auto_numbers_and_record_times() {
    let server = start(&[]).await;
    let (_, token) = server.register("dora@example.com").await;
    let t = Some(token.as_str());
    let (_, base) = server.workspace_with_base(&token).await;
    let fields = json!([
        { "name": "Name", "type": "singleLineText" },
        { "name": "No", "type": "autoNumber" },
        { "name": "Created", "type": "createdTime" },
        { "name": "Modified", "type": "lastModifiedTime" }
    ]);
    let table_id = server
        .data(
            t,
            "mutation($b: ID!, $f: [JSON!]!) { createTable(baseId: $b, name: \"T\", fields: $f) { table { id } } }",
            json!({ "b": base, "f": fields }),
        )
        .await["createTable"]["table"]["id"]
        .clone();
    // One record per mutation, so each has its own creation time and number.
    let mut token_after = Value::Null;
    for name in ["a", "b", "c"] {
        token_after = server
            .data(
                t,
                "mutation($t: ID!, $r: [JSON!]!) { createRecords(tableId: $t, records: $r) { consistencyToken } }",
                json!({ "t": table_id, "r": [{ "Name": name }] }),
            )
            .await["createRecords"]["consistencyToken"]
            .clone();
    }
    let query = "query($t: ID!, $f: RecordFilter, $s: [RecordSort!], $first: Int, $after: String, $c: String) { \
        records(tableId: $t, filter: $f, sort: $s, first: $first, after: $after, consistencyToken: $c) { \
          totalCount nodes { cells } pageInfo { hasNextPage endCursor } } }";
    let names = |page: &Value| -> Vec<String> {
        page["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| {
                n["cells"]
                    .as_object()
                    .unwrap()
                    .values()
                    .find_map(|v| v.as_str().filter(|s| s.len() == 1))
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect()
    };
    let run = |vars: Value| {
        let mut vars = vars;
        vars["t"] = table_id.clone();
        vars["c"] = token_after.clone();
        let server = &server;
        async move { server.data(t, query, vars).await["records"].clone() }
    };

    let by_number = run(json!({ "s": [{ "field": "No", "direction": "DESC" }] })).await;
    assert_eq!(names(&by_number), ["c", "b", "a"], "{by_number}");
    let later = run(json!({ "f": { "field": "No", "gt": 1 } })).await;
    assert_eq!(later["totalCount"], 2, "{later}");
    let by_created = run(json!({ "s": [{ "field": "created", "direction": "ASC" }] })).await;
    assert_eq!(names(&by_created), ["a", "b", "c"], "{by_created}");
    let since = run(json!({ "f": { "field": "Created", "gte": "2000-01-01" } })).await;
    assert_eq!(since["totalCount"], 3, "{since}");
    let before = run(json!({ "f": { "field": "Modified", "lt": "2000-01-01" } })).await;
    assert_eq!(before["totalCount"], 0, "{before}");
    // Paging over a computed sort key: one page at a time.
    let first = run(json!({ "s": [{ "field": "No", "direction": "DESC" }], "first": 2 })).await;
    assert_eq!(names(&first), ["c", "b"], "{first}");
    assert_eq!(first["pageInfo"]["hasNextPage"], true);
    let rest = run(json!({
        "s": [{ "field": "No", "direction": "DESC" }],
        "first": 2,
        "after": first["pageInfo"]["endCursor"],
    }))
    .await;
    assert_eq!(names(&rest), ["a"], "{rest}");
    // The nodes show the record's cells with the computed ones filled in, not the sort's.
    let cells = &by_number["nodes"][0]["cells"];
    assert!(
        cells.as_object().unwrap().values().any(|v| v == 3),
        "auto number in the cells: {cells}"
    );
    server.stop().await;
}

/// Link cells leave out records deleted since they were linked, in filters as in the cells the
/// API shows: a deleted record is neither contained nor in, and a cell left with none is empty.
#[tokio::test]
async fn link_filters_leave_out_deleted_records() {
    let server = start(&[]).await;
    let (_, token) = server.register("erin@example.com").await;
    let t = Some(token.as_str());
    let (_, base) = server.workspace_with_base(&token).await;
    let create_table = "mutation($b: ID!, $n: String!, $f: [JSON!]!) { createTable(baseId: $b, name: $n, fields: $f) { table { id } } }";
    let people = server
        .data(
            t,
            create_table,
            json!({ "b": base, "n": "People", "f": [{ "name": "Name", "type": "singleLineText" }] }),
        )
        .await["createTable"]["table"]["id"]
        .clone();
    let tasks = server
        .data(
            t,
            create_table,
            json!({ "b": base, "n": "Tasks", "f": [
                { "name": "Name", "type": "singleLineText" },
                { "name": "Owners", "type": "multipleRecordLinks", "options": { "linkedTableId": people } }
            ] }),
        )
        .await["createTable"]["table"]["id"]
        .clone();
    let create = "mutation($t: ID!, $r: [JSON!]!) { createRecords(tableId: $t, records: $r) { records { id } consistencyToken } }";
    let created = server
        .data(
            t,
            create,
            json!({ "t": people, "r": [{ "Name": "Pat" }, { "Name": "Sam" }] }),
        )
        .await["createRecords"]["records"]
        .clone();
    let (pat, sam) = (created[0]["id"].clone(), created[1]["id"].clone());
    server
        .data(
            t,
            create,
            json!({ "t": tasks, "r": [
                { "Name": "both", "Owners": [pat, sam] },
                { "Name": "sam only", "Owners": [sam] }
            ] }),
        )
        .await;
    let token_after = server
        .data(
            t,
            "mutation($t: ID!, $ids: [ID!]!) { deleteRecords(tableId: $t, ids: $ids) { consistencyToken } }",
            json!({ "t": people, "ids": [sam] }),
        )
        .await["deleteRecords"]["consistencyToken"]
        .clone();
    let query = "query($t: ID!, $f: RecordFilter, $c: String) { \
        records(tableId: $t, filter: $f, consistencyToken: $c) { totalCount nodes { cells } } }";
    let matching = |filter: Value| {
        let vars = json!({ "t": tasks, "f": filter, "c": token_after });
        let server = &server;
        async move {
            let page = server.data(t, query, vars).await["records"].clone();
            let mut names: Vec<String> = page["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|n| {
                    n["cells"]
                        .as_object()
                        .unwrap()
                        .values()
                        .find_map(|v| v.as_str().map(str::to_owned))
                })
                .collect();
            names.sort();
            names
        }
    };
    assert!(
        matching(json!({ "field": "Owners", "contains": sam }))
            .await
            .is_empty()
    );
    assert_eq!(
        matching(json!({ "field": "Owners", "contains": pat })).await,
        ["both"]
    );
    assert!(
        matching(json!({ "field": "Owners", "in": [sam] }))
            .await
            .is_empty()
    );
    assert_eq!(
        matching(json!({ "field": "Owners", "isEmpty": true })).await,
        ["sam only"]
    );
    assert_eq!(
        matching(json!({ "field": "Owners", "isEmpty": false })).await,
        ["both"]
    );
    server.stop().await;
}
