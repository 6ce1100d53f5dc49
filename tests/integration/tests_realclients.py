"""Clients from the registries through Sluice, verified byte for byte
upstream, against the mock and the one-node Apache Kafka:

  franz-go (Go module proxy), confluent-kafka 2.x (PyPI; its own, newer
  librdkafka) and aiokafka (PyPI), driven by tests/go and tests/py through
  extclients.py; the Java client kafka-clients 4.x and 3.x (Maven Central)
  through javaclients.py.

Each client's matrix: every codec with acks=all and the client's default
idempotence (franz-go and Java: on), idempotence forced on and off, and
acks=1 and acks=0.
"""

import extclients
from harness import check, eq, log, make_records, register, verify_upstream
from tests_clients import BOTH, PARTITIONS, seed_of

N = 200
CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]


def cases():
    for codec in CODECS:
        yield "acksall", codec, None
    yield "acksall", "lz4", True
    yield "acksall", "zstd", False
    yield "acks1", "gzip", False
    yield "acks0", "none", False


def check_result(res, recs, acks, what):
    check(res.get("ok"), "%s: %s\nstderr:\n%s" % (what, res.get("error"), res.get("stderr", "")))
    check(not res.get("errors"), "%s: %d record errors, first %s"
          % (what, len(res["errors"]), res["errors"][:3]))
    eq(res["acked"], len(recs), "%s: acknowledged records" % what)
    if acks != "0":
        bad = [o for o in res["offsets"] if o is None or o < 0]
        check(not bad, "%s: %d records without an offset" % (what, len(bad)))


def make_ext_test(client, acks, codec, idempotent):
    def fn(env):
        extclients.ensure_installed()
        topic = env.topic(client, PARTITIONS)
        recs = make_records(N, PARTITIONS, seed=seed_of(client, acks, codec, idempotent))
        a = acks[len("acks"):]
        res = extclients.PRODUCERS[client](env.bootstrap, topic, recs, acks=a, codec=codec,
                                           idempotent=idempotent,
                                           client_id="sluice-it-%s" % client)
        check_result(res, recs, a, extclients.CAPS[client]["name"])
        got = verify_upstream(env, topic, PARTITIONS, recs)
        if a != "0":
            # The offsets the client was given are where the records are.
            pos = {}
            for p, rs in got.items():
                for i, r in enumerate(rs):
                    pos.setdefault((p, r.value, r.key), i)
            wrong = [(r.partition, o) for r, o in zip(recs, res["offsets"])
                     if r.value is not None and pos.get((r.partition, r.value, r.key)) != o]
            check(not wrong, "offsets answered differ from the records' positions: %s"
                  % wrong[:5])
    return fn


def idem_name(idempotent):
    return {None: "", True: "_idem", False: "_noidem"}[idempotent]


for _client in ("franz", "ck2", "aiokafka"):
    for _acks, _codec, _idem in cases():
        register("%s_%s_%s%s" % (_client, _acks, _codec, idem_name(_idem)),
                 make_ext_test(_client, _acks, _codec, _idem), upstreams=BOTH)
