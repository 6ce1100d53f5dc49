/* The daemon configuration in proxy/config.c: defaults, the JSON file,
 * flags, and the texts generated from the key table. */
#include "sluice/config.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <unistd.h>

#include "sl_test.h"

/* ---- helpers --------------------------------------------------------- */

/* One mkdtemp directory for the whole run; removed with its files at exit. */
static char tmp_dir[64];
static char *tmp_files[64];
static size_t n_tmp_files;

static void cleanup(void)
{
    for (size_t i = 0; i < n_tmp_files; i++) {
        unlink(tmp_files[i]);
        free(tmp_files[i]);
    }
    if (tmp_dir[0] != '\0')
        rmdir(tmp_dir);
}

/* Writes text to a new file named name in the temp directory; returns its
 * path (owned by the harness). */
static const char *write_file(const char *name, const char *text)
{
    char path[256];
    FILE *f;

    if (tmp_dir[0] == '\0') {
        snprintf(tmp_dir, sizeof(tmp_dir), "/tmp/sl_test_config.XXXXXX");
        if (mkdtemp(tmp_dir) == NULL) {
            perror("mkdtemp");
            exit(1);
        }
        atexit(cleanup);
    }
    snprintf(path, sizeof(path), "%s/%s", tmp_dir, name);
    f = fopen(path, "w");
    if (f == NULL || n_tmp_files == SL_ARRAY_SIZE(tmp_files)) {
        perror(path);
        exit(1);
    }
    fputs(text, f);
    fclose(f);
    tmp_files[n_tmp_files] = strdup(path);
    return tmp_files[n_tmp_files++];
}

/* Loads text (written as file name) over the defaults and expects the
 * error "<path>:<want_tail>" (want_tail starts after the path, e.g.
 * "3: limits.max_connections: ..."), and that the config is unchanged. */
#define EXPECT_LOAD_ERROR(name, text, want_tail)                          \
    do {                                                                  \
        sl_config c_;                                                     \
        char err_[1024] = "", want_[1024];                                \
        const char *path_ = write_file((name), (text));                   \
        sl_config_defaults(&c_);                                          \
        ASSERT_EQ(sl_config_load_file(&c_, path_, err_, sizeof(err_)),    \
                  SL_E_CONFIG);                                           \
        snprintf(want_, sizeof(want_), "%s:%s", path_, (want_tail));      \
        ASSERT_STREQ(err_, want_);                                        \
        ASSERT_STREQ(c_.listen, "127.0.0.1:9092");                        \
        ASSERT_EQ(c_.max_connections, 10000);                             \
        ASSERT_EQ(c_.n_upstream_props, 0);                                \
        ASSERT_TRUE(c_.config_path == NULL);                              \
        sl_config_free(&c_);                                              \
    } while (0)

/* Runs sl_config_parse_args on a NULL-terminated argument list. */
static int parse(sl_config *c, int *argi, char *err, size_t err_len, ...)
{
    char *argv[32];
    int argc = 0;
    va_list ap;

    argv[argc++] = "sluice";
    va_start(ap, err_len);
    for (char *a; (a = va_arg(ap, char *)) != NULL && argc < 31;)
        argv[argc++] = a;
    va_end(ap);
    argv[argc] = NULL;
    return sl_config_parse_args(c, argc, argv, argi, err, err_len);
}

/* Parses flags over the defaults and expects the error want. */
#define EXPECT_FLAG_ERROR(want, ...)                                      \
    do {                                                                  \
        sl_config c_;                                                     \
        char err_[1024] = "";                                             \
        int argi_ = -7;                                                   \
        sl_config_defaults(&c_);                                          \
        ASSERT_EQ(parse(&c_, &argi_, err_, sizeof(err_), __VA_ARGS__,     \
                        (char *)NULL),                                    \
                  SL_E_CONFIG);                                           \
        ASSERT_STREQ(err_, (want));                                       \
        ASSERT_EQ(argi_, -7);                                             \
        ASSERT_EQ(c_.max_connections, 10000);                             \
        sl_config_free(&c_);                                              \
    } while (0)

/* Runs fn with stdout going into a string (caller frees). */
static char *capture_stdout(int (*fn)(void *), void *arg, int *rc)
{
    char path[128];
    FILE *f;
    long n;
    char *text;
    int saved, fd;

    snprintf(path, sizeof(path), "%s", write_file("stdout.txt", ""));
    fflush(stdout);
    saved = dup(1);
    fd = open(path, O_WRONLY | O_TRUNC);
    dup2(fd, 1);
    close(fd);
    *rc = fn(arg);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);

    f = fopen(path, "r");
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    rewind(f);
    text = calloc(1, (size_t)n + 1);
    if (fread(text, 1, (size_t)n, f) != (size_t)n)
        text[0] = '\0';
    fclose(f);
    return text;
}

/* ---- defaults and a full file ------------------------------------------ */

