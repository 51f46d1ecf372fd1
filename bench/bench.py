#!/usr/bin/env python3
"""kbridge's benchmark scenarios; bench/run.sh installs the tools, builds,
starts the broker and then runs this. Prints one table and writes it, with
the machine's description, to a Markdown file.

  bench.py --kbridge BIN --brokers HOST:PORT --work DIR --latsink BIN [--quick] [--out FILE]

Scenarios (see bench/README.md):
  1. relay throughput against nginx (sink alone measured with wrk)
  2. the article's Python seed on the same broker, layout and sink
  3. produce→webhook latency at a steady rate
  4. backlog drain and peak RSS
  5. CLI produce / consume beside kcat
"""

import argparse
import datetime
import hashlib
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PARTITIONS = 6
LOG_LINE = 19  # bytes of one nginx access-log line: "$msec $status\n"

FULL = dict(relay_n=200_000, seed_n=2_000, lat_rate=500, lat_secs=30, lat_warm=2,
            backlog_n=1_000_000, cli_n=1_000_000, repeats=5, wrk_secs=10)
QUICK = dict(relay_n=20_000, seed_n=500, lat_rate=500, lat_secs=10, lat_warm=2,
             backlog_n=50_000, cli_n=100_000, repeats=1, wrk_secs=5)

TARGETS = dict(seed_ratio=50.0, sink_share=0.5, cpu_us=20.0, jq_share=0.8, audit_share=0.9, p99_ms=20.0, backlog_rss_mb=64.0,
               produce_ratio=1.2, consume_ratio=3.0, small_slowdown=2.0)


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def relay_figure(r, n):
    """A relay run's figure: rate, time, CPU (and per event), peak RSS."""
    return (f"{r['rate']:,.0f} events/s ({human(n)} × 2 KB in {r['t_lag0'] or r['t_answered']:.1f} s); "
            f"CPU {r['cpu']:.1f} s ({r['cpu'] / n * 1e6:.0f} µs/event); peak RSS {r['rss_mb']:.0f} MB")


def profile_summary(data, top=25):
    """Where a profiled run spent its CPU: the share of each binary (the
    kernel, libc, kbridge), kbridge's share split by crate (symbols of at
    least 0.05%; librdkafka is linked in), and the top symbols by self
    time."""
    def report(sort, limit):
        r = subprocess.run(["perf", "report", "-i", data, "--no-children", "--sort", sort, "--stdio",
                            "-g", "none", "--percent-limit", limit], capture_output=True, text=True)
        return r.stdout.splitlines()

    dsos = []
    for line in report("dso", "0.1"):
        m = re.match(r"\s*([0-9.]+)%\s+(\S+)\s*$", line)
        if m:
            dsos.append((m.group(2).replace("[kernel.kallsyms]", "kernel"), float(m.group(1))))
    rows = []
    for line in report("dso,sym", "0.05"):
        m = re.match(r"\s*([0-9.]+)%\s+(\S+)\s+\[(.)\]\s+(.*?)\s*$", line)
        if m:
            rows.append((float(m.group(1)), m.group(2), re.sub(r"\s+-\s+-\s*$", "", m.group(4))))
    crates = {}
    for pct, dso, sym in rows:
        if dso.startswith("[") or dso.startswith("lib"):
            continue
        if sym.startswith("rd_") or sym.startswith("_rjem") or sym.startswith("je_"):
            crate = "librdkafka" if sym.startswith("rd_") else "jemalloc"
        else:
            m = re.match(r"<?(?:&mut |&)?([a-z_][a-z0-9_]*)::", sym)
            crate = m.group(1) if m else "(inlined, unnamed)"
        crates[crate] = crates.get(crate, 0.0) + pct
    return dict(parts=dsos[:6], crates=sorted(crates.items(), key=lambda kv: -kv[1])[:12],
                top=[(pct, sym[:110]) for pct, _, sym in rows[:top]])


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=15):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def human(n):
    return f"{n / 1e6:g}M" if n >= 1e6 else f"{n / 1e3:g}k" if n >= 1e3 else str(n)


class Timed:
    """A process under GNU time -v: CPU seconds and peak RSS when it ends."""

    def __init__(self, cmd, tfile, env=None, stdout=subprocess.DEVNULL, stderr=None):
        self.tfile = tfile
        self.p = subprocess.Popen(["/usr/bin/time", "-v", "-o", tfile] + cmd, env=env,
                                  stdout=stdout, stderr=stderr)

    def child(self):
        try:
            with open(f"/proc/{self.p.pid}/task/{self.p.pid}/children") as f:
                kids = f.read().split()
            return int(kids[0]) if kids else None
        except OSError:
            return None

    def alive(self):
        return self.p.poll() is None

    def stop(self, timeout=30):
        kid = self.child()
        if kid:
            os.kill(kid, signal.SIGTERM)
        try:
            self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            kid = self.child()
            if kid:
                os.kill(kid, signal.SIGKILL)
            self.p.wait()
        return self.stats()

    def stats(self):
        text = open(self.tfile).read()

        def num(label):
            m = re.search(re.escape(label) + r":\s*([0-9.]+)", text)
            return float(m.group(1)) if m else float("nan")

        return {"user": num("User time (seconds)"), "sys": num("System time (seconds)"),
                "cpu": num("User time (seconds)") + num("System time (seconds)"),
                "rss_mb": num("Maximum resident set size (kbytes)") / 1024,
                "exit": self.p.returncode}


