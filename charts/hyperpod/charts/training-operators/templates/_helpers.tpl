{{- define "training-operators.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: hyperpod
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}
{{- define "training-operators.selectorLabels" -}}
control-plane: kubeflow-training-operator
{{- end -}}
{{/* Job resources (plural) of the enabled schemes. */}}
{{- define "training-operators.jobResources" -}}
{{- $r := list -}}
{{- range .Values.schemes -}}
{{- if eq . "mpijob" -}}
{{- fail "training-operators: the mpijob scheme must stay disabled (MPIJobs belong to the MPI operator)" -}}
{{- end -}}
{{- $r = append $r (printf "%ss" .) -}}
{{- $r = append $r (printf "%ss/status" .) -}}
{{- end -}}
{{- toJson $r -}}
{{- end -}}
