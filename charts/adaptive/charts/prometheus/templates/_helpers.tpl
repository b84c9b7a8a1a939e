{{- define "prometheus.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "prometheus.server.fullname" -}}
{{- if .Values.server.fullnameOverride -}}
{{- .Values.server.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s-%s" .Release.Name (include "prometheus.name" .) (default "server" .Values.server.name) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Name of cluster-scoped objects (ClusterRole/Binding). */}}
{{- define "prometheus.server.clusterName" -}}
{{- if .Values.server.releaseNamespace -}}
{{- printf "%s-%s" (include "prometheus.server.fullname" .) .Release.Namespace -}}
{{- else -}}
{{- include "prometheus.server.fullname" . -}}
{{- end -}}
{{- end -}}

{{- define "prometheus.serviceAccountName.server" -}}
{{- if .Values.serviceAccounts.server.create -}}
{{- default (include "prometheus.server.fullname" .) .Values.serviceAccounts.server.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccounts.server.name -}}
{{- end -}}
{{- end -}}

{{- define "prometheus.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "prometheus.server.selectorLabels" -}}
app.kubernetes.io/name: {{ include "prometheus.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: {{ default "server" .Values.server.name }}
{{- end -}}

{{- define "prometheus.server.labels" -}}
helm.sh/chart: {{ include "prometheus.chart" . }}
{{ include "prometheus.server.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: {{ include "prometheus.name" . }}
{{- end -}}

{{- define "prometheus.server.image" -}}
{{- $img := .Values.server.image -}}
{{- $tag := default .Chart.AppVersion $img.tag -}}
{{- if $img.digest -}}
{{- printf "%s@%s" $img.repository $img.digest -}}
{{- else -}}
{{- printf "%s:%s" $img.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* storageClassName line: persistentVolume.storageClass wins over server.storageClass; "-" -> ""; unset -> omitted. */}}
{{- define "prometheus.server.storageClassLine" -}}
{{- $pv := .Values.server.persistentVolume -}}
{{- $sc := "" -}}
{{- $set := false -}}
{{- if and (hasKey $pv "storageClass") (not (kindIs "invalid" $pv.storageClass)) (ne (toString $pv.storageClass) "") -}}
{{- $sc = toString $pv.storageClass -}}{{- $set = true -}}
{{- else if and .Values.server.storageClass (ne (toString .Values.server.storageClass) "") -}}
{{- $sc = toString .Values.server.storageClass -}}{{- $set = true -}}
{{- end -}}
{{- if $set -}}
{{- if eq $sc "-" -}}
storageClassName: ""
{{- else -}}
storageClassName: {{ $sc | quote }}
{{- end -}}
{{- end -}}
{{- end -}}
