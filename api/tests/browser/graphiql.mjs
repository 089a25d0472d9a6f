// Drives the GraphiQL page served by a running `pyairtable serve` in a real Chromium, offline:
// types the Authorization header into GraphiQL's Headers editor, runs a query and checks the
// result it renders, starts a `recordChanges` subscription (over the page's own WebSocket),
// makes a write over HTTP and checks the live event renders, then runs the rest of the journey
// from the editor (update, history, revert, verify the stream) and saves a screenshot.
//
// Run by api/tests/graphql_browser.rs; by hand:
//   PYAIRTABLE_URL=http://127.0.0.1:8000 PYAIRTABLE_TOKEN=… PYAIRTABLE_TABLE=tbl… \
//   SCREENSHOT=/tmp/graphiql.png node api/tests/browser/graphiql.mjs
// Prints one JSON line `{"query": …, "subscription": …, "history": …, "verified": …}` on
// success; exits 1 with the reason
// otherwise.

import { chromium } from "playwright-core";

const base = required("PYAIRTABLE_URL");
const token = required("PYAIRTABLE_TOKEN");
const table = required("PYAIRTABLE_TABLE");
const screenshot = process.env.SCREENSHOT ?? "graphiql.png";
const executablePath = process.env.CHROMIUM ?? "/usr/bin/chromium";

function required(name) {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} must be set`);
  }
  return value;
}

// Sets the text of a CodeMirror 5 editor inside `selector` (GraphiQL 3 uses CodeMirror 5,
// which keeps its instance on the `.CodeMirror` element).
async function setEditor(page, selector, text) {
  await page.waitForSelector(`${selector} .CodeMirror`);
  await page.evaluate(
    ([sel, value]) => document.querySelector(`${sel} .CodeMirror`).CodeMirror.setValue(value),
    [selector, text],
  );
}

async function responseText(page) {
  return page.evaluate(() => {
    const editor = document.querySelector(".graphiql-response .CodeMirror");
    return editor ? editor.CodeMirror.getValue() : "";
  });
}

// Waits until the rendered response satisfies `accept`, and returns it parsed.
async function waitForResponse(page, accept, what, timeoutMs = 20000) {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  while (Date.now() < deadline) {
    last = await responseText(page);
    try {
      const parsed = JSON.parse(last);
      if (accept(parsed)) {
        return parsed;
      }
    } catch {
      // Not JSON yet (empty, or a stream still rendering).
    }
    await page.waitForTimeout(100);
  }
  throw new Error(`timed out waiting for ${what}; the response pane shows: ${last}`);
}

const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: ["--no-sandbox", "--disable-dev-shm-usage"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  const external = [];
  // Offline: anything the page asks of another origin is refused and reported.
  await page.route("**/*", (route) => {
    const url = route.request().url();
    if (url.startsWith(base) || url.startsWith(base.replace(/^http/, "ws"))) {
      return route.continue();
    }
    external.push(url);
    return route.abort();
  });
  const errors = [];
  page.on("pageerror", (error) => errors.push(String(error)));

  await page.goto(`${base}/graphql`);
  await page.waitForSelector(".graphiql-execute-button", { timeout: 20000 });

  // The Authorization header, typed into the Headers editor as a user would.
  await page.getByRole("button", { name: "Headers" }).click();
  // The Variables and Headers editors share the tools pane; the inactive one is `.hidden`.
  await setEditor(page, ".graphiql-editor-tool .graphiql-editor:not(.hidden)", JSON.stringify({ Authorization: `Bearer ${token}` }));
  // GraphiQL saves the headers to localStorage after a short debounce; the page's WebSocket
  // reads them from there when it connects.
  await page.waitForFunction(
    () => (window.localStorage.getItem("graphiql:headers") || "").includes("Bearer"),
    null,
    { timeout: 10000 },
  );

  // A query.
  await setEditor(page, ".graphiql-query-editor", "{ me { email } }");
  await page.click(".graphiql-execute-button");
  const query = await waitForResponse(page, (r) => r.data?.me?.email, "the query result");

  // A subscription: start it, then write over HTTP and wait for the event to render.
  await setEditor(
    page,
    ".graphiql-query-editor",
    `subscription LiveChanges { recordChanges(tableId: "${table}") { kind recordId cells } }`,
  );
  // GraphiQL parses the editor's text shortly after a change, and picks HTTP or the WebSocket
  // from the parsed operation: let it see the subscription first.
  await page.waitForTimeout(700);
  await page.click(".graphiql-execute-button");
  await page.waitForTimeout(1000);
  const written = await fetch(`${base}/graphql`, {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}` },
    body: JSON.stringify({
      query: `mutation { createRecords(tableId: "${table}", records: [{Name: "from the browser test"}]) { records { id } } }`,
    }),
  }).then((r) => r.json());
  const recordId = written?.data?.createRecords?.records?.[0]?.id;
  if (!recordId) {
    throw new Error(`the write failed: ${JSON.stringify(written)}`);
  }
  const subscription = await waitForResponse(
    page,
    (r) => r.data?.recordChanges?.recordId === recordId,
    "the subscription event",
  );
  // The rest of the journey from the editor: update, history, revert, verify.
  // While a subscription runs the execute button stops it; stop it first.
  await page.click(".graphiql-execute-button");
  await page.waitForTimeout(500);
  // GraphiQL runs the operation it last parsed; on a slow machine that may still be the
  // previous one, so an answer that never comes is retried (the checks below accept a step
  // done twice).
  async function run(text, accept, what) {
    await setEditor(page, ".graphiql-query-editor", text);
    for (let attempt = 1; ; attempt++) {
      await page.waitForTimeout(700 * attempt);
      await page.click(".graphiql-execute-button");
      try {
        return await waitForResponse(page, accept, what, 8000);
      } catch (error) {
        if (attempt === 3) {
          throw error;
        }
      }
    }
  }
  await run(
    `mutation { updateRecords(tableId: "${table}", records: [{id: "${recordId}", fields: {Name: "edited in GraphiQL"}}]) { records { id version } } }`,
    (r) => r.data?.updateRecords?.records?.[0]?.version >= 2,
    "the update",
  );
  const history = await run(
    `{ record(id: "${recordId}") { history { version eventType } } }`,
    (r) => r.data?.record?.history?.length >= 2,
    "the history",
  );
  await run(
    `mutation { revertRecord(id: "${recordId}", toVersion: 1) { records { version cells } } }`,
    (r) => r.data?.revertRecord?.records?.[0]?.version >= 3,
    "the revert",
  );
  const verified = await run(
    `{ verifyStream(streamId: "record-${recordId}") { ok eventsChecked } }`,
    (r) => r.data?.verifyStream?.eventsChecked >= 3,
    "the stream verification",
  );
  if (verified.data.verifyStream.ok !== true) {
    throw new Error(`the stream did not verify: ${JSON.stringify(verified)}`);
  }
  await page.screenshot({ path: screenshot, fullPage: true });

  if (external.length > 0) {
    throw new Error(`the page asked for other origins: ${external.join(", ")}`);
  }
  if (errors.length > 0) {
    throw new Error(`the page raised errors: ${errors.join("; ")}`);
  }
  console.log(JSON.stringify({ query, subscription, recordId, history, verified, screenshot }));
} finally {
  await browser.close();
}
