#!/usr/bin/env python3
"""Writes benchmark inputs for bench/run.sh.

  gen_events.py events N OUT [--size 2048]   realistic Guance alert events, one per line
  gen_events.py cli N OUT [--size 300]       small JSON messages for the CLI scenario
  gen_events.py body OUT                     the alert body kbridge POSTs for one event
                                             (the body wrk sends to measure the sink alone)

Events look like what Guance Cloud sends (fields of examples/events/*.json), with
a multi-line df_message padded so each line is exactly --size bytes of UTF-8.
Alert ids vary: event i belongs to fault i // 2, and the second event of a
fault is its recovery (df_status ok), so a trigger and its recovery share an
alertId as in production. Hosts, workspaces, monitors and statuses rotate.

Also imported by lat_producer.py (make_event with a send-time tag).
"""

import json
import sys

WORKSPACES = ["交易平台", "电商平台", "支付中台", "会员中心", "物流调度", "风控平台", "数据平台", "营销平台", "客服系统", "运维平台"]
MONITORS = [
    ("基础设施告警", "主机 CPU 使用率过高", "cpu_usage", "%", 90),
    ("基础设施告警", "主机内存使用率过高", "mem_used_percent", "%", 85),
    ("基础设施告警", "磁盘使用率过高", "disk_used_percent", "%", 80),
    ("容器告警", "Pod 频繁重启", "restarts", "次", 3),
    ("应用性能告警", "接口 P99 延迟过高", "p99_latency", "ms", 800),
    ("数据库告警", "PostgreSQL 连接数过高", "numbackends", "个", 400),
]
TRIGGER_STATUSES = ["critical", "error", "warning", "nodata"]
SERVICES = ["pay-api", "order-svc", "checkout", "user-center", "inventory", "gateway", "search", "risk-engine"]
BASE_MS = 1731900000000
FILLER = ("近 5 分钟指标持续超过阈值，请值班人员尽快确认影响范围并处理。" * 40)


def event(i, size=2048, extra_tags=None):
    """Returns event i as one JSON line (str, no newline) of `size` UTF-8 bytes."""
    fault = i // 2
    recovery = i % 2 == 1
    ws = WORKSPACES[fault % len(WORKSPACES)]
    group, checker, metric, unit, threshold = MONITORS[fault % len(MONITORS)]
    host_no = fault % 500
    host = f"{SERVICES[host_no % len(SERVICES)]}-node-{host_no:03d}"
    ip = f"10.{8 + host_no // 250}.{(host_no // 10) % 25}.{host_no % 250 + 2}"
    status = "ok" if recovery else TRIGGER_STATUSES[fault % len(TRIGGER_STATUSES)]
    value = threshold * (0.7 if recovery else 1.06 + (fault % 7) / 100)
    date = BASE_MS + i * 1000
    fault_id = f"fault-{fault:08d}-{(fault * 2654435761) % (1 << 32):08x}"
    event_id = f"event-{i:08d}-{(i * 40503 + 7) % (1 << 32):08x}{fault % 65536:04x}"
    tags = {
        "host": host,
        "host_ip": ip,
        "service": SERVICES[host_no % len(SERVICES)],
        "instance_name": f"{host}-{metric}",
        "cluster_name_k8s": f"k8s-prod-{['sh', 'bj', 'gz'][host_no % 3]}",
    }
    if extra_tags:
        tags.update(extra_tags)
    level = "恢复" if recovery else {"critical": "紧急", "error": "重要", "warning": "警告", "nodata": "数据断档"}[status]
    title = f"【{level}】{host} {checker}：{metric} {value:.1f}{unit}（阈值 {threshold}{unit}）"
    message = (
        f"> 等级：{status}\n> 工作空间：{ws}\n> 主机：{host} ({ip})\n> 监控器：{group} / {checker}\n"
        f"> 内容：{metric} 当前值 {value:.2f}{unit}，阈值 {threshold}{unit}\n> 故障 ID：{fault_id}\n> 详情："
    )
    ev = {
        "df_source": "monitor",
        "df_workspace_name": ws,
        "df_workspace_uuid": f"wksp_{(fault % 10) * 1234567:032x}",
        "df_monitor_name": group,
        "df_monitor_checker_name": checker,
        "df_monitor_checker_id": f"rul_{(fault % 6) * 987654321:032x}",
        "df_monitor_checker_event_ref": f"{(i * 2246822519) % (1 << 64):016x}",
        "df_label": "[\"prod\", \"oncall\"]",
        "date": date,
        "timestamp": date // 1000,
        "df_status": status,
        "df_sub_status": status,
        "df_event_id": event_id,
        "df_fault_id": fault_id,
        "df_fault_status": "ok" if recovery else "fault",
        "df_fault_start_time": (BASE_MS + fault * 2000) // 1000,
        "df_check_range_start": date // 1000 - 300,
        "df_check_range_end": date // 1000,
        "df_title": title,
        "df_message": message,
        "df_dimension_tags": json.dumps(tags, ensure_ascii=False, separators=(",", ":")),
        "Result": round(value, 2),
        "host": host,
    }
    line = json.dumps(ev, ensure_ascii=False, separators=(",", ":"))
    need = size - len(line.encode())
    if need > 0:
        # Pad inside df_message: CJK filler (3 bytes a char), then ASCII dots.
        pad = FILLER[: need // 3]
        pad += "." * (need - len(pad.encode()))
        esc = json.dumps(message, ensure_ascii=False)[1:-1]
        line = line.replace(esc, esc + pad, 1)
    return line


def cli_message(i, size=300):
    """A small JSON message of exactly `size` bytes (ASCII)."""
    head = '{"id":%d,"host":"node-%03d","metric":"cpu_usage","value":%d.%d,"msg":"' % (
        i, i % 500, 50 + i % 50, i % 10)
    tail = '"}'
    return head + "x" * max(0, size - len(head) - len(tail)) + tail


def alert_body(line):
    """The body kbridge POSTs for an event (the seed's clean_data, with kbridge's alertId)."""
    d = json.loads(line)
    dims = {"df_workspace_name": d["df_workspace_name"]}
    dims.update(json.loads(d["df_dimension_tags"]))
    return json.dumps({
        "alertId": d.get("df_fault_id") or d["df_event_id"],
        "alertDims": dims,
        "metricName": "", "value": "", "metricUnit": "",
        "subject": d["df_title"],
        "content": d["df_message"],
        "time": int(d["date"] / 1000),
        "isRecover": d["df_status"] in ("ok", "nodata_ok", "nodata_as_ok", "manual_ok"),
        "extInfo": {"df_status": d["df_status"]},
        "originInfo": {},
        "source": "guance",
    }, ensure_ascii=False, separators=(",", ":"))


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    kind = argv[0]
    size = None
    if "--size" in argv:
        k = argv.index("--size")
        size = int(argv[k + 1])
        argv = argv[:k] + argv[k + 2:]
    if kind == "body":
        with open(argv[1], "w", encoding="utf-8") as f:
            f.write(alert_body(event(0, size or 2048)))
        return
    n, out = int(argv[1]), argv[2]
    make = (lambda i: event(i, size or 2048)) if kind == "events" else (lambda i: cli_message(i, size or 300))
    with open(out, "w", encoding="utf-8", buffering=1 << 20) as f:
        for i in range(n):
            f.write(make(i))
            f.write("\n")


if __name__ == "__main__":
    main(sys.argv[1:])
