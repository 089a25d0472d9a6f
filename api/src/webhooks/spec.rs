//! A webhook's `specification`: which changes it reports (`options.filters`) and what each
//! payload carries (`options.includes`), parsed and checked against the base's schema.

use pyairtable_domain::base::Base;
use pyairtable_domain::ids::{FieldId, TableId};
use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What kind of data a webhook watches (`filters.dataTypes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum DataType {
    /// Record creations, cell changes and deletions.
    TableData,
    /// Field creations, changes and deletions.
    TableFields,
    /// Table creations, renames, description changes and deletions.
    TableMetadata,
}

/// What happened to an object (`filters.changeTypes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ChangeType {
    /// Created.
    Add,
    /// Deleted.
    Remove,
    /// Changed.
    Update,
}

/// Where a change came from (`filters.fromSources`, `actionMetadata.source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Source {
    /// A signed-in user of the web app (a session token).
    Client,
    /// The REST API through an API token.
    PublicApi,
    /// A form submission.
    FormSubmission,
    /// A form page submission.
    FormPageSubmission,
    /// An automation run.
    Automation,
    /// The platform itself.
    System,
    /// A sync.
    Sync,
    /// An anonymous user.
    AnonymousUser,
    /// Anything else.
    Unknown,
}

impl Source {
    /// Airtable's name of the source.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Client => "client",
            Self::PublicApi => "publicApi",
            Self::FormSubmission => "formSubmission",
            Self::FormPageSubmission => "formPageSubmission",
            Self::Automation => "automation",
            Self::System => "system",
            Self::Sync => "sync",
            Self::AnonymousUser => "anonymousUser",
            Self::Unknown => "unknown",
        }
    }
}

/// Which cell values a payload carries beside the changed ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CellValuesIn {
    /// Every field (`"all"`).
    All,
    /// These fields.
    Fields(Vec<String>),
}

impl CellValuesIn {
    /// Whether values of `field` are wanted.
    #[must_use]
    pub fn wants(&self, field: &str) -> bool {
        match self {
            Self::All => true,
            Self::Fields(ids) => ids.iter().any(|f| f == field),
        }
    }
}

impl<'de> Deserialize<'de> for CellValuesIn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::String(s) if s == "all" => Ok(Self::All),
            Value::Array(items) => items
                .into_iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s),
                    _ => Err(de::Error::custom("field ids must be strings")),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Self::Fields),
            _ => Err(de::Error::custom(
                "includeCellValuesInFieldIds must be \"all\" or a list of field ids",
            )),
        }
    }
}

/// Deserialises `null` as the type's default (clients send `null` for unset lists).
fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// `specification.options.filters`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Filters {
    /// The kinds of data watched; at least one.
    pub data_types: Vec<DataType>,
    /// Only changes in this table (`tbl…`).
    #[serde(default)]
    pub record_change_scope: Option<String>,
    /// Only these kinds of change (empty: all).
    #[serde(default, deserialize_with = "null_default")]
    pub change_types: Vec<ChangeType>,
    /// Only changes from these sources (empty: all).
    #[serde(default, deserialize_with = "null_default")]
    pub from_sources: Vec<Source>,
    /// Only record changes touching these fields (empty: all).
    #[serde(default, deserialize_with = "null_default")]
    pub watch_data_in_field_ids: Vec<String>,
    /// Only field changes of these fields (empty: all).
    #[serde(default, deserialize_with = "null_default")]
    pub watch_schemas_of_field_ids: Vec<String>,
    /// Form options; accepted for compatibility, forms do not exist here.
    #[serde(default)]
    pub source_options: Option<Value>,
}

/// `specification.options.includes`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Includes {
    /// Values of these unchanged fields are included with each changed record.
    #[serde(default)]
    pub include_cell_values_in_field_ids: Option<CellValuesIn>,
    /// Include each changed cell's previous value.
    #[serde(default, deserialize_with = "null_default")]
    pub include_previous_cell_values: bool,
    /// Include each changed field's previous name and type.
    #[serde(default, deserialize_with = "null_default")]
    pub include_previous_field_definitions: bool,
}

/// `specification.options`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Options {
    /// What is reported.
    pub filters: Filters,
    /// What payloads carry.
    #[serde(default, deserialize_with = "null_default")]
    pub includes: Includes,
}

/// A webhook specification.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Specification {
    /// Filters and includes.
    pub options: Options,
}

