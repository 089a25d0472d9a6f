//! Appending: expected versions, idempotency, limits, multi-stream atomicity, reading back.

use pyairtable_eventstore::testkit::TestStore;
use pyairtable_eventstore::{
    Actor, Direction, ErrorKind, ExpectedVersion, GENESIS, Metadata, NewEvent, Position,
    StoreError, StreamId, StreamWrite,
};
use serde_json::json;
use uuid::Uuid;

use crate::support::{count_events, event, events, meta, payload_n, stream};

#[tokio::test]
async fn appends_and_reads_forwards_and_backwards() -> anyhow::Result<()> {
    let test = TestStore::new().await;
    let s = stream("rec-recAAAAAAAAAAAAAA");
    let metadata = meta();
    let first = test
        .append(&s, ExpectedVersion::NoStream, events(1..4), &metadata)
        .await?;
    assert_eq!((first.first_version, first.last_version), (1, 3));
    assert!(!first.deduplicated);
    assert_eq!(first.events.len(), 3);
    assert_eq!(first.position, first.events[2].position);
    let second = test
        .append(&s, ExpectedVersion::Exact(3), events(4..6), &metadata)
        .await?;
    assert_eq!((second.first_version, second.last_version), (4, 5));
    assert!(second.position > first.position);
    assert_eq!(test.stream_version(&s).await?, Some(5));

    let all = test.read_stream(&s, 1, Direction::Forward, 100).await?;
    let versions: Vec<u64> = all.iter().map(|e| e.version).collect();
    assert_eq!(versions, [1, 2, 3, 4, 5]);
    let ns: Vec<Option<u64>> = all.iter().map(|e| payload_n(&e.payload)).collect();
    assert_eq!(ns, [Some(1), Some(2), Some(3), Some(4), Some(5)]);
    assert!(
        all.iter()
            .all(|e| e.metadata == metadata && e.stream_id == s.as_str())
    );
    assert_eq!(all[0].prev_hash, GENESIS);
    for pair in all.windows(2) {
        assert_eq!(pair[1].prev_hash, pair[0].hash);
        assert!(pair[1].position > pair[0].position);
    }
    assert_eq!(all[0].event_id, first.events[0].event_id);
    assert_eq!(all[4].position, second.position);

    let middle = test.read_stream(&s, 3, Direction::Forward, 2).await?;
    assert_eq!(middle.iter().map(|e| e.version).collect::<Vec<_>>(), [3, 4]);
    let tail = test
        .read_stream(&s, u64::MAX, Direction::Backward, 2)
        .await?;
    assert_eq!(tail.iter().map(|e| e.version).collect::<Vec<_>>(), [5, 4]);
    let head = test.read_stream(&s, 2, Direction::Backward, 10).await?;
    assert_eq!(head.iter().map(|e| e.version).collect::<Vec<_>>(), [2, 1]);
    assert!(
        test.read_stream(&s, 6, Direction::Forward, 10)
            .await?
            .is_empty()
    );
    assert!(
        test.read_stream(&s, 1, Direction::Forward, 0)
            .await?
            .is_empty()
    );

    let missing = stream("rec-missing");
    assert!(
        test.read_stream(&missing, 1, Direction::Forward, 10)
            .await?
            .is_empty()
    );
    assert_eq!(test.stream_version(&missing).await?, None);
    test.cleanup().await?;
    Ok(())
}

