//! The metadata store behaves the same on SQLite and PostgreSQL.

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

#[tokio::test]
async fn sqlite_metadata_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(SqliteConfig {
        path: dir.path().join("m.db"),
        ..Default::default()
    })
    .expect("sqlite");
    exercise(&store).await;
}

#[tokio::test]
async fn postgres_metadata_store() {
    let Some(store) = postgres::store("metadata").await else {
        return;
    };
    exercise(&store).await;
    postgres::drop_database(store).await;
}
