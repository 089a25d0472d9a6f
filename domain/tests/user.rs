//! Given/when/then tests for every user command, accepted and rejected.

use chrono::{DateTime, TimeZone, Utc};
use pyairtable_domain::aggregate::Aggregate;
use pyairtable_domain::ids::UserId;
use pyairtable_domain::testing::TestHarness;
use pyairtable_domain::user::{
    Email, InvalidEmail, NameError, User, UserCommand, UserError, UserEvent,
};

fn at(minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 1, 12, minute, 0).unwrap()
}

fn ana() -> UserId {
    UserId::parse("usrAnaAnaAnaAna12").unwrap()
}

fn email(s: &str) -> Email {
    Email::parse(s).unwrap()
}

fn registered() -> UserEvent {
    UserEvent::UserRegistered {
        id: ana(),
        email: email("ana@example.org"),
        display_name: "Ana".into(),
        is_admin: false,
        at: at(0),
    }
}

fn register(email: &str, name: &str) -> UserCommand {
    UserCommand::Register {
        id: ana(),
        email: email.into(),
        display_name: name.into(),
        is_admin: true,
        at: at(0),
    }
}

#[test]
fn register_normalises_email_and_name() {
    let user = TestHarness::<User>::given([])
        .when(register(" Ana@Example.ORG ", "  Ana  "))
        .then([UserEvent::UserRegistered {
            id: ana(),
            email: email("ana@example.org"),
            display_name: "Ana".into(),
            is_admin: true,
            at: at(0),
        }]);
    let account = user.account().unwrap();
    assert!(account.active);
    assert!(account.is_admin);
    assert_eq!(account.registered_at, at(0));
}

#[test]
fn register_twice_is_rejected() {
    TestHarness::<User>::given([registered()])
        .when(register("bob@example.org", "Bob"))
        .then_err(UserError::AlreadyRegistered { id: ana() });
}

#[test]
fn register_rejects_invalid_email() {
    TestHarness::<User>::given([])
        .when(register("ana-at-example.org", "Ana"))
        .then_err(UserError::InvalidEmail(InvalidEmail::NotOneAt {
            value: "ana-at-example.org".into(),
        }));
}

#[test]
fn register_rejects_empty_display_name() {
    TestHarness::<User>::given([])
        .when(register("ana@example.org", "   "))
        .then_err(UserError::InvalidDisplayName(NameError::Empty));
}

#[test]
fn register_rejects_too_long_display_name() {
    TestHarness::<User>::given([])
        .when(register("ana@example.org", &"n".repeat(101)))
        .then_err(UserError::InvalidDisplayName(NameError::TooLong {
            chars: 101,
            max: 100,
        }));
}

#[test]
fn change_profile_name_only_keeps_email() {
    TestHarness::<User>::given([registered()])
        .when(UserCommand::ChangeProfile {
            display_name: "Ana López".into(),
            email: None,
            at: at(1),
        })
        .then([UserEvent::UserProfileChanged {
            display_name: "Ana López".into(),
            email: email("ana@example.org"),
            at: at(1),
        }]);
}

#[test]
fn change_profile_email_only() {
    let user = TestHarness::<User>::given([registered()])
        .when(UserCommand::ChangeProfile {
            display_name: "Ana".into(),
            email: Some("ANA@new.example.org".into()),
            at: at(2),
        })
        .then([UserEvent::UserProfileChanged {
            display_name: "Ana".into(),
            email: email("ana@new.example.org"),
            at: at(2),
        }]);
    assert_eq!(
        user.account().unwrap().email.as_str(),
        "ana@new.example.org"
    );
    assert_eq!(user.account().unwrap().updated_at, at(2));
}

#[test]
fn change_profile_that_changes_nothing_is_rejected() {
    // The email differs only in case and spacing, so after normalisation it is the same.
    TestHarness::<User>::given([registered()])
        .when(UserCommand::ChangeProfile {
            display_name: " Ana ".into(),
            email: Some(" ANA@example.org".into()),
            at: at(1),
        })
        .then_err(UserError::ProfileUnchanged);
}

#[test]
fn change_profile_rejects_invalid_email_and_name() {
    TestHarness::<User>::given([registered()])
        .when(UserCommand::ChangeProfile {
            display_name: "Ana".into(),
            email: Some("ana@".into()),
            at: at(1),
        })
        .then_err(UserError::InvalidEmail(InvalidEmail::InvalidDomain {
            domain: String::new(),
        }));
    TestHarness::<User>::given([registered()])
        .when(UserCommand::ChangeProfile {
            display_name: "".into(),
            email: None,
            at: at(1),
        })
        .then_err(UserError::InvalidDisplayName(NameError::Empty));
}

