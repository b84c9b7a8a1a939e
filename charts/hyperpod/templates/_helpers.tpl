{{/*
hyperpod.conditionOn: "true" when the dependency condition at the dotted path
(relative to the root values) leaves the subchart loaded, "" otherwise. Mirrors
Helm: a bool decides; a missing value leaves the subchart enabled.
Usage: include "hyperpod.conditionOn" (list .Values "health-monitoring-agent.enabled")
*/}}
{{- define "hyperpod.conditionOn" -}}
{{- $node := index . 0 -}}
{{- $found := true -}}
{{- range $key := splitList "." (index . 1) -}}
{{- if and $found (kindIs "map" $node) (hasKey $node $key) -}}
{{- $node = index $node $key -}}
{{- else -}}
{{- $found = false -}}
{{- end -}}
{{- end -}}
{{- if or (not $found) (not (kindIs "bool" $node)) $node -}}true{{- end -}}
{{- end -}}

{{/* Value of a subchart key as seen from here, with a default. */}}
{{- define "hyperpod.subValue" -}}
{{- $sub := index (index . 0) (index . 1) | default dict -}}
{{- index $sub (index . 2) | default (index . 3) -}}
{{- end -}}

{{- define "hyperpod.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: hyperpod
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}
