// sarama (IBM/sarama) producer driven by tests/integration (extclients.py),
// with the JSON contract of ../produce/main.go on stdin and stdout:
//
//	{ "brokers", "topic", "acks", "compression", "idempotent", "client_id",
//	  "timeout_ms", "props": { see applyProps }, "records": [...] }
//	-> { "ok": true, "acked": N, "errors": [...], "offsets": [...],
//	     "elapsed_ms": n }  or  { "ok": false, "error": "...", ... }
//
// sarama is a dialect of its own: it speaks the Produce version its
// configured Kafka version implies (the default, V2_8_0_0, means Produce v9,
// flexible; "kafka_version" in props changes it), sends ApiVersions only to
// learn the broker's name, writes snappy raw, and is not idempotent unless
// asked (then it needs acks=all and one request in flight per broker).
// Every record goes to its own partition (ManualPartitioner) with its own
// CreateTime timestamp (null: the time of sending). A nil key, value or
// header value is written as null (length -1), an empty one as empty.
// With acks=0 sarama has no offsets: every offset is -1. sarama's own log
// goes to stderr with props.log_level "debug".
//
// "security" (optional; contract.Security): Net.TLS (ServerName from
// server_hostname, else sarama's own: the dialled host) and Net.SASL with
// SaslHandshake v1: PLAIN, and SCRAM-SHA-256/512 through a SCRAMClient on
// github.com/xdg-go/scram (sarama has no SCRAM client of its own).
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"os"
	"strings"
	"time"

	"github.com/IBM/sarama"
	"github.com/xdg-go/scram"

	"sluice/tests/go/internal/contract"
)

func codec(name string) (sarama.CompressionCodec, error) {
	switch name {
	case "", "none":
		return sarama.CompressionNone, nil
	case "gzip":
		return sarama.CompressionGZIP, nil
	case "snappy":
		return sarama.CompressionSnappy, nil
	case "lz4":
		return sarama.CompressionLZ4, nil
	case "zstd":
		return sarama.CompressionZSTD, nil
	}
	return 0, fmt.Errorf("unknown compression %q", name)
}

// applyProps maps the client-specific "props" onto the config; an unknown
// name is an error so that a typo in a test does not pass silently.
//
//	kafka_version: "2.8.0" etc. (sarama.ParseKafkaVersion)
//	linger_ms (Producer.Flush.Frequency), flush_messages, max_message_bytes,
//	retry_max: numbers
//	log_level: "debug" (sarama's logger to stderr), else quiet
func applyProps(cfg *sarama.Config, props map[string]json.RawMessage) error {
	for name, raw := range props {
		var n int
		var s string
		var err error
		switch name {
		case "kafka_version":
			if err = json.Unmarshal(raw, &s); err == nil {
				cfg.Version, err = sarama.ParseKafkaVersion(s)
			}
		case "linger_ms":
			if err = json.Unmarshal(raw, &n); err == nil {
				cfg.Producer.Flush.Frequency = time.Duration(n) * time.Millisecond
			}
		case "flush_messages":
			if err = json.Unmarshal(raw, &n); err == nil {
				cfg.Producer.Flush.Messages = n
			}
		case "max_message_bytes":
			if err = json.Unmarshal(raw, &n); err == nil {
				cfg.Producer.MaxMessageBytes = n
			}
		case "retry_max":
			if err = json.Unmarshal(raw, &n); err == nil {
				cfg.Producer.Retry.Max = n
			}
		case "log_level":
			if err = json.Unmarshal(raw, &s); err == nil && s == "debug" {
				sarama.Logger = log.New(os.Stderr, "[sarama] ", log.LstdFlags|log.Lmicroseconds)
			}
		default:
			err = errors.New("unknown props key")
		}
		if err != nil {
			return fmt.Errorf("props.%s: %v", name, err)
		}
	}
	return nil
}

// xdgSCRAM is sarama's SCRAMClient on xdg-go/scram.
type xdgSCRAM struct {
	hash scram.HashGeneratorFcn
	conv *scram.ClientConversation
}

func (x *xdgSCRAM) Begin(user, password, authzID string) error {
	c, err := x.hash.NewClient(user, password, authzID)
	if err != nil {
		return err
	}
	x.conv = c.NewConversation()
	return nil
}

func (x *xdgSCRAM) Step(challenge string) (string, error) { return x.conv.Step(challenge) }
func (x *xdgSCRAM) Done() bool                            { return x.conv.Done() }

