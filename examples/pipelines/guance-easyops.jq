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

def required($f):
  .[$f]
  | if type != "string" then error("\($f): expected a string, got \(type)")
    elif (trim | length) == 0 then error("\($f): expected a non-empty string, got an empty one")
    else . end;

# df_dimension_tags: an object, or a string holding one; anything else is
# ignored.
def tags:
  .df_dimension_tags
  | if type == "object" then .
    elif type == "string" and (trim | startswith("{")) then (try fromjson catch null) | if type == "object" then . else {} end
    else {} end;

def recovery: . == "ok" or . == "nodata_ok" or . == "nodata_as_ok" or . == "manual_ok";

if (.df_source | type) == "string" and (.df_source | trim | length) > 0 and .df_source != "monitor"
then empty
else
  required("df_source") as $_
  | {
      event_id: required("df_event_id"),
      title: required("df_title"),
      message: required("df_message"),
      status: required("df_status"),
      workspace: required("df_workspace_name"),
      date: (.date | if type == "number" and . > 0 then . else error("date: expected a positive number, got \(tojson)") end)
    } as $e
  | {
      alertId: (.df_fault_id | if type == "string" and length > 0 then . else $e.event_id end),
      alertDims: ({df_workspace_name: $e.workspace} + tags),
      metricName: "",
      value: "",
      metricUnit: "",
      subject: $e.title,
      content: $e.message,
      time: ($e.date | if . > 1000000000000 then . / 1000 else . end | floor),
      isRecover: ($e.status | recovery),
      extInfo: {df_status: $e.status},
      originInfo: {},
      source: "guance"
    }
end
