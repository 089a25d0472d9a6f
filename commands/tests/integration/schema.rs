//! Bases, tables, fields and views through the real store.

use pyairtable_commands::service::{FieldChange, NewView, ViewChange};
use pyairtable_domain::base::Base;
use pyairtable_domain::fields::FieldType;

use crate::harness::{as_user, env, field, field_id, forbidden, not_found, rejected};

#[tokio::test]
async fn a_schema_is_built_and_changed_by_creators() {
    let env = env().await;
    let (ws, members) = env.team().await;
    let owner = &members[0].1;
    let creator = &members[1].1;
    let editor = &members[2].1;

    let base = env.base(creator, &ws).await;
    let table = env.tasks_table(creator, &base, &[]).await;
    assert_eq!(table.fields.len(), 4);
    assert_eq!(table.views.len(), 1);
    let stored = env
        .platform
        .runner()
        .load::<Base>(base.as_str())
        .await
        .unwrap();
    assert_eq!(stored.state.workspace_id.as_ref(), Some(&ws));
    let events = env
        .platform
        .runner()
        .history::<Base>(base.as_str())
        .await
        .unwrap();
    assert!(
        events
            .iter()
            .all(|(e, _)| e.metadata.workspace_id.as_deref() == Some(ws.as_str()))
    );

    let ctx = as_user(creator);
    let added = env
        .platform
        .add_field(
            &ctx,
            &base,
            &table.id,
            field("Due", FieldType::SingleLineText),
        )
        .await
        .unwrap();
    env.platform
        .update_field(
            &ctx,
            &base,
            &table.id,
            &added.id,
            FieldChange {
                name: Some("Deadline".into()),
                ..FieldChange::default()
            },
        )
        .await
        .unwrap();
    let (_, message) = rejected(
        env.platform
            .add_field(&ctx, &base, &table.id, field("deadline", FieldType::Email))
            .await,
    );
    assert!(message.contains("already has a field"), "{message}");
    env.platform
        .set_primary_field(&ctx, &base, &table.id, &field_id(&table, "Notes"))
        .await
        .unwrap();
    let (_, message) = rejected(
        env.platform
            .delete_field(&ctx, &base, &table.id, &field_id(&table, "Notes"))
            .await,
    );
    assert!(message.contains("primary"), "{message}");
    env.platform
        .delete_field(&ctx, &base, &table.id, &added.id)
        .await
        .unwrap();
    env.platform
        .update_table(&ctx, &base, &table.id, Some("Todo"), Some(Some("things")))
        .await
        .unwrap();

    // Editors manage views but not fields or tables.
    forbidden(
        env.platform
            .add_field(
                &as_user(editor),
                &base,
                &table.id,
                field("X", FieldType::Email),
            )
            .await,
    );
    forbidden(
        env.platform
            .delete_table(&as_user(editor), &base, &table.id)
            .await,
    );
    let (view, _) = env
        .platform
        .create_view(
            &as_user(editor),
            &base,
            &table.id,
            NewView {
                name: "Mine".into(),
                filter_formula: None,
                sorts: vec![],
                visible_field_ids: None,
            },
        )
        .await
        .unwrap();
    env.platform
        .update_view(
            &as_user(editor),
            &base,
            &table.id,
            &view.id,
            ViewChange {
                name: Some("Ours".into()),
                ..ViewChange::default()
            },
        )
        .await
        .unwrap();
    env.platform
        .delete_view(&as_user(editor), &base, &table.id, &view.id)
        .await
        .unwrap();
    let default_view = &table.views[0].id;
    rejected(
        env.platform
            .delete_view(&as_user(editor), &base, &table.id, default_view)
            .await,
    );

    let (_, message) = rejected(env.platform.delete_table(&ctx, &base, &table.id).await);
    assert!(message.contains("last table"), "{message}");
    env.platform
        .rename_base(&as_user(owner), &base, "Renamed")
        .await
        .unwrap();
    forbidden(env.platform.delete_base(&as_user(editor), &base).await);
    env.platform
        .delete_base(&as_user(owner), &base)
        .await
        .unwrap();
    rejected(
        env.platform
            .rename_base(&as_user(owner), &base, "Again")
            .await,
    );
    env.platform
        .restore_base(&as_user(owner), &base)
        .await
        .unwrap();
}

#[tokio::test]
async fn bases_are_invisible_outside_their_workspace() {
    let env = env().await;
    let (ws, members) = env.team().await;
    let owner = &members[0].1;
    let base = env.base(owner, &ws).await;
    let outsider = env.register("outsider@example.com").await;
    let (kind, id) = not_found(
        env.platform
            .rename_base(&as_user(&outsider), &base, "Mine")
            .await,
    );
    assert_eq!((kind, id.as_str()), ("base", base.as_str()));
    let other_ws = env.workspace(&outsider).await;
    forbidden(
        env.platform
            .create_base(&as_user(&members[2].1), &ws, "B")
            .await,
    );
    not_found(
        env.platform
            .create_base(&as_user(&outsider), &ws, "B")
            .await,
    );
    env.platform
        .create_base(&as_user(&outsider), &other_ws, "B")
        .await
        .unwrap();
    not_found(
        env.platform
            .rename_base(&as_user(owner), &pyairtable_commands::auth::new_id(), "x")
            .await,
    );
}
