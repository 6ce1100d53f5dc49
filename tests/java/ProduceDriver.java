// Apache Kafka Java producer driven by tests/integration (javaclients.py).
// One source file, no package, compiled unchanged against kafka-clients 4.x
// and 3.x (tests/java/build.sh); JSON is parsed and written by hand so the
// classpath is just the clients jars and slf4j-simple.
//
// Reads one JSON object on stdin:
//   { "brokers": "h:p[,h:p]", "topic": "t", "acks": "all"|"1"|"0",
//     "compression": "none"|"gzip"|"snappy"|"lz4"|"zstd",
//     "idempotent": true|false|null (null: the client's default),
//     "client_id": "..."|null, "timeout_ms": 30000,
//     "transactional_id": null|"x",
//     "props": { "any.producer.property": "value" },   (applied last)
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

import java.io.ByteArrayOutputStream;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;

import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.utils.AppInfoParser;

public final class ProduceDriver {

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

        StringBuilder out = new StringBuilder("{\"ok\": true, \"acked\": ");
        List<String> errs = new ArrayList<>();
        int acked = 0;
        StringBuilder offs = new StringBuilder("[");
        synchronized (done) {
            for (int i = 0; i < n; i++) {
                if (!done[i]) {
                    errors[i] = "partition " + records.get(i).partition()
                                + ": no callback after flush";
                    offsets[i] = -1;
                }
                if (errors[i] == null) {
                    acked++;
                } else {
                    errs.add(errors[i]);
                }
                offs.append(i == 0 ? "" : ", ").append(offsets[i]);
            }
        }
        out.append(acked).append(", \"errors\": [");
        for (int i = 0; i < errs.size(); i++) {
            out.append(i == 0 ? "" : ", ").append(quote(errs.get(i)));
        }
        out.append("], \"offsets\": ").append(offs).append("]");
        out.append(", \"elapsed_ms\": ").append(elapsed);
        out.append(", \"client_version\": ").append(quote(AppInfoParser.getVersion())).append("}");
        System.out.println(out);
        System.out.flush();
    }

    // -----------------------------------------------------------------------

    private static void fatal(String stage, Throwable e, long elapsed, long stageMs) {
        System.err.println("ProduceDriver: " + stage + " failed:");
        e.printStackTrace(System.err);
        System.out.println("{\"ok\": false, \"stage\": " + quote(stage) + ", \"error\": "
                           + quote(describe(e)) + ", \"elapsed_ms\": " + elapsed
                           + ", \"stage_ms\": " + stageMs
                           + ", \"client_version\": " + quote(AppInfoParser.getVersion()) + "}");
        System.out.flush();
        System.exit(1);
    }

    /** "class: message", skipping wrappers that only repeat their cause, and
     *  naming the cause when the message does not. */
    private static String describe(Throwable e) {
        while (e.getCause() != null && e.getMessage() != null
               && e.getMessage().equals(e.getCause().toString())) {
            e = e.getCause();
        }
        String d = e.getClass().getName() + ": " + e.getMessage();
        Throwable c = e.getCause();
        if (c != null && c != e) {
            d += " (caused by " + c.getClass().getName() + ": " + c.getMessage() + ")";
        }
        return d;
    }

    private static void defaultProperty(String k, String v) {
        if (System.getProperty(k) == null) {
            System.setProperty(k, v);
        }
    }

    private static long ms(long t0) {
        return (System.nanoTime() - t0) / 1_000_000;
    }

    private static byte[] b64(Object o) {
        return o == null ? null : Base64.getDecoder().decode((String) o);
    }

    private static String readAll(InputStream in) throws java.io.IOException {
        ByteArrayOutputStream b = new ByteArrayOutputStream();
        byte[] buf = new byte[65536];
        for (int k; (k = in.read(buf)) > 0; ) {
            b.write(buf, 0, k);
        }
        return new String(b.toByteArray(), StandardCharsets.UTF_8);
    }

    @SuppressWarnings("unchecked")
    private static Map<String, Object> asMap(Object o) {
        if (!(o instanceof Map)) {
            throw new IllegalArgumentException("expected a JSON object, got " + o);
        }
        return (Map<String, Object>) o;
    }

    @SuppressWarnings("unchecked")
    private static List<Object> asList(Object o) {
        if (!(o instanceof List)) {
            throw new IllegalArgumentException("expected a JSON array, got " + o);
        }
        return (List<Object>) o;
    }

    private static long asLong(Object o) {
        if (!(o instanceof Number)) {
            throw new IllegalArgumentException("expected a number, got " + o);
        }
        return ((Number) o).longValue();
    }

    /** A JSON string literal; non-ASCII and control characters as \\uXXXX. */
    static String quote(String s) {
        if (s == null) {
            return "null";
        }
        StringBuilder b = new StringBuilder(s.length() + 2).append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c == '"' || c == '\\') {
                b.append('\\').append(c);
            } else if (c < 0x20 || c > 0x7e) {
                b.append(String.format("\\u%04x", (int) c));
            } else {
                b.append(c);
            }
        }
        return b.append('"').toString();
    }

    /** Just enough JSON: objects (insertion-ordered), arrays, strings,
     *  numbers (Long, or Double with a fraction/exponent), true/false/null. */
    static final class Json {
        private final String s;
        private int i;

        Json(String s) {
            this.s = s;
        }

        Object parseDocument() {
            Object v = value();
            ws();
            if (i != s.length()) {
                throw error("trailing data");
            }
            return v;
        }

        private Object value() {
            ws();
            if (i >= s.length()) {
                throw error("unexpected end");
            }
            char c = s.charAt(i);
            switch (c) {
                case '{': {
                    i++;
                    Map<String, Object> m = new LinkedHashMap<>();
                    ws();
                    if (peek('}')) {
                        return m;
                    }
                    do {
                        ws();
                        if (i >= s.length() || s.charAt(i) != '"') {
                            throw error("expected a key");
                        }
                        String k = string();
                        ws();
                        expect(':');
                        m.put(k, value());
                        ws();
                    } while (peek(','));
                    expect('}');
                    return m;
                }
                case '[': {
                    i++;
                    List<Object> l = new ArrayList<>();
                    ws();
                    if (peek(']')) {
                        return l;
                    }
                    do {
                        l.add(value());
                        ws();
                    } while (peek(','));
                    expect(']');
                    return l;
                }
                case '"':
                    return string();
                case 't':
                    return word("true", Boolean.TRUE);
                case 'f':
                    return word("false", Boolean.FALSE);
                case 'n':
                    return word("null", null);
                default:
                    return number();
            }
        }

        private String string() {
            expect('"');
            StringBuilder b = new StringBuilder();
            while (true) {
                if (i >= s.length()) {
                    throw error("unterminated string");
                }
                char c = s.charAt(i++);
                if (c == '"') {
                    return b.toString();
                }
                if (c != '\\') {
                    b.append(c);
                    continue;
                }
                if (i >= s.length()) {
                    throw error("unterminated escape");
                }
                char e = s.charAt(i++);
                switch (e) {
                    case '"': case '\\': case '/': b.append(e); break;
                    case 'b': b.append('\b'); break;
                    case 'f': b.append('\f'); break;
                    case 'n': b.append('\n'); break;
                    case 'r': b.append('\r'); break;
                    case 't': b.append('\t'); break;
                    case 'u':
                        if (i + 4 > s.length()) {
                            throw error("short \\u escape");
                        }
                        b.append((char) Integer.parseInt(s.substring(i, i + 4), 16));
                        i += 4;
                        break;
                    default:
                        throw error("bad escape \\" + e);
                }
            }
        }

        private Object number() {
            int start = i;
            boolean frac = false;
            while (i < s.length() && "+-0123456789.eE".indexOf(s.charAt(i)) >= 0) {
                frac |= "eE.".indexOf(s.charAt(i)) >= 0;
                i++;
            }
            if (start == i) {
                throw error("unexpected character");
            }
            String t = s.substring(start, i);
            return frac ? (Object) Double.valueOf(t) : (Object) Long.valueOf(t);
        }

        private Object word(String w, Object v) {
            if (!s.startsWith(w, i)) {
                throw error("unexpected word");
            }
            i += w.length();
            return v;
        }

        private void ws() {
            while (i < s.length() && " \t\r\n".indexOf(s.charAt(i)) >= 0) {
                i++;
            }
        }

        private boolean peek(char c) {
            if (i < s.length() && s.charAt(i) == c) {
                i++;
                return true;
            }
            return false;
        }

        private void expect(char c) {
            if (!peek(c)) {
                throw error("expected '" + c + "'");
            }
        }

        private IllegalArgumentException error(String what) {
            return new IllegalArgumentException("JSON: " + what + " at offset " + i);
        }
    }
}
