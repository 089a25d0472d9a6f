//! User accounts through the real store: registration, email uniqueness, profile changes,
//! deactivation, and who may do each.

use pyairtable_commands::{CommandError, RegisterUser};
use pyairtable_domain::user::User;

use crate::harness::{PASSWORD, as_admin, as_user, env, forbidden, now, rejected, system};

fn input(email: &str) -> RegisterUser {
    RegisterUser {
        email: email.to_owned(),
        display_name: Some("Ada".into()),
        password: PASSWORD.to_owned(),
        is_admin: false,
    }
}

#[tokio::test]
async fn register_appends_an_event_with_who_and_why_and_fills_the_auth_table() {
    let env = env().await;
    let ctx = system();
    let written = env
        .platform
        .register_user(&ctx, input("Ada@Example.com"))
        .await
        .unwrap();
    assert_eq!(written.version, 1);
    assert!(!written.position.is_empty());

    let user = env
        .platform
        .runner()
        .load::<User>(written.id.as_str())
        .await
        .unwrap();
    let account = user.state.account().unwrap();
    assert_eq!(account.email.as_str(), "ada@example.com");
    // The hash is in the credential store, not in the aggregate.
    let stored: Option<String> =
        sqlx::query_scalar("SELECT password_hash FROM auth_users WHERE user_id = $1")
            .bind(written.id.as_str())
            .fetch_one(env.test.store().pool())
            .await
            .unwrap();
    assert!(stored.unwrap().starts_with("$argon2id$"));

    let events = env
        .platform
        .runner()
        .history::<User>(written.id.as_str())
        .await
        .unwrap();
    let (recorded, _) = &events[0];
    assert_eq!(recorded.event_type, "UserRegistered");
    assert_eq!(recorded.metadata.correlation_id, ctx.correlation_id);
    assert_eq!(
        serde_json::to_value(&recorded.metadata.actor).unwrap()["name"],
        "cli"
    );

    let found = env
        .platform
        .user_by_email("ADA@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.user_id, written.id);
    assert!(found.active);
}

#[tokio::test]
async fn emails_are_unique_even_under_concurrent_registration() {
    let env = env().await;
    env.register("ada@example.com").await;
    let (code, message) = rejected(
        env.platform
            .register_user(&system(), input("ADA@example.com"))
            .await,
    );
    assert_eq!(code, "email_taken");
    assert!(message.contains("ada@example.com"), "{message}");

    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let platform = env.platform.clone();
            tokio::spawn(async move {
                platform
                    .register_user(&system(), input("bob@example.com"))
                    .await
            })
        })
        .collect();
    let mut ok = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => ok += 1,
            Err(CommandError::Rejected {
                code: "email_taken",
                ..
            }) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(ok, 1);
    let users: i64 =
        sqlx::query_scalar("SELECT count(*) FROM auth_users WHERE email = 'bob@example.com'")
            .fetch_one(env.test.store().pool())
            .await
            .unwrap();
    assert_eq!(users, 1);
    // The losers wrote no events either.
    let registered: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE event_type = 'UserRegistered' AND payload::jsonb->>'email' = 'bob@example.com'",
    )
    .fetch_one(env.test.store().pool())
    .await
    .unwrap();
    assert_eq!(registered, 1);
}

#[tokio::test]
async fn registration_rejects_bad_input_and_non_admins() {
    let env = env().await;
    let user = env.register("ada@example.com").await;
    let admin = env.register_as("root@example.com", true).await;
    assert_eq!(
        rejected(
            env.platform
                .register_user(&system(), input("not-an-email"))
                .await
        )
        .0,
        "invalid_email"
    );
    let mut weak = input("bob@example.com");
    weak.password = "short".into();
    assert_eq!(
        rejected(env.platform.register_user(&system(), weak).await).0,
        "weak_password"
    );
    let mut nameless = input("bob@example.com");
    nameless.display_name = Some("   ".into());
    let (_, message) = rejected(env.platform.register_user(&system(), nameless).await);
    assert!(message.contains("display name"), "{message}");

    forbidden(
        env.platform
            .register_user(&as_user(&user), input("carl@example.com"))
            .await,
    );
    env.platform
        .register_user(&as_admin(&admin), input("carl@example.com"))
        .await
        .unwrap();
}

#[tokio::test]
async fn profile_changes_move_the_email_reservation() {
    let env = env().await;
    let ada = env.register("ada@example.com").await;
    let bob = env.register("bob@example.com").await;

    let taken = env
        .platform
        .change_profile(&as_user(&ada), &ada, "Ada", Some("bob@example.com"))
        .await;
    assert_eq!(rejected(taken).0, "email_taken");

    env.platform
        .change_profile(&as_user(&ada), &ada, "Ada L.", Some("ada@lovelace.org"))
        .await
        .unwrap();
    env.platform
        .auth()
        .login("ada@lovelace.org", PASSWORD, now())
        .await
        .unwrap();
    assert!(
        env.platform
            .auth()
            .login("ada@example.com", PASSWORD, now())
            .await
            .is_err()
    );
    // The old address is free again.
    env.platform
        .change_profile(&as_user(&bob), &bob, "Bob", Some("ada@example.com"))
        .await
        .unwrap();

    forbidden(
        env.platform
            .change_profile(&as_user(&bob), &ada, "Mallory", None)
            .await,
    );
    let (_, message) = rejected(
        env.platform
            .change_profile(&as_user(&bob), &bob, "Bob", None)
            .await,
    );
    assert!(message.contains("unchanged"), "{message}");
}

#[tokio::test]
async fn only_admins_deactivate_and_twice_is_rejected() {
    let env = env().await;
    let admin = env.register_as("root@example.com", true).await;
    let ada = env.register("ada@example.com").await;
    let bob = env.register("bob@example.com").await;
    forbidden(env.platform.deactivate_user(&as_user(&bob), &ada).await);
    env.platform
        .deactivate_user(&as_admin(&admin), &ada)
        .await
        .unwrap();
    let (_, message) = rejected(env.platform.deactivate_user(&system(), &ada).await);
    assert!(message.contains("already deactivated"), "{message}");
    let missing = env
        .platform
        .deactivate_user(&system(), &pyairtable_commands::auth::new_id())
        .await;
    assert!(
        matches!(missing, Err(CommandError::NotFound { kind: "user", .. })),
        "{missing:?}"
    );
    forbidden(env.platform.reactivate_user(&as_user(&bob), &ada).await);
    env.platform.reactivate_user(&system(), &ada).await.unwrap();
}
