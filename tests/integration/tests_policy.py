"""Policy enforcement through Sluice (issue 3): quotas measured at the
upstream, class budgets with borrowing and give-back, live reload, shadow
mode, allow-lists, and nothing lost to throttling.

Rates are measured at the upstream (the mock's high watermarks over a
window that starts after the clients' first burst), never by timing
assertions on the clients.
"""

import json
import os
import random
import re
import tempfile
import threading
import time

from harness import check, eq, fail, log, register, total_high, wait_for

VALUE = b"x" * 1024
MIB = 1048576.0
POLICY_DIR = tempfile.mkdtemp(prefix="sluice-policy-")


def policy_file(name, doc):
    path = os.path.join(POLICY_DIR, name + ".json")
    write_policy(path, doc)
    return path


def write_policy(path, doc):
    """Replaces the file atomically, as editors and config managers do."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(doc if isinstance(doc, str) else json.dumps(doc, indent=2))
    os.replace(tmp, path)


def two_connectors(slow_bps, fast_bps, mode="enforce"):
    return {
        "version": 1,
        "mode": mode,
        "classes": {"std": {"weight": 1, "max_pause_ms": 2000}},
        "connectors": {
            "slow": {"class": "std", "match": {"client_ids": ["slow"]},
                     "quota": {"bytes_per_sec": slow_bps}},
            "fast": {"class": "std", "match": {"client_ids": ["fast"]},
                     "quota": {"bytes_per_sec": fast_bps}},
        },
        "defaults": {"action": "admit", "class": "std"},
    }


class Flood:
    """A producer that writes 1 KiB records to one partition as fast as its
    client lets it, until stop(); counts acknowledged records."""

    def __init__(self, kind, bootstrap, client_id, topic, pace_bps=None, partitions=1,
                 conf=None):
        self.kind, self.bootstrap, self.client_id, self.topic = kind, bootstrap, client_id, topic
        self.pace_bps = pace_bps
        self.partitions = partitions
        self.conf = conf or {}
        self.acked = 0
        self.errors = []
        self.sent = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _pace(self, t0):
        if self.pace_bps:
            ahead = self.sent * len(VALUE) / self.pace_bps - (time.monotonic() - t0)
            if ahead > 0:
                time.sleep(min(ahead, 0.05))
                return True
        return False

    def _run(self):
        try:
            (self._run_rdkafka if self.kind == "librdkafka" else self._run_kafka_python)()
        except Exception as e:  # reported by stop()
            self.errors.append("%s: %r" % (self.kind, e))

    def _run_rdkafka(self):
        from confluent_kafka import Producer
        p = Producer({"bootstrap.servers": self.bootstrap, "client.id": self.client_id,
                      "linger.ms": 5, "queue.buffering.max.kbytes": 4096,
                      "message.timeout.ms": 60000, "log_level": 3, **self.conf})

        def dr(err, msg):
            if err is None:
                self.acked += 1
            else:
                self.errors.append(str(err))

        t0 = time.monotonic()
        while not self._stop.is_set():
            if self._pace(t0):
                p.poll(0)
                continue
            try:
                p.produce(self.topic, VALUE, partition=self.sent % self.partitions,
                          on_delivery=dr)
                self.sent += 1
            except BufferError:
                p.poll(0.01)
            p.poll(0)
        left = p.flush(60)
        if left:
            self.errors.append("%d records unflushed" % left)

    def _run_kafka_python(self):
        from kafka import KafkaProducer
        p = KafkaProducer(bootstrap_servers=self.bootstrap, client_id=self.client_id,
                          linger_ms=5, buffer_memory=4 * 1024 * 1024, max_block_ms=60000,
                          request_timeout_ms=60000, acks="all")

        def ok(_md):
            self.acked += 1

        def bad(e):
            self.errors.append(repr(e))

        t0 = time.monotonic()
        while not self._stop.is_set():
            if self._pace(t0):
                continue
            p.send(self.topic, VALUE, partition=self.sent % self.partitions) \
                .add_callback(ok).add_errback(bad)
            self.sent += 1
        p.flush(60)
        p.close(30)

    def stop(self):
        self._stop.set()
        self._t.join(120)
        check(not self._t.is_alive(), "%s producer did not finish" % self.client_id)
        return self.errors


def rate(env, topic, seconds):
    """MiB/s of 1 KiB records arriving upstream over `seconds`: the slope of
    a least-squares line through the partition's high watermark sampled
    every 100 ms, so that a throttled client's large, spaced-out batches do
    not make the answer depend on where the window edges fall."""
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": env.upstream, "group.id": "sluice-rate",
                  "log_level": 3})
    tp = TopicPartition(topic, 0)
    pts = []
    try:
        t0 = time.monotonic()
        while time.monotonic() - t0 < seconds:
            try:
                hi = c.get_watermark_offsets(tp, timeout=5)[1]
                pts.append((time.monotonic() - t0, hi))
            except Exception:
                pass
            time.sleep(0.1)  # the sampling period of the measurement
    finally:
        c.close()
    check(len(pts) >= 10, "too few watermark samples (%d)" % len(pts))
    n = float(len(pts))
    mt = sum(t for t, _ in pts) / n
    mh = sum(h for _, h in pts) / n
    slope = (sum((t - mt) * (h - mh) for t, h in pts) /
             sum((t - mt) ** 2 for t, _ in pts))
    return slope * len(VALUE) / MIB


def within(got, want, tol, what):
    check(abs(got - want) <= tol * want,
          "%s: %.3f MiB/s, want %.3f MiB/s +-%d%%" % (what, got, want, tol * 100))


def nothing_lost(env, floods_topics):
    """Every acknowledged record is upstream, and nothing more than was sent."""
    for fl, topic in floods_topics:
        errs = fl.stop()
        check(not errs, "%s producer errors: %s" % (fl.client_id, errs[:3]))
        eq(fl.acked, fl.sent, "%s acknowledged records" % fl.client_id)
        wait_for(lambda: total_high(env.upstream, topic, fl.partitions) >= fl.acked, 30,
                 "%d acked records of %s upstream" % (fl.acked, fl.client_id))
        hi = total_high(env.upstream, topic, fl.partitions)
        check(hi == fl.acked, "%s: %d records upstream, %d acknowledged" % (fl.client_id, hi, fl.acked))


# ---------------------------------------------------------------------------

# kafka-python 2.0.2 computes CRC-32C in pure Python: flat out it writes about
# 2.5 MiB/s of 1 KiB records straight to the mock on one of these machines
# (2.2 MiB/s to the real broker; 62 MiB/s for librdkafka), and what it
# reaches depends on the machine's CPU. Its quota is 1.5 MiB/s, which it
# can exceed everywhere, so the quota is what holds it.
QUOTA_FILE = policy_file("quota", two_connectors("1MiB", "1536KiB"))


def make_quotas_test(fast_mib):
    def fn(env):
        """1 MiB/s and fast_mib MiB/s connectors, flat out for 14 s: librdkafka
        (ignores throttle hints) and kafka-python 2.0.2 (too). Muted sockets
        hold them."""
        t_slow, t_fast = env.topic("slow", 1), env.topic("fast", 1)
        slow = Flood("librdkafka", env.bootstrap, "slow", t_slow)
        fast = Flood("kafka-python", env.bootstrap, "fast", t_fast)
        wait_for(lambda: total_high(env.upstream, t_fast, 1) > 0, 20, "first records upstream")
        time.sleep(3)  # let the initial one-second bursts pass before measuring
        rs, rf = {}, {}

        def measure(topic, out):
            out["r"] = rate(env, topic, 10)

        ths = [threading.Thread(target=measure, args=(t_slow, rs)),
               threading.Thread(target=measure, args=(t_fast, rf))]
        for t in ths:
            t.start()
        for t in ths:
            t.join()
        log("measured: slow %.3f MiB/s, fast %.3f MiB/s" % (rs["r"], rf["r"]))
        nothing_lost(env, [(slow, t_slow), (fast, t_fast)])
        within(rs["r"], 1.0, 0.10, "slow (librdkafka) connector")
        within(rf["r"], fast_mib, 0.10, "fast (kafka-python) connector")
        log_text = open(env.sluice_log, "rb").read().decode("utf-8", "replace")
        check("throttle" in log_text and "(quota)" in log_text,
              "no quota throttle in the sluice log")
    return fn


register("policy_quotas_hold", make_quotas_test(1.5), direct=False,
         sluice_args=["--policy", QUOTA_FILE], timeout=180, upstreams=("mock", "kafka"))


CLASS_FILE = policy_file("classes", {
    "version": 1,
    "capacity": {"bytes_per_sec": "6MiB"},
    "classes": {
        "fragile": {"weight": 1, "guarantee_bytes_per_sec": "2MiB", "max_pause_ms": 100,
                    "shed_order": 3},
        "elastic": {"weight": 1, "max_pause_ms": 5000, "shed_order": 1},
    },
    "connectors": {
        "cdc": {"class": "fragile", "match": {"client_ids": ["cdc"]}},
        "backfill": {"class": "elastic", "match": {"client_id_prefixes": ["backfill"]}},
    },
    "defaults": {"action": "admit", "class": "elastic"},
})


def test_class_budgets_borrow_and_give_back(env):
    """Capacity 6 MiB/s. An elastic backfill saturating Sluice does not push
    a fragile CDC source (2 MiB/s guaranteed, writing a steady 2 MiB/s) below
    its guarantee; when the CDC source goes idle, the backfill takes the
    spare capacity."""
    t_cdc, t_bf = env.topic("cdc", 1), env.topic("backfill", 1)
    backfill = Flood("librdkafka", env.bootstrap, "backfill-1", t_bf)
    cdc = Flood("librdkafka", env.bootstrap, "cdc", t_cdc, pace_bps=2 * MIB)
    wait_for(lambda: total_high(env.upstream, t_cdc, 1) > 0, 20, "cdc records upstream")
    time.sleep(3)
    r = {}
    ths = [threading.Thread(target=lambda: r.__setitem__("cdc", rate(env, t_cdc, 8))),
           threading.Thread(target=lambda: r.__setitem__("bf", rate(env, t_bf, 8)))]
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    log("both busy: cdc %.3f MiB/s, backfill %.3f MiB/s" % (r["cdc"], r["bf"]))
    check(r["cdc"] >= 2.0 * 0.9, "fragile cdc got %.3f MiB/s, below 90%% of its 2 MiB/s "
          "guarantee" % r["cdc"])
    check(r["bf"] <= 6.0 * 1.1 - r["cdc"] + 0.3,
          "backfill %.3f MiB/s with cdc %.3f exceeds the 6 MiB/s capacity" % (r["bf"], r["cdc"]))
    # CDC goes idle: the backfill borrows its share.
    nothing_lost(env, [(cdc, t_cdc)])
    time.sleep(3)
    alone = rate(env, t_bf, 8)
    log("cdc idle: backfill %.3f MiB/s" % alone)
    within(alone, 6.0, 0.10, "backfill alone (should use the whole capacity)")
    check(alone > r["bf"] + 1.0, "backfill did not take the spare capacity: %.3f -> %.3f"
          % (r["bf"], alone))
    nothing_lost(env, [(backfill, t_bf)])


register("policy_class_budgets", test_class_budgets_borrow_and_give_back, direct=False,
         sluice_args=["--policy", CLASS_FILE], timeout=180)


RELOAD_FILE = policy_file("reload", two_connectors("1MiB", "4MiB"))


def count_conns(env, client_id):
    text = open(env.sluice_log, "rb").read().decode("utf-8", "replace")
    return len(re.findall(r"conn (\d+) from", text)), text


def test_reload_changes_rate_without_reconnect(env):
    t = env.topic("slow", 1)
    fl = Flood("librdkafka", env.bootstrap, "slow", t)
    wait_for(lambda: total_high(env.upstream, t, 1) > 0, 20, "records upstream")
    time.sleep(3)
    before = rate(env, t, 4)
    conns_before, _ = count_conns(env, "slow")
    write_policy(RELOAD_FILE, two_connectors("3MiB", "4MiB"))
    wait_for(lambda: "generation 2" in open(env.sluice_log, "rb").read().decode("utf-8", "replace"),
             2, "the reload to be logged within 2 s")
    after = rate(env, t, 5)
    log("before %.3f MiB/s, after reload %.3f MiB/s" % (before, after))
    within(before, 1.0, 0.15, "rate before the reload")
    within(after, 3.0, 0.15, "rate after the reload")
    # An invalid file changes nothing and is reported with file and line.
    write_policy(RELOAD_FILE, json.dumps(two_connectors("3MiB", "4MiB"), indent=2)
                 .replace('"weight": 1', '"weight": "heavy"'))
    wait_for(lambda: "policy reload (file changed) failed" in
             open(env.sluice_log, "rb").read().decode("utf-8", "replace"), 5,
             "the invalid file to be reported")
    text = open(env.sluice_log, "rb").read().decode("utf-8", "replace")
    check(re.search(re.escape(RELOAD_FILE) + r":\d+: classes\.std\.weight", text),
          "reload error does not name file:line: field")
    still = rate(env, t, 4)
    within(still, 3.0, 0.15, "rate after the invalid file")
    conns_after, _ = count_conns(env, "slow")
    eq(conns_after, conns_before, "connections accepted (a reload must not reconnect clients)")
    nothing_lost(env, [(fl, t)])


register("policy_live_reload", test_reload_changes_rate_without_reconnect, direct=False,
         sluice_args=["--policy", RELOAD_FILE], timeout=180)


SHADOW_FILE = policy_file("shadow", two_connectors("1MiB", "4MiB", mode="shadow"))


def test_shadow_mode_reports_only(env):
    t = env.topic("slow", 1)
    fl = Flood("librdkafka", env.bootstrap, "slow", t)
    wait_for(lambda: total_high(env.upstream, t, 1) > 0, 20, "records upstream")
    time.sleep(2)
    r = rate(env, t, 4)
    log("shadow: %.3f MiB/s against a 1 MiB/s quota" % r)
    check(r > 2.0, "shadow mode throttled: %.3f MiB/s with a 1 MiB/s quota" % r)
    text = open(env.sluice_log, "rb").read().decode("utf-8", "replace")
    check(re.search(r'info  shadow mode: connector "slow" .* would have been throttled \d+ times',
                    text), "shadow mode did not report its throttles at info level")
    check(not re.search(r"\): throttle \d+ ms", text), "shadow mode enforced a throttle")
    nothing_lost(env, [(fl, t)])


register("policy_shadow_mode", test_shadow_mode_reports_only, direct=False,
         sluice_args=["--policy", SHADOW_FILE], timeout=120)


ALLOW_FILE = policy_file("allow", {
    "version": 1,
    "classes": {"std": {"weight": 1, "max_pause_ms": 1000}},
    "connectors": {"app": {"class": "std", "match": {"client_ids": ["app"]},
                           "topics": ["allowed.*"]}},
    "defaults": {"action": "refuse", "message": "unknown client: ask the platform team"},
})


def test_allow_list_and_refusal(env):
    import kwire
    tag = "%04x" % random.getrandbits(16)  # the real cluster is shared by the suite
    allowed, other = "allowed.t1-" + tag, "other-" + tag
    env.create_topic(allowed, 1)
    env.create_topic(other, 1)

    def batch():
        return kwire.record_batch([kwire.Record(None, b"v")])

    with kwire.Conn(env.bootstrap, client_id="app") as c:
        c.metadata([allowed, other])
        eq(c.produce(allowed, 0, batch())["error_code"], 0, "allowed topic")
        eq(c.produce(other, 0, batch())["error_code"], 29,
           "topic outside the allow-list (TOPIC_AUTHORIZATION_FAILED)")
    with kwire.Conn(env.bootstrap, client_id="stranger") as c:
        r = c.produce(allowed, 0, batch(), version=9)
        eq(r["error_code"], 29, "refused client")
        check("refused" in (r.get("error_message") or ""),
              "refusal error_message: %r" % r.get("error_message"))
    wait_for(lambda: total_high(env.upstream, allowed, 1) == 1, 10, "one record upstream")
    eq(total_high(env.upstream, other, 1), 0, "records in the denied topic")
    text = open(env.sluice_log, "rb").read().decode("utf-8", "replace")
    check("ask the platform team" in text, "refusal not logged with its message")


register("policy_allow_list_and_refusal", test_allow_list_and_refusal, direct=False,
         sluice_args=["--policy", ALLOW_FILE], timeout=60, upstreams=("mock", "kafka"))
