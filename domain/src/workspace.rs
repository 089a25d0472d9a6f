//! The workspace aggregate: its name, its members and their roles, pending invitations, and
//! whether it is archived.
//!
//! Invariants kept here:
//! - a created workspace always has at least one owner: demoting or removing the last one is
//!   rejected;
//! - an archived workspace accepts no further command;
//! - an email has at most one pending invitation, and a user is a member at most once.
//!
//! **Bases are not listed here.** A base carries its workspace: `BaseCreated` holds the
//! `workspace_id`, so "which workspace does base `appX` belong to" is answered from the base's
//! own stream, and creating a base appends to one stream only (no cross-aggregate transaction,
//! no second list to drift). "Which bases does this workspace hold" is a read model. The command
//! layer loads the workspace before creating a base in it, to check membership and that it is
//! not archived.
//!
//! Who may issue which command is not decided here but by [`crate::permissions`];
//! [`Workspace::required_actions`] names the actions a command needs, including
//! [`Action::ManageOwners`] whenever the owner role is granted or taken away.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::aggregate::{Aggregate, DomainEvent};
use crate::ids::{UserId, WorkspaceId};
use crate::permissions::Action;
use crate::roles::Role;
use crate::user::{Email, InvalidEmail, NameError, parse_name};

/// Longest workspace name accepted, in characters.
pub const WORKSPACE_NAME_MAX_CHARS: usize = 100;

