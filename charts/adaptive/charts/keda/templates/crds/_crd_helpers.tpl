{{/* Metadata of the keda.sh CRDs: (list $root "<controller-gen version>"). Their specs are generated. */}}
{{- define "keda.crd.meta" -}}
{{- $root := index . 0 -}}
labels:
  {{- include "keda.labels" $root | nindent 2 }}
  app.kubernetes.io/component: operator
  app.kubernetes.io/name: keda-operator
annotations:
  controller-gen.kubebuilder.io/version: {{ index . 1 | quote }}
  {{- with $root.Values.crds.additionalAnnotations }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end -}}
