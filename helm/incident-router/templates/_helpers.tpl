{{/* Names and labels. */}}
{{- define "incident-router.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "incident-router.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "incident-router.selectorLabels" -}}
app.kubernetes.io/name: {{ include "incident-router.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "incident-router.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "incident-router.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: router
{{- end }}

{{- define "incident-router.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "incident-router.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret whose keys become env vars: an existing one, or the chart's. Empty: none. */}}
{{- define "incident-router.secretName" -}}
{{- if .Values.secrets.existingSecret }}
{{- .Values.secrets.existingSecret }}
{{- else if .Values.secrets.create }}
{{- include "incident-router.fullname" . }}
{{- end }}
{{- end }}

{{/* The Prometheus job the ServiceMonitor sets and the PrometheusRule's alerts select. */}}
{{- define "incident-router.job" -}}
{{- .Values.serviceMonitor.jobLabel | default (include "incident-router.fullname" .) }}
{{- end }}

{{/* Labels of the Helm test pod: not the selector labels, so no Service routes to it. */}}
{{- define "incident-router.testLabels" -}}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: helm-test
{{- end }}

{{- define "incident-router.kafka" -}}
{{- eq .Values.backend.type "kafka" }}
{{- end }}

{{/*
Refuse what cannot work: the embedded backend is one SQLite file with a single writer, so
more than one replica (or an autoscaler) needs Kafka.
*/}}
{{- define "incident-router.validate" -}}
{{- $kafka := eq .Values.backend.type "kafka" }}
{{- if and (not $kafka) (gt (int .Values.replicaCount) 1) }}
{{- fail (printf "replicaCount=%d needs backend.type=kafka: the embedded backend is a single SQLite writer (use 1 replica, or Kafka to scale out)" (int .Values.replicaCount)) }}
{{- end }}
{{- if and (not $kafka) .Values.autoscaling.enabled }}
{{- fail "autoscaling.enabled needs backend.type=kafka: the embedded backend is a single SQLite writer" }}
{{- end }}
{{- if and $kafka (empty .Values.backend.kafka.bootstrapServers) }}
{{- fail "backend.kafka.bootstrapServers is required with backend.type=kafka" }}
{{- end }}
{{- if and .Values.secrets.existingSecret .Values.secrets.create }}
{{- fail "set either secrets.existingSecret or secrets.create, not both" }}
{{- end }}
{{- $api := (.Values.config | default dict).api | default dict }}
{{- if and .Values.configReloader.enabled $api.tokens (not .Values.configReloader.apiTokenKey) }}
{{- fail "configReloader.apiTokenKey is required when config.api.tokens is set: POST /-/reload needs a token (name the Secret key holding one of them)" }}
{{- end }}
{{- if and .Values.configReloader.apiTokenKey (not (include "incident-router.secretName" .)) }}
{{- fail "configReloader.apiTokenKey needs secrets.existingSecret or secrets.create" }}
{{- end }}
{{- if and .Values.httpRoute.enabled (empty .Values.httpRoute.parentRefs) }}
{{- fail "httpRoute.parentRefs is required with httpRoute.enabled (the Gateway to attach to)" }}
{{- end }}
{{- end }}

{{/* router.yaml: the user's `config` with the parts the chart owns filled in. */}}
{{- define "incident-router.routerConfig" -}}
{{- $cfg := deepCopy (.Values.config | default dict) }}
{{- $server := deepCopy (get $cfg "server" | default dict) }}
{{- $_ := set $server "host" "0.0.0.0" }}
{{- $_ := set $server "port" (int .Values.containerPort) }}
{{- $_ := set $cfg "server" $server }}
{{- if eq .Values.backend.type "kafka" }}
{{- $k := .Values.backend.kafka }}
{{- $backend := dict "type" "kafka" "bootstrap_servers" $k.bootstrapServers "topic_prefix" $k.topicPrefix "group_id" $k.groupId "partitions" (int $k.partitions) "replication_factor" (int $k.replicationFactor) "create_topics" $k.createTopics "security_protocol" $k.securityProtocol "produce_timeout_seconds" $k.produceTimeoutSeconds }}
{{- if $k.saslMechanism }}{{ $_ := set $backend "sasl_mechanism" $k.saslMechanism }}{{ end }}
{{- if $k.saslUsername }}{{ $_ := set $backend "sasl_username" $k.saslUsername }}{{ end }}
{{- if $k.saslPasswordEnv }}{{ $_ := set $backend "sasl_password" (printf "${%s}" $k.saslPasswordEnv) }}{{ end }}
{{- if $k.tlsSecret }}
{{- $_ := set $backend "ssl_cafile" "/etc/incident-router/kafka-tls/ca.crt" }}
{{- end }}
{{- $_ := set $cfg "backend" $backend }}
{{- else }}
{{- $_ := set $cfg "backend" (dict "type" "embedded" "path" .Values.backend.embedded.path) }}
{{- end }}
{{- $_ := set $cfg "rules_dir" "/etc/incident-router/rules" }}
{{- toYaml $cfg }}
{{- end }}

{{/* The rule files, name -> text: the shipped copies, then rules.files (same name wins). */}}
{{- define "incident-router.ruleFiles" -}}
{{- $files := dict }}
{{- if .Values.rules.shipped }}
{{- range $path, $_ := .Files.Glob "files/rules/*.yaml" }}
{{- $_ := set $files (base $path) ($.Files.Get $path) }}
{{- end }}
{{- end }}
{{- range $name, $text := .Values.rules.files }}
{{- $_ := set $files $name $text }}
{{- end }}
{{- toYaml $files }}
{{- end }}
