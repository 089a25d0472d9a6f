//! The permission matrix, cell by cell, against a table written out here by hand (not derived
//! from the code under test); [`authorize`] for every way it can refuse; and the check that
//! `docs/permissions.md` shows the matrix the code enforces.

use pyairtable_domain::ids::BaseId;
use pyairtable_domain::permissions::{
    Action, Denied, Level, Principal, TokenGrant, allowed, authorize, matrix_markdown,
    required_scope,
};
use pyairtable_domain::roles::{Role, Scope};

/// One row per action: the action's name, then one letter per role in the order
/// owner, creator, editor, commenter, read (`y` allowed, `n` refused), then the token scope
/// (`-` for "not with a token").
const EXPECTED: &[(&str, &str, &str)] = &[
    ("CreateWorkspace", "yyyyy", "-"),
    ("AcceptInvitation", "yyyyy", "-"),
    ("ChangeOwnProfile", "yyyyy", "-"),
    ("ChangeOwnPassword", "yyyyy", "-"),
    ("ReadOwnEmail", "yyyyy", "user.email:read"),
    ("CreateApiToken", "yyyyy", "-"),
    ("RevokeOwnApiToken", "yyyyy", "-"),
    ("RegisterUser", "nnnnn", "-"),
    ("DeactivateUser", "nnnnn", "-"),
    ("ReactivateUser", "nnnnn", "-"),
    ("RevokeAnyApiToken", "nnnnn", "-"),
    ("ReadMembers", "yyyyy", "-"),
    ("RenameWorkspace", "yynnn", "-"),
    ("ArchiveWorkspace", "ynnnn", "-"),
    ("InviteMember", "yynnn", "-"),
    ("CancelInvitation", "yynnn", "-"),
    ("AddMember", "yynnn", "-"),
    ("ChangeMemberRole", "yynnn", "-"),
    ("RemoveMember", "yynnn", "-"),
    ("ManageOwners", "ynnnn", "-"),
    ("CreateBase", "yynnn", "schema.bases:write"),
    ("ReadAuditLog", "yynnn", "-"),
    ("VerifyStream", "ynnnn", "-"),
    ("ReadSchema", "yyyyy", "schema.bases:read"),
    ("RenameBase", "yynnn", "schema.bases:write"),
    ("DeleteBase", "yynnn", "schema.bases:write"),
    ("RestoreBase", "yynnn", "schema.bases:write"),
    ("CreateTable", "yynnn", "schema.bases:write"),
    ("RenameTable", "yynnn", "schema.bases:write"),
    ("DeleteTable", "yynnn", "schema.bases:write"),
    ("AddField", "yynnn", "schema.bases:write"),
    ("UpdateField", "yynnn", "schema.bases:write"),
    ("DeleteField", "yynnn", "schema.bases:write"),
    ("CreateView", "yyynn", "schema.bases:write"),
    ("UpdateView", "yyynn", "schema.bases:write"),
    ("DeleteView", "yyynn", "schema.bases:write"),
    ("ReadRecords", "yyyyy", "data.records:read"),
    ("CreateRecord", "yyynn", "data.records:write"),
    ("UpdateRecord", "yyynn", "data.records:write"),
    ("DeleteRecord", "yyynn", "data.records:write"),
    ("RestoreRecord", "yyynn", "data.records:write"),
    ("RevertRecord", "yyynn", "data.records:write"),
    ("ReadComments", "yyyyy", "data.recordComments:read"),
    ("AddComment", "yyyyn", "data.recordComments:write"),
    ("EditOwnComment", "yyyyn", "data.recordComments:write"),
    ("DeleteOwnComment", "yyyyn", "data.recordComments:write"),
    ("EditOthersComment", "nnnnn", "data.recordComments:write"),
    ("DeleteOthersComment", "yynnn", "data.recordComments:write"),
    ("ManageWebhooks", "yynnn", "webhook:manage"),
];

const ROLE_COLUMNS: [Role; 5] = [
    Role::Owner,
    Role::Creator,
    Role::Editor,
    Role::Commenter,
    Role::ReadOnly,
];

fn expected_row(action: Action) -> (&'static str, &'static str) {
    let (_, cells, scope) = EXPECTED
        .iter()
        .find(|(name, _, _)| *name == action.name())
        .unwrap_or_else(|| panic!("action {action} is missing from the expected table"));
    (cells, scope)
}

