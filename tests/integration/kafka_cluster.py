"""A real Apache Kafka cluster for the integration suite: KRaft, no
ZooKeeper, from the jars tests/kafka/fetch.sh puts in the test cache.

  c = KafkaCluster(root, nodes=3, heap_mb=320)
  c.start()                      # format once, start every node, wait ready
  c.bootstrap                    # "127.0.0.1:P1,127.0.0.1:P2,..."
  c.create_topic("t", 3, rf=3)   # waits until every partition has a leader
  c.node(2).kill()               # SIGKILL; .stop() is a clean SIGTERM
  c.node(2).start()              # same storage, same ports; waits ready
  c.stop()

Every node is a combined broker+controller (process.roles=broker,controller)
and a voter of one static quorum, so a three-node cluster keeps a quorum
with one node down. Heaps are small (serial GC) so three nodes, Sluice, the
clients and a Connect worker fit on a 2-core machine.

Nothing here sleeps in place of a condition: readiness is a Metadata answer
that lists the node (and, for topics, a leader for every partition), polled
with a deadline.

With sasl_ssl=True (the suite's one-node "kafka") each node also has a
SASL_SSL listener on another loopback port, beside the PLAINTEXT one that
everything else uses (clients, inter-broker, admin) and the CONTROLLER one:

  c = KafkaCluster(root, sasl_ssl=True).start()
  c.sasl_ssl_bootstrap           # "127.0.0.1:S1,..."
  c.sasl_users                   # {"sluice": password, "alice": password}
  c.sasl_mechanisms              # ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN")
  c.ca_file                      # the CA of its certificate (certs.get())
  c.security("SCRAM-SHA-512")    # the drivers' "security" field, as "sluice"
  c.upstream_args("PLAIN", password="wrong")   # sluice -X flags for it

Its certificate is certs.get().server (localhost, 127.0.0.1, ::1); no client
certificate is asked for. Every user can log in with each mechanism: SCRAM
credentials are written at format time (kafka-storage format --add-scram),
PLAIN ones are the listener's user_<name> JAAS options. Passwords are made
at run time. No authorizer: an authenticated user may do anything.

Admin operations the tests need and Debian's confluent-kafka 1.7 lacks
(client quotas, leader elections, reassignments) run Kafka's own command
line tools (the classes bin/kafka-configs.sh etc. run) on the same jars.
"""

import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time

from harness import free_port, tail, wait_for

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
FETCH = os.path.join(ROOT, "tests", "kafka", "fetch.sh")

LOG4J2 = """\
rootLogger.level=WARN
rootLogger.appenderRef.stderr.ref=STDERR
appender.stderr.type=Console
appender.stderr.name=STDERR
appender.stderr.target=SYSTEM_ERR
appender.stderr.layout.type=PatternLayout
appender.stderr.layout.pattern=[%d] %p %m (%c)%n
logger.server.name=kafka.server
logger.server.level=INFO
logger.raft.name=org.apache.kafka.raft
logger.raft.level=WARN
"""

# Kafka 3.x logs through reload4j (log4j 1.2 properties).
LOG4J1 = """\
log4j.rootLogger=WARN, stderr
log4j.appender.stderr=org.apache.log4j.ConsoleAppender
log4j.appender.stderr.Target=System.err
log4j.appender.stderr.layout=org.apache.log4j.PatternLayout
log4j.appender.stderr.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.server=INFO
"""
# version -> (folder of the fetched jars, logging configuration)
VERSIONS = {"4.1.1": ("broker", LOG4J2), "3.9.1": ("broker39", LOG4J1)}


class ClusterError(Exception):
    pass


# The SASL_SSL listener (sasl_ssl=True): its users, and the SCRAM
# mechanisms they have credentials for (PLAIN as well).
SASL_USERS = ("sluice", "alice")
SCRAM_MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256")


_cache = None


def jar_cache():
    """The cache folder holding broker/, clients4/, clients3/ (fetched once)."""
    global _cache
    if _cache is None:
        p = subprocess.run([FETCH], capture_output=True, text=True, timeout=900)
        if p.returncode != 0:
            raise ClusterError("tests/kafka/fetch.sh failed:\n%s" % p.stderr[-3000:])
        _cache = p.stdout.strip().splitlines()[-1]
    return _cache


