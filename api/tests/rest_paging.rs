//! Equivalence of the listing paths: the keyset scans (filtered in chunks, sorted in SQL where
//! the field types allow it) must page through exactly the records, in exactly the order, that
//! the in-memory reference path (read every candidate, evaluate the formula, stable-sort) gives.
//!
//! The reference is reached through the server itself: an index offset token
//! (`Cursor::Index`) always takes the in-memory path, so page 1 of the reference is asked for
//! with a token `skip = 0` built for the query's fingerprint, and later pages follow the
//! tokens it returns. The table has blanks of every kind, ties (records created in one batch
//! share a creation time), mixed case and non-ASCII text, and enough rows that small pages of
//! selective filters cross the scan's chunk boundaries.

mod rest_support;

use pyairtable_api::rest::params::{Cursor, Offset};
use pyairtable_api::rest::records::list_fingerprint;
use pyairtable_domain::base::SortDirection;
use pyairtable_eventstore::testkit::TestStore;
use reqwest::{Method, StatusCode};
use rest_support::{ALL_SCOPES, Api, account, serve};
use serde_json::{Map, Value, json};

/// A small deterministic generator (xorshift), so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const NAMES: [&str; 9] = [
    "apple",
    "Apple",
    "äpple",
    "banana",
    "Banana split",
    "cherry",
    "",
    "zed",
    "10",
];
const NOTES: [&str; 5] = ["alpha beta", "gamma", "", "a\nmultiline", "Zulu"];
const STATUSES: [&str; 3] = ["Todo", "Doing", "Done"];

fn random_fields(rng: &mut Rng) -> Map<String, Value> {
    let mut fields = Map::new();
    // Each cell is left out (blank) about a fifth of the time.
    let mut maybe = |rng: &mut Rng, key: &str, value: Value| {
        if rng.below(5) != 0 {
            fields.insert(key.to_owned(), value);
        }
    };
    let name = NAMES[rng.below(NAMES.len() as u64) as usize];
    maybe(rng, "Name", json!(name));
    let n = (rng.below(41) as f64 - 15.0) / 2.0;
    maybe(rng, "N", json!(n));
    let done = rng.below(2) == 0;
    maybe(rng, "Done", json!(done));
    let due = format!("2024-{:02}-{:02}", 1 + rng.below(12), 1 + rng.below(28));
    maybe(rng, "Due", json!(due));
    let status = STATUSES[rng.below(3) as usize];
    maybe(rng, "Status", json!(status));
    let note = NOTES[rng.below(NOTES.len() as u64) as usize];
    maybe(rng, "Notes", json!(note));
    fields
}

/// Record ids of every page of a listing, following offsets; with `reference`, page 1 is asked
/// for through an index token so the whole listing takes the in-memory path.
async fn page_through(
    api: &Api,
    path: &str,
    query: &Value,
    reference: Option<u64>,
) -> (Vec<String>, Vec<String>) {
    let mut ids = Vec::new();
    let mut offsets = Vec::new();
    let mut offset = reference.map(|fingerprint| {
        Offset {
            query: fingerprint,
            cursor: Cursor::Index { skip: 0 },
            returned: 0,
        }
        .encode()
    });
    for _ in 0..1_000 {
        let mut body = query.clone();
        if let Some(o) = &offset {
            body["offset"] = json!(o);
        }
        let page = api.ok(Method::POST, path, Some(body.clone())).await;
        for record in page["records"].as_array().expect("records") {
            ids.push(record["id"].as_str().expect("id").to_owned());
        }
        match page["offset"].as_str() {
            Some(next) => {
                offsets.push(next.to_owned());
                offset = Some(next.to_owned());
            }
            None => return (ids, offsets),
        }
    }
    panic!("{query}: more than 1000 pages");
}

