//! Black-box tests of the real `pyairtable` binary: `serve` with its probes, `migrate`,
//! `events tail` and `events verify`, each run in a namespace of its own.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use pyairtable_eventstore::testkit::TestStore;
use pyairtable_eventstore::{Actor, ExpectedVersion, Metadata, NewEvent, StreamId};
use uuid::Uuid;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_pyairtable"))
}

/// A `pyairtable serve` child process, killed on drop.
struct Server {
    child: Child,
    base_url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(store: &TestStore, nats_url: &str) -> Server {
    let mut child = bin()
        .args(["serve", "--bind", "127.0.0.1:0"])
        .env("DATABASE_URL", store.database_url())
        .env("NATS_URL", nats_url)
        .env("REDIS_URL", "redis://127.0.0.1:6379")
        .env("PYAIRTABLE_NAMESPACE", store.namespace().as_str())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn pyairtable serve");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read listening line");
    let base_url = line
        .trim()
        .strip_prefix("pyairtable listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .to_owned();
    Server { child, base_url }
}

fn http() -> reqwest::Client {
    // reqwest is built without a default TLS provider; install ring once per process.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

fn metadata() -> Metadata {
    Metadata::new(
        Actor::System {
            name: "cli-test".to_owned(),
        },
        Uuid::new_v4(),
    )
}

fn event(n: u32) -> NewEvent {
    NewEvent {
        event_id: Uuid::new_v4(),
        event_type: "ThingHappened".to_owned(),
        schema_version: 1,
        payload: serde_json::json!({ "n": n }),
    }
}

#[tokio::test]
async fn serve_answers_health_and_readiness_probes() {
    let store = TestStore::new().await;
    let server = serve(&store, "nats://127.0.0.1:4222");
    let client = http();

    let health = client
        .get(format!("{}/healthz", server.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);

    // The NATS client connects in the background: readiness turns green once it has.
    let mut ready = None;
    for _ in 0..100 {
        let response = client
            .get(format!("{}/readyz", server.base_url))
            .send()
            .await
            .unwrap();
        if response.status() == 200 {
            ready = Some(response);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ready = ready.expect("/readyz never answered 200 within 10 s");
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    for service in ["postgres", "nats", "redis"] {
        assert_eq!(body[service]["status"], "ok", "{service}: {body}");
    }
    drop(server);
    store.cleanup().await.unwrap();
}

#[tokio::test]
async fn readiness_fails_and_names_the_service_when_nats_is_unreachable() {
    let store = TestStore::new().await;
    // A port nothing listens on: bind one, then release it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = serve(&store, &format!("nats://127.0.0.1:{port}"));
    let ready = http()
        .get(format!("{}/readyz", server.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "not_ready");
    assert_eq!(body["nats"]["status"], "unavailable");
    assert_eq!(body["postgres"]["status"], "ok");
    assert_eq!(body["redis"]["status"], "ok");
    drop(server);
    store.cleanup().await.unwrap();
}

#[tokio::test]
async fn migrate_tail_and_verify_work_end_to_end() {
    let store = TestStore::new().await;
    let ns = store.namespace().as_str().to_owned();
    let url = store.database_url().to_owned();
    let run = |args: &[&str]| {
        bin()
            .args(args)
            .env("DATABASE_URL", &url)
            .env("PYAIRTABLE_NAMESPACE", &ns)
            .output()
            .expect("run pyairtable")
    };

    let migrated = run(&["migrate"]);
    assert!(migrated.status.success(), "{migrated:?}");

    let stream = StreamId::parse("thing-1").unwrap();
    store
        .store()
        .append(
            &stream,
            ExpectedVersion::NoStream,
            vec![event(1), event(2)],
            &metadata(),
        )
        .await
        .unwrap();

    // The feed hides events behind any older open transaction of the cluster (parallel tests
    // share it): wait until both are visible before asking the CLI for them.
    for _ in 0..300 {
        let visible = store
            .store()
            .read_all(&pyairtable_eventstore::Position::START, 10)
            .await
            .unwrap();
        if visible.events.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let tail = run(&["events", "tail", "--json", "--no-follow"]);
    assert!(tail.status.success(), "{tail:?}");
    let lines: Vec<serde_json::Value> = String::from_utf8(tail.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["stream"], "thing-1");
    assert_eq!(lines[1]["version"], 2);
    assert_eq!(lines[1]["payload"]["n"], 2);

    // Starting after the first event's position prints only the second.
    let first = lines[0]["position"].as_str().unwrap();
    let rest = run(&["events", "tail", "--json", "--no-follow", "--from", first]);
    assert_eq!(String::from_utf8(rest.stdout).unwrap().lines().count(), 1);

    let bad = run(&["events", "tail", "--from", "not-a-token", "--no-follow"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--from"));

    let verified = run(&["events", "verify"]);
    assert!(verified.status.success(), "{verified:?}");

    // Tamper with the second event behind the store's back: verify names that link.
    // The store's pool has the namespace schema first on its search_path.
    sqlx::query("UPDATE events SET payload = '{\"n\": 99}' WHERE stream_id = $1 AND version = 2")
        .bind("thing-1")
        .execute(store.store().pool())
        .await
        .unwrap();
    let broken = run(&["events", "verify", "--stream", "thing-1"]);
    assert_eq!(broken.status.code(), Some(1), "{broken:?}");
    let out = String::from_utf8(broken.stdout).unwrap();
    assert!(out.contains("BROKEN thing-1 at version 2"), "{out}");

    store.cleanup().await.unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
}

#[tokio::test]
async fn cli_bootstraps_a_user_a_workspace_and_a_token_from_nothing() {
    use std::io::Write as _;
    let store = TestStore::new().await;
    let ns = store.namespace().as_str().to_owned();
    let url = store.database_url().to_owned();
    let run = |args: &[&str], stdin: Option<&str>| {
        let mut child = bin()
            .args(args)
            .env("DATABASE_URL", &url)
            .env("PYAIRTABLE_NAMESPACE", &ns)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run pyairtable");
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).unwrap();
        }
        drop(input);
        child.wait_with_output().unwrap()
    };

    let user = run(
        &[
            "users",
            "create",
            "--email",
            "Ada@Example.com",
            "--password-stdin",
            "--admin",
        ],
        Some("correct horse battery staple\n"),
    );
    assert!(user.status.success(), "{user:?}");
    let user_id = String::from_utf8(user.stdout).unwrap().trim().to_owned();
    assert!(
        user_id.starts_with("usr") && user_id.len() == 17,
        "{user_id}"
    );

    // The same email again is refused with a clear message, and nothing new is written.
    let again = run(
        &[
            "users",
            "create",
            "--email",
            "ada@example.com",
            "--password-stdin",
        ],
        Some("another long password\n"),
    );
    assert_eq!(again.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("email"),
        "{again:?}"
    );

    let workspace = run(
        &[
            "workspaces",
            "create",
            "--owner",
            "ada@example.com",
            "--name",
            "Research",
        ],
        None,
    );
    assert!(workspace.status.success(), "{workspace:?}");
    let workspace_id = String::from_utf8(workspace.stdout)
        .unwrap()
        .trim()
        .to_owned();
    assert!(workspace_id.starts_with("wsp") && workspace_id.len() == 17);

    let unknown = run(
        &[
            "workspaces",
            "create",
            "--owner",
            "nobody@example.com",
            "--name",
            "X",
        ],
        None,
    );
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("--owner"));

    let token = run(
        &[
            "tokens",
            "create",
            "--email",
            "ada@example.com",
            "--name",
            "ci",
            "--scopes",
            "data.records:read,schema.bases:read",
        ],
        None,
    );
    assert!(token.status.success(), "{token:?}");
    let token = String::from_utf8(token.stdout).unwrap().trim().to_owned();
    assert!(token.starts_with("pat"), "{token}");

    let bad_scope = run(
        &[
            "tokens",
            "create",
            "--email",
            "ada@example.com",
            "--name",
            "x",
            "--scopes",
            "data.everything",
        ],
        None,
    );
    assert_eq!(bad_scope.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad_scope.stderr).contains("--scopes"));

    // The printed token authenticates as the user; a tampered one does not.
    let auth = pyairtable_commands::Authenticator::new(
        store.store().pool().clone(),
        pyairtable_commands::AuthConfig::new(vec![7u8; 32]),
    )
    .await
    .unwrap();
    let who = auth.verify_api_token(&token).await.unwrap();
    assert_eq!(who.user_id.as_str(), user_id);
    let mut tampered = token.clone();
    tampered.pop();
    tampered.push(if token.ends_with('0') { '1' } else { '0' });
    assert!(auth.verify_api_token(&tampered).await.is_err());

    store.cleanup().await.unwrap();
}
