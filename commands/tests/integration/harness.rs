//! Shared set-up: a platform over a fresh namespace, and helpers to build users, workspaces,
//! bases and tables.

use chrono::{Duration, Utc};
use pyairtable_commands::auth::PasswordCost;
use pyairtable_commands::service::{NewField, NewTable};
use pyairtable_commands::{
    AuthConfig, Caller, CommandContext, CommandError, Platform, RegisterUser, RunnerConfig,
};
use pyairtable_domain::base::TableSchema;
use pyairtable_domain::fields::{FieldType, LinkOptions, SelectOptions};
use pyairtable_domain::ids::{BaseId, FieldId, TableId, UserId, WorkspaceId};
use pyairtable_domain::roles::Role;
use pyairtable_eventstore::testkit::TestStore;

pub const PASSWORD: &str = "correct horse battery";

/// A platform over its own namespace; the namespace is dropped with it.
pub struct Env {
    pub test: TestStore,
    pub platform: Platform,
}

pub async fn env() -> Env {
    env_with(RunnerConfig::default()).await
}

pub async fn env_with(runner: RunnerConfig) -> Env {
    let test = TestStore::with_config(|c| c.max_connections = 20)
        .await
        .expect("test store");
    let auth = AuthConfig {
        jwt_secret: b"an HS256 secret of at least 32 bytes!".to_vec(),
        access_ttl: Duration::minutes(15),
        refresh_ttl: Duration::days(30),
        password_cost: PasswordCost::INSECURE_FAST,
    };
    let platform = Platform::with_runner_config(test.store().clone(), auth, runner)
        .await
        .expect("platform");
    Env { test, platform }
}

/// The admin CLI.
pub fn system() -> CommandContext {
    CommandContext::new(Caller::system("cli"))
}

/// A signed-in user (session, not a token).
pub fn as_user(user: &UserId) -> CommandContext {
    CommandContext::new(Caller::user(user.clone(), false))
}

/// A signed-in instance admin.
pub fn as_admin(user: &UserId) -> CommandContext {
    CommandContext::new(Caller::user(user.clone(), true))
}

impl Env {
    pub async fn register(&self, email: &str) -> UserId {
        self.register_as(email, false).await
    }

    pub async fn register_as(&self, email: &str, is_admin: bool) -> UserId {
        self.platform
            .register_user(
                &system(),
                RegisterUser {
                    email: email.to_owned(),
                    display_name: None,
                    password: PASSWORD.to_owned(),
                    is_admin,
                },
            )
            .await
            .expect("register user")
            .id
    }

    /// A workspace owned by `owner`.
    pub async fn workspace(&self, owner: &UserId) -> WorkspaceId {
        self.platform
            .create_workspace(&as_user(owner), "Team", None)
            .await
            .expect("create workspace")
            .id
    }

    /// A workspace with one member per role; returns the workspace and the members by role
    /// (the owner first).
    pub async fn team(&self) -> (WorkspaceId, Vec<(Role, UserId)>) {
        let tag = uuid::Uuid::new_v4().simple().to_string();
        let owner = self.register(&format!("owner-{tag}@example.com")).await;
        let ws = self.workspace(&owner).await;
        let mut members = vec![(Role::Owner, owner.clone())];
        for role in [Role::Creator, Role::Editor, Role::Commenter, Role::ReadOnly] {
            let user = self
                .register(&format!("{}-{tag}@example.com", role.as_str()))
                .await;
            self.platform
                .add_member(&as_user(&owner), &ws, &user, role)
                .await
                .expect("add member");
            members.push((role, user));
        }
        (ws, members)
    }

    pub async fn base(&self, owner: &UserId, ws: &WorkspaceId) -> BaseId {
        self.platform
            .create_base(&as_user(owner), ws, "Base")
            .await
            .expect("create base")
            .id
    }

    /// A "Tasks" table: Name (text, primary), Notes (long text), Count (number), Status
    /// (single select with "Todo"), plus one text field per name in `extra`.
    pub async fn tasks_table(&self, owner: &UserId, base: &BaseId, extra: &[&str]) -> TableSchema {
        let mut fields = vec![
            field("Name", FieldType::SingleLineText),
            field("Notes", FieldType::MultilineText),
            field(
                "Count",
                FieldType::Number(pyairtable_domain::fields::NumberOptions { precision: 0 }),
            ),
            field(
                "Status",
                FieldType::SingleSelect(SelectOptions {
                    choices: vec![pyairtable_domain::fields::Choice {
                        id: pyairtable_commands::auth::new_id(),
                        name: "Todo".into(),
                        color: None,
                    }],
                }),
            ),
        ];
        fields.extend(
            extra
                .iter()
                .map(|name| field(name, FieldType::SingleLineText)),
        );
        self.platform
            .create_table(
                &as_user(owner),
                base,
                NewTable {
                    name: "Tasks".into(),
                    description: None,
                    fields,
                    primary_field_id: None,
                },
            )
            .await
            .expect("create table")
            .table
    }

    /// A "People" table whose "Tasks" link field has an inverse "People" field in `tasks`.
    pub async fn people_table(
        &self,
        owner: &UserId,
        base: &BaseId,
        tasks: &TableId,
    ) -> (TableSchema, FieldId, FieldId) {
        let link: FieldId = pyairtable_commands::auth::new_id();
        let inverse: FieldId = pyairtable_commands::auth::new_id();
        let mut link_field = field(
            "Tasks",
            FieldType::MultipleRecordLinks(LinkOptions {
                linked_table_id: tasks.clone(),
                inverse_link_field_id: Some(inverse.clone()),
                prefers_single_record_link: false,
            }),
        );
        link_field.id = Some(link.clone());
        let table = self
            .platform
            .create_table(
                &as_user(owner),
                base,
                NewTable {
                    name: "People".into(),
                    description: None,
                    fields: vec![field("Name", FieldType::SingleLineText), link_field],
                    primary_field_id: None,
                },
            )
            .await
            .expect("create people table")
            .table;
        (table, link, inverse)
    }
}

pub fn field(name: &str, field_type: FieldType) -> NewField {
    NewField {
        id: None,
        name: name.to_owned(),
        description: None,
        field_type,
    }
}

pub fn field_id(table: &TableSchema, name: &str) -> FieldId {
    table
        .field_by_name_or_id(name)
        .unwrap_or_else(|| panic!("no field {name}"))
        .id
        .clone()
}

/// Asserts a rejection and returns its code and message.
#[track_caller]
pub fn rejected<T: std::fmt::Debug>(result: Result<T, CommandError>) -> (&'static str, String) {
    match result {
        Err(CommandError::Rejected { code, message }) => (code, message),
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[track_caller]
pub fn forbidden<T: std::fmt::Debug>(result: Result<T, CommandError>) -> String {
    match result {
        Err(CommandError::Forbidden { message }) => message,
        other => panic!("expected Forbidden, got {other:?}"),
    }
}

#[track_caller]
pub fn not_found<T: std::fmt::Debug>(result: Result<T, CommandError>) -> (&'static str, String) {
    match result {
        Err(CommandError::NotFound { kind, id }) => (kind, id),
        other => panic!("expected NotFound, got {other:?}"),
    }
}

#[track_caller]
pub fn unauthorized<T: std::fmt::Debug>(result: Result<T, CommandError>) -> String {
    match result {
        Err(CommandError::Unauthorized { message }) => message,
        other => panic!("expected Unauthorized, got {other:?}"),
    }
}

pub fn now() -> chrono::DateTime<Utc> {
    Utc::now()
}
