"""kwire: a minimal, independent Kafka wire client for protocol-level tests.

Pure Python (struct, zlib, socket): no Kafka library, so it can check Sluice
against the spec rather than against another client's habits, and send bytes
no real client would (truncated frames, bad CRCs, garbage varints).

Covers ApiVersions v0-v3, Metadata v1/v9, Produce v3/v7/v9 with RecordBatch
v2 (uncompressed or gzip), InitProducerId v0/v2, Fetch v4/v7 (request and
response header only: enough to see an error answer), and raw frames.

Field lists follow Kafka's message schemas (clients/src/main/resources/common/
message/*.json). Flexible versions (tagged fields, compact lengths) are
ApiVersions v3+, Metadata v9+, Produce v9+, InitProducerId v2+; ApiVersions
responses always use response header v0.
"""

import gzip
import io
import socket
import struct
import time
import zlib

# API keys
PRODUCE = 0
FETCH = 1
METADATA = 3
FIND_COORDINATOR = 10
API_VERSIONS = 18
INIT_PRODUCER_ID = 22
SASL_HANDSHAKE = 17
SASL_AUTHENTICATE = 36

# Error codes used by the tests
NONE = 0
CORRUPT_MESSAGE = 2
INVALID_RECORD = 87
UNKNOWN_TOPIC_OR_PARTITION = 3
NOT_LEADER_OR_FOLLOWER = 6
REQUEST_TIMED_OUT = 7
MESSAGE_TOO_LARGE = 10
RECORD_LIST_TOO_LARGE = 18
NOT_ENOUGH_REPLICAS = 19
UNSUPPORTED_VERSION = 35
INVALID_REQUEST = 42
OUT_OF_ORDER_SEQUENCE_NUMBER = 45
UNKNOWN_PRODUCER_ID = 59
DUPLICATE_SEQUENCE_NUMBER = 46

# ---------------------------------------------------------------------------
# CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), table driven.


def _crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC32C = _crc32c_table()


