"""Clients from the registries through Sluice, verified byte for byte
upstream, against the mock and the one-node Apache Kafka:

  franz-go, sarama and kafka-go (Go module proxy), confluent-kafka 2.x (PyPI; its own, newer
  librdkafka), aiokafka and kafka-python 3.x (PyPI), driven by tests/go and tests/py through
  extclients.py; the Java client kafka-clients 4.x and 3.x (Maven Central)
  through javaclients.py.

Each client's matrix: every codec with acks=all and the client's default
idempotence (franz-go and Java: on), idempotence forced on and off, and
acks=1 and acks=0.
"""

import os
import time

import extclients
from harness import check, eq, log, make_records, register, verify_upstream, wait_for
from tests_clients import BOTH, PARTITIONS, seed_of

N = 200
CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]


def cases():
    for codec in CODECS:
        yield "acksall", codec, None
    yield "acksall", "lz4", True
    yield "acksall", "zstd", False
    yield "acks1", "gzip", False
    yield "acks0", "none", False


def check_result(res, recs, acks, what):
    check(res.get("ok"), "%s: %s\nstderr:\n%s" % (what, res.get("error"), res.get("stderr", "")))
    check(not res.get("errors"), "%s: %d record errors, first %s"
          % (what, len(res["errors"]), res["errors"][:3]))
    eq(res["acked"], len(recs), "%s: acknowledged records" % what)
    if acks != "0":
        bad = [o for o in res["offsets"] if o is None or o < 0]
        check(not bad, "%s: %d records without an offset" % (what, len(bad)))


def make_ext_test(client, acks, codec, idempotent, props=None):
    def fn(env):
        extclients.ensure_installed()
        topic = env.topic(client, PARTITIONS)
        recs = make_records(N, PARTITIONS, seed=seed_of(client, acks, codec, idempotent),
                            null_header_values=extclients.CAPS[client]["null_header_value"])
        a = acks[len("acks"):]
        res = extclients.PRODUCERS[client](env.bootstrap, topic, recs, acks=a, codec=codec,
                                           idempotent=idempotent, props=props,
                                           client_id="sluice-it-%s" % client)
        check_result(res, recs, a, extclients.CAPS[client]["name"])
        got = verify_upstream(env, topic, PARTITIONS, recs)
        if a != "0":
            # The offsets the client was given are where the records are.
            pos = {}
            for p, rs in got.items():
                for i, r in enumerate(rs):
                    pos.setdefault((p, r.value, r.key), i)
            wrong = [(r.partition, o) for r, o in zip(recs, res["offsets"])
                     if r.value is not None and pos.get((r.partition, r.value, r.key)) != o]
            check(not wrong, "offsets answered differ from the records' positions: %s"
                  % wrong[:5])
    return fn


def idem_name(idempotent):
    return {None: "", True: "_idem", False: "_noidem"}[idempotent]


for _client in ("franz", "sarama", "kafkago", "ck2", "aiokafka", "kpy3"):
    for _acks, _codec, _idem in cases():
        if _idem and not extclients.CAPS[_client].get("idempotence", True):
            continue
        register("%s_%s_%s%s" % (_client, _acks, _codec, idem_name(_idem)),
                 make_ext_test(_client, _acks, _codec, _idem), upstreams=BOTH)

# sarama speaks the Produce version of the Kafka version it is configured
# for: older dialects than its default (v9) too. (0.10 and older mean
# Produce v0-v2 and message formats v0/v1: tests_legacy.py.)
for _ver, _acks, _codec, _idem in (("0.11.0.0", "acksall", "gzip", True),  # Produce v3
                                   ("1.0.0", "acks1", "snappy", False),  # v5
                                   ("2.1.0", "acksall", "zstd", True)):  # v7
    register("sarama_v%s_%s_%s%s" % (_ver.replace(".0.0", "").replace(".", "_"), _acks,
                                     _codec, idem_name(_idem)),
             make_ext_test("sarama", _acks, _codec, _idem, {"kafka_version": _ver}),
             upstreams=BOTH)


# ---------------------------------------------------------------------------
# The Java client, kafka-clients 4.x and 3.x (Maven Central)


