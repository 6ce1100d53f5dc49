"""Harness for Sluice's black-box tests: processes, deadlines, verification.

Each test gets an Env: a fresh sl-mock cluster and, unless the suite runs in
DIRECT mode, a fresh sluice process on a free loopback port pointed at it.
Clients use env.bootstrap; verification reads env.upstream (the mock) directly.

Nothing here sleeps to stand in for a condition: wait_for() polls a condition
until a deadline and fails with what it was waiting for.
"""

import collections
import os
import random
import select
import signal
import socket
import subprocess
import sys
import time

import kwire

SANITIZER_MARKERS = ("AddressSanitizer", "runtime error:", "LeakSanitizer")


class TestFailure(Exception):
    pass


class Skip(Exception):
    pass


def fail(msg):
    raise TestFailure(msg)


def check(cond, msg):
    if not cond:
        raise TestFailure(msg)


def eq(actual, expected, what):
    if actual != expected:
        raise TestFailure("%s: got %r, expected %r" % (what, actual, expected))


# Clean-ups for the end of the run (run.py ends with os._exit, which runs
# no atexit handlers): shared resources a test module starts itself, such
# as the Kafka 3.9 reference broker of tests_legacy.
_at_end = []


def at_end(fn):
    _at_end.append(fn)


def run_at_end():
    while _at_end:
        fn = _at_end.pop()
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - every clean-up gets its turn
            print("# clean-up %r failed: %s" % (fn, e))


