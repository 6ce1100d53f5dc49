"""Protocol-level checks with kwire: client-side idempotence, malformed input,
pipelining and ordering, ApiVersions negotiation."""

import socket
import threading
import time

import kwire
from harness import (Rec, Skip, Sluice, by_partition, check, compare_partitions, eq, fail,
                     log, read_upstream, test, total_high, verify_upstream, wait_for)
from tests_clients import BOTH, produce_confluent

# ---------------------------------------------------------------------------
# helpers


def pick_version(conn, api_key, wanted):
    """The highest version <= wanted the peer advertises for api_key."""
    av = conn.api_versions(0)["api_keys"]
    check(api_key in av, "ApiVersions lacks key %d" % api_key)
    lo, hi = av[api_key]
    v = min(wanted, hi)
    check(v >= lo, "key %d advertised %d-%d, can't use <= %d" % (api_key, lo, hi, wanted))
    return v


def recs_of(tag, n, ts=None):
    ts = int(time.time() * 1000) if ts is None else ts
    return [kwire.Record(b"%s-k%d" % (tag, i), b"%s-v%d" % (tag, i),
                         [("h", b"%d" % i)], timestamp_delta=i) for i in range(n)], ts


def as_recs(partition, records, base_ts):
    return [Rec(partition, r.key, r.value, [(k, v) for k, v in r.headers],
                base_ts + r.timestamp_delta) for r in records]


def learn_topic(conn, topic, partitions=None):
    """Asks for topic's metadata first, as every real client does before
    producing, and checks the answer names it with its partitions."""
    md = conn.metadata([topic], version=1)
    t = [x for x in md["topics"] if x["name"] == topic]
    check(t and t[0]["error_code"] == 0, "Metadata for %s: %r" % (topic, t))
    if partitions is not None:
        eq(len(t[0]["partitions"]), partitions, "partitions of %s in Metadata" % topic)
    return md