#[tokio::test]
async fn expected_version_semantics() -> anyhow::Result<()> {
    let test = TestStore::new().await;
    let s = stream("base-appEXPECTED");
    let m = meta();

    test.append(&s, ExpectedVersion::NoStream, events(0..1), &m)
        .await?;
    let err = test
        .append(&s, ExpectedVersion::NoStream, events(1..2), &m)
        .await
        .err();
    assert!(
        matches!(&err, Some(StoreError::Conflict { stream, expected: ExpectedVersion::NoStream, actual: Some(1) }) if stream == s.as_str()),
        "{err:?}"
    );
    assert_eq!(err.map(|e| e.kind()), Some(ErrorKind::Conflict));

    let r = test
        .append(&s, ExpectedVersion::Exact(1), events(1..2), &m)
        .await?;
    assert_eq!(r.last_version, 2);
    let err = test
        .append(&s, ExpectedVersion::Exact(1), events(2..3), &m)
        .await
        .err();
    assert!(
        matches!(
            err,
            Some(StoreError::Conflict {
                expected: ExpectedVersion::Exact(1),
                actual: Some(2),
                ..
            })
        ),
        "{err:?}"
    );
    let err = test
        .append(&s, ExpectedVersion::Exact(u64::MAX), events(2..3), &m)
        .await
        .err();
    assert!(
        matches!(
            err,
            Some(StoreError::Conflict {
                actual: Some(2),
                ..
            })
        ),
        "{err:?}"
    );
    assert_eq!(test.stream_version(&s).await?, Some(2));

    let r = test
        .append(&s, ExpectedVersion::Any, events(2..3), &m)
        .await?;
    assert_eq!((r.first_version, r.last_version), (3, 3));

    let fresh = stream("base-appFRESH");
    let err = test
        .append(&fresh, ExpectedVersion::Exact(5), events(0..1), &m)
        .await
        .err();
    assert!(
        matches!(err, Some(StoreError::Conflict { actual: None, .. })),
        "{err:?}"
    );
    let r = test
        .append(&fresh, ExpectedVersion::Exact(0), events(0..1), &m)
        .await?;
    assert_eq!(r.first_version, 1);
    let other = stream("base-appANY");
    let r = test
        .append(&other, ExpectedVersion::Any, events(0..2), &m)
        .await?;
    assert_eq!((r.first_version, r.last_version), (1, 2));
    assert_eq!(count_events(&test).await?, 3 + 1 + 2);
    test.cleanup().await?;
    Ok(())
}

#[tokio::test]
async fn a_retried_append_returns_the_original_result_and_writes_nothing() -> anyhow::Result<()> {
    let test = TestStore::new().await;
    let s = stream("rec-recIDEMPOTENT0001");
    let m = meta();
    let batch = events(0..2);
    let original = test
        .append(&s, ExpectedVersion::NoStream, batch.clone(), &m)
        .await?;
    test.append(&s, ExpectedVersion::Exact(2), events(2..3), &m)
        .await?;

    // Same expected version as the first time: stale now, but it is a retry, not a conflict.
    let retried = test
        .append(&s, ExpectedVersion::NoStream, batch.clone(), &m)
        .await?;
    assert!(retried.deduplicated);
    assert_eq!(retried.events, original.events);
    assert_eq!(retried.position, original.position);
    assert_eq!(retried.recorded_at, original.recorded_at);
    assert_eq!((retried.first_version, retried.last_version), (1, 2));

    // With Any the append goes as far as the unique index before it is recognised.
    let again = test.append(&s, ExpectedVersion::Any, batch, &m).await?;
    assert!(again.deduplicated);
    assert_eq!(again.events, original.events);
    assert_eq!(test.stream_version(&s).await?, Some(3));
    assert_eq!(count_events(&test).await?, 3);
    test.cleanup().await?;
    Ok(())
}

#[tokio::test]
async fn a_retried_multi_stream_append_is_deduplicated_as_a_whole() -> anyhow::Result<()> {
    let test = TestStore::new().await;
    let m = meta();
    let writes = vec![
        StreamWrite {
            stream: stream("rec-recLINKA"),
            expected: ExpectedVersion::NoStream,
            events: events(0..2),
        },
        StreamWrite {
            stream: stream("rec-recLINKB"),
            expected: ExpectedVersion::NoStream,
            events: events(2..3),
        },
    ];
    let original = test.append_many(writes.clone(), &m).await?;
    let retried = test.append_many(writes, &m).await?;
    assert_eq!(retried.len(), 2);
    for (r, o) in retried.iter().zip(&original) {
        assert!(r.deduplicated);
        assert_eq!(r.events, o.events);
        assert_eq!(r.stream_id, o.stream_id);
    }
    assert_eq!(count_events(&test).await?, 3);
    test.cleanup().await?;
    Ok(())
}

