{{/* Shared schema pieces of the keda.sh CRDs. */}}
{{- define "keda.crd.meta" -}}
{{- $root := index . 0 -}}
labels:
  {{- include "keda.labels" $root | nindent 2 }}
  app.kubernetes.io/component: operator
  app.kubernetes.io/name: keda-operator
annotations:
  controller-gen.kubebuilder.io/version: v0.15.0
  {{- with $root.Values.crds.additionalAnnotations }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end -}}

{{- define "keda.crd.triggers" -}}
type: array
items:
  type: object
  required:
    - type
    - metadata
  properties:
    type:
      type: string
    name:
      type: string
    metricType:
      type: string
    useCachedMetrics:
      type: boolean
    metadata:
      type: object
      additionalProperties:
        type: string
    authenticationRef:
      type: object
      required:
        - name
      properties:
        name:
          type: string
        kind:
          type: string
{{- end -}}
