// Runs the real `airtable` (airtable.js) client against a PyAirtable server.
//
// Only the endpoint URL differs from talking to Airtable: `new Airtable({apiKey, endpointUrl})`.
// airtable.js has no metadata API, so the base and its table are created with plain HTTP calls
// to the metadata endpoints, as an integration would. 429 answers are retried by the client
// itself (its default behaviour).
//
// Environment: PYAIRTABLE_URL, PYAIRTABLE_TOKEN, PYAIRTABLE_WORKSPACE. Exits non-zero on the
// first mismatch; prints one JSON summary line on success.

'use strict';

const Airtable = require('airtable');

const URL = process.env.PYAIRTABLE_URL;
const TOKEN = process.env.PYAIRTABLE_TOKEN;
const WORKSPACE = process.env.PYAIRTABLE_WORKSPACE;
const COUNT = 250;

function check(condition, message) {
  if (!condition) {
    throw new Error(`check failed: ${message}`);
  }
}

async function meta(method, path, body) {
  for (;;) {
    const response = await fetch(`${URL}/v0/meta${path}`, {
      method,
      headers: { Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (response.status === 429) {
      const wait = Number(response.headers.get('retry-after') || '1');
      await new Promise((resolve) => setTimeout(resolve, wait * 1000));
      continue;
    }
    const json = await response.json();
    check(response.ok, `${method} ${path}: ${response.status} ${JSON.stringify(json)}`);
    return json;
  }
}

function itemName(i) {
  const padded = String(i).padStart(3, '0');
  return i % 50 === 7 ? `Item ${padded} it's "quoted"` : `Item ${padded}`;
}

async function main() {
  const created = await meta('POST', '/bases', {
    name: 'Node scenario',
    workspaceId: WORKSPACE,
    tables: [
      {
        name: 'Items',
        fields: [
          { name: 'Name', type: 'singleLineText' },
          { name: 'Notes', type: 'multilineText' },
          { name: 'Email', type: 'email' },
          { name: 'Number', type: 'number', options: { precision: 0 } },
          { name: 'Price', type: 'currency', options: { precision: 2, symbol: '€' } },
          { name: 'Done', type: 'checkbox', options: { icon: 'check', color: 'greenBright' } },
          { name: 'Due', type: 'date', options: { dateFormat: { name: 'iso' } } },
          { name: 'Status', type: 'singleSelect', options: { choices: [{ name: 'Todo' }, { name: 'Doing' }] } },
          { name: 'Tags', type: 'multipleSelects', options: { choices: [{ name: 'red' }, { name: 'blue' }] } },
          { name: 'Double', type: 'formula', options: { formula: '{Number} * 2' } },
        ],
      },
      { name: 'Burst', fields: [{ name: 'Name', type: 'singleLineText' }] },
    ],
  });
  const baseId = created.id;
  const schema = await meta('GET', `/bases/${baseId}/tables`);
  check(schema.tables.map((t) => t.name).join() === 'Items,Burst', 'schema lists both tables');

  const airtable = new Airtable({ apiKey: TOKEN, endpointUrl: URL });
  const base = airtable.base(baseId);
  const items = base('Items');

  // Batch-create 250 records, 10 per request.
  const start = Date.UTC(2024, 0, 1);
  const ids = [];
  for (let offset = 0; offset < COUNT; offset += 10) {
    const batch = [];
    for (let i = offset; i < offset + 10; i += 1) {
      batch.push({
        fields: {
          Name: itemName(i),
          Notes: `line one\nline ${i}`,
          Email: `user${i}@example.com`,
          Number: i,
          Price: i * 1.25,
          Done: i % 2 === 0,
          Due: new Date(start + i * 86400000).toISOString().slice(0, 10),
          Status: ['Todo', 'Doing', 'Blocked'][i % 3],
          Tags: i % 4 === 0 ? ['red', 'blue'] : ['red'],
        },
      });
    }
    const records = await items.create(batch, { typecast: true });
    check(records.length === 10, 'batch of 10');
    ids.push(...records.map((r) => r.id));
  }
  check(ids.length === COUNT, 'created all');

  // Paging.
  const pageSizes = [];
  await items.select({ pageSize: 100 }).eachPage((records, next) => {
    pageSizes.push(records.length);
    next();
  });
  check(pageSizes.join() === '100,100,50', `pages ${pageSizes}`);
  const all = await items.select().all();
  check(new Set(all.map((r) => r.id)).size === COUNT, 'no duplicates across pages');
  check(all.find((r) => r.get('Number') === 3).get('Double') === 6, 'formula field');

  // Filters.
  const count = async (filterByFormula) => (await items.select({ filterByFormula }).all()).length;
  check((await count('{Number} >= 200')) === 50, 'numbers');
  check((await count("IS_BEFORE({Due}, '2024-01-11')")) === 10, 'dates');
  check((await count(`{Name} = 'Item 057 it\\'s "quoted"'`)) === 1, 'quotes');
  check((await count("FIND('Item 12', {Name})")) === 10, 'text');
  check((await count("{Status} = 'Blocked'")) === 83, 'typecast choice');
  check((await count('AND({Done}, {Number} < 10)')) === 5, 'checkbox');

  // Sorting and fields.
  const top = await items.select({ sort: [{ field: 'Number', direction: 'desc' }], maxRecords: 3 }).all();
  check(top.map((r) => r.get('Number')).join() === '249,248,247', 'sort');
  const projected = await items.select({ fields: ['Name'], sort: [{ field: 'Name' }], maxRecords: 1 }).firstPage();
  check(JSON.stringify(projected[0].fields) === '{"Name":"Item 000"}', 'fields');

  // Find, update, replace.
  const first = await items.find(ids[0]);
  check(first.get('Name') === 'Item 000', 'find');
  await items.update(ids[0], { Number: 1000 });
  check((await items.find(ids[0])).get('Number') === 1000, 'update read back');
  await items.update(ids.slice(1, 11).map((id) => ({ id, fields: { Notes: 'bulk' } })));
  check((await count("{Notes} = 'bulk'")) === 10, 'batch update');
  await items.replace(ids[11], { Name: 'Replaced' });
  const replaced = await items.find(ids[11]);
  check(replaced.get('Email') === undefined && replaced.get('Name') === 'Replaced', 'replace');

  // Upsert (options are passed through in the body).
  const upserted = await items.update(
    [{ fields: { Name: 'Item 012', Number: -1 } }, { fields: { Name: 'Fresh', Number: 9 } }],
    { performUpsert: { fieldsToMergeOn: ['Name'] } },
  );
  check(upserted.length === 2, 'upsert answered both');
  check((await items.find(ids[12])).get('Number') === -1, 'upsert updated');

  // Deletes.
  await items.destroy(ids[20]);
  const destroyed = await items.destroy(ids.slice(21, 31));
  check(destroyed.length === 10, 'batch destroy');
  check((await items.select().all()).length === COUNT + 1 - 11, 'deletes applied');

  // Many writers at once: 429s are retried by the client, each write lands exactly once.
  const burst = base('Burst');
  const writes = [];
  for (let n = 0; n < 12; n += 1) {
    writes.push(burst.create({ Name: `w${n}` }));
  }
  await Promise.all(writes);
  const landed = (await burst.select().all()).map((r) => r.get('Name')).sort();
  const expected = Array.from({ length: 12 }, (_, n) => `w${n}`).sort();
  check(JSON.stringify(landed) === JSON.stringify(expected), `burst ${landed}`);

  console.log(JSON.stringify({ ok: true, client: 'airtable.js', records: COUNT, burst: landed.length }));
}

main().catch((error) => {
  console.error(`scenario failed: ${error && error.stack ? error.stack : error}`);
  process.exit(1);
});
