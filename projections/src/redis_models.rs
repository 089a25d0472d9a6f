//! The Redis read models of the `cache` projection: membership role per (workspace, user) for
//! the permission check on every request, table schema per table, record count per table, and
//! a hot cache of records by id invalidated by version.
//!
//! Everything lives under one *generation* prefix, `<ns>:rm:cache:g<n>:`, and readers find
//! the generation through the pointer key `<ns>:rm:cache:gen`. Changes for a batch of events
//! are applied by one Lua script that first checks the pointer and the generation's checkpoint
//! and then writes the changes and the new checkpoint: atomic, and a worker that lost a race
//! (a rebuild switched generations, another worker moved the checkpoint) changes nothing.
//! A flushed Redis has no pointer; the runtime notices and rebuilds from the event store.
//!
//! Keys are built inside the scripts, so this needs a single Redis (or one cluster slot per
//! namespace via a hash tag); see docs/adr/0005-relay-and-projections.md.

use pyairtable_eventstore::RecordedEvent;
use redis::aio::ConnectionManager;
use serde_json::{Value, json};

use crate::error::{ProjectionError, Result};
use crate::names::{Names, aggregate_id, aggregate_kind};
use crate::sql_models::Payload;

/// The name of the Redis projection.
pub const REDIS_PROJECTION: &str = "cache";

/// How long a hot record stays cached without being read.
pub const RECORD_CACHE_TTL_SECONDS: u64 = 600;

const APPLY_SCRIPT: &str = r"
local ptr, want_gen, pfx = ARGV[1], ARGV[2], ARGV[3]
if want_gen ~= '' then
  local cur = redis.call('GET', ptr)
  if cur ~= want_gen then return 0 end
end
local ck = redis.call('GET', pfx .. 'checkpoint')
if (ck or '') ~= ARGV[4] then return -1 end
for _, op in ipairs(cjson.decode(ARGV[6])) do
  local c = op[1]
  if c == 'hset' then
    redis.call('HSET', pfx .. op[2], op[3], op[4])
  elseif c == 'hdel' then
    redis.call('HDEL', pfx .. op[2], op[3])
  elseif c == 'del' then
    redis.call('DEL', pfx .. op[2])
  elseif c == 'rec_created' then
    if not redis.call('HGET', pfx .. 'rectable', op[2]) then
      redis.call('HSET', pfx .. 'rectable', op[2], op[3])
      redis.call('HINCRBY', pfx .. 'count', op[3], 1)
    end
  elseif c == 'rec_deleted' then
    local t = redis.call('HGET', pfx .. 'rectable', op[2])
    if t then
      redis.call('HDEL', pfx .. 'rectable', op[2])
      redis.call('HSET', pfx .. 'recdeleted', op[2], t)
      redis.call('HINCRBY', pfx .. 'count', t, -1)
    end
  elseif c == 'rec_restored' then
    local t = redis.call('HGET', pfx .. 'recdeleted', op[2])
    if t then
      redis.call('HDEL', pfx .. 'recdeleted', op[2])
      redis.call('HSET', pfx .. 'rectable', op[2], t)
      redis.call('HINCRBY', pfx .. 'count', t, 1)
    end
  elseif c == 'rec_version' then
    redis.call('HSET', pfx .. 'recver', op[2], op[3])
    redis.call('DEL', pfx .. 'rec:' .. op[2])
  elseif c == 'schema_field' then
    local key = pfx .. 'schema:' .. op[2]
    local existing = redis.call('HGET', key, 'f:' .. op[3])
    local seq = nil
    if existing then seq = string.match(existing, '^(%d+)|') end
    if not seq then seq = tostring(redis.call('HINCRBY', key, '_seq', 1)) end
    redis.call('HSET', key, 'f:' .. op[3], seq .. '|' .. op[4])
  elseif c == 'schema_choices' then
    local key = pfx .. 'schema:' .. op[2]
    local existing = redis.call('HGET', key, 'f:' .. op[3])
    if existing then
      local seq, body = string.match(existing, '^(%d+)|(.*)$')
      local f = cjson.decode(body)
      if type(f.options) ~= 'table' then f.options = {} end
      if type(f.options.choices) ~= 'table' then f.options.choices = {} end
      for _, ch in ipairs(cjson.decode(op[4])) do table.insert(f.options.choices, ch) end
      redis.call('HSET', key, 'f:' .. op[3], seq .. '|' .. cjson.encode(f))
    end
  end
