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

/// The repository root.
pub fn repo() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// Runs a command and fails the test with its output when it does not succeed.
pub fn run_ok(command: &mut Command, what: &str) -> std::process::Output {
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

/// A virtualenv under the target directory with the pinned `pyairtable` client installed
/// (reused while clients/python/requirements.txt is unchanged). Test binaries run in parallel
/// processes, so the install is guarded by a lock directory (`create_dir` is atomic).
pub fn python_env() -> std::path::PathBuf {
    let requirements = repo().join("clients/python/requirements.txt");
    let tmp = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    let venv = tmp.join("pyairtable-client-venv");
    let python = venv.join("bin/python");
    let stamp = venv.join("requirements.stamp");
    let wanted = std::fs::read_to_string(&requirements).expect("requirements.txt");
    let lock = tmp.join("pyairtable-client-venv.lock");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
    while std::fs::create_dir(&lock).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "another test held {} for 10 minutes",
            lock.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    struct Unlock(std::path::PathBuf);
    impl Drop for Unlock {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir(&self.0);
        }
    }
    let _unlock = Unlock(lock);
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(wanted.as_str()) {
        let _ = std::fs::remove_dir_all(&venv);
        run_ok(
            Command::new("python3").args(["-m", "venv"]).arg(&venv),
            "python3 -m venv",
        );
        run_ok(
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

/// A bearer-authenticated client of the REST API under `/v0`.
pub struct Api {
    /// The HTTP client.
    pub client: reqwest::Client,
    /// `http://…/v0`.
    pub base_url: String,
    /// The bearer token.
    pub token: String,
}

impl Api {
    pub fn new(server: &Server, token: &str) -> Self {
        Self {
            client: http(),
            base_url: format!("{}/v0", server.base_url),
            token: token.to_owned(),
        }
    }

    pub fn with_token(&self, token: &str) -> Self {
        Self {
            client: self.client.clone(),
            base_url: self.base_url.clone(),
            token: token.to_owned(),
        }
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (reqwest::StatusCode, serde_json::Value) {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base_url))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("send");
        let status = response.status();
        let text = response.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
        (status, body)
    }

    pub async fn get(&self, path: &str) -> (reqwest::StatusCode, serde_json::Value) {
        self.call(reqwest::Method::GET, path, None).await
    }

    pub async fn ok(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> serde_json::Value {
        let (status, body) = self.call(method.clone(), path, body).await;
        assert_eq!(status, reqwest::StatusCode::OK, "{method} {path}: {body}");
        body
    }
}