#[test]
fn every_cell_of_the_role_matrix() {
    assert_eq!(
        Action::ALL.len(),
        EXPECTED.len(),
        "the expected table and Action::ALL list different numbers of actions"
    );
    let mut mismatches = Vec::new();
    for &action in Action::ALL {
        let (cells, _) = expected_row(action);
        for (role, cell) in ROLE_COLUMNS.iter().zip(cells.chars()) {
            let expected = cell == 'y';
            if allowed(*role, action) != expected {
                mismatches.push(format!("{role} × {action}: expected {expected}"));
            }
        }
    }
    assert!(mismatches.is_empty(), "{mismatches:#?}");
}

#[test]
fn every_action_requires_the_expected_token_scope() {
    for &action in Action::ALL {
        let (_, scope) = expected_row(action);
        let expected = if scope == "-" {
            None
        } else {
            Some(Scope::parse(scope).unwrap())
        };
        assert_eq!(required_scope(action), expected, "{action}");
    }
}

#[test]
fn roles_are_monotonic_except_nobody_rows() {
    // A more powerful role never loses a permission a weaker one has.
    for &action in Action::ALL {
        for weaker in Role::ALL {
            for stronger in Role::ALL.into_iter().filter(|r| *r > weaker) {
                assert!(
                    !allowed(weaker, action) || allowed(stronger, action),
                    "{weaker} may {action} but {stronger} may not"
                );
            }
        }
    }
}

fn base(n: u8) -> BaseId {
    BaseId::parse(&format!("appBaseBaseBase{n:02}")).unwrap()
}

fn member(role: Role) -> Principal {
    Principal {
        role: Some(role),
        token: None,
        is_admin: false,
    }
}

fn via_token(role: Option<Role>, scopes: Vec<Scope>, base_ids: Option<Vec<BaseId>>) -> Principal {
    Principal {
        role,
        token: Some(TokenGrant { scopes, base_ids }),
        is_admin: false,
    }
}

#[test]
fn members_are_authorised_by_role() {
    assert_eq!(
        authorize(&member(Role::Editor), Action::UpdateRecord, Some(&base(1))),
        Ok(())
    );
    assert_eq!(
        authorize(&member(Role::Editor), Action::AddField, Some(&base(1))),
        Err(Denied::RoleForbids {
            role: Role::Editor,
            action: Action::AddField
        })
    );
    assert_eq!(
        authorize(&member(Role::ReadOnly), Action::AddComment, Some(&base(1))),
        Err(Denied::RoleForbids {
            role: Role::ReadOnly,
            action: Action::AddComment
        })
    );
}

#[test]
fn non_members_are_refused_workspace_and_base_actions_even_as_admin() {
    let outsider_admin = Principal {
        role: None,
        token: None,
        is_admin: true,
    };
    assert_eq!(
        authorize(&outsider_admin, Action::ReadRecords, Some(&base(1))),
        Err(Denied::NotAMember {
            action: Action::ReadRecords
        })
    );
    assert_eq!(
        authorize(&Principal::default(), Action::ReadMembers, None),
        Err(Denied::NotAMember {
            action: Action::ReadMembers
        })
    );
}

#[test]
fn account_actions_need_no_membership() {
    assert_eq!(
        authorize(&Principal::default(), Action::CreateWorkspace, None),
        Ok(())
    );
    assert_eq!(
        authorize(&Principal::default(), Action::AcceptInvitation, None),
        Ok(())
    );
}

#[test]
fn instance_actions_need_an_admin() {
    assert_eq!(
        authorize(&member(Role::Owner), Action::DeactivateUser, None),
        Err(Denied::AdminOnly {
            action: Action::DeactivateUser
        })
    );
    let admin = Principal {
        role: None,
        token: None,
        is_admin: true,
    };
    assert_eq!(authorize(&admin, Action::DeactivateUser, None), Ok(()));
}

#[test]
fn admin_actions_are_never_done_with_a_token() {
    let admin_with_token = Principal {
        role: None,
        token: Some(TokenGrant {
            scopes: Scope::ALL.to_vec(),
            base_ids: None,
        }),
        is_admin: true,
    };
    assert_eq!(
        authorize(&admin_with_token, Action::RegisterUser, None),
        Err(Denied::TokenNotAccepted {
            action: Action::RegisterUser
        })
    );
}

