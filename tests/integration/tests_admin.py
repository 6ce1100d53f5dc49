"""Operator surface (issue 5): /metrics checked by promtool under load and
scraped by a real Prometheus server, health endpoints, and the admin API
(pause holds a connector, resume restores it, a quota override takes effect
and expires, auth and malformed requests)."""

import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

from harness import Skip, check, eq, free_port, log, test, total_high, wait_for
from tests_policy import Flood, policy_file, rate, two_connectors

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOKEN = "it-secret-token"
ADMIN_FILE = policy_file("admin", two_connectors("1MiB", "4MiB"))
HTTP_PORT = free_port()
ARGS = ["--policy", ADMIN_FILE, "--http.listen", "127.0.0.1:%d" % HTTP_PORT,
        "--http.admin_token", TOKEN]


def http(method, path, body=None, token=None, port=None):
    url = "http://127.0.0.1:%d%s" % (port or HTTP_PORT, path)
    data = body.encode() if isinstance(body, str) else body
    req = urllib.request.Request(url, data=data, method=method)
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def metric(text, name, **labels):
    want = ",".join('%s="%s"' % kv for kv in labels.items())
    for line in text.splitlines():
        if line.startswith(name + "{" + want + "}") or (not labels and line.startswith(name + " ")):
            return float(line.rsplit(" ", 1)[1])
    return None


@test(direct=False, timeout=120, sluice_args=ARGS)
def admin_metrics_under_load(env):
    t = env.topic("m", 1)
    fl = Flood("librdkafka", env.bootstrap, "slow", t)
    wait_for(lambda: total_high(env.upstream, t, 1) > 200, 30, "records upstream")
    st, text = http("GET", "/metrics")
    eq(st, 200, "/metrics status")
    if shutil.which("promtool"):
        p = subprocess.run(["promtool", "check", "metrics"], input=text.encode(),
                           capture_output=True, timeout=30)
        check(p.returncode == 0, "promtool check metrics: %s" % (p.stdout + p.stderr).decode())
    else:
        raise Skip("promtool missing")
    for name in ("sluice_connector_bytes_total", "sluice_broker_produce_latency_seconds_bucket",
                 "sluice_client_connections", "sluice_policy_generation",
                 "sluice_event_loop_busy_seconds_total"):
        check(name in text, "%s missing from /metrics" % name)
    check("it-secret-token" not in text, "the admin token appears in /metrics")
    errs = fl.stop()
    check(not errs, "producer errors: %s" % errs[:3])
    # Counters match what the client sent (every acknowledged record).
    st, text = http("GET", "/metrics")
    got = metric(text, "sluice_connector_records_total", connector="slow", **{"class": "std"})
    eq(got, fl.acked, "sluice_connector_records_total for slow")
    eq(http("GET", "/healthz")[0], 200, "/healthz")
    st, body = http("GET", "/readyz")
    eq(st, 200, "/readyz: %s" % body)
    st, body = http("GET", "/v1/status")
    s = json.loads(body)
    check(any(c["name"] == "slow" and c["records_total"] == fl.acked for c in s["connectors"]),
          "/v1/status lacks the connector: %s" % body[:300])
    check(len(s["brokers"]) == 3, "/v1/status brokers: %s" % s["brokers"])
    st, page = http("GET", "/")
    check(st == 200 and "<html" in page.lower(), "status page not served")


@test(direct=False, timeout=180, sluice_args=ARGS)
def admin_prometheus_scrapes(env):
    """A real Prometheus server on loopback scrapes Sluice under load; its
    query API then reports the per-connector record counter the client's
    acknowledgements add up to."""
    if not shutil.which("prometheus"):
        raise Skip("prometheus missing (Debian package prometheus)")
    t = env.topic("prom", 1)
    d = tempfile.mkdtemp(prefix="sluice-prom-")
    port = free_port()
    with open(os.path.join(d, "prometheus.yml"), "w") as f:
        f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                "scrape_configs:\n  - job_name: sluice\n    static_configs:\n"
                "      - targets: ['127.0.0.1:%d']\n" % HTTP_PORT)
    log_f = open(os.path.join(env.logdir, env.name + ".prometheus.log"), "wb")
    prom = subprocess.Popen(["prometheus", "--config.file=" + os.path.join(d, "prometheus.yml"),
                             "--storage.tsdb.path=" + os.path.join(d, "data"),
                             "--web.listen-address=127.0.0.1:%d" % port],
                            stdout=log_f, stderr=log_f, stdin=subprocess.DEVNULL)
    try:
        fl = Flood("kafka-python", env.bootstrap, "fast", t)
        wait_for(lambda: total_high(env.upstream, t, 1) > 500, 30, "records upstream")
        errs = fl.stop()
        check(not errs, "producer errors: %s" % errs[:3])

        def query():
            q = urllib.parse.quote('sluice_connector_records_total{connector="fast"}')
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/api/v1/query?query=%s"
                                            % (port, q), timeout=5) as r:
                    res = json.loads(r.read())["data"]["result"]
            except Exception:
                return None
            return float(res[0]["value"][1]) if res else None

        import urllib.parse  # noqa: F401  (used in query)
        got = wait_for(lambda: query() == fl.acked and fl.acked, 30,
                       lambda: "Prometheus to report %d records (has %r)" % (fl.acked, query()))
        log("Prometheus reports %d records for connector fast" % got)
    finally:
        prom.terminate()
        try:
            prom.wait(15)
        except subprocess.TimeoutExpired:
            prom.kill()
        log_f.close()
        shutil.rmtree(d, ignore_errors=True)


