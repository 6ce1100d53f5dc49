#!/usr/bin/python3
"""Sluice integration suite: real clients against the real daemon, with
librdkafka's mock cluster (tests/mock/sl_mock.c) and a real Apache Kafka 4
cluster (tests/integration/kafka_cluster.py) upstream.

  /usr/bin/python3 tests/integration/run.py --sluice build/sluice \\
      --mock build/tests/sl-mock [-k NAME ...] [--upstreams mock,kafka,kafka3]
      [--direct] [--logdir DIR] [--list]

The mock is fresh for each test. The real clusters (one node, "kafka"; three
nodes, "kafka3") are started once, when the first test that needs one runs,
shared by all tests of that kind (each on topics of its own), and stopped
when the last one is done: tests run grouped by upstream.

Prints "ok NAME", "FAIL NAME: reason" (details indented below) or
"skip NAME: reason" per test, then "RESULT <passed> <failed>". Exit status 1
if any test failed.

DIRECT mode (--direct or SLUICE_DIRECT=1) points the clients straight at the
mock: it checks the tests themselves, and is the reference behaviour. Tests
registered with direct=False (proxy-only semantics) are skipped there.
"""

import argparse
import os
import signal
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import harness  # noqa: E402
from harness import Env, Skip, TestFailure  # noqa: E402

import tests_clients  # noqa: E402,F401  (registers tests)
import tests_faults  # noqa: E402,F401
import tests_protocol  # noqa: E402,F401
import tests_policy  # noqa: E402,F401
import tests_limits  # noqa: E402,F401
import tests_admin  # noqa: E402,F401
import tests_pressure  # noqa: E402,F401
import tests_kafka  # noqa: E402,F401
import tests_realclients  # noqa: E402,F401
import tests_legacy  # noqa: E402,F401
import tests_clientsec  # noqa: E402,F401
import tests_demo  # noqa: E402,F401
import tests_security  # noqa: E402,F401
from kafka_cluster import KafkaCluster, NetNS  # noqa: E402


# confluent-kafka 1.7.0 (Debian 12) under Python 3.11 drops a few more
# references to None than it takes (seen as "Fatal Python error: none_dealloc"
# at interpreter exit). Holding many references keeps None's count away from
# zero during the run; main() ends with os._exit() so finalization never
# counts down to the deficit.
_NONE_PIN = [None] * 1000000


class HardTimeout(Exception):
    pass


