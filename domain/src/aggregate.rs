//! The decider shape every aggregate follows: a pure, synchronous pair of `handle` (decide which
//! events a command produces, or reject it) and `apply` (fold one event into the state).
//!
//! Nothing here reads a clock, draws randomness or does I/O: whatever a decision needs (the time,
//! new ids, the table schema a record must follow) arrives on the command.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// An event an aggregate emits. Named in the past tense, with a stable type name and a schema
/// version so stored events stay readable after the code changes.
pub trait DomainEvent: Serialize + DeserializeOwned + Clone + std::fmt::Debug + PartialEq {
    /// Stable type name stored beside the payload (e.g. `RecordCreated`). Never rename one.
    fn event_type(&self) -> &'static str;

    /// Schema version of this event's payload; bump it (and add an upcaster) on a breaking change.
    fn event_version(&self) -> i32 {
        1
    }
}

/// A consistency boundary: commands are decided against its state, one stream per instance.
pub trait Aggregate: Default + Clone + std::fmt::Debug + Serialize + DeserializeOwned {
    /// What callers ask for.
    type Command;
    /// What happened.
    type Event: DomainEvent;
    /// Why a command was rejected (a user error, never an infrastructure one).
    type Error: std::error::Error + PartialEq;

    /// Stream-name prefix for instances of this aggregate, e.g. `record`.
    const KIND: &'static str;

    /// Decides the events a command produces against the current state.
    ///
    /// # Errors
    /// The domain rejection that explains why the command is not allowed in this state.
    fn handle(&self, command: &Self::Command) -> Result<Vec<Self::Event>, Self::Error>;

    /// Folds one event into the state. Must accept every event `handle` ever emitted; it never
    /// fails, because events are facts.
    fn apply(&mut self, event: &Self::Event);

    /// Folds many events, starting from `self`.
    #[must_use]
    fn fold<'a>(mut self, events: impl IntoIterator<Item = &'a Self::Event>) -> Self
    where
        Self::Event: 'a,
    {
        for e in events {
            self.apply(e);
        }
        self
    }
}
