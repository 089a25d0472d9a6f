//! Shared helpers of the GraphQL black-box tests: a real `pyairtable serve` child process in a
//! namespace of its own, a GraphQL client over HTTP, and a `graphql-transport-ws` client.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use pyairtable_eventstore::testkit::TestStore;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// The email the servers treat as an instance administrator.
pub const ADMIN_EMAIL: &str = "admin@example.com";
/// A password that passes the policy.
pub const PASSWORD: &str = "correct horse battery staple";

/// A running server and its namespace; call [`Server::stop`] at the end of a test.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base_url: String,
    store: Option<TestStore>,
    http: reqwest::Client,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `pyairtable serve` on a free port in a fresh namespace, with `env` added.
pub async fn start(env: &[(&str, &str)]) -> Server {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let store = TestStore::new().await;
    let mut command = Command::new(env!("CARGO_BIN_EXE_pyairtable"));
    command
        .args(["serve", "--bind", "127.0.0.1:0"])
        .env("DATABASE_URL", store.database_url())
        .env("NATS_URL", "nats://127.0.0.1:4222")
        .env("REDIS_URL", "redis://127.0.0.1:6379")
        .env("PYAIRTABLE_NAMESPACE", store.namespace().as_str())
        .env("PYAIRTABLE_ADMIN_EMAILS", ADMIN_EMAIL)
        .env("PYAIRTABLE_LOG", "warn")
        // Generous: on a loaded test machine projections may take seconds to catch up.
        .env("PYAIRTABLE_CONSISTENCY_TIMEOUT_MS", "20000")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.spawn().expect("spawn pyairtable serve");
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
    Server {
        child,
        base_url,
        store: Some(store),
        http: reqwest::Client::new(),
    }
}

impl Server {
    /// Runs a `pyairtable` command (the CLI) against this server's database and namespace.
    pub async fn cli(&self, args: &[&str]) -> std::process::Output {
        let store = self.store.as_ref().expect("the server's store");
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_pyairtable"));
        command
            .args(args)
            .env("DATABASE_URL", store.database_url())
            .env("NATS_URL", "nats://127.0.0.1:4222")
            .env("REDIS_URL", "redis://127.0.0.1:6379")
            .env("PYAIRTABLE_NAMESPACE", store.namespace().as_str())
            .env("PYAIRTABLE_LOG", "warn");
        command.output().await.expect("run the pyairtable CLI")
    }

    /// The namespace of this server.
    pub fn namespace(&self) -> String {
        self.store
            .as_ref()
            .map(|s| s.namespace().as_str().to_owned())
            .unwrap_or_default()
    }

    /// Posts a GraphQL request; returns the HTTP status and the JSON body.
    pub async fn post(&self, token: Option<&str>, query: &str, variables: Value) -> (u16, Value) {
        let mut request = self
            .http
            .post(format!("{}/graphql", self.base_url))
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("POST /graphql");
        let status = response.status().as_u16();
        let body = response.json::<Value>().await.unwrap_or(Value::Null);
        (status, body)
    }

    /// Runs a GraphQL operation that must succeed and returns its `data`.
    pub async fn data(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let (status, body) = self.post(token, query, variables).await;
        assert!(
            status == 200 && body.get("errors").is_none(),
            "operation failed ({status}): {body:#}\nquery: {query}"
        );
        body["data"].clone()
    }

    /// Runs a GraphQL operation that must fail and returns its first error's code.
    pub async fn error_code(&self, token: Option<&str>, query: &str, variables: Value) -> String {
        let (_, body) = self.post(token, query, variables).await;
        body["errors"][0]["extensions"]["code"]
            .as_str()
            .unwrap_or_else(|| {
                panic!("expected an error with a code, got {body:#}\nquery: {query}")
            })
            .to_owned()
    }

    /// Registers a user and returns `(user id, access token)`.
    pub async fn register(&self, email: &str) -> (String, String) {
        let data = self
            .data(
                None,
                "mutation($e: String!, $p: String!) { register(email: $e, password: $p) \
                 { userId session { accessToken } } }",
                json!({ "e": email, "p": PASSWORD }),
            )
            .await;
        (
            data["register"]["userId"].as_str().unwrap().to_owned(),
            data["register"]["session"]["accessToken"]
                .as_str()
                .unwrap()
                .to_owned(),
        )
    }

    /// Opens a `graphql-transport-ws` connection authenticated with `token`.
    pub async fn ws(&self, token: Option<&str>) -> Ws {
        let (ws, ack) = self.ws_init(token).await;
        assert_eq!(ack["type"], "connection_ack", "{ack}");
        ws
    }

