// Apache Kafka Java producer driven by tests/integration (javaclients.py).
// No package, compiled unchanged against kafka-clients 4.x and 3.x with
// DriverSupport.java (tests/java/build.sh); JSON is parsed and written by
// hand (DriverSupport) so the classpath is just the clients jars and
// slf4j-simple. LegacyProduceDriver.java is the same for kafka-clients 0.10.
//
// Reads one JSON object on stdin:
//   { "brokers": "h:p[,h:p]", "topic": "t", "acks": "all"|"1"|"0",
//     "compression": "none"|"gzip"|"snappy"|"lz4"|"zstd",
//     "idempotent": true|false|null (null: the client's default),
//     "client_id": "..."|null, "timeout_ms": 30000,
//     "transactional_id": null|"x",
//     "props": { "any.producer.property": "value" },   (applied last)
//     "security": null|{ "protocol", "mechanism", "username", "password",
//                        "ca_file", "cert_file", "key_file", "server_hostname" }
//                 (DriverSupport.securityProps: PEM trust- and keystore,
//                  PlainLoginModule / ScramLoginModule),
//     "records": [ { "partition": 0|null, "key": b64|null, "value": b64|null,
//                    "headers": [[name, b64|null], ...], "timestamp": ms|null } ] }
// Writes one JSON object as the last line on stdout:
//   { "ok": true, "acked": N, "errors": ["partition 2: <class>: <message>", ...],
//     "offsets": [offset, or -1 if failed / acks=0, per record in input order],
//     "elapsed_ms": n, "client_version": "4.1.1" }
//   or { "ok": false, "stage": "request"|"construct"|"initTransactions"|...,
//        "error": "<class>: <message>", "elapsed_ms": n, "stage_ms": n,
//        "client_version": "..." }                            (exit status 1)
// "errors" has one entry per failed record, in input order. elapsed_ms runs
// from just before the producer is constructed (0.35-1 s of class loading on
// a fresh JVM) to the end of flush/commit, or to the failure;
// stage_ms is the time spent in the stage that failed.
// With "transactional_id" the records go in one transaction:
// initTransactions() (bounded by max.block.ms, 30000 unless props say
// otherwise), beginTransaction(), send..., commitTransaction().
// Other defaults: delivery.timeout.ms = timeout_ms, request.timeout.ms =
// timeout_ms / 2 (it must be below delivery.timeout.ms - linger.ms).
// The clients' log goes to stderr at WARN (slf4j-simple).

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;

import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.utils.AppInfoParser;

public final class ProduceDriver extends DriverSupport {

