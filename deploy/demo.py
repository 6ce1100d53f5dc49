#!/usr/bin/python3
"""deploy/demo.py: what Sluice is for, in one minute (deploy/try.sh --demo).

Starts, on this machine only:
  - a mock Kafka cluster of 3 brokers (librdkafka's, tests/sl-mock, steerable);
  - Sluice in front of it on 127.0.0.1:9092, its status page and API on
    http://127.0.0.1:9644/, with an example policy (deploy/demo-policy.json):
    a fragile CDC connector with a guaranteed 1 MiB/s, a bounded SaaS fleet
    under a 2 MiB/s quota and an elastic backfill, pressure control on;
  - three producers (bench/loadgen) at steady rates: cdc 1 MiB/s, saas
    1.5 MiB/s, backfill 3 MiB/s, all to topics that broker 1 leads.

Then tells a story, announced in this terminal with what to look at and the
curl command that does the same by hand, and marked on the status page's
charts (POST /v1/annotations):
  1. steady: every class at its rate;
  2. broker 1's round trip rises by 300 ms: Sluice sheds in class order
     (backfill first, cdc kept at its guarantee);
  3. broker 1 is back: the limit climbs and lets go;
  4. the backfill is paused through the admin API, then resumed.
and again, until Ctrl-C, which stops everything it started and exits 0.

    deploy/demo.py [--fast] [--cycles N] [--listen H:P] [--http H:P] [--build-dir DIR]

--fast shortens every step (for the test suite); --cycles N stops after N.
Progress lines start with "STEP <n> <name>" (the test suite reads them).
"""
import argparse
import importlib.machinery
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The pressure benchmark's helpers: sl-mock's command protocol, waiting for
# a port.
_bench = importlib.machinery.SourceFileLoader(
    "sluice_bench_pressure", os.path.join(ROOT, "bench", "pressure")).load_module()

RECORD = 1024
# name (= client.id = connector = topic demo-<name>), class, MiB/s
LOADS = [("cdc", "fragile", 1.0), ("saas", "bounded", 1.5), ("backfill", "elastic", 3.0)]
SLOW = 1
RTT_MS = 300
STEPS = {  # seconds: normal, --fast
    "steady": (20, 8), "latency": (25, 10), "recovery": (25, 12), "pause": (12, 6),
    "resume": (8, 4),
}


def policy():
    return {
        "version": 1,
        "capacity": {"bytes_per_sec": "8MiB"},
        "pressure": {"enabled": True, "latency_target_ms": 50, "memory_high_water_pct": 80,
                     "min_bytes_per_sec": "256KiB", "decrease_pct": 30, "recovery_ms": 2000},
        "classes": {
            "elastic": {"shed_order": 0, "max_pause_ms": 5000},
            "bounded": {"shed_order": 1, "max_pause_ms": 1000},
            "fragile": {"shed_order": 2, "max_pause_ms": 200,
                        "guarantee_bytes_per_sec": "1MiB"},
        },
        "connectors": {
            "cdc": {"class": "fragile", "match": {"client_ids": ["cdc"]}},
            "saas": {"class": "bounded", "match": {"client_ids": ["saas"]},
                     "quota": {"bytes_per_sec": "2MiB"}},
            "backfill": {"class": "elastic", "match": {"client_ids": ["backfill"]}},
        },
        "defaults": {"action": "admit", "class": "elastic"},
    }


def say(msg=""):
    print(msg, flush=True)


