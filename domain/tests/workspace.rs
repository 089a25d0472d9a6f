//! Given/when/then tests for every workspace command, accepted and rejected, and for the
//! actions each command requires.

use chrono::{DateTime, TimeZone, Utc};
use pyairtable_domain::ids::{UserId, WorkspaceId};
use pyairtable_domain::permissions::Action;
use pyairtable_domain::roles::Role;
use pyairtable_domain::testing::TestHarness;
use pyairtable_domain::user::{Email, InvalidEmail, NameError};
use pyairtable_domain::workspace::{Workspace, WorkspaceCommand, WorkspaceError, WorkspaceEvent};

fn at(minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 1, 9, minute, 0).unwrap()
}

fn wsp() -> WorkspaceId {
    WorkspaceId::parse("wspTeamTeamTeam12").unwrap()
}

fn user(n: u8) -> UserId {
    UserId::parse(&format!("usrUserUserUser{n:02}")).unwrap()
}

fn email(s: &str) -> Email {
    Email::parse(s).unwrap()
}

fn created() -> WorkspaceEvent {
    WorkspaceEvent::WorkspaceCreated {
        id: wsp(),
        name: "Team".into(),
        owner: user(1),
        at: at(0),
    }
}

fn added(n: u8, role: Role) -> WorkspaceEvent {
    WorkspaceEvent::MemberAdded {
        user_id: user(n),
        role,
        at: at(1),
    }
}

fn invited(s: &str, role: Role) -> WorkspaceEvent {
    WorkspaceEvent::MemberInvited {
        email: email(s),
        role,
        invited_by: user(1),
        at: at(1),
    }
}

fn archived() -> WorkspaceEvent {
    WorkspaceEvent::WorkspaceArchived { at: at(2) }
}

#[test]
fn create_makes_the_creator_owner() {
    let ws = TestHarness::<Workspace>::given([])
        .when(WorkspaceCommand::Create {
            id: wsp(),
            name: "  Team ".into(),
            owner: user(1),
            at: at(0),
        })
        .then([created()]);
    let state = ws.state().unwrap();
    assert_eq!(state.name, "Team");
    assert_eq!(ws.role_of(&user(1)), Some(Role::Owner));
    assert_eq!(state.owner_count(), 1);
}

#[test]
fn create_rejections() {
    TestHarness::<Workspace>::given([created()])
        .when(WorkspaceCommand::Create {
            id: wsp(),
            name: "Team".into(),
            owner: user(1),
            at: at(0),
        })
        .then_err(WorkspaceError::AlreadyCreated { id: wsp() });
    TestHarness::<Workspace>::given([])
        .when(WorkspaceCommand::Create {
            id: wsp(),
            name: " ".into(),
            owner: user(1),
            at: at(0),
        })
        .then_err(WorkspaceError::InvalidName(NameError::Empty));
    TestHarness::<Workspace>::given([])
        .when(WorkspaceCommand::Create {
            id: wsp(),
            name: "w".repeat(101),
            owner: user(1),
            at: at(0),
        })
        .then_err(WorkspaceError::InvalidName(NameError::TooLong {
            chars: 101,
            max: 100,
        }));
}

#[test]
fn rename() {
    let ws = TestHarness::<Workspace>::given([created()])
        .when(WorkspaceCommand::Rename {
            name: "Ops".into(),
            at: at(3),
        })
        .then([WorkspaceEvent::WorkspaceRenamed {
            name: "Ops".into(),
            at: at(3),
        }]);
    assert_eq!(ws.state().unwrap().name, "Ops");
}

#[test]
fn rename_rejections() {
    TestHarness::<Workspace>::given([created()])
        .when(WorkspaceCommand::Rename {
            name: " Team".into(),
            at: at(3),
        })
        .then_err(WorkspaceError::NameUnchanged {
            name: "Team".into(),
        });
    TestHarness::<Workspace>::given([created()])
        .when(WorkspaceCommand::Rename {
            name: "a\u{0}b".into(),
            at: at(3),
        })
        .then_err(WorkspaceError::InvalidName(NameError::ControlCharacter {
            ch: '\u{0}',
        }));
    TestHarness::<Workspace>::given([])
        .when(WorkspaceCommand::Rename {
            name: "Ops".into(),
            at: at(3),
        })
        .then_err(WorkspaceError::NotCreated);
}

#[test]
fn invite_member() {
    let ws = TestHarness::<Workspace>::given([created()])
        .when(WorkspaceCommand::InviteMember {
            email: "Bob@Example.org".into(),
            role: Role::Editor,
            invited_by: user(1),
            at: at(1),
        })
        .then([invited("bob@example.org", Role::Editor)]);
    let invitation = &ws.state().unwrap().invitations[&email("bob@example.org")];
    assert_eq!(invitation.role, Role::Editor);
    assert_eq!(invitation.invited_by, user(1));
}

