//! The user account aggregate, and the value types it shares with workspaces and tokens:
//! [`Email`] (parsed and normalised once) and [`NameError`].
//!
//! Credentials live outside the event log. Neither a password nor its hash is part of any
//! command, event or of the [`Account`] state: `UserPasswordChanged` records only that the
//! password changed, and when. Events are immutable and travel everywhere (the message bus, the
//! audit log, `events tail`, the admin API), so a hash written into one could never be erased
//! and would be offered to every consumer for offline cracking. The command layer hashes the
//! password and stores the hash in its credential table in the same transaction as the event,
//! and it is the command layer that refuses a "new" password equal to the current one, since
//! only it can verify a password against the stored hash.
//!
//! Email uniqueness across users is not decided here: one user's stream cannot see the others.
//! The command layer checks it against a read model before registering or changing an email.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::aggregate::{Aggregate, DomainEvent};
use crate::ids::UserId;

/// Longest display name accepted, in characters.
pub const DISPLAY_NAME_MAX_CHARS: usize = 100;

/// Longest email accepted, in characters (RFC 5321's path limit).
pub const EMAIL_MAX_CHARS: usize = 254;

/// Longest local part (before the `@`) accepted, in characters.
pub const EMAIL_LOCAL_MAX_CHARS: usize = 64;

/// Why a human-readable name (display name, workspace name, token name) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Nothing left after trimming whitespace.
    #[error("is empty")]
    Empty,
    /// Longer than allowed after trimming.
    #[error("has {chars} characters, more than the {max} allowed")]
    TooLong {
        /// Characters in the trimmed name.
        chars: usize,
        /// The limit.
        max: usize,
    },
    /// Contains a control character (newline, tab, NUL, ...), which would break lists and logs.
    #[error("contains the control character {ch:?}")]
    ControlCharacter {
        /// The first offending character.
        ch: char,
    },
}

/// Trims a name and checks it against the rules shared by every human-readable name.
pub(crate) fn parse_name(raw: &str, max: usize) -> Result<String, NameError> {
    let name = raw.trim();
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    let chars = name.chars().count();
    if chars > max {
        return Err(NameError::TooLong { chars, max });
    }
    if let Some(ch) = name.chars().find(|c| c.is_control()) {
        return Err(NameError::ControlCharacter { ch });
    }
    Ok(name.to_owned())
}

/// Why a string is not an acceptable email address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidEmail {
    /// Nothing left after trimming whitespace.
    #[error("email is empty")]
    Empty,
    /// Longer than [`EMAIL_MAX_CHARS`].
    #[error("email has {chars} characters, more than the {max} allowed")]
    TooLong {
        /// Characters in the trimmed address.
        chars: usize,
        /// The limit.
        max: usize,
    },
    /// Not exactly one `@`.
    #[error("email {value:?} must contain exactly one '@'")]
    NotOneAt {
        /// The rejected input (truncated to 64 characters).
        value: String,
    },
    /// Nothing before the `@`.
    #[error("email {value:?} has nothing before the '@'")]
    EmptyLocalPart {
        /// The rejected input (truncated to 64 characters).
        value: String,
    },
    /// Local part longer than [`EMAIL_LOCAL_MAX_CHARS`].
    #[error("email local part has {chars} characters, more than the {max} allowed")]
    LocalPartTooLong {
        /// Characters in the local part.
        chars: usize,
        /// The limit.
        max: usize,
    },
    /// The part after the `@` is not a domain name with at least two labels.
    #[error("email domain {domain:?} is not a valid domain name")]
    InvalidDomain {
        /// The rejected domain (truncated to 64 characters).
        domain: String,
    },
    /// A whitespace, control or special character that needs quoting, which is not supported.
    #[error("email contains the forbidden character {ch:?}")]
    ForbiddenCharacter {
        /// The first offending character.
        ch: char,
    },
}

/// An email address, trimmed and lowercased; once built it is known to be well-formed.
///
/// Lowercasing the whole address (not only the domain) is a deliberate choice: nearly every mail
/// provider treats the local part case-insensitively, and users expect `Ana@X.org` and
/// `ana@x.org` to be the same account and the same invitation.
///
/// Deserialising re-runs [`Email::parse`], so a stored event can never smuggle in a malformed
/// address; the price is that tightening these rules later needs an upcaster for old events.
#[derive(
    Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

