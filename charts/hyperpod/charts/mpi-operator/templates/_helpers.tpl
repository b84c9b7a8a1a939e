{{- define "mpi-operator.fullname" -}}
{{- printf "%s-mpi-operator" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- define "mpi-operator.selectorLabels" -}}
app.kubernetes.io/name: mpi-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
{{- define "mpi-operator.labels" -}}
{{ include "mpi-operator.selectorLabels" . }}
app.kubernetes.io/component: mpijob
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: hyperpod
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- with .Values.extraLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}
