"""Pressure control through Sluice (issue 4): a slow upstream broker is met
by shedding the traffic that goes to it, in class order, and only that.

Three mock brokers. One paced librdkafka producer per class writes to a
topic whose partition broker 1 leads; a control producer (elastic too)
writes to three partitions, one led by each broker. Broker 1's round-trip time
goes from ~1 ms to 300 ms for 10 s and back.

Rates per broker and class are what Sluice admitted
(sluice_broker_class_bytes_total, sampled every 250 ms); the control
traffic is also measured at the upstream (high watermarks of brokers 2
and 3). Every acknowledged record is checked upstream at the end.
"""

import os
import re
import threading
import time
import urllib.request

from harness import Mock, Sluice, check, eq, fail, free_port, log, register, total_high, wait_for
from tests_policy import MIB, Flood, nothing_lost, policy_file, rate

HTTP_PORT = free_port()
POLICY = policy_file("pressure", {
    "version": 1,
    "capacity": {"bytes_per_sec": "200MiB"},
    "pressure": {"latency_target_ms": 100, "min_bytes_per_sec": "128KiB",
                 "recovery_ms": 2000},
    "classes": {
        "elastic": {"shed_order": 0, "max_pause_ms": 5000},
        "bounded": {"shed_order": 1, "max_pause_ms": 1000},
        "fragile": {"shed_order": 2, "max_pause_ms": 200,
                    "guarantee_bytes_per_sec": "1MiB"},
    },
    "connectors": {
        "backfill": {"class": "elastic", "match": {"client_ids": ["backfill"]}},
        "saas": {"class": "bounded", "match": {"client_ids": ["saas"]}},
        "cdc": {"class": "fragile", "match": {"client_ids": ["cdc"]}},
        "other": {"class": "elastic", "match": {"client_ids": ["other"]}},
    },
    "defaults": {"action": "admit", "class": "elastic"},
})
ARGS = ["--policy", POLICY, "--http.listen", "127.0.0.1:%d" % HTTP_PORT]

# Sources that care about their data produce idempotently (at most 5
# requests in flight, so batches grow when the round trip does).
IDEMPOTENT = {"enable.idempotence": True}
WANT = {"elastic": 3 * MIB, "bounded": 1.5 * MIB, "fragile": 1 * MIB}
OTHER = 3 * MIB


def scrape(port=None):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % (port or HTTP_PORT),
                                timeout=5) as r:
        text = r.read().decode()
    out = {}
    for m in re.finditer(r'^sluice_broker_class_bytes_total\{broker="(\d+)",class="(\w+)"\} (\S+)$',
                         text, re.M):
        out[(int(m.group(1)), m.group(2))] = float(m.group(3))
    return out, text


