//! Given/when/then tests for every API token command, accepted and rejected.

use chrono::{DateTime, TimeZone, Utc};
use pyairtable_domain::ids::{BaseId, TokenId, UserId};
use pyairtable_domain::permissions::TokenGrant;
use pyairtable_domain::roles::Scope;
use pyairtable_domain::testing::TestHarness;
use pyairtable_domain::token::{ApiToken, TokenCommand, TokenError, TokenEvent};
use pyairtable_domain::user::NameError;

const SECRET_HASH: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

fn at(minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 1, 10, minute, 0).unwrap()
}

fn token_id() -> TokenId {
    TokenId::parse("patTokenToken0001").unwrap()
}

fn owner() -> UserId {
    UserId::parse("usrOwnerOwner0001").unwrap()
}

fn base(n: u8) -> BaseId {
    BaseId::parse(&format!("appBaseBaseBase{n:02}")).unwrap()
}

fn create(
    name: &str,
    scopes: Vec<Scope>,
    base_ids: Option<Vec<BaseId>>,
    hash: &str,
) -> TokenCommand {
    TokenCommand::Create {
        id: token_id(),
        owner: owner(),
        name: name.into(),
        scopes,
        base_ids,
        secret_hash: hash.into(),
        at: at(0),
    }
}

fn created() -> TokenEvent {
    TokenEvent::ApiTokenCreated {
        id: token_id(),
        owner: owner(),
        name: "sync".into(),
        scopes: vec![Scope::RecordsRead],
        base_ids: None,
        secret_hash: SECRET_HASH.into(),
        at: at(0),
    }
}

#[test]
fn create_sorts_and_deduplicates_scopes_and_bases() {
    let token = TestHarness::<ApiToken>::given([])
        .when(create(
            " sync ",
            vec![Scope::RecordsWrite, Scope::RecordsRead, Scope::RecordsWrite],
            Some(vec![base(2), base(1), base(2)]),
            SECRET_HASH,
        ))
        .then([TokenEvent::ApiTokenCreated {
            id: token_id(),
            owner: owner(),
            name: "sync".into(),
            scopes: vec![Scope::RecordsRead, Scope::RecordsWrite],
            base_ids: Some(vec![base(1), base(2)]),
            secret_hash: SECRET_HASH.into(),
            at: at(0),
        }]);
    assert!(token.is_active());
    assert_eq!(
        token.grant(),
        Some(TokenGrant {
            scopes: vec![Scope::RecordsRead, Scope::RecordsWrite],
            base_ids: Some(vec![base(1), base(2)]),
        })
    );
}

#[test]
fn create_without_base_restriction() {
    TestHarness::<ApiToken>::given([])
        .when(create("sync", vec![Scope::RecordsRead], None, SECRET_HASH))
        .then([created()]);
}

#[test]
fn create_rejections() {
    TestHarness::<ApiToken>::given([created()])
        .when(create("sync", vec![Scope::RecordsRead], None, SECRET_HASH))
        .then_err(TokenError::AlreadyCreated { id: token_id() });
    TestHarness::<ApiToken>::given([])
        .when(create("  ", vec![Scope::RecordsRead], None, SECRET_HASH))
        .then_err(TokenError::InvalidName(NameError::Empty));
    TestHarness::<ApiToken>::given([])
        .when(create(
            &"t".repeat(101),
            vec![Scope::RecordsRead],
            None,
            SECRET_HASH,
        ))
        .then_err(TokenError::InvalidName(NameError::TooLong {
            chars: 101,
            max: 100,
        }));
    TestHarness::<ApiToken>::given([])
        .when(create("sync", vec![], None, SECRET_HASH))
        .then_err(TokenError::NoScopes);
    TestHarness::<ApiToken>::given([])
        .when(create(
            "sync",
            vec![Scope::RecordsRead],
            Some(vec![]),
            SECRET_HASH,
        ))
        .then_err(TokenError::EmptyBaseRestriction);
}

#[test]
fn create_rejects_anything_but_a_lowercase_sha256_hex() {
    for bad in [
        "",
        "secret",
        &SECRET_HASH[..63],
        &SECRET_HASH.to_uppercase(),
        &format!("{SECRET_HASH}0"),
        &SECRET_HASH.replace('9', "g"),
    ] {
        TestHarness::<ApiToken>::given([])
            .when(create("sync", vec![Scope::RecordsRead], None, bad))
            .then_err(TokenError::InvalidSecretHash);
    }
}

#[test]
fn revoke() {
    let token = TestHarness::<ApiToken>::given([created()])
        .when(TokenCommand::Revoke { at: at(5) })
        .then([TokenEvent::ApiTokenRevoked { at: at(5) }]);
    assert!(!token.is_active());
    assert_eq!(token.grant(), None);
    assert_eq!(token.state().unwrap().revoked_at, Some(at(5)));
}

#[test]
fn revoke_rejections() {
    TestHarness::<ApiToken>::given([])
        .when(TokenCommand::Revoke { at: at(5) })
        .then_err(TokenError::NotCreated);
    TestHarness::<ApiToken>::given([created(), TokenEvent::ApiTokenRevoked { at: at(1) }])
        .when(TokenCommand::Revoke { at: at(5) })
        .then_err(TokenError::AlreadyRevoked { id: token_id() });
}

#[test]
fn event_json_uses_airtable_scope_names() {
    let json = serde_json::to_value(created()).unwrap();
    assert_eq!(json["type"], "ApiTokenCreated");
    assert_eq!(json["scopes"][0], "data.records:read");
    assert!(json["base_ids"].is_null());
}
