"""Upstream faults and shutdown: errors injected into the mock, a broker
going down and coming back, SIGTERM while a producer is mid-stream."""

import signal
import time

import kwire
from harness import (Rec, check, eq, fail, log, metadata_leader, read_upstream, test,
                     total_high, verify_upstream, wait_for)

# Kafka's retriable answers a proxy may give while the upstream can't take a
# write (PROTOCOL.md, "Errors for a proxy"); 8 BROKER_NOT_AVAILABLE is not
# among them on purpose: the Java client treats it as fatal.
RETRIABLE = {
    5: "LEADER_NOT_AVAILABLE", 6: "NOT_LEADER_OR_FOLLOWER", 7: "REQUEST_TIMED_OUT",
    13: "NETWORK_EXCEPTION", 19: "NOT_ENOUGH_REPLICAS",
    20: "NOT_ENOUGH_REPLICAS_AFTER_APPEND", 56: "KAFKA_STORAGE_ERROR",
}

# ---------------------------------------------------------------------------
# e) idempotent librdkafka producer while the upstream answers errors


# Sluice's upstream producer sends one request at a time per broker here. The
# mock checks idempotent sequences only for transactional producers, so with
# two requests of one partition in flight, an injected REQUEST_TIMED_OUT (or a
# dropped connection) on the first, which the mock did not append, and
# success on the second make librdkafka conclude that the first was written
# ("implicit ack": a real broker would have refused the second with
# OUT_OF_ORDER_SEQUENCE_NUMBER) and report its records as delivered. (A real
# broker does accept the second when it has no state for the producer yet:
# the first write to a partition; Sluice primes each partition with one
# record for that, see upstream_first_batch_retried.) It
# happened once: librdkafka sent a partition's first record alone (its broker
# thread woke at the first record handed over), then the next 24 while that
# one was in flight (under 5 records, so allowed); the first got the injected
# error and was never written, yet reported delivered. An artefact of the
# mock, not of Sluice, which answers what librdkafka reports.
@test(timeout=300, sluice_args=["-X", "max.in.flight.requests.per.connection=1"])
def idempotent_producer_upstream_errors(env):
    from confluent_kafka import Producer
    topic = env.topic("idem", 2)
    n = 2000
    codes = [6, 7, 19, 6, 7, 19, 7, 6, 19]
    # Produce = api key 0. A cluster-wide storm first: each code fails the
    # next Produce request on any broker, in order.
    env.mock.cmd("errors 0 " + " ".join(map(str, codes)))
    leaders = sorted({metadata_leader(env.upstream, topic, p) for p in (0, 1)})
    p = Producer({"bootstrap.servers": env.bootstrap, "enable.idempotence": True,
                  "linger.ms": 2, "batch.num.messages": 50, "message.timeout.ms": 60000,
                  "retry.backoff.ms": 50, "log_level": 3})
    errors = []
    acked = [0]

    def dr(err, msg):
        if err is not None:
            errors.append("%s [%d]: %s" % (msg.topic(), msg.partition(), err))
        else:
            acked[0] += 1

    for i in range(n):
        p.produce(topic, key=b"k%d" % i, value=b"seq-%06d" % i, partition=i % 2,
                  on_delivery=dr)
        if i == n // 2:
            # A second storm while requests are in flight, on the leaders'
            # own stacks, so the test can tell that it was used up.
            p.poll(0)
            # -195 (librdkafka's __TRANSPORT) makes the broker drop the connection.
            for b in leaders:
                env.mock.cmd("broker_errors %d 0 %s" % (b, " ".join("%d 0" % c
                                                                    for c in codes + [-195, 7])))
        if i % 100 == 0:
            p.poll(0)
    left = p.flush(120)
    check(left == 0, "%d records not delivered after flush(120)" % left)
    check(not errors, "delivery errors: %s" % errors[:5])
    eq(acked[0], n, "acknowledged records")
    unused = {b: env.mock.cmd("errors_left %d 0" % b, expect_ok=False) for b in leaders}
    log("injected errors left unused per leader: %s" % unused)
    check(all(v == "OK 0" for v in unused.values()),
          "injected Produce errors not all used up (the upstream saw fewer requests "
          "than errors): %s" % unused)
    got = read_upstream(env.upstream, topic, 2)
    for part in (0, 1):
        want = [b"seq-%06d" % i for i in range(part, n, 2)]
        have = [r.value for r in got[part]]
        if have != want:
            dups = len(have) - len(set(have))
            missing = len(set(want) - set(have))
            first = next((i for i, (a, b) in enumerate(zip(have, want)) if a != b),
                         min(len(have), len(want)))
            fail("partition %d: %d records upstream, want %d; %d duplicates, %d missing; "
                 "first difference at index %d: have %r want %r"
                 % (part, len(have), len(want), dups, missing, first,
                    have[first] if first < len(have) else None,
                    want[first] if first < len(want) else None))