impl Email {
    /// Trims, lowercases and checks an address.
    ///
    /// # Errors
    /// [`InvalidEmail`] naming the first rule the address breaks.
    pub fn parse(raw: &str) -> Result<Self, InvalidEmail> {
        let email = raw.trim().to_lowercase();
        let shown = || email.chars().take(64).collect::<String>();
        if email.is_empty() {
            return Err(InvalidEmail::Empty);
        }
        let chars = email.chars().count();
        if chars > EMAIL_MAX_CHARS {
            return Err(InvalidEmail::TooLong {
                chars,
                max: EMAIL_MAX_CHARS,
            });
        }
        if let Some(ch) = email
            .chars()
            .find(|c| c.is_whitespace() || c.is_control() || "\"(),:;<>[\\]".contains(*c))
        {
            return Err(InvalidEmail::ForbiddenCharacter { ch });
        }
        let mut parts = email.split('@');
        let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(InvalidEmail::NotOneAt { value: shown() });
        };
        if local.is_empty() {
            return Err(InvalidEmail::EmptyLocalPart { value: shown() });
        }
        let local_chars = local.chars().count();
        if local_chars > EMAIL_LOCAL_MAX_CHARS {
            return Err(InvalidEmail::LocalPartTooLong {
                chars: local_chars,
                max: EMAIL_LOCAL_MAX_CHARS,
            });
        }
        if !is_domain(domain) {
            return Err(InvalidEmail::InvalidDomain {
                domain: domain.chars().take(64).collect(),
            });
        }
        Ok(Self(email))
    }

    /// The normalised address.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// At least two dot-separated labels of 1 to 63 letters, digits or inner hyphens. Letters
/// include non-ASCII ones so internationalised domains typed by users are accepted as-is.
fn is_domain(domain: &str) -> bool {
    let labels: Vec<&str> = domain.split('.').collect();
    labels.len() >= 2
        && labels.iter().all(|label| {
            let n = label.chars().count();
            (1..=63).contains(&n)
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
}

impl TryFrom<String> for Email {
    type Error = InvalidEmail;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Email> for String {
    fn from(value: Email) -> Self {
        value.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Email({})", self.0)
    }
}

/// What can be asked of a user account.
#[derive(Clone, Debug, PartialEq)]
pub enum UserCommand {
    /// Opens an account.
    Register {
        /// The new user's id, drawn by the caller.
        id: UserId,
        /// The email as typed; it is trimmed, lowercased and checked here.
        email: String,
        /// The name shown to collaborators.
        display_name: String,
        /// Whether the account administers the whole instance.
        is_admin: bool,
        /// When.
        at: DateTime<Utc>,
    },
    /// Changes the display name and, optionally, the email.
    ChangeProfile {
        /// The new (or unchanged) display name.
        display_name: String,
        /// A new email, or `None` to keep the current one.
        email: Option<String>,
        /// When.
        at: DateTime<Utc>,
    },
    /// Records that the password was replaced. The new password and its hash are not part of
    /// the command: the command layer stores them outside the event log.
    ChangePassword {
        /// When.
        at: DateTime<Utc>,
    },
    /// Stops the account from signing in or acting.
    Deactivate {
        /// When.
        at: DateTime<Utc>,
    },
    /// Lets a deactivated account sign in again.
    Reactivate {
        /// When.
        at: DateTime<Utc>,
    },
}

/// What happened to a user account.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(tag = "type")]
pub enum UserEvent {
    /// An account was opened.
    UserRegistered {
        /// The user's id.
        id: UserId,
        /// Normalised email.
        email: Email,
        /// Trimmed display name.
        display_name: String,
        /// Whether the account administers the instance.
        is_admin: bool,
        /// When.
        at: DateTime<Utc>,
    },
    /// The profile changed; both values are the ones now in force.
    UserProfileChanged {
        /// The display name now in force.
        display_name: String,
        /// The email now in force.
        email: Email,
        /// When.
        at: DateTime<Utc>,
    },
    /// The password changed. Only the fact is recorded, never the hash.
    UserPasswordChanged {
        /// When.
        at: DateTime<Utc>,
    },
    /// The account was deactivated.
    UserDeactivated {
        /// When.
        at: DateTime<Utc>,
    },
    /// The account was reactivated.
    UserReactivated {
        /// When.
        at: DateTime<Utc>,
    },
}

impl DomainEvent for UserEvent {
    fn event_type(&self) -> &'static str {
        match self {
            UserEvent::UserRegistered { .. } => "UserRegistered",
            UserEvent::UserProfileChanged { .. } => "UserProfileChanged",
            UserEvent::UserPasswordChanged { .. } => "UserPasswordChanged",
            UserEvent::UserDeactivated { .. } => "UserDeactivated",
            UserEvent::UserReactivated { .. } => "UserReactivated",
        }
    }
}

/// Why a user command was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    /// `Register` on a stream that already holds an account.
    #[error("user {id} is already registered")]
    AlreadyRegistered {
        /// The existing account's id.
        id: UserId,
    },
    /// Any other command on a stream with no account.
    #[error("user is not registered")]
    NotRegistered,
    /// `Deactivate` on a deactivated account.
    #[error("user is already deactivated")]
    AlreadyDeactivated,
    /// `Reactivate` on an active account.
    #[error("user is not deactivated")]
    NotDeactivated,
    /// A profile or password change on a deactivated account.
    #[error("user is deactivated; reactivate the account first")]
    Deactivated,
    /// The email is malformed.
    #[error(transparent)]
    InvalidEmail(#[from] InvalidEmail),
    /// The display name is empty, too long or holds control characters.
    #[error("display name {0}")]
    InvalidDisplayName(NameError),
    /// `ChangeProfile` with the display name and email already in force.
    #[error("profile unchanged: display name and email are already these")]
    ProfileUnchanged,
}

/// A registered account as the aggregate knows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Account {
    /// The user's id.
    pub id: UserId,
    /// Normalised email.
    pub email: Email,
    /// Display name.
    pub display_name: String,
    /// Whether the account administers the instance.
    pub is_admin: bool,
    /// `false` once deactivated, `true` again on reactivation.
    pub active: bool,
    /// When the account was opened.
    pub registered_at: DateTime<Utc>,
    /// When the account last changed.
    pub updated_at: DateTime<Utc>,
}

/// The user aggregate: empty until registered.
#[derive(Default, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct User {
    account: Option<Account>,
}

