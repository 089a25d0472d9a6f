//! GraphiQL that works offline: the page and its assets (React, ReactDOM, GraphiQL with
//! graphql-ws bundled) are compiled into the binary and served from `/graphiql/assets/`.

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use rust_embed::RustEmbed;

/// The vendored assets (see `api/assets/graphiql/LICENSES.txt`).
#[derive(RustEmbed)]
#[folder = "assets/graphiql/"]
struct Assets;

/// The GraphiQL page. Subscriptions authenticate with the `Authorization` header typed into
/// GraphiQL's headers editor, sent in the WebSocket's `connection_init` payload (the headers
/// are kept in the browser's localStorage for that; see `docs/graphql.md`).
const PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>PyAirtable GraphQL</title>
  <link rel="stylesheet" href="/graphiql/assets/graphiql.min.css">
  <style>html, body, #graphiql { height: 100%; margin: 0; }</style>
</head>
<body>
  <div id="graphiql">Loading GraphiQL…</div>
  <script src="/graphiql/assets/react.production.min.js"></script>
  <script src="/graphiql/assets/react-dom.production.min.js"></script>
  <script src="/graphiql/assets/graphiql.min.js"></script>
  <script>
    (function () {
      var http = window.location.origin + '/graphql';
      var ws = http.replace(/^http/, 'ws');
      function authorization() {
        try {
          var headers = JSON.parse(window.localStorage.getItem('graphiql:headers') || '{}');
          var value = headers.Authorization || headers.authorization;
          return value ? { Authorization: value } : {};
        } catch (e) {
          return {};
        }
      }
      var fetcher = GraphiQL.createFetcher({
        url: http,
        subscriptionUrl: ws,
        wsConnectionParams: authorization
      });
      var root = ReactDOM.createRoot(document.getElementById('graphiql'));
      root.render(React.createElement(GraphiQL, {
        fetcher: fetcher,
        // GraphiQL sends the Headers tab with HTTP requests only; it must keep the headers in
        // localStorage for `authorization()` to find them when the WebSocket connects.
        shouldPersistHeaders: true,
        defaultEditorToolsVisibility: true,
        defaultHeaders: '{\n  "Authorization": "Bearer <access token from login or register>"\n}'
      }));
    })();
  </script>
</body>
</html>
"#;

/// `GET /graphql` without a WebSocket upgrade.
pub fn page() -> Response {
    Html(PAGE).into_response()
}

/// `GET /graphiql/assets/{file}`.
pub async fn asset(Path(file): Path<String>) -> Response {
    let Some(content) = Assets::get(&file) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let mime = match file.rsplit('.').next() {
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    };
    (
        [
            (header::CONTENT_TYPE, mime),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        content.data.into_owned(),
    )
        .into_response()
}