# ---------------------------------------------------------------------------
# g) the leader of a partition goes down, then comes back


def _one_batch(tag):
    return kwire.record_batch([kwire.Record(b"k", tag)])


@test(direct="a down mock broker refuses the client's own connection",
      sluice_args=["--upstream.message_timeout_ms=3000"], timeout=200)
def broker_down_then_up(env):
    topic = env.topic("down", 3)
    leader = metadata_leader(env.upstream, topic, 0)
    ok_values = []
    with kwire.Conn(env.bootstrap, timeout=30) as c:
        c.metadata([topic], version=1)  # as clients do before producing
        r = c.produce(topic, 0, _one_batch(b"before"), acks=-1)
        eq(r["error_code"], 0, "produce before the outage")
        ok_values.append(b"before")

        env.mock.cmd("down %d" % leader)
        for i in range(2):
            t0 = time.monotonic()
            r = c.produce(topic, 0, _one_batch(b"during-%d" % i), acks=-1, timeout=30)
            dt = time.monotonic() - t0
            log("while broker %d is down: error %d after %.1fs" % (leader, r["error_code"], dt))
            check(r["error_code"] != 0, "produce to a partition whose leader is down succeeded")
            check(r["error_code"] in RETRIABLE,
                  "error %d while the leader is down is not one of the retriable %s"
                  % (r["error_code"], sorted(RETRIABLE)))

        env.mock.cmd("up %d" % leader)
        deadline = time.monotonic() + 60
        attempt = 0
        while True:
            attempt += 1
            tag = b"after-%d" % attempt
            r = c.produce(topic, 0, _one_batch(tag), acks=-1, timeout=30)
            if r["error_code"] == 0:
                ok_values.append(tag)
                break
            check(r["error_code"] in RETRIABLE,
                  "error %d after the broker came back" % r["error_code"])
            if time.monotonic() > deadline:
                fail("no successful produce within 60s after 'up' (last error %d, %d attempts)"
                     % (r["error_code"], attempt))
            time.sleep(0.2)  # client retry backoff, not a stand-in for a condition
        log("produce succeeded again after %d attempt(s)" % attempt)
    got = [r.value for r in read_upstream(env.upstream, topic, 3)[0]]
    for v in ok_values:
        eq(got.count(v), 1, "copies of acknowledged record %r upstream" % v)


# ---------------------------------------------------------------------------
# k) SIGTERM while a producer is mid-stream: acknowledged means upstream


@test(direct=False, timeout=240, upstreams=("mock", "kafka"))
def sigterm_under_load(env):
    from confluent_kafka import Producer
    topic = env.topic("term", 3)
    max_records = 30000
    p = Producer({"bootstrap.servers": env.bootstrap, "acks": "all", "linger.ms": 5,
                  "message.timeout.ms": 8000, "retry.backoff.ms": 100,
                  "reconnect.backoff.max.ms": 500, "log_level": 0})
    acked = set()
    failed = [0]

    def dr(err, msg):
        if err is None:
            acked.add(msg.value())
        else:
            failed[0] += 1

    pad = b"." * 90
    i = 0
    signaled_at = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if i < max_records:
            try:
                p.produce(topic, value=b"term-%06d" % i + pad, partition=i % 3, on_delivery=dr)
                i += 1
            except BufferError:
                p.poll(0.01)
            if i % 200 == 0:
                p.poll(0)
        else:
            p.poll(0.05)
        if signaled_at is None and len(acked) >= 2000:
            env.sluice.signal(signal.SIGTERM)
            signaled_at = time.monotonic()
            log("SIGTERM after %d produced, %d acknowledged" % (i, len(acked)))
        if signaled_at is not None and (not env.sluice.alive() or
                                        time.monotonic() - signaled_at > 30):
            break
    check(signaled_at is not None, "fewer than 2000 records acknowledged in 60s (%d)" % len(acked))
    rc = env.sluice.wait_exit(30)
    log("sluice exited %d, %.1fs after SIGTERM" % (rc, time.monotonic() - signaled_at))
    p.flush(20)
    log("%d produced, %d acknowledged, %d failed" % (i, len(acked), failed[0]))
    eq(rc, 0, "sluice exit code after SIGTERM")
    got = read_upstream(env.upstream, topic, 3, timeout=60)
    upstream = set()
    for recs in got.values():
        upstream.update(r.value for r in recs)
    missing = acked - upstream
    check(not missing, "%d acknowledged records missing upstream, e.g. %r"
          % (len(missing), sorted(missing)[:3]))


