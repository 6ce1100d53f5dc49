// segmentio/kafka-go producer (kafka.Writer) driven by tests/integration
// (extclients.py), with the JSON contract of ../produce/main.go on stdin and
// stdout.
//
// kafka-go is a pure-Go client of its own protocol code: not idempotent at
// all ("idempotent": true is refused), one Produce request per partition
// batch, records' offsets from the Completion callback (in order per
// partition), acks=0 without offsets (-1). Every record goes to its own
// partition (a Balancer that returns the record's partition) with its own
// CreateTime timestamp (null: the time of writing). props:
//
//	batch_size, batch_timeout_ms, max_attempts: numbers
package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/compress"
)

type request struct {
	Brokers     string                     `json:"brokers"`
	Topic       string                     `json:"topic"`
	Acks        string                     `json:"acks"`
	Compression string                     `json:"compression"`
	Idempotent  *bool                      `json:"idempotent"`
	ClientID    string                     `json:"client_id"`
	TimeoutMs   int                        `json:"timeout_ms"`
	Props       map[string]json.RawMessage `json:"props"`
	Records     []struct {
		Partition int          `json:"partition"`
		Key       *string      `json:"key"`
		Value     *string      `json:"value"`
		Headers   [][2]*string `json:"headers"`
		Timestamp *int64       `json:"timestamp"`
	} `json:"records"`
}

var start = time.Now()

var emitted atomic.Bool

func emit(v map[string]any) {
	if !emitted.CompareAndSwap(false, true) {
		return
	}
	v["elapsed_ms"] = time.Since(start).Milliseconds()
	b, _ := json.Marshal(v)
	os.Stdout.Write(append(b, '\n'))
}

func die(err error) {
	emit(map[string]any{"ok": false, "error": err.Error()})
	os.Exit(1)
}

func b64(s *string) ([]byte, error) {
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

// byPartition sends each record to the partition it names.
type byPartition struct{}

func (byPartition) Balance(msg kafka.Message, partitions ...int) int { return msg.Partition }

func main() {
	in, err := io.ReadAll(os.Stdin)
	if err != nil {
		die(err)
	}
	var req request
	if err := json.Unmarshal(in, &req); err != nil {
		die(fmt.Errorf("bad request: %v", err))
	}
	start = time.Now()
	timeout := time.Duration(req.TimeoutMs) * time.Millisecond
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	if req.Idempotent != nil && *req.Idempotent {
		die(errors.New("kafka-go has no idempotent producer"))
	}
	clientID := req.ClientID
	if clientID == "" {
		clientID = "sluice-it-kafkago"
	}
	w := &kafka.Writer{
		Addr:         kafka.TCP(strings.Split(req.Brokers, ",")...),
		Topic:        req.Topic,
		Balancer:     byPartition{},
		BatchTimeout: 5 * time.Millisecond,
		BatchSize:    100,
		WriteTimeout: timeout,
		ReadTimeout:  timeout,
		MaxAttempts:  10,
		Transport:    &kafka.Transport{ClientID: clientID},
	}
	switch req.Acks {
	case "all", "-1":
		w.RequiredAcks = kafka.RequireAll
	case "1":
		w.RequiredAcks = kafka.RequireOne
	case "0":
		w.RequiredAcks = kafka.RequireNone
	default:
		die(fmt.Errorf("unknown acks %q", req.Acks))
	}
	switch req.Compression {
	case "", "none":
	case "gzip":
		w.Compression = kafka.Compression(compress.Gzip)
	case "snappy":
		w.Compression = kafka.Compression(compress.Snappy)
	case "lz4":
		w.Compression = kafka.Compression(compress.Lz4)
	case "zstd":
		w.Compression = kafka.Compression(compress.Zstd)
	default:
		die(fmt.Errorf("unknown compression %q", req.Compression))
	}
	for name, raw := range req.Props {
		var n int
		if err := json.Unmarshal(raw, &n); err != nil {
			die(fmt.Errorf("props.%s: %v", name, err))
		}
		switch name {
		case "batch_size":
			w.BatchSize = n
		case "batch_timeout_ms":
			w.BatchTimeout = time.Duration(n) * time.Millisecond
		case "max_attempts":
			w.MaxAttempts = n
		default:
			die(fmt.Errorf("unknown props key %q", name))
		}
	}

	msgs := make([]kafka.Message, len(req.Records))
	queue := map[int][]int{} // partition -> input indexes, in order
	for i, r := range req.Records {
		key, err := b64(r.Key)
		if err != nil {
			die(fmt.Errorf("record %d key: %v", i, err))
		}
		value, err := b64(r.Value)
		if err != nil {
			die(fmt.Errorf("record %d value: %v", i, err))
		}
		m := kafka.Message{Partition: r.Partition, Key: key, Value: value}
		for j, h := range r.Headers {
			if h[0] == nil {
				die(fmt.Errorf("record %d header %d: null name", i, j))
			}
			v, err := b64(h[1])
			if err != nil {
				die(fmt.Errorf("record %d header %d: %v", i, j, err))
			}
			m.Headers = append(m.Headers, kafka.Header{Key: *h[0], Value: v})
		}
		if r.Timestamp != nil {
			m.Time = time.UnixMilli(*r.Timestamp)
		}
		msgs[i] = m
		queue[r.Partition] = append(queue[r.Partition], i)
	}
	offsets := make([]int64, len(msgs))
	for i := range offsets {
		offsets[i] = -1
	}
	var mu sync.Mutex
	w.Completion = func(done []kafka.Message, err error) {
		mu.Lock()
		defer mu.Unlock()
		for _, m := range done {
			q := queue[m.Partition]
			if len(q) == 0 {
				continue
			}
			if err == nil && req.Acks != "0" {
				offsets[q[0]] = m.Offset
			}
			queue[m.Partition] = q[1:]
		}
	}
	go func() {
		time.Sleep(2*timeout + 15*time.Second)
		die(fmt.Errorf("records still unanswered %v after the run began", 2*timeout+15*time.Second))
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 2*timeout)
	defer cancel()
	werr := w.WriteMessages(ctx, msgs...)
	if cerr := w.Close(); cerr != nil {
		fmt.Fprintf(os.Stderr, "close: %v\n", cerr)
	}

	errs := make([]error, len(msgs))
	var we kafka.WriteErrors
	if errors.As(werr, &we) {
		copy(errs, we)
	} else if werr != nil {
		for i := range errs {
			errs[i] = werr
		}
	}
	acked := 0
	out := []string{}
	for i, err := range errs {
		if err == nil {
			acked++
			continue
		}
		offsets[i] = -1
		if len(out) < 50 {
			out = append(out, fmt.Sprintf("record %d (partition %d): %v", i, msgs[i].Partition, err))
		}
	}
	if n := len(msgs) - acked; n > len(out) {
		out = append(out, fmt.Sprintf("... %d errors in all", n))
	}
	emit(map[string]any{"ok": true, "acked": acked, "errors": out, "offsets": offsets})
}
