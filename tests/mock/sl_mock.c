/*
 * sl-mock: a mock upstream Kafka cluster in its own process, driven over stdin.
 *
 * Integration tests and benchmarks start it, read one line
 *
 *     BOOTSTRAP <host:port,...>
 *
 * from its stdout, point Sluice (or a client, in the tests' DIRECT mode) at
 * that address and then steer the cluster with one command per stdin line.
 * Every command is answered with exactly one line, "OK" or "ERR <reason>":
 *
 *     down <broker_id>                 broker closes its connections, refuses new ones
 *     up <broker_id>                   undo "down"
 *     rtt <broker_id> <ms>             add latency to every response of a broker
 *     create <topic> [<partitions> [<replication_factor>]]
 *     errors <api_key> <err> [<err> ...]
 *                                      the next requests of api_key, on any broker,
 *                                      fail with these codes, one each, in order
 *     broker_errors <broker_id> <api_key> <err> <rtt_ms> [<err> <rtt_ms> ...]
 *                                      the same, for one broker, each with a delay
 *     errors_left <broker_id> <api_key>
 *                                      answers "OK <n>": how many "broker_errors"
 *                                      of that broker are not yet used up
 *     leader <topic> <partition> <broker_id>
 *     clear <api_key>                  drop pending "errors" for api_key
 *     quit                             exit 0 (so does end of stdin)
 *
 * Broker ids are 1..N. Error codes are Kafka's numbers (6 = NOT_LEADER_OR_FOLLOWER)
 * or librdkafka's negative internal ones (-195 = __TRANSPORT: the broker
 * disconnects the client).
 *
 * --partitions P is the partition count "create <topic>" uses when the count is
 * omitted. Topics the mock creates by itself (a Metadata or Produce request
 * naming an unknown topic) get librdkafka's default of 4 partitions: librdkafka
 * 2.0.2 has no API to change it (mcluster->defaults.partition_cnt is private),
 * so tests that care create their topics explicitly.
 *
 * Threads: the mock brokers run on librdkafka's own mock thread; every
 * rd_kafka_mock_*() call below hands an op to that thread and waits for it, so
 * this single-threaded command loop needs no locking.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#define MAX_LINE 8192 /* bytes per command line, newline included */
#define MAX_ARGS 256  /* words per command line */
#define MAX_ERRS (MAX_ARGS - 2)

struct mock {
        rd_kafka_t *rk;                  /* dummy producer owning the cluster */
        rd_kafka_mock_cluster_t *mcluster;
        int broker_cnt;
        int default_partitions;          /* for "create <topic>" without a count */
};

/* Answers one command: exactly one line, flushed at once so a test blocked on
 * reading it never waits for a buffer to fill. */
static void reply_ok(void) {
        fputs("OK\n", stdout);
        fflush(stdout);
}

static void reply_err(const char *fmt, ...) {
        va_list ap;
        fputs("ERR ", stdout);
        va_start(ap, fmt);
        vfprintf(stdout, fmt, ap);
        va_end(ap);
        fputc('\n', stdout);
        fflush(stdout);
}

/* Parses a whole decimal word into [lo, hi]; 0 on success, -1 otherwise. */
static int parse_long(const char *s, long lo, long hi, long *out) {
        char *end;
        long v;

        if (!s || !*s)
                return -1;
        errno = 0;
        v     = strtol(s, &end, 10);
        if (errno || *end || v < lo || v > hi)
                return -1;
        *out = v;
        return 0;
}

static int parse_broker(const struct mock *m, const char *s, int32_t *id) {
        long v;
        if (parse_long(s, 1, m->broker_cnt, &v))
                return -1;
        *id = (int32_t)v;
        return 0;
}

/* Kafka error codes are >= 0; librdkafka's internal ones are in (-200, 0). */
static int parse_errcode(const char *s, rd_kafka_resp_err_t *err) {
        long v;
        if (parse_long(s, -200, 32767, &v))
                return -1;
        *err = (rd_kafka_resp_err_t)v;
        return 0;
}

