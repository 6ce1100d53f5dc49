// Package contract is the JSON contract every Go producer driver of the
// suite speaks with tests/integration/extclients.py (see ../../produce/main.go
// for the whole text): the request read from stdin, and the one answer line
// written to stdout.
package contract

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
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
