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

{{/* The exporter keeping API keys: the store itself, or beside ClickHouse the one
`store.clickhouse.metadata` names. */}}
{{- define "llmscope.metadataKind" -}}
{{- if eq .Values.store.kind "clickhouse" -}}
{{- .Values.store.clickhouse.metadata -}}
{{- else -}}
{{- .Values.store.kind -}}
{{- end -}}
{{- end }}

{{/* Whether the gateway is one replica on a volume (SQLite keeps a file). */}}
{{- define "llmscope.singleReplica" -}}
{{- if eq (include "llmscope.metadataKind" .) "sqlite" }}true{{ end -}}
{{- end }}

{{/* The gateway's exporters, by `store.kind`. */}}
{{- define "llmscope.storeExporters" -}}
{{- $s := .Values.store -}}
{{- if not (has $s.kind (list "sqlite" "postgres" "clickhouse")) }}
{{- fail (printf "store.kind: %q is not sqlite, postgres or clickhouse" $s.kind) }}
{{- end }}
{{- if eq $s.kind "clickhouse" }}
{{- if not (has $s.clickhouse.metadata (list "sqlite" "postgres")) }}
{{- fail (printf "store.clickhouse.metadata: %q is not sqlite or postgres (API keys are kept there)" $s.clickhouse.metadata) }}
{{- end }}
clickhouse:
  url: ${env:CLICKHOUSE_URL}
  user: ${env:CLICKHOUSE_USER:-default}
  password: ${env:CLICKHOUSE_PASSWORD:-}
  ttl_days: {{ $s.clickhouse.ttlDays }}
{{- end }}
{{- $metadata := include "llmscope.metadataKind" . }}
{{- if eq $metadata "sqlite" }}
sqlite:
  path: /var/lib/llmscope/llmscope.db
{{- else if eq $metadata "postgres" }}
postgres:
  url: ${env:POSTGRES_URL}
  password: ${env:POSTGRES_PASSWORD:-}
  retention_days: {{ $s.postgres.retentionDays }}
{{- end }}
{{- end }}

{{/* What every mode's pipelines do before their exporter. */}}
{{- define "llmscope.pipelines" -}}
{{- $processors := ternary "[normalize, cost, redact, anomaly]" "[normalize, redact]" (eq .mode "gateway") -}}
traces:
  receivers: [otlp]
  processors: {{ $processors }}
  exporters: [{{ .exporter }}]
logs:
  receivers: [otlp]
  processors: [normalize, redact]
  exporters: [{{ .exporter }}]
metrics:
  receivers: [otlp]
  exporters: [{{ .exporter }}]
{{- end }}

{{/* The mode's config, before `config` is merged over it. */}}
{{- define "llmscope.baseConfig" -}}
{{- $mode := .Values.mode -}}
{{- if not (has $mode (list "gateway" "daemonset" "sidecar")) }}
{{- fail (printf "mode: %q is not gateway, daemonset or sidecar" $mode) }}
{{- end }}
{{- $gateway := eq $mode "gateway" -}}
{{- $host := ternary "127.0.0.1" "0.0.0.0" (eq $mode "sidecar") -}}
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
{{ include "llmscope.storeExporters" . | indent 2 }}
extensions:
  auth:
    mode: api_key
    admin_token: ${env:LLMSCOPE_ADMIN_TOKEN:-}
    store: {{ include "llmscope.metadataKind" . }}
    limits:
      per_key:
        spans_per_second: {{ .Values.auth.spansPerSecond }}
        requests_per_second: {{ .Values.auth.requestsPerSecond }}
        burst_seconds: 2
      redis_url: ${env:REDIS_URL:-}
      {{- if include "llmscope.singleReplica" . }}
      collectors: 1
      {{- else }}
      collectors: {{ ternary .Values.autoscaling.maxReplicas .Values.replicaCount .Values.autoscaling.enabled }}
      {{- end }}
  api:
    endpoint: 0.0.0.0:4320
    store: {{ .Values.store.kind }}
service:
  extensions: [auth, api]
  queue:
    kind: disk
    dir: /var/lib/llmscope/queue
    max_bytes: {{ int64 .Values.queueMaxBytes }}
  pipelines:
{{ include "llmscope.pipelines" (dict "mode" $mode "exporter" .Values.store.kind) | indent 4 }}
{{- else }}
exporters:
  otlp:
    endpoint: {{ .Values.forward.endpoint }}
    protocol: grpc
    headers:
      authorization: Bearer ${env:LLMSCOPE_API_KEY}
{{- if eq $mode "daemonset" }}
# The agent listens on the node's address: senders present the key listed here.
extensions:
  auth:
    keys:
      - name: node-apps
        key: ${env:LLMSCOPE_AGENT_KEY}
{{- end }}
service:
{{- if eq $mode "daemonset" }}
  extensions: [auth]
{{- end }}
  queue:
    kind: disk
    dir: /var/lib/llmscope/queue
    max_bytes: {{ int64 .Values.queueMaxBytes }}
  pipelines:
{{ include "llmscope.pipelines" (dict "mode" $mode "exporter" "otlp") | indent 4 }}
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
{{- if eq .Values.store.kind "clickhouse" }}
- name: CLICKHOUSE_URL
  valueFrom:
    secretKeyRef: {name: {{ $secret }}, key: clickhouse-url}
- name: CLICKHOUSE_USER
  valueFrom:
    secretKeyRef: {name: {{ $secret }}, key: clickhouse-user, optional: true}
- name: CLICKHOUSE_PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ $secret }}, key: clickhouse-password, optional: true}
{{- end }}
{{- if eq (include "llmscope.metadataKind" .) "postgres" }}
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
{{- if eq .Values.mode "daemonset" }}
- name: LLMSCOPE_AGENT_KEY
  valueFrom:
    secretKeyRef: {name: {{ $secret }}, key: agent-key}
{{- end }}
{{- end }}
{{- end }}

{{/* The pod's securityContext, the same in every mode. */}}
{{- define "llmscope.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* The container's securityContext. */}}
{{- define "llmscope.securityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
{{- end }}

{{/* Placement values, for any pod spec. */}}
{{- define "llmscope.placement" -}}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
