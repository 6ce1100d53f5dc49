"""Client-side security (issue 14): Sluice's TLS listeners, SASL logins
(PLAIN, SCRAM-SHA-256/512) and certificate principals, against the mock and
the suite's Apache Kafka.

  sasl_ssl_clients      real clients (librdkafka, Java 4.x, kafkajs,
                        kafka-python, franz-go) produce byte-exact through a
                        SASL_SSL listener with SCRAM-SHA-512 and PLAIN
  mtls_principal        an SSL listener requiring client certificates: the
                        mapped subject is the principal the policy matches
  auth_refusals         wrong password, unknown user, a plaintext client on
                        the TLS port, a TLS client on the plaintext port, a
                        Produce before the login, an expired session: each
                        as a broker does it, logged with its reason, counted,
                        while a steady client keeps producing
  sasl_v0_and_reauth    a v0 handshake's bare tokens; KIP-368 re-login on the
                        same connection (same principal only)
  principals_own_quotas two connectors claiming one client.id, told apart by
                        their principals, each held to its own quota
"""

import json
import os
import re
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request

import certs
import extclients
import javaclients
import kwire
from harness import (check, eq, fail, free_port, log, make_records, register,
                     verify_upstream, wait_for)
from tests_clients import PARTITIONS, run_kafkajs, seed_of

N = 120
USERS = {"alice": "alice-%d-pw" % os.getpid(), "bob": "bob-%d-pw" % os.getpid(),
         "svc,odd=name": "odd-pw"}


def make_credentials(env, users=USERS, mechanism="all"):
    path = os.path.join(env.logdir, env.name + ".users.json")
    if os.path.exists(path):
        os.unlink(path)
    for user, pw in users.items():
        p = subprocess.run([env.cfg.sluice, "users", "add", path, user,
                            "--mechanism", mechanism],
                           input=pw + "\n", capture_output=True, text=True, timeout=60)
        check(p.returncode == 0, "sluice users add %s: exit %d: %s"
              % (user, p.returncode, p.stderr))
    mode = os.stat(path).st_mode & 0o777
    eq(oct(mode), oct(0o600), "credentials file mode")
    text = open(path).read()
    for pw in users.values():
        check(pw not in text, "a password is in the credentials file")
    return path


class Secure:
    """Sluice restarted with a TLS listener (and SASL) beside the plaintext
    one. tls: "127.0.0.1:port" of the TLS bootstrap listener."""

    def __init__(self, env, tls_protocol="SASL_SSL", plain_protocol="PLAINTEXT",
                 client_auth="none", rules=None, extra=(), creds=True, cert_file=None,
                 key_file=None):
        self.env = env
        self.certs = certs.get()
        self.creds = make_credentials(env) if creds else None
        self.tls_port = free_port()
        self.tls = "127.0.0.1:%d" % self.tls_port
        args = list(env.sluice_args) + [
            "--tls.listen", self.tls, "--tls.protocol", tls_protocol,
            "--listen_protocol", plain_protocol,
            "--tls.cert_file", cert_file or self.certs.server.cert_file,
            "--tls.key_file", key_file or self.certs.server.key_file,
            "--tls.ca_file", self.certs.ca_file,
            "--tls.client_auth", client_auth]
        if rules:
            args += ["--tls.principal_mapping_rules", rules]
        if self.creds:
            args += ["--sasl.credentials_file", self.creds]
        args += list(extra)
        if env.sluice is not None:
            env.sluice.stop()
        env.start_sluice(args)
        self.plain = env.bootstrap

    def ssl_context(self, client=None):
        ctx = ssl.create_default_context(cafile=self.certs.ca_file)
        if client is not None:
            ctx.load_cert_chain(client.cert_file, client.key_file)
        return ctx

    def conn(self, client=None, timeout=10):
        return kwire.Conn(self.tls, timeout=timeout, ssl_context=self.ssl_context(client))

    def security(self, mechanism=None, user="alice", client=None, protocol="SASL_SSL"):
        if protocol == "SSL":
            return self.certs.security("SSL", client=client)
        return self.certs.security(protocol, mechanism=mechanism, username=user,
                                   password=USERS[user], client=client)

    def metrics(self):
        port = None
        for line in open(self.env.sluice_log, errors="replace"):
            m = re.search(r"operator HTTPS? on [^ ]+:(\d+)", line)
            if m:
                port = int(m.group(1))
        check(port, "no operator HTTP port in the log")
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10) as r:
            return r.read().decode()


