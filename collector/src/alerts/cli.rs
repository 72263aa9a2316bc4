//! `llmscope alerts create|list|delete|test`: rules managed in the config's metadata store
//! directly, as `llmscope keys` manages keys.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Subcommand;

use super::rule::Rule;
use super::{Alerts, AlertsConfig, now_ns};
use crate::config::{Config, ExtensionConfig};
use crate::telemetry::Telemetry;

#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// Create a rule from a JSON file (`-` for stdin); prints the rule as stored (no secrets).
    Create {
        #[arg(long, default_value = llmscope_core::DEFAULT_PROJECT)]
        project: String,
        #[arg(long)]
        file: std::path::PathBuf,
    },
    /// List rules: id, project, name, metric, source, enabled.
    List {
        #[arg(long)]
        project: Option<String>,
    },
    /// Delete a rule by id (its history stays).
    Delete { id: String },
    /// Evaluate a rule now without recording or notifying: each series' value and condition.
    Test { id: String },
}

/// The alerts extension's settings, or the defaults over the config's stores.
fn settings(config: &Config) -> AlertsConfig {
    if let Some((_, a)) = config.alerts() {
        return a.clone();
    }
    let mut a = AlertsConfig::default();
    let metadata = config.extensions.values().find_map(|e| match e {
        ExtensionConfig::Auth(auth) => auth.store().map(str::to_owned),
        _ => None,
    });
    let query = config.extensions.values().find_map(|e| match e {
        ExtensionConfig::Api(api) => Some(api.store.clone()),
        _ => None,
    });
    a.store = metadata.unwrap_or(a.store);
    a.query_store = query.unwrap_or(a.query_store);
    a
}

async fn open(config: &Config) -> Result<Alerts, String> {
    let settings = settings(config);
    let telemetry = Telemetry::default();
    let build = |id: String| {
        let telemetry = telemetry.clone();
        async move {
            let exporter = config
                .exporters
                .get(&id)
                .ok_or_else(|| format!("no exporter {id:?} in the config"))?;
            exporter
                .build(&id, &telemetry)
                .await
                .map_err(|e| format!("exporter {id}: {e}"))
        }
    };
    let meta_built = build(settings.store.clone()).await?;
    let meta = meta_built
        .metadata
        .clone()
        .ok_or_else(|| format!("{:?} cannot hold alert rules", settings.store))?;
    let query = if settings.query_store == settings.store {
        meta_built.query.clone()
    } else {
        build(settings.query_store.clone()).await?.query
    }
    .ok_or_else(|| format!("{:?} answers no queries", settings.query_store))?;
    Alerts::new(meta, query, settings, telemetry)
}

pub async fn run(config: &Config, command: AlertsCommand) -> ExitCode {
    let alerts = match open(config).await {
        Ok(a) => Arc::new(a),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match execute(&alerts, command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn execute(alerts: &Alerts, command: AlertsCommand) -> Result<(), String> {
    let meta = &alerts.meta;
    let find = |id: String| async move {
        meta.rules(None)
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .find(|r| r.id == id)
            .ok_or_else(|| format!("no alert rule {id}"))
    };
    match command {
        AlertsCommand::Create { project, file } => {
            let body = if file.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin()).map_err(|e| format!("stdin: {e}"))?
            } else {
                std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?
            };
            let rule = Rule::from_json(body.as_bytes()).map_err(|e| e.to_string())?;
            alerts.check_for_saving(&rule).map_err(|e| e.to_string())?;
            let stored = alerts.create_rule(&project, &rule).await?;
            let mut view = rule.view();
            view["id"] = stored.id.clone().into();
            view["project"] = stored.project.clone().into();
            println!("{view:#}");
        }
        AlertsCommand::List { project } => {
            let rules = meta
                .rules(project.as_deref())
                .await
                .map_err(|e| e.to_string())?;
            println!("id\tproject\tname\tmetric\tsource\tenabled");
            for r in rules {
                let metric = Rule::from_json(r.definition.as_bytes())
                    .map_or_else(|_| "?".into(), |rule| rule.spec.metric.name());
                println!(
                    "{}\t{}\t{}\t{metric}\t{}\t{}",
                    r.id, r.project, r.name, r.source, r.enabled
                );
            }
        }
        AlertsCommand::Delete { id } => {
            let stored = find(id.clone()).await?;
            if stored.source == "config" {
                return Err(format!("{id} is declared in config; remove it there"));
            }
            meta.delete_rule(&id, now_ns())
                .await
                .map_err(|e| e.to_string())?;
            println!("deleted {id}");
        }
        AlertsCommand::Test { id } => {
            let stored = find(id).await?;
            let result = super::test_rule(alerts, &stored).await?;
            println!("{result:#}");
        }
    }
    Ok(())
}
