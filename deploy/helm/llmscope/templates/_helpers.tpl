{{- define "llmscope.fullname" -}}
{{- printf "%s-%s" .Release.Name .Values.mode | trunc 63 | trimSuffix "-" -}}
{{- end }}

{{- define "llmscope.selectorLabels" -}}
app.kubernetes.io/name: llmscope
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: {{ .Values.mode }}
{{- end }}

{{- define "llmscope.labels" -}}
{{ include "llmscope.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}

{{- define "llmscope.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/* The store exporter of a gateway, by `store.kind`. */}}
{{- define "llmscope.storeExporter" -}}
{{- $s := .Values.store -}}
{{- if eq $s.kind "sqlite" }}
sqlite:
  path: /var/lib/llmscope/llmscope.db
{{- else if eq $s.kind "postgres" }}
postgres:
  url: ${env:POSTGRES_URL}
  password: ${env:POSTGRES_PASSWORD:-}
  retention_days: {{ $s.postgres.retentionDays }}
{{- else if eq $s.kind "clickhouse" }}
{{- fail "store.kind: clickhouse is not offered by this chart yet: API keys need a sqlite or postgres store beside it (see deploy/README.md)" }}
{{- else }}
{{- fail (printf "store.kind: %q is not sqlite, postgres or clickhouse" $s.kind) }}
{{- end }}
{{- end }}

{{/* The mode's config, before `config` is merged over it. */}}
{{- define "llmscope.baseConfig" -}}
{{- $gateway := eq .Values.mode "gateway" -}}
{{- $host := ternary "0.0.0.0" "127.0.0.1" $gateway -}}
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: {{ $host }}:4317
      http:
        endpoint: {{ $host }}:4318
processors:
  normalize: {}
  redact: {}
{{- if $gateway }}
  cost: {}
  anomaly: {}
exporters:
{{ include "llmscope.storeExporter" . | indent 2 }}
extensions:
  auth:
    mode: api_key
    admin_token: ${env:LLMSCOPE_ADMIN_TOKEN:-}
    store: {{ .Values.store.kind }}
    limits:
      per_key:
        spans_per_second: {{ .Values.auth.spansPerSecond }}
        requests_per_second: {{ .Values.auth.requestsPerSecond }}
        burst_seconds: 2
      redis_url: ${env:REDIS_URL:-}
      collectors: {{ ternary .Values.autoscaling.maxReplicas .Values.replicaCount .Values.autoscaling.enabled }}
  api:
    endpoint: 0.0.0.0:4320
    store: {{ .Values.store.kind }}
service:
  extensions: [auth, api]
  queue:
    kind: disk
    dir: /var/lib/llmscope/queue
  pipelines:
    traces:
      receivers: [otlp]
      processors: [normalize, cost, redact, anomaly]
      exporters: [{{ .Values.store.kind }}]
    logs:
      receivers: [otlp]
      processors: [normalize, redact]
      exporters: [{{ .Values.store.kind }}]
    metrics:
      receivers: [otlp]
      exporters: [{{ .Values.store.kind }}]
{{- else }}
exporters:
  otlp:
    endpoint: {{ .Values.forward.endpoint }}
    protocol: grpc
    headers:
      authorization: Bearer ${env:LLMSCOPE_API_KEY}
service:
  queue:
    kind: disk
    dir: /var/lib/llmscope/queue
  pipelines:
    traces:
      receivers: [otlp]
      processors: [normalize, redact]
      exporters: [otlp]
    logs:
      receivers: [otlp]
      processors: [normalize, redact]
      exporters: [otlp]
    metrics:
      receivers: [otlp]
      exporters: [otlp]
{{- end }}
{{- end }}

{{- define "llmscope.config" -}}
{{- $base := include "llmscope.baseConfig" . | fromYaml -}}
{{- toYaml (mustMergeOverwrite $base (deepCopy .Values.config)) -}}
{{- end }}

{{/* Environment from the Secret: what the mode and store read. */}}
{{- define "llmscope.env" -}}
- name: LLMSCOPE_CONFIG
  value: /etc/llmscope/llmscope.yaml
{{- $secret := .Values.existingSecret }}
{{- if eq .Values.mode "gateway" }}
- name: LLMSCOPE_ADMIN_TOKEN
  valueFrom:
    secretKeyRef: {name: {{ $secret }}, key: admin-token, optional: true}
{{- if eq .Values.store.kind "postgres" }}
- name: POSTGRES_URL
  valueFrom:
    secretKeyRef: {name: {{ $secret }}, key: postgres-url}
- name: POSTGRES_PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ $secret }}, key: postgres-password, optional: true}
{{- end }}
{{- if .Values.redis.enabled }}
- name: REDIS_URL
  valueFrom:
    secretKeyRef: {name: {{ $secret }}, key: redis-url}
{{- end }}
{{- else }}
- name: LLMSCOPE_API_KEY
  valueFrom:
    secretKeyRef: {name: {{ $secret }}, key: api-key}
{{- end }}
{{- end }}