static void test_defaults(void)
{
    sl_config c;

    sl_config_defaults(&c);
    ASSERT_STREQ(c.listen, "127.0.0.1:9092");
    ASSERT_TRUE(c.advertised_listener == NULL);
    ASSERT_EQ(c.node_id, 0);
    ASSERT_EQ(c.log_level, SL_LOG_INFO);
    ASSERT_STREQ(c.upstream_bootstrap, "mock:3");
    ASSERT_EQ(c.upstream_message_timeout_ms, 20000);
    ASSERT_TRUE(c.upstream_props == NULL);
    ASSERT_EQ(c.n_upstream_props, 0);
    ASSERT_EQ(c.metadata_refresh_ms, 30000);
    ASSERT_EQ(c.metadata_max_age_ms, 300000);
    ASSERT_EQ(c.max_request_bytes, 104857600);
    ASSERT_EQ(c.max_connections, 10000);
    ASSERT_EQ(c.max_inflight_requests, 32);
    ASSERT_EQ(c.max_inflight_bytes, 67108864);
    ASSERT_EQ(c.memory_budget_bytes, 1073741824);
    ASSERT_EQ(c.max_decompressed_bytes, 67108864);
    ASSERT_EQ(c.shutdown_timeout_ms, 10000);
    ASSERT_TRUE(c.config_path == NULL);
    sl_config_free(&c);
    /* free leaves a reusable, empty struct */
    ASSERT_TRUE(c.listen == NULL);
    sl_config_free(&c);
}

static const char full_file[] =
    "{\n"
    "  \"listen\": \"0.0.0.0:19092\",\n"
    "  \"advertised_listener\": \"[2001:db8::1]:9093\",\n"
    "  \"node_id\": 7,\n"
    "  \"log_level\": \"debug\",\n"
    "  \"upstream\": {\n"
    "    \"bootstrap_servers\": \"k1:9092,k2:9092\",\n"
    "    \"message_timeout_ms\": 5000,\n"
    "    \"properties\": {\"acks\": \"all\", \"linger.ms\": 5}\n"
    "  },\n"
    "  \"metadata\": {\"refresh_ms\": 1000, \"max_age_ms\": 60000},\n"
    "  \"limits\": {\n"
    "    \"max_request_bytes\": 2048,\n"
    "    \"max_connections\": 3,\n"
    "    \"max_inflight_requests\": 4,\n"
    "    \"max_inflight_bytes\": 4294967296,\n"
    "    \"memory_budget_bytes\": 1099511627776,\n"
    "    \"max_decompressed_bytes\": 1024\n"
    "  },\n"
    "  \"shutdown_timeout_ms\": 0\n"
    "}\n";

static void test_full_file(void)
{
    sl_config c;
    char err[512] = "";
    const char *path = write_file("full.json", full_file);

    sl_config_defaults(&c);
    ASSERT_EQ(sl_config_load_file(&c, path, err, sizeof(err)), 0);
    ASSERT_STREQ(err, "");
    ASSERT_STREQ(c.listen, "0.0.0.0:19092");
    ASSERT_STREQ(c.advertised_listener, "[2001:db8::1]:9093");
    ASSERT_EQ(c.node_id, 7);
    ASSERT_EQ(c.log_level, SL_LOG_DEBUG);
    ASSERT_STREQ(c.upstream_bootstrap, "k1:9092,k2:9092");
    ASSERT_EQ(c.upstream_message_timeout_ms, 5000);
    ASSERT_EQ(c.n_upstream_props, 2);
    if (c.n_upstream_props == 2) {
        ASSERT_STREQ(c.upstream_props[0].key, "acks");
        ASSERT_STREQ(c.upstream_props[0].value, "all");
        ASSERT_STREQ(c.upstream_props[1].key, "linger.ms");
        ASSERT_STREQ(c.upstream_props[1].value, "5");
    }
    ASSERT_EQ(c.metadata_refresh_ms, 1000);
    ASSERT_EQ(c.metadata_max_age_ms, 60000);
    ASSERT_EQ(c.max_request_bytes, 2048);
    ASSERT_EQ(c.max_connections, 3);
    ASSERT_EQ(c.max_inflight_requests, 4);
    ASSERT_EQ(c.max_inflight_bytes, 4294967296LL);
    ASSERT_EQ(c.memory_budget_bytes, 1099511627776LL);
    ASSERT_EQ(c.max_decompressed_bytes, 1024);
    ASSERT_EQ(c.shutdown_timeout_ms, 0);
    ASSERT_STREQ(c.config_path, path);
    sl_config_free(&c);
}

/* A file sets only what it names; the rest keeps its current value, and
 * null resets advertised_listener. */
static void test_partial_file_over_current(void)
{
    sl_config c;
    char err[512] = "";
    const char *p1 = write_file("part1.json",
                                "{\"limits\": {\"max_connections\": 5},"
                                " \"advertised_listener\": \"h:1\"}");
    const char *p2 = write_file("part2.json",
                                "{\"node_id\": 9, \"advertised_listener\": "
                                "null, \"upstream\": {}}");

    sl_config_defaults(&c);
    ASSERT_EQ(sl_config_load_file(&c, p1, err, sizeof(err)), 0);
    ASSERT_EQ(sl_config_load_file(&c, p2, err, sizeof(err)), 0);
    ASSERT_STREQ(err, "");
    ASSERT_EQ(c.max_connections, 5);
    ASSERT_EQ(c.node_id, 9);
    ASSERT_TRUE(c.advertised_listener == NULL);
    ASSERT_EQ(c.max_inflight_requests, 32);
    ASSERT_STREQ(c.config_path, p2);
    sl_config_free(&c);
}

