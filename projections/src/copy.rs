//! Rows in PostgreSQL's `COPY ... FROM STDIN` text format, for bulk writes.
//!
//! `COPY` skips the per-statement work of `INSERT` (parse, plan, one parameter array per column)
//! and streams rows straight into the table, which is what a rebuild writing a million
//! revisions wants. In the text format a row is its columns separated by tabs and ended by a
//! newline; `\N` is NULL; a backslash, tab, newline or carriage return inside a value is written
//! as a backslash escape. Every other byte, UTF-8 included, passes through.

use std::io::Write;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

/// A buffer of rows in `COPY` text format.
#[derive(Default)]
pub(crate) struct CopyRows {
    buf: Vec<u8>,
    /// Whether the current row has a column yet (the next one is preceded by a tab).
    open: bool,
    rows: usize,
}

impl CopyRows {
    /// The encoded rows.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.buf
    }

    /// How many rows were ended.
    pub(crate) fn rows(&self) -> usize {
        self.rows
    }

    fn column(&mut self) {
        if self.open {
            self.buf.push(b'\t');
        }
        self.open = true;
    }

    /// A text value, escaped.
    pub(crate) fn text(&mut self, value: &str) {
        self.column();
        escape_into(&mut self.buf, value.as_bytes());
    }

    /// A text value or NULL.
    pub(crate) fn opt_text(&mut self, value: Option<&str>) {
        match value {
            Some(v) => self.text(v),
            None => self.null(),
        }
    }

    /// NULL.
    pub(crate) fn null(&mut self) {
        self.column();
        self.buf.extend_from_slice(b"\\N");
    }

    /// A value whose text never needs escaping (numbers, booleans, UUIDs).
    pub(crate) fn plain(&mut self, value: impl std::fmt::Display) {
        self.column();
        // Writing into a Vec cannot fail.
        let _ = write!(self.buf, "{value}");
    }

    /// A `timestamptz`, to the microsecond PostgreSQL keeps.
    pub(crate) fn time(&mut self, value: &DateTime<Utc>) {
        self.column();
        self.buf.extend_from_slice(
            value
                .to_rfc3339_opts(SecondsFormat::Micros, true)
                .as_bytes(),
        );
    }

    /// A `json`/`jsonb` value, serialised straight into the buffer, then escaped.
    pub(crate) fn json(&mut self, value: &impl Serialize) {
        self.column();
        let start = self.buf.len();
        // Serialising a JSON value into memory cannot fail.
        let _ = serde_json::to_writer(&mut self.buf, value);
        // serde_json writes no whitespace and escapes every control character inside strings,
        // so of the bytes `COPY` escapes only the backslashes of those escapes can occur. Most
        // documents have none; one scan for them is cheaper than escaping piece by piece.
        if self.buf[start..].contains(&b'\\') {
            let written = self.buf.split_off(start);
            escape_into(&mut self.buf, &written);
        }
    }

    /// A JSON value or NULL.
    pub(crate) fn opt_json(&mut self, value: Option<&impl Serialize>) {
        match value {
            Some(v) => self.json(v),
            None => self.null(),
        }
    }

    /// Ends the row.
    pub(crate) fn end_row(&mut self) {
        self.buf.push(b'\n');
        self.open = false;
        self.rows += 1;
    }
}

fn escape_into(out: &mut Vec<u8>, bytes: &[u8]) {
    let mut start = 0;
    for (i, b) in bytes.iter().enumerate() {
        let escaped: &[u8] = match b {
            b'\\' => b"\\\\",
            b'\t' => b"\\t",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(escaped);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

#[cfg(test)]
mod tests {
    use super::CopyRows;
    use chrono::{TimeZone, Utc};
    use serde_json::json;

    #[test]
    fn rows_escape_text_and_json_and_mark_nulls() {
        let mut rows = CopyRows::default();
        rows.text("a\tb\\c\nd\re é");
        rows.opt_text(None);
        rows.plain(42);
        rows.json(&json!({"k": "line\nbreak \"q\" \\"}));
        rows.json(&json!({"plain": [1, "two"]}));
        rows.json(&json!({"ctl": "\t\r\u{1}"}));
        rows.time(&Utc.timestamp_micros(1_700_000_000_123_456).unwrap());
        rows.end_row();
        rows.plain(true);
        rows.end_row();
        assert_eq!(rows.rows(), 2);
        assert_eq!(
            std::str::from_utf8(rows.bytes()).unwrap(),
            "a\\tb\\\\c\\nd\\re é\t\\N\t42\t{\"k\":\"line\\\\nbreak \\\\\"q\\\\\" \\\\\\\\\"}\t{\"plain\":[1,\"two\"]}\t{\"ctl\":\"\\\\t\\\\r\\\\u0001\"}\t2023-11-14T22:13:20.123456Z\ntrue\n"
        );
    }
}