#[test]
fn change_profile_of_unregistered_or_deactivated_user_is_rejected() {
    let cmd = || UserCommand::ChangeProfile {
        display_name: "Ana".into(),
        email: None,
        at: at(1),
    };
    TestHarness::<User>::given([])
        .when(cmd())
        .then_err(UserError::NotRegistered);
    TestHarness::<User>::given([registered(), UserEvent::UserDeactivated { at: at(1) }])
        .when(cmd())
        .then_err(UserError::Deactivated);
}

#[test]
fn change_password_records_only_that_it_happened() {
    let user = TestHarness::<User>::given([registered()])
        .when(UserCommand::ChangePassword { at: at(3) })
        .then([UserEvent::UserPasswordChanged { at: at(3) }]);
    assert_eq!(user.account().unwrap().updated_at, at(3));
    // Changing it again is a new fact: whether the new password equals the current one is
    // the command layer's question, since only it holds the hash.
    TestHarness::<User>::given([registered(), UserEvent::UserPasswordChanged { at: at(3) }])
        .when(UserCommand::ChangePassword { at: at(4) })
        .then([UserEvent::UserPasswordChanged { at: at(4) }]);
}

#[test]
fn change_password_rejections() {
    TestHarness::<User>::given([])
        .when(UserCommand::ChangePassword { at: at(3) })
        .then_err(UserError::NotRegistered);
    TestHarness::<User>::given([registered(), UserEvent::UserDeactivated { at: at(1) }])
        .when(UserCommand::ChangePassword { at: at(3) })
        .then_err(UserError::Deactivated);
}

#[test]
fn deactivate() {
    let user = TestHarness::<User>::given([registered()])
        .when(UserCommand::Deactivate { at: at(4) })
        .then([UserEvent::UserDeactivated { at: at(4) }]);
    assert!(!user.account().unwrap().active);
}

#[test]
fn deactivate_rejections() {
    TestHarness::<User>::given([])
        .when(UserCommand::Deactivate { at: at(4) })
        .then_err(UserError::NotRegistered);
    TestHarness::<User>::given([registered(), UserEvent::UserDeactivated { at: at(1) }])
        .when(UserCommand::Deactivate { at: at(4) })
        .then_err(UserError::AlreadyDeactivated);
}

#[test]
fn reactivate() {
    let user = TestHarness::<User>::given([registered(), UserEvent::UserDeactivated { at: at(1) }])
        .when(UserCommand::Reactivate { at: at(5) })
        .then([UserEvent::UserReactivated { at: at(5) }]);
    assert!(user.account().unwrap().active);
}

#[test]
fn reactivate_rejections() {
    TestHarness::<User>::given([])
        .when(UserCommand::Reactivate { at: at(5) })
        .then_err(UserError::NotRegistered);
    TestHarness::<User>::given([registered()])
        .when(UserCommand::Reactivate { at: at(5) })
        .then_err(UserError::NotDeactivated);
}

#[test]
fn event_json_uses_stable_type_names() {
    let json = serde_json::to_value(registered()).unwrap();
    assert_eq!(json["type"], "UserRegistered");
    assert_eq!(json["email"], "ana@example.org");
    let keys: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        ["at", "display_name", "email", "id", "is_admin", "type"],
        "no credential may be part of an event"
    );
    let json = serde_json::to_value(UserEvent::UserPasswordChanged { at: at(2) }).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"type": "UserPasswordChanged", "at": at(2)})
    );
    let json = serde_json::to_value(UserEvent::UserDeactivated { at: at(1) }).unwrap();
    assert_eq!(json["type"], "UserDeactivated");
}

#[test]
fn events_stored_before_credentials_left_the_log_still_decode() {
    // Stores written by earlier versions hold a `password_hash` in these events; replaying
    // them must keep working, and the hash must not reach the state.
    let old_registered = serde_json::json!({
        "type": "UserRegistered",
        "id": "usrAnaAnaAnaAna12",
        "email": "ana@example.org",
        "display_name": "Ana",
        "password_hash": "$argon2id$v=19$m=19456,t=2,p=1$c2FsdDEyMzQ$aGFzaDEyMzQ1Njc4OTA",
        "is_admin": false,
        "at": at(0),
    });
    let old_changed = serde_json::json!({
        "type": "UserPasswordChanged",
        "password_hash": "$argon2id$v=19$m=19456,t=2,p=1$c2FsdDU2Nzg$aGFzaDk4NzY1NDMyMTA",
        "at": at(3),
    });
    let events: Vec<UserEvent> = [old_registered, old_changed]
        .into_iter()
        .map(|v| serde_json::from_value(v).unwrap())
        .collect();
    assert_eq!(events[0], registered());
    assert_eq!(events[1], UserEvent::UserPasswordChanged { at: at(3) });
    let user = User::default().fold(&events);
    let state = serde_json::to_string(&user).unwrap();
    assert!(!state.contains("argon2"), "{state}");
    assert_eq!(user.account().unwrap().updated_at, at(3));
}