static int parse_apikey(const char *s, int16_t *key) {
        long v;
        if (parse_long(s, 0, 32767, &v))
                return -1;
        *key = (int16_t)v;
        return 0;
}

/* Reports a librdkafka result as the command's answer. */
static void reply_rkerr(rd_kafka_resp_err_t err) {
        if (err)
                reply_err("%s", rd_kafka_err2str(err));
        else
                reply_ok();
}

static void cmd_updown(struct mock *m, int argc, char **argv, int up) {
        int32_t id;
        if (argc != 2 || parse_broker(m, argv[1], &id)) {
                reply_err("usage: %s <broker_id 1..%d>", argv[0], m->broker_cnt);
                return;
        }
        reply_rkerr(up ? rd_kafka_mock_broker_set_up(m->mcluster, id)
                       : rd_kafka_mock_broker_set_down(m->mcluster, id));
}

static void cmd_rtt(struct mock *m, int argc, char **argv) {
        int32_t id;
        long ms;
        if (argc != 3 || parse_broker(m, argv[1], &id) ||
            parse_long(argv[2], 0, INT_MAX, &ms)) {
                reply_err("usage: rtt <broker_id 1..%d> <ms>", m->broker_cnt);
                return;
        }
        reply_rkerr(rd_kafka_mock_broker_set_rtt(m->mcluster, id, (int)ms));
}

static void cmd_create(struct mock *m, int argc, char **argv) {
        long parts = m->default_partitions;
        long rf    = m->broker_cnt < 3 ? m->broker_cnt : 3;

        if (argc < 2 || argc > 4 ||
            (argc >= 3 && parse_long(argv[2], 1, 100000, &parts)) ||
            (argc >= 4 && parse_long(argv[3], 1, m->broker_cnt, &rf))) {
                reply_err("usage: create <topic> [<partitions> [<replication_factor 1..%d>]]",
                          m->broker_cnt);
                return;
        }
        reply_rkerr(rd_kafka_mock_topic_create(m->mcluster, argv[1], (int)parts,
                                               (int)rf));
}

static void cmd_errors(struct mock *m, int argc, char **argv) {
        rd_kafka_resp_err_t errs[MAX_ERRS];
        int16_t key;
        int i;

        if (argc < 3 || parse_apikey(argv[1], &key)) {
                reply_err("usage: errors <api_key> <err_code> [<err_code> ...]");
                return;
        }
        for (i = 2; i < argc; i++) {
                if (parse_errcode(argv[i], &errs[i - 2])) {
                        reply_err("bad error code '%s'", argv[i]);
                        return;
                }
        }
        rd_kafka_mock_push_request_errors_array(m->mcluster, key,
                                                (size_t)(argc - 2), errs);
        reply_ok();
}

/* librdkafka 2.0.2 offers the per-broker stack only as a varargs call; each
 * call appends to the stack, so pushing pair by pair keeps the given order. */
static void cmd_broker_errors(struct mock *m, int argc, char **argv) {
        rd_kafka_resp_err_t errs[MAX_ERRS];
        long rtts[MAX_ERRS];
        int32_t id;
        int16_t key;
        int i, n;

        if (argc < 5 || (argc - 3) % 2 || parse_broker(m, argv[1], &id) ||
            parse_apikey(argv[2], &key)) {
                reply_err("usage: broker_errors <broker_id 1..%d> <api_key> "
                          "<err_code> <rtt_ms> [<err_code> <rtt_ms> ...]",
                          m->broker_cnt);
                return;
        }
        n = (argc - 3) / 2;
        for (i = 0; i < n; i++) {
                if (parse_errcode(argv[3 + 2 * i], &errs[i]) ||
                    parse_long(argv[4 + 2 * i], 0, INT_MAX, &rtts[i])) {
                        reply_err("bad pair '%s %s'", argv[3 + 2 * i],
                                  argv[4 + 2 * i]);
                        return;
                }
        }
        for (i = 0; i < n; i++) {
                rd_kafka_resp_err_t err = rd_kafka_mock_broker_push_request_error_rtts(
                    m->mcluster, id, key, 1, errs[i], (int)rtts[i]);
                if (err) {
                        reply_err("%s (after %d of %d pairs)", rd_kafka_err2str(err),
                                  i, n);
                        return;
                }
        }
        reply_ok();
}