def run_timed(cmd, tfile, stdout=subprocess.DEVNULL, shell=False):
    """Runs a command to completion under GNU time; returns (wall seconds, stats)."""
    t0 = time.monotonic()
    if shell:
        cmd = ["sh", "-c", cmd]
    t = Timed(cmd, tfile, stdout=stdout)
    t.p.wait()
    wall = time.monotonic() - t0
    st = t.stats()
    if st["exit"] != 0:
        raise RuntimeError(f"{' '.join(cmd)[:120]} exited {st['exit']}")
    return wall, st


class Nginx:
    """The fast sink: nginx answering {"code":0}; answers counted from the log size."""

    def __init__(self, work, port):
        self.dir = os.path.join(work, "nginx")
        os.makedirs(self.dir, exist_ok=True)
        self.port = port
        self.url = f"http://127.0.0.1:{port}/"
        conf = open(os.path.join(HERE, "sink.conf")).read()
        conf = conf.replace("@WORK@", self.dir).replace("@PORT@", str(port))
        self.conf = os.path.join(self.dir, "sink.conf")
        open(self.conf, "w").write(conf)
        self.access = os.path.join(self.dir, "access.log")
        self.conns = os.path.join(self.dir, "conn.log")
        self.p = subprocess.Popen(["nginx", "-p", self.dir, "-c", self.conf, "-g", "daemon off;"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not wait_port(port):
            raise RuntimeError(f"nginx did not start (see {self.dir}/nginx-error.log)")
        self.reset()

    def reset(self):
        for f in (self.access, self.conns):
            open(f, "w").close()

    def count(self):
        try:
            return os.stat(self.access).st_size // LOG_LINE
        except OSError:
            return 0

    def connections(self):
        with open(self.conns, "rb") as f:
            return sum(1 for _ in f)

    def first_last(self):
        with open(self.access, "rb") as f:
            first = f.readline()
            f.seek(max(0, os.stat(self.access).st_size - LOG_LINE))
            last = f.read()
        return float(first.split()[0]), float(last.split()[0])

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGQUIT)
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()


class Bench:
    def __init__(self, a):
        self.a = a
        self.cfg = QUICK if a.quick else FULL
        self.kb = a.kbridge
        self.brokers = a.brokers
        self.work = a.work
        self.rid = time.strftime("%m%d%H%M%S")
        self.prefix = f"bench-{self.rid}"
        self.topics, self.groups = [], []
        self.rows, self.notes = [], []
        self.figures = {}
        self.profiles = {}
        os.makedirs(self.work, exist_ok=True)

    # ------------------------------------------------------------ helpers
    def kbc(self, *args, check=True):
        r = subprocess.run([self.kb, "-b", self.brokers, *args], capture_output=True, text=True)
        if check and r.returncode != 0:
            raise RuntimeError(f"kbridge {' '.join(args)}: {r.stderr.strip()[:300]}")
        return r

    def topic(self, name, partitions=None):
        t = f"{self.prefix}-{name}"
        self.kbc("topics", "create", t, "-p", str(partitions or PARTITIONS))
        self.topics.append(t)
        return t

    def group(self, name):
        g = f"{self.prefix}-{name}"
        self.groups.append(g)
        return g

    def lag(self, group, n):
        """The group's total lag once its committed offsets cover all n
        events of the topic (a partition that got no event has none), else None."""
        r = self.kbc("groups", "describe", group, "--json", check=False)
        if r.returncode != 0:
            return None
        try:
            d = json.loads(r.stdout)
        except ValueError:
            return None
        parts = d.get("partitions", [])
        if sum(p.get("current_offset") or 0 for p in parts) < n:
            return None
        return d.get("total_lag")

    def tfile(self, name):
        return os.path.join(self.work, f"{name}.time")

    def events_file(self, n, size=2048, kind="events"):
        """A cached input file of n lines (kind events or cli)."""
        gen = os.path.join(HERE, "gen_events.py")
        tag = hashlib.sha256(open(gen, "rb").read()).hexdigest()[:8]
        path = os.path.join(self.work, f"{kind}-{n}-{size}-{tag}.jsonl")
        if not os.path.exists(path):
            # Reuse a larger file of the same kind if there is one.
            bigger = sorted(
                (int(m.group(1)), f) for f in os.listdir(self.work)
                if (m := re.fullmatch(rf"{kind}-(\d+)-{size}-{tag}\.jsonl", f)) and int(m.group(1)) > n)
            tmp = path + ".tmp"
            if bigger:
                subprocess.run(f"head -n {n} '{os.path.join(self.work, bigger[0][1])}' > '{tmp}'",
                               shell=True, check=True)
            else:
                log(f"generating {human(n)} {kind} of {size} bytes")
                subprocess.run([sys.executable, gen, kind, str(n), tmp, "--size", str(size)], check=True)
            os.rename(tmp, path)
        return path

    def preload(self, topic, path, n):
        """Produces the events keyed by df_fault_id (a trigger and its recovery
        share a partition, and the 6 partitions fill evenly)."""
        t0 = time.monotonic()
        r = subprocess.run([self.kb, "-b", self.brokers, "produce", topic, path, "--key-field", "df_fault_id", "-q"],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"preload of {topic} failed: {r.stderr.strip()[:300]}")
        return time.monotonic() - t0

    def warm_up(self):
        """A fresh broker creates its offsets topic (50 partitions) when the
        first group commits, which would land in the first scenario's time:
        commit once with a throwaway group first."""
        t, g = self.topic("warmup"), self.group("warmup")
        subprocess.run([self.kb, "-b", self.brokers, "produce", t, "-q"], input=b'{"warm":1}\n',
                       capture_output=True, check=True)
        self.kbc("consume", t, "-g", g, "-c", "1", "-o", "earliest")

    def row(self, scenario, figure, target, verdict):
        self.rows.append((scenario, figure, target, verdict))
        log(f"{scenario}: {figure} [{verdict}]")

    # ------------------------------------------------------------ relay runs
    def consume_run(self, name, cmd, n, sink, group, wait_lag=True, lag_timeout=30, timeout=900, env=None):
        """Starts a consumer service (kbridge run or the seed) and times it
        until the sink has answered n events and, if wait_lag, the group's lag
        is 0. Returns a dict of figures."""
        sink.reset()
        errf = open(os.path.join(self.work, f"{name}.stderr"), "w")
        t0 = time.monotonic()
        wall0 = time.time()
        proc = Timed(cmd, self.tfile(name), env=env, stderr=errf)
        perf = None
        deadline = t0 + timeout
        t_answered = t_lag0 = None
        lag = None
        seen, progress = -1, t0
        try:
            while True:
                if not proc.alive():
                    raise RuntimeError(f"{name} exited early (see {errf.name})")
                count = sink.count()
                now = time.monotonic()
                if count != seen:
                    seen, progress = count, now
                if now > deadline or now - progress > 120:
                    raise RuntimeError(f"{name}: only {count}/{n} answered after {now - t0:.0f} s "
                                       f"(no progress for {now - progress:.0f} s; see {errf.name})")
                if count >= n:
                    t_answered = now - t0
                    break
                if perf is None and count > 0:
                    # Every thread is up once the first answer came back
                    # (perf -p samples only the threads it found).
                    perf = self.profile(name, proc) or False
                time.sleep(0.02)
            if wait_lag:
                lag_deadline = time.monotonic() + lag_timeout
                while time.monotonic() < lag_deadline:
                    lag = self.lag(group, n)
                    if lag == 0:
                        t_lag0 = time.monotonic() - t0
                        break
                    time.sleep(0.05)
        finally:
            if perf:
                perf.send_signal(signal.SIGINT)
                perf.wait(60)
                self.profiles[name] = profile_summary(os.path.join(self.work, f"perf-{name}.data"))
            st = proc.stop()
            errf.close()
        first, last = sink.first_last()
        res = dict(n=n, t_answered=t_answered, t_lag0=t_lag0, lag=lag, startup=first - wall0,
                   steady=(n - 1) / (last - first) if last > first else float("nan"),
                   conns=sink.connections(), answered=sink.count(), **st)
        res["rate"] = n / (t_lag0 if t_lag0 else t_answered)
        res["rate_answered"] = n / t_answered
        log(f"{name}: {json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in res.items()})}")
        return res

    def profile(self, name, proc):
        """With BENCH_PERF=1, samples the relay process with perf while it
        runs (perf-<name>.data in the scratch dir; see bench/README.md)."""
        if not os.environ.get("BENCH_PERF"):
            return None
        kid = proc.child()
        if not kid:
            return None
        out = os.path.join(self.work, f"perf-{name}.data")
        return subprocess.Popen(["perf", "record", "-q", "-F", "999", "--call-graph", "dwarf,16384",
                                 "-o", out, "-p", str(kid)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def preloaded(self, topic, n):
        """Preloads n events of 2 KB into topic."""
        secs = self.preload(topic, self.events_file(n), n)
        log(f"preloaded {human(n)} events into {topic} in {secs:.1f}s")

    def relay_cmd(self, topic, group, webhook, extra=(), config=None):
        return [self.kb, "-b", self.brokers, "run", "--topic", topic, "--group", group,
                "--webhook", webhook, "--offset-reset", "earliest",
                "--config", config or os.path.join(HERE, "relay.toml"), *extra]

    def same_events(self, name):
        """Scenario 1's events (n, its figures, its topic), preloaded into a
        topic of this scenario's own when it did not run."""
        n = self.cfg["relay_n"]
        relay = self.figures.get("relay")
        topic = relay["topic"] if relay else self.topic(name)
        if not relay:
            self.preloaded(topic, n)
        return n, relay, topic

    def relay_config(self, name, extra):
        """bench/relay.toml with `extra` appended, as relay-<name>.toml."""
        config = os.path.join(self.work, f"relay-{name}.toml")
        with open(os.path.join(HERE, "relay.toml")) as f:
            base = f.read()
        with open(config, "w") as f:
            f.write(base + extra)
        return config

    # ------------------------------------------------------------ scenarios
    def s_sink(self, sink):
        body = os.path.join(self.work, "body.json")
        subprocess.run([sys.executable, os.path.join(HERE, "gen_events.py"), "body", body], check=True)
        secs = self.cfg["wrk_secs"]
        r = subprocess.run(["wrk", "-t2", "-c64", f"-d{secs}s", "-s", os.path.join(HERE, "post.lua"), sink.url],
                           capture_output=True, text=True, env={**os.environ, "BENCH_BODY": body})
        m = re.search(r"Requests/sec:\s*([0-9.]+)", r.stdout)
        if not m:
            raise RuntimeError(f"wrk: {r.stdout[-300:]} {r.stderr[-300:]}")
        rps = float(m.group(1))
        self.figures["sink_rps"] = rps
        size = os.path.getsize(body)
        self.row("Sink alone (nginx, wrk -t2 -c64)", f"{rps:,.0f} req/s ({size} B body)", "reference", "-")
        sink.reset()

    def s_relay(self, sink):
        n = self.cfg["relay_n"]
        topic, group = self.topic("relay"), self.group("relay")
        self.preloaded(topic, n)
        r = self.consume_run("relay", self.relay_cmd(topic, group, sink.url), n, sink, group)
        r["topic"] = topic
        self.figures["relay"] = r
        sink_rps = self.figures.get("sink_rps")
        share = r["rate"] / sink_rps if sink_rps else None
        cpu_us = r["cpu"] / n * 1e6
        verdict = "-" if share is None else (
            "met" if share >= TARGETS["sink_share"] and cpu_us <= TARGETS["cpu_us"] else "MISSED")
        fig = relay_figure(r, n) + (f"; {share:.0%} of sink alone" if share else "")
        self.row("1. Relay throughput (start → all answered, lag 0)", fig,
                 f"≥ {TARGETS['sink_share']:.0%} of sink alone, ≤ {TARGETS['cpu_us']:.0f} µs CPU/event", verdict)
        self.notes.append(
            f"Relay run: first answer {r['startup']:.2f} s after start, steady rate first→last answer "
            f"{r['steady']:,.0f} events/s, all answered at {r['t_answered']:.2f} s, lag 0 at "
            f"{r['t_lag0'] or float('nan'):.2f} s; {r['conns']:,} TCP connections opened to the sink "
            f"for {n:,} requests.")

    def s_jq(self, sink):
        """The relay again, on the same events, with the preset replaced by
        its jq twin (examples/pipelines/guance-easyops.jq) as a route."""
        n, relay, topic = self.same_events("jq")
        group = self.group("jq")
        config = self.relay_config(
            "jq",
            "\n[[route]]\nname = \"easyops-jq\"\n"
            f"map_file = \"{os.path.join(ROOT, 'examples', 'pipelines', 'guance-easyops.jq')}\"\n"
            "key = '.df_fault_id // .df_event_id'\n"
            f"[route.webhook]\nurl = \"{sink.url}\"\ntimeout = \"10s\"\n")
        cmd = [self.kb, "-b", self.brokers, "run", "--topic", topic, "--group", group,
               "--offset-reset", "earliest", "--config", config]
        r = self.consume_run("jq", cmd, n, sink, group)
        self.figures["jq"] = r
        share = r["rate"] / relay["rate"] if relay else None
        verdict = "-" if share is None else ("met" if share >= TARGETS["jq_share"] else "MISSED")
        fig = relay_figure(r, n) + (f"; {share:.0%} of the native preset" if share else "")
        self.row("1b. The same mapping as a jq route", fig,
                 f"≥ {TARGETS['jq_share']:.0%} of the native preset", verdict)

    def s_audit(self, sink):
        """The preset route again, on the same events, with `[audit] topic`:
        one audit record per event, durable before its offset is committed
        (issue 24: at most ~10% of the preset's throughput)."""
        n, relay, topic = self.same_events("audit")
        group = self.group("audit")
        audit_topic = self.topic("audit-log", os.environ.get("BENCH_AUDIT_PARTITIONS"))
        extra = ""
        if not os.environ.get("BENCH_AUDIT_OFF"):  # a control run: the same, no audit
            extra += f"\n[audit]\ntopic = \"{audit_topic}\"\n"
        settings = os.environ.get("BENCH_AUDIT_KAFKA")
        if settings:  # e.g. "compression.type=zstd,linger.ms=50": trying settings
            extra += "[kafka]\n" + "".join(f'"{k}" = "{v}"\n' for k, v in
                                           (kv.split("=", 1) for kv in settings.split(",")))
        cmd = self.relay_cmd(topic, group, sink.url, config=self.relay_config("audit", extra))
        r = self.consume_run("audit", cmd, n, sink, group)
        self.figures["audit"] = r
        share = r["rate"] / relay["rate"] if relay else None
        verdict = "-" if share is None else ("met" if share >= TARGETS["audit_share"] else "MISSED")
        fig = relay_figure(r, n) + (f"; {share:.0%} of the preset without it" if share else "")
        self.row("1c. The preset with an audit record per event ([audit] topic)", fig,
                 f"≥ {TARGETS['audit_share']:.0%} of the preset without it", verdict)

    def s_seed(self, sink):
        seed = self.a.seed
        if not seed or not os.path.exists(seed):
            self.row("2. Seed (Python service) side by side", "skipped: seed_service.py not found "
                     f"({seed or 'unset'}; it lives outside this repository)", f"≥ {TARGETS['seed_ratio']:.0f}×", "-")
            return
        n = self.cfg["seed_n"]
        topic, group = self.topic("seed"), self.group("seed")
        path = self.events_file(n)
        self.preload(topic, path, n)
        env = {**os.environ, "SEED_LOG": os.path.join(self.work, "seed.log")}
        cmd = [sys.executable, seed, self.brokers, topic, sink.url, group, "earliest"]
        # The seed auto-commits every 5 s (librdkafka's default): wait for lag 0
        # only to report it; its rate is taken at "all answered".
        r = self.consume_run("seed", cmd, n, sink, group, wait_lag=True, lag_timeout=15, env=env)
        self.figures["seed"] = r
        relay = self.figures.get("relay")
        if not relay:
            self.row("2. Seed (Python service) side by side",
                     f"{r['rate_answered']:,.0f} events/s; relay run missing", "-", "-")
            return
        ratio_e2e = relay["rate_answered"] / r["rate_answered"]
        ratio_steady = relay["steady"] / r["steady"]
        ratio = min(ratio_e2e, ratio_steady)
        fig = (f"kbridge / seed = {ratio:.1f}× (seed {r['rate_answered']:,.0f} events/s start→all answered, "
               f"{r['steady']:,.0f} steady; N={human(n)}; CPU {r['cpu']:.1f} s; peak RSS {r['rss_mb']:.0f} MB)")
        self.row("2. kbridge / seed, same broker, layout and sink", fig, f"≥ {TARGETS['seed_ratio']:.0f}×",
                 "met" if ratio >= TARGETS["seed_ratio"] else "MISSED")
        self.notes.append(
            f"Seed ratio: start→all answered {ratio_e2e:.1f}×, steady (first→last answer) {ratio_steady:.1f}×; "
            f"the table shows the lower. The seed opened {r['conns']:,} connections for {n:,} requests "
            f"(requests.post without a session); its group reached lag 0 "
            + (f"at {r['t_lag0']:.1f} s" if r["t_lag0"] else "not within 15 s") + " (auto-commit every 5 s).")

    def s_latency(self):
        rate, secs, warm = self.cfg["lat_rate"], self.cfg["lat_secs"], self.cfg["lat_warm"]
        topic, group = self.topic("latency"), self.group("latency")
        lport, mport = free_port(), free_port()
        sinkp = subprocess.Popen([self.a.latsink, "-addr", f"127.0.0.1:{lport}"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        relay = None
        try:
            if not wait_port(lport):
                raise RuntimeError("latsink did not start")
            errf = open(os.path.join(self.work, "latency.stderr"), "w")
            relay = Timed(self.relay_cmd(topic, group, f"http://127.0.0.1:{lport}/alerts",
                                         ["--metrics-addr", f"127.0.0.1:{mport}"]),
                          self.tfile("latency"), stderr=errf)
            end = time.monotonic() + 60
            while time.monotonic() < end:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{mport}/readyz", timeout=1) as resp:
                        if resp.status == 200:
                            break
                except OSError:
                    pass
                time.sleep(0.1)
            else:
                raise RuntimeError("kbridge did not become ready (/readyz) within 60 s")
            p = subprocess.run([sys.executable, os.path.join(HERE, "lat_producer.py"), self.brokers, topic,
                                str(rate), str(secs), str(warm)], capture_output=True, text=True)
            if p.returncode != 0:
                raise RuntimeError(f"lat_producer failed: {p.stdout} {p.stderr[-300:]}")
            prod = json.loads(p.stdout.strip().splitlines()[-1])
            want = prod["sent"]
            end = time.monotonic() + 60
            stats = {}
            while time.monotonic() < end:
                with urllib.request.urlopen(f"http://127.0.0.1:{lport}/stats", timeout=2) as resp:
                    stats = json.loads(resp.read())
                if stats["count"] >= want:
                    break
                time.sleep(0.2)
            with urllib.request.urlopen(f"http://127.0.0.1:{lport}/samples", timeout=10) as resp:
                open(os.path.join(self.work, "latency-samples.txt"), "wb").write(resp.read())
            st = relay.stop()
            relay = None
        finally:
            if relay:
                relay.stop()
            sinkp.terminate()
            sinkp.wait()
        control = self.latency_control(rate, secs, warm)
        self.figures["latency"] = dict(stats=stats, producer=prod, relay=st, kafka_alone=control)
        got = stats.get("count", 0)
        fig = (f"p50 {stats['p50_ms']:.1f} ms, p99 {stats['p99_ms']:.1f} ms, max {stats['max_ms']:.1f} ms "
               f"({got:,}/{want:,} events at {rate}/s for {secs} s)")
        ok = got >= want and stats["p99_ms"] <= TARGETS["p99_ms"]
        self.row("3. Latency produce → webhook", fig, f"p99 ≤ {TARGETS['p99_ms']:.0f} ms",
                 "met" if ok else "MISSED")
        self.notes.append(
            f"Latency: p90 {stats['p90_ms']:.1f} ms, p99.9 {stats['p999_ms']:.1f} ms, min {stats['min_ms']:.1f} ms; "
            f"{warm} s of warm-up events ({stats.get('warmup', 0)}) not counted; producer linger.ms=0, worst pacing "
            f"delay {prod['late_ms_max']} ms; the sink's own time per request p99 {stats['handler_p99_us']:.0f} µs; "
            f"kbridge CPU {st['cpu']:.1f} s, peak RSS {st['rss_mb']:.0f} MB.")
        if control:
            self.row("3b. Control: Kafka alone (produce → plain consumer)",
                     f"p50 {control['p50_ms']:.1f} ms, p99 {control['p99_ms']:.1f} ms, max {control['max_ms']:.1f} ms "
                     f"({control['count']:,} events, same producer and rate, no relay)", "reference", "-")

    def latency_control(self, rate, secs, warm):
        """The same produce pattern read by a plain consumer: the floor that
        the broker and the clients set, without kbridge or HTTP."""
        topic, group = self.topic("latctl"), self.group("latctl")
        ready = os.path.join(self.work, "latctl.ready")
        if os.path.exists(ready):
            os.remove(ready)
        ctl = subprocess.Popen([sys.executable, os.path.join(HERE, "lat_control.py"), self.brokers, topic, group,
                                str(int(rate * secs)), ready, str(secs + 90)],
                               stdout=subprocess.PIPE, text=True)
        end = time.monotonic() + 60
        while not os.path.exists(ready) and time.monotonic() < end and ctl.poll() is None:
            time.sleep(0.1)
        subprocess.run([sys.executable, os.path.join(HERE, "lat_producer.py"), self.brokers, topic,
                        str(rate), str(secs), str(warm)], capture_output=True, text=True)
        out, _ = ctl.communicate(timeout=secs + 120)
        try:
            return json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError):
            return None

    def s_backlog(self, sink):
        n = self.cfg["backlog_n"]
        topic, group = self.topic("backlog"), self.group("backlog")
        path = self.events_file(n)
        secs = self.preload(topic, path, n)
        log(f"preloaded {human(n)} events into {topic} in {secs:.1f}s")
        r = self.consume_run("backlog", self.relay_cmd(topic, group, sink.url), n, sink, group, timeout=3600)
        self.figures["backlog"] = r
        fig = (f"drain {r['rate']:,.0f} events/s ({human(n)} × 2 KB in {r['t_lag0'] or r['t_answered']:.0f} s); "
               f"peak RSS {r['rss_mb']:.0f} MB; CPU {r['cpu']:.0f} s")
        self.row("4. Backlog drain", fig, f"peak RSS ≤ {TARGETS['backlog_rss_mb']:.0f} MB",
                 "met" if r["rss_mb"] <= TARGETS["backlog_rss_mb"] else "MISSED")
        self.notes.append(
            f"Backlog: {human(n)} events preloaded in {secs:.0f} s (kbridge produce --key-field df_fault_id); "
            f"{r['conns']:,} TCP connections opened to the sink.")

    def s_cli(self):
        n, reps = self.cfg["cli_n"], self.cfg["repeats"]
        path = self.events_file(n, 300, "cli")
        mb = os.path.getsize(path) / 1e6
        # The issue-20 shape: 300k lines of about 200 bytes.
        n_small = max(n * 3 // 10, 1)
        path_small = self.events_file(n_small, 200, "cli")

        def best(label, make_cmd, topic_name=None):
            times = []
            for i in range(reps):
                t = self.topic(f"{topic_name}{i}") if topic_name else None
                cmd = make_cmd(t)
                wall, _ = run_timed(cmd, self.tfile(f"cli-{label}-{i}"), shell=True)
                times.append(wall)
            return min(times)

        def interleaved(cases):
            """Producers timed in turns, each into a fresh 6-partition topic,
            after one untimed run of each: a broker's JVM warms up over its
            first runs, so timing one producer's runs all before the other's
            favoured whichever came last. Median of `reps` each."""
            times = {label: [] for label, _ in cases}
            for label, make_cmd in cases:
                run_timed(make_cmd(self.topic(f"cli-{label}-warm")), self.tfile(f"cli-{label}-warm"), shell=True)
            for i in range(reps):
                turn = cases[i % len(cases):] + cases[:i % len(cases)]
                for label, make_cmd in turn:
                    wall, _ = run_timed(make_cmd(self.topic(f"cli-{label}{i}")), self.tfile(f"cli-{label}-{i}"),
                                        shell=True)
                    times[label].append(wall)
            return {label: statistics.median(t) for label, t in times.items()}

        kb, b = self.kb, self.brokers
        big = interleaved([
            ("kb", lambda t: f"'{kb}' -b {b} produce {t} '{path}' --raw -q >/dev/null"),
            ("kbjson", lambda t: f"'{kb}' -b {b} produce {t} '{path}' -q >/dev/null"),
            ("kcat", lambda t: f"kcat -P -b {b} -t {t} -l '{path}'"),
        ])
        small = interleaved([
            ("kbjson-small", lambda t: f"'{kb}' -b {b} produce {t} '{path_small}' -q >/dev/null"),
            ("kcat-small", lambda t: f"kcat -P -b {b} -t {t} -l '{path_small}'"),
        ])
        kb_raw, kb_json, kcat_p = big["kb"], big["kbjson"], big["kcat"]
        src = f"{self.prefix}-cli-kb0"
        kb_c = best("kb-c", lambda _: f"'{kb}' -b {b} consume {src} -e -f json >/dev/null")
        kcat_c = best("kcat-c", lambda _: f"kcat -C -b {b} -t {src} -e -J -q >/dev/null")
        # The consumers really read everything (checked once, not timed).
        counts = {}
        for label, cmd in (("kbridge", f"'{kb}' -b {b} consume {src} -e -f json | wc -l"),
                           ("kcat", f"kcat -C -b {b} -t {src} -e -J -q | wc -l")):
            counts[label] = int(subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip() or 0)
        self.figures["cli"] = dict(kb_raw=kb_raw, kb_json=kb_json, kcat_p=kcat_p, kb_c=kb_c, kcat_c=kcat_c,
                                   kb_json_small=small["kbjson-small"], kcat_small=small["kcat-small"],
                                   counts=counts)

        def row(name, kbt, kct, t, count=n):
            ratio = round(kct / kbt, 2)  # judged as shown
            self.row(name, f"kbridge {kbt:.2f} s, kcat {kct:.2f} s → {ratio:.2f}× kcat's speed "
                           f"({count / kbt:,.0f} vs {count / kct:,.0f} msg/s)",
                     f"≥ {t:.1f}×", "met" if ratio >= t else "MISSED")

        row(f"5a. CLI produce --raw ({human(n)} × 300 B, {mb:.0f} MB)", kb_raw, kcat_p, TARGETS["produce_ratio"])
        row("5b. CLI produce, JSON-validated (vs kcat -P)", kb_json, kcat_p, TARGETS["produce_ratio"])
        row(f"5b'. CLI produce, JSON-validated, {human(n_small)} × 200 B", small["kbjson-small"],
            small["kcat-small"], TARGETS["produce_ratio"], n_small)
        row(f"5c. CLI consume -e -f json (vs kcat -C -e -J)", kb_c, kcat_c, TARGETS["consume_ratio"])
        self.small_ops()
        if counts["kbridge"] != n or counts["kcat"] != n:
            self.notes.append(f"CLI consume count check: kbridge {counts['kbridge']}, kcat {counts['kcat']} (expected {n}).")
        self.notes.append(f"CLI: produce runs interleaved after one untimed run each, median of {reps}, a fresh "
                          f"6-partition topic per run; consume best of {reps}; both "
                          f"consumers read the topic kbridge produced ({counts['kbridge']:,} / {counts['kcat']:,} "
                          f"lines checked).")

    def small_ops(self):
        """Small operations, start to exit: listing the topics, and producing
        1,000 short lines into an existing topic (everything flushed before
        exit), median of 5 runs each beside kcat's."""
        kb, b = self.kb, self.brokers
        topic = self.topic("small")
        lines = os.path.join(self.work, "small-1000.jsonl")
        with open(lines, "w") as f:
            for i in range(1000):
                f.write(json.dumps({"n": i, "msg": "small operation"}) + "\n")

        def median(cmd):
            times = []
            for _ in range(5):
                t0 = time.monotonic()
                subprocess.run(cmd, shell=True, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                times.append(time.monotonic() - t0)
            return statistics.median(times)

        cases = [
            ("5d. topics list (vs kcat -L), wall time", f"'{kb}' -b {b} topics list", f"kcat -b {b} -L"),
            ("5e. produce 1,000 lines (vs kcat -P -l), wall time", f"'{kb}' -b {b} produce {topic} '{lines}' -q",
             f"kcat -P -b {b} -t {topic} -l '{lines}'"),
        ]
        small = {}
        for name, kb_cmd, kcat_cmd in cases:
            kbt, kct = median(kb_cmd), median(kcat_cmd)
            small[name[:3]] = dict(kbridge=kbt, kcat=kct)
            slow = kbt / kct
            self.row(name, f"kbridge {kbt * 1000:.0f} ms, kcat {kct * 1000:.0f} ms → {slow:.1f}× kcat's time",
                     f"≤ {TARGETS['small_slowdown']:.0f}× kcat's time",
                     "met" if slow <= TARGETS["small_slowdown"] else "MISSED")
        self.figures["small"] = small
        self.notes.append("Small operations: median of 5 runs each, process start to exit, against the same broker.")

    # ------------------------------------------------------------ report
    def machine(self):
        def sh(cmd):
            r = subprocess.run(cmd, shell=True, capture_output=True, text=True)
            return r.stdout.strip()

        model = sh("lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1")
        fam = sh("lscpu | sed -n 's/^CPU family:[[:space:]]*//p' | head -1")
        mod = sh("lscpu | sed -n 's/^Model:[[:space:]]*//p' | head -1")
        hyp = sh("lscpu | sed -n 's/^Hypervisor vendor:[[:space:]]*//p' | head -1")
        model += f" (family {fam}, model {mod})" if fam else ""
        model += f", {hyp} guest" if hyp else ""
        mem = sh("free -g | awk '/^Mem:/{print $2}'")
        return {
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "cpu": f"{sh('nproc')} vCPU, {model}",
            "memory": f"{mem} GiB",
            "kernel": platform.release(),
            "os": sh(". /etc/os-release && echo $PRETTY_NAME"),
            "kafka": f"Apache Kafka 4.4.0 (KRaft, one combined broker/controller started by scripts/test-kafka.sh, "
                     f"-Xmx512m), same host, at {self.brokers}",
            "kbridge": sh(f"'{self.kb}' -V") + " (src of commit " + sh(f"cd '{ROOT}' && git log -1 --format=%h -- src Cargo.toml Cargo.lock")
                       + "), librdkafka " + sh(f"grep -A1 'name = \"rdkafka-sys\"' '{ROOT}/Cargo.lock' | sed -n 's/.*+\\(.*\\)\"/\\1/p'"),
            **({"kbridge": f"{sh(repr(self.kb) + ' -V')}, binary given by KBRIDGE_BIN={os.environ['KBRIDGE_BIN']}"}
               if os.environ.get("KBRIDGE_BIN") else {}),
            "kcat": "kcat " + sh("kcat -V 2>&1 | grep -o 'Version [0-9.]*' | cut -d' ' -f2") + ", "
                    + sh("kcat -V 2>&1 | grep -o 'librdkafka [0-9.]*'"),
            "nginx": sh("nginx -v 2>&1 | cut -d/ -f2"),
        }

    def report(self, load_start, load_end, started):
        m = self.machine()
        mode = "quick" if self.a.quick else "full"
        w = [max(len(r[i]) for r in self.rows + [("Scenario", "Figure", "Target", "Verdict")]) for i in range(4)]
        lines = []
        hdr = ("Scenario", "Figure", "Target", "Verdict")
        lines.append("  ".join(h.ljust(w[i]) for i, h in enumerate(hdr)))
        lines.append("  ".join("-" * w[i] for i in range(4)))
        for r in self.rows:
            lines.append("  ".join(c.ljust(w[i]) for i, c in enumerate(r)))
        print()
        print(f"kbridge benchmark ({mode} run, {m['date']}, {m['cpu']}, {m['memory']})")
        print("\n".join(lines))
        print()
        md = [f"# kbridge benchmark results ({mode} run)", "",
              f"Run with `bench/run.sh{' --quick' if self.a.quick else ''}` on {m['date']} "
              f"({(time.monotonic() - started) / 60:.0f} min).", "",
              "| Machine | |", "|---|---|"]
        for k in ("cpu", "memory", "kernel", "os", "kafka", "kbridge", "kcat", "nginx"):
            md.append(f"| {k} | {m[k]} |")
        md.append(f"| load average (1/5/15 min) | at start {load_start}; at end {load_end} |")
        md += ["", "| Scenario | Figure | Target | Verdict |", "|---|---|---|---|"]
        for r in self.rows:
            md.append("| " + " | ".join(c.replace("|", "\\|") for c in r) + " |")
        md += ["", "Notes:", ""] + [f"- {n}" for n in self.notes] + [""]
        for name, prof in self.profiles.items():
            md += [f"Profile of the `{name}` run (perf, sampled while it ran; BENCH_PERF=1): share of the "
                   "relay's CPU samples by part, then the top symbols by self time.", "",
                   "| part | share |", "|---|---|"]
            md += [f"| {part} | {pct:.1f}% |" for part, pct in prof["parts"]]
            md += [f"| kbridge: {crate} | {pct:.1f}% |" for crate, pct in prof["crates"]]
            md += ["", "| self | symbol |", "|---|---|"]
            md += [f"| {pct:.1f}% | `{sym}` |" for pct, sym in prof["top"]]
            md.append("")
        md += ["Raw figures:", "", "```json", json.dumps(self.figures, indent=1, default=str), "```", ""]
        out = self.a.out or os.path.join(self.work, f"results-{mode}.md")
        open(out, "w").write("\n".join(md))
        log(f"results written to {out}")

    def cleanup(self):
        for g in self.groups:
            self.kbc("groups", "delete", g, check=False)
        for i in range(0, len(self.topics), 20):
            self.kbc("topics", "delete", *self.topics[i:i + 20], check=False)


def loadavg():
    return " ".join(open("/proc/loadavg").read().split()[:3])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kbridge", required=True)
    ap.add_argument("--brokers", default="127.0.0.1:19092")
    ap.add_argument("--work", required=True)
    ap.add_argument("--latsink", required=True)
    ap.add_argument("--seed", default=os.path.normpath(os.path.join(ROOT, "..", "shared", "peers", "seed_service.py")))
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out")
    ap.add_argument("--only", help="comma-separated subset: sink,relay,jq,audit,seed,latency,backlog,cli")
    ap.add_argument("--keep", action="store_true", help="keep the topics and groups")
    a = ap.parse_args()
    b = Bench(a)
    started = time.monotonic()
    load_start = loadavg()
    only = set(a.only.split(",")) if a.only else None
    sink = Nginx(a.work, free_port())
    b.warm_up()
    try:
        for name, fn in (("sink", lambda: b.s_sink(sink)), ("relay", lambda: b.s_relay(sink)),
                         ("jq", lambda: b.s_jq(sink)), ("audit", lambda: b.s_audit(sink)), ("seed", lambda: b.s_seed(sink)), ("latency", b.s_latency),
                         ("backlog", lambda: b.s_backlog(sink)), ("cli", b.s_cli)):
            if only and name not in only:
                continue
            log(f"--- scenario {name}")
            try:
                fn()
            except Exception as e:  # one failing scenario does not hide the others
                b.row(name, f"ERROR: {e}", "-", "error")
    finally:
        sink.stop()
        if not a.keep:
            b.cleanup()
    b.report(load_start, loadavg(), started)


if __name__ == "__main__":
    main()