#[tokio::test]
async fn partly_stored_or_misplaced_ids_are_typed_errors_that_write_nothing() -> anyhow::Result<()>
{
    let test = TestStore::new().await;
    let s = stream("rec-recPARTIAL");
    let m = meta();
    let stored = events(0..2);
    test.append(&s, ExpectedVersion::NoStream, stored.clone(), &m)
        .await?;

    let fresh = event(9);
    let err = test
        .append(
            &s,
            ExpectedVersion::Exact(2),
            vec![stored[1].clone(), fresh.clone()],
            &m,
        )
        .await
        .err();
    assert!(
        matches!(err, Some(StoreError::PartialDuplicate { stored: 1, total: 2, missing }) if missing == fresh.event_id),
        "{err:?}"
    );

    let elsewhere = stream("rec-recELSEWHERE");
    let err = test
        .append(
            &elsewhere,
            ExpectedVersion::NoStream,
            vec![stored[0].clone()],
            &m,
        )
        .await
        .err();
    assert!(
        matches!(&err, Some(StoreError::DuplicateEventId { event_id, stored_stream, stored_version: 1 }) if *event_id == stored[0].event_id && stored_stream == s.as_str()),
        "{err:?}"
    );
    assert_eq!(err.map(|e| e.kind()), Some(ErrorKind::Rejected));

    // Stored in this stream, but not as this append (order differs).
    let err = test
        .append(
            &s,
            ExpectedVersion::Any,
            vec![stored[1].clone(), stored[0].clone()],
            &m,
        )
        .await
        .err();
    assert!(
        matches!(err, Some(StoreError::DuplicateEventId { .. })),
        "{err:?}"
    );

    assert_eq!(count_events(&test).await?, 2);
    assert_eq!(test.stream_version(&elsewhere).await?, None);
    test.cleanup().await?;
    Ok(())
}

