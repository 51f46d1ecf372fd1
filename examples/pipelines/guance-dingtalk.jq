# Guance Cloud events -> a DingTalk custom robot, as markdown. The robot
# answers {"errcode": 0, "errmsg": "ok"} and takes 20 messages a minute.
# See guance-dingtalk.toml for the route around it.

def recovery: . == "ok" or . == "nodata_ok" or . == "nodata_as_ok" or . == "manual_ok";

select(.df_source == "monitor")
| (.df_status // "") as $status
| (if $status | recovery then "恢复" else $status end) as $label
| {
    msgtype: "markdown",
    markdown: {
      title: "[\($label)] \(.df_title // "")",
      text: "### [\($label)] \(.df_title // "")\n\n\(.df_message // "")\n\n> 工作空间：\(.df_workspace_name // "-")"
    }
  }
