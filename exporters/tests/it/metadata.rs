//! The metadata store behaves the same on SQLite and PostgreSQL.

use llmscope_exporters::metadata::alerts::{
    Applied, Attempt, EventQuery, NewEvent, NewNotification, SeriesState, StoredRule, Transition,
};
use llmscope_exporters::metadata::{ApiKey, MetadataStore};
use llmscope_exporters::sqlite::{SqliteConfig, SqliteStore};

use crate::postgres;

fn key(id: &str, project: &str, hash: u8, at: i64) -> ApiKey {
    ApiKey {
        id: id.into(),
        project: project.into(),
        name: format!("{id} key"),
        display_prefix: format!("lls_{id}"),
        key_sha256: [hash; 32],
        created_at_ns: at,
        last_used_at_ns: None,
        revoked_at_ns: None,
    }
}

async fn exercise(store: &dyn MetadataStore) {
    store
        .ensure_project("a", "Project A", 1)
        .await
        .expect("project");
    store
        .ensure_project("a", "renamed", 2)
        .await
        .expect("again");
    store
        .ensure_project("b", "Project B", 3)
        .await
        .expect("project");
    let projects = store.projects().await.expect("projects");
    assert_eq!(
        projects
            .iter()
            .map(|p| (p.id.as_str(), p.name.as_str()))
            .collect::<Vec<_>>(),
        [("a", "Project A"), ("b", "Project B")]
    );

    store.create_key(&key("k1", "a", 1, 10)).await.expect("k1");
    store.create_key(&key("k2", "b", 2, 20)).await.expect("k2");
    assert!(
        store.create_key(&key("k3", "a", 1, 30)).await.is_err(),
        "hashes are unique"
    );
    assert!(
        store.create_key(&key("k4", "nope", 4, 40)).await.is_err(),
        "the project must exist"
    );

    let found = store
        .key_by_hash(&[1; 32])
        .await
        .expect("lookup")
        .expect("k1");
    assert_eq!((found.id.as_str(), found.project.as_str()), ("k1", "a"));
    assert!(store.key_by_hash(&[9; 32]).await.expect("lookup").is_none());
    assert_eq!(store.keys(None).await.expect("all").len(), 2);
    assert_eq!(store.keys(Some("b")).await.expect("b")[0].id, "k2");

    store.touch_key("k1", 50).await.expect("touch");
    assert!(store.revoke_key("k1", 60).await.expect("revoke"));
    assert!(
        store.revoke_key("k1", 70).await.expect("again"),
        "revoking twice keeps the first time"
    );
    assert!(!store.revoke_key("nope", 70).await.expect("unknown"));
    let k1 = store
        .key_by_hash(&[1; 32])
        .await
        .expect("lookup")
        .expect("k1");
    assert_eq!((k1.last_used_at_ns, k1.revoked_at_ns), (Some(50), Some(60)));
    assert!(
        !format!("{k1:?}").contains("key_sha256"),
        "Debug leaves the hash out"
    );
}

fn transition(series: &str, expected: Option<i64>, state: &str, channels: &[i64]) -> Transition {
    Transition {
        project: "a".into(),
        expected_version: expected,
        next: SeriesState {
            rule_id: "r1".into(),
            series: series.into(),
            state: state.into(),
            since_ns: 10,
            notified_ns: Some(10),
            value: Some(1.5),
            version: 100,
        },
        delete: false,
        event: Some(NewEvent {
            state: state.into(),
            details: "{\"value\": 1.5}".into(),
            at_ns: 10,
        }),
        notifications: channels
            .iter()
            .map(|c| NewNotification {
                channel: *c,
                webhook_id: format!("msg_{series}_{c}_{state}"),
                body: "{}".into(),
            })
            .collect(),
    }
}