@test(direct=False, timeout=180, sluice_args=ARGS)
def admin_pause_resume_override(env):
    # Auth and malformed requests first.
    st, body = http("POST", "/v1/connectors/slow/pause")
    eq(st, 401, "pause without a token: %s" % body)
    st, body = http("POST", "/v1/connectors/slow/pause", token="wrong")
    eq(st, 401, "pause with a wrong token")
    st, body = http("POST", "/v1/connectors/slow/quota", body="{not json", token=TOKEN)
    eq(st, 400, "malformed JSON")
    check(json.loads(body).get("error"), "400 without a JSON error: %s" % body)
    st, body = http("POST", "/v1/connectors/slow/quota", body='{"bytes_per_sec": -1}', token=TOKEN)
    eq(st, 400, "invalid override")
    st, body = http("POST", "/v1/connectors/nobody/pause", token=TOKEN)
    eq(st, 404, "unknown connector")

    t = env.topic("p", 1)
    fl = Flood("librdkafka", env.bootstrap, "slow", t)
    wait_for(lambda: total_high(env.upstream, t, 1) > 0, 20, "records upstream")
    time.sleep(2)
    before = rate(env, t, 3)
    eq(http("POST", "/v1/connectors/slow/pause", token=TOKEN)[0], 200, "pause")
    # Requests read before the pause still settle: wait until the
    # watermark stands still, then measure.
    wait_for(lambda: rate(env, t, 1) < 0.01, 15, "the paused connector's traffic to stop")
    paused = rate(env, t, 3)
    eq(http("POST", "/v1/connectors/slow/resume", token=TOKEN)[0], 200, "resume")
    wait_for(lambda: rate(env, t, 1) > 0.5, 15, "traffic to resume")
    resumed = rate(env, t, 3)
    log("before %.3f, paused %.3f, resumed %.3f MiB/s" % (before, paused, resumed))
    check(paused < 0.01, "upstream rate while paused: %.3f MiB/s" % paused)
    check(resumed > 0.8, "rate after resume: %.3f MiB/s" % resumed)
    # A temporary override takes effect and expires.
    st, body = http("POST", "/v1/connectors/slow/quota", token=TOKEN,
                    body='{"bytes_per_sec": 3145728, "ttl_ms": 6000}')
    eq(st, 200, "override: %s" % body)
    time.sleep(1)
    over = rate(env, t, 3)
    wait_for(lambda: rate(env, t, 1) < 1.5, 15, "the override to expire")
    after = rate(env, t, 3)
    log("override %.3f MiB/s, after expiry %.3f MiB/s" % (over, after))
    check(2.4 < over < 3.6, "rate under a 3 MiB/s override: %.3f" % over)
    check(0.7 < after < 1.3, "rate after the override expired: %.3f" % after)
    errs = fl.stop()
    # Held requests were answered with retriable errors and retried:
    # nothing is lost.
    check(not errs, "producer errors: %s" % errs[:3])
    wait_for(lambda: total_high(env.upstream, t, 1) == fl.acked, 30, "all acked records upstream")


@test(direct=False, timeout=60)
def admin_alert_rules_valid(env):
    if not shutil.which("promtool"):
        raise Skip("promtool missing")
    p = subprocess.run(["promtool", "check", "rules",
                        os.path.join(ROOT, "deploy", "prometheus-alerts.yml")],
                       capture_output=True, timeout=30)
    check(p.returncode == 0, "promtool check rules: %s" % (p.stdout + p.stderr).decode())


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync",
                  "--virtual-time-budget=6000"]