// applySecurity maps the request's "security" onto cfg.Net.
func applySecurity(cfg *sarama.Config, sec *contract.Security) error {
	if sec == nil {
		return nil
	}
	if err := sec.Check("sarama", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"); err != nil {
		return err
	}
	tlsCfg, err := sec.TLSConfig()
	if err != nil {
		return err
	}
	if tlsCfg != nil {
		cfg.Net.TLS.Enable = true
		cfg.Net.TLS.Config = tlsCfg
	}
	if sec.SASL() {
		cfg.Net.SASL.Enable = true
		cfg.Net.SASL.Handshake = true
		cfg.Net.SASL.Version = sarama.SASLHandshakeV1
		cfg.Net.SASL.User = sec.Username
		cfg.Net.SASL.Password = sec.Password
		switch sec.Mechanism {
		case "PLAIN":
			cfg.Net.SASL.Mechanism = sarama.SASLTypePlaintext
		case "SCRAM-SHA-256":
			cfg.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA256
			cfg.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient {
				return &xdgSCRAM{hash: scram.SHA256}
			}
		case "SCRAM-SHA-512":
			cfg.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA512
			cfg.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient {
				return &xdgSCRAM{hash: scram.SHA512}
			}
		}
	}
	return nil
}

func main() {
	req := contract.Read()
	timeout := req.Timeout()
	var err error

	cfg := sarama.NewConfig()
	cfg.ClientID = req.ClientID
	if cfg.ClientID == "" {
		cfg.ClientID = "sluice-it-sarama"
	}
	cfg.Producer.Partitioner = sarama.NewManualPartitioner
	cfg.Producer.Return.Successes = true
	cfg.Producer.Return.Errors = true
	cfg.Producer.Flush.Frequency = 5 * time.Millisecond
	cfg.Producer.Timeout = timeout
	cfg.Producer.Retry.Max = 10
	cfg.Producer.Retry.Backoff = 200 * time.Millisecond
	cfg.Metadata.Retry.Max = 20
	cfg.Metadata.Retry.Backoff = 250 * time.Millisecond
	switch req.Acks {
	case "all", "-1":
		cfg.Producer.RequiredAcks = sarama.WaitForAll
		if req.Idempotent != nil && *req.Idempotent {
			cfg.Producer.Idempotent = true
			cfg.Net.MaxOpenRequests = 1
		}
	case "1", "0":
		if req.Idempotent != nil && *req.Idempotent {
			contract.Die(errors.New("sarama: idempotence requires acks=all"))
		}
		cfg.Producer.RequiredAcks = sarama.WaitForLocal
		if req.Acks == "0" {
			cfg.Producer.RequiredAcks = sarama.NoResponse
		}
	default:
		contract.Die(fmt.Errorf("unknown acks %q", req.Acks))
	}
	if cfg.Producer.Compression, err = codec(req.Compression); err != nil {
		contract.Die(err)
	}
	if err := applySecurity(cfg, req.Security); err != nil {
		contract.Die(err)
	}
	if err := applyProps(cfg, req.Props); err != nil {
		contract.Die(err)
	}

	msgs := make([]*sarama.ProducerMessage, len(req.Records))
	for i, r := range req.Records {
		key, err := contract.B64(r.Key)
		if err != nil {
			contract.Die(fmt.Errorf("record %d key: %v", i, err))
		}
		value, err := contract.B64(r.Value)
		if err != nil {
			contract.Die(fmt.Errorf("record %d value: %v", i, err))
		}
		m := &sarama.ProducerMessage{Topic: req.Topic, Partition: r.Partition, Metadata: i}
		// A nil Encoder is null on the wire; a ByteEncoder of an empty
		// slice is empty.
		if key != nil {
			m.Key = sarama.ByteEncoder(key)
		}
		if value != nil {
			m.Value = sarama.ByteEncoder(value)
		}
		for j, h := range r.Headers {
			if h[0] == nil {
				contract.Die(fmt.Errorf("record %d header %d: null name", i, j))
			}
			v, err := contract.B64(h[1])
			if err != nil {
				contract.Die(fmt.Errorf("record %d header %d: %v", i, j, err))
			}
			m.Headers = append(m.Headers, sarama.RecordHeader{Key: []byte(*h[0]), Value: v})
		}
		if r.Timestamp != nil {
			m.Timestamp = time.UnixMilli(*r.Timestamp)
		}
		msgs[i] = m
	}

	p, err := sarama.NewAsyncProducer(strings.Split(req.Brokers, ","), cfg)
	if err != nil {
		contract.Die(err)
	}
	go func() {
		time.Sleep(2*timeout + 15*time.Second)
		contract.Die(fmt.Errorf("records still unanswered %v after the run began", 2*timeout+15*time.Second))
	}()

	offsets := make([]int64, len(msgs))
	errs := make([]error, len(msgs))
	done := make(chan struct{})
	go func() {
		left := len(msgs)
		for left > 0 {
			select {
			case m := <-p.Successes():
				i := m.Metadata.(int)
				offsets[i] = -1
				if req.Acks != "0" {
					offsets[i] = m.Offset
				}
				left--
			case e := <-p.Errors():
				i := e.Msg.Metadata.(int)
				offsets[i] = -1
				errs[i] = e.Err
				left--
			}
		}
		close(done)
	}()
	for _, m := range msgs {
		p.Input() <- m
	}
	<-done
	if err := p.Close(); err != nil {
		fmt.Fprintf(os.Stderr, "close: %v\n", err)
	}

	contract.Answer(errs, offsets, func(i int) int32 { return msgs[i].Partition })
}
