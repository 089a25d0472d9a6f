//! Webhooks through the real `pyairtable` client (PyPI, pinned in
//! clients/python/requirements.txt): clients/python/webhooks_scenario.py registers a webhook,
//! verifies its signed pings and reads its payloads by cursor, with only the endpoint URL
//! changed. The server keeps the default rate limit, so the client's own 429 retries are used.

mod rest_support;

use std::process::Command;

use pyairtable_eventstore::testkit::TestStore;
use rest_support::{ALL_SCOPES, account, python_env, repo, run_ok as run, serve};

#[tokio::test(flavor = "multi_thread")]
async fn pyairtable_manages_webhooks_and_reads_payloads_by_cursor() {
    let python = python_env();
    let store = TestStore::new().await;
    let user = account(&store, "python-hooks@example.com", ALL_SCOPES);
    // The script's receiver listens on loopback, which webhooks may only call when allowed.
    let server = serve(
        &store,
        &[
            ("PYAIRTABLE_WEBHOOK_COALESCE_MS", "100"),
            ("PYAIRTABLE_WEBHOOK_ALLOW_PRIVATE", "127.0.0.1"),
        ],
    );
    let script = repo().join("clients/python/webhooks_scenario.py");
    let url = server.base_url.clone();
    let output = tokio::task::spawn_blocking(move || {
        run(
            Command::new(&python)
                .arg(&script)
                .env("PYAIRTABLE_URL", &url)
                .env("PYAIRTABLE_TOKEN", &user.token)
                .env("PYAIRTABLE_WORKSPACE", &user.workspace_id),
            "pyairtable webhook scenario",
        )
    })
    .await
    .expect("python task");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    let summary: serde_json::Value =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("summary line {line:?}: {e}"));
    assert_eq!(summary["payloads"], 4, "{summary}");
    assert!(
        summary["pings"].as_u64().is_some_and(|n| n >= 1),
        "{summary}"
    );
}