#[tokio::test]
async fn limits_are_typed_errors_that_write_nothing() -> anyhow::Result<()> {
    let test = TestStore::with_config(|c| c.max_event_bytes = 1_000).await?;
    let s = stream("rec-recLIMITS");
    let m = meta();
    let head = test.head().await?;

    let err = test
        .append(&s, ExpectedVersion::Any, vec![], &m)
        .await
        .err();
    assert!(matches!(err, Some(StoreError::EmptyBatch)), "{err:?}");
    let err = test.append_many(vec![], &m).await.err();
    assert!(matches!(err, Some(StoreError::EmptyBatch)), "{err:?}");
    let err = test
        .append_many(
            vec![
                StreamWrite {
                    stream: s.clone(),
                    expected: ExpectedVersion::Any,
                    events: events(0..1),
                },
                StreamWrite {
                    stream: stream("rec-recEMPTY"),
                    expected: ExpectedVersion::Any,
                    events: vec![],
                },
            ],
            &m,
        )
        .await
        .err();
    assert!(matches!(err, Some(StoreError::EmptyBatch)), "{err:?}");

    for bad in ["", "has space", "-leading", "x/y", &"a".repeat(201)] {
        let err = StreamId::parse(bad).err();
        assert!(
            matches!(err, Some(StoreError::InvalidStreamId { .. })),
            "{bad:?}: {err:?}"
        );
        assert_eq!(err.map(|e| e.kind()), Some(ErrorKind::Rejected));
    }

    let big = NewEvent {
        payload: json!({ "blob": "x".repeat(2_000) }),
        ..event(1)
    };
    let err = test
        .append(&s, ExpectedVersion::Any, vec![event(0), big.clone()], &m)
        .await
        .err();
    assert!(
        matches!(err, Some(StoreError::EventTooLarge { event_id, size, limit: 1_000 }) if event_id == big.event_id && size > 2_000),
        "{err:?}"
    );

    let nul = NewEvent {
        payload: json!({ "text": "a\u{0}b" }),
        ..event(2)
    };
    let err = test
        .append(&s, ExpectedVersion::Any, vec![nul], &m)
        .await
        .err();
    assert!(
        matches!(
            err,
            Some(StoreError::InvalidJson {
                field: "payload",
                ..
            })
        ),
        "{err:?}"
    );

    let mut nul_meta = meta();
    nul_meta.extra.insert("k".into(), json!("\u{0}"));
    let err = test
        .append(&s, ExpectedVersion::Any, events(0..1), &nul_meta)
        .await
        .err();
    assert!(
        matches!(
            err,
            Some(StoreError::InvalidJson {
                field: "metadata",
                ..
            })
        ),
        "{err:?}"
    );

    for bad_type in ["", "Has Space", "Émoji"] {
        let e = NewEvent {
            event_type: bad_type.into(),
            ..event(3)
        };
        let err = test
            .append(&s, ExpectedVersion::Any, vec![e], &m)
            .await
            .err();
        assert!(
            matches!(err, Some(StoreError::InvalidEventType { .. })),
            "{bad_type:?}: {err:?}"
        );
    }

    let twice = event(4);
    let err = test
        .append(
            &s,
            ExpectedVersion::Any,
            vec![twice.clone(), twice.clone()],
            &m,
        )
        .await
        .err();
    assert!(
        matches!(err, Some(StoreError::DuplicateEventInBatch { event_id }) if event_id == twice.event_id)
    );

    let err = test
        .append_many(
            vec![
                StreamWrite {
                    stream: s.clone(),
                    expected: ExpectedVersion::Any,
                    events: events(0..1),
                },
                StreamWrite {
                    stream: s.clone(),
                    expected: ExpectedVersion::Any,
                    events: events(1..2),
                },
            ],
            &m,
        )
        .await
        .err();
    assert!(
        matches!(err, Some(StoreError::DuplicateStreamInBatch { .. })),
        "{err:?}"
    );

    assert_eq!(count_events(&test).await?, 0);
    assert_eq!(test.head().await?, head);
    assert_eq!(test.stream_version(&s).await?, None);
    test.cleanup().await?;
    Ok(())
}

#[tokio::test]
async fn a_multi_stream_append_is_atomic_and_names_the_first_failing_stream() -> anyhow::Result<()>
{
    let test = TestStore::new().await;
    let m = meta();
    let (a, b, c) = (stream("rec-recA"), stream("rec-recB"), stream("rec-recC"));
    test.append(&a, ExpectedVersion::NoStream, events(0..1), &m)
        .await?;
    test.append(&c, ExpectedVersion::NoStream, events(0..2), &m)
        .await?;

    let write = |s: &StreamId, expected, n| StreamWrite {
        stream: s.clone(),
        expected,
        events: events(n..n + 2),
    };
    let err = test
        .append_many(
            vec![
                write(&b, ExpectedVersion::NoStream, 10),
                write(&c, ExpectedVersion::Exact(7), 20),
                write(&a, ExpectedVersion::Exact(5), 30),
            ],
            &m,
        )
        .await
        .err();
    assert!(
        matches!(&err, Some(StoreError::Conflict { stream, expected: ExpectedVersion::Exact(7), actual: Some(2) }) if stream == c.as_str()),
        "{err:?}"
    );
    assert_eq!(test.stream_version(&b).await?, None);
    assert_eq!(count_events(&test).await?, 3);

    let results = test
        .append_many(
            vec![
                write(&c, ExpectedVersion::Exact(2), 20),
                write(&b, ExpectedVersion::NoStream, 10),
                write(&a, ExpectedVersion::Exact(1), 30),
            ],
            &m,
        )
        .await?;
    let summary: Vec<(&str, u64, u64)> = results
        .iter()
        .map(|r| (r.stream_id.as_str(), r.first_version, r.last_version))
        .collect();
    assert_eq!(
        summary,
        [("rec-recC", 3, 4), ("rec-recB", 1, 2), ("rec-recA", 2, 3)]
    );
    // One transaction: every event carries the same epoch and transaction id.
    let xids: Vec<(u64, u64)> = results
        .iter()
        .flat_map(|r| r.events.iter().map(|e| (e.position.epoch, e.position.xid)))
        .collect();
    assert!(xids.windows(2).all(|w| w[0] == w[1]), "{xids:?}");
    assert_eq!(count_events(&test).await?, 9);
    test.cleanup().await?;
    Ok(())
}

