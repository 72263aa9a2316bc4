#!/usr/bin/env python3
"""Writes LLMScope's Grafana dashboards (dashboards/*.json) from one description, so the
ClickHouse and PostgreSQL flavours of *LLM usage* stay the same dashboard.

    python3 deploy/grafana/generate.py          # rewrite the JSON files
    python3 deploy/grafana/generate.py --check  # exit 1 if a committed file is stale

Every SQL query here is executed by collector/tests/it/grafana.rs against real ClickHouse and
PostgreSQL (macros and variables expanded as the plugins expand them), and every PromQL
expression by a real Prometheus.
"""

import json
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
OUT = HERE / "dashboards"

PROMETHEUS = {"type": "prometheus", "uid": "llmscope-prometheus"}
CLICKHOUSE = {"type": "grafana-clickhouse-datasource", "uid": "llmscope-clickhouse"}
POSTGRES = {"type": "grafana-postgresql-datasource", "uid": "llmscope-postgres"}

# A multi-value variable left at "All" expands to this literal, so `'__all__' IN ($v)` is true.
ALL_SQL = "'__all__'"


def sql_filter(flavour, table="spans"):
    """The dashboard's filters on spans (model calls counted once) or anomalies."""
    if flavour == "clickhouse":
        time = "$__timeFilter(start_time)" if table == "spans" else "$__timeFilter(anomalies.time)"
        counted = " AND counted = 1" if table == "spans" else ""
    else:
        time = "$__unixEpochNanoFilter(start_time_ns)" if table == "spans" else "$__unixEpochNanoFilter(time_ns)"
        counted = " AND counted" if table == "spans" else ""
    model = "request_model" if table == "spans" else "model"
    return (
        f"project = '$project' AND {time}{counted}\n"
        f"  AND ({ALL_SQL} IN ($service) OR service IN ($service))\n"
        f"  AND ({ALL_SQL} IN ($model) OR {model} IN ($model))\n"
        f"  AND ({ALL_SQL} IN ($provider) OR provider IN ($provider))"
    )


def bucket(flavour, table="spans"):
    if flavour == "clickhouse":
        column = "start_time" if table == "spans" else "anomalies.time"
        return f"$__timeInterval({column}) AS time"
    column = "start_time_ns" if table == "spans" else "time_ns"
    return f"$__unixEpochGroupAlias({column} / 1000000000, $__interval)"


