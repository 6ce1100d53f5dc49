#!/usr/bin/env python3
"""kafka-python 3.x producer driven by tests/integration (extclients.py).

Runs in the venv of deploy/setup-clients.sh (tests/py/requirements.txt),
beside the suite's other kafka-python, Debian's 2.0.2 (which runs under
/usr/bin/python3): 3.x is a different dialect. It negotiates versions with
ApiVersions v3 and speaks Produce v3-v13 (its own copy of Kafka's schemas),
the highest both sides have; it
is idempotent by default (KIP-679), silently not with acks 0 and 1;
"idempotent": true with them is refused (ok: false). Its codecs come from
python-snappy (which needs cramjam), lz4 and zstandard.

The JSON contract is produce_aiokafka.py's: a request on stdin, the answer
as the last line on stdout. props: KafkaProducer keyword arguments (e.g.
"linger_ms", "api_version": "2.1"), plus "log_level". With acks=0 the
records' futures resolve with offset -1. A None key, value or header value
is written as null, b"" as empty; a None header value is refused by the
client itself (TypeError), so CAPS says it cannot express one. A failed
bootstrap is ok: false.

"security" (contract.security()) maps onto security_protocol,
sasl_mechanism, sasl_plain_username, sasl_plain_password (its names for
SCRAM too), ssl_cafile, ssl_certfile, ssl_keyfile and ssl_check_hostname
(PLAIN, SCRAM-SHA-256, SCRAM-SHA-512; it verifies the broker's host, so
server_hostname must name it).
"""

import logging
import sys

from contract import ACKS, b64, checked, errors_list, run, security


def security_kw(sec):
    """KafkaProducer keyword arguments for a checked "security" field."""
    if sec is None:
        return {}
    kw = {"security_protocol": sec["protocol"]}
    if sec["sasl"]:
        kw.update(sasl_mechanism=sec["mechanism"], sasl_plain_username=sec["username"],
                  sasl_plain_password=sec["password"])
    if sec["tls"]:
        kw.update(ssl_check_hostname=True, ssl_cafile=sec.get("ca_file"),
                  ssl_certfile=sec.get("cert_file"), ssl_keyfile=sec.get("key_file"))
    return kw


def produce(req):
    from kafka import KafkaProducer

    timeout_ms, acks, codec = checked(req)
    props = dict(req.get("props") or {})
    logging.basicConfig(stream=sys.stderr, level=props.pop("log_level", "WARNING"),
                        format="kafka-python %(levelname)s %(name)s: %(message)s")
    kw = {
        "bootstrap_servers": req["brokers"].split(","),
        "client_id": req.get("client_id") or "sluice-it-kpy3",
        "acks": ACKS[acks],
        "compression_type": None if codec == "none" else codec,
        "linger_ms": 5,
        "request_timeout_ms": timeout_ms,
        "max_block_ms": timeout_ms,
        "bootstrap_timeout_ms": timeout_ms,
    }
    if req.get("idempotent") is not None:
        kw["enable_idempotence"] = bool(req["idempotent"])
    kw.update(security_kw(security(req, "kafka-python")))
    kw.update(props)
    prod = KafkaProducer(**kw)  # idempotence=True with acks 0/1 raises
    recs = req["records"]
    futs = []
    try:
        for r in recs:
            try:
                futs.append(prod.send(
                    req["topic"], value=b64(r.get("value")), key=b64(r.get("key")),
                    partition=r["partition"], timestamp_ms=r.get("timestamp"),
                    headers=[(k, b64(v)) for k, v in r.get("headers") or []]))
            except Exception as e:  # noqa: BLE001 - e.g. an unknown partition
                futs.append(e)
        prod.flush(2 * timeout_ms / 1000.0 + 5)
    finally:
        prod.close(timeout=10)
    offsets, msgs, acked = [], [], 0
    for i, f in enumerate(futs):
        err = f if isinstance(f, Exception) else (f.exception if f.is_done else
                                                  "not done after flush")
        if err is not None or not f.succeeded():
            offsets.append(-1)
            msgs.append("record %d (partition %d): %r" % (i, recs[i]["partition"], err))
            continue
        acked += 1
        md = f.value
        offsets.append(-1 if md.offset is None or md.offset < 0 else md.offset)
    msgs = errors_list(msgs)
    return {"ok": True, "acked": acked, "errors": msgs, "offsets": offsets}



if __name__ == "__main__":
    run(produce)
