{{- define "monitoring.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "monitoring.commonLabels" -}}
helm.sh/chart: {{ include "monitoring.chart" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: adaptive-monitoring
{{- end -}}

{{/* Grafana selector labels: grafana.labels */}}
{{- define "monitoring.grafana.selector" -}}
{{- toYaml .Values.grafana.labels -}}
{{- end -}}

{{- define "monitoring.grafana.labels" -}}
{{ include "monitoring.commonLabels" . }}
{{ include "monitoring.grafana.selector" . }}
{{- end -}}

{{/* storageClassName line for monitoring claims: "" -> omitted (cluster default), "-" -> "" */}}
{{- define "monitoring.storageClassLine" -}}
{{- $sc := toString (default "" .Values.grafana.storageClass) -}}
{{- if eq $sc "-" -}}
storageClassName: ""
{{- else if $sc -}}
storageClassName: {{ $sc | quote }}
{{- end -}}
{{- end -}}

{{- define "monitoring.persist" -}}
{{- if eq (toString .Values.grafana.enablePersistence) "true" }}true{{ end -}}
{{- end -}}

{{- define "monitoring.rootUrl" -}}
{{- $p := .Values.grafana.proxy -}}
{{- printf "%s://%s/monitoring/" (default "https" $p.scheme) $p.domain -}}
{{- end -}}