def usage_panels(flavour):
    """(title, kind, sql, unit, description) of the LLM usage dashboard, in order."""
    ch = flavour == "clickhouse"
    f = sql_filter(flavour)
    fa = sql_filter(flavour, "anomalies")
    count = "count()" if ch else "count(*)"
    errors = "countIf(status_code = 2)" if ch else "count(*) FILTER (WHERE status_code = 2)"
    ratio = f"{errors} / greatest({count}, 1)" if ch else f"{errors}::float8 / greatest({count}, 1)"
    tokens_in = "coalesce(sum(input_tokens), 0)"
    tokens_out = "coalesce(sum(output_tokens), 0)"
    cost = "coalesce(sum(cost_usd), 0)"
    if ch:
        latency = (
            "quantiles(0.5, 0.95, 0.99)(duration_ns / 1e9) AS q,\n"
            "  q[1] AS p50, q[2] AS p95, q[3] AS p99"
        )
        latency_select = f"SELECT time, p50, p95, p99 FROM (\nSELECT {bucket(flavour)}, {latency}\nFROM spans WHERE {f}\nGROUP BY time) ORDER BY time"
        anomaly_time = "anomalies.time AS time"
        started = "min(start_time) AS started"
    else:
        pct = lambda q: f"percentile_cont({q}) WITHIN GROUP (ORDER BY duration_ns) / 1e9"
        latency_select = (
            f"SELECT {bucket(flavour)},\n  {pct(0.5)} AS p50,\n  {pct(0.95)} AS p95,\n  {pct(0.99)} AS p99\n"
            f"FROM spans WHERE {f}\nGROUP BY 1 ORDER BY 1"
        )
        anomaly_time = "to_timestamp(time_ns / 1e9) AS time"
        started = "to_timestamp(min(start_time_ns) / 1e9) AS started"
    group_time = "GROUP BY time" if ch else "GROUP BY 1"
    group_time_key = "GROUP BY time, {k}" if ch else "GROUP BY 1, 2"
    order_time = "ORDER BY time" if ch else "ORDER BY 1"

    def by(column, alias, limit=None):
        tail = f"\nLIMIT {limit}" if limit else ""
        return (
            f"SELECT {column} AS {alias}, {count} AS calls, {tokens_in} AS input_tokens,\n"
            f"  {tokens_out} AS output_tokens, {cost} AS cost_usd\n"
            f"FROM spans WHERE {f}\nGROUP BY {alias} ORDER BY cost_usd DESC, {alias}{tail}"
        )

    def over_time(key_column, key, value):
        return (
            f"SELECT {bucket(flavour)}, {key_column} AS {key}, {value} AS value\n"
            f"FROM spans WHERE {f}\n{group_time_key.format(k=key)} {order_time}"
        )

    return [
        ("Model calls", "stat", f"SELECT {count} AS value FROM spans WHERE {f}", "short",
         "Model calls in the range (a call reported by several spans counts once)."),
        ("Input tokens", "stat", f"SELECT {tokens_in} AS value FROM spans WHERE {f}", "short",
         "Input tokens of those calls, cache reads and writes included."),
        ("Output tokens", "stat", f"SELECT {tokens_out} AS value FROM spans WHERE {f}", "short",
         "Output tokens of those calls, reasoning included."),
        ("Cost", "stat", f"SELECT {cost} AS value FROM spans WHERE {f}", "currencyUSD",
         "What those calls cost, as priced by the cost processor (or sent by the instrumentation)."),
        ("Error rate", "stat", f"SELECT {ratio} AS value FROM spans WHERE {f}", "percentunit",
         "Share of calls whose span status is ERROR."),
        ("Model calls by model", "timeseries", over_time("request_model", "model", count), "short",
         "Calls per interval, one series per request model."),
        ("Tokens", "timeseries",
         f"SELECT {bucket(flavour)}, {tokens_in} AS input, {tokens_out} AS output\n"
         f"FROM spans WHERE {f}\n{group_time} {order_time}", "short",
         "Input and output tokens per interval."),
        ("Cost by model", "timeseries", over_time("request_model", "model", cost), "currencyUSD",
         "Cost per interval, one series per request model."),
        ("Latency percentiles", "timeseries", latency_select, "s",
         "p50, p95 and p99 of call duration per interval."),
        ("Error rate over time", "timeseries",
         f"SELECT {bucket(flavour)}, {ratio} AS value\nFROM spans WHERE {f}\n{group_time} {order_time}",
         "percentunit", "Share of failed calls per interval."),
        ("Anomalies by kind", "timeseries",
         f"SELECT {bucket(flavour, 'anomalies')}, kind, {count} AS value\n"
         f"FROM anomalies WHERE {fa}\n{group_time_key.format(k='kind')} {order_time}", "short",
         "Anomalies the anomaly processor reported per interval (latency, cost, tokens, errors, volume)."),
        ("Calls and cost by provider", "table", by("provider", "provider"), "short",
         "Calls, tokens and cost per provider, costliest first."),
        ("Calls and cost by service", "table", by("service", "service"), "short",
         "Calls, tokens and cost per service (resource service.name), costliest first."),
        ("Calls and cost by model", "table", by("request_model", "model"), "short",
         "Calls, tokens and cost per request model, costliest first."),
        ("Top users by cost", "table", by("user_id", "user_id", 20), "short",
         "The 20 users (user.id) whose calls cost most; calls without a user are one row with an empty user."),
        ("Top traces by cost", "table",
         f"SELECT trace_id, {count} AS calls, {cost} AS cost_usd, {started}\n"
         f"FROM spans WHERE {f}\nGROUP BY trace_id ORDER BY cost_usd DESC, trace_id\nLIMIT 20", "short",
         "The 20 costliest traces; the trace id links to the trace in LLMScope's API."),
        ("Recent anomalies", "table",
         f"SELECT {anomaly_time}, kind, service, model, value, baseline, trace_id\n"
         f"FROM anomalies WHERE {fa}\nORDER BY time DESC\nLIMIT 50", "short",
         "The 50 latest anomalies with their observed value and baseline."),
    ]


def sql_target(flavour, kind, sql):
    if flavour == "clickhouse":
        return {
            "refId": "A",
            "datasource": CLICKHOUSE,
            "editorType": "sql",
            "queryType": "timeseries" if kind == "timeseries" else "table",
            "format": 0 if kind == "timeseries" else 1,
            "rawSql": sql,
        }
    return {
        "refId": "A",
        "datasource": POSTGRES,
        "editorMode": "code",
        "rawQuery": True,
        "format": "time_series" if kind == "timeseries" else "table",
        "rawSql": sql,
    }