impl Specification {
    /// Parses a specification and checks it against `base`: at least one data type, a
    /// `recordChangeScope` naming one of its tables, and watched fields that exist (in the
    /// scoped table when there is one).
    ///
    /// # Errors
    /// A message fit for a 422 answer.
    pub fn parse(value: &Value, base: &Base) -> Result<Self, String> {
        let spec: Self = serde_json::from_value(value.clone())
            .map_err(|e| format!("Invalid webhook specification: {e}"))?;
        let filters = &spec.options.filters;
        if filters.data_types.is_empty() {
            return Err(
                "Invalid webhook specification: filters.dataTypes must name at least one of \
                 tableData, tableFields, tableMetadata"
                    .to_owned(),
            );
        }
        let scope = match &filters.record_change_scope {
            Some(scope) => {
                let table = TableId::parse(scope)
                    .ok()
                    .and_then(|id| base.tables.iter().find(|t| t.id == id))
                    .ok_or_else(|| {
                        format!(
                            "Invalid webhook specification: recordChangeScope {scope} is not a \
                             table of this base"
                        )
                    })?;
                Some(table)
            }
            None => None,
        };
        let field_exists = |id: &str| {
            FieldId::parse(id).is_ok_and(|fid| {
                let mut tables = base
                    .tables
                    .iter()
                    .filter(|t| scope.is_none_or(|s| s.id == t.id));
                tables.any(|t| t.fields.iter().any(|f| f.id == fid))
            })
        };
        let includes = spec
            .options
            .includes
            .include_cell_values_in_field_ids
            .as_ref();
        let mut watched: Vec<&String> = filters
            .watch_data_in_field_ids
            .iter()
            .chain(&filters.watch_schemas_of_field_ids)
            .collect();
        if let Some(CellValuesIn::Fields(ids)) = includes {
            watched.extend(ids);
        }
        if let Some(unknown) = watched.into_iter().find(|id| !field_exists(id)) {
            return Err(format!(
                "Invalid webhook specification: field {unknown} does not exist in the watched \
                 table(s)"
            ));
        }
        Ok(spec)
    }

    /// Whether changes of `kind` from `source` are reported at all.
    #[must_use]
    pub fn wants(&self, data: DataType, change: ChangeType, source: Source) -> bool {
        let f = &self.options.filters;
        f.data_types.contains(&data)
            && (f.change_types.is_empty() || f.change_types.contains(&change))
            && (f.from_sources.is_empty() || f.from_sources.contains(&source))
    }

    /// Whether a change in table `table` is in the webhook's scope.
    #[must_use]
    pub fn in_scope(&self, table: &str) -> bool {
        self.options
            .filters
            .record_change_scope
            .as_deref()
            .is_none_or(|s| s == table)
    }

    /// Whether the webhook has a table scope (table creations are then not reported).
    #[must_use]
    pub fn is_scoped(&self) -> bool {
        self.options.filters.record_change_scope.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base() -> Base {
        serde_json::from_value(json!({
            "id": "appAAAAAAAAAAAAAA",
            "workspace_id": "wspAAAAAAAAAAAAAA",
            "name": "B",
            "deleted": false,
            "tables": [{
                "id": "tblAAAAAAAAAAAAAA",
                "name": "T",
                "primaryFieldId": "fldAAAAAAAAAAAAAA",
                "fields": [{"id": "fldAAAAAAAAAAAAAA", "name": "Name", "type": "singleLineText"}],
                "views": []
            }]
        }))
        .expect("base fixture")
    }

    #[test]
    fn parses_airtable_specifications_and_nulls() {
        let spec = Specification::parse(
            &json!({"options": {
                "filters": {"dataTypes": ["tableData"], "recordChangeScope": "tblAAAAAAAAAAAAAA",
                            "changeTypes": null, "fromSources": ["publicApi"]},
                "includes": {"includeCellValuesInFieldIds": "all", "includePreviousCellValues": true}
            }}),
            &base(),
        )
        .expect("valid");
        assert!(spec.wants(DataType::TableData, ChangeType::Update, Source::PublicApi));
        assert!(!spec.wants(DataType::TableData, ChangeType::Update, Source::Client));
        assert!(!spec.wants(DataType::TableFields, ChangeType::Add, Source::PublicApi));
        assert!(spec.in_scope("tblAAAAAAAAAAAAAA"));
        assert!(!spec.in_scope("tblBBBBBBBBBBBBBB"));
        assert_eq!(
            spec.options.includes.include_cell_values_in_field_ids,
            Some(CellValuesIn::All)
        );
    }

    #[test]
    fn rejects_bad_specifications() {
        let b = base();
        let bad = [
            json!({}),
            json!({"options": {"filters": {"dataTypes": []}}}),
            json!({"options": {"filters": {"dataTypes": ["records"]}}}),
            json!({"options": {"filters": {"dataTypes": ["tableData"], "recordChangeScope": "tblBBBBBBBBBBBBBB"}}}),
            json!({"options": {"filters": {"dataTypes": ["tableData"], "watchDataInFieldIds": ["fldBBBBBBBBBBBBBB"]}}}),
            json!({"options": {"filters": {"dataTypes": ["tableData"]}, "includes": {"includeCellValuesInFieldIds": 3}}}),
        ];
        for value in bad {
            assert!(Specification::parse(&value, &b).is_err(), "{value}");
        }
    }
}
