#!/usr/bin/env python3
"""aiokafka producer driven by tests/integration (extclients.py).

Runs in the venv of deploy/setup-clients.sh (tests/py/requirements.txt);
aiokafka's snappy, lz4 and zstd codecs come from cramjam.

Reads one JSON object on stdin:
  { "brokers": "127.0.0.1:9092[,h:p]", "topic": "t", "acks": "all"|"1"|"0",
    "compression": "none"|"gzip"|"snappy"|"lz4"|"zstd",
    "idempotent": true|false|null, "client_id": "...", "timeout_ms": 30000,
    "props": { AIOKafkaProducer keyword arguments, e.g. "linger_ms": 50,
               "max_batch_size": 16384; plus "log_level": "DEBUG" etc. },
    "security": { see contract.security(); optional },
    "records": [ { "partition": 0, "key": b64|null, "value": b64|null,
                   "headers": [[name, b64|null], ...], "timestamp": ms } ] }
Writes one JSON object as the last line on stdout:
  { "ok": true, "acked": N, "errors": ["..."], "offsets": [offset|-1 per record],
    "elapsed_ms": n }
  or { "ok": false, "error": "...", "elapsed_ms": n }  (exit status 1)

A null timestamp lets aiokafka stamp the record. aiokafka writes None keys,
values and header values as null (length -1) and b"" as empty, so every
corner of make_records() can be expressed. It is not idempotent by default
(enable_idempotence=False, which "idempotent": null keeps) and refuses
idempotence with acks other than all (ok: false). With acks=0 send()
resolves to None: every offset is -1. It speaks Produce v7 at most and, unlike
franz-go and librdkafka, keeps the codec even when compressing grows a batch.
Per-record failures (send() refusing an unknown partition, delivery errors)
land in "errors"; a failed bootstrap is ok: false. Its log lines (logging,
WARNING by default) go to stderr.

"security" maps onto security_protocol, sasl_mechanism,
sasl_plain_username, sasl_plain_password and an ssl_context of
aiokafka.helpers.create_ssl_context(cafile, certfile, keyfile) (PLAIN,
SCRAM-SHA-256, SCRAM-SHA-512; it verifies the broker's host, so
server_hostname must name it).
"""

import asyncio
import logging
import sys

from contract import ACKS, b64, checked, errors_list, run, security


def security_kw(sec):
    """AIOKafkaProducer keyword arguments for a checked "security" field."""
    if sec is None:
        return {}
    kw = {"security_protocol": sec["protocol"]}
    if sec["sasl"]:
        kw.update(sasl_mechanism=sec["mechanism"], sasl_plain_username=sec["username"],
                  sasl_plain_password=sec["password"])
    if sec["tls"]:
        from aiokafka.helpers import create_ssl_context
        kw["ssl_context"] = create_ssl_context(cafile=sec.get("ca_file"),
                                               certfile=sec.get("cert_file"),
                                               keyfile=sec.get("key_file"))
    return kw


async def produce(req):
    from aiokafka import AIOKafkaProducer

    timeout_ms, acks, codec = checked(req)
    props = dict(req.get("props") or {})
    logging.basicConfig(stream=sys.stderr, level=props.pop("log_level", "WARNING"),
                        format="aiokafka %(levelname)s %(name)s: %(message)s")
    kw = {
        "bootstrap_servers": req["brokers"].split(","),
        "client_id": req.get("client_id") or "sluice-it-aiokafka",
        "acks": ACKS[acks],
        "compression_type": None if codec == "none" else codec,
        "linger_ms": 5,
        "request_timeout_ms": timeout_ms,
    }
    if req.get("idempotent") is not None:
        kw["enable_idempotence"] = bool(req["idempotent"])
    kw.update(security_kw(security(req, "aiokafka")))
    kw.update(props)
    prod = AIOKafkaProducer(**kw)  # ValueError for idempotence with acks 0/1
    try:
        await asyncio.wait_for(prod.start(), timeout_ms / 1000.0)
    except BaseException:
        await prod.stop()
        raise
    recs = req["records"]
    try:
        futs = []
        for r in recs:
            try:
                futs.append(await prod.send(
                    req["topic"], value=b64(r.get("value")), key=b64(r.get("key")),
                    partition=r["partition"], timestamp_ms=r.get("timestamp"),
                    headers=[(k, b64(v)) for k, v in r.get("headers") or []]))
            except Exception as e:  # noqa: BLE001 - e.g. an unknown partition
                fut = asyncio.get_running_loop().create_future()
                fut.set_exception(e)
                futs.append(fut)
        results = await asyncio.wait_for(asyncio.gather(*futs, return_exceptions=True),
                                         2 * timeout_ms / 1000.0 + 5)
    finally:
        await prod.stop()
    offsets, msgs, acked = [], [], 0
    for i, res in enumerate(results):
        if isinstance(res, BaseException):
            offsets.append(-1)
            msgs.append("record %d (partition %d): %r" % (i, recs[i]["partition"], res))
            continue
        acked += 1
        offsets.append(-1 if res is None or res.offset is None or res.offset < 0
                       else res.offset)
    msgs = errors_list(msgs)
    return {"ok": True, "acked": acked, "errors": msgs, "offsets": offsets}



if __name__ == "__main__":
    run(lambda req: asyncio.run(produce(req)))
