# Guance Cloud events -> a WeCom (WeChat Work) group robot, as markdown.
# The robot answers {"errcode": 0, "errmsg": "ok"} and takes 20 messages a
# minute. See guance-wecom.toml for the route around it.

def recovery: . == "ok" or . == "nodata_ok" or . == "nodata_as_ok" or . == "manual_ok";

select(.df_source == "monitor")
| (.df_status // "") as $status
| (if $status | recovery then "info" else "warning" end) as $color
| {
    msgtype: "markdown",
    markdown: {
      content: "<font color=\"\($color)\">[\($status)]</font> **\(.df_title // "")**\n\(.df_message // "")\n> 工作空间：\(.df_workspace_name // "-")"
    }
  }
