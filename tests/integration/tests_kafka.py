"""Tests that need a real Apache Kafka upstream (kafka_cluster.py): what
librdkafka's mock cannot show.

  - a leader killed with SIGKILL and restarted under idempotent load, and a
    leader moved by reassignment plus a preferred election: every
    acknowledged record upstream exactly once, production resumes by itself;
  - a real broker quota on Sluice's own upstream client.id shows up as
    broker_throttle pressure and throttle hints to the clients;
  - transactional producers get a fast, clear refusal.

The Java clients, Kafka Connect and the other registry clients are in
tests_realclients.py.
"""

import os
import random
import re
import threading
import time
import urllib.request

import kwire
from harness import (check, eq, fail, free_port, log, read_upstream, register, total_high,
                     wait_for)
from tests_policy import MIB, VALUE, Flood, policy_file
from tests_pressure import IDEMPOTENT, THR_POLICY


def exactly_once(env, topic, partitions, acked, sent_values, what, dups_allowed=False):
    """Every acknowledged value is upstream exactly once, nothing upstream
    was never sent, and each partition holds its values in send order.
    dups_allowed: count duplicates instead (returned as got["dups"]), and
    check the order of first copies."""
    got = read_upstream(env.upstream, topic, partitions, timeout=90)
    seen = {}
    for p, recs in got.items():
        for r in recs:
            seen.setdefault(r.value, []).append(p)
    dups = {v: ps for v, ps in seen.items() if len(ps) > 1}
    missing = [v for v in acked if v not in seen]
    strangers = [v for v in seen if v not in sent_values]
    total = sum(len(v) for v in got.values())
    log("%s: %d sent, %d acknowledged, %d upstream, %d duplicated, %d acknowledged "
        "but missing" % (what, len(sent_values), len(acked), total, len(dups), len(missing)))
    check(not missing, "%d acknowledged records missing upstream, e.g. %r"
          % (len(missing), sorted(missing)[:3]))
    check(dups_allowed or not dups, "%d records upstream more than once, e.g. %r"
          % (len(dups), sorted(dups)[:3]))
    check(not strangers, "records upstream that were never sent: %r" % strangers[:3])
    for p, recs in got.items():
        firsts, had = [], set()
        for r in recs:
            if r.value not in had:
                had.add(r.value)
                firsts.append(int(r.value.split(b"-")[2]))
        check(firsts == sorted(firsts), "partition %d is out of send order" % p)
    if dups_allowed:
        got["dups"] = len(dups)
    return got


class SeqProducer(threading.Thread):
    """An idempotent librdkafka producer writing numbered values
    ("seq-<partition>-<n>") round robin over the partitions as fast as it
    is let (or at `rate` records per second), until stop() or `limit`
    records; keeps what was acknowledged."""

    def __init__(self, bootstrap, topic, partitions, limit, conf=None, client_id="seq",
                 rate=None):
        super().__init__(daemon=True)
        self.rate = rate
        from confluent_kafka import Producer
        self.topic, self.partitions, self.limit = topic, partitions, limit
        c = {"bootstrap.servers": bootstrap, "client.id": client_id,
             "enable.idempotence": True, "linger.ms": 5, "message.timeout.ms": 120000,
             "retry.backoff.ms": 100, "reconnect.backoff.max.ms": 500,
             "queue.buffering.max.messages": 20000, "log_level": 3}
        c.update(conf or {})
        self.p = Producer(c)
        self.sent = []
        self.acked = set()
        self.errors = []
        self._halt = threading.Event()

    def _dr(self, err, msg):
        if err is None:
            self.acked.add(msg.value())
        else:
            self.errors.append("%s [%d]: %s" % (msg.topic(), msg.partition(), err))

    def run(self):
        i = 0
        t0 = time.monotonic()
        while not self._halt.is_set() and i < self.limit:
            if self.rate and i > (time.monotonic() - t0) * self.rate:
                self.p.poll(0.001)
                continue
            part = i % self.partitions
            v = b"seq-%d-%07d" % (part, i)
            try:
                self.p.produce(self.topic, value=v, partition=part, on_delivery=self._dr)
                self.sent.append(v)
                i += 1
            except BufferError:
                self.p.poll(0.05)
            self.p.poll(0)
            if i % 50 == 0:
                time.sleep(0.002)  # a steady stream, not one burst
        self.left = self.p.flush(150)

    def stop(self):
        self._halt.set()
        self.join(200)
        check(not self.is_alive(), "producer did not finish")
        return self.left


def wait_acked(prod, n, timeout, what):
    wait_for(lambda: len(prod.acked) >= n, timeout,
             lambda: "%d acknowledged %s (have %d; errors %s)"
             % (n, what, len(prod.acked), prod.errors[:2]), interval=0.1)


# ---------------------------------------------------------------------------
# Sluice itself restarted under idempotent load


def test_sluice_restarted_idempotent(env):
    """An idempotent librdkafka producer writing through Sluice while Sluice
    is stopped with SIGTERM and started again at the same address. The new
    Sluice did not issue the producer's id and accepts it anyway, as a
    broker would (UNKNOWN_PRODUCER_ID is fatal to librdkafka 2.0.2: "unable
    to retry without risking duplication/reordering"); the producer goes on
    without an error, and every acknowledged record is upstream, once: a
    clean SIGTERM answers or fails every in-flight request."""
    from harness import Sluice
    topic = env.topic("restart", 3)
    # Paced (6 s for all) so that the stop comes with records in flight.
    prod = SeqProducer(env.bootstrap, topic, 3, 12000, client_id="restart", rate=2000)
    prod.start()
    try:
        wait_acked(prod, 3000, 60, "records before the restart")
        old = env.sluice
        old.stop()
        at_stop = len(prod.sent)
        log("sluice stopped (exit 0) after %d acknowledged, %d sent"
            % (len(prod.acked), at_stop))
        check(at_stop < 12000, "the producer had sent everything before the stop: "
              "it tests nothing in flight")
        env.sluice = Sluice(env.cfg.sluice, env.upstream, old.logpath + ".after",
                            env.sluice_args, port=old.port)
        wait_acked(prod, 9000, 120, "records after the restart")
        left = prod.stop()
    finally:
        if prod.is_alive():
            prod.stop()
    text = open(env.sluice.logpath, "rb").read().decode("utf-8", "replace")
    log("batches naming an id from before the restart: %d" % text.count("not issued by this Sluice"))
    check(not prod.errors, "producer errors: %s" % prod.errors[:3])
    check(left == 0, "%d records not flushed" % left)
    exactly_once(env, topic, 3, prod.acked, set(prod.sent), "across a Sluice restart")