/* ---- file errors --------------------------------------------------------- */

static void test_error_unknown_key(void)
{
    EXPECT_LOAD_ERROR("unknown1.json",
                      "{\n  \"limits\": {\n    \"max_conections\": 5\n  }\n}\n",
                      "3: limits.max_conections: unknown key (did you mean "
                      "limits.max_connections?)");
    /* a misplaced key is found by its last component */
    EXPECT_LOAD_ERROR("unknown2.json",
                      "{\"listen\": \"a:1\",\n\"max_connections\": 5}",
                      "2: max_connections: unknown key (did you mean "
                      "limits.max_connections?)");
    EXPECT_LOAD_ERROR("unknown3.json", "{\n\n\"zzz\": 1}",
                      "3: zzz: unknown key");
    EXPECT_LOAD_ERROR("unknown4.json", "{\"limit\": {}}",
                      "1: limit: unknown key (did you mean limits?)");
    EXPECT_LOAD_ERROR("unknown5.json", "{\n\"limits.max_connections\": 5}",
                      "2: limits.max_connections: unknown key (in a file, "
                      "dotted names are written as nested objects)");
}

static void test_error_wrong_type(void)
{
    EXPECT_LOAD_ERROR("type1.json",
                      "{\n  \"limits\": {\n    \"max_request_bytes\": 4096,\n"
                      "    \"max_connections\": \"many\"\n  }\n}\n",
                      "4: limits.max_connections: expected an integer in "
                      "1..1000000, got \"many\"");
    EXPECT_LOAD_ERROR("type2.json", "{\"metadata\": {\n\"refresh_ms\": 1.5}}",
                      "2: metadata.refresh_ms: expected an integer in "
                      "100..3600000, got 1.5");
    EXPECT_LOAD_ERROR("type3.json", "{\"node_id\": true}",
                      "1: node_id: expected an integer in 0..2147483647, got "
                      "true");
    EXPECT_LOAD_ERROR("type4.json", "{\"listen\": 9092}",
                      "1: listen: expected host:port (IPv6 in brackets, port "
                      "0..65535), got 9092");
    EXPECT_LOAD_ERROR("type5.json", "{\"upstream\": \"k:9092\"}",
                      "1: upstream: expected an object of upstream.* keys, "
                      "got \"k:9092\"");
    EXPECT_LOAD_ERROR("type6.json",
                      "{\"upstream\": {\"properties\": [\"acks=all\"]}}",
                      "1: upstream.properties: expected an object of "
                      "librdkafka properties, got an array");
    EXPECT_LOAD_ERROR("type7.json",
                      "{\"upstream\": {\"properties\": {\n\"acks\": \"1\",\n"
                      "\"client.rack\": null}}}",
                      "3: upstream.properties.client.rack: expected a string, "
                      "number or boolean, got null");
    EXPECT_LOAD_ERROR("type8.json", "{\"log_level\": \"loud\"}",
                      "1: log_level: expected one of error, warn, info, "
                      "debug, got \"loud\"");
    EXPECT_LOAD_ERROR("type9.json", "{\"listen\": null}",
                      "1: listen: expected host:port (IPv6 in brackets, port "
                      "0..65535), got null");
}

static void test_error_out_of_range(void)
{
    EXPECT_LOAD_ERROR("range1.json",
                      "{\"limits\": {\n\"max_connections\": 0}}",
                      "2: limits.max_connections: expected an integer in "
                      "1..1000000, got 0");
    EXPECT_LOAD_ERROR("range2.json",
                      "{\"limits\": {\"memory_budget_bytes\":\n"
                      "1099511627777}}",
                      "1: limits.memory_budget_bytes: expected an integer in "
                      "1048576..1099511627776, got 1099511627777");
    EXPECT_LOAD_ERROR("range3.json", "{\"shutdown_timeout_ms\": -1}",
                      "1: shutdown_timeout_ms: expected an integer in "
                      "0..600000, got -1");
    EXPECT_LOAD_ERROR("range4.json",
                      "{\"upstream\": {\"bootstrap_servers\": \"mock:17\"}}",
                      "1: upstream.bootstrap_servers: expected \"mock:N\" "
                      "with N in 1..16 or a broker list host:port,..., got "
                      "\"mock:17\"");
}

static void test_error_bad_hostport(void)
{
    EXPECT_LOAD_ERROR("hp1.json", "{\n\"listen\": \"localhost\"}",
                      "2: listen: expected host:port (IPv6 in brackets, port "
                      "0..65535), got \"localhost\"");
    EXPECT_LOAD_ERROR("hp2.json", "{\"listen\": \"h:65536\"}",
                      "1: listen: expected host:port (IPv6 in brackets, port "
                      "0..65535), got \"h:65536\"");
    EXPECT_LOAD_ERROR("hp3.json", "{\"advertised_listener\": \"::1:9092\"}",
                      "1: advertised_listener: expected host:port (IPv6 in "
                      "brackets, port 0..65535) or null, got \"::1:9092\"");
}

