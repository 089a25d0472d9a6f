//! The real Airtable clients against the real binary: `pyairtable` (PyPI, pinned in
//! clients/python/requirements.txt) and `airtable` (npm, locked in clients/node) run their
//! scenarios (clients/*/scenario.*) with only the endpoint URL changed. The server keeps the
//! default rate limit of 5 requests per second per base, so both scenarios go through 429s
//! and the clients' own retries.

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

/// A virtualenv under the target directory with the pinned client installed (reused when the
/// requirements have not changed).
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
    assert_eq!(js["burst"], 12);

    drop(server);
    store.cleanup().await.unwrap();
}
