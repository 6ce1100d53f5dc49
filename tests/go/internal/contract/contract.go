// Package contract is the JSON contract every Go producer driver of the
// suite speaks with tests/integration/extclients.py (see ../../produce/main.go
// for the whole text): the request read from stdin, and the one answer line
// written to stdout.
package contract

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// Request is what the suite sends on stdin.
type Request struct {
	Brokers     string                     `json:"brokers"`
	Topic       string                     `json:"topic"`
	Acks        string                     `json:"acks"`
	Compression string                     `json:"compression"`
	Idempotent  *bool                      `json:"idempotent"`
	ClientID    string                     `json:"client_id"`
	TimeoutMs   int                        `json:"timeout_ms"`
	Props       map[string]json.RawMessage `json:"props"`
	Records     []Record                   `json:"records"`
	Security    *Security                  `json:"security"` // nil: plaintext
}

// Security is the request's optional "security" field: TLS and SASL.
// Check validates it; a driver maps it onto its client's own settings and
// refuses (Unsupported) what the client cannot do, never falling back to
// plaintext.
type Security struct {
	Protocol       string `json:"protocol"`  // PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL
	Mechanism      string `json:"mechanism"` // PLAIN, SCRAM-SHA-256, SCRAM-SHA-512
	Username       string `json:"username"`
	Password       string `json:"password"`
	CAFile         string `json:"ca_file"`         // PEM; "": the system's roots
	CertFile       string `json:"cert_file"`       // PEM client certificate (mTLS)
	KeyFile        string `json:"key_file"`        // its key
	ServerHostname string `json:"server_hostname"` // "": the dialled address's host
}

// Unsupported is the error of a request this client cannot serve.
func Unsupported(client, format string, args ...any) error {
	return fmt.Errorf("%s: unsupported %s", client, fmt.Sprintf(format, args...))
}

// Check normalizes and validates s (protocol and mechanism upper-cased);
// mechanisms lists what the client can do.
func (s *Security) Check(client string, mechanisms ...string) error {
	s.Protocol = strings.ToUpper(s.Protocol)
	if s.Protocol == "" {
		s.Protocol = "PLAINTEXT"
	}
	switch s.Protocol {
	case "PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL":
	default:
		return fmt.Errorf("%s: unknown security.protocol %q", client, s.Protocol)
	}
	if s.SASL() {
		s.Mechanism = strings.ToUpper(s.Mechanism)
		switch s.Mechanism {
		case "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
		default:
			return fmt.Errorf("%s: unknown sasl mechanism %q", client, s.Mechanism)
		}
		if !slices.Contains(mechanisms, s.Mechanism) {
			return Unsupported(client, "sasl mechanism %s", s.Mechanism)
		}
	}
	if !s.TLS() && (s.CAFile != "" || s.CertFile != "" || s.KeyFile != "" || s.ServerHostname != "") {
		return fmt.Errorf("security: TLS files or server_hostname with protocol %s", s.Protocol)
	}
	if (s.CertFile == "") != (s.KeyFile == "") {
		return errors.New("security: cert_file and key_file go together")
	}
	return nil
}

// TLS says whether the protocol is SSL or SASL_SSL.
func (s *Security) TLS() bool { return s.Protocol == "SSL" || s.Protocol == "SASL_SSL" }

// SASL says whether the protocol is SASL_PLAINTEXT or SASL_SSL.
func (s *Security) SASL() bool { return strings.HasPrefix(s.Protocol, "SASL_") }

// TLSConfig is the crypto/tls configuration of s (nil without TLS): the
// CA file's certificates as the only roots, the client certificate, and
// ServerName when server_hostname is set (the three Go clients fill it in
// from the dialled host otherwise).
func (s *Security) TLSConfig() (*tls.Config, error) {
	if !s.TLS() {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: s.ServerHostname}
	if s.CAFile != "" {
		pem, err := os.ReadFile(s.CAFile)
		if err != nil {
			return nil, fmt.Errorf("security.ca_file: %v", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("security.ca_file %s: no PEM certificate", s.CAFile)
		}
	}
	if s.CertFile != "" {
		pair, err := tls.LoadX509KeyPair(s.CertFile, s.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("security.cert_file/key_file: %v", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

// Record is one record of the request; nil key, value or header value
// means null.
type Record struct {
	Partition int32        `json:"partition"`
	Key       *string      `json:"key"`
	Value     *string      `json:"value"`
	Headers   [][2]*string `json:"headers"`
	Timestamp *int64       `json:"timestamp"` // nil: the client stamps it
}

var start = time.Now()

// Elapsed is the time since the request was read.
func Elapsed() int64 { return time.Since(start).Milliseconds() }

var emitted atomic.Bool

// Emit writes the answer line; only the first call writes (a watchdog's
// Die and main's answer cannot both reach stdout).
func Emit(v map[string]any) {
	if !emitted.CompareAndSwap(false, true) {
		return
	}
	v["elapsed_ms"] = Elapsed()
	b, _ := json.Marshal(v)
	os.Stdout.Write(append(b, '\n'))
}

// Die answers {"ok": false, "error": ...} and exits 1.
func Die(err error) {
	Emit(map[string]any{"ok": false, "error": err.Error()})
	os.Exit(1)
}

// Read parses the request from stdin (Die on a bad one) and starts the
// elapsed_ms clock.
func Read() *Request {
	in, err := io.ReadAll(os.Stdin)
	if err != nil {
		Die(err)
	}
	var req Request
	if err := json.Unmarshal(in, &req); err != nil {
		Die(fmt.Errorf("bad request: %v", err))
	}
	start = time.Now()
	return &req
}

// Timeout is the request's timeout_ms (30 s when unset).
func (r *Request) Timeout() time.Duration {
	if r.TimeoutMs <= 0 {
		return 30 * time.Second
	}
	return time.Duration(r.TimeoutMs) * time.Millisecond
}

// B64 decodes a nullable base64 string; "" decodes to a non-nil empty
// slice, which the clients write as empty, not null.
func B64(s *string) ([]byte, error) {
	if s == nil {
		return nil, nil
	}
	b, err := base64.StdEncoding.DecodeString(*s)
	if err != nil {
		return nil, err
	}
	if b == nil {
		b = []byte{}
	}
	return b, nil
}

// Answer emits the result of a run that got its records' outcomes: errs
// and offsets in input order, partitions for the messages.
func Answer(errs []error, offsets []int64, partition func(i int) int32) {
	acked := 0
	out := []string{}
	for i, err := range errs {
		if err == nil {
			acked++
			continue
		}
		offsets[i] = -1
		if len(out) < 50 {
			out = append(out, fmt.Sprintf("record %d (partition %d): %v", i, partition(i), err))
		}
	}
	if n := len(errs) - acked; n > len(out) {
		out = append(out, fmt.Sprintf("... %d errors in all", n))
	}
	Emit(map[string]any{"ok": true, "acked": acked, "errors": out, "offsets": offsets})
}