register("sluice_restarted_idempotent", test_sluice_restarted_idempotent, direct=False,
         timeout=300, upstreams=("mock", "kafka"))


def test_sluice_killed_idempotent(env):
    """Issue 12, item 5: what a SIGKILL of Sluice costs an idempotent
    librdkafka producer. Sluice keeps no state on disk: batches written
    upstream whose answers died with the process come again from the
    client's retry to the new Sluice, which has no record of them, and are
    written twice. Nothing acknowledged may be lost, nothing foreign
    appear, first copies stay in send order, and the producer goes on
    without an error; the duplicates are counted (a clean SIGTERM causes
    none: sluice_restarted_idempotent)."""
    from harness import Sluice
    topic = env.topic("kill", 3)
    # Paced (6 s for all) so that the kill comes with records in flight.
    prod = SeqProducer(env.bootstrap, topic, 3, 12000, client_id="killed", rate=2000)
    prod.start()
    try:
        wait_acked(prod, 3000, 60, "records before the kill")
        old = env.sluice
        old.proc.kill()
        old.proc.wait()
        old.log.close()
        at_kill = len(prod.sent)
        log("sluice killed (SIGKILL) after %d acknowledged, %d sent"
            % (len(prod.acked), at_kill))
        check(at_kill < 12000, "the producer had sent everything before the kill: "
              "it tests nothing in flight")
        env.sluice = Sluice(env.cfg.sluice, env.upstream, old.logpath + ".after",
                            env.sluice_args, port=old.port)
        wait_acked(prod, 9000, 120, "records after the restart")
        left = prod.stop()
    finally:
        if prod.is_alive():
            prod.stop()
    check(not prod.errors, "producer errors: %s" % prod.errors[:3])
    check(left == 0, "%d records not flushed" % left)
    got = exactly_once(env, topic, 3, prod.acked, set(prod.sent), "across a SIGKILL",
                       dups_allowed=True)
    log("duplicates a SIGKILL caused: %d records of %d" % (got["dups"], len(prod.sent)))


register("sluice_killed_idempotent", test_sluice_killed_idempotent, direct=False,
         timeout=300, upstreams=("mock", "kafka"))


# ---------------------------------------------------------------------------
# A leader killed with SIGKILL, then restarted, under idempotent load


def test_leader_killed_and_restarted(env):
    c = env.cluster
    topic = env.topic("kill", 3, rf=3)
    leader = c.leaders(topic)[0]
    prod = SeqProducer(env.bootstrap, topic, 3, 10 ** 6)
    prod.start()
    wait_acked(prod, 3000, 60, "records before the kill")
    t_kill = time.monotonic()
    c.node(leader).kill()
    log("killed node %d (leader of partition 0) after %d acknowledged"
        % (leader, len(prod.acked)))
    # Leadership moves once the controller notices (broker.session.timeout.ms).
    wait_for(lambda: c.leaders(topic).get(0, -1) not in (-1, leader), 60,
             "partition 0 to get a new leader")
    log("new leader %d after %.1fs" % (c.leaders(topic)[0], time.monotonic() - t_kill))
    n = len(prod.acked)
    wait_acked(prod, n + 3000, 90, "records after the kill")
    log("production resumed %.1fs after the kill" % (time.monotonic() - t_kill))
    c.node(leader).start()
    log("node %d back after %.1fs" % (leader, time.monotonic() - t_kill))
    n = len(prod.acked)
    wait_acked(prod, n + 3000, 90, "records after the restart")
    left = prod.stop()
    eq(left, 0, "records still queued after flush")
    check(not prod.errors, "delivery errors: %s" % prod.errors[:3])
    exactly_once(env, topic, 3, prod.acked, set(prod.sent), "kill -9 of the leader")


register("leader_killed_and_restarted", test_leader_killed_and_restarted, direct=True,
         timeout=420, upstreams=("kafka3",))


# ---------------------------------------------------------------------------
# A leader moved to another broker (reassignment + preferred election)


def test_leader_moved(env):
    c = env.cluster
    topic = env.topic("move", 3, rf=2)
    before = c.leaders(topic)
    prod = SeqProducer(env.bootstrap, topic, 3, 10 ** 6)
    prod.start()
    wait_acked(prod, 3000, 60, "records before the move")
    # Partition 0 onto the two brokers that are not its leader now, the
    # first of them preferred: its leader must change.
    old = before[0]
    new_replicas = [b for b in (1, 2, 3) if b != old]
    t_move = time.monotonic()
    c.reassign(topic, {0: new_replicas})
    c.elect_preferred(topic, 0)
    wait_for(lambda: c.leaders(topic).get(0) == new_replicas[0], 60,
             "partition 0 led by node %d" % new_replicas[0])
    log("partition 0: leader %d -> %d in %.1fs" % (old, new_replicas[0],
                                                  time.monotonic() - t_move))
    n = len(prod.acked)
    wait_acked(prod, n + 3000, 90, "records after the move")
    left = prod.stop()
    eq(left, 0, "records still queued after flush")
    check(not prod.errors, "delivery errors: %s" % prod.errors[:3])
    exactly_once(env, topic, 3, prod.acked, set(prod.sent), "leader move")


register("leader_moved", test_leader_moved, direct=True, timeout=360, upstreams=("kafka3",))


# ---------------------------------------------------------------------------
# A real broker quota on Sluice's own producer


QUOTA_HTTP = free_port()


