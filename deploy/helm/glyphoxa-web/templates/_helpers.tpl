{{/* Resource name prefix: <release>-glyphoxa-web unless overridden. */}}
{{- define "glyphoxa-web.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (default .Chart.Name .Values.nameOverride) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "glyphoxa-web.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels on every resource. */}}
{{- define "glyphoxa-web.labels" -}}
app.kubernetes.io/name: {{ include "glyphoxa-web.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Selector labels; the component (pages, websockets, migrations) is added where used. */}}
{{- define "glyphoxa-web.selectorLabels" -}}
app.kubernetes.io/name: {{ include "glyphoxa-web.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "glyphoxa-web.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "glyphoxa-web.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Environment shared by every container: the ConfigMap, then each secret key. */}}
{{- define "glyphoxa-web.envFrom" -}}
- configMapRef:
    name: {{ include "glyphoxa-web.fullname" . }}
{{- end -}}

{{- define "glyphoxa-web.secretEnv" -}}
{{- range .Values.secrets.keys }}
- name: {{ . }}
  valueFrom:
    secretKeyRef:
      name: {{ $.Values.secrets.existingSecret }}
      key: {{ . }}
      optional: true
{{- end }}
{{- end -}}

{{/* Restricted pod security: non-root, read-only root filesystem, no privilege escalation. */}}
{{- define "glyphoxa-web.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}