def make_java_test(version, acks, codec, idempotent):
    def fn(env):
        import javaclients
        topic = env.topic("java%s" % version, PARTITIONS)
        recs = make_records(N, PARTITIONS, seed=seed_of("java", version, acks, codec, idempotent))
        a = acks[len("acks"):]
        res = javaclients.java_produce(version, env.bootstrap, topic, recs, acks=a, codec=codec,
                                       idempotent=idempotent,
                                       client_id="sluice-it-java%s" % version)
        check_result(res, recs, a, "kafka-clients %s" % res.get("client_version", version))
        verify_upstream(env, topic, PARTITIONS, recs)
    return fn


for _version in ("4", "3"):
    for _acks, _codec, _idem in cases():
        register("java%s_%s_%s%s" % (_version, _acks, _codec, idem_name(_idem)),
                 make_java_test(_version, _acks, _codec, _idem), upstreams=BOTH)


def test_java_transactional_refused(env):
    """A transactional Java producer through Sluice: initTransactions() fails
    at once with a fatal, clear error (TransactionalIdAuthorizationException),
    not after max.block.ms; nothing is written."""
    import javaclients
    env.require_proxy("a real broker serves transactions")
    topic = env.topic("javatxn", 1)
    recs = make_records(10, 1, seed=5)
    for version in ("4", "3"):
        res = javaclients.java_produce(version, env.bootstrap, topic, recs,
                                       transactional_id="sluice-it-txn-%s" % version,
                                       props={"max.block.ms": "30000"})
        log("kafka-clients %s: %s at stage %s after %s ms (stage %s ms)"
            % (version, res.get("error"), res.get("stage"), res.get("elapsed_ms"),
               res.get("stage_ms")))
        check(not res.get("ok"), "a transaction through Sluice succeeded")
        eq(res.get("stage"), "initTransactions", "stage that failed")
        check("TransactionalIdAuthorization" in (res.get("error") or ""),
              "not a transactional-id refusal: %s" % res.get("error"))
        check("Sluice does not serve transactions" in (res.get("error") or "")
              or res.get("stage_ms", 1e9) < 5000,
              "refusal neither explained nor fast: %s" % res)
        check(res.get("stage_ms", 1e9) < 5000, "initTransactions took %s ms" % res.get("stage_ms"))
    from harness import total_high
    eq(total_high(env.upstream, topic, 1), 0, "records upstream")


register("java_transactional_refused", test_java_transactional_refused, direct=False,
         timeout=120, upstreams=BOTH)


# ---------------------------------------------------------------------------
# Kafka Connect: a source connector with three tasks through Sluice, held to
# its quota as a whole


CONNECT_QUOTA = 1048576
VALUE_BYTES = 1024


def connect_policy():
    from tests_policy import policy_file
    return policy_file("connect", {
        "version": 1,
        "classes": {"bounded": {"weight": 1, "max_pause_ms": 1000}},
        "connectors": {
            "seq": {"class": "bounded",
                    "match": {"client_id_prefixes": ["connector-producer-seq-"]},
                    "quota": {"bytes_per_sec": CONNECT_QUOTA}},
        },
        "defaults": {"action": "admit", "class": "bounded"},
    })


def record_wire_bytes(task, seq):
    """Bytes of one SeqSource record in a v2 record batch (what Sluice's
    quota counts, with the batch's 61-byte header spread over its records):
    key "t<task>-<seq>", a 1 KiB value, header task=<task>."""
    def varint_len(v):
        v = (v << 1) ^ (v >> 63)
        n = 1
        while v >= 0x80:
            v >>= 7
            n += 1
        return n
    key = len(b"t%d-%d" % (task, seq))
    hdr = varint_len(4) + 4 + varint_len(len(str(task))) + len(str(task))
    body = (1 + varint_len(seq % 16) + varint_len(seq % 16) + varint_len(key) + key
            + varint_len(VALUE_BYTES) + VALUE_BYTES + varint_len(1) + hdr)
    return body + varint_len(body)