#[tokio::test]
async fn metadata_of_every_actor_kind_round_trips_through_the_store() -> anyhow::Result<()> {
    let test = TestStore::new().await;
    let actors = [
        Actor::User { id: "usr1".into() },
        Actor::ApiToken {
            id: "tok1".into(),
            user_id: "usr1".into(),
        },
        Actor::System {
            name: "importer".into(),
        },
        Actor::Automation { id: "aut1".into() },
        Actor::Agent { id: "agt1".into() },
    ];
    for (i, actor) in actors.into_iter().enumerate() {
        let mut m = Metadata::new(actor, Uuid::new_v4())
            .with_causation(Uuid::new_v4())
            .with_workspace("wsp1");
        m.extra
            .insert("request_id".into(), json!(format!("req-{i}")));
        m.extra
            .insert("nested".into(), json!({"a": [1, 2.5, null, true]}));
        let s = stream(&format!("rec-actor-{i}"));
        let e = NewEvent {
            schema_version: 3,
            ..event(i as u64)
        };
        test.append(&s, ExpectedVersion::NoStream, vec![e.clone()], &m)
            .await?;
        let read = test.read_stream(&s, 1, Direction::Forward, 1).await?;
        assert_eq!(read.len(), 1);
        assert_eq!(read[0].metadata, m);
        assert_eq!(read[0].event_type, e.event_type);
        assert_eq!(read[0].schema_version, 3);
        assert_eq!(read[0].payload, e.payload);
        assert_eq!(read[0].event_id, e.event_id);
    }
    test.cleanup().await?;
    Ok(())
}

#[tokio::test]
async fn store_connections_carry_the_namespace_and_the_idle_timeout() -> anyhow::Result<()> {
    let test = TestStore::with_config(|c| {
        c.idle_in_transaction_timeout = std::time::Duration::from_millis(1_500);
    })
    .await?;
    let mut conn = test.pool().acquire().await?;
    let timeout: String = sqlx::query_scalar("SHOW idle_in_transaction_session_timeout")
        .fetch_one(&mut *conn)
        .await?;
    assert_eq!(timeout, "1500ms");
    let schema: String = sqlx::query_scalar("SELECT current_schema()")
        .fetch_one(&mut *conn)
        .await?;
    assert_eq!(schema, test.namespace().as_str());
    drop(conn);

    // A transaction left idle is ended by the server, so it stops holding the feed back and
    // its events are never written.
    let s = stream("rec-recIDLE");
    let mut tx = test.pool().begin().await?;
    test.append_many_in(
        &mut tx,
        vec![StreamWrite {
            stream: s.clone(),
            expected: ExpectedVersion::NoStream,
            events: events(0..1),
        }],
        &meta(),
    )
    .await?;
    tokio::time::sleep(std::time::Duration::from_millis(2_500)).await;
    assert!(tx.commit().await.is_err());
    assert_eq!(test.stream_version(&s).await?, None);
    assert_eq!(test.head().await?, Position::START);
    test.cleanup().await?;
    Ok(())
}

