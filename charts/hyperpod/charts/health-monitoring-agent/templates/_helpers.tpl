{{- define "health-monitoring-agent.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: hyperpod
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* ECR account publishing the agent image, per region (README "Notes"). */}}
{{- define "health-monitoring-agent.accounts" -}}
us-east-1: "767398015722"
us-west-2: "905418368575"
us-east-2: "851725546812"
us-west-1: "011528288828"
eu-central-1: "211125453373"
eu-north-1: "654654141839"
eu-west-1: "533267293120"
eu-west-2: "011528288831"
ap-northeast-1: "533267052152"
ap-south-1: "011528288864"
ap-southeast-1: "905418428165"
ap-southeast-2: "851725636348"
sa-east-1: "025066253954"
{{- end -}}

{{/* The agent image: hmaimage verbatim, else the URI of region / global.region / us-west-2. */}}
{{- define "health-monitoring-agent.image" -}}
{{- if .Values.hmaimage -}}
{{- .Values.hmaimage -}}
{{- else -}}
{{- $accounts := include "health-monitoring-agent.accounts" . | fromYaml -}}
{{- $region := .Values.region | default (.Values.global | default dict).region | default "us-west-2" -}}
{{- if not (hasKey $accounts $region) -}}
{{- fail (printf "health-monitoring-agent: no image is published for region %q; supported regions: %s (or set health-monitoring-agent.hmaimage to a full image URI)" $region (keys $accounts | sortAlpha | join ", ")) -}}
{{- end -}}
{{- printf "%s.dkr.ecr.%s.amazonaws.com/hyperpod-health-monitoring-agent:%s" (get $accounts $region) $region .Chart.AppVersion -}}
{{- end -}}
{{- end -}}
