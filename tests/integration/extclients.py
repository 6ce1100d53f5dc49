"""Kafka producer clients outside Debian's packages: franz-go, sarama and kafka-go (tests/go),
confluent-kafka 2.x, aiokafka and kafka-python 3.x (tests/py), each driven by a small program
with one JSON contract (see tests/go/produce/main.go), installed pinned into
the test cache by deploy/setup-clients.sh.

    res = franz_produce(env.bootstrap, topic, recs, acks="all", codec="zstd")
    check(res["ok"] and res["acked"] == len(recs), ...)

Each *_produce() runs ensure_installed() first and returns the driver's
answer as a dict, plus "returncode" and "stderr" (its tail):
    {"ok": True, "acked": N, "errors": [...], "offsets": [offset or -1, ...],
     "elapsed_ms": n}   or   {"ok": False, "error": "...", "elapsed_ms": n}
It fails the test (harness.fail) only when the driver gave no answer at all
or recs need what CAPS says the client lacks.

security=: the request's optional "security" field (TLS, SASL), e.g.
cluster.security("SCRAM-SHA-512") or certs.get().security("SSL", client=...):
  {"protocol": "SSL"|"SASL_SSL"|"SASL_PLAINTEXT"|"PLAINTEXT",
   "mechanism": "PLAIN"|"SCRAM-SHA-256"|"SCRAM-SHA-512", "username", "password",
   "ca_file", "cert_file", "key_file" (PEM), "server_hostname"}
A driver that cannot do what it asks answers ok: false with "unsupported"
in the error, never falls back to plaintext; CAPS[client]["sasl"] lists the
mechanisms each one has (checked against Kafka 4.1.1's SASL_SSL listener by
tests_security.drivers_sasl_ssl_direct), "server_hostname" whether it can
verify another name than the broker address's host.

Standard library only: runs under Debian's /usr/bin/python3 like the suite;
the Python clients run in the cache's venv, never in this interpreter.
"""

import base64
import json
import os
import subprocess
import threading

try:
    from harness import fail
except ImportError:  # used on its own, outside the suite
    def fail(msg):
        raise RuntimeError(msg)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SETUP = os.path.join(ROOT, "deploy", "setup-clients.sh")
PY_DIR = os.path.join(ROOT, "tests", "py")


def cache_dir():
    """The folder deploy/setup-clients.sh installs into."""
    c = os.environ.get("SLUICE_TEST_CACHE")
    if c:
        return c
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(xdg, "sluice-test")


ALL_CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]

# What each client can express and how it behaves by default, as verified
# against Apache Kafka 4.1.1 (see the drivers' header comments):
#   codecs             compression names the driver accepts
#   null_key, null_value, null_header_value, empty_header_value,
#   dup_headers        record corners it keeps (all three keep all of them)
#   idempotent_default what "idempotent": None means with acks=all
#   idempotence       False: the client has no idempotent producer (default True)
#   idempotent_needs_acks_all  idempotent=True with acks 0/1 is refused (ok: False)
#   acks0_offsets      whether offsets are known with acks=0 (never: -1)
#   produce_max        highest Produce version the client speaks; it sends
#                      min(this, the broker's) (Kafka 4.1.1 offers v3..v13)
#   skips_codec_if_larger  sends a batch uncompressed when compressing grows it
#   bootstrap_failure  "records": an unreachable broker fails every record
#                      (ok: True, acked 0, after timeout_ms); "ok_false": the
#                      run fails at once (ok: False)
#   sasl               SASL mechanisms of the "security" field it can do
#   server_hostname    whether it can verify the broker's certificate against
#                      another name than the dialled host (else refused)
SASL_ALL = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
CAPS = {
    "franz": {
        "name": "franz-go v1.22.3",
        "codecs": list(ALL_CODECS),
        "null_key": True, "null_value": True,
        "null_header_value": True, "empty_header_value": True, "dup_headers": True,
        "idempotent_default": True,
        "idempotent_needs_acks_all": True,
        "acks0_offsets": False,
        "produce_max": 13,
        "skips_codec_if_larger": True,
        "bootstrap_failure": "records",
        "sasl": SASL_ALL, "server_hostname": True,
    },
    "sarama": {
        "name": "sarama v1.61.1",
        "codecs": list(ALL_CODECS),
        "null_key": True, "null_value": True,
        "null_header_value": True, "empty_header_value": True, "dup_headers": True,
        "idempotent_default": False,
        "idempotent_needs_acks_all": True,
        "acks0_offsets": False,
        "produce_max": 9,  # its default Version, V2_8_0_0; props.kafka_version moves it
        "skips_codec_if_larger": False,
        "bootstrap_failure": "ok_false",
        "sasl": SASL_ALL, "server_hostname": True,
    },
    "ck2": {
        "name": "confluent-kafka 2.16.1 (librdkafka 2.16.0)",
        "codecs": list(ALL_CODECS),
        "null_key": True, "null_value": True,
        "null_header_value": True, "empty_header_value": True, "dup_headers": True,
        "idempotent_default": False,
        "idempotent_needs_acks_all": True,
        "acks0_offsets": False,
        "produce_max": 10,
        "skips_codec_if_larger": True,
        "bootstrap_failure": "records",
        "sasl": SASL_ALL, "server_hostname": False,
    },
    "kafkago": {
        "name": "segmentio/kafka-go v0.4.51",
        "codecs": list(ALL_CODECS),
        "null_key": True, "null_value": True,
        "null_header_value": True, "empty_header_value": True, "dup_headers": True,
        "idempotent_default": False,
        "idempotence": False,  # no idempotent producer at all
        "idempotent_needs_acks_all": True,
        "acks0_offsets": False,
        "produce_max": 7,
        "skips_codec_if_larger": False,
        "bootstrap_failure": "records",
        "sasl": SASL_ALL, "server_hostname": True,
    },
    "kpy3": {
        "name": "kafka-python 3.0.12",
        "codecs": list(ALL_CODECS),
        "null_key": True, "null_value": True,
        "null_header_value": False, "empty_header_value": True, "dup_headers": True,
        "idempotent_default": True,
        "idempotent_needs_acks_all": True,
        "acks0_offsets": False,
        "produce_max": 13,
        "skips_codec_if_larger": False,
        "bootstrap_failure": "ok_false",
        "sasl": SASL_ALL, "server_hostname": False,
    },
    "aiokafka": {
        "name": "aiokafka 0.14.0",
        "codecs": list(ALL_CODECS),
        "null_key": True, "null_value": True,
        "null_header_value": True, "empty_header_value": True, "dup_headers": True,
        "idempotent_default": False,
        "idempotent_needs_acks_all": True,
        "acks0_offsets": False,
        "produce_max": 7,
        "skips_codec_if_larger": False,
        "bootstrap_failure": "ok_false",
        "sasl": SASL_ALL, "server_hostname": False,
    },
}

