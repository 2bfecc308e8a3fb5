{{/* Chart name, truncated to the 63 characters of a DNS label. */}}
{{- define "queueworker-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: release name and chart name, unless the release already has the chart's name. */}}
{{- define "queueworker-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "queueworker-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Immutable labels: the Deployment selector uses only these. */}}
{{- define "queueworker-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "queueworker-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "queueworker-operator.labels" -}}
helm.sh/chart: {{ include "queueworker-operator.chart" . }}
{{ include "queueworker-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: queueworker
{{- end }}

{{- define "queueworker-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "queueworker-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "queueworker-operator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* True (non-empty) when the replicas elect a leader through kopf peering. */}}
{{- define "queueworker-operator.peered" -}}
{{- if gt (int .Values.replicaCount) 1 }}true{{ end }}
{{- end }}

{{/*
The operator's command line after the image's ENTRYPOINT (`queueworker`):
the scope (all namespaces or a list), peering or standalone, liveness, metrics.
*/}}
{{- define "queueworker-operator.args" -}}
- operator
{{- if .Values.watchNamespaces }}
{{- range .Values.watchNamespaces }}
- --namespace={{ . }}
{{- end }}
{{- else }}
- --all-namespaces
{{- end }}
{{- with .Values.operator.shard }}
- --shard={{ . }}
{{- end }}
{{- with .Values.operator.shardSelector }}
- --shard-selector={{ . }}
{{- end }}
{{- if .Values.operator.shardAllPods }}
- --shard-all-pods
{{- end }}
{{- if include "queueworker-operator.peered" . }}
- --peering={{ include "queueworker-operator.peeringName" . }}
{{- else }}
- --standalone
{{- end }}
- --liveness=http://0.0.0.0:{{ .Values.health.port }}{{ .Values.health.path }}
- --metrics-port={{ .Values.metrics.port }}
- --log-level={{ .Values.operator.logLevel }}
{{- if .Values.operator.refusePrivileged }}
- --refuse-privileged
{{- else }}
{{- /* The CLI refuses by default too: the opt-out must be said. */}}
- --no-refuse-privileged
{{- end }}
{{- range .Values.operator.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end }}

{{/*
The peering object: one per shard (operator.shard), so the shards are all active.
*/}}
{{- define "queueworker-operator.peeringName" -}}
{{- if .Values.operator.shard -}}
{{- printf "%s-%s" .Values.peering.name .Values.operator.shard -}}
{{- else -}}
{{- .Values.peering.name -}}
{{- end -}}
{{- end }}
