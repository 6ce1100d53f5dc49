"""TLS and SASL, on the suite's one-node Apache Kafka 4.1.1, whose SASL_SSL
listener (kafka_cluster.py: SCRAM-SHA-512, SCRAM-SHA-256, PLAIN; the
certificate of certs.py) sits beside the PLAINTEXT one the tests read from.

  upstream_sasl_ssl_<mechanism>      Sluice produces to the SASL_SSL listener
                                     (-X security.protocol=SASL_SSL ...); real
                                     clients produce through it in plaintext;
                                     the records are read back byte for byte.
  upstream_sasl_ssl_wrong_password_<mechanism>
                                     the client gets errors, not success, in
                                     bounded time; Sluice logs the upstream's
                                     authentication failure; nothing is written.
  drivers_sasl_ssl_direct_<client>   each driver's "security" settings
                                     (extclients.py) straight against the
                                     listener, no Sluice in the path: every
                                     mechanism writes, byte-exact; a wrong
                                     password and an untrusted CA do not.

Sluice links the system librdkafka. Before 2.6.1 librdkafka's SCRAM
client-final-message repeated the client nonce, which Kafka 4 refuses
(confluentinc/librdkafka#4895; Debian 12 has 2.0.2): the SCRAM cases of
Sluice's upstream and of kcat are skipped there, saying so. PLAIN covers the
path meanwhile.
"""

import ctypes
import re
import subprocess
import time

import extclients
import javaclients
import kwire
from harness import (Skip, TestFailure, check, eq, log, make_records, register, tail,
                     total_high, verify_upstream, wait_for, Rec)
from tests_clients import run_kafkajs, run_kcat_produce, seed_of
from tests_realclients import check_result

PARTITIONS = 3
N = 200
MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN")
# librdkafka 2.6.1 (0xMMmmrrpp; pp = 0xff for a release, lower for an RC).
SCRAM_FIXED = 0x020601ff
KAFKA = ("kafka",)


def name_of(mech):
    return mech.lower().replace("-", "")


def librdkafka_of(binary):
    """(version int, version string) of the librdkafka binary links."""
    p = subprocess.run(["ldd", binary], capture_output=True, text=True, timeout=30)
    m = re.search(r"librdkafka\.so\.\d+ => (\S+)", p.stdout)
    if not m:
        raise TestFailure("%s does not link librdkafka dynamically:\n%s" % (binary, p.stdout))
    lib = ctypes.CDLL(m.group(1))
    lib.rd_kafka_version.restype = ctypes.c_int
    lib.rd_kafka_version_str.restype = ctypes.c_char_p
    return lib.rd_kafka_version(), lib.rd_kafka_version_str().decode()


def require_scram_client(binary, mech, who):
    if not mech.startswith("SCRAM"):
        return
    v, s = librdkafka_of(binary)
    if v < SCRAM_FIXED:
        raise Skip("%s links librdkafka %s, whose SCRAM Kafka 4 refuses (nonce sent twice in "
                   "the client-final-message; fixed in 2.6.1, confluentinc/librdkafka#4895)"
                   % (who, s))


def sluice_to_sasl_ssl(env, mech, password=None):
    """Restarts the test's Sluice producing to the SASL_SSL listener."""
    c = env.cluster
    require_scram_client(env.cfg.sluice, mech, "sluice")
    env.sluice.stop()
    env.start_sluice(args=env.sluice_args + c.upstream_args(mech, password=password),
                     upstream=c.sasl_ssl_bootstrap)
    return env.sluice


# ---------------------------------------------------------------------------
# Sluice -> SASL_SSL upstream


