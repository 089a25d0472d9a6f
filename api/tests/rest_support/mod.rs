//! Shared setup of the REST black-box tests: the real `pyairtable` binary on port 0 in a
//! namespace of its own, bootstrapped with users, workspaces and API tokens through its CLI.

#![allow(dead_code)] // each test binary uses a different part

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};

use pyairtable_eventstore::testkit::TestStore;

/// A `pyairtable serve` child process, killed on drop.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base_url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn bin(store: &TestStore) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pyairtable"));
    command
        .env("DATABASE_URL", store.database_url())
        .env("NATS_URL", "nats://127.0.0.1:4222")
        .env("REDIS_URL", "redis://127.0.0.1:6379")
        .env("PYAIRTABLE_NAMESPACE", store.namespace().as_str())
        .env(
            "PYAIRTABLE_JWT_SECRET",
            "rest-tests-secret-0123456789abcdef0123456789",
        );
    command
}

/// Starts the server with extra environment variables.
pub fn serve(store: &TestStore, env: &[(&str, &str)]) -> Server {
    let mut command = bin(store);
    command.args(["serve", "--bind", "127.0.0.1:0"]);
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command
        .env("PYAIRTABLE_LOG", "warn")
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

fn run(store: &TestStore, args: &[&str], stdin: Option<&str>) -> String {
    let mut child = bin(store)
        .args(args)
        .env("PYAIRTABLE_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run pyairtable");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
    }
    let out = child.wait_with_output().expect("wait pyairtable");
    assert!(
        out.status.success(),
        "pyairtable {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_owned()
}

/// Every scope a token can have.
pub const ALL_SCOPES: &str = "data.records:read,data.records:write,data.recordComments:read,data.recordComments:write,schema.bases:read,schema.bases:write,webhook:manage,user.email:read";

/// A user with a workspace of their own and an API token.
pub struct Account {
    /// `usr…`.
    pub user_id: String,
    /// Their email.
    pub email: String,
    /// `wsp…`.
    pub workspace_id: String,
    /// The token's secret.
    pub token: String,
}

/// Registers `email`, gives them a workspace and a token with `scopes`.
pub fn account(store: &TestStore, email: &str, scopes: &str) -> Account {
    let user_id = run(
        store,
        &["users", "create", "--email", email, "--password-stdin"],
        Some("correct horse battery staple\n"),
    );
    let workspace_id = run(
        store,
        &[
            "workspaces",
            "create",
            "--owner",
            email,
            "--name",
            "Workspace",
        ],
        None,
    );
    let token = token(store, email, scopes, &[]);
    Account {
        user_id,
        email: email.to_owned(),
        workspace_id,
        token,
    }
}

/// Another token for an existing user, optionally restricted to bases.
pub fn token(store: &TestStore, email: &str, scopes: &str, bases: &[&str]) -> String {
    let mut args = vec![
        "tokens", "create", "--email", email, "--name", "test", "--scopes", scopes,
    ];
    for base in bases {
        args.push("--base");
        args.push(base);
    }
    run(store, &args, None)
}

/// An HTTP client (reqwest is built without a default TLS provider; install ring once).
pub fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}
