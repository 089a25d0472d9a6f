//! Parameters of record listing, from Airtable's query-string syntax (`fields[]=A`,
//! `sort[0][field]=B&sort[0][direction]=desc`) or from the JSON body of `POST .../listRecords`,
//! and the opaque `offset` token that carries a listing from page to page.

use serde::Deserialize;
use serde_json::Value;

use super::error::{RestError, RestResult};

/// Largest (and default) page.
pub const MAX_PAGE_SIZE: usize = 100;

/// One sort key as the request gives it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SortParam {
    /// Field name or id.
    pub field: String,
    /// `asc` (default) or `desc`.
    #[serde(default)]
    pub direction: Option<String>,
}

/// How cells are rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CellFormat {
    /// Typed JSON values (default).
    #[default]
    Json,
    /// Display strings, in a time zone and locale.
    String,
}

/// Every option of a record listing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListParams {
    /// Records per page (1..=100).
    pub page_size: Option<usize>,
    /// Most records over all pages.
    pub max_records: Option<usize>,
    /// Where the previous page stopped.
    pub offset: Option<String>,
    /// Only these fields (names or ids).
    pub fields: Option<Vec<String>>,
    /// A formula records must satisfy.
    pub filter_by_formula: Option<String>,
    /// Sort keys, most significant first.
    pub sort: Vec<SortParam>,
    /// A view (name or id) whose filter and sorts apply.
    pub view: Option<String>,
    /// How cells are rendered.
    pub cell_format: CellFormat,
    /// IANA zone for `cellFormat=string` and `TODAY()`.
    pub time_zone: Option<String>,
    /// Locale for `cellFormat=string`.
    pub user_locale: Option<String>,
    /// Key cells by field id instead of name.
    pub return_fields_by_field_id: bool,
}

/// Decodes `application/x-www-form-urlencoded` text: `+` is a space, `%XX` a byte.
#[must_use]
pub fn url_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The decoded `key=value` pairs of a query string, in order.
#[must_use]
pub fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (url_decode(k), url_decode(v))
        })
        .collect()
}

fn parse_count(name: &str, raw: &str) -> RestResult<usize> {
    raw.trim().parse::<usize>().map_err(|_| {
        RestError::invalid_request(format!(
            "{name} must be a non-negative integer, got {raw:?}"
        ))
    })
}

fn parse_bool(name: &str, raw: &str) -> RestResult<bool> {
    match raw.trim() {
        "true" | "1" => Ok(true),
        "false" | "0" | "" => Ok(false),
        other => Err(RestError::invalid_request(format!(
            "{name} must be true or false, got {other:?}"
        ))),
    }
}

fn parse_cell_format(raw: &str) -> RestResult<CellFormat> {
    match raw {
        "json" => Ok(CellFormat::Json),
        "string" => Ok(CellFormat::String),
        other => Err(RestError::invalid_request(format!(
            "cellFormat must be json or string, got {other:?}"
        ))),
    }
}

/// `sort[3][field]` → `(3, "field")`.
fn sort_key(key: &str) -> Option<(usize, &str)> {
    let rest = key.strip_prefix("sort[")?;
    let (index, rest) = rest.split_once(']')?;
    let part = rest.strip_prefix('[')?.strip_suffix(']')?;
    Some((index.parse().ok()?, part))
}

impl ListParams {
    /// Reads the options from query-string pairs. Unknown parameters are ignored, as Airtable
    /// ignores them.
    ///
    /// # Errors
    /// 422 `INVALID_REQUEST_UNKNOWN` for malformed values.
    pub fn from_query(pairs: &[(String, String)]) -> RestResult<Self> {
        let mut p = Self::default();
        let mut sorts: std::collections::BTreeMap<usize, (Option<String>, Option<String>)> =
            std::collections::BTreeMap::new();
        for (key, value) in pairs {
            match key.as_str() {
                "pageSize" => p.page_size = Some(parse_count("pageSize", value)?),
                "maxRecords" => p.max_records = Some(parse_count("maxRecords", value)?),
                "offset" => p.offset = Some(value.clone()),
                "fields[]" | "fields" => p.fields.get_or_insert_with(Vec::new).push(value.clone()),
                "filterByFormula" => p.filter_by_formula = Some(value.clone()),
                "view" => p.view = Some(value.clone()),
                "cellFormat" => p.cell_format = parse_cell_format(value)?,
                "timeZone" => p.time_zone = Some(value.clone()),
                "userLocale" => p.user_locale = Some(value.clone()),
                "returnFieldsByFieldId" => {
                    p.return_fields_by_field_id = parse_bool("returnFieldsByFieldId", value)?;
                }
                other => {
                    if let Some((index, part)) = sort_key(other) {
                        if index >= 100 {
                            return Err(RestError::invalid_request("too many sort keys"));
                        }
                        let entry = sorts.entry(index).or_default();
                        match part {
                            "field" => entry.0 = Some(value.clone()),
                            "direction" => entry.1 = Some(value.clone()),
                            _ => {
                                return Err(RestError::invalid_request(format!(
                                    "unknown sort parameter {other:?}"
                                )));
                            }
                        }
                    }
                }
            }
        }
        for (index, (field, direction)) in sorts {
            let field = field
                .ok_or_else(|| RestError::invalid_request(format!("sort[{index}] has no field")))?;
            p.sort.push(SortParam { field, direction });
        }
        Ok(p)
    }