def make_upstream_test(mech):
    def fn(env):
        s = sluice_to_sasl_ssl(env, mech)
        for client in ("franz", "ck2"):
            topic = env.topic(client, PARTITIONS)
            recs = make_records(N, PARTITIONS, seed=seed_of("sasl-up", mech, client))
            res = extclients.PRODUCERS[client](env.bootstrap, topic, recs,
                                               client_id="sluice-it-%s" % client, timeout=90)
            check_result(res, recs, "all", "%s through sluice" % extclients.CAPS[client]["name"])
            verify_upstream(env, topic, PARTITIONS, recs)
            log("%s: %d records through sluice to %s (%s) in %d ms"
                % (client, len(recs), env.cluster.sasl_ssl_bootstrap, mech, res["elapsed_ms"]))
        text = tail(s.logpath, 100000)
        check("upstream producer to %s " % env.cluster.sasl_ssl_bootstrap in text,
              "sluice's log does not name the SASL_SSL listener as its upstream")
        check("_AUTHENTICATION" not in text, "an upstream authentication error in sluice's log")
    return fn


# Bounds the wrong-password case: Sluice's metadata wait (about 10 s seen)
# and its upstream message timeout (3 s here).
WRONG_PASSWORD_BOUND = 30


def make_wrong_password_test(mech):
    def fn(env):
        topic = env.topic("badpw", 1)
        s = sluice_to_sasl_ssl(env, mech, password="not-" + env.cluster.sasl_users["sluice"])
        t0 = time.monotonic()
        with kwire.Conn(env.bootstrap, timeout=WRONG_PASSWORD_BOUND + 10) as k:
            md = k.metadata([topic], version=1)
            t_md = time.monotonic() - t0
            r = k.produce(topic, 0, kwire.record_batch([kwire.Record(b"k", b"must-not-arrive")]),
                          acks=-1, timeout=WRONG_PASSWORD_BOUND + 10)
        dt = time.monotonic() - t0
        tmeta = [t for t in md["topics"] if t["name"] == topic]
        log("metadata after %.1fs: %s; produce after %.1fs: error %d"
            % (t_md, tmeta, dt, r["error_code"]))
        check(r["error_code"] != 0, "produce succeeded although sluice cannot log in upstream")
        check(dt < WRONG_PASSWORD_BOUND, "the answers took %.1fs (bound %ds)"
              % (dt, WRONG_PASSWORD_BOUND))
        # A real client: no record acknowledged, within its own timeout.
        t1 = time.monotonic()
        res = extclients.ck2_produce(env.bootstrap, topic,
                                     make_records(5, 1, seed=seed_of("badpw", mech)),
                                     client_id="sluice-it-badpw", timeout=15)
        log("confluent-kafka 2 through sluice: ok %s, acked %s, after %.1fs; first error %s"
            % (res.get("ok"), res.get("acked"), time.monotonic() - t1,
               (res.get("errors") or [res.get("error")])[:1]))
        check(not res.get("acked"), "records acknowledged although sluice cannot log in upstream")
        pat = re.compile(r"upstream: _AUTHENTICATION: .*SASL authentication error")
        wait_for(lambda: pat.search(tail(s.logpath, 100000)), 10,
                 "sluice to log the upstream authentication failure")
        eq(total_high(env.upstream, topic, 1), 0, "records upstream")
        # Sluice exits only when its metadata lookups (libuv pool jobs,
        # each blocking up to 5 s in librdkafka, twice for a topic) are
        # done, and with an upstream that refuses the login every lookup
        # runs to its timeout: 35 s after SIGTERM was seen, past the
        # harness's 20 s. Not what this test is about, so it stops Sluice
        # itself with room to spare (exit status and sanitizer reports are
        # still checked) and says how long it took.
        t2 = time.monotonic()
        s.stop(timeout=120)
        log("sluice exited %.1fs after SIGTERM" % (time.monotonic() - t2))
    return fn


for _mech in MECHANISMS:
    register("upstream_sasl_ssl_%s" % name_of(_mech), make_upstream_test(_mech),
             direct="Sluice's own upstream connection", upstreams=KAFKA, timeout=240)
for _mech in ("PLAIN", "SCRAM-SHA-512"):
    register("upstream_sasl_ssl_wrong_password_%s" % name_of(_mech),
             make_wrong_password_test(_mech),
             direct="Sluice's own upstream connection", upstreams=KAFKA, timeout=180,
             sluice_args=["--upstream.message_timeout_ms=3000"])


# ---------------------------------------------------------------------------
# Each driver straight at the SASL_SSL listener


