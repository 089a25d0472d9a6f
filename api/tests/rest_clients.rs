//! The real Airtable clients against the real binary: `pyairtable` (PyPI, pinned in
//! clients/python/requirements.txt) and `airtable` (npm, locked in clients/node) run their
//! scenarios (clients/*/scenario.*) with only the endpoint URL changed. The server keeps the
//! default rate limit of 5 requests per second per base, so both scenarios go through 429s
//! and the clients' own retries.

mod rest_support;

use std::path::PathBuf;
use std::process::{Command, Output};

use pyairtable_eventstore::testkit::TestStore;
use rest_support::{ALL_SCOPES, account, python_env, repo, run_ok as run, serve};

/// `npm ci` in clients/node (exactly the locked versions).
fn node_env() -> PathBuf {
    let dir = repo().join("clients/node");
    if !dir.join("node_modules/airtable/package.json").exists() {
        run(
            Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(&dir),
            "npm ci in clients/node",
        );
    }
    dir
}

fn summary(output: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("summary line {line:?}: {e}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn pyairtable_and_airtable_js_run_their_scenarios_unchanged() {
    let python = python_env();
    let node_dir = node_env();
    let store = TestStore::new().await;
    let py_user = account(&store, "python@example.com", ALL_SCOPES);
    let js_user = account(&store, "node@example.com", ALL_SCOPES);
    let server = serve(&store, &[]);
    let url = server.base_url.clone();

    let python_run = {
        let url = url.clone();
        let script = repo().join("clients/python/scenario.py");
        tokio::task::spawn_blocking(move || {
            run(
                Command::new(&python)
                    .arg(script)
                    .env("PYAIRTABLE_URL", &url)
                    .env("PYAIRTABLE_TOKEN", &py_user.token)
                    .env("PYAIRTABLE_WORKSPACE", &py_user.workspace_id),
                "pyairtable scenario",
            )
        })
    };
    let node_run = tokio::task::spawn_blocking(move || {
        run(
            Command::new("node")
                .arg("scenario.js")
                .current_dir(&node_dir)
                .env("PYAIRTABLE_URL", &url)
                .env("PYAIRTABLE_TOKEN", &js_user.token)
                .env("PYAIRTABLE_WORKSPACE", &js_user.workspace_id),
            "airtable.js scenario",
        )
    });
    let python_out = python_run.await.expect("python task");
    let node_out = node_run.await.expect("node task");

    let py = summary(&python_out);
    assert_eq!(py["ok"], true);
    assert_eq!(py["records"], 250);
    assert_eq!(py["burst"], 12);
    let js = summary(&node_out);
    assert_eq!(js["ok"], true);
    assert_eq!(js["records"], 250);
    assert_eq!(
        js["fieldTypes"], 23,
        "the airtable.js scenario's table: {js}"
    );
    assert_eq!(js["burst"], 12);

    drop(server);
    store.cleanup().await.unwrap();
}