    /// Reads the options from the JSON body of `POST .../listRecords`.
    ///
    /// # Errors
    /// 422 `INVALID_REQUEST_UNKNOWN` for a body that is not an object or has mistyped options.
    pub fn from_body(body: &Value) -> RestResult<Self> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Body {
            page_size: Option<usize>,
            max_records: Option<usize>,
            offset: Option<String>,
            fields: Option<Vec<String>>,
            filter_by_formula: Option<String>,
            #[serde(default)]
            sort: Vec<SortParam>,
            view: Option<String>,
            cell_format: Option<String>,
            time_zone: Option<String>,
            user_locale: Option<String>,
            #[serde(default)]
            return_fields_by_field_id: bool,
        }
        let body: Body = serde_json::from_value(body.clone())
            .map_err(|e| RestError::invalid_request(format!("Invalid request body: {e}")))?;
        Ok(Self {
            page_size: body.page_size,
            max_records: body.max_records,
            offset: body.offset,
            fields: body.fields,
            filter_by_formula: body.filter_by_formula,
            sort: body.sort,
            view: body.view,
            cell_format: body
                .cell_format
                .as_deref()
                .map(parse_cell_format)
                .transpose()?
                .unwrap_or_default(),
            time_zone: body.time_zone,
            user_locale: body.user_locale,
            return_fields_by_field_id: body.return_fields_by_field_id,
        })
    }

    /// The page size asked for, checked against Airtable's bounds.
    ///
    /// # Errors
    /// 422 for 0 or more than 100.
    pub fn page_size(&self) -> RestResult<usize> {
        match self.page_size {
            None => Ok(MAX_PAGE_SIZE),
            Some(n) if (1..=MAX_PAGE_SIZE).contains(&n) => Ok(n),
            Some(n) => Err(RestError::invalid_request(format!(
                "pageSize must be between 1 and {MAX_PAGE_SIZE}, got {n}"
            ))),
        }
    }
}

/// Where a listing stopped: after a record in creation order (`Keyset`), after a record in a
/// sort order pushed down to SQL (`Sorted`), or after `n` records of a result ordered in memory
/// (`Index`); [`Offset::returned`] counts records sent so far, for `maxRecords`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cursor {
    /// After the record created at `created_us` (microseconds since the epoch) with `id`.
    Keyset {
        /// Creation time of the last record sent.
        created_us: i64,
        /// Its id (ties in creation time are ordered by id).
        id: String,
    },
    /// After the first `skip` records of the ordered result.
    Index {
        /// Records already sent.
        skip: usize,
    },
    /// After the record with these sort keys (group and value text of each, as SQL printed
    /// them), creation time and id.
    Sorted {
        /// `(group, value)` per sort key.
        keys: Vec<(i32, String)>,
        /// Creation time of the last record sent, in microseconds since the epoch.
        created_us: i64,
        /// Its id.
        id: String,
    },
}

/// An offset token: the query it belongs to, the cursor, and how many records were sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offset {
    /// Fingerprint of the listing's query (table, filter, sorts, view).
    pub query: u64,
    /// Where to go on.
    pub cursor: Cursor,
    /// Records sent over the previous pages.
    pub returned: usize,
}

/// 64-bit FNV-1a: a stable fingerprint (the same in every process and release).
#[must_use]
pub fn fingerprint(parts: &[&str]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in part.bytes().chain(std::iter::once(0xff)) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    hash
}

impl Offset {
    /// The token: `itr<query hex>/<returned>/k<micros>.<recId>`, `…/i<skip>`, or
    /// `…/s<hex of a JSON [micros, recId, [[group, value], …]]>` (hex keeps any key text
    /// URL-safe).
    #[must_use]
    pub fn encode(&self) -> String {
        let cursor = match &self.cursor {
            Cursor::Keyset { created_us, id } => format!("k{created_us}.{id}"),
            Cursor::Index { skip } => format!("i{skip}"),
            Cursor::Sorted {
                keys,
                created_us,
                id,
            } => {
                let json = serde_json::json!([created_us, id, keys]).to_string();
                let mut hex = String::with_capacity(1 + json.len() * 2);
                hex.push('s');
                for byte in json.bytes() {
                    hex.push_str(&format!("{byte:02x}"));
                }
                hex
            }
        };
        format!("itr{:016x}/{}/{cursor}", self.query, self.returned)
    }