    public static void main(String[] args) throws Exception {
        // Before the first Kafka class logs anything (the command line may
        // already have set these).
        defaultProperty("org.slf4j.simpleLogger.defaultLogLevel", "warn");
        defaultProperty("org.slf4j.simpleLogger.logFile", "System.err");
        defaultProperty("org.slf4j.simpleLogger.showDateTime", "true");

        // Request -> producer config and records; a malformed one is fatal.
        String txnId;
        Properties p = new Properties();
        List<ProducerRecord<byte[], byte[]>> records = new ArrayList<>();
        try {
            Map<String, Object> req = asMap(new Json(readAll(System.in)).parseDocument());
            txnId = (String) req.get("transactional_id");
            long timeoutMs = req.get("timeout_ms") == null ? 30000 : asLong(req.get("timeout_ms"));
            p.put("bootstrap.servers", req.get("brokers"));
            p.put("key.serializer", "org.apache.kafka.common.serialization.ByteArraySerializer");
            p.put("value.serializer", "org.apache.kafka.common.serialization.ByteArraySerializer");
            p.put("acks", String.valueOf(req.getOrDefault("acks", "all")));
            p.put("compression.type", String.valueOf(req.getOrDefault("compression", "none")));
            // delivery.timeout.ms must be >= linger.ms + request.timeout.ms.
            p.put("delivery.timeout.ms", Long.toString(timeoutMs));
            p.put("request.timeout.ms", Long.toString(Math.max(1000, timeoutMs / 2)));
            p.put("max.block.ms", "30000");
            if (req.get("idempotent") != null) {
                p.put("enable.idempotence", String.valueOf(req.get("idempotent")));
            }
            if (req.get("client_id") != null) {
                p.put("client.id", String.valueOf(req.get("client_id")));
            }
            if (txnId != null) {
                p.put("transactional.id", txnId);
            }
            p.putAll(securityProps(req.get("security"), (String) req.get("brokers")));
            if (req.get("props") != null) {
                for (Map.Entry<String, Object> e : asMap(req.get("props")).entrySet()) {
                    p.put(e.getKey(), String.valueOf(e.getValue()));
                }
            }

            String topic = (String) req.get("topic");
            for (Object o : asList(req.get("records"))) {
                Map<String, Object> r = asMap(o);
                List<Header> headers = new ArrayList<>();
                if (r.get("headers") != null) {
                    for (Object h : asList(r.get("headers"))) {
                        List<Object> nv = asList(h);
                        headers.add(new RecordHeader((String) nv.get(0), b64(nv.get(1))));
                    }
                }
                Integer partition = r.get("partition") == null ? null
                                    : (Integer) (int) asLong(r.get("partition"));
                Long ts = r.get("timestamp") == null ? null : asLong(r.get("timestamp"));
                records.add(new ProducerRecord<>(topic, partition, ts, b64(r.get("key")),
                                                 b64(r.get("value")), headers));
            }
        } catch (RuntimeException e) {
            fatal("request", e, 0, 0);
            return;
        }

        int n = records.size();
        long[] offsets = new long[n];
        String[] errors = new String[n];
        boolean[] done = new boolean[n];
        long t0 = System.nanoTime();
        KafkaProducer<byte[], byte[]> producer;
        try {
            producer = new KafkaProducer<>(p);
        } catch (RuntimeException e) {
            fatal("construct", e, ms(t0), ms(t0));
            return;
        }
        String stage = "send";
        long stageT0 = System.nanoTime();
        try {
            if (txnId != null) {
                stage = "initTransactions";
                producer.initTransactions();
                stage = "beginTransaction";
                stageT0 = System.nanoTime();
                producer.beginTransaction();
                stage = "send";
                stageT0 = System.nanoTime();
            }
            for (int i = 0; i < n; i++) {
                final int idx = i;
                final ProducerRecord<byte[], byte[]> rec = records.get(i);
                try {
                    producer.send(rec, (md, ex) -> {
                        synchronized (done) {
                            done[idx] = true;
                            offsets[idx] = ex == null ? md.offset() : -1;  // -1 with acks=0
                            if (ex != null) {
                                errors[idx] = "partition " + rec.partition() + ": " + describe(ex);
                            }
                        }
                    });
                } catch (RuntimeException ex) {
                    // Thrown rather than called back (e.g. a producer fenced
                    // or in a failed transaction): counts against this record.
                    synchronized (done) {
                        done[idx] = true;
                        offsets[idx] = -1;
                        errors[idx] = "partition " + rec.partition() + ": " + describe(ex);
                    }
                }
            }
            stage = "flush";
            stageT0 = System.nanoTime();
            producer.flush();
            if (txnId != null) {
                stage = "commitTransaction";
                stageT0 = System.nanoTime();
                producer.commitTransaction();
            }
        } catch (RuntimeException e) {
            long elapsed = ms(t0);
            long stageMs = ms(stageT0);
            if (txnId != null && !"initTransactions".equals(stage)) {
                try {
                    producer.abortTransaction();
                } catch (RuntimeException ignored) {
                    // already failed for the reason reported
                }
            }
            producer.close(Duration.ofSeconds(5));
            fatal(stage, e, elapsed, stageMs);
            return;
        }
        long elapsed = ms(t0);
        producer.close(Duration.ofSeconds(10));

        answer(offsets, errors, done, i -> records.get(i).partition(), elapsed);
    }
}