def sql_variable(flavour, name, column, label):
    ch = flavour == "clickhouse"
    time = "$__timeFilter(start_time)" if ch else "$__unixEpochNanoFilter(start_time_ns)"
    query = (
        f"SELECT DISTINCT {column} FROM spans WHERE project = '$project' AND {time}"
        f" AND {column} != '' ORDER BY {column}"
    )
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": CLICKHOUSE if ch else POSTGRES,
        "query": query,
        "definition": query,
        "refresh": 2,
        "multi": True,
        "includeAll": True,
        "allValue": ALL_SQL,
        "current": {"text": ["All"], "value": ["$__all"]},
        "sort": 1,
    }


def project_variable(flavour):
    ch = flavour == "clickhouse"
    query = "SELECT DISTINCT project FROM spans WHERE $__timeFilter(start_time) ORDER BY project" if ch \
        else "SELECT DISTINCT project FROM traces ORDER BY project"
    return {
        "name": "project",
        "label": "Project",
        "type": "query",
        "datasource": CLICKHOUSE if ch else POSTGRES,
        "query": query,
        "definition": query,
        "refresh": 1,
        "multi": False,
        "includeAll": False,
        "current": {"text": "default", "value": "default"},
    }


LINK_VARIABLE = {
    "name": "llmscope_url",
    "label": "LLMScope API",
    "type": "textbox",
    "query": "http://127.0.0.1:4320",
    "current": {"text": "http://127.0.0.1:4320", "value": "http://127.0.0.1:4320"},
    "description": "Where trace links point (the collector's API listener).",
}


def layout(panels):
    """Grid positions: stats in a row of five, then two charts or tables per row."""
    out = []
    x, y = 0, 0
    for i, p in enumerate(panels):
        stat = p["type"] == "stat"
        w, h = (24 // 5 if stat else 12), (4 if stat else 9)
        if x + w > 24:
            x, y = 0, y + prev_h
        p["gridPos"] = {"h": h, "w": w, "x": x, "y": y}
        p["id"] = i + 1
        x += w
        prev_h = h
        if stat and (i + 1 == len(panels) or panels[i + 1]["type"] != "stat"):
            x, y = 0, y + h
        out.append(p)
    return out


def panel(title, kind, target, unit, description):
    p = {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": target["datasource"],
        "targets": [target],
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {},
    }
    if kind == "stat":
        p["options"] = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}}
    if title == "Top traces by cost":
        p["fieldConfig"]["overrides"] = [{
            "matcher": {"id": "byName", "options": "trace_id"},
            "properties": [{
                "id": "links",
                "value": [{
                    "title": "Open trace",
                    "url": "${llmscope_url}/api/v1/traces/${__value.raw}",
                    "targetBlank": True,
                }],
            }],
        }]
    return p


def dashboard(uid, title, description, variables, panels, tags):
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["llmscope"] + tags,
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "1m",
        "time": {"from": "now-24h", "to": "now"},
        "annotations": {"list": []},
        "links": [],
        "templating": {"list": variables},
        "panels": layout(panels),
    }


def usage_dashboard(flavour):
    name = "ClickHouse" if flavour == "clickhouse" else "PostgreSQL"
    variables = [project_variable(flavour)] + [
        sql_variable(flavour, "service", "service", "Service"),
        sql_variable(flavour, "model", "request_model", "Model"),
        sql_variable(flavour, "provider", "provider", "Provider"),
        LINK_VARIABLE,
    ]
    panels = [panel(t, k, sql_target(flavour, k, sql), u, d) for t, k, sql, u, d in usage_panels(flavour)]
    return dashboard(
        f"llmscope-usage-{flavour}",
        f"LLMScope / LLM usage ({name})",
        f"Requests, tokens, cost, latency, errors and anomalies of model calls, read from LLMScope's {name} store.",
        variables,
        panels,
        [flavour],
    )


def prom_variable(name, label_name, label):
    query = f"label_values(gen_ai_client_operation_duration_seconds_count, {label_name})"
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": PROMETHEUS,
        "query": {"query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
        "definition": query,
        "refresh": 2,
        "multi": True,
        "includeAll": True,
        "allValue": ".*",
        "current": {"text": ["All"], "value": ["$__all"]},
        "sort": 1,
    }


GENAI = 'service_name=~"$service", gen_ai_request_model=~"$model", gen_ai_provider_name=~"$provider"'


