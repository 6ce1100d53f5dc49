#!/usr/bin/python3
"""fakebroker: a one-node Kafka broker in pure Python whose Produce answers can
carry a throttle_time_ms and be delayed. A test double for Sluice's upstream,
for what librdkafka's mock cluster cannot do (its answers never throttle).

    python3 fakebroker.py [--port 0] [--partitions 3] [--topics a,b]

Binds 127.0.0.1, prints "BOOTSTRAP 127.0.0.1:PORT", then answers each stdin
line with one line, "OK ..." or "ERR <reason>" (as tests/mock/sl_mock.c):

    throttle <ms> [mute]  throttle_time_ms = ms in every later Produce answer
                          (0 = off); "mute" also stops reading that connection
                          for ms after each answer, as Kafka >= 2.0 does
    delay <ms>            hold every later Produce answer ms (pipelined: later
                          requests and other connections are not held up)
    create <topic> <partitions>
    count <topic>         OK <records stored for the topic, all partitions>
    quit                  OK, then exit 0 (so does end of stdin)

Topics: --topics creates topics with --partitions partitions (default 3); so
does a Metadata request naming an unknown topic with allow_auto_topic_creation
(always set before v4), as auto.create.topics.enable=true; otherwise it is
UNKNOWN_TOPIC_OR_PARTITION (3), as is a Produce to an unknown partition.

Protocol: node 1, advertising its own address, leads every partition
(replicas = isr = [1]). Served, all non-flexible (no tagged fields):
ApiVersions v0-v2 (v3+ gets the v0 body with UNSUPPORTED_VERSION (35) and
ApiVersions 0-2, as Kafka does; librdkafka 2.0.2 then retries with v0),
Metadata v0-v8, InitProducerId v0-v1, Produce v3-v8. Also advertised, never
served: Produce v0-v2, Fetch v4-v10, FindCoordinator v0, because librdkafka
(<= 2.11) enables features by exact versions: record batch v2 needs Produce 3
+ Fetch 4, zstd Produce 7 + Fetch 10, gzip/snappy/lz4 a Produce range from 0,
lz4 FindCoordinator 0. Any request not served closes the connection (logged).

Limits (a test double, not a broker): records are counted, not kept (only
RecordBatch v2 headers are read: no CRC check, no decompression, no Fetch).
Idempotence is loose: every sequence is accepted; a batch equal in (producer
id, epoch, base sequence) to one of a partition's last 5 is a retry, answered
with its first offset and not counted again. No transactions, TLS or SASL.
Bounded: 256 connections, 64 MiB frames, 256 queued answers per connection.
"""

import argparse
import collections
import os
import queue
import re
import socket
import struct
import sys
import threading
import time

NODE_ID = 1
MAX_CONNS, MAX_FRAME, MAX_PENDING = 256, 64 << 20, 256  # see "Bounded" above
MAX_TOPICS = MAX_PARTITIONS = 10000
MAX_MS = 3600 * 1000       # bound for throttle and delay
MAX_LINE = 8192            # bytes per command line
IDLE_S = 600               # socket timeout: Kafka's connections.max.idle.ms
TOPIC_RE = re.compile(r"[A-Za-z0-9._-]{1,249}\Z")

PRODUCE, FETCH, METADATA, FIND_COORDINATOR, API_VERSIONS, INIT_PRODUCER_ID = 0, 1, 3, 10, 18, 22
ADVERTISED = {PRODUCE: (0, 8), FETCH: (4, 10), METADATA: (0, 8), FIND_COORDINATOR: (0, 0),
              API_VERSIONS: (0, 2), INIT_PRODUCER_ID: (0, 1)}
SERVED = {PRODUCE: (3, 8), METADATA: (0, 8), INIT_PRODUCER_ID: (0, 1)}  # + ApiVersions
NONE, CORRUPT_MESSAGE, UNKNOWN_TOPIC_OR_PARTITION, INVALID_TOPIC = 0, 2, 3, 17
UNSUPPORTED_VERSION = 35
INT32_MIN = -(1 << 31)     # "authorized operations not requested"


