"""Runs the real `pyairtable` client against a PyAirtable server.

Only the endpoint URL differs from talking to Airtable itself:
``Api(token, endpoint_url=...)``. Everything else is the library's ordinary API, with its
default retry policy (which retries 429 answers, honouring ``Retry-After``).

Environment: PYAIRTABLE_URL (e.g. http://127.0.0.1:8000), PYAIRTABLE_TOKEN (a personal access
token with every scope), PYAIRTABLE_WORKSPACE (``wsp…``). Exits non-zero on the first
mismatch; prints one JSON summary line on success.
"""

import datetime
import json
import os
import sys
import threading

from pyairtable import Api
from pyairtable.formulas import match

URL = os.environ["PYAIRTABLE_URL"]
TOKEN = os.environ["PYAIRTABLE_TOKEN"]
WORKSPACE = os.environ["PYAIRTABLE_WORKSPACE"]
COUNT = 250


def check(condition, message):
    if not condition:
        raise AssertionError(message)


def names(records):
    return sorted(r["fields"].get("Name", "") for r in records)


def item_name(i):
    # A few names carry both quote characters, so formulas must escape them.
    return f"Item {i:03d} it's \"quoted\"" if i % 50 == 7 else f"Item {i:03d}"


def main():
    api = Api(TOKEN, endpoint_url=URL)
    who = api.whoami()
    check(who["id"].startswith("usr"), f"whoami: {who}")

    base = api.create_base(
        WORKSPACE,
        "Python scenario",
        [{"name": "People", "fields": [{"name": "Name", "type": "singleLineText"}]}],
    )
    check(base.id in [b.id for b in api.bases(force=True)], "the new base is listed")
    people = base.table("People")
    alice, bob = people.batch_create([{"Name": "Alice"}, {"Name": "Bob"}])
    people_id = base.schema().table("People").id

    items = base.create_table(
        "Items",
        fields=[
            {"name": "Name", "type": "singleLineText"},
            {"name": "Notes", "type": "multilineText"},
            {"name": "Rich", "type": "richText"},
            {"name": "Email", "type": "email"},
            {"name": "Site", "type": "url"},
            {"name": "Phone", "type": "phoneNumber"},
            {"name": "Number", "type": "number", "options": {"precision": 0}},
            {"name": "Price", "type": "currency", "options": {"precision": 2, "symbol": "$"}},
            {"name": "Share", "type": "percent", "options": {"precision": 1}},
            {"name": "Stars", "type": "rating", "options": {"max": 5, "icon": "star", "color": "yellowBright"}},
            {"name": "Time", "type": "duration", "options": {"durationFormat": "h:mm"}},
            {"name": "Done", "type": "checkbox", "options": {"icon": "check", "color": "greenBright"}},
            {"name": "Due", "type": "date", "options": {"dateFormat": {"name": "iso"}}},
            {
                "name": "When",
                "type": "dateTime",
                "options": {
                    "dateFormat": {"name": "iso"},
                    "timeFormat": {"name": "24hour"},
                    "timeZone": "utc",
                },
            },
            {"name": "Status", "type": "singleSelect", "options": {"choices": [{"name": "Todo"}, {"name": "Doing"}]}},
            {"name": "Tags", "type": "multipleSelects", "options": {"choices": [{"name": "red"}, {"name": "blue"}]}},
            {"name": "Files", "type": "multipleAttachments"},
            {"name": "Owner", "type": "multipleRecordLinks", "options": {"linkedTableId": people_id}},
            {"name": "Double", "type": "formula", "options": {"formula": "{Number} * 2"}},
            {"name": "Created", "type": "createdTime"},
        ],
        description="every supported field type",
    )
    schema = items.schema()
    link_id = schema.field("Owner").id
    items.create_field("Owners", "count", options={"recordLinkFieldId": link_id})
    field = items.schema(force=True).field("Notes")
    field.description = "free text"
    field.save()
    check(items.schema(force=True).field("Notes").description == "free text", "field update")

    start = datetime.date(2024, 1, 1)
    rows = []
    for i in range(COUNT):
        rows.append(
            {
                "Name": item_name(i),
                "Notes": f"line one\nline {i}",
                "Rich": f"**bold {i}**",
                "Email": f"user{i}@example.com",
                "Site": f"https://example.com/{i}",
                "Phone": "+1 555 0100",
                "Number": i,
                "Price": i * 1.25,
                "Share": i / COUNT,
                "Stars": i % 5 + 1,
                "Time": i * 60,
                "Done": i % 2 == 0,
                "Due": (start + datetime.timedelta(days=i)).isoformat(),
                "When": f"{(start + datetime.timedelta(days=i)).isoformat()}T12:30:00.000Z",
                "Status": ["Todo", "Doing", "Blocked"][i % 3],
                "Tags": ["red", "blue"] if i % 4 == 0 else ["red"],
                "Files": [{"url": f"https://example.com/f{i}.txt", "filename": f"f{i}.txt"}],
                "Owner": [alice["id"] if i % 2 else bob["id"]],
            }
        )
    created = items.batch_create(rows, typecast=True)
    check(len(created) == COUNT, f"created {len(created)}")
    check(created[3]["fields"]["Double"] == 6, f"formula: {created[3]['fields']}")
    check(created[2]["fields"]["Status"] == "Blocked", "typecast added a choice")

    # Paging.
    pages = [len(page) for page in items.iterate(page_size=100)]
    check(pages == [100, 100, 50], f"pages {pages}")
    everything = items.all()
    check(len(everything) == COUNT, "all")
    check(len({r["id"] for r in everything}) == COUNT, "no duplicates across pages")
    check(everything[0]["fields"]["Owners"] == 1, f"count field: {everything[0]['fields']}")

    # Filters: numbers, dates, quotes, text, selects, checkboxes.
    check(len(items.all(formula="{Number} >= 200")) == 50, "numbers")
    check(len(items.all(formula="IS_BEFORE({Due}, '2024-01-11')")) == 10, "dates")
    check(len(items.all(formula="AND({Due} >= '2024-02-01', {Due} < '2024-03-01')")) == 29, "date range")
    quoted = items.all(formula=match({"Name": item_name(57)}))
    check(names(quoted) == [item_name(57)], f"quotes: {names(quoted)}")
    check(len(items.all(formula="FIND('Item 12', {Name})")) == 10, "text")
    check(len(items.all(formula="{Status} = 'Doing'")) == 83, "select")
    check(len(items.all(formula="AND({Done}, {Number} < 10)")) == 5, "checkbox")

    # Sorting, projection, field ids, strings.
    top = items.all(sort=["-Number"], max_records=3)
    check([r["fields"]["Number"] for r in top] == [249, 248, 247], "sort desc")
    first = items.first(sort=["Name"], fields=["Name"])
    check(first["fields"] == {"Name": "Item 000"}, f"fields: {first}")
    by_id = items.first(formula="{Number} = 5", use_field_ids=True)
    check(schema.field("Number").id in by_id["fields"], "returnFieldsByFieldId")
    as_text = items.first(formula="{Number} = 5", cell_format="string", time_zone="UTC", user_locale="en-us")
    check(as_text["fields"]["Price"] == "$6.25", f"string cells: {as_text['fields']}")

    # Updates: single, batch, replace.
    one = items.get(created[0]["id"])
    check(one["fields"]["Name"] == "Item 000", "get")
    items.update(created[0]["id"], {"Number": 1000})
    check(items.get(created[0]["id"])["fields"]["Number"] == 1000, "update is read back")
    items.batch_update([{"id": r["id"], "fields": {"Notes": "bulk"}} for r in created[1:16]])
    check(len(items.all(formula="{Notes} = 'bulk'")) == 15, "batch update")
    items.update(created[16]["id"], {"Name": "Replaced"}, replace=True)
    replaced = items.get(created[16]["id"])["fields"]
    check("Email" not in replaced and replaced["Name"] == "Replaced", f"replace: {replaced}")

    # Upsert.
    result = items.batch_upsert(
        [{"fields": {"Name": "Item 001", "Number": -1}}, {"fields": {"Name": "Brand new", "Number": 7}}],
        key_fields=["Name"],
    )
    check(len(result["updatedRecords"]) == 1 and len(result["createdRecords"]) == 1, f"upsert: {result}")
    check(items.get(created[1]["id"])["fields"]["Number"] == -1, "upsert updated")

    # Comments.
    record_id = created[5]["id"]
    comment = items.add_comment(record_id, f"Hello @[{who['id']}]")
    check(comment.author.id == who["id"], "comment author")
    comment.text = "Edited"
    comment.save()
    comments = items.comments(record_id)
    check([c.text for c in comments] == ["Edited"], f"comments {comments}")
    comments[0].delete()
    check(items.comments(record_id) == [], "comment deleted")

    # Deletes.
    items.delete(created[20]["id"])
    deleted = items.batch_delete([r["id"] for r in created[21:33]])
    check(len(deleted) == 12, "batch delete")
    check(len(items.all()) == COUNT + 1 - 13, "deletes applied")

    # Many writers at once: 429s are retried by the client, each write lands exactly once.
    burst = base.create_table("Burst", fields=[{"name": "Name", "type": "singleLineText"}])
    errors = []

    def writer(n):
        try:
            for k in range(2):
                burst.create({"Name": f"w{n}-{k}"})
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(repr(error))

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check(errors == [], f"writer errors: {errors}")
    landed = sorted(r["fields"]["Name"] for r in burst.all())
    check(landed == sorted(f"w{n}-{k}" for n in range(6) for k in range(2)), f"burst: {landed}")

    print(json.dumps({"ok": True, "client": "pyairtable", "records": COUNT, "burst": len(landed)}))


if __name__ == "__main__":
    try:
        main()
    except Exception as error:  # noqa: BLE001 - the runner reads the exit status
        print(f"scenario failed: {error!r}", file=sys.stderr)
        raise
