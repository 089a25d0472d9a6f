//! Every name the query side owns in the shared services, derived from the deployment's
//! [`Namespace`] so parallel deployments and tests never meet (ADR 0003).

use pyairtable_eventstore::Namespace;

/// Names of the JetStream stream, subjects, consumers, read-model schema and Redis keys of one
/// namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    ns: String,
}

impl Names {
    /// Names for a namespace.
    #[must_use]
    pub fn new(namespace: &Namespace) -> Self {
        Self {
            ns: namespace.as_str().to_owned(),
        }
    }

    /// The namespace.
    #[must_use]
    pub fn namespace(&self) -> &str {
        &self.ns
    }

    /// The JetStream stream holding every event: `<NS>_EVENTS`.
    #[must_use]
    pub fn stream(&self) -> String {
        format!("{}_EVENTS", self.ns.to_ascii_uppercase())
    }

    /// The subject filter matching every event of the namespace: `<ns>.events.>`.
    #[must_use]
    pub fn all_subjects(&self) -> String {
        format!("{}.events.>", self.ns)
    }

    /// The subject of one event:
    /// `<ns>.events.<aggregate kind>.<workspace id or _>.<encoded stream id>`.
    #[must_use]
    pub fn subject(&self, stream_id: &str, workspace_id: Option<&str>) -> String {
        let kind = match aggregate_kind(stream_id) {
            "_" => "_".to_owned(),
            kind => encode_token(kind),
        };
        let workspace = workspace_id
            .filter(|w| !w.is_empty())
            .map_or_else(|| "_".to_owned(), encode_token);
        format!(
            "{}.events.{}.{}.{}",
            self.ns,
            kind,
            workspace,
            encode_token(stream_id)
        )
    }

    /// The durable consumer of a projection: `<ns>_<projection>`.
    #[must_use]
    pub fn consumer(&self, projection: &str) -> String {
        format!("{}_{}", self.ns, projection)
    }

    /// The core NATS subject a projection's rebuild reports its progress on, wherever it runs:
    /// `<ns>.progress.<projection>` (outside the events stream's subjects, so not stored).
    #[must_use]
    pub fn progress_subject(&self, projection: &str) -> String {
        format!("{}.progress.{}", self.ns, encode_token(projection))
    }

    /// The Postgres schema of the SQL read models: `<ns>_rm`.
    #[must_use]
    pub fn rm_schema(&self) -> String {
        format!("{}_rm", self.ns)
    }

    /// A read-model table of one generation, quoted and schema-qualified:
    /// `"<ns>_rm"."<table>_g<generation>"`. Safe to splice into SQL: every part is validated
    /// (namespace pattern) or a constant of this crate.
    #[must_use]
    pub fn rm_table(&self, table: &str, generation: i32) -> String {
        format!("\"{}_rm\".\"{}_g{}\"", self.ns, table, generation)
    }

    /// The plain-named view queries read: `"<ns>_rm"."<table>"`.
    #[must_use]
    pub fn rm_view(&self, table: &str) -> String {
        format!("\"{}_rm\".\"{}\"", self.ns, table)
    }

    /// The prefix of every Redis key of the namespace: `<ns>:`.
    #[must_use]
    pub fn redis_prefix(&self) -> String {
        format!("{}:", self.ns)
    }

    /// The Redis key naming the generation of a Redis projection queries read.
    #[must_use]
    pub fn redis_pointer(&self, projection: &str) -> String {
        format!("{}:rm:{}:gen", self.ns, projection)
    }

    /// The prefix of one generation of a Redis projection: `<ns>:rm:<projection>:g<n>:`.
    #[must_use]
    pub fn redis_generation(&self, projection: &str, generation: i64) -> String {
        format!("{}:rm:{}:g{}:", self.ns, projection, generation)
    }

    /// The advisory-lock key text of a relay (hashed by Postgres into a lock id).
    #[must_use]
    pub fn relay_lock(&self, relay: &str) -> String {
        format!("pyairtable:{}:relay:{}", self.ns, relay)
    }
}

/// The aggregate kind of a stream: the part of its id before the first `-` (`rec` for
/// `rec-recXXXXXXXXXXXXXX`), or `_` when there is none.
#[must_use]
pub fn aggregate_kind(stream_id: &str) -> &str {
    match stream_id.split_once('-') {
        Some((kind, _)) if !kind.is_empty() => kind,
        _ => "_",
    }
}

/// The id part of a stream id (after the first `-`), or the whole id.
#[must_use]
pub fn aggregate_id(stream_id: &str) -> &str {
    stream_id.split_once('-').map_or(stream_id, |(_, id)| id)
}

/// Encodes text as one NATS subject token: letters, digits, `-` and `:` pass; every other byte
/// (the `.` separator, the `*`/`>` wildcards, whitespace, and the escape `_` itself) becomes
/// `_XX` in upper-case hex. Reversible with [`decode_token`], and never empty.
#[must_use]
pub fn encode_token(text: &str) -> String {
    if text.is_empty() {
        return "_".to_owned();
    }
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b':' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("_{b:02X}"));
        }
    }
    out
}

/// Decodes a token made by [`encode_token`]; `None` for anything it cannot have made.
#[must_use]
pub fn decode_token(token: &str) -> Option<String> {
    if token == "_" {
        return Some(String::new());
    }
    let bytes = token.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'_' {
            let hex = token.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Names {
        Names::new(&Namespace::parse("t_abc").expect("valid namespace"))
    }

    #[test]
    fn subjects_are_safe_and_reversible() {
        let n = names();
        let s = n.subject("rec-recA.b_c*>d", Some("wsp1"));
        assert_eq!(s, "t_abc.events.rec.wsp1.rec-recA_2Eb_5Fc_2A_3Ed");
        assert_eq!(s.split('.').count(), 5);
        let last = s.rsplit('.').next().unwrap_or_default();
        assert_eq!(decode_token(last).as_deref(), Some("rec-recA.b_c*>d"));
        assert_eq!(n.subject("global", None), "t_abc.events._._.global");
    }

    #[test]
    fn kinds_and_stream_names() {
        assert_eq!(aggregate_kind("rec-recX"), "rec");
        assert_eq!(aggregate_kind("-x"), "_");
        assert_eq!(aggregate_id("base-app1"), "app1");
        let n = names();
        assert_eq!(n.stream(), "T_ABC_EVENTS");
        assert_eq!(n.consumer("records"), "t_abc_records");
        assert_eq!(n.rm_table("records", 3), "\"t_abc_rm\".\"records_g3\"");
    }

    #[test]
    fn decode_rejects_what_encode_cannot_make() {
        assert_eq!(decode_token("_G1"), None);
        assert_eq!(decode_token("ab_2"), None);
    }
}
