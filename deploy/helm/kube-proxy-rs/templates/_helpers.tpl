{{/* Labels shared by every object of the chart. */}}
{{- define "kube-proxy-rs.labels" -}}
app.kubernetes.io/name: kube-proxy-rs
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}