static void test_error_duplicate_key(void)
{
    EXPECT_LOAD_ERROR("dup1.json",
                      "{\n  \"limits\": {\n    \"max_connections\": 5,\n"
                      "    \"max_connections\": 6\n  }\n}\n",
                      "4: limits.max_connections: duplicate key (first set on "
                      "line 3)");
    EXPECT_LOAD_ERROR("dup2.json", "{\"node_id\": 1,\n\n\"node_id\": 2}",
                      "3: node_id: duplicate key (first set on line 1)");
    /* a property of the same name elsewhere is not the first one */
    EXPECT_LOAD_ERROR("dup3.json",
                      "{\"upstream\": {\"properties\": {\"acks\": 1},\n"
                      "  \"acks\": 1, \"properties\": {\n"
                      "    \"acks\": \"all\",\n    \"acks\": 0}}}",
                      "2: upstream.properties: duplicate key (first set on "
                      "line 1)");
    EXPECT_LOAD_ERROR("dup4.json",
                      "{\"upstream\": {\"properties\": {\n"
                      "    \"acks\": \"all\",\n    \"acks\": 0}}}",
                      "3: upstream.properties.acks: duplicate key (first set "
                      "on line 2)");
    /* inside an array a key has no dotted name: jansson's own message */
    EXPECT_LOAD_ERROR("dup5.json", "{\"x\": [{\"k\": 1, \"k\": 2}]}",
                      "1:19: invalid JSON: duplicate object key near '\"k\"'");
}

static void test_error_json_syntax(void)
{
    EXPECT_LOAD_ERROR("syn1.json", "{\n  \"node_id\": 1,\n}\n",
                      "3:1: invalid JSON: string or '}' expected near '}'");
    EXPECT_LOAD_ERROR("syn2.json", "",
                      "1: invalid JSON: unexpected token near end of file");
}

static void test_error_root_not_object(void)
{
    EXPECT_LOAD_ERROR("root1.json", "\n\n  [1, 2]\n",
                      "3: expected a JSON object at the top level, got an "
                      "array");
    EXPECT_LOAD_ERROR("root2.json", "\"listen\"",
                      "1: expected a JSON object at the top level, got a "
                      "string");
}

static void test_error_missing_file(void)
{
    sl_config c;
    char err[512] = "";

    sl_config_defaults(&c);
    ASSERT_EQ(sl_config_load_file(&c, "/nonexistent/sluice.json", err,
                                  sizeof(err)),
              SL_E_CONFIG);
    ASSERT_STREQ(err,
                 "/nonexistent/sluice.json: cannot open: No such file or "
                 "directory");
    sl_config_free(&c);
}

/* The line comes from the key's own object: the same name elsewhere (a
 * property, a string value, an array) must not be picked. */
static void test_error_line_is_nesting_aware(void)
{
    EXPECT_LOAD_ERROR("nest2.json",
                      "{\n"
                      "  \"upstream\": {\"properties\": {\n"
                      "    \"max_connections\": \"\\\"max_connections\\\"\",\n"
                      "    \"limits\": 1}},\n"
                      "  \"limits\": {\n"
                      "    \"max_request_bytes\": 2048,\n"
                      "    \"max_connections\": -3\n"
                      "  }\n"
                      "}\n",
                      "7: limits.max_connections: expected an integer in "
                      "1..1000000, got -3");
    /* keys written with escapes are found by their decoded name */
    EXPECT_LOAD_ERROR("nest3.json",
                      "{\"limits\": {\"max_request_bytes\": 2048,\n"
                      "\"max_\\u0063onnections\": 0}}",
                      "2: limits.max_connections: expected an integer in "
                      "1..1000000, got 0");
}

/* ---- properties ---------------------------------------------------------- */

static void test_properties_order_and_conversion(void)
{
    sl_config c;
    char err[512] = "";
    int argi = 0;
    const char *path = write_file(
        "props.json",
        "{\"upstream\": {\"properties\": {\"z.last\": \"s\", \"acks\": -1, "
        "\"enable.idempotence\": true, \"check.crcs\": false, "
        "\"batch.num.messages\": 10000, \"ratio\": 0.1}}}");

    sl_config_defaults(&c);
    ASSERT_EQ(parse(&c, &argi, err, sizeof(err), "-X", "acks=all",
                    "--config", path, "-Xnew.one=a=b", "-X", "z.last=",
                    (char *)NULL),
              0);
    ASSERT_STREQ(err, "");
    ASSERT_EQ(c.n_upstream_props, 7);
    if (c.n_upstream_props == 7) {
        /* file order first, flags replace in place or append */
        ASSERT_STREQ(c.upstream_props[0].key, "z.last");
        ASSERT_STREQ(c.upstream_props[0].value, "");
        ASSERT_STREQ(c.upstream_props[1].key, "acks");
        ASSERT_STREQ(c.upstream_props[1].value, "all");
        ASSERT_STREQ(c.upstream_props[2].key, "enable.idempotence");
        ASSERT_STREQ(c.upstream_props[2].value, "true");
        ASSERT_STREQ(c.upstream_props[3].key, "check.crcs");
        ASSERT_STREQ(c.upstream_props[3].value, "false");
        ASSERT_STREQ(c.upstream_props[4].key, "batch.num.messages");
        ASSERT_STREQ(c.upstream_props[4].value, "10000");
        ASSERT_STREQ(c.upstream_props[5].key, "ratio");
        ASSERT_STREQ(c.upstream_props[5].value, "0.1");
        ASSERT_STREQ(c.upstream_props[6].key, "new.one");
        ASSERT_STREQ(c.upstream_props[6].value, "a=b");
    }
    sl_config_free(&c);
}

