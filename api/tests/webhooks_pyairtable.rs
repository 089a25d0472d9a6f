//! Webhooks through the real `pyairtable` client (PyPI, pinned in
//! clients/python/requirements.txt): clients/python/webhooks_scenario.py registers a webhook,
//! verifies its signed pings and reads its payloads by cursor, with only the endpoint URL
//! changed. The server keeps the default rate limit, so the client's own 429 retries are used.

mod rest_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use pyairtable_eventstore::testkit::TestStore;
use rest_support::{ALL_SCOPES, account, serve};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn run(command: &mut Command, what: &str) -> Output {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    assert!(
        output.status.success(),
        "{what} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// The same virtualenv as tests/rest_clients.rs (same place, same stamp), so whichever test
/// runs first installs the pinned client and the other reuses it.
fn python_env() -> PathBuf {
    let requirements = repo().join("clients/python/requirements.txt");
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("pyairtable-client-venv");
    let python = venv.join("bin/python");
    let stamp = venv.join("requirements.stamp");
    let wanted = std::fs::read_to_string(&requirements).expect("requirements.txt");
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(wanted.as_str()) {
        let _ = std::fs::remove_dir_all(&venv);
        run(
            Command::new("python3").args(["-m", "venv"]).arg(&venv),
            "python3 -m venv",
        );
        run(
            Command::new(&python)
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    "-r",
                ])
                .arg(&requirements),
            "pip install -r clients/python/requirements.txt",
        );
        std::fs::write(&stamp, &wanted).expect("write stamp");
    }
    python
}

#[tokio::test(flavor = "multi_thread")]
async fn pyairtable_manages_webhooks_and_reads_payloads_by_cursor() {
    let python = python_env();
    let store = TestStore::new().await;
    let user = account(&store, "python-hooks@example.com", ALL_SCOPES);
    let server = serve(&store, &[("PYAIRTABLE_WEBHOOK_COALESCE_MS", "100")]);
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