/// What can be asked of a workspace.
#[derive(Clone, Debug, PartialEq)]
pub enum WorkspaceCommand {
    /// Creates the workspace with its first owner.
    Create {
        /// The new workspace's id, drawn by the caller.
        id: WorkspaceId,
        /// Its name.
        name: String,
        /// The user who becomes its first owner.
        owner: UserId,
        /// When.
        at: DateTime<Utc>,
    },
    /// Renames it.
    Rename {
        /// The new name.
        name: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// Invites someone by email; the invitation waits until accepted or cancelled.
    InviteMember {
        /// The invitee's email as typed.
        email: String,
        /// The role they get on accepting.
        role: Role,
        /// The member who invites.
        invited_by: UserId,
        /// When.
        at: DateTime<Utc>,
    },
    /// Withdraws a pending invitation.
    CancelInvitation {
        /// The invited email as typed.
        email: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// Turns a pending invitation into a membership. The command layer has checked that the
    /// user owns `email` (it loaded the user) before sending this.
    AcceptInvitation {
        /// The user accepting.
        user_id: UserId,
        /// The invited email as typed.
        email: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// Adds an existing user directly, without an invitation.
    AddMember {
        /// The user to add.
        user_id: UserId,
        /// Their role.
        role: Role,
        /// When.
        at: DateTime<Utc>,
    },
    /// Changes a member's role.
    ChangeRole {
        /// The member.
        user_id: UserId,
        /// The new role.
        role: Role,
        /// When.
        at: DateTime<Utc>,
    },
    /// Removes a member.
    RemoveMember {
        /// The member.
        user_id: UserId,
        /// When.
        at: DateTime<Utc>,
    },
    /// Archives the workspace; nothing can change it afterwards.
    Archive {
        /// When.
        at: DateTime<Utc>,
    },
}

/// What happened to a workspace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(tag = "type")]
pub enum WorkspaceEvent {
    /// The workspace was created; `owner` is its first member, with the owner role.
    WorkspaceCreated {
        /// Its id.
        id: WorkspaceId,
        /// Trimmed name.
        name: String,
        /// First owner.
        owner: UserId,
        /// When.
        at: DateTime<Utc>,
    },
    /// It was renamed.
    WorkspaceRenamed {
        /// Trimmed new name.
        name: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// Someone was invited by email.
    MemberInvited {
        /// Normalised email.
        email: Email,
        /// Role granted on acceptance.
        role: Role,
        /// The inviting member.
        invited_by: UserId,
        /// When.
        at: DateTime<Utc>,
    },
    /// A pending invitation was withdrawn.
    InvitationCancelled {
        /// Normalised email.
        email: Email,
        /// When.
        at: DateTime<Utc>,
    },
    /// An invitation was accepted: the user is now a member with the invited role.
    InvitationAccepted {
        /// Normalised email the invitation was for.
        email: Email,
        /// The new member.
        user_id: UserId,
        /// The role they got.
        role: Role,
        /// When.
        at: DateTime<Utc>,
    },
    /// A user was added directly.
    MemberAdded {
        /// The new member.
        user_id: UserId,
        /// Their role.
        role: Role,
        /// When.
        at: DateTime<Utc>,
    },
    /// A member's role changed.
    MemberRoleChanged {
        /// The member.
        user_id: UserId,
        /// The role they had.
        from: Role,
        /// The role they have now.
        to: Role,
        /// When.
        at: DateTime<Utc>,
    },
    /// A member was removed.
    MemberRemoved {
        /// The former member.
        user_id: UserId,
        /// The role they had.
        role: Role,
        /// When.
        at: DateTime<Utc>,
    },
    /// The workspace was archived.
    WorkspaceArchived {
        /// When.
        at: DateTime<Utc>,
    },
}

impl DomainEvent for WorkspaceEvent {
    fn event_type(&self) -> &'static str {
        match self {
            WorkspaceEvent::WorkspaceCreated { .. } => "WorkspaceCreated",
            WorkspaceEvent::WorkspaceRenamed { .. } => "WorkspaceRenamed",
            WorkspaceEvent::MemberInvited { .. } => "MemberInvited",
            WorkspaceEvent::InvitationCancelled { .. } => "InvitationCancelled",
            WorkspaceEvent::InvitationAccepted { .. } => "InvitationAccepted",
            WorkspaceEvent::MemberAdded { .. } => "MemberAdded",
            WorkspaceEvent::MemberRoleChanged { .. } => "MemberRoleChanged",
            WorkspaceEvent::MemberRemoved { .. } => "MemberRemoved",
            WorkspaceEvent::WorkspaceArchived { .. } => "WorkspaceArchived",
        }
    }
}

/// Why a workspace command was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkspaceError {
    /// `Create` on a stream that already holds a workspace.
    #[error("workspace {id} already exists")]
    AlreadyCreated {
        /// The existing workspace's id.
        id: WorkspaceId,
    },
    /// Any other command on a stream with no workspace.
    #[error("workspace does not exist")]
    NotCreated,
    /// Any command on an archived workspace.
    #[error("workspace {id} is archived")]
    Archived {
        /// The workspace's id.
        id: WorkspaceId,
    },
    /// The name is empty, too long or holds control characters.
    #[error("workspace name {0}")]
    InvalidName(NameError),
    /// `Rename` to the current name.
    #[error("workspace is already named {name:?}")]
    NameUnchanged {
        /// The current name.
        name: String,
    },
    /// The invitee's email is malformed.
    #[error(transparent)]
    InvalidEmail(#[from] InvalidEmail),
    /// `InviteMember` for an email with a pending invitation.
    #[error("{email} already has a pending invitation")]
    AlreadyInvited {
        /// The email.
        email: Email,
    },
    /// `AcceptInvitation` or `CancelInvitation` for an email with no pending invitation.
    #[error("{email} has no pending invitation")]
    NotInvited {
        /// The email.
        email: Email,
    },
    /// `InviteMember` by someone who is not a member.
    #[error("inviter {user_id} is not a member of the workspace")]
    InviterNotMember {
        /// The would-be inviter.
        user_id: UserId,
    },
    /// `AddMember` or `AcceptInvitation` for a user who is already a member.
    #[error("user {user_id} is already a member, as {role}")]
    AlreadyMember {
        /// The user.
        user_id: UserId,
        /// Their current role.
        role: Role,
    },
    /// `ChangeRole` or `RemoveMember` for a user who is not a member.
    #[error("user {user_id} is not a member of the workspace")]
    NotMember {
        /// The user.
        user_id: UserId,
    },
    /// `ChangeRole` to the role the member already has.
    #[error("user {user_id} already has the role {role}")]
    RoleUnchanged {
        /// The member.
        user_id: UserId,
        /// Their role.
        role: Role,
    },
    /// Demoting or removing the only owner.
    #[error("user {user_id} is the last owner; make someone else owner first")]
    LastOwner {
        /// The last owner.
        user_id: UserId,
    },
}

/// An invitation waiting for its invitee.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Invitation {
    /// The role granted on acceptance.
    pub role: Role,
    /// The member who invited.
    pub invited_by: UserId,
    /// When.
    pub invited_at: DateTime<Utc>,
}

/// A created workspace as the aggregate knows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkspaceState {
    /// Its id.
    pub id: WorkspaceId,
    /// Its name.
    pub name: String,
    /// Members and their roles.
    pub members: BTreeMap<UserId, Role>,
    /// Pending invitations, by normalised email.
    pub invitations: BTreeMap<Email, Invitation>,
    /// Whether it is archived.
    pub archived: bool,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

impl WorkspaceState {
    /// How many members hold the owner role.
    #[must_use]
    pub fn owner_count(&self) -> usize {
        self.members.values().filter(|r| **r == Role::Owner).count()
    }

    /// A member's role, if they are one.
    #[must_use]
    pub fn role_of(&self, user_id: &UserId) -> Option<Role> {
        self.members.get(user_id).copied()
    }
}

/// The workspace aggregate: empty until created.
#[derive(Default, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Workspace {
    state: Option<WorkspaceState>,
}

impl Workspace {
    /// The workspace, once created.
    #[must_use]
    pub fn state(&self) -> Option<&WorkspaceState> {
        self.state.as_ref()
    }