static void test_x_flag(void)
{
    sl_config c;
    char err[512] = "";
    int argi = 0;

    sl_config_defaults(&c);
    ASSERT_EQ(parse(&c, &argi, err, sizeof(err), "-X", "a=1", "-X", "b=2",
                    "-X", "a=3", "--upstream.properties=c=4", (char *)NULL),
              0);
    ASSERT_EQ(c.n_upstream_props, 3);
    if (c.n_upstream_props == 3) {
        ASSERT_STREQ(c.upstream_props[0].key, "a");
        ASSERT_STREQ(c.upstream_props[0].value, "3");
        ASSERT_STREQ(c.upstream_props[1].key, "b");
        ASSERT_STREQ(c.upstream_props[1].value, "2");
        ASSERT_STREQ(c.upstream_props[2].key, "c");
        ASSERT_STREQ(c.upstream_props[2].value, "4");
    }
    ASSERT_EQ(argi, 8);
    sl_config_free(&c);

    EXPECT_FLAG_ERROR("-X: expected key=value, got \"acks\"", "-X", "acks");
    EXPECT_FLAG_ERROR("-X: expected key=value, got \"=1\"", "-X=1");
    EXPECT_FLAG_ERROR("-X: missing value; expected key=value", "-X");
}

/* ---- flags ------------------------------------------------------------- */

static void test_flags_override_file(void)
{
    static const char *orders[2][6] = {
        {"--limits.max_connections=5", "--config", NULL, "--listen",
         "[::1]:0", "--log-level=warn"},
        {"--config", NULL, "--listen", "[::1]:0",
         "--limits.max_connections", "5"},
    };
    const char *path = write_file(
        "over.json", "{\"listen\": \"1.2.3.4:1\", \"node_id\": 3, "
                     "\"limits\": {\"max_connections\": 7}}");

    for (int o = 0; o < 2; o++) {
        sl_config c;
        char err[512] = "", *argv[8];
        int argi = 0;

        argv[0] = "sluice";
        for (int i = 0; i < 6; i++)
            argv[i + 1] = (char *)(orders[o][i] ? orders[o][i] : path);
        argv[7] = NULL;
        sl_config_defaults(&c);
        ASSERT_EQ(sl_config_parse_args(&c, 7, argv, &argi, err, sizeof(err)),
                  0);
        ASSERT_STREQ(err, "");
        ASSERT_EQ(argi, 7);
        ASSERT_EQ(c.max_connections, 5);
        ASSERT_STREQ(c.listen, "[::1]:0");
        ASSERT_EQ(c.node_id, 3); /* from the file, no flag */
        ASSERT_EQ(c.log_level, o == 0 ? SL_LOG_WARN : SL_LOG_INFO);
        ASSERT_STREQ(c.config_path, path);
        sl_config_free(&c);
    }
}

static void test_flag_forms_and_aliases(void)
{
    sl_config c;
    char err[512] = "";
    int argi = 0;

    sl_config_defaults(&c);
    ASSERT_EQ(parse(&c, &argi, err, sizeof(err), "--upstream", "b1:9092",
                    "--node_id=12", "--log_level", "error",
                    "--advertised_listener=[fe80::1%eth0]:9092",
                    "--metadata.max_age_ms", "1000", (char *)NULL),
              0);
    ASSERT_STREQ(err, "");
    ASSERT_STREQ(c.upstream_bootstrap, "b1:9092");
    ASSERT_EQ(c.node_id, 12);
    ASSERT_EQ(c.log_level, SL_LOG_ERROR);
    ASSERT_STREQ(c.advertised_listener, "[fe80::1%eth0]:9092");
    ASSERT_EQ(c.metadata_max_age_ms, 1000);
    ASSERT_EQ(argi, 9);
    ASSERT_EQ(parse(&c, &argi, err, sizeof(err),
                    "--upstream.bootstrap_servers=mock:16", (char *)NULL),
              0);
    ASSERT_STREQ(c.upstream_bootstrap, "mock:16");
    sl_config_free(&c);
}