end
redis.call('SET', pfx .. 'checkpoint', ARGV[5])
redis.call('INCRBY', pfx .. 'events', ARGV[7])
return 1
";

/// Reads through the pointer: returns -1 when no generation is published.
const READ_SCRIPT: &str = r"
local g = redis.call('GET', ARGV[1])
if not g then return -1 end
local pfx = ARGV[2] .. 'g' .. g .. ':'
local op = ARGV[3]
if op == 'role' then
  return redis.call('HGET', pfx .. 'member:' .. ARGV[4], ARGV[5])
elseif op == 'count' then
  return redis.call('HGET', pfx .. 'count', ARGV[4]) or '0'
elseif op == 'schema' then
  return redis.call('HGETALL', pfx .. 'schema:' .. ARGV[4])
elseif op == 'record' then
  local v = redis.call('HGET', pfx .. 'recver', ARGV[4])
  local c = redis.call('GET', pfx .. 'rec:' .. ARGV[4])
  if not c then return false end
  local cv, body = string.match(c, '^(%d+)|(.*)$')
  if v and tonumber(cv) < tonumber(v) then return false end
  redis.call('EXPIRE', pfx .. 'rec:' .. ARGV[4], ARGV[5])
  return body
elseif op == 'fill' then
  local v = redis.call('HGET', pfx .. 'recver', ARGV[4])
  if v and tonumber(ARGV[5]) < tonumber(v) then return 0 end
  redis.call('SET', pfx .. 'rec:' .. ARGV[4], ARGV[5] .. '|' .. ARGV[6], 'EX', ARGV[7])
  return 1
elseif op == 'checkpoint' then
  return redis.call('GET', pfx .. 'checkpoint')
end
return -2
";

