{{- define "mlcycle.labels" -}}
app.kubernetes.io/name: mlcycle
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}
{{- define "mlcycle.selector" -}}
app.kubernetes.io/name: mlcycle
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}