static void test_flag_errors(void)
{
    EXPECT_FLAG_ERROR("--limits.max_connections: expected an integer in "
                      "1..1000000, got \"x\"",
                      "--limits.max_connections=x");
    EXPECT_FLAG_ERROR("--limits.max_connections: expected an integer in "
                      "1..1000000, got \"1000001\"",
                      "--limits.max_connections", "1000001");
    EXPECT_FLAG_ERROR("--node_id: expected an integer in 0..2147483647, got "
                      "\" 1\"",
                      "--node_id= 1");
    EXPECT_FLAG_ERROR("--node_id: expected an integer in 0..2147483647, got "
                      "\"99999999999999999999\"",
                      "--node_id=99999999999999999999");
    EXPECT_FLAG_ERROR("--limits.max_conections: unknown flag (did you mean "
                      "--limits.max_connections?)",
                      "--limits.max_conections=4");
    EXPECT_FLAG_ERROR("--log-levle: unknown flag (did you mean --log-level?)",
                      "--log-levle", "debug");
    EXPECT_FLAG_ERROR("--frobnicate: unknown flag", "--frobnicate");
    EXPECT_FLAG_ERROR("-v: unknown flag", "-v");
    EXPECT_FLAG_ERROR("--listen: missing value; expected host:port (IPv6 in "
                      "brackets, port 0..65535)",
                      "--listen");
    EXPECT_FLAG_ERROR("--upstream: expected \"mock:N\" with N in 1..16 or a "
                      "broker list host:port,..., got \"mock:0\"",
                      "--upstream=mock:0");
    EXPECT_FLAG_ERROR("--log-level: expected one of error, warn, info, debug, "
                      "got \"\\x09\"",
                      "--log-level=\t");
    EXPECT_FLAG_ERROR("--help: takes no value", "--help=1");
    EXPECT_FLAG_ERROR("--config: missing value; expected a file name",
                      "--config");
    EXPECT_FLAG_ERROR("--config: given twice (\"a\", \"b\")", "--config", "a",
                      "--config=b");
    EXPECT_FLAG_ERROR("/nonexistent.json: cannot open: No such file or "
                      "directory",
                      "--config", "/nonexistent.json");
    /* a later flag's error after a good one leaves c untouched */
    EXPECT_FLAG_ERROR("--limits.max_inflight_requests: expected an integer in "
                      "1..10000, got \"0\"",
                      "--limits.max_connections=3",
                      "--limits.max_inflight_requests=0");
}

static void test_file_error_through_flags(void)
{
    char want[512];
    const char *path = write_file("viaflag.json", "{\"limits\": {\n"
                                                  "\"max_connections\": 0}}");

    snprintf(want, sizeof(want),
             "%s:2: limits.max_connections: expected an integer in "
             "1..1000000, got 0",
             path);
    EXPECT_FLAG_ERROR(want, "--listen=h:1", "--config", path);
}

static void test_positional_index(void)
{
    sl_config c;
    char err[512] = "";
    int argi = -1;

    sl_config_defaults(&c);
    ASSERT_EQ(parse(&c, &argi, err, sizeof(err), "--listen", "127.0.0.1:1",
                    "policy", "check", "--listen=x", (char *)NULL),
              0);
    ASSERT_EQ(argi, 3);
    ASSERT_STREQ(c.listen, "127.0.0.1:1");

    ASSERT_EQ(parse(&c, &argi, err, sizeof(err), "--node_id=1", "--",
                    "--node_id=2", (char *)NULL),
              0);
    ASSERT_EQ(argi, 3);
    ASSERT_EQ(c.node_id, 1);

    ASSERT_EQ(parse(&c, &argi, err, sizeof(err), "-", (char *)NULL), 0);
    ASSERT_EQ(argi, 1);

    ASSERT_EQ(parse(&c, &argi, err, sizeof(err), (char *)NULL), 0);
    ASSERT_EQ(argi, 1);
    sl_config_free(&c);
}

static int run_help(void *arg)
{
    sl_config c;
    char err[64] = "";
    int argi = 0, rc;

    sl_config_defaults(&c);
    /* --help wins over a bad file given before it, which is not read */
    rc = parse(&c, &argi, err, sizeof(err), "--config", "/nonexistent",
               (const char *)arg, "--limits.max_connections=0",
               (char *)NULL);
    sl_config_free(&c);
    return rc;
}

static void test_help_and_version(void)
{
    int rc = 0;
    char *out;

    out = capture_stdout(run_help, "--help", &rc);
    ASSERT_EQ(rc, 1);
    ASSERT_TRUE(strstr(out, "Usage: sluice") != NULL);
    ASSERT_TRUE(strstr(out, "  --limits.max_connections N\n      Client "
                            "connections open at once; beyond it new ones wait in "
                            "the listen\n      backlog until one closes.\n"
                            "      [default: 10000; 1..1000000]\n") !=
                NULL);
    /* help is wrapped at 78 columns */
    ASSERT_TRUE(strstr(out, "\n      Milliseconds librdkafka may take to "
                            "deliver a record before the client\n      is "
                            "answered with a timeout (message.timeout.ms).\n")
                != NULL);
    ASSERT_TRUE(strstr(out, "  -X, --upstream.properties KEY=VALUE\n") != NULL);
    ASSERT_TRUE(strstr(out, "  --upstream.bootstrap_servers, --upstream LIST\n")
                != NULL);
    ASSERT_TRUE(strstr(out, "[default: 67108864 (64 MiB); 1024..2147483647]")
                != NULL);
    ASSERT_TRUE(strstr(out, "[default: info; error|warn|info|debug]") != NULL);
    free(out);

    out = capture_stdout(run_help, "-h", &rc);
    ASSERT_EQ(rc, 1);
    ASSERT_TRUE(strstr(out, "Usage: sluice") != NULL);
    free(out);

    out = capture_stdout(run_help, "--version", &rc);
    ASSERT_EQ(rc, 1);
    ASSERT_STREQ(out, "sluice " SL_VERSION "\n");
    free(out);
}

/* ---- generated texts ---------------------------------------------------- */

