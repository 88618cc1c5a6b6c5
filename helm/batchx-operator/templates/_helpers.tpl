{{- define "batchx.name" -}}batchx-operator{{- end -}}
{{- define "batchx.labels" -}}
app.kubernetes.io/name: {{ include "batchx.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: batchx
{{- end -}}
{{- define "batchx.image" -}}
{{- if .Values.image.digest -}}{{ .Values.image.repository }}@{{ .Values.image.digest }}{{- else -}}{{ .Values.image.repository }}:{{ .Values.image.tag }}{{- end -}}
{{- end -}}