class Sampler:
    """Admitted bytes per (broker, class) every 250 ms, with timestamps."""

    def __init__(self, port=None):
        self.pts = []
        self.port = port

    def sample(self):
        self.pts.append((time.monotonic(), scrape(self.port)[0]))

    def run_for(self, seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.sample()
            time.sleep(0.25)

    def rate(self, key, t0, t1, min_pts=3, strict=True):
        """Mean bytes/s of key between monotonic times t0 and t1; with
        fewer than min_pts samples a failure, or NaN when not strict (for
        values that are only logged)."""
        inside = [(t, v.get(key, 0.0)) for t, v in self.pts if t0 <= t <= t1]
        if len(inside) < min_pts:
            check(not strict, "too few samples in [%.1f, %.1f]" % (t0, t1))
            return float("nan")
        (ta, va), (tb, vb) = inside[0], inside[-1]
        return (vb - va) / (tb - ta)


def pin(env, topic, partition, broker):
    env.mock.cmd("leader %s %d %d" % (topic, partition, broker))


def test_slow_broker_sheds_by_class(env):
    topics = {}
    for cls in WANT:
        topics[cls] = env.topic(cls, 1)
        pin(env, topics[cls], 0, 1)
    # The control: an elastic producer writing to all three brokers (one
    # partition each), with a client buffer large enough to ride out the step.
    t_other = env.topic("other", 3)
    for p in range(3):
        pin(env, t_other, p, p + 1)
    floods = {
        "elastic": Flood("librdkafka", env.bootstrap, "backfill", topics["elastic"],
                         pace_bps=WANT["elastic"], conf=IDEMPOTENT),
        "bounded": Flood("librdkafka", env.bootstrap, "saas", topics["bounded"],
                         pace_bps=WANT["bounded"], conf=IDEMPOTENT),
        "fragile": Flood("librdkafka", env.bootstrap, "cdc", topics["fragile"],
                         pace_bps=WANT["fragile"], conf=IDEMPOTENT),
    }
    other = Flood("librdkafka", env.bootstrap, "other", t_other, pace_bps=OTHER, partitions=3,
                  conf=dict(IDEMPOTENT, **{"queue.buffering.max.kbytes": 65536}))
    s = Sampler()
    try:
        wait_for(lambda: all(total_high(env.upstream, t, 1) > 100 for t in topics.values()),
                 30, "every class upstream")
        time.sleep(2)
        s.run_for(4)
        base = {c: s.rate((1, c), s.pts[0][0], s.pts[-1][0]) for c in WANT}
        base_other = sum(s.rate((b, "elastic"), s.pts[0][0], s.pts[-1][0]) for b in (2, 3))
        base_other_up = rate_parts(env, t_other, 3, (1, 2))
        log("before: " + fmt(base) + ", other %.2f MiB/s (upstream %.2f)"
            % (base_other / MIB, base_other_up / MIB))
        for c in WANT:
            check(base[c] >= 0.9 * WANT[c], "%s only reached %.2f MiB/s before the step"
                  % (c, base[c] / MIB))

        env.mock.cmd("rtt 1 300")
        t_step = time.monotonic()
        s.run_for(3)
        mid = {}
        th = threading.Thread(target=lambda: mid.__setitem__(
            "r", rate_parts(env, t_other, 3, (1, 2))))
        th.start()
        s.run_for(7)
        th.join()
        mid_other_up = mid["r"]
        env.mock.cmd("rtt 1 0")
        t_back = time.monotonic()
        s.run_for(6.5)

        # A shed client still sends one request per max_pause_ms (the data it
        # sends is accepted; the next request waits), so its rate comes in
        # lumps of one batch: measure over 2 s, from 2 s into the step.
        early = {c: s.rate((1, c), t_step + 2, t_step + 4) for c in WANT}
        during = {c: s.rate((1, c), t_step + 2, t_back) for c in WANT}
        other_during = sum(s.rate((b, "elastic"), t_step + 1, t_back) for b in (2, 3))
        after = {c: s.rate((1, c), t_back + 5, t_back + 6.5) for c in WANT}
        for c in WANT:
            log("%s per 0.5 s from 1 s before the step: %s" % (c, " ".join(
                "%.1f" % (s.rate((1, c), t_step + k / 2.0, t_step + k / 2.0 + 0.6, 2,
                                         strict=False) / MIB)
                for k in range(-2, 33))))
        log("2-4 s into the step: " + fmt(early))
        log("2-10 s into the step: " + fmt(during) + ", other to brokers 2+3 %.2f MiB/s "
            "(upstream, 3-6 s into the step: %.2f)" % (other_during / MIB, mid_other_up / MIB))
        log("5-6.5 s after it: " + fmt(after))
        check(early["elastic"] <= 0.5 * base["elastic"],
              "elastic to the slow broker did not halve within 2 s: %.2f -> %.2f MiB/s"
              % (base["elastic"] / MIB, early["elastic"] / MIB))
        check(during["fragile"] >= 0.9 * 1 * MIB,
              "fragile fell below 90%% of its 1 MiB/s guarantee: %.2f MiB/s"
              % (during["fragile"] / MIB))
        check(abs(other_during - base_other) <= 0.10 * base_other,
              "traffic to brokers 2 and 3 changed by more than 10%%: %.2f -> %.2f MiB/s"
              % (base_other / MIB, other_during / MIB))
        check(abs(mid_other_up - base_other_up) <= 0.10 * base_other_up,
              "upstream traffic to brokers 2 and 3 changed by more than 10%%: %.2f -> %.2f MiB/s"
              % (base_other_up / MIB, mid_other_up / MIB))
        for c in WANT:
            check(after[c] >= 0.9 * base[c], "%s not back to 90%% 5 s after recovery: "
                  "%.2f of %.2f MiB/s" % (c, after[c] / MIB, base[c] / MIB))
        _, text = scrape()
        check(re.search(r'sluice_connector_throttle_events_total\{connector="backfill",'
                        r'class="elastic",reason="broker_latency"\} [1-9]', text),
              "no broker_latency throttle counted for the elastic connector")
        log_text = open(env.sluice_log, "rb").read().decode("utf-8", "replace")
        check(re.search(r"pressure: broker 1 limited \(broker_latency", log_text),
              "the episode was not logged")
        # The controller lets go only once the held-back sources' backlog
        # has drained through its climbing limit.
        wait_for(lambda: re.search(r"pressure: broker 1 recovered", open(
            env.sluice_log, "rb").read().decode("utf-8", "replace")), 40,
            "the recovery to be logged", interval=0.5)
        log("recovered %.1f s after the round trip went back"
            % (time.monotonic() - t_back))
        check(not re.search(r"pressure: broker [23] limited", log_text),
              "a healthy broker was limited")
    finally:
        env.mock.cmd("rtt 1 0", expect_ok=False)
    nothing_lost(env, [(floods[c], topics[c]) for c in WANT] + [(other, t_other)])


def rate_parts(env, topic, n, parts):
    """Upstream bytes/s of 1 KiB records in some partitions of a topic over
    3 s, from their high watermarks (brokers 2 and 3 answer at once)."""
    from harness import watermarks

    def highs():
        wm = watermarks(env.upstream, topic, n, timeout=5)
        return sum(wm[p][1] for p in parts)
    a, t = highs(), time.monotonic()
    time.sleep(3)
    return (highs() - a) * 1024 / (time.monotonic() - t)


def fmt(d):
    return ", ".join("%s %.2f MiB/s" % (c, v / MIB) for c, v in d.items())


register("pressure_slow_broker_sheds_by_class", test_slow_broker_sheds_by_class,
         direct=False, sluice_args=ARGS, timeout=240)


MEM_POLICY = policy_file("pressure-memory", {
    "version": 1,
    "capacity": {"bytes_per_sec": "200MiB"},
    # Latency alone would not trigger here: only the memory budget does.
    "pressure": {"latency_target_ms": 600000, "memory_high_water_pct": 50},
    "classes": {
        "elastic": {"shed_order": 0, "max_pause_ms": 2000},
        "fragile": {"shed_order": 2, "max_pause_ms": 100,
                    "guarantee_bytes_per_sec": "512KiB"},
    },
    "connectors": {
        "backfill": {"class": "elastic", "match": {"client_ids": ["backfill"]}},
        "cdc": {"class": "fragile", "match": {"client_ids": ["cdc"]}},
    },
    "defaults": {"action": "admit", "class": "elastic"},
})
MEM_HTTP = free_port()


def test_memory_high_water_sheds_elastic(env):
    """A 4 MiB memory budget and slow brokers (200 ms): an unpaced elastic
    backfill fills the budget past the 50% high-water mark, so the memory
    controller throttles it (reason memory) while a fragile source paced
    within its guarantee keeps its rate. Nothing is lost."""
    for b in (1, 2, 3):
        env.mock.cmd("rtt %d 200" % b)
    t_bf, t_cdc = env.topic("backfill", 1), env.topic("cdc", 1)
    try:
        bf = Flood("librdkafka", env.bootstrap, "backfill", t_bf)
        cdc = Flood("librdkafka", env.bootstrap, "cdc", t_cdc, pace_bps=256 * 1024,
                    conf=IDEMPOTENT)
        wait_for(lambda: total_high(env.upstream, t_cdc, 1) > 50, 30, "cdc upstream")

        def backfill_held():
            with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % MEM_HTTP,
                                        timeout=5) as r:
                text = r.read().decode()
            m = re.search(r'sluice_connector_throttle_seconds_total\{connector="backfill",'
                          r'class="elastic",reason="memory"\} (\S+)', text)
            return m and float(m.group(1)) > 1.0 and text
        text = wait_for(backfill_held, 30, "the backfill held back for memory for 1 s",
                        interval=0.25)
        check(re.search(r'sluice_connector_throttle_events_total\{connector="backfill",'
                        r'class="elastic",reason="memory"\} [1-9]', text),
              "the elastic backfill was not throttled for memory")
        # The fragile source stays within its guarantee, so only transients
        # (a burst after the hard limit stopped every read) may cost it.
        secs = {}
        for m in re.finditer(r'sluice_connector_throttle_seconds_total\{connector="(\w+)",'
                             r'class="\w+",reason="memory"\} (\S+)', text):
            secs[m.group(1)] = float(m.group(2))
        log("memory throttle seconds: %s" % secs)
        check(secs.get("backfill", 0) > 1.0, "backfill barely throttled: %s" % secs)
        check(secs.get("cdc", 0) < 0.5, "fragile throttled for memory: %s" % secs)
        log_text = open(env.sluice_log, "rb").read().decode("utf-8", "replace")
        check("pressure: memory budget limited (memory" in log_text,
              "the memory episode was not logged")
        a = total_high(env.upstream, t_cdc, 1)
        t0 = time.monotonic()
        time.sleep(4)
        r_cdc = (total_high(env.upstream, t_cdc, 1) - a) * 1024 / (time.monotonic() - t0)
        log("fragile under memory pressure: %.3f MiB/s (paced at 0.25)" % (r_cdc / MIB))
        check(r_cdc >= 0.9 * 256 * 1024, "fragile fell to %.3f MiB/s" % (r_cdc / MIB))
    finally:
        for b in (1, 2, 3):
            env.mock.cmd("rtt %d 0" % b, expect_ok=False)
    nothing_lost(env, [(bf, t_bf), (cdc, t_cdc)])