_installed = None  # None: not tried; "" ok; else the error text
_install_lock = threading.Lock()


def ensure_installed():
    """Runs deploy/setup-clients.sh once per process (it installs only what
    is missing); fails the test with its output when it fails, then and on
    every later call."""
    global _installed
    with _install_lock:
        if _installed is None:
            p = subprocess.run(["bash", SETUP], capture_output=True, text=True, timeout=1800)
            _installed = "" if p.returncode == 0 else (
                "deploy/setup-clients.sh exit %d:\n%s%s"
                % (p.returncode, p.stdout[-2000:], p.stderr[-3000:]))
    if _installed:
        fail(_installed)


def _b64(b):
    return None if b is None else base64.b64encode(b).decode()


def _acks(acks):
    a = str(acks)
    if a in ("all", "-1"):
        return "all"
    if a in ("0", "1"):
        return a
    fail("unknown acks %r" % (acks,))


def _check_caps(client, recs, codec):
    caps = CAPS[client]
    if codec not in caps["codecs"]:
        fail("%s cannot compress with %s" % (client, codec))
    for r in recs:
        if r.key is None and not caps["null_key"]:
            fail("%s cannot send a null key (%r)" % (client, r))
        if r.value is None and not caps["null_value"]:
            fail("%s cannot send a null value (%r)" % (client, r))
        if any(v is None for _, v in r.headers) and not caps["null_header_value"]:
            fail("%s cannot send a null header value (%r): use "
                 "make_records(null_header_values=False)" % (client, r))


