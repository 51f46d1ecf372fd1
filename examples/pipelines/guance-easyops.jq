# Guance Cloud events -> EasyOps-style CMDB alerts: the built-in
# `guance-easyops` preset, in jq (a property test holds the two equal).
# Use it as a starting point for a mapping of your own:
#
#   [[route]]
#   name = "easyops"
#   map_file = "/etc/kbridge/pipelines/guance-easyops.jq"
#   key = '.df_fault_id // .df_event_id'
#
# An event that is not an alert (df_source other than "monitor") produces
# nothing: skipped. A broken one stops with error(...): dead-lettered with
# that reason.
#
# Written for speed as well as for reading (jaq, like jq, pays for every
# step): `isstring`, `isnumber` and `isobject` (jaq builtins; in jq, `type
# == "string"` …) are one native test where `type` tries each kind in turn,
# and the body is built in one object, without intermediate ones.

# A non-blank string, or an error naming the field.
def text($field):
  if isstring and trim != "" then .
  elif isstring then error("\($field): expected a non-empty string, got an empty one")
  else error("\($field): expected a string, got \(type)") end;

# df_dimension_tags: an object, or a string holding one; anything else is
# ignored.
def tags:
  if isobject then .
  elif isstring and (trim | startswith("{")) then (try fromjson catch null) | if isobject then . else {} end
  else {} end;

def recovery: endswith("ok") and (. == "ok" or . == "nodata_ok" or . == "nodata_as_ok" or . == "manual_ok");

if .df_source | isstring and trim != "" and . != "monitor" then empty
else
  (.df_source | text("df_source") | empty),
  (.df_event_id | text("df_event_id") | empty),
  (.df_status | text("df_status")) as $status
  | {
      alertId: ((.df_fault_id | if isstring and . != "" then . else empty end) // .df_event_id),
      alertDims: ({df_workspace_name: (.df_workspace_name | text("df_workspace_name"))} + (.df_dimension_tags | tags)),
      metricName: "",
      value: "",
      metricUnit: "",
      subject: (.df_title | text("df_title")),
      content: (.df_message | text("df_message")),
      time: (.date | if isnumber and . > 0 then (if . > 1000000000000 then . / 1000 else . end | floor)
                     else error("date: expected a positive number, got \(tojson)") end),
      isRecover: ($status | recovery),
      extInfo: {df_status: $status},
      originInfo: {},
      source: "guance"
    }
end