#[tokio::test]
async fn scanned_listings_page_exactly_like_the_in_memory_reference() {
    let store = TestStore::new().await;
    let owner = account(&store, "pager@example.com", ALL_SCOPES);
    let server = serve(&store, &[("PYAIRTABLE_RATE_LIMIT_PER_BASE", "0")]);
    let api = Api::new(&server, &owner.token);

    let created = api
        .ok(
            Method::POST,
            "/meta/bases",
            Some(json!({
                "name": "Paging",
                "workspaceId": owner.workspace_id,
                "tables": [{
                    "name": "Items",
                    "fields": [
                        {"name": "Name", "type": "singleLineText"},
                        {"name": "N", "type": "number", "options": {"precision": 1}},
                        {"name": "Done", "type": "checkbox", "options": {"icon": "check", "color": "greenBright"}},
                        {"name": "Due", "type": "date", "options": {"dateFormat": {"name": "iso"}}},
                        {"name": "Status", "type": "singleSelect", "options": {"choices": [{"name": "Todo"}, {"name": "Doing"}, {"name": "Done"}]}},
                        {"name": "Notes", "type": "multilineText"},
                        {"name": "Twice", "type": "formula", "options": {"formula": "{N} * 2"}},
                    ],
                }],
            })),
        )
        .await;
    let base_id = created["id"].as_str().expect("base").to_owned();
    let table = &created["tables"][0];
    let table_id = table["id"].as_str().expect("table").to_owned();
    let field_id = |name: &str| -> String {
        table["fields"]
            .as_array()
            .expect("fields")
            .iter()
            .find(|f| f["name"] == name)
            .and_then(|f| f["id"].as_str())
            .unwrap_or_else(|| panic!("no field {name}"))
            .to_owned()
    };

    // 26 batches of 10: records of one batch share their creation time (ties by id).
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let records_path = format!("/{base_id}/{table_id}");
    for _ in 0..26 {
        let records: Vec<Value> = (0..10)
            .map(|_| json!({"fields": random_fields(&mut rng)}))
            .collect();
        api.ok(
            Method::POST,
            &records_path,
            Some(json!({"records": records})),
        )
        .await;
    }

    let formulas = [
        "",
        "{N} > 3",
        "{N} <= -2",
        "AND({N} >= 0, {Done})",
        "OR({Name} = 'apple', {Status} = 'Todo')",
        "{Name} = 'Apple'",
        "LEN({Name}) > 5",
        "{Due} < '2024-06-01'",
        "IS_AFTER({Due}, '2024-10-15')",
        "NOT({Done})",
        "MOD({N} * 2, 7) = 1",
        "FIND('a', {Notes})",
        "{Twice} > 10",
        "{Name} = 'nothing matches this'",
    ];
    let sorts: Vec<Vec<(&str, &str)>> = vec![
        vec![],
        vec![("N", "asc")],
        vec![("N", "desc")],
        vec![("Name", "asc")],
        vec![("Name", "desc"), ("N", "asc")],
        vec![("Done", "desc"), ("Due", "asc")],
        vec![("Due", "desc")],
        vec![("Status", "asc"), ("Name", "desc")],
        vec![("Notes", "asc"), ("Done", "asc")],
        // Not pushed down (a formula): the in-memory path on both sides.
        vec![("Twice", "asc")],
        vec![("Done", "asc"), ("Twice", "desc")],
    ];
    let page_sizes = [1, 3, 7, 25, 100];
    let list_path = format!("/{base_id}/{table_id}/listRecords");
    let mut compared = 0;
    let mut multi_page = 0;
    for (fi, formula) in formulas.iter().enumerate() {
        for (si, sort) in sorts.iter().enumerate() {
            let page_size = page_sizes[(fi * 3 + si) % page_sizes.len()];
            let sort_json: Vec<Value> = sort
                .iter()
                .map(|(f, d)| json!({"field": f, "direction": d}))
                .collect();
            let mut query = json!({"pageSize": page_size, "sort": sort_json});
            if !formula.is_empty() {
                query["filterByFormula"] = json!(formula);
            }
            if (fi + si) % 4 == 0 {
                query["maxRecords"] = json!(40 + fi);
            }
            let sort_ids: Vec<(String, SortDirection)> = sort
                .iter()
                .map(|(f, d)| {
                    let direction = if *d == "desc" {
                        SortDirection::Desc
                    } else {
                        SortDirection::Asc
                    };
                    (field_id(f), direction)
                })
                .collect();
            let sort_refs: Vec<(&str, SortDirection)> =
                sort_ids.iter().map(|(f, d)| (f.as_str(), *d)).collect();
            let formula_list: Vec<&str> = if formula.is_empty() {
                Vec::new()
            } else {
                vec![formula]
            };
            let fingerprint = list_fingerprint(&table_id, &formula_list, &sort_refs, None, None);

            let (scanned, offsets) = page_through(&api, &list_path, &query, None).await;
            let (reference, _) = page_through(&api, &list_path, &query, Some(fingerprint)).await;
            assert_eq!(
                scanned, reference,
                "formula {formula:?}, sort {sort:?}, pageSize {page_size}: the scan and the \
                 in-memory reference differ"
            );
            if let Some(max) = query["maxRecords"].as_u64() {
                assert!(scanned.len() as u64 <= max);
            }
            compared += 1;
            if offsets.len() > 1 {
                multi_page += 1;
                // An offset can be used again and gives the same page.
                let mut again = query.clone();
                again["offset"] = json!(offsets[0]);
                let first = api.ok(Method::POST, &list_path, Some(again.clone())).await;
                let second = api.ok(Method::POST, &list_path, Some(again)).await;
                assert_eq!(first["records"], second["records"]);
                assert_eq!(first["offset"], second["offset"]);
                // ... but only with its own query.
                let mut other = query.clone();
                other["offset"] = json!(offsets[0]);
                other["filterByFormula"] = json!("{N} != 12345");
                let (status, body) = api.call(Method::POST, &list_path, Some(other)).await;
                assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
                assert_eq!(body["error"]["type"], "INVALID_OFFSET_VALUE");
            }
        }
    }
    assert_eq!(compared, formulas.len() * sorts.len());
    assert!(
        multi_page > 40,
        "only {multi_page} listings had several pages"
    );

    // The GET form pages the same way as the body form.
    let get = format!(
        "/{base_id}/{table_id}?pageSize=9&filterByFormula=%7BN%7D%20%3E%200&sort%5B0%5D%5Bfield%5D=Name&sort%5B0%5D%5Bdirection%5D=desc"
    );
    let mut ids = Vec::new();
    let mut path = get.clone();
    loop {
        let page = api.ok(Method::GET, &path, None).await;
        ids.extend(
            page["records"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["id"].as_str().unwrap().to_owned()),
        );
        match page["offset"].as_str() {
            Some(o) => path = format!("{get}&offset={o}"),
            None => break,
        }
    }
    let (body_ids, _) = page_through(
        &api,
        &list_path,
        &json!({"pageSize": 9, "filterByFormula": "{N} > 0", "sort": [{"field": "Name", "direction": "desc"}]}),
        None,
    )
    .await;
    assert_eq!(ids, body_ids);
    assert!(!ids.is_empty());
}
