//! Workspace roles and API token scopes, named exactly as Airtable names them so that clients and
//! people moving over from Airtable meet the same words.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A member's role in a workspace, in Airtable's terms.
///
/// The variants are declared from least to most powerful, so `Ord` compares power:
/// `Role::ReadOnly < Role::Commenter < Role::Editor < Role::Creator < Role::Owner`.
#[derive(
    Copy,
    Clone,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum Role {
    /// Sees the workspace's bases, nothing more (`read`).
    #[serde(rename = "read")]
    ReadOnly,
    /// Reads and comments on records (`commenter`).
    Commenter,
    /// Creates, edits and deletes records, and manages views; never changes tables or fields
    /// (`editor`).
    Editor,
    /// Everything an owner can do except granting or taking away ownership and archiving the
    /// workspace (`creator`).
    Creator,
    /// Everything (`owner`). A workspace always has at least one.
    Owner,
}

impl Role {
    /// Every role, from most to least powerful (the column order of the permission matrix).
    pub const ALL: [Role; 5] = [
        Role::Owner,
        Role::Creator,
        Role::Editor,
        Role::Commenter,
        Role::ReadOnly,
    ];

    /// The wire name (`owner`, `creator`, `editor`, `commenter`, `read`).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Creator => "creator",
            Role::Editor => "editor",
            Role::Commenter => "commenter",
            Role::ReadOnly => "read",
        }
    }

    /// Parses a wire name.
    ///
    /// # Errors
    /// [`InvalidRole`] carrying the rejected input.
    pub fn parse(s: &str) -> Result<Self, InvalidRole> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| InvalidRole {
                value: s.chars().take(64).collect(),
            })
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = InvalidRole;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Why a string is not a role.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {value:?}: expected one of owner, creator, editor, commenter, read")]
pub struct InvalidRole {
    /// The rejected input (truncated to 64 characters).
    pub value: String,
}

/// What an API token may be used for, with Airtable's scope names so that tokens created for
/// Airtable clients keep their meaning.
#[derive(
    Copy,
    Clone,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
pub enum Scope {
    /// Read records (`data.records:read`).
    #[serde(rename = "data.records:read")]
    RecordsRead,
    /// Create, update, delete, restore and revert records (`data.records:write`).
    #[serde(rename = "data.records:write")]
    RecordsWrite,
    /// Read record comments (`data.recordComments:read`).
    #[serde(rename = "data.recordComments:read")]
    RecordCommentsRead,
    /// Add, edit and delete record comments (`data.recordComments:write`).
    #[serde(rename = "data.recordComments:write")]
    RecordCommentsWrite,
    /// Read bases, tables, fields and views (`schema.bases:read`).
    #[serde(rename = "schema.bases:read")]
    SchemaRead,
    /// Change bases, tables, fields and views (`schema.bases:write`).
    #[serde(rename = "schema.bases:write")]
    SchemaWrite,
    /// Create, refresh and delete webhooks (`webhook:manage`).
    #[serde(rename = "webhook:manage")]
    WebhookManage,
    /// See the token owner's email address (`user.email:read`).
    #[serde(rename = "user.email:read")]
    UserEmailRead,
}

impl Scope {
    /// Every scope, in Airtable's documentation order.
    pub const ALL: [Scope; 8] = [
        Scope::RecordsRead,
        Scope::RecordsWrite,
        Scope::RecordCommentsRead,
        Scope::RecordCommentsWrite,
        Scope::SchemaRead,
        Scope::SchemaWrite,
        Scope::WebhookManage,
        Scope::UserEmailRead,
    ];

    /// The wire name, e.g. `data.records:read`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::RecordsRead => "data.records:read",
            Scope::RecordsWrite => "data.records:write",
            Scope::RecordCommentsRead => "data.recordComments:read",
            Scope::RecordCommentsWrite => "data.recordComments:write",
            Scope::SchemaRead => "schema.bases:read",
            Scope::SchemaWrite => "schema.bases:write",
            Scope::WebhookManage => "webhook:manage",
            Scope::UserEmailRead => "user.email:read",
        }
    }

    /// Parses a wire name. Matching is exact (Airtable's names are case-sensitive).
    ///
    /// # Errors
    /// [`InvalidScope`] carrying the rejected input.
    pub fn parse(s: &str) -> Result<Self, InvalidScope> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| InvalidScope {
                value: s.chars().take(64).collect(),
            })
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = InvalidScope;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Why a string is not an API token scope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown scope {value:?}: expected one of data.records:read, data.records:write, \
     data.recordComments:read, data.recordComments:write, schema.bases:read, \
     schema.bases:write, webhook:manage, user.email:read"
)]
pub struct InvalidScope {
    /// The rejected input (truncated to 64 characters).
    pub value: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_by_power() {
        assert!(Role::Owner > Role::Creator);
        assert!(Role::Creator > Role::Editor);
        assert!(Role::Editor > Role::Commenter);
        assert!(Role::Commenter > Role::ReadOnly);
    }

    #[test]
    fn role_wire_names_match_serde_and_parse() {
        for role in Role::ALL {
            let json = serde_json::to_string(&role).unwrap();
            assert_eq!(json, format!("\"{}\"", role.as_str()));
            assert_eq!(serde_json::from_str::<Role>(&json).unwrap(), role);
            assert_eq!(Role::parse(role.as_str()), Ok(role));
        }
        assert_eq!(serde_json::to_string(&Role::ReadOnly).unwrap(), "\"read\"");
        assert_eq!(
            Role::parse("readOnly"),
            Err(InvalidRole {
                value: "readOnly".into()
            })
        );
    }

    #[test]
    fn scope_wire_names_match_serde_and_parse() {
        let expected = [
            "data.records:read",
            "data.records:write",
            "data.recordComments:read",
            "data.recordComments:write",
            "schema.bases:read",
            "schema.bases:write",
            "webhook:manage",
            "user.email:read",
        ];
        for (scope, name) in Scope::ALL.into_iter().zip(expected) {
            assert_eq!(scope.as_str(), name);
            assert_eq!(
                serde_json::to_string(&scope).unwrap(),
                format!("\"{name}\"")
            );
            assert_eq!(
                serde_json::from_str::<Scope>(&format!("\"{name}\"")).unwrap(),
                scope
            );
            assert_eq!(Scope::parse(name), Ok(scope));
        }
    }

    #[test]
    fn scope_parse_rejects_unknown_and_wrong_case() {
        assert_eq!(
            Scope::parse("data.Records:read"),
            Err(InvalidScope {
                value: "data.Records:read".into()
            })
        );
        assert!(Scope::parse("").is_err());
        assert!(serde_json::from_str::<Scope>("\"webhooks:manage\"").is_err());
    }
}