def test_broker_quota_reaches_clients(env):
    """Kafka's own client quota (producer_byte_rate on client.id "sluice",
    Sluice's upstream producer) makes the broker answer with
    throttle_time_ms and mute the connection: Sluice turns that into
    broker_throttle pressure and throttle hints to the clients writing to
    that broker; without the quota, the limit goes away."""
    c = env.cluster
    topic = env.topic("quota", 3)
    metrics_url = "http://127.0.0.1:%d/metrics" % QUOTA_HTTP
    fl = None
    try:
        c.set_client_quota("sluice", 512 * 1024)
        # Twice the quota, not more: what Sluice admits beyond the quota waits
        # in its upstream queue, and the probes below wait behind it (at
        # 3 MiB/s they took 2 minutes).
        fl = Flood("librdkafka", env.bootstrap, "backfill", topic, pace_bps=1 * MIB,
                   partitions=3, conf=IDEMPOTENT)

        def throttled():
            with urllib.request.urlopen(metrics_url, timeout=5) as r:
                text = r.read().decode()
            return re.search(r'sluice_connector_throttle_events_total\{connector="backfill",'
                             r'class="elastic",reason="broker_throttle"\} ([1-9]\d*)', text)
        m = wait_for(throttled, 40, "a broker_throttle throttle for the client", interval=0.25)
        log("broker_throttle throttles: %s" % m.group(1))
        # While the quota holds, the limit holds: one episode, no
        # "recovered" in between (counting only the steps that carried a
        # throttle time made it come and go every ~0.6 s), and the quota
        # stays used.
        h0, t0 = total_high(env.upstream, topic, 3), time.monotonic()
        time.sleep(10)
        h1, t1 = total_high(env.upstream, topic, 3), time.monotonic()
        ev = re.findall(r"pressure: broker 1 (limited|recovered)",
                        open(env.sluice_log, "rb").read().decode("utf-8", "replace"))
        rate = (h1 - h0) * len(VALUE) / (t1 - t0)
        log("pressure events so far: %s; %.2f MiB/s upstream over 10 s (quota 0.50)"
            % (" ".join(ev), rate / MIB))
        check(ev and ev[-1] == "limited" and "recovered" not in ev[ev.index("limited"):],
              "the limit came and went under the quota: %s" % " ".join(ev))
        # The broker holds the rate to its quota whatever Sluice does; what
        # Sluice can get wrong is cutting far below it (a controller cutting
        # on every muted spell: the old one delivered 0.29 and 0.56 MiB/s in
        # two runs, its flapping is what the check above catches; now
        # 0.41-0.55 over a 10 s window that can catch some queue draining).
        check(0.35 * MIB <= rate <= 0.7 * MIB,
              "%.2f MiB/s upstream under a 0.5 MiB/s quota" % (rate / MIB))
        # What the controller takes for the quota, as operators see it.
        with urllib.request.urlopen(metrics_url, timeout=5) as r:
            am = re.search(r'sluice_broker_acked_bytes_per_second\{broker="1"\} (\S+)',
                           r.read().decode())
        check(am, "no sluice_broker_acked_bytes_per_second for broker 1")
        log("sluice_broker_acked_bytes_per_second: %.2f MiB/s" % (float(am.group(1)) / MIB))
        check(0.3 * MIB <= float(am.group(1)) <= 0.8 * MIB,
              "acknowledged rate %.2f MiB/s under a 0.5 MiB/s quota" % (float(am.group(1)) / MIB))
        with kwire.Conn(env.bootstrap, timeout=30) as conn:
            conn.metadata([topic])
            hints = []
            for i in range(40):
                batch = kwire.record_batch([kwire.Record(b"k", b"x" * 20000)])
                res = conn.request(kwire.PRODUCE, 7,
                                   kwire.produce_request(7, [(topic, [(0, batch)])], -1, 30000))
                eq(res["topics"][topic][0]["error_code"], 0, "probe produce error")
                hints.append(res["throttle_time_ms"])
                if res["throttle_time_ms"] > 0:
                    break
        log("throttle_time_ms in answers: %s" % hints)
        check(max(hints) > 0, "no throttle_time_ms in Produce answers: %s" % hints)
        text = open(env.sluice_log, "rb").read().decode("utf-8", "replace")
        check(re.search(r"pressure: broker 1 limited \(broker_throttle", text),
              "the episode was not logged with reason broker_throttle")
        c.set_client_quota("sluice", None)
        removed_at = len(open(env.sluice_log, "rb").read())

        def settled():
            # After the quota is gone, the last pressure line says recovered
            # and nothing has been limited for 5 s.
            data = open(env.sluice_log, "rb").read()
            ev = re.findall(r"pressure: broker 1 (limited|recovered)",
                            data.decode("utf-8", "replace"))
            if not ev or ev[-1] != "recovered":
                quiet.clear()
                return False
            if len(data) > removed_at and not quiet:
                quiet.append(time.monotonic())
            return quiet and time.monotonic() - quiet[0] >= 5
        quiet = []
        wait_for(settled, 60, "the limit to go away once the quota is removed", interval=0.5)
        errs = fl.stop()
        check(not errs, "producer errors: %s" % errs[:3])
        probes = len(hints)
        wait_for(lambda: total_high(env.upstream, topic, 3) >= fl.acked + probes, 30,
                 "acknowledged records upstream")
        eq(total_high(env.upstream, topic, 3), fl.acked + probes,
           "records upstream (acknowledged by Sluice)")
        fl = None
    finally:
        if fl is not None:
            fl.stop()
        c.set_client_quota("sluice", None)


register("broker_quota_reaches_clients", test_broker_quota_reaches_clients, direct=False,
         sluice_args=["--policy", THR_POLICY, "--http.listen", "127.0.0.1:%d" % QUOTA_HTTP],
         timeout=240, upstreams=("kafka",))


# ---------------------------------------------------------------------------
# Transactions: refused at once, clearly


def test_transactional_librdkafka_refused(env):
    """librdkafka's transactional producer (FindCoordinator for the
    transaction, then InitProducerId with the transactional.id) fails
    init_transactions() fast with a fatal, non-retriable error."""
    from confluent_kafka import KafkaException, Producer
    env.require_proxy("a real broker serves transactions")
    p = Producer({"bootstrap.servers": env.bootstrap, "transactional.id": "sluice-it-txn",
                  "log_level": 0})
    t0 = time.monotonic()
    try:
        p.init_transactions(30)
        fail("init_transactions() through Sluice succeeded")
    except KafkaException as e:
        err = e.args[0]
        dt = time.monotonic() - t0
        log("init_transactions: %s after %.2fs (fatal %s, retriable %s)"
            % (err, dt, err.fatal(), err.retriable()))
        check(dt < 5, "refusal took %.1fs, not immediate" % dt)
        check(not err.retriable(), "the refusal is retriable: %s" % err)
        check(err.fatal() or err.txn_requires_abort() is False,
              "the refusal is neither fatal nor final: %s" % err)


register("transactional_librdkafka_refused", test_transactional_librdkafka_refused,
         direct=False, timeout=90, upstreams=("kafka",))


# ---------------------------------------------------------------------------
# A real broker whose write latency rises with load: its link capped by tc


