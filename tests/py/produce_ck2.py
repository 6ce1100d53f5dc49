#!/usr/bin/env python3
"""confluent-kafka 2.x producer driven by tests/integration (extclients.py).

Runs in the venv of deploy/setup-clients.sh (tests/py/requirements.txt), not
under Debian's python3, whose confluent-kafka is 1.7 on librdkafka 2.0.2: the
2.x wheel bundles its own, newer librdkafka.

Reads one JSON object on stdin:
  { "brokers": "127.0.0.1:9092[,h:p]", "topic": "t", "acks": "all"|"1"|"0",
    "compression": "none"|"gzip"|"snappy"|"lz4"|"zstd",
    "idempotent": true|false|null, "client_id": "...", "timeout_ms": 30000,
    "props": { librdkafka settings, e.g. "linger.ms": 50, "debug": "protocol" },
    "security": { see contract.security(); optional },
    "records": [ { "partition": 0, "key": b64|null, "value": b64|null,
                   "headers": [[name, b64|null], ...], "timestamp": ms } ] }
Writes one JSON object as the last line on stdout:
  { "ok": true, "acked": N, "errors": ["..."], "offsets": [offset|-1 per record],
    "elapsed_ms": n }
  or { "ok": false, "error": "...", "elapsed_ms": n }  (exit status 1)

A null timestamp is sent as 0, which librdkafka replaces with the current
time. librdkafka keeps null apart from empty for keys, values and header
values, so every corner of make_records() can be expressed. "idempotent":
null leaves enable.idempotence at librdkafka's default (false); true with
acks other than all is refused by librdkafka itself (ok: false). With acks=0
librdkafka has no offsets to report: every offset is -1. It speaks Produce
v10 at most and sends a batch uncompressed when compressing grows it. An
unreachable broker is not ok: false but every record timing out
(message.timeout.ms = timeout_ms). librdkafka's log lines go to stderr.

"security" maps onto security.protocol, sasl.mechanisms, sasl.username,
sasl.password, ssl.ca.location, ssl.certificate.location and
ssl.key.location (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512; librdkafka verifies
the broker's host, so server_hostname must name it). props come last.
"""

import sys
import time

from contract import b64, checked, errors_list, run, security


def security_conf(sec):
    """librdkafka's settings for a checked "security" field."""
    if sec is None:
        return {}
    conf = {"security.protocol": sec["protocol"].lower()}
    if sec["sasl"]:
        conf.update({"sasl.mechanisms": sec["mechanism"], "sasl.username": sec["username"],
                     "sasl.password": sec["password"]})
    if sec["tls"]:
        conf["ssl.endpoint.identification.algorithm"] = "https"
        for k, v in (("ca_file", "ssl.ca.location"), ("cert_file", "ssl.certificate.location"),
                     ("key_file", "ssl.key.location")):
            if sec.get(k):
                conf[v] = sec[k]
    return conf


def produce(req):
    from confluent_kafka import Producer, KafkaException

    timeout_ms, acks, codec = checked(req)
    conf = {
        "bootstrap.servers": req["brokers"],
        "client.id": req.get("client_id") or "sluice-it-ck2",
        "acks": acks,
        "compression.type": codec,
        "linger.ms": 5,
        "message.timeout.ms": timeout_ms,
        "request.timeout.ms": min(timeout_ms, 30000),
        "log_level": 3,
        "error_cb": lambda err: sys.stderr.write("ck2 error: %s\n" % err),
    }
    if req.get("idempotent") is not None:
        conf["enable.idempotence"] = bool(req["idempotent"])
    conf.update(security_conf(security(req, "confluent-kafka")))
    conf.update(req.get("props") or {})

    try:
        p = Producer(conf)
    except KafkaException as e:
        raise RuntimeError("Producer(): %s" % e) from e

    recs = req["records"]
    offsets = [-1] * len(recs)
    errs = [None] * len(recs)
    done = [0]

    def on_delivery(i):
        def dr(err, msg):
            done[0] += 1
            if err is not None:
                errs[i] = "record %d (partition %d): %s" % (i, recs[i]["partition"], err)
            elif acks != "0" and msg.offset() is not None and msg.offset() >= 0:
                offsets[i] = msg.offset()
        return dr

    topic = req["topic"]
    for i, r in enumerate(recs):
        headers = [(k, b64(v)) for k, v in r.get("headers") or []]
        while True:
            try:
                p.produce(topic, value=b64(r.get("value")), key=b64(r.get("key")),
                          partition=r["partition"], timestamp=r.get("timestamp") or 0,
                          headers=headers or None, on_delivery=on_delivery(i))
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    flush_s = timeout_ms / 1000.0 + 10
    left = p.flush(flush_s)
    msgs = [e for e in errs if e is not None]
    acked = done[0] - len(msgs)  # delivery reports without error
    msgs = errors_list(msgs)
    if left:
        msgs.append("%d records still queued after flush(%ds)" % (left, flush_s))
    return {"ok": True, "acked": acked, "errors": msgs, "offsets": offsets}


if __name__ == "__main__":
    run(produce)
