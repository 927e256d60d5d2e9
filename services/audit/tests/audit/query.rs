//! Reading the log: filters, newest first, cursor pages, rejected queries.

use chrono::{Duration, TimeZone as _, Utc};
use keel_clients::{AuditQuery, PageRequest};
use uuid::Uuid;

use crate::support::{TestAudit, on_both_backends, record, record_at, violations};

on_both_backends!(
    each_filter_selects_its_records_newest_first,
    the_time_range_includes_from_and_excludes_to,
    cursor_pages_walk_the_log_without_gaps_or_overlap,
    invalid_limit_cursor_and_range_are_rejected_with_field_paths,
);

fn page(limit: u32) -> PageRequest {
    PageRequest {
        limit: Some(limit),
        cursor: None,
    }
}

async fn each_filter_selects_its_records_newest_first(audit: &TestAudit) -> anyhow::Result<()> {
    let alice = Uuid::now_v7();
    let bob = Uuid::now_v7();
    let mut batch = vec![
        record("auth.login.succeeded", Some(alice)),
        record("auth.login.failed", Some(bob)),
        record("auth.login.succeeded", Some(bob)),
        record("authz.role.assigned", Some(alice)),
    ];
    batch[3].target_id = batch[0].target_id.clone();
    batch[2].request_id = Some("req-shared".to_owned());
    batch[1].request_id = Some("req-shared".to_owned());
    audit.client.record(&batch).await?;

    let ids = async |query: AuditQuery| -> anyhow::Result<Vec<Uuid>> {
        Ok(audit
            .client
            .query(query)
            .await?
            .items
            .into_iter()
            .map(|r| r.record.id)
            .collect())
    };
    let by_actor = ids(AuditQuery {
        actor_id: Some(alice),
        ..Default::default()
    })
    .await?;
    assert_eq!(
        by_actor,
        [batch[3].id, batch[0].id],
        "alice's records, newest first"
    );
    let by_action = ids(AuditQuery {
        action: Some("auth.login.succeeded".to_owned()),
        ..Default::default()
    })
    .await?;
    assert_eq!(by_action, [batch[2].id, batch[0].id]);
    let by_target = ids(AuditQuery {
        target_id: batch[0].target_id.clone(),
        ..Default::default()
    })
    .await?;
    assert_eq!(by_target, [batch[3].id, batch[0].id]);
    let by_request = ids(AuditQuery {
        request_id: Some("req-shared".to_owned()),
        ..Default::default()
    })
    .await?;
    assert_eq!(by_request, [batch[2].id, batch[1].id]);
    let combined = ids(AuditQuery {
        actor_id: Some(bob),
        action: Some("auth.login.failed".to_owned()),
        ..Default::default()
    })
    .await?;
    assert_eq!(combined, [batch[1].id]);
    let nobody = ids(AuditQuery {
        actor_id: Some(Uuid::now_v7()),
        ..Default::default()
    })
    .await?;
    assert!(nobody.is_empty());
    Ok(())
}

async fn the_time_range_includes_from_and_excludes_to(audit: &TestAudit) -> anyhow::Result<()> {
    // Whole seconds and fractions mixed: SQLite compares the stored text form.
    let base = Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap();
    let times = [
        base,
        base + Duration::milliseconds(500),
        base + Duration::microseconds(1_000_001),
        base + Duration::seconds(2),
        base + Duration::seconds(3) + Duration::microseconds(7),
    ];
    let batch: Vec<_> = times
        .iter()
        .map(|t| record_at("auth.login.succeeded", None, *t))
        .collect();
    audit.client.record(&batch).await?;

    let between = |from, to| AuditQuery {
        from: Some(from),
        to: Some(to),
        ..Default::default()
    };
    let found = audit.client.query(between(times[1], times[3])).await?.items;
    let ids: Vec<_> = found.iter().map(|r| r.record.id).collect();
    assert_eq!(ids, [batch[2].id, batch[1].id]);
    for stored in &found {
        assert!(
            times.contains(&stored.record.occurred_at),
            "occurred_at reads back exactly"
        );
    }
    let from_only = audit
        .client
        .query(AuditQuery {
            from: Some(times[3]),
            ..Default::default()
        })
        .await?
        .items;
    assert_eq!(from_only.len(), 2);
    let before_all = audit
        .client
        .query(AuditQuery {
            to: Some(base),
            ..Default::default()
        })
        .await?
        .items;
    assert!(before_all.is_empty());
    Ok(())
}

async fn cursor_pages_walk_the_log_without_gaps_or_overlap(audit: &TestAudit) -> anyhow::Result<()> {
    let batch: Vec<_> = (0..25).map(|_| record("auth.login.succeeded", None)).collect();
    audit.client.record(&batch).await?;

    let mut sizes = Vec::new();
    let mut sequences = Vec::new();
    let mut cursor = None;
    loop {
        let result = audit
            .client
            .query(AuditQuery {
                page: PageRequest {
                    limit: Some(10),
                    cursor: cursor.clone(),
                },
                ..Default::default()
            })
            .await?;
        sizes.push(result.items.len());
        sequences.extend(result.items.iter().map(|r| r.sequence));
        match result.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(sizes, [10, 10, 5]);
    assert_eq!(sequences, (1..=25).rev().collect::<Vec<u64>>());

    let default_page = audit.client.query(AuditQuery::default()).await?;
    assert_eq!(default_page.items.len(), 20, "the default page size");
    let exact = audit
        .client
        .query(AuditQuery {
            page: page(25),
            ..Default::default()
        })
        .await?;
    assert_eq!(exact.items.len(), 25);
    assert_eq!(exact.next_cursor, None, "no cursor when nothing follows");
    Ok(())
}

async fn invalid_limit_cursor_and_range_are_rejected_with_field_paths(
    audit: &TestAudit,
) -> anyhow::Result<()> {
    let now = Utc::now();
    let error = audit
        .client
        .query(AuditQuery {
            from: Some(now),
            to: Some(now - Duration::hours(1)),
            page: PageRequest {
                limit: Some(101),
                cursor: Some("bm90LWEtY3Vyc29y".to_owned()),
            },
            ..Default::default()
        })
        .await
        .expect_err("the request is rejected");
    assert_eq!(
        violations(&error),
        [
            ("limit".to_owned(), "out_of_range".to_owned()),
            ("cursor".to_owned(), "invalid_cursor".to_owned()),
            ("to".to_owned(), "invalid_range".to_owned()),
        ]
    );
    let zero = audit
        .client
        .query(AuditQuery {
            page: page(0),
            ..Default::default()
        })
        .await
        .expect_err("the request is rejected");
    assert_eq!(
        violations(&zero),
        [("limit".to_owned(), "out_of_range".to_owned())]
    );
    Ok(())
}
