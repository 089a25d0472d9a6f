//! Who may do what: the role × action matrix as data, the scope each action needs from an API
//! token, and [`authorize`], which combines them for one caller.
//!
//! The rules, in the order [`authorize`] applies them:
//! 1. **Level.** An [`Level::Account`] action (change one's own profile, create a workspace, ...)
//!    needs a signed-in user and nothing else. An [`Level::Instance`] action (register or
//!    deactivate users, ...) needs an instance admin. A [`Level::Workspace`] or [`Level::Base`]
//!    action needs membership of the workspace concerned (for a base: the workspace that holds
//!    it) with a role that [`allowed`] lets do it. Being an instance admin does **not** open
//!    anyone's workspace: tenant isolation holds for admins too.
//! 2. **Token.** A caller acting through an API token also needs the token to carry
//!    [`required_scope`] (actions without one cannot be done with a token at all), and, when the
//!    token is restricted to some bases, the action to concern one of them.
//!
//! `docs/permissions.md` shows the matrix; a test regenerates it from [`matrix_markdown`] and
//! fails when the document drifts.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::BaseId;
use crate::roles::{Role, Scope};

/// What an action applies to, which decides what kind of permission it needs.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Level {
    /// The caller's own account: any signed-in user, no membership needed.
    Account,
    /// The whole instance: instance admins only.
    Instance,
    /// One workspace: decided by the caller's role in it.
    Workspace,
    /// One base: decided by the caller's role in the workspace that holds it.
    Base,
}

impl Level {
    /// Lower-case name used in the matrix document.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Account => "account",
            Level::Instance => "instance (admin)",
            Level::Workspace => "workspace",
            Level::Base => "base",
        }
    }
}

macro_rules! actions {
    ($($name:ident => $description:literal,)*) => {
        /// Every command and query of the platform that needs a permission decision.
        #[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum Action {
            $(
                #[doc = $description]
                $name,
            )*
        }

        impl Action {
            /// Every action, in the order of the permission matrix.
            pub const ALL: &'static [Action] = &[$(Action::$name,)*];

            /// Stable name (the variant name), e.g. `CreateRecord`.
            #[must_use]
            pub fn name(self) -> &'static str {
                match self {
                    $(Action::$name => stringify!($name),)*
                }
            }

            /// One-line description, as shown in the matrix document.
            #[must_use]
            pub fn description(self) -> &'static str {
                match self {
                    $(Action::$name => $description,)*
                }
            }
        }
    };
}

actions! {
    // Account: one's own things.
    CreateWorkspace => "Create a workspace (the creator becomes its owner).",
    AcceptInvitation => "Accept an invitation sent to one's own email.",
    ChangeOwnProfile => "Change one's own display name or email.",
    ChangeOwnPassword => "Change one's own password.",
    ReadOwnEmail => "Read one's own email address (who-am-I).",
    CreateApiToken => "Create a personal API token.",
    RevokeOwnApiToken => "Revoke one of one's own API tokens.",
    // Instance administration.
    RegisterUser => "Register a user account on the instance.",
    DeactivateUser => "Deactivate a user account.",
    ReactivateUser => "Reactivate a user account.",
    RevokeAnyApiToken => "Revoke any user's API token.",
    // Workspace.
    ReadMembers => "List the workspace's members and pending invitations.",
    RenameWorkspace => "Rename the workspace.",
    ArchiveWorkspace => "Archive (delete) the workspace.",
    InviteMember => "Invite someone by email, with a role below owner.",
    CancelInvitation => "Withdraw a pending invitation for a role below owner.",
    AddMember => "Add an existing user, with a role below owner.",
    ChangeMemberRole => "Change a non-owner member's role to a role below owner.",
    RemoveMember => "Remove a non-owner member.",
    ManageOwners => "Grant or take away the owner role (needed in addition to the member action).",
    CreateBase => "Create a base in the workspace.",
    ReadAuditLog => "Read the workspace's audit log (who did what, when).",
    VerifyStream => "Verify the hash chains of the workspace's event streams.",
    // Base schema.
    ReadSchema => "Read the base's tables, fields and views.",
    RenameBase => "Rename the base.",
    DeleteBase => "Delete the base.",
    RestoreBase => "Restore a deleted base.",
    CreateTable => "Create a table.",
    RenameTable => "Rename a table.",
    DeleteTable => "Delete a table.",
    AddField => "Add a field to a table.",
    UpdateField => "Change a field's name, type or options.",
    DeleteField => "Delete a field.",
    CreateView => "Create a view.",
    UpdateView => "Change a view's filters, sorts, visible fields or name.",
    DeleteView => "Delete a view.",
    // Records.
    ReadRecords => "Read records and their history.",
    CreateRecord => "Create records.",
    UpdateRecord => "Update records' cells.",
    DeleteRecord => "Delete records.",
    RestoreRecord => "Restore deleted records.",
    RevertRecord => "Revert a record to an earlier version.",
    // Comments.
    ReadComments => "Read record comments.",
    AddComment => "Comment on a record.",
    EditOwnComment => "Edit one's own comment.",
    DeleteOwnComment => "Delete one's own comment.",
    EditOthersComment => "Edit someone else's comment (nobody may: words stay their author's).",
    DeleteOthersComment => "Delete someone else's comment (moderation).",
    // Integrations.
    ManageWebhooks => "Create, refresh and delete the base's webhooks.",
}