    /// Reads a token back and checks it belongs to the query at hand.
    ///
    /// # Errors
    /// 422 `INVALID_OFFSET_VALUE` for anything that is not a token of this query.
    pub fn decode(token: &str, query: u64) -> RestResult<Self> {
        let invalid = || {
            RestError::unprocessable(
                "INVALID_OFFSET_VALUE",
                format!("The value of offset {token:?} is invalid"),
            )
        };
        let rest = token.strip_prefix("itr").ok_or_else(invalid)?;
        let mut parts = rest.splitn(3, '/');
        let (Some(q), Some(returned), Some(cursor)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid());
        };
        let q = u64::from_str_radix(q, 16).map_err(|_| invalid())?;
        if q != query {
            return Err(invalid());
        }
        let returned = returned.parse::<usize>().map_err(|_| invalid())?;
        let cursor = if let Some(k) = cursor.strip_prefix('k') {
            let (micros, id) = k.split_once('.').ok_or_else(invalid)?;
            let created_us = micros.parse::<i64>().map_err(|_| invalid())?;
            if pyairtable_domain::ids::RecordId::parse(id).is_err() {
                return Err(invalid());
            }
            Cursor::Keyset {
                created_us,
                id: id.to_owned(),
            }
        } else if let Some(i) = cursor.strip_prefix('i') {
            Cursor::Index {
                skip: i.parse().map_err(|_| invalid())?,
            }
        } else if let Some(hex) = cursor.strip_prefix('s') {
            let bytes = decode_hex(hex).ok_or_else(invalid)?;
            let (created_us, id, keys): (i64, String, Vec<(i32, String)>) =
                serde_json::from_slice(&bytes).map_err(|_| invalid())?;
            if pyairtable_domain::ids::RecordId::parse(&id).is_err() {
                return Err(invalid());
            }
            Cursor::Sorted {
                keys,
                created_us,
                id,
            }
        } else {
            return Err(invalid());
        };
        Ok(Self {
            query,
            cursor,
            returned,
        })
    }
}

/// Bytes of lowercase or uppercase hex text; `None` for anything else.
fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    hex.as_bytes()
        .chunks(2)
        .map(|pair| {
            let digit = |b: u8| (b as char).to_digit(16);
            u8::try_from(digit(pair[0])? * 16 + digit(pair[1])?).ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn airtable_query_syntax_is_read() {
        let pairs = query_pairs(Some(
            "fields%5B%5D=Name&fields[]=Age&sort%5B0%5D%5Bfield%5D=Age&sort[0][direction]=desc&sort[1][field]=Name&filterByFormula=%7BName%7D%3D%27a+b%27&pageSize=5&returnFieldsByFieldId=true",
        ));
        let p = ListParams::from_query(&pairs).unwrap();
        assert_eq!(p.fields, Some(vec!["Name".to_owned(), "Age".to_owned()]));
        assert_eq!(p.sort.len(), 2);
        assert_eq!(p.sort[0].field, "Age");
        assert_eq!(p.sort[0].direction.as_deref(), Some("desc"));
        assert_eq!(p.sort[1].direction, None);
        assert_eq!(p.filter_by_formula.as_deref(), Some("{Name}='a b'"));
        assert_eq!(p.page_size().unwrap(), 5);
        assert!(p.return_fields_by_field_id);
    }

    #[test]
    fn bad_values_are_rejected() {
        let pairs = query_pairs(Some("pageSize=101"));
        assert!(ListParams::from_query(&pairs).unwrap().page_size().is_err());
        assert!(ListParams::from_query(&query_pairs(Some("maxRecords=x"))).is_err());
        assert!(ListParams::from_query(&query_pairs(Some("cellFormat=xml"))).is_err());
        assert_eq!(url_decode("%"), "%");
        assert_eq!(url_decode("a%2"), "a%2");
        assert_eq!(url_decode("%e2%82%ac"), "€");
    }

    #[test]
    fn offsets_round_trip_and_belong_to_their_query() {
        let o = Offset {
            query: fingerprint(&["tbl", "f"]),
            cursor: Cursor::Keyset {
                created_us: 1_700_000_000_000_000,
                id: "rec0123456789abcd".to_owned(),
            },
            returned: 100,
        };
        let token = o.encode();
        assert_eq!(Offset::decode(&token, o.query).unwrap(), o);
        assert!(Offset::decode(&token, o.query ^ 1).is_err());
        assert!(Offset::decode("garbage", o.query).is_err());
        let i = Offset {
            query: 7,
            cursor: Cursor::Index { skip: 3 },
            returned: 3,
        };
        assert_eq!(Offset::decode(&i.encode(), 7).unwrap(), i);
        let sorted = Offset {
            query: 9,
            cursor: Cursor::Sorted {
                keys: vec![(2, "a/b é\"".to_owned()), (1, "0".to_owned())],
                created_us: -5,
                id: "rec0123456789abcd".to_owned(),
            },
            returned: 200,
        };
        let token = sorted.encode();
        assert!(
            token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'/')
        );
        assert_eq!(Offset::decode(&token, 9).unwrap(), sorted);
        assert!(Offset::decode(&format!("{token}0"), 9).is_err());
        assert!(Offset::decode("itr0000000000000009/1/szz", 9).is_err());
    }
}