impl User {
    /// The account, once registered.
    #[must_use]
    pub fn account(&self) -> Option<&Account> {
        self.account.as_ref()
    }

    fn active_account(&self) -> Result<&Account, UserError> {
        let account = self.account.as_ref().ok_or(UserError::NotRegistered)?;
        if account.active {
            Ok(account)
        } else {
            Err(UserError::Deactivated)
        }
    }
}

impl Aggregate for User {
    type Command = UserCommand;
    type Event = UserEvent;
    type Error = UserError;
    const KIND: &'static str = "user";

    fn handle(&self, command: &UserCommand) -> Result<Vec<UserEvent>, UserError> {
        let event = match command {
            UserCommand::Register {
                id,
                email,
                display_name,
                is_admin,
                at,
            } => {
                if let Some(existing) = &self.account {
                    return Err(UserError::AlreadyRegistered {
                        id: existing.id.clone(),
                    });
                }
                UserEvent::UserRegistered {
                    id: id.clone(),
                    email: Email::parse(email)?,
                    display_name: parse_name(display_name, DISPLAY_NAME_MAX_CHARS)
                        .map_err(UserError::InvalidDisplayName)?,
                    is_admin: *is_admin,
                    at: *at,
                }
            }
            UserCommand::ChangeProfile {
                display_name,
                email,
                at,
            } => {
                let account = self.active_account()?;
                let display_name = parse_name(display_name, DISPLAY_NAME_MAX_CHARS)
                    .map_err(UserError::InvalidDisplayName)?;
                let email = match email {
                    Some(raw) => Email::parse(raw)?,
                    None => account.email.clone(),
                };
                if display_name == account.display_name && email == account.email {
                    return Err(UserError::ProfileUnchanged);
                }
                UserEvent::UserProfileChanged {
                    display_name,
                    email,
                    at: *at,
                }
            }
            UserCommand::ChangePassword { at } => {
                self.active_account()?;
                UserEvent::UserPasswordChanged { at: *at }
            }
            UserCommand::Deactivate { at } => {
                let account = self.account.as_ref().ok_or(UserError::NotRegistered)?;
                if !account.active {
                    return Err(UserError::AlreadyDeactivated);
                }
                UserEvent::UserDeactivated { at: *at }
            }
            UserCommand::Reactivate { at } => {
                let account = self.account.as_ref().ok_or(UserError::NotRegistered)?;
                if account.active {
                    return Err(UserError::NotDeactivated);
                }
                UserEvent::UserReactivated { at: *at }
            }
        };
        Ok(vec![event])
    }

