use rusqlite::{OptionalExtension, Row, params};

use super::{ApiKey, MetadataError, MetadataStore, Project, Result, hash_of};
use crate::query::BoxFuture;
use crate::sqlite::SqliteStore;

const KEY_COLUMNS: &str =
    "id, project, name, display_prefix, key_sha256, created_at_ns, last_used_at_ns, revoked_at_ns";

fn key_from_row(r: &Row<'_>) -> rusqlite::Result<(ApiKey, Vec<u8>)> {
    let hash: Vec<u8> = r.get(4)?;
    Ok((
        ApiKey {
            id: r.get(0)?,
            project: r.get(1)?,
            name: r.get(2)?,
            display_prefix: r.get(3)?,
            key_sha256: [0; 32],
            created_at_ns: r.get(5)?,
            last_used_at_ns: r.get(6)?,
            revoked_at_ns: r.get(7)?,
        },
        hash,
    ))
}

fn with_hash((mut key, hash): (ApiKey, Vec<u8>)) -> Result<ApiKey> {
    key.key_sha256 = hash_of(&hash)?;
    Ok(key)
}

fn failed(e: crate::query::QueryError) -> MetadataError {
    MetadataError(e.0)
}

impl MetadataStore for SqliteStore {
    fn ensure_project<'a>(
        &'a self,
        id: &'a str,
        name: &'a str,
        now_ns: i64,
    ) -> BoxFuture<'a, Result<()>> {
        let (id, name) = (id.to_owned(), name.to_owned());
        Box::pin(async move {
            self.read(move |c| {
                c.execute(
                    "INSERT INTO projects (id, name, created_at_ns) VALUES (?1, ?2, ?3) ON CONFLICT (id) DO NOTHING",
                    params![id, name, now_ns],
                )
                .map(|_| ())
            })
            .await
            .map_err(failed)
        })
    }

    fn projects(&self) -> BoxFuture<'_, Result<Vec<Project>>> {
        Box::pin(async move {
            self.read(|c| {
                let mut stmt =
                    c.prepare("SELECT id, name, created_at_ns FROM projects ORDER BY id")?;
                stmt.query_map([], |r| {
                    Ok(Project {
                        id: r.get(0)?,
                        name: r.get(1)?,
                        created_at_ns: r.get(2)?,
                    })
                })?
                .collect()
            })
            .await
            .map_err(failed)
        })
    }

    fn create_key<'a>(&'a self, key: &'a ApiKey) -> BoxFuture<'a, Result<()>> {
        let key = key.clone();
        Box::pin(async move {
            self.read(move |c| {
                c.execute(
                    &format!("INSERT INTO api_keys ({KEY_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"),
                    params![
                        key.id,
                        key.project,
                        key.name,
                        key.display_prefix,
                        key.key_sha256.to_vec(),
                        key.created_at_ns,
                        key.last_used_at_ns,
                        key.revoked_at_ns
                    ],
                )
                .map(|_| ())
            })
            .await
            .map_err(failed)
        })
    }

    fn key_by_hash<'a>(&'a self, sha256: &'a [u8; 32]) -> BoxFuture<'a, Result<Option<ApiKey>>> {
        let hash = sha256.to_vec();
        Box::pin(async move {
            let found = self
                .read(move |c| {
                    c.query_row(
                        &format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE key_sha256 = ?1"),
                        [hash],
                        key_from_row,
                    )
                    .optional()
                })
                .await
                .map_err(failed)?;
            found.map(with_hash).transpose()
        })
    }

    fn keys<'a>(&'a self, project: Option<&'a str>) -> BoxFuture<'a, Result<Vec<ApiKey>>> {
        let project = project.map(str::to_owned);
        Box::pin(async move {
            let rows = self
                .read(move |c| {
                    let mut stmt = c.prepare(&format!(
                        "SELECT {KEY_COLUMNS} FROM api_keys WHERE ?1 IS NULL OR project = ?1 ORDER BY created_at_ns, id"
                    ))?;
                    stmt.query_map([project], key_from_row)?.collect::<rusqlite::Result<Vec<_>>>()
                })
                .await
                .map_err(failed)?;
            rows.into_iter().map(with_hash).collect()
        })
    }

    fn revoke_key<'a>(&'a self, id: &'a str, now_ns: i64) -> BoxFuture<'a, Result<bool>> {
        let id = id.to_owned();
        Box::pin(async move {
            self.read(move |c| {
                c.execute(
                    "UPDATE api_keys SET revoked_at_ns = coalesce(revoked_at_ns, ?2) WHERE id = ?1",
                    params![id, now_ns],
                )
                .map(|n| n > 0)
            })
            .await
            .map_err(failed)
        })
    }

    fn touch_key<'a>(&'a self, id: &'a str, now_ns: i64) -> BoxFuture<'a, Result<()>> {
        let id = id.to_owned();
        Box::pin(async move {
            self.read(move |c| {
                c.execute(
                    "UPDATE api_keys SET last_used_at_ns = ?2 WHERE id = ?1",
                    params![id, now_ns],
                )
                .map(|_| ())
            })
            .await
            .map_err(failed)
        })
    }
}
