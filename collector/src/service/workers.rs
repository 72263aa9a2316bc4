//! Background workers beside the pipelines: the alert evaluator (the stream's are in
//! `crate::stream`).

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::StartError;
use super::exporters::RunningExporter;
use crate::alerts::{Alerts, Evaluator};
use crate::config::Config;
use crate::telemetry::Telemetry;

/// The `alerts` extension, when it runs: its stores checked, config rules stored, and the
/// evaluator started.
pub async fn alerts(
    config: &Config,
    exporters: &BTreeMap<String, RunningExporter>,
    telemetry: &Telemetry,
    stop: &watch::Receiver<bool>,
    stream: Option<Arc<crate::stream::Stream>>,
) -> Result<Option<(Arc<Alerts>, JoinHandle<()>)>, StartError> {
    let Some((id, settings)) = config.alerts() else {
        return Ok(None);
    };
    let failed = |reason: String| StartError::Extension {
        id: id.clone(),
        reason,
    };
    let meta = exporters
        .get(&settings.store)
        .and_then(|e| e.metadata.clone())
        .ok_or_else(|| failed(format!("{:?} keeps no alert rules", settings.store)))?;
    let query = exporters
        .get(&settings.query_store)
        .and_then(|e| e.query.clone())
        .ok_or_else(|| failed(format!("{:?} answers no queries", settings.query_store)))?;
    let mut alerts =
        Alerts::new(meta, query, settings.clone(), telemetry.clone()).map_err(failed)?;
    alerts.stream = stream;
    alerts.sync_config_rules().await.map_err(failed)?;
    let alerts = Arc::new(alerts);
    let worker = Evaluator::start(Arc::clone(&alerts), stop.clone())
        .await
        .map_err(failed)?;
    tracing::info!(
        extension = %id,
        interval = ?settings.evaluation_interval,
        shared = !settings.redis_url.is_empty(),
        "alert evaluator started"
    );
    Ok(Some((alerts, worker)))
}
