"""Real clients through Sluice, verified byte for byte upstream.

  librdkafka (confluent-kafka), kafka-python 2.0.2, kafkajs, kcat; each over
  its acks x compression matrix, with a fresh topic per case.
"""

import base64
import json
import logging
import os
import subprocess
import time
import zlib

from harness import (check, eq, fail, log, make_records, register, verify_upstream, wait_for,
                     read_upstream, total_high, Rec, by_partition, compare_partitions)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
JS_DIR = os.path.join(ROOT, "tests", "js")

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
N_RECORDS = 200
PARTITIONS = 3
# Every client case runs against the mock and the one-node Apache Kafka.
BOTH = ("mock", "kafka")


def seed_of(*parts):
    """A stable seed per test case (hash() of str is salted per process)."""
    return zlib.crc32(repr(parts).encode())


# ---------------------------------------------------------------------------
# a) librdkafka via confluent-kafka


def produce_confluent(bootstrap, topic, recs, conf=None, flush_timeout=60):
    """Produces recs with explicit partitions and timestamps; returns the
    delivery errors (empty on success)."""
    from confluent_kafka import Producer
    c = {"bootstrap.servers": bootstrap, "linger.ms": 5, "message.timeout.ms": 30000,
         "log_level": 3}
    c.update(conf or {})
    p = Producer(c)
    errors = []

    def dr(err, msg):
        if err is not None:
            errors.append("%s [%d]: %s" % (msg.topic(), msg.partition(), err))

    for r in recs:
        while True:
            try:
                p.produce(topic, value=r.value, key=r.key, partition=r.partition,
                          headers=r.headers or None, timestamp=r.timestamp, on_delivery=dr)
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    left = p.flush(flush_timeout)
    if left:
        errors.append("%d records still queued after flush(%ds)" % (left, flush_timeout))
    return errors


def make_confluent_test(acks, codec):
    def fn(env):
        topic = env.topic("rdk", PARTITIONS)
        recs = make_records(N_RECORDS, PARTITIONS, seed=seed_of("rdk", acks, codec))
        errors = produce_confluent(env.bootstrap, topic, recs,
                                   {"acks": str(acks), "compression.type": codec})
        check(not errors, "delivery errors: %s" % errors[:5])
        verify_upstream(env, topic, PARTITIONS, recs)
    return fn


for _acks in ("0", "1", "all"):
    for _codec in CODECS:
        register("librdkafka_acks%s_%s" % (_acks, _codec), make_confluent_test(_acks, _codec),
                 upstreams=BOTH)

# ---------------------------------------------------------------------------
# b) kafka-python 2.0.2 (pure Python; guesses the broker version from
#    ApiVersions, see PROTOCOL.md)


def kafka_python_errors(prod, futs):
    """Flushes a kafka-python producer and returns what each send's future
    raised (repr), in order: empty when every record was acknowledged."""
    prod.flush(60)
    errs = []
    for f in futs:
        try:
            f.get(timeout=30)
        except Exception as e:  # noqa: BLE001 - report every client error
            errs.append(repr(e))
    return errs


def make_kafka_python_test(acks, codec):
    def fn(env):
        from kafka import KafkaProducer
        logging.getLogger("kafka").setLevel(logging.CRITICAL)
        topic = env.topic("kpy", PARTITIONS)
        # kafka-python refuses None header values and key=value=None.
        recs = make_records(N_RECORDS, PARTITIONS, null_header_values=False,
                            seed=seed_of("kpy", acks, codec))
        prod = KafkaProducer(bootstrap_servers=env.bootstrap, acks=acks,
                             compression_type=None if codec == "none" else codec,
                             linger_ms=5, max_block_ms=20000, request_timeout_ms=30000,
                             api_version_auto_timeout_ms=10000, retries=3)
        try:
            log("kafka-python guessed broker version %s" % (prod.config["api_version"],))
            futs = [prod.send(topic, value=r.value, key=r.key, headers=list(r.headers),
                              partition=r.partition, timestamp_ms=r.timestamp) for r in recs]
            errs = kafka_python_errors(prod, futs)
            check(not errs, "%d send errors, first: %s" % (len(errs), errs[:3]))
            # Verify before close(): with acks=0 kafka-python counts a request
            # done once queued on its socket, and close() may drop the rest.
            verify_upstream(env, topic, PARTITIONS, recs)
        finally:
            prod.close(10)
    return fn


# The librdkafka 2.0.2 mock answers acks=0 Produce requests; kafka-python then
# sees an unexpected correlation id and drops the connection with what it had
# queued, so acks=0 says something only through Sluice (which must not answer).
MOCK_ACKS0 = "the mock answers acks=0 Produce requests, which kafka-python treats as fatal"

for _acks in (0, 1, "all"):
    for _codec in CODECS:
        register("kafka_python_acks%s_%s" % (_acks, _codec), make_kafka_python_test(_acks, _codec),
                 direct=True if _acks else MOCK_ACKS0, upstreams=BOTH)

