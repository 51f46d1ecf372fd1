# A digest of a group of Guance alerts -> a WeCom (WeChat Work) group
# robot, as markdown (at most 4096 bytes: 15 alerts are listed). The input
# is the group object kbridge builds (README, "Digests").

def color: if .state == "resolved" then "info" else "warning" end;
def line: "> <font color=\"\(color)\">[\(.state)]</font> \(.event.df_title // .id)\(if .changed then " (新)" else "" end)";

(.alerts | sort_by(.changed | not)) as $alerts
| {
    msgtype: "markdown",
    markdown: {
      content: ("**\(.group)**：<font color=\"warning\">\(.firing)</font> 告警中，<font color=\"info\">\(.resolved)</font> 已恢复（新增 \(.new)，恢复 \(.recovered)）\n"
        + ([$alerts[:15][] | line] | join("\n"))
        + (if ($alerts | length) > 15 then "\n…… 另有 \(($alerts | length) - 15) 条" else "" end))
    }
  }