def test_capped_broker_link(env):
    """The one broker of the kafkanet cluster sits in a network namespace
    behind a veth. Three paced producers (elastic 3, bounded 1.5, fragile
    0.5 MiB/s, the fragile one guaranteed 512 KiB/s) write through Sluice; then
    the link from Sluice to the broker is capped at 3 MiB/s with tc tbf, so
    the broker's answers come later the more is queued, as on a saturated
    broker. Asserted: the cap holds what is admitted, the fragile source
    keeps its guaranteed throughput over the episode, every class is back
    at its rate once the cap is lifted, nothing is lost, and the shedding
    goes by class: elastic loses most, bounded keeps most."""
    from tests_pressure import Sampler, fmt
    import tests_pressure
    WANT = NET_WANT
    from tests_policy import nothing_lost
    ns = env.cluster.netns
    topics = {c: env.topic(c, 3 if c == "fragile" else 1, rf=1) for c in WANT}
    floods = {
        "elastic": Flood("librdkafka", env.bootstrap, "backfill", topics["elastic"],
                         pace_bps=WANT["elastic"], conf=IDEMPOTENT),
        "bounded": Flood("librdkafka", env.bootstrap, "saas", topics["bounded"],
                         pace_bps=WANT["bounded"], conf=IDEMPOTENT),
        "fragile": Flood("librdkafka", env.bootstrap, "cdc", topics["fragile"],
                         pace_bps=WANT["fragile"], partitions=3, conf=IDEMPOTENT),
    }
    s = Sampler(NET_HTTP)
    cap = 3 * MIB
    try:
        wait_for(lambda: all(total_high(env.upstream, topics[c], floods[c].partitions) > 100
                             for c in WANT), 30, "every class upstream")
        time.sleep(2)  # past the first bursts: a measurement window follows
        s.run_for(4)
        base = {c: s.rate((1, c), s.pts[0][0], s.pts[-1][0]) for c in WANT}
        log("before: " + fmt(base))
        for c in WANT:
            check(base[c] >= 0.9 * WANT[c], "%s only reached %.2f MiB/s before the cap"
                  % (c, base[c] / MIB))
        ns.cap(cap, queue_ms=3000)
        t_cap = time.monotonic()
        s.run_for(14)
        during = {c: s.rate((1, c), t_cap + 5, t_cap + 14) for c in WANT}
        log("tc: " + " ".join(ns.tc_stats().split()))
        ns.uncap()
        t_back = time.monotonic()
        s.run_for(10)
        after = {c: s.rate((1, c), t_back + 7, t_back + 10) for c in WANT}
        for c in WANT:
            log("%s per second from 2 s before the cap: %s" % (c, " ".join(
                "%.1f" % (s.rate((1, c), t_cap + k, t_cap + k + 1, 2, strict=False) / MIB)
                for k in range(-2, 26))))
        log("5-14 s into the cap: %s (sum %.2f MiB/s; cap %.2f)"
            % (fmt(during), sum(during.values()) / MIB, cap / MIB))
        log("7-10 s after it: " + fmt(after))
        share = {c: during[c] / base[c] for c in WANT}
        total = sum(during.values())
        check(0.8 * cap <= total <= 1.05 * cap,
              "admitted %.2f MiB/s under a %.2f MiB/s cap" % (total / MIB, cap / MIB))
        # The fragile source: its guaranteed throughput over the episode (the
        # cap and the 3 s after it, when what waited in the queues lands).
        # Within the cap it can stall for a second or more: every class
        # shares Sluice's one upstream producer and connection, so fragile
        # records wait behind what was admitted before them in the capped
        # link's queue, and a partition moves one batch per round trip (see
        # NET_WANT). Lanes per class (issue 18) are what would remove that.
        episode = s.rate((1, "fragile"), t_cap + 2, t_back + 3)
        stall = max((k for k in range(1, 13) if any(
            s.rate((1, "fragile"), t_cap + j, t_cap + j + k, 2, strict=False) == 0
            for j in range(0, 14 - k))), default=0)
        log("fragile: %.2f MiB/s over the episode, longest stall within the cap ~%d s"
            % (episode / MIB, stall))
        check(episode >= 0.9 * NET_WANT["fragile"],
              "fragile fell below 90%% of its %.2f MiB/s guarantee over the episode: "
              "%.2f MiB/s" % (NET_WANT["fragile"] / MIB, episode / MIB))
        # Shed in class order: elastic loses most, bounded keeps most of its
        # rate (seen: elastic 25-33%, bounded 75-91%, fragile 82-99%). Not
        # "bounded keeps all": a shed client's next request still carries
        # all it buffered during its pause (over-quota data is accepted), so
        # elastic gets about one burst per pause, and bounded's 1 s pauses
        # cost it some.
        _, text = tests_pressure.scrape(NET_HTTP)
        m = re.search(r'sluice_connector_throttle_events_total\{connector="backfill",'
                      r'class="elastic",reason="broker_latency"\} (\d+)', text)
        limited = bool(re.search(r"pressure: broker 1 limited \(broker_latency", open(
            env.sluice_log, "rb").read().decode("utf-8", "replace")))
        log("class shares under the cap: elastic %.0f%%, bounded %.0f%%, fragile %.0f%%; "
            "controller limited the broker: %s; broker_latency throttles of elastic: %s"
            % (100 * share["elastic"], 100 * share["bounded"], 100 * share["fragile"],
               limited, m.group(1) if m else 0))
        check(limited and m, "the controller never limited the capped broker")
        check(share["elastic"] <= share["bounded"] - 0.3 and share["bounded"] >= 0.65,
              "not shed in class order: elastic kept %.0f%%, bounded %.0f%% of its rate"
              % (100 * share["elastic"], 100 * share["bounded"]))
        if limited:
            wait_for(lambda: re.search(r"pressure: broker 1 recovered", open(
                env.sluice_log, "rb").read().decode("utf-8", "replace")), 60,
                "the recovery to be logged", interval=0.5)
        # Back to the paced rate (not to `base`, whose window can hold a
        # catch-up burst: 3.65 MiB/s of a 3 MiB/s pace once).
        for c in WANT:
            check(after[c] >= 0.9 * WANT[c], "%s not back to 90%% of its %.2f MiB/s 7 s after "
                  "the cap went: %.2f" % (c, WANT[c] / MIB, after[c] / MIB))
    finally:
        ns.uncap()
    nothing_lost(env, [(floods[c], topics[c]) for c in WANT])


# The mock answers in about 1 ms, so tests_pressure.py targets 100 ms. The
# real broker on this 2-core machine, with Sluice, the producers and the
# JVM sharing the cores, delivers at a p90 of 40-120 ms per 100 ms interval
# at 5.5 MiB/s with single intervals at 300-800 ms (measured through Sluice,
# no cap): a 100 ms target sheds all the time there. An operator sets the
# target above the cluster's normal latency; here 300 ms (one slow interval
# does not move the smoothed signal past 375). Not higher: the capped link's
# queueing delay is bounded by the in-flight windows of the clients and of
# Sluice's upstream producer (in-flight bytes / cap, 400-600 ms here), and
# with a 600 ms target the signal crossed it in some runs and not others,
# so the link alone shared the broker, by connection (elastic and bounded
# at 1.1-1.3 MiB/s each in 9 runs).
#
# The fragile source writes 512 KiB/s (guaranteed) over 3 partitions, not
# 1 MiB/s to one as on the mock: an idempotent librdkafka producer (the
# client, and Sluice's own upstream producer) keeps one request in flight
# per partition once a request carries 5 or more records
# (RD_KAFKA_IDEMP_MAX_INFLIGHT counts records), so a partition moves at
# most one 1 MB batch per round trip: 0.3 MB/s behind a 3 s queue, whatever
# Sluice admits (seen: a 1 MiB/s one-partition fragile source at 0.88 MiB/s,
# stalled for seconds at a time). A direct producer meets the same bound.
NET_WANT = {"elastic": 3 * MIB, "bounded": 1.5 * MIB, "fragile": 0.5 * MIB}