/// Rules, compare-and-set on series, the fence, and the in-order outbox.
async fn exercise_alerts(store: &dyn MetadataStore) {
    store.ensure_project("a", "A", 1).await.expect("project");
    let mut rule = StoredRule {
        id: "r1".into(),
        project: "a".into(),
        name: "errors".into(),
        definition: "{\"name\": \"errors\"}".into(),
        enabled: true,
        source: "api".into(),
        created_at_ns: 5,
        updated_at_ns: None,
    };
    store.save_rule(&rule).await.expect("save");
    rule.name = "errors!".into();
    rule.updated_at_ns = Some(6);
    store.save_rule(&rule).await.expect("update");
    assert_eq!(store.rules(Some("a")).await.expect("rules"), [rule.clone()]);
    assert!(store.rules(Some("b")).await.expect("rules").is_empty());

    let token = store.fence().await.expect("fence") + 5;
    let first = transition("{}", None, "firing", &[0, 1]);
    assert_eq!(
        store.apply(token, &first).await.expect("apply"),
        Applied::Done
    );
    assert_eq!(
        store.apply(token, &first).await.expect("again"),
        Applied::Conflict,
        "a second creation"
    );
    let stored = store.series("r1").await.expect("series");
    assert_eq!(stored.len(), 1);
    assert_eq!(
        (stored[0].state.as_str(), stored[0].version),
        ("firing", 100)
    );
    let resolve = transition("{}", Some(100), "resolved", &[0]);
    assert_eq!(
        store.apply(token, &resolve).await.expect("cas"),
        Applied::Done
    );
    assert_eq!(
        store.apply(token, &resolve).await.expect("stale"),
        Applied::Conflict,
        "a stale version"
    );
    assert_eq!(store.series("r1").await.expect("series")[0].version, 101);
    assert_eq!(
        store
            .apply(
                token - 1,
                &transition("{\"user\":\"x\"}", None, "firing", &[])
            )
            .await
            .expect("old token"),
        Applied::Fenced
    );
    assert_eq!(store.fence().await.expect("fence"), token);

    // Channel 0 has two notifications: only the first is due until it is done.
    let due = store.due_notifications(20, 10).await.expect("due");
    let ids: Vec<&str> = due.iter().map(|n| n.webhook_id.as_str()).collect();
    assert_eq!(ids, ["msg_{}_0_firing", "msg_{}_1_firing"]);
    let n = &due[0];
    assert_eq!(
        store.claim(token, n, 50).await.expect("claim"),
        Applied::Done
    );
    assert_eq!(
        store.claim(token, n, 50).await.expect("claimed"),
        Applied::Conflict
    );
    assert_eq!(store.due_notifications(20, 10).await.expect("due").len(), 1);
    let attempt = Attempt {
        notification: n.id,
        attempts: 1,
        next_at_ns: None,
        done_at_ns: 30,
        event: NewEvent {
            state: "delivered".into(),
            details: "{\"status\": 200}".into(),
            at_ns: 30,
        },
    };
    assert_eq!(
        store.finish(token, n, &attempt).await.expect("finish"),
        Applied::Done
    );
    let due = store.due_notifications(60, 10).await.expect("due");
    let ids: Vec<&str> = due.iter().map(|n| n.webhook_id.as_str()).collect();
    assert_eq!(ids, ["msg_{}_1_firing", "msg_{}_0_resolved"]);

    let all = EventQuery {
        project: "a".into(),
        limit: 10,
        ..Default::default()
    };
    let events = store.events(&all).await.expect("events");
    let states: Vec<&str> = events.iter().map(|e| e.state.as_str()).collect();
    assert_eq!(states, ["delivered", "resolved", "firing"]);
    assert_eq!(
        events[0].series, "{}",
        "a delivery carries its transition's series"
    );
    assert_eq!(events[0].token, token);
    let delivered = EventQuery {
        state: Some("delivered".into()),
        from_ns: Some(30),
        to_ns: Some(31),
        ..all.clone()
    };
    assert_eq!(store.events(&delivered).await.expect("events").len(), 1);

    assert!(store.delete_rule("r1", 40).await.expect("delete"));
    assert!(!store.delete_rule("r1", 41).await.expect("gone"));
    assert!(store.rules(None).await.expect("rules").is_empty());
    assert_eq!(store.events(&all).await.expect("history stays").len(), 3);
}

#[tokio::test]
async fn sqlite_metadata_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(SqliteConfig {
        path: dir.path().join("m.db"),
        ..Default::default()
    })
    .expect("sqlite");
    exercise(&store).await;
    exercise_alerts(&store).await;
}

#[tokio::test]
async fn postgres_metadata_store() {
    let Some(store) = postgres::store("metadata").await else {
        return;
    };
    exercise(&store).await;
    exercise_alerts(&store).await;
    postgres::drop_database(store).await;
}