static void cmd_errors_left(struct mock *m, int argc, char **argv) {
        rd_kafka_resp_err_t err;
        size_t cnt = 0;
        int32_t id;
        int16_t key;

        if (argc != 3 || parse_broker(m, argv[1], &id) || parse_apikey(argv[2], &key)) {
                reply_err("usage: errors_left <broker_id 1..%d> <api_key>", m->broker_cnt);
                return;
        }
        err = rd_kafka_mock_broker_error_stack_cnt(m->mcluster, id, key, &cnt);
        if (err) {
                reply_err("%s", rd_kafka_err2str(err));
                return;
        }
        printf("OK %zu\n", cnt);
        fflush(stdout);
}

static void cmd_leader(struct mock *m, int argc, char **argv) {
        long part;
        int32_t id;
        if (argc != 4 || parse_long(argv[2], 0, INT32_MAX, &part) ||
            parse_broker(m, argv[3], &id)) {
                reply_err("usage: leader <topic> <partition> <broker_id 1..%d>",
                          m->broker_cnt);
                return;
        }
        reply_rkerr(rd_kafka_mock_partition_set_leader(m->mcluster, argv[1],
                                                       (int32_t)part, id));
}

static void cmd_clear(struct mock *m, int argc, char **argv) {
        int16_t key;
        if (argc != 2 || parse_apikey(argv[1], &key)) {
                reply_err("usage: clear <api_key>");
                return;
        }
        rd_kafka_mock_clear_request_errors(m->mcluster, key);
        reply_ok();
}

/* Splits line in place at blanks; returns the word count or -1 if too many. */
static int split(char *line, char **argv) {
        char *save = NULL, *w;
        int argc   = 0;

        for (w = strtok_r(line, " \t\r\n", &save); w;
             w = strtok_r(NULL, " \t\r\n", &save)) {
                if (argc == MAX_ARGS)
                        return -1;
                argv[argc++] = w;
        }
        return argc;
}

/* Runs one command line; returns 1 when the loop should stop. */
static int run_line(struct mock *m, char *line) {
        char *argv[MAX_ARGS];
        int argc = split(line, argv);

        if (argc < 0) {
                reply_err("more than %d words", MAX_ARGS);
                return 0;
        }
        if (argc == 0) {
                reply_err("empty command");
                return 0;
        }
        if (!strcmp(argv[0], "quit")) {
                reply_ok();
                return 1;
        }
        if (!strcmp(argv[0], "down"))
                cmd_updown(m, argc, argv, 0);
        else if (!strcmp(argv[0], "up"))
                cmd_updown(m, argc, argv, 1);
        else if (!strcmp(argv[0], "rtt"))
                cmd_rtt(m, argc, argv);
        else if (!strcmp(argv[0], "create"))
                cmd_create(m, argc, argv);
        else if (!strcmp(argv[0], "errors"))
                cmd_errors(m, argc, argv);
        else if (!strcmp(argv[0], "broker_errors"))
                cmd_broker_errors(m, argc, argv);
        else if (!strcmp(argv[0], "errors_left"))
                cmd_errors_left(m, argc, argv);
        else if (!strcmp(argv[0], "leader"))
                cmd_leader(m, argc, argv);
        else if (!strcmp(argv[0], "clear"))
                cmd_clear(m, argc, argv);
        else
                reply_err("unknown command '%s'", argv[0]);
        return 0;
}

