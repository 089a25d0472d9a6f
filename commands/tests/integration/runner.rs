//! The generic runner: stream naming, snapshots, conflicts after exhausted retries, metadata.

use std::time::Duration;

use pyairtable_commands::runner::{SNAPSHOT_SCHEMA_VERSION, stream_id};
use pyairtable_commands::{CommandError, RunnerConfig};
use pyairtable_domain::Aggregate;
use pyairtable_domain::ids::UserId;
use pyairtable_domain::user::{User, UserCommand};

use crate::harness::{as_user, env, env_with, system};

fn register(id: &UserId) -> UserCommand {
    UserCommand::Register {
        id: id.clone(),
        email: format!("{}@example.com", id.as_str().to_lowercase()),
        display_name: "Runner".into(),
        is_admin: false,
        at: chrono::Utc::now(),
    }
}

#[tokio::test]
async fn execute_appends_typed_events_and_rejects_domain_errors() {
    let env = env().await;
    let id: UserId = pyairtable_commands::auth::new_id();
    let outcome = env
        .platform
        .runner()
        .execute::<User>(&system(), None, id.as_str(), &register(&id))
        .await
        .unwrap();
    assert_eq!(outcome.stream, format!("user-{id}"));
    assert_eq!(outcome.stream_version, 1);
    assert_eq!(outcome.events.len(), 1);
    assert_eq!(outcome.events[0].version, 1);
    assert!(outcome.state.account().is_some());
    let stored = env
        .test
        .store()
        .read_stream(
            &stream_id::<User>(id.as_str()).unwrap(),
            1,
            pyairtable_eventstore::Direction::Forward,
            10,
        )
        .await
        .unwrap();
    assert_eq!(stored[0].event_id, outcome.events[0].event_id);
    assert_eq!(stored[0].position.to_token(), outcome.position);

    let again = env
        .platform
        .runner()
        .execute::<User>(&system(), None, id.as_str(), &register(&id))
        .await;
    match again {
        Err(CommandError::Rejected { message, .. }) => {
            assert!(message.contains("already registered"))
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn snapshots_are_taken_every_n_events_and_used_for_loading() {
    let env = env_with(RunnerConfig {
        snapshot_every: 3,
        ..RunnerConfig::default()
    })
    .await;
    let id: UserId = pyairtable_commands::auth::new_id();
    let runner = env.platform.runner();
    runner
        .execute::<User>(&system(), None, id.as_str(), &register(&id))
        .await
        .unwrap();
    for i in 0..4 {
        let command = UserCommand::ChangeProfile {
            display_name: format!("Name {i}"),
            email: None,
            at: chrono::Utc::now(),
        };
        runner
            .execute::<User>(&as_user(&id), None, id.as_str(), &command)
            .await
            .unwrap();
    }
    let stream = stream_id::<User>(id.as_str()).unwrap();
    let snapshot = env
        .test
        .store()
        .load_snapshot(&stream)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(snapshot.version, 3);
    assert_eq!(snapshot.schema_version, SNAPSHOT_SCHEMA_VERSION);
    // Mark the snapshot where no later event reaches: loading must start from it.
    let mut state = snapshot.state.clone();
    state["account"]["is_admin"] = serde_json::json!(true);
    env.test
        .store()
        .save_snapshot(&stream, 3, SNAPSHOT_SCHEMA_VERSION, state)
        .await
        .unwrap();
    let loaded = runner.load::<User>(id.as_str()).await.unwrap();
    assert_eq!(loaded.version, 5);
    assert!(
        loaded.state.account().unwrap().is_admin,
        "the snapshot was not used"
    );
    assert_eq!(loaded.state.account().unwrap().display_name, "Name 3");
    // An unreadable snapshot is ignored, never fatal.
    env.test
        .store()
        .save_snapshot(
            &stream,
            5,
            SNAPSHOT_SCHEMA_VERSION,
            serde_json::json!({"account": 12}),
        )
        .await
        .unwrap();
    let loaded = runner.load::<User>(id.as_str()).await.unwrap();
    assert_eq!(loaded.version, 5);
    assert!(
        !loaded.state.account().unwrap().is_admin,
        "replayed from the start"
    );
    assert_eq!(loaded.state.account().unwrap().display_name, "Name 3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_keeps_moving_ends_in_a_conflict_after_the_attempts() {
    let env = env_with(RunnerConfig {
        max_attempts: 3,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(2),
        snapshot_every: 0,
    })
    .await;
    let id: UserId = pyairtable_commands::auth::new_id();
    let runner = env.platform.runner().clone();
    runner
        .execute::<User>(&system(), None, id.as_str(), &register(&id))
        .await
        .unwrap();
    let mut decisions = 0;
    let interferer = runner.clone();
    let result = runner
        .execute_with::<User, _>(&system(), None, id.as_str(), |loaded| {
            decisions += 1;
            // Another writer sneaks in between every decision and its append.
            tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current().block_on(async {
                    let command = UserCommand::ChangeProfile {
                        display_name: format!("Other {}", uuid::Uuid::new_v4()),
                        email: None,
                        at: chrono::Utc::now(),
                    };
                    interferer
                        .execute::<User>(&system(), None, id.as_str(), &command)
                        .await
                        .unwrap();
                });
            });
            loaded
                .state
                .handle(&UserCommand::Deactivate {
                    at: chrono::Utc::now(),
                })
                .map_err(|e| CommandError::domain(&e))
        })
        .await;
    match result {
        Err(CommandError::Conflict { stream, attempts }) => {
            assert_eq!(stream, format!("user-{id}"));
            assert_eq!(attempts, 3);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(decisions, 3);
    let state = runner.load::<User>(id.as_str()).await.unwrap();
    assert!(
        state.state.account().unwrap().active,
        "the losing write left no trace"
    );
}
