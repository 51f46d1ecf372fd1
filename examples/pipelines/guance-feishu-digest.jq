# A digest of a group of Guance alerts -> a Feishu (Lark) custom bot: one
# interactive card, red while any alert fires, green once all recovered.
# The input is the group object kbridge builds (README, "Digests").

def mark: if .state == "resolved" then "✅" elif .state == "critical" then "🔴" else "🟠" end;
def line: "\(mark) \(.event.df_title // .id)\(if .changed then " **新**" else "" end)";

(.alerts | sort_by(.changed | not)) as $alerts
| {
    msg_type: "interactive",
    card: {
      header: {
        template: (if .status == "resolved" then "green" else "red" end),
        title: {tag: "plain_text", content: "[\(.status)] \(.group)：\(.firing) 告警中，\(.resolved) 已恢复"}
      },
      elements: [
        {tag: "markdown", content: ("新增 \(.new) · 恢复 \(.recovered)\(if .repeat then " · 仍未恢复（重复提醒）" else "" end)\n\n"
          + ([$alerts[:30][] | line] | join("\n"))
          + (if ($alerts | length) > 30 then "\n…… 另有 \(($alerts | length) - 30) 条" else "" end))}
      ]
    }
  }
