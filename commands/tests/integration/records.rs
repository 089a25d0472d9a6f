//! Records through the real store: atomic batches, validation, links, typecast, concurrency,
//! delete/restore, revert and comments.

use std::collections::BTreeSet;

use pyairtable_commands::service::RecordUpdate;
use pyairtable_domain::base::Base;
use pyairtable_domain::ids::{BaseId, RecordId, UserId};
use pyairtable_domain::record::{Record, RecordEvent};
use pyairtable_domain::roles::Role;
use serde_json::{Map, Value, json};

use crate::harness::{Env, as_user, env, field_id, forbidden, not_found, rejected};

fn cells(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

async fn setup(
    env: &Env,
    extra: &[&str],
) -> (UserId, BaseId, pyairtable_domain::base::TableSchema) {
    let (ws, members) = env.team().await;
    let owner = members[0].1.clone();
    let base = env.base(&owner, &ws).await;
    let table = env.tasks_table(&owner, &base, extra).await;
    (owner, base, table)
}

async fn event_count(env: &Env) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(env.test.store().pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_batch_is_created_by_name_or_id_and_validated_as_a_whole() {
    let env = env().await;
    let (owner, base, table) = setup(&env, &[]).await;
    let ctx = as_user(&owner);
    let notes = field_id(&table, "Notes");
    let written = env
        .platform
        .create_records(
            &ctx,
            &base,
            "Tasks",
            vec![
                cells(json!({"Name": "one", notes.as_str(): "by id", "Count": 3})),
                cells(json!({"name": "two", "Status": "Todo"})),
            ],
            false,
        )
        .await
        .unwrap();
    assert_eq!(written.records.len(), 2);
    let first = &written.records[0];
    assert_eq!(first.version, 1);
    assert_eq!(first.cells[&notes], json!("by id"));
    assert_eq!(first.cells[&field_id(&table, "Count")], json!(3));
    let stored = env
        .platform
        .runner()
        .load::<Record>(first.id.as_str())
        .await
        .unwrap();
    assert_eq!(stored.state.cells, first.cells);

    // Ten valid records and one bad cell in the tenth: nothing is written.
    let before = event_count(&env).await;
    let mut batch: Vec<_> = (0..9)
        .map(|i| cells(json!({"Name": format!("r{i}")})))
        .collect();
    batch.push(cells(json!({"Name": "bad", "Count": "many"})));
    let (code, message) = rejected(
        env.platform
            .create_records(&ctx, &base, &table.id.to_string(), batch, false)
            .await,
    );
    assert_eq!(code, "INVALID_VALUE_FOR_COLUMN");
    assert!(
        message.contains("record 9") && message.contains("Count"),
        "{message}"
    );
    assert_eq!(event_count(&env).await, before);

    let (code, _) = rejected(
        env.platform
            .create_records(&ctx, &base, "Tasks", vec![cells(json!({"Nope": 1}))], false)
            .await,
    );
    assert_eq!(code, "UNKNOWN_FIELD_NAME");
    let eleven: Vec<_> = (0..11).map(|_| cells(json!({"Name": "x"}))).collect();
    rejected(
        env.platform
            .create_records(&ctx, &base, "Tasks", eleven, false)
            .await,
    );
    rejected(
        env.platform
            .create_records(&ctx, &base, "Tasks", vec![], false)
            .await,
    );
    not_found(
        env.platform
            .create_records(&ctx, &base, "Nope", vec![cells(json!({}))], false)
            .await,
    );
    assert_eq!(event_count(&env).await, before);
}

#[tokio::test]
async fn typecast_adds_select_choices_in_the_same_append() {
    let env = env().await;
    let (owner, base, table) = setup(&env, &[]).await;
    let ctx = as_user(&owner);
    let (code, _) = rejected(
        env.platform
            .create_records(
                &ctx,
                &base,
                "Tasks",
                vec![cells(json!({"Status": "Done"}))],
                false,
            )
            .await,
    );
    assert_eq!(code, "INVALID_MULTIPLE_CHOICE_OPTIONS");
    let written = env
        .platform
        .create_records(
            &ctx,
            &base,
            "Tasks",
            vec![
                cells(json!({"Status": "Done"})),
                cells(json!({"Status": "Done", "Count": "7"})),
            ],
            true,
        )
        .await
        .unwrap();
    assert_eq!(
        written.records[1].cells[&field_id(&table, "Count")],
        json!(7)
    );
    let schema = env
        .platform
        .runner()
        .load::<Base>(base.as_str())
        .await
        .unwrap();
    let status = schema
        .state
        .table(&table.id)
        .unwrap()
        .field(&field_id(&table, "Status"))
        .unwrap()
        .clone();
    let names: Vec<_> = status
        .field_type
        .choices()
        .unwrap()
        .iter()
        .map(|c| c.name.clone())
        .collect();
    assert_eq!(names, vec!["Todo".to_owned(), "Done".to_owned()]);
    // The choice and the records share one transaction, hence one position.
    let history = env
        .platform
        .runner()
        .history::<Base>(base.as_str())
        .await
        .unwrap();
    let (choices, _) = history.last().unwrap();
    assert_eq!(choices.event_type, "ChoicesAdded");
    let record = env
        .platform
        .runner()
        .history::<Record>(written.records[0].id.as_str())
        .await
        .unwrap();
    assert_eq!(record[0].0.position.xid, choices.position.xid);
}

#[tokio::test]
async fn updates_merge_or_replace_and_fail_as_a_whole() {
    let env = env().await;
    let (owner, base, table) = setup(&env, &[]).await;
    let ctx = as_user(&owner);
    let created = env
        .platform
        .create_records(
            &ctx,
            &base,
            "Tasks",
            vec![
                cells(json!({"Name": "a", "Notes": "keep", "Count": 1})),
                cells(json!({"Name": "b", "Notes": "keep"})),
            ],
            false,
        )
        .await
        .unwrap();
    let a = created.records[0].id.clone();
    let b = created.records[1].id.clone();
    let notes = field_id(&table, "Notes");
    let count = field_id(&table, "Count");

    let merged = env
        .platform
        .update_records(
            &ctx,
            &base,
            "Tasks",
            vec![RecordUpdate {
                id: a.clone(),
                fields: cells(json!({"Count": 2})),
            }],
            false,
            false,
        )
        .await
        .unwrap();
    assert_eq!(merged.records[0].cells[&notes], json!("keep"));
    assert_eq!(merged.records[0].cells[&count], json!(2));
    assert_eq!(merged.records[0].version, 2);

    let replaced = env
        .platform
        .update_records(
            &ctx,
            &base,
            "Tasks",
            vec![RecordUpdate {
                id: a.clone(),
                fields: cells(json!({"Name": "A"})),
            }],
            true,
            false,
        )
        .await
        .unwrap();
    assert!(!replaced.records[0].cells.contains_key(&notes));
    assert!(!replaced.records[0].cells.contains_key(&count));

    let before = event_count(&env).await;
    rejected(
        env.platform
            .update_records(
                &ctx,
                &base,
                "Tasks",
                vec![
                    RecordUpdate {
                        id: b.clone(),
                        fields: cells(json!({"Name": "fine"})),
                    },
                    RecordUpdate {
                        id: a.clone(),
                        fields: cells(json!({"Count": "x"})),
                    },
                ],
                false,
                false,
            )
            .await,
    );
    rejected(
        env.platform
            .update_records(
                &ctx,
                &base,
                "Tasks",
                vec![
                    RecordUpdate {
                        id: b.clone(),
                        fields: cells(json!({"Name": "x"})),
                    },
                    RecordUpdate {
                        id: b.clone(),
                        fields: cells(json!({"Name": "y"})),
                    },
                ],
                false,
                false,
            )
            .await,
    );
    let ghost: RecordId = pyairtable_commands::auth::new_id();
    not_found(
        env.platform
            .update_records(
                &ctx,
                &base,
                "Tasks",
                vec![
                    RecordUpdate {
                        id: b.clone(),
                        fields: cells(json!({"Name": "fine"})),
                    },
                    RecordUpdate {
                        id: ghost,
                        fields: cells(json!({"Name": "x"})),
                    },
                ],
                false,
                false,
            )
            .await,
    );
    assert_eq!(event_count(&env).await, before);
}

#[tokio::test]
async fn sixteen_writers_to_different_fields_all_land() {
    let env = env().await;
    let names: Vec<String> = (0..16).map(|i| format!("F{i}")).collect();
    let extra: Vec<&str> = names.iter().map(String::as_str).collect();
    let (owner, base, _) = setup(&env, &extra).await;
    let ctx = as_user(&owner);
    let record = env
        .platform
        .create_records(
            &ctx,
            &base,
            "Tasks",
            vec![cells(json!({"Name": "shared"}))],
            false,
        )
        .await
        .unwrap()
        .records[0]
        .id
        .clone();
    let tasks: Vec<_> = names
        .iter()
        .map(|name| {
            let platform = env.platform.clone();
            let (ctx, base, record) = (ctx.clone(), base.clone(), record.clone());
            let update = RecordUpdate {
                id: record,
                fields: cells(json!({ name.clone(): format!("v-{name}") })),
            };
            tokio::spawn(async move {
                platform
                    .update_records(&ctx, &base, "Tasks", vec![update], false, false)
                    .await
            })
        })
        .collect();
    let mut versions = BTreeSet::new();
    for task in tasks {
        let written = task.await.unwrap().unwrap();
        let view = &written.records[0];
        // Each write was decided on the state it landed on: at version v the record holds its
        // name plus the v - 1 fields written so far.
        assert_eq!(
            view.cells.len() as u64,
            view.version,
            "decided on stale state"
        );
        versions.insert(view.version);
    }
    assert_eq!(versions, (2..=17).collect::<BTreeSet<u64>>());
    let state = env
        .platform
        .runner()
        .load::<Record>(record.as_str())
        .await
        .unwrap();
    let table = env
        .platform
        .runner()
        .load::<Base>(base.as_str())
        .await
        .unwrap()
        .state
        .tables[0]
        .clone();
    for name in &names {
        assert_eq!(
            state.state.cells[&field_id(&table, name)],
            json!(format!("v-{name}")),
            "{name} lost"
        );
    }
    assert_eq!(state.version, 17);
}

#[tokio::test]
async fn sixteen_writers_to_one_field_leave_a_complete_ordered_history() {
    let env = env().await;
    let (owner, base, table) = setup(&env, &[]).await;
    let ctx = as_user(&owner);
    let notes = field_id(&table, "Notes");
    let record = env
        .platform
        .create_records(
            &ctx,
            &base,
            "Tasks",
            vec![cells(json!({"Notes": "start"}))],
            false,
        )
        .await
        .unwrap()
        .records[0]
        .id
        .clone();
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let platform = env.platform.clone();
            let (ctx, base) = (ctx.clone(), base.clone());
            let update = RecordUpdate {
                id: record.clone(),
                fields: cells(json!({"Notes": format!("w{i}")})),
            };
            tokio::spawn(async move {
                platform
                    .update_records(&ctx, &base, "Tasks", vec![update], false, false)
                    .await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let history = env
        .platform
        .runner()
        .history::<Record>(record.as_str())
        .await
        .unwrap();
    let updates: Vec<_> = history
        .iter()
        .filter_map(|(_, e)| match e {
            RecordEvent::RecordUpdated { changes, .. } => Some(changes.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(updates.len(), 16);
    let mut previous = json!("start");
    let mut seen = BTreeSet::new();
    for changes in &updates {
        assert_eq!(changes.len(), 1);
        let change = &changes[0];
        assert_eq!(change.field_id, notes);
        assert_eq!(change.old, previous, "a write was decided on stale state");
        previous = change.new.clone();
        seen.insert(previous.as_str().unwrap().to_owned());
    }
    assert_eq!(seen.len(), 16);
}

#[tokio::test]
async fn links_keep_their_inverse_in_step() {
    let env = env().await;
    let (owner, base, tasks) = setup(&env, &[]).await;
    let ctx = as_user(&owner);
    let (_, link, inverse) = env.people_table(&owner, &base, &tasks.id).await;
    let made = env
        .platform
        .create_records(
            &ctx,
            &base,
            "Tasks",
            vec![cells(json!({"Name": "t1"})), cells(json!({"Name": "t2"}))],
            false,
        )
        .await
        .unwrap();
    let (t1, t2) = (made.records[0].id.clone(), made.records[1].id.clone());

    let person = env
        .platform
        .create_records(
            &ctx,
            &base,
            "People",
            vec![cells(
                json!({"Name": "p", "Tasks": [t1.as_str(), t2.as_str()]}),
            )],
            false,
        )
        .await
        .unwrap()
        .records[0]
        .id
        .clone();
    let load = |id: RecordId| {
        let platform = env.platform.clone();
        async move {
            platform
                .runner()
                .load::<Record>(id.as_str())
                .await
                .unwrap()
                .state
        }
    };
    assert_eq!(
        load(t1.clone()).await.cells[&inverse],
        json!([person.as_str()])
    );
    assert_eq!(
        load(t2.clone()).await.cells[&inverse],
        json!([person.as_str()])
    );

    env.platform
        .update_records(
            &ctx,
            &base,
            "People",
            vec![RecordUpdate {
                id: person.clone(),
                fields: cells(json!({"Tasks": [t2.as_str()]})),
            }],
            false,
            false,
        )
        .await
        .unwrap();
    assert!(!load(t1.clone()).await.cells.contains_key(&inverse));
    assert_eq!(
        load(person.clone()).await.cells[&link],
        json!([t2.as_str()])
    );

    // Links to records that do not exist (or live in another table) write nothing.
    let before = event_count(&env).await;
    let ghost: RecordId = pyairtable_commands::auth::new_id();
    let (code, _) = rejected(
        env.platform
            .create_records(
                &ctx,
                &base,
                "People",
                vec![cells(json!({"Tasks": [ghost.as_str()]}))],
                false,
            )
            .await,
    );
    assert_eq!(code, "ROW_DOES_NOT_EXIST");
    rejected(
        env.platform
            .create_records(
                &ctx,
                &base,
                "People",
                vec![cells(json!({"Tasks": [person.as_str()]}))],
                false,
            )
            .await,
    );
    assert_eq!(event_count(&env).await, before);

    // Reverting the person to version 1 relinks t1 on the other side too.
    let reverted = env
        .platform
        .revert_record(&ctx, &base, &person, 1)
        .await
        .unwrap();
    assert_eq!(
        reverted.records[0].cells[&link],
        json!([t1.as_str(), t2.as_str()])
    );
    assert_eq!(load(t1).await.cells[&inverse], json!([person.as_str()]));
}

#[tokio::test]
async fn delete_restore_revert_and_comments() {
    let env = env().await;
    let (owner, base, table) = setup(&env, &[]).await;
    let ctx = as_user(&owner);
    let notes = field_id(&table, "Notes");
    let id = env
        .platform
        .create_records(
            &ctx,
            &base,
            "Tasks",
            vec![cells(json!({"Notes": "v1"}))],
            false,
        )
        .await
        .unwrap()
        .records[0]
        .id
        .clone();
    for v in ["v2", "v3"] {
        env.platform
            .update_records(
                &ctx,
                &base,
                "Tasks",
                vec![RecordUpdate {
                    id: id.clone(),
                    fields: cells(json!({"Notes": v})),
                }],
                false,
                false,
            )
            .await
            .unwrap();
    }
    let reverted = env
        .platform
        .revert_record(&ctx, &base, &id, 1)
        .await
        .unwrap();
    assert_eq!(reverted.records[0].cells[&notes], json!("v1"));
    assert_eq!(reverted.records[0].version, 4);
    let (_, message) = rejected(env.platform.revert_record(&ctx, &base, &id, 9).await);
    assert!(message.contains("cannot revert to version 9"), "{message}");

    let deleted = env
        .platform
        .delete_records(&ctx, &base, "Tasks", vec![id.clone()])
        .await
        .unwrap();
    assert!(deleted.records[0].deleted);
    rejected(
        env.platform
            .delete_records(&ctx, &base, "Tasks", vec![id.clone()])
            .await,
    );
    rejected(
        env.platform
            .update_records(
                &ctx,
                &base,
                "Tasks",
                vec![RecordUpdate {
                    id: id.clone(),
                    fields: cells(json!({"Notes": "x"})),
                }],
                false,
                false,
            )
            .await,
    );
    let restored = env.platform.restore_record(&ctx, &base, &id).await.unwrap();
    assert!(!restored.records[0].deleted);
    rejected(env.platform.restore_record(&ctx, &base, &id).await);

    let (ws_members, commenter) = {
        let ws = env
            .platform
            .runner()
            .load::<Base>(base.as_str())
            .await
            .unwrap()
            .state
            .workspace_id
            .unwrap();
        let commenter = env.register("commenter@example.com").await;
        env.platform
            .add_member(
                &as_user(&owner),
                &ws,
                &commenter,
                pyairtable_domain::roles::Role::Commenter,
            )
            .await
            .unwrap();
        (ws, commenter)
    };
    let _ = ws_members;
    let comment = env
        .platform
        .add_comment(&as_user(&commenter), &base, &id, &format!("hey @[{owner}]"))
        .await
        .unwrap();
    env.platform
        .edit_comment(
            &as_user(&commenter),
            &base,
            &id,
            &comment.comment_id,
            "edited",
        )
        .await
        .unwrap();
    let (_, message) = rejected(
        env.platform
            .edit_comment(&ctx, &base, &id, &comment.comment_id, "not mine")
            .await,
    );
    assert!(message.contains("not the author"), "{message}");
    rejected(env.platform.add_comment(&ctx, &base, &id, "   ").await);
    forbidden(
        env.platform
            .update_records(
                &as_user(&commenter),
                &base,
                "Tasks",
                vec![RecordUpdate {
                    id: id.clone(),
                    fields: cells(json!({"Notes": "x"})),
                }],
                false,
                false,
            )
            .await,
    );
    env.platform
        .delete_comment(&as_user(&commenter), &base, &id, &comment.comment_id)
        .await
        .unwrap();
    let state = env
        .platform
        .runner()
        .load::<Record>(id.as_str())
        .await
        .unwrap();
    assert!(state.state.comments.is_empty());
    assert_eq!(state.state.cells[&notes], json!("v1"));
}

#[tokio::test]
async fn creators_and_owners_moderate_comments_others_only_delete_their_own() {
    let env = env().await;
    let (ws, members) = env.team().await;
    let member = |role: Role| {
        members
            .iter()
            .find(|(r, _)| *r == role)
            .map(|(_, u)| u.clone())
            .unwrap()
    };
    let (owner, creator, editor, commenter, reader) = (
        member(Role::Owner),
        member(Role::Creator),
        member(Role::Editor),
        member(Role::Commenter),
        member(Role::ReadOnly),
    );
    let base = env.base(&owner, &ws).await;
    env.tasks_table(&owner, &base, &[]).await;
    let id = env
        .platform
        .create_records(
            &as_user(&owner),
            &base,
            "Tasks",
            vec![cells(json!({"Name": "moderated"}))],
            false,
        )
        .await
        .unwrap()
        .records[0]
        .id
        .clone();
    let by_commenter = env
        .platform
        .add_comment(&as_user(&commenter), &base, &id, "spam")
        .await
        .unwrap()
        .comment_id;
    let by_editor = env
        .platform
        .add_comment(&as_user(&editor), &base, &id, "also spam")
        .await
        .unwrap()
        .comment_id;
    let by_owner = env
        .platform
        .add_comment(&as_user(&owner), &base, &id, "keep")
        .await
        .unwrap()
        .comment_id;

    // Below creator, someone else's comment is off limits, whatever the author's role.
    let before = event_count(&env).await;
    let message = forbidden(
        env.platform
            .delete_comment(&as_user(&editor), &base, &id, &by_commenter)
            .await,
    );
    assert!(message.contains("DeleteOthersComment"), "{message}");
    forbidden(
        env.platform
            .delete_comment(&as_user(&commenter), &base, &id, &by_editor)
            .await,
    );
    forbidden(
        env.platform
            .delete_comment(&as_user(&reader), &base, &id, &by_commenter)
            .await,
    );
    assert_eq!(event_count(&env).await, before, "a refusal writes nothing");

    // A creator removes a commenter's comment, an owner an editor's; the event names them.
    let moderated = env
        .platform
        .delete_comment(&as_user(&creator), &base, &id, &by_commenter)
        .await
        .unwrap();
    assert_eq!(moderated.comment_id, by_commenter);
    env.platform
        .delete_comment(&as_user(&owner), &base, &id, &by_editor)
        .await
        .unwrap();
    let history = env
        .platform
        .runner()
        .history::<Record>(id.as_str())
        .await
        .unwrap();
    let deleted_by: Vec<(String, String)> = history
        .iter()
        .filter_map(|(_, event)| match event {
            RecordEvent::CommentDeleted { comment_id, by, .. } => {
                Some((comment_id.to_string(), by.to_string()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        deleted_by,
        [
            (by_commenter.to_string(), creator.to_string()),
            (by_editor.to_string(), owner.to_string()),
        ]
    );
    let record = env
        .platform
        .runner()
        .load::<Record>(id.as_str())
        .await
        .unwrap();
    let left: Vec<_> = record.state.comments.iter().map(|c| c.id.clone()).collect();
    assert_eq!(left, [by_owner]);

    // Moderating a comment that is not there is the domain's clear rejection.
    let (_, message) = rejected(
        env.platform
            .delete_comment(&as_user(&creator), &base, &id, &by_commenter)
            .await,
    );
    assert!(message.contains("does not exist"), "{message}");
}