static void test_markdown(void)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);

    sl_config_print_markdown(f);
    fclose(f);
    static const char head[] =
        "| Key | Flag | Type | Default | Range | Description |\n"
        "|---|---|---|---|---|---|\n| `listen` | `--listen` | host:port | "
        "`127.0.0.1:9092` | port 0..65535 | Address to accept";

    ASSERT_TRUE(strncmp(text, head, sizeof(head) - 1) == 0);
    ASSERT_TRUE(strstr(text, "| `log_level` | `--log_level`, `--log-level` | "
                             "choice | `info` | error, warn, info, debug | ") !=
                NULL);
    ASSERT_TRUE(strstr(text, "| `upstream.properties` | `-X`, "
                             "`--upstream.properties` | object | none |  | ") !=
                NULL);
    ASSERT_TRUE(strstr(text, "| `advertised_listener` | "
                             "`--advertised_listener` | host:port | same as "
                             "listen | port 0..65535 | ") != NULL);
    ASSERT_TRUE(strstr(text, "| `limits.memory_budget_bytes` | "
                             "`--limits.memory_budget_bytes` | integer | "
                             "`1073741824 (1 GiB)` | 1048576..1099511627776 | ")
                != NULL);
    free(text);
}

static char *dump(const sl_config *c, int *rc)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);

    *rc = sl_config_dump_json(c, f);
    fclose(f);
    return text;
}

static void test_dump_redacts_and_reloads(void)
{
    sl_config c, back;
    char err[512] = "";
    int argi = 0, rc = -1;
    char *text;
    const char *path;

    sl_config_defaults(&c);
    ASSERT_EQ(parse(&c, &argi, err, sizeof(err), "-X", "acks=all", "-X",
                    "sasl.username=alice", "-X", "sasl.password=hunter2",
                    "-X", "ssl.key.pem=KEY", "-X",
                    "sasl.oauthbearer.client.secret=s3", "-X",
                    "ssl.keystore.PASSWORD=pw", "--limits.max_connections=42",
                    (char *)NULL),
              0);
    text = dump(&c, &rc);
    ASSERT_EQ(rc, 0);
    ASSERT_TRUE(strstr(text, "\"acks\": \"all\"") != NULL);
    ASSERT_TRUE(strstr(text, "\"sasl.username\": \"[redacted]\"") != NULL);
    ASSERT_TRUE(strstr(text, "\"sasl.password\": \"[redacted]\"") != NULL);
    ASSERT_TRUE(strstr(text, "\"ssl.key.pem\": \"[redacted]\"") != NULL);
    ASSERT_TRUE(strstr(text, "\"ssl.keystore.PASSWORD\": \"[redacted]\"") !=
                NULL);
    ASSERT_TRUE(strstr(text, "hunter2") == NULL);
    ASSERT_TRUE(strstr(text, "alice") == NULL);
    ASSERT_TRUE(strstr(text, "KEY\"") == NULL);
    ASSERT_TRUE(strstr(text, "\"s3\"") == NULL);
    ASSERT_TRUE(strstr(text, "\"pw\"") == NULL);
    ASSERT_TRUE(strstr(text, "\"log_level\": \"info\"") != NULL);
    /* the address in effect, though the key is unset */
    ASSERT_TRUE(strstr(text, "\"advertised_listener\": \"127.0.0.1:9092\"") !=
                NULL);
    ASSERT_TRUE(c.advertised_listener == NULL);

    /* the dump is a config file that loads back to the same values */
    path = write_file("dump.json", text);
    sl_config_defaults(&back);
    ASSERT_EQ(sl_config_load_file(&back, path, err, sizeof(err)), 0);
    ASSERT_STREQ(err, "");
    ASSERT_EQ(back.max_connections, 42);
    ASSERT_STREQ(back.upstream_bootstrap, "mock:3");
    ASSERT_EQ(back.n_upstream_props, 6);
    if (back.n_upstream_props == 6) {
        ASSERT_STREQ(back.upstream_props[0].value, "all");
        ASSERT_STREQ(back.upstream_props[2].key, "sasl.password");
        ASSERT_STREQ(back.upstream_props[2].value, "[redacted]");
    }
    sl_config_free(&back);
    free(text);
    sl_config_free(&c);
}

static void test_split_hostport(void)
{
    char host[16];
    int port = -1;

    ASSERT_EQ(sl_config_split_hostport("127.0.0.1:9092", host, sizeof(host),
                                       &port),
              0);
    ASSERT_STREQ(host, "127.0.0.1");
    ASSERT_EQ(port, 9092);
    ASSERT_EQ(sl_config_split_hostport("[::1]:0", host, sizeof(host), &port),
              0);
    ASSERT_STREQ(host, "::1");
    ASSERT_EQ(port, 0);
    ASSERT_EQ(sl_config_split_hostport("kafka-1.example.com:65535", host,
                                       sizeof(host), &port),
              SL_E_TOO_LARGE);
    ASSERT_EQ(sl_config_split_hostport("kafka-1:65535", host, sizeof(host),
                                       &port),
              0);
    ASSERT_STREQ(host, "kafka-1");
    ASSERT_EQ(port, 65535);
    ASSERT_EQ(sl_config_split_hostport("a:1", NULL, 0, NULL), 0);

    static const char *const bad[] = {
        "", ":9092", "host", "host:", "host:65536", "host:-1", "host:+1",
        "host:1x", "host:000001", "::1:9092", "[::1]", "[::1]9092", "[]:1",
        "[1.2.3.4]:1", "ho st:1", "h/x:1", "[::1]:1:2",
    };
    for (size_t i = 0; i < SL_ARRAY_SIZE(bad); i++) {
        int rc = sl_config_split_hostport(bad[i], host, sizeof(host), &port);
        if (rc != SL_E_INVALID)
            SL__FAIL("\"%s\": expected SL_E_INVALID, got %d", bad[i], rc);
    }
}