    fn apply(&mut self, event: &UserEvent) {
        if let UserEvent::UserRegistered {
            id,
            email,
            display_name,
            is_admin,
            at,
        } = event
        {
            self.account = Some(Account {
                id: id.clone(),
                email: email.clone(),
                display_name: display_name.clone(),
                is_admin: *is_admin,
                active: true,
                registered_at: *at,
                updated_at: *at,
            });
            return;
        }
        // Events are facts: one that arrives before registration (impossible through `handle`)
        // is ignored rather than allowed to panic a projection or a replay.
        let Some(account) = self.account.as_mut() else {
            return;
        };
        match event {
            UserEvent::UserRegistered { .. } => {}
            UserEvent::UserProfileChanged {
                display_name,
                email,
                at,
            } => {
                account.display_name.clone_from(display_name);
                account.email = email.clone();
                account.updated_at = *at;
            }
            UserEvent::UserPasswordChanged { at } => {
                account.updated_at = *at;
            }
            UserEvent::UserDeactivated { at } => {
                account.active = false;
                account.updated_at = *at;
            }
            UserEvent::UserReactivated { at } => {
                account.active = true;
                account.updated_at = *at;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn email_is_trimmed_and_lowercased() {
        let email = Email::parse("  Ana.Lopez+work@Example.ORG ").unwrap();
        assert_eq!(email.as_str(), "ana.lopez+work@example.org");
    }

    #[test]
    fn email_rejections_name_the_rule() {
        assert_eq!(Email::parse("   "), Err(InvalidEmail::Empty));
        assert_eq!(
            Email::parse("ana.example.org"),
            Err(InvalidEmail::NotOneAt {
                value: "ana.example.org".into()
            })
        );
        assert_eq!(
            Email::parse("a@b@example.org"),
            Err(InvalidEmail::NotOneAt {
                value: "a@b@example.org".into()
            })
        );
        assert_eq!(
            Email::parse("@example.org"),
            Err(InvalidEmail::EmptyLocalPart {
                value: "@example.org".into()
            })
        );
        assert_eq!(
            Email::parse("ana@localhost"),
            Err(InvalidEmail::InvalidDomain {
                domain: "localhost".into()
            })
        );
        assert_eq!(
            Email::parse("ana@-x.org"),
            Err(InvalidEmail::InvalidDomain {
                domain: "-x.org".into()
            })
        );
        assert_eq!(
            Email::parse("ana@x..org"),
            Err(InvalidEmail::InvalidDomain {
                domain: "x..org".into()
            })
        );
        assert_eq!(
            Email::parse("an a@x.org"),
            Err(InvalidEmail::ForbiddenCharacter { ch: ' ' })
        );
        assert_eq!(
            Email::parse("<ana@x.org>"),
            Err(InvalidEmail::ForbiddenCharacter { ch: '<' })
        );
        let long_local = format!("{}@x.org", "a".repeat(65));
        assert_eq!(
            Email::parse(&long_local),
            Err(InvalidEmail::LocalPartTooLong { chars: 65, max: 64 })
        );
        let long = format!("ana@{}.org", "a".repeat(250));
        assert_eq!(
            Email::parse(&long),
            Err(InvalidEmail::TooLong {
                chars: 258,
                max: 254
            })
        );
    }

    #[test]
    fn email_serde_validates() {
        let email: Email = serde_json::from_str("\"Ana@X.org\"").unwrap();
        assert_eq!(serde_json::to_string(&email).unwrap(), "\"ana@x.org\"");
        assert!(serde_json::from_str::<Email>("\"nope\"").is_err());
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(parse_name("  Ana  ", 5).as_deref(), Ok("Ana"));
        assert_eq!(parse_name(" \t ", 5), Err(NameError::Empty));
        assert_eq!(
            parse_name("abcdef", 5),
            Err(NameError::TooLong { chars: 6, max: 5 })
        );
        assert_eq!(parse_name("héllo", 5).as_deref(), Ok("héllo"));
        assert_eq!(
            parse_name("a\nb", 5),
            Err(NameError::ControlCharacter { ch: '\n' })
        );
    }

    proptest! {
        #[test]
        fn email_parse_is_idempotent_and_never_panics(s in "\\PC{0,40}") {
            if let Ok(email) = Email::parse(&s) {
                prop_assert_eq!(Email::parse(email.as_str()), Ok(email.clone()));
                prop_assert_eq!(email.as_str(), email.as_str().trim());
            }
        }

        #[test]
        fn generated_addresses_parse(local in "[a-zA-Z0-9._+-]{1,20}", domain in "[a-z0-9]{1,10}", tld in "[a-z]{2,6}") {
            let raw = format!("{local}@{domain}.{tld}");
            let email = Email::parse(&raw).unwrap();
            prop_assert_eq!(email.as_str(), raw.to_lowercase());
        }
    }
}
