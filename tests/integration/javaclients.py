"""Java clients for the integration tests: Apache Kafka's own producer and a
Kafka Connect worker, on the pinned jars of tests/kafka/pom.xml.

  java_produce("4", bootstrap, topic, recs, acks="all", codec="zstd")
      -> {"ok": True, "acked": N, "errors": [...], "offsets": [...], ...}
  w = ConnectWorker(kafka_bootstrap, sluice_addr, workdir)
  w.create_connector("seq", {"topic": t, "tasks.max": 3, "records.per.task": 1000})
  w.wait_tasks_running("seq", 3, 60)
  w.stop()

ensure_built() runs tests/java/build.sh (which runs tests/kafka/fetch.sh)
once per process; both functions above call it.

java_produce: tests/java/ProduceDriver.java, one JVM per call
(-Xmx128m -XX:+UseSerialGC -XX:TieredStopAtLevel=1), on kafka-clients 4.1.1
("4") or 3.9.1 ("3") with slf4j-simple at WARN to stderr. The driver sets
ByteArraySerializer, acks, compression.type, delivery.timeout.ms = 30000,
request.timeout.ms = 15000, max.block.ms = 30000, enable.idempotence only
when idempotent is not None (the clients' default is true with acks=all;
true with acks 0/1 is a ConfigException: ok False, stage "construct"),
client.id and transactional.id when given; props go on top of all that.

ConnectWorker: org.apache.kafka.connect.cli.ConnectDistributed (4.1.1) on
the broker classpath, a group of one per worker, its config/offset/status
topics (<name>-configs/-offsets/-status, replication factor 1, one
partition each) on the real cluster; plugin.path = the folder holding
sluice-seq-source.jar (dev.sluice.test.SeqSourceConnector, found through
its ServiceLoader manifest: plugin.discovery=service_load, no reflective
classpath scan); ByteArrayConverter as key, value and header converter;
offset.flush.interval.ms=1000; scheduled.rebalance.max.delay.ms=0; REST on
a free loopback port; -Xmx256m serial GC, C1 only, a class data sharing
archive after the first clean stop; log4j2 INFO to <workdir>/<name>.log.
The worker's own clients (group, config/offset/status topics, admin) use
bootstrap.servers, the real cluster; only the source tasks' producers get
producer.bootstrap.servers (checked: a forwarder on that address saw only
connector-producer-<name>-0..2 connect).

Connect forces on every source task producer (Worker.baseProducerConfigs),
before the worker's producer.* and the connector's producer.override.*
(policy All, the default, allows any):
  client.id = connector-producer-<connector>-<task>, acks = all,
  enable.idempotence = false, max.in.flight.requests.per.connection = 1,
  delivery.timeout.ms = 2147483647, max.block.ms = 9223372036854775807,
  ByteArraySerializer (linger.ms, batch.size, compression: client defaults)
so a task blocks forever on a full buffer and retries retriable produce
errors forever (a stall, not a FAILED task); a non-retriable one (e.g.
RecordTooLargeException) fails the task (errors.tolerance=none).

Measured on the 2-core test machine, one local broker (and someone else's
cluster busy alongside):
  java_produce, 200 records: 0.9-2 s wall (elapsed_ms 0.7-1.7 s); of that
    ~0.8 s is JVM start + producer construct/close with nothing to send
    (elapsed_ms ~0.35 s), the rest the cold first metadata and produce
    round trips. Transactional, 200 records: elapsed_ms 1.3-2.6 s. max.block
    bounds a refused initTransactions: elapsed_ms ~= construct + max.block.ms.
  ConnectWorker start to GET /health 200: 4-5 s without the CDS archive
    (10 s seen once, cold), ~2.4 s with it; create_connector to 3 tasks
    RUNNING 0.4-0.7 s; 3 x 2000 records of 100 B in Kafka ~1.1 s after
    create; delete_connector ~0.4 s; stop() 0.7-1.4 s (exit 143), ~5-6 s
    the once it writes the archive. A worker started in the group of a
    killed one has its tasks RUNNING ~8 s after start (they resume from the
    committed source offsets: repeats, no gaps).
"""

import base64
import json
import os
import random
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
import zlib

from harness import fail, free_port, tail

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BUILD = os.path.join(ROOT, "tests", "java", "build.sh")