    /// A member's role: what the command layer puts in
    /// [`Principal::role`](crate::permissions::Principal::role).
    #[must_use]
    pub fn role_of(&self, user_id: &UserId) -> Option<Role> {
        self.state.as_ref().and_then(|s| s.role_of(user_id))
    }

    /// The actions the caller must be authorised for before `command` is handled: the command's
    /// own action plus [`Action::ManageOwners`] when it grants the owner role or touches a
    /// current owner (so a creator can manage everyone but owners).
    #[must_use]
    pub fn required_actions(&self, command: &WorkspaceCommand) -> Vec<Action> {
        let current = |user_id: &UserId| self.role_of(user_id);
        let (action, touches_owner) = match command {
            WorkspaceCommand::Create { .. } => (Action::CreateWorkspace, false),
            WorkspaceCommand::Rename { .. } => (Action::RenameWorkspace, false),
            WorkspaceCommand::InviteMember { role, .. } => {
                (Action::InviteMember, *role == Role::Owner)
            }
            WorkspaceCommand::CancelInvitation { email, .. } => {
                let invited_role = Email::parse(email).ok().and_then(|email| {
                    self.state
                        .as_ref()
                        .and_then(|s| s.invitations.get(&email).map(|i| i.role))
                });
                (Action::CancelInvitation, invited_role == Some(Role::Owner))
            }
            WorkspaceCommand::AcceptInvitation { .. } => (Action::AcceptInvitation, false),
            WorkspaceCommand::AddMember { role, .. } => (Action::AddMember, *role == Role::Owner),
            WorkspaceCommand::ChangeRole { user_id, role, .. } => (
                Action::ChangeMemberRole,
                *role == Role::Owner || current(user_id) == Some(Role::Owner),
            ),
            WorkspaceCommand::RemoveMember { user_id, .. } => {
                (Action::RemoveMember, current(user_id) == Some(Role::Owner))
            }
            WorkspaceCommand::Archive { .. } => (Action::ArchiveWorkspace, false),
        };
        if touches_owner {
            vec![action, Action::ManageOwners]
        } else {
            vec![action]
        }
    }

    fn live(&self) -> Result<&WorkspaceState, WorkspaceError> {
        let state = self.state.as_ref().ok_or(WorkspaceError::NotCreated)?;
        if state.archived {
            return Err(WorkspaceError::Archived {
                id: state.id.clone(),
            });
        }
        Ok(state)
    }
}

fn workspace_name(raw: &str) -> Result<String, WorkspaceError> {
    parse_name(raw, WORKSPACE_NAME_MAX_CHARS).map_err(WorkspaceError::InvalidName)
}

/// Rejects taking the owner role away from the only owner.
fn keep_an_owner(
    state: &WorkspaceState,
    user_id: &UserId,
    current: Role,
) -> Result<(), WorkspaceError> {
    if current == Role::Owner && state.owner_count() <= 1 {
        return Err(WorkspaceError::LastOwner {
            user_id: user_id.clone(),
        });
    }
    Ok(())
}

impl Aggregate for Workspace {
    type Command = WorkspaceCommand;
    type Event = WorkspaceEvent;
    type Error = WorkspaceError;
    const KIND: &'static str = "workspace";