/// Each event links to its predecessor's stored hash and is not recorded before it.
fn check_links(read: &[pyairtable_eventstore::RecordedEvent]) {
    for pair in read.windows(2) {
        assert_eq!(pair[1].prev_hash, pair[0].hash, "v{}", pair[1].version);
        assert!(
            pair[1].recorded_at >= pair[0].recorded_at,
            "v{} recorded at {} after v{} at {}",
            pair[1].version,
            pair[1].recorded_at,
            pair[0].version,
            pair[0].recorded_at
        );
    }
}

/// A second store on the same namespace, as another process of the platform would be.
async fn second_store(test: &TestStore) -> anyhow::Result<pyairtable_eventstore::EventStore> {
    let config = pyairtable_eventstore::StoreConfig::new(
        test.database_url().to_owned(),
        test.namespace().clone(),
    );
    Ok(pyairtable_eventstore::EventStore::connect(config).await?)
}

/// The heads a store remembers from its own appends are claims, checked by the database: one
/// made stale by another process costs a retry, never a wrong version, chain or time.
#[tokio::test]
async fn a_head_made_stale_by_another_process_is_never_chained_onto() -> anyhow::Result<()> {
    let test = TestStore::new().await;
    let other = second_store(&test).await?;
    let s = stream("rec-recSTALEHEAD00001");
    test.append(&s, ExpectedVersion::NoStream, events(1..3), &meta())
        .await?;
    // Another process moves the stream on; this store still remembers version 2.
    other
        .append(&s, ExpectedVersion::Exact(2), events(3..4), &meta())
        .await?;

    // An exact expectation that matches the stale head is a conflict with the real version.
    let err = test
        .append(&s, ExpectedVersion::Exact(2), events(4..5), &meta())
        .await
        .err();
    assert!(
        matches!(
            err,
            Some(StoreError::Conflict {
                actual: Some(3),
                ..
            })
        ),
        "{err:?}"
    );
    // `Any` appends after the real head, twice (the second from the refreshed head).
    let any = test
        .append(&s, ExpectedVersion::Any, events(5..6), &meta())
        .await?;
    assert_eq!(any.first_version, 4);
    other
        .append(&s, ExpectedVersion::Any, events(6..7), &meta())
        .await?;
    let any = test
        .append(&s, ExpectedVersion::Any, events(7..9), &meta())
        .await?;
    assert_eq!((any.first_version, any.last_version), (6, 7));
    // `NoStream` on a stream that exists is a conflict too.
    let err = test
        .append(&s, ExpectedVersion::NoStream, events(9..10), &meta())
        .await
        .err();
    assert!(
        matches!(
            err,
            Some(StoreError::Conflict {
                actual: Some(7),
                ..
            })
        ),
        "{err:?}"
    );

    let read = test.read_stream(&s, 1, Direction::Forward, 100).await?;
    let versions: Vec<u64> = read.iter().map(|e| e.version).collect();
    assert_eq!(versions, (1..=7).collect::<Vec<_>>());
    check_links(&read);
    let report = test.verify_stream(&s).await?;
    assert!(report.is_intact(), "{report:?}");
    other.close().await;
    test.cleanup().await?;
    Ok(())
}

/// The known-head append checks the remembered head's hash in the database: when the stored
/// row no longer has it, the append chains onto what is stored (and `verify` reports the
/// altered row), not onto the remembered hash. Each known-head statement is covered: one
/// event, one write of several events, several writes.
#[tokio::test]
async fn a_remembered_head_is_checked_against_the_stored_row() -> anyhow::Result<()> {
    let test = TestStore::new().await;
    for (n, (writes, per_write)) in [(1, 1), (1, 2), (2, 2)].into_iter().enumerate() {
        let streams: Vec<StreamId> = (0..writes)
            .map(|w| stream(&format!("rec-recHEADCHECK{n}{w}000")))
            .collect();
        for s in &streams {
            test.append(s, ExpectedVersion::NoStream, events(1..2), &meta())
                .await?;
        }
        // Only the first stream's head is altered; the store still remembers the old hash.
        sqlx::query(
            "UPDATE events SET hash = sha256('altered') WHERE stream_id = $1 AND version = 1",
        )
        .bind(streams[0].as_str())
        .execute(test.pool())
        .await?;
        let batch = streams
            .iter()
            .map(|s| StreamWrite {
                stream: s.clone(),
                expected: ExpectedVersion::Exact(1),
                events: events(2..2 + per_write),
            })
            .collect();
        test.append_many(batch, &meta()).await?;
        for (w, s) in streams.iter().enumerate() {
            let read = test.read_stream(s, 1, Direction::Forward, 10).await?;
            assert_eq!(read.len(), 1 + per_write as usize, "case {n}, write {w}");
            check_links(&read);
            let report = test.verify_stream(s).await?;
            let broken = report.first_broken.as_ref().map(|b| b.version);
            assert_eq!(
                broken,
                (w == 0).then_some(1),
                "case {n}, write {w}: {report:?}"
            );
        }
    }
    test.cleanup().await?;
    Ok(())
}