    /// Opens a `graphql-transport-ws` connection, sends `connection_init` with `token` and
    /// returns the server's answer (`connection_ack`, or a close when it refuses).
    pub async fn ws_init(&self, token: Option<&str>) -> (Ws, Value) {
        let url = format!("{}/graphql", self.base_url.replacen("http", "ws", 1));
        let mut request = url.into_client_request().expect("ws request");
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            "graphql-transport-ws".parse().expect("header"),
        );
        let (mut socket, _) = tokio_tungstenite::connect_async(request)
            .await
            .expect("connect websocket");
        let payload = match token {
            Some(t) => json!({ "Authorization": format!("Bearer {t}") }),
            None => json!({}),
        };
        socket
            .send(Message::text(
                json!({ "type": "connection_init", "payload": payload }).to_string(),
            ))
            .await
            .expect("send connection_init");
        let mut ws = Ws { socket, next_id: 0 };
        let answer = ws
            .next_message(Duration::from_secs(10))
            .await
            .expect("an answer to connection_init in time");
        (ws, answer)
    }

    /// Creates a workspace with a base and a table `T` (fields `Name`, `N`) as the holder of
    /// `token`.
    pub async fn workspace_with_table(&self, token: &str) -> Fixture {
        let t = Some(token);
        let (workspace_id, base_id) = self.workspace_with_base(token).await;
        let table = self
            .data(
                t,
                "mutation($b: ID!) { createTable(baseId: $b, name: \"T\", fields: [{name: \"Name\", type: \"singleLineText\"}, {name: \"N\", type: \"number\", options: {precision: 0}}]) { table { id } consistencyToken } }",
                json!({ "b": base_id }),
            )
            .await["createTable"]
            .clone();
        Fixture {
            workspace_id,
            base_id,
            table_id: table["table"]["id"].as_str().expect("table id").to_owned(),
            consistency_token: table["consistencyToken"]
                .as_str()
                .expect("consistency token")
                .to_owned(),
        }
    }

    /// Creates a workspace with a base as the holder of `token`; returns their ids.
    pub async fn workspace_with_base(&self, token: &str) -> (String, String) {
        let t = Some(token);
        let workspace_id = self
            .data(
                t,
                "mutation { createWorkspace(name: \"Live\") { workspace { id } } }",
                json!({}),
            )
            .await["createWorkspace"]["workspace"]["id"]
            .as_str()
            .expect("workspace id")
            .to_owned();
        let base_id = self
            .data(
                t,
                "mutation($w: ID!) { createBase(workspaceId: $w, name: \"B\") { base { id } } }",
                json!({ "w": workspace_id }),
            )
            .await["createBase"]["base"]["id"]
            .as_str()
            .expect("base id")
            .to_owned();
        (workspace_id, base_id)
    }

    /// Stops the server and removes everything its namespace created (schemas, the JetStream
    /// stream, Redis keys).
    pub async fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let Some(store) = self.store.take() else {
            return;
        };
        let ns = store.namespace().as_str().to_owned();
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA IF EXISTS \"{ns}_rm\" CASCADE"
        )))
        .execute(store.store().pool())
        .await;
        if let Ok(client) = async_nats::connect("nats://127.0.0.1:4222").await {
            let js = async_nats::jetstream::new(client);
            let names = pyairtable_projections::Names::new(store.namespace());
            let _ = js.delete_stream(names.stream()).await;
        }
        if let Ok(client) = redis::Client::open("redis://127.0.0.1:6379")
            && let Ok(mut conn) = client.get_multiplexed_async_connection().await
        {
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{ns}:*"))
                .query_async(&mut conn)
                .await
                .unwrap_or_default();
            if !keys.is_empty() {
                let _: redis::RedisResult<()> =
                    redis::cmd("DEL").arg(keys).query_async(&mut conn).await;
            }
        }
        store.cleanup().await.expect("cleanup");
    }
}

/// A workspace with a base and a table, made by [`Server::workspace_with_table`].
pub struct Fixture {
    /// `wsp…`.
    pub workspace_id: String,
    /// `app…`.
    pub base_id: String,
    /// `tbl…`.
    pub table_id: String,
    /// The consistency token of the table's creation.
    pub consistency_token: String,
}

/// The error code of a refused or ended subscription: an `error` message, or a `next`
/// carrying errors and no data (what async-graphql sends when the resolver refuses to start
/// or the stream yields an error).
pub fn refusal_code(message: &Value) -> String {
    let errors = match message["type"].as_str() {
        Some("error") => &message["payload"],
        Some("next") => {
            assert!(message["payload"]["data"].is_null(), "{message}");
            &message["payload"]["errors"]
        }
        _ => panic!("not a refusal: {message}"),
    };
    errors[0]["extensions"]["code"]
        .as_str()
        .unwrap_or("")
        .to_owned()
}

/// A `graphql-transport-ws` client connection.
pub struct Ws {
    socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    next_id: u32,
}

impl Ws {
    async fn next_message(&mut self, timeout: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let message = match tokio::time::timeout(left, self.socket.next()).await {
                Err(_) => return None,
                Ok(None) => return Some(json!({ "type": "close" })),
                Ok(Some(Err(error))) => {
                    return Some(json!({ "type": "close", "error": error.to_string() }));
                }
                Ok(Some(Ok(message))) => message,
            };
            match message {
                Message::Text(text) => {
                    let value: Value = serde_json::from_str(text.as_str()).expect("json message");
                    if value["type"] == "ping" {
                        let _ = self
                            .socket
                            .send(Message::text(json!({"type": "pong"}).to_string()))
                            .await;
                        continue;
                    }
                    return Some(value);
                }
                Message::Close(frame) => {
                    return Some(json!({ "type": "close", "frame": format!("{frame:?}") }));
                }
                _ => {}
            }
        }
    }

    /// Starts a subscription and returns its id.
    pub async fn subscribe(&mut self, query: &str, variables: Value) -> String {
        self.next_id += 1;
        let id = self.next_id.to_string();
        self.socket
            .send(Message::text(
                json!({
                    "id": id,
                    "type": "subscribe",
                    "payload": { "query": query, "variables": variables }
                })
                .to_string(),
            ))
            .await
            .expect("send subscribe");
        id
    }

    /// The next message (`next`, `error`, `complete`), or `None` after `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> Option<Value> {
        self.next_message(timeout).await
    }
}