class Demo:
    def __init__(self, args):
        self.args = args
        self.procs = []
        self.http = "http://%s" % args.http
        self.token = args.token or secrets.token_hex(12)
        self.mock = None

    def start(self, cmd, **kw):
        # A session of its own: Ctrl-C reaches the demo only, which then
        # stops everything in order.
        p = subprocess.Popen(cmd, start_new_session=True, **kw)
        self.procs.append(p)
        return p

    def api(self, path, body=None):
        req = urllib.request.Request(
            self.http + path, data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": "Bearer " + self.token,
                     "Content-Type": "application/json"},
            method="GET" if body is None else "POST")
        with urllib.request.urlopen(req, timeout=5) as r:
            return json.loads(r.read().decode() or "null")

    def curl(self, path, body):
        return ("curl -s -H 'Authorization: Bearer %s' -d '%s' %s%s"
                % (self.token, json.dumps(body), self.http, path))

    def note(self, text):
        self.api("/v1/annotations", {"text": text})

    def setup(self):
        a, bdir = self.args, self.args.build_dir
        logdir = a.logdir
        os.makedirs(logdir, exist_ok=True)
        self.mock = self.start([os.path.join(bdir, "tests", "sl-mock"), "--brokers", "3"],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        boot = self.mock.stdout.readline().split()
        if len(boot) != 2 or boot[0] != "BOOTSTRAP":
            raise RuntimeError("sl-mock did not start")
        for name, _, _ in LOADS:
            _bench.mock_cmd(self.mock, "create demo-%s 3 3" % name)
            for part in range(3):
                _bench.mock_cmd(self.mock, "leader demo-%s %d %d" % (name, part, SLOW))
        pol = os.path.join(logdir, "demo-policy.json")
        with open(pol, "w") as f:
            json.dump(policy(), f, indent=1)
        self.slog = open(os.path.join(logdir, "sluice.log"), "w")
        port = int(a.listen.rsplit(":", 1)[1])
        sluice = self.start([os.path.join(bdir, "sluice"), "--listen", a.listen,
                             "--upstream", boot[1], "--policy", pol,
                             "--http.listen", a.http, "--http.admin_token", self.token,
                             "--log_level", "info", "--shutdown_timeout_ms", "3000"],
                            stdout=self.slog, stderr=subprocess.STDOUT)
        hport = int(a.http.rsplit(":", 1)[1])
        if not (_bench.wait_port(port, sluice, 15) and _bench.wait_port(hport, sluice, 5)):
            raise RuntimeError("sluice did not start; see %s" % self.slog.name)
        for name, _, mibs in LOADS:
            self.start([os.path.join(bdir, "bench", "loadgen"), "--bootstrap", a.listen,
                        "--topic", "demo-" + name, "--client-id", name, "--label", name,
                        "-c", "3", "-s", str(RECORD), "-n", "16", "-i", "32",
                        "-r", "%.0f" % (mibs * 1048576 / RECORD), "-w", "0",
                        "-d", "86400", "--drain", "1"],
                       stdout=subprocess.DEVNULL,
                       stderr=open(os.path.join(logdir, name + ".err"), "w"))
        say()
        say("  Sluice is up on %s, in front of a mock cluster of 3 brokers." % a.listen)
        say("  Status page:  %s/?window=2m   (rates by class and connector," % self.http)
        say("                throttling with its reason, broker latency, events)")
        say("  Metrics:      %s/metrics" % self.http)
        say("  Producers:    cdc (fragile, 1 MiB/s guaranteed), saas (bounded, 2 MiB/s quota),")
        say("                backfill (elastic), at 1, 1.5 and 3 MiB/s, all led by broker 1.")
        say("  Logs:         %s" % logdir)
        say("  Processes:    %s" % " ".join(str(p.pid) for p in self.procs))
        say("  Stop with Ctrl-C.")
        say()

    def step(self, n, name, secs, lines):
        say("STEP %d %s (%d s)" % (n, name, secs))
        for line in lines:
            say("    " + line)
        self.sleep(secs)

    def sleep(self, secs):
        end = time.monotonic() + secs
        while time.monotonic() < end:
            for p in self.procs:
                if p.poll() is not None:
                    raise RuntimeError("%s exited with %d" % (p.args[0], p.returncode))
            time.sleep(min(0.2, max(0.0, end - time.monotonic())))

    def cycle(self):
        fast = 1 if self.args.fast else 0
        d = {k: v[fast] for k, v in STEPS.items()}
        self.note("steady: every class at its rate")
        self.step(1, "steady", d["steady"], [
            "Every class gets what it sends: Class rates and Connector rates are flat.",
            "The saas fleet sends 1.5 MiB/s under its 2 MiB/s quota: no throttling."])
        _bench.mock_cmd(self.mock, "rtt %d %d" % (SLOW, RTT_MS))
        self.note("broker %d: round trip +%d ms" % (SLOW, RTT_MS))
        self.step(2, "latency", d["latency"], [
            "Broker %d's round trip rose by %d ms (the mock: rtt %d %d)." % (SLOW, RTT_MS, SLOW,
                                                                         RTT_MS),
            "Watch Broker latency climb past the 50 ms target, then Throttling: backfill",
            "(elastic) is cut first, saas (bounded) next; cdc (fragile) keeps its 1 MiB/s.",
            "Events: 'broker 1 limited'. The Brokers table shows the admitted rate.",
            "By hand: curl -s %s/v1/status | python3 -m json.tool | less" % self.http])
        _bench.mock_cmd(self.mock, "rtt %d 0" % SLOW)
        self.note("broker %d: round trip back to normal" % SLOW)
        self.step(3, "recovery", d["recovery"], [
            "Broker %d is fast again: the limit climbs back and lets go" % SLOW,
            "(Events: 'broker 1 recovered'); the backfill catches up."])
        self.api("/v1/connectors/backfill/pause", {})
        self.step(4, "pause", d["pause"], [
            "An operator paused the backfill through the admin API, as you can:",
            self.curl("/v1/connectors/backfill/pause", {}),
            "Its rate drops to zero; its producer is muted, not failed; the others go on."])
        self.api("/v1/connectors/backfill/resume", {})
        self.step(5, "resume", d["resume"], [
            "Resumed:", self.curl("/v1/connectors/backfill/resume", {}),
            "The backfill writes again."])

    def stop(self):
        """Everything started, last first: producers, Sluice (SIGTERM:
        in-flight records are finished), the mock."""
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in reversed(self.procs):
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fast", action="store_true", help="short steps (for the test suite)")
    ap.add_argument("--cycles", type=int, default=0, help="stop after N cycles (0: never)")
    ap.add_argument("--listen", default="127.0.0.1:9092")
    ap.add_argument("--http", default="127.0.0.1:9644")
    ap.add_argument("--token", help="admin token (default: a random one, printed)")
    ap.add_argument("--build-dir", default=os.path.join(ROOT, "build"))
    ap.add_argument("--logdir", default=None, help="default: a new folder under /tmp")
    args = ap.parse_args()
    if args.logdir is None:
        import tempfile
        args.logdir = tempfile.mkdtemp(prefix="sluice-demo-")
    demo = Demo(args)
    stopping = []

    def on_signal(signum, frame):
        stopping.append(signum)
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_signal)
    rc = 0
    try:
        demo.setup()
        n = 0
        while args.cycles == 0 or n < args.cycles:
            demo.cycle()
            n += 1
    except KeyboardInterrupt:
        say("\nstopping: producers, then Sluice (it finishes in-flight records), then the mock")
    except Exception as e:  # noqa: BLE001 - report, stop everything, fail
        say("demo failed: %s" % e)
        rc = 1
    finally:
        demo.stop()
    say("stopped.")
    return rc


if __name__ == "__main__":
    sys.exit(main())