#[test]
fn invite_member_rejections() {
    let invite = |e: &str, by: u8| WorkspaceCommand::InviteMember {
        email: e.into(),
        role: Role::Commenter,
        invited_by: user(by),
        at: at(1),
    };
    TestHarness::<Workspace>::given([created(), invited("bob@example.org", Role::Editor)])
        .when(invite(" BOB@example.org", 1))
        .then_err(WorkspaceError::AlreadyInvited {
            email: email("bob@example.org"),
        });
    TestHarness::<Workspace>::given([created()])
        .when(invite("bob@example.org", 7))
        .then_err(WorkspaceError::InviterNotMember { user_id: user(7) });
    TestHarness::<Workspace>::given([created()])
        .when(invite("bob", 1))
        .then_err(WorkspaceError::InvalidEmail(InvalidEmail::NotOneAt {
            value: "bob".into(),
        }));
    TestHarness::<Workspace>::given([])
        .when(invite("bob@example.org", 1))
        .then_err(WorkspaceError::NotCreated);
}

#[test]
fn cancel_invitation() {
    let ws = TestHarness::<Workspace>::given([created(), invited("bob@example.org", Role::Editor)])
        .when(WorkspaceCommand::CancelInvitation {
            email: "bob@EXAMPLE.org".into(),
            at: at(2),
        })
        .then([WorkspaceEvent::InvitationCancelled {
            email: email("bob@example.org"),
            at: at(2),
        }]);
    assert!(ws.state().unwrap().invitations.is_empty());
}

#[test]
fn cancel_invitation_rejections() {
    TestHarness::<Workspace>::given([created()])
        .when(WorkspaceCommand::CancelInvitation {
            email: "bob@example.org".into(),
            at: at(2),
        })
        .then_err(WorkspaceError::NotInvited {
            email: email("bob@example.org"),
        });
    TestHarness::<Workspace>::given([created()])
        .when(WorkspaceCommand::CancelInvitation {
            email: "".into(),
            at: at(2),
        })
        .then_err(WorkspaceError::InvalidEmail(InvalidEmail::Empty));
}

#[test]
fn accept_invitation_grants_the_invited_role() {
    let ws = TestHarness::<Workspace>::given([created(), invited("bob@example.org", Role::Editor)])
        .when(WorkspaceCommand::AcceptInvitation {
            user_id: user(2),
            email: "Bob@example.org".into(),
            at: at(3),
        })
        .then([WorkspaceEvent::InvitationAccepted {
            email: email("bob@example.org"),
            user_id: user(2),
            role: Role::Editor,
            at: at(3),
        }]);
    assert_eq!(ws.role_of(&user(2)), Some(Role::Editor));
    assert!(ws.state().unwrap().invitations.is_empty());
}

#[test]
fn accept_invitation_rejections() {
    TestHarness::<Workspace>::given([created()])
        .when(WorkspaceCommand::AcceptInvitation {
            user_id: user(2),
            email: "bob@example.org".into(),
            at: at(3),
        })
        .then_err(WorkspaceError::NotInvited {
            email: email("bob@example.org"),
        });
    TestHarness::<Workspace>::given([
        created(),
        added(2, Role::Commenter),
        invited("bob@example.org", Role::Editor),
    ])
    .when(WorkspaceCommand::AcceptInvitation {
        user_id: user(2),
        email: "bob@example.org".into(),
        at: at(3),
    })
    .then_err(WorkspaceError::AlreadyMember {
        user_id: user(2),
        role: Role::Commenter,
    });
    TestHarness::<Workspace>::given([created()])
        .when(WorkspaceCommand::AcceptInvitation {
            user_id: user(2),
            email: "bob@@example.org".into(),
            at: at(3),
        })
        .then_err(WorkspaceError::InvalidEmail(InvalidEmail::NotOneAt {
            value: "bob@@example.org".into(),
        }));
}

#[test]
fn add_member() {
    let ws = TestHarness::<Workspace>::given([created()])
        .when(WorkspaceCommand::AddMember {
            user_id: user(2),
            role: Role::Creator,
            at: at(1),
        })
        .then([added(2, Role::Creator)]);
    assert_eq!(ws.role_of(&user(2)), Some(Role::Creator));
}

