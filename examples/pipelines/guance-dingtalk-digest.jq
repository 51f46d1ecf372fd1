# A digest of a group of Guance alerts -> a DingTalk custom robot, as
# markdown: one message for "12 alerts firing on pay-api", then one for
# what changed. The input is the group object kbridge builds (README,
# "Digests"), not an event. See guance-dingtalk-digest.toml.

def mark: if .state == "resolved" then "✅" elif .state == "critical" then "🔴" else "🟠" end;
def line: "- \(mark) \(.event.df_title // .id)\(if .changed then " **(新)**" else "" end)";

(.alerts | sort_by(.changed | not)) as $alerts
| {
    msgtype: "markdown",
    markdown: {
      title: "[\(.status)] \(.group)：\(.firing) 告警中，\(.resolved) 已恢复",
      text: ("### [\(.status)] \(.group)\n\n**\(.firing)** 告警中 · **\(.resolved)** 已恢复"
        + " · 新增 \(.new) · 恢复 \(.recovered)\(if .repeat then " · 仍未恢复（重复提醒）" else "" end)\n\n"
        + ([$alerts[:20][] | line] | join("\n"))
        + (if ($alerts | length) > 20 then "\n\n…… 另有 \(($alerts | length) - 20) 条" else "" end))
    }
  }
