//! Property tests over random command sequences for users, workspaces and tokens: the state
//! built step by step (handle, then apply) always equals folding the whole event log from the
//! default state; every event and every state survive a JSON round trip; a workspace never
//! loses its last owner.

use chrono::{DateTime, TimeZone, Utc};
use proptest::prelude::*;
use pyairtable_domain::aggregate::Aggregate;
use pyairtable_domain::ids::{BaseId, TokenId, UserId, WorkspaceId};
use pyairtable_domain::roles::{Role, Scope};
use pyairtable_domain::testing::assert_round_trips;
use pyairtable_domain::token::{ApiToken, TokenCommand};
use pyairtable_domain::user::{User, UserCommand};
use pyairtable_domain::workspace::{Workspace, WorkspaceCommand};

// Small pools so that sequences collide: the same email twice, the same member twice, ...
const EMAILS: [&str; 5] = [
    "ana@example.org",
    " ANA@example.org",
    "bob@example.org",
    "cy@example.net",
    "broken@",
];
const NAMES: [&str; 4] = ["Ana", " Ana ", "Team Blue", ""];

fn time() -> impl Strategy<Value = DateTime<Utc>> {
    (0i64..1_000_000).prop_map(|s| Utc.timestamp_opt(1_700_000_000 + s, 0).unwrap())
}

fn user_id() -> impl Strategy<Value = UserId> {
    (0u8..4).prop_map(|n| UserId::parse(&format!("usrUserUserUser{n:02}")).unwrap())
}

fn role() -> impl Strategy<Value = Role> {
    prop::sample::select(Role::ALL.to_vec())
}

fn email() -> impl Strategy<Value = String> {
    prop::sample::select(EMAILS.to_vec()).prop_map(str::to_owned)
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(NAMES.to_vec()).prop_map(str::to_owned),
        Just("n".repeat(101)),
    ]
}

fn user_command() -> impl Strategy<Value = UserCommand> {
    prop_oneof![
        (user_id(), email(), name(), any::<bool>(), time()).prop_map(
            |(id, email, display_name, is_admin, at)| UserCommand::Register {
                id,
                email,
                display_name,
                is_admin,
                at,
            }
        ),
        (name(), prop::option::of(email()), time()).prop_map(|(display_name, email, at)| {
            UserCommand::ChangeProfile {
                display_name,
                email,
                at,
            }
        }),
        time().prop_map(|at| UserCommand::ChangePassword { at }),
        time().prop_map(|at| UserCommand::Deactivate { at }),
        time().prop_map(|at| UserCommand::Reactivate { at }),
    ]
}

fn workspace_command() -> impl Strategy<Value = WorkspaceCommand> {
    let id = WorkspaceId::parse("wspTeamTeamTeam12").unwrap();
    prop_oneof![
        1 => (name(), user_id(), time()).prop_map(move |(name, owner, at)| WorkspaceCommand::Create {
            id: id.clone(),
            name,
            owner,
            at,
        }),
        1 => (name(), time()).prop_map(|(name, at)| WorkspaceCommand::Rename { name, at }),
        3 => (email(), role(), user_id(), time()).prop_map(|(email, role, invited_by, at)| {
            WorkspaceCommand::InviteMember {
                email,
                role,
                invited_by,
                at,
            }
        }),
        1 => (email(), time()).prop_map(|(email, at)| WorkspaceCommand::CancelInvitation { email, at }),
        3 => (user_id(), email(), time()).prop_map(|(user_id, email, at)| {
            WorkspaceCommand::AcceptInvitation { user_id, email, at }
        }),
        3 => (user_id(), role(), time()).prop_map(|(user_id, role, at)| WorkspaceCommand::AddMember {
            user_id,
            role,
            at,
        }),
        4 => (user_id(), role(), time()).prop_map(|(user_id, role, at)| WorkspaceCommand::ChangeRole {
            user_id,
            role,
            at,
        }),
        3 => (user_id(), time()).prop_map(|(user_id, at)| WorkspaceCommand::RemoveMember { user_id, at }),
        // Rare, so that sequences get past it.
        1 => time().prop_map(|at| WorkspaceCommand::Archive { at }),
    ]
}