/// The changes one event makes to the Redis read models, as script operations (keys relative
/// to the generation prefix).
///
/// # Errors
/// [`ProjectionError::BadEvent`] for an event whose payload cannot be read.
pub fn redis_ops(event: &RecordedEvent) -> Result<Vec<Value>> {
    let p = Payload::new(event);
    let id = aggregate_id(&event.stream_id);
    let mut ops = Vec::new();
    match event.event_type.as_str() {
        "WorkspaceCreated" => {
            let ws = p.str("id")?;
            ops.push(json!([
                "hset",
                format!("member:{ws}"),
                p.str("owner")?,
                "owner"
            ]));
        }
        "MemberAdded" | "InvitationAccepted" | "MemberRoleChanged" => {
            let key = if event.event_type == "MemberRoleChanged" {
                "to"
            } else {
                "role"
            };
            let role: pyairtable_domain::roles::Role =
                serde_json::from_value(p.value(key)?.clone())
                    .map_err(|e| p.bad(format!("{key:?} is not a role: {e}")))?;
            ops.push(json!([
                "hset",
                format!("member:{id}"),
                p.str("user_id")?,
                role.as_str()
            ]));
        }
        "MemberRemoved" => {
            ops.push(json!(["hdel", format!("member:{id}"), p.str("user_id")?]));
        }
        "WorkspaceArchived" => {
            ops.push(json!(["del", format!("member:{id}")]));
        }
        "TableCreated" => {
            let table = p.value("table")?;
            let table_id = table
                .get("id")
                .and_then(Value::as_str)
                .ok_or_else(|| p.bad("table has no id"))?;
            let key = format!("schema:{table_id}");
            ops.push(json!(["del", key]));
            ops.push(json!(["hset", key, "_base", id]));
            ops.push(json!([
                "hset",
                key,
                "_name",
                table
                    .get("name")
                    .cloned()
                    .unwrap_or(Value::Null)
                    .to_string()
            ]));
            ops.push(json!([
                "hset",
                key,
                "_description",
                table
                    .get("description")
                    .cloned()
                    .unwrap_or(Value::Null)
                    .to_string()
            ]));
            ops.push(json!([
                "hset",
                key,
                "_primary",
                table
                    .get("primaryFieldId")
                    .or_else(|| table.get("primary_field_id"))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
            ]));
            for field in table
                .get("fields")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let field_id = field
                    .get("id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| p.bad("a field has no id"))?;
                ops.push(json!([
                    "schema_field",
                    table_id,
                    field_id,
                    field.to_string()
                ]));
            }
        }
        "TableUpdated" => {
            let key = format!("schema:{}", p.str("table_id")?);
            ops.push(json!([
                "hset",
                key,
                "_name",
                Value::from(p.str("name")?).to_string()
            ]));
            ops.push(json!([
                "hset",
                key,
                "_description",
                p.opt_value("description")?
                    .cloned()
                    .unwrap_or(Value::Null)
                    .to_string()
            ]));
        }
        "TableDeleted" => {
            ops.push(json!(["del", format!("schema:{}", p.str("table_id")?)]));
        }
        "PrimaryFieldSet" => {
            ops.push(json!([
                "hset",
                format!("schema:{}", p.str("table_id")?),
                "_primary",
                p.str("field_id")?
            ]));
        }
        "FieldCreated" | "FieldUpdated" => {
            let field = p.value("field")?;
            let field_id = field
                .get("id")
                .and_then(Value::as_str)
                .ok_or_else(|| p.bad("field has no id"))?;
            ops.push(json!([
                "schema_field",
                p.str("table_id")?,
                field_id,
                field.to_string()
            ]));
        }
        "FieldDeleted" => {
            ops.push(json!([
                "hdel",
                format!("schema:{}", p.str("table_id")?),
                format!("f:{}", p.str("field_id")?)
            ]));
        }
        "ChoicesAdded" => {
            ops.push(json!([
                "schema_choices",
                p.str("table_id")?,
                p.str("field_id")?,
                p.value("choices")?.to_string()
            ]));
        }
        _ if aggregate_kind(&event.stream_id) == "record" => {
            match event.event_type.as_str() {
                "RecordCreated" => ops.push(json!(["rec_created", id, p.str("table_id")?])),
                "RecordDeleted" => ops.push(json!(["rec_deleted", id])),
                "RecordRestored" => ops.push(json!(["rec_restored", id])),
                _ => {}
            }
            ops.push(json!(["rec_version", id, event.version.to_string()]));
        }
        _ => {}
    }
    Ok(ops)
}

/// What the apply script did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Applied {
    /// Changes and checkpoint written.
    Done,
    /// The pointer does not name the generation any more (a rebuild switched it, or Redis
    /// lost its data).
    GenerationMoved,
    /// The generation's checkpoint is not the one expected (another writer, or lost data).
    CheckpointMoved,
}

/// Applies script operations and the new checkpoint to one generation, atomically.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn apply_ops(
    con: &mut ConnectionManager,
    names: &Names,
    generation: i64,
    check_pointer: bool,
    expected_checkpoint: Option<&str>,
    new_checkpoint: &str,
    ops: &[Value],
    events: usize,
) -> Result<Applied> {
    let ops_json = Value::Array(ops.to_vec()).to_string();
    let result: i64 = redis::Script::new(APPLY_SCRIPT)
        .arg(names.redis_pointer(REDIS_PROJECTION))
        .arg(if check_pointer {
            generation.to_string()
        } else {
            String::new()
        })
        .arg(names.redis_generation(REDIS_PROJECTION, generation))
        .arg(expected_checkpoint.unwrap_or(""))
        .arg(new_checkpoint)
        .arg(ops_json)
        .arg(events)
        .invoke_async(con)
        .await
        .map_err(ProjectionError::redis(
            "applying changes to the Redis read models",
        ))?;
    Ok(match result {
        1 => Applied::Done,
        0 => Applied::GenerationMoved,
        _ => Applied::CheckpointMoved,
    })
}

