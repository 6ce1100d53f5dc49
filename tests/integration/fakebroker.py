#!/usr/bin/python3
"""A one-node Kafka broker that can throttle: a test double for Sluice's
upstream, for what librdkafka's mock cluster cannot do (its Produce answers
never carry a throttle time).

    python3 fakebroker.py [--port 0]

Prints "BOOTSTRAP 127.0.0.1:PORT" when ready, then reads commands on stdin,
one per line, answering "OK ..." or "ERR ..." (as tests/mock/sl_mock.c):

    throttle <ms>        put throttle_time_ms = ms in every Produce answer
    count <topic>        OK <records stored for the topic>
    quit                 (or end of stdin) stop

Speaks just enough for librdkafka's idempotent producer: ApiVersions v0
(a v1+ request is answered UNSUPPORTED_VERSION with the v0 body, which makes
clients fall back), Metadata v0-v1, InitProducerId v0, Produce v3-v7 (no
flexible versions anywhere). Every topic exists with 3 partitions, led by
this node (id 1). Records are counted, not stored; sequence numbers are not
checked. Anything else closes the connection. Loopback only.
"""

import argparse
import socket
import struct
import sys
import threading

NODE = 1
PARTITIONS = 3
APIS = {0: (3, 7),    # Produce
        1: (4, 4),    # Fetch: listed only because librdkafka enables record
                      # batches v2 (MsgVer2) when Produce v3 AND Fetch v4
                      # are both advertised; never served
        3: (0, 1),    # Metadata
        18: (0, 0),   # ApiVersions (v0 only: clients fall back)
        22: (0, 0)}   # InitProducerId

state = {"throttle": 0, "counts": {}, "offsets": {}, "pid": 1000}
lock = threading.Lock()


class Rd:
    def __init__(self, b):
        self.b, self.o = b, 0

    def take(self, fmt):
        v = struct.unpack_from(">" + fmt, self.b, self.o)
        self.o += struct.calcsize(">" + fmt)
        return v[0]

    def string(self):
        n = self.take("h")
        if n < 0:
            return None
        s = self.b[self.o:self.o + n].decode()
        self.o += n
        return s

    def bytes_(self):
        n = self.take("i")
        if n < 0:
            return b""
        v = self.b[self.o:self.o + n]
        self.o += n
        return v


def s16(s):
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def api_versions(ver):
    body = b"".join(struct.pack(">hhh", k, lo, hi) for k, (lo, hi) in sorted(APIS.items()))
    err = 35 if ver > 0 else 0  # UNSUPPORTED_VERSION, with the v0 body
    return struct.pack(">hi", err, len(APIS)) + body


def metadata(ver, r, host, port):
    n = r.take("i")
    topics = [r.string() for _ in range(n)] if n >= 0 else []
    with lock:
        if n < 0:
            topics = sorted(state["counts"])
    out = struct.pack(">i", 1) + struct.pack(">i", NODE) + s16(host) + struct.pack(">i", port)
    if ver >= 1:
        out += struct.pack(">h", -1) + struct.pack(">i", NODE)  # rack null, controller
    out += struct.pack(">i", len(topics))
    for t in topics:
        with lock:
            state["counts"].setdefault(t, 0)
        out += struct.pack(">h", 0) + s16(t)
        if ver >= 1:
            out += b"\x00"  # is_internal
        out += struct.pack(">i", PARTITIONS)
        for p in range(PARTITIONS):
            out += struct.pack(">hii", 0, p, NODE)
            out += struct.pack(">ii", 1, NODE) + struct.pack(">ii", 1, NODE)
    return out


def init_producer_id(r):
    with lock:
        state["pid"] += 1
        pid = state["pid"]
    return struct.pack(">ihqh", 0, 0, pid, 0)


def produce(ver, r):
    r.string()  # transactional id
    acks = r.take("h")
    r.take("i")  # timeout
    out_topics = []
    for _ in range(r.take("i")):
        t = r.string()
        parts = []
        for _ in range(r.take("i")):
            p = r.take("i")
            recs = r.bytes_()
            n, o = 0, 0
            while o + 61 <= len(recs):  # RecordBatch v2 headers, back to back
                blen = struct.unpack_from(">i", recs, o + 8)[0]
                n += struct.unpack_from(">i", recs, o + 57)[0]
                o += 12 + blen
            with lock:
                base = state["offsets"].get((t, p), 0)
                state["offsets"][(t, p)] = base + n
                state["counts"][t] = state["counts"].get(t, 0) + n
            parts.append((p, base))
        out_topics.append((t, parts))
    if acks == 0:
        return None
    out = struct.pack(">i", len(out_topics))
    for t, parts in out_topics:
        out += s16(t) + struct.pack(">i", len(parts))
        for p, base in parts:
            out += struct.pack(">ihqq", p, 0, base, -1)
            if ver >= 5:
                out += struct.pack(">q", 0)
    with lock:
        out += struct.pack(">i", state["throttle"])
    return out


def serve(conn, host, port):
    f = conn.makefile("rb")
    try:
        while True:
            hdr = f.read(4)
            if len(hdr) < 4:
                return
            frame = f.read(struct.unpack(">i", hdr)[0])
            r = Rd(frame)
            key, ver, corr = r.take("h"), r.take("h"), r.take("i")
            if key == 18:  # ApiVersions: any version, answered in v0
                body = api_versions(ver)
            else:
                r.string()  # client id (request header v1)
                lo_hi = APIS.get(key)
                if key == 1 or lo_hi is None or not lo_hi[0] <= ver <= lo_hi[1]:
                    sys.stderr.write("fakebroker: api %d v%d not served; closing\n" % (key, ver))
                    return
                if key == 3:
                    body = metadata(ver, r, host, port)
                elif key == 22:
                    body = init_producer_id(r)
                else:
                    body = produce(ver, r)
                    if body is None:
                        continue
            msg = struct.pack(">i", corr) + body
            conn.sendall(struct.pack(">i", len(msg)) + msg)
    except (OSError, struct.error) as e:
        sys.stderr.write("fakebroker: connection: %r\n" % e)
    finally:
        conn.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", args.port))
    ls.listen(64)
    host, port = ls.getsockname()

    def accept():
        while True:
            try:
                c, _ = ls.accept()
            except OSError:
                return
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=serve, args=(c, host, port), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    print("BOOTSTRAP %s:%d" % (host, port), flush=True)
    for line in sys.stdin:
        w = line.split()
        if not w:
            continue
        if w[0] == "quit":
            break
        if w[0] == "throttle" and len(w) == 2 and w[1].isdigit():
            with lock:
                state["throttle"] = int(w[1])
            print("OK", flush=True)
        elif w[0] == "count" and len(w) == 2:
            with lock:
                print("OK %d" % state["counts"].get(w[1], 0), flush=True)
        else:
            print("ERR unknown command: %s" % line.strip(), flush=True)
    print("OK bye", flush=True)


if __name__ == "__main__":
    main()