def _ext(client):
    def run(bootstrap, topic, recs, security, timeout):
        res = extclients.PRODUCERS[client](bootstrap, topic, recs, security=security,
                                           client_id="sluice-it-sec-%s" % client,
                                           timeout=timeout)
        ok = res.get("ok") and res.get("acked") == len(recs) and not res.get("errors")
        return ok, res.get("error") or (res.get("errors") or [""])[0] or "acked %s" % res.get(
            "acked")
    return run


def _java(version):
    def run(bootstrap, topic, recs, security, timeout):
        res = javaclients.java_produce(version, bootstrap, topic, recs, security=security,
                                       props={"max.block.ms": 10000}, timeout=timeout + 30)
        ok = res.get("ok") and res.get("acked") == len(recs) and not res.get("errors")
        return ok, res.get("error") or (res.get("errors") or [""])[0]
    return run


def _kafkajs(bootstrap, topic, recs, security, timeout):
    try:
        results = run_kafkajs(bootstrap, topic, recs, -1, "none", timeout=timeout + 30,
                              security=security)
    except TestFailure as e:
        return False, str(e).splitlines()[0]
    bad = [r for r in results if r.get("errorCode")]
    return not bad, "partition errors %s" % bad if bad else ""


KCAT_HEADERS = [("h1", b"v1"), ("dup", b"a"), ("dup", b"b"), ("empty", b"")]


def _kcat(bootstrap, topic, recs, security, timeout):
    # kcat takes "key:value" lines, all to one partition (see make_kcat_test).
    lines = [r.key + b":" + r.value for r in recs]
    try:
        run_kcat_produce(bootstrap, topic, 0, lines, "none", "all", security=security,
                         extra=["-X", "message.timeout.ms=%d" % (timeout * 1000)])
    except TestFailure as e:
        return False, str(e).splitlines()[0]
    return True, ""


def kcat_records(n, seed):
    return [Rec(0, b"k%d-%d" % (seed % 1000, i), b"v%d" % i, KCAT_HEADERS, None)
            for i in range(n)]


DRIVERS = {
    "ck2": _ext("ck2"), "kpy3": _ext("kpy3"), "aiokafka": _ext("aiokafka"),
    "franz": _ext("franz"), "sarama": _ext("sarama"), "kafkago": _ext("kafkago"),
    "java4": _java("4"), "java3": _java("3"), "kafkajs": _kafkajs, "kcat": _kcat,
}


def make_direct_test(client):
    def fn(env):
        if client in extclients.CAPS:
            extclients.ensure_installed()
        c = env.cluster
        run = DRIVERS[client]
        bootstrap = c.sasl_ssl_bootstrap
        mechs = list(MECHANISMS)
        if client == "kcat":
            kcat = subprocess.run(["which", "kcat"], capture_output=True, text=True).stdout.strip()
            for m in [m for m in mechs if m.startswith("SCRAM")]:
                try:
                    require_scram_client(kcat, m, "kcat")
                except Skip as e:
                    log("%s not tested: %s" % (m, e))
                    mechs.remove(m)
        for mech in mechs:
            topic = env.topic(name_of(mech), 1 if client == "kcat" else PARTITIONS)
            seed = seed_of("direct", client, mech)
            recs = (kcat_records(20, seed) if client == "kcat" else
                    make_records(20, PARTITIONS, seed=seed, null_header_values=False))
            t0 = time.monotonic()
            ok, why = run(bootstrap, topic, recs, c.security(mech), 30)
            check(ok, "%s with %s: %s" % (client, mech, why))
            verify_upstream(env, topic, 1 if client == "kcat" else PARTITIONS, recs,
                            with_ts=client != "kcat")
            log("%s: %s ok (%.1fs)" % (client, mech, time.monotonic() - t0))
        # Refusals: a wrong password, and a certificate the client must not
        # trust. Either is a failure, never a write.
        mech = mechs[0]
        bad = {"wrong password": c.security(mech, password="not-" + c.sasl_users["sluice"]),
               "untrusted CA": dict(c.security(mech), ca_file=c.certs.other_ca_file)}
        for what, sec in bad.items():
            topic = env.topic("bad", 1)
            recs = (kcat_records(3, 0) if client == "kcat" else
                    make_records(3, 1, null_header_values=False))
            t0 = time.monotonic()
            ok, why = run(bootstrap, topic, recs, sec, 20)
            log("%s, %s: refused after %.1fs: %s" % (client, what, time.monotonic() - t0,
                                                   str(why)[:160]))
            check(not ok, "%s with a %s succeeded" % (client, what))
            eq(total_high(env.upstream, topic, 1), 0, "records upstream after a %s" % what)
        if client == "ck2":
            # librdkafka cannot verify another name than the broker's host:
            # refused, not ignored.
            res = extclients.ck2_produce(bootstrap, env.topic("name", 1), make_records(1, 1),
                                         security=dict(c.security(), server_hostname="other"),
                                         timeout=30)
            check(not res.get("ok") and "unsupported" in res.get("error", ""),
                  "server_hostname for confluent-kafka: %s" % res)
        if client == "java4":
            # kafka-clients 0.10 has no PEM truststore: refused, not plaintext.
            res = javaclients.java_produce("010", bootstrap, env.topic("legacy", 1),
                                           make_records(1, 1, null_header_values=False),
                                           security=c.security())
            res["stderr"] = res.get("stderr", "")[-200:]
            check(not res.get("ok") and "unsupported" in res.get("error", ""),
                  "SASL_SSL for kafka-clients 0.10: %s" % res)
    return fn


