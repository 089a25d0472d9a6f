//! Credentials are not events: password hashes live only in the credential store
//! (`auth_users.password_hash`), written in the transaction that appends the credential-free
//! `UserRegistered` / `UserPasswordChanged` event.

use pyairtable_commands::RegisterUser;
use pyairtable_commands::runner::stream_id;
use pyairtable_domain::user::User;
use pyairtable_eventstore::Direction;

use crate::harness::{Env, as_user, env, now, rejected, system, unauthorized};

const FIRST: &str = "first secret passphrase";
const SECOND: &str = "second secret passphrase";
const THIRD: &str = "third secret passphrase";

async fn stored_hash(env: &Env, user: &pyairtable_domain::ids::UserId) -> Option<String> {
    sqlx::query_scalar("SELECT password_hash FROM auth_users WHERE user_id = $1")
        .bind(user.as_str())
        .fetch_one(env.test.store().pool())
        .await
        .unwrap()
}

/// Every string that must never be found in the event log, with a name for the message.
fn secrets(hashes: &[String]) -> Vec<(String, String)> {
    let mut out = vec![("an argon2 hash".to_owned(), "$argon2".to_owned())];
    for (i, hash) in hashes.iter().enumerate() {
        out.push((format!("hash {i}"), hash.clone()));
        // The salt and digest segments on their own, in case something re-encodes the PHC
        // string around them.
        for segment in hash.rsplit('$').take(2) {
            out.push((format!("a segment of hash {i}"), segment.to_owned()));
        }
    }
    for password in [FIRST, SECOND, THIRD] {
        out.push((format!("the password {password:?}"), password.to_owned()));
    }
    out
}

#[track_caller]
fn assert_clean(what: &str, text: &str, secrets: &[(String, String)]) {
    for (name, secret) in secrets {
        assert!(
            !text.contains(secret.as_str()),
            "{what} contains {name}: {text}"
        );
    }
}

#[tokio::test]
async fn neither_passwords_nor_their_hashes_reach_the_event_log() {
    let env = env().await;
    let user = env
        .platform
        .register_user(
            &system(),
            RegisterUser {
                email: "ada@example.com".into(),
                display_name: Some("Ada".into()),
                password: FIRST.into(),
                is_admin: false,
            },
        )
        .await
        .unwrap()
        .id;
    let first_hash = stored_hash(&env, &user).await.expect("hash stored");
    // The user changes it, then an administrator resets it: both paths that write a hash.
    env.platform
        .change_password(&as_user(&user), &user, Some(FIRST), SECOND)
        .await
        .unwrap();
    let second_hash = stored_hash(&env, &user).await.expect("hash stored");
    env.platform
        .change_password(&system(), &user, None, THIRD)
        .await
        .unwrap();
    let third_hash = stored_hash(&env, &user).await.expect("hash stored");
    let hashes = [first_hash, second_hash, third_hash];
    for hash in &hashes {
        // So that searching for "$argon2" and for the hashes can find something if leaked.
        assert!(hash.starts_with("$argon2id$"), "{hash}");
    }
    assert_ne!(hashes[0], hashes[1]);
    assert_ne!(hashes[1], hashes[2]);
    let secrets = secrets(&hashes);

    // Through the store's API, as every consumer (relay, projections, CLI) reads it.
    let stream = stream_id::<User>(user.as_str()).unwrap();
    let events = env
        .test
        .store()
        .read_stream(&stream, 1, Direction::Forward, 100)
        .await
        .unwrap();
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        types,
        [
            "UserRegistered",
            "UserPasswordChanged",
            "UserPasswordChanged"
        ]
    );
    for event in &events {
        let payload = serde_json::to_string(&event.payload).unwrap();
        assert_clean("an event payload", &payload, &secrets);
        let metadata = serde_json::to_string(&event.metadata).unwrap();
        assert_clean("event metadata", &metadata, &secrets);
    }
    // A password change records only that it happened.
    assert_eq!(
        events[1].payload,
        serde_json::json!({"type": "UserPasswordChanged", "at": events[1].payload["at"]})
    );

    // Straight from SQL: every column of every row of the stream, as text.
    let rows: Vec<String> =
        sqlx::query_scalar("SELECT e::text FROM events e WHERE stream_id = $1 ORDER BY version")
            .bind(stream.as_str())
            .fetch_all(env.test.store().pool())
            .await
            .unwrap();
    assert_eq!(rows.len(), 3);
    for row in &rows {
        assert_clean("an events row", row, &secrets);
    }
    // Nor anywhere else in the log, nor in a snapshot.
    let everything: Vec<String> = sqlx::query_scalar(
        "SELECT e::text FROM events e UNION ALL SELECT s::text FROM snapshots s",
    )
    .fetch_all(env.test.store().pool())
    .await
    .unwrap();
    for row in &everything {
        assert_clean("the event store", row, &secrets);
    }

    let auth = env.platform.auth();
    auth.login("ada@example.com", THIRD, now()).await.unwrap();
    for old in [FIRST, SECOND] {
        assert_eq!(
            unauthorized(auth.login("ada@example.com", old, now()).await),
            "invalid email or password"
        );
    }
}

#[tokio::test]
async fn the_current_password_is_refused_as_a_new_one_and_nothing_is_written() {
    let env = env().await;
    let user = env.register("ada@example.com").await;
    let hash = stored_hash(&env, &user).await;
    let version = |env: &Env| {
        let runner = env.platform.runner().clone();
        let user = user.clone();
        async move { runner.load::<User>(user.as_str()).await.unwrap().version }
    };
    let before = version(&env).await;

    let (code, message) = rejected(
        env.platform
            .change_password(
                &as_user(&user),
                &user,
                Some(crate::harness::PASSWORD),
                crate::harness::PASSWORD,
            )
            .await,
    );
    assert_eq!(code, "password_unchanged");
    assert!(message.contains("current one"), "{message}");
    let (code, _) = rejected(
        env.platform
            .change_password(&system(), &user, None, crate::harness::PASSWORD)
            .await,
    );
    assert_eq!(code, "password_unchanged");
    assert_eq!(version(&env).await, before, "no event was appended");
    assert_eq!(
        stored_hash(&env, &user).await,
        hash,
        "the hash is untouched"
    );
    // A weak password is refused before any hashing, as before.
    let (code, _) = rejected(
        env.platform
            .change_password(&system(), &user, None, "short")
            .await,
    );
    assert_eq!(code, "weak_password");
}

#[tokio::test]
async fn a_password_change_replayed_with_its_idempotency_key_returns_the_first_result() {
    let env = env().await;
    let user = env.register("ada@example.com").await;
    let ctx = system().with_idempotency_key("reset-1");
    let first = env
        .platform
        .change_password(&ctx, &user, None, SECOND)
        .await
        .unwrap();
    // The stored hash is now SECOND's: without the key this would be `password_unchanged`.
    let again = env
        .platform
        .change_password(&ctx, &user, None, SECOND)
        .await;
    assert!(
        matches!(&again, Ok(w) if *w == first),
        "expected the stored result, got {again:?}"
    );
}
