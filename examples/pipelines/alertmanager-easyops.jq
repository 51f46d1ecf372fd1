# Prometheus Alertmanager's webhook payload (bridged into Kafka as it is)
# -> EasyOps-style CMDB alerts: one request per alert of `alerts[]`.
# alertId is the alert's fingerprint (stable from firing to resolved),
# alertDims its labels.

if (.alerts | type) != "array" then error("not an Alertmanager webhook payload: no alerts[]") else . end
| .alerts[]
| {
    alertId: (.fingerprint // error("an alert without fingerprint")),
    alertDims: (.labels // {}),
    metricName: (.labels.alertname // ""),
    value: "",
    metricUnit: "",
    subject: (.annotations.summary // .labels.alertname // "alert"),
    content: (.annotations.description // .annotations.summary // ""),
    time: (.startsAt | fromdateiso8601 | floor),
    isRecover: (.status == "resolved"),
    extInfo: {status: .status, severity: (.labels.severity // "")},
    originInfo: {generatorURL: (.generatorURL // "")},
    source: "alertmanager"
  }
