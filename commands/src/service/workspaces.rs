//! Workspaces: creation, renaming, membership and invitations, archiving.

use pyairtable_domain::ids::{UserId, WorkspaceId};
use pyairtable_domain::permissions::Action;
use pyairtable_domain::roles::Role;
use pyairtable_domain::user::User;
use pyairtable_domain::workspace::{Workspace, WorkspaceCommand};
use serde_json::{Value, json};

use super::{
    Platform, acting_user, authorize_account, authorize_in, decide, load_active_user, load_existing,
};
use crate::auth::new_id;
use crate::context::{Caller, CommandContext};
use crate::error::CommandError;
use crate::idempotency::Fingerprint;
use crate::runner::Begin;
use crate::service::Written;
use crate::service::users::written;

impl Platform {
    /// Creates a workspace whose owner is the caller (`CreateWorkspace`), or, for the system
    /// caller, the named active user.
    ///
    /// # Errors
    /// `Rejected` for an invalid name or a deactivated owner, `NotFound` for an unknown owner,
    /// `Forbidden` for API tokens or a user naming someone else as owner.
    pub async fn create_workspace(
        &self,
        ctx: &CommandContext,
        name: &str,
        owner: Option<&UserId>,
    ) -> Result<Written<WorkspaceId>, CommandError> {
        authorize_account(ctx, Action::CreateWorkspace)?;
        let owner = acting_user(ctx, owner)?;
        let request = Fingerprint::new("createWorkspace", &json!({"name": name, "owner": owner}))?;
        let workspace_id: WorkspaceId = new_id();
        let command = WorkspaceCommand::Create {
            id: workspace_id.clone(),
            name: name.to_owned(),
            owner: owner.clone(),
            at: ctx.now,
        };
        let mut run = match self
            .runner()
            .begin(ctx, Some(workspace_id.as_str()), &request)
            .await?
        {
            Begin::Replayed(result) => return Ok(result),
            Begin::Run(run) => run,
        };
        loop {
            let mut batch = run.batch();
            load_active_user(&mut batch, &owner).await?;
            let loaded = batch.load::<Workspace>(workspace_id.as_str()).await?;
            let events = decide(&loaded, &command)?;
            let emitted = batch.emit(&loaded, &events)?;
            if let Some(result) = run
                .commit(batch, |o| Ok(written(&workspace_id, emitted.version, o)))
                .await?
            {
                return Ok(result);
            }
        }
    }

    /// Renames a workspace (`RenameWorkspace`: creators and owners).
    ///
    /// # Errors
    /// `NotFound` for an unknown workspace or a non-member, `Forbidden` for a lower role,
    /// `Rejected` for an invalid or unchanged name or an archived workspace.
    pub async fn rename_workspace(
        &self,
        ctx: &CommandContext,
        workspace_id: &WorkspaceId,
        name: &str,
    ) -> Result<Written<WorkspaceId>, CommandError> {
        let body = json!({"workspaceId": workspace_id, "name": name});
        self.workspace_command(ctx, workspace_id, "renameWorkspace", &body, |_| {
            Ok(WorkspaceCommand::Rename {
                name: name.to_owned(),
                at: ctx.now,
            })
        })
        .await
    }

    /// Invites someone by email with a role (`InviteMember`, plus `ManageOwners` to invite an
    /// owner). The system caller invites in the name of the workspace's first owner.
    ///
    /// # Errors
    /// `NotFound`, `Forbidden`, or `Rejected` (already invited, invalid email).
    pub async fn invite_member(
        &self,
        ctx: &CommandContext,
        workspace_id: &WorkspaceId,
        email: &str,
        role: Role,
    ) -> Result<Written<WorkspaceId>, CommandError> {
        let body = json!({"workspaceId": workspace_id, "email": email, "role": role});
        self.workspace_command(ctx, workspace_id, "inviteMember", &body, |workspace| {
            let invited_by = match &ctx.caller {
                Caller::User(user) => user.user_id.clone(),
                Caller::System { .. } => first_owner(workspace)?,
            };
            Ok(WorkspaceCommand::InviteMember {
                email: email.to_owned(),
                role,
                invited_by,
                at: ctx.now,
            })
        })
        .await
    }

    /// Withdraws a pending invitation (`CancelInvitation`, plus `ManageOwners` for an owner
    /// invitation).
    ///
    /// # Errors
    /// `NotFound`, `Forbidden`, or `Rejected` (no such invitation).
    pub async fn cancel_invitation(
        &self,
        ctx: &CommandContext,
        workspace_id: &WorkspaceId,
        email: &str,
    ) -> Result<Written<WorkspaceId>, CommandError> {
        let body = json!({"workspaceId": workspace_id, "email": email});
        self.workspace_command(ctx, workspace_id, "cancelInvitation", &body, |_| {
            Ok(WorkspaceCommand::CancelInvitation {
                email: email.to_owned(),
                at: ctx.now,
            })
        })
        .await
    }

    /// Accepts the invitation sent to the caller's email (`AcceptInvitation`).
    ///
    /// # Errors
    /// `Rejected` when there is no invitation for the caller's email, `NotFound` for an unknown
    /// workspace, `Rejected` for the system caller (it has no email).
    pub async fn accept_invitation(
        &self,
        ctx: &CommandContext,
        workspace_id: &WorkspaceId,
    ) -> Result<Written<WorkspaceId>, CommandError> {
        authorize_account(ctx, Action::AcceptInvitation)?;
        let Some(user_id) = ctx.caller.user_id().cloned() else {
            return Err(CommandError::rejected(
                "missing_user",
                "only a user can accept an invitation",
            ));
        };
        let user = self.runner().load::<User>(user_id.as_str()).await?;
        let Some(account) = user.state.account() else {
            return Err(CommandError::not_found("user", user_id.as_str()));
        };
        let email = account.email.as_str().to_owned();
        let body = json!({"workspaceId": workspace_id});
        self.workspace_command(ctx, workspace_id, "acceptInvitation", &body, |_| {
            Ok(WorkspaceCommand::AcceptInvitation {
                user_id: user_id.clone(),
                email: email.clone(),
                at: ctx.now,
            })
        })
        .await
    }

