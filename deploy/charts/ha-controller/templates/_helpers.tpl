{{/* Chart name, shortened to the 63 characters a label value allows. */}}
{{- define "ha-controller.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Name of the release's objects. */}}
{{- define "ha-controller.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Labels that select the agent's pods; they never change after install. */}}
{{- define "ha-controller.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ha-controller.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: agent
{{- end -}}

{{/* Labels of every object. */}}
{{- define "ha-controller.labels" -}}
{{ include "ha-controller.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 }}
{{- end -}}

{{/* The ServiceAccount the agent runs as. */}}
{{- define "ha-controller.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "ha-controller.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
Port of the /healthz and /metrics server, from options.health-bind-address (":8000",
"0.0.0.0:8000", "[::]:8000"); empty when the server is disabled.
*/}}
{{- define "ha-controller.healthPort" -}}
{{- $address := toString (index .Values.options "health-bind-address" | default "") -}}
{{- if $address -}}
{{- last (splitList ":" $address) -}}
{{- end -}}
{{- end -}}