def _netns_policy():
    import json
    from tests_pressure import POLICY
    doc = json.load(open(POLICY))
    doc["pressure"]["latency_target_ms"] = 300
    doc["classes"]["fragile"]["guarantee_bytes_per_sec"] = "512KiB"
    return policy_file("pressure-kafkanet", doc)


NET_HTTP = free_port()
register("capped_broker_link", test_capped_broker_link, direct=False,
         sluice_args=["--policy", _netns_policy(), "--http.listen", "127.0.0.1:%d" % NET_HTTP],
         timeout=300, upstreams=("kafkanet",))


def test_java_idempotent_leader_killed(env):
    """The Java producer (kafka-clients 4.x, idempotent by default) writing
    60,000 records through Sluice while the leader of one of its partitions
    is killed with SIGKILL: every record it was told is written is upstream
    exactly once, in order."""
    import javaclients
    from harness import Rec
    c = env.cluster
    topic = env.topic("javakill", 3, rf=3)
    leader = c.leaders(topic)[0]
    n = 60000
    recs = [Rec(i % 3, None, b"seq-%d-%07d" % (i % 3, i), [], None) for i in range(n)]
    out = {}

    def produce():
        out["res"] = javaclients.java_produce(
            "4", env.bootstrap, topic, recs, client_id="javakill", timeout=240,
            props={"delivery.timeout.ms": "120000", "linger.ms": "5",
                   "max.block.ms": "120000"})
    th = threading.Thread(target=produce, daemon=True)
    th.start()
    wait_for(lambda: total_high(env.upstream, topic, 3) >= 10000, 120,
             "10,000 records upstream before the kill", interval=0.05)
    c.node(leader).kill()
    # (No watermark reads while a node is down: Debian's confluent-kafka 1.7
    # consumer can hang in close() then.)
    log("killed node %d (leader of partition 0)" % leader)
    th.join(250)
    check(not th.is_alive(), "the Java producer did not finish")
    res = out["res"]
    check(res.get("ok"), "java producer: %s\n%s" % (res.get("error"), res.get("stderr", "")))
    acked = {r.value for r, o in zip(recs, res["offsets"]) if o is not None and o >= 0}
    log("java: %d acknowledged, %d record errors (first: %s)"
        % (len(acked), len(res["errors"]), res["errors"][:1]))
    c.node(leader).start()
    exactly_once(env, topic, 3, acked, {r.value for r in recs}, "Java, kill -9 of the leader")


register("java_idempotent_leader_killed", test_java_idempotent_leader_killed, direct=True,
         timeout=420, upstreams=("kafka3",))


# ---------------------------------------------------------------------------
# What a broker refuses, Sluice refuses the same way (issue 12, item 8)


def test_broker_refusals_differential(env):
    """The same Produce requests sent straight to the broker and through
    Sluice get the same per-partition error code: two record batches for
    one partition (v3+: exactly one; INVALID_RECORD), an empty record set
    (INVALID_RECORD), zstd below Produce v7 (UNSUPPORTED_COMPRESSION_TYPE),
    a bad CRC (CORRUPT_MESSAGE), a batch whose header disagrees with its
    records (no records, a lastOffsetDelta other than count - 1, a
    baseOffset other than 0), a legacy message set in a v3+ request
    (INVALID_RECORD), a producer's LogAppendTime flag with and without a
    timestamp; and, as controls, zstd at v7 and one batch at v3 and v9
    (accepted)."""
    import zstandard
    topic = env.topic("refuse", 1)

    def batch(v, base_offset=0):
        return kwire.record_batch([kwire.Record(b"k", v)], base_offset=base_offset)

    raw = kwire.encode_record(kwire.Record(b"k", b"zstd"), 0)
    one = kwire.encode_record(kwire.Record(b"k", b"one"), 0)
    zstd = kwire.record_batch([kwire.Record(b"k", b"zstd")], codec=4,
                              payload=zstandard.ZstdCompressor().compress(raw))
    cases = [
        ("two batches, v7", 7, batch(b"a") + batch(b"b", 1)),
        ("two batches, v9", 9, batch(b"c") + batch(b"d", 1)),
        ("empty record set, v7", 7, b""),
        ("zstd, v6", 6, zstd),
        ("zstd, v3", 3, zstd),
        ("zstd, v7", 7, zstd),
        ("bad CRC, v7", 7, kwire.record_batch([kwire.Record(b"k", b"x")], bad_crc=True)),
        # A batch's header against its records (LogValidator.validateBatch):
        ("zero records, v7", 7, kwire.record_batch([], last_offset_delta=0)),
        ("zero records, delta -1", 7, kwire.record_batch([], last_offset_delta=-1)),
        ("lastOffsetDelta 3 of 1", 7, kwire.record_batch([kwire.Record(b"k", b"g")],
                                                         last_offset_delta=3)),
        ("baseOffset 5, v7", 7, batch(b"h", 5)),
        ("count 5, 1 record", 7, kwire.record_batch(
            [kwire.Record(b"k", b"i")], raw_records=one, records_count=5)),
        ("garbage varints", 7, kwire.record_batch(
            [kwire.Record(b"k", b"l")], raw_records=kwire.varint(12) + b"\x00" + b"\xff" * 11)),
        ("bytes after the records", 7, kwire.record_batch(
            [kwire.Record(b"k", b"m")], raw_records=one + b"\x00\x00")),
        ("count 5 = delta+1, 1 rec", 7, kwire.record_batch(
            [kwire.Record(b"k", b"j")], raw_records=one, records_count=5, last_offset_delta=4)),
        # A message set of magic 1 in a v3+ request (ProduceRequest.validateRecords;
        # Sluice answered UNSUPPORTED_FOR_MESSAGE_FORMAT, 43):
        ("message set, v3", 3, kwire.message(1, b"k", b"legacy", 1700000000000)),
        ("message set, v9", 9, kwire.message(0, b"k", b"legacy")),
        # A producer's LogAppendTime flag (LogValidator.validateTimestamp):
        ("LogAppendTime, ts -1", 7, kwire.record_batch([kwire.Record(b"k", b"lat")], -1,
                                                       attributes_extra=0x08,
                                                       max_timestamp=-1)),
        ("LogAppendTime, ts now", 7, kwire.record_batch([kwire.Record(b"k", b"lat2")],
                                                        attributes_extra=0x08)),
        # A compressed batch whose payload does not decompress:
        ("gzip that is not gzip", 7, kwire.record_batch([kwire.Record(b"k", b"z")], codec=1,
                                                        payload=b"not gzip at all")),
        ("one batch, v3", 3, batch(b"e")),
        ("one batch, v9", 9, batch(b"f")),
    ]
    leader = kwire.leader_addr(env.upstream, topic, 0)
    diffs = []
    for what, version, records in cases:
        codes = []
        for addr in (leader, env.bootstrap):
            with kwire.Conn(addr, timeout=20) as c:
                c.metadata([topic])
                r = c.request(kwire.PRODUCE, version,
                              kwire.produce_request(version, [(topic, [(0, records)])], -1,
                                                    15000))
                codes.append(r["topics"][topic][0]["error_code"])
        log("%-22s broker %3d   sluice %3d" % (what, codes[0], codes[1]))
        if codes[0] != codes[1]:
            diffs.append("%s: broker %d, sluice %d" % (what, codes[0], codes[1]))
    check(not diffs, "answers differ from the broker's: %s" % "; ".join(diffs))


