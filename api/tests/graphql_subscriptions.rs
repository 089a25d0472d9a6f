//! Subscriptions over `graphql-transport-ws` against the real binary: a client sees another
//! client's writes within a second, and `events` delivers every event exactly once across
//! the switch from catch-up to live while writers keep writing.

mod graphql_support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use graphql_support::{ADMIN_EMAIL, Server, start};

/// A table of the user's; returns its id and the consistency token of its creation.
async fn table(server: &Server, token: &str) -> (String, String) {
    let fixture = server.workspace_with_table(token).await;
    (fixture.table_id, fixture.consistency_token)
}

#[tokio::test]
async fn record_changes_reach_another_client_within_a_second() {
    let server = start(&[]).await;
    let (_, alice) = server.register("alice@example.com").await;
    let (table_id, created) = table(&server, &alice).await;

    let mut socket = server.ws(Some(&alice)).await;
    socket
        .subscribe(
            "subscription($t: ID!, $c: String) { recordChanges(tableId: $t, consistencyToken: $c) { kind recordId version cells changedFieldIds changes { fieldId old new } actor { userId } } }",
            json!({ "t": table_id, "c": created }),
        )
        .await;
    // The subscription is registered once the server has processed the message; give the
    // hub a moment so the first write is not racing the subscribe.
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Another client (plain HTTP, same user) writes.
    let started = Instant::now();
    let created = server
        .data(
            Some(&alice),
            "mutation($t: ID!) { createRecords(tableId: $t, records: [{Name: \"first\", N: 1}]) { records { id } } }",
            json!({ "t": table_id }),
        )
        .await;
    let record = created["createRecords"]["records"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let msg = socket
        .next(Duration::from_secs(1))
        .await
        .expect("CREATED within a second");
    let elapsed = started.elapsed();
    assert_eq!(msg["type"], "next", "{msg}");
    let change = &msg["payload"]["data"]["recordChanges"];
    assert_eq!(change["kind"], "CREATED", "{msg}");
    assert_eq!(change["recordId"], record.as_str());
    assert_eq!(change["version"], 1);
    assert!(elapsed < Duration::from_secs(1), "took {elapsed:?}");

    // The latency is measured above; these check the content of later changes.
    server
        .data(
            Some(&alice),
            "mutation($t: ID!, $r: ID!) { updateRecords(tableId: $t, records: [{id: $r, fields: {N: 2}}]) { consistencyToken } }",
            json!({ "t": table_id, "r": record }),
        )
        .await;
    let msg = socket
        .next(Duration::from_secs(1))
        .await
        .expect("UPDATED within a second");
    let change = &msg["payload"]["data"]["recordChanges"];
    assert_eq!(change["kind"], "UPDATED", "{msg}");
    assert_eq!(change["changes"][0]["old"], 1);
    assert_eq!(change["changes"][0]["new"], 2);

    server
        .data(
            Some(&alice),
            "mutation($t: ID!, $r: ID!) { deleteRecords(tableId: $t, ids: [$r]) { consistencyToken } }",
            json!({ "t": table_id, "r": record }),
        )
        .await;
    let msg = socket
        .next(Duration::from_secs(1))
        .await
        .expect("DELETED within a second");
    assert_eq!(
        msg["payload"]["data"]["recordChanges"]["kind"], "DELETED",
        "{msg}"
    );

    server.stop().await;
}

#[tokio::test]
async fn events_subscription_has_no_gap_and_no_duplicate_across_the_switch_to_live() {
    let server = start(&[]).await;
    let (_, admin) = server.register(ADMIN_EMAIL).await;
    let (table_id, _) = table(&server, &admin).await;

    // Some history before the subscription's starting point, and the starting point itself.
    let first = server
        .data(
            Some(&admin),
            "mutation($t: ID!) { createRecords(tableId: $t, records: [{Name: \"start\"}]) { consistencyToken } }",
            json!({ "t": table_id }),
        )
        .await["createRecords"]["consistencyToken"]
        .as_str()
        .unwrap()
        .to_owned();

    // Writers run before, during and after the subscription starts.
    let writers: Vec<_> = (0..3)
        .map(|w| {
            let base_url = server.base_url.clone();
            let token = admin.clone();
            let table_id = table_id.clone();
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                for i in 0..12 {
                    let records: Vec<Value> = (0..3)
                        .map(|j| json!({ "Name": format!("w{w}-{i}-{j}") }))
                        .collect();
                    let response = http
                        .post(format!("{base_url}/graphql"))
                        .bearer_auth(&token)
                        .json(&json!({
                            "query": "mutation($t: ID!, $r: [JSON!]!) { createRecords(tableId: $t, records: $r) { consistencyToken } }",
                            "variables": { "t": table_id, "r": records }
                        }))
                        .send()
                        .await
                        .expect("write");
                    assert_eq!(response.status(), 200);
                    tokio::time::sleep(Duration::from_millis(15)).await;
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(150)).await;

    let mut socket = server.ws(Some(&admin)).await;
    socket
        .subscribe(
            "subscription($a: String) { events(after: $a, filter: {aggregateKinds: [\"record\"]}) { position streamId version eventType } }",
            json!({ "a": first }),
        )
        .await;
    for writer in writers {
        writer.await.expect("writer");
    }
    let expected_records = 3 * 12 * 3;

    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.len() < expected_records && Instant::now() < deadline {
        let Some(msg) = socket.next(Duration::from_secs(5)).await else {
            break;
        };
        assert_eq!(msg["type"], "next", "{msg}");
        seen.push(msg["payload"]["data"]["events"].clone());
    }
    assert_eq!(
        seen.len(),
        expected_records,
        "every RecordCreated after the start, once"
    );
    // Nothing more arrives: no duplicate after the last one.
    assert!(socket.next(Duration::from_millis(500)).await.is_none());

    let unique: HashSet<(String, i64)> = seen
        .iter()
        .map(|e| {
            (
                e["streamId"].as_str().unwrap().to_owned(),
                e["version"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(unique.len(), seen.len(), "no duplicates");

    // The same events, in the same order, as the store's feed says (admin `events` query).
    let mut feed = Vec::new();
    let mut after = Some(first.clone());
    loop {
        let page = server
            .data(
                Some(&admin),
                "query($a: String) { events(after: $a, first: 100, filter: {aggregateKinds: [\"record\"]}) { nodes { position } endCursor hasNextPage } }",
                json!({ "a": after }),
            )
            .await["events"]
            .clone();
        feed.extend(
            page["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n["position"].as_str().unwrap().to_owned()),
        );
        if page["hasNextPage"] != true {
            break;
        }
        after = page["endCursor"].as_str().map(str::to_owned);
    }
    let positions: Vec<String> = seen
        .iter()
        .map(|e| e["position"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(positions, feed, "the subscription follows the feed exactly");

    server.stop().await;
}
