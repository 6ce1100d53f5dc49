"""Limits slow clients down instead of failing them: per-connection
in-flight requests and bytes, the global memory budget, and the connection
limit. Every record still arrives."""

import socket

import kwire
from harness import check, eq, log, make_records, test, verify_upstream, wait_for
from tests_clients import produce_confluent


@test(direct=False, timeout=180,
      sluice_args=["--limits.max_inflight_requests=1", "--limits.max_inflight_bytes=1024",
                   "--limits.memory_budget_bytes=1048576"], upstreams=("mock", "kafka"))
def limits_slow_down_not_fail(env):
    """One request in flight per connection and a 1 MiB memory budget, while
    a producer sends 6,000 records of up to ~1 KiB in large batches: reads
    pause and resume, nothing fails, everything arrives byte for byte."""
    topic = env.topic("limits", 3)
    recs = make_records(6000, 3, seed=7)
    errors = produce_confluent(env.bootstrap, topic, recs,
                               conf={"linger.ms": 20, "batch.size": 2000000,
                                     "max.in.flight": 5})
    eq(errors, [], "delivery errors")
    verify_upstream(env, topic, 3, recs)
    text = open(env.sluice_log, "rb").read().decode("utf-8", "replace")
    check("pausing reads from all clients" in text and "reading again" in text,
          "the memory budget never paused and resumed reading")


@test(direct=False, timeout=60, sluice_args=["--limits.max_connections=2"], upstreams=("mock", "kafka"))
def limits_connections_wait(env):
    """At limits.max_connections a new connection waits (it is not accepted,
    so not refused) and is served as soon as another one closes."""
    a = kwire.Conn(env.bootstrap)
    b = kwire.Conn(env.bootstrap)
    eq(a.api_versions(0)["error_code"], 0, "first connection")
    eq(b.api_versions(0)["error_code"], 0, "second connection")
    c = kwire.Conn(env.bootstrap)  # TCP connects into the listen backlog
    corr = c.send(kwire.API_VERSIONS, 0, kwire.api_versions_request(0))
    waited = False
    try:
        c.recv(kwire.API_VERSIONS, 0, timeout=1.0)
    except socket.timeout:
        waited = True
    check(waited, "the third connection was served while two were open")
    a.close()
    rcorr, _ = c.recv(kwire.API_VERSIONS, 0, timeout=10)
    eq(rcorr, corr, "third connection answered after one closed")
    b.close()
    c.close()
    text = open(env.sluice_log, "rb").read().decode("utf-8", "replace")
    check("limits.max_connections=2 reached" in text, "the limit was not logged")
