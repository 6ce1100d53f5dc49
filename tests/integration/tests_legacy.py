"""Issue 15: legacy producers (Produce v0-v2, message formats v0/v1) bridged
to record batches, against the mock and the real Kafka 4.1.1, both of which
refuse those versions and formats themselves.

  - kwire's own requests: every request version with every legacy codec
    (gzip, snappy xerial and raw, lz4 with the Kafka 0.8-0.9 header checksum
    for magic 0), null and empty keys and values, wrappers with relative and
    absolute inner offsets, the answers in the v0/v1/v2 formats, refusals
    with a broker's errors, acks=0 closing the connection on an error;
  - real clients forced to old protocol versions: kafka-python 2.0.2 with
    api_version (0, 9) and (0, 10), sarama as Kafka 0.8.2, 0.9 and 0.10.2, and
    the Java producer of kafka-clients 0.10.2.2 (Maven Central).

Every record is compared byte for byte upstream (key, value, partition,
timestamp where the format has one; a magic-0 record is stored with
timestamp -1, as a Kafka 3.x broker stores an up-converted one).
"""

import logging
import os
import socket
import time

import extclients
import kwire
from harness import Rec, check, eq, log, make_records, read_upstream, register, verify_upstream
from tests_clients import BOTH, PARTITIONS, kafka_python_errors, seed_of

NONE, GZIP, SNAPPY, LZ4 = 0, 1, 2, 3

# (key, value) corners every legacy case sends
CORNERS = [(b"k0", b"v0"), (None, b"null key"), (b"", b""), (b"tombstone", None),
           (None, None), (b"k5", b"x" * 3000)]


def _set(magic, codec, tag, ts0, xerial=True, relative=True):
    """A message set of CORNERS (values tagged) and the Recs it must give."""
    msgs = []
    recs = []
    for i, (k, v) in enumerate(CORNERS):
        v = None if v is None else tag + b"-" + v
        ts = ts0 + i if magic == 1 else -1
        msgs.append(kwire.message(magic, k, v, ts, offset=i if relative else 1000 + i))
        recs.append(Rec(0, k, v, [], ts))
    inner = b"".join(msgs)
    if codec == NONE:
        return inner, recs
    return kwire.wrapper(magic, codec, inner, ts0 + len(CORNERS), xerial=xerial), recs


def _parse_legacy_answer(version, body, topic):
    """The Produce v0/v1/v2 answer: per partition error and base offset,
    log_append_time from v2, throttle_time_ms after the topics from v1."""
    ans = kwire.parse_produce(version, body)
    return ans["topics"][topic][0], ans


CASES = [
    # (request version, magic, codec, xerial, relative inner offsets)
    (0, 0, NONE, True, True), (0, 0, GZIP, True, True), (0, 0, SNAPPY, True, True),
    (0, 0, LZ4, True, True),
    (1, 0, NONE, True, True), (1, 0, SNAPPY, False, True), (1, 0, LZ4, True, True),
    (2, 1, NONE, True, True), (2, 1, GZIP, True, True), (2, 1, SNAPPY, True, True),
    (2, 1, SNAPPY, False, True), (2, 1, LZ4, True, True), (2, 1, GZIP, True, False),
    (2, 0, GZIP, True, True), (1, 1, LZ4, True, False),
]


def test_legacy_kwire_produce(env):
    """Produce v0, v1 and v2 with message sets of magic 0 and 1, each legacy
    codec, through Sluice: every answer in its version's format with error
    0 and the offset of the set's first record; every record upstream as
    sent (magic 0: timestamp -1)."""
    topic = env.topic("legacy", 1)
    sent = []
    ts0 = int(time.time() * 1000) - 60000
    with kwire.Conn(env.bootstrap, timeout=30) as c:
        c.metadata([topic], version=0)
        for n, (ver, magic, codec, xerial, relative) in enumerate(CASES):
            what = "Produce v%d magic %d codec %d%s%s" % (
                ver, magic, codec, "" if xerial else " raw", "" if relative else " absolute")
            data, recs = _set(magic, codec, b"c%d" % n, ts0 + 100 * n, xerial, relative)
            k = c.send(kwire.PRODUCE, ver, kwire.produce_request(ver, [(topic, [(0, data)])],
                                                                 -1, 15000))
            rc, body = c.recv(kwire.PRODUCE, ver, timeout=30)
            eq(rc, k, "%s: correlation id" % what)
            part, ans = _parse_legacy_answer(ver, body, topic)
            eq(part["error_code"], 0, "%s: error" % what)
            eq(part["base_offset"], len(sent), "%s: base offset" % what)
            if ver >= 1:
                check(ans.get("throttle_time_ms", 0) >= 0, "%s: throttle time" % what)
            if ver >= 2:
                eq(part["log_append_time"], -1, "%s: log_append_time (CreateTime)" % what)
            sent.extend(recs)
            log("%s: ok at %d" % (what, part["base_offset"]))
    verify_upstream(env, topic, 1, sent)