def metric(text, name, **labels):
    total = 0.0
    found = False
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all('%s="%s"' % (k, v) in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
            found = True
    return total if found else None


def log_count(env, pattern):
    return sum(1 for line in open(env.sluice_log, errors="replace") if re.search(pattern, line))


def check_ok(res, n, what):
    check(res.get("ok"), "%s: %s\nstderr:\n%s" % (what, res.get("error"), res.get("stderr", "")[-3000:]))
    check(not res.get("errors"), "%s: record errors %s" % (what, res.get("errors", [])[:3]))
    eq(res.get("acked"), n, "%s: acknowledged records" % what)


# ---------------------------------------------------------------------------
# 1. Real clients through SASL_SSL, SCRAM-SHA-512 and PLAIN


# The acceptance's five, then every other client of the suite.
CLIENTS = ["ck2", "java4", "kafkajs", "kpy3", "franz", "java3", "aiokafka", "sarama", "kafkago"]


def null_headers_ok(client):
    if client in extclients.CAPS:
        return extclients.CAPS[client]["null_header_value"]
    return client != "kafkajs"  # Java can; kafkajs cannot encode one


def produce_with(client, bootstrap, topic, recs, security, client_id):
    if client in ("java4", "java3"):
        return javaclients.java_produce(client[-1], bootstrap, topic, recs, security=security,
                                        client_id=client_id, timeout=120)
    if client == "kafkajs":
        results = run_kafkajs(bootstrap, topic, recs, -1, "none", security=security)
        bad = [r for r in results if r.get("errorCode")]
        return {"ok": True, "acked": len(recs), "errors": bad}
    return extclients.PRODUCERS[client](bootstrap, topic, recs, security=security,
                                        client_id=client_id, timeout=120)


def sasl_ssl_clients(env):
    env.require_proxy()
    s = Secure(env)
    runs = [(m, c) for m in ("SCRAM-SHA-512", "PLAIN") for c in CLIENTS]
    runs += [("SCRAM-SHA-256", c) for c in ("ck2", "java4", "franz", "kafkajs")]
    for mech, client in runs:
        topic = env.topic(client, PARTITIONS)
        recs = make_records(N, PARTITIONS, seed=seed_of("sec", client, mech),
                            null_header_values=null_headers_ok(client))
        what = "%s over SASL_SSL %s" % (client, mech)
        res = produce_with(client, s.tls, topic, recs, s.security(mech),
                           "sec-%s" % client)
        check_ok(res, N, what)
        verify_upstream(env, topic, PARTITIONS, recs)
        log("%s: %d records byte-exact upstream" % (what, N))
    m = s.metrics()
    for mech in ("SCRAM-SHA-512", "PLAIN", "SCRAM-SHA-256"):
        n = metric(m, "sluice_sasl_logins_total", mechanism=mech)
        want = sum(1 for r in runs if r[0] == mech)
        check(n and n >= want, "%s logins counted: %r (want at least %d)" % (mech, n, want))
    fails = metric(m, "sluice_authentication_failures_total")
    eq(fails, 0, "authentication failures")


register("sasl_ssl_clients", sasl_ssl_clients, direct=False, timeout=900,
         upstreams=("mock", "kafka"))


# ---------------------------------------------------------------------------
# 2. mTLS: a principal from the certificate drives the policy

POLICY_MTLS = {
    "version": 1,
    "classes": {"std": {"weight": 1, "max_pause_ms": 2000}},
    "connectors": {
        "alice-app": {"class": "std", "match": {"principals": ["User:alice"]},
                      "topics": ["only-alice.*"]},
    },
    "defaults": {"action": "admit", "class": "std", "topics": ["other.*"]},
}


def write_policy(env, policy, tag):
    path = os.path.join(env.logdir, "%s.%s.policy.json" % (env.name, tag))
    with open(path, "w") as f:
        json.dump(policy, f)
    return path


def mtls_principal(env):
    env.require_proxy()
    c = certs.get()
    alice = c.client("CN=alice,OU=ServiceUsers,O=Sluice")
    bob = c.client("CN=bob,OU=Apps,O=Sluice")
    pol = write_policy(env, POLICY_MTLS, "mtls")
    s = Secure(env, tls_protocol="SSL", client_auth="required", creds=False,
               rules="RULE:^CN=([^,]*),OU=ServiceUsers,.*$/$1/,DEFAULT",
               extra=["--policy_file", pol])
    topic = "only-alice.%d" % s.tls_port
    env.create_topic(topic, PARTITIONS)
    recs = make_records(N, PARTITIONS, seed=7)
    res = extclients.ck2_produce(s.tls, topic, recs, security=s.security(client=alice, protocol="SSL"),
                                 client_id="whoever", timeout=90)
    check_ok(res, N, "ck2 with alice's certificate")
    verify_upstream(env, topic, PARTITIONS, recs)
    m = s.metrics()
    n = metric(m, "sluice_connector_records_total", connector="alice-app")
    eq(n, N, "records charged to the principal's connector")
    # bob's certificate maps to "User:CN=bob,OU=Apps,O=Sluice" (DEFAULT):
    # not alice-app, so not allowed on alice's topic.
    res = extclients.ck2_produce(s.tls, topic, recs[:5],
                                 security=s.security(client=bob, protocol="SSL"),
                                 client_id="whoever", timeout=60)
    check(not res.get("ok") or res.get("errors"), "bob wrote to alice's topic: %r" % res)
    check(any("TOPIC_AUTHORIZATION" in e or "authoriz" in e.lower()
              for e in (res.get("errors") or [res.get("error") or ""])),
          "bob's refusal: %r" % res)
    # No certificate: the handshake is refused (client_auth required).
    with_no_cert = 0
    try:
        with s.conn(timeout=5) as k:
            k.api_versions(0)
    except (ssl.SSLError, kwire.Closed, ConnectionError, OSError):
        with_no_cert = 1
    eq(with_no_cert, 1, "a client without a certificate refused")
    wait_for(lambda: log_count(env, r"TLS handshake failed") >= 1, 5,
             "the refused handshake logged")


register("mtls_principal", mtls_principal, direct=False, timeout=300,
         upstreams=("mock", "kafka"))


# ---------------------------------------------------------------------------
# 3. Refusals, each as a broker does it, while another client is unaffected


class Steady(threading.Thread):
    """A SASL_SSL client producing one acks=all batch after another."""

    def __init__(self, s, topic):
        super().__init__(daemon=True)
        self.s, self.topic = s, topic
        self.stop = threading.Event()
        self.ok = 0
        self.relogins = 0
        self.errors = []

    def run(self):
        try:
            with self.s.conn(timeout=15) as k:
                k.api_versions(3)
                r = k.login("SCRAM-SHA-256", "bob", USERS["bob"])
                if r["error"]:
                    self.errors.append("login: %r" % r)
                    return
                k.metadata([self.topic])
                # KIP-368: log in again before the session ends, as
                # librdkafka and Java do.
                lifetime = r.get("lifetime_ms") or 0
                since = time.monotonic()
                i = 0
                while not self.stop.is_set():
                    if lifetime and (time.monotonic() - since) * 1000 > lifetime / 2:
                        r = k.login("SCRAM-SHA-256", "bob", USERS["bob"])
                        if r["error"]:
                            self.errors.append("re-login: %r" % r)
                            return
                        self.relogins += 1
                        since = time.monotonic()
                    batch = kwire.record_batch([kwire.Record(b"k", b"v%d" % i)])
                    res = k.produce(self.topic, i % PARTITIONS, batch, acks=-1, timeout=15)
                    if res["error_code"]:
                        self.errors.append(res)
                    else:
                        self.ok += 1
                    i += 1
                    time.sleep(0.01)
        except Exception as e:  # noqa: BLE001 - recorded, checked by the test
            self.errors.append(repr(e))


def expect_closed(k, what, timeout=5):
    try:
        k.recv_frame(timeout)
    except kwire.Closed:
        return
    except (ssl.SSLError, ConnectionError):
        return
    except socket.timeout:
        fail("%s: connection still open after %ds" % (what, timeout))
    fail("%s: an answer instead of a closed connection" % what)


def auth_refusals(env):
    env.require_proxy()
    s = Secure(env, extra=["--sasl.session_lifetime_ms", "1500"])
    topic = env.topic("steady", PARTITIONS)
    steady = Steady(s, topic)
    steady.start()
    wait_for(lambda: steady.ok >= 5 or steady.errors, 20, "the steady client producing")
    check(not steady.errors, "steady client: %r" % steady.errors[:3])

    # Wrong password, unknown user: SASL_AUTHENTICATION_FAILED, then closed.
    for mech in ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"):
        for user, pw in (("alice", "wrong"), ("mallory", "x")):
            with s.conn() as k:
                r = k.login(mech, user, pw)
                eq(r["error"], 58, "%s %s: SASL_AUTHENTICATION_FAILED" % (mech, user))
                eq(r["message"], "Authentication failed during authentication due to "
                   "invalid credentials with SASL mechanism %s" % mech, "broker's message")
                expect_closed(k, "after a failed %s login" % mech)
    # A failed login is answered after sasl.failed_authentication_delay_ms
    # (100 ms), as a broker delays it.
    with s.conn() as k:
        t0 = time.monotonic()
        eq(k.login("PLAIN", "alice", "guess")["error"], 58, "PLAIN guess refused")
        check(time.monotonic() - t0 >= 0.09, "the refusal came without the delay")
    # A mechanism not offered.
    with s.conn() as k:
        err, mechs = k.sasl_handshake("GSSAPI")
        eq(err, 33, "UNSUPPORTED_SASL_MECHANISM")
        eq(sorted(mechs), ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"], "offered mechanisms")
        expect_closed(k, "after an unsupported mechanism")
    # Produce before the login: closed, as "Unexpected Kafka request".
    with s.conn() as k:
        k.api_versions(3)
        k.send(kwire.PRODUCE, 7, kwire.produce_request(
            7, [(topic, [(0, kwire.record_batch([kwire.Record(b"k", b"v")]))])]))
        expect_closed(k, "a Produce before the login")
    # A plaintext Kafka client on the TLS port.
    with kwire.Conn(s.tls, timeout=5) as k:
        k.send(kwire.API_VERSIONS, 0, kwire.api_versions_request(0))
        expect_closed(k, "plaintext on the TLS port")
    # A TLS client on the plaintext port.
    raw = socket.create_connection(kwire.parse_addr(s.plain), timeout=5)
    try:
        tls = s.ssl_context().wrap_socket(raw, server_hostname="localhost",
                                          do_handshake_on_connect=False)
        try:
            tls.do_handshake()
            fail("a TLS handshake succeeded on the plaintext port")
        except (ssl.SSLError, ConnectionError, OSError):
            pass
    finally:
        raw.close()
    # A session past sasl.session_lifetime_ms: the next request closes it.
    with s.conn() as k:
        r = k.login("SCRAM-SHA-512", "alice", USERS["alice"])
        eq(r["error"], 0, "login")
        eq(r["lifetime_ms"], 1500, "session_lifetime_ms told to the client")
        k.metadata([topic])
        time.sleep(1.7)
        k.send(kwire.METADATA, 1, kwire.metadata_request(1, [topic]))
        expect_closed(k, "a request after the session expired")

    m = s.metrics()
    for reason, want in (("credentials", 6 + 1), ("mechanism", 1),
                         ("unauthenticated_request", 1), ("tls_handshake", 1),
                         ("session_expired", 1)):
        got = metric(m, "sluice_authentication_failures_total", reason=reason)
        eq(got, want, "failures counted for %s" % reason)
    # Logged once each, with the reason.
    for pat, want in ((r"login failed: invalid proof|login failed: .*password", 3),
                      (r"unknown user", 3),
                      (r"GSSAPI.*is not offered", 1),
                      (r"unexpected Produce request during SASL handshake", 1),
                      (r"the client sent plaintext", 1),
                      (r"TLS handshake on a plaintext listener", 1)):
        got = log_count(env, pat)
        check(got >= 1 and got <= want * 2, "log lines for /%s/: %d (want %d)" % (pat, got, want))
    # Password guessing from 8 connections at once (PLAIN, whose check costs
    # a PBKDF2 and runs off the event loop): the steady client goes on.
    before = steady.ok
    guesses = []

    def guess(n):
        for i in range(n):
            with s.conn() as k:
                guesses.append(k.login("PLAIN", "alice", "guess-%d" % i)["error"])

    threads = [threading.Thread(target=guess, args=(5,)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    eq(guesses, [58] * 40, "40 guesses refused")
    wait_for(lambda: steady.ok > before + 5, 10, "the steady client producing after the guesses")
    got = metric(s.metrics(), "sluice_authentication_failures_total", reason="credentials")
    eq(got, 6 + 1 + 40, "failed logins counted after the guesses")
    steady.stop.set()
    steady.join(30)
    check(not steady.errors, "steady client during the refusals: %r" % steady.errors[:3])
    check(steady.ok >= 20, "steady client produced only %d batches" % steady.ok)
    check(steady.relogins >= 1, "the steady client never logged in again")
    log("steady client: %d batches acknowledged during the refusals, %d re-logins"
        % (steady.ok, steady.relogins))


register("auth_refusals", auth_refusals, direct=False, timeout=300,
         upstreams=("mock", "kafka"))


# ---------------------------------------------------------------------------
# 4. The v0 handshake's bare tokens, and KIP-368 re-login


def sasl_v0_and_reauth(env):
    env.require_proxy()
    s = Secure(env, tls_protocol="SASL_SSL", plain_protocol="SASL_PLAINTEXT",
               extra=["--sasl.session_lifetime_ms", "60000"])
    topic = env.topic("v0", PARTITIONS)
    # v0 handshake: the tokens travel bare, on the plaintext SASL listener.
    with kwire.Conn(s.plain) as k:
        last = k.login("SCRAM-SHA-256", "svc,odd=name", USERS["svc,odd=name"],
                       handshake_version=0)
        check(last.startswith(b"v="), "server-final %r" % last)
        k.metadata([topic])
        res = k.produce(topic, 0, kwire.record_batch([kwire.Record(b"k", b"v0")]))
        eq(res["error_code"], 0, "Produce after a v0 login")
    with kwire.Conn(s.plain) as k:
        err, _ = k.sasl_handshake("PLAIN", 0)
        eq(err, 0, "v0 handshake")
        try:
            k.sasl_raw(b"\0alice\0nope", timeout=5)
            fail("a failed v0 login was answered")
        except kwire.Closed:
            pass
    # Re-login on the same connection, as KIP-368 clients do.
    with s.conn() as k:
        r = k.login("SCRAM-SHA-512", "alice", USERS["alice"])
        eq(r["lifetime_ms"], 60000, "session lifetime")
        k.metadata([topic])
        for i in range(3):
            r = k.login("SCRAM-SHA-512", "alice", USERS["alice"])
            eq(r["error"], 0, "re-login %d" % i)
            res = k.produce(topic, 1, kwire.record_batch([kwire.Record(b"k", b"re%d" % i)]))
            eq(res["error_code"], 0, "Produce after re-login %d" % i)
        # Someone else on the same connection: refused, closed.
        r = k.login("SCRAM-SHA-512", "bob", USERS["bob"])
        eq(r["error"], 58, "a re-login as another principal")
        expect_closed(k, "after a re-login as someone else")
    # Another mechanism for the re-login: refused.
    with s.conn() as k:
        eq(k.login("PLAIN", "alice", USERS["alice"])["error"], 0, "PLAIN login")
        err, _ = k.sasl_handshake("SCRAM-SHA-512")
        eq(err, 33, "re-login with another mechanism")
    # SaslAuthenticate v0 logins cannot re-login (KIP-368 needs v1+).
    with s.conn() as k:
        eq(k.login("PLAIN", "alice", USERS["alice"], version=0)["error"], 0, "v0 login")
        err, _ = k.sasl_handshake("PLAIN")
        eq(err, 34, "ILLEGAL_SASL_STATE for a re-login after SaslAuthenticate v0")
    # A SaslHandshake on a listener without SASL: ILLEGAL_SASL_STATE.
    s2 = Secure(env, tls_protocol="SSL", creds=False)
    with kwire.Conn(s2.plain) as k:
        err, mechs = k.sasl_handshake("PLAIN")
        eq((err, mechs), (34, []), "SaslHandshake on a PLAINTEXT listener")
        k.metadata([topic])  # still open and served


register("sasl_v0_and_reauth", sasl_v0_and_reauth, direct=False, timeout=240,
         upstreams=("mock", "kafka"))


# ---------------------------------------------------------------------------
# 5. Principals, not client.ids, pick the quota


POLICY_QUOTAS = {
    "version": 1,
    "classes": {"std": {"weight": 1, "max_pause_ms": 2000}},
    "connectors": {
        "alice-conn": {"class": "std", "match": {"principals": ["User:alice"]},
                       "quota": {"bytes_per_sec": 100000}},
        "bob-conn": {"class": "std", "match": {"principals": ["User:bob"]},
                     "quota": {"bytes_per_sec": 400000}},
        "claimed": {"class": "std", "match": {"client_ids": ["shared-id"]},
                    "quota": {"bytes_per_sec": 10000000}},
    },
    "defaults": {"action": "admit", "class": "std"},
}


def principals_own_quotas(env):
    env.require_proxy()
    pol = write_policy(env, POLICY_QUOTAS, "quotas")
    s = Secure(env, extra=["--policy_file", pol])
    topics = {u: env.topic(u.split(",")[0], 1) for u in ("alice", "bob")}
    duration = 6.0
    counts = {}
    errors = []

    def run(user):
        value = b"x" * 1000
        n = 0
        try:
            with s.conn(timeout=20) as k:
                k.client_id = "shared-id"
                eq(k.login("SCRAM-SHA-512", user, USERS[user])["error"], 0, "login")
                k.metadata([topics[user]])
                end = time.monotonic() + duration
                while time.monotonic() < end:
                    batch = kwire.record_batch([kwire.Record(None, value)] * 20)
                    res = k.produce(topics[user], 0, batch, acks=1, timeout=20)
                    if res["error_code"]:
                        errors.append(res)
                        return
                    n += 20
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))
        counts[user] = n

    threads = [threading.Thread(target=run, args=(u,)) for u in ("alice", "bob")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    check(not errors, "producers: %r" % errors[:3])
    # Measured at the upstream: what each principal's topic holds.
    from harness import total_high
    up = {u: total_high(env.upstream, topics[u], 1) for u in topics}
    eq(up, counts, "records upstream (acks=1, all acknowledged)")
    rate = {u: up[u] * 1000 / duration for u in up}
    log("same client.id, two principals: alice %.0f B/s (quota 100000), bob %.0f B/s "
        "(quota 400000)" % (rate["alice"], rate["bob"]))
    # One second of burst on top of each quota, then the rate.
    check(rate["alice"] < 100000 * 1.6, "alice held to her quota: %.0f B/s" % rate["alice"])
    check(rate["bob"] > 2.2 * rate["alice"], "bob's own, larger quota: %.0f vs %.0f"
          % (rate["bob"], rate["alice"]))
    check(rate["bob"] < 400000 * 1.6, "bob held to his quota: %.0f B/s" % rate["bob"])
    m = s.metrics()
    check((metric(m, "sluice_connector_bytes_total", connector="alice-conn") or 0) > 0,
          "alice charged to alice-conn")
    check((metric(m, "sluice_connector_bytes_total", connector="bob-conn") or 0) > 0,
          "bob charged to bob-conn")
    eq(metric(m, "sluice_connector_bytes_total", connector="claimed") or 0, 0,
       "nothing charged to the connector the client.id claims")


register("principals_own_quotas", principals_own_quotas, direct=False, timeout=180,
         upstreams=("mock", "kafka"))


# ---------------------------------------------------------------------------
# 6. Certificate and key reloaded without a restart


def tls_reload(env):
    env.require_proxy()
    import shutil
    import signal
    c = certs.get()
    cert = os.path.join(env.logdir, env.name + ".server.pem")
    key = os.path.join(env.logdir, env.name + ".server.key")
    shutil.copy(c.server.cert_file, cert)
    shutil.copy(c.server.key_file, key)
    s = Secure(env, tls_protocol="SSL", creds=False, cert_file=cert, key_file=key)
    old = kwire.Conn(s.tls, ssl_context=s.ssl_context())
    old.api_versions(3)
    issuer = old.sock.getpeercert()["issuer"]
    # A certificate of another CA: new connections get it after SIGHUP.
    shutil.copy(c.untrusted_server.cert_file, cert + ".tmp")
    shutil.copy(c.untrusted_server.key_file, key + ".tmp")
    os.replace(key + ".tmp", key)
    os.replace(cert + ".tmp", cert)
    env.sluice.signal(signal.SIGHUP)
    wait_for(lambda: log_count(env, r"TLS reloaded") >= 1, 10, "the TLS reload")
    other = ssl.create_default_context(cafile=c.other_ca_file)
    with kwire.Conn(s.tls, ssl_context=other) as k:
        k.api_versions(3)
        check(k.sock.getpeercert()["issuer"] != issuer, "the new certificate served")
    try:
        with kwire.Conn(s.tls, ssl_context=s.ssl_context(), timeout=5) as k:
            k.api_versions(3)
        fail("the old CA still verifies the new certificate")
    except ssl.SSLError:
        pass
    # The connection opened before keeps working.
    old.metadata([])
    old.close()
    # A broken file: the reload fails, the running certificate stays.
    with open(cert, "w") as f:
        f.write("not a certificate\n")
    env.sluice.signal(signal.SIGHUP)
    wait_for(lambda: log_count(env, r"TLS reload \(SIGHUP\) failed") >= 1, 10,
             "the failed reload logged")
    with kwire.Conn(s.tls, ssl_context=other) as k:
        k.api_versions(3)
    check((metric(s.metrics(), "sluice_security_reload_failures_total") or 0) >= 1,
          "failed reload counted")


register("tls_reload", tls_reload, direct=False, timeout=120, upstreams=("mock",))


# ---------------------------------------------------------------------------
# 7. The operator surface over HTTPS; no secret in what it shows


def admin_https(env):
    env.require_proxy()
    c = certs.get()
    http_port = free_port()
    s = Secure(env, extra=["--http.listen", "127.0.0.1:%d" % http_port,
                           "--http.tls_cert_file", c.server.cert_file,
                           "--http.tls_key_file", c.server.key_file,
                           "--http.admin_token", "tok-secret-123",
                           "--tls.key_password", "pw-secret-456",
                           "-X", "sasl.password=upstream-secret-789"])
    ctx = ssl.create_default_context(cafile=c.ca_file)
    base = "https://localhost:%d" % http_port
    with urllib.request.urlopen(base + "/metrics", context=ctx, timeout=10) as r:
        metrics = r.read().decode()
    check("sluice_tls_handshakes_total" in metrics, "security metrics served over HTTPS")
    # Plain HTTP on the HTTPS port gets nowhere.
    try:
        urllib.request.urlopen("http://127.0.0.1:%d/metrics" % http_port, timeout=5)
        fail("plain HTTP answered on the HTTPS port")
    except (urllib.error.URLError, ConnectionError, OSError):
        pass
    # A mutating call: wrong token refused, right one accepted.
    req = urllib.request.Request(base + "/v1/policy/reload", method="POST",
                                 headers={"Authorization": "Bearer tok-secret-12"})
    try:
        urllib.request.urlopen(req, context=ctx, timeout=10)
        fail("a wrong admin token was accepted")
    except urllib.error.HTTPError as e:
        eq(e.code, 401, "wrong token")
    texts = [metrics]
    for path in ("/v1/status", "/v1/metrics", "/v1/policy"):
        try:
            with urllib.request.urlopen(base + path, context=ctx, timeout=10) as r:
                texts.append(r.read().decode())
        except urllib.error.HTTPError:
            pass
    p = subprocess.run(env.sluice.argv[:1] + env.sluice.argv[1:] + ["config", "dump"],
                       capture_output=True, text=True, timeout=30)
    eq(p.returncode, 0, "config dump: %s" % p.stderr[-500:])
    texts.append(p.stdout)
    texts.append(open(env.sluice_log, errors="replace").read().split("\n", 1)[1])
    for secret in ("tok-secret-123", "pw-secret-456", "upstream-secret-789") + \
            tuple(USERS.values()):
        for t in texts:
            check(secret not in t, "a secret (%s...) is shown" % secret[:6])


register("admin_https", admin_https, direct=False, timeout=120, upstreams=("mock",))
