# Guance Cloud events -> a Feishu (Lark) custom bot: an interactive card
# with a markdown body, red while the fault is on, green on recovery.
# The bot answers {"code": 0, "msg": "success"} (older bots:
# {"StatusCode": 0}); it takes 100 messages a minute and 5 a second.
# See guance-feishu.toml for the route around it.

def recovery: . == "ok" or . == "nodata_ok" or . == "nodata_as_ok" or . == "manual_ok";
def when: (.date // 0) | if . > 1000000000000 then . / 1000 else . end | floor | todate;

select(.df_source == "monitor")
| (.df_status // "") as $status
| {
    msg_type: "interactive",
    card: {
      header: {
        template: (if $status | recovery then "green" elif $status == "critical" then "red" else "orange" end),
        title: {tag: "plain_text", content: (if $status | recovery then "[恢复] " else "[\($status)] " end) + (.df_title // "(no title)")}
      },
      elements: [
        {tag: "markdown", content: ((.df_message // "") + "\n\n**工作空间** \(.df_workspace_name // "-")  **时间** \(when)")}
      ]
    }
  }