register("pressure_memory_high_water", test_memory_high_water_sheds_elastic, direct=False,
         sluice_args=["--policy", MEM_POLICY, "--http.listen", "127.0.0.1:%d" % MEM_HTTP,
                      "--limits.memory_budget_bytes=4194304"], timeout=180)


def test_brokers_advertised_per_upstream_broker(env):
    """Metadata answers advertise one Sluice listener per upstream broker,
    with the upstream leader of every partition, so a client's connection to
    "broker 2" carries only what broker 2 leads (and a throttle for broker
    1's latency mutes only the connection to "broker 1"). Any listener still
    serves every partition: a client with stale metadata loses nothing."""
    import kwire
    from harness import eq, total_high as th
    t = env.topic("map", 6)
    for p in range(6):
        pin(env, t, p, p % 3 + 1)
    for version in (1, 4, 9):
        with kwire.Conn(env.bootstrap, timeout=10) as c:
            md = c.metadata([t], version=version)
        brokers = {b["node_id"]: b for b in md["brokers"]}
        eq(sorted(brokers), [1, 2, 3], "advertised node ids (Metadata v%d)" % version)
        ports = {b["port"] for b in brokers.values()}
        check(len(ports) == 3 and env.sluice.addr.rsplit(":", 1)[1] not in
              {str(p) for p in ports}, "ports: %s" % ports)
        check(md["controller_id"] in brokers, "controller %s" % md["controller_id"])
        (topic,) = [x for x in md["topics"] if x["name"] == t]
        leaders = {p["partition"]: p["leader"] for p in topic["partitions"]}
        eq(leaders, {p: p % 3 + 1 for p in range(6)}, "leaders (Metadata v%d)" % version)
    addr = {n: "%s:%d" % (b["host"], b["port"]) for n, b in brokers.items()}
    # Partition 0 through its leader's listener, partition 1 (led by 2)
    # through broker 1's listener: both are forwarded.
    for part in (0, 1):
        with kwire.Conn(addr[1], timeout=10) as c:
            batch = kwire.record_batch([kwire.Record(b"k", b"v%d" % part)], 1700000000000)
            r = c.produce(t, part, batch, acks=-1)
        eq(r["error_code"], 0, "produce to partition %d via broker 1's listener" % part)
    wait_for(lambda: th(env.upstream, t, 6) == 2, 10, "both records upstream")