/// A stream's events never go back in `recorded_at`, whichever statement appends them: `asOf`
/// reads stop at the first event after the moment asked for. Here the head is an hour ahead
/// of the database's clock (set behind the store's back; hash chains aside).
#[tokio::test]
async fn recorded_at_never_goes_back_within_a_stream() -> anyhow::Result<()> {
    let test = TestStore::new().await;
    let s = stream("rec-recFUTUREHEAD0001");
    test.append(&s, ExpectedVersion::NoStream, events(1..2), &meta())
        .await?;
    sqlx::query(
        "UPDATE events SET recorded_at = recorded_at + interval '1 hour' WHERE stream_id = $1",
    )
    .bind(s.as_str())
    .execute(test.pool())
    .await?;
    // A store that does not know the head (another process), one event then two.
    let other = second_store(&test).await?;
    other
        .append(&s, ExpectedVersion::Exact(1), events(2..3), &meta())
        .await?;
    other
        .append(&s, ExpectedVersion::Exact(2), events(3..5), &meta())
        .await?;
    // And the store whose remembered head is now stale.
    test.append(&s, ExpectedVersion::Any, events(5..6), &meta())
        .await?;
    let read = test.read_stream(&s, 1, Direction::Forward, 10).await?;
    assert_eq!(read.len(), 5);
    check_links(&read);
    other.close().await;
    test.cleanup().await?;
    Ok(())
}

/// Appends inside a caller's transaction are remembered before the caller commits; a rollback
/// leaves a remembered head that was never stored, which the next append must not trust.
#[tokio::test]
async fn a_head_from_a_rolled_back_transaction_is_not_trusted() -> anyhow::Result<()> {
    let test = TestStore::new().await;
    let s = stream("rec-recROLLEDBACK0001");
    let write = |expected, range| StreamWrite {
        stream: s.clone(),
        expected,
        events: events(range),
    };
    test.append(&s, ExpectedVersion::NoStream, events(1..2), &meta())
        .await?;
    for (expected, next) in [
        (ExpectedVersion::Exact(1), ExpectedVersion::Exact(1)),
        (ExpectedVersion::Exact(3), ExpectedVersion::Any),
    ] {
        let mut tx = test.pool().begin().await?;
        let rolled = test
            .append_many_in(&mut tx, vec![write(expected, 10..12)], &meta())
            .await?;
        tx.rollback().await?;
        // Two events: one event to one stream reads its head in the database anyway.
        let kept = test.append_many(vec![write(next, 20..22)], &meta()).await?;
        assert_eq!(kept[0].first_version, rolled[0].first_version);
    }
    // In a transaction too: the rolled-back head is refused and the general statement appends.
    let mut tx = test.pool().begin().await?;
    test.append_many_in(
        &mut tx,
        vec![write(ExpectedVersion::Exact(5), 30..31)],
        &meta(),
    )
    .await?;
    tx.rollback().await?;
    let mut tx = test.pool().begin().await?;
    let in_tx = test
        .append_many_in(&mut tx, vec![write(ExpectedVersion::Any, 40..41)], &meta())
        .await?;
    tx.commit().await?;
    assert_eq!(in_tx[0].first_version, 6);

    let read = test.read_stream(&s, 1, Direction::Forward, 10).await?;
    assert_eq!(
        read.iter().map(|e| e.version).collect::<Vec<_>>(),
        (1..=6).collect::<Vec<u64>>()
    );
    let report = test.verify_stream(&s).await?;
    assert!(report.is_intact(), "{report:?}");
    test.cleanup().await?;
    Ok(())
}