for _client in DRIVERS:
    register("drivers_sasl_ssl_direct_%s" % _client, make_direct_test(_client),
             upstreams=KAFKA, timeout=300)


# ---------------------------------------------------------------------------
# Sluice -> SCRAM over SASL_SSL on Kafka 3.9.1: the broker that still takes
# the client-final-message of librdkafka < 2.6.1 (its nonce check is
# endsWith, Kafka 4's is equals), so Sluice's SCRAM path upstream is shown
# working on a real broker with the system librdkafka.

_k39 = {}


def kafka39_sasl_ssl():
    if "cluster" not in _k39:
        import kafka_cluster
        from harness import at_end
        c = kafka_cluster.KafkaCluster(nodes=1, version="3.9.1", name="kafka39sasl",
                                       sasl_ssl=True)
        t0 = time.monotonic()
        c.start()
        log("Apache Kafka 3.9.1 with SASL_SSL at %s, started in %.1fs"
            % (c.sasl_ssl_bootstrap, time.monotonic() - t0))
        at_end(c.stop)
        _k39["cluster"] = c
    return _k39["cluster"]


def make_upstream_scram_k39_test(mech):
    def fn(env):
        from harness import compare_partitions, by_partition, read_upstream
        c = kafka39_sasl_ssl()
        topic = "sasl39-%s-%d" % (name_of(mech), int(time.time() * 1000) % 100000)
        c.create_topic(topic, PARTITIONS)
        env.sluice.stop()
        env.start_sluice(args=env.sluice_args + c.upstream_args(mech),
                         upstream=c.sasl_ssl_bootstrap)
        recs = make_records(N, PARTITIONS, seed=seed_of("sasl39", mech))
        res = extclients.ck2_produce(env.bootstrap, topic, recs, client_id="sluice-it-k39",
                                     timeout=90)
        check_result(res, recs, "all", "confluent-kafka 2 through sluice")
        got = read_upstream(c.bootstrap, topic, PARTITIONS)
        compare_partitions(by_partition(recs), got, what="Kafka 3.9.1 over %s" % mech)
        text = tail(env.sluice.logpath, 100000)
        check("_AUTHENTICATION" not in text, "an upstream authentication error in sluice's log")
        log("%d records through sluice to Kafka 3.9.1 over SASL_SSL %s, byte-exact"
            % (len(recs), mech))
    return fn


for _mech in ("SCRAM-SHA-512", "SCRAM-SHA-256"):
    register("upstream_sasl_ssl_kafka39_%s" % name_of(_mech), make_upstream_scram_k39_test(_mech),
             direct="Sluice's own upstream connection", upstreams=KAFKA, timeout=300)
