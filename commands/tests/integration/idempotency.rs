//! Idempotency keys: a replay returns the first result and writes nothing; another request
//! under the same key is refused; concurrent duplicates write once.

use pyairtable_commands::{CommandError, CreateApiToken};
use pyairtable_domain::roles::Scope;
use serde_json::{Map, Value, json};

use crate::harness::{Env, as_user, env, rejected};

async fn event_count(env: &Env) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(env.test.store().pool())
        .await
        .unwrap()
}

fn cells(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

#[tokio::test]
async fn a_replayed_key_returns_the_first_result_and_writes_nothing() {
    let env = env().await;
    let (ws, members) = env.team().await;
    let owner = members[0].1.clone();
    let base = env.base(&owner, &ws).await;
    env.tasks_table(&owner, &base, &[]).await;
    let ctx = as_user(&owner).with_idempotency_key("create-42");
    let records = vec![cells(json!({"Name": "once"}))];

    let first = env
        .platform
        .create_records(&ctx, &base, "Tasks", records.clone(), false)
        .await
        .unwrap();
    let after_first = event_count(&env).await;
    // A retry: new correlation id and clock, same key and body.
    let mut retry = as_user(&owner).with_idempotency_key("create-42");
    retry.now = ctx.now + chrono::Duration::seconds(5);
    let second = env
        .platform
        .create_records(&retry, &base, "Tasks", records.clone(), false)
        .await
        .unwrap();
    assert_eq!(second, first);
    assert_eq!(event_count(&env).await, after_first);

    // Same key, different body: refused, nothing written.
    let other = env
        .platform
        .create_records(
            &ctx,
            &base,
            "Tasks",
            vec![cells(json!({"Name": "twice"}))],
            false,
        )
        .await;
    assert!(
        matches!(&other, Err(CommandError::IdempotencyKeyReused { key }) if key == "create-42"),
        "{other:?}"
    );
    assert_eq!(event_count(&env).await, after_first);

    // Keys are per caller: another user may use the same string.
    let creator = members[1].1.clone();
    let theirs = env
        .platform
        .create_records(
            &as_user(&creator).with_idempotency_key("create-42"),
            &base,
            "Tasks",
            records,
            false,
        )
        .await
        .unwrap();
    assert_ne!(theirs.records[0].id, first.records[0].id);
}

#[tokio::test]
async fn concurrent_requests_with_one_key_write_once() {
    let env = env().await;
    let (ws, members) = env.team().await;
    let owner = members[0].1.clone();
    let base = env.base(&owner, &ws).await;
    env.tasks_table(&owner, &base, &[]).await;
    let before = event_count(&env).await;
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let platform = env.platform.clone();
            let (owner, base) = (owner.clone(), base.clone());
            tokio::spawn(async move {
                let ctx = as_user(&owner).with_idempotency_key("same");
                platform
                    .create_records(
                        &ctx,
                        &base,
                        "Tasks",
                        vec![cells(json!({"Name": "x"}))],
                        false,
                    )
                    .await
            })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap().unwrap());
    }
    assert!(
        results.windows(2).all(|w| w[0] == w[1]),
        "all callers see the one result"
    );
    assert_eq!(event_count(&env).await, before + 1);
}

#[tokio::test]
async fn a_replayed_token_creation_does_not_reveal_the_secret_again() {
    let env = env().await;
    let user = env.register("ada@example.com").await;
    let ctx = as_user(&user).with_idempotency_key("token-1");
    let input = CreateApiToken {
        owner: None,
        name: "ci".into(),
        scopes: vec![Scope::RecordsRead],
        base_ids: None,
    };
    let first = env
        .platform
        .create_api_token(&ctx, input.clone())
        .await
        .unwrap();
    assert!(first.token.is_some());
    let again = env.platform.create_api_token(&ctx, input).await.unwrap();
    assert_eq!(again.token_id, first.token_id);
    assert_eq!(again.written, first.written);
    assert_eq!(again.token, None);
    let stored: String = sqlx::query_scalar("SELECT result::text FROM idempotency_keys")
        .fetch_one(env.test.store().pool())
        .await
        .unwrap();
    let secret = first.token.unwrap();
    assert!(!stored.contains(secret.split_once('.').unwrap().1));

    let (code, _) = rejected(
        env.platform
            .create_api_token(
                &as_user(&user).with_idempotency_key(""),
                CreateApiToken {
                    owner: None,
                    name: "x".into(),
                    scopes: vec![Scope::RecordsRead],
                    base_ids: None,
                },
            )
            .await,
    );
    assert_eq!(code, "invalid_idempotency_key");
}