    fn handle(&self, command: &WorkspaceCommand) -> Result<Vec<WorkspaceEvent>, WorkspaceError> {
        let event = match command {
            WorkspaceCommand::Create {
                id,
                name,
                owner,
                at,
            } => {
                if let Some(existing) = &self.state {
                    return Err(WorkspaceError::AlreadyCreated {
                        id: existing.id.clone(),
                    });
                }
                WorkspaceEvent::WorkspaceCreated {
                    id: id.clone(),
                    name: workspace_name(name)?,
                    owner: owner.clone(),
                    at: *at,
                }
            }
            WorkspaceCommand::Rename { name, at } => {
                let state = self.live()?;
                let name = workspace_name(name)?;
                if name == state.name {
                    return Err(WorkspaceError::NameUnchanged { name });
                }
                WorkspaceEvent::WorkspaceRenamed { name, at: *at }
            }
            WorkspaceCommand::InviteMember {
                email,
                role,
                invited_by,
                at,
            } => {
                let state = self.live()?;
                let email = Email::parse(email)?;
                if !state.members.contains_key(invited_by) {
                    return Err(WorkspaceError::InviterNotMember {
                        user_id: invited_by.clone(),
                    });
                }
                if state.invitations.contains_key(&email) {
                    return Err(WorkspaceError::AlreadyInvited { email });
                }
                WorkspaceEvent::MemberInvited {
                    email,
                    role: *role,
                    invited_by: invited_by.clone(),
                    at: *at,
                }
            }
            WorkspaceCommand::CancelInvitation { email, at } => {
                let state = self.live()?;
                let email = Email::parse(email)?;
                if !state.invitations.contains_key(&email) {
                    return Err(WorkspaceError::NotInvited { email });
                }
                WorkspaceEvent::InvitationCancelled { email, at: *at }
            }
            WorkspaceCommand::AcceptInvitation { user_id, email, at } => {
                let state = self.live()?;
                let email = Email::parse(email)?;
                let Some(invitation) = state.invitations.get(&email) else {
                    return Err(WorkspaceError::NotInvited { email });
                };
                if let Some(role) = state.role_of(user_id) {
                    return Err(WorkspaceError::AlreadyMember {
                        user_id: user_id.clone(),
                        role,
                    });
                }
                WorkspaceEvent::InvitationAccepted {
                    role: invitation.role,
                    email,
                    user_id: user_id.clone(),
                    at: *at,
                }
            }
            WorkspaceCommand::AddMember { user_id, role, at } => {
                let state = self.live()?;
                if let Some(current) = state.role_of(user_id) {
                    return Err(WorkspaceError::AlreadyMember {
                        user_id: user_id.clone(),
                        role: current,
                    });
                }
                WorkspaceEvent::MemberAdded {
                    user_id: user_id.clone(),
                    role: *role,
                    at: *at,
                }
            }
            WorkspaceCommand::ChangeRole { user_id, role, at } => {
                let state = self.live()?;
                let current = state.role_of(user_id).ok_or(WorkspaceError::NotMember {
                    user_id: user_id.clone(),
                })?;
                if current == *role {
                    return Err(WorkspaceError::RoleUnchanged {
                        user_id: user_id.clone(),
                        role: current,
                    });
                }
                keep_an_owner(state, user_id, current)?;
                WorkspaceEvent::MemberRoleChanged {
                    user_id: user_id.clone(),
                    from: current,
                    to: *role,
                    at: *at,
                }
            }
            WorkspaceCommand::RemoveMember { user_id, at } => {
                let state = self.live()?;
                let current = state.role_of(user_id).ok_or(WorkspaceError::NotMember {
                    user_id: user_id.clone(),
                })?;
                keep_an_owner(state, user_id, current)?;
                WorkspaceEvent::MemberRemoved {
                    user_id: user_id.clone(),
                    role: current,
                    at: *at,
                }
            }
            WorkspaceCommand::Archive { at } => {
                self.live()?;
                WorkspaceEvent::WorkspaceArchived { at: *at }
            }
        };
        Ok(vec![event])
    }

    fn apply(&mut self, event: &WorkspaceEvent) {
        if let WorkspaceEvent::WorkspaceCreated {
            id,
            name,
            owner,
            at,
        } = event
        {
            self.state = Some(WorkspaceState {
                id: id.clone(),
                name: name.clone(),
                members: BTreeMap::from([(owner.clone(), Role::Owner)]),
                invitations: BTreeMap::new(),
                archived: false,
                created_at: *at,
            });
            return;
        }
        // Events are facts: one that arrives before creation (impossible through `handle`) is
        // ignored rather than allowed to panic a replay.
        let Some(state) = self.state.as_mut() else {
            return;
        };
        match event {
            WorkspaceEvent::WorkspaceCreated { .. } => {}
            WorkspaceEvent::WorkspaceRenamed { name, .. } => state.name.clone_from(name),
            WorkspaceEvent::MemberInvited {
                email,
                role,
                invited_by,
                at,
            } => {
                state.invitations.insert(
                    email.clone(),
                    Invitation {
                        role: *role,
                        invited_by: invited_by.clone(),
                        invited_at: *at,
                    },
                );
            }
            WorkspaceEvent::InvitationCancelled { email, .. } => {
                state.invitations.remove(email);
            }
            WorkspaceEvent::InvitationAccepted {
                email,
                user_id,
                role,
                ..
            } => {
                state.invitations.remove(email);
                state.members.insert(user_id.clone(), *role);
            }
            WorkspaceEvent::MemberAdded { user_id, role, .. } => {
                state.members.insert(user_id.clone(), *role);
            }
            WorkspaceEvent::MemberRoleChanged { user_id, to, .. } => {
                state.members.insert(user_id.clone(), *to);
            }
            WorkspaceEvent::MemberRemoved { user_id, .. } => {
                state.members.remove(user_id);
            }
            WorkspaceEvent::WorkspaceArchived { .. } => state.archived = true,
        }
    }
}
