//! User accounts: registration, profile, password, deactivation.
//!
//! Password hashes never enter an event: they go to the credential column of `auth_users`
//! in the same transaction as the `UserRegistered` or `UserPasswordChanged` event (see
//! [`TxWrite::SetPasswordHash`]).

use pyairtable_domain::ids::UserId;
use pyairtable_domain::permissions::Action;
use pyairtable_domain::user::{Email, User, UserCommand};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Platform, authorize_account, decide, load_existing};
use crate::auth::tables::{self, PasswordHashString, TxWrite};
use crate::auth::{AuthUser, check_password_policy, hash_password, new_id, verify_password};
use crate::context::{Caller, CommandContext};
use crate::error::CommandError;
use crate::idempotency::Fingerprint;
use crate::runner::{BatchOutcome, Begin, Run};

/// Where a command's write landed: the target's id, the stream version it reached and the
/// consistency token of the write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Written<I> {
    /// The aggregate written (or created).
    pub id: I,
    /// Its stream version after the command.
    pub version: u64,
    /// Opaque position token of the write in the global feed; a later query can wait for it.
    pub position: String,
}

/// Arguments of [`Platform::register_user`].
#[derive(Clone, PartialEq, Eq)]
pub struct RegisterUser {
    /// Email address (unique, case-insensitive).
    pub email: String,
    /// Display name (`None`: the part of the email before the `@`).
    pub display_name: Option<String>,
    /// Password in clear; hashed with Argon2id before it goes anywhere.
    pub password: String,
    /// Make the user an instance administrator.
    pub is_admin: bool,
}

impl std::fmt::Debug for RegisterUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegisterUser")
            .field("email", &self.email)
            .field("display_name", &self.display_name)
            .field("is_admin", &self.is_admin)
            .finish_non_exhaustive()
    }
}

/// The result of a command that wrote (or found unchanged) one aggregate.
pub(crate) fn written<I: Clone>(id: &I, version: u64, outcome: &BatchOutcome) -> Written<I> {
    Written {
        id: id.clone(),
        version,
        position: outcome.position.clone(),
    }
}

impl Platform {
    /// Registers a user account (`RegisterUser`: instance admins and the system caller).
    ///
    /// The email is claimed, and the password hash stored in `auth_users`, in the same
    /// transaction as the `UserRegistered` event (which carries no credential), so two
    /// concurrent registrations of one email cannot both succeed and no account exists without
    /// its password.
    ///
    /// # Errors
    /// `Rejected` with code `email_taken`, `weak_password`, or the domain's message for an
    /// invalid email or name; `Forbidden` for non-admins.
    pub async fn register_user(
        &self,
        ctx: &CommandContext,
        input: RegisterUser,
    ) -> Result<Written<UserId>, CommandError> {
        authorize_account(ctx, Action::RegisterUser)?;
        let email = Email::parse(&input.email)
            .map_err(|e| CommandError::rejected("invalid_email", e.to_string()))?;
        check_password_policy(&input.password)?;
        let display_name = match &input.display_name {
            Some(name) => name.clone(),
            None => email
                .as_str()
                .split('@')
                .next()
                .unwrap_or_default()
                .to_owned(),
        };
        // The password stays out of the fingerprint: only its presence matters for a replay.
        let request = Fingerprint::new(
            "registerUser",
            &json!({"email": email.as_str(), "displayName": display_name, "isAdmin": input.is_admin}),
        )?;
        let mut run = match self.runner().begin(ctx, None, &request).await? {
            Begin::Replayed(result) => return Ok(result),
            Begin::Run(run) => run,
        };
        let password_hash = PasswordHashString::new(
            hash_password(self.auth().config().password_cost, &input.password).await?,
        );
        let user_id: UserId = new_id();
        let command = UserCommand::Register {
            id: user_id.clone(),
            email: email.as_str().to_owned(),
            display_name,
            is_admin: input.is_admin,
            at: ctx.now,
        };
        loop {
            let mut batch = run.batch();
            let user = batch.load::<User>(user_id.as_str()).await?;
            let events = decide(&user, &command)?;
            let emitted = batch.emit(&user, &events)?;
            batch.tx_write(TxWrite::ReserveEmail {
                email: email.as_str().to_owned(),
                user_id: user_id.clone(),
            });
            batch.tx_write(TxWrite::ProjectUser {
                user: emitted.state,
                version: emitted.version,
            });
            // After ProjectUser, which creates the row the hash goes into.
            batch.tx_write(TxWrite::SetPasswordHash {
                user_id: user_id.clone(),
                hash: password_hash.clone(),
            });
            if let Some(result) = run
                .commit(batch, |o| Ok(written(&user_id, emitted.version, o)))
                .await?
            {
                return Ok(result);
            }
        }
    }

