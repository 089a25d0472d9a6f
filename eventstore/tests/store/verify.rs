//! Tamper evidence: rows changed behind the store's back are reported at their version.

use pyairtable_eventstore::testkit::TestStore;
use pyairtable_eventstore::{BreakReason, BrokenLink, ExpectedVersion, StreamWrite};

use crate::support::{events, meta, stream};

async fn five_events(test: &TestStore, name: &str) -> anyhow::Result<()> {
    let s = stream(name);
    test.append(&s, ExpectedVersion::NoStream, events(1..3), &meta())
        .await?;
    test.append(&s, ExpectedVersion::Exact(2), events(3..6), &meta())
        .await?;
    Ok(())
}

async fn tamper(
    test: &TestStore,
    sql: &'static str,
    name: &str,
    version: i64,
) -> anyhow::Result<()> {
    let changed = sqlx::query(sql)
        .bind(name)
        .bind(version)
        .execute(test.pool())
        .await?
        .rows_affected();
    anyhow::ensure!(changed == 1, "tampering touched {changed} rows");
    Ok(())
}

#[tokio::test]
async fn verify_reports_the_first_row_altered_behind_the_stores_back() -> anyhow::Result<()> {
    let test = TestStore::new().await;
    for name in [
        "rec-intact",
        "rec-payload",
        "rec-meta",
        "rec-type",
        "rec-time",
        "rec-gap",
        "rec-twice",
    ] {
        five_events(&test, name).await?;
    }
    // A multi-stream append chains each stream on its own.
    test.append_many(
        vec![
            StreamWrite {
                stream: stream("rec-intact"),
                expected: ExpectedVersion::Exact(5),
                events: events(6..8),
            },
            StreamWrite {
                stream: stream("rec-other"),
                expected: ExpectedVersion::NoStream,
                events: events(0..3),
            },
        ],
        &meta(),
    )
    .await?;

    // One event per append takes the single-event statement; its links must match too.
    let single = stream("rec-single");
    for n in 0..3 {
        let expected = if n == 0 {
            ExpectedVersion::NoStream
        } else {
            ExpectedVersion::Exact(n)
        };
        test.append(&single, expected, events(n..n + 1), &meta())
            .await?;
    }
    let report = test.verify_stream(&single).await?;
    assert!(
        report.is_intact() && report.events_checked == 3,
        "{report:?}"
    );
    sqlx::query("DELETE FROM events WHERE stream_id = 'rec-single'")
        .execute(test.pool())
        .await?;

    let intact = test.verify_stream(&stream("rec-intact")).await?;
    assert!(intact.is_intact(), "{intact:?}");
    assert_eq!(intact.events_checked, 7);

    let hash_mismatch_at = |version| {
        Some(BrokenLink {
            version,
            reason: BreakReason::HashMismatch,
        })
    };

    tamper(
        &test,
        r#"UPDATE events SET payload = '{"n": 999}' WHERE stream_id = $1 AND version = $2"#,
        "rec-payload",
        3,
    )
    .await?;
    let report = test.verify_stream(&stream("rec-payload")).await?;
    assert_eq!(report.first_broken, hash_mismatch_at(3));
    assert_eq!(report.events_checked, 5);

    tamper(
        &test,
        r#"UPDATE events SET metadata = json_build_object('actor', json_build_object('type', 'system', 'name', 'x'), 'correlation_id', gen_random_uuid()) WHERE stream_id = $1 AND version = $2"#,
        "rec-meta",
        4,
    )
    .await?;
    assert_eq!(
        test.verify_stream(&stream("rec-meta")).await?.first_broken,
        hash_mismatch_at(4)
    );

    tamper(
        &test,
        "UPDATE events SET event_type = 'Forged' WHERE stream_id = $1 AND version = $2",
        "rec-type",
        1,
    )
    .await?;
    assert_eq!(
        test.verify_stream(&stream("rec-type")).await?.first_broken,
        hash_mismatch_at(1)
    );

    tamper(&test, "UPDATE events SET recorded_at = recorded_at - interval '1 day' WHERE stream_id = $1 AND version = $2", "rec-time", 5).await?;
    assert_eq!(
        test.verify_stream(&stream("rec-time")).await?.first_broken,
        hash_mismatch_at(5)
    );

    tamper(
        &test,
        "DELETE FROM events WHERE stream_id = $1 AND version = $2",
        "rec-gap",
        2,
    )
    .await?;
    assert_eq!(
        test.verify_stream(&stream("rec-gap")).await?.first_broken,
        Some(BrokenLink {
            version: 3,
            reason: BreakReason::VersionGap { expected: 2 },
        })
    );

    // Two altered rows: the first one is reported.
    tamper(
        &test,
        r#"UPDATE events SET payload = '[]' WHERE stream_id = $1 AND version = $2"#,
        "rec-twice",
        4,
    )
    .await?;
    tamper(
        &test,
        r#"UPDATE events SET payload = '[]' WHERE stream_id = $1 AND version = $2"#,
        "rec-twice",
        2,
    )
    .await?;
    assert_eq!(
        test.verify_stream(&stream("rec-twice")).await?.first_broken,
        hash_mismatch_at(2)
    );

    // A forged hash is caught at its own row.
    tamper(
        &test,
        "UPDATE events SET hash = sha256(hash) WHERE stream_id = $1 AND version = $2",
        "rec-other",
        2,
    )
    .await?;
    let other = test.verify_stream(&stream("rec-other")).await?;
    assert_eq!(other.first_broken.map(|b| b.version), Some(2));

    let all = test.verify_all().await?;
    let broken: Vec<(&str, Option<u64>)> = all
        .iter()
        .map(|r| {
            (
                r.stream.as_str(),
                r.first_broken.as_ref().map(|b| b.version),
            )
        })
        .collect();
    assert_eq!(
        broken,
        [
            ("rec-gap", Some(3)),
            ("rec-intact", None),
            ("rec-meta", Some(4)),
            ("rec-other", Some(2)),
            ("rec-payload", Some(3)),
            ("rec-time", Some(5)),
            ("rec-twice", Some(2)),
            ("rec-type", Some(1)),
        ]
    );
    assert_eq!(
        all.iter().map(|r| r.events_checked).sum::<u64>(),
        7 + 4 + 5 * 5 + 3
    );

    let missing = test.verify_stream(&stream("rec-none")).await?;
    assert!(missing.is_intact() && missing.events_checked == 0);
    test.cleanup().await?;
    Ok(())
}

#[tokio::test]
async fn verify_all_pages_across_many_streams() -> anyhow::Result<()> {
    let test = TestStore::new().await;
    // More rows than one verification page (1 000), spread so a stream straddles pages.
    for i in 0..12 {
        let s = stream(&format!("rec-page-{i:02}"));
        let mut version = None;
        for chunk in 0..3 {
            let expected = version.map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact);
            let r = test
                .append(&s, expected, events(chunk * 40..chunk * 40 + 40), &meta())
                .await?;
            version = Some(r.last_version);
        }
    }
    sqlx::query(
        "UPDATE events SET payload = '{}' WHERE stream_id = 'rec-page-09' AND version = 77",
    )
    .execute(test.pool())
    .await?;
    let reports = test.verify_all().await?;
    assert_eq!(reports.len(), 12);
    assert!(reports.iter().all(|r| r.events_checked == 120));
    let broken: Vec<(&str, u64)> = reports
        .iter()
        .filter_map(|r| {
            r.first_broken
                .as_ref()
                .map(|b| (r.stream.as_str(), b.version))
        })
        .collect();
    assert_eq!(broken, [("rec-page-09", 77)]);
    test.cleanup().await?;
    Ok(())
}
