{{/* ---------------------------------------------------------------------
Names
--------------------------------------------------------------------- */}}

{{- define "adaptive.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* <fn>: the release name when it already contains the chart name, else <release>-<name>. */}}
{{- define "adaptive.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "adaptive.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
<fn>-<suffix>, never longer than `max` (63 unless given): the <fn> part is
shortened, the suffix is always kept whole so names of one release stay distinct.
Usage: include "adaptive.compose" (dict "root" $ "suffix" "harmony-svc" "max" 63)
*/}}
{{- define "adaptive.compose" -}}
{{- $max := int (default 63 .max) -}}
{{- $fn := include "adaptive.fullname" .root -}}
{{- $room := sub $max (add 1 (len .suffix)) -}}
{{- if lt $room 1 -}}{{- $room = 1 -}}{{- end -}}
{{- printf "%s-%s" ($fn | trunc (int $room) | trimSuffix "-") .suffix -}}
{{- end -}}

{{- define "adaptive.cp.fullname" -}}{{ include "adaptive.compose" (dict "root" . "suffix" "control-plane") }}{{- end -}}
{{- define "adaptive.cp.svc" -}}{{ include "adaptive.compose" (dict "root" . "suffix" "control-plane-svc") }}{{- end -}}
{{- define "adaptive.cp.secret" -}}{{ include "adaptive.compose" (dict "root" . "suffix" "control-plane-config-secret") }}{{- end -}}
{{- define "adaptive.cp.extsecret" -}}{{ include "adaptive.compose" (dict "root" . "suffix" "control-plane-ext-secret") }}{{- end -}}
{{/* The StatefulSet name is capped at 52 characters: its pods get a controller-revision-hash label "<name>-<10 chars>". */}}
{{- define "adaptive.hm.fullname" -}}{{ include "adaptive.compose" (dict "root" . "suffix" "harmony" "max" 52) }}{{- end -}}
{{- define "adaptive.hm.hdls" -}}{{ include "adaptive.compose" (dict "root" . "suffix" "harmony-hdls-svc") }}{{- end -}}
{{- define "adaptive.hm.svc" -}}{{ include "adaptive.compose" (dict "root" . "suffix" "harmony-svc") }}{{- end -}}
{{- define "adaptive.hm.secret" -}}{{ include "adaptive.compose" (dict "root" . "suffix" "harmony-config-secret") }}{{- end -}}
{{- define "adaptive.hm.extsecret" -}}{{ include "adaptive.compose" (dict "root" . "suffix" "harmony-ext-secret") }}{{- end -}}
{{- define "adaptive.hm.settings" -}}{{ include "adaptive.compose" (dict "root" . "suffix" "harmony-settings-confmap") }}{{- end -}}
{{- define "adaptive.hm.alloy" -}}{{ include "adaptive.compose" (dict "root" . "suffix" "harmony-alloy-confmap") }}{{- end -}}
{{- define "adaptive.mlflow.fullname" -}}{{ include "adaptive.compose" (dict "root" . "suffix" "mlflow") }}{{- end -}}
{{- define "adaptive.mlflow.svc" -}}{{ include "adaptive.compose" (dict "root" . "suffix" "mlflow-svc") }}{{- end -}}
{{- define "adaptive.redis.fullname" -}}{{ include "adaptive.compose" (dict "root" . "suffix" "redis") }}{{- end -}}
{{- define "adaptive.redis.svc" -}}{{ include "adaptive.compose" (dict "root" . "suffix" "redis-svc") }}{{- end -}}
{{- define "adaptive.redis.secret" -}}{{ include "adaptive.compose" (dict "root" . "suffix" "redis-auth") }}{{- end -}}
{{- define "adaptive.secretstore" -}}{{ include "adaptive.compose" (dict "root" . "suffix" "ext-secret-store") }}{{- end -}}

{{/* kebab-case of a pool name: "Pool-A" -> "pool-a" */}}
{{- define "adaptive.pool.kebab" -}}
{{- $k := . | toString | kebabcase | lower | replace "_" "-" | replace " " "-" -}}
{{- $k = regexReplaceAll "[^a-z0-9-]" $k "" -}}
{{- $k = regexReplaceAll "-+" $k "-" -}}
{{- trimAll "-" $k -}}
{{- end -}}

{{/* Usage: include "adaptive.pool.fullname" (dict "root" $ "pool" $poolEntry) */}}
{{- define "adaptive.pool.fullname" -}}
{{- include "adaptive.compose" (dict "root" .root "suffix" (printf "harmony-dpl-%s" (include "adaptive.pool.kebab" .pool.name))) -}}
{{- end -}}

{{- define "adaptive.serviceAccountName" -}}
{{- if .Values.serviceAccount.name -}}
{{- .Values.serviceAccount.name -}}
{{- else if .Values.serviceAccount.create -}}
{{- include "adaptive.fullname" . -}}
{{- else -}}
default
{{- end -}}
{{- end -}}

{{- define "adaptive.s3proxy.fullname" -}}
{{- if .Values.s3proxy.fullnameOverride -}}
{{- .Values.s3proxy.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-s3proxy" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "adaptive.prometheus.url" -}}
{{- $server := default dict .Values.prometheus.server -}}
{{- $name := default (printf "%s-prometheus-server" .Release.Name) $server.fullnameOverride -}}
{{- printf "http://%s" ($name | trunc 63 | trimSuffix "-") -}}
{{- end -}}

{{/* ---------------------------------------------------------------------
Labels. Component-specific: include "adaptive.labels" (dict "root" $ "component" "harmony")
--------------------------------------------------------------------- */}}
{{- define "adaptive.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "adaptive.selectorLabels" -}}
app.kubernetes.io/name: {{ include "adaptive.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- if .component }}
app.kubernetes.io/component: {{ .component }}
{{- end }}
{{- if .pool }}
inference-pool: {{ include "adaptive.pool.kebab" .pool.name }}
{{- end }}
{{- end -}}

{{- define "adaptive.labels" -}}
helm.sh/chart: {{ include "adaptive.chart" .root }}
{{ include "adaptive.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- end -}}

{{/* ---------------------------------------------------------------------
Images and small helpers
--------------------------------------------------------------------- */}}
{{/* <containerRegistry>/<repository>:<tag>, verbatim. Usage: include "adaptive.image" (dict "root" $ "image" .Values.harmony.image) */}}
{{- define "adaptive.image" -}}
{{- printf "%s/%s:%s" (toString .root.Values.containerRegistry) (toString .image.repository) (toString .image.tag) -}}
{{- end -}}

{{/* Boolean value with a default that honours an explicit false. Usage: include "adaptive.bool" (list $map "key" true) */}}
{{- define "adaptive.bool" -}}
{{- $m := index . 0 -}}{{- $k := index . 1 -}}{{- $d := index . 2 -}}
{{- if and (kindIs "map" $m) (hasKey $m $k) (not (kindIs "invalid" (index $m $k))) -}}
{{- if eq (toString (index $m $k)) "true" }}true{{ else }}false{{ end -}}
{{- else -}}
{{- if $d }}true{{ else }}false{{ end -}}
{{- end -}}
{{- end -}}

{{/* Positive GPU count as a string, "0" when unset/null/0. */}}
{{- define "adaptive.gpus" -}}
{{- $g := . -}}
{{- if or (kindIs "invalid" $g) (eq (toString $g) "") -}}0
{{- else -}}{{- int64 $g -}}{{- end -}}
{{- end -}}

{{/*
Env list rendering. `env` is a list of EnvVar dicts; entries whose name is a key
of `extra` are dropped, then every `extra` entry is appended (string value, or
valueFrom when the value is a map).
*/}}
{{- define "adaptive.env" -}}
{{- $extra := default dict .extra -}}
{{- range .env }}
{{- if not (hasKey $extra .name) }}
- {{ toYaml . | nindent 2 | trim }}
{{- end }}
{{- end }}
{{- range $k, $v := $extra }}
- name: {{ $k }}
{{- if kindIs "map" $v }}
  valueFrom:
    {{- toYaml $v | nindent 4 }}
{{- else }}
  value: {{ toString $v | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Redis URL as seen by the control plane and harmony. */}}
{{- define "adaptive.redisUrl" -}}
{{- $secrets := default dict .Values.secrets -}}
{{- if .Values.redis.enabled -}}
{{- $auth := default dict .Values.redis.auth -}}
{{- $user := toString (default "" $auth.username) -}}
{{- $pw := toString (default "" $auth.password) -}}
{{- $host := printf "%s:%v" (include "adaptive.redis.svc" .) (default 6379 .Values.redis.port) -}}
{{- if and $user $pw -}}
{{- printf "redis://%s:%s@%s" $user $pw $host -}}
{{- else if $pw -}}
{{- printf "redis://:%s@%s" $pw $host -}}
{{- else if $user -}}
{{- printf "redis://%s@%s" $user $host -}}
{{- else -}}
{{- printf "redis://%s" $host -}}
{{- end -}}
{{- else -}}
{{- toString (default "" $secrets.redisUrl) -}}
{{- end -}}
{{- end -}}

{{/* oidc_providers in the control plane's format (one line). */}}
{{- define "adaptive.oidcProviders" -}}
{{- $providers := list -}}
{{- with .Values.secrets -}}{{- with .auth -}}{{- with .oidc -}}{{- $providers = default list .providers -}}{{- end -}}{{- end -}}{{- end -}}
{{- $out := "[" -}}
{{- range $p := $providers -}}
{{- $fields := list (printf "key=%s" (toString $p.key)) (printf "name=%s" (toString $p.name)) (printf "issuer_url=%s" (toString $p.issuer_url | quote)) (printf "client_id=%s" (toString $p.client_id | quote)) -}}
{{- if $p.client_secret -}}
{{- $fields = append $fields (printf "client_secret=%s" (toString $p.client_secret | quote)) -}}
{{- end -}}
{{- $fields = append $fields (printf "scopes=%s" (default list $p.scopes | toJson)) -}}
{{- $fields = append $fields (printf "pkce=%s" (include "adaptive.bool" (list $p "pkce" true))) -}}
{{- $fields = append $fields (printf "allow_sign_up=%s" (include "adaptive.bool" (list $p "allow_sign_up" true))) -}}
{{- $out = printf "%s{%s}," $out (join "," $fields) -}}
{{- end -}}
{{- printf "%s]" $out -}}
{{- end -}}

{{/* Effective settings of one pool: harmony's values with the pool's own keys on top. */}}
{{- define "adaptive.pool.settings" -}}
{{- $base := deepCopy (omit .root.Values.harmony "computePool" "podLabels" "replicaCount" "group" "partitionKey") -}}
{{- $pool := deepCopy .pool -}}
{{- range $k, $v := $pool -}}
{{- $cur := get $base $k -}}
{{- if and (kindIs "map" $v) (kindIs "map" $cur) -}}
{{- $_ := set $base $k (mergeOverwrite (deepCopy $cur) $v) -}}
{{- else -}}
{{- $_ := set $base $k $v -}}
{{- end -}}
{{- end -}}
{{- toYaml $base -}}
{{- end -}}

{{/* Storage client env (s3proxy). */}}
{{- define "adaptive.s3proxy.workerEnv" -}}
{{- $env := list -}}
{{- if .Values.s3proxy.enabled -}}
{{- $env = append $env (dict "name" "AWS_ENDPOINT_URL" "value" (printf "http://%s" (include "adaptive.s3proxy.fullname" .))) -}}
{{- $env = append $env (dict "name" "S3_FORCE_PATH_STYLE" "value" "true") -}}
{{- end -}}
{{- toYaml (dict "env" $env) -}}
{{- end -}}

{{/* Validation (inline secrets mode). */}}
{{- define "adaptive.validate" -}}
{{- if not (and .Values.externalSecret .Values.externalSecret.enabled) -}}
{{- $s := default dict .Values.secrets -}}
{{- range $item := list "modelRegistryUrl" "sharedDirectoryUrl" "dbUrl" "cookiesSecret" -}}
{{- if not (get $s $item) -}}
{{- fail (printf "secrets.%s is required (set it, or use externalSecret.enabled=true)" $item) -}}
{{- end -}}
{{- end -}}
{{- if lt (len (toString $s.cookiesSecret)) 64 -}}
{{- fail (printf "secrets.cookiesSecret must be at least 64 characters long (got %d)" (len (toString $s.cookiesSecret))) -}}
{{- end -}}
{{- end -}}
{{- $eso := and .Values.externalSecret .Values.externalSecret.enabled -}}
{{- $esoData := dict -}}
{{- if and .Values.externalSecret (kindIs "map" .Values.externalSecret.data) -}}{{- $esoData = .Values.externalSecret.data -}}{{- end -}}
{{- $inlineRedis := "" -}}
{{- if kindIs "map" .Values.secrets -}}{{- $inlineRedis = .Values.secrets.redisUrl -}}{{- end -}}
{{- if and (not .Values.redis.enabled) (not (and $eso (hasKey $esoData "redisUrl"))) (not $inlineRedis) -}}
{{- fail "redis.enabled=false requires secrets.redisUrl (or externalSecret.data.redisUrl in external-secrets mode)" -}}
{{- end -}}
{{- $seen := dict -}}
{{- range $i, $p := (default list .Values.harmony.computePool) -}}
{{- if not (and (kindIs "map" $p) $p.name) -}}
{{- fail (printf "harmony.computePool[%d].name is required" $i) -}}
{{- end -}}
{{- if not (include "adaptive.pool.kebab" $p.name) -}}
{{- fail (printf "harmony.computePool[%d].name %q has no usable characters for an object name" $i $p.name) -}}
{{- end -}}
{{- $k := include "adaptive.pool.kebab" $p.name -}}
{{- if hasKey $seen $k -}}
{{- fail (printf "harmony.computePool[%d].name %q gives the same object name (%s) as another pool" $i $p.name $k) -}}
{{- end -}}
{{- $_ := set $seen $k true -}}
{{- end -}}
{{- end -}}

{{/* Harmony container resources with nvidia.com/gpu when gpus > 0. Usage: include "adaptive.harmony.resources" (dict "resources" $r "gpus" $g) */}}
{{- define "adaptive.harmony.resources" -}}
{{- $res := deepCopy (default dict .resources) -}}
{{- $g := int64 (include "adaptive.gpus" .gpus) -}}
{{- if gt $g 0 -}}
{{- range $section := list "limits" "requests" -}}
{{- $m := deepCopy (default dict (get $res $section)) -}}
{{- $_ := set $m "nvidia.com/gpu" $g -}}
{{- $_ := set $res $section $m -}}
{{- end -}}
{{- end -}}
{{- toYaml $res -}}
{{- end -}}

{{/* Init container shared by harmony and pools. */}}
{{- define "adaptive.harmony.initContainer" -}}
- name: init-permissions
  image: busybox:1.36.1
  imagePullPolicy: IfNotPresent
  command:
    - sh
    - -c
    - chown -R 1002:1000 /opt/adaptive/working_dir /opt/adaptive/cloud_cache
  securityContext:
    runAsUser: 0
    runAsGroup: 0
  volumeMounts:
    - name: workdir-volume
      mountPath: /opt/adaptive/working_dir
    - name: cloud-cache-volume
      mountPath: /opt/adaptive/cloud_cache
    {{- with .Values.volumeMounts }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end -}}

{{/* Volume mounts of the harmony container (StatefulSet and pools). */}}
{{- define "adaptive.harmony.mounts" -}}
- name: workdir-volume
  mountPath: /opt/adaptive/working_dir
- name: cloud-cache-volume
  mountPath: /opt/adaptive/cloud_cache
- name: harmony-settings-volume
  mountPath: /opt/adaptive/harmony_settings/docker.json
  subPath: docker.json
- name: dshm
  mountPath: /dev/shm
{{- end -}}

{{/* Volumes shared by harmony and pools. */}}
{{- define "adaptive.harmony.volumes" -}}
- name: workdir-volume
  emptyDir: {}
- name: cloud-cache-volume
  emptyDir: {}
- name: harmony-settings-volume
  configMap:
    name: {{ include "adaptive.hm.settings" . }}
- name: dshm
  emptyDir:
    medium: Memory
    sizeLimit: 8Gi
{{- with .Values.volumes }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "adaptive.harmony.ports" -}}
- name: http
  containerPort: 50053
  protocol: TCP
- name: queue
  containerPort: 50052
  protocol: TCP
- name: torch
  containerPort: 7777
  protocol: TCP
{{- end -}}