register("legacy_kwire_produce", test_legacy_kwire_produce, direct=False, upstreams=BOTH,
         timeout=120)


def test_legacy_refusals(env):
    """What a broker answered old producers (Kafka 3.9.1's answers, see
    legacy_differential), each on a connection that goes on working: a bad
    CRC (CORRUPT_MESSAGE), a bad inner CRC, mixed magics, a wrapper inside
    a wrapper and a wrapper beside another message (INVALID_RECORD), a
    wrapper whose value does not decompress (UNKNOWN_SERVER_ERROR), a set
    cut inside its only message (success, nothing written); nothing of
    them is written. acks=0 with an error closes the connection, as a
    broker does."""
    topic = env.topic("legacy-bad", 1)
    inner = kwire.message(1, b"k", b"a", 1, offset=0) + kwire.message(1, b"k", b"b", 2, offset=1)
    cases = [
        ("bad CRC", 2, kwire.message(1, b"k", b"v", 5, bad_crc=True), 2),
        ("bad inner CRC", 2, kwire.wrapper(1, GZIP, kwire.message(1, b"k", b"v", 5,
                                                                    bad_crc=True), 5), 2),
        ("mixed magics", 2, kwire.message(0, b"k", b"v") + kwire.message(1, b"k", b"v", 5), 87),
        ("nested wrapper", 2, kwire.wrapper(1, GZIP, kwire.wrapper(1, GZIP, inner, 3), 3), 87),
        ("wrapper and message", 1, kwire.wrapper(0, GZIP, kwire.message(0, b"k", b"a")) +
         kwire.message(0, b"k", b"b"), 87),
        ("not gzip", 0, kwire.message(0, None, b"not gzip at all", attributes=GZIP), -1),
        ("no whole message", 2, kwire.message(1, b"k", b"v", 5)[:-1], 0),
    ]
    with kwire.Conn(env.bootstrap, timeout=30) as c:
        c.metadata([topic], version=0)
        for what, ver, data, want in cases:
            r = c.produce(topic, 0, data, version=ver)
            log("%-20s v%d: error %d" % (what, ver, r["error_code"]))
            eq(r["error_code"], want, what)
        r = c.produce(topic, 0, kwire.message(1, b"k", b"after", 7), version=2)
        eq(r["error_code"], 0, "a good set after the refusals")
        eq(r["base_offset"], 0, "nothing of the refused sets was written")
    with kwire.Conn(env.bootstrap, timeout=30) as c:
        c.metadata([topic], version=0)
        c.produce(topic, 0, kwire.message(0, b"k", b"v", bad_crc=True), acks=0, version=0)
        c.sock.settimeout(10)
        try:
            got = c.sock.recv(1)
        except (ConnectionResetError, socket.timeout) as e:
            got = e
        eq(got, b"", "acks=0 with a refused set: the connection is closed")


register("legacy_refusals", test_legacy_refusals, direct=False, upstreams=BOTH, timeout=120)


LEGACY_QUOTA = 256 * 1024


def _legacy_quota_policy():
    from tests_policy import policy_file
    return policy_file("legacy-quota", {
        "version": 1,
        "classes": {"std": {"weight": 1, "max_pause_ms": 2000}},
        "connectors": {"old": {"class": "std", "match": {"client_ids": ["legacy-q"]},
                               "quota": {"bytes_per_sec": LEGACY_QUOTA}}},
        "defaults": {"action": "admit", "class": "std"},
    })