impl Action {
    /// What the action applies to.
    #[must_use]
    pub fn level(self) -> Level {
        use Action::*;
        match self {
            CreateWorkspace | AcceptInvitation | ChangeOwnProfile | ChangeOwnPassword
            | ReadOwnEmail | CreateApiToken | RevokeOwnApiToken => Level::Account,
            RegisterUser | DeactivateUser | ReactivateUser | RevokeAnyApiToken => Level::Instance,
            ReadMembers | RenameWorkspace | ArchiveWorkspace | InviteMember | CancelInvitation
            | AddMember | ChangeMemberRole | RemoveMember | ManageOwners | CreateBase
            | ReadAuditLog | VerifyStream => Level::Workspace,
            ReadSchema | RenameBase | DeleteBase | RestoreBase | CreateTable | RenameTable
            | DeleteTable | AddField | UpdateField | DeleteField | CreateView | UpdateView
            | DeleteView | ReadRecords | CreateRecord | UpdateRecord | DeleteRecord
            | RestoreRecord | RevertRecord | ReadComments | AddComment | EditOwnComment
            | DeleteOwnComment | EditOthersComment | DeleteOthersComment | ManageWebhooks => {
                Level::Base
            }
        }
    }

    /// The least powerful workspace role that may do this; every more powerful role may too.
    /// `None` when no role may: instance actions (admins only) and editing others' comments.
    /// Account actions need no role and answer `Some(Role::ReadOnly)`, the weakest.
    #[must_use]
    pub fn minimum_role(self) -> Option<Role> {
        use Action::*;
        match self {
            CreateWorkspace | AcceptInvitation | ChangeOwnProfile | ChangeOwnPassword
            | ReadOwnEmail | CreateApiToken | RevokeOwnApiToken => Some(Role::ReadOnly),
            RegisterUser | DeactivateUser | ReactivateUser | RevokeAnyApiToken => None,
            ReadMembers | ReadSchema | ReadRecords | ReadComments => Some(Role::ReadOnly),
            AddComment | EditOwnComment | DeleteOwnComment => Some(Role::Commenter),
            // Airtable lets editors shape their own views; only the structure of tables
            // (fields) and of the base is reserved to creators.
            CreateView | UpdateView | DeleteView => Some(Role::Editor),
            CreateRecord | UpdateRecord | DeleteRecord | RestoreRecord | RevertRecord => {
                Some(Role::Editor)
            }
            RenameWorkspace | InviteMember | CancelInvitation | AddMember | ChangeMemberRole
            | RemoveMember | CreateBase | ReadAuditLog => Some(Role::Creator),
            RenameBase | DeleteBase | RestoreBase | CreateTable | RenameTable | DeleteTable
            | AddField | UpdateField | DeleteField => Some(Role::Creator),
            DeleteOthersComment | ManageWebhooks => Some(Role::Creator),
            ArchiveWorkspace | ManageOwners | VerifyStream => Some(Role::Owner),
            EditOthersComment => None,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether a member with `role` may do `action`, ignoring tokens and admin status.
///
/// Account actions are allowed to every role (they need none); instance actions to no role
/// (they need an instance admin).
#[must_use]
pub fn allowed(role: Role, action: Action) -> bool {
    action.minimum_role().is_some_and(|min| role >= min)
}

/// The scope an API token needs for `action`, or `None` when the action cannot be done with a
/// token at all (account security, membership and instance administration need a signed-in
/// session, as in Airtable).
#[must_use]
pub fn required_scope(action: Action) -> Option<Scope> {
    use Action::*;
    match action {
        ReadOwnEmail => Some(Scope::UserEmailRead),
        ReadSchema => Some(Scope::SchemaRead),
        CreateBase | RenameBase | DeleteBase | RestoreBase | CreateTable | RenameTable
        | DeleteTable | AddField | UpdateField | DeleteField | CreateView | UpdateView
        | DeleteView => Some(Scope::SchemaWrite),
        ReadRecords => Some(Scope::RecordsRead),
        CreateRecord | UpdateRecord | DeleteRecord | RestoreRecord | RevertRecord => {
            Some(Scope::RecordsWrite)
        }
        ReadComments => Some(Scope::RecordCommentsRead),
        AddComment | EditOwnComment | DeleteOwnComment | EditOthersComment
        | DeleteOthersComment => Some(Scope::RecordCommentsWrite),
        ManageWebhooks => Some(Scope::WebhookManage),
        CreateWorkspace | AcceptInvitation | ChangeOwnProfile | ChangeOwnPassword
        | CreateApiToken | RevokeOwnApiToken | RegisterUser | DeactivateUser | ReactivateUser
        | RevokeAnyApiToken | ReadMembers | RenameWorkspace | ArchiveWorkspace | InviteMember
        | CancelInvitation | AddMember | ChangeMemberRole | RemoveMember | ManageOwners
        | ReadAuditLog | VerifyStream => None,
    }
}

/// What an API token allows, taken from an active token (see
/// [`ApiToken::grant`](crate::token::ApiToken::grant)).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenGrant {
    /// The token's scopes.
    pub scopes: Vec<Scope>,
    /// The bases it is restricted to, or `None` for every base its owner can reach.
    pub base_ids: Option<Vec<BaseId>>,
}

/// The caller, as far as one decision needs to know them.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Principal {
    /// The caller's role in the workspace the action concerns (for a base action: the workspace
    /// holding the base); `None` when not a member, or when the action concerns no workspace.
    pub role: Option<Role>,
    /// The token the caller acts through, or `None` for a signed-in session.
    pub token: Option<TokenGrant>,
    /// Whether the caller is an instance admin.
    pub is_admin: bool,
}

/// Why an action was refused. Each variant names the rule that refused it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// An instance action by someone who is not an instance admin.
    #[error("{action} is reserved to instance admins")]
    AdminOnly {
        /// The refused action.
        action: Action,
    },
    /// A workspace or base action by someone who is not a member of the workspace.
    #[error("not a member of the workspace, so may not {action}")]
    NotAMember {
        /// The refused action.
        action: Action,
    },
    /// The member's role does not allow the action.
    #[error("role {role} may not {action}")]
    RoleForbids {
        /// The member's role.
        role: Role,
        /// The refused action.
        action: Action,
    },
    /// The action cannot be done through an API token at all.
    #[error("{action} cannot be done with an API token; sign in instead")]
    TokenNotAccepted {
        /// The refused action.
        action: Action,
    },
    /// The token lacks the scope the action needs.
    #[error("API token lacks scope {scope}, needed to {action}")]
    TokenLacksScope {
        /// The missing scope.
        scope: Scope,
        /// The refused action.
        action: Action,
    },
    /// The token is restricted to other bases.
    #[error("API token is not valid for base {base_id}")]
    TokenNotValidForBase {
        /// The base the action concerns.
        base_id: BaseId,
    },
    /// The token is restricted to bases, and the action concerns no single base (e.g. creating
    /// a base in a workspace).
    #[error("API token is restricted to specific bases, so may not {action}")]
    TokenRestrictedToBases {
        /// The refused action.
        action: Action,
    },
}