/* Reads commands until "quit" or end of input. A line longer than MAX_LINE is
 * answered once with ERR and skipped whole. */
static void command_loop(struct mock *m) {
        char line[MAX_LINE];

        while (fgets(line, sizeof(line), stdin)) {
                size_t len = strlen(line);
                if (len == sizeof(line) - 1 && line[len - 1] != '\n') {
                        int c;
                        while ((c = getchar()) != EOF && c != '\n')
                                ;
                        reply_err("line longer than %d bytes", MAX_LINE - 1);
                        if (c == EOF)
                                return;
                        continue;
                }
                if (run_line(m, line))
                        return;
        }
}

/* The dummy producer only hosts the cluster; its own log lines (it has no
 * bootstrap servers) would just be noise on stderr. */
static void quiet_log(const rd_kafka_t *rk, int level, const char *fac,
                      const char *buf) {
        (void)rk;
        if (level <= 3)
                fprintf(stderr, "sl-mock: %s: %s\n", fac, buf);
}

static void usage(FILE *f) {
        fprintf(f, "usage: sl-mock [--brokers N] [--partitions P]\n"
                   "  prints 'BOOTSTRAP <host:port,...>', then reads commands on stdin\n");
}

int main(int argc, char **argv) {
        struct mock m = {.broker_cnt = 3, .default_partitions = 4};
        rd_kafka_conf_t *conf;
        char errstr[512];
        long v;
        int i;

        for (i = 1; i < argc; i++) {
                const char *a = argv[i], *val = NULL;
                size_t alen;
                const char *eq = strchr(a, '=');

                alen = eq ? (size_t)(eq - a) : strlen(a);
                if (eq)
                        val = eq + 1;
                else if (i + 1 < argc && (!strcmp(a, "--brokers") ||
                                          !strcmp(a, "--partitions")))
                        val = argv[++i];

                if (alen == 9 && !strncmp(a, "--brokers", alen) &&
                    !parse_long(val, 1, 64, &v)) {
                        m.broker_cnt = (int)v;
                } else if (alen == 12 && !strncmp(a, "--partitions", alen) &&
                           !parse_long(val, 1, 100000, &v)) {
                        m.default_partitions = (int)v;
                } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
                        usage(stdout);
                        return 0;
                } else {
                        fprintf(stderr, "sl-mock: bad argument '%s'\n", a);
                        usage(stderr);
                        return 2;
                }
        }

        /* A test that closes our stdout early must not kill us mid-command. */
        signal(SIGPIPE, SIG_IGN);

        conf = rd_kafka_conf_new();
        rd_kafka_conf_set_log_cb(conf, quiet_log);
        if (rd_kafka_conf_set(conf, "client.id", "sl-mock", errstr,
                              sizeof(errstr)) != RD_KAFKA_CONF_OK) {
                fprintf(stderr, "sl-mock: %s\n", errstr);
                rd_kafka_conf_destroy(conf);
                return 1;
        }
        m.rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
        if (!m.rk) { /* conf is still ours on failure */
                fprintf(stderr, "sl-mock: rd_kafka_new: %s\n", errstr);
                rd_kafka_conf_destroy(conf);
                return 1;
        }
        m.mcluster = rd_kafka_mock_cluster_new(m.rk, m.broker_cnt);
        if (!m.mcluster) {
                fprintf(stderr, "sl-mock: rd_kafka_mock_cluster_new failed\n");
                rd_kafka_destroy(m.rk);
                return 1;
        }

        printf("BOOTSTRAP %s\n", rd_kafka_mock_cluster_bootstraps(m.mcluster));
        fflush(stdout);

        command_loop(&m);

        rd_kafka_mock_cluster_destroy(m.mcluster);
        rd_kafka_destroy(m.rk);
        return 0;
}