# ---------------------------------------------------------------------------
# c) kafkajs (tests/js/produce.js)


def b64(b):
    return None if b is None else base64.b64encode(b).decode()


def run_kafkajs(bootstrap, topic, recs, acks, codec, timeout=90, security=None):
    """tests/js/produce.js; security: the drivers' optional "security"
    field (see extclients.py). Fails the test unless the answer is ok."""
    if not os.path.isdir(os.path.join(JS_DIR, "node_modules", "kafkajs")):
        fail("kafkajs not installed: run 'npm ci' in tests/js (deploy/setup-deps.sh does)")
    req = {"brokers": bootstrap.split(","), "topic": topic, "acks": acks,
           "compression": codec, "timeout_ms": 30000,
           "records": [{"partition": r.partition, "key": b64(r.key), "value": b64(r.value),
                        "headers": [[k, b64(v)] for k, v in r.headers],
                        "timestamp": r.timestamp} for r in recs]}
    if security is not None:
        req["security"] = security
    p = subprocess.run(["node", os.path.join(JS_DIR, "produce.js")], input=json.dumps(req),
                       capture_output=True, text=True, timeout=timeout, cwd=JS_DIR)
    try:
        out = json.loads(p.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        fail("produce.js exit %d, no JSON answer; stderr:\n%s" % (p.returncode, p.stderr[-3000:]))
    if not out.get("ok"):
        fail("kafkajs: %s\nstderr:\n%s" % (out.get("error", "")[:2000], p.stderr[-2000:]))
    return out["results"]


def make_kafkajs_test(acks, codec):
    def fn(env):
        topic = env.topic("kjs", PARTITIONS)
        # kafkajs can't encode a null header value (Buffer.byteLength(null)).
        recs = make_records(N_RECORDS, PARTITIONS, null_header_values=False,
                            seed=seed_of("kjs", acks, codec))
        results = run_kafkajs(env.bootstrap, topic, recs, acks, codec)
        if acks != 0:
            bad = [r for r in results if r.get("errorCode")]
            check(not bad, "kafkajs partition errors: %s" % bad)
        verify_upstream(env, topic, PARTITIONS, recs)
    return fn


for _acks in (-1, 1, 0):
    for _codec in ("none", "gzip", "snappy"):
        register("kafkajs_acks%s_%s" % (_acks, _codec), make_kafkajs_test(_acks, _codec),
                 upstreams=BOTH)

# ---------------------------------------------------------------------------
# d) kcat: -K key delimiter, -H headers, -p partition, -z codec, -X acks


def run_kcat_produce(bootstrap, topic, partition, lines, codec, acks, extra=(), security=None):
    """security: the drivers' "security" field, as -X flags (extclients.kcat_args)."""
    import extclients
    extra = list(extra) + extclients.kcat_args(security)
    args = ["kcat", "-P", "-b", bootstrap, "-t", topic, "-p", str(partition), "-K", ":",
            "-H", "h1=v1", "-H", "dup=a", "-H", "dup=b", "-H", "empty=",
            "-z", codec, "-X", "acks=%s" % acks, "-X", "message.timeout.ms=30000",
            "-X", "api.version.request=true"] + list(extra)
    p = subprocess.run(args, input=b"".join(line + b"\n" for line in lines),
                       capture_output=True, timeout=90)
    if p.returncode != 0:
        fail("kcat exit %d: %s" % (p.returncode, p.stderr.decode(errors="replace")[-2000:]))


def make_kcat_test(acks, codec):
    def fn(env):
        topic = env.topic("kcat", PARTITIONS)
        hdrs = [("h1", b"v1"), ("dup", b"a"), ("dup", b"b"), ("empty", b"")]
        lines, recs = [], []
        for i in range(60):
            if i % 3 == 0:
                line, key, value = b"v%d" % i, None, b"v%d" % i           # no delimiter: null key
            elif i % 3 == 1:
                line, key, value = b":v%d" % i, b"", b"v%d" % i          # empty key
            else:
                line, key, value = b"k%d:v%d:x" % (i, i), b"k%d" % i, b"v%d:x" % i
            lines.append(line)
            recs.append(Rec(1, key, value, hdrs, None))
        t0 = int(time.time() * 1000)
        run_kcat_produce(env.bootstrap, topic, 1, lines, codec, acks)
        t1 = int(time.time() * 1000)
        got = verify_upstream(env, topic, PARTITIONS, recs, with_ts=False)
        for r in got[1]:
            check(t0 - 1000 <= r.timestamp <= t1 + 1000,
                  "timestamp %d outside the produce window [%d, %d]" % (r.timestamp, t0, t1))
    return fn


for _codec in CODECS:
    register("kcat_acksall_%s" % _codec, make_kcat_test("all", _codec), upstreams=BOTH)
register("kcat_acks0_none", make_kcat_test("0", "none"), upstreams=BOTH)
register("kcat_acks1_lz4", make_kcat_test("1", "lz4"), upstreams=BOTH)