def wait_for(cond, timeout, what, interval=0.02):
    """Polls cond() until it returns a true value or timeout seconds pass.
    Returns that value; fails the test naming `what` otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() >= deadline:
            fail("timed out after %.1fs waiting for %s" % (timeout, what() if callable(what) else what))
        time.sleep(interval)


# Ports for listeners the suite starts: below the kernel's ephemeral range
# (32768-60999 on Linux), which every outgoing connection and every ":0"
# listener draws from. A port taken from that range and handed on is free
# only until the next connect(): once a Sluice's own operator HTTP on :0 got
# the Kafka port its test had picked a moment before ("address already in
# use"). Each pick is a run of PORT_SPAN ports (Sluice listens on one more
# per upstream broker), never handed out twice by this process.
PORT_LOW, PORT_HIGH, PORT_SPAN = 20000, 32000, 8
_ports_given = set()
_port_rng = random.Random(os.getpid() ^ int(time.time()))


def _port_free(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port():
    for _ in range(1000):
        base = _port_rng.randrange(PORT_LOW, PORT_HIGH - PORT_SPAN)
        run = range(base, base + PORT_SPAN)
        if any(p in _ports_given for p in run) or not all(_port_free(p) for p in run):
            continue
        _ports_given.update(run)
        return base
    raise RuntimeError("no free run of %d ports in %d-%d" % (PORT_SPAN, PORT_LOW, PORT_HIGH))


def tail(path, lines=25):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return ""
    text = data.decode("utf-8", "replace").splitlines()
    return "\n".join(text[-lines:])


class LineReader:
    """Reads lines from a pipe with a deadline (no blocking readline)."""

    def __init__(self, f):
        self.fd = f.fileno()
        self.buf = b""

    def readline(self, timeout):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TestFailure("no line within %.1fs (have %r)" % (timeout, self.buf[:200]))
            r, _, _ = select.select([self.fd], [], [], left)
            if not r:
                continue
            chunk = os.read(self.fd, 4096)
            if not chunk:
                raise TestFailure("pipe closed (have %r)" % self.buf[:200])
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line.decode("utf-8", "replace")


class Mock:
    """An sl-mock process: a librdkafka mock cluster steered over stdin."""

    def __init__(self, path, logpath, brokers=3, partitions=None):
        self.logpath = logpath
        args = [path, "--brokers", str(brokers)]
        if partitions:
            args += ["--partitions", str(partitions)]
        self.log = open(logpath, "wb")
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.log)
        self.out = LineReader(self.proc.stdout)
        line = self.out.readline(15)
        if not line.startswith("BOOTSTRAP "):
            self.kill()
            fail("sl-mock printed %r instead of BOOTSTRAP" % line)
        self.bootstrap = line.split(" ", 1)[1].strip()
        self.brokers = brokers

    def cmd(self, line, expect_ok=True, timeout=15):
        """Sends one command and returns its answer line."""
        self.proc.stdin.write((line + "\n").encode())
        self.proc.stdin.flush()
        ans = self.out.readline(timeout)
        if expect_ok and ans != "OK":
            fail("sl-mock '%s' answered %r" % (line, ans))
        return ans

    def create(self, topic, partitions=3, rf=None):
        rf = min(3, self.brokers) if rf is None else rf
        self.cmd("create %s %d %d" % (topic, partitions, rf))

    def stop(self):
        if self.proc.poll() is None:
            try:
                self.cmd("quit", expect_ok=False, timeout=5)
            except (TestFailure, OSError):
                pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class Sluice:
    """A sluice process on a free loopback port, stderr captured per test."""

    def __init__(self, path, upstream, logpath, args=(), ready_timeout=20, port=None):
        """port: listen there (a restart at the same address), else a free one."""
        self.path = path
        self.logpath = logpath
        self.exit_code = None
        last = None
        for attempt in range(3):  # a free port can be taken between probe and bind
            self.port = port or free_port()
            self.addr = "127.0.0.1:%d" % self.port
            argv = [path, "--listen", self.addr, "--upstream", upstream,
                    "--log_level", "debug"] + list(args)
            # The operator surface defaults to 127.0.0.1:9644, which another
            # Sluice on the machine (a second suite, a leftover) may hold:
            # tests that do not choose a port get a free one.
            if not any(a == "--http.listen" or a.startswith("--http.listen=") for a in args):
                argv += ["--http.listen", "127.0.0.1:0"]
            self.argv = argv
            # A fresh log per test (a stale sanitizer report must not count).
            self.log = open(logpath, "ab" if attempt else "wb")
            self.log.write(("### %s\n" % " ".join(argv)).encode())
            self.log.flush()
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.log,
                                         stderr=self.log)
            try:
                self._wait_ready(ready_timeout)
                return
            except TestFailure as e:
                last = e
                if self.proc.poll() is None:
                    self.proc.kill()
                    self.proc.wait()
                self.log.close()
                # (libuv words it "address already in use")
                if "address already in use" not in tail(logpath, 50).lower():
                    break
        raise last

    def _wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        err = None
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                fail("sluice exited with %d during startup:\n%s" % (rc, tail(self.logpath)))
            try:
                with kwire.Conn(self.addr, timeout=2) as c:
                    c.api_versions(0)
                    return
            except (OSError, kwire.Closed, kwire.ParseError) as e:
                err = e
            time.sleep(0.05)
        fail("sluice not ready within %ds (last: %r):\n%s" % (timeout, err, tail(self.logpath)))

    def alive(self):
        return self.proc.poll() is None

    def signal(self, sig):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def wait_exit(self, timeout):
        try:
            self.exit_code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            fail("sluice did not exit within %.0fs after SIGTERM:\n%s"
                 % (timeout, tail(self.logpath)))
        return self.exit_code

    def stop(self, timeout=20):
        """SIGTERM, require exit code 0 and a log free of sanitizer reports."""
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                self.wait_exit(timeout)
            else:
                self.exit_code = self.proc.returncode
        finally:
            self.log.close()
        problems = self.sanitizer_reports()
        if problems:
            fail("sanitizer report in sluice log:\n%s" % problems)
        if self.exit_code != 0:
            fail("sluice exit code %r (want 0):\n%s" % (self.exit_code, tail(self.logpath)))

    def sanitizer_reports(self):
        try:
            with open(self.logpath, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return ""
        for i, line in enumerate(lines):
            if any(m in line for m in SANITIZER_MARKERS):
                return "\n".join(lines[max(0, i - 2):i + 30])
        return ""


class Env:
    """What one test runs against. Attributes:
      bootstrap  address clients use (sluice, or the upstream in DIRECT mode)
      upstream   the upstream's bootstrap, for verification and steering
      kind       "mock" (librdkafka's mock cluster), "kafka" (the suite's
                 one-node Apache Kafka) or "kafka3" (its three-node one)
      mock       Mock (kind "mock" only, else None)
      cluster    kafka_cluster.KafkaCluster (kinds "kafka*" only, else None)
      sluice     Sluice, or None in DIRECT mode
    """

    def __init__(self, cfg, name, sluice_args=(), brokers=3, kind="mock", cluster=None):
        self.cfg = cfg
        self.name = name
        self.kind = kind
        self.direct = cfg.direct
        self.logdir = cfg.logdir
        self.sluice = None
        self.sluice_args = list(sluice_args)
        self._serial = 0
        self.mock = None
        self.cluster = cluster
        if kind == "mock":
            self.mock = Mock(cfg.mock, os.path.join(cfg.logdir, name + ".mock.log"),
                             brokers=brokers)
            self.upstream = self.mock.bootstrap
        else:
            self.upstream = cluster.bootstrap
        try:
            if self.direct:
                self.bootstrap = self.upstream
            else:
                self.start_sluice()
        except BaseException:
            if self.mock:
                self.mock.stop()
            raise

    def start_sluice(self, args=None, upstream=None):
        """(Re)starts sluice on a new port with the test's flags (or args),
        producing to env.upstream (or upstream: e.g. the cluster's SASL_SSL
        listener, while the test still reads env.upstream)."""
        self.sluice = Sluice(self.cfg.sluice, upstream or self.upstream,
                             os.path.join(self.cfg.logdir, self.name + ".sluice.log"),
                             self.sluice_args if args is None else args)
        self.bootstrap = self.sluice.addr
        return self.sluice

    @property
    def sluice_log(self):
        return self.sluice.logpath if self.sluice else None

    def topic(self, hint="t", partitions=3, rf=None, config=None):
        """A fresh topic, created upstream before any client sees it (on a
        real cluster: with a leader for every partition on every node)."""
        self._serial += 1
        base = self.name.replace("_", "-").replace("@", "-")
        name = "%s-%s-%d-%04x" % (base[:40], hint, self._serial, random.getrandbits(16))
        self.create_topic(name, partitions, rf, config)
        return name

    def create_topic(self, name, partitions=3, rf=None, config=None):
        if self.mock:
            check(not config, "the mock has no topic configs")
            self.mock.create(name, partitions, rf)
        else:
            self.cluster.create_topic(name, partitions, rf, config=config)

    def require_mock(self, why="steers librdkafka's mock cluster"):
        if not self.mock:
            raise Skip(why)

    def kafka_addr(self, topic, partition):
        """Where a raw kwire request for topic/partition must go: sluice, or
        in DIRECT mode the mock broker leading the partition."""
        if self.direct:
            return kwire.leader_addr(self.upstream, topic, partition)
        return self.bootstrap

    def require_proxy(self, why="proxy-specific"):
        if self.direct:
            raise Skip(why)

    def close(self):
        """Stops sluice (checking its exit) and the mock. Raises TestFailure
        if sluice did not shut down cleanly."""
        try:
            if self.sluice:
                self.sluice.stop()
        finally:
            if self.mock:
                self.mock.stop()
            if self.cluster:
                # A test that stopped or killed a node leaves the cluster whole.
                for n in self.cluster.nodes:
                    if not n.alive():
                        n.start()


# ---------------------------------------------------------------------------
# Records: generation and byte-exact comparison


class Rec:
    """A record as a client sent it and as the upstream must hold it."""

    __slots__ = ("partition", "key", "value", "headers", "timestamp")

    def __init__(self, partition, key, value, headers, timestamp):
        self.partition = partition
        self.key = key
        self.value = value
        self.headers = list(headers)
        self.timestamp = timestamp

    def ident(self, with_ts=True):
        return (self.key, self.value, tuple(self.headers), self.timestamp if with_ts else None)

    def __repr__(self):
        return "Rec(p=%d key=%r value=%r headers=%r ts=%r)" % (
            self.partition, short(self.key), short(self.value), self.headers, self.timestamp)


def short(b):
    if b is None or len(b) <= 24:
        return b
    return b[:20] + b"...(%d)" % len(b)


def make_records(n, partitions, base_ts=None, null_header_values=True, seed=1,
                 max_value=1500):
    """n records over `partitions` partitions exercising the corners a proxy
    must keep: null vs empty key and value, duplicate and null-valued
    headers, binary bytes, explicit timestamps (not in order)."""
    rnd = random.Random(seed)
    if base_ts is None:
        base_ts = int(time.time() * 1000) - 3600 * 1000
    out = []
    for i in range(n):
        key = b"key-%d" % i
        if i % 10 == 0:
            key = None
        elif i % 10 == 1:
            key = b""
        elif i % 10 == 2:
            key = bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 40)))
        size = rnd.randrange(0, max_value)
        value = (b"value-%06d|" % i) + bytes(rnd.choice(b"abcdefgh\x00\xff") for _ in range(size))
        if i % 13 == 3:
            value = None
        elif i % 13 == 4:
            value = b""
        if key is None and value is None:
            key = b"k"
        hv_null = None if null_header_values else b""
        hdrs = [[], [("h1", b"v1"), ("h2", hv_null)],
                [("dup", b"1"), ("dup", b"2"), ("empty", b"")],
                [("bin", bytes(range(256)))]][i % 4]
        ts = base_ts + (i * 7919) % 100000
        out.append(Rec(i % partitions, key, value, hdrs, ts))
    return out


def by_partition(recs):
    out = {}
    for r in recs:
        out.setdefault(r.partition, []).append(r)
    return out


def _consumer(bootstrap):
    from confluent_kafka import Consumer
    return Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": "sluice-verify",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "earliest",
        "api.version.request": True,
        "log_level": 3,
    })


def watermarks(bootstrap, topic, partitions, timeout=10):
    """{partition: (low, high)} read from the cluster at bootstrap."""
    c = _consumer(bootstrap)
    try:
        out = {}
        for p in range(partitions):
            from confluent_kafka import TopicPartition
            out[p] = c.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)
        return out
    finally:
        c.close()


def total_high(bootstrap, topic, partitions):
    try:
        wm = watermarks(bootstrap, topic, partitions, timeout=5)
    except Exception:  # transient: broker down, metadata not there yet
        return 0
    return sum(hi for _, hi in wm.values() if hi is not None)


def read_upstream(bootstrap, topic, partitions, timeout=30):
    """Reads every record of topic from the beginning, straight from the mock.
    Returns {partition: [Rec]} in offset order, plus the offsets seen."""
    from confluent_kafka import OFFSET_BEGINNING, TIMESTAMP_CREATE_TIME, KafkaError, TopicPartition
    wm = watermarks(bootstrap, topic, partitions)
    c = _consumer(bootstrap)
    out = {p: [] for p in range(partitions)}
    try:
        todo = {p for p in range(partitions) if wm[p][1] > wm[p][0]}
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        deadline = time.monotonic() + timeout
        while todo:
            if time.monotonic() > deadline:
                fail("reading upstream %s: partitions %s not read to high watermark %s"
                     % (topic, sorted(todo), wm))
            msg = c.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    if msg.offset() >= wm[msg.partition()][1]:
                        todo.discard(msg.partition())
                    continue
                fail("reading upstream %s: %s" % (topic, msg.error()))
            p = msg.partition()
            tstype, ts = msg.timestamp()
            if tstype != TIMESTAMP_CREATE_TIME:
                fail("record at %s/%d@%d has timestamp type %d, not CreateTime"
                     % (topic, p, msg.offset(), tstype))
            r = Rec(p, msg.key(), msg.value(), msg.headers() or [], ts)
            r_off = msg.offset()
            out[p].append((r_off, r))
            if r_off + 1 >= wm[p][1]:
                todo.discard(p)
    finally:
        c.close()
    return {p: [r for _, r in sorted(v, key=lambda x: x[0])] for p, v in out.items()}


def compare_partitions(sent, got, with_ts=True, what=""):
    """Byte-exact, in-order comparison of {partition: [Rec]} maps."""
    for p in sorted(set(sent) | set(got)):
        s = sent.get(p, [])
        g = got.get(p, [])
        if len(s) != len(g):
            fail("%spartition %d: %d records upstream, %d sent" % (what, p, len(g), len(s)))
        for i, (a, b) in enumerate(zip(s, g)):
            if a.ident(with_ts) != b.ident(with_ts):
                fail("%spartition %d record %d differs:\n   sent %r\n   got  %r"
                     % (what, p, i, a, b))


def verify_upstream(env, topic, partitions, sent, with_ts=True, timeout=30):
    """Waits until the upstream holds len(sent) records (acks=0 arrives
    late), then compares every record byte for byte and in order."""
    want = len(sent)
    try:
        wait_for(lambda: total_high(env.upstream, topic, partitions) >= want, timeout,
                 lambda: "%d records upstream in %s (have %d)"
                 % (want, topic, total_high(env.upstream, topic, partitions)), interval=0.1)
    except TestFailure as e:
        # Say which records are missing (a lost record is the worst thing
        # Sluice can do; the next one to chase it needs the evidence).
        got = read_upstream(env.upstream, topic, partitions)
        fail("%s; %s" % (e, missing_report(by_partition(sent), got, with_ts)))
    got = read_upstream(env.upstream, topic, partitions)
    compare_partitions(by_partition(sent), got, with_ts)
    return got


def missing_report(sent, got, with_ts=True):
    """Which of sent ({partition: [Rec]}) are not in got, and the reverse."""
    out = []
    for p in sorted(set(sent) | set(got)):
        have = collections.Counter(r.ident(with_ts) for r in got.get(p, []))
        miss = []
        for i, r in enumerate(sent.get(p, [])):
            if have[r.ident(with_ts)] > 0:
                have[r.ident(with_ts)] -= 1
            else:
                miss.append("#%d %r" % (i, r))
        extra = sum(have.values())
        if miss or extra:
            out.append("partition %d: %d missing%s%s" % (
                p, len(miss), (" (" + ", ".join(miss[:5]) + ")") if miss else "",
                ", %d upstream not sent" % extra if extra else ""))
    return "; ".join(out) or "no record missing"


def metadata_leader(bootstrap, topic, partition, timeout=10):
    """Leader broker id of topic/partition as the cluster at bootstrap says."""
    from confluent_kafka.admin import AdminClient
    a = AdminClient({"bootstrap.servers": bootstrap, "log_level": 3})
    md = a.list_topics(topic, timeout=timeout)
    t = md.topics.get(topic)
    if t is None or t.error is not None or partition not in t.partitions:
        fail("no metadata for %s/%d: %r" % (topic, partition, t and t.error))
    return t.partitions[partition].leader


def log(msg):
    sys.stdout.write("   # %s\n" % msg)
    sys.stdout.flush()


# ---------------------------------------------------------------------------
# Test registry

TESTS = []


# Where a test can run: librdkafka's mock cluster (a fresh one per test), the
# suite's one-node Apache Kafka, its three-node one, and a one-node one in a
# network namespace of the suite's own behind a veth that tests can cap with
# tc (kafkanet; needs root). The real clusters are shared by every test of
# their kind, each test on topics of its own. A test registered for several
# runs once per upstream; names other than the mock's get "@<kind>".
UPSTREAMS = ("mock", "kafka", "kafka3", "kafkanet")


def test(name=None, direct=True, sluice_args=(), brokers=3, timeout=240, upstreams=("mock",)):
    """Registers fn(env) as a test.

    direct: also meaningful in DIRECT mode (clients straight to the upstream);
            False, or a string saying why, marks a proxy-only test, skipped there.
    sluice_args: extra sluice flags for this test.
    timeout: hard limit in seconds (the test's own deadlines come first).
    upstreams: which of UPSTREAMS to run it against.
    """
    def deco(fn):
        register(name or fn.__name__, fn, direct=direct, sluice_args=sluice_args,
                 brokers=brokers, timeout=timeout, upstreams=upstreams)
        return fn
    return deco


def register(name, fn, direct=True, sluice_args=(), brokers=3, timeout=240, upstreams=("mock",)):
    for kind in upstreams:
        if kind not in UPSTREAMS:
            raise ValueError("test %s: unknown upstream %r" % (name, kind))
        full = name if kind == "mock" else "%s@%s" % (name, kind)
        if any(t["name"] == full for t in TESTS):
            raise ValueError("duplicate test name %s" % full)
        TESTS.append(dict(name=full, fn=fn, direct=direct, sluice_args=list(sluice_args),
                          brokers=brokers, timeout=timeout, kind=kind))