SEQ_CONNECTOR = "dev.sluice.test.SeqSourceConnector"
BYTES_CONVERTER = "org.apache.kafka.connect.converters.ByteArrayConverter"

_cache = None


def ensure_built():
    """Fetches the jars and compiles tests/java once per process; returns the
    cache folder (holding broker/, clients4/, clients3/, java-build/)."""
    global _cache
    if _cache is None:
        if not shutil.which("java") or not shutil.which("javac"):
            fail("java/javac not found: deploy/setup-deps.sh installs default-jdk-headless")
        p = subprocess.run([BUILD], capture_output=True, text=True, timeout=900)
        if p.returncode != 0:
            fail("tests/java/build.sh exit %d:\n%s" % (p.returncode, p.stderr[-3000:]))
        _cache = p.stdout.strip().splitlines()[-1]
    return _cache


def java_cmd(heap="128m", c1_only=True):
    """java with a small heap and serial GC; C1 only starts faster, which is
    what a short-lived client needs."""
    cmd = ["java", "-Xmx" + heap, "-XX:+UseSerialGC", "-Xss512k", "-Djava.awt.headless=true"]
    if c1_only:
        cmd.append("-XX:TieredStopAtLevel=1")
    return cmd


def b64(b):
    return None if b is None else base64.b64encode(b).decode()


# ---------------------------------------------------------------------------
# The Java producer (tests/java/ProduceDriver.java)