    /// Changes a user's display name and, optionally, email (`ChangeOwnProfile`: the user
    /// itself, or the system caller).
    ///
    /// # Errors
    /// `Rejected` (`email_taken`, unchanged profile, invalid values), `Forbidden` for someone
    /// else's profile, `NotFound` for an unknown user.
    pub async fn change_profile(
        &self,
        ctx: &CommandContext,
        user_id: &UserId,
        display_name: &str,
        email: Option<&str>,
    ) -> Result<Written<UserId>, CommandError> {
        authorize_self(ctx, user_id, Action::ChangeOwnProfile)?;
        let request = Fingerprint::new(
            "changeProfile",
            &json!({"userId": user_id, "displayName": display_name, "email": email}),
        )?;
        let command = UserCommand::ChangeProfile {
            display_name: display_name.to_owned(),
            email: email.map(str::to_owned),
            at: ctx.now,
        };
        let mut run = match self.runner().begin(ctx, None, &request).await? {
            Begin::Replayed(result) => return Ok(result),
            Begin::Run(run) => run,
        };
        loop {
            let mut batch = run.batch();
            let user = load_existing::<User>(&mut batch, "user", user_id.as_str()).await?;
            let old_email = user.state.account().map(|a| a.email.clone());
            let events = decide(&user, &command)?;
            let emitted = batch.emit(&user, &events)?;
            let new_email = emitted.state.account().map(|a| a.email.clone());
            if let (Some(old), Some(new)) = (old_email, new_email)
                && old != new
            {
                batch.tx_write(TxWrite::ReserveEmail {
                    email: new.as_str().to_owned(),
                    user_id: user_id.clone(),
                });
                batch.tx_write(TxWrite::ReleaseEmail {
                    email: old.as_str().to_owned(),
                    user_id: user_id.clone(),
                });
            }
            batch.tx_write(TxWrite::ProjectUser {
                user: emitted.state,
                version: emitted.version,
            });
            if let Some(result) = run
                .commit(batch, |o| Ok(written(user_id, emitted.version, o)))
                .await?
            {
                return Ok(result);
            }
        }
    }

    /// Changes a user's password (`ChangeOwnPassword`). A user must give the current password;
    /// the system caller (the admin CLI) may reset it without. The new hash is stored in
    /// `auth_users` and every session of the user revoked in the transaction that appends
    /// `UserPasswordChanged`, an event that records only that the password changed.
    ///
    /// # Errors
    /// `Unauthorized` when the current password is missing or wrong, `Rejected` for a weak
    /// password (`weak_password`, `password_too_long`) or one equal to the current password
    /// (`password_unchanged`), `Forbidden` for someone else's account, `NotFound` for an
    /// unknown user.
    pub async fn change_password(
        &self,
        ctx: &CommandContext,
        user_id: &UserId,
        current_password: Option<&str>,
        new_password: &str,
    ) -> Result<Written<UserId>, CommandError> {
        authorize_self(ctx, user_id, Action::ChangeOwnPassword)?;
        // Before any Argon2 work: the length cap bounds what verifying the new password costs.
        check_password_policy(new_password)?;
        let request = Fingerprint::new("changePassword", &json!({"userId": user_id}))?;
        // Begin first, so a retried request is answered from its stored result instead of
        // being checked again against the password it already set.
        let run = match self.runner().begin(ctx, None, &request).await? {
            Begin::Replayed(result) => return Ok(result),
            Begin::Run(run) => run,
        };
        let user = self.runner().load::<User>(user_id.as_str()).await?;
        if user.state.account().is_none() {
            return Err(CommandError::not_found("user", user_id.as_str()));
        }
        let stored = tables::find_user_by_id(self.store().pool(), user_id.as_str())
            .await?
            .and_then(|row| row.password_hash);
        if let Caller::User(_) = &ctx.caller {
            let current = current_password
                .ok_or_else(|| CommandError::unauthorized("the current password is required"))?;
            // No stored hash (the row was recreated by an auth-table rebuild): there is no
            // current password to prove, so only an administrator's reset can set one.
            let proven = match &stored {
                Some(hash) => verify_password(hash, current).await?,
                None => false,
            };
            if !proven {
                return Err(CommandError::unauthorized("the current password is wrong"));
            }
        }
        // The domain cannot tell (it never sees a hash, and salted hashes of one password
        // differ anyway): verify the new password against the stored hash.
        if let Some(hash) = &stored
            && verify_password(hash, new_password).await?
        {
            return Err(CommandError::rejected(
                "password_unchanged",
                "the new password is the current one; choose a different password",
            ));
        }
        let password_hash = PasswordHashString::new(
            hash_password(self.auth().config().password_cost, new_password).await?,
        );
        let command = UserCommand::ChangePassword { at: ctx.now };
        self.run_user_command(run, ctx, user_id, &command, true, Some(password_hash))
            .await
    }