# ---------------------------------------------------------------------------
# m) an idempotent client's batch partly written upstream (issue 12, item 1/2)


def _idem_recs(tag, n, big=()):
    ts = int(time.time() * 1000)
    return [kwire.Record(b"%s-k%d" % (tag, i),
                         (b"%s-v%d-" % (tag, i)) + (b"B" * 1850 if i in big else b""),
                         timestamp_delta=i) for i in range(n)], ts


def _rec_idents(records, ts):
    return [Rec(0, r.key, r.value, [], ts + r.timestamp_delta) for r in records]


def _exactly_once(env, topic, sent):
    """Every record of sent in partition 0 exactly once (order aside: a
    retry's missing records are written after what the first attempt
    wrote); returns the records read, in offset order."""
    from harness import missing_report
    want = len(sent)
    wait_for(lambda: total_high(env.upstream, topic, 1) >= want, 30,
             "%d records upstream in %s" % (want, topic), interval=0.1)
    got = read_upstream(env.upstream, topic, 1)
    have = [r.ident() for r in got[0]]
    if sorted(have) != sorted(r.ident() for r in sent):
        fail("upstream does not hold each record once: %d records, want %d; %s"
             % (len(have), want, missing_report({0: sent}, got)))
    return got[0]


def _produce_batches(c, topic, batches, version=7):
    """Sends batches pipelined on one connection; returns their answers."""
    corrs = [c.send(kwire.PRODUCE, version,
                    kwire.produce_request(version, [(topic, [(0, b)])], -1, 15000))
             for b in batches]
    out = []
    for corr in corrs:
        rcorr, body = c.recv(kwire.PRODUCE, version, timeout=30)
        eq(rcorr, corr, "correlation id of a pipelined Produce answer")
        out.append(kwire.PARSERS[kwire.PRODUCE](version, body)["topics"][topic][0])
    return out


@test(direct=False, timeout=120,
      sluice_args=["-X", "batch.num.messages=2", "-X", "max.in.flight.requests.per.connection=1"])
def idempotent_partial_failure_retry(env):
    """Issue 12, items 1 and 2. An idempotent producer pipelines batches A
    and B (3 records each) on one partition; the upstream refuses its
    first Produce request for good (MESSAGE_TOO_LARGE, injected), so part
    of A fails while the rest of A and B are written (Sluice's producer
    sends at most 2 records per request). A broker appends a batch whole or
    not at all and refuses what comes behind a gap, so: A fails, B is
    answered OUT_OF_ORDER_SEQUENCE_NUMBER (not success, which made
    librdkafka clients take A as written), and the client's retries of A
    then B write only what is missing: each record upstream exactly once,
    and B keeps the offset it was written at. Before: the retry of A wrote
    its delivered records again, and B was answered success."""
    topic = env.topic("partial", 1)
    with kwire.Conn(env.bootstrap, timeout=30) as c:
        learn = c.metadata([topic], version=1)
        check(any(t["name"] == topic and t["error_code"] == 0 for t in learn["topics"]),
              "Metadata for %s" % topic)
        ip = c.init_producer_id(4)
        eq(ip["error_code"], 0, "InitProducerId")
        ra, ts_a = _idem_recs(b"a", 3)
        rb, ts_b = _idem_recs(b"b", 3)
        batches = [kwire.record_batch(r, ts, producer_id=ip["producer_id"],
                                      producer_epoch=ip["producer_epoch"], base_sequence=seq)
                   for r, ts, seq in ((ra, ts_a, 0), (rb, ts_b, 3))]
        # Produce is api key 0; 10 is MESSAGE_TOO_LARGE, which librdkafka
        # does not retry.
        env.mock.cmd("errors 0 10")
        first = _produce_batches(c, topic, batches)
        log("first round: A %d, B %d" % (first[0]["error_code"], first[1]["error_code"]))
        check(first[0]["error_code"] != 0, "A succeeded though the upstream refused it: %r"
              % first[0])
        check(first[1]["error_code"] != 0,
              "B succeeded behind a failed A (a broker answers OUT_OF_ORDER_SEQUENCE_NUMBER)")
        answers = None
        for attempt in range(5):
            answers = [_produce_batches(c, topic, [b])[0] for b in batches]
            log("retry %d: A %d, B %d" % (attempt + 1, answers[0]["error_code"],
                                           answers[1]["error_code"]))
            if all(a["error_code"] == 0 for a in answers):
                break
        check(all(a["error_code"] == 0 for a in answers), "retries in order did not succeed")
    got = _exactly_once(env, topic, _rec_idents(ra, ts_a) + _rec_idents(rb, ts_b))
    values = [r.value for r in got]
    log("upstream order: %s" % [v.decode()[:6] for v in values])
    eq(answers[1]["base_offset"], values.index(rb[0].value), "B's base offset")
    eq(answers[0]["base_offset"], min(values.index(r.value) for r in ra), "A's base offset")