def _alarm(signum, frame):
    raise HardTimeout("hard test timeout")


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sluice", help="path to the sluice binary")
    ap.add_argument("--mock", required=True, help="path to sl-mock")
    ap.add_argument("-k", action="append", default=[],
                    help="run only tests whose name contains this (repeatable)")
    ap.add_argument("--direct", action="store_true",
                    default=os.environ.get("SLUICE_DIRECT", "") not in ("", "0"),
                    help="clients talk straight to the mock (no sluice)")
    ap.add_argument("--logdir", help="where per-test logs go (default: a new temp dir)")
    ap.add_argument("--upstreams",
                    default=os.environ.get("SLUICE_UPSTREAMS", ",".join(harness.UPSTREAMS)),
                    help="comma-separated upstream kinds to run: mock, kafka (one-node Apache "
                         "Kafka), kafka3 (three nodes), kafkanet (one node in a network "
                         "namespace, root only); default all")
    ap.add_argument("--list", action="store_true", help="list test names and exit")
    ap.add_argument("--all", action="store_true",
                    help="in DIRECT mode, run the proxy-only tests too (to see the mock's answers)")
    cfg = ap.parse_args()

    kinds = [k for k in cfg.upstreams.split(",") if k]
    for k in kinds:
        if k not in harness.UPSTREAMS:
            ap.error("unknown upstream %r (have %s)" % (k, ", ".join(harness.UPSTREAMS)))
    tests = [t for t in harness.TESTS
             if t["kind"] in kinds and (not cfg.k or any(k in t["name"] for k in cfg.k))]
    order = {k: i for i, k in enumerate(harness.UPSTREAMS)}
    tests.sort(key=lambda t: order[t["kind"]])  # stable: registration order within a kind
    if cfg.list:
        for t in tests:
            print(t["name"] + ("" if t["direct"] is True else "  (proxy-only)"))
        return 0
    if not cfg.direct and not cfg.sluice:
        ap.error("--sluice is required unless --direct")
    cfg.mock = os.path.abspath(cfg.mock)
    if cfg.sluice:
        cfg.sluice = os.path.abspath(cfg.sluice)
    for what, path in (("mock", cfg.mock), ("sluice", None if cfg.direct else cfg.sluice)):
        if path and not os.access(path, os.X_OK):
            ap.error("%s binary %s is not executable" % (what, path))
    cfg.logdir = os.path.abspath(cfg.logdir or tempfile.mkdtemp(prefix="sluice-it-"))
    os.makedirs(cfg.logdir, exist_ok=True)
    print("# mode: %s; logs in %s" % ("DIRECT (clients -> mock)" if cfg.direct
                                        else "sluice " + cfg.sluice, cfg.logdir))
    sys.stdout.flush()

    signal.signal(signal.SIGALRM, _alarm)
    passed = failed = skipped = 0
    failed_kinds = set()  # upstream kinds with a failed test: keep their data
    timings = []
    t_all = time.monotonic()
    clusters = {}  # kind -> KafkaCluster, or the error that kept it from starting
    left = {}
    for t in tests:
        left[t["kind"]] = left.get(t["kind"], 0) + 1

    def cluster_for(kind):
        if kind == "mock":
            return None
        if kind not in clusters:
            t0 = time.monotonic()
            nodes = 3 if kind == "kafka3" else 1
            c = None
            signal.alarm(300)
            try:
                ns = NetNS(kind).create() if kind == "kafkanet" else None
                # The one-node cluster also has a SASL_SSL listener
                # (tests_security); the others only PLAINTEXT.
                c = KafkaCluster(root=os.path.join(cfg.logdir, kind), nodes=nodes,
                                 heap_mb=320 if nodes > 1 else 512, name=kind, netns=ns,
                                 sasl_ssl=kind == "kafka")
                clusters[kind] = c.start()
                print("# %s: %d-node Apache Kafka at %s%s, started in %.1fs; logs in %s"
                      % (kind, nodes, c.bootstrap,
                         " (SASL_SSL %s)" % c.sasl_ssl_bootstrap if c.sasl_ssl else "",
                         time.monotonic() - t0, c.root))
            except Exception as e:  # noqa: BLE001 - every test of the kind fails with it
                if c is not None:
                    c.stop()
                clusters[kind] = "could not start the %s cluster: %s" % (kind, e)
            finally:
                signal.alarm(0)
            sys.stdout.flush()
        c = clusters[kind]
        if isinstance(c, str):
            raise TestFailure(c)
        return c

    for t in tests:
        name = t["name"]
        left[t["kind"]] -= 1
        if cfg.direct and t["direct"] is not True and not cfg.all:
            print("skip %s: %s" % (name, t["direct"] or "proxy-only"))
            skipped += 1
            continue
        t0 = time.monotonic()
        err = None
        env = None
        try:
            cluster = cluster_for(t["kind"])
        except TestFailure as e:
            print("FAIL %s: %s" % (name, str(e).splitlines()[0]))
            for line in str(e).splitlines()[1:30]:
                print("    " + line)
            failed += 1
            continue
        signal.alarm(t["timeout"])
        try:
            env = Env(cfg, name, sluice_args=t["sluice_args"], brokers=t["brokers"],
                      kind=t["kind"], cluster=cluster)
            t["fn"](env)
        except Skip as e:
            err = "skip"
            skip_reason = str(e)
        except (TestFailure, HardTimeout) as e:
            err = str(e)
        except Exception:
            err = "exception: " + traceback.format_exc()
        finally:
            signal.alarm(0)
        if env is not None:
            signal.alarm(60)
            try:
                env.close()
            except (TestFailure, HardTimeout) as e:
                if err is None or err == "skip":
                    err = str(e)
                else:
                    err += "\n(also at shutdown: %s)" % str(e).splitlines()[0]
            except Exception:
                if err is None:
                    err = "exception at shutdown: " + traceback.format_exc()
            finally:
                signal.alarm(0)
        dt = time.monotonic() - t0
        timings.append((dt, name))
        if err is None:
            print("ok %s" % name)
            passed += 1
        elif err == "skip":
            print("skip %s: %s" % (name, skip_reason))
            skipped += 1
        else:
            lines = err.rstrip().splitlines() or ["(no reason)"]
            print("FAIL %s: %s" % (name, lines[0]))
            for line in lines[1:60]:
                print("    " + line)
            if len(lines) > 60:
                print("    ... (%d more lines)" % (len(lines) - 60))
            if env is not None and env.sluice_log:
                print("    sluice log: %s" % env.sluice_log)
            failed += 1
            failed_kinds.add(t["kind"])
        sys.stdout.flush()
        if left[t["kind"]] == 0 and isinstance(clusters.get(t["kind"]), KafkaCluster):
            c = clusters.pop(t["kind"])
            c.stop(keep_data=t["kind"] in failed_kinds)
            if t["kind"] in failed_kinds:
                print("# %s: a test failed; its data is kept in %s" % (t["kind"], c.root))

    for kind, c in clusters.items():
        if isinstance(c, KafkaCluster):
            c.stop(keep_data=kind in failed_kinds)
    with open(os.path.join(cfg.logdir, "timings.txt"), "w") as f:
        for dt, name in sorted(timings, reverse=True):
            f.write("%7.2f %s\n" % (dt, name))
    slow = sorted(timings, reverse=True)[:5]
    print("# %d skipped; %.1fs in all; slowest: %s" % (
        skipped, time.monotonic() - t_all,
        ", ".join("%s %.1fs" % (n, d) for d, n in slow)))
    print("RESULT %d %d" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        rc = main()
    finally:
        import harness
        harness.run_at_end()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc)
