//! Workspaces through the real store: creation, membership, invitations, archiving, and the
//! role checks on each.

use pyairtable_commands::CommandError;
use pyairtable_domain::roles::Role;
use pyairtable_domain::workspace::Workspace;

use crate::harness::{as_user, env, forbidden, not_found, rejected, system};

#[tokio::test]
async fn the_cli_creates_a_workspace_for_a_named_owner() {
    let env = env().await;
    let owner = env.register("owner@example.com").await;
    let written = env
        .platform
        .create_workspace(&system(), "Acme", Some(&owner))
        .await
        .unwrap();
    let ws = env
        .platform
        .runner()
        .load::<Workspace>(written.id.as_str())
        .await
        .unwrap();
    assert_eq!(ws.state.role_of(&owner), Some(Role::Owner));
    assert_eq!(ws.state.state().unwrap().name, "Acme");
    let events = env
        .platform
        .runner()
        .history::<Workspace>(written.id.as_str())
        .await
        .unwrap();
    assert_eq!(
        events[0].0.metadata.workspace_id.as_deref(),
        Some(written.id.as_str())
    );

    // The system caller must say for whom; users may not create for others.
    assert_eq!(
        rejected(env.platform.create_workspace(&system(), "X", None).await).0,
        "missing_user"
    );
    let other = env.register("other@example.com").await;
    forbidden(
        env.platform
            .create_workspace(&as_user(&other), "X", Some(&owner))
            .await,
    );
    let ghost = pyairtable_commands::auth::new_id();
    not_found(
        env.platform
            .create_workspace(&system(), "X", Some(&ghost))
            .await,
    );
    let (_, message) = rejected(
        env.platform
            .create_workspace(&as_user(&owner), " ", None)
            .await,
    );
    assert!(message.contains("workspace name"), "{message}");
}

#[tokio::test]
async fn members_are_added_changed_and_removed_by_the_right_roles() {
    let env = env().await;
    let (ws, members) = env.team().await;
    let owner = &members[0].1;
    let creator = &members[1].1;
    let editor = &members[2].1;
    let newcomer = env.register("new@example.com").await;

    // Editors manage nobody; creators manage non-owners; only owners touch ownership.
    forbidden(
        env.platform
            .add_member(&as_user(editor), &ws, &newcomer, Role::Editor)
            .await,
    );
    forbidden(
        env.platform
            .add_member(&as_user(creator), &ws, &newcomer, Role::Owner)
            .await,
    );
    env.platform
        .add_member(&as_user(creator), &ws, &newcomer, Role::Commenter)
        .await
        .unwrap();
    let (_, message) = rejected(
        env.platform
            .add_member(&as_user(owner), &ws, &newcomer, Role::Editor)
            .await,
    );
    assert!(message.contains("already a member"), "{message}");
    env.platform
        .change_member_role(&as_user(creator), &ws, &newcomer, Role::Editor)
        .await
        .unwrap();
    forbidden(
        env.platform
            .change_member_role(&as_user(creator), &ws, &newcomer, Role::Owner)
            .await,
    );
    env.platform
        .remove_member(&as_user(creator), &ws, &newcomer)
        .await
        .unwrap();
    // The last owner cannot leave.
    let (_, message) = rejected(
        env.platform
            .remove_member(&as_user(owner), &ws, owner)
            .await,
    );
    assert!(message.contains("last owner"), "{message}");

    // Outsiders are told the workspace does not exist.
    let (kind, _) = not_found(
        env.platform
            .rename_workspace(&as_user(&newcomer), &ws, "Mine")
            .await,
    );
    assert_eq!(kind, "workspace");
    forbidden(
        env.platform
            .rename_workspace(&as_user(editor), &ws, "Mine")
            .await,
    );
    env.platform
        .rename_workspace(&as_user(creator), &ws, "Ours")
        .await
        .unwrap();
    let missing = env
        .platform
        .rename_workspace(&as_user(owner), &pyairtable_commands::auth::new_id(), "x")
        .await;
    assert!(matches!(missing, Err(CommandError::NotFound { .. })));
}

#[tokio::test]
async fn invitations_are_sent_cancelled_and_accepted() {
    let env = env().await;
    let (ws, members) = env.team().await;
    let owner = &members[0].1;
    let commenter = &members[3].1;
    let guest = env.register("guest@example.com").await;

    forbidden(
        env.platform
            .invite_member(&as_user(commenter), &ws, "guest@example.com", Role::Editor)
            .await,
    );
    env.platform
        .invite_member(&as_user(owner), &ws, "Guest@Example.com", Role::Editor)
        .await
        .unwrap();
    let (_, message) = rejected(
        env.platform
            .invite_member(&as_user(owner), &ws, "guest@example.com", Role::Editor)
            .await,
    );
    assert!(message.contains("pending invitation"), "{message}");
    env.platform
        .accept_invitation(&as_user(&guest), &ws)
        .await
        .unwrap();
    let state = env
        .platform
        .runner()
        .load::<Workspace>(ws.as_str())
        .await
        .unwrap();
    assert_eq!(state.state.role_of(&guest), Some(Role::Editor));

    // No invitation, nothing to accept; cancelled ones are gone.
    let other = env.register("other@example.com").await;
    rejected(env.platform.accept_invitation(&as_user(&other), &ws).await);
    env.platform
        .invite_member(&system(), &ws, "other@example.com", Role::ReadOnly)
        .await
        .unwrap();
    env.platform
        .cancel_invitation(&as_user(owner), &ws, "other@example.com")
        .await
        .unwrap();
    rejected(env.platform.accept_invitation(&as_user(&other), &ws).await);
}

#[tokio::test]
async fn only_owners_archive_and_archived_workspaces_refuse_changes() {
    let env = env().await;
    let (ws, members) = env.team().await;
    let owner = &members[0].1;
    let creator = &members[1].1;
    forbidden(env.platform.archive_workspace(&as_user(creator), &ws).await);
    env.platform
        .archive_workspace(&as_user(owner), &ws)
        .await
        .unwrap();
    let (_, message) = rejected(
        env.platform
            .rename_workspace(&as_user(owner), &ws, "Again")
            .await,
    );
    assert!(message.contains("archived"), "{message}");
    let (code, _) = rejected(env.platform.create_base(&as_user(owner), &ws, "B").await);
    assert_eq!(code, "workspace_archived");
}
