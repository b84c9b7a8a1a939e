{{/*
team-role-and-bindings.objects: the four objects of one team.
Argument: dict with "id" (targetId), "Release" (the release object) and "chart"
(chart name for labels). Called by this chart's team-roles.yaml and by the hyperpod
umbrella's templates/team-role-and-bindings.yaml.
*/}}
{{- define "team-role-and-bindings.objects" -}}
{{- $id := .id | toString -}}
{{- $ns := printf "hyperpod-ns-%s" $id -}}
{{- $group := printf "hyperpod-ns-%s-namespace-level-group" $id -}}
{{- $labels := dict "app.kubernetes.io/name" .chart "app.kubernetes.io/instance" .Release.Name "app.kubernetes.io/managed-by" .Release.Service "app.kubernetes.io/part-of" "hyperpod" -}}
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: hyperpod-ns-{{ $id }}-cluster-role
  labels:
    {{- toYaml $labels | nindent 4 }}
rules:
  - apiGroups: [""]
    resources: ["namespaces"]
    verbs: ["get", "list"]
  - apiGroups: ["kueue.x-k8s.io"]
    resources: ["clusterqueues"]
    resourceNames: ["hyperpod-ns-{{ $id }}-clusterqueue"]
    verbs: ["get", "list", "watch"]
  - apiGroups: ["kueue.x-k8s.io"]
    resources: ["resourceflavors", "workloadpriorityclasses"]
    verbs: ["get", "list", "watch"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: hyperpod-ns-{{ $id }}-cluster-role-binding
  labels:
    {{- toYaml $labels | nindent 4 }}
subjects:
  - kind: Group
    name: {{ $group }}
    apiGroup: rbac.authorization.k8s.io
roleRef:
  kind: ClusterRole
  name: hyperpod-ns-{{ $id }}-cluster-role
  apiGroup: rbac.authorization.k8s.io
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: hyperpod-ns-{{ $id }}-namespace-role
  namespace: {{ $ns }}
  labels:
    {{- toYaml $labels | nindent 4 }}
rules:
  - apiGroups: ["batch"]
    resources: ["jobs"]
    verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
  - apiGroups: [""]
    resources: ["pods"]
    verbs: ["create", "get", "watch", "list"]
  - apiGroups: [""]
    resources: ["nodes", "nodes/status", "pods/status"]
    verbs: ["get", "list", "watch"]
  - apiGroups: [""]
    resources: ["pods/log"]
    verbs: ["get", "list"]
  - apiGroups: ["kubeflow.org"]
    resources: ["pytorchjobs", "pytorchjobs/status"]
    verbs: ["get", "list", "watch", "create", "delete", "update"]
  - apiGroups: [""]
    resources: ["serviceaccounts"]
    verbs: ["get", "list"]
  - apiGroups: [""]
    resources: ["configmaps"]
    verbs: ["create", "update", "get", "list", "delete"]
  - apiGroups: [""]
    resources: ["secrets"]
    verbs: ["create", "get", "list", "delete"]
  - apiGroups: ["apiextensions.k8s.io"]
    resources: ["customresourcedefinitions"]
    verbs: ["get", "list"]
  - apiGroups: ["kueue.x-k8s.io"]
    resources: ["workloads", "workloads/status"]
    verbs: ["get", "list", "watch", "patch"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: hyperpod-ns-{{ $id }}-namespace-role-binding
  namespace: {{ $ns }}
  labels:
    {{- toYaml $labels | nindent 4 }}
subjects:
  - kind: Group
    name: {{ $group }}
    apiGroup: rbac.authorization.k8s.io
roleRef:
  kind: Role
  name: hyperpod-ns-{{ $id }}-namespace-role
  apiGroup: rbac.authorization.k8s.io
{{- end -}}