#[test]
fn add_member_twice_is_rejected() {
    TestHarness::<Workspace>::given([created()])
        .when(WorkspaceCommand::AddMember {
            user_id: user(1),
            role: Role::Editor,
            at: at(1),
        })
        .then_err(WorkspaceError::AlreadyMember {
            user_id: user(1),
            role: Role::Owner,
        });
}

#[test]
fn change_role() {
    let ws = TestHarness::<Workspace>::given([created(), added(2, Role::Editor)])
        .when(WorkspaceCommand::ChangeRole {
            user_id: user(2),
            role: Role::Owner,
            at: at(4),
        })
        .then([WorkspaceEvent::MemberRoleChanged {
            user_id: user(2),
            from: Role::Editor,
            to: Role::Owner,
            at: at(4),
        }]);
    assert_eq!(ws.state().unwrap().owner_count(), 2);
}

#[test]
fn an_owner_can_step_down_once_another_owner_exists() {
    TestHarness::<Workspace>::given([created(), added(2, Role::Owner)])
        .when(WorkspaceCommand::ChangeRole {
            user_id: user(1),
            role: Role::Creator,
            at: at(4),
        })
        .then([WorkspaceEvent::MemberRoleChanged {
            user_id: user(1),
            from: Role::Owner,
            to: Role::Creator,
            at: at(4),
        }]);
}

#[test]
fn demoting_the_last_owner_is_rejected() {
    TestHarness::<Workspace>::given([created(), added(2, Role::Creator)])
        .when(WorkspaceCommand::ChangeRole {
            user_id: user(1),
            role: Role::Creator,
            at: at(4),
        })
        .then_err(WorkspaceError::LastOwner { user_id: user(1) });
}

#[test]
fn change_role_rejections() {
    TestHarness::<Workspace>::given([created(), added(2, Role::Editor)])
        .when(WorkspaceCommand::ChangeRole {
            user_id: user(2),
            role: Role::Editor,
            at: at(4),
        })
        .then_err(WorkspaceError::RoleUnchanged {
            user_id: user(2),
            role: Role::Editor,
        });
    TestHarness::<Workspace>::given([created()])
        .when(WorkspaceCommand::ChangeRole {
            user_id: user(3),
            role: Role::Editor,
            at: at(4),
        })
        .then_err(WorkspaceError::NotMember { user_id: user(3) });
}

#[test]
fn remove_member() {
    let ws = TestHarness::<Workspace>::given([created(), added(2, Role::Editor)])
        .when(WorkspaceCommand::RemoveMember {
            user_id: user(2),
            at: at(5),
        })
        .then([WorkspaceEvent::MemberRemoved {
            user_id: user(2),
            role: Role::Editor,
            at: at(5),
        }]);
    assert_eq!(ws.role_of(&user(2)), None);
}

#[test]
fn removing_an_owner_is_allowed_while_another_remains() {
    TestHarness::<Workspace>::given([created(), added(2, Role::Owner)])
        .when(WorkspaceCommand::RemoveMember {
            user_id: user(1),
            at: at(5),
        })
        .then([WorkspaceEvent::MemberRemoved {
            user_id: user(1),
            role: Role::Owner,
            at: at(5),
        }]);
}

#[test]
fn remove_member_rejections() {
    TestHarness::<Workspace>::given([created(), added(2, Role::Editor)])
        .when(WorkspaceCommand::RemoveMember {
            user_id: user(1),
            at: at(5),
        })
        .then_err(WorkspaceError::LastOwner { user_id: user(1) });
    TestHarness::<Workspace>::given([created()])
        .when(WorkspaceCommand::RemoveMember {
            user_id: user(9),
            at: at(5),
        })
        .then_err(WorkspaceError::NotMember { user_id: user(9) });
}

#[test]
fn archive() {
    let ws = TestHarness::<Workspace>::given([created()])
        .when(WorkspaceCommand::Archive { at: at(2) })
        .then([archived()]);
    assert!(ws.state().unwrap().archived);
    TestHarness::<Workspace>::given([])
        .when(WorkspaceCommand::Archive { at: at(2) })
        .then_err(WorkspaceError::NotCreated);
}

