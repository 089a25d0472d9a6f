"""Webhooks through the real `pyairtable` client against a PyAirtable server.

Only the endpoint URL differs from talking to Airtable: ``Api(token, endpoint_url=...)``.
The script registers a webhook with ``Base.add_webhook``, receives its pings on a local HTTP
server and checks each one with ``WebhookNotification.from_request`` (the MAC), reads the
payloads with ``Webhook.payloads`` and resumes from a saved cursor, then disables, enables,
refreshes and deletes the webhook.

Environment: PYAIRTABLE_URL, PYAIRTABLE_TOKEN (every scope), PYAIRTABLE_WORKSPACE. Exits
non-zero on the first mismatch; prints one JSON summary line on success.
"""

import http.server
import json
import os
import threading
import time

from pyairtable import Api
from pyairtable.models import WebhookNotification

URL = os.environ["PYAIRTABLE_URL"]
TOKEN = os.environ["PYAIRTABLE_TOKEN"]
WORKSPACE = os.environ["PYAIRTABLE_WORKSPACE"]


def check(condition, message):
    if not condition:
        raise AssertionError(message)


def eventually(what, probe, timeout=30.0):
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.3)


class Pings:
    """A local notification URL that keeps every (body, MAC header) it receives."""

    def __init__(self):
        self.hits = []
        self.lock = threading.Lock()
        pings = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length).decode("ascii")
                with pings.lock:
                    pings.hits.append((body, self.headers.get("X-Airtable-Content-MAC")))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/ping"

    def received(self):
        with self.lock:
            return list(self.hits)


def main():
    api = Api(TOKEN, endpoint_url=URL)
    base = api.create_base(
        WORKSPACE,
        "Webhook scenario",
        [
            {
                "name": "Tasks",
                "fields": [
                    {"name": "Name", "type": "singleLineText"},
                    {"name": "Points", "type": "number", "options": {"precision": 0}},
                ],
            }
        ],
    )
    schema = base.schema().table("Tasks")
    table_id = schema.id
    points_id = schema.field("Points").id
    table = base.table("Tasks")
    pings = Pings()

    created = base.add_webhook(
        pings.url,
        {
            "options": {
                "filters": {"dataTypes": ["tableData"], "recordChangeScope": table_id},
                "includes": {"includePreviousCellValues": True},
            }
        },
    )
    check(created.id.startswith("ach") and len(created.id) == 17, f"id {created.id}")
    check(created.expiration_time is not None, "an expiration time")
    webhook = base.webhook(created.id)
    check(webhook.are_notifications_enabled and webhook.is_hook_enabled, "enabled")
    check(webhook.cursor_for_next_payload == 1, f"cursor {webhook.cursor_for_next_payload}")
    check(webhook.notification_url == pings.url, f"url {webhook.notification_url}")
    check(webhook.specification.options.filters.record_change_scope == table_id, "scope")

    record = table.create({"Name": "first", "Points": 1})
    table.update(record["id"], {"Points": 2})
    table.delete(record["id"])

    payloads = eventually("three payloads", lambda: (lambda p: p if len(p) >= 3 else None)(
        list(webhook.payloads())
    ))
    check([p.cursor for p in payloads] == [1, 2, 3], f"cursors {[p.cursor for p in payloads]}")
    for p in payloads:
        check(p.payload_format == "v0", "payload format")
        check(p.action_metadata.source == "publicApi", f"source {p.action_metadata}")
    added = payloads[0].changed_tables_by_id[table_id].created_records_by_id[record["id"]]
    check(added.cell_values_by_field_id[points_id] == 1, f"created cells {added}")
    changed = payloads[1].changed_tables_by_id[table_id].changed_records_by_id[record["id"]]
    check(changed.current.cell_values_by_field_id == {points_id: 2}, f"current {changed}")
    check(changed.previous.cell_values_by_field_id == {points_id: 1}, f"previous {changed}")
    check(
        payloads[2].changed_tables_by_id[table_id].destroyed_record_ids == [record["id"]],
        "destroyed",
    )

    hits = eventually("a ping", pings.received)
    for body, mac in hits:
        note = WebhookNotification.from_request(body, mac, created.mac_secret_base64)
        check(note.base.id == base.id and note.webhook.id == created.id, f"ping {body}")

    # Resume from the cursor after the last payload seen.
    cursor = payloads[-1].cursor + 1
    table.create({"Name": "second"})
    later = eventually("the next payload", lambda: list(webhook.payloads(cursor=cursor)))
    check([p.cursor for p in later] == [4], f"resumed cursors {[p.cursor for p in later]}")

    webhook.disable_notifications()
    check(not base.webhook(created.id).are_notifications_enabled, "disabled")
    webhook.enable_notifications()
    check(base.webhook(created.id).are_notifications_enabled, "enabled again")
    before = base.webhook(created.id).expiration_time
    webhook.extend_expiration()
    check(base.webhook(created.id).expiration_time >= before, "refreshed")
    check(base.webhook(created.id).last_notification_result.success, "last ping succeeded")

    webhook.delete()
    check(created.id not in [w.id for w in base.webhooks()], "deleted")
    print(json.dumps({"payloads": len(payloads) + len(later), "pings": len(pings.received())}))


if __name__ == "__main__":
    main()