def prom_usage_panels():
    calls = f"gen_ai_client_operation_duration_seconds_count{{{GENAI}}}"
    buckets = f"gen_ai_client_operation_duration_seconds_bucket{{{GENAI}}}"
    q = lambda level: f"histogram_quantile({level}, sum by (le) (rate({buckets}[$__rate_interval])))"
    return [
        ("Model calls", "stat", [(f"sum(increase({calls}[$__range]))", "calls")], "short",
         "Model calls in the range, from gen_ai.client.operation.duration's count."),
        ("Input tokens", "stat",
         [(f'sum(increase(gen_ai_client_token_usage_sum{{{GENAI}, gen_ai_token_type="input"}}[$__range]))', "input")],
         "short", "Input tokens in the range (gen_ai.client.token.usage)."),
        ("Output tokens", "stat",
         [(f'sum(increase(gen_ai_client_token_usage_sum{{{GENAI}, gen_ai_token_type="output"}}[$__range]))', "output")],
         "short", "Output tokens in the range."),
        ("Cost", "stat", [(f"sum(increase(llmscope_gen_ai_cost_usd_total{{{GENAI}}}[$__range]))", "cost")],
         "currencyUSD", "Cost in the range (llmscope_gen_ai_cost_usd_total)."),
        ("Error rate", "stat",
         [(f'sum(increase(gen_ai_client_operation_duration_seconds_count{{{GENAI}, error_type!=""}}[$__range])) / sum(increase({calls}[$__range]))', "errors")],
         "percentunit", "Share of calls that failed (error_type set) in the range."),
        ("Model calls by model", "timeseries",
         [(f"sum by (gen_ai_request_model) (rate({calls}[$__rate_interval]))", "{{gen_ai_request_model}}")],
         "reqps", "Calls per second, one series per request model."),
        ("Tokens by type", "timeseries",
         [(f"sum by (gen_ai_token_type) (rate(gen_ai_client_token_usage_sum{{{GENAI}}}[$__rate_interval]))", "{{gen_ai_token_type}}")],
         "short", "Input and output tokens per second."),
        ("Cost per hour by model", "timeseries",
         [(f"3600 * sum by (gen_ai_request_model) (rate(llmscope_gen_ai_cost_usd_total{{{GENAI}}}[$__rate_interval]))", "{{gen_ai_request_model}}")],
         "currencyUSD", "Spend rate in dollars per hour, one series per request model."),
        ("Latency percentiles", "timeseries", [(q(0.5), "p50"), (q(0.95), "p95"), (q(0.99), "p99")], "s",
         "p50, p95 and p99 of call duration, from the histogram's buckets (the conventions' boundaries)."),
        ("Cache and reasoning tokens", "timeseries",
         [(f"sum(rate(llmscope_gen_ai_usage_cache_read_input_tokens_total{{{GENAI}}}[$__rate_interval]))", "cache read"),
          (f"sum(rate(llmscope_gen_ai_usage_cache_creation_input_tokens_total{{{GENAI}}}[$__rate_interval]))", "cache write"),
          (f"sum(rate(llmscope_gen_ai_usage_reasoning_output_tokens_total{{{GENAI}}}[$__rate_interval]))", "reasoning")],
         "short", "Prompt-cache reads and writes and reasoning tokens per second."),
        ("Anomalies by kind", "timeseries",
         [("sum by (kind) (increase(llmscope_anomalies_total[$__rate_interval]))", "{{kind}}")],
         "short", "Anomalies detected per interval, by kind (all services: the counter has no model labels)."),
        ("Cost by service", "table",
         [(f"sum by (service_name) (increase(llmscope_gen_ai_cost_usd_total{{{GENAI}}}[$__range]))", "")],
         "currencyUSD", "Cost per service in the range."),
    ]