    /// Deactivates a user (`DeactivateUser`: instance admins and the system caller); their
    /// sessions are revoked and their API tokens stop working.
    ///
    /// # Errors
    /// `Forbidden` for non-admins, `NotFound` for an unknown user, `Rejected` when already
    /// deactivated.
    pub async fn deactivate_user(
        &self,
        ctx: &CommandContext,
        user_id: &UserId,
    ) -> Result<Written<UserId>, CommandError> {
        authorize_account(ctx, Action::DeactivateUser)?;
        let request = Fingerprint::new("deactivateUser", &json!({"userId": user_id}))?;
        let command = UserCommand::Deactivate { at: ctx.now };
        self.user_command(ctx, user_id, &request, &command, true)
            .await
    }

    /// Reactivates a deactivated user (`ReactivateUser`: instance admins and the system caller).
    ///
    /// # Errors
    /// `Forbidden` for non-admins, `NotFound` for an unknown user, `Rejected` when active.
    pub async fn reactivate_user(
        &self,
        ctx: &CommandContext,
        user_id: &UserId,
    ) -> Result<Written<UserId>, CommandError> {
        authorize_account(ctx, Action::ReactivateUser)?;
        let request = Fingerprint::new("reactivateUser", &json!({"userId": user_id}))?;
        let command = UserCommand::Reactivate { at: ctx.now };
        self.user_command(ctx, user_id, &request, &command, false)
            .await
    }

    /// Looks a user up by email (for the admin CLI, e.g. `--owner E`).
    ///
    /// # Errors
    /// Infrastructure errors only; unknown or malformed emails give `Ok(None)`.
    pub async fn user_by_email(&self, email: &str) -> Result<Option<AuthUser>, CommandError> {
        self.auth().find_user_by_email(email).await
    }

    async fn user_command(
        &self,
        ctx: &CommandContext,
        user_id: &UserId,
        request: &Fingerprint,
        command: &UserCommand,
        revoke: bool,
    ) -> Result<Written<UserId>, CommandError> {
        let run = match self.runner().begin(ctx, None, request).await? {
            Begin::Replayed(result) => return Ok(result),
            Begin::Run(run) => run,
        };
        self.run_user_command(run, ctx, user_id, command, revoke, None)
            .await
    }

    /// Decides and appends `command` on an existing user, keeping `auth_users` in step;
    /// `revoke` ends every session, `password_hash` replaces the stored credential.
    async fn run_user_command(
        &self,
        mut run: Run<'_>,
        ctx: &CommandContext,
        user_id: &UserId,
        command: &UserCommand,
        revoke: bool,
        password_hash: Option<PasswordHashString>,
    ) -> Result<Written<UserId>, CommandError> {
        loop {
            let mut batch = run.batch();
            let user = load_existing::<User>(&mut batch, "user", user_id.as_str()).await?;
            let events = decide(&user, command)?;
            let emitted = batch.emit(&user, &events)?;
            if revoke {
                batch.tx_write(TxWrite::RevokeSessions {
                    user_id: user_id.clone(),
                    at: ctx.now,
                });
            }
            batch.tx_write(TxWrite::ProjectUser {
                user: emitted.state,
                version: emitted.version,
            });
            if let Some(hash) = &password_hash {
                batch.tx_write(TxWrite::SetPasswordHash {
                    user_id: user_id.clone(),
                    hash: hash.clone(),
                });
            }
            if let Some(result) = run
                .commit(batch, |o| Ok(written(user_id, emitted.version, o)))
                .await?
            {
                return Ok(result);
            }
        }
    }
}

/// Account actions on oneself: the user itself (checked against the matrix, which refuses API
/// tokens) or the system caller.
fn authorize_self(
    ctx: &CommandContext,
    user_id: &UserId,
    action: Action,
) -> Result<(), CommandError> {
    authorize_account(ctx, action)?;
    match ctx.caller.user_id() {
        Some(caller) if caller != user_id => Err(CommandError::forbidden(format!(
            "{action} applies only to one's own account"
        ))),
        _ => Ok(()),
    }
}
