// franz-go producer driven by tests/integration (extclients.py).
//
// Reads one JSON object on stdin:
//
//	{ "brokers": "127.0.0.1:9092[,h:p]", "topic": "t", "acks": "all"|"1"|"0",
//	  "compression": "none"|"gzip"|"snappy"|"lz4"|"zstd",
//	  "idempotent": true|false|null, "client_id": "...", "timeout_ms": 30000,
//	  "props": { see applyProps },
//	  "records": [ { "partition": 0, "key": b64|null, "value": b64|null,
//	                 "headers": [[name, b64|null], ...], "timestamp": ms } ] }
//
// Writes one JSON object as the last line on stdout:
//
//	{ "ok": true, "acked": N, "errors": ["..."], "offsets": [offset|-1 per record],
//	  "elapsed_ms": n }
//	or { "ok": false, "error": "...", "elapsed_ms": n }  (exit status 1)
//
// Every record goes to its own partition (ManualPartitioner) with its own
// CreateTime timestamp (null: the time of Produce()). franz-go writes a nil
// key, value or header value as null (length -1) and an empty one as empty,
// so all of make_records()' corners can be expressed. franz-go's own log
// lines go to stderr.
//
// Idempotence: franz-go is idempotent by default and refuses idempotence with
// acks other than all, so acks 0 and 1 imply DisableIdempotentWrite() and
// "idempotent": true with them is an error. With acks=0 the client has no
// offsets to report: every offset is -1.
//
// franz-go speaks Produce up to v13 (topic IDs instead of names; v12 when
// Metadata gave no topic IDs), sends a batch uncompressed when compressing
// grows it, and does not ask for auto topic creation (a missing topic is
// retried until the timeout: every record fails with the context deadline).
// An unreachable broker is not ok: false but every record failing likewise.
//
// "security" (optional; contract.Security): TLS through kgo.DialTLSConfig
// (ServerName from server_hostname, else franz-go's own: the dialled host),
// SASL through franz-go's pkg/sasl/plain and pkg/sasl/scram (PLAIN,
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

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kversion"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"sluice/tests/go/internal/contract"
)

func codec(name string) (kgo.CompressionCodec, error) {
	switch name {
	case "", "none":
		return kgo.NoCompression(), nil
	case "gzip":
		return kgo.GzipCompression(), nil
	case "snappy":
		return kgo.SnappyCompression(), nil
	case "lz4":
		return kgo.Lz4Compression(), nil
	case "zstd":
		return kgo.ZstdCompression(), nil
	}
	return kgo.CompressionCodec{}, fmt.Errorf("unknown compression %q", name)
}