def test_legacy_quota(env):
    """A legacy producer is held to its connector's quota like any other:
    Produce v1 and v2 answers carry throttle_time_ms, v0 (which has no
    such field) is held by the muted socket alone; over-quota data is still
    accepted. Each version sends 24 sets of one 64 KiB message, one after
    the other, on its own connection; after the first second's burst the
    rate stays between 0.5x and 1.3x the 256 KiB/s quota (seen: 256-272
    KiB/s, v0 too)."""
    topic = env.topic("legacy-q", 1)
    value = b"q" * 65536
    total = 0
    for ver, magic in ((2, 1), (1, 0), (0, 0)):
        throttles = []
        with kwire.Conn(env.bootstrap, timeout=30, client_id="legacy-q") as c:
            c.metadata([topic], version=0)
            t_first = None
            for i in range(24):
                r = c.request(kwire.PRODUCE, ver, kwire.produce_request(
                    ver, [(topic, [(0, kwire.message(magic, b"k%d" % i, value, 1700000000000))])],
                    -1, 15000))
                part = r["topics"][topic][0]
                eq(part["error_code"], 0, "v%d set %d: over-quota data is accepted" % (ver, i))
                throttles.append(r.get("throttle_time_ms", 0))
                if i == 3:
                    t_first = time.monotonic()  # past the first second's burst
            elapsed = time.monotonic() - t_first
        total += 24
        rate = 20 * len(value) / elapsed
        log("Produce v%d: %.0f KiB/s over the last 20 sets (quota %d KiB/s), throttle_time_ms %s"
            % (ver, rate / 1024, LEGACY_QUOTA // 1024, throttles))
        check(rate < 1.3 * LEGACY_QUOTA, "Produce v%d: %.0f KiB/s, over the quota"
              % (ver, rate / 1024))
        check(rate > 0.5 * LEGACY_QUOTA, "Produce v%d: %.0f KiB/s, held far below the quota"
              % (ver, rate / 1024))
        if ver >= 1:
            check(any(t > 0 for t in throttles), "Produce v%d: no throttle_time_ms" % ver)
    from harness import total_high
    eq(total_high(env.upstream, topic, 1), total, "records upstream")


register("legacy_quota", test_legacy_quota, direct=False, upstreams=BOTH, timeout=180,
         sluice_args=["--policy", _legacy_quota_policy()])


# ---------------------------------------------------------------------------
# Real clients forced to old protocol versions


def make_kpy_legacy_test(api_version, codec):
    def fn(env):
        from kafka import KafkaProducer
        logging.getLogger("kafka").setLevel(logging.CRITICAL)
        topic = env.topic("kpyold", PARTITIONS)
        recs = make_records(100, PARTITIONS, null_header_values=False,
                            seed=seed_of("kpyold", api_version, codec))
        # Headers need Produce v3: an old dialect has none, and magic 0 has
        # no timestamps (the broker-side value is -1).
        recs = [Rec(r.partition, r.key, r.value, [], r.timestamp if api_version >= (0, 10) else -1)
                for r in recs if r.key is not None or r.value is not None]
        prod = KafkaProducer(bootstrap_servers=env.bootstrap, acks="all",
                             api_version=api_version,
                             compression_type=None if codec == "none" else codec,
                             linger_ms=5, max_block_ms=20000, request_timeout_ms=30000,
                             retries=3)
        try:
            futs = [prod.send(topic, value=r.value, key=r.key, partition=r.partition,
                              timestamp_ms=None if r.timestamp == -1 else r.timestamp)
                    for r in recs]
            errs = kafka_python_errors(prod, futs)
            check(not errs, "%d send errors, first: %s" % (len(errs), errs[:3]))
            verify_upstream(env, topic, PARTITIONS, recs)
        finally:
            prod.close(10)
    return fn


for _api, _codecs in (((0, 9), ("none", "gzip", "snappy", "lz4")),
                      ((0, 10), ("none", "gzip", "snappy", "lz4"))):
    for _codec in _codecs:
        register("kafka_python_api%d_%d_%s" % (_api[0], _api[1], _codec),
                 make_kpy_legacy_test(_api, _codec), direct=False, upstreams=BOTH)


def make_sarama_legacy_test(version, codec):
    def fn(env):
        extclients.ensure_installed()
        topic = env.topic("sarold", PARTITIONS)
        old_ts = version.startswith(("0.8", "0.9"))
        recs = [Rec(r.partition, r.key, r.value, [], -1 if old_ts else r.timestamp)
                for r in make_records(100, PARTITIONS, seed=seed_of("sarold", version, codec))]
        res = extclients.sarama_produce(env.bootstrap, topic, recs, acks="all", codec=codec,
                                        props={"kafka_version": version},
                                        client_id="sluice-it-sarama-old")
        check(res.get("ok"), "sarama %s: %s\nstderr:\n%s"
              % (version, res.get("error"), res.get("stderr", "")))
        check(not res.get("errors"), "sarama %s: %d record errors, first %s"
              % (version, len(res["errors"]), res["errors"][:3]))
        eq(res["acked"], len(recs), "acknowledged records")
        verify_upstream(env, topic, PARTITIONS, recs)
    return fn


for _ver, _codecs in (("0.8.2.2", ("none", "gzip")), ("0.9.0.1", ("none", "snappy")),
                      ("0.10.2.1", ("none", "gzip", "snappy", "lz4"))):
    for _codec in _codecs:
        register("sarama_v%s_%s" % (_ver.replace(".", "_"), _codec),
                 make_sarama_legacy_test(_ver, _codec), direct=False, upstreams=BOTH)


def make_java010_test(acks, codec):
    def fn(env):
        import javaclients
        topic = env.topic("java010", PARTITIONS)
        recs = [Rec(r.partition, r.key, r.value, [], r.timestamp)
                for r in make_records(100, PARTITIONS, seed=seed_of("java010", acks, codec))]
        res = javaclients.java_produce("010", env.bootstrap, topic, recs, acks=acks, codec=codec,
                                       client_id="sluice-it-java010")
        check(res.get("ok"), "kafka-clients 0.10: %s\nstderr:\n%s"
              % (res.get("error"), res.get("stderr", "")))
        check(not res.get("errors"), "kafka-clients 0.10: %d record errors, first %s"
              % (len(res["errors"]), res["errors"][:3]))
        eq(res["acked"], len(recs), "acknowledged records")
        eq(res.get("client_version"), "0.10.2.2", "client version")
        verify_upstream(env, topic, PARTITIONS, recs)
    return fn


for _acks, _codec in (("all", "none"), ("all", "gzip"), ("all", "snappy"), ("all", "lz4"),
                      ("1", "lz4")):
    register("java010_acks%s_%s" % (_acks, _codec), make_java010_test(_acks, _codec),
             direct=False, upstreams=BOTH)


# ---------------------------------------------------------------------------
# The reference: Kafka 3.9, the last broker that serves Produce v0-v2

_ref = {}


def reference_broker():
    """One node of Apache Kafka 3.9.1 (tests/kafka/pom.xml, broker39),
    started on first use and shared by the tests of this run."""
    if "cluster" not in _ref:
        import kafka_cluster
        from harness import at_end
        c = kafka_cluster.KafkaCluster(nodes=1, version="3.9.1", name="kafka39")
        t0 = time.monotonic()
        c.start()
        log("reference: Apache Kafka 3.9.1 at %s, started in %.1fs"
            % (c.bootstrap, time.monotonic() - t0))
        at_end(c.stop)
        _ref["cluster"] = c
    return _ref["cluster"]


def _differential_cases():
    """(what, request version, records): every accepted dialect and every
    refusal of the legacy formats."""
    import zstandard
    ts = 1700000000000
    m1 = [kwire.message(1, b"k%d" % i, b"v%d" % i, ts + i, offset=i) for i in range(3)]
    m0 = [kwire.message(0, b"k%d" % i, b"v%d" % i) for i in range(3)]
    inner1, inner0 = b"".join(m1), b"".join(m0)
    cases = []
    for n, (ver, magic, codec, xerial, relative) in enumerate(CASES):
        data, _ = _set(magic, codec, b"d%d" % n, ts + 100 * n, xerial, relative)
        cases.append(("v%d magic %d codec %d%s%s" % (ver, magic, codec, "" if xerial else " raw",
                                                    "" if relative else " absolute"), ver, data))
    cases += [
        ("magic 1 without a timestamp (-1)", 2, kwire.message(1, b"k", b"no-ts", -1)),
        ("magic 1 flagged LogAppendTime", 2,
         kwire.message(1, b"k", b"lat", ts, attributes=kwire.MSG_ATTR_LOG_APPEND_TIME)),
        ("magic 1 flagged LogAppendTime, ts -1", 2,
         kwire.message(1, b"k", b"lat-1", -1, attributes=kwire.MSG_ATTR_LOG_APPEND_TIME)),
        ("wrapper flagged LogAppendTime", 2,
         kwire.wrapper(1, GZIP, inner1, ts + 50, attributes=kwire.MSG_ATTR_LOG_APPEND_TIME)),
        ("partial message after two", 2, inner1[:-4]),
        ("v2 with a record batch", 2, kwire.record_batch([kwire.Record(b"k", b"batch-in-v2")])),
        ("v0 with a record batch", 0, kwire.record_batch([kwire.Record(b"k", b"batch-in-v0")])),
        ("bad CRC", 2, kwire.message(1, b"k", b"v", ts, bad_crc=True)),
        ("bad inner CRC", 2, kwire.wrapper(1, GZIP, kwire.message(1, b"k", b"v", ts,
                                                                   bad_crc=True), ts)),
        ("mixed magics", 2, m0[0] + m1[1]),
        ("nested wrapper", 2, kwire.wrapper(1, GZIP, kwire.wrapper(1, GZIP, inner1, ts), ts)),
        ("wrapper then message", 1, kwire.wrapper(0, GZIP, inner0) + m0[0]),
        ("message then wrapper", 1, m0[0] + kwire.wrapper(0, GZIP, inner0)),
        ("inner magic differs", 2, kwire.wrapper(1, GZIP, inner0, ts)),
        ("not gzip", 0, kwire.message(0, None, b"not gzip at all", attributes=GZIP)),
        ("wrapper with a null value", 2, kwire.message(1, None, None, ts, attributes=GZIP)),
        ("zstd wrapper, magic 1", 2, kwire.message(1, None, b"\x28\xb5\x2f\xfd", ts,
                                                   attributes=4)),
        ("zstd wrapper, magic 1, real zstd", 2,
         kwire.message(1, None, zstandard.ZstdCompressor().compress(inner1), ts,
                       attributes=4)),
        ("lz4 magic 1, Kafka 0.8 checksum", 2,
         kwire.message(1, None, kwire.legacy_compress(3, inner1, magic=0), ts, attributes=3)),
        ("empty set", 2, b""),
        ("empty set, v0", 0, b""),
        ("no whole message", 2, m1[0][:-1]),
    ]
    return cases


def test_legacy_differential(env):
    """Issue 15: the legacy formats answered and stored as the reference
    answers and stores them. Every case goes to Apache Kafka 3.9.1 (the
    last broker serving Produce v0-v2) directly, and through Sluice to the
    suite's Kafka 4.1.1, each on a fresh one-partition topic; the error
    codes must match, and where both accept, the base offset answered and
    what the partition holds (key, value, timestamp)."""
    ref = reference_broker()
    diffs = []
    for what, ver, data in _differential_cases():
        t_ref = "legacy-ref-%d-%04x" % (int(time.time() * 1000) % 10 ** 8,
                                        int.from_bytes(os.urandom(2), "big"))
        ref.create_topic(t_ref, 1)
        t_sl = env.topic("diff", 1)
        got, offs = [], []
        for addr, topic in ((ref.bootstrap, t_ref), (env.bootstrap, t_sl)):
            with kwire.Conn(addr, timeout=30) as c:
                c.metadata([topic], version=0)
                a = c.produce(topic, 0, data, version=ver)
                got.append(a["error_code"])
                offs.append(a["base_offset"])
        held = ["", ""]
        if got[0] == 0 and got[1] == 0 and offs[0] != offs[1]:
            diffs.append("%s: base offset: reference %d, sluice %d" % (what, offs[0], offs[1]))
        if got[0] == 0 and got[1] == 0:
            recs = [read_upstream(b, t, 1)[0] for b, t in ((ref.bootstrap, t_ref),
                                                           (env.upstream, t_sl))]
            held = [[(r.key, r.value, r.timestamp) for r in rs] for rs in recs]
        log("%-38s v%d  reference %3d  sluice %3d%s" % (what, ver, got[0], got[1],
                                                       "" if held[0] == held[1] else "  HELD DIFFERS"))
        if got[0] != got[1]:
            diffs.append("%s: reference %d, sluice %d" % (what, got[0], got[1]))
        elif held[0] != held[1]:
            diffs.append("%s: reference holds %r, sluice %r" % (what, held[0][:3], held[1][:3]))
    check(not diffs, "%d differences from Kafka 3.9.1:\n  %s" % (len(diffs), "\n  ".join(diffs)))


register("legacy_differential", test_legacy_differential, direct=False, upstreams=("kafka",),
         timeout=300)
