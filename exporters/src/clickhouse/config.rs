use std::time::Duration;

use llmscope_core::config::Secret;
use serde::Deserialize;

/// Configuration of the `clickhouse` exporter and query store.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ClickHouseConfig {
    /// HTTP(S) endpoint. Default: `http://127.0.0.1:8123`.
    pub url: String,
    /// Database; created with the schema. Default: `llmscope`.
    pub database: String,
    /// User. Default: `default`.
    pub user: String,
    /// Password; use `${env:CLICKHOUSE_PASSWORD}`. Default: empty.
    pub password: Secret,
    /// Create the database and apply `sql/clickhouse/` migrations on start. Default: true.
    pub create_schema: bool,
    /// Cluster name: DDL runs `ON CLUSTER` with `Replicated` engines. Default: none.
    pub cluster: Option<String>,
    /// Days raw rows are kept (table TTL), 1 to [`MAX_TTL_DAYS`]. Default: 30.
    pub ttl_days: u32,
    /// Let the server buffer inserts (`async_insert=1`, waiting for the flush). Default: false.
    pub async_insert: bool,
    /// Reuse connections between requests. Default: true. Turn off when something in between
    /// drops idle connections without closing them.
    pub keep_alive: bool,
    /// Timeout of one insert or query. Default: `30s`.
    #[serde(with = "llmscope_core::config::duration")]
    pub timeout: Duration,
}

impl Default for ClickHouseConfig {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:8123".into(),
            database: "llmscope".into(),
            user: "default".into(),
            password: Secret::default(),
            create_schema: true,
            cluster: None,
            ttl_days: 30,
            async_insert: false,
            keep_alive: true,
            timeout: Duration::from_secs(30),
        }
    }
}

impl ClickHouseConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !self.url.starts_with("http://") {
            return Err(format!(
                "url: {:?} must start with http:// (this build has no TLS client; put TLS in a proxy)",
                self.url
            ));
        }
        let authority = self.url["http://".len()..]
            .split('/')
            .next()
            .unwrap_or_default();
        if authority.contains('@') {
            return Err(
                "url: put the user and password in `user` and `password`, not in the URL".into(),
            );
        }
        let ident =
            |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !ident(&self.database) {
            return Err("database: use letters, digits and _".into());
        }
        if self.cluster.as_deref().is_some_and(|c| !ident(c)) {
            return Err("cluster: use letters, digits and _".into());
        }
        if !(1..=MAX_TTL_DAYS).contains(&self.ttl_days) {
            return Err(format!(
                "ttl_days: must be between 1 and {MAX_TTL_DAYS} (ten years); ClickHouse's \
                 DateTime ends in 2106, and a TTL past it wraps round and drops every row"
            ));
        }
        Ok(())
    }
}

/// The longest TTL accepted: `toDateTime(start) + INTERVAL ttl_days DAY` must stay within
/// `DateTime` (until 2106), or it wraps round and every row is expired on insert (seen with
/// 36,500 days).
pub const MAX_TTL_DAYS: u32 = 3_650;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_stay_out_of_the_url_and_out_of_debug() {
        let with_password = ClickHouseConfig {
            url: "http://me:hunter2@db:8123".into(),
            ..Default::default()
        };
        assert!(with_password.validate().unwrap_err().starts_with("url:"));
        let config = ClickHouseConfig {
            password: Secret::new("hunter2"),
            ..Default::default()
        };
        assert!(config.validate().is_ok());
        assert!(!format!("{config:?}").contains("hunter2"));
    }

    #[test]
    fn a_ttl_past_datetimes_range_is_refused() {
        let ttl = |ttl_days| ClickHouseConfig {
            ttl_days,
            ..Default::default()
        };
        assert!(ttl(MAX_TTL_DAYS).validate().is_ok());
        assert!(ttl(1).validate().is_ok());
        for bad in [0, MAX_TTL_DAYS + 1, 36_500] {
            let error = ttl(bad).validate().unwrap_err();
            assert!(
                error.starts_with("ttl_days: must be between 1 and 3650"),
                "{error}"
            );
        }
    }
}