/* The security keys: choices by name, booleans as JSON booleans or
 * words, and the key password never printed. */
static void test_security_keys(void)
{
    sl_config c;
    char err[1024] = "";
    const char *path = write_file(
        "sec.json",
        "{\"listen_protocol\": \"SASL_PLAINTEXT\",\n"
        " \"require_principal\": true,\n"
        " \"tls\": {\"listen\": \"127.0.0.1:9093\", \"protocol\": \"SASL_SSL\",\n"
        "   \"cert_file\": \"/c.pem\", \"key_file\": \"/k.pem\",\n"
        "   \"key_password\": \"hunter2\", \"client_auth\": \"requested\",\n"
        "   \"min_version\": \"TLSv1.3\"},\n"
        " \"sasl\": {\"mechanisms\": \"PLAIN\", \"session_lifetime_ms\": 600000}}");
    char *text = NULL;
    size_t len = 0;
    FILE *f;

    sl_config_defaults(&c);
    ASSERT_EQ(c.listen_protocol, 0);
    ASSERT_EQ(c.require_principal, 0);
    ASSERT_STREQ(c.tls_principal_mapping_rules, "DEFAULT");
    ASSERT_EQ(sl_config_load_file(&c, path, err, sizeof(err)), 0);
    ASSERT_STREQ(err, "");
    ASSERT_EQ(c.listen_protocol + SL_PROTO_PLAINTEXT, SL_PROTO_SASL_PLAINTEXT);
    ASSERT_EQ(c.tls_protocol + SL_PROTO_SSL, SL_PROTO_SASL_SSL);
    ASSERT_EQ(c.require_principal, 1);
    ASSERT_EQ(c.tls_client_auth, SL_TLS_CLIENT_AUTH_REQUESTED);
    ASSERT_EQ(c.tls_min_version, 1);
    ASSERT_EQ(c.sasl_session_lifetime_ms, 600000);
    f = open_memstream(&text, &len);
    ASSERT_EQ(sl_config_dump_json(&c, f), 0);
    fclose(f);
    ASSERT_TRUE(strstr(text, "hunter2") == NULL);
    ASSERT_TRUE(strstr(text, "\"key_password\": \"[redacted]\"") != NULL);
    ASSERT_TRUE(strstr(text, "\"require_principal\": true") != NULL);
    ASSERT_TRUE(strstr(text, "\"client_auth\": \"requested\"") != NULL);
    free(text);
    ASSERT_STREQ(sl_security_protocol_name(SL_PROTO_SASL_SSL), "SASL_SSL");
    sl_config_free(&c);
    /* Flags take the words. */
    sl_config_defaults(&c);
    {
        int argi;
        ASSERT_EQ(parse(&c, &argi, err, sizeof(err), "--require_principal",
                        "false", "--tls.client_auth=required", NULL),
                  0);
        ASSERT_EQ(c.require_principal, 0);
        ASSERT_EQ(c.tls_client_auth, SL_TLS_CLIENT_AUTH_REQUIRED);
        ASSERT_EQ(parse(&c, &argi, err, sizeof(err), "--tls.protocol",
                        "TLS", NULL),
                  SL_E_CONFIG);
        ASSERT_TRUE(strstr(err, "one of SSL, SASL_SSL") != NULL);
    }
    sl_config_free(&c);
    EXPECT_LOAD_ERROR("sec2.json", "{\"require_principal\": 1}",
                      "1: require_principal: expected one of false, true (or "
                      "a JSON boolean), got 1");
    EXPECT_LOAD_ERROR("sec3.json", "{\"tls\": {\"client_auth\": \"yes\"}}",
                      "1: tls.client_auth: expected one of none, requested, "
                      "required, got \"yes\"");
}

SL_TEST_MAIN(SL_TEST(test_defaults), SL_TEST(test_full_file),
             SL_TEST(test_security_keys),
             SL_TEST(test_partial_file_over_current),
             SL_TEST(test_error_unknown_key), SL_TEST(test_error_wrong_type),
             SL_TEST(test_error_out_of_range),
             SL_TEST(test_error_bad_hostport),
             SL_TEST(test_error_duplicate_key),
             SL_TEST(test_error_json_syntax),
             SL_TEST(test_error_root_not_object),
             SL_TEST(test_error_missing_file),
             SL_TEST(test_error_line_is_nesting_aware),
             SL_TEST(test_properties_order_and_conversion),
             SL_TEST(test_x_flag), SL_TEST(test_flags_override_file),
             SL_TEST(test_flag_forms_and_aliases), SL_TEST(test_flag_errors),
             SL_TEST(test_file_error_through_flags),
             SL_TEST(test_positional_index), SL_TEST(test_help_and_version),
             SL_TEST(test_markdown), SL_TEST(test_dump_redacts_and_reloads),
             SL_TEST(test_split_hostport))
