//! The attachment side of the store on both backends (SQLite file, fresh PostgreSQL database):
//! listing is idempotent, two fetchers claiming at once never take the same attachment, a
//! settlement needs the claim's lease, a content is kept once per SHA-256, and failed
//! attachments can be retried.

mod common;

use chrono::{Duration, SubsecRound, Utc};
use gateway::store::attachments::{FetchFailure, NewAttachment, ObjectRow};
use gateway::store::Store;
use std::collections::HashSet;
use std::sync::Arc;

fn new(code: &str, position: i32) -> NewAttachment {
    NewAttachment {
        code: code.to_string(),
        version: 1,
        position,
        source_id: "dept".into(),
        kind: "video".into(),
        title: Some("执法记录".into()),
        file_name: Some(format!("v{position}.mp4")),
        media_type: None,
        captured_at: Some("2024-01-05T10:00:00+08:00".into()),
        duration_seconds: Some(12.5),
        origin: "url".into(),
        origin_ref: format!("https://dept.example/files/{position}"),
        optional: false,
    }
}

fn object(sha: &str) -> ObjectRow {
    ObjectRow {
        sha256: sha.to_string(),
        bytes: 42,
        media_type: "video/mp4".into(),
        storage_key: format!("sha256/{sha}"),
        first_seen: Utc::now().trunc_subsecs(3),
    }
}

async fn two_fetchers_claiming_at_once_never_take_the_same_attachment(store: Arc<dyn Store>) {
    let rows: Vec<NewAttachment> = (0..20).map(|p| new("C1", p)).collect();
    assert_eq!(store.attachments().enqueue_attachments(&rows).await.unwrap(), 20);
    assert_eq!(
        store.attachments().enqueue_attachments(&rows).await.unwrap(),
        0,
        "listing again adds nothing"
    );
    let now = Utc::now();
    let lease = (now + Duration::seconds(60)).trunc_subsecs(3);
    let (a, b) = tokio::join!(
        store.attachments().claim_attachments(12, now, lease),
        store.attachments().claim_attachments(12, now, lease),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let ids_a: HashSet<i64> = a.iter().map(|r| r.id).collect();
    let ids_b: HashSet<i64> = b.iter().map(|r| r.id).collect();
    assert!(ids_a.is_disjoint(&ids_b), "an attachment claimed twice");
    assert_eq!(ids_a.len() + ids_b.len(), 20, "every due attachment claimed once");
    assert!(
        store
            .attachments()
            .claim_attachments(5, now, lease)
            .await
            .unwrap()
            .is_empty(),
        "claimed attachments are not due again before their lease ends"
    );
    // Past the lease (a fetcher that died), they are due again.
    let later = lease + Duration::seconds(1);
    let again = store
        .attachments()
        .claim_attachments(30, later, (later + Duration::seconds(60)).trunc_subsecs(3))
        .await
        .unwrap();
    assert_eq!(again.len(), 20);
    // The first claims' lease is lost: their settlements do not count.
    let lost = store
        .attachments()
        .attachment_stored(a[0].id, &object(&"a".repeat(64)), lease)
        .await
        .unwrap();
    assert!(!lost, "a settlement under a lost lease is refused");
}

async fn a_content_is_kept_once_and_each_version_lists_its_own(store: Arc<dyn Store>) {
    let attachments = store.attachments();
    attachments
        .enqueue_attachments(&[new("C2", 0), new("C3", 0)])
        .await
        .unwrap();
    let now = Utc::now();
    let lease = (now + Duration::seconds(60)).trunc_subsecs(3);
    let claimed = attachments.claim_attachments(10, now, lease).await.unwrap();
    assert_eq!(claimed.len(), 2);
    let sha = "b".repeat(64);
    let first = object(&sha);
    let mut second = object(&sha);
    second.first_seen = first.first_seen + Duration::seconds(5);
    assert!(attachments
        .attachment_stored(claimed[0].id, &first, lease)
        .await
        .unwrap());
    assert!(attachments
        .attachment_stored(claimed[1].id, &second, lease)
        .await
        .unwrap());
    let kept = attachments.attachment_object(&sha).await.unwrap().expect("object row");
    assert_eq!(kept.first_seen, first.first_seen, "the first copy's row is kept");
    for code in ["C2", "C3"] {
        let rows = attachments.attachments_of_case(code).await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(
            (rows[0].status.as_str(), rows[0].sha256.as_deref()),
            ("stored", Some(sha.as_str()))
        );
        assert_eq!(rows[0].duration_seconds, Some(12.5));
        assert_eq!(rows[0].origin_ref, "https://dept.example/files/0");
    }
    assert_eq!(attachments.attachment_sources(&sha).await.unwrap(), ["dept"]);
    let counts = attachments.attachment_counts().await.unwrap();
    assert_eq!((counts.stored, counts.pending), (2, 0));
}

async fn failed_attachments_show_their_error_and_can_be_retried(store: Arc<dyn Store>) {
    let attachments = store.attachments();
    attachments.enqueue_attachments(&[new("C4", 0)]).await.unwrap();
    let now = Utc::now();
    let lease = (now + Duration::seconds(60)).trunc_subsecs(3);
    let claimed = attachments.claim_attachments(10, now, lease).await.unwrap();
    let failure = FetchFailure {
        id: claimed[0].id,
        status: "failed",
        attempts: 10,
        error: "取附件失败 / fetch failed: HTTP 503: busy".into(),
        next_try_at: (now + Duration::seconds(5)).trunc_subsecs(3),
    };
    assert!(attachments.attachment_not_stored(&failure, lease).await.unwrap());
    let row = &attachments.attachments_of_case("C4").await.unwrap()[0];
    assert_eq!((row.status.as_str(), row.attempts), ("failed", 10));
    assert_eq!(row.last_error.as_deref(), Some(failure.error.as_str()));
    assert_eq!(attachments.attachment_counts().await.unwrap().failed, 1);
    assert_eq!(attachments.retry_attachments("C4", now).await.unwrap(), 1);
    let row = &attachments.attachments_of_case("C4").await.unwrap()[0];
    assert_eq!((row.status.as_str(), row.attempts), ("pending", 0));
    assert_eq!(attachments.claim_attachments(10, now, lease).await.unwrap().len(), 1);
}

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let db = crate::common::TestDb::sqlite().await;
                    super::$name(db.store()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = crate::common::TestDb::postgres().await;
                    super::$name(db.store()).await;
                }
            )*
        }
    };
}

on_both_backends!(
    two_fetchers_claiming_at_once_never_take_the_same_attachment,
    a_content_is_kept_once_and_each_version_lists_its_own,
    failed_attachments_show_their_error_and_can_be_retried,
);