register("pressure_brokers_advertised_per_upstream_broker",
         test_brokers_advertised_per_upstream_broker, direct=False)


THR_POLICY = policy_file("pressure-throttle", {
    "version": 1,
    "pressure": {"latency_target_ms": 60000},  # only the broker's throttle counts here
    "classes": {"elastic": {"shed_order": 0, "max_pause_ms": 2000}},
    "connectors": {"backfill": {"class": "elastic",
                                "match": {"client_ids": ["backfill", "kwire"]}}},
    "defaults": {"action": "admit", "class": "elastic"},
})
THR_HTTP = free_port()


class FakeBroker(Mock):
    """tests/integration/fakebroker.py, steered like sl-mock."""

    def __init__(self, logpath):
        import subprocess
        from harness import LineReader
        self.logpath = logpath
        self.log = open(logpath, "wb")
        self.proc = subprocess.Popen(
            ["/usr/bin/python3", os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                              "fakebroker.py")],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log)
        self.out = LineReader(self.proc.stdout)
        line = self.out.readline(15)
        if not line.startswith("BOOTSTRAP "):
            self.kill()
            fail("fakebroker printed %r instead of BOOTSTRAP" % line)
        self.bootstrap = line.split(" ", 1)[1].strip()
        self.brokers = 1


def test_broker_throttle_reaches_clients(env):
    """An upstream broker answering Produce with throttle_time_ms (its quota
    on Sluice's producer) becomes throttle hints, reason broker_throttle, to
    the clients writing to it, and a held-back rate instead of a growing
    queue; when the broker stops throttling, the limit goes away."""
    import kwire
    fb = FakeBroker(os.path.join(env.logdir, "broker_throttle.fakebroker.log"))
    sl = None
    fl = None
    try:
        sl = Sluice(env.cfg.sluice, fb.bootstrap,
                    os.path.join(env.logdir, "broker_throttle.sluice.log"),
                    ["--policy", THR_POLICY, "--http.listen", "127.0.0.1:%d" % THR_HTTP])
        fl = Flood("librdkafka", sl.addr, "backfill", "thr", pace_bps=2 * MIB, partitions=3,
                   conf=IDEMPOTENT)
        wait_for(lambda: int(fb.cmd("count thr", expect_ok=False).split()[-1]) > 500, 30,
                 "records at the fake broker", interval=0.2)
        fb.cmd("throttle 500 mute")  # and stop reading, as Kafka >= 2.0 does

        def throttled():
            with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % THR_HTTP,
                                        timeout=5) as r:
                text = r.read().decode()
            return re.search(r'sluice_connector_throttle_events_total\{connector="backfill",'
                             r'class="elastic",reason="broker_throttle"\} ([1-9]\d*)', text)
        m = wait_for(throttled, 20, "a broker_throttle throttle for the client", interval=0.25)
        log("broker_throttle throttles: %s" % m.group(1))
        # The hint itself, in a Produce answer to a client of the same class.
        with kwire.Conn(sl.addr, timeout=10) as c:
            hints = []
            for i in range(40):
                batch = kwire.record_batch([kwire.Record(b"k", b"x" * 20000)], 1700000000000)
                res = c.request(kwire.PRODUCE, 7,
                                kwire.produce_request(7, [("thr", [(0, batch)])], -1, 30000))
                hints.append(res["throttle_time_ms"])
                if res["throttle_time_ms"] > 0:
                    break
        log("throttle_time_ms in answers: %s" % hints)
        check(max(hints) > 0, "no throttle_time_ms in Produce answers: %s" % hints)
        text = open(sl.logpath, "rb").read().decode("utf-8", "replace")
        check(re.search(r"pressure: broker 1 limited \(broker_throttle", text),
              "the episode was not logged with reason broker_throttle")
        fb.cmd("throttle 0")
        wait_for(lambda: "pressure: broker 1 recovered" in open(
            sl.logpath, "rb").read().decode("utf-8", "replace"), 40,
            "the limit to go away", interval=0.5)
        errs = fl.stop()
        check(not errs, "producer errors: %s" % errs[:3])
        ans = fb.cmd("count thr", expect_ok=False)
        eq(int(ans.split()[-1]), fl.acked + len(hints), "records at the broker (acked by Sluice)")
        fl = None
    finally:
        if fl is not None:
            fl.stop()
        try:
            if sl is not None:
                sl.stop()
        finally:
            fb.stop()


register("pressure_broker_throttle_reaches_clients", test_broker_throttle_reaches_clients,
         direct=False, timeout=180)
