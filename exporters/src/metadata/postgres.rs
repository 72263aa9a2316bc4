use tokio_postgres::Row;

use super::{ApiKey, MetadataError, MetadataStore, Project, Result, hash_of};
use crate::postgres::{PostgresError, PostgresStore};
use crate::query::BoxFuture;

const KEY_COLUMNS: &str =
    "id, project, name, display_prefix, key_sha256, created_at_ns, last_used_at_ns, revoked_at_ns";

fn key_from_row(r: &Row) -> Result<ApiKey> {
    Ok(ApiKey {
        id: r.get(0),
        project: r.get(1),
        name: r.get(2),
        display_prefix: r.get(3),
        key_sha256: hash_of(&r.get::<_, Vec<u8>>(4))?,
        created_at_ns: r.get(5),
        last_used_at_ns: r.get(6),
        revoked_at_ns: r.get(7),
    })
}

fn failed(e: impl Into<PostgresError>) -> MetadataError {
    MetadataError(e.into().message)
}

impl PostgresStore {
    pub(super) async fn client(&self) -> Result<deadpool_postgres::Client> {
        self.pool()
            .get()
            .await
            .map_err(|e| failed(crate::postgres::pool_error(e)))
    }
}

impl MetadataStore for PostgresStore {
    fn ensure_project<'a>(
        &'a self,
        id: &'a str,
        name: &'a str,
        now_ns: i64,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.client()
                .await?
                .execute(
                    "INSERT INTO projects (id, name, created_at_ns) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING",
                    &[&id, &name, &now_ns],
                )
                .await
                .map(|_| ())
                .map_err(failed)
        })
    }

    fn projects(&self) -> BoxFuture<'_, Result<Vec<Project>>> {
        Box::pin(async move {
            let rows = self
                .client()
                .await?
                .query(
                    "SELECT id, name, created_at_ns FROM projects ORDER BY id",
                    &[],
                )
                .await
                .map_err(failed)?;
            Ok(rows
                .iter()
                .map(|r| Project {
                    id: r.get(0),
                    name: r.get(1),
                    created_at_ns: r.get(2),
                })
                .collect())
        })
    }

    fn create_key<'a>(&'a self, key: &'a ApiKey) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let hash = key.key_sha256.to_vec();
            self.client()
                .await?
                .execute(
                    &format!("INSERT INTO api_keys ({KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"),
                    &[
                        &key.id,
                        &key.project,
                        &key.name,
                        &key.display_prefix,
                        &hash,
                        &key.created_at_ns,
                        &key.last_used_at_ns,
                        &key.revoked_at_ns,
                    ],
                )
                .await
                .map(|_| ())
                .map_err(failed)
        })
    }

    fn key_by_hash<'a>(&'a self, sha256: &'a [u8; 32]) -> BoxFuture<'a, Result<Option<ApiKey>>> {
        Box::pin(async move {
            let hash = sha256.to_vec();
            let row = self
                .client()
                .await?
                .query_opt(
                    &format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE key_sha256 = $1"),
                    &[&hash],
                )
                .await
                .map_err(failed)?;
            row.as_ref().map(key_from_row).transpose()
        })
    }

    fn keys<'a>(&'a self, project: Option<&'a str>) -> BoxFuture<'a, Result<Vec<ApiKey>>> {
        Box::pin(async move {
            let rows = self
                .client()
                .await?
                .query(
                    &format!(
                        "SELECT {KEY_COLUMNS} FROM api_keys WHERE $1::text IS NULL OR project = $1 ORDER BY created_at_ns, id"
                    ),
                    &[&project],
                )
                .await
                .map_err(failed)?;
            rows.iter().map(key_from_row).collect()
        })
    }

    fn revoke_key<'a>(&'a self, id: &'a str, now_ns: i64) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move {
            self.client()
                .await?
                .execute(
                    "UPDATE api_keys SET revoked_at_ns = coalesce(revoked_at_ns, $2) WHERE id = $1",
                    &[&id, &now_ns],
                )
                .await
                .map(|n| n > 0)
                .map_err(failed)
        })
    }

    fn touch_key<'a>(&'a self, id: &'a str, now_ns: i64) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.client()
                .await?
                .execute(
                    "UPDATE api_keys SET last_used_at_ns = $2 WHERE id = $1",
                    &[&id, &now_ns],
                )
                .await
                .map(|_| ())
                .map_err(failed)
        })
    }
}