// applyProps maps the client-specific "props" onto options; an unknown name
// is an error so that a typo in a test does not pass silently.
//
//	linger_ms, batch_max_bytes, max_buffered_records, record_retries,
//	request_retries, max_inflight (only without idempotence),
//	produce_request_timeout_ms, delivery_timeout_ms, dial_timeout_ms: numbers
//	max_version: a Kafka release such as "2.8" (caps every request key)
//	max_produce_version: a number, caps the Produce request version
//	allow_auto_topic_creation: bool
//	log_level: "error"|"warn"|"info"|"debug" (to stderr; default warn)
func applyProps(props map[string]json.RawMessage) ([]kgo.Opt, kgo.LogLevel, error) {
	var opts []kgo.Opt
	level := kgo.LogLevelWarn
	var versions *kversion.Versions
	produceMax := int16(-1)
	for name, raw := range props {
		num := func() (int, error) {
			var n int
			if err := json.Unmarshal(raw, &n); err != nil {
				return 0, fmt.Errorf("props.%s: %v", name, err)
			}
			return n, nil
		}
		str := func() (string, error) {
			var s string
			if err := json.Unmarshal(raw, &s); err != nil {
				return "", fmt.Errorf("props.%s: %v", name, err)
			}
			return s, nil
		}
		var err error
		var n int
		var s string
		switch name {
		case "linger_ms":
			if n, err = num(); err == nil {
				opts = append(opts, kgo.ProducerLinger(time.Duration(n)*time.Millisecond))
			}
		case "batch_max_bytes":
			if n, err = num(); err == nil {
				opts = append(opts, kgo.ProducerBatchMaxBytes(int32(n)))
			}
		case "max_buffered_records":
			if n, err = num(); err == nil {
				opts = append(opts, kgo.MaxBufferedRecords(n))
			}
		case "record_retries":
			if n, err = num(); err == nil {
				opts = append(opts, kgo.RecordRetries(n))
			}
		case "request_retries":
			if n, err = num(); err == nil {
				opts = append(opts, kgo.RequestRetries(n))
			}
		case "max_inflight":
			if n, err = num(); err == nil {
				opts = append(opts, kgo.MaxProduceRequestsInflightPerBroker(n))
			}
		case "produce_request_timeout_ms":
			if n, err = num(); err == nil {
				opts = append(opts, kgo.ProduceRequestTimeout(time.Duration(n)*time.Millisecond))
			}
		case "delivery_timeout_ms": // counted from the record timestamps, see main
			if n, err = num(); err == nil {
				opts = append(opts, kgo.RecordDeliveryTimeout(time.Duration(n)*time.Millisecond))
			}
		case "dial_timeout_ms":
			if n, err = num(); err == nil {
				opts = append(opts, kgo.DialTimeout(time.Duration(n)*time.Millisecond))
			}
		case "max_version":
			if s, err = str(); err == nil {
				if versions = kversion.FromString(s); versions == nil {
					err = fmt.Errorf("props.max_version: unknown Kafka version %q", s)
				}
			}
		case "max_produce_version":
			if n, err = num(); err == nil {
				produceMax = int16(n)
			}
		case "allow_auto_topic_creation":
			var b bool
			if err = json.Unmarshal(raw, &b); err == nil && b {
				opts = append(opts, kgo.AllowAutoTopicCreation())
			}
		case "log_level":
			if s, err = str(); err == nil {
				switch s {
				case "error":
					level = kgo.LogLevelError
				case "warn":
					level = kgo.LogLevelWarn
				case "info":
					level = kgo.LogLevelInfo
				case "debug":
					level = kgo.LogLevelDebug
				default:
					err = fmt.Errorf("props.log_level: unknown level %q", s)
				}
			}
		default:
			err = fmt.Errorf("unknown props key %q", name)
		}
		if err != nil {
			return nil, level, err
		}
	}
	if produceMax >= 0 {
		if versions == nil {
			versions = kversion.Stable()
		}
		versions.SetMaxKeyVersion(0, produceMax) // 0: Produce
	}
	if versions != nil {
		opts = append(opts, kgo.MaxVersions(versions))
	}
	return opts, level, nil
}

// securityOpts maps the request's "security" onto options (none without it).
func securityOpts(sec *contract.Security) ([]kgo.Opt, error) {
	if sec == nil {
		return nil, nil
	}
	if err := sec.Check("franz-go", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"); err != nil {
		return nil, err
	}
	var opts []kgo.Opt
	cfg, err := sec.TLSConfig()
	if err != nil {
		return nil, err
	}
	if cfg != nil {
		opts = append(opts, kgo.DialTLSConfig(cfg))
	}
	if sec.SASL() {
		switch sec.Mechanism {
		case "PLAIN":
			opts = append(opts, kgo.SASL(plain.Auth{User: sec.Username, Pass: sec.Password}.AsMechanism()))
		case "SCRAM-SHA-256":
			opts = append(opts, kgo.SASL(scram.Auth{User: sec.Username, Pass: sec.Password}.AsSha256Mechanism()))
		case "SCRAM-SHA-512":
			opts = append(opts, kgo.SASL(scram.Auth{User: sec.Username, Pass: sec.Password}.AsSha512Mechanism()))
		}
	}
	return opts, nil
}

