"""Builds of our charts that break exactly one promise each: a small, realistic regression, written as an
exact text edit of one file (``old`` must occur in it exactly once, so the catalog fails loudly when the
chart moves on), with the contract id it breaks as the contract states it, and the tier whose tests must
catch it (``render``: ``helm template``; ``live``: the embedded cluster).

Every mutant still renders with default values, except the few ``packaging`` ones (a broken Chart.yaml is
itself the regression).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tests.selfcheck.charttree import copy_chart, replace_once

TIERS = ("render", "live")


@dataclass(frozen=True)
class Mutant:
    name: str          # readable test id: <contract>-<what goes wrong>
    chart: str         # adaptive | monitoring | hyperpod
    file: str          # relative to the chart directory
    old: str
    new: str
    contract: str      # the contract id the edit breaks
    tier: str          # render | live
    description: str
    packaging: bool = False  # the chart no longer renders with default values, by design
    slow: bool = False       # live only: its tests notice it only when a wait runs out (minutes)

    def build(self, destination: Path) -> Path:
        """A copy of the chart under ``destination`` with this edit applied."""
        root = copy_chart(self.chart, destination)
        replace_once(root / self.file, self.old, self.new)
        return root


def _m(chart: str, contract: str, what: str, file: str, old: str, new: str, description: str, *,
       tier: str = "render", packaging: bool = False, slow: bool = False) -> Mutant:
    assert tier in TIERS, tier
    return Mutant(f"{contract.lower()}-{what}", chart, file, old, new, contract, tier, description, packaging, slow)


ADP_HELPERS = "templates/_helpers.tpl"
ADP_POOLS = "templates/harmony-pools.yaml"
ADP_STS = "templates/harmony-statefulset.yaml"
ADP_CP = "templates/control-plane.yaml"

ADAPTIVE = [
    _m("adaptive", "ADP-POOL-02", "pool-keys-written-into-harmony", ADP_HELPERS,
       '{{- $base := deepCopy (omit .root.Values.harmony "computePool" "podLabels" "replicaCount" "group" "partitionKey") -}}',
       "{{- $base := .root.Values.harmony -}}",
       "pool settings are set on harmony's own values, so a pool inherits the previous pool's gpusPerReplica"),
    _m("adaptive", "ADP-POOL-02", "nested-maps-shared", ADP_HELPERS,
       '{{- $base := deepCopy (omit .root.Values.harmony "computePool" "podLabels" "replicaCount" "group" "partitionKey") -}}\n'
       "{{- $pool := deepCopy .pool -}}\n{{- range $k, $v := $pool -}}\n{{- $cur := get $base $k -}}\n"
       '{{- if and (kindIs "map" $v) (kindIs "map" $cur) -}}\n'
       "{{- $_ := set $base $k (mergeOverwrite (deepCopy $cur) $v) -}}",
       '{{- $base := omit .root.Values.harmony "computePool" "podLabels" "replicaCount" "group" "partitionKey" -}}\n'
       "{{- $pool := deepCopy .pool -}}\n{{- range $k, $v := $pool -}}\n{{- $cur := get $base $k -}}\n"
       '{{- if and (kindIs "map" $v) (kindIs "map" $cur) -}}\n'
       "{{- $_ := set $base $k (mergeOverwrite $cur $v) -}}",
       "deepCopy dropped: a pool's nodeSelector is merged into harmony's map and leaks into the next pools"),
    _m("adaptive", "ADP-POOL-01", "selector-without-pool-label", ADP_POOLS,
       '{{- include "adaptive.selectorLabels" (dict "root" $ "component" "harmony-dpl" "pool" $pool) | nindent 6 }}',
       '{{- include "adaptive.selectorLabels" (dict "root" $ "component" "harmony-dpl") | nindent 6 }}',
       "pool Deployment selector lacks inference-pool, so pools select each other's pods"),
    _m("adaptive", "ADP-AUTOSCALE-01", "max-replicas-when-off", ADP_POOLS,
       "  replicas: {{ $min }}", "  replicas: {{ default $min $pool.maxReplicaCount }}",
       "with autoscaling off a pool runs maxReplicaCount replicas instead of minReplicaCount"),
    _m("adaptive", "ADP-AUTOSCALE-03", "cooldown-fixed", ADP_POOLS,
       "cooldownPeriod: {{ $.Values.autoscaling.coolDownPeriodSeconds | int }}", "cooldownPeriod: 300",
       "ScaledObject cooldownPeriod ignores autoscaling.coolDownPeriodSeconds"),
    _m("adaptive", "ADP-AUTOSCALE-04", "query-on-kebab-name", ADP_POOLS,
       "{{- $raw := toString $pool.name }}", '{{- $raw := include "adaptive.pool.kebab" $pool.name }}',
       "the TTFT query filters on the kebab-case pool name instead of the raw name (metric label)"),
    _m("adaptive", "ADP-AUTOSCALE-02", "scaledobject-targets-statefulset", ADP_POOLS,
       "    kind: Deployment\n    name: {{ $name }}",
       '    kind: StatefulSet\n    name: {{ include "adaptive.hm.fullname" $ }}',
       "every ScaledObject scales the harmony StatefulSet instead of its pool Deployment"),
    _m("adaptive", "ADP-GPU-01", "gpus-only-in-limits", ADP_HELPERS,
       '{{- range $section := list "limits" "requests" -}}', '{{- range $section := list "limits" -}}',
       "nvidia.com/gpu is set in limits but not in requests"),
    _m("adaptive", "ADP-GPU-02", "gpu-count-zero-on-cpu", ADP_STS,
       '{{- $env = append $env (dict "name" "GPU_COUNT" "value" (toString (ternary $gpus 1 (gt $gpus 0)))) }}',
       '{{- $env = append $env (dict "name" "GPU_COUNT" "value" (toString $gpus)) }}',
       'CPU-only harmony gets GPU_COUNT="0" instead of "1"'),
    _m("adaptive", "ADP-GPU-05", "pools-drop-harmony-tolerations", ADP_POOLS,
       "{{- with $p.tolerations }}", "{{- with $pool.tolerations }}",
       "pools read only their own tolerations: harmony's default nvidia.com/gpu toleration is not inherited"),
    _m("adaptive", "ADP-HARMONY-01", "replicas-off-by-one", ADP_STS,
       "  replicas: {{ $replicas }}", "  replicas: {{ add1 $replicas }}",
       "the StatefulSet runs harmony.replicaCount + 1 replicas"),
    _m("adaptive", "ADP-SECRET-02", "cookie-of-64-refused", ADP_HELPERS,
       "{{- if lt (len (toString $s.cookiesSecret)) 64 -}}", "{{- if le (len (toString $s.cookiesSecret)) 64 -}}",
       "a cookiesSecret of exactly 64 characters is refused (off by one)"),
    _m("adaptive", "ADP-SECRET-01", "db-url-not-required", ADP_HELPERS,
       '{{- range $item := list "modelRegistryUrl" "sharedDirectoryUrl" "dbUrl" "cookiesSecret" -}}',
       '{{- range $item := list "modelRegistryUrl" "sharedDirectoryUrl" "cookiesSecret" -}}',
       "an empty secrets.dbUrl is no longer refused"),
    _m("adaptive", "ADP-SECRET-03", "model-registry-key-missing", "templates/secrets.yaml",
       "  ADAPTIVE_MODEL_REGISTRY: {{ $s.modelRegistryUrl | toString | b64enc | quote }}\n", "",
       "the harmony Secret lacks ADAPTIVE_MODEL_REGISTRY"),
    _m("adaptive", "ADP-CP-01", "migrations-default-false", ADP_CP,
       '(include "adaptive.bool" (list $cp "runDbMigrations" true))', '(include "adaptive.bool" (list $cp "runDbMigrations" false))',
       'controlPlane.runDbMigrations absent gives ADAPTIVE_DB__RUN_MIGRATIONS="false"'),
    _m("adaptive", "ADP-CP-02", "session-secure-env-name", ADP_CP,
       '"ADAPTIVE_AUTH__SESSION__SECURE"', '"ADAPTIVE_AUTH__SESSION_SECURE"',
       "the session-secure flag reaches the control plane under a misspelt env var name"),
    _m("adaptive", "ADP-OIDC-02", "empty-client-secret-kept", ADP_HELPERS,
       "{{- if $p.client_secret -}}", '{{- if hasKey $p "client_secret" -}}',
       'a provider with an empty client_secret still gets client_secret=""'),
    _m("adaptive", "ADP-TB-05", "dash-storage-class-rule", ADP_STS,
       '{{- if eq (toString $tbPv.storageClass) "-" }}', '{{- if eq (toString $tbPv.storageClass) "" }}',
       'tensorboard storageClass "" gives storageClassName: "" and "-" is passed verbatim'),
    _m("adaptive", "ADP-PROM-03", "claim-size-ignored", "charts/prometheus/templates/server.yaml",
       '            storage: {{ default "8Gi" $pv.size | quote }}', '            storage: "8Gi"',
       "the Prometheus claim template ignores persistentVolume.size"),
    _m("adaptive", "ADP-PROM-04", "readme-storage-class-wrong-path", "charts/prometheus/templates/_helpers.tpl",
       '{{- else if and .Values.server.storageClass (ne (toString .Values.server.storageClass) "") -}}\n'
       "{{- $sc = toString .Values.server.storageClass -}}",
       '{{- else if and .Values.storageClass (ne (toString .Values.storageClass) "") -}}\n'
       "{{- $sc = toString .Values.storageClass -}}",
       "prometheus.server.storageClass (README key) is read from a wrong value path and ignored"),
    _m("adaptive", "ADP-S3-03", "pools-miss-proxy-env", ADP_POOLS,
       '{{- $env = concat $env (include "adaptive.s3proxy.workerEnv" $ | fromYaml).env }}\n', "",
       "pool Deployments do not get AWS_ENDPOINT_URL / S3_FORCE_PATH_STYLE with s3proxy on"),
    _m("adaptive", "ADP-ESO-03", "cluster-secret-store-ref", "templates/external-secrets.yaml",
       '    kind: SecretStore\n  target:\n    name: {{ include "adaptive.cp.secret" . }}',
       '    kind: ClusterSecretStore\n  target:\n    name: {{ include "adaptive.cp.secret" . }}',
       "the control-plane ExternalSecret references its store as a ClusterSecretStore"),
    _m("adaptive", "ADP-TB-03", "tensorboard-dir-despite-mlflow", ADP_STS,
       "{{- else if $tb.enabled }}", "{{- end }}\n{{- if $tb.enabled }}",
       "with mlflow and tensorboard on, harmony also gets TENSORBOARD_LOGGING_DIR"),
    _m("adaptive", "ADP-SA-01", "sa-name-needs-create", ADP_HELPERS,
       "{{- if .Values.serviceAccount.name -}}", "{{- if and .Values.serviceAccount.create .Values.serviceAccount.name -}}",
       'with serviceAccount.create=false app pods use "default" instead of serviceAccount.name'),
    _m("adaptive", "ADP-NAME-01", "fullname-reversed", ADP_HELPERS,
       '{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}',
       '{{- printf "%s-%s" $name .Release.Name | trunc 63 | trimSuffix "-" -}}',
       "release acme gives <fn> adaptive-acme instead of acme-adaptive"),
    _m("adaptive", "ADP-META-02", "kube-version-floor-lowered", "Chart.yaml",
       'kubeVersion: ">=1.26.0-0"', 'kubeVersion: ">=1.25.0-0"',
       "Kubernetes 1.25 is accepted"),
    _m("adaptive", "ADP-GPU-04", "gpus-clamped-to-one-node", ADP_HELPERS,
       '{{- $_ := set $m "nvidia.com/gpu" $g -}}', '{{- $_ := set $m "nvidia.com/gpu" (min $g 8) -}}',
       "more GPUs than a node has are silently clamped to 8, so the pod schedules instead of staying Pending",
       tier="live", slow=True),
]

MON_GRAFANA = "templates/grafana.yaml"
MON_HELPERS = "templates/_helpers.tpl"

MONITORING = [
    _m("monitoring", "MON-01", "root-url-without-subpath", MON_HELPERS,
       '{{- printf "%s://%s/monitoring/" (default "https" $p.scheme) $p.domain -}}',
       '{{- printf "%s://%s/" (default "https" $p.scheme) $p.domain -}}',
       "GF_SERVER_ROOT_URL lacks the /monitoring/ sub-path"),
    _m("monitoring", "MON-01", "prometheus-datasource-url", "templates/grafana-configmap.yaml",
       "        url: http://adaptive-prometheus\n", "        url: http://adaptive-prometheus-server\n",
       "the Prometheus datasource points at a Service the adaptive release does not have"),
    _m("monitoring", "MON-01", "promtail-push-path", "charts/promtail/values.yaml",
       "lokiUrl: http://loki:3100/loki/api/v1/push", "lokiUrl: http://loki:3100/api/prom/push",
       "promtail pushes to Loki's legacy push path"),
    _m("monitoring", "MON-ROUTE-01", "ingress-path", MON_GRAFANA,
       "          - path: /monitoring\n", "          - path: /grafana\n",
       "the Ingress routes /grafana instead of /monitoring"),
    _m("monitoring", "MON-PERSIST-01", "persistence-default-on", "values.yaml",
       "  enablePersistence: false", "  enablePersistence: true",
       "grafana.enablePersistence defaults to true"),
    _m("monitoring", "MON-PERSIST-02", "loki-claim-size-ignored", "templates/loki-statefulset.yaml",
       "            storage: {{ $size | quote }}", '            storage: "10Gi"',
       "Loki claims ignore loki.loki.persistence.size"),
    _m("monitoring", "MON-PERSIST-02", "grafana-claim-not-mounted", MON_GRAFANA,
       "          {{- if $persist }}\n          persistentVolumeClaim:",
       "          {{- if and $persist false }}\n          persistentVolumeClaim:",
       "the Grafana PVC is rendered but Grafana's data volume stays an emptyDir"),
    _m("monitoring", "MON-PERSIST-03", "empty-class-pinned-empty", MON_HELPERS,
       '{{- if eq $sc "-" -}}', '{{- if or (eq $sc "-") (eq $sc "") -}}',
       'grafana.storageClass "" gives storageClassName: "" instead of omitting it'),
]

HYP_VALUES = "values.yaml"
HYP_HMA = "charts/health-monitoring-agent"

HYPERPOD = [
    _m("hyperpod", "HYP-TRAIN-01", "paddlejob-scheme-missing", "charts/training-operators/values.yaml",
       "  - xgboostjob\n  - paddlejob\n", "  - xgboostjob\n",
       "the training operator gets no --enable-scheme=paddlejob"),
    _m("hyperpod", "HYP-TRAIN-02", "image-tag-bumped", "charts/training-operators/values.yaml",
       "  tag: v1-855e096", "  tag: v1.8.1",
       "training operator image tag differs from v1-855e096"),
    _m("hyperpod", "HYP-MPI-01", "mpijob-crd-version", "charts/mpi-operator/templates/crd.yaml",
       "    - name: v2beta1\n", "    - name: v1\n",
       "the MPIJob CRD serves v1 instead of v2beta1"),
    _m("hyperpod", "HYP-TOL-01", "mpi-operator-toleration-dropped", "charts/mpi-operator/values.yaml",
       "  tolerations:\n    - key: sagemaker.amazonaws.com/node-health-status\n      operator: Equal\n"
       "      value: Unschedulable\n      effect: NoSchedule\n",
       "  tolerations: []\n",
       "the mpi-operator Deployment no longer tolerates node-health-status=Unschedulable by default"),
    _m("hyperpod", "HYP-TOL-01", "nvidia-toleration-wrong-value", HYP_VALUES,
       "      value: Unschedulable\n      effect: NoSchedule\n\nneuron-device-plugin:",
       "      value: UnschedulablePendingReplacement\n      effect: NoSchedule\n\nneuron-device-plugin:",
       "the NVIDIA plugin tolerates the wrong node-health-status value"),
    _m("hyperpod", "HYP-TOL-02", "hma-noexecute-missing", f"{HYP_HMA}/values.yaml",
       "  - operator: Exists\n    effect: NoSchedule\n  - operator: Exists\n    effect: NoExecute\n",
       "  - operator: Exists\n    effect: NoSchedule\n",
       "the health monitoring agent does not tolerate NoExecute taints"),
    _m("hyperpod", "HYP-AFF-01", "nvidia-affinity-deprecated-label", HYP_VALUES,
       "              - key: node.kubernetes.io/instance-type\n",
       "              - key: beta.kubernetes.io/instance-type\n",
       "the NVIDIA plugin's affinity uses the deprecated beta instance-type label"),
    _m("hyperpod", "HYP-AFF-02", "efa-affinity-not-in", "charts/aws-efa-k8s-device-plugin/templates/daemonset.yaml",
       "                    operator: In\n", "                    operator: NotIn\n",
       "the EFA plugin's affinity excludes the supported instance types"),
    _m("hyperpod", "HYP-AFF-03", "nvidia-list-drops-p5", HYP_VALUES,
       "                  - ml.p5.48xlarge\n", "",
       "ml.p5.48xlarge (in the HMA list) is missing from the NVIDIA plugin's list"),
    _m("hyperpod", "HYP-HMA-01", "hma-runs-as-root", f"{HYP_HMA}/templates/daemonset.yaml",
       "            runAsUser: 1000\n", "            runAsUser: 0\n",
       "the health monitoring agent runs as root instead of uid 1000"),
    _m("hyperpod", "HYP-HMA-02", "default-region-us-east-1", f"{HYP_HMA}/templates/_helpers.tpl",
       '| default "us-west-2" -}}', '| default "us-east-1" -}}',
       "with no region the agent image is the us-east-1 one instead of us-west-2"),
    _m("hyperpod", "HYP-HMA-03", "eu-west-1-account-wrong", f"{HYP_HMA}/templates/_helpers.tpl",
       'eu-west-1: "533267293120"', 'eu-west-1: "533267052152"',
       "the region table has the ap-northeast-1 account for eu-west-1"),
    _m("hyperpod", "HYP-DHC-01", "pods-patch-missing", "charts/deep-health-check/templates/rbac.yaml",
       'verbs: ["get", "list", "patch"]', 'verbs: ["get", "list"]',
       "deep-health-check's ClusterRole cannot patch pods"),
    _m("hyperpod", "HYP-JAR-01", "binding-subject-wrong", "charts/job-auto-restart/templates/rbac.yaml",
       "    name: hyperpod-service-linked-role\n", "    name: hyperpod-service-role\n",
       "job-auto-restart is bound to the wrong user"),
    _m("hyperpod", "HYP-PATCH-01", "eviction-rule-missing", "charts/hyperpod-patching/templates/rbac.yaml",
       '  - apiGroups: [""]\n    resources: ["pods/eviction"]\n    verbs: ["create"]\n', "",
       "hyperpod-patching cannot create pods/eviction"),
    _m("hyperpod", "HYP-STOR-02", "claim-volume-name-missing", "charts/storage/templates/fsx.yaml",
       "  volumeName: {{ $pv.name }}\n", "",
       "the FSx claim is no longer pre-bound to fsx-pv"),
    _m("hyperpod", "HYP-STOR-01", "mount-options-wrong-path", "charts/storage/templates/fsx.yaml",
       "{{- with $pv.mountOptions }}", "{{- with $pv.mountOption }}",
       "the PV's mountOptions (flock) are read from a wrong value path"),
    _m("hyperpod", "HYP-TEAM-01", "root-target-id-ignored", "templates/team-role-and-bindings.yaml",
       "{{- $id := $subId | default $rootId -}}", "{{- $id := $subId -}}",
       "--set computeQuotaTarget.targetId=<id> on the umbrella renders no team object"),
    _m("hyperpod", "HYP-TEAM-04", "root-key-wins", "templates/team-role-and-bindings.yaml",
       "{{- $id := $subId | default $rootId -}}", "{{- $id := $rootId | default $subId -}}",
       "with both keys set the root targetId wins over the subchart's"),
    _m("hyperpod", "HYP-NSROLE-01", "group-name-without-namespace",
       "charts/namespaced-role-and-bindings/templates/role.yaml",
       "    name: {{ .Values.roleName }}-{{ .Values.namespace }}-level\n", "    name: {{ .Values.roleName }}-level\n",
       "the namespaced RoleBinding's group lacks the namespace"),
    _m("hyperpod", "HYP-CROLE-01", "group-name-suffix", "charts/cluster-role-and-bindings/templates/cluster-role.yaml",
       "    name: {{ .Values.roleName }}-cluster-level\n", "    name: {{ .Values.roleName }}-cluster\n",
       "the ClusterRoleBinding's group is <roleName>-cluster"),
    _m("hyperpod", "HYP-MLFLOW-01", "annotation-key-wrong", "charts/mlflow/templates/serviceaccount.yaml",
       "eks.amazonaws.com/role-arn:", "eks.amazonaws.com/role:",
       "the MLflow service account's IRSA annotation key is misspelt"),
    _m("hyperpod", "HYP-DEFAULT-01", "patching-default-off", HYP_VALUES,
       "hyperpod-patching:\n  enabled: true", "hyperpod-patching:\n  enabled: false",
       "hyperpod-patching (README default Yes) is off by default"),
    _m("hyperpod", "HYP-DP-01", "neuron-priority-class-dropped", "charts/neuron-device-plugin/values.yaml",
       "priorityClassName: system-node-critical", 'priorityClassName: ""',
       "the Neuron plugin loses priority class system-node-critical"),
    _m("hyperpod", "HYP-NS-01", "hma-namespace-not-created", "templates/namespaces.yaml",
       '{{- $needed = append $needed (include "hyperpod.subValue" (list $v "health-monitoring-agent" "namespace" "aws-hyperpod")) -}}\n',
       "",
       "with deep-health-check off, nothing creates aws-hyperpod for the health monitoring agent"),
    _m("hyperpod", "HYP-INF-01", "cluster-name-not-required", "charts/inference-operator/templates/_helpers.tpl",
       '{{- if not $v.eksClusterName -}}{{- fail "hyperpod-inference-operator: eksClusterName is required (name of the EKS cluster)" -}}{{- end -}}\n',
       "",
       "the inference operator renders without eksClusterName"),
    _m("hyperpod", "HYP-DEP-01", "nvidia-version-mismatch", "Chart.yaml",
       '    version: "0.16.1"', '    version: "0.16.2"',
       "Chart.yaml asks for nvidia-device-plugin 0.16.2 while the subchart is 0.16.1"),
    _m("hyperpod", "HYP-INSTALL-01", "hma-template-label-mismatch", f"{HYP_HMA}/templates/daemonset.yaml",
       "  template:\n    metadata:\n      labels:\n        app: health-monitoring-agent\n",
       "  template:\n    metadata:\n      labels:\n        app: hyperpod-health-monitoring-agent\n",
       "the agent's pod template labels do not match its selector: the API server refuses the DaemonSet",
       tier="live"),
    _m("hyperpod", "HYP-UPG-02", "random-rollout-annotation", "charts/mpi-operator/templates/deployment.yaml",
       '      labels:\n        {{- include "mpi-operator.selectorLabels" . | nindent 8 }}\n',
       '      labels:\n        {{- include "mpi-operator.selectorLabels" . | nindent 8 }}\n'
       "      annotations:\n        rollme: {{ randAlphaNum 5 | quote }}\n",
       "a random roll-me annotation changes the manifest on every upgrade",
       tier="live"),
    _m("hyperpod", "HYP-TOL-03", "efa-toleration-dropped", HYP_VALUES,
       "    - key: sagemaker.amazonaws.com/node-health-status\n      operator: Equal\n      value: Unschedulable\n"
       "      effect: NoSchedule\n\n# --- HyperPod resiliency ---",
       "\n# --- HyperPod resiliency ---",
       "the EFA plugin no longer runs on nodes under deep health checks",
       tier="live"),
]

CATALOG: list[Mutant] = ADAPTIVE + MONITORING + HYPERPOD
BY_NAME = {m.name: m for m in CATALOG}
assert len(BY_NAME) == len(CATALOG), "mutant names must be unique"