def expect_closed(conn, timeout, what):
    """The peer must close conn within timeout (any bytes before are read and
    ignored)."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            fail("%s: connection still open after %.0fs" % (what, timeout))
        try:
            conn.sock.settimeout(left)
            if not conn.sock.recv(65536):
                return
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return


def assert_serving(env, what):
    check(env.sluice is None or env.sluice.alive(), "sluice died (%s)" % what)
    with kwire.Conn(env.bootstrap, timeout=10) as c:
        eq(c.api_versions(0)["error_code"], 0, "ApiVersions after %s" % what)


# ---------------------------------------------------------------------------
# f) client-side idempotence: duplicates answered with the original offset,
#    gaps with OUT_OF_ORDER_SEQUENCE_NUMBER


@test(direct="the librdkafka 2.0.2 mock appends a re-sent idempotent batch again "
             "instead of answering with the original offset", upstreams=BOTH)
def client_idempotence_kwire(env):
    topic = env.topic("cidem", 1)
    with kwire.Conn(env.kafka_addr(topic, 0)) as c:
        learn_topic(c, topic, 1)
        ipv = pick_version(c, kwire.INIT_PRODUCER_ID, 2)
        pv = pick_version(c, kwire.PRODUCE, 9)
        ip0 = c.init_producer_id(0)
        eq(ip0["error_code"], 0, "InitProducerId v0 error")
        check(ip0["producer_id"] >= 0 and ip0["producer_epoch"] >= 0,
              "InitProducerId v0 gave %r" % ip0)
        ip = c.init_producer_id(ipv)
        eq(ip["error_code"], 0, "InitProducerId v%d error" % ipv)
        pid, epoch = ip["producer_id"], ip["producer_epoch"]
        check(pid >= 0 and epoch >= 0, "InitProducerId v%d gave %r" % (ipv, ip))
        check(pid != ip0["producer_id"], "two InitProducerId calls gave the same id %d" % pid)
        log("producer id %d epoch %d (InitProducerId v%d, Produce v%d)" % (pid, epoch, ipv, pv))

        r1, ts1 = recs_of(b"a", 3)
        b1 = kwire.record_batch(r1, ts1, producer_id=pid, producer_epoch=epoch, base_sequence=0)
        a1 = c.produce(topic, 0, b1, version=pv)
        eq(a1["error_code"], 0, "first idempotent batch")
        a1b = c.produce(topic, 0, b1, version=pv)
        eq(a1b["error_code"], 0, "re-sent identical batch error")
        eq(a1b["base_offset"], a1["base_offset"], "re-sent identical batch base offset")

        r2, ts2 = recs_of(b"b", 2)
        b2 = kwire.record_batch(r2, ts2, producer_id=pid, producer_epoch=epoch, base_sequence=3)
        a2 = c.produce(topic, 0, b2, version=7)
        eq(a2["error_code"], 0, "next batch in sequence")
        eq(a2["base_offset"], a1["base_offset"] + 3, "next batch base offset")

        # A duplicate of the older batch, after a newer one, is still a duplicate.
        a1c = c.produce(topic, 0, b1, version=7)
        eq(a1c["error_code"], 0, "older duplicate error")
        eq(a1c["base_offset"], a1["base_offset"], "older duplicate base offset")

        r3, ts3 = recs_of(b"c", 1)
        b3 = kwire.record_batch(r3, ts3, producer_id=pid, producer_epoch=epoch, base_sequence=10)
        a3 = c.produce(topic, 0, b3, version=pv)
        eq(a3["error_code"], kwire.OUT_OF_ORDER_SEQUENCE_NUMBER, "batch after a sequence gap")

    sent = as_recs(0, r1, ts1) + as_recs(0, r2, ts2)
    verify_upstream(env, topic, 1, sent)


@test(direct=False, upstreams=BOTH)
def idempotent_first_batch_refused(env):
    """An idempotent producer's first batch on a partition is refused as
    UNKNOWN_TOPIC_OR_PARTITION because Sluice has not seen the topic yet
    (created upstream a moment ago), and the batch pipelined behind it
    arrives once Sluice knows the topic. That later batch must not start
    the producer's sequence on the partition past the refused one: it gets
    OUT_OF_ORDER_SEQUENCE_NUMBER, the retry of the first is written, then
    the later one. (Sluice accepted the later one and answered the retry
    DUPLICATE_SEQUENCE_NUMBER, which clients take as success: the first
    batch was lost, as sluice_restarted_idempotent@kafka once showed.)"""
    with kwire.Conn(env.bootstrap) as c:
        ip = c.init_producer_id(4)
        eq(ip["error_code"], 0, "InitProducerId")
        pid, epoch = ip["producer_id"], ip["producer_epoch"]
        topic = env.topic("first", 1)  # created upstream after Sluice's start
        r1, ts1 = recs_of(b"one", 3)
        r2, ts2 = recs_of(b"two", 3)
        b1 = kwire.record_batch(r1, ts1, producer_id=pid, producer_epoch=epoch, base_sequence=0)
        b2 = kwire.record_batch(r2, ts2, producer_id=pid, producer_epoch=epoch, base_sequence=3)
        a = c.produce(topic, 0, b1)
        if a["error_code"] == 0:
            raise Skip("Sluice knew the topic already (a metadata refresh came first)")
        eq(a["error_code"], kwire.UNKNOWN_TOPIC_OR_PARTITION, "first batch, topic unknown")

        def known():
            md = c.metadata([topic], version=1)
            t = [x for x in md["topics"] if x["name"] == topic]
            return t and t[0]["error_code"] == 0 and t[0]["partitions"]
        wait_for(known, 30, "Sluice to know %s" % topic, interval=0.1)
        with kwire.Conn(env.kafka_addr(topic, 0)) as p:
            a = p.produce(topic, 0, b2)
            eq(a["error_code"], kwire.OUT_OF_ORDER_SEQUENCE_NUMBER,
               "the later batch, its predecessor not written")
            a = p.produce(topic, 0, b1)
            eq(a["error_code"], 0, "the retry of the first batch")
            a = p.produce(topic, 0, b2)
            eq(a["error_code"], 0, "the later batch, again")
    verify_upstream(env, topic, 1, as_recs(0, r1, ts1) + as_recs(0, r2, ts2))


@test(direct=False, upstreams=BOTH)
def producer_ids_per_instance(env):
    """Issue 12, item 4: two Sluice processes started within the same
    second hand out different producer ids (ids came from the start second
    plus a counter). A batch naming an id the instance did not issue (the
    other's, a made-up one) is accepted as a broker accepts it, with
    sequence state of its own: the same sequence under its own id is not a
    duplicate of it."""
    topic = env.topic("pids", 1)
    first = env.sluice
    t0 = time.time()
    other = Sluice(env.cfg.sluice, env.upstream, env.sluice_log + ".2")
    try:
        started = time.time() - t0
        ids = {}
        for name, addr in (("first", first.addr), ("second", other.addr)):
            with kwire.Conn(addr) as c:
                ids[name] = [c.init_producer_id(4)["producer_id"] for _ in range(3)]
        log("ids: %s (second instance up %.2fs after the first's test began)"
            % (ids, started))
        check(not set(ids["first"]) & set(ids["second"]),
              "two instances handed out the same id: %s" % ids)
        check(len(set(ids["first"])) == 3, "one instance repeated an id: %s" % ids)
        r, ts = recs_of(b"p", 1)
        with kwire.Conn(env.kafka_addr(topic, 0)) as c:
            learn_topic(c, topic, 1)
            offsets = []
            for what, pid in (("the other instance's id", ids["second"][0]),
                              ("a made-up id", 123456789),
                              ("an id this instance issued", ids["first"][0])):
                a = c.produce(topic, 0, kwire.record_batch(r, ts, producer_id=pid,
                                                           producer_epoch=0, base_sequence=0),
                              version=7)
                eq(a["error_code"], 0, "Produce naming %s" % what)
                offsets.append(a["base_offset"])
            check(len(set(offsets)) == 3, "batches of three ids answered as duplicates: "
                  "offsets %s" % offsets)
    finally:
        other.stop()
    verify_upstream(env, topic, 1, as_recs(0, r, ts) * 3)


# ---------------------------------------------------------------------------
# h) malformed input on some connections, a real producer on another


class BackgroundProducer(threading.Thread):
    """confluent-kafka producing acks=all until stopped; owns its Producer."""

    def __init__(self, bootstrap, topic):
        super().__init__(daemon=True)
        self.bootstrap, self.topic = bootstrap, topic
        self.stop_ev = threading.Event()
        self.sent = []
        self.errors = []
        self.acked = 0
        self.left = None
        self.exc = None

    def run(self):
        from confluent_kafka import Producer
        try:
            p = Producer({"bootstrap.servers": self.bootstrap, "acks": "all", "linger.ms": 2,
                          "message.timeout.ms": 30000, "log_level": 3})

            def dr(err, msg):
                if err is not None:
                    self.errors.append(str(err))
                else:
                    self.acked += 1

            i = 0
            while not self.stop_ev.is_set() and i < 20000:
                v = b"bg-%06d" % i
                p.produce(self.topic, value=v, key=b"k", partition=i % 2, on_delivery=dr,
                          timestamp=1700000000000 + i)
                self.sent.append(Rec(i % 2, b"k", v, [], 1700000000000 + i))
                i += 1
                p.poll(0.002)
            self.left = p.flush(60)
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.exc = e


_BOMB = None


def gzip_bomb_payload():
    global _BOMB
    if _BOMB is None:
        _BOMB = kwire.gzip_bomb(256 << 20)  # 256 MiB of zeros in ~260 KB
    return _BOMB


@test(direct=False, sluice_args=["--limits.max_request_bytes=1048576"], timeout=240,
      upstreams=BOTH)
def malformed_input(env):
    topic = env.topic("bad", 1)
    bg_topic = env.topic("bg", 2)
    bg = BackgroundProducer(env.bootstrap, bg_topic)
    bg.start()
    try:
        wait_for(lambda: bg.acked >= 50 or bg.exc or bg.errors, 30,
                 "the background producer to get going")
        _malformed_steps(env, topic)
    finally:
        bg.stop_ev.set()
        bg.join(90)
    check(not bg.is_alive(), "background producer did not finish")
    check(bg.exc is None, "background producer raised %r" % bg.exc)
    check(not bg.errors, "background producer delivery errors: %s" % bg.errors[:5])
    eq(bg.left, 0, "background records left after flush")
    eq(bg.acked, len(bg.sent), "background records acknowledged")
    log("background producer: %d records acknowledged" % bg.acked)
    verify_upstream(env, bg_topic, 2, bg.sent)
    assert_serving(env, "malformed input")


def _malformed_steps(env, topic):
    addr = env.bootstrap
    # 1. a frame cut short, then close
    with kwire.Conn(addr) as c:
        _, data = c.encode(kwire.API_VERSIONS, 0, b"")
        c.send_raw(kwire.i32(100) + data[4:])
    assert_serving(env, "a truncated frame")

    # 2. frame sizes over limits.max_request_bytes: the connection is closed
    for size in (0x80000000, 0x7FFFFFFF, 1048576 + 1024):
        with kwire.Conn(addr) as c:
            c.send_raw(kwire.u32(size) + b"\x00\x00\x00\x00")
            expect_closed(c, 10, "frame claiming %d bytes" % size)
    assert_serving(env, "oversized frames")

    with kwire.Conn(addr, timeout=30) as c:
        learn_topic(c, topic, 1)
        good, ts = recs_of(b"ok", 2)
        # 3. bad CRC
        r = c.produce(topic, 0, kwire.record_batch(good, ts, bad_crc=True))
        eq(r["error_code"], kwire.CORRUPT_MESSAGE, "Produce with a bad CRC")

        # 4. garbage varints inside a record (CRC correct): a broker answers
        # INVALID_RECORD to records it cannot read (broker_refusals_differential)
        raw = kwire.varint(12) + b"\x00" + b"\xff" * 11
        r = c.produce(topic, 0, kwire.record_batch([kwire.Record(b"x", b"y")], ts,
                                                   raw_records=raw))
        eq(r["error_code"], kwire.INVALID_RECORD, "Produce with garbage varints in a record")

        # 5. a record count that doesn't match the records (nor lastOffsetDelta
        # 0): a broker's LogValidator refuses the header as INVALID_RECORD
        raw = kwire.encode_record(kwire.Record(b"x", b"y"), 0)
        r = c.produce(topic, 0, kwire.record_batch([kwire.Record(b"x", b"y")], ts,
                                                   raw_records=raw, records_count=5))
        eq(r["error_code"], kwire.INVALID_RECORD, "Produce with records_count 5 for 1 record")
        # ... and with lastOffsetDelta 4 to match: the records are too few
        r = c.produce(topic, 0, kwire.record_batch([kwire.Record(b"x", b"y")], ts,
                                                   raw_records=raw, records_count=5,
                                                   last_offset_delta=4))
        eq(r["error_code"], kwire.INVALID_RECORD, "Produce with 5 records declared, 1 there")

        # 6. gzip bomb: 256 MiB of zeros in a ~260 KB request
        bomb = gzip_bomb_payload()
        r = c.produce(topic, 0, kwire.record_batch([kwire.Record(b"x", b"y")] * 1000, ts,
                                                   codec=kwire.CODEC_GZIP, payload=bomb),
                      timeout=60)
        check(r["error_code"] in (kwire.CORRUPT_MESSAGE, kwire.MESSAGE_TOO_LARGE,
                                  kwire.RECORD_LIST_TOO_LARGE),
              "gzip bomb answered with error %d (want 2, 10 or 18)" % r["error_code"])

        # the same connection still works after partition-level errors
        r = c.produce(topic, 0, kwire.record_batch(good, ts))
        eq(r["error_code"], 0, "good batch after the bad ones")
    verify_upstream(env, topic, 1, as_recs(0, good, ts))

    # 7. an unknown API key: an error answer or a closed connection, never a crash
    with kwire.Conn(addr) as c:
        corr = c.send(777, 0, b"\x00\x01\x02", flexible=False)
        try:
            rcorr, body = c.recv(777, 0, timeout=10)
            eq(rcorr, corr, "correlation id of the answer to API key 777")
            log("unknown API key answered with %d body bytes" % len(body))
        except (kwire.Closed, ConnectionResetError):
            log("unknown API key: connection closed")
    assert_serving(env, "an unknown API key")

    # 8. Fetch: advertised (clients need it) but not served. v7+ has a
    #    top-level error field: a well-formed answer carrying 35. Before v7
    #    errors exist only per requested partition; Sluice does not parse
    #    Fetch requests, so it logs why and disconnects instead of sending
    #    an empty answer that would look like "no data".
    problems = []
    for version in (4, 7, 11):
        with kwire.Conn(addr) as c:
            corr = c.send(kwire.FETCH, version, kwire.fetch_request(version, topic, 0))
            try:
                rcorr, body = c.recv(kwire.FETCH, version, timeout=10)
            except (kwire.Closed, ConnectionResetError, socket.timeout) as e:
                if version < 7 and not isinstance(e, socket.timeout):
                    log("Fetch v%d: connection closed (no top-level error field)" % version)
                    text = open(env.sluice_log, "rb").read().decode("utf-8", "replace")
                    if "Fetch v%d is not served by Sluice" % version not in text:
                        problems.append("Fetch v%d: disconnect not logged" % version)
                else:
                    problems.append("Fetch v%d: no answer (%s)" % (version, e))
                continue
            if rcorr != corr:
                problems.append("Fetch v%d: correlation id %d, want %d" % (version, rcorr, corr))
                continue
            try:
                f = kwire.parse_fetch(version, body)
            except kwire.ParseError as e:
                problems.append("Fetch v%d answer does not parse: %s (%d bytes: %r)"
                                % (version, e, len(body), body[:64]))
                continue
            parts = [p for _, ps in (f["responses"] or []) for p in ps or []]
            errs = [p["error_code"] for p in parts]
            top = f.get("error_code", 0)
            log("Fetch v%d answered: top-level error %s, partition errors %s"
                % (version, f.get("error_code", "(none in v%d)" % version), errs))
            if not (top != 0 or (errs and all(errs))):
                problems.append("Fetch v%d answer carries no error (top-level %s, %d partitions "
                                "with errors %s)" % (version, f.get("error_code", "n/a"),
                                                     len(parts), errs))
            if any(p["records"] for p in parts):
                problems.append("Fetch v%d returned records" % version)
            eq(c.api_versions(0)["error_code"], 0, "ApiVersions after Fetch v%d" % version)
    check(not problems, "; ".join(problems))


# ---------------------------------------------------------------------------
# i) pipelining: answers in request order, none for acks=0


@test(direct="the librdkafka 2.0.2 mock answers acks=0 Produce requests")
def pipelined_requests_in_order(env):
    topic = env.topic("pipe", 3)
    # Make partition 0 slow upstream so later, faster requests would overtake it.
    slow = None
    if not env.direct:
        from harness import metadata_leader
        slow = metadata_leader(env.upstream, topic, 0)
        env.mock.cmd("rtt %d 300" % slow)
    sent = []
    with kwire.Conn(env.kafka_addr(topic, 0), timeout=30) as c:
        learn_topic(c, topic, 3)
        mdv = pick_version(c, kwire.METADATA, 9)
        pv = pick_version(c, kwire.PRODUCE, 9)

        def produce(part, acks, tag, version=7):
            recs, ts = recs_of(tag, 3)
            sent.extend(as_recs(part, recs, ts))
            return (kwire.PRODUCE, version, kwire.produce_request(
                version, [(topic, [(part, kwire.record_batch(recs, ts))])], acks), acks != 0)

        plan = [
            (kwire.API_VERSIONS, 3, kwire.api_versions_request(3), True),
            (kwire.METADATA, 1, kwire.metadata_request(1, [topic]), True),
            produce(0, 1, b"p0-a"),
            produce(1, 0, b"p1-a"),
            (kwire.API_VERSIONS, 0, b"", True),
            produce(2, -1, b"p2-a", pv),
            (kwire.METADATA, mdv, kwire.metadata_request(mdv, [topic]), True),
            produce(0, 0, b"p0-b"),
            produce(1, 1, b"p1-b", pv),
            produce(0, -1, b"p0-c"),
            (kwire.API_VERSIONS, 0, b"", True),
        ]
        wire = b""
        expect = []
        for key, ver, body, answered in plan:
            corr, data = c.encode(key, ver, body)
            wire += data
            if answered:
                expect.append((corr, key, ver))
        c.send_raw(wire)
        got = []
        for corr, key, ver in expect:
            rcorr, body = c.recv(key, ver, timeout=30)
            got.append(rcorr)
            if rcorr != corr:
                fail("answers out of order: correlation ids %s, expected %s"
                     % (got, [e[0] for e in expect]))
            try:
                res = kwire.PARSERS[key](ver, body)
            except kwire.ParseError as e:
                fail("answer %d (api %d v%d) does not parse: %s" % (corr, key, ver, e))
            if key == kwire.PRODUCE:
                for parts in res["topics"].values():
                    for p in parts.values():
                        eq(p["error_code"], 0, "produce %d error" % corr)
        try:
            extra = c.recv_frame(timeout=1.0)
            fail("unexpected extra answer (an acks=0 request was answered?): %r" % extra[:16])
        except socket.timeout:
            pass
    if slow:
        env.mock.cmd("rtt %d 0" % slow)
    verify_upstream(env, topic, 3, sent)


# ---------------------------------------------------------------------------
# j) ApiVersions


@test(direct="the librdkafka 2.0.2 mock stops at ApiVersions v2", upstreams=BOTH)
def api_versions_negotiation(env):
    with kwire.Conn(env.bootstrap) as c:
        for v in (0, 1, 2, 3):
            av = c.api_versions(v)
            eq(av["error_code"], 0, "ApiVersions v%d error" % v)
        keys = av["api_keys"]
        names = {0: "Produce", 1: "Fetch", 3: "Metadata", 10: "FindCoordinator",
                 18: "ApiVersions", 22: "InitProducerId"}
        missing = [n for k, n in names.items() if k not in keys]
        check(not missing, "ApiVersions v3 lacks %s (has %s)" % (missing, sorted(keys)))
        lo, hi = keys[18]
        check(lo == 0 and hi >= 3, "ApiVersions range %d-%d, want 0-3+" % (lo, hi))
        lo, hi = keys[0]
        check(lo <= 3 <= hi and hi >= 7, "Produce range %d-%d must cover 3..7" % (lo, hi))
        lo, hi = keys[1]
        check(lo <= 4 and hi >= 10, "Fetch range %d-%d must cover 4 and 10 (librdkafka "
              "feature detection)" % (lo, hi))
        log("advertised: %s" % sorted(keys.items()))

        # A version from the future: error 35 with a v0 body naming only key 18.
        corr = c.send(kwire.API_VERSIONS, 99, kwire.api_versions_request(3))
        rcorr, body = c.recv(kwire.API_VERSIONS, 0)
        eq(rcorr, corr, "ApiVersions v99 correlation id")
        try:
            av = kwire.parse_api_versions(0, body)
        except kwire.ParseError as e:
            fail("ApiVersions v99 answer is not a v0 body: %s (%r)" % (e, body[:64]))
        eq(av["error_code"], kwire.UNSUPPORTED_VERSION, "ApiVersions v99 error")
        eq(sorted(av["api_keys"]), [18], "keys listed in the v99 answer")
        check(av["api_keys"][18][1] >= 3, "v99 answer's ApiVersions max %r" % (av["api_keys"][18],))
        eq(c.api_versions(3)["error_code"], 0, "ApiVersions v3 after the v99 retry")


@test(direct="the librdkafka 2.0.2 mock stops at ApiVersions v2", upstreams=BOTH)
def api_versions_bad_software_name(env):
    with kwire.Conn(env.bootstrap) as c:
        body = kwire.compact_string("bad name!") + kwire.compact_string("1.0") + kwire.NO_TAGS
        corr = c.send(kwire.API_VERSIONS, 3, body)
        rcorr, rbody = c.recv(kwire.API_VERSIONS, 3)
        eq(rcorr, corr, "correlation id")
        av = kwire.parse_api_versions(3, rbody)
        eq(av["error_code"], kwire.INVALID_REQUEST, "ApiVersions v3 with ClientSoftwareName 'bad name!'")


# ---------------------------------------------------------------------------
# Produce to a topic that exists upstream, without asking for Metadata first


@test(upstreams=BOTH)
def produce_without_metadata_first(env):
    """A broker takes a Produce for an existing topic whatever the client
    asked before. Real clients always send Metadata first, so a proxy may
    answer the retriable UNKNOWN_TOPIC_OR_PARTITION (3) while it looks the
    topic up, but must then take the write."""
    topic = env.topic("nomd", 2)
    recs, ts = recs_of(b"nm", 2)
    with kwire.Conn(env.kafka_addr(topic, 1), timeout=30) as c:
        deadline = time.monotonic() + 15
        tries = 0
        while True:
            tries += 1
            r = c.produce(topic, 1, kwire.record_batch(recs, ts))
            if r["error_code"] == 0:
                break
            check(r["error_code"] == kwire.UNKNOWN_TOPIC_OR_PARTITION,
                  "Produce without Metadata first: error %d" % r["error_code"])
            if time.monotonic() > deadline:
                fail("Produce to existing upstream topic %s without a Metadata request "
                     "first still answered UNKNOWN_TOPIC_OR_PARTITION after %d tries over 15s"
                     % (topic, tries))
            time.sleep(0.1)  # client retry backoff
        log("accepted after %d tries" % tries)
    verify_upstream(env, topic, 2, as_recs(1, recs, ts))


# ---------------------------------------------------------------------------
# kwire's own producer over Produce v3/v7/v9, uncompressed and gzip, and
# Metadata v1/v9 answers naming the broker(s) clients must connect to


@test(upstreams=BOTH)
def kwire_produce_versions(env):
    topic = env.topic("kw", 2)
    sent = []
    with kwire.Conn(env.kafka_addr(topic, 0), timeout=30) as c:
        av = c.api_versions(0)["api_keys"]
        for mdv in (1, 9):
            if mdv > av[kwire.METADATA][1]:
                log("Metadata v%d not advertised, skipped" % mdv)
                continue
            md = c.metadata([topic], version=mdv)
            check(md["brokers"], "Metadata v%d lists no brokers" % mdv)
            t = [x for x in md["topics"] if x["name"] == topic]
            check(t and t[0]["error_code"] == 0, "Metadata v%d topic entry %r" % (mdv, t))
            eq(sorted(p["partition"] for p in t[0]["partitions"]), [0, 1],
               "Metadata v%d partitions" % mdv)
            ids = {b["node_id"] for b in md["brokers"]}
            for p in t[0]["partitions"]:
                check(p["leader"] in ids, "Metadata v%d: leader %d of partition %d is not a "
                      "listed broker %s" % (mdv, p["leader"], p["partition"], sorted(ids)))
            if not env.direct:
                # One Sluice listener per upstream broker (broker_port_base):
                # same host as the bootstrap, never an upstream address.
                adv = ["%s:%d" % (b["host"], b["port"]) for b in md["brokers"]]
                up = set(env.upstream.split(","))
                check(all(a.rsplit(":", 1)[0] == env.bootstrap.rsplit(":", 1)[0]
                          and a not in up for a in adv),
                      "Metadata v%d brokers %s: clients must come back to sluice "
                      "(upstream is %s)" % (mdv, adv, sorted(up)))
        for pv in (3, 7, 9):
            if pv > av[kwire.PRODUCE][1]:
                log("Produce v%d not advertised, skipped" % pv)
                continue
            for codec in (kwire.CODEC_NONE, kwire.CODEC_GZIP):
                tag = b"v%d-c%d" % (pv, codec)
                ts = 1600000000000 + pv * 1000 + codec
                recs = [kwire.Record(None, tag + b"-nullkey", [("a", None)], 0),
                        kwire.Record(b"", tag + b"-emptykey", [], 5),
                        kwire.Record(tag, None, [("x", b""), ("x", b"\x00\xff")], 3),
                        kwire.Record(tag + b"-k", b"", [], 1)]
                r = c.produce(topic, 0, kwire.record_batch(recs, ts, codec=codec), version=pv)
                eq(r["error_code"], 0, "Produce v%d codec %d" % (pv, codec))
                sent.extend(as_recs(0, recs, ts))
    verify_upstream(env, topic, 2, sent)


@test(upstreams=BOTH)
def metadata_lists_a_new_topic(env):
    """An all-topics Metadata request lists a topic created a moment ago,
    as a broker does: kafka-go asks for every topic and writes only to
    those listed (it failed every record with UNKNOWN_TOPIC_OR_PARTITION
    while Sluice answered from a listing up to metadata.refresh_ms old)."""
    with kwire.Conn(env.bootstrap, timeout=30) as c:
        before = c.metadata(None, version=1)
        topic = env.topic("listed", 2)
        after = c.metadata(None, version=1)
    names = [t["name"] for t in after["topics"]]
    check(topic not in [t["name"] for t in before["topics"]], "listed before it existed")
    check(topic in names, "%s missing from the all-topics answer (%d topics listed)"
          % (topic, len(names)))


@test(direct=False)
def config_reference_in_readme(env):
    """The README's configuration table is what `sluice config reference`
    prints: every key the loader knows is documented, with its current
    default, range and text (the table went stale once: three limits
    and a metadata key were missing)."""
    import os
    import subprocess
    out = subprocess.run([env.cfg.sluice, "config", "reference"], capture_output=True,
                         text=True, timeout=30)
    eq(out.returncode, 0, "sluice config reference: %s" % out.stderr[-500:])
    table = out.stdout.strip("\n")
    readme = open(os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))), "README.md")).read()
    missing = [l.split("|")[1].strip() for l in table.splitlines() if l not in readme]
    check(not missing, "README.md's table differs from `sluice config reference` for: %s "
          "(paste the command's output over the table)" % missing)
