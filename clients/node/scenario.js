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
      { name: 'People', fields: [{ name: 'Name', type: 'singleLineText' }] },
      { name: 'Burst', fields: [{ name: 'Name', type: 'singleLineText' }] },
    ],
  });
  const baseId = created.id;
  const peopleId = created.tables[0].id;
  const peopleName = created.tables[0].fields[0].id;
  // Every field type the server stores or computes, added by the metadata API.
  const itemsTable = await meta('POST', `/bases/${baseId}/tables`, {
    name: 'Items',
    fields: [
      { name: 'Name', type: 'singleLineText' },
      { name: 'Notes', type: 'multilineText' },
      { name: 'Rich', type: 'richText' },
      { name: 'Email', type: 'email' },
      { name: 'Site', type: 'url' },
      { name: 'Phone', type: 'phoneNumber' },
      { name: 'Number', type: 'number', options: { precision: 0 } },
      { name: 'Price', type: 'currency', options: { precision: 2, symbol: '€' } },
      { name: 'Share', type: 'percent', options: { precision: 1 } },
      { name: 'Stars', type: 'rating', options: { max: 5, icon: 'star', color: 'yellowBright' } },
      { name: 'Time', type: 'duration', options: { durationFormat: 'h:mm' } },
      { name: 'Done', type: 'checkbox', options: { icon: 'check', color: 'greenBright' } },
      { name: 'Due', type: 'date', options: { dateFormat: { name: 'iso' } } },
      {
        name: 'When',
        type: 'dateTime',
        options: { dateFormat: { name: 'iso' }, timeFormat: { name: '24hour' }, timeZone: 'utc' },
      },
      { name: 'Status', type: 'singleSelect', options: { choices: [{ name: 'Todo' }, { name: 'Doing' }] } },
      { name: 'Tags', type: 'multipleSelects', options: { choices: [{ name: 'red' }, { name: 'blue' }] } },
      { name: 'Files', type: 'multipleAttachments' },
      { name: 'Owner', type: 'multipleRecordLinks', options: { linkedTableId: peopleId } },
      { name: 'Double', type: 'formula', options: { formula: '{Number} * 2' } },
      { name: 'Created', type: 'createdTime' },
      { name: 'No', type: 'autoNumber' },
    ],
  });
  const ownerField = itemsTable.fields.find((f) => f.name === 'Owner').id;
  const fieldsPath = `/bases/${baseId}/tables/${itemsTable.id}/fields`;
  await meta('POST', fieldsPath, {
    name: 'Owner name',
    type: 'multipleLookupValues',
    options: { recordLinkFieldId: ownerField, fieldIdInLinkedTable: peopleName },
  });
  await meta('POST', fieldsPath, {
    name: 'Owners',
    type: 'count',
    options: { recordLinkFieldId: ownerField },
  });
  const schema = await meta('GET', `/bases/${baseId}/tables`);
  check(schema.tables.map((t) => t.name).join() === 'People,Burst,Items', 'schema lists the tables');

  const airtable = new Airtable({ apiKey: TOKEN, endpointUrl: URL });
  const base = airtable.base(baseId);
  const items = base('Items');
  const [alice, bob] = await base('People').create([{ fields: { Name: 'Alice' } }, { fields: { Name: 'Bob' } }]);

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
          Rich: `**bold ${i}**`,
          Email: `user${i}@example.com`,
          Site: `https://example.com/${i}`,
          Phone: '+1 555 0100',
          Number: i,
          Price: i * 1.25,
          Share: i / COUNT,
          Stars: (i % 5) + 1,
          Time: i * 60,
          Done: i % 2 === 0,
          Due: new Date(start + i * 86400000).toISOString().slice(0, 10),
          When: `${new Date(start + i * 86400000).toISOString().slice(0, 10)}T12:30:00.000Z`,
          Status: ['Todo', 'Doing', 'Blocked'][i % 3],
          Tags: i % 4 === 0 ? ['red', 'blue'] : ['red'],
          Files: [{ url: `https://example.com/f${i}.txt`, filename: `f${i}.txt` }],
          Owner: [i % 2 ? alice.id : bob.id],
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

  // Every type reads back as Airtable returns it.
  const three = all.find((r) => r.get('Number') === 3);
  const same = (name, want) => {
    const got = three.get(name);
    check(JSON.stringify(got) === JSON.stringify(want), `${name}: ${JSON.stringify(got)}`);
  };
  same('Name', 'Item 003');
  same('Notes', 'line one\nline 3');
  same('Rich', '**bold 3**');
  same('Email', 'user3@example.com');
  same('Site', 'https://example.com/3');
  same('Phone', '+1 555 0100');
  same('Price', 3.75);
  same('Share', 3 / COUNT);
  same('Stars', 4);
  same('Time', 180);
  same('Done', undefined); // unchecked cells are left out, as Airtable leaves them out
  same('Due', '2024-01-04');
  same('When', '2024-01-04T12:30:00.000Z');
  same('Tags', ['red']);
  same('Owner', [alice.id]);
  same('Owner name', ['Alice']);
  same('Owners', 1);
  const files = three.get('Files');
  check(
    files.length === 1 && files[0].id.startsWith('att') && files[0].url === 'https://example.com/f3.txt'
      && files[0].filename === 'f3.txt',
    `attachments: ${JSON.stringify(files)}`,
  );
  check(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/.test(three.get('Created')), `createdTime: ${three.get('Created')}`);
  const numbers = all.map((r) => r.get('No')).sort((a, b) => a - b);
  check(numbers[0] === 1 && numbers[COUNT - 1] === COUNT && new Set(numbers).size === COUNT, 'auto numbers');
  check(all.find((r) => r.get('Number') === 0).get('Done') === true, 'checked checkbox');

  // Display strings, as cellFormat=string renders them.
  const asText = await items
    .select({ filterByFormula: '{Number} = 5', cellFormat: 'string', timeZone: 'UTC', userLocale: 'en-us' })
    .firstPage();
  check(asText[0].get('Price') === '€6.25', `string cells: ${JSON.stringify(asText[0].fields)}`);

  // Filters.
  const count = async (filterByFormula) => (await items.select({ filterByFormula }).all()).length;
  check((await count('{Number} >= 200')) === 50, 'numbers');
  check((await count("IS_BEFORE({Due}, '2024-01-11')")) === 10, 'dates');
  check((await count("AND({Due} >= '2024-02-01', {Due} < '2024-03-01')")) === 29, 'date range');
  check((await count("{Owner name} = 'Alice'")) === 125, 'lookup');
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

  // Comments (airtable.js has no comments API; its raw request helper reaches the endpoints).
  const commentsPath = `/Items/${ids[5]}/comments`;
  const comment = await base.makeRequest({ method: 'POST', path: commentsPath, body: { text: 'Hello' } });
  check(comment.body.text === 'Hello', `comment: ${JSON.stringify(comment.body)}`);
  await base.makeRequest({ method: 'PATCH', path: `${commentsPath}/${comment.body.id}`, body: { text: 'Edited' } });
  const listed = await base.makeRequest({ path: commentsPath });
  check(listed.body.comments.map((c) => c.text).join() === 'Edited', 'comment edited');
  await base.makeRequest({ method: 'DELETE', path: `${commentsPath}/${comment.body.id}` });
  check((await base.makeRequest({ path: commentsPath })).body.comments.length === 0, 'comment deleted');

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

  console.log(JSON.stringify({ ok: true, client: 'airtable.js', records: COUNT, fieldTypes: itemsTable.fields.length + 2, burst: landed.length }));
}

main().catch((error) => {
  console.error(`scenario failed: ${error && error.stack ? error.stack : error}`);
  process.exit(1);
});
