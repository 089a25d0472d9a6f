//! Login, refresh-token rotation and reuse detection, logout, access tokens, API tokens, and
//! rebuilding the authentication tables from the event store.

use chrono::Duration;
use pyairtable_commands::auth::rebuild_auth_tables;
use pyairtable_commands::{CommandError, CreateApiToken};
use pyairtable_domain::roles::Scope;

use crate::harness::{PASSWORD, as_admin, as_user, env, now, system, unauthorized};

#[tokio::test]
async fn login_gives_tokens_that_verify() {
    let env = env().await;
    let user = env.register("ada@example.com").await;
    let session = env
        .platform
        .auth()
        .login("  Ada@Example.com ", PASSWORD, now())
        .await
        .unwrap();
    assert_eq!(session.user_id, user);
    assert!(!session.is_admin);
    let caller = env
        .platform
        .auth()
        .verify_access_token(&session.access_token, now())
        .unwrap();
    assert_eq!(caller.user_id, user);
    assert!(caller.token.is_none());
    // Expired by the caller's clock, not the library's.
    let late = now() + Duration::minutes(16);
    unauthorized(
        env.platform
            .auth()
            .verify_access_token(&session.access_token, late),
    );
}

#[tokio::test]
async fn wrong_password_and_unknown_email_fail_alike() {
    let env = env().await;
    env.register("ada@example.com").await;
    let auth = env.platform.auth();
    let wrong = unauthorized(
        auth.login("ada@example.com", "not the password", now())
            .await,
    );
    let unknown = unauthorized(auth.login("nobody@example.com", PASSWORD, now()).await);
    let malformed = unauthorized(auth.login("not an email", PASSWORD, now()).await);
    assert_eq!(wrong, unknown);
    assert_eq!(wrong, malformed);
    assert_eq!(wrong, "invalid email or password");
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_whole_family() {
    let env = env().await;
    env.register("ada@example.com").await;
    let auth = env.platform.auth();
    let first = auth
        .login("ada@example.com", PASSWORD, now())
        .await
        .unwrap();
    let second = auth.refresh(&first.refresh_token, now()).await.unwrap();
    assert_ne!(second.refresh_token, first.refresh_token);
    let third = auth.refresh(&second.refresh_token, now()).await.unwrap();

    // The first token is spent: presenting it again is a theft signal.
    let reuse = unauthorized(auth.refresh(&first.refresh_token, now()).await);
    assert!(reuse.contains("already used"), "{reuse}");
    // Every token of the family is dead now, including the newest one.
    let newest = unauthorized(auth.refresh(&third.refresh_token, now()).await);
    assert_eq!(newest, "refresh token revoked");

    // Another login starts an independent family.
    let other = auth
        .login("ada@example.com", PASSWORD, now())
        .await
        .unwrap();
    auth.refresh(&other.refresh_token, now()).await.unwrap();
}

#[tokio::test]
async fn expired_unknown_and_logged_out_refresh_tokens_fail() {
    let env = env().await;
    env.register("ada@example.com").await;
    let auth = env.platform.auth();
    let session = auth
        .login("ada@example.com", PASSWORD, now())
        .await
        .unwrap();
    let later = now() + Duration::days(31);
    assert_eq!(
        unauthorized(auth.refresh(&session.refresh_token, later).await),
        "refresh token expired"
    );
    unauthorized(auth.refresh("no-such-token", now()).await);

    let session = auth
        .login("ada@example.com", PASSWORD, now())
        .await
        .unwrap();
    auth.logout(&session.refresh_token, now()).await.unwrap();
    unauthorized(auth.refresh(&session.refresh_token, now()).await);
    unauthorized(auth.logout("no-such-token", now()).await);
}

#[tokio::test]
async fn deactivated_users_cannot_log_in_refresh_or_use_tokens() {
    let env = env().await;
    let admin = env.register_as("admin@example.com", true).await;
    let user = env.register("ada@example.com").await;
    let auth = env.platform.auth();
    let session = auth
        .login("ada@example.com", PASSWORD, now())
        .await
        .unwrap();
    let token = env
        .platform
        .create_api_token(
            &as_user(&user),
            CreateApiToken {
                owner: None,
                name: "ci".into(),
                scopes: vec![Scope::RecordsRead],
                base_ids: None,
            },
        )
        .await
        .unwrap()
        .token
        .unwrap();
    auth.verify_api_token(&token).await.unwrap();

    env.platform
        .deactivate_user(&as_admin(&admin), &user)
        .await
        .unwrap();
    assert_eq!(
        unauthorized(auth.login("ada@example.com", PASSWORD, now()).await),
        "account is deactivated"
    );
    // Deactivation revoked the sessions in the same transaction.
    unauthorized(auth.refresh(&session.refresh_token, now()).await);
    assert_eq!(
        unauthorized(auth.verify_api_token(&token).await),
        "account is deactivated"
    );

    env.platform
        .reactivate_user(&as_admin(&admin), &user)
        .await
        .unwrap();
    auth.login("ada@example.com", PASSWORD, now())
        .await
        .unwrap();
    auth.verify_api_token(&token).await.unwrap();
}

#[tokio::test]
async fn api_tokens_verify_and_fail_on_wrong_secret_or_revocation() {
    let env = env().await;
    let user = env.register("ada@example.com").await;
    let created = env
        .platform
        .create_api_token(
            &system(),
            CreateApiToken {
                owner: Some(user.clone()),
                name: "script".into(),
                scopes: vec![Scope::RecordsRead, Scope::RecordsWrite],
                base_ids: None,
            },
        )
        .await
        .unwrap();
    let token = created.token.clone().unwrap();
    assert!(token.starts_with(created.token_id.as_str()));
    let auth = env.platform.auth();

    let caller = auth.verify_api_token(&token).await.unwrap();
    assert_eq!(caller.user_id, user);
    let grant = caller.token.unwrap();
    assert_eq!(grant.token_id, created.token_id);
    assert_eq!(
        grant.grant.scopes,
        vec![Scope::RecordsRead, Scope::RecordsWrite]
    );

    // Same id, another secret.
    let (id, secret) = token.split_once('.').unwrap();
    let flipped: String = secret
        .chars()
        .map(|c| if c == '0' { '1' } else { '0' })
        .collect();
    let wrong = unauthorized(auth.verify_api_token(&format!("{id}.{flipped}")).await);
    assert_eq!(wrong, "invalid API token");
    assert_eq!(
        unauthorized(auth.verify_api_token("patAAAAAAAAAAAAAA.00").await),
        "invalid API token"
    );
    unauthorized(auth.verify_api_token("garbage").await);

    env.platform
        .revoke_api_token(&as_user(&user), &created.token_id)
        .await
        .unwrap();
    assert_eq!(
        unauthorized(auth.verify_api_token(&token).await),
        "API token revoked"
    );
}

#[tokio::test]
async fn tokens_cannot_act_on_sessions_and_passwords_change_with_the_current_one() {
    let env = env().await;
    let user = env.register("ada@example.com").await;
    let other = env.register("bob@example.com").await;

    let wrong = env
        .platform
        .change_password(
            &as_user(&user),
            &user,
            Some("not it at all"),
            "a new password!",
        )
        .await;
    assert!(
        matches!(wrong, Err(CommandError::Unauthorized { .. })),
        "{wrong:?}"
    );
    let missing = env
        .platform
        .change_password(&as_user(&user), &user, None, "a new password!")
        .await;
    assert!(
        matches!(missing, Err(CommandError::Unauthorized { .. })),
        "{missing:?}"
    );
    let someone_else = env
        .platform
        .change_password(&as_user(&other), &user, Some(PASSWORD), "a new password!")
        .await;
    assert!(
        matches!(someone_else, Err(CommandError::Forbidden { .. })),
        "{someone_else:?}"
    );

    let session = env
        .platform
        .auth()
        .login("ada@example.com", PASSWORD, now())
        .await
        .unwrap();
    env.platform
        .change_password(&as_user(&user), &user, Some(PASSWORD), "a new password!")
        .await
        .unwrap();
    unauthorized(
        env.platform
            .auth()
            .login("ada@example.com", PASSWORD, now())
            .await,
    );
    env.platform
        .auth()
        .login("ada@example.com", "a new password!", now())
        .await
        .unwrap();
    // The old session died with the old password.
    unauthorized(
        env.platform
            .auth()
            .refresh(&session.refresh_token, now())
            .await,
    );
}

#[tokio::test]
async fn auth_tables_are_rebuilt_from_the_event_store_keeping_password_hashes() {
    let env = env().await;
    let user = env.register("ada@example.com").await;
    let lost = env.register("bob@example.com").await;
    let token = env
        .platform
        .create_api_token(
            &as_user(&user),
            CreateApiToken {
                owner: None,
                name: "t".into(),
                scopes: vec![Scope::SchemaRead],
                base_ids: None,
            },
        )
        .await
        .unwrap();
    let pool = env.test.store().pool();
    // Ada's row is damaged but keeps its hash; Bob's row, hash included, is gone; a ghost
    // row (with a hash) belongs to no stream.
    sqlx::query(
        "UPDATE auth_users SET active = false, display_name = 'damaged' WHERE user_id = $1",
    )
    .bind(user.as_str())
    .execute(pool)
    .await
    .unwrap();
    sqlx::query("DELETE FROM auth_users WHERE user_id = $1")
        .bind(lost.as_str())
        .execute(pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO auth_users (user_id, email, display_name, password_hash, is_admin, active, stream_version) \
         SELECT 'usrZZZZZZZZZZZZZZ', 'ghost@example.com', 'ghost', password_hash, false, true, 1 \
         FROM auth_users WHERE user_id = $1",
    )
    .bind(user.as_str())
    .execute(pool)
    .await
    .unwrap();
    sqlx::query("UPDATE auth_tokens SET revoked = true, secret_hash = repeat('0', 64)")
        .execute(pool)
        .await
        .unwrap();
    // A row the store knows nothing about must go.
    sqlx::query(
        "INSERT INTO auth_tokens (token_id, user_id, name, secret_hash, scopes, revoked, created_at, stream_version) \
         VALUES ('patZZZZZZZZZZZZZZ', 'usrZZZZZZZZZZZZZZ', 'ghost', repeat('a', 64), '{}', false, now(), 1)",
    )
    .execute(pool)
    .await
    .unwrap();
    unauthorized(
        env.platform
            .auth()
            .login("ada@example.com", PASSWORD, now())
            .await,
    );

    // Other tests' open transactions may hold the shared feed back; the rebuild reads the
    // feed, so let it catch up with this test's last write first.
    let last = pyairtable_eventstore::Position::parse(&token.written.position).unwrap();
    assert!(
        env.test
            .store()
            .wait_for_commit(&last, std::time::Duration::from_secs(30))
            .await
            .unwrap()
    );
    let report = rebuild_auth_tables(env.test.store()).await.unwrap();
    assert_eq!(report.users, 2);
    assert_eq!(report.tokens, 1);
    assert_eq!(report.users_without_password, 1);

    // Ada's row is repaired from her stream and her hash survived the rebuild.
    env.platform
        .auth()
        .login("ada@example.com", PASSWORD, now())
        .await
        .unwrap();
    let ada = env
        .platform
        .user_by_email("ada@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ada.display_name, "ada");
    assert!(ada.active);
    // Bob's row is back, but the event store never held his hash: he is locked out until an
    // administrator resets the password, and cannot change it himself either.
    let bob = env
        .platform
        .user_by_email("bob@example.com")
        .await
        .unwrap()
        .expect("the row is recreated from the events");
    assert_eq!(bob.password_hash, None);
    assert_eq!(
        unauthorized(
            env.platform
                .auth()
                .login("bob@example.com", PASSWORD, now())
                .await
        ),
        "invalid email or password"
    );
    unauthorized(
        env.platform
            .change_password(&as_user(&lost), &lost, Some(PASSWORD), "a fresh password")
            .await,
    );
    env.platform
        .change_password(&system(), &lost, None, "a fresh password")
        .await
        .unwrap();
    env.platform
        .auth()
        .login("bob@example.com", "a fresh password", now())
        .await
        .unwrap();
    let ghost_user: i64 =
        sqlx::query_scalar("SELECT count(*) FROM auth_users WHERE user_id = 'usrZZZZZZZZZZZZZZ'")
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(ghost_user, 0);
    let ghost: i64 =
        sqlx::query_scalar("SELECT count(*) FROM auth_tokens WHERE token_id = 'patZZZZZZZZZZZZZZ'")
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(ghost, 0);
    // The damaged token row is repaired: the store's state at the same version wins.
    let caller = env
        .platform
        .auth()
        .verify_api_token(token.token.as_deref().unwrap())
        .await
        .unwrap();
    assert_eq!(caller.user_id, user);
}

#[tokio::test]
async fn a_rebuild_keeps_and_repairs_rows_whose_events_the_feed_holds_back() {
    let env = env().await;
    let pool = env.test.store().pool();
    // An open transaction with an id holds the feed's horizon: later commits stay invisible
    // to feed readers until it ends.
    let mut holder = pool.begin().await.unwrap();
    sqlx::query("SELECT pg_current_xact_id()")
        .execute(&mut *holder)
        .await
        .unwrap();
    let user = env.register("late@example.com").await;
    sqlx::query("UPDATE auth_users SET active = false WHERE user_id = $1")
        .bind(user.as_str())
        .execute(pool)
        .await
        .unwrap();

    rebuild_auth_tables(env.test.store()).await.unwrap();
    holder.rollback().await.unwrap();

    let row = env
        .platform
        .user_by_email("late@example.com")
        .await
        .unwrap()
        .expect("the row must survive the rebuild");
    assert!(row.active, "the row was repaired from its stream");
}