def test_connect_tasks_share_quota(env):
    """A Kafka Connect 4.1 distributed worker whose internal topics live on
    the real cluster and whose source tasks produce through Sluice
    (producer.bootstrap.servers): SeqSource with tasks.max=3, three producers
    on their own connections, client.ids connector-producer-seq-0..2, matched
    by prefix to one connector with a 1 MiB/s quota. Measured at the
    cluster, the three together get 1 MiB/s +-10%; afterwards every task's
    records are upstream, each once, in order."""
    import javaclients
    from harness import watermarks
    topic = env.topic("connect", 3)
    # Each task's producer buffers up to buffer.memory (32 MiB by default)
    # and Connect holds every submitted record until it is acknowledged: with
    # three tasks in a 256 MiB heap the worker spends itself in GC (seen:
    # 15,000 -> 468 records/s within 12 s, straight to the broker). 8 MiB
    # buffers in a 512 MiB heap: a steady ~55,000 records/s direct.
    w = javaclients.ConnectWorker(env.upstream, env.bootstrap,
                                  os.path.join(env.logdir, env.name + ".connect"),
                                  heap="512m", producer_props={"buffer.memory": 8388608})
    try:
        log("Connect worker up in %.1fs" % w.started_in)
        w.create_connector("seq", {"topic": topic, "tasks.max": 3, "records.per.task": 200000,
                                   "value.bytes": VALUE_BYTES, "partitions": 3})
        w.wait_tasks_running("seq", 3, 60)

        def high():
            return sum(hi for _, hi in watermarks(env.upstream, topic, 3, timeout=5).values())
        wait_for(lambda: high() > 3000, 60, "the connector's first records upstream")
        time.sleep(2)  # past the first burst (the quota's one second of credit)
        pts = []
        t0 = time.monotonic()
        while time.monotonic() - t0 < 12:
            pts.append((time.monotonic() - t0, high()))
            time.sleep(0.2)  # the sampling period of the measurement
        n = float(len(pts))
        mt = sum(t for t, _ in pts) / n
        mh = sum(h for _, h in pts) / n
        slope = sum((t - mt) * (h - mh) for t, h in pts) / sum((t - mt) ** 2 for t, _ in pts)
        per_record = sum(record_wire_bytes(t, s) for t in range(3) for s in range(1000, 1100)) / 300.0
        per_record += 61.0 / 15  # batch header over Connect's ~15-record (16 KiB) batches
        got = slope * per_record
        log("3 tasks: %.0f records/s x %.0f bytes = %.3f MiB/s (quota %.3f)"
            % (slope, per_record, got / 1048576.0, CONNECT_QUOTA / 1048576.0))
        check(abs(got - CONNECT_QUOTA) <= 0.10 * CONNECT_QUOTA,
              "connector rate %.3f MiB/s, want 1 MiB/s +-10%%" % (got / 1048576.0))
        w.delete_connector("seq")
    finally:
        w.stop()
    # Stopped tasks' producers were flushed and closed: what is upstream is
    # what they wrote, each task's records once and in sequence.
    from harness import read_upstream
    got = read_upstream(env.upstream, topic, 3, timeout=120)
    per_task = {}
    for p, recs in got.items():
        for r in recs:
            t, s = r.key.decode().lstrip("t").split("-")
            per_task.setdefault(int(t), []).append((p, int(s)))
            check(r.value.startswith(r.key + b"|") and len(r.value) == VALUE_BYTES,
                  "record %r: value %r" % (r.key, r.value[:40]))
            eq(r.headers, [("task", t.encode())], "headers of %r" % r.key)
    eq(sorted(per_task), [0, 1, 2], "tasks with records upstream")
    for t, ps in per_task.items():
        seqs = sorted(s for _, s in ps)
        eq(seqs, list(range(len(seqs))), "task %d: sequence numbers upstream (no gap, no "
           "duplicate)" % t)
        for p in range(3):
            mine = [s for q, s in ps if q == p]
            check(mine == sorted(mine), "task %d partition %d out of order" % (t, p))
    log("upstream: %s records per task" % {t: len(v) for t, v in sorted(per_task.items())})
    text = open(env.sluice_log, "rb").read().decode("utf-8", "replace")
    for t in range(3):
        check('client.id "connector-producer-seq-%d"' % t in text,
              "task %d's producer not seen by Sluice" % t)


register("connect_tasks_share_quota", test_connect_tasks_share_quota, direct=False,
         sluice_args=["--policy", connect_policy()], timeout=300, upstreams=("kafka",))