def log(msg):
    print("fakebroker: %s" % msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# Wire encoding and bounded decoding

i16, i32, i64 = (struct.Struct(f).pack for f in (">h", ">i", ">q"))


def s16(s):
    """Nullable string with an int16 length."""
    return i16(-1) if s is None else i16(len(s.encode())) + s.encode()


class Malformed(Exception):
    """A request this broker cannot parse or does not serve: close the connection."""


class Rd:
    """Reads a request frame; every read is bounds-checked."""

    def __init__(self, b):
        self.b, self.o = b, 0

    def take(self, n):
        if n < 0 or self.o + n > len(self.b):
            raise Malformed("length %d past end of frame" % n)
        self.o += n
        return self.b[self.o - n:self.o]

    def num(self, fmt):  # ">b", ">h" or ">i"
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def string(self):
        n = self.num(">h")
        return None if n < 0 else self.take(n).decode("utf-8", "replace")

    def bytes(self):
        n = self.num(">i")
        return None if n < 0 else self.take(n)

    def count(self):
        """An array count (-1 = null), at most one element per remaining byte."""
        n = self.num(">i")
        if n > len(self.b) - self.o:
            raise Malformed("array count %d too large" % n)
        return n


def parse_batches(data):
    """[(producer_id, producer_epoch, base_sequence, record_count)] for the
    RecordBatch v2 list of one Produce partition, or None if malformed."""
    out, o = [], 0
    while data is not None and o < len(data):
        if len(data) - o < 61:  # the fixed header of a batch
            return None
        blen = struct.unpack_from(">i", data, o + 8)[0]  # from partitionLeaderEpoch on
        if blen < 49 or o + 12 + blen > len(data) or data[o + 16] != 2:  # magic
            return None
        pid, epoch, seq, n = struct.unpack_from(">qhii", data, o + 43)
        if n < 0:
            return None
        out.append((pid, epoch, seq, n))
        o += 12 + blen
    return out


# ---------------------------------------------------------------------------
# Broker state, all under one lock

class Broker:
    def __init__(self, host, port, partitions):
        self.lock = threading.Lock()
        self.host, self.port, self.default_partitions = host, port, partitions
        self.next_offset = {}   # topic -> [next offset of each partition]
        self.counts = {}        # topic -> records stored
        self.throttle_ms, self.mute, self.delay_ms = 0, False, 0
        self.next_pid, self.conns = 1000, 0
        self.recent = {}        # (pid, topic, partition) -> deque[(epoch, seq, base offset)]

    def create(self, topic, n):
        """Caller holds the lock. Returns an error string or None."""
        if not TOPIC_RE.match(topic):
            return "invalid topic name"
        if topic in self.next_offset:
            return "topic exists"
        if len(self.next_offset) >= MAX_TOPICS:
            return "too many topics"
        self.next_offset[topic], self.counts[topic] = [0] * n, 0
        return None

    def append(self, topic, part, data):
        """Stores one partition's batches; returns (error_code, base_offset)."""
        batches = parse_batches(data)
        if batches is None:
            return CORRUPT_MESSAGE, -1
        with self.lock:
            offs = self.next_offset.get(topic)
            if offs is None or not 0 <= part < len(offs):
                return UNKNOWN_TOPIC_OR_PARTITION, -1
            first = None
            for pid, epoch, seq, n in batches:
                base, seen = None, None
                if pid >= 0 and seq >= 0:  # idempotent: is it a retry?
                    if len(self.recent) > 100000:
                        self.recent.clear()
                    seen = self.recent.setdefault((pid, topic, part),
                                                  collections.deque(maxlen=5))
                    base = next((b for e, s, b in seen if (e, s) == (epoch, seq)), None)
                if base is None:  # a new batch
                    base = offs[part]
                    offs[part] += n
                    self.counts[topic] += n
                    if seen is not None:
                        seen.append((epoch, seq, base))
                first = base if first is None else first
            return NONE, offs[part] if first is None else first


# ---------------------------------------------------------------------------
# Request handlers: each returns the response body (after the correlation id)

def api_versions(ver):
    if ver > 2:  # the v0 body, with the error and ApiVersions' own range
        return i16(UNSUPPORTED_VERSION) + i32(1) + struct.pack(">hhh", API_VERSIONS, 0, 2)
    body = i16(NONE) + i32(len(ADVERTISED)) + b"".join(
        struct.pack(">hhh", k, lo, hi) for k, (lo, hi) in sorted(ADVERTISED.items()))
    return body + (i32(0) if ver >= 1 else b"")  # throttle_time_ms


def metadata(b, ver, r):
    n = r.count()
    names = None if n < 0 else [r.string() for _ in range(n)]
    auto = r.num(">b") != 0 if ver >= 4 else True  # v8's "include ops" flags: ignored
    if ver == 0 and not names:
        names = None  # v0: an empty list means all topics
    topics = []  # (name, error, partition count)
    with b.lock:
        for t in sorted(b.next_offset) if names is None else names:
            if t in b.next_offset:
                topics.append((t, NONE, len(b.next_offset[t])))
            elif t is None or not TOPIC_RE.match(t):
                topics.append((t, INVALID_TOPIC, 0))
            elif auto and b.create(t, b.default_partitions) is None:
                topics.append((t, NONE, b.default_partitions))
            else:
                topics.append((t, UNKNOWN_TOPIC_OR_PARTITION, 0))
    node = i32(1) + i32(NODE_ID)  # [1], for replicas and isr
    out = i32(0) if ver >= 3 else b""  # throttle_time_ms
    out += i32(1) + i32(NODE_ID) + s16(b.host) + i32(b.port)  # brokers
    out += s16(None) if ver >= 1 else b""  # rack
    out += s16("fakebroker") if ver >= 2 else b""  # cluster_id
    out += i32(NODE_ID) if ver >= 1 else b""  # controller_id
    out += i32(len(topics))
    for name, err, nparts in topics:
        out += i16(err) + s16(name) + (b"\0" if ver >= 1 else b"") + i32(nparts)  # is_internal
        for p in range(nparts):
            out += i16(NONE) + i32(p) + i32(NODE_ID)  # error, index, leader
            out += (i32(0) if ver >= 7 else b"") + node + node  # leader_epoch, replicas, isr
            out += i32(0) if ver >= 5 else b""  # offline_replicas []
        out += i32(INT32_MIN) if ver >= 8 else b""  # topic_authorized_operations
    return out + (i32(INT32_MIN) if ver >= 8 else b"")  # cluster_authorized_operations


def init_producer_id(b, r):
    r.string()      # transactional_id: ignored (no transactions), a pid is given anyway
    r.num(">i")     # transaction_timeout_ms
    with b.lock:
        b.next_pid += 1
        pid = b.next_pid
    return i32(0) + i16(NONE) + i64(pid) + i16(0)  # throttle, error, pid, epoch 0


def produce(b, ver, r):
    """Returns (body, or None for acks=0; delay ms; mute ms)."""
    r.string()      # transactional_id
    acks = r.num(">h")
    r.num(">i")     # timeout_ms
    with b.lock:
        throttle, mute, delay = b.throttle_ms, b.mute, b.delay_ms
    results = []
    for _ in range(max(r.count(), 0)):
        topic, parts = r.string(), []
        for _ in range(max(r.count(), 0)):
            p = r.num(">i")
            parts.append((p,) + b.append(topic, p, r.bytes()))
        results.append((topic, parts))
    mute_ms = throttle if mute else 0
    if acks == 0:
        return None, 0, mute_ms
    out = i32(len(results))
    for topic, parts in results:
        out += s16(topic) + i32(len(parts))
        for p, err, base in parts:
            out += i32(p) + i16(err) + i64(base) + i64(-1)  # log_append_time -1
            out += i64(0 if err == NONE else -1) if ver >= 5 else b""  # log_start_offset
            out += i32(0) + s16(None) if ver >= 8 else b""  # record_errors [], error_message
    return out + i32(throttle), delay, mute_ms


# ---------------------------------------------------------------------------
# Connections: a reader thread parses and handles requests and queues the
# answers, in request order, each with the time it is due; a writer thread
# sends each when due. So a delay holds answers, not later requests.

def recv_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(min(n - len(buf), 1 << 20))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def writer(sock, out):
    failed = False
    while True:
        item = out.get()
        if item is None:
            return
        if failed:
            continue  # drain until the reader's sentinel
        due, data = item
        try:
            time.sleep(max(0.0, due - time.monotonic()))
            sock.sendall(data)
        except OSError as e:
            log("send: %r" % e)
            failed = True
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes the reader
            except OSError:
                pass


def serve(sock, b, peer):
    out = queue.Queue(MAX_PENDING)
    w = threading.Thread(target=writer, args=(sock, out), daemon=True)
    w.start()
    try:
        while True:
            hdr = recv_exact(sock, 4)
            n = struct.unpack(">i", hdr)[0] if hdr else 0
            if hdr and not 8 <= n <= MAX_FRAME:
                raise Malformed("frame size %d" % n)
            frame = recv_exact(sock, n) if hdr else None
            if frame is None:
                return  # the client closed the connection
            r = Rd(frame)
            key, ver, corr = r.num(">h"), r.num(">h"), r.num(">i")
            delay = mute = 0
            if key == API_VERSIONS:
                body = api_versions(ver)  # response header v0 always; request body unread
            else:
                r.string()  # client_id: request header v1 (no flexible version is served)
                lo, hi = SERVED.get(key, (1, 0))
                if not lo <= ver <= hi:
                    raise Malformed("api key %d v%d not served" % (key, ver))
                if key == METADATA:
                    body = metadata(b, ver, r)
                elif key == INIT_PRODUCER_ID:
                    body = init_producer_id(b, r)
                else:
                    body, delay, mute = produce(b, ver, r)
            due = time.monotonic() + delay / 1000.0
            if body is not None:
                out.put((due, i32(4 + len(body)) + i32(corr) + body))  # may wait for room
            if mute:  # Kafka mutes a throttled channel until the throttle ends
                time.sleep(max(0.0, due + mute / 1000.0 - time.monotonic()))
    except Malformed as e:
        log("%s: %s; closing" % (peer, e))
    except Exception as e:  # a disconnect, or a bug: never takes the broker down
        log("%s: %r" % (peer, e))
    finally:
        out.put(None)  # the writer sends (or drops) what is queued, then stops
        w.join()
        sock.close()
        with b.lock:
            b.conns -= 1


def accept_loop(ls, b):
    while True:
        try:
            c, addr = ls.accept()
        except OSError as e:
            log("accept: %r" % e)
            time.sleep(0.1)
            continue
        with b.lock:
            full = b.conns >= MAX_CONNS
            b.conns += 0 if full else 1
        if full:
            log("%s:%d: more than %d connections; refused" % (addr + (MAX_CONNS,)))
            c.close()
            continue
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c.settimeout(IDLE_S)  # bounds idle reads and stuck sends
        threading.Thread(target=serve, args=(c, b, "%s:%d" % addr), daemon=True).start()


# ---------------------------------------------------------------------------
# Commands on stdin

def ms_arg(s):
    return int(s) if s.isdigit() and int(s) <= MAX_MS else None


def command(b, w):
    """Runs one command (a list of words); returns its answer line."""
    if not w:
        return "ERR empty command"
    if w[0] == "throttle" and len(w) in (2, 3) and ms_arg(w[1]) is not None \
            and w[2:] in ([], ["mute"]):
        with b.lock:
            b.throttle_ms, b.mute = ms_arg(w[1]), w[2:] == ["mute"]
        return "OK"
    if w[0] == "delay" and len(w) == 2 and ms_arg(w[1]) is not None:
        with b.lock:
            b.delay_ms = ms_arg(w[1])
        return "OK"
    if w[0] == "create" and len(w) == 3:
        if not w[2].isdigit() or not 1 <= int(w[2]) <= MAX_PARTITIONS:
            return "ERR partitions must be 1..%d" % MAX_PARTITIONS
        with b.lock:
            err = b.create(w[1], int(w[2]))
        return "ERR " + err if err else "OK"
    if w[0] == "count" and len(w) == 2:
        with b.lock:
            return "OK %d" % b.counts.get(w[1], 0)
    return "ERR usage: throttle <ms> [mute] | delay <ms> | create <topic> <partitions>" \
           " | count <topic> | quit"


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--partitions", type=int, default=3)
    ap.add_argument("--topics", default="", help="comma-separated topics to create")
    args = ap.parse_args()
    if not 1 <= args.partitions <= MAX_PARTITIONS:
        ap.error("--partitions must be 1..%d" % MAX_PARTITIONS)
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", args.port))
    ls.listen(128)
    b = Broker(*ls.getsockname(), args.partitions)
    for t in filter(None, args.topics.split(",")):
        err = b.create(t, args.partitions)
        if err:
            ap.error("--topics %s: %s" % (t, err))
    threading.Thread(target=accept_loop, args=(ls, b), daemon=True).start()
    try:
        print("BOOTSTRAP %s:%d" % (b.host, b.port), flush=True)
        for line in iter(lambda: sys.stdin.buffer.readline(MAX_LINE), b""):
            if not line.endswith(b"\n") and len(line) == MAX_LINE:  # too long: skip it
                while line and not line.endswith(b"\n"):
                    line = sys.stdin.buffer.readline(MAX_LINE)
                print("ERR line longer than %d bytes" % (MAX_LINE - 1), flush=True)
                continue
            w = line.decode("utf-8", "replace").split()
            print("OK" if w == ["quit"] else command(b, w), flush=True)
            if w == ["quit"]:
                break
    except (BrokenPipeError, KeyboardInterrupt):
        pass
    os._exit(0)  # daemon threads may be mid-send: do not wait for them


if __name__ == "__main__":
    main()