/// Decides whether `principal` may do `action`, concerning base `base_id` when it concerns one.
///
/// # Errors
/// [`Denied`] naming the first rule that refuses: level and role first, then the token's scope,
/// then the token's base restriction.
pub fn authorize(
    principal: &Principal,
    action: Action,
    base_id: Option<&BaseId>,
) -> Result<(), Denied> {
    let level = action.level();
    match level {
        Level::Account => {}
        Level::Instance => {
            if !principal.is_admin {
                return Err(Denied::AdminOnly { action });
            }
        }
        Level::Workspace | Level::Base => {
            let role = principal.role.ok_or(Denied::NotAMember { action })?;
            if !allowed(role, action) {
                return Err(Denied::RoleForbids { role, action });
            }
        }
    }
    let Some(token) = &principal.token else {
        return Ok(());
    };
    let scope = required_scope(action).ok_or(Denied::TokenNotAccepted { action })?;
    if !token.scopes.contains(&scope) {
        return Err(Denied::TokenLacksScope { scope, action });
    }
    // A base restriction only narrows what touches workspaces; one's own account stays reachable.
    if let (Some(bases), Level::Workspace | Level::Base) = (&token.base_ids, level) {
        match base_id {
            Some(base_id) if bases.contains(base_id) => {}
            Some(base_id) => {
                return Err(Denied::TokenNotValidForBase {
                    base_id: base_id.clone(),
                });
            }
            None => return Err(Denied::TokenRestrictedToBases { action }),
        }
    }
    Ok(())
}

/// Renders the permission matrix as a Markdown table, one row per [`Action`], one column per
/// [`Role`], plus the action's level and the token scope it needs. `docs/permissions.md`
/// embeds exactly this text.
#[must_use]
pub fn matrix_markdown() -> String {
    let mut out = String::from("| Action | Level |");
    for role in Role::ALL {
        out.push_str(&format!(" {role} |"));
    }
    out.push_str(" API token scope | What it is |\n|---|---|");
    for _ in Role::ALL {
        out.push_str(":-:|");
    }
    out.push_str("---|---|\n");
    for &action in Action::ALL {
        out.push_str(&format!("| `{action}` | {} |", action.level().as_str()));
        for role in Role::ALL {
            out.push_str(if allowed(role, action) {
                " ✓ |"
            } else {
                " ✗ |"
            });
        }
        match required_scope(action) {
            Some(scope) => out.push_str(&format!(" `{scope}` |")),
            None => out.push_str(" session only |"),
        }
        out.push_str(&format!(" {} |\n", action.description()));
    }
    out
}
