"""Test certificates, made at run time with the openssl command line: a CA,
a server certificate, client certificates, and the odd ones out. Nothing is
committed; everything lives in a temporary folder of this run.

  c = certs.get()                 # made once per process (per suite run)
  c.ca_file                       # the test CA (PEM); trust this
  c.server.cert_file, .key_file   # CN=localhost; SANs DNS:localhost,
                                  # IP:127.0.0.1, IP:::1; serverAuth
  c.server.pem_file               # key + certificate in one file: Kafka's
                                  # ssl.keystore.type=PEM keystore
  a = c.client("CN=alice,OU=ServiceUsers,O=Sluice")
  a.cert_file, a.key_file, a.pem_file, a.subject
  c.untrusted                     # a client certificate signed by another CA
  c.untrusted_server              # a "localhost" server one, same other CA
  c.other_ca_file                 # that other CA (trusted by nobody here)
  c.expired                       # a client certificate of the test CA that
                                  # expired in 2020 (openssl ca -enddate)
  c.security(protocol="SASL_SSL", mechanism=..., username=..., password=...,
             client=a)            # the drivers' "security" request field

Subjects are written as in Kafka's principals ("CN=alice,OU=...,O=..."),
most specific first; openssl gets them in its own "/O=.../OU=.../CN=..."
form. Keys are EC P-256 (fast to make; every client of the suite takes
them), unencrypted PKCS#8 ("BEGIN PRIVATE KEY"), which Kafka's PEM keystore
requires. Certificates are valid from now for 30 days, SHA-256.

get() makes the set once per process into a folder of its own (removed by
harness.run_at_end); Certs(root) makes one into root (e.g. for a cluster
run on its own with kafka_cluster.py).
"""

import os
import shutil
import subprocess
import tempfile
import threading

DAYS = 30


class CertError(Exception):
    pass


def _openssl(*args, cwd=None):
    p = subprocess.run(["openssl"] + list(args), capture_output=True, text=True, timeout=60,
                       cwd=cwd)
    if p.returncode != 0:
        raise CertError("openssl %s: exit %d\n%s" % (" ".join(args), p.returncode,
                                                    p.stderr[-2000:]))
    return p.stdout


def openssl_subject(subject):
    """"CN=alice,OU=Apps,O=Sluice" -> "/O=Sluice/OU=Apps/CN=alice"."""
    parts = [p.strip() for p in subject.split(",") if p.strip()]
    for p in parts:
        if "=" not in p or "/" in p:
            raise CertError("subject %r: expected NAME=value parts separated by commas" % subject)
    return "/" + "/".join(reversed(parts))


class Pair:
    """A certificate and its key (PEM files)."""

    def __init__(self, name, subject, cert_file, key_file, pem_file, ca_file):
        self.name = name
        self.subject = subject
        self.cert_file = cert_file
        self.key_file = key_file
        self.pem_file = pem_file  # key, then certificate
        self.ca_file = ca_file  # the CA that signed it

    def __repr__(self):
        return "Pair(%s, %r)" % (self.name, self.subject)


EXT_SERVER = """\
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1
"""

EXT_CLIENT = """\
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
"""

# A minimal `openssl ca` setup: the only way openssl 3.0 sets a start and
# end date of its choosing (x509 -days cannot go negative).
CA_CONF = """\
[ ca ]
default_ca = test_ca
[ test_ca ]
dir = {dir}
database = $dir/index.txt
new_certs_dir = $dir/issued
serial = $dir/serial
certificate = {cert}
private_key = {key}
default_md = sha256
policy = any
copy_extensions = none
unique_subject = no
x509_extensions = client_ext
[ any ]
commonName = supplied
organizationalUnitName = optional
organizationName = optional
[ client_ext ]
{client_ext}
"""