def request(bootstrap, topic, recs, acks="all", codec="none", idempotent=None,
            client_id=None, props=None, timeout=120, security=None):
    """The JSON request of the drivers' contract. The drivers bound their own
    run by about 2 x timeout_ms, which is kept within `timeout`. security:
    the optional "security" field (certs.Certs.security(),
    KafkaCluster.security()), left out when None."""
    req = {
        "brokers": bootstrap, "topic": topic, "acks": _acks(acks),
        "compression": codec or "none", "idempotent": idempotent,
        "client_id": client_id, "props": props or {},
        "timeout_ms": max(1000, min(30000, int(timeout * 1000) // 3)),
        "records": [{"partition": r.partition, "key": _b64(r.key), "value": _b64(r.value),
                     "headers": [[k, _b64(v)] for k, v in r.headers],
                     "timestamp": r.timestamp} for r in recs],
    }
    if security is not None:
        req["security"] = security
    return req


def librdkafka_security(security):
    """librdkafka properties for a "security" field (kcat's -X, Sluice's
    upstream -X): what produce_ck2.py sets."""
    if security is None:
        return {}
    proto = security.get("protocol", "PLAINTEXT").upper()
    conf = {"security.protocol": proto}
    if proto.startswith("SASL_"):
        conf.update({"sasl.mechanism": security["mechanism"],
                     "sasl.username": security["username"],
                     "sasl.password": security["password"]})
    for k, v in (("ca_file", "ssl.ca.location"), ("cert_file", "ssl.certificate.location"),
                 ("key_file", "ssl.key.location")):
        if security.get(k):
            conf[v] = security[k]
    return conf


def kcat_args(security):
    """kcat's -X flags for a "security" field."""
    out = []
    for k, v in librdkafka_security(security).items():
        out += ["-X", "%s=%s" % (k, v)]
    return out


def _run(client, argv, bootstrap, topic, recs, acks, codec, idempotent, client_id, props,
         timeout, security=None):
    ensure_installed()
    codec = codec or "none"
    _check_caps(client, recs, codec)
    req = request(bootstrap, topic, recs, acks, codec, idempotent, client_id, props, timeout,
                  security)
    try:
        p = subprocess.run(argv, input=json.dumps(req), capture_output=True, text=True,
                           timeout=timeout)
    except subprocess.TimeoutExpired as e:
        err = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else e.stderr
        fail("%s driver still running after %ds; stderr:\n%s"
             % (client, timeout, (err or "")[-3000:]))
    try:
        out = json.loads(p.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        fail("%s driver exit %d, no JSON answer; stderr:\n%s"
             % (client, p.returncode, p.stderr[-3000:]))
    out["returncode"] = p.returncode
    out["stderr"] = p.stderr[-4000:]
    return out


def franz_produce(bootstrap, topic, recs, acks="all", codec="none", idempotent=None,
                  client_id=None, props=None, timeout=120, security=None):
    """franz-go (tests/go/produce). props: see applyProps in main.go, e.g.
    {"linger_ms": 50, "max_version": "2.8", "max_produce_version": 7,
    "log_level": "debug"}."""
    return _run("franz", [os.path.join(cache_dir(), "go-build", "franz-produce")],
                bootstrap, topic, recs, acks, codec, idempotent, client_id, props, timeout,
                security)


def sarama_produce(bootstrap, topic, recs, acks="all", codec="none", idempotent=None,
                  client_id=None, props=None, timeout=120, security=None):
    """sarama (tests/go/sarama). props: see applyProps in its main.go, e.g.
    {"kafka_version": "0.11.0.0", "linger_ms": 50, "log_level": "debug"}."""
    return _run("sarama", [os.path.join(cache_dir(), "go-build", "sarama-produce")],
                bootstrap, topic, recs, acks, codec, idempotent, client_id, props, timeout,
                security)


def kafkago_produce(bootstrap, topic, recs, acks="all", codec="none", idempotent=None,
                   client_id=None, props=None, timeout=120, security=None):
    """segmentio/kafka-go (tests/go/kafkago). props: {"batch_size": N,
    "batch_timeout_ms": N, "max_attempts": N}."""
    return _run("kafkago", [os.path.join(cache_dir(), "go-build", "kafkago-produce")],
                bootstrap, topic, recs, acks, codec, idempotent, client_id, props, timeout,
                security)


def ck2_produce(bootstrap, topic, recs, acks="all", codec="none", idempotent=None,
                client_id=None, props=None, timeout=120, security=None):
    """confluent-kafka 2.x (tests/py/produce_ck2.py). props: librdkafka
    settings, e.g. {"linger.ms": 50, "debug": "protocol"}."""
    return _run("ck2", [os.path.join(cache_dir(), "venv", "bin", "python"),
                        os.path.join(PY_DIR, "produce_ck2.py")],
                bootstrap, topic, recs, acks, codec, idempotent, client_id, props, timeout,
                security)


def aiokafka_produce(bootstrap, topic, recs, acks="all", codec="none", idempotent=None,
                     client_id=None, props=None, timeout=120, security=None):
    """aiokafka (tests/py/produce_aiokafka.py). props: AIOKafkaProducer
    keyword arguments, e.g. {"max_batch_size": 16384}, and "log_level"."""
    return _run("aiokafka", [os.path.join(cache_dir(), "venv", "bin", "python"),
                             os.path.join(PY_DIR, "produce_aiokafka.py")],
                bootstrap, topic, recs, acks, codec, idempotent, client_id, props, timeout,
                security)


def kpy3_produce(bootstrap, topic, recs, acks="all", codec="none", idempotent=None,
                client_id=None, props=None, timeout=120, security=None):
    """kafka-python 3.x (tests/py/produce_kpy3.py). props: KafkaProducer
    keyword arguments, e.g. {"linger_ms": 50, "api_version": "2.1"}, and
    "log_level"."""
    return _run("kpy3", [os.path.join(cache_dir(), "venv", "bin", "python"),
                         os.path.join(PY_DIR, "produce_kpy3.py")],
                bootstrap, topic, recs, acks, codec, idempotent, client_id, props, timeout,
                security)


PRODUCERS = {"franz": franz_produce, "sarama": sarama_produce, "kafkago": kafkago_produce,
             "ck2": ck2_produce, "aiokafka": aiokafka_produce, "kpy3": kpy3_produce}
