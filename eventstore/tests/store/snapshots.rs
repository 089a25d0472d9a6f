//! Snapshots: the latest per stream, with the version it covers.

use pyairtable_eventstore::testkit::TestStore;
use pyairtable_eventstore::{Direction, ExpectedVersion, StoreError};
use serde_json::json;

use crate::support::{events, meta, stream};

#[tokio::test]
async fn the_latest_snapshot_is_kept_with_its_version() -> anyhow::Result<()> {
    let test = TestStore::new().await;
    let s = stream("rec-recSNAPSHOT");
    assert_eq!(test.load_snapshot(&s).await?, None);
    test.append(&s, ExpectedVersion::NoStream, events(0..5), &meta())
        .await?;

    test.save_snapshot(&s, 3, 1, json!({"count": 3})).await?;
    let snap = test.load_snapshot(&s).await?;
    let snap = snap.ok_or_else(|| anyhow::anyhow!("snapshot missing"))?;
    assert_eq!((snap.version, snap.schema_version), (3, 1));
    assert_eq!(snap.state, json!({"count": 3}));

    test.save_snapshot(&s, 5, 2, json!({"count": 5, "nested": [1, {"a": null}]}))
        .await?;
    // An older snapshot arriving late does not replace the newer one.
    test.save_snapshot(&s, 4, 1, json!({"count": 4})).await?;
    let snap = test.load_snapshot(&s).await?;
    let snap = snap.ok_or_else(|| anyhow::anyhow!("snapshot missing"))?;
    assert_eq!((snap.version, snap.schema_version), (5, 2));
    assert_eq!(snap.state, json!({"count": 5, "nested": [1, {"a": null}]}));

    for version in [0, 6] {
        let err = test.save_snapshot(&s, version, 1, json!({})).await.err();
        assert!(
            matches!(err, Some(StoreError::SnapshotVersion { version: v, current: Some(5), .. }) if v == version),
            "{err:?}"
        );
    }
    let absent = stream("rec-recNOSTREAM");
    let err = test.save_snapshot(&absent, 1, 1, json!({})).await.err();
    assert!(
        matches!(err, Some(StoreError::SnapshotVersion { current: None, .. })),
        "{err:?}"
    );
    let err = test
        .save_snapshot(&s, 5, 1, json!({"x": "\u{0}"}))
        .await
        .err();
    assert!(
        matches!(err, Some(StoreError::InvalidJson { .. })),
        "{err:?}"
    );
    assert_eq!(test.load_snapshot(&s).await?.map(|s| s.version), Some(5));
    test.cleanup().await?;
    Ok(())
}

/// `load_stream` returns the latest snapshot and the events after it in one read: all of a
/// stream without a snapshot, the events past the snapshot's version with one, at most `max`.
#[tokio::test]
async fn a_stream_loads_as_its_snapshot_and_the_events_after_it() -> anyhow::Result<()> {
    let test = TestStore::new().await;
    let s = stream("rec-recLOADSTREAM");
    let empty = test.load_stream(&s, 10).await?;
    assert_eq!((empty.snapshot, empty.events.len()), (None, 0));
    test.append(&s, ExpectedVersion::NoStream, events(0..5), &meta())
        .await?;

    let all = test.load_stream(&s, 10).await?;
    assert_eq!(all.snapshot, None);
    let versions: Vec<u64> = all.events.iter().map(|e| e.version).collect();
    assert_eq!(versions, [1, 2, 3, 4, 5]);
    assert_eq!(
        all.events,
        test.read_stream(&s, 1, Direction::Forward, 10).await?
    );

    test.save_snapshot(&s, 3, 2, json!({"count": 3, "nested": [1, {"a": null}]}))
        .await?;
    let after = test.load_stream(&s, 10).await?;
    let snap = after
        .snapshot
        .ok_or_else(|| anyhow::anyhow!("snapshot missing"))?;
    assert_eq!((snap.version, snap.schema_version), (3, 2));
    assert_eq!(snap.state, json!({"count": 3, "nested": [1, {"a": null}]}));
    assert_eq!(Some(snap), test.load_snapshot(&s).await?);
    let versions: Vec<u64> = after.events.iter().map(|e| e.version).collect();
    assert_eq!(versions, [4, 5]);

    let first = test.load_stream(&s, 1).await?;
    assert!(first.snapshot.is_some());
    let versions: Vec<u64> = first.events.iter().map(|e| e.version).collect();
    assert_eq!(versions, [4]);

    test.save_snapshot(&s, 5, 2, json!({"count": 5})).await?;
    let caught_up = test.load_stream(&s, 10).await?;
    assert_eq!(caught_up.snapshot.map(|s| s.version), Some(5));
    assert!(caught_up.events.is_empty());
    test.cleanup().await?;
    Ok(())
}
