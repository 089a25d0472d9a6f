//! GraphiQL in a real browser, offline: api/tests/browser/graphiql.mjs drives the page served
//! by the real binary in headless Chromium (through playwright-core), types the
//! `Authorization` header into the Headers tab, runs a query and a `recordChanges`
//! subscription, checks both results render, then runs the journey's update, history, revert
//! and stream verification from the editor, and saves a screenshot to
//! `target/tmp/graphiql.png`.
//!
//! Needs Chromium (`apt-get install chromium`, or `CHROMIUM=/path/to/chrome`), Node.js 18+ and
//! `npm ci --prefix api/tests/browser`. Without them the test says what is missing and passes
//! without running, so the suite never depends on a download.

mod graphql_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use graphql_support::start;

/// What the browser run needs, or why it cannot run here.
fn prerequisites() -> Result<(PathBuf, PathBuf), String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let chromium = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .or_else(|| {
            ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
                .iter()
                .map(PathBuf::from)
                .find(|p| p.exists())
        })
        .filter(|p| p.exists())
        .ok_or("no Chromium (install Debian's `chromium` or set CHROMIUM)")?;
    let node = Command::new("node").arg("--version").output();
    if !node.is_ok_and(|o| o.status.success()) {
        return Err("no `node` on PATH".to_owned());
    }
    if !dir.join("node_modules/playwright-core").is_dir() {
        return Err(format!(
            "playwright-core is not installed (run `npm ci --prefix {}`)",
            dir.display()
        ));
    }
    Ok((chromium, dir))
}

#[tokio::test]
async fn graphiql_runs_a_query_and_a_subscription_in_chromium() {
    let (chromium, dir) = match prerequisites() {
        Ok(found) => found,
        Err(missing) => {
            eprintln!("SKIPPED graphql_browser: {missing}");
            return;
        }
    };
    let server = start(&[]).await;
    let email = "browser@example.com";
    let (_, token) = server.register(email).await;
    let fixture = server.workspace_with_table(&token).await;
    let screenshot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("graphiql.png");
    let _ = std::fs::remove_file(&screenshot);

    let mut command = Command::new("node");
    command
        .arg(dir.join("graphiql.mjs"))
        .current_dir(&dir)
        .env("PYAIRTABLE_URL", &server.base_url)
        .env("PYAIRTABLE_TOKEN", &token)
        .env("PYAIRTABLE_TABLE", &fixture.table_id)
        .env("SCREENSHOT", &screenshot)
        .env("CHROMIUM", &chromium);
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("browser task")
        .expect("run node");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the browser run failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let line = stdout.lines().last().unwrap_or_default();
    let summary: Value =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("summary line {line:?}: {e}"));
    assert_eq!(summary["query"]["data"]["me"]["email"], email, "{summary}");
    let change = &summary["subscription"]["data"]["recordChanges"];
    assert_eq!(change["kind"], "CREATED", "{summary}");
    assert_eq!(change["recordId"], summary["recordId"], "{summary}");
    // The journey's update, history, revert and verification, run from the editor.
    let history = &summary["history"]["data"]["record"]["history"];
    assert_eq!(history[0]["eventType"], "RecordCreated", "{summary}");
    assert_eq!(history[1]["eventType"], "RecordUpdated", "{summary}");
    assert_eq!(
        summary["verified"]["data"]["verifyStream"]["ok"], true,
        "{summary}"
    );
    let image = std::fs::read(&screenshot).expect("the screenshot was saved");
    assert!(image.starts_with(b"\x89PNG"), "not a PNG");

    server.stop().await;
}