class Certs:
    def __init__(self, root):
        self.root = root
        os.makedirs(root, exist_ok=True)
        self._lock = threading.Lock()
        self._clients = {}
        self.ca_file, self.ca_key = self._ca("ca", "CN=Sluice Test CA,O=Sluice")
        self.other_ca_file, self.other_ca_key = self._ca(
            "other-ca", "CN=Untrusted Test CA,O=Elsewhere")
        self.server = self._issue("server", "CN=localhost,O=Sluice", EXT_SERVER)
        self.untrusted_server = self._issue("untrusted-server", "CN=localhost,O=Elsewhere",
                                            EXT_SERVER, ca=(self.other_ca_file,
                                                            self.other_ca_key))
        self.untrusted = self._issue("untrusted-client", "CN=mallory,OU=Apps,O=Elsewhere",
                                     EXT_CLIENT, ca=(self.other_ca_file, self.other_ca_key))
        self._expired = None

    def _path(self, name):
        return os.path.join(self.root, name)

    def _key(self, path):
        _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                 "-out", path)
        os.chmod(path, 0o600)

    def _ca(self, name, subject):
        key, cert = self._path(name + ".key"), self._path(name + ".pem")
        self._key(key)
        _openssl("req", "-new", "-x509", "-key", key, "-out", cert, "-days", str(DAYS),
                 "-sha256", "-subj", openssl_subject(subject),
                 "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        return cert, key

    def _issue(self, name, subject, ext, ca=None):
        ca_cert, ca_key = ca or (self.ca_file, self.ca_key)
        key, csr = self._path(name + ".key"), self._path(name + ".csr")
        cert, ext_file = self._path(name + ".crt"), self._path(name + ".ext")
        self._key(key)
        _openssl("req", "-new", "-key", key, "-out", csr, "-subj", openssl_subject(subject))
        with open(ext_file, "w") as f:
            f.write(ext)
        _openssl("x509", "-req", "-in", csr, "-CA", ca_cert, "-CAkey", ca_key,
                 "-CAcreateserial", "-out", cert, "-days", str(DAYS), "-sha256",
                 "-extfile", ext_file)
        return self._pair(name, subject, cert, key, ca_cert)

    def _pair(self, name, subject, cert, key, ca_cert):
        pem = self._path(name + ".keystore.pem")
        with open(pem, "w") as out:
            for p in (key, cert):
                with open(p) as f:
                    out.write(f.read())
        os.chmod(pem, 0o600)
        return Pair(name, subject, cert, key, pem, ca_cert)

    def client(self, subject, name=None):
        """A client certificate of the test CA for subject (made once per
        subject and kept)."""
        with self._lock:
            if subject not in self._clients:
                name = name or "client-%d" % (len(self._clients) + 1)
                self._clients[subject] = self._issue(name, subject, EXT_CLIENT)
            return self._clients[subject]

    @property
    def expired(self):
        """CN=expired,OU=Apps,O=Sluice, valid 2020-01-01 to 2020-01-02."""
        with self._lock:
            if self._expired is None:
                self._expired = self._make_expired()
            return self._expired

    def _make_expired(self):
        name, subject = "expired-client", "CN=expired,OU=Apps,O=Sluice"
        d = self._path("ca-db")
        os.makedirs(os.path.join(d, "issued"), exist_ok=True)
        open(os.path.join(d, "index.txt"), "w").close()
        with open(os.path.join(d, "serial"), "w") as f:
            f.write("1000\n")
        conf = os.path.join(d, "ca.cnf")
        with open(conf, "w") as f:
            f.write(CA_CONF.format(dir=d, cert=self.ca_file, key=self.ca_key,
                                   client_ext=EXT_CLIENT))
        key, csr, cert = (self._path(name + ".key"), self._path(name + ".csr"),
                          self._path(name + ".crt"))
        self._key(key)
        _openssl("req", "-new", "-key", key, "-out", csr, "-subj", openssl_subject(subject))
        _openssl("ca", "-batch", "-config", conf, "-in", csr, "-out", cert, "-notext",
                 "-preserveDN", "-startdate", "20200101000000Z", "-enddate", "20200102000000Z")
        return self._pair(name, subject, cert, key, self.ca_file)

    def security(self, protocol="SSL", mechanism=None, username=None, password=None,
                 client=None, ca_file=None, server_hostname=None):
        """The "security" field of the drivers' request (extclients.py):
        trusts the test CA unless ca_file says otherwise; client: a Pair
        whose certificate the client presents (mTLS)."""
        sec = {"protocol": protocol}
        if protocol in ("SSL", "SASL_SSL"):
            sec["ca_file"] = ca_file or self.ca_file
            if client is not None:
                sec["cert_file"] = client.cert_file
                sec["key_file"] = client.key_file
            if server_hostname:
                sec["server_hostname"] = server_hostname
        if protocol.startswith("SASL_"):
            sec.update(mechanism=mechanism, username=username, password=password)
        return sec


_certs = None
_certs_lock = threading.Lock()


def get():
    """The run's certificates, made on first use into a temporary folder
    removed at the end of the run."""
    global _certs
    with _certs_lock:
        if _certs is None:
            root = tempfile.mkdtemp(prefix="sluice-certs-")
            try:
                _certs = Certs(root)
            except BaseException:
                shutil.rmtree(root, ignore_errors=True)
                raise
            try:
                import harness
                harness.at_end(lambda: shutil.rmtree(root, ignore_errors=True))
            except ImportError:  # used on its own
                pass
        return _certs


if __name__ == "__main__":
    import sys
    c = Certs(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="sluice-certs-"))
    for p in (c.server, c.client("CN=alice,OU=ServiceUsers,O=Sluice"),
              c.client("CN=bob,OU=Apps,O=Sluice"), c.untrusted, c.expired):
        print(p.name, p.subject, p.cert_file)
    print("CA", c.ca_file)
