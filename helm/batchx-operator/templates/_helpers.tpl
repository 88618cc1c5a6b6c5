{{- define "batchx.name" -}}batchx-operator{{- end -}}
{{- define "batchx.labels" -}}
app.kubernetes.io/name: {{ include "batchx.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: batchx
{{- end -}}
{{/* <registry>/<repository>@<digest>, or :<tag> (default: the chart's appVersion). */}}
{{- define "batchx.ref" -}}
{{- $root := index . 0 -}}{{- $image := index . 1 -}}
{{- $repo := printf "%s/%s" (trimSuffix "/" $root.Values.registry) $image.repository -}}
{{- if $image.digest -}}{{ $repo }}@{{ $image.digest }}{{- else -}}{{ $repo }}:{{ $image.tag | default $root.Chart.AppVersion }}{{- end -}}
{{- end -}}
{{- define "batchx.image" -}}{{ include "batchx.ref" (list . .Values.image) }}{{- end -}}
{{/* The operator's settings file: the values' `config`, with the runner image filled in. */}}
{{- define "batchx.config" -}}
{{- $config := deepCopy .Values.config -}}
{{- if not $config.runnerImage -}}
{{- $_ := set $config "runnerImage" (include "batchx.ref" (list . .Values.runner)) -}}
{{- end -}}
{{ toYaml $config }}
{{- end -}}