def java_produce(version, bootstrap, topic, recs, acks="all", codec="none", idempotent=None,
                 client_id=None, transactional_id=None, props=None, timeout=120,
                 security=None):
    """Produces recs (harness.Rec: explicit partition and timestamp, headers
    in order) with the Java producer of kafka-clients 4.x (version "4"),
    3.x ("3") or 0.10.x ("010": LegacyProduceDriver, Produce v2 with
    message format v1; no headers, idempotence or transactions), then
    flushes (or commits, with transactional_id).

    Returns the driver's answer plus its stderr tail under "stderr":
      {"ok": True, "acked": N, "errors": ["partition P: <class>: <msg>", ...],
       "offsets": [offset or -1 per record, input order], "elapsed_ms": n,
       "client_version": "4.1.1"}
      {"ok": False, "stage": "construct"|"initTransactions"|...|"commitTransaction",
       "error": "<class>: <msg>", "elapsed_ms": n, "stage_ms": n, ...}
    elapsed_ms counts from just before the producer is constructed (~0.35 s
    of it class loading), stage_ms only the stage that failed.
    security: the drivers' optional "security" field (see extclients.py):
    security.protocol, sasl.mechanism, sasl.jaas.config (PlainLoginModule,
    ScramLoginModule), ssl.truststore.type=PEM and the client certificate as
    ssl.keystore.certificate.chain / ssl.keystore.key; "010" takes only
    PLAINTEXT and SASL_PLAINTEXT (no PEM stores before 2.7).
    Fails the test only when the driver gives no answer (crash, timeout)."""
    version = str(version)
    if version not in ("4", "3", "010"):
        raise ValueError("java_produce version must be '4', '3' or '010', not %r" % version)
    main = "LegacyProduceDriver" if version == "010" else "ProduceDriver"
    cache = ensure_built()
    acks = {-1: "all", "-1": "all"}.get(acks, str(acks))
    req = {"brokers": bootstrap, "topic": topic, "acks": acks, "compression": codec,
           "idempotent": idempotent, "client_id": client_id, "timeout_ms": 30000,
           "transactional_id": transactional_id,
           "props": {k: str(v) for k, v in (props or {}).items()},
           "records": [{"partition": r.partition, "key": b64(r.key), "value": b64(r.value),
                        "headers": [[k, b64(v)] for k, v in r.headers],
                        "timestamp": r.timestamp} for r in recs]}
    if security is not None:
        req["security"] = security
    cp = os.pathsep.join([os.path.join(cache, "clients" + version, "*"),
                          os.path.join(cache, "java-build", "clients" + version)])
    cmd = java_cmd("128m") + ["-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
                              "-Dorg.slf4j.simpleLogger.logFile=System.err",
                              "-cp", cp, main]
    try:
        p = subprocess.run(cmd, input=json.dumps(req), capture_output=True, text=True,
                           timeout=timeout)
    except subprocess.TimeoutExpired as e:
        err = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else e.stderr
        fail("ProduceDriver (clients %s) no answer within %ds; stderr:\n%s"
             % (version, timeout, (err or "")[-3000:]))
    try:
        out = json.loads(p.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        fail("ProduceDriver (clients %s) exit %d, no JSON answer; stderr:\n%s"
             % (version, p.returncode, p.stderr[-3000:]))
    out["stderr"] = p.stderr[-3000:]
    return out


# ---------------------------------------------------------------------------
# Kafka Connect (distributed worker + tests/java/SeqSourceConnector.java)

LOG4J2 = """\
rootLogger.level={level}
rootLogger.appenderRef.out.ref=OUT
appender.out.type=Console
appender.out.name=OUT
appender.out.target=SYSTEM_OUT
appender.out.layout.type=PatternLayout
appender.out.layout.pattern=[%d] %p %m (%c{{1}})%n
logger.jetty.name=org.eclipse.jetty
logger.jetty.level=WARN
logger.jersey.name=org.glassfish
logger.jersey.level=WARN
logger.reflections.name=org.reflections
logger.reflections.level=ERROR
"""


EXAMPLE_PROPERTIES = os.path.join(ROOT, "deploy", "connect-worker.example.properties")


def read_properties(path):
    """key=value lines of a Java properties file (no continuations)."""
    out = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in "#!":
                continue
            k, _, v = line.partition("=")
            out[k.strip()] = v.strip()
    return out


class ConnectWorker:
    """A Kafka Connect distributed worker (a group of one) whose source task
    producers go to producer_bootstrap while everything else of the worker
    (group membership, config/offset/status topics) goes to kafka_bootstrap.

      w = ConnectWorker(kafka, sluice_addr, workdir, producer_props={"linger.ms": 5})
      w.rest        "http://127.0.0.1:<port>"
      w.name        group.id and prefix of its topics, unique per worker
      w.logpath     <workdir>/<name>.log (stdout, stderr and log4j2)

    producer_bootstrap: None sends the tasks straight to kafka_bootstrap.
    producer_props: extra producer.* settings (without the prefix).
    worker_props: any worker setting, applied last.
    Startup waits for GET /health to answer 200 (the herder has started and
    joined its group), polled with a deadline."""

    def __init__(self, kafka_bootstrap, producer_bootstrap, workdir, producer_props=None,
                 worker_props=None, heap="256m", name=None, ready_timeout=120,
                 log_level="INFO", cds=True):
        self.cache = ensure_built()
        self.plugin_path = os.path.join(self.cache, "java-build", "connect-plugins")
        self.kafka_bootstrap = kafka_bootstrap
        self.producer_bootstrap = producer_bootstrap
        self.name = name or "sluice-connect-%d-%04x" % (os.getpid(), random.getrandbits(16))
        self.workdir = workdir
        os.makedirs(workdir, exist_ok=True)
        self.logpath = os.path.join(workdir, self.name + ".log")
        self.log4j = os.path.join(workdir, self.name + ".log4j2.properties")
        with open(self.log4j, "w") as f:
            f.write(LOG4J2.format(level=log_level))
        self.producer_props = dict(producer_props or {})
        self.worker_props = dict(worker_props or {})
        self.heap = heap
        self.cds = cds
        self._cds_tmp = None
        self.proc = None
        self.started_in = None
        last = None
        for attempt in range(3):  # a free port can be taken between probe and bind
            self.port = free_port()
            self.rest = "http://127.0.0.1:%d" % self.port
            try:
                self._start(ready_timeout, append=attempt > 0)
                return
            except BaseException as e:
                last = e
                self.kill()
                if "Address already in use" not in tail(self.logpath, 200):
                    raise
        raise last

    def _config(self):
        """deploy/connect-worker.example.properties (the README's example),
        with this worker's addresses, names and the settings of a test
        worker on a one-node cluster on top."""
        n = self.name
        props = read_properties(EXAMPLE_PROPERTIES)
        props.update({
            "bootstrap.servers": self.kafka_bootstrap,
            "producer.bootstrap.servers": self.producer_bootstrap or self.kafka_bootstrap,
            "group.id": n,
            "config.storage.topic": n + "-configs",
            "offset.storage.topic": n + "-offsets",
            "status.storage.topic": n + "-status",
            "config.storage.replication.factor": 1,
            "offset.storage.replication.factor": 1,
            "status.storage.replication.factor": 1,
            "offset.storage.partitions": 1,
            "status.storage.partitions": 1,
            "listeners": "http://127.0.0.1:%d" % self.port,
            "rest.advertised.host.name": "127.0.0.1",
            "rest.advertised.port": self.port,
            "plugin.path": self.plugin_path,
            "plugin.discovery": "service_load",
            # Source offsets committed every second (default 60 s), so a
            # restarted task resumes close to where it was.
            "offset.flush.interval.ms": 1000,
            # A group of one: no waiting for a departed member to come back.
            "scheduled.rebalance.max.delay.ms": 0,
        })
        for k, v in self.producer_props.items():
            props["producer." + k] = v
        props.update(self.worker_props)
        return props

    def _start(self, ready_timeout, append=False):
        self.props_path = os.path.join(self.workdir, self.name + ".properties")
        with open(self.props_path, "w") as f:
            for k, v in self._config().items():
                f.write("%s=%s\n" % (k, v))
        cmd = java_cmd(self.heap) + self._cds_flags() + [
            "-Dlog4j2.configurationFile=" + self.log4j,
            "-cp", os.path.join(self.cache, "broker", "*"),
            "org.apache.kafka.connect.cli.ConnectDistributed", self.props_path]
        log = open(self.logpath, "ab" if append else "wb")
        log.write(("### %s\n" % " ".join(cmd)).encode())
        log.flush()
        t0 = time.monotonic()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                     start_new_session=True)
        log.close()
        deadline = t0 + ready_timeout
        last = None
        while True:
            rc = self.proc.poll()
            if rc is not None:
                fail("Connect worker exited with %d during startup:\n%s"
                     % (rc, tail(self.logpath, 40)))
            try:
                code, _ = self._http("GET", "/health", timeout=5)
                if code == 200:
                    break
                last = "HTTP %d" % code
            except OSError as e:
                last = repr(e)
            if time.monotonic() > deadline:
                fail("Connect worker REST not ready within %ds (last: %s):\n%s"
                     % (ready_timeout, last, tail(self.logpath, 40)))
            time.sleep(0.1)
        self.started_in = time.monotonic() - t0

    def _cds_flags(self):
        """Class data sharing: the first worker of a JVM + jar set dumps the
        classes it loaded when stopped cleanly (-XX:ArchiveClassesAtExit,
        ~50 MB, ~4 s more on that stop); later workers map that archive and
        start ~2 s faster. The name hashes the jars and the JVM, so a changed
        classpath or JDK gets a new archive instead of a mismatching one."""
        self._cds_tmp = None
        if not self.cds:
            return []
        h = zlib.crc32(os.path.realpath(shutil.which("java")).encode())
        for d in (os.path.join(self.cache, "broker"), self.plugin_path):
            for f in sorted(os.listdir(d)):
                st = os.stat(os.path.join(d, f))
                h = zlib.crc32(("%s %d %d" % (f, st.st_size, st.st_mtime_ns)).encode(), h)
        h = zlib.crc32(self.heap.encode(), h)
        self._cds = os.path.join(self.cache, "java-build", "connect-worker-%08x.jsa" % h)
        if os.path.exists(self._cds):
            return ["-XX:SharedArchiveFile=" + self._cds]
        self._cds_tmp = "%s.%d-%s.tmp" % (self._cds, os.getpid(), self.name)
        # (-Xlog: the dump's warnings about classes it skips are noise.)
        return ["-XX:ArchiveClassesAtExit=" + self._cds_tmp, "-Xlog:cds=error"]

    def _cds_done(self, clean):
        """Keeps a dumped archive after a clean exit, drops it otherwise."""
        tmp, self._cds_tmp = self._cds_tmp, None
        if tmp and os.path.exists(tmp):
            if clean and os.path.getsize(tmp) > 0:
                os.replace(tmp, self._cds)
                # Archives of older jar sets are dead weight (~50 MB each).
                d = os.path.dirname(self._cds)
                for f in os.listdir(d):
                    if (f.startswith("connect-worker-") and f.endswith(".jsa")
                            and f != os.path.basename(self._cds)):
                        os.unlink(os.path.join(d, f))
            else:
                os.unlink(tmp)

    # -- REST ---------------------------------------------------------------

    def _http(self, method, path, body=None, timeout=30):
        """(status, parsed JSON or None); HTTP errors are returned, not raised."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.rest + path, data=data, method=method,
                                     headers={"Content-Type": "application/json",
                                              "Accept": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                code, raw = r.status, r.read()
        except urllib.error.HTTPError as e:
            code, raw = e.code, e.read()
        try:
            return code, json.loads(raw) if raw else None
        except ValueError:
            return code, raw.decode(errors="replace")

    def _call(self, method, path, body=None, ok=(200, 201, 204), timeout=60, allow=()):
        """Retries while the worker answers 409 (rebalance in progress) or
        503/500 "request timed out" during startup; fails on anything else."""
        deadline = time.monotonic() + timeout
        while True:
            code, js = self._http(method, path, body)
            if code in ok or code in allow:
                return code, js
            if code not in (409, 500, 503) or time.monotonic() > deadline:
                fail("Connect %s %s: HTTP %d %s\n%s"
                     % (method, path, code, js, tail(self.logpath, 20)))
            time.sleep(0.2)

    def create_connector(self, name, config, timeout=60):
        """Creates (or reconfigures) connector `name`; connector.class defaults
        to SeqSourceConnector. Values are sent as strings. Returns Connect's
        answer ({"name", "config", "tasks", "type"})."""
        cfg = {"connector.class": SEQ_CONNECTOR}
        cfg.update({k: str(v) for k, v in config.items()})
        _, js = self._call("PUT", "/connectors/%s/config" % name, cfg, timeout=timeout)
        return js

    def connector_status(self, name):
        """GET /connectors/<name>/status: {"connector": {"state", ...},
        "tasks": [{"id", "state", "trace"?}], ...}, or None if unknown."""
        code, js = self._call("GET", "/connectors/%s/status" % name, allow=(404,))
        return None if code == 404 else js

    def wait_tasks_running(self, name, n, timeout=60):
        """Waits until the connector and exactly n tasks are RUNNING; fails at
        once if the connector or a task is FAILED. Returns the status."""
        deadline = time.monotonic() + timeout
        st = None
        while True:
            st = self.connector_status(name)
            if st:
                failed = [t for t in st.get("tasks", []) if t.get("state") == "FAILED"]
                if st["connector"].get("state") == "FAILED" or failed:
                    trace = (failed[0] if failed else st["connector"]).get("trace", "")
                    fail("connector %s failed: %s\n%s" % (name, _states(st), trace[:3000]))
                tasks = st.get("tasks", [])
                if (st["connector"].get("state") == "RUNNING" and len(tasks) == n
                        and all(t.get("state") == "RUNNING" for t in tasks)):
                    return st
            if self.proc.poll() is not None:
                fail("Connect worker exited with %d:\n%s"
                     % (self.proc.returncode, tail(self.logpath, 40)))
            if time.monotonic() > deadline:
                fail("connector %s: %d tasks not RUNNING within %ds (status: %s)"
                     % (name, n, timeout, _states(st) if st else "unknown"))
            time.sleep(0.1)

    def restart_connector(self, name, include_tasks=True):
        self._call("POST", "/connectors/%s/restart?includeTasks=%s"
                   % (name, "true" if include_tasks else "false"), ok=(200, 202, 204))

    def delete_connector(self, name):
        """Deletes the connector (its tasks stop); unknown names are fine."""
        self._call("DELETE", "/connectors/%s" % name, allow=(404,))

    @staticmethod
    def task_client_id(connector, task):
        """client.id Connect gives the producer of task `task`."""
        return "connector-producer-%s-%d" % (connector, task)

    # -- process ------------------------------------------------------------

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=30):
        """SIGTERM and wait: Connect stops its tasks (committing offsets) and
        leaves the group. Returns the exit status (143 after SIGTERM is the
        JVM's normal answer); fails if it does not exit within timeout."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                fail("Connect worker did not exit within %ds of SIGTERM:\n%s"
                     % (timeout, tail(self.logpath, 40)))
        self._cds_done(self.proc.returncode in (0, 143))
        return self.proc.returncode

    def kill(self):
        """SIGKILL, no cleanup (its tasks' producers vanish mid-stream)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._cds_done(False)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if exc[0] is None:
            self.stop()
        else:
            self.kill()


def _states(st):
    return "connector %s, tasks %s" % (
        st["connector"].get("state"),
        ["%s:%s" % (t.get("id"), t.get("state")) for t in st.get("tasks", [])])