#[test]
fn role_is_checked_before_the_token() {
    let principal = via_token(Some(Role::Commenter), vec![], None);
    assert_eq!(
        authorize(&principal, Action::DeleteRecord, Some(&base(1))),
        Err(Denied::RoleForbids {
            role: Role::Commenter,
            action: Action::DeleteRecord
        })
    );
}

#[test]
fn token_needs_the_scope() {
    let principal = via_token(Some(Role::Editor), vec![Scope::RecordsRead], None);
    assert_eq!(
        authorize(&principal, Action::ReadRecords, Some(&base(1))),
        Ok(())
    );
    assert_eq!(
        authorize(&principal, Action::CreateRecord, Some(&base(1))),
        Err(Denied::TokenLacksScope {
            scope: Scope::RecordsWrite,
            action: Action::CreateRecord
        })
    );
    assert_eq!(
        authorize(&principal, Action::ReadOwnEmail, None),
        Err(Denied::TokenLacksScope {
            scope: Scope::UserEmailRead,
            action: Action::ReadOwnEmail
        })
    );
}

#[test]
fn session_only_actions_refuse_tokens() {
    let principal = via_token(Some(Role::Owner), Scope::ALL.to_vec(), None);
    assert_eq!(
        authorize(&principal, Action::ChangeOwnPassword, None),
        Err(Denied::TokenNotAccepted {
            action: Action::ChangeOwnPassword
        })
    );
    assert_eq!(
        authorize(&principal, Action::InviteMember, None),
        Err(Denied::TokenNotAccepted {
            action: Action::InviteMember
        })
    );
}

#[test]
fn base_restricted_token_only_reaches_its_bases() {
    let principal = via_token(
        Some(Role::Creator),
        vec![Scope::RecordsRead, Scope::SchemaWrite, Scope::UserEmailRead],
        Some(vec![base(1)]),
    );
    assert_eq!(
        authorize(&principal, Action::ReadRecords, Some(&base(1))),
        Ok(())
    );
    assert_eq!(
        authorize(&principal, Action::ReadRecords, Some(&base(2))),
        Err(Denied::TokenNotValidForBase { base_id: base(2) })
    );
    assert_eq!(
        authorize(&principal, Action::CreateBase, None),
        Err(Denied::TokenRestrictedToBases {
            action: Action::CreateBase
        })
    );
    // The restriction narrows workspaces, not the owner's own account.
    assert_eq!(authorize(&principal, Action::ReadOwnEmail, None), Ok(()));
}

#[test]
fn unrestricted_token_reaches_every_base_of_its_owner() {
    let principal = via_token(Some(Role::Creator), vec![Scope::SchemaWrite], None);
    assert_eq!(authorize(&principal, Action::CreateBase, None), Ok(()));
    assert_eq!(
        authorize(&principal, Action::AddField, Some(&base(7))),
        Ok(())
    );
}

#[test]
fn denials_read_well() {
    let denied = Denied::RoleForbids {
        role: Role::Editor,
        action: Action::AddField,
    };
    assert_eq!(denied.to_string(), "role editor may not AddField");
    let denied = Denied::TokenLacksScope {
        scope: Scope::RecordsWrite,
        action: Action::CreateRecord,
    };
    assert_eq!(
        denied.to_string(),
        "API token lacks scope data.records:write, needed to CreateRecord"
    );
}

#[test]
fn every_action_has_a_level_consistent_with_its_row() {
    for &action in Action::ALL {
        match action.level() {
            Level::Account => assert!(Role::ALL.iter().all(|r| allowed(*r, action)), "{action}"),
            Level::Instance => assert!(Role::ALL.iter().all(|r| !allowed(*r, action)), "{action}"),
            Level::Workspace | Level::Base => {}
        }
    }
}

const START: &str = "<!-- permission-matrix:start -->";
const END: &str = "<!-- permission-matrix:end -->";

#[test]
fn docs_show_the_matrix_the_code_enforces() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/permissions.md");
    let doc = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    let start = doc
        .find(START)
        .unwrap_or_else(|| panic!("{path} lacks the marker {START}"))
        + START.len();
    let end = doc
        .find(END)
        .unwrap_or_else(|| panic!("{path} lacks the marker {END}"));
    let in_doc = doc[start..end].trim();
    let rendered = matrix_markdown();
    assert!(
        in_doc == rendered.trim(),
        "{path} drifted from the code; replace the table between the markers with:\n\n{rendered}"
    );
}
