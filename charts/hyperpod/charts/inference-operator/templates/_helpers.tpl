{{- define "hyperpod-inference-operator.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: hyperpod
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}
{{- define "hyperpod-inference-operator.selectorLabels" -}}
control-plane: controller-manager
app.kubernetes.io/name: hyperpod-inference-operator
{{- end -}}

{{/* Region: region, else global.region. */}}
{{- define "hyperpod-inference-operator.region" -}}
{{- .Values.region | default (.Values.global | default dict).region | default "" -}}
{{- end -}}

{{/* Fails naming the first missing required value; returns "" otherwise. */}}
{{- define "hyperpod-inference-operator.validate" -}}
{{- $v := .Values -}}
{{- $map := $v.image.repositoryDomainMap | default dict -}}
{{- $region := include "hyperpod-inference-operator.region" . -}}
{{- if not $region -}}
{{- fail (printf "hyperpod-inference-operator: region is required (or global.region; one of: %s)" (keys $map | sortAlpha | join ", ")) -}}
{{- end -}}
{{- if not (hasKey $map $region) -}}
{{- fail (printf "hyperpod-inference-operator: region %q has no entry in image.repositoryDomainMap (known: %s)" $region (keys $map | sortAlpha | join ", ")) -}}
{{- end -}}
{{- if not $v.eksClusterName -}}{{- fail "hyperpod-inference-operator: eksClusterName is required (name of the EKS cluster)" -}}{{- end -}}
{{- if not $v.executionRoleArn -}}{{- fail "hyperpod-inference-operator: executionRoleArn is required (IAM role the operator assumes)" -}}{{- end -}}
{{- if not $v.tlsCertificateS3Bucket -}}{{- fail "hyperpod-inference-operator: tlsCertificateS3Bucket is required (S3 bucket for TLS certificates)" -}}{{- end -}}
{{- if and $v.s3.enabled (not $v.s3.serviceAccountRoleArn) -}}{{- fail "hyperpod-inference-operator: s3.serviceAccountRoleArn is required when s3.enabled (IAM role of the Mountpoint S3 CSI driver)" -}}{{- end -}}
{{- $keda := index $v "keda" -}}
{{- if and $keda.enabled (not $keda.podIdentity.aws.irsa.roleArn) -}}{{- fail "hyperpod-inference-operator: keda.podIdentity.aws.irsa.roleArn is required when keda.enabled (IAM role KEDA assumes)" -}}{{- end -}}
{{- if and $v.alb.enabled (not $v.alb.vpcId) -}}{{- fail "hyperpod-inference-operator: alb.vpcId is required when alb.enabled (VPC of the cluster)" -}}{{- end -}}
{{- if and $v.alb.enabled (not $v.alb.serviceAccount.roleArn) -}}{{- fail "hyperpod-inference-operator: alb.serviceAccount.roleArn is required when alb.enabled (IAM role of the load balancer controller)" -}}{{- end -}}
{{- end -}}

{{- define "hyperpod-inference-operator.image" -}}
{{- printf "%s/%s:%s" (get .Values.image.repositoryDomainMap (include "hyperpod-inference-operator.region" .)) .Values.image.name .Values.image.tag -}}
{{- end -}}
