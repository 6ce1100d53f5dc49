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
//
// "security" (optional; contract.Security): Transport.TLS (ServerName from
// server_hostname, else kafka-go's own: the dialled host) and
// Transport.SASL with kafka-go's sasl/plain and sasl/scram (PLAIN,
// SCRAM-SHA-256, SCRAM-SHA-512).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/compress"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"

	"sluice/tests/go/internal/contract"
)

// byPartition sends each record to the partition it names.
type byPartition struct{}

func (byPartition) Balance(msg kafka.Message, partitions ...int) int { return msg.Partition }

// applySecurity maps the request's "security" onto the transport.
func applySecurity(t *kafka.Transport, sec *contract.Security) error {
	if sec == nil {
		return nil
	}
	if err := sec.Check("kafka-go", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"); err != nil {
		return err
	}
	var err error
	if t.TLS, err = sec.TLSConfig(); err != nil {
		return err
	}
	if sec.SASL() {
		switch sec.Mechanism {
		case "PLAIN":
			t.SASL = plain.Mechanism{Username: sec.Username, Password: sec.Password}
		case "SCRAM-SHA-256":
			t.SASL, err = scram.Mechanism(scram.SHA256, sec.Username, sec.Password)
		case "SCRAM-SHA-512":
			t.SASL, err = scram.Mechanism(scram.SHA512, sec.Username, sec.Password)
		}
	}
	return err
}

func main() {
	req := contract.Read()
	timeout := req.Timeout()
	if req.Idempotent != nil && *req.Idempotent {
		contract.Die(errors.New("kafka-go has no idempotent producer"))
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
	if err := applySecurity(w.Transport.(*kafka.Transport), req.Security); err != nil {
		contract.Die(err)
	}
	switch req.Acks {
	case "all", "-1":
		w.RequiredAcks = kafka.RequireAll
	case "1":
		w.RequiredAcks = kafka.RequireOne
	case "0":
		w.RequiredAcks = kafka.RequireNone
	default:
		contract.Die(fmt.Errorf("unknown acks %q", req.Acks))
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
		contract.Die(fmt.Errorf("unknown compression %q", req.Compression))
	}
	for name, raw := range req.Props {
		var n int
		if err := json.Unmarshal(raw, &n); err != nil {
			contract.Die(fmt.Errorf("props.%s: %v", name, err))
		}
		switch name {
		case "batch_size":
			w.BatchSize = n
		case "batch_timeout_ms":
			w.BatchTimeout = time.Duration(n) * time.Millisecond
		case "max_attempts":
			w.MaxAttempts = n
		default:
			contract.Die(fmt.Errorf("unknown props key %q", name))
		}
	}

	msgs := make([]kafka.Message, len(req.Records))
	queue := map[int][]int{} // partition -> input indexes, in order
	for i, r := range req.Records {
		key, err := contract.B64(r.Key)
		if err != nil {
			contract.Die(fmt.Errorf("record %d key: %v", i, err))
		}
		value, err := contract.B64(r.Value)
		if err != nil {
			contract.Die(fmt.Errorf("record %d value: %v", i, err))
		}
		m := kafka.Message{Partition: int(r.Partition), Key: key, Value: value}
		for j, h := range r.Headers {
			if h[0] == nil {
				contract.Die(fmt.Errorf("record %d header %d: null name", i, j))
			}
			v, err := contract.B64(h[1])
			if err != nil {
				contract.Die(fmt.Errorf("record %d header %d: %v", i, j, err))
			}
			m.Headers = append(m.Headers, kafka.Header{Key: *h[0], Value: v})
		}
		if r.Timestamp != nil {
			m.Time = time.UnixMilli(*r.Timestamp)
		}
		msgs[i] = m
		queue[int(r.Partition)] = append(queue[int(r.Partition)], i)
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
		contract.Die(fmt.Errorf("records still unanswered %v after the run began", 2*timeout+15*time.Second))
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
	contract.Answer(errs, offsets, func(i int) int32 { return int32(msgs[i].Partition) })
}