/// The generation queries read, if one is published.
pub(crate) async fn current_generation(
    con: &mut ConnectionManager,
    names: &Names,
) -> Result<Option<i64>> {
    redis::cmd("GET")
        .arg(names.redis_pointer(REDIS_PROJECTION))
        .query_async(con)
        .await
        .map_err(ProjectionError::redis(
            "reading the Redis generation pointer",
        ))
}

/// The checkpoint of one generation.
pub(crate) async fn generation_checkpoint(
    con: &mut ConnectionManager,
    names: &Names,
    generation: i64,
) -> Result<Option<String>> {
    redis::cmd("GET")
        .arg(format!(
            "{}checkpoint",
            names.redis_generation(REDIS_PROJECTION, generation)
        ))
        .query_async(con)
        .await
        .map_err(ProjectionError::redis("reading a Redis checkpoint"))
}

/// Deletes every key of one generation (SCAN + UNLINK in pages: never blocks Redis for long).
pub(crate) async fn drop_generation(
    con: &mut ConnectionManager,
    names: &Names,
    generation: i64,
) -> Result<()> {
    let pattern = format!("{}*", names.redis_generation(REDIS_PROJECTION, generation));
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(con)
            .await
            .map_err(ProjectionError::redis("scanning an old generation"))?;
        if !keys.is_empty() {
            let _: i64 = redis::cmd("UNLINK")
                .arg(&keys)
                .query_async(con)
                .await
                .map_err(ProjectionError::redis("deleting an old generation"))?;
        }
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}

/// Queries against the Redis read models. Cheap to clone.
#[derive(Clone)]
pub struct RedisReadModels {
    con: ConnectionManager,
    names: Names,
}

impl std::fmt::Debug for RedisReadModels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisReadModels")
            .field("namespace", &self.names.namespace())
            .finish_non_exhaustive()
    }
}

impl RedisReadModels {
    /// Queries over a connection for a namespace's names.
    #[must_use]
    pub fn new(con: ConnectionManager, names: Names) -> Self {
        Self { con, names }
    }

    async fn read(&self, args: &[&str]) -> Result<redis::Value> {
        let mut con = self.con.clone();
        let read = redis::Script::new(READ_SCRIPT);
        let mut script = read.prepare_invoke();
        script
            .arg(self.names.redis_pointer(REDIS_PROJECTION))
            .arg(format!(
                "{}rm:{}:",
                self.names.redis_prefix(),
                REDIS_PROJECTION
            ));
        for a in args {
            script.arg(*a);
        }
        let value: redis::Value = script
            .invoke_async(&mut con)
            .await
            .map_err(ProjectionError::redis("reading the Redis read models"))?;
        if value == redis::Value::Int(-1) {
            return Err(ProjectionError::Unavailable(format!(
                "redis:{REDIS_PROJECTION}"
            )));
        }
        Ok(value)
    }

    /// The role (`owner`, `creator`, `editor`, `commenter`, `read`) of a user in a workspace,
    /// or `None` when they are not a member.
    ///
    /// # Errors
    /// [`ProjectionError::Unavailable`] while Redis holds no published generation (fall back
    /// to the SQL `members` table); [`ProjectionError::Redis`] when Redis fails.
    pub async fn role(&self, workspace_id: &str, user_id: &str) -> Result<Option<String>> {
        let v = self.read(&["role", workspace_id, user_id]).await?;
        Ok(as_string(&v))
    }

