// The Java producer of Kafka 0.10 (kafka-clients 0.10.2.x) driven by
// tests/integration (javaclients.py), with ProduceDriver's JSON contract:
// it speaks Produce v2 with message format v1 (magic 1), which Kafka 4
// refuses and Sluice bridges (issue 15). Compiled with DriverSupport.java
// against the clients010 jars (tests/java/build.sh).
//
// What 0.10 cannot do is refused at stage "request": record headers (0.11),
// idempotence and transactions (0.11). Defaults: request.timeout.ms =
// timeout_ms, max.block.ms = 30000, retries = 3 (0.10 has no
// delivery.timeout.ms and retries nothing by default). "props" are applied
// last. "security": PLAINTEXT and SASL_PLAINTEXT (PLAIN, SCRAM) only; SSL and
// SASL_SSL are refused (stage "request"), the PEM stores being 2.7+.

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.utils.AppInfoParser;

public final class LegacyProduceDriver extends DriverSupport {

    public static void main(String[] args) throws Exception {
        defaultProperty("org.slf4j.simpleLogger.defaultLogLevel", "warn");
        defaultProperty("org.slf4j.simpleLogger.logFile", "System.err");
        defaultProperty("org.slf4j.simpleLogger.showDateTime", "true");

        Properties p = new Properties();
        List<ProducerRecord<byte[], byte[]>> records = new ArrayList<>();
        try {
            Map<String, Object> req = asMap(new Json(readAll(System.in)).parseDocument());
            long timeoutMs = req.get("timeout_ms") == null ? 30000 : asLong(req.get("timeout_ms"));
            if (Boolean.TRUE.equals(req.get("idempotent")) || req.get("transactional_id") != null) {
                throw new IllegalArgumentException(
                    "kafka-clients " + AppInfoParser.getVersion()
                    + " has no idempotence or transactions");
            }
            p.put("bootstrap.servers", req.get("brokers"));
            p.put("key.serializer", "org.apache.kafka.common.serialization.ByteArraySerializer");
            p.put("value.serializer", "org.apache.kafka.common.serialization.ByteArraySerializer");
            p.put("acks", String.valueOf(req.getOrDefault("acks", "all")));
            p.put("compression.type", String.valueOf(req.getOrDefault("compression", "none")));
            p.put("request.timeout.ms", Long.toString(timeoutMs));
            p.put("max.block.ms", "30000");
            p.put("retries", "3");
            if (req.get("client_id") != null) {
                p.put("client.id", String.valueOf(req.get("client_id")));
            }
            // PEM trust- and keystores came in 2.7: no TLS here.
            Map<String, String> sec = securityProps(req.get("security"), (String) req.get("brokers"));
            if (sec.containsKey("ssl.endpoint.identification.algorithm")) {
                throw new IllegalArgumentException("unsupported security.protocol "
                    + sec.get("security.protocol") + ": the driver of kafka-clients "
                    + AppInfoParser.getVersion() + " has no PEM truststore");
            }
            p.putAll(sec);
            if (req.get("props") != null) {
                for (Map.Entry<String, Object> e : asMap(req.get("props")).entrySet()) {
                    p.put(e.getKey(), String.valueOf(e.getValue()));
                }
            }
            String topic = (String) req.get("topic");
            for (Object o : asList(req.get("records"))) {
                Map<String, Object> r = asMap(o);
                if (r.get("headers") != null && !asList(r.get("headers")).isEmpty()) {
                    throw new IllegalArgumentException("kafka-clients 0.10 has no record headers");
                }
                Integer partition = r.get("partition") == null ? null
                                    : (Integer) (int) asLong(r.get("partition"));
                Long ts = r.get("timestamp") == null ? null : asLong(r.get("timestamp"));
                records.add(new ProducerRecord<>(topic, partition, ts, b64(r.get("key")),
                                                 b64(r.get("value"))));
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
            for (int i = 0; i < n; i++) {
                final int idx = i;
                final ProducerRecord<byte[], byte[]> rec = records.get(i);
                producer.send(rec, (md, ex) -> {
                    synchronized (done) {
                        done[idx] = true;
                        offsets[idx] = ex == null ? md.offset() : -1;
                        if (ex != null) {
                            errors[idx] = "partition " + rec.partition() + ": " + describe(ex);
                        }
                    }
                });
            }
            stage = "flush";
            stageT0 = System.nanoTime();
            producer.flush();
        } catch (RuntimeException e) {
            long elapsed = ms(t0);
            producer.close(5, TimeUnit.SECONDS);
            fatal(stage, e, elapsed, ms(stageT0));
            return;
        }
        long elapsed = ms(t0);
        producer.close(10, TimeUnit.SECONDS);

        answer(offsets, errors, done, i -> records.get(i).partition(), elapsed);
    }
}
