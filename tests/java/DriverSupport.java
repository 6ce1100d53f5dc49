// What the Java test drivers share (ProduceDriver against kafka-clients 4.x
// and 3.x, LegacyProduceDriver against 0.10.x): reading the JSON request,
// writing the answer, describing failures. Only APIs kafka-clients 0.10
// has. The drivers extend it so that its static members are theirs.

import java.io.ByteArrayOutputStream;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import org.apache.kafka.common.utils.AppInfoParser;

class DriverSupport {

    /** Writes the answer of a run that got through flush: acked records,
     *  per-record errors in input order (a record without a callback after
     *  flush is one), offsets (-1: failed, or acks=0), elapsed_ms. */
    static void answer(long[] offsets, String[] errors, boolean[] done,
                       java.util.function.IntFunction<Integer> partitionOf, long elapsed) {
        int n = offsets.length;
        StringBuilder out = new StringBuilder("{\"ok\": true, \"acked\": ");
        List<String> errs = new ArrayList<>();
        int acked = 0;
        StringBuilder offs = new StringBuilder("[");
        synchronized (done) {
            for (int i = 0; i < n; i++) {
                if (!done[i]) {
                    errors[i] = "partition " + partitionOf.apply(i)
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

    static void fatal(String stage, Throwable e, long elapsed, long stageMs) {
        System.err.println("java driver: " + stage + " failed:");
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
    static String describe(Throwable e) {
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

    static final List<String> PROTOCOLS =
        java.util.Arrays.asList("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL");
    static final List<String> MECHANISMS =
        java.util.Arrays.asList("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512");

    /** Producer settings for the request's optional "security" field (empty
     *  without it): security.protocol; sasl.mechanism and sasl.jaas.config
     *  (PlainLoginModule or ScramLoginModule); the CA as a PEM truststore
     *  and the client certificate as PEM keystore entries (kafka-clients
     *  2.7+, KIP-651). Java verifies the broker address's host
     *  (ssl.endpoint.identification.algorithm=https): a server_hostname
     *  other than every broker's host is refused as unsupported. */
    static Map<String, String> securityProps(Object o, String brokers) {
        Map<String, String> p = new LinkedHashMap<>();
        if (o == null) {
            return p;
        }
        Map<String, Object> sec = asMap(o);
        String proto = String.valueOf(sec.getOrDefault("protocol", "PLAINTEXT")).toUpperCase();
        if (!PROTOCOLS.contains(proto)) {
            throw new IllegalArgumentException("unknown security.protocol " + sec.get("protocol"));
        }
        boolean tls = proto.equals("SSL") || proto.equals("SASL_SSL");
        p.put("security.protocol", proto);
        if (proto.startsWith("SASL_")) {
            String mech = String.valueOf(sec.get("mechanism")).toUpperCase();
            if (!MECHANISMS.contains(mech)) {
                throw new IllegalArgumentException("unsupported sasl mechanism " + sec.get("mechanism"));
            }
            String module = mech.equals("PLAIN")
                ? "org.apache.kafka.common.security.plain.PlainLoginModule"
                : "org.apache.kafka.common.security.scram.ScramLoginModule";
            p.put("sasl.mechanism", mech);
            p.put("sasl.jaas.config", module + " required username=" + jaasQuote(sec.get("username"))
                  + " password=" + jaasQuote(sec.get("password")) + ";");
        }
        String ca = (String) sec.get("ca_file");
        String cert = (String) sec.get("cert_file");
        String key = (String) sec.get("key_file");
        String name = (String) sec.get("server_hostname");
        if (!tls) {
            if (ca != null || cert != null || key != null || name != null) {
                throw new IllegalArgumentException("security: TLS files or server_hostname with protocol " + proto);
            }
            return p;
        }
        p.put("ssl.endpoint.identification.algorithm", "https");
        if (ca != null) {
            p.put("ssl.truststore.type", "PEM");
            p.put("ssl.truststore.location", ca);
        }
        if ((cert == null) != (key == null)) {
            throw new IllegalArgumentException("security: cert_file and key_file go together");
        }
        if (cert != null) {
            p.put("ssl.keystore.type", "PEM");
            p.put("ssl.keystore.certificate.chain", readFile(cert));
            p.put("ssl.keystore.key", readFile(key));
        }
        if (name != null) {
            for (String b : brokers.split(",")) {
                String host = b.substring(0, b.lastIndexOf(':')).replace("[", "").replace("]", "");
                if (!host.equals(name)) {
                    throw new IllegalArgumentException("unsupported server_hostname " + name
                        + ": the Java client verifies the broker address's host (" + host + ")");
                }
            }
        }
        return p;
    }

    static String jaasQuote(Object v) {
        if (v == null) {
            throw new IllegalArgumentException("security: SASL needs username and password");
        }
        return "\"" + String.valueOf(v).replace("\\", "\\\\").replace("\"", "\\\"") + "\"";
    }

    static String readFile(String path) {
        try {
            return new String(java.nio.file.Files.readAllBytes(java.nio.file.Paths.get(path)),
                              StandardCharsets.UTF_8);
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }

    static void defaultProperty(String k, String v) {
        if (System.getProperty(k) == null) {
            System.setProperty(k, v);
        }
    }

    static long ms(long t0) {
        return (System.nanoTime() - t0) / 1_000_000;
    }

    static byte[] b64(Object o) {
        return o == null ? null : Base64.getDecoder().decode((String) o);
    }

    static String readAll(InputStream in) throws java.io.IOException {
        ByteArrayOutputStream b = new ByteArrayOutputStream();
        byte[] buf = new byte[65536];
        for (int k; (k = in.read(buf)) > 0; ) {
            b.write(buf, 0, k);
        }
        return new String(b.toByteArray(), StandardCharsets.UTF_8);
    }

    @SuppressWarnings("unchecked")
    static Map<String, Object> asMap(Object o) {
        if (!(o instanceof Map)) {
            throw new IllegalArgumentException("expected a JSON object, got " + o);
        }
        return (Map<String, Object>) o;
    }

    @SuppressWarnings("unchecked")
    static List<Object> asList(Object o) {
        if (!(o instanceof List)) {
            throw new IllegalArgumentException("expected a JSON array, got " + o);
        }
        return (List<Object>) o;
    }

    static long asLong(Object o) {
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
