{{- define "keda.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "keda.operatorName" -}}{{ default "keda-operator" .Values.operator.name }}{{- end -}}
{{- define "keda.metricsServerName" -}}{{ printf "%s-metrics-apiserver" (include "keda.operatorName" .) }}{{- end -}}

{{- define "keda.labels" -}}
helm.sh/chart: {{ include "keda.chart" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: keda-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "keda.image" -}}
{{- $img := index . 0 -}}{{- $root := index . 1 -}}
{{- printf "%s/%s:%s" $img.registry $img.repository (default $root.Chart.AppVersion $img.tag) -}}
{{- end -}}