@test(direct=False, timeout=180, sluice_args=ARGS)
def admin_status_page_chromium(env):
    """The status page in headless Chromium: loads without console errors,
    shows the connector and charts holding data. Leaves a screenshot in the
    test's log directory (docs/status-page.png in the README comes from it)."""
    chromium = shutil.which("chromium")
    if not chromium:
        raise Skip("chromium missing (Debian package chromium)")
    t = env.topic("page", 1)
    fl = Flood("librdkafka", env.bootstrap, "slow", t)
    wait_for(lambda: total_high(env.upstream, t, 1) > 100, 30, "records upstream")
    url = "http://127.0.0.1:%d/" % HTTP_PORT
    prof = tempfile.mkdtemp(prefix="sluice-chromium-")
    try:
        p = subprocess.run([chromium] + CHROMIUM_FLAGS +
                           ["--user-data-dir=" + prof, "--enable-logging=stderr", "--v=0",
                            "--dump-dom", url], capture_output=True, timeout=90)
        dom = p.stdout.decode("utf-8", "replace")
        console = [l for l in p.stderr.decode("utf-8", "replace").splitlines()
                   if "CONSOLE" in l or "Uncaught" in l]
        check('data-state="ok"' in dom, "page state is not ok: %s" %
              (dom[:400] if dom else p.stderr.decode()[-800:]))
        check("slow" in dom, "the connector is not shown")
        import re
        pts = [int(x) for x in re.findall(r'data-points="(\d+)"', dom)]
        check(pts and max(pts) > 0, "no chart holds data: %s" % pts)
        errors = [l for l in console if "error" in l.lower()]
        check(not errors, "console errors: %s" % errors[:5])
        shot = os.path.join(env.logdir, "status-page.png")
        subprocess.run([chromium] + CHROMIUM_FLAGS +
                       ["--user-data-dir=" + prof, "--window-size=1280,1000",
                        "--screenshot=" + shot, url], capture_output=True, timeout=90)
        check(os.path.exists(shot) and os.path.getsize(shot) > 10000, "no screenshot")
        log("screenshot: %s" % shot)
    finally:
        shutil.rmtree(prof, ignore_errors=True)
        errs = fl.stop()
        check(not errs, "producer errors: %s" % errs[:3])


@test(direct=False, timeout=60, sluice_args=ARGS)
def admin_events_and_annotations(env):
    """The timeline in /v1/status: POST /v1/annotations needs the token (401
    without it) and a non-empty text (400); an annotation, a pause and a
    resume appear as events, oldest first, with the wall-clock time and a
    rising sequence number; an annotation longer than an event keeps is cut
    at a character boundary."""
    eq(http("POST", "/v1/annotations", json.dumps({"text": "x"}))[0], 401, "no token")
    eq(http("POST", "/v1/annotations", json.dumps({"text": ""}), token=TOKEN)[0], 400,
       "empty text")
    eq(http("POST", "/v1/annotations", "not json", token=TOKEN)[0], 400, "not JSON")
    t0 = time.time() * 1000
    code, body = http("POST", "/v1/annotations", json.dumps({"text": "deploy 42 starts"}),
                      token=TOKEN)
    eq(code, 200, "annotation: %s" % body)
    eq(http("POST", "/v1/connectors/slow/pause", "{}", token=TOKEN)[0], 200, "pause")
    eq(http("POST", "/v1/connectors/slow/resume", "", token=TOKEN)[0], 200, "resume")
    long_text = "\u20ac" * 300
    eq(http("POST", "/v1/annotations", json.dumps({"text": long_text}), token=TOKEN)[0], 200,
       "long annotation")
    ev = json.loads(http("GET", "/v1/status")[1])["events"]
    log("events: %s" % [(e["kind"], e["text"][:40]) for e in ev])
    mine = [e for e in ev if e["time_ms"] >= t0 - 1000]
    eq([(e["kind"], e["text"]) for e in mine[:3]],
       [("annotation", "deploy 42 starts"), ("operator", "connector slow: pause"),
        ("operator", "connector slow: resume")], "events in order")
    check(all(a["seq"] < b["seq"] for a, b in zip(mine, mine[1:])), "sequence numbers rise")
    check(all(abs(e["time_ms"] - time.time() * 1000) < 10000 for e in mine), "wall-clock times")
    cut = mine[3]["text"]
    check(0 < len(cut.encode()) < 200 and set(cut) == {"\u20ac"},
          "a long annotation cut at a character boundary: %d bytes" % len(cut.encode()))
