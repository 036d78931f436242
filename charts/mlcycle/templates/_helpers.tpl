{{- define "mlcycle.fullname" -}}
{{- if contains .Chart.Name .Release.Name }}{{ .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}{{ printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}{{ end }}
{{- end }}

{{- define "mlcycle.selector" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "mlcycle.labels" -}}
{{ include "mlcycle.selector" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}

{{- define "mlcycle.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}{{ default (include "mlcycle.fullname" .) .Values.serviceAccount.name }}
{{- else }}{{ required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}{{ end }}
{{- end }}

{{/* The mlcycle image: the operator's own, and the one it writes into training and serving pods. */}}
{{- define "mlcycle.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/* Refuse combinations that cannot work, with the values to change. */}}
{{- define "mlcycle.validate" -}}
{{- if and (gt (int .Values.replicas) 1) (not .Values.leaderElection.enabled) }}
{{- fail "replicas > 1 needs leaderElection.enabled=true (only the Lease holder may reconcile)" }}
{{- end }}
{{- if and .Values.metrics.serviceMonitor.enabled .Values.metrics.podMonitor.enabled }}
{{- fail "enable metrics.serviceMonitor or metrics.podMonitor, not both (Prometheus would scrape twice)" }}
{{- end }}
{{- with .Values.leaderElection }}
{{- if ge (int .renewDeadlineSeconds) (int .leaseDurationSeconds) }}
{{- fail "leaderElection.renewDeadlineSeconds must be less than leaderElection.leaseDurationSeconds" }}
{{- end }}
{{- if le (float64 .renewDeadlineSeconds) (mulf .retryPeriodSeconds 1.2) }}
{{- fail "leaderElection.renewDeadlineSeconds must exceed 1.2 × leaderElection.retryPeriodSeconds" }}
{{- end }}
{{- end }}
{{- end }}
