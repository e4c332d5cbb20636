{{/* The chart's name: nameOverride or "hypersdk". */}}
{{- define "hypersdk.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The name of every object: fullnameOverride ("hypersdk" by default), else <release>-<chart>. */}}
{{- define "hypersdk.fullname" -}}
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

{{- define "hypersdk.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "hypersdk.selectorLabels" -}}
app.kubernetes.io/name: {{ include "hypersdk.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "hypersdk.labels" -}}
helm.sh/chart: {{ include "hypersdk.chart" . }}
{{ include "hypersdk.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: daemon
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "hypersdk.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "hypersdk.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret the daemon's environment comes from: credentials.existingSecret, else ours. */}}
{{- define "hypersdk.secretName" -}}
{{- default (include "hypersdk.fullname" .) .Values.credentials.existingSecret }}
{{- end }}

{{- define "hypersdk.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag | toString) }}
{{- end }}

{{/* HYPERSDK_API_KEY_<NAME> of an auth.apiKeys entry. */}}
{{- define "hypersdk.apiKeyVariable" -}}
{{- if not (regexMatch "^[A-Za-z0-9_-]+$" (toString .name)) }}
{{- fail (printf "auth.apiKeys: name %q: use letters, digits, '-' and '_'" (toString .name)) }}
{{- end }}
{{- printf "HYPERSDK_API_KEY_%s" (.name | upper | replace "-" "_") }}
{{- end }}

{{- define "hypersdk.dataClaimName" -}}
{{- default (printf "%s-data" (include "hypersdk.fullname" .)) .Values.persistence.data.existingClaim }}
{{- end }}

{{- define "hypersdk.exportsClaimName" -}}
{{- default (printf "%s-exports" (include "hypersdk.fullname" .)) .Values.persistence.exports.existingClaim }}
{{- end }}

{{/*
The config file: the values' config with the chart's parts laid under it (export.base_path when
the values give none) and over it (auth.api_keys, named by their variables; webhook_secret).
*/}}
{{- define "hypersdk.config" -}}
{{- $defaults := dict "export" (dict "base_path" (ternary "/exports" "/var/lib/hypersdk/exports" .Values.persistence.exports.enabled)) }}
{{- $config := mustMergeOverwrite $defaults (deepCopy (.Values.config | default dict)) }}
{{- $keys := list }}
{{- range .Values.auth.apiKeys }}
{{- $keys = append $keys (dict "name" .name "role" (default "read" .role) "key" (printf "${%s}" (include "hypersdk.apiKeyVariable" .))) }}
{{- end }}
{{- if $keys }}
{{- $auth := mustMergeOverwrite (get $config "auth" | default dict) (dict "api_keys" $keys) }}
{{- $_ := set $config "auth" $auth }}
{{- end }}
{{- if and .Values.credentials.webhookSecret (not .Values.credentials.existingSecret) }}
{{- $_ := set $config "webhook_secret" "${HYPERSDK_WEBHOOK_SECRET}" }}
{{- end }}
{{- toYaml $config }}
{{- end }}