register("broker_refusals_differential", test_broker_refusals_differential, direct=False,
         sluice_args=["--http.listen", "127.0.0.1:0"], timeout=120, upstreams=("kafka",))


def _init_producer_id(c, name):
    """InitProducerId v4 on connection c, retried while the broker's
    producer id manager starts (COORDINATOR_LOAD_IN_PROGRESS,
    COORDINATOR_NOT_AVAILABLE: retriable), for up to 30 s."""
    deadline = time.monotonic() + 30
    while True:
        ip = c.init_producer_id(4)
        if ip["error_code"] not in (14, 15) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    eq(ip["error_code"], 0, "%s: InitProducerId" % name)
    return ip


def test_idempotent_sequence_differential(env):
    """One idempotent producer's batches in a scripted order, straight to
    the broker and through Sluice: a later batch first (3..5), then the
    first one (0..2), the next (6..8), the first again and the later one
    again. Kafka 4.1.1 accepts 3..5 (a producer it has no state for may
    start anywhere), answers OUT_OF_ORDER_SEQUENCE_NUMBER to 0..2 (behind,
    and not among its last five batches) and the original offset to a
    cached duplicate. Sluice answered DUPLICATE_SEQUENCE_NUMBER to 0..2,
    which clients take as success: the lost first batch of
    sluice_restarted_idempotent@kafka."""
    script = [("3..5 first", 3, b"b"), ("then 0..2", 0, b"a"), ("6..8", 6, b"c"),
              ("0..2 again", 0, b"a"), ("3..5 again", 3, b"b")]
    got = {}
    for name, addr in (("broker", env.upstream), ("sluice", env.bootstrap)):
        topic = env.topic("seq-" + name, 1)
        with kwire.Conn(addr, timeout=20) as c:
            c.metadata([topic])
            ip = _init_producer_id(c, name)
            codes = []
            for what, seq, tag in script:
                b = kwire.record_batch([kwire.Record(b"k", b"%s%d" % (tag, i)) for i in range(3)],
                                       producer_id=ip["producer_id"],
                                       producer_epoch=ip["producer_epoch"], base_sequence=seq)
                r = c.request(kwire.PRODUCE, 9,
                              kwire.produce_request(9, [(topic, [(0, b)])], -1, 15000))
                codes.append(r["topics"][topic][0]["error_code"])
        got[name] = codes
    for (what, _, _), b, s in zip(script, got["broker"], got["sluice"]):
        log("%-12s broker %3d   sluice %3d" % (what, b, s))
    eq(got["sluice"], got["broker"], "answers to the scripted sequence")


register("idempotent_sequence_differential", test_idempotent_sequence_differential,
         direct=False, timeout=120, upstreams=("kafka",))