fn token_command() -> impl Strategy<Value = TokenCommand> {
    let id = TokenId::parse("patTokenToken0001").unwrap();
    let owner = UserId::parse("usrOwnerOwner0001").unwrap();
    let base = (0u8..3).prop_map(|n| BaseId::parse(&format!("appBaseBaseBase{n:02}")).unwrap());
    prop_oneof![
        (
            name(),
            prop::collection::vec(prop::sample::select(Scope::ALL.to_vec()), 0..5),
            prop::option::of(prop::collection::vec(base, 0..4)),
            prop_oneof![Just("ab".repeat(32)), Just("AB".repeat(32))],
            time(),
        )
            .prop_map(move |(name, scopes, base_ids, secret_hash, at)| {
                TokenCommand::Create {
                    id: id.clone(),
                    owner: owner.clone(),
                    name,
                    scopes,
                    base_ids,
                    secret_hash,
                    at,
                }
            }),
        time().prop_map(|at| TokenCommand::Revoke { at }),
    ]
}

/// Runs the commands through the decider and checks, after every accepted one, that the
/// incrementally applied state equals the fold of the whole log. Returns the states reached.
fn run<A: Aggregate>(commands: &[A::Command]) -> Result<(Vec<A>, usize), TestCaseError> {
    let mut state = A::default();
    let mut log: Vec<A::Event> = Vec::new();
    let mut states = Vec::new();
    let mut accepted = 0;
    for command in commands {
        // A rejection cannot touch the state (`handle` borrows it immutably), so only
        // acceptances need checking.
        if let Ok(events) = state.handle(command) {
            accepted += 1;
            prop_assert!(!events.is_empty(), "an accepted command emitted nothing");
            for event in &events {
                assert_round_trips(event);
                state.apply(event);
            }
            log.extend(events);
            let folded = A::default().fold(&log);
            prop_assert_eq!(
                serde_json::to_value(&state).unwrap(),
                serde_json::to_value(&folded).unwrap()
            );
        }
        let snapshot = serde_json::to_string(&state).unwrap();
        let restored: A = serde_json::from_str(&snapshot).unwrap();
        prop_assert_eq!(serde_json::to_string(&restored).unwrap(), snapshot);
        states.push(state.clone());
    }
    Ok((states, accepted))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn user_state_is_the_fold_of_its_log(commands in prop::collection::vec(user_command(), 1..30)) {
        run::<User>(&commands)?;
    }

    #[test]
    fn workspace_state_is_the_fold_of_its_log_and_keeps_an_owner(
        commands in prop::collection::vec(workspace_command(), 1..40)
    ) {
        let (states, _) = run::<Workspace>(&commands)?;
        for state in states {
            if let Some(ws) = state.state() {
                prop_assert!(ws.owner_count() >= 1, "workspace lost its last owner: {ws:?}");
                for email in ws.invitations.keys() {
                    prop_assert_eq!(email.as_str(), email.as_str().trim().to_lowercase());
                }
            }
        }
    }

    #[test]
    fn token_state_is_the_fold_of_its_log(commands in prop::collection::vec(token_command(), 1..10)) {
        let (states, _) = run::<ApiToken>(&commands)?;
        for state in states {
            if let Some(token) = state.state() {
                prop_assert!(!token.scopes.is_empty());
                prop_assert!(token.scopes.windows(2).all(|w| w[0] < w[1]));
                if let Some(bases) = &token.base_ids {
                    prop_assert!(!bases.is_empty());
                    prop_assert!(bases.windows(2).all(|w| w[0] < w[1]));
                }
            }
        }
    }
}

#[test]
fn generated_sequences_reach_acceptance() {
    // Guards the property tests against vacuity: a plausible sequence drawn from the same pools
    // must be accepted end to end.
    let at = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
    let owner = UserId::parse("usrUserUserUser00").unwrap();
    let other = UserId::parse("usrUserUserUser01").unwrap();
    let commands = vec![
        WorkspaceCommand::Create {
            id: WorkspaceId::parse("wspTeamTeamTeam12").unwrap(),
            name: NAMES[2].into(),
            owner: owner.clone(),
            at,
        },
        WorkspaceCommand::InviteMember {
            email: EMAILS[2].into(),
            role: Role::Owner,
            invited_by: owner.clone(),
            at,
        },
        WorkspaceCommand::AcceptInvitation {
            user_id: other.clone(),
            email: EMAILS[2].into(),
            at,
        },
        WorkspaceCommand::RemoveMember { user_id: owner, at },
    ];
    let (states, accepted) = run::<Workspace>(&commands).unwrap();
    assert_eq!(accepted, 4);
    assert_eq!(
        states.last().and_then(|s| s.role_of(&other)),
        Some(Role::Owner)
    );
}
