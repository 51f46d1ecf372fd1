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
# Written for speed as well as for reading: each field is checked once and
# bound to a variable, and no intermediate object is built (jaq, like jq,
# pays for every step and every object).

def text($field):
  if type != "string" then error("\($field): expected a string, got \(type)")
  elif trim == "" then error("\($field): expected a non-empty string, got an empty one")
  else . end;

def tags:
  if type == "object" then .
  elif type == "string" and (trim | startswith("{")) then (try fromjson catch null) | if type == "object" then . else {} end
  else {} end;

.df_source as $source
| if ($source | type) == "string" and ($source | trim) != "" and $source != "monitor" then empty
  else
    ($source | text("df_source")) as $_
    | (.df_event_id | text("df_event_id")) as $id
    | (.df_title | text("df_title")) as $title
    | (.df_message | text("df_message")) as $message
    | (.df_status | text("df_status")) as $status
    | (.df_workspace_name | text("df_workspace_name")) as $workspace
    | (.date | if type == "number" and . > 0 then . else error("date: expected a positive number, got \(tojson)") end) as $date
    | {
        alertId: (.df_fault_id | if type == "string" and . != "" then . else $id end),
        alertDims: ({df_workspace_name: $workspace} + (.df_dimension_tags | tags)),
        metricName: "",
        value: "",
        metricUnit: "",
        subject: $title,
        content: $message,
        time: (if $date > 1000000000000 then $date / 1000 else $date end | floor),
        isRecover: ($status | endswith("ok") and (. == "ok" or . == "nodata_ok" or . == "nodata_as_ok" or . == "manual_ok")),
        extInfo: {df_status: $status},
        originInfo: {},
        source: "guance"
      }
  end