def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    t = _CRC32C
    for b in data:
        crc = t[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


# ---------------------------------------------------------------------------
# Encoding


def i8(v):
    return struct.pack(">b", v)


def i16(v):
    return struct.pack(">h", v)


def i32(v):
    return struct.pack(">i", v)


def u32(v):
    return struct.pack(">I", v)


def i64(v):
    return struct.pack(">q", v)


def uvarint(v):
    if v < 0:
        raise ValueError("uvarint of negative value")
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def varint(v):
    """Zigzag-encoded signed varint (also used for varlong)."""
    return uvarint((v << 1) ^ (v >> 63))


def string(s):
    if s is None:
        return i16(-1)
    b = s.encode() if isinstance(s, str) else s
    return i16(len(b)) + b


def bytes_(b):
    if b is None:
        return i32(-1)
    return i32(len(b)) + b


def compact_string(s):
    if s is None:
        return uvarint(0)
    b = s.encode() if isinstance(s, str) else s
    return uvarint(len(b) + 1) + b


def compact_bytes(b):
    if b is None:
        return uvarint(0)
    return uvarint(len(b) + 1) + b


def array(items, enc):
    if items is None:
        return i32(-1)
    return i32(len(items)) + b"".join(enc(x) for x in items)


def compact_array(items, enc):
    if items is None:
        return uvarint(0)
    return uvarint(len(items) + 1) + b"".join(enc(x) for x in items)


NO_TAGS = uvarint(0)

# ---------------------------------------------------------------------------
# Decoding


class ParseError(Exception):
    pass


class Reader:
    """Bounded reader: every read checks the remaining length."""

    def __init__(self, data, pos=0):
        self.data = bytes(data)
        self.pos = pos

    def remaining(self):
        return len(self.data) - self.pos

    def take(self, n):
        if n < 0 or self.pos + n > len(self.data):
            raise ParseError("read of %d bytes at %d past end %d" % (n, self.pos, len(self.data)))
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def _unpack(self, fmt, n):
        return struct.unpack(fmt, self.take(n))[0]

    def i8(self):
        return self._unpack(">b", 1)

    def i16(self):
        return self._unpack(">h", 2)

    def i32(self):
        return self._unpack(">i", 4)

    def u32(self):
        return self._unpack(">I", 4)

    def i64(self):
        return self._unpack(">q", 8)

    def bool(self):
        return self.i8() != 0

    def uvarint(self):
        v = 0
        shift = 0
        while True:
            if shift > 63:
                raise ParseError("varint too long")
            b = self.take(1)[0]
            v |= (b & 0x7F) << shift
            if not b & 0x80:
                return v
            shift += 7

    def varint(self):
        u = self.uvarint()
        return (u >> 1) ^ -(u & 1)

    def string(self):
        n = self.i16()
        if n < 0:
            return None
        return self.take(n).decode("utf-8", "replace")

    def bytes(self):
        n = self.i32()
        if n < 0:
            return None
        return self.take(n)

    def compact_string(self):
        n = self.uvarint()
        if n == 0:
            return None
        return self.take(n - 1).decode("utf-8", "replace")

    def compact_bytes(self):
        n = self.uvarint()
        if n == 0:
            return None
        return self.take(n - 1)

    def array(self, dec):
        n = self.i32()
        if n < 0:
            return None
        if n > self.remaining():
            raise ParseError("array count %d exceeds remaining %d" % (n, self.remaining()))
        return [dec(self) for _ in range(n)]

    def compact_array(self, dec):
        n = self.uvarint()
        if n == 0:
            return None
        n -= 1
        if n > self.remaining():
            raise ParseError("array count %d exceeds remaining %d" % (n, self.remaining()))
        return [dec(self) for _ in range(n)]

    def tags(self):
        """Reads a tagged-field section; returns {tag: bytes}."""
        out = {}
        for _ in range(self.uvarint()):
            tag = self.uvarint()
            size = self.uvarint()
            out[tag] = self.take(size)
        return out

    def end(self):
        if self.remaining():
            raise ParseError("%d trailing bytes" % self.remaining())


# ---------------------------------------------------------------------------
# Records (RecordBatch v2)

CODEC_NONE = 0
CODEC_GZIP = 1


class Record:
    """One record as sent and as verified: key/value None means null."""

    def __init__(self, key=None, value=None, headers=(), timestamp_delta=0, offset_delta=None):
        self.key = key
        self.value = value
        self.headers = list(headers)  # [(str_or_bytes, bytes_or_None)]
        self.timestamp_delta = timestamp_delta
        self.offset_delta = offset_delta


def encode_record(rec, offset_delta):
    body = bytearray()
    body += i8(0)  # attributes (unused)
    body += varint(rec.timestamp_delta)
    body += varint(offset_delta)
    if rec.key is None:
        body += varint(-1)
    else:
        body += varint(len(rec.key)) + rec.key
    if rec.value is None:
        body += varint(-1)
    else:
        body += varint(len(rec.value)) + rec.value
    body += varint(len(rec.headers))
    for hk, hv in rec.headers:
        hk = hk.encode() if isinstance(hk, str) else hk
        body += varint(len(hk)) + hk
        if hv is None:
            body += varint(-1)
        else:
            body += varint(len(hv)) + hv
    return varint(len(body)) + bytes(body)


def record_batch(records, base_timestamp=None, codec=CODEC_NONE, producer_id=-1,
                 producer_epoch=-1, base_sequence=-1, base_offset=0,
                 attributes_extra=0, raw_records=None, records_count=None,
                 partition_leader_epoch=-1, bad_crc=False, max_timestamp=None,
                 payload=None, last_offset_delta=None):
    """Builds a v2 RecordBatch.

    raw_records replaces the encoded (uncompressed) records section and
    payload the (compressed) bytes after the header, for malformed-input
    tests; records_count overrides the declared count and
    last_offset_delta the declared lastOffsetDelta.
    """
    if base_timestamp is None:
        base_timestamp = int(time.time() * 1000)
    if raw_records is None:
        raw = b"".join(encode_record(r, i if r.offset_delta is None else r.offset_delta)
                       for i, r in enumerate(records))
    else:
        raw = raw_records
    if payload is not None:
        pass
    elif codec == CODEC_GZIP:
        payload = gzip_compress(raw)
    elif codec == CODEC_NONE:
        payload = raw
    else:
        raise ValueError("kwire encodes only none and gzip")
    n = len(records) if records_count is None else records_count
    last_delta = max(len(records) - 1, 0) if last_offset_delta is None else last_offset_delta
    if max_timestamp is None:
        max_timestamp = base_timestamp + max([r.timestamp_delta for r in records] or [0])
    after_crc = (i16(codec | attributes_extra) + i32(last_delta) + i64(base_timestamp) +
                 i64(max_timestamp) + i64(producer_id) + i16(producer_epoch) +
                 i32(base_sequence) + i32(n) + payload)
    crc = crc32c(after_crc)
    if bad_crc:
        crc ^= 0xDEADBEEF
    # batchLength counts from partitionLeaderEpoch to the end.
    body = i32(partition_leader_epoch) + i8(2) + u32(crc) + after_crc
    return i64(base_offset) + i32(len(body)) + body


# ---------------------------------------------------------------------------
# Legacy message sets (magic 0/1), which Produce v0-v2 carry (issue 15)

MSG_ATTR_LOG_APPEND_TIME = 0x08


def message(magic, key, value, timestamp=-1, attributes=0, offset=0, bad_crc=False):
    """One [offset][size][message] entry of a message set of magic 0 or 1:
    crc (CRC-32, IEEE, over the rest), magic, attributes, timestamp (magic
    1 only), key and value as int32-length bytes (None: null)."""
    body = i8(magic) + i8(attributes)
    if magic >= 1:
        body += i64(timestamp)
    body += bytes_(key) + bytes_(value)
    crc = zlib.crc32(body)
    if bad_crc:
        crc ^= 0xDEADBEEF
    msg = u32(crc) + body
    return i64(offset) + i32(len(msg)) + msg


def xxh32(data, seed=0):
    """XXH32, for the LZ4 frame header checksum (a second implementation
    beside Sluice's, checked against the same vectors in test_msgset)."""
    p1, p2, p3, p4, p5 = 0x9E3779B1, 0x85EBCA77, 0xC2B2AE3D, 0x27D4EB2F, 0x165667B1
    m = 0xFFFFFFFF

    def rotl(x, r):
        return ((x << r) | (x >> (32 - r))) & m

    def rnd(acc, v):
        return rotl((acc + v * p2) & m, 13) * p1 & m

    n, i = len(data), 0
    if n >= 16:
        v = [(seed + p1 + p2) & m, (seed + p2) & m, seed, (seed - p1) & m]
        while n - i >= 16:
            for k in range(4):
                v[k] = rnd(v[k], struct.unpack_from("<I", data, i + 4 * k)[0])
            i += 16
        h = (rotl(v[0], 1) + rotl(v[1], 7) + rotl(v[2], 12) + rotl(v[3], 18)) & m
    else:
        h = (seed + p5) & m
    h = (h + n) & m
    while n - i >= 4:
        h = rotl((h + struct.unpack_from("<I", data, i)[0] * p3) & m, 17) * p4 & m
        i += 4
    while i < n:
        h = rotl((h + data[i] * p5) & m, 11) * p1 & m
        i += 1
    h ^= h >> 15
    h = h * p2 & m
    h ^= h >> 13
    h = h * p3 & m
    return h ^ (h >> 16)


def legacy_compress(codec, data, magic=1, xerial=True):
    """An inner message set compressed as a legacy producer did: gzip;
    snappy in xerial framing (Java, kafka-python) or raw (librdkafka,
    sarama); an lz4 frame, for magic 0 with the header checksum of Kafka
    0.8-0.9 (over the frame's magic number too)."""
    if codec == CODEC_GZIP:
        return gzip_compress(data)
    if codec == 2:
        import snappy
        if not xerial:
            return snappy.compress(data)
        out = b"\x82SNAPPY\x00" + i32(1) + i32(1)
        for o in range(0, len(data), 32768):
            block = snappy.compress(data[o:o + 32768])
            out += i32(len(block)) + block
        return out
    if codec == 3:
        import lz4.frame
        frame = bytearray(lz4.frame.compress(data, store_size=False))
        if magic == 0:
            flg = frame[4]
            hlen = 7 + (8 if flg & 0x08 else 0) + (4 if flg & 0x01 else 0)
            frame[hlen - 1] = (xxh32(bytes(frame[:hlen - 1])) >> 8) & 0xFF
        return bytes(frame)
    raise ValueError("no legacy codec %r" % codec)


def wrapper(magic, codec, inner, timestamp=-1, attributes=0, xerial=True, offset=None):
    """A compressed message set: one wrapper message whose value is the
    inner set compressed; offset: the last inner offset by default (magic
    1 producers write relative inner offsets 0..n-1)."""
    value = legacy_compress(codec, inner, magic, xerial)
    return message(magic, None, value, timestamp, codec | attributes,
                   0 if offset is None else offset)


def gzip_compress(data):
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as f:
        f.write(data)
    return buf.getvalue()


def gzip_bomb(uncompressed_size):
    """A gzip stream that inflates to uncompressed_size zero bytes (~1000:1)."""
    co = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = b"\0" * (1 << 20)
    out = []
    left = uncompressed_size
    while left > 0:
        n = min(left, len(chunk))
        out.append(co.compress(chunk[:n]))
        left -= n
    out.append(co.flush())
    return b"".join(out)


def decode_record_batches(data):
    """Parses concatenated v2 batches (uncompressed or gzip) into dicts."""
    r = Reader(data)
    batches = []
    while r.remaining() >= 12:
        base_offset = r.i64()
        length = r.i32()
        if length > r.remaining():
            break  # partial trailing batch, as brokers may send
        b = Reader(r.take(length))
        ple = b.i32()
        magic = b.i8()
        if magic != 2:
            raise ParseError("magic %d" % magic)
        crc = b.u32()
        rest = b.data[b.pos:]
        if crc32c(rest) != crc:
            raise ParseError("batch crc mismatch")
        attrs = b.i16()
        last_delta = b.i32()
        base_ts = b.i64()
        max_ts = b.i64()
        pid = b.i64()
        epoch = b.i16()
        seq = b.i32()
        cnt = b.i32()
        payload = b.take(b.remaining())
        codec = attrs & 7
        if codec == CODEC_GZIP:
            payload = gzip.decompress(payload)
        elif codec != CODEC_NONE:
            raise ParseError("codec %d not decoded by kwire" % codec)
        rr = Reader(payload)
        recs = []
        for _ in range(cnt):
            ln = rr.varint()
            one = Reader(rr.take(ln))
            one.i8()
            ts_delta = one.varint()
            off_delta = one.varint()
            kl = one.varint()
            key = None if kl < 0 else one.take(kl)
            vl = one.varint()
            value = None if vl < 0 else one.take(vl)
            hdrs = []
            for _ in range(one.varint()):
                hkl = one.varint()
                hk = one.take(hkl)
                hvl = one.varint()
                hv = None if hvl < 0 else one.take(hvl)
                hdrs.append((hk.decode(), hv))
            recs.append(dict(offset=base_offset + off_delta, timestamp=base_ts + ts_delta,
                             key=key, value=value, headers=hdrs))
        batches.append(dict(base_offset=base_offset, partition_leader_epoch=ple,
                            attributes=attrs, last_offset_delta=last_delta,
                            base_timestamp=base_ts, max_timestamp=max_ts,
                            producer_id=pid, producer_epoch=epoch,
                            base_sequence=seq, records=recs))
    return batches


# ---------------------------------------------------------------------------
# Requests


def is_flexible(api_key, version):
    return {API_VERSIONS: 3, METADATA: 9, PRODUCE: 9, INIT_PRODUCER_ID: 2,
            FETCH: 12, FIND_COORDINATOR: 3,
            SASL_AUTHENTICATE: 2}.get(api_key, 1 << 15) <= version


def request_header(api_key, version, correlation_id, client_id="kwire", flexible=None):
    if flexible is None:
        flexible = is_flexible(api_key, version)
    h = i16(api_key) + i16(version) + i32(correlation_id) + string(client_id)
    if flexible:
        h += NO_TAGS
    return h


def frame(payload):
    return i32(len(payload)) + payload


def api_versions_request(version):
    if version >= 3:
        return compact_string("kwire") + compact_string("1.0") + NO_TAGS
    return b""


def metadata_request(version, topics, allow_auto=True):
    """topics None = all topics; [] = none (v1+)."""
    if version >= 9:
        body = compact_array(topics, lambda t: compact_string(t) + NO_TAGS)
        return body + i8(1 if allow_auto else 0) + i8(0) + i8(0) + NO_TAGS
    body = array(topics, string)
    if version >= 4:
        body += i8(1 if allow_auto else 0)
    if version >= 8:
        body += i8(0) + i8(0)
    return body


def produce_request(version, topic_data, acks=-1, timeout_ms=30000, transactional_id=None):
    """topic_data: [(topic, [(partition, records_bytes_or_None)])]."""
    if version >= 9:
        def part(p):
            return i32(p[0]) + compact_bytes(p[1]) + NO_TAGS

        def top(t):
            return compact_string(t[0]) + compact_array(t[1], part) + NO_TAGS

        return (compact_string(transactional_id) + i16(acks) + i32(timeout_ms) +
                compact_array(topic_data, top) + NO_TAGS)

    def part(p):
        return i32(p[0]) + bytes_(p[1])

    def top(t):
        return string(t[0]) + array(t[1], part)

    body = b""
    if version >= 3:
        body += string(transactional_id)
    return body + i16(acks) + i32(timeout_ms) + array(topic_data, top)


def init_producer_id_request(version, transactional_id=None, timeout_ms=60000):
    if version >= 2:
        body = compact_string(transactional_id) + i32(timeout_ms)
        if version >= 3:
            body += i64(-1) + i16(-1)
        return body + NO_TAGS
    return string(transactional_id) + i32(timeout_ms)


def fetch_request(version, topic, partition, offset=0, max_bytes=1 << 20):
    if version >= 12:
        raise ValueError("kwire builds Fetch v4..v11 only")
    body = i32(-1) + i32(500) + i32(1)  # replica_id, max_wait_ms, min_bytes
    if version >= 3:
        body += i32(max_bytes)
    if version >= 4:
        body += i8(0)  # isolation_level
    if version >= 7:
        body += i32(0) + i32(-1)  # session_id, session_epoch
    part = i32(partition)
    if version >= 9:
        part += i32(-1)  # current_leader_epoch
    part += i64(offset)
    if version >= 5:
        part += i64(-1)  # log_start_offset
    part += i32(max_bytes)
    body += i32(1) + string(topic) + i32(1) + part
    if version >= 7:
        body += i32(0)  # forgotten_topics_data
    if version >= 11:
        body += string("")  # rack_id
    return body


# ---------------------------------------------------------------------------
# Responses


def parse_api_versions(version, body):
    """ApiVersions response body (header v0 already stripped)."""
    r = Reader(body)
    out = {"error_code": r.i16()}
    if version >= 3:
        def ent(x):
            e = (x.i16(), x.i16(), x.i16())
            x.tags()
            return e
        keys = r.compact_array(ent)
    else:
        keys = r.array(lambda x: (x.i16(), x.i16(), x.i16()))
    out["api_keys"] = {k: (lo, hi) for k, lo, hi in (keys or [])}
    out["api_list"] = keys or []
    if version >= 1:
        out["throttle_time_ms"] = r.i32()
    if version >= 3:
        out["tags"] = r.tags()
    r.end()
    return out


def parse_metadata(version, body):
    r = Reader(body)
    flex = version >= 9
    out = {}
    if version >= 3:
        out["throttle_time_ms"] = r.i32()
    s = r.compact_string if flex else r.string
    arr = r.compact_array if flex else r.array

    def broker(x):
        b = {"node_id": x.i32(), "host": (x.compact_string if flex else x.string)(),
             "port": x.i32()}
        if version >= 1:
            b["rack"] = (x.compact_string if flex else x.string)()
        if flex:
            x.tags()
        return b

    out["brokers"] = arr(broker)
    if version >= 2:
        out["cluster_id"] = s()
    if version >= 1:
        out["controller_id"] = r.i32()

    def ints(x):
        return (x.compact_array if flex else x.array)(lambda y: y.i32())

    def partition(x):
        p = {"error_code": x.i16(), "partition": x.i32(), "leader": x.i32()}
        if version >= 7:
            p["leader_epoch"] = x.i32()
        p["replicas"] = ints(x)
        p["isr"] = ints(x)
        if version >= 5:
            p["offline"] = ints(x)
        if flex:
            x.tags()
        return p

    def topic(x):
        t = {"error_code": x.i16(), "name": (x.compact_string if flex else x.string)()}
        if version >= 10:
            t["topic_id"] = x.take(16)
        if version >= 1:
            t["is_internal"] = x.bool()
        t["partitions"] = (x.compact_array if flex else x.array)(partition)
        if version >= 8:
            t["topic_authorized_operations"] = x.i32()
        if flex:
            x.tags()
        return t

    out["topics"] = arr(topic)
    if 8 <= version <= 10:
        out["cluster_authorized_operations"] = r.i32()
    if version >= 13:
        out["error_code"] = r.i16()
    if flex:
        r.tags()
    r.end()
    return out


def parse_produce(version, body):
    """Returns {"topics": {name: {partition: {...}}}, "throttle_time_ms": n}."""
    r = Reader(body)
    flex = version >= 9

    def partition(x):
        p = {"partition": x.i32(), "error_code": x.i16(), "base_offset": x.i64()}
        if version >= 2:
            p["log_append_time"] = x.i64()
        if version >= 5:
            p["log_start_offset"] = x.i64()
        if version >= 8:
            def rerr(y):
                e = (y.i32(), (y.compact_string if flex else y.string)())
                if flex:
                    y.tags()
                return e
            p["record_errors"] = (x.compact_array if flex else x.array)(rerr)
            p["error_message"] = (x.compact_string if flex else x.string)()
        if flex:
            x.tags()
        return p

    def topic(x):
        name = (x.compact_string if flex else x.string)()
        parts = (x.compact_array if flex else x.array)(partition)
        if flex:
            x.tags()
        return name, parts

    topics = {}
    for name, parts in (r.compact_array if flex else r.array)(topic) or []:
        topics.setdefault(name, {})
        for p in parts or []:
            topics[name][p["partition"]] = p
    out = {"topics": topics}
    if version >= 1:
        out["throttle_time_ms"] = r.i32()
    if flex:
        r.tags()
    r.end()
    return out


def parse_init_producer_id(version, body):
    r = Reader(body)
    out = {"throttle_time_ms": r.i32(), "error_code": r.i16(), "producer_id": r.i64(),
           "producer_epoch": r.i16()}
    if version >= 2:
        r.tags()
    r.end()
    return out


def parse_fetch(version, body):
    """Fetch v4..v11 response: top-level error (v7+) and per-partition errors."""
    r = Reader(body)
    out = {"throttle_time_ms": r.i32()}
    if version >= 7:
        out["error_code"] = r.i16()
        out["session_id"] = r.i32()

    def aborted(x):
        return (x.i64(), x.i64())

    def partition(x):
        p = {"partition": x.i32(), "error_code": x.i16(), "high_watermark": x.i64(),
             "last_stable_offset": x.i64()}
        if version >= 5:
            p["log_start_offset"] = x.i64()
        p["aborted"] = x.array(aborted)
        if version >= 11:
            p["preferred_read_replica"] = x.i32()
        p["records"] = x.bytes()
        return p

    def topic(x):
        return x.string(), x.array(partition)

    out["responses"] = r.array(topic)
    r.end()
    return out


PARSERS = {
    API_VERSIONS: parse_api_versions,
    METADATA: parse_metadata,
    PRODUCE: parse_produce,
    INIT_PRODUCER_ID: parse_init_producer_id,
    FETCH: parse_fetch,
}

# ---------------------------------------------------------------------------
# Connection


class Closed(Exception):
    """The peer closed the connection (possibly mid-frame)."""


class Conn:
    """One Kafka connection. Responses are matched to requests by order, and
    every response's correlation id is checked against the request it answers."""

    def __init__(self, addr, timeout=10.0, client_id="kwire", ssl_context=None,
                 server_hostname="localhost"):
        """ssl_context: an ssl.SSLContext to speak TLS (handshake done here)."""
        host, port = parse_addr(addr)
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if ssl_context is not None:
            self.sock = ssl_context.wrap_socket(self.sock, server_hostname=server_hostname)
        self.timeout = timeout
        self.client_id = client_id
        self.next_corr = 1
        self.rbuf = bytearray()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send_raw(self, data):
        self.sock.sendall(data)

    def encode(self, api_key, version, body, corr=None, flexible=None):
        if corr is None:
            corr = self.next_corr
            self.next_corr += 1
        return corr, frame(request_header(api_key, version, corr, self.client_id, flexible) + body)

    def send(self, api_key, version, body, corr=None, flexible=None):
        """Sends one request; returns its correlation id."""
        corr, data = self.encode(api_key, version, body, corr, flexible)
        self.sock.sendall(data)
        return corr

    def recv_frame(self, timeout=None):
        """Returns one response frame's payload (without the size prefix).
        Raises Closed on EOF, socket.timeout when nothing arrives in time."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            if len(self.rbuf) >= 4:
                n = struct.unpack(">i", self.rbuf[:4])[0]
                if n < 0:
                    raise ParseError("negative frame size %d" % n)
                if len(self.rbuf) >= 4 + n:
                    payload = bytes(self.rbuf[4:4 + n])
                    del self.rbuf[:4 + n]
                    return payload
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("no complete response within deadline")
            self.sock.settimeout(left)
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise Closed("connection closed by peer (%d bytes buffered)" % len(self.rbuf))
            self.rbuf += chunk

    def recv(self, api_key, version, timeout=None):
        """Reads one response; returns (correlation_id, raw_body)."""
        payload = self.recv_frame(timeout)
        r = Reader(payload)
        corr = r.i32()
        if api_key != API_VERSIONS and is_flexible(api_key, version):
            r.tags()
        return corr, payload[r.pos:]

    def request(self, api_key, version, body, timeout=None, parse=True):
        corr = self.send(api_key, version, body)
        rcorr, rbody = self.recv(api_key, version, timeout)
        if rcorr != corr:
            raise ParseError("correlation id %d, expected %d" % (rcorr, corr))
        if parse and api_key in PARSERS:
            return PARSERS[api_key](version, rbody)
        return rbody

    # Convenience wrappers

    def api_versions(self, version=3):
        return self.request(API_VERSIONS, version, api_versions_request(version))

    def metadata(self, topics, version=1, allow_auto=True):
        return self.request(METADATA, version, metadata_request(version, topics, allow_auto))

    def produce(self, topic, partition, batch, acks=-1, version=7, timeout_ms=30000,
                timeout=None):
        body = produce_request(version, [(topic, [(partition, batch)])], acks, timeout_ms)
        if acks == 0:
            return self.send(PRODUCE, version, body)
        res = self.request(PRODUCE, version, body, timeout=timeout)
        return res["topics"][topic][partition]

    def init_producer_id(self, version=0):
        return self.request(INIT_PRODUCER_ID, version, init_producer_id_request(version))

    def sasl_handshake(self, mechanism, version=1):
        """-> (error_code, [mechanisms])."""
        r = Reader(self.request(SASL_HANDSHAKE, version, string(mechanism)))
        err = r.i16()
        return err, r.array(lambda x: x.string())

    def sasl_authenticate(self, token, version=2):
        """-> dict(error, message, bytes, lifetime_ms)."""
        flex = version >= 2
        body = (compact_bytes(token) + NO_TAGS) if flex else bytes_(token)
        r = Reader(self.request(SASL_AUTHENTICATE, version, body))
        out = {"error": r.i16()}
        out["message"] = r.compact_string() if flex else r.string()
        out["bytes"] = r.compact_bytes() if flex else r.bytes()
        out["lifetime_ms"] = r.i64() if version >= 1 else None
        return out

    def sasl_raw(self, token, timeout=None):
        """After a v0 handshake: a bare size-prefixed token each way."""
        self.sock.sendall(struct.pack(">i", len(token)) + token)
        return self.recv_frame(timeout)

    def login(self, mechanism, user, password, version=2, handshake_version=1):
        """SaslHandshake + SaslAuthenticate (PLAIN or SCRAM-SHA-256/512).
        Returns the last SaslAuthenticate answer (error 0 when logged in),
        or for handshake_version 0 the last raw token (raises Closed on a
        failed login, as a broker just closes)."""
        err, mechs = self.sasl_handshake(mechanism, handshake_version)
        if err:
            return {"error": err, "mechanisms": mechs}
        step = (self.sasl_raw if handshake_version == 0
                else (lambda t: self.sasl_authenticate(t, version)))
        if mechanism == "PLAIN":
            return step(b"\0" + user.encode() + b"\0" + password.encode())
        sc = ScramClient(mechanism, user, password)
        res = step(sc.first())
        if handshake_version != 0:
            if res["error"]:
                return res
            res2 = step(sc.final(res["bytes"]))
            if res2["error"] == 0:
                sc.verify(res2["bytes"])
            return res2
        res2 = step(sc.final(res))
        sc.verify(res2)
        return res2


class ScramClient:
    """The client side of SCRAM-SHA-256/512 (RFC 5802), for tests."""

    def __init__(self, mechanism, user, password, nonce=None):
        import base64
        import os as _os
        self.hash = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}[mechanism]
        self.user = user.replace("=", "=3D").replace(",", "=2C")
        self.password = password.encode()
        self.nonce = nonce or base64.b64encode(_os.urandom(18)).decode()
        self.b64 = base64

    def first(self):
        self.first_bare = "n=%s,r=%s" % (self.user, self.nonce)
        return ("n,," + self.first_bare).encode()

    def final(self, server_first):
        import hashlib
        import hmac
        sf = server_first.decode()
        attrs = dict(kv.split("=", 1) for kv in sf.split(","))
        if not attrs["r"].startswith(self.nonce):
            raise ParseError("server nonce does not extend ours")
        salted = hashlib.pbkdf2_hmac(self.hash, self.password, self.b64.b64decode(attrs["s"]),
                                     int(attrs["i"]))
        client_key = hmac.new(salted, b"Client Key", self.hash).digest()
        stored = hashlib.new(self.hash, client_key).digest()
        without_proof = "c=biws,r=%s" % attrs["r"]
        self.auth_message = ",".join((self.first_bare, sf, without_proof)).encode()
        sig = hmac.new(stored, self.auth_message, self.hash).digest()
        proof = bytes(a ^ b for a, b in zip(client_key, sig))
        self.server_key = hmac.new(salted, b"Server Key", self.hash).digest()
        return ("%s,p=%s" % (without_proof, self.b64.b64encode(proof).decode())).encode()

    def verify(self, server_final):
        import hmac
        want = hmac.new(self.server_key, self.auth_message, self.hash).digest()
        got = server_final.decode()
        if got != "v=" + self.b64.b64encode(want).decode():
            raise ParseError("server signature %r does not verify" % got)


def parse_addr(addr):
    """"host:port" (the first of a comma-separated list) -> (host, port)."""
    if isinstance(addr, tuple):
        return addr
    addr = addr.split(",")[0].strip()
    host, _, port = addr.rpartition(":")
    return host.strip("[]"), int(port)


def leader_addr(bootstrap, topic, partition, timeout=10.0):
    """host:port of the broker leading topic/partition, via Metadata v1."""
    with Conn(bootstrap, timeout=timeout) as c:
        md = c.metadata([topic], version=1)
    brokers = {b["node_id"]: "%s:%d" % (b["host"], b["port"]) for b in md["brokers"]}
    for t in md["topics"]:
        if t["name"] == topic:
            for p in t["partitions"]:
                if p["partition"] == partition:
                    return brokers[p["leader"]]
    raise ParseError("no leader for %s/%d in metadata" % (topic, partition))