#[test]
fn archived_workspace_rejects_every_command() {
    let commands = vec![
        WorkspaceCommand::Rename {
            name: "Ops".into(),
            at: at(9),
        },
        WorkspaceCommand::InviteMember {
            email: "bob@example.org".into(),
            role: Role::Editor,
            invited_by: user(1),
            at: at(9),
        },
        WorkspaceCommand::CancelInvitation {
            email: "cy@example.org".into(),
            at: at(9),
        },
        WorkspaceCommand::AcceptInvitation {
            user_id: user(3),
            email: "cy@example.org".into(),
            at: at(9),
        },
        WorkspaceCommand::AddMember {
            user_id: user(2),
            role: Role::Editor,
            at: at(9),
        },
        WorkspaceCommand::ChangeRole {
            user_id: user(1),
            role: Role::Editor,
            at: at(9),
        },
        WorkspaceCommand::RemoveMember {
            user_id: user(1),
            at: at(9),
        },
        WorkspaceCommand::Archive { at: at(9) },
    ];
    for command in commands {
        TestHarness::<Workspace>::given([
            created(),
            invited("cy@example.org", Role::Editor),
            archived(),
        ])
        .when(command)
        .then_err(WorkspaceError::Archived { id: wsp() });
    }
    // Create still says what is true: the workspace exists.
    TestHarness::<Workspace>::given([created(), archived()])
        .when(WorkspaceCommand::Create {
            id: wsp(),
            name: "Team".into(),
            owner: user(1),
            at: at(9),
        })
        .then_err(WorkspaceError::AlreadyCreated { id: wsp() });
}

#[test]
fn required_actions_add_manage_owners_whenever_ownership_is_touched() {
    let ws = TestHarness::<Workspace>::given([
        created(),
        added(2, Role::Editor),
        invited("own@example.org", Role::Owner),
        invited("ed@example.org", Role::Editor),
    ])
    .state()
    .clone();
    let cases = [
        (
            WorkspaceCommand::Create {
                id: wsp(),
                name: "T".into(),
                owner: user(1),
                at: at(0),
            },
            vec![Action::CreateWorkspace],
        ),
        (
            WorkspaceCommand::Rename {
                name: "T".into(),
                at: at(0),
            },
            vec![Action::RenameWorkspace],
        ),
        (
            WorkspaceCommand::InviteMember {
                email: "x@example.org".into(),
                role: Role::Creator,
                invited_by: user(1),
                at: at(0),
            },
            vec![Action::InviteMember],
        ),
        (
            WorkspaceCommand::InviteMember {
                email: "x@example.org".into(),
                role: Role::Owner,
                invited_by: user(1),
                at: at(0),
            },
            vec![Action::InviteMember, Action::ManageOwners],
        ),
        (
            WorkspaceCommand::CancelInvitation {
                email: "own@example.org".into(),
                at: at(0),
            },
            vec![Action::CancelInvitation, Action::ManageOwners],
        ),
        (
            WorkspaceCommand::CancelInvitation {
                email: "ed@example.org".into(),
                at: at(0),
            },
            vec![Action::CancelInvitation],
        ),
        (
            WorkspaceCommand::AcceptInvitation {
                user_id: user(5),
                email: "own@example.org".into(),
                at: at(0),
            },
            vec![Action::AcceptInvitation],
        ),
        (
            WorkspaceCommand::AddMember {
                user_id: user(5),
                role: Role::Owner,
                at: at(0),
            },
            vec![Action::AddMember, Action::ManageOwners],
        ),
        (
            WorkspaceCommand::AddMember {
                user_id: user(5),
                role: Role::ReadOnly,
                at: at(0),
            },
            vec![Action::AddMember],
        ),
        (
            WorkspaceCommand::ChangeRole {
                user_id: user(2),
                role: Role::Creator,
                at: at(0),
            },
            vec![Action::ChangeMemberRole],
        ),
        (
            WorkspaceCommand::ChangeRole {
                user_id: user(2),
                role: Role::Owner,
                at: at(0),
            },
            vec![Action::ChangeMemberRole, Action::ManageOwners],
        ),
        (
            WorkspaceCommand::ChangeRole {
                user_id: user(1),
                role: Role::Editor,
                at: at(0),
            },
            vec![Action::ChangeMemberRole, Action::ManageOwners],
        ),
        (
            WorkspaceCommand::RemoveMember {
                user_id: user(2),
                at: at(0),
            },
            vec![Action::RemoveMember],
        ),
        (
            WorkspaceCommand::RemoveMember {
                user_id: user(1),
                at: at(0),
            },
            vec![Action::RemoveMember, Action::ManageOwners],
        ),
        (
            WorkspaceCommand::Archive { at: at(0) },
            vec![Action::ArchiveWorkspace],
        ),
    ];
    for (command, expected) in cases {
        assert_eq!(ws.required_actions(&command), expected, "{command:?}");
    }
}

#[test]
fn event_json_uses_stable_type_names() {
    let json = serde_json::to_value(invited("bob@example.org", Role::ReadOnly)).unwrap();
    assert_eq!(json["type"], "MemberInvited");
    assert_eq!(json["role"], "read");
    assert_eq!(json["email"], "bob@example.org");
}