def test_split_retry_differential(env):
    """Issue 12, items 1 and 3. An idempotent producer sends six records
    in one batch to a topic whose max.message.bytes (2000) fits one big
    record but not a big one with anything else, and splits what is
    refused with MESSAGE_TOO_LARGE as the Java client does: the parts go
    from the same base sequence, the first half first. Straight to the
    broker and through Sluice (whose producer sends at most two records
    per upstream request, so parts of a batch are written while others are
    refused), the script must end with every record in the partition
    exactly once; the broker keeps them in order, Sluice writes a retry's
    missing records after what was written before. Sluice answered every
    split part OUT_OF_ORDER_SEQUENCE_NUMBER, forever, and a retry wrote the
    written records again."""
    from tests_faults import _exactly_once, _idem_recs, _rec_idents
    results = {}
    for name, addr in (("broker", env.upstream), ("sluice", env.bootstrap)):
        topic = env.topic("split-" + name, 1, config={"max.message.bytes": "2000"})
        recs, ts = _idem_recs(name.encode(), 6, big=(2, 3))
        with kwire.Conn(addr, timeout=20) as c:
            c.metadata([topic])
            ip = _init_producer_id(c, name)
            todo = [(0, 6)]  # (first record, count), in send order
            trace = []
            for _ in range(40):
                if not todo:
                    break
                first, n = todo[0]
                b = kwire.record_batch(recs[first:first + n], ts,
                                       producer_id=ip["producer_id"],
                                       producer_epoch=ip["producer_epoch"],
                                       base_sequence=first)
                r = c.request(kwire.PRODUCE, 9,
                              kwire.produce_request(9, [(topic, [(0, b)])], -1, 15000))
                code = r["topics"][topic][0]["error_code"]
                trace.append("%d..%d:%d" % (first, first + n - 1, code))
                if code == 0:
                    todo.pop(0)
                elif code == kwire.MESSAGE_TOO_LARGE and n > 1:
                    todo[0:1] = [(first, (n + 1) // 2), (first + (n + 1) // 2, n // 2)]
                else:
                    fail("%s: %d..%d answered %d (trace %s)"
                         % (name, first, first + n - 1, code, trace))
            log("%s: %s" % (name, " ".join(trace)))
            check(not todo, "%s: records left unwritten after 40 requests: %s" % (name, todo))
        sent = _rec_idents(recs, ts)
        got = _exactly_once(env, topic, sent)
        results[name] = [r.value.split(b"-")[1].decode() for r in got]
        log("%s holds: %s" % (name, results[name]))
    eq(results["broker"], ["v%d" % i for i in range(6)], "the broker's partition, in send order")


register("split_retry_differential", test_split_retry_differential, direct=False,
         sluice_args=["-X", "batch.num.messages=2"], timeout=180, upstreams=("kafka",))


def test_topic_limits_differential(env):
    """Issue 12, item 7. Batches that the topic's configs make a broker
    refuse (a timestamp past message.timestamp.after.max.ms or
    before.max.ms, a record over max.message.bytes), sent straight to the
    broker and through Sluice, get the same answer; and a well-behaved
    client's batch sent at the same moment as a refused one is written:
    Sluice's producer packs both clients' records into one upstream batch
    (linger.ms=200 here), which the broker refused whole, failing the
    innocent client too. Sluice reads the configs when it first produces
    to a topic, so a first batch warms it up."""
    topic = env.topic("limits", 1, config={"message.timestamp.after.max.ms": "60000",
                                           "message.timestamp.before.max.ms": "86400000",
                                           "max.message.bytes": "3000"})
    with kwire.Conn(env.bootstrap, timeout=20) as c:
        c.metadata([topic])
        eq(c.produce(topic, 0, kwire.record_batch([kwire.Record(b"k", b"warm")]))["error_code"],
           0, "warm-up batch")
    wait_for(lambda: ("topic %s: message.timestamp.type" % topic)
             in open(env.sluice_log, "rb").read().decode("utf-8", "replace"),
             30, "Sluice to read %s's configs" % topic, interval=0.1)
    now = int(time.time() * 1000)
    cases = [("now", now, 10), ("2 min ahead", now + 120000, 10),
             ("59 s ahead", now + 59000, 10), ("2 days behind", now - 2 * 86400000, 10),
             ("no timestamp (-1)", -1, 10), ("INT64_MIN", -2 ** 63, 10),
             ("INT64_MAX", 2 ** 63 - 1, 10), ("value 2850", now, 2850),
             ("value 2990", now, 2990)]
    leader = kwire.leader_addr(env.upstream, topic, 0)
    diffs = []
    for what, ts, vlen in cases:
        b = kwire.record_batch([kwire.Record(b"k", b"x" * vlen)], ts)
        codes = []
        for addr in (leader, env.bootstrap):
            with kwire.Conn(addr, timeout=20) as c:
                c.metadata([topic])
                codes.append(c.produce(topic, 0, b, version=9)["error_code"])
        log("%-18s broker %3d   sluice %3d" % (what, codes[0], codes[1]))
        if codes[0] != codes[1]:
            diffs.append("%s: broker %d, sluice %d" % (what, codes[0], codes[1]))
    # The past unbounded (Kafka 4's default before.max.ms): extremes.
    unbounded = env.topic("limits-past", 1, config={"message.timestamp.after.max.ms": "60000"})
    with kwire.Conn(env.bootstrap, timeout=20) as c:
        c.metadata([unbounded])
        c.produce(unbounded, 0, kwire.record_batch([kwire.Record(b"k", b"warm")]))
    wait_for(lambda: ("topic %s: message.timestamp.type" % unbounded)
             in open(env.sluice_log, "rb").read().decode("utf-8", "replace"),
             30, "Sluice to read %s's configs" % unbounded, interval=0.1)
    leader = kwire.leader_addr(env.upstream, unbounded, 0)
    for what, ts in (("INT64_MIN, past open", -2 ** 63), ("-2^62, past open", -2 ** 62),
                     ("10 years ago", now - 10 * 365 * 86400000)):
        b = kwire.record_batch([kwire.Record(b"k", b"x")], ts)
        codes = []
        for addr in (leader, env.bootstrap):
            with kwire.Conn(addr, timeout=20) as c:
                c.metadata([unbounded])
                codes.append(c.produce(unbounded, 0, b, version=9)["error_code"])
        log("%-18s broker %3d   sluice %3d" % (what, codes[0], codes[1]))
        if codes[0] != codes[1]:
            diffs.append("%s: broker %d, sluice %d" % (what, codes[0], codes[1]))
    check(not diffs, "answers differ from the broker's: %s" % "; ".join(diffs))

    # One client's refused batch and another's good one at the same moment.
    ts = int(time.time() * 1000)
    bad = kwire.record_batch([kwire.Record(b"k", b"future")], ts + 600000)
    good = kwire.record_batch([kwire.Record(b"k", b"innocent")], ts)
    with kwire.Conn(env.bootstrap, timeout=20) as c1, \
            kwire.Conn(env.bootstrap, timeout=20) as c2:
        c1.metadata([topic])
        c2.metadata([topic])
        answers = []
        for _ in range(3):
            k1 = c1.send(kwire.PRODUCE, 9, kwire.produce_request(9, [(topic, [(0, bad)])], -1,
                                                                  15000))
            k2 = c2.send(kwire.PRODUCE, 9, kwire.produce_request(9, [(topic, [(0, good)])], -1,
                                                                  15000))
            got = []
            for c, k in ((c1, k1), (c2, k2)):
                rc, body = c.recv(kwire.PRODUCE, 9, timeout=30)
                eq(rc, k, "correlation id")
                got.append(kwire.PARSERS[kwire.PRODUCE](9, body)["topics"][topic][0]["error_code"])
            answers.append(got)
        log("future batch and innocent batch together: %s" % answers)
        check(all(a[0] == 32 for a in answers), "the future batch was not refused: %s" % answers)
        check(all(a[1] == 0 for a in answers),
              "the innocent client's batch failed with the other's: %s" % answers)


register("topic_limits_differential", test_topic_limits_differential, direct=False,
         sluice_args=["-X", "linger.ms=200"], timeout=180, upstreams=("kafka",))


def _idempotent_script(env, rounds, ids=None):
    """Runs one idempotent producer's script, pipelined on one connection,
    straight to the broker and through Sluice, each on a topic of its own.
    rounds: lists of (epoch offset, base sequence, tag) sent together, then
    their answers read; ids: (producer id, epoch) to use (one this
    instance never issued), else InitProducerId's. Returns {name: (answers
    as (error, base offset or -1), the partition's values)}, and logs the
    side-by-side table."""
    got = {}
    for name, addr in (("broker", env.upstream), ("sluice", env.bootstrap)):
        topic = env.topic("script-" + name, 1)
        with kwire.Conn(addr, timeout=20) as c:
            c.metadata([topic])
            if ids is None:
                ip = _init_producer_id(c, name)
                pid, epoch0 = ip["producer_id"], ip["producer_epoch"]
            else:
                pid, epoch0 = ids
            answers = []
            for batches in rounds:
                corrs = []
                for epoch, seq, tag in batches:
                    b = kwire.record_batch([kwire.Record(b"k", b"%s%d" % (tag, i))
                                            for i in range(3)],
                                           producer_id=pid, producer_epoch=epoch0 + epoch,
                                           base_sequence=seq)
                    corrs.append(c.send(kwire.PRODUCE, 9, kwire.produce_request(
                        9, [(topic, [(0, b)])], -1, 15000)))
                for k in corrs:
                    rc, body = c.recv(kwire.PRODUCE, 9, timeout=30)
                    eq(rc, k, "correlation id")
                    a = kwire.PARSERS[kwire.PRODUCE](9, body)["topics"][topic][0]
                    answers.append((a["error_code"],
                                    a["base_offset"] if a["error_code"] == 0 else -1))
        contents = [r.value for r in read_upstream(env.upstream, topic, 1)[0]]
        got[name] = (answers, contents)
    script = [(e, s, t.decode()) for r in rounds for e, s, t in r]
    for (e, sq, t), b, s in zip(script, got["broker"][0], got["sluice"][0]):
        log("epoch+%d seq %2d %s: broker %-10s sluice %s" % (e, sq, t, b, s))
    log("broker holds %s" % [v.decode() for v in got["broker"][1]])
    log("sluice holds %s" % [v.decode() for v in got["sluice"][1]])
    return got


def test_pipelined_idempotence_differential(env):
    """Issue 12, acceptance 2: one idempotent producer's script, pipelined
    on one connection, straight to the broker and through Sluice, with the
    answers (error code and base offset) and the partition's final
    contents compared: three batches in flight at once; then, in flight
    together, retries of the second and the first (cached duplicates), the
    next batch, one past a gap and the one that fills it; then a newer
    epoch starting past 0 (Kafka: OUT_OF_ORDER_SEQUENCE_NUMBER), a newer
    epoch from 0, and the old epoch again (INVALID_PRODUCER_EPOCH)."""
    got = _idempotent_script(env, [
        [(0, 0, b"a"), (0, 3, b"b"), (0, 6, b"c")],
        [(0, 3, b"b"), (0, 0, b"a"), (0, 9, b"d"), (0, 15, b"f"), (0, 12, b"e")],
        [(1, 3, b"g")],
        [(1, 0, b"h")],
        [(0, 18, b"i")],
    ])
    eq(got["sluice"][0], got["broker"][0], "answers (error, base offset) to the script")
    eq(got["sluice"][1], got["broker"][1], "the partition's contents")


register("pipelined_idempotence_differential", test_pipelined_idempotence_differential,
         direct=False, timeout=120, upstreams=("kafka",))


def test_unknown_producer_id_differential(env):
    """Issue 12, acceptance 2, unknown producer ids: batches naming a
    producer id that nobody issued (as after a Sluice restart, or another
    instance's), pipelined, straight to the broker and through Sluice. A
    broker with no state for the id accepts its first batch at any
    sequence (here 5), answers OUT_OF_ORDER_SEQUENCE_NUMBER to one behind
    it that it has not cached, the original offset to a retry of a cached
    one, takes a newer epoch from sequence 0 and refuses the old epoch
    after that (INVALID_PRODUCER_EPOCH). Sluice must give the same
    answers and leave the same partition."""
    pid = 0x3a000000 + random.randrange(1 << 24)
    got = _idempotent_script(env, [
        [(0, 5, b"a")],
        [(0, 0, b"b"), (0, 8, b"c")],
        [(0, 5, b"a"), (0, 11, b"d"), (0, 8, b"c")],
        [(2, 3, b"e")],
        [(2, 0, b"f"), (2, 3, b"g")],
        [(0, 14, b"h")],
    ], ids=(pid, 4))
    eq(got["sluice"][0], got["broker"][0], "answers (error, base offset) to the script")
    eq(got["sluice"][1], got["broker"][1], "the partition's contents")


register("unknown_producer_id_differential", test_unknown_producer_id_differential,
         direct=False, timeout=120, upstreams=("kafka",))


def test_init_producer_id_differential(env):
    """InitProducerId v4 without a transactional.id, straight to the broker
    and through Sluice: a fresh request, one naming the id and epoch just
    given (what a Java producer sends after UNKNOWN_PRODUCER_ID or
    OUT_OF_ORDER_SEQUENCE_NUMBER, KIP-360), one with a wrong epoch and one
    with an id never issued. A broker ignores the id and epoch when there is
    no transactional.id and hands out a new producer id with epoch 0 every
    time (never INVALID_PRODUCER_EPOCH); Sluice must answer the same way."""
    def ipid(addr, pid=-1, epoch=-1):
        body = (kwire.compact_string(None) + kwire.i32(60000) + kwire.i64(pid) +
                kwire.i16(epoch) + kwire.NO_TAGS)
        with kwire.Conn(addr, timeout=20) as c:
            deadline = time.monotonic() + 30
            while True:
                r = c.request(kwire.INIT_PRODUCER_ID, 4, body)
                # COORDINATOR_LOAD_IN_PROGRESS / NOT_AVAILABLE while the
                # broker's producer id manager starts: retriable.
                if r["error_code"] not in (14, 15) or time.monotonic() > deadline:
                    return r
                time.sleep(0.2)

    seen = {}
    for name, addr in (("broker", env.upstream), ("sluice", env.bootstrap)):
        a = ipid(addr)
        steps = [("fresh", a),
                 ("same id and epoch", ipid(addr, a["producer_id"], a["producer_epoch"])),
                 ("wrong epoch", ipid(addr, a["producer_id"], a["producer_epoch"] + 7)),
                 ("id never issued", ipid(addr, 123456789, 0))]
        seen[name] = steps
        log("%s: %s" % (name, ", ".join("%s -> error %d id %d epoch %d"
                                         % (w, r["error_code"], r["producer_id"],
                                            r["producer_epoch"]) for w, r in steps)))
    for (what, b), (_, s) in zip(seen["broker"], seen["sluice"]):
        eq(s["error_code"], b["error_code"], "%s: error code" % what)
        eq(s["producer_epoch"], b["producer_epoch"], "%s: epoch" % what)
    for name, steps in seen.items():
        ids = [r["producer_id"] for _, r in steps]
        eq(len(set(ids)), len(ids), "%s: a new producer id for every request (%s)" % (name, ids))


register("init_producer_id_differential", test_init_producer_id_differential, direct=False,
         timeout=120, upstreams=("kafka",))
