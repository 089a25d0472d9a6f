//! Representative forbidden paths for each role and for API tokens (the full matrix is tested
//! in the domain): the service must consult the caller's role in the base's workspace.

use pyairtable_commands::service::{FieldChange, RecordUpdate};
use pyairtable_commands::{
    Authenticated, Caller, CommandContext, CommandError, CreateApiToken, TokenCaller,
};
use pyairtable_domain::fields::FieldType;
use pyairtable_domain::permissions::TokenGrant;
use pyairtable_domain::roles::{Role, Scope};
use serde_json::{Map, Value, json};

use crate::harness::{as_user, env, field, not_found};

fn cells(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

fn outcome<T>(result: &Result<T, CommandError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(CommandError::Forbidden { .. }) => "forbidden",
        Err(CommandError::NotFound { .. }) => "not found",
        Err(CommandError::Rejected { .. }) => "rejected",
        Err(_) => "other",
    }
}

#[tokio::test]
async fn each_role_meets_its_limits() {
    let env = env().await;
    let (ws, members) = env.team().await;
    let owner = members[0].1.clone();
    let base = env.base(&owner, &ws).await;
    let table = env.tasks_table(&owner, &base, &[]).await;
    let record = env
        .platform
        .create_records(
            &as_user(&owner),
            &base,
            "Tasks",
            vec![cells(json!({"Name": "r"}))],
            false,
        )
        .await
        .unwrap()
        .records[0]
        .id
        .clone();

    for (role, user) in &members {
        let ctx = as_user(user);
        let update = env
            .platform
            .update_records(
                &ctx,
                &base,
                "Tasks",
                vec![RecordUpdate {
                    id: record.clone(),
                    fields: cells(json!({"Name": format!("by {role}")})),
                }],
                false,
                false,
            )
            .await;
        let comment = env
            .platform
            .add_comment(&ctx, &base, &record, "hello")
            .await;
        let add_field = env
            .platform
            .add_field(
                &ctx,
                &base,
                &table.id,
                field(&format!("F {role}"), FieldType::SingleLineText),
            )
            .await;
        let invite = env
            .platform
            .invite_member(
                &ctx,
                &ws,
                &format!("{role}-invitee@example.com"),
                Role::Editor,
            )
            .await;
        let archive_probe = env
            .platform
            .change_member_role(&ctx, &ws, &owner, Role::Creator)
            .await;
        let expected = match role {
            Role::Owner => ["ok", "ok", "ok", "ok", "rejected"],
            Role::Creator => ["ok", "ok", "ok", "ok", "forbidden"],
            Role::Editor => ["ok", "ok", "forbidden", "forbidden", "forbidden"],
            Role::Commenter => ["forbidden", "ok", "forbidden", "forbidden", "forbidden"],
            Role::ReadOnly => [
                "forbidden",
                "forbidden",
                "forbidden",
                "forbidden",
                "forbidden",
            ],
        };
        let got = [
            outcome(&update),
            outcome(&comment),
            outcome(&add_field),
            outcome(&invite),
            outcome(&archive_probe),
        ];
        assert_eq!(got, expected, "role {role}");
    }
}

#[tokio::test]
async fn api_tokens_are_held_to_their_scopes_and_bases() {
    let env = env().await;
    let (ws, members) = env.team().await;
    let owner = members[0].1.clone();
    let base = env.base(&owner, &ws).await;
    let other_base = env.base(&owner, &ws).await;
    let table = env.tasks_table(&owner, &base, &[]).await;
    env.tasks_table(&owner, &other_base, &[]).await;

    let created = env
        .platform
        .create_api_token(
            &as_user(&owner),
            CreateApiToken {
                owner: None,
                name: "records only".into(),
                scopes: vec![Scope::RecordsWrite],
                base_ids: Some(vec![base.clone()]),
            },
        )
        .await
        .unwrap();
    // The API resolves the token into the caller; use that path.
    let caller = env
        .platform
        .auth()
        .verify_api_token(created.token.as_deref().unwrap())
        .await
        .unwrap();
    let ctx = CommandContext::new(Caller::User(caller.clone()));

    env.platform
        .create_records(
            &ctx,
            &base,
            "Tasks",
            vec![cells(json!({"Name": "via token"}))],
            false,
        )
        .await
        .unwrap();
    let elsewhere = env
        .platform
        .create_records(
            &ctx,
            &other_base,
            "Tasks",
            vec![cells(json!({"Name": "x"}))],
            false,
        )
        .await;
    assert_eq!(outcome(&elsewhere), "forbidden", "{elsewhere:?}");
    let schema = env
        .platform
        .update_field(
            &ctx,
            &base,
            &table.id,
            &table.fields[1].id,
            FieldChange {
                name: Some("N".into()),
                ..FieldChange::default()
            },
        )
        .await;
    assert_eq!(outcome(&schema), "forbidden", "{schema:?}");
    // Tokens cannot mint tokens or manage accounts.
    let minted = env
        .platform
        .create_api_token(
            &ctx,
            CreateApiToken {
                owner: None,
                name: "again".into(),
                scopes: vec![Scope::RecordsRead],
                base_ids: None,
            },
        )
        .await;
    assert_eq!(outcome(&minted), "forbidden", "{minted:?}");

    // A token is never more than its owner: a read-only member's write token cannot write.
    let reader = members[4].1.clone();
    let reader_ctx = CommandContext::new(Caller::User(Authenticated {
        user_id: reader,
        is_admin: false,
        token: Some(TokenCaller {
            token_id: pyairtable_commands::auth::new_id(),
            grant: TokenGrant {
                scopes: vec![Scope::RecordsWrite],
                base_ids: None,
            },
        }),
    }));
    let write = env
        .platform
        .create_records(
            &reader_ctx,
            &base,
            "Tasks",
            vec![cells(json!({"Name": "x"}))],
            false,
        )
        .await;
    assert_eq!(outcome(&write), "forbidden", "{write:?}");

    // Someone else's token cannot be revoked, and is reported missing.
    let stranger = env.register("stranger@example.com").await;
    not_found(
        env.platform
            .revoke_api_token(&as_user(&stranger), &created.token_id)
            .await,
    );
    let _ = caller;
}
