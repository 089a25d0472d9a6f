//! Lookups, rollups and counts over linked records through the REST API: values follow the
//! linked records as they change, chains of lookups resolve, formulas read rollups, listings
//! filter and sort on them, and a lookup or rollup that points nowhere is refused when defined.

mod rest_support;

use pyairtable_eventstore::testkit::TestStore;
use reqwest::{Method, StatusCode};
use rest_support::{ALL_SCOPES, Api, account, serve};
use serde_json::{Value, json};

async fn add_field(api: &Api, base: &str, table: &str, field: Value) -> String {
    let created = api
        .ok(
            Method::POST,
            &format!("/meta/bases/{base}/tables/{table}/fields"),
            Some(field),
        )
        .await;
    created["id"].as_str().expect("field id").to_owned()
}

async fn create(api: &Api, base: &str, table: &str, fields: Value) -> String {
    let created = api
        .ok(
            Method::POST,
            &format!("/{base}/{table}"),
            Some(json!({"fields": fields})),
        )
        .await;
    created["id"].as_str().expect("record id").to_owned()
}

/// The id of field `field` of table `table` in a created base's answer.
/// Adds a `Tasks` table (`Name`, and `Projects` linking to `projects`); returns its id and the
/// link field's.
async fn tasks_table(api: &Api, base: &str, projects: &str) -> (String, String) {
    let tasks = api
        .ok(
            Method::POST,
            &format!("/meta/bases/{base}/tables"),
            Some(json!({"name": "Tasks", "fields": [
                {"name": "Name", "type": "singleLineText"},
                {"name": "Projects", "type": "multipleRecordLinks", "options": {"linkedTableId": projects}},
            ]})),
        )
        .await;
    (
        tasks["id"].as_str().unwrap().to_owned(),
        tasks["fields"][1]["id"].as_str().unwrap().to_owned(),
    )
}

fn field_id(created: &Value, table: usize, field: usize) -> String {
    created["tables"][table]["fields"][field]["id"]
        .as_str()
        .expect("field id")
        .to_owned()
}