func main() {
	req := contract.Read()
	timeout := req.Timeout()

	opts := []kgo.Opt{
		kgo.SeedBrokers(strings.Split(req.Brokers, ",")...),
		kgo.ClientID(req.ClientID),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(5 * time.Millisecond),
	}
	if req.ClientID == "" {
		opts[1] = kgo.ClientID("sluice-it-franz")
	}
	switch req.Acks {
	case "all", "-1":
		opts = append(opts, kgo.RequiredAcks(kgo.AllISRAcks()))
		if req.Idempotent != nil && !*req.Idempotent {
			opts = append(opts, kgo.DisableIdempotentWrite())
		}
	case "1", "0":
		if req.Idempotent != nil && *req.Idempotent {
			contract.Die(errors.New("franz-go: idempotence requires acks=all"))
		}
		acks := kgo.LeaderAck()
		if req.Acks == "0" {
			acks = kgo.NoAck()
		}
		opts = append(opts, kgo.RequiredAcks(acks), kgo.DisableIdempotentWrite())
	default:
		contract.Die(fmt.Errorf("unknown acks %q", req.Acks))
	}
	c, err := codec(req.Compression)
	if err != nil {
		contract.Die(err)
	}
	// The preference list ends at the one codec: no silent fallback to none
	// (franz-go still sends a batch uncompressed if compressing grows it).
	opts = append(opts, kgo.ProducerBatchCompression(c))
	extra, level, err := applyProps(req.Props)
	if err != nil {
		contract.Die(err)
	}
	opts = append(opts, extra...)
	secOpts, err := securityOpts(req.Security)
	if err != nil {
		contract.Die(err)
	}
	opts = append(opts, secOpts...)
	opts = append(opts, kgo.WithLogger(kgo.BasicLogger(os.Stderr, level, nil)))

	recs := make([]*kgo.Record, len(req.Records))
	for i, r := range req.Records {
		key, err := contract.B64(r.Key)
		if err != nil {
			contract.Die(fmt.Errorf("record %d key: %v", i, err))
		}
		value, err := contract.B64(r.Value)
		if err != nil {
			contract.Die(fmt.Errorf("record %d value: %v", i, err))
		}
		var hdrs []kgo.RecordHeader
		for j, h := range r.Headers {
			if h[0] == nil {
				contract.Die(fmt.Errorf("record %d header %d: null name", i, j))
			}
			v, err := contract.B64(h[1])
			if err != nil {
				contract.Die(fmt.Errorf("record %d header %d: %v", i, j, err))
			}
			hdrs = append(hdrs, kgo.RecordHeader{Key: *h[0], Value: v})
		}
		recs[i] = &kgo.Record{
			Topic:     req.Topic,
			Partition: r.Partition,
			Key:       key,
			Value:     value,
			Headers:   hdrs,
		}
		if r.Timestamp != nil {
			recs[i].Timestamp = time.UnixMilli(*r.Timestamp)
		}
	}

	cl, err := kgo.NewClient(opts...)
	if err != nil {
		contract.Die(err)
	}
	defer cl.Close()

	// No RecordDeliveryTimeout: franz-go counts it from each batch's first
	// record Timestamp, not from Produce(), so records with explicit past
	// timestamps (make_records() uses an hour ago) would time out at once.
	// The context bounds the run instead (buffered records fail when it
	// ends), and a watchdog ends a run whose in-flight requests never finish.
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	go func() {
		time.Sleep(timeout + 15*time.Second)
		contract.Die(fmt.Errorf("records still in flight %v after the %v timeout", 15*time.Second, timeout))
	}()

	offsets := make([]int64, len(recs))
	errs := make([]error, len(recs))
	var wg sync.WaitGroup
	wg.Add(len(recs))
	for i, r := range recs {
		i := i
		cl.Produce(ctx, r, func(r *kgo.Record, err error) {
			defer wg.Done()
			errs[i] = err
			offsets[i] = -1
			if err == nil && req.Acks != "0" {
				offsets[i] = r.Offset
			}
		})
	}
	wg.Wait()

	contract.Answer(errs, offsets, func(i int) int32 { return recs[i].Partition })
}