    /// The number of live (not deleted) records of a table.
    ///
    /// # Errors
    /// As [`RedisReadModels::role`].
    pub async fn record_count(&self, table_id: &str) -> Result<i64> {
        let v = self.read(&["count", table_id]).await?;
        Ok(as_string(&v).and_then(|s| s.parse().ok()).unwrap_or(0))
    }

    /// A table's schema: `{"id", "baseId", "name", "description", "primaryFieldId",
    /// "fields": [field definitions in creation order]}`, or `None` for an unknown table.
    ///
    /// # Errors
    /// As [`RedisReadModels::role`].
    pub async fn table_schema(&self, table_id: &str) -> Result<Option<Value>> {
        let v = self.read(&["schema", table_id]).await?;
        let redis::Value::Array(items) = v else {
            return Ok(None);
        };
        if items.is_empty() {
            return Ok(None);
        }
        let mut out = serde_json::Map::new();
        out.insert("id".to_owned(), Value::from(table_id));
        let mut fields: Vec<(u64, Value)> = Vec::new();
        let strings: Vec<String> = items.iter().filter_map(as_string).collect();
        for pair in strings.chunks(2) {
            let [key, value] = pair else { continue };
            match key.as_str() {
                "_base" => {
                    out.insert("baseId".to_owned(), Value::from(value.as_str()));
                }
                "_name" | "_description" => {
                    let parsed = serde_json::from_str(value).unwrap_or(Value::Null);
                    out.insert(key[1..].to_owned(), parsed);
                }
                "_primary" => {
                    out.insert("primaryFieldId".to_owned(), Value::from(value.as_str()));
                }
                k if k.starts_with("f:") => {
                    if let Some((seq, body)) = value.split_once('|') {
                        let field = serde_json::from_str(body).unwrap_or(Value::Null);
                        fields.push((seq.parse().unwrap_or(u64::MAX), field));
                    }
                }
                _ => {}
            }
        }
        fields.sort_by_key(|(seq, _)| *seq);
        out.insert(
            "fields".to_owned(),
            Value::Array(fields.into_iter().map(|(_, f)| f).collect()),
        );
        Ok(Some(Value::Object(out)))
    }

    /// A cached record (as the caller stored it with [`RedisReadModels::cache_record`]),
    /// unless the record changed since: a cached version older than the latest projected
    /// version is never returned.
    ///
    /// # Errors
    /// As [`RedisReadModels::role`].
    pub async fn cached_record(&self, record_id: &str) -> Result<Option<Value>> {
        let ttl = RECORD_CACHE_TTL_SECONDS.to_string();
        let v = self.read(&["record", record_id, &ttl]).await?;
        Ok(as_string(&v).and_then(|s| serde_json::from_str(&s).ok()))
    }

    /// Caches a record read from SQL at `version`; ignored when the projection has already
    /// seen a newer version. Returns whether it was stored.
    ///
    /// # Errors
    /// As [`RedisReadModels::role`].
    pub async fn cache_record(
        &self,
        record_id: &str,
        version: u64,
        record: &Value,
    ) -> Result<bool> {
        let ttl = RECORD_CACHE_TTL_SECONDS.to_string();
        let v = self
            .read(&[
                "fill",
                record_id,
                &version.to_string(),
                &record.to_string(),
                &ttl,
            ])
            .await?;
        Ok(v == redis::Value::Int(1))
    }

    /// The position token the published generation has reached.
    ///
    /// # Errors
    /// As [`RedisReadModels::role`].
    pub async fn checkpoint(&self) -> Result<Option<String>> {
        let v = self.read(&["checkpoint"]).await?;
        Ok(as_string(&v))
    }
}

fn as_string(v: &redis::Value) -> Option<String> {
    match v {
        redis::Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        redis::Value::SimpleString(s) => Some(s.clone()),
        redis::Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}
