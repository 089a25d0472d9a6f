//! [`EventFilter`]: which events of the feed a subscriber receives.

use std::collections::HashSet;

use pyairtable_eventstore::RecordedEvent;
use pyairtable_projections::names::aggregate_kind;

/// Which workspaces a filter lets through.
#[derive(Debug, Clone, PartialEq, Eq)]
enum WorkspaceScope {
    /// Only events carrying one of these workspace ids.
    Only(HashSet<String>),
    /// Every event, with or without a workspace: administrators and internal consumers only.
    AllForAdmin,
}

/// Which events a subscription delivers.
///
/// Every filter is scoped to workspaces: [`EventFilter::for_workspaces`] takes the set the
/// caller may read (authorisation is the caller's job), and the only way to see every
/// workspace is the explicit [`EventFilter::all_for_admin`]. So a subscription without a
/// workspace restriction cannot be built by accident (invariant 8, tenant isolation).
///
/// Events that carry no workspace (users, API tokens, global streams) match only an admin
/// filter. The optional restrictions narrow further; each `None` means "any", and each
/// `Some` set must contain the event's value (an empty set matches nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventFilter {
    workspaces: WorkspaceScope,
    stream_ids: Option<HashSet<String>>,
    aggregate_kinds: Option<HashSet<String>>,
    event_types: Option<HashSet<String>>,
}

impl EventFilter {
    /// Events of these workspaces only (an empty set matches nothing).
    #[must_use]
    pub fn for_workspaces<I, S>(workspace_ids: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::scoped(WorkspaceScope::Only(
            workspace_ids.into_iter().map(Into::into).collect(),
        ))
    }

    /// Every event of the namespace, whatever its workspace. Only for administrators and
    /// internal consumers (webhook dispatch, audit export) that are allowed to see all tenants.
    #[must_use]
    pub fn all_for_admin() -> Self {
        Self::scoped(WorkspaceScope::AllForAdmin)
    }

    fn scoped(workspaces: WorkspaceScope) -> Self {
        Self {
            workspaces,
            stream_ids: None,
            aggregate_kinds: None,
            event_types: None,
        }
    }

    /// Also restricts to these streams (full stream ids such as `rec-recXXXX`).
    #[must_use]
    pub fn with_stream_ids<I, S>(mut self, stream_ids: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.stream_ids = Some(stream_ids.into_iter().map(Into::into).collect());
        self
    }

    /// Also restricts to these aggregate kinds: the part of the stream id before the first
    /// `-` (`rec`, `base`, `workspace`, ...).
    #[must_use]
    pub fn with_aggregate_kinds<I, S>(mut self, kinds: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.aggregate_kinds = Some(kinds.into_iter().map(Into::into).collect());
        self
    }

    /// Also restricts to these event types (`RecordCreated`, ...).
    #[must_use]
    pub fn with_event_types<I, S>(mut self, event_types: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.event_types = Some(event_types.into_iter().map(Into::into).collect());
        self
    }

    /// The workspaces let through; `None` only for [`EventFilter::all_for_admin`].
    #[must_use]
    pub fn workspace_ids(&self) -> Option<&HashSet<String>> {
        match &self.workspaces {
            WorkspaceScope::Only(set) => Some(set),
            WorkspaceScope::AllForAdmin => None,
        }
    }

    /// True for a filter made by [`EventFilter::all_for_admin`].
    #[must_use]
    pub fn is_admin(&self) -> bool {
        self.workspaces == WorkspaceScope::AllForAdmin
    }

    /// The stream restriction, if any.
    #[must_use]
    pub fn stream_ids(&self) -> Option<&HashSet<String>> {
        self.stream_ids.as_ref()
    }

    /// The aggregate-kind restriction, if any.
    #[must_use]
    pub fn aggregate_kinds(&self) -> Option<&HashSet<String>> {
        self.aggregate_kinds.as_ref()
    }

    /// The event-type restriction, if any.
    #[must_use]
    pub fn event_types(&self) -> Option<&HashSet<String>> {
        self.event_types.as_ref()
    }

    /// Whether `event` passes every restriction.
    #[must_use]
    pub fn matches(&self, event: &RecordedEvent) -> bool {
        let workspace_ok = match &self.workspaces {
            WorkspaceScope::AllForAdmin => true,
            WorkspaceScope::Only(set) => event
                .metadata
                .workspace_id
                .as_deref()
                .is_some_and(|w| set.contains(w)),
        };
        workspace_ok
            && allows(self.stream_ids.as_ref(), &event.stream_id)
            && allows(
                self.aggregate_kinds.as_ref(),
                aggregate_kind(&event.stream_id),
            )
            && allows(self.event_types.as_ref(), &event.event_type)
    }
}

fn allows(set: Option<&HashSet<String>>, value: &str) -> bool {
    set.is_none_or(|s| s.contains(value))
}

#[cfg(test)]
mod tests {
    use pyairtable_eventstore::{Actor, Metadata, Position};
    use serde_json::json;
    use uuid::Uuid;

    use super::*;

    fn event(stream: &str, event_type: &str, workspace: Option<&str>) -> RecordedEvent {
        let mut metadata = Metadata::new(
            Actor::User {
                id: "usr00000000000001".to_owned(),
            },
            Uuid::new_v4(),
        );
        if let Some(w) = workspace {
            metadata = metadata.with_workspace(w);
        }
        RecordedEvent {
            position: Position::START,
            stream_id: stream.to_owned(),
            version: 1,
            event_id: Uuid::new_v4(),
            event_type: event_type.to_owned(),
            schema_version: 1,
            payload: json!({}),
            metadata,
            recorded_at: chrono::Utc::now(),
            hash: [0; 32],
            prev_hash: [0; 32],
        }
    }

    #[test]
    fn workspace_scope_is_required_and_strict() {
        let f = EventFilter::for_workspaces(["wspA"]);
        assert!(f.matches(&event("rec-r1", "RecordCreated", Some("wspA"))));
        assert!(!f.matches(&event("rec-r1", "RecordCreated", Some("wspB"))));
        // No workspace on the event: only an admin may see it.
        assert!(!f.matches(&event("user-u1", "UserRegistered", None)));
        assert!(EventFilter::all_for_admin().matches(&event("user-u1", "UserRegistered", None)));
        let none = EventFilter::for_workspaces(Vec::<String>::new());
        assert!(!none.matches(&event("rec-r1", "RecordCreated", Some("wspA"))));
        assert!(!f.is_admin() && EventFilter::all_for_admin().is_admin());
        assert_eq!(EventFilter::all_for_admin().workspace_ids(), None);
    }

    #[test]
    fn narrowing_by_stream_kind_and_type() {
        let f = EventFilter::for_workspaces(["w"])
            .with_aggregate_kinds(["rec"])
            .with_event_types(["RecordUpdated"]);
        assert!(f.matches(&event("rec-r1", "RecordUpdated", Some("w"))));
        assert!(!f.matches(&event("rec-r1", "RecordCreated", Some("w"))));
        assert!(!f.matches(&event("base-b1", "RecordUpdated", Some("w"))));
        let s = EventFilter::all_for_admin().with_stream_ids(["rec-r2"]);
        assert!(s.matches(&event("rec-r2", "X", None)));
        assert!(!s.matches(&event("rec-r1", "X", None)));
        // A stream id without a kind has kind `_`.
        let k = EventFilter::all_for_admin().with_aggregate_kinds(["_"]);
        assert!(k.matches(&event("global", "X", None)));
    }
}