def java_cmd(heap_mb=None):
    j = os.path.join(os.environ.get("JAVA_HOME", ""), "bin", "java")
    cmd = [j if os.access(j, os.X_OK) else "java"]
    if heap_mb:
        cmd += ["-Xms%dm" % min(heap_mb, 128), "-Xmx%dm" % heap_mb]
    # Serial GC and C1 only: less CPU and memory at start-up on 2 cores.
    cmd += ["-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xss512k",
            "-Djava.awt.headless=true"]
    return cmd


class NetNS:
    """A network namespace of the test's own, reached from the host over a
    veth pair with a /30 of 10.201.0.0/16, whose host end can be capped with
    tc (tbf: a token bucket whose queue makes the delay grow with the load,
    as on a saturated broker; this kernel has no netem). Needs root. Only
    the namespace's own interfaces and the host end of its veth are touched.
    """

    def __init__(self, tag="k"):
        n = (os.getpid() % 16000) * 4
        self.name = "sluice-%s-%d" % (tag, os.getpid())
        self.host_if = "slh%d" % os.getpid()
        self.ns_if = "sln%d" % os.getpid()
        base = "10.201.%d.%d" % (n // 256 % 256, n % 256)
        self.host_addr = base[:base.rindex(".") + 1] + str(n % 256 + 1)
        self.addr = base[:base.rindex(".") + 1] + str(n % 256 + 2)
        self.capped = None

    def _ip(self, *args):
        p = subprocess.run(["ip"] + list(args), capture_output=True, text=True, timeout=30)
        if p.returncode != 0:
            raise ClusterError("ip %s: %s" % (" ".join(args), p.stderr.strip()))

    def create(self):
        self.destroy()
        self._ip("netns", "add", self.name)
        try:
            self._ip("link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if)
            self._ip("link", "set", self.ns_if, "netns", self.name)
            self._ip("addr", "add", self.host_addr + "/30", "dev", self.host_if)
            self._ip("link", "set", self.host_if, "up")
            self._ip("-n", self.name, "addr", "add", self.addr + "/30", "dev", self.ns_if)
            self._ip("-n", self.name, "link", "set", self.ns_if, "up")
            self._ip("-n", self.name, "link", "set", "lo", "up")
        except ClusterError:
            self.destroy()
            raise
        return self

    def destroy(self):
        subprocess.run(["ip", "link", "del", self.host_if], capture_output=True, timeout=30)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, timeout=30)

    def prefix(self):
        return ["ip", "netns", "exec", self.name]

    def cap(self, bytes_per_sec, queue_ms=2000):
        """Caps host -> namespace traffic (what Sluice writes to the broker)
        at bytes_per_sec with a queue of up to queue_ms before drops."""
        bits = int(bytes_per_sec * 8)
        burst = max(16384, int(bytes_per_sec / 100))  # 10 ms of tokens
        p = subprocess.run(["tc", "qdisc", "replace", "dev", self.host_if, "root", "tbf",
                            "rate", "%dbit" % bits, "burst", str(burst),
                            "latency", "%dms" % queue_ms],
                           capture_output=True, text=True, timeout=30)
        if p.returncode != 0:
            raise ClusterError("tc tbf on %s: %s" % (self.host_if, p.stderr.strip()))
        self.capped = bytes_per_sec

    def uncap(self):
        subprocess.run(["tc", "qdisc", "del", "dev", self.host_if, "root"],
                       capture_output=True, timeout=30)
        self.capped = None

    def tc_stats(self):
        p = subprocess.run(["tc", "-s", "qdisc", "show", "dev", self.host_if],
                           capture_output=True, text=True, timeout=30)
        return p.stdout.strip()


class Node:
    """One broker+controller process of the cluster."""

    def __init__(self, cluster, node_id):
        self.cluster = cluster
        self.id = node_id
        self.port = cluster.base_port + node_id - 1 if cluster.base_port else free_port()
        self.controller_port = free_port()
        self.sasl_ssl_port = free_port() if cluster.sasl_ssl else None
        # In a network namespace the broker listens on the namespace's end
        # of the veth; its controller stays on the namespace's own loopback.
        self.host = cluster.netns.addr if cluster.netns else "127.0.0.1"
        self.dir = os.path.join(cluster.root, "node%d" % node_id)
        self.data = os.path.join(self.dir, "data")
        self.props = os.path.join(self.dir, "server.properties")
        self.logpath = os.path.join(self.dir, "server.log")
        self.proc = None
        self.starts = 0

    @property
    def addr(self):
        return "%s:%d" % (self.host, self.port)

    @property
    def sasl_ssl_addr(self):
        return "%s:%d" % (self.host, self.sasl_ssl_port) if self.sasl_ssl_port else None

    def write_config(self):
        c = self.cluster
        voters = ",".join("%d@127.0.0.1:%d" % (n.id, n.controller_port) for n in c.nodes)
        rf = min(3, len(c.nodes))
        props = {
            "process.roles": "broker,controller",
            "node.id": self.id,
            "controller.quorum.voters": voters,
            "listeners": "PLAINTEXT://%s:%d,CONTROLLER://127.0.0.1:%d"
                         % (self.host, self.port, self.controller_port),
            "advertised.listeners": "PLAINTEXT://%s:%d" % (self.host, self.port),
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": self.data,
            "num.partitions": 3,
            "default.replication.factor": rf,
            "min.insync.replicas": 1,
            "offsets.topic.replication.factor": rf,
            "offsets.topic.num.partitions": 5,
            "transaction.state.log.replication.factor": rf,
            "transaction.state.log.min.isr": 1,
            "transaction.state.log.num.partitions": 5,
            "share.coordinator.state.topic.replication.factor": rf,
            "share.coordinator.state.topic.min.isr": 1,
            "group.initial.rebalance.delay.ms": 0,
            "auto.create.topics.enable": "true",
            # Small segments and threads: a test cluster, not a benchmark rig.
            "num.io.threads": 4,
            "num.network.threads": 2,
            "num.recovery.threads.per.data.dir": 1,
            "log.segment.bytes": 64 * 1024 * 1024,
            "log.retention.check.interval.ms": 3600000,
            # A killed node is noticed quickly and a restarted one rejoins fast.
            "broker.session.timeout.ms": 6000,
            "broker.heartbeat.interval.ms": 500,
            "controlled.shutdown.enable": "true",
            "unclean.leader.election.enable": "false",
        }
        if c.sasl_ssl:
            props.update(c.sasl_ssl_props(self))
        props.update(c.extra_props)
        os.makedirs(self.dir, exist_ok=True)
        with open(self.props, "w") as f:
            for k, v in props.items():
                f.write("%s=%s\n" % (k, v))

    def format(self, cluster_id):
        self.write_config()
        cmd = java_cmd(256) + ["-cp", self.cluster.classpath, self.cluster.log_opt,
                               "kafka.tools.StorageTool", "format", "-t", cluster_id,
                               "-c", self.props, "--ignore-formatted"]
        for mech in SCRAM_MECHANISMS if self.cluster.sasl_ssl else ():
            for user, pw in self.cluster.sasl_users.items():
                cmd += ["--add-scram", "%s=[name=%s,password=%s]" % (mech, user, pw)]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if p.returncode != 0:
            raise ClusterError("formatting node %d failed:\n%s" % (self.id, p.stderr[-2000:]))

    def start(self, wait=True, timeout=90):
        if self.alive():
            return
        self.starts += 1
        log = open(self.logpath, "ab")
        log.write(("### start %d\n" % self.starts).encode())
        log.flush()
        prefix = self.cluster.netns.prefix() if self.cluster.netns else []
        cmd = prefix + java_cmd(self.cluster.heap_mb) + [
            "-cp", self.cluster.classpath, self.cluster.log_opt,
            "kafka.Kafka", self.props]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                     start_new_session=True)
        log.close()
        if wait:
            self.wait_ready(timeout)

    def wait_ready(self, timeout=90):
        def ready():
            if not self.alive():
                raise ClusterError("kafka node %d exited with %s:\n%s"
                                   % (self.id, self.proc.returncode, tail(self.logpath)))
            return self.id in self.cluster.live_broker_ids(via=self.addr)
        wait_for(ready, timeout, "kafka node %d to serve Metadata" % self.id, interval=0.2)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        """SIGKILL: no controlled shutdown, no flush."""
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)

    def stop(self, timeout=60):
        """SIGTERM: a controlled shutdown (leaders move away first)."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()


class KafkaCluster:
    def __init__(self, root=None, nodes=1, heap_mb=384, extra_props=None, name="kafka",
                 netns=None, base_port=None, version="4.1.1", sasl_ssl=False):
        self.name = name
        self.sasl_ssl = sasl_ssl
        if sasl_ssl:
            if netns:
                raise ClusterError("sasl_ssl: the certificate is for 127.0.0.1, not a namespace")
            import certs
            self.certs = certs.get()
            self.ca_file = self.certs.ca_file
            # Letters, digits, "-" and "_": nothing to quote in JAAS or
            # in --add-scram's [name=...,password=...].
            self.sasl_users = {u: secrets.token_urlsafe(18) for u in SASL_USERS}
            self.sasl_mechanisms = SCRAM_MECHANISMS + ("PLAIN",)
        self.base_port = base_port  # node N listens on base_port + N - 1 (None: free ports)
        self.netns = netns  # NetNS (created) or None: every node in it
        self._own_root = root is None
        self.root = root or tempfile.mkdtemp(prefix="sluice-%s-" % name)
        self.heap_mb = heap_mb
        self.extra_props = dict(extra_props or {})
        self.cache = jar_cache()
        self.version = version
        jars, self.log_config = VERSIONS[version]
        self.classpath = os.path.join(self.cache, jars, "*")
        if self.log_config is LOG4J2:
            self.log4j = os.path.join(self.root, "log4j2.properties")
            self.log_opt = "-Dlog4j2.configurationFile=" + self.log4j
        else:
            self.log4j = os.path.join(self.root, "log4j.properties")
            self.log_opt = "-Dlog4j.configuration=file:" + self.log4j
        self.nodes = [Node(self, i + 1) for i in range(nodes)]
        self.started = False

    @property
    def bootstrap(self):
        return ",".join(n.addr for n in self.nodes)

    @property
    def sasl_ssl_bootstrap(self):
        return ",".join(n.sasl_ssl_addr for n in self.nodes) if self.sasl_ssl else None

    def sasl_ssl_props(self, node):
        """The SASL_SSL listener's broker settings for node (sasl_ssl only)."""
        L = "listener.name.sasl_ssl."
        jaas = {m: "org.apache.kafka.common.security.scram.ScramLoginModule required;"
                for m in SCRAM_MECHANISMS}
        jaas["PLAIN"] = ("org.apache.kafka.common.security.plain.PlainLoginModule required "
                         + " ".join('user_%s="%s"' % u for u in self.sasl_users.items())
                         + ";")
        props = {
            "listeners": "PLAINTEXT://%s:%d,SASL_SSL://%s:%d,CONTROLLER://127.0.0.1:%d"
                         % (node.host, node.port, node.host, node.sasl_ssl_port,
                            node.controller_port),
            "advertised.listeners": "PLAINTEXT://%s:%d,SASL_SSL://%s:%d"
                                    % (node.host, node.port, node.host, node.sasl_ssl_port),
            "listener.security.protocol.map":
                "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL",
            L + "sasl.enabled.mechanisms": ",".join(self.sasl_mechanisms),
            L + "ssl.keystore.type": "PEM",
            L + "ssl.keystore.location": self.certs.server.pem_file,
            L + "ssl.client.auth": "none",
        }
        for m, j in jaas.items():
            props[L + m.lower() + ".sasl.jaas.config"] = j
        return props

    def security(self, mechanism="SCRAM-SHA-512", user="sluice", password=None):
        """The drivers' "security" field for this cluster's SASL_SSL
        listener (password: the user's unless given)."""
        return self.certs.security("SASL_SSL", mechanism=mechanism, username=user,
                                   password=self.sasl_users[user] if password is None
                                   else password)

    def upstream_args(self, mechanism="SCRAM-SHA-512", user="sluice", password=None):
        """Sluice flags (librdkafka properties) for producing to the
        SASL_SSL listener; pair with sasl_ssl_bootstrap as --upstream."""
        pw = self.sasl_users[user] if password is None else password
        return ["-X", "security.protocol=SASL_SSL", "-X", "sasl.mechanism=" + mechanism,
                "-X", "sasl.username=" + user, "-X", "sasl.password=" + pw,
                "-X", "ssl.ca.location=" + self.ca_file]

    def live_bootstrap(self):
        return ",".join(n.addr for n in self.nodes if n.alive()) or self.bootstrap

    def node(self, node_id):
        return self.nodes[node_id - 1]

    def start(self, timeout=120):
        os.makedirs(self.root, exist_ok=True)
        with open(self.log4j, "w") as f:
            f.write(self.log_config)
        cluster_id = subprocess.run(
            java_cmd(128) + ["-cp", self.classpath, self.log_opt,
                             "kafka.tools.StorageTool", "random-uuid"],
            capture_output=True, text=True, timeout=60).stdout.strip().splitlines()[-1]
        for n in self.nodes:
            if os.path.exists(n.data):
                # Kept by an earlier run whose test failed (stop(keep_data)):
                # still evidence, but formatting refuses another cluster's id.
                os.rename(n.data, "%s.kept-%d" % (n.data, int(time.time())))
            n.format(cluster_id)
        for n in self.nodes:
            n.start(wait=False)
        for n in self.nodes:
            n.wait_ready(timeout)
        # Every node must see all of them as live before tests rely on rf=3.
        wait_for(lambda: len(self.live_broker_ids()) == len(self.nodes), timeout,
                 "all %d kafka nodes registered" % len(self.nodes), interval=0.2)
        self.started = True
        return self

    def stop(self, keep_data=False):
        """Stops every node. keep_data: leave the partitions' logs on disk
        (a test on this cluster failed: they are the evidence)."""
        for n in self.nodes:
            if n.alive():
                n.proc.send_signal(signal.SIGTERM)
        for n in self.nodes:
            if n.proc is not None:
                try:
                    n.proc.wait(30)
                except subprocess.TimeoutExpired:
                    n.kill()
        if self.netns:  # the cluster owns its namespace
            self.netns.destroy()
        if keep_data or os.environ.get("SLUICE_KEEP_KAFKA"):
            return
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)
        else:  # keep the logs, drop the data
            for n in self.nodes:
                shutil.rmtree(n.data, ignore_errors=True)

    def logs(self):
        return {n.id: n.logpath for n in self.nodes}

    # --- metadata and admin through confluent-kafka (Debian's 1.7) --------

    def admin(self, via=None):
        """An AdminClient: a new one for `via`, else one kept for the cluster
        (a future outlives its call only while its client is referenced)."""
        from confluent_kafka.admin import AdminClient
        conf = {"bootstrap.servers": via or self.bootstrap, "log_level": 0,
                "socket.timeout.ms": 5000, "reconnect.backoff.max.ms": 500}
        if via:
            return AdminClient(conf)
        if getattr(self, "_admin", None) is None:
            self._admin = AdminClient(conf)
        return self._admin

    def live_broker_ids(self, via=None):
        try:
            md = self.admin(via).list_topics(timeout=3)
        except Exception:  # noqa: BLE001 - not up yet
            return set()
        return set(md.brokers)

    def topic_meta(self, topic, timeout=5):
        md = self.admin().list_topics(topic, timeout=timeout)
        return md.topics.get(topic)

    def leaders(self, topic):
        """{partition: leader id} (-1 while a partition has no leader)."""
        try:
            t = self.topic_meta(topic)
        except Exception:  # noqa: BLE001
            return {}
        if t is None or t.error is not None:
            return {}
        return {p: pm.leader for p, pm in t.partitions.items()}

    def create_topic(self, name, partitions=3, rf=None, config=None, assignment=None,
                     timeout=60):
        """Creates a topic and waits until each partition has a leader that
        every live node agrees on. assignment: [[replica ids] per partition]."""
        from confluent_kafka.admin import NewTopic
        rf = min(3, len(self.nodes)) if rf is None else rf
        if assignment:
            nt = NewTopic(name, replica_assignment=assignment, config=config or {})
            partitions = len(assignment)
        else:
            nt = NewTopic(name, num_partitions=partitions, replication_factor=rf,
                          config=config or {})
        a = self.admin()
        for f in a.create_topics([nt], operation_timeout=30, request_timeout=30).values():
            f.result(timeout)

        def ready():
            for n in self.nodes:
                if not n.alive():
                    continue
                try:
                    md = self.admin(n.addr).list_topics(name, timeout=3)
                except Exception:  # noqa: BLE001
                    return False
                t = md.topics.get(name)
                if t is None or t.error is not None or len(t.partitions) != partitions:
                    return False
                if any(pm.leader < 0 for pm in t.partitions.values()):
                    return False
            return True
        wait_for(ready, timeout, "topic %s to have leaders on every node" % name, interval=0.1)

    def alter_topic_config(self, topic, config):
        from confluent_kafka.admin import ConfigResource
        r = ConfigResource(ConfigResource.Type.TOPIC, topic, set_config=config)
        a = self.admin()
        for f in a.alter_configs([r]).values():
            f.result(30)

    # --- Kafka's own tools -------------------------------------------------

    def tool(self, cls, *args, timeout=120, input=None):
        cmd = java_cmd(256) + ["-cp", self.classpath, self.log_opt,
                               cls] + list(args)
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, input=input)
        if p.returncode != 0:
            raise ClusterError("%s %s exited %d:\n%s%s" % (cls, " ".join(args), p.returncode,
                                                           p.stdout[-1500:], p.stderr[-1500:]))
        return p.stdout

    def set_client_quota(self, client_id, producer_byte_rate):
        """A broker quota (KIP-13) on one client.id, as kafka-configs.sh
        --alter --add-config producer_byte_rate=N --entity-type clients does.
        producer_byte_rate None removes it."""
        args = ["--bootstrap-server", self.live_bootstrap(), "--alter",
                "--entity-type", "clients", "--entity-name", client_id]
        if producer_byte_rate is None:
            args += ["--delete-config", "producer_byte_rate"]
            try:
                return self.tool("kafka.admin.ConfigCommand", *args)
            except ClusterError as e:
                if "Invalid config(s): producer_byte_rate" in str(e):
                    return ""  # there was none
                raise
        args += ["--add-config", "producer_byte_rate=%d" % producer_byte_rate]
        return self.tool("kafka.admin.ConfigCommand", *args)

    def reassign(self, topic, assignment):
        """Moves replicas: assignment {partition: [replica ids]} (the first
        is the preferred leader); waits until the reassignment is done."""
        doc = {"version": 1, "partitions": [
            {"topic": topic, "partition": p, "replicas": r} for p, r in assignment.items()]}
        path = os.path.join(self.root, "reassign-%s.json" % topic)
        with open(path, "w") as f:
            json.dump(doc, f)
        cls = "org.apache.kafka.tools.reassign.ReassignPartitionsCommand"
        self.tool(cls, "--bootstrap-server", self.live_bootstrap(),
                  "--reassignment-json-file", path, "--execute")
        def done():  # one JVM per poll: --verify prints every partition's state
            out = self.tool(cls, "--bootstrap-server", self.live_bootstrap(),
                            "--reassignment-json-file", path, "--verify")
            return "is completed" in out and "still in progress" not in out
        wait_for(done, 120, "reassignment of %s" % topic, interval=1)

    def elect_preferred(self, topic, partition):
        """Preferred leader election for one partition (kafka-leader-election.sh)."""
        return self.tool("org.apache.kafka.tools.LeaderElectionCommand",
                         "--bootstrap-server", self.live_bootstrap(),
                         "--election-type", "PREFERRED", "--topic", topic,
                         "--partition", str(partition))


def main():
    """Runs a cluster in the foreground until SIGINT/SIGTERM (deploy/try.sh
    --kafka): prints "BOOTSTRAP <addresses>" once every node serves."""
    import argparse
    ap = argparse.ArgumentParser(description="A local Apache Kafka (KRaft) for trying Sluice")
    ap.add_argument("--nodes", type=int, default=1)
    ap.add_argument("--port", type=int, default=None, help="first node's port (default: free)")
    ap.add_argument("--dir", default=None, help="data and logs (default: a new temp folder)")
    a = ap.parse_args()
    c = KafkaCluster(root=a.dir, nodes=a.nodes, base_port=a.port, heap_mb=512, name="try")
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    try:
        c.start()
        print("BOOTSTRAP %s" % c.bootstrap, flush=True)
        print("kafka: %d node(s), logs in %s" % (a.nodes, c.root), flush=True)
        while not stop and all(n.alive() for n in c.nodes):
            time.sleep(0.2)
    finally:
        c.stop()


if __name__ == "__main__":
    main()