    /// Adds an existing, active user with a role (`AddMember`, plus `ManageOwners` for owners).
    ///
    /// # Errors
    /// `NotFound` (workspace or user), `Forbidden`, or `Rejected` (already a member, user
    /// deactivated).
    pub async fn add_member(
        &self,
        ctx: &CommandContext,
        workspace_id: &WorkspaceId,
        user_id: &UserId,
        role: Role,
    ) -> Result<Written<WorkspaceId>, CommandError> {
        let user = self.runner().load::<User>(user_id.as_str()).await?;
        match user.state.account() {
            None => return Err(CommandError::not_found("user", user_id.as_str())),
            Some(account) if !account.active => {
                return Err(CommandError::rejected(
                    "user_deactivated",
                    format!("user {user_id} is deactivated"),
                ));
            }
            Some(_) => {}
        }
        let body = json!({"workspaceId": workspace_id, "userId": user_id, "role": role});
        self.workspace_command(ctx, workspace_id, "addMember", &body, |_| {
            Ok(WorkspaceCommand::AddMember {
                user_id: user_id.clone(),
                role,
                at: ctx.now,
            })
        })
        .await
    }

    /// Changes a member's role (`ChangeMemberRole`, plus `ManageOwners` when an owner is
    /// involved on either side).
    ///
    /// # Errors
    /// `NotFound`, `Forbidden`, or `Rejected` (not a member, unchanged, last owner).
    pub async fn change_member_role(
        &self,
        ctx: &CommandContext,
        workspace_id: &WorkspaceId,
        user_id: &UserId,
        role: Role,
    ) -> Result<Written<WorkspaceId>, CommandError> {
        let body = json!({"workspaceId": workspace_id, "userId": user_id, "role": role});
        self.workspace_command(ctx, workspace_id, "changeMemberRole", &body, |_| {
            Ok(WorkspaceCommand::ChangeRole {
                user_id: user_id.clone(),
                role,
                at: ctx.now,
            })
        })
        .await
    }

    /// Removes a member (`RemoveMember`, plus `ManageOwners` to remove an owner).
    ///
    /// # Errors
    /// `NotFound`, `Forbidden`, or `Rejected` (not a member, last owner).
    pub async fn remove_member(
        &self,
        ctx: &CommandContext,
        workspace_id: &WorkspaceId,
        user_id: &UserId,
    ) -> Result<Written<WorkspaceId>, CommandError> {
        let body = json!({"workspaceId": workspace_id, "userId": user_id});
        self.workspace_command(ctx, workspace_id, "removeMember", &body, |_| {
            Ok(WorkspaceCommand::RemoveMember {
                user_id: user_id.clone(),
                at: ctx.now,
            })
        })
        .await
    }

    /// Archives a workspace (`ArchiveWorkspace`: owners only).
    ///
    /// # Errors
    /// `NotFound`, `Forbidden`, or `Rejected` (already archived).
    pub async fn archive_workspace(
        &self,
        ctx: &CommandContext,
        workspace_id: &WorkspaceId,
    ) -> Result<Written<WorkspaceId>, CommandError> {
        let body = json!({"workspaceId": workspace_id});
        self.workspace_command(ctx, workspace_id, "archiveWorkspace", &body, |_| {
            Ok(WorkspaceCommand::Archive { at: ctx.now })
        })
        .await
    }

    /// Loads the workspace, builds the command from its state, authorises every action the
    /// command requires against the caller's role, decides and appends.
    async fn workspace_command<F>(
        &self,
        ctx: &CommandContext,
        workspace_id: &WorkspaceId,
        name: &str,
        body: &Value,
        make: F,
    ) -> Result<Written<WorkspaceId>, CommandError>
    where
        F: Fn(&Workspace) -> Result<WorkspaceCommand, CommandError>,
    {
        let request = Fingerprint::new(name, body)?;
        let mut run = match self
            .runner()
            .begin(ctx, Some(workspace_id.as_str()), &request)
            .await?
        {
            Begin::Replayed(result) => return Ok(result),
            Begin::Run(run) => run,
        };
        loop {
            let mut batch = run.batch();
            let loaded =
                load_existing::<Workspace>(&mut batch, "workspace", workspace_id.as_str()).await?;
            let command = make(&loaded.state)?;
            let actions = loaded.state.required_actions(&command);
            authorize_in(
                ctx,
                &loaded.state,
                &actions,
                None,
                ("workspace", workspace_id.as_str()),
            )?;
            let events = decide(&loaded, &command)?;
            let emitted = batch.emit(&loaded, &events)?;
            if let Some(result) = run
                .commit(batch, |o| Ok(written(workspace_id, emitted.version, o)))
                .await?
            {
                return Ok(result);
            }
        }
    }
}

fn first_owner(workspace: &Workspace) -> Result<UserId, CommandError> {
    workspace
        .state()
        .and_then(|s| {
            s.members
                .iter()
                .find(|(_, role)| **role == Role::Owner)
                .map(|(id, _)| id.clone())
        })
        .ok_or_else(|| CommandError::rejected("no_owner", "the workspace has no owner"))
}
