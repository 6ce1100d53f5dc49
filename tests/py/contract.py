"""The JSON contract every Python producer driver of the suite speaks with
tests/integration/extclients.py (see tests/go/produce/main.go for the
whole text): run(produce) reads the request from stdin, calls
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