@test(direct=False, timeout=120, sluice_args=["-X", "message.max.bytes=2000"],
      upstreams=("mock", "kafka"))
def upstream_size_limit_whole_batch(env):
    """Issue 12, item 1: a record librdkafka finds too large after Sluice's
    own size check passed made the enqueue fail part-way, so the client
    heard the batch failed while its first records were written. Sluice
    now applies librdkafka's own formula (36 bytes of worst-case record
    overhead, key, value, and each header's name, value and their varint
    lengths, against message.max.bytes) before the first record is
    enqueued: the batch is refused whole, nothing of it is written, and a
    record exactly at the limit is accepted."""
    topic = env.topic("size", 1)
    ts = int(time.time() * 1000)

    def rec(tag, vlen, headers=()):
        return kwire.Record(b"k", tag + b"." * (vlen - len(tag)), list(headers))

    hdr = [("h", b"0123456789")]  # 1 + 10 + 1 + 1 = 13 serialized bytes
    over = [rec(b"o1", 10), rec(b"o2", 10), rec(b"over", 1964)]
    over_h = [rec(b"p1", 10), rec(b"overh", 1951, hdr)]
    fits = [rec(b"f1", 10), rec(b"fits", 1963), rec(b"fitsh", 1950, hdr)]
    with kwire.Conn(env.bootstrap, timeout=30) as c:
        c.metadata([topic], version=1)
        for what, recs in (("a record 1 byte over", over), ("with a header, 1 over", over_h)):
            a = c.produce(topic, 0, kwire.record_batch(recs, ts))
            eq(a["error_code"], kwire.MESSAGE_TOO_LARGE, what)
        a = c.produce(topic, 0, kwire.record_batch(fits, ts))
        eq(a["error_code"], 0, "records exactly at the limit")
    verify_upstream(env, topic, 1, [Rec(0, r.key, r.value, [(k, v) for k, v in r.headers],
                                        ts + r.timestamp_delta) for r in fits])


@test(direct=False, timeout=120, upstreams=("mock",))
def upstream_first_batch_retried(env):
    """The first records Sluice's upstream producer sends to a partition
    get a retriable error (REQUEST_TIMED_OUT, answered late) while the
    next ones, pipelined behind, are accepted. A broker with no state for
    a producer accepts any first sequence (Kafka 4.1.1 did so for
    sluice_killed_idempotent@kafka: its partition began at sequence 1),
    and librdkafka takes a later batch's success as an implicit ack of the
    earlier one: the first records were acknowledged and never written.
    Every record acknowledged must be upstream."""
    topic = env.topic("first", 1)
    leader = metadata_leader(env.upstream, topic, 0)
    # Produce is api key 0: the leader's first Produce answers 7 after
    # 300 ms, the rest succeed at once.
    env.mock.cmd("broker_errors %d 0 7 300" % leader)
    acked = []
    with kwire.Conn(env.bootstrap, timeout=30) as c:
        c.metadata([topic], version=1)
        ts = int(time.time() * 1000)
        batches = [kwire.record_batch([kwire.Record(b"k", b"b%d-r%d" % (i, j),
                                                    timestamp_delta=j) for j in range(3)], ts)
                   for i in range(4)]
        answers = _produce_batches(c, topic, batches)
        for i, a in enumerate(answers):
            log("batch %d: error %d offset %d" % (i, a["error_code"], a["base_offset"]))
            if a["error_code"] == 0:
                acked += [b"b%d-r%d" % (i, j) for j in range(3)]
    got = {r.value for r in read_upstream(env.upstream, topic, 1)[0]}
    missing = [v for v in acked if v not in got]
    check(not missing, "%d acknowledged records not upstream: %s" % (len(missing), missing))
    check(acked, "nothing acknowledged")
