//! A given/when/then harness for aggregates, usable from any crate's tests:
//!
//! ```
//! # use pyairtable_domain::testing::TestHarness;
//! # use pyairtable_domain::token::{ApiToken, TokenCommand, TokenError};
//! # let at = chrono::DateTime::<chrono::Utc>::UNIX_EPOCH;
//! TestHarness::<ApiToken>::given([]).when(TokenCommand::Revoke { at }).then_err(TokenError::NotCreated);
//! ```
//!
//! It is compiled into the library (it is pure and small) so that other crates' tests can use it
//! without a feature flag. Its assertions panic, as test assertions do; it is not for production
//! paths.
//!
//! Besides comparing events or errors, [`Outcome::then`] checks two properties every accepted
//! command must have: each emitted event survives a JSON round trip unchanged (what is stored is
//! what was decided), and applying the emitted events to the given state equals folding the
//! whole history from scratch.

use crate::aggregate::{Aggregate, DomainEvent};

/// The "given" half: an aggregate built from past events.
#[derive(Debug)]
pub struct TestHarness<A: Aggregate> {
    history: Vec<A::Event>,
    state: A,
}

impl<A: Aggregate> TestHarness<A> {
    /// Starts from the default state with `events` already applied.
    pub fn given(events: impl IntoIterator<Item = A::Event>) -> Self {
        let history: Vec<A::Event> = events.into_iter().collect();
        let state = A::default().fold(&history);
        Self { history, state }
    }

    /// The state built from the given events.
    #[must_use]
    pub fn state(&self) -> &A {
        &self.state
    }

    /// Decides `command` against the given state.
    pub fn when(self, command: A::Command) -> Outcome<A> {
        let result = self.state.handle(&command);
        Outcome {
            history: self.history,
            state: self.state,
            result,
        }
    }
}

/// The "then" half: what the command produced.
#[derive(Debug)]
pub struct Outcome<A: Aggregate> {
    history: Vec<A::Event>,
    state: A,
    result: Result<Vec<A::Event>, A::Error>,
}

impl<A: Aggregate> Outcome<A> {
    /// The raw decision, for assertions the other methods do not cover.
    pub fn result(&self) -> &Result<Vec<A::Event>, A::Error> {
        &self.result
    }

    /// Asserts the command was accepted with exactly `expected`, that each event round-trips
    /// through JSON, and that applying them to the given state equals folding the full history.
    /// Returns the state after the events, for further assertions.
    ///
    /// # Panics
    /// When any of those does not hold.
    #[track_caller]
    pub fn then(self, expected: impl IntoIterator<Item = A::Event>) -> A {
        let expected: Vec<A::Event> = expected.into_iter().collect();
        let events = match self.result {
            Ok(events) => events,
            Err(error) => panic!(
                "expected events {expected:#?}\nbut the command was rejected: {error} ({error:?})"
            ),
        };
        assert_eq!(
            events, expected,
            "emitted events differ from the expected ones"
        );
        for event in &events {
            assert_round_trips(event);
        }
        let mut state = self.state;
        for event in &events {
            state.apply(event);
        }
        let mut history = self.history;
        history.extend(events);
        let folded = A::default().fold(&history);
        // Compared as JSON because `Aggregate` does not require `PartialEq`, and the JSON is
        // exactly what a snapshot keeps (Debug may redact secrets such as password hashes).
        assert_eq!(
            snapshot(&state),
            snapshot(&folded),
            "state after applying the new events differs from folding the whole history"
        );
        state
    }

    /// Asserts the command was rejected with exactly `expected`.
    ///
    /// # Panics
    /// When it was accepted, or rejected with another error.
    #[track_caller]
    pub fn then_err(self, expected: A::Error) {
        match self.result {
            Ok(events) => {
                panic!("expected rejection {expected:?}\nbut the command emitted {events:#?}")
            }
            Err(error) => assert_eq!(error, expected, "rejected with another error"),
        }
    }
}

/// Asserts an event serialises to JSON and back unchanged, and that its `type` tag is its
/// `event_type()`.
///
/// # Panics
/// When either does not hold.
#[track_caller]
pub fn assert_round_trips<E: DomainEvent>(event: &E) {
    let json = match serde_json::to_value(event) {
        Ok(json) => json,
        Err(e) => panic!("event {event:?} does not serialise: {e}"),
    };
    if let Some(tag) = json.get("type").and_then(|t| t.as_str()) {
        assert_eq!(
            tag,
            event.event_type(),
            "serde tag differs from event_type()"
        );
    }
    let back: E = match serde_json::from_value(json.clone()) {
        Ok(back) => back,
        Err(e) => panic!("event {json} does not deserialise: {e}"),
    };
    assert_eq!(&back, event, "event changed in a JSON round trip");
}

#[track_caller]
fn snapshot<A: Aggregate>(state: &A) -> serde_json::Value {
    match serde_json::to_value(state) {
        Ok(json) => json,
        Err(e) => panic!("state {state:?} does not serialise: {e}"),
    }
}