fn names(listing: &Value) -> Vec<String> {
    listing["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| r["fields"]["Name"].as_str().unwrap_or("").to_owned())
        .collect()
}

#[tokio::test]
async fn lookups_rollups_and_counts_follow_linked_records() {
    let store = TestStore::new().await;
    let owner = account(&store, "owner@example.com", ALL_SCOPES);
    let server = serve(&store, &[("PYAIRTABLE_RATE_LIMIT_PER_BASE", "0")]);
    let api = Api::new(&server, &owner.token);

    // Clients <- Projects <- Tasks, each linking to the one before.
    let created = api
        .ok(
            Method::POST,
            "/meta/bases",
            Some(json!({
                "name": "Agency",
                "workspaceId": owner.workspace_id,
                "tables": [
                    {"name": "Clients", "fields": [{"name": "Name", "type": "singleLineText"}]},
                    {"name": "Projects", "fields": [
                        {"name": "Name", "type": "singleLineText"},
                        {"name": "Budget", "type": "number", "options": {"precision": 0}},
                        {"name": "Tags", "type": "multipleSelects", "options": {"choices": [{"name": "red"}, {"name": "blue"}]}},
                    ]},
                ],
            })),
        )
        .await;
    let base = created["id"].as_str().unwrap().to_owned();
    let clients = created["tables"][0]["id"].as_str().unwrap().to_owned();
    let projects = created["tables"][1]["id"].as_str().unwrap().to_owned();
    let client_name = field_id(&created, 0, 0);
    let budget = field_id(&created, 1, 1);
    let tags = field_id(&created, 1, 2);
    let project_client = add_field(
        &api,
        &base,
        &projects,
        json!({"name": "Client", "type": "multipleRecordLinks", "options": {"linkedTableId": clients}}),
    )
    .await;
    let client_lookup = add_field(
        &api,
        &base,
        &projects,
        json!({"name": "Client name", "type": "multipleLookupValues",
               "options": {"recordLinkFieldId": project_client, "fieldIdInLinkedTable": client_name}}),
    )
    .await;
    let (tasks_id, link) = tasks_table(&api, &base, &projects).await;
    for field in [
        json!({"name": "Budgets", "type": "multipleLookupValues",
               "options": {"recordLinkFieldId": link, "fieldIdInLinkedTable": budget}}),
        json!({"name": "All tags", "type": "multipleLookupValues",
               "options": {"recordLinkFieldId": link, "fieldIdInLinkedTable": tags}}),
        json!({"name": "Clients", "type": "multipleLookupValues",
               "options": {"recordLinkFieldId": link, "fieldIdInLinkedTable": client_lookup}}),
        json!({"name": "Total", "type": "rollup",
               "options": {"recordLinkFieldId": link, "fieldIdInLinkedTable": budget, "formula": "SUM(values)"}}),
        json!({"name": "Largest", "type": "rollup",
               "options": {"recordLinkFieldId": link, "fieldIdInLinkedTable": budget, "formula": "MAX(VALUES)"}}),
        json!({"name": "Joined", "type": "rollup",
               "options": {"recordLinkFieldId": link, "fieldIdInLinkedTable": tags, "formula": "ARRAYJOIN(ARRAYUNIQUE(values), '+')"}}),
        json!({"name": "Count", "type": "count", "options": {"recordLinkFieldId": link}}),
        json!({"name": "Half", "type": "formula", "options": {"formula": "{Total} / 2"}}),
    ] {
        add_field(&api, &base, &tasks_id, field).await;
    }

    let acme = create(&api, &base, "Clients", json!({"Name": "Acme"})).await;
    let globex = create(&api, &base, "Clients", json!({"Name": "Globex"})).await;
    let alpha = create(
        &api,
        &base,
        "Projects",
        json!({"Name": "Alpha", "Budget": 100, "Tags": ["red"], "Client": [acme]}),
    )
    .await;
    let beta = create(
        &api,
        &base,
        "Projects",
        json!({"Name": "Beta", "Budget": 250, "Tags": ["red", "blue"], "Client": [globex]}),
    )
    .await;
    // A write's answer already shows the computed cells.
    let written = api
        .ok(
            Method::POST,
            &format!("/{base}/Tasks"),
            Some(json!({"fields": {"Name": "both", "Projects": [beta, alpha]}})),
        )
        .await;
    assert_eq!(written["fields"]["Total"], 350.0, "{written}");
    let both = written["id"].as_str().unwrap().to_owned();
    create(
        &api,
        &base,
        "Tasks",
        json!({"Name": "alpha", "Projects": [alpha]}),
    )
    .await;
    create(&api, &base, "Tasks", json!({"Name": "none"})).await;

    // An auto number added later numbers the existing records in creation order (ADR 0009);
    // a new record's answer has the next one.
    add_field(
        &api,
        &base,
        &tasks_id,
        json!({"name": "No", "type": "autoNumber"}),
    )
    .await;
    let numbered = api
        .ok(
            Method::GET,
            &format!("/{base}/Tasks?sort%5B0%5D%5Bfield%5D=No&sort%5B0%5D%5Bdirection%5D=desc"),
            None,
        )
        .await;
    assert_eq!(names(&numbered), ["none", "alpha", "both"], "{numbered}");
    assert_eq!(numbered["records"][2]["fields"]["No"], 1);
    let fourth = api
        .ok(
            Method::POST,
            &format!("/{base}/Tasks"),
            Some(json!({"fields": {"Name": "fourth"}})),
        )
        .await;
    assert_eq!(fourth["fields"]["No"], 4, "{fourth}");
    let fourth = fourth["id"].as_str().unwrap().to_owned();
    api.ok(Method::DELETE, &format!("/{base}/Tasks/{fourth}"), None)
        .await;

    let one = api
        .ok(Method::GET, &format!("/{base}/Tasks/{both}"), None)
        .await;
    let f = &one["fields"];
    assert_eq!(f["Budgets"], json!([250, 100]), "link order: {one}");
    assert_eq!(
        f["All tags"],
        json!(["red", "blue", "red"]),
        "flattened: {one}"
    );
    assert_eq!(
        f["Clients"],
        json!(["Globex", "Acme"]),
        "lookup of a lookup: {one}"
    );
    assert_eq!(f["Total"], 350.0);
    assert_eq!(f["Largest"], 250.0);
    assert_eq!(f["Joined"], "red+blue");
    assert_eq!(f["Count"], 2);
    assert_eq!(f["Half"], 175.0, "a formula reads a rollup: {one}");

    // Filter and sort on computed cells (evaluated, not pushed down).
    let listing = api
        .ok(
            Method::GET,
            &format!(
                "/{base}/Tasks?filterByFormula={}&sort%5B0%5D%5Bfield%5D=Total&sort%5B0%5D%5Bdirection%5D=desc",
                urlencode("{Total} > 0")
            ),
            None,
        )
        .await;
    assert_eq!(names(&listing), ["both", "alpha"]);
    let listing = api
        .ok(
            Method::GET,
            &format!(
                "/{base}/Tasks?filterByFormula={}",
                urlencode("FIND('Acme', ARRAYJOIN({Clients}))")
            ),
            None,
        )
        .await;
    assert_eq!(names(&listing), ["both", "alpha"]);
    let listing = api
        .ok(
            Method::GET,
            &format!("/{base}/Tasks?filterByFormula={}", urlencode("{Count} = 0")),
            None,
        )
        .await;
    assert_eq!(names(&listing), ["none"]);
    let none = &listing["records"][0]["fields"];
    assert!(
        none.get("Budgets").is_none(),
        "empty lookups are left out: {none}"
    );
    assert_eq!(none["Total"], 0.0);

    // Values follow the linked records: change a budget, rename a client, delete a project.
    api.ok(
        Method::PATCH,
        &format!("/{base}/Projects/{alpha}"),
        Some(json!({"fields": {"Budget": 1000}})),
    )
    .await;
    api.ok(
        Method::PATCH,
        &format!("/{base}/Clients/{globex}"),
        Some(json!({"fields": {"Name": "Globex Corp"}})),
    )
    .await;
    let one = api
        .ok(Method::GET, &format!("/{base}/Tasks/{both}"), None)
        .await;
    assert_eq!(one["fields"]["Total"], 1250.0, "{one}");
    assert_eq!(one["fields"]["Clients"], json!(["Globex Corp", "Acme"]));
    api.ok(Method::DELETE, &format!("/{base}/Projects/{beta}"), None)
        .await;
    let one = api
        .ok(Method::GET, &format!("/{base}/Tasks/{both}"), None)
        .await;
    assert_eq!(one["fields"]["Budgets"], json!([1000]), "{one}");
    assert_eq!(one["fields"]["Total"], 1000.0);
    assert_eq!(one["fields"]["Clients"], json!(["Acme"]));
    // The deleted project leaves the link cell and the count, as in Airtable.
    assert_eq!(one["fields"]["Projects"], json!([alpha]), "{one}");
    assert_eq!(one["fields"]["Count"], 1);

    // GraphQL shows the same computed cells, keyed by field id, in a listing and one record.
    let schema = api
        .ok(Method::GET, &format!("/meta/bases/{base}/tables"), None)
        .await;
    let tasks_fields = schema["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == tasks_id.as_str())
        .and_then(|t| t["fields"].as_array())
        .expect("Tasks in the schema");
    let field = |name: &str| {
        tasks_fields
            .iter()
            .find(|f| f["name"] == name)
            .and_then(|f| f["id"].as_str())
            .unwrap_or_else(|| panic!("no field {name}: {schema}"))
            .to_owned()
    };
    let graphql = |query: &'static str, variables: Value| {
        let request = api
            .client
            .post(format!("{}/graphql", server.base_url))
            .bearer_auth(&owner.token)
            .json(&json!({"query": query, "variables": variables}));
        async move {
            let body: Value = request.send().await.unwrap().json().await.unwrap();
            assert!(body["errors"].is_null(), "{body}");
            body["data"].clone()
        }
    };
    let listed = graphql(
        "query($t: ID!) { records(tableId: $t, first: 10) { nodes { id cells } } }",
        json!({"t": tasks_id}),
    )
    .await;
    let node = listed["records"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == both.as_str())
        .cloned()
        .expect("the record in GraphQL");
    assert_eq!(node["cells"][field("Total")], 1000.0, "{node}");
    assert_eq!(node["cells"][field("Half")], 500.0, "{node}");
    assert_eq!(node["cells"][field("Clients")], json!(["Acme"]), "{node}");
    assert_eq!(node["cells"][field("No")], 1, "{node}");
    let one = graphql(
        "query($id: ID!) { record(id: $id) { cells } }",
        json!({"id": both}),
    )
    .await;
    assert_eq!(one["record"]["cells"], node["cells"]);

    // Restoring the project brings its link back: the stored cell never lost it.
    let restored = graphql(
        "mutation($id: ID!) { restoreRecord(id: $id) { consistencyToken } }",
        json!({"id": beta}),
    )
    .await;
    let token = restored["restoreRecord"]["consistencyToken"].clone();
    let back = graphql(
        "query($id: ID!, $c: String) { record(id: $id, consistencyToken: $c) { cells } }",
        json!({"id": both, "c": token}),
    )
    .await;
    assert_eq!(
        back["record"]["cells"][field("Projects")],
        json!([beta, alpha]),
        "{back}"
    );
    assert_eq!(back["record"]["cells"][field("Count")], 2, "{back}");

    // cellFormat=string renders them too.
    let strings = api
        .ok(
            Method::GET,
            &format!(
                "/{base}/Tasks?cellFormat=string&timeZone=UTC&userLocale=en-us&filterByFormula={}",
                urlencode("{Name} = 'both'")
            ),
            None,
        )
        .await;
    let fields = &strings["records"][0]["fields"];
    assert!(fields["Budgets"].is_string(), "{strings}");
}

#[tokio::test]
async fn lookups_and_rollups_that_point_nowhere_are_refused() {
    let store = TestStore::new().await;
    let owner = account(&store, "owner@example.com", ALL_SCOPES);
    let server = serve(&store, &[("PYAIRTABLE_RATE_LIMIT_PER_BASE", "0")]);
    let api = Api::new(&server, &owner.token);
    let created = api
        .ok(
            Method::POST,
            "/meta/bases",
            Some(json!({
                "name": "B",
                "workspaceId": owner.workspace_id,
                "tables": [
                    {"name": "A", "fields": [{"name": "Name", "type": "singleLineText"}]},
                    {"name": "B", "fields": [{"name": "Name", "type": "singleLineText"},
                                             {"name": "Size", "type": "number", "options": {"precision": 0}}]},
                ],
            })),
        )
        .await;
    let base = created["id"].as_str().unwrap().to_owned();
    let a = created["tables"][0]["id"].as_str().unwrap().to_owned();
    let b = created["tables"][1]["id"].as_str().unwrap().to_owned();
    let a_name = field_id(&created, 0, 0);
    let size = field_id(&created, 1, 1);
    let link = add_field(
        &api,
        &base,
        &a,
        json!({"name": "Bs", "type": "multipleRecordLinks", "options": {"linkedTableId": b}}),
    )
    .await;
    let path = format!("/meta/bases/{base}/tables/{a}/fields");
    let before = api
        .ok(Method::GET, &format!("/meta/bases/{base}/tables"), None)
        .await;
    for (field, needle) in [
        (
            json!({"name": "L", "type": "multipleLookupValues",
                   "options": {"recordLinkFieldId": a_name, "fieldIdInLinkedTable": size}}),
            "is not a multipleRecordLinks field",
        ),
        (
            json!({"name": "L", "type": "multipleLookupValues",
                   "options": {"recordLinkFieldId": "fldXXXXXXXXXXXXXX", "fieldIdInLinkedTable": size}}),
            "is not a field of this table",
        ),
        (
            json!({"name": "L", "type": "multipleLookupValues",
                   "options": {"recordLinkFieldId": link, "fieldIdInLinkedTable": a_name}}),
            "is not a field of the linked table",
        ),
        (
            json!({"name": "R", "type": "rollup",
                   "options": {"recordLinkFieldId": link, "fieldIdInLinkedTable": size, "formula": "SUM(values"}}),
            "rollup formula",
        ),
        (
            json!({"name": "R", "type": "rollup",
                   "options": {"recordLinkFieldId": link, "fieldIdInLinkedTable": size, "formula": "SUM({Size})"}}),
            "Unknown field names: Size",
        ),
        (
            json!({"name": "C", "type": "count", "options": {"recordLinkFieldId": a_name}}),
            "is not a multipleRecordLinks field",
        ),
    ] {
        let (status, body) = api.call(Method::POST, &path, Some(field.clone())).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{field}: {body}");
        let message = body["error"]["message"].as_str().unwrap_or("");
        assert!(message.contains(needle), "{field}: {body}");
    }
    let after = api
        .ok(Method::GET, &format!("/meta/bases/{base}/tables"), None)
        .await;
    assert_eq!(before, after, "a refused field changes nothing");
}

/// Percent-encodes every byte, which any server must decode.
fn urlencode(s: &str) -> String {
    s.bytes().map(|b| format!("%{b:02X}")).collect()
}

/// A lookup of a link field lists the linked records' links, and, like the link cells of the
/// records asked for, leaves out the records deleted since they were linked (their stored links
/// stay, so a restore brings them back).
#[tokio::test]
async fn a_lookup_of_a_link_field_leaves_out_deleted_records() {
    let store = TestStore::new().await;
    let owner = account(&store, "owner@example.com", ALL_SCOPES);
    let server = serve(&store, &[("PYAIRTABLE_RATE_LIMIT_PER_BASE", "0")]);
    let api = Api::new(&server, &owner.token);
    let created = api
        .ok(
            Method::POST,
            "/meta/bases",
            Some(json!({
                "name": "Agency",
                "workspaceId": owner.workspace_id,
                "tables": [
                    {"name": "Clients", "fields": [{"name": "Name", "type": "singleLineText"}]},
                    {"name": "Projects", "fields": [{"name": "Name", "type": "singleLineText"}]},
                ],
            })),
        )
        .await;
    let base = created["id"].as_str().unwrap().to_owned();
    let clients = created["tables"][0]["id"].as_str().unwrap().to_owned();
    let projects = created["tables"][1]["id"].as_str().unwrap().to_owned();
    let project_clients = add_field(
        &api,
        &base,
        &projects,
        json!({"name": "Clients", "type": "multipleRecordLinks", "options": {"linkedTableId": clients}}),
    )
    .await;
    let (tasks_id, link) = tasks_table(&api, &base, &projects).await;
    for field in [
        json!({"name": "Client ids", "type": "multipleLookupValues",
               "options": {"recordLinkFieldId": link, "fieldIdInLinkedTable": project_clients}}),
        json!({"name": "Client count", "type": "rollup",
               "options": {"recordLinkFieldId": link, "fieldIdInLinkedTable": project_clients, "formula": "COUNTA(values)"}}),
    ] {
        add_field(&api, &base, &tasks_id, field).await;
    }
    let acme = create(&api, &base, "Clients", json!({"Name": "Acme"})).await;
    let globex = create(&api, &base, "Clients", json!({"Name": "Globex"})).await;
    let project = create(
        &api,
        &base,
        "Projects",
        json!({"Name": "Alpha", "Clients": [acme, globex]}),
    )
    .await;
    let task = create(
        &api,
        &base,
        "Tasks",
        json!({"Name": "T", "Projects": [project]}),
    )
    .await;
    let url = format!("/{base}/Tasks/{task}");
    let before = api.ok(Method::GET, &url, None).await;
    assert_eq!(
        before["fields"]["Client ids"],
        json!([acme, globex]),
        "{before}"
    );
    assert_eq!(before["fields"]["Client count"], 2.0, "{before}");

    api.ok(Method::DELETE, &format!("/{base}/Clients/{globex}"), None)
        .await;
    let after = api.ok(Method::GET, &url, None).await;
    assert_eq!(after["fields"]["Client ids"], json!([acme]), "{after}");
    assert_eq!(after["fields"]["Client count"], 1.0, "{after}");
    // The project itself, asked for, shows the same.
    let alpha = api
        .ok(Method::GET, &format!("/{base}/Projects/{project}"), None)
        .await;
    assert_eq!(alpha["fields"]["Clients"], json!([acme]), "{alpha}");
    store.cleanup().await.unwrap();
}
