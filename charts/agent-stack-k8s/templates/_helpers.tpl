{{/*
Names. The fullname follows the usual Helm convention (and upstream's chart at HEAD): the release
name alone when it already contains the chart name, else "<release>-<chart>", cut to 63 characters
because it ends up in DNS-label fields.
*/}}
{{- define "agent-stack-k8s.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "agent-stack-k8s.fullname" -}}
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

{{- define "agent-stack-k8s.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels on every object the chart renders. The pod selector uses only `app` (what upstream uses and
what utils/log-collector looks for), because a Deployment's selector can never change afterwards.
*/}}
{{- define "agent-stack-k8s.selectorLabels" -}}
app: {{ include "agent-stack-k8s.fullname" . }}
{{- end }}

{{- define "agent-stack-k8s.labels" -}}
{{ include "agent-stack-k8s.selectorLabels" . }}
app.kubernetes.io/name: {{ include "agent-stack-k8s.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ include "agent-stack-k8s.chart" . }}
{{- end }}

{{/*
Where the controller gets its jobs (its config's mode, engine/model/config.py): config.buildkite-api
when set; else the GraphQL API when there is a GraphQL token or an organization (a seed-era install);
else the Stacks API, with the agent token alone (an upstream v0.28+ install).
*/}}
{{- define "agent-stack-k8s.buildkiteApi" -}}
{{- $api := index .Values.config "buildkite-api" | default "" }}
{{- if $api }}
{{- $api }}
{{- else if or .Values.graphqlToken (index .Values.config "org") (index .Values.config "buildkite-token") }}
{{- "graphql" }}
{{- else }}
{{- "stacks" }}
{{- end }}
{{- end }}

{{/*
"true" when pods get job acquisition tokens: the Stacks API mode, unless config.job-acquisition-tokens
says false (the chart turns them on; the controller's own default is off).
*/}}
{{- define "agent-stack-k8s.acquisitionTokens" -}}
{{- $value := index .Values.config "job-acquisition-tokens" }}
{{- if and (eq (include "agent-stack-k8s.buildkiteApi" .) "stacks") (or (kindIs "invalid" $value) (eq (lower (toString $value)) "true")) }}true{{ end }}
{{- end }}

{{/* The Secret holding BUILDKITE_AGENT_TOKEN (and BUILDKITE_TOKEN too when it is an existing one). */}}
{{- define "agent-stack-k8s.secretName" -}}
{{- if .Values.agentStackSecret }}
{{- .Values.agentStackSecret }}
{{- else }}
{{- include "agent-stack-k8s.fullname" . }}-secrets
{{- end }}
{{- end }}

{{/* The Secret holding BUILDKITE_TOKEN (the GraphQL token): the existing one, or a Secret of its own. */}}
{{- define "agent-stack-k8s.graphqlSecretName" -}}
{{- if .Values.agentStackSecret }}
{{- .Values.agentStackSecret }}
{{- else }}
{{- include "agent-stack-k8s.fullname" . }}-graphql-token
{{- end }}
{{- end }}

{{/* The Secret the controller reads the agent token from (config agent-token-secret). */}}
{{- define "agent-stack-k8s.agentTokenSecretName" -}}
{{- index .Values.config "agent-token-secret" | default (include "agent-stack-k8s.secretName" .) }}
{{- end }}

{{- define "agent-stack-k8s.configMapName" -}}
{{- include "agent-stack-k8s.fullname" . }}-config
{{- end }}

{{- define "agent-stack-k8s.policiesConfigMapName" -}}
{{- if .Values.policiesConfigMap }}
{{- .Values.policiesConfigMap }}
{{- else }}
{{- include "agent-stack-k8s.fullname" . }}-policies
{{- end }}
{{- end }}

{{- define "agent-stack-k8s.serviceAccountName" -}}
{{- if .Values.serviceAccount.name }}
{{- .Values.serviceAccount.name }}
{{- else }}
{{- include "agent-stack-k8s.fullname" . }}-controller
{{- end }}
{{- end }}

{{- define "agent-stack-k8s.image" -}}
{{- if .Values.image }}
{{- .Values.image }}
{{- else }}
{{- printf "ghcr.io/agent-stack-policy/controller:%s" .Chart.AppVersion }}
{{- end }}
{{- end }}

{{/* config.prometheus-port as an integer; 0 when unset (metrics off, as in the controller). */}}
{{- define "agent-stack-k8s.prometheusPort" -}}
{{- index .Values.config "prometheus-port" | default 0 | int }}
{{- end }}

{{- define "agent-stack-k8s.podMonitorEnabled" -}}
{{- if or .Values.metrics.podMonitor.enabled .Values.monitoring.podMonitor.deploy }}true{{ end }}
{{- end }}

{{/*
The metadata of an object whose labels and annotations a user may extend through a value such as
`secretsMetadata`: the chart's labels merged with the user's, the user's annotations (plus `extra`),
then any other metadata fields the user gave, verbatim. Call with
(dict "root" $ "name" NAME "namespace" NS "user" USER_METADATA "extraAnnotations" MAP).
*/}}
{{- define "agent-stack-k8s.metadata" -}}
{{- $user := .user | default dict }}
{{- $labels := merge (dict) (fromYaml (include "agent-stack-k8s.labels" .root)) ($user.labels | default dict) }}
{{- $annotations := merge (dict) (.extraAnnotations | default dict) ($user.annotations | default dict) -}}
name: {{ .name }}
namespace: {{ .namespace }}
labels:
  {{- toYaml $labels | nindent 2 }}
{{- with $annotations }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with omit $user "name" "namespace" "labels" "annotations" }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
One policy file's text, ending in a newline: a string verbatim, a list as one YAML document per item
(separated by ---), a map as one document.
*/}}
{{- define "agent-stack-k8s.policyText" -}}
{{- $text := "" }}
{{- if kindIs "string" . }}
{{- $text = . }}
{{- else if kindIs "slice" . }}
{{- $documents := list }}
{{- range . }}
{{- $documents = append $documents (toYaml . | trimSuffix "\n") }}
{{- end }}
{{- $text = join "\n---\n" $documents }}
{{- else }}
{{- $text = toYaml . }}
{{- end }}
{{- printf "%s\n" ($text | trimSuffix "\n") }}
{{- end }}

{{/*
Fail the render when an inline policy document lacks what every policy needs, naming the file and the
document, so a policy the controller would refuse never reaches the cluster (the schema checks the
object and list forms; this checks the string form, document by document). Call with
(list FILE TEXT). The apiVersion and name pattern are the engine's (a chart test keeps them equal).
*/}}
{{- define "agent-stack-k8s.checkPolicyText" -}}
{{- $file := index . 0 }}
{{- $apiVersion := "policy.agent-stack.dev/v1" }}
{{- $namePattern := "^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$" }}
{{- $found := dict "documents" 0 }}
{{- range $index, $text := regexSplit "(?m)^---[ \t]*(#.*)?$" (index . 1) -1 }}
{{- $document := fromYaml $text }}
{{- $where := printf "policies.%s, document %d" $file (add1 $index) }}
{{- if hasKey $document "Error" }}
{{- fail (printf "%s: not valid YAML: %s" $where (index $document "Error")) }}
{{- else if $document }}
{{- $_ := set $found "documents" (add1 (index $found "documents")) }}
{{- if ne (toString (index $document "apiVersion")) $apiVersion }}
{{- fail (printf "%s: apiVersion must be %s, got %q" $where $apiVersion (toString (index $document "apiVersion"))) }}
{{- end }}
{{- if ne (toString (index $document "kind")) "Policy" }}
{{- fail (printf "%s: kind must be Policy, got %q" $where (toString (index $document "kind"))) }}
{{- end }}
{{- $name := toString (dig "metadata" "name" "" $document) }}
{{- if not (regexMatch $namePattern $name) }}
{{- fail (printf "%s: metadata.name must be lowercase letters, digits, '-' and '.' (starting and ending with a letter or digit), got %q" $where $name) }}
{{- end }}
{{- end }}
{{- end }}
{{- if eq (index $found "documents") 0 }}
{{- fail (printf "policies.%s: the file holds no policy document (only comments or nothing); remove the entry or write a policy" $file) }}
{{- end }}
{{- end }}
