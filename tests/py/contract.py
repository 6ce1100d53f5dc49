"""The JSON contract every Python producer driver of the suite speaks with
tests/integration/extclients.py (see tests/go/produce/main.go for the
whole text; security() checks its optional "security" field): run(produce) reads the request from stdin, calls
produce(req), and writes its answer, or {"ok": false, "error": ...} for any
exception, as the last line on stdout with elapsed_ms counted from the
parsed request.
"""

import base64
import json
import sys
import time

_start = time.monotonic()
ACKS = {"all": "all", "-1": "all", "1": 1, "0": 0}
CODECS = ("none", "gzip", "snappy", "lz4", "zstd")


def elapsed():
    return int((time.monotonic() - _start) * 1000)


def emit(obj):
    obj["elapsed_ms"] = elapsed()
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def b64(v):
    return None if v is None else base64.b64decode(v)


def checked(req):
    """(timeout_ms, acks as the request says it, codec), validated."""
    acks = str(req.get("acks", "all"))
    if acks not in ACKS:
        raise ValueError("unknown acks %r" % acks)
    codec = req.get("compression") or "none"
    if codec not in CODECS:
        raise ValueError("unknown compression %r" % codec)
    return int(req.get("timeout_ms") or 30000), acks, codec


PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


class Unsupported(Exception):
    """What the request asks and this client cannot do (never a silent
    fallback, e.g. to plaintext)."""


def security(req, client, mechanisms=MECHANISMS, server_hostname=False):
    """The request's "security" field, checked, or None when it is absent
    (the client keeps its plaintext defaults):
      {"protocol": "SSL"|"SASL_SSL"|"SASL_PLAINTEXT"|"PLAINTEXT",
       "mechanism": "PLAIN"|"SCRAM-SHA-256"|"SCRAM-SHA-512",  (SASL_*)
       "username": ..., "password": ...,                       (SASL_*)
       "ca_file": PEM CA to trust (SSL/SASL_SSL; default: the system's),
       "cert_file": ..., "key_file": ...  (PEM client certificate, mTLS),
       "server_hostname": name to verify the server's certificate against
                          (default: the host of the address dialled)}
    Returns it with "tls" and "sasl" (bools) added. mechanisms: what the
    client can do; server_hostname: whether it can verify against another
    name than the address's host (if not, a server_hostname other than
    every broker's host is Unsupported)."""
    sec = req.get("security")
    if sec is None:
        return None
    sec = dict(sec)
    proto = str(sec.get("protocol") or "PLAINTEXT").upper()
    if proto not in PROTOCOLS:
        raise Unsupported("%s: unknown security.protocol %r" % (client, sec.get("protocol")))
    sec["protocol"] = proto
    sec["tls"] = proto in ("SSL", "SASL_SSL")
    sec["sasl"] = proto.startswith("SASL_")
    if sec["sasl"]:
        mech = str(sec.get("mechanism") or "").upper()
        if mech not in MECHANISMS:
            raise Unsupported("%s: unknown sasl mechanism %r" % (client, sec.get("mechanism")))
        if mech not in mechanisms:
            raise Unsupported("%s: unsupported sasl mechanism %s" % (client, mech))
        if sec.get("username") is None or sec.get("password") is None:
            raise ValueError("security: %s needs username and password" % mech)
        sec["mechanism"] = mech
    if not sec["tls"]:
        for k in ("ca_file", "cert_file", "key_file", "server_hostname"):
            if sec.get(k):
                raise ValueError("security: %s with protocol %s (no TLS)" % (k, proto))
    if bool(sec.get("cert_file")) != bool(sec.get("key_file")):
        raise ValueError("security: cert_file and key_file go together")
    name = sec.get("server_hostname")
    if name and not server_hostname:
        hosts = {b.rsplit(":", 1)[0].strip("[]") for b in req["brokers"].split(",")}
        if hosts != {name}:
            raise Unsupported("%s: unsupported server_hostname %r: it verifies the broker "
                              "address's host (%s)" % (client, name, ", ".join(sorted(hosts))))
    return sec


def errors_list(msgs):
    """The first 50 error texts and a count of the rest."""
    return msgs[:50] + (["... %d errors in all" % len(msgs)] if len(msgs) > 50 else [])


def run(produce):
    global _start
    try:
        req = json.loads(sys.stdin.read())
        _start = time.monotonic()
        emit(produce(req))
        sys.exit(0)
    except Exception as e:  # noqa: BLE001 - every failure becomes the JSON answer
        emit({"ok": False, "error": "%s: %s" % (type(e).__name__, e)})
        sys.exit(1)