def health_panels():
    rate = lambda m, by: f"sum by ({by}) (rate({m}{{instance=~\"$instance\"}}[$__rate_interval]))"
    gauge = lambda m, by: f"max by ({by}) ({m}{{instance=~\"$instance\"}})"
    return [
        ("Accepted items/s", "timeseries",
         [(rate("llmscope_receiver_accepted_items_total", "receiver, signal"), "{{receiver}} {{signal}}")], "short",
         "Spans, log records and metric points accepted (queued for every exporter), per receiver and signal."),
        ("Refused requests/s", "timeseries",
         [(rate("llmscope_receiver_refused_requests_total", "receiver, reason"), "{{receiver}} {{reason}}")], "short",
         "Requests refused before decoding: malformed, too large, wrong media type, unauthenticated."),
        ("Refused items/s", "timeseries",
         [(rate("llmscope_receiver_refused_items_total", "reason"), "receiver: {{reason}}"),
          (rate("llmscope_pipeline_refused_items_total", "pipeline, reason"), "{{pipeline}}: {{reason}}"),
          (rate("llmscope_processor_refused_items_total", "processor"), "processor {{processor}}")], "short",
         "Items refused after decoding: by receivers, by full or failing queues, by processors."),
        ("Rate-limit refusals/s", "timeseries",
         [(rate("llmscope_ratelimit_refused_total", "limit"), "{{limit}}"),
          (rate("llmscope_ratelimit_redis_fallback_total", "instance"), "local fallback (Redis down)")], "short",
         "Requests refused by a rate limit, and checks made locally because Redis was unreachable."),
        ("Queue bytes", "timeseries",
         [(gauge("llmscope_queue_bytes", "pipeline"), "{{pipeline}}"),
          (gauge("llmscope_queue_pending_bytes", "pipeline, exporter"), "{{pipeline}} → {{exporter}} pending")], "bytes",
         "What each pipeline's disk queue holds, and what each exporter has yet to export."),
        ("Oldest unexported batch", "timeseries",
         [(gauge("llmscope_queue_oldest_unexported_age_seconds", "pipeline, exporter"), "{{pipeline}} → {{exporter}}")], "s",
         "Age of the oldest batch an exporter has read and not yet exported: rising means the backend is behind or down."),
        ("Exported items/s", "timeseries",
         [(rate("llmscope_exporter_sent_items_total", "exporter"), "{{exporter}}")], "short", "Items exported, per exporter."),
        ("Export retries/s", "timeseries",
         [(rate("llmscope_exporter_retries_total", "exporter"), "{{exporter}}")], "short",
         "Export attempts that failed transiently and were retried."),
        ("Dead-lettered and dropped items/s", "timeseries",
         [(rate("llmscope_exporter_dead_letter_items_total", "exporter"), "{{exporter}} dead letter"),
          (rate("llmscope_exporter_dropped_items_total", "exporter, reason"), "{{exporter}} dropped ({{reason}})"),
          (rate("llmscope_queue_dropped_records_total", "pipeline"), "{{pipeline}} queue full (drop_oldest)")], "short",
         "Items given up on: written to the dead-letter file, or dropped."),
        ("GenAI metric overflow/s", "timeseries",
         [(rate("llmscope_gen_ai_metrics_overflow_total", "metric"), "{{metric}}")], "short",
         "Observations sent to a GenAI metric's overflow series: raise series_limit or drop a dimension."),
    ]


def prom_panel(title, kind, exprs, unit, description):
    targets = []
    for i, (expr, legend) in enumerate(exprs):
        t = {"refId": chr(ord("A") + i), "datasource": PROMETHEUS, "expr": expr, "legendFormat": legend}
        if kind == "table":
            t.update({"instant": True, "format": "table"})
        targets.append(t)
    p = panel(title, kind, targets[0], unit, description)
    p["targets"] = targets
    return p


def prometheus_dashboards():
    usage = dashboard(
        "llmscope-usage-prometheus",
        "LLMScope / LLM usage (Prometheus)",
        "Requests, tokens, cost, latency and errors from LLMScope's GenAI metrics (OpenTelemetry GenAI conventions).",
        [prom_variable("service", "service_name", "Service"),
         prom_variable("model", "gen_ai_request_model", "Model"),
         prom_variable("provider", "gen_ai_provider_name", "Provider")],
        [prom_panel(*p) for p in prom_usage_panels()],
        ["prometheus"],
    )
    instance = {
        "name": "instance",
        "label": "Instance",
        "type": "query",
        "datasource": PROMETHEUS,
        "query": {"query": "label_values(llmscope_receiver_accepted_items_total, instance)",
                  "refId": "PrometheusVariableQueryEditor-VariableQuery"},
        "definition": "label_values(llmscope_receiver_accepted_items_total, instance)",
        "refresh": 2,
        "multi": True,
        "includeAll": True,
        "allValue": ".*",
        "current": {"text": ["All"], "value": ["$__all"]},
    }
    health = dashboard(
        "llmscope-collector-health",
        "LLMScope / Collector health",
        "What each LLMScope collector accepts, refuses, queues and exports (its /metrics).",
        [instance],
        [prom_panel(*p) for p in health_panels()],
        ["prometheus"],
    )
    return {"llm-usage-prometheus.json": usage, "collector-health.json": health}


def all_dashboards():
    out = {
        "llm-usage-clickhouse.json": usage_dashboard("clickhouse"),
        "llm-usage-postgres.json": usage_dashboard("postgres"),
    }
    out.update(prometheus_dashboards())
    return {name: json.dumps(d, indent=2, ensure_ascii=False) + "\n" for name, d in out.items()}


def main():
    check = "--check" in sys.argv[1:]
    stale = []
    OUT.mkdir(exist_ok=True)
    for name, text in all_dashboards().items():
        path = OUT / name
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
    if stale:
        print("stale (run python3 deploy/grafana/generate.py): " + ", ".join(stale), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