/// A retried append inside a caller's transaction is answered from the store, like one outside:
/// the original result, deduplicated, and nothing written (the check runs before the insert,
/// whose unique violation would abort the caller's transaction).
#[tokio::test]
async fn a_retried_append_in_a_transaction_returns_the_original_result() -> anyhow::Result<()> {
    let test = TestStore::new().await;
    let s = stream("rec-recRETRIEDINTX001");
    let write = StreamWrite {
        stream: s.clone(),
        expected: ExpectedVersion::NoStream,
        events: events(1..3),
    };
    let mut tx = test.pool().begin().await?;
    let first = test
        .append_many_in(&mut tx, vec![write.clone()], &meta())
        .await?;
    tx.commit().await?;
    let mut tx = test.pool().begin().await?;
    let again = test.append_many_in(&mut tx, vec![write], &meta()).await?;
    // The transaction is still usable: nothing failed in it.
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    assert!(again[0].deduplicated);
    assert!(!first[0].deduplicated);
    assert_eq!(again[0].events, first[0].events);
    assert_eq!(stored, 2);
    test.cleanup().await?;
    Ok(())
}

/// The lookup of a retried append (run before every command's append) probes the event-id
/// index, whatever plan the session cached while the table was small: a hash join over a scan
/// of the whole table would cost every command a read of every event. Scans are counted with
/// the session's own pending statistics, which are exact and immediate.
#[tokio::test]
async fn the_retry_lookup_never_scans_the_whole_table() -> anyhow::Result<()> {
    let test = TestStore::new().await;
    let mut conn = test.pool().acquire().await?;
    let lookup = "SELECT * FROM replay_append($1, $2, $3)";
    let s = stream("rec-recREPLAYPLAN0001");
    test.append(&s, ExpectedVersion::NoStream, events(1..3), &meta())
        .await?;
    // While the table is tiny, often enough for the session to settle on a cached plan.
    for _ in 0..10 {
        sqlx::query(lookup)
            .bind(vec![s.as_str()])
            .bind(vec![1_i32])
            .bind(vec![Uuid::now_v7()])
            .fetch_all(&mut *conn)
            .await?;
    }
    // The table grows; nothing analyzes it meanwhile.
    for batch in 0..30 {
        let writes = (0..100)
            .map(|i| StreamWrite {
                stream: stream(&format!("rec-recREPLAYMORE{batch:02}{i:02}")),
                expected: ExpectedVersion::NoStream,
                events: events(1..2),
            })
            .collect();
        test.append_many(writes, &meta()).await?;
    }
    // The session's pending counts include its earlier statements: compare before and after.
    let scans = "SELECT seq_scan FROM pg_stat_xact_user_tables WHERE relid = 'events'::regclass";
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    let before: i64 = sqlx::query_scalar(scans).fetch_one(&mut *tx).await?;
    let rows = sqlx::query(lookup)
        .bind(vec![s.as_str()])
        .bind(vec![2_i32])
        .bind(events(1..3).iter().map(|e| e.event_id).collect::<Vec<_>>())
        .fetch_all(&mut *tx)
        .await?;
    assert!(rows.is_empty(), "fresh ids are not stored");
    let after: i64 = sqlx::query_scalar(scans).fetch_one(&mut *tx).await?;
    assert_eq!(after - before, 0, "the lookup scanned the events table");
    tx.rollback().await?;
    drop(conn);
    test.cleanup().await?;
    Ok(())
}
