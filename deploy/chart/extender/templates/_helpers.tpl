{{/* Names and labels (the usual Helm helpers). */}}
{{- define "extender.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "extender.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The workload: <fullname> (service) or <fullname>-scheduler (secondScheduler). */}}
{{- define "extender.workload" -}}
{{- if eq .Values.layout "service" -}}
{{- include "extender.fullname" . -}}
{{- else -}}
{{- printf "%s-scheduler" (include "extender.fullname" . | trunc 53 | trimSuffix "-") -}}
{{- end -}}
{{- end -}}

{{- define "extender.serviceAccountName" -}}
{{- default (include "extender.workload" .) .Values.serviceAccount.name -}}
{{- end -}}

{{/* app.kubernetes.io/component, as the kustomize layouts have it. */}}
{{- define "extender.component" -}}
{{- if eq .Values.layout "service" -}}scheduler-extender{{- else -}}scheduler{{- end -}}
{{- end -}}

{{- define "extender.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "extender.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: extender
{{- end -}}

{{- define "extender.selectorLabels" -}}
app.kubernetes.io/name: {{ include "extender.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: {{ include "extender.component" . }}
{{- end -}}

{{- define "extender.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* Kubernetes >= 1.27: the fields 1.24-1.26 reject (deploy/components/kubernetes-1.27). */}}
{{- define "extender.modern" -}}
{{- if semverCompare ">=1.27.0-0" .Capabilities.KubeVersion.Version -}}true{{- end -}}
{{- end -}}

{{/*
The kube-scheduler release the configuration is for, as "v1.MINOR.PATCH". secondScheduler:
the release the image runs (scheduler.image.tag if set, else the cluster's version); service:
the cluster's (the control plane's kube-scheduler). Vendor suffixes (-eks-..., -gke....) are
dropped. Empty when scheduler.configApiVersion is set and the tag is not a version.
*/}}
{{- define "extender.schedulerVersion" -}}
{{- $text := .Capabilities.KubeVersion.Version -}}
{{- $source := ".Capabilities.KubeVersion" -}}
{{- if and (ne .Values.layout "service") .Values.scheduler.image.tag -}}
{{- $text = .Values.scheduler.image.tag -}}
{{- $source = "scheduler.image.tag" -}}
{{- end -}}
{{- if regexMatch "^v?[0-9]+\\.[0-9]+(\\.[0-9]+)?([-+].*)?$" $text -}}
{{- $v := semver $text -}}
{{- printf "v%d.%d.%d" $v.Major $v.Minor $v.Patch -}}
{{- else if not .Values.scheduler.configApiVersion -}}
{{- fail (printf "%s %q is not a Kubernetes version: set scheduler.configApiVersion too" $source $text) -}}
{{- end -}}
{{- end -}}

{{/* The kube-scheduler image tag: scheduler.image.tag, else the cluster's version. */}}
{{- define "extender.schedulerTag" -}}
{{- if .Values.scheduler.image.tag -}}
{{- .Values.scheduler.image.tag -}}
{{- else -}}
{{- include "extender.schedulerVersion" . -}}
{{- end -}}
{{- end -}}

{{/*
The KubeSchedulerConfiguration apiVersion (extender/schedconfig/versions.py: 1.22-1.35;
v1beta2 for 1.22, v1beta3 for 1.23-1.24, v1 from 1.25). Outside the range only with both the
tag (secondScheduler) and scheduler.configApiVersion set.
*/}}
{{- define "extender.configApiVersion" -}}
{{- $explicit := .Values.scheduler.configApiVersion -}}
{{- $override := and $explicit (or (eq .Values.layout "service") .Values.scheduler.image.tag) -}}
{{- if $override -}}
{{- $explicit -}}
{{- else -}}
{{- $version := include "extender.schedulerVersion" . -}}
{{- $minor := (semver $version).Minor | int -}}
{{- if or (lt $minor 22) (gt $minor 35) -}}
{{- if eq .Values.layout "service" -}}
{{- fail (printf "Kubernetes %s (.Capabilities.KubeVersion %s) is outside the releases this chart knows (1.22 to 1.35): set scheduler.configApiVersion" $version .Capabilities.KubeVersion.Version) -}}
{{- else -}}
{{- fail (printf "kube-scheduler %s (from %s) is outside the releases this chart knows (1.22 to 1.35): set scheduler.image.tag and scheduler.configApiVersion" $version (ternary "scheduler.image.tag" (printf ".Capabilities.KubeVersion %s" .Capabilities.KubeVersion.Version) (not (empty .Values.scheduler.image.tag)))) -}}
{{- end -}}
{{- end -}}
{{- if eq $minor 22 -}}kubescheduler.config.k8s.io/v1beta2
{{- else if lt $minor 25 -}}kubescheduler.config.k8s.io/v1beta3
{{- else -}}kubescheduler.config.k8s.io/v1
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The policy text the chart ships (empty with policy.existingConfigMap). */}}
{{- define "extender.policyText" -}}
{{- if .Values.policy.existingConfigMap -}}
{{- else if .Values.policy.content -}}
{{- .Values.policy.content -}}
{{- else -}}
{{- .Files.Get "files/policy.yaml" -}}
{{- end -}}
{{- end -}}

{{- define "extender.policyConfigMap" -}}
{{- default (printf "%s-policy" (include "extender.fullname" .)) .Values.policy.existingConfigMap -}}
{{- end -}}

{{/*
The verbs the policy needs, as a JSON list (extender.engine.Policy.verbs): filter and preempt
with an enabled predicate, prioritize with an enabled priority, bind when the policy enables it.
*/}}
{{- define "extender.policyVerbs" -}}
{{- if .Values.policy.existingConfigMap -}}
{{- .Values.policy.existingConfigMapVerbs | toJson -}}
{{- else -}}
{{- $policy := include "extender.policyText" . | fromYaml -}}
{{- if hasKey $policy "Error" -}}
{{- fail (printf "policy: not YAML: %s" $policy.Error) -}}
{{- end -}}
{{- $verbs := list -}}
{{- $predicates := 0 -}}
{{- range $policy.predicates -}}
{{- if or (not (hasKey . "enabled")) .enabled -}}{{- $predicates = add1 $predicates -}}{{- end -}}
{{- end -}}
{{- $priorities := 0 -}}
{{- range $policy.priorities -}}
{{- if or (not (hasKey . "enabled")) .enabled -}}{{- $priorities = add1 $priorities -}}{{- end -}}
{{- end -}}
{{- if $predicates -}}{{- $verbs = append $verbs "filter" -}}{{- end -}}
{{- if $priorities -}}{{- $verbs = append $verbs "prioritize" -}}{{- end -}}
{{- if $predicates -}}{{- $verbs = append $verbs "preempt" -}}{{- end -}}
{{- if and $policy.bind $policy.bind.enabled -}}{{- $verbs = append $verbs "bind" -}}{{- end -}}
{{- $verbs | toJson -}}
{{- end -}}
{{- end -}}

{{/* Whether the policy declares a metrics-server source ("true" or empty). */}}
{{- define "extender.policyReadsMetricsServer" -}}
{{- if not .Values.policy.existingConfigMap -}}
{{- $policy := include "extender.policyText" . | fromYaml -}}
{{- range $name, $source := ($policy.sources | default dict) -}}
{{- if eq (toString $source.type) "metrics-server" -}}true{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
Refuse combinations that cannot work, naming the values (rendered once, from the ConfigMap).
*/}}
{{- define "extender.check" -}}
{{- $verbs := include "extender.policyVerbs" . | fromJsonArray -}}
{{- if not $verbs -}}
{{- fail "policy: it has no enabled predicates or priorities and no bind: registering it would change nothing" -}}
{{- end -}}
{{- if and (has "bind" $verbs) (eq .Values.mode "fullNodes") -}}
{{- fail "policy enables bind, which needs mode: names (the extender binds with the node cache's API access)" -}}
{{- end -}}
{{- if and .Values.features.bind (eq .Values.mode "fullNodes") -}}
{{- fail "features.bind: names mode only (mode: names)" -}}
{{- end -}}
{{- if and .Values.features.bind (not (has "bind" $verbs)) -}}
{{- fail "features.bind: the policy does not enable bind (bind: {enabled: true}); without it the RBAC is unused" -}}
{{- end -}}
{{- if and (has "bind" $verbs) (not .Values.features.bind) -}}
{{- fail "the policy enables bind: set features.bind=true (its RBAC and EXTENDER_BIND_TIMEOUT)" -}}
{{- end -}}
{{- if and (include "extender.policyReadsMetricsServer" .) (not .Values.features.metricsServerSource) -}}
{{- fail "the policy declares a metrics-server source: set features.metricsServerSource=true (its RBAC)" -}}
{{- end -}}
{{- if and .Values.tls.enabled (ne .Values.layout "service") -}}
{{- fail "tls.enabled: layout service only (the secondScheduler's extender listens on 127.0.0.1 inside the pod)" -}}
{{- end -}}
{{- if and .Values.tls.certManager.enabled (not .Values.tls.enabled) -}}
{{- fail "tls.certManager.enabled needs tls.enabled" -}}
{{- end -}}
{{- if and .Values.tls.certManager.enabled (not .Values.tls.certManager.issuerRef.name) -}}
{{- fail "tls.certManager.issuerRef.name: required with tls.certManager.enabled" -}}
{{- end -}}
{{- if and .Values.tls.certManager.enabled .Values.tls.existingSecret -}}
{{- fail "tls.existingSecret and tls.certManager.enabled exclude each other (cert-manager writes <fullname>-tls)" -}}
{{- end -}}
{{- if and .Values.networkPolicy.enabled (eq .Values.layout "service") (not .Values.networkPolicy.from) -}}
{{- fail "networkPolicy.from: required with networkPolicy.enabled in the service layout (who may call the extender: kube-scheduler's addresses), or nothing gets scheduled" -}}
{{- end -}}
{{- if and .Values.networkPolicy.enabled (eq .Values.layout "service") .Values.metrics.serviceMonitor.enabled (not .Values.tls.enabled) (not .Values.networkPolicy.metricsFrom) -}}
{{- fail "networkPolicy.metricsFrom: required with metrics.serviceMonitor in the service layout without TLS (Prometheus scrapes port 8888, where the verbs are: an empty list would admit everyone)" -}}
{{- end -}}
{{- if and .Values.networkPolicy.enabled (eq .Values.layout "service") (include "extender.needsApi" .) -}}
{{- if not (and .Values.networkPolicy.apiServer.cidrs .Values.networkPolicy.apiServer.serviceIP) -}}
{{- fail "networkPolicy.apiServer.cidrs and networkPolicy.apiServer.serviceIP: required with networkPolicy.enabled when the extender calls the API server (names mode or a feature)" -}}
{{- end -}}
{{- end -}}
{{- if or (eq (int .Values.metrics.port) 8888) (eq (int .Values.tls.probePort) 8888) -}}
{{- fail "metrics.port and tls.probePort: 8888 is the extender's serving port" -}}
{{- end -}}
{{- if and .Values.schedulerConfig.ignoredByScheduler (not .Values.schedulerConfig.managedResources) -}}
{{- fail "schedulerConfig.ignoredByScheduler needs schedulerConfig.managedResources" -}}
{{- end -}}
{{- end -}}

{{/* Whether the extender calls the API server ("true" or empty): names mode or a feature. */}}
{{- define "extender.needsApi" -}}
{{- $f := .Values.features -}}
{{- if or (eq .Values.mode "names") $f.podCache $f.events $f.preemptNodeLookup $f.metricsServerSource $f.bind -}}true{{- end -}}
{{- end -}}

{{/* The EXTENDER_* variables of the enabled features (deploy/components/*). */}}
{{- define "extender.featureEnv" -}}
{{- if eq .Values.mode "names" }}
- name: EXTENDER_NODE_CACHE
  value: "true"
{{- end }}
{{- if .Values.features.podCache }}
- name: EXTENDER_POD_CACHE
  value: "true"
{{- end }}
{{- if .Values.features.bind }}
- name: EXTENDER_BIND_TIMEOUT
  value: {{ .Values.features.bindTimeout | quote }}
{{- end }}
{{- if .Values.features.preemptNodeLookup }}
- name: EXTENDER_PREEMPT_NODE_LOOKUP
  value: "true"
{{- end }}
{{- if .Values.features.events }}
- name: EXTENDER_EVENTS
  value: "true"
{{- end }}
{{- end -}}

{{/* The scheduler configuration's text (what the ConfigMap holds), for its checksum too. */}}
{{- define "extender.schedulerConfig" -}}
{{- $verbs := include "extender.policyVerbs" . | fromJsonArray -}}
{{- $service := eq .Values.layout "service" -}}
{{- $https := and $service .Values.tls.enabled -}}
{{- $names := eq .Values.mode "names" -}}
{{- $url := printf "http://127.0.0.1:8888%s" .Values.extender.urlPrefix -}}
{{- if $service -}}
{{- $url = printf "%s://%s.%s.svc:8888%s" (ternary "https" "http" $https) (include "extender.fullname" .) .Release.Namespace .Values.extender.urlPrefix -}}
{{- end -}}
{{- $c := .Values.schedulerConfig -}}
# kube-scheduler --config for {{ if $service }}the control plane's kube-scheduler (copy it to each
# control-plane node: deploy/README.md, way 1){{ else }}the second scheduler {{ .Values.scheduler.name }}{{ end }};
# rendered by the extender chart as `extender scheduler-config` would. Decoded strictly: an
# unknown or misspelt key makes kube-scheduler exit at start-up.
apiVersion: {{ include "extender.configApiVersion" . }}
kind: KubeSchedulerConfiguration
{{- if and $service $c.kubeconfig }}
clientConnection:
  kubeconfig: {{ $c.kubeconfig }}
{{- end }}
leaderElection:
  leaderElect: true
{{- if not $service }}
  # Not the default kube-system/kube-scheduler lease, which the default scheduler holds.
  resourceLock: leases
  resourceName: {{ .Values.scheduler.name }}
  resourceNamespace: {{ .Release.Namespace }}
{{- end }}
profiles:
- schedulerName: {{ ternary "default-scheduler" .Values.scheduler.name $service }}
# Top level, not under the profile: extenders are shared by every profile.
extenders:
- urlPrefix: {{ $url | quote }}
{{- if has "filter" $verbs }}
  filterVerb: filter
{{- end }}
{{- if has "prioritize" $verbs }}
  prioritizeVerb: prioritize
{{- end }}
{{- if has "preempt" $verbs }}
  preemptVerb: preempt
{{- end }}
{{- if and (has "bind" $verbs) $names }}
  bindVerb: bind
{{- end }}
{{- if has "prioritize" $verbs }}
  weight: {{ $c.weight }}
{{- end }}
  nodeCacheCapable: {{ $names }}
  httpTimeout: {{ $c.httpTimeout }}
  ignorable: {{ $c.ignorable }}
{{- if $https }}
  tlsConfig:
    caFile: {{ .Values.tls.schedulerFiles.caFile }}
    certFile: {{ .Values.tls.schedulerFiles.certFile }}
    keyFile: {{ .Values.tls.schedulerFiles.keyFile }}
{{- end }}
{{- with $c.managedResources }}
  managedResources:
{{- range . }}
  - name: {{ . }}
{{- if $c.ignoredByScheduler }}
    ignoredByScheduler: true
{{- end }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Pod-level settings both workloads share. */}}
{{- define "extender.podCommon" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
{{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
{{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
{{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
{{- toYaml . | nindent 2 }}
{{- end }}
topologySpreadConstraints:
{{- if .Values.topologySpreadConstraints }}
{{- toYaml .Values.topologySpreadConstraints | nindent 0 }}
{{- else }}
# Never two replicas on one node (if there are enough nodes).
- maxSkew: 1
  topologyKey: kubernetes.io/hostname
  whenUnsatisfiable: DoNotSchedule
  labelSelector:
    matchLabels:
      {{- include "extender.selectorLabels" . | nindent 6 }}
{{- if include "extender.modern" . }}
  matchLabelKeys: [pod-template-hash]
{{- end }}
{{- if eq .Values.layout "service" }}
# Across zones when the cluster has them; best effort.
- maxSkew: 1
  topologyKey: topology.kubernetes.io/zone
  whenUnsatisfiable: ScheduleAnyway
  labelSelector:
    matchLabels:
      {{- include "extender.selectorLabels" . | nindent 6 }}
{{- if include "extender.modern" . }}
  matchLabelKeys: [pod-template-hash]
{{- end }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "extender.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
privileged: false
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "extender.podAnnotations" -}}
{{- /* the pods read the policy (and the second scheduler its config) only at start-up or reload */}}
checksum/config: {{ printf "%s\n%s\n%s" (ternary "" (include "extender.schedulerConfig" .) (eq .Values.layout "service")) (include "extender.policyText" .) (include "extender.policyConfigMap" .) | sha256sum }}
{{- with .Values.podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- end -}}
