/*
 * Policy model: the key tables, the loader (jansson plus a raw-text scan
 * for line numbers), cross-field validation, the index build, accessors,
 * the topic allow-list, `policy explain` and `policy check`.
 *
 * Adding a key means adding a field to the struct in policy_internal.h and
 * one row to a table below; the loader, the type/range messages and the
 * unknown-key suggestions come from the tables.
 *
 * Thread: any; a loaded policy is immutable. The only I/O is reading the
 * file in sl_policy_load_file().
 */
#include "policy_internal.h"
#include "sluice/jsonscan.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <jansson.h>

#define MAX_FILE_BYTES (64u << 20)
#define MAX_BYTES ((int64_t)1 << 50) /* 1 PiB: any rate or size */
#define MAX_NAME 249                 /* Kafka's topic-name bound */

/* ---- small helpers ------------------------------------------------------- */

static void put_err(char *err, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void put_err(char *err, size_t len, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL || len == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, len, fmt, ap);
    va_end(ap);
}

const char *sl__human_bytes(char *buf, size_t n, double v)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB",
                                        "PiB"};
    size_t u = 0;

    while (u + 1 < SL_ARRAY_SIZE(units) && fabs(v) >= 1024.0) {
        v /= 1024.0;
        u++;
    }
    if (v == floor(v))
        snprintf(buf, n, "%.0f %s", v, units[u]);
    else
        snprintf(buf, n, "%.1f %s", v, units[u]);
    return buf;
}

#define DESCRIBE_MAX 96

/* A JSON value as a message shows it: strings quoted (cut at 64 bytes),
 * numbers as written, containers by kind. */
static const char *describe_json(char *buf, const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_STRING: {
        const char *s = json_string_value(v);
        size_t n = strlen(s);
        snprintf(buf, DESCRIBE_MAX, "\"%.*s%s\"", n > 64 ? 64 : (int)n, s,
                 n > 64 ? "..." : "");
        break;
    }
    case JSON_INTEGER:
        snprintf(buf, DESCRIBE_MAX, "%" JSON_INTEGER_FORMAT,
                 json_integer_value(v));
        break;
    case JSON_REAL: snprintf(buf, DESCRIBE_MAX, "%g", json_real_value(v)); break;
    case JSON_TRUE: snprintf(buf, DESCRIBE_MAX, "true"); break;
    case JSON_FALSE: snprintf(buf, DESCRIBE_MAX, "false"); break;
    case JSON_NULL: snprintf(buf, DESCRIBE_MAX, "null"); break;
    case JSON_ARRAY: snprintf(buf, DESCRIBE_MAX, "an array"); break;
    default: snprintf(buf, DESCRIBE_MAX, "an object"); break;
    }
    return buf;
}

static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), row[65];

    if (la > 64 || lb > 64)
        return 99;
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            best = SL_MIN(best, up + 1);
            best = SL_MIN(best, row[j - 1] + 1);
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* "a", "b" or "c" joined; or a suggestion: the closest of names to word
 * within a small edit distance, else NULL. */
static const char *closest(const char *word, const char *const *names,
                           size_t n)
{
    const char *best = NULL;
    size_t bd = 3;

    for (size_t i = 0; i < n; i++) {
        size_t d = edit_distance(word, names[i]);
        if (d < bd && d <= (strlen(names[i]) + 1) / 2) {
            bd = d;
            best = names[i];
        }
    }
    return best;
}

/* ---- raw-text scan for line numbers ------------------------------------- */

/* jansson keeps no positions for values: the shared walker in
 * include/sluice/jsonscan.h finds one path's line (errors), the key named
 * by jansson's duplicate-key position, and, with visit_collect below, the
 * lines of all classes and connectors in one pass (for explain). */
typedef sl_jscan_comp pcomp;

/* collect mode: lines of "classes.<name>" and "connectors.<name>" keys */
typedef struct linemap {
    sl__pmap map;  /* name -> index into lines */
    char **names;  /* owned: map keys */
    int *lines;
    size_t n, cap;
} linemap;

typedef struct collect_arg {
    linemap classes, connectors;
} collect_arg;

static void linemap_add(linemap *lm, const char *name, int line)
{
    char *k;

    if (lm->n == lm->cap) {
        size_t cap = lm->cap ? lm->cap * 2 : 64;
        char **nn = sl_realloc(lm->names, cap * sizeof(*nn));
        int *nl;
        lm->names = nn;
        nl = sl_realloc(lm->lines, cap * sizeof(*nl));
        lm->lines = nl;
        lm->cap = cap;
    }
    k = sl_strdup(name);
    if (sl__pmap_put(&lm->map, k, (uint32_t)strlen(k), (int32_t)lm->n)->key !=
        k) {
        sl_free(k); /* a duplicate: jansson reports it; keep the first */
        return;
    }
    lm->names[lm->n] = k;
    lm->lines[lm->n++] = line;
}

static int linemap_get(const linemap *lm, const char *name)
{
    uint32_t probes = 0, len = (uint32_t)strlen(name);
    const sl__pmap_slot *s = sl__pmap_get(&lm->map, name, len,
                                          sl__hash(name, len), &probes);
    return s ? lm->lines[s->val] : 0;
}

static void linemap_free(linemap *lm)
{
    for (size_t i = 0; i < lm->n; i++)
        sl_free(lm->names[i]);
    sl_free(lm->names);
    sl_free(lm->lines);
    sl__pmap_free(&lm->map);
}

static bool visit_collect(sl_jscan *s, size_t depth, bool is_key, int line)
{
    collect_arg *ca = s->arg;

    if (!is_key || depth != 1 || s->path[0].key == NULL)
        return true;
    if (strcmp(s->path[0].key, "classes") == 0)
        linemap_add(&ca->classes, s->path[1].key, line);
    else if (strcmp(s->path[0].key, "connectors") == 0)
        linemap_add(&ca->connectors, s->path[1].key, line);
    return true;
}

/* ---- the loader ---------------------------------------------------------- */

#define LOAD_MAX_DEPTH 8

typedef struct loader {
    sl_policy *pol;
    const char *name; /* FILE in messages */
    const char *text;
    size_t len;
    char *err;
    size_t errlen;
    pcomp comps[LOAD_MAX_DEPTH]; /* path of the value being loaded */
    size_t depth;
    collect_arg lines;
} loader;

static void push_key(loader *ld, const char *key)
{
    if (ld->depth < LOAD_MAX_DEPTH)
        ld->comps[ld->depth] = (pcomp){key, -1};
    ld->depth++;
}

static void push_idx(loader *ld, long i)
{
    if (ld->depth < LOAD_MAX_DEPTH)
        ld->comps[ld->depth] = (pcomp){NULL, i};
    ld->depth++;
}

static void pop(loader *ld)
{
    ld->depth--;
}

static void dotted(const pcomp *c, size_t n, char *buf, size_t len)
{
    size_t o = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < n && o < len; i++) {
        int w = c[i].key ? snprintf(buf + o, len - o, "%s%s", i ? "." : "",
                                    c[i].key)
                         : snprintf(buf + o, len - o, "[%ld]", c[i].idx);
        if (w < 0)
            break;
        o += (size_t)w;
    }
}

/* Reports "FILE:LINE: path: message" for the value at ld->comps; the line
 * is the value's, else the nearest enclosing key's that exists in the
 * text (a missing key), else 1. */
static int load_error(loader *ld, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int load_error(loader *ld, const char *fmt, ...)
{
    char path[512], msg[1024];
    size_t depth = SL_MIN(ld->depth, (size_t)LOAD_MAX_DEPTH);
    int line = 0;
    va_list ap;

    for (size_t n = depth; n > 0 && line == 0; n--)
        line = sl_jscan_path_line(ld->text, ld->len, ld->comps, n);
    dotted(ld->comps, depth, path, sizeof(path));
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (depth > 0)
        put_err(ld->err, ld->errlen, "%s:%d: %s: %s", ld->name,
                line > 0 ? line : 1, path, msg);
    else
        put_err(ld->err, ld->errlen, "%s:%d: %s", ld->name,
                line > 0 ? line : 1, msg);
    return SL_E_CONFIG;
}

/* ---- the tables ---------------------------------------------------------- */

enum ftype {
    F_INT,   /* int64_t in min..max; JSON integers only */
    F_BYTES, /* int64_t in min..max: an integer or "30MiB" */
    F_STR,   /* char *, owned */
    F_ENUM,  /* int64_t index into enums[] */
    F_BOOL,  /* bool */
    F_LIST,  /* sl__strv of non-empty strings, each checked by check() */
    F_OBJ,   /* nested struct loaded with sub */
    F_MAP,   /* object of named members, each loaded by member() */
};

typedef int (*elem_check)(loader *ld, const char *s);
typedef int (*member_fn)(loader *ld, const char *name, json_t *v);

typedef struct field {
    const char *name;
    enum ftype type;
    size_t off;
    int64_t min, max, def;
    const char *const *enums; /* F_ENUM, NULL-terminated */
    const struct fieldset *sub;
    elem_check check;
    member_fn member;
    bool required;
    const char *expect; /* a missing required key: what it should be */
    const char *help;
} field;

typedef struct fieldset {
    const field *f;
    size_t n;
} fieldset;

static const char *const mode_names[] = {"enforce", "shadow", NULL};
static const char *const action_names[] = {"admit", "refuse", NULL};

static int check_principal(loader *ld, const char *s);
static int check_glob(loader *ld, const char *s);
static int check_cidr(loader *ld, const char *s);
static int check_topic(loader *ld, const char *s);
static int member_class(loader *ld, const char *name, json_t *v);
static int member_connector(loader *ld, const char *name, json_t *v);

#define QOFF(f) offsetof(sl_policy_quota, f)
static const field quota_fields[] = {
    {.name = "bytes_per_sec", .type = F_BYTES, .off = QOFF(bytes_per_sec),
     .min = 0, .max = MAX_BYTES,
     .help = "Sustained produce bytes per second; 0 or absent = unlimited."},
    {.name = "records_per_sec", .type = F_INT, .off = QOFF(records_per_sec),
     .min = 0, .max = 1000000000,
     .help = "Sustained records per second; 0 or absent = unlimited."},
    {.name = "burst_bytes", .type = F_BYTES, .off = QOFF(burst_bytes),
     .min = 0, .max = MAX_BYTES,
     .help = "Bucket depth in bytes; default one second at bytes_per_sec."},
    {.name = "burst_records", .type = F_INT, .off = QOFF(burst_records),
     .min = 0, .max = 1000000000,
     .help = "Bucket depth in records; default one second at the rate."},
};
static const fieldset quota_fs = {quota_fields, SL_ARRAY_SIZE(quota_fields)};

#define MOFF(f) offsetof(sl__match, f)
static const field match_fields[] = {
    {.name = "principals", .type = F_LIST, .off = MOFF(principals),
     .check = check_principal,
     .help = "SASL principals, exact (\"User:cdc\"). Highest precedence."},
    {.name = "client_ids", .type = F_LIST, .off = MOFF(client_ids),
     .help = "Exact client.id values."},
    {.name = "connect", .type = F_BOOL, .off = MOFF(connect), .def = 1,
     .help = "Match Kafka Connect task producers of the connector's own "
             "name (client.id connector-producer-<name>-<task>)."},
    {.name = "connect_names", .type = F_LIST, .off = MOFF(connect_names),
     .help = "Further Kafka Connect connector names grouped here."},
    {.name = "client_id_prefixes", .type = F_LIST,
     .off = MOFF(prefixes),
     .help = "client.id prefixes; the longest matching prefix wins."},
    {.name = "client_id_globs", .type = F_LIST, .off = MOFF(globs),
     .check = check_glob,
     .help = "client.id globs with * and ?; last resort before CIDRs."},
    {.name = "cidrs", .type = F_LIST, .off = MOFF(cidrs), .check = check_cidr,
     .help = "Peer address ranges (IPv4 or IPv6); longest prefix wins."},
};
static const fieldset match_fs = {match_fields, SL_ARRAY_SIZE(match_fields)};

#define COFF(f) offsetof(sl_policy_class, f)
static const field class_fields[] = {
    {.name = "weight", .type = F_INT, .off = COFF(weight), .min = 1,
     .max = 1000, .def = 1,
     .help = "Share of the capacity relative to other active classes."},
    {.name = "guarantee_bytes_per_sec", .type = F_BYTES,
     .off = COFF(guarantee), .min = 0, .max = MAX_BYTES,
     .help = "Bytes/s the class gets whenever it wants them."},
    {.name = "ceiling_bytes_per_sec", .type = F_BYTES, .off = COFF(ceiling),
     .min = 0, .max = MAX_BYTES,
     .help = "Bytes/s the class never exceeds, even when others are idle."},
    {.name = "max_pause_ms", .type = F_INT, .off = COFF(max_pause_ms),
     .min = 1, .max = 300000, .def = 5000,
     .help = "Longest single throttle a member is ever given."},
    {.name = "shed_order", .type = F_INT, .off = COFF(shed_order), .min = 0,
     .max = 1000, .def = 0,
     .help = "Under pressure, lower shed_order classes are cut first."},
    {.name = "description", .type = F_STR, .off = COFF(description),
     .help = "Free text for explain output."},
};
static const fieldset class_fs = {class_fields, SL_ARRAY_SIZE(class_fields)};

#define NOFF(f) offsetof(sl_policy_connector, f)
static const field connector_fields[] = {
    {.name = "class", .type = F_STR, .off = NOFF(class_name),
     .required = true, .expect = "the name of one of the classes",
     .help = "The class this connector's traffic belongs to."},
    {.name = "mode", .type = F_ENUM, .off = NOFF(mode_raw), .def = -1,
     .enums = mode_names,
     .help = "Override the file's mode for this connector."},
    {.name = "description", .type = F_STR, .off = NOFF(description),
     .help = "Free text for explain output."},
    {.name = "match", .type = F_OBJ, .off = NOFF(match), .sub = &match_fs,
     .help = "Which clients are this connector."},
    {.name = "quota", .type = F_OBJ, .off = NOFF(quota), .sub = &quota_fs,
     .help = "Per-connector rate limits."},
    {.name = "topics", .type = F_LIST, .off = NOFF(topics_raw),
     .check = check_topic,
     .help = "Topics it may produce to: names, \"prefix.*\", or \"*\"."},
};
static const fieldset connector_fs = {connector_fields,
                                      SL_ARRAY_SIZE(connector_fields)};

#define DOFF(f) offsetof(sl__defaults, f)
static const field defaults_fields[] = {
    {.name = "action", .type = F_ENUM, .off = DOFF(action), .def = 0,
     .enums = action_names,
     .help = "What happens to clients no rule matches."},
    {.name = "class", .type = F_STR, .off = DOFF(class_name),
     .help = "The class unmatched clients join (action admit)."},
    {.name = "quota", .type = F_OBJ, .off = DOFF(quota), .sub = &quota_fs,
     .help = "Quota of each unmatched client.id (or of all together)."},
    {.name = "per_client_id", .type = F_BOOL, .off = DOFF(per_client_id),
     .def = 1,
     .help = "One bucket per unmatched client.id (else one shared)."},
    {.name = "max_clients", .type = F_INT, .off = DOFF(max_clients),
     .min = 1, .max = 1000000, .def = 10000,
     .help = "Most per-client.id buckets kept; beyond, one overflow bucket."},
    {.name = "topics", .type = F_LIST, .off = DOFF(topics_raw),
     .check = check_topic, .help = "Topics unmatched clients may use."},
    {.name = "message", .type = F_STR, .off = DOFF(message),
     .help = "Why a refused client is refused (action refuse)."},
};
static const fieldset defaults_fs = {defaults_fields,
                                     SL_ARRAY_SIZE(defaults_fields)};

#define KOFF(f) offsetof(sl__capacity, f)
static const field capacity_fields[] = {
    {.name = "bytes_per_sec", .type = F_BYTES, .off = KOFF(bytes_per_sec),
     .min = 1, .max = MAX_BYTES, .required = true,
     .expect = "the bytes/s the brokers take, e.g. \"200MiB\"",
     .help = "Bytes/s divided among active classes by weight."},
    {.name = "burst_ms", .type = F_INT, .off = KOFF(burst_ms), .min = 1,
     .max = 60000, .def = 1000,
     .help = "Class bucket depth, as time at the class's share."},
    {.name = "active_window_ms", .type = F_INT,
     .off = KOFF(active_window_ms), .min = 10, .max = 60000, .def = 1000,
     .help = "A class with traffic this recently counts as active."},
};
static const fieldset capacity_fs = {capacity_fields,
                                     SL_ARRAY_SIZE(capacity_fields)};

#define ROFF(f) offsetof(sl_policy_pressure, f)
static const field pressure_fields[] = {
    {.name = "enabled", .type = F_BOOL, .off = ROFF(enabled), .def = 1,
     .help = "Shed load by class when brokers slow down or memory fills."},
    {.name = "latency_target_ms", .type = F_INT,
     .off = ROFF(latency_target_ms), .min = 1, .max = 600000, .def = 200,
     .help = "Write latency (hand-off to acknowledgement) to stay under, "
             "per upstream broker; above it plus 25% the broker's admitted "
             "rate is cut."},
    {.name = "memory_high_water_pct", .type = F_INT,
     .off = ROFF(memory_high_water_pct), .min = 1, .max = 99, .def = 80,
     .help = "Fill of limits.memory_budget_bytes that counts as pressure "
             "(reads stop only at 100%)."},
    {.name = "min_bytes_per_sec", .type = F_BYTES,
     .off = ROFF(min_bytes_per_sec), .min = 1, .max = MAX_BYTES,
     .def = 262144,
     .help = "A limited broker's admitted rate never goes below this."},
    {.name = "decrease_pct", .type = F_INT, .off = ROFF(decrease_pct),
     .min = 1, .max = 90, .def = 30,
     .help = "Each congestion step cuts the admitted rate by this much."},
    {.name = "recovery_ms", .type = F_INT, .off = ROFF(recovery_ms),
     .min = 100, .max = 600000, .def = 2000,
     .help = "After recovery, time to climb back to the rate before the "
             "episode (linear)."},
};
static const fieldset pressure_fs = {pressure_fields,
                                     SL_ARRAY_SIZE(pressure_fields)};

#define POFF(f) offsetof(sl_policy, f)
static const field top_fields[] = {
    {.name = "version", .type = F_INT, .off = POFF(version), .min = 1,
     .max = 1, .def = 1, .help = "Policy format version: 1."},
    {.name = "mode", .type = F_ENUM, .off = POFF(mode_raw), .def = 0,
     .enums = mode_names,
     .help = "enforce: mute clients; shadow: only report decisions."},
    {.name = "description", .type = F_STR, .off = POFF(description),
     .help = "Free text."},
    {.name = "capacity", .type = F_OBJ, .off = POFF(cap), .sub = &capacity_fs,
     .help = "What the brokers take; enables class budgets."},
    {.name = "pressure", .type = F_OBJ, .off = POFF(pressure),
     .sub = &pressure_fs,
     .help = "Pressure control: per-broker latency and memory."},
    {.name = "classes", .type = F_MAP, .member = member_class,
     .sub = &class_fs,
     .required = true, .expect = "an object of classes by name",
     .help = "Traffic classes by name."},
    {.name = "connectors", .type = F_MAP, .member = member_connector,
     .sub = &connector_fs,
     .help = "Connectors (producer groups) by name."},
    {.name = "defaults", .type = F_OBJ, .off = POFF(defaults),
     .sub = &defaults_fs, .required = true,
     .expect = "an object saying what happens to unmatched clients",
     .help = "What happens to clients no rule matches."},
};
static const fieldset top_fs = {top_fields, SL_ARRAY_SIZE(top_fields)};

/* ---- loading values ------------------------------------------------------ */

/* "30MiB", "1.5 GB", "512KiB/s", "100": bytes, rounded to an integer. */
static bool parse_bytes(const char *s, int64_t *out)
{
    static const struct {
        const char *unit;
        double mult;
    } units[] = {
        {"", 1}, {"B", 1}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9},
        {"TB", 1e12}, {"KiB", 1024.0}, {"MiB", 1048576.0},
        {"GiB", 1073741824.0}, {"TiB", 1099511627776.0},
    };
    const char *p = s;
    char unit[8];
    size_t ul = 0;
    double v = 0, frac = 0.1;

    if (*p < '0' || *p > '9')
        return false;
    for (; *p >= '0' && *p <= '9'; p++)
        v = v * 10 + (*p - '0');
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9')
            return false;
        for (; *p >= '0' && *p <= '9'; p++, frac /= 10)
            v += (*p - '0') * frac;
    }
    while (*p == ' ')
        p++;
    while (*p && *p != '/' && ul + 1 < sizeof(unit))
        unit[ul++] = *p++;
    unit[ul] = '\0';
    if (*p == '/' && strcmp(p, "/s") != 0)
        return false;
    if (*p != '\0' && *p != '/')
        return false;
    for (size_t i = 0; i < SL_ARRAY_SIZE(units); i++) {
        if (strcmp(unit, units[i].unit) == 0) {
            double b = floor(v * units[i].mult + 0.5);
            if (b > (double)INT64_MAX / 2)
                return false;
            *out = (int64_t)b;
            return true;
        }
    }
    return false;
}

static const char *range_text(char *buf, size_t n, const field *f)
{
    char a[32], b[32];

    if (f->type == F_BYTES) {
        snprintf(buf, n, "%s..%s",
                 f->min ? sl__human_bytes(a, sizeof(a), (double)f->min) : "0",
                 sl__human_bytes(b, sizeof(b), (double)f->max));
    } else if (f->min == f->max) {
        snprintf(buf, n, "%" PRId64, f->min);
    } else {
        snprintf(buf, n, "%" PRId64 "..%" PRId64, f->min, f->max);
    }
    return buf;
}

static int load_fields(loader *ld, const fieldset *fs, json_t *obj,
                       void *base);

static int load_list(loader *ld, const field *f, json_t *v, sl__strv *sv)
{
    char got[DESCRIBE_MAX];
    size_t i;
    json_t *e;

    if (!json_is_array(v))
        return load_error(ld, "expected an array of strings, got %s",
                          describe_json(got, v));
    sv->set = true;
    sv->v = sl_calloc(json_array_size(v) + 1, sizeof(*sv->v));
    json_array_foreach(v, i, e) {
        const char *s;
        push_idx(ld, (long)i);
        if (!json_is_string(e))
            return load_error(ld, "expected a string, got %s",
                              describe_json(got, e));
        s = json_string_value(e);
        if (s[0] == '\0')
            return load_error(ld, "expected a non-empty string");
        if (strlen(s) > SL_POLICY_MAX_PATTERN)
            return load_error(ld, "longer than %d bytes",
                              SL_POLICY_MAX_PATTERN);
        for (const char *p = s; *p; p++)
            if ((unsigned char)*p < 0x20 || *p == 0x7f)
                return load_error(ld, "control character in %s",
                                  describe_json(got, e));
        if (f->check != NULL && f->check(ld, s) != 0)
            return SL_E_CONFIG;
        sv->v[sv->n++] = sl_strdup(s);
        pop(ld);
    }
    return 0;
}

static int load_field(loader *ld, const field *f, json_t *v, void *base)
{
    void *at = (char *)base + f->off;
    char got[DESCRIBE_MAX], range[64];
    int64_t n;

    switch (f->type) {
    case F_INT:
        if (!json_is_integer(v) || json_integer_value(v) < f->min ||
            json_integer_value(v) > f->max)
            return load_error(ld, "expected %s %s, got %s",
                              f->min == f->max ? "the integer"
                                               : "an integer in",
                              range_text(range, sizeof(range), f),
                              describe_json(got, v));
        *(int64_t *)at = json_integer_value(v);
        return 0;
    case F_BYTES:
        if (json_is_integer(v))
            n = json_integer_value(v);
        else if (!json_is_string(v) || !parse_bytes(json_string_value(v), &n))
            n = -1;
        if (n < f->min || n > f->max)
            return load_error(ld, "expected a byte count in %s (an integer "
                              "or a string like \"30MiB\"), got %s",
                              range_text(range, sizeof(range), f),
                              describe_json(got, v));
        *(int64_t *)at = n;
        return 0;
    case F_STR:
        if (!json_is_string(v))
            return load_error(ld, "expected a string, got %s",
                              describe_json(got, v));
        if (strlen(json_string_value(v)) > 4096)
            return load_error(ld, "longer than 4096 bytes");
        sl_free(*(char **)at);
        *(char **)at = sl_strdup(json_string_value(v));
        return 0;
    case F_ENUM:
        if (json_is_string(v))
            for (int i = 0; f->enums[i]; i++)
                if (strcmp(json_string_value(v), f->enums[i]) == 0) {
                    *(int64_t *)at = i;
                    return 0;
                }
        {
            char list[128];
            size_t o = 0;
            for (int i = 0; f->enums[i] && o < sizeof(list); i++)
                o += (size_t)snprintf(list + o, sizeof(list) - o, "%s\"%s\"",
                                      i == 0 ? ""
                                      : f->enums[i + 1] ? ", " : " or ",
                                      f->enums[i]);
            return load_error(ld, "expected %s, got %s", list,
                              describe_json(got, v));
        }
    case F_BOOL:
        if (!json_is_boolean(v))
            return load_error(ld, "expected true or false, got %s",
                              describe_json(got, v));
        *(bool *)at = json_is_true(v);
        return 0;
    case F_LIST:
        return load_list(ld, f, v, (sl__strv *)at);
    case F_OBJ:
        return load_fields(ld, f->sub, v, at);
    case F_MAP: {
        const char *name;
        json_t *m;
        if (!json_is_object(v))
            return load_error(ld, "expected an object of %s by name, got %s",
                              f->name, describe_json(got, v));
        json_object_foreach(v, name, m) {
            int rc;
            push_key(ld, name);
            if ((rc = f->member(ld, name, m)) != 0)
                return rc;
            pop(ld);
        }
        return 0;
    }
    }
    return SL_E_CONFIG;
}

static void set_defaults(const fieldset *fs, void *base)
{
    for (size_t i = 0; i < fs->n; i++) {
        const field *f = &fs->f[i];
        void *at = (char *)base + f->off;
        switch (f->type) {
        case F_INT:
        case F_BYTES:
        case F_ENUM: *(int64_t *)at = f->def; break;
        case F_BOOL: *(bool *)at = f->def != 0; break;
        case F_OBJ: set_defaults(f->sub, at); break;
        default: break;
        }
    }
}

static int unknown_key(loader *ld, const fieldset *fs, const char *name)
{
    const char *names[16] = {0}, *best;
    char list[400];
    size_t o = 0;

    for (size_t i = 0; i < fs->n && i < SL_ARRAY_SIZE(names); i++)
        names[i] = fs->f[i].name;
    best = closest(name, names, SL_MIN(fs->n, SL_ARRAY_SIZE(names)));
    if (best != NULL)
        return load_error(ld, "unknown key (did you mean \"%s\"?)", best);
    for (size_t i = 0; i < fs->n && o < sizeof(list); i++)
        o += (size_t)snprintf(list + o, sizeof(list) - o, "%s%s",
                              i ? ", " : "", fs->f[i].name);
    return load_error(ld, "unknown key (expected one of: %s)", list);
}

static int load_fields(loader *ld, const fieldset *fs, json_t *obj,
                       void *base)
{
    char got[DESCRIBE_MAX];
    uint32_t seen = 0;
    const char *name;
    json_t *v;

    if (!json_is_object(obj))
        return load_error(ld, "expected an object, got %s",
                          describe_json(got, obj));
    json_object_foreach(obj, name, v) {
        const field *f = NULL;
        int rc;
        push_key(ld, name);
        for (size_t i = 0; i < fs->n && f == NULL; i++)
            if (strcmp(fs->f[i].name, name) == 0) {
                f = &fs->f[i];
                seen |= 1u << i;
            }
        if (f == NULL)
            return unknown_key(ld, fs, name);
        if ((rc = load_field(ld, f, v, base)) != 0)
            return rc;
        pop(ld);
    }
    for (size_t i = 0; i < fs->n; i++) {
        if (!fs->f[i].required || (seen & (1u << i)))
            continue;
        push_key(ld, fs->f[i].name);
        return load_error(ld, "missing (expected %s)", fs->f[i].expect);
    }
    return 0;
}

/* ---- element checks ------------------------------------------------------ */

static int check_principal(loader *ld, const char *s)
{
    const char *colon = strchr(s, ':');

    if (colon == NULL || colon == s || colon[1] == '\0')
        return load_error(ld, "expected a principal like \"User:alice\", "
                          "got \"%s\"", s);
    return 0;
}

static int check_glob(loader *ld, const char *s)
{
    char why[160];

    if (!sl__glob_check(s, why, sizeof(why)))
        return load_error(ld, "invalid glob \"%s\": %s", s, why);
    return 0;
}

static int check_cidr(loader *ld, const char *s)
{
    char why[160];
    sl__cidr c;

    if (!sl__cidr_parse(s, &c, why, sizeof(why)))
        return load_error(ld, "invalid CIDR \"%s\": %s", s, why);
    return 0;
}

static bool topic_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-';
}

static int check_topic(loader *ld, const char *s)
{
    size_t n = strlen(s);

    if (strcmp(s, "*") == 0)
        return 0;
    if (n > 0 && s[n - 1] == '*')
        n--;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '*')
            return load_error(ld, "invalid topic pattern \"%s\": '*' may "
                              "only end a prefix, as in \"orders.*\"", s);
        if (!topic_char(s[i]))
            return load_error(ld, "invalid topic pattern \"%s\": Kafka "
                              "topic names use only [a-zA-Z0-9._-]", s);
    }
    if (n > MAX_NAME)
        return load_error(ld, "invalid topic pattern \"%s\": longer than "
                          "%d characters", s, MAX_NAME);
    return 0;
}

/* ---- classes and connectors ---------------------------------------------- */

static bool name_ok(const char *s, size_t max, bool strict)
{
    size_t n = strlen(s);

    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (strict ? !topic_char((char)ch)
                   : (ch <= 0x20 || ch >= 0x7f || ch == '"' || ch == '\\'))
            return false;
    }
    return true;
}

static int member_class(loader *ld, const char *name, json_t *v)
{
    sl_policy *pol = ld->pol;
    sl_policy_class *c;

    if (!name_ok(name, 64, true))
        return load_error(ld, "invalid class name: use 1..64 characters of "
                          "[a-zA-Z0-9._-]");
    if (pol->n_classes == SL__MAX_CLASSES)
        return load_error(ld, "too many classes (at most %d)",
                          SL__MAX_CLASSES);
    if (pol->n_classes == pol->cap_classes) {
        size_t cap = pol->cap_classes ? pol->cap_classes * 2 : 4;
        sl_policy_class *nc = sl_realloc(pol->classes, cap * sizeof(*nc));
        pol->classes = nc;
        pol->cap_classes = cap;
    }
    c = &pol->classes[pol->n_classes++];
    memset(c, 0, sizeof(*c));
    set_defaults(&class_fs, c);
    c->name = sl_strdup(name);
    c->index = pol->n_classes - 1;
    c->line = linemap_get(&ld->lines.classes, name);
    return load_fields(ld, &class_fs, v, c);
}

static int member_connector(loader *ld, const char *name, json_t *v)
{
    sl_policy *pol = ld->pol;
    sl_policy_connector *c;

    if (!name_ok(name, MAX_NAME, false))
        return load_error(ld, "invalid connector name: use 1..%d printable "
                          "characters without spaces, quotes or backslashes",
                          MAX_NAME);
    if (pol->n_connectors == pol->cap_connectors) {
        size_t cap = pol->cap_connectors ? pol->cap_connectors * 2 : 16;
        sl_policy_connector *nc =
            sl_realloc(pol->connectors, cap * sizeof(*nc));
        pol->connectors = nc;
        pol->cap_connectors = cap;
    }
    c = &pol->connectors[pol->n_connectors++];
    memset(c, 0, sizeof(*c));
    set_defaults(&connector_fs, c);
    c->name = sl_strdup(name);
    c->index = pol->n_connectors - 1;
    c->line = linemap_get(&ld->lines.connectors, name);
    return load_fields(ld, &connector_fs, v, c);
}

/* ---- cross-field validation and the index -------------------------------- */

static const sl_policy_class *class_lookup(const sl_policy *pol,
                                           const char *name)
{
    uint32_t probes = 0, len = (uint32_t)strlen(name);
    const sl__pmap_slot *s = sl__pmap_get(&pol->class_names, name, len,
                                          sl__hash(name, len), &probes);
    return s ? &pol->classes[s->val] : NULL;
}

static int unknown_class(loader *ld, const char *name)
{
    const sl_policy *pol = ld->pol;
    const char *names[SL__MAX_CLASSES] = {0}, *best;
    char list[512];
    size_t o = 0;

    for (size_t i = 0; i < pol->n_classes; i++)
        names[i] = pol->classes[i].name;
    best = closest(name, names, pol->n_classes);
    if (best != NULL)
        return load_error(ld, "unknown class \"%s\" (did you mean \"%s\"?)",
                          name, best);
    for (size_t i = 0; i < pol->n_classes && o < sizeof(list); i++)
        o += (size_t)snprintf(list + o, sizeof(list) - o, "%s%s",
                              i ? ", " : "", names[i]);
    return load_error(ld, "unknown class \"%s\" (classes: %s)", name, list);
}

static int quota_check(loader *ld, const sl_policy_quota *q)
{
    int rc = 0;

    push_key(ld, "quota");
    if (q->burst_bytes && !q->bytes_per_sec) {
        push_key(ld, "burst_bytes");
        rc = load_error(ld, "needs quota.bytes_per_sec (a burst of an "
                        "unlimited rate means nothing)");
        pop(ld);
    } else if (q->burst_records && !q->records_per_sec) {
        push_key(ld, "burst_records");
        rc = load_error(ld, "needs quota.records_per_sec (a burst of an "
                        "unlimited rate means nothing)");
        pop(ld);
    }
    pop(ld);
    return rc;
}

static int compile_topics(const sl__strv *raw, sl__topics *t)
{
    t->all = !raw->set;
    t->exact = sl_calloc(raw->n + 1, sizeof(*t->exact));
    t->prefix = sl_calloc(raw->n + 1, sizeof(*t->prefix));
    t->prefix_len = sl_calloc(raw->n + 1, sizeof(*t->prefix_len));
    for (size_t i = 0; i < raw->n; i++) {
        const char *s = raw->v[i];
        size_t n = strlen(s);
        if (strcmp(s, "*") == 0) {
            t->all = true;
        } else if (s[n - 1] == '*') {
            t->prefix[t->n_prefix] = s;
            t->prefix_len[t->n_prefix++] = n - 1;
        } else {
            t->exact[t->n_exact++] = s;
        }
    }
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void sort_topics(sl__topics *t)
{
    qsort(t->exact, t->n_exact, sizeof(*t->exact), cmp_str);
}

static const struct {
    sl__rule rule;
    size_t off;
    const char *key;
    const char *what;
} claim_lists[] = {
    {SL__RULE_PRINCIPAL, MOFF(principals), "principals", "principal"},
    {SL__RULE_CLIENT_ID, MOFF(client_ids), "client_ids", "client.id"},
    {SL__RULE_CONNECT, MOFF(connect_names), "connect_names", "Connect name"},
    {SL__RULE_PREFIX, MOFF(prefixes), "client_id_prefixes",
     "client.id prefix"},
    {SL__RULE_GLOB, MOFF(globs), "client_id_globs", "client.id glob"},
};

static int claim_error(loader *ld, const char *what, const char *s,
                       int32_t other)
{
    const sl_policy_connector *o = &ld->pol->connectors[other];
    return load_error(ld, "%s \"%s\" is already claimed by connector \"%s\" "
                      "(line %d)", what, s, o->name, o->line);
}

static int finish_connector(loader *ld, sl_policy_connector *c)
{
    sl_policy *pol = ld->pol;
    sl__match *m = &c->match;
    int32_t me = (int32_t)c->index, other;
    bool any = m->connect;
    int rc;

    push_key(ld, "connectors");
    push_key(ld, c->name);
    if ((c->cls = class_lookup(pol, c->class_name)) == NULL) {
        push_key(ld, "class");
        return unknown_class(ld, c->class_name);
    }
    ((sl_policy_class *)c->cls)->n_connectors++;
    c->mode = c->mode_raw < 0 ? pol->mode : (sl_policy_mode)c->mode_raw;
    if ((rc = quota_check(ld, &c->quota)) != 0)
        return rc;
    sl__pmap_put(&pol->idx.names, c->name, (uint32_t)strlen(c->name), me);
    push_key(ld, "match");
    if (m->connect_names.n > 0 && !m->connect) {
        push_key(ld, "connect_names");
        return load_error(ld, "needs match.connect true");
    }
    if (m->connect &&
        (other = sl__index_claim(&pol->idx, SL__RULE_CONNECT, c->name, me)) >=
            0) {
        pop(ld);
        return load_error(ld, "its name, as a Connect name, is already "
                          "claimed by connector \"%s\" (line %d); set "
                          "match.connect to false here or there",
                          pol->connectors[other].name,
                          pol->connectors[other].line);
    }
    for (size_t k = 0; k < SL_ARRAY_SIZE(claim_lists); k++) {
        const sl__strv *sv =
            (const sl__strv *)((const char *)m + claim_lists[k].off);
        push_key(ld, claim_lists[k].key);
        for (size_t j = 0; j < sv->n; j++) {
            any = true;
            other = sl__index_claim(&pol->idx, claim_lists[k].rule, sv->v[j],
                                    me);
            if (other >= 0) {
                push_idx(ld, (long)j);
                return claim_error(ld, claim_lists[k].what, sv->v[j], other);
            }
        }
        pop(ld);
    }
    push_key(ld, "cidrs");
    for (size_t j = 0; j < m->cidrs.n; j++) {
        char why[160];
        sl__cidr cidr;
        any = true;
        sl__cidr_parse(m->cidrs.v[j], &cidr, why, sizeof(why));
        if ((other = sl__index_claim_cidr(&pol->idx, &cidr, me)) >= 0) {
            push_idx(ld, (long)j);
            return claim_error(ld, "CIDR", m->cidrs.v[j], other);
        }
    }
    pop(ld);
    if (!any)
        return load_error(ld, "matches no client: connect is false and no "
                          "rules are listed");
    pop(ld);
    compile_topics(&c->topics_raw, &c->topics);
    sort_topics(&c->topics);
    ld->depth -= 2;
    return 0;
}

static int finish(loader *ld)
{
    sl_policy *pol = ld->pol;
    sl__defaults *d = &pol->defaults;
    int64_t sum = 0;
    char a[32], b[32];
    int rc;

    pol->mode = (sl_policy_mode)pol->mode_raw;
    if (pol->n_classes == 0) {
        push_key(ld, "classes");
        return load_error(ld, "expected at least one class");
    }
    for (size_t i = 0; i < pol->n_classes; i++) {
        sl_policy_class *c = &pol->classes[i];
        sl__pmap_put(&pol->class_names, c->name, (uint32_t)strlen(c->name),
                     (int32_t)i);
        push_key(ld, "classes");
        push_key(ld, c->name);
        if ((c->guarantee || c->ceiling) && !pol->cap.set) {
            push_key(ld, c->guarantee ? "guarantee_bytes_per_sec"
                                      : "ceiling_bytes_per_sec");
            return load_error(ld, "needs capacity.bytes_per_sec (class "
                              "budgets divide a capacity)");
        }
        if (c->guarantee && c->ceiling && c->guarantee > c->ceiling) {
            push_key(ld, "guarantee_bytes_per_sec");
            return load_error(ld, "%s/s is above ceiling_bytes_per_sec %s/s",
                              sl__human_bytes(a, sizeof(a), (double)c->guarantee),
                              sl__human_bytes(b, sizeof(b), (double)c->ceiling));
        }
        ld->depth -= 2;
        sum += c->guarantee;
    }
    if (pol->cap.set && sum > pol->cap.bytes_per_sec) {
        push_key(ld, "classes");
        return load_error(ld, "guarantees add up to %s/s, more than "
                          "capacity.bytes_per_sec %s/s",
                          sl__human_bytes(a, sizeof(a), (double)sum),
                          sl__human_bytes(b, sizeof(b),
                                          (double)pol->cap.bytes_per_sec));
    }

    push_key(ld, "defaults");
    if (d->action == 0) {
        push_key(ld, "class");
        if (d->class_name == NULL)
            return load_error(ld, "missing (name the class unmatched clients "
                              "join, or set defaults.action to \"refuse\")");
        if ((d->cls = class_lookup(pol, d->class_name)) == NULL)
            return unknown_class(ld, d->class_name);
        pop(ld);
        if ((rc = quota_check(ld, &d->quota)) != 0)
            return rc;
    } else if (d->class_name != NULL) {
        push_key(ld, "class");
        return load_error(ld, "only used when defaults.action is \"admit\"");
    }
    pop(ld);
    compile_topics(&d->topics_raw, &d->topics);
    sort_topics(&d->topics);

    for (size_t i = 0; i < pol->n_connectors; i++)
        if ((rc = finish_connector(ld, &pol->connectors[i])) != 0)
            return rc;

    if (pol->cap.set) {
        bool all[SL__MAX_CLASSES];
        double share[SL__MAX_CLASSES];
        for (size_t i = 0; i < pol->n_classes; i++)
            all[i] = true;
        sl__waterfill(pol->classes, pol->n_classes, all,
                      (double)pol->cap.bytes_per_sec, share);
        for (size_t i = 0; i < pol->n_classes; i++)
            pol->classes[i].nominal_share = share[i];
    }
    return 0;
}

/* ---- load / free --------------------------------------------------------- */

static void strv_free(sl__strv *sv)
{
    for (size_t i = 0; i < sv->n; i++)
        sl_free(sv->v[i]);
    sl_free(sv->v);
}

static void topics_free(sl__topics *t)
{
    sl_free(t->exact);
    sl_free(t->prefix);
    sl_free(t->prefix_len);
}

void sl_policy_free(sl_policy *pol)
{
    if (pol == NULL)
        return;
    for (size_t i = 0; i < pol->n_classes; i++) {
        sl_free(pol->classes[i].name);
        sl_free(pol->classes[i].description);
    }
    sl_free(pol->classes);
    for (size_t i = 0; i < pol->n_connectors; i++) {
        sl_policy_connector *c = &pol->connectors[i];
        sl_free(c->name);
        sl_free(c->class_name);
        sl_free(c->description);
        strv_free(&c->match.principals);
        strv_free(&c->match.client_ids);
        strv_free(&c->match.connect_names);
        strv_free(&c->match.prefixes);
        strv_free(&c->match.globs);
        strv_free(&c->match.cidrs);
        strv_free(&c->topics_raw);
        topics_free(&c->topics);
    }
    sl_free(pol->connectors);
    sl_free(pol->defaults.class_name);
    sl_free(pol->defaults.message);
    strv_free(&pol->defaults.topics_raw);
    topics_free(&pol->defaults.topics);
    sl__pmap_free(&pol->class_names);
    sl__index_free(&pol->idx);
    sl_free(pol->description);
    sl_free(pol->source);
    sl_free(pol);
}

/* jansson refused the text: its line and column, or for a duplicate key
 * the key's path and where it was first defined. */
static void syntax_error(loader *ld, const json_error_t *je)
{
    if (json_error_code(je) == json_error_duplicate_key && je->position > 0) {
        char *keys[SL_JSCAN_MAX_DEPTH];
        int key_line_no;
        size_t n = sl_jscan_key_at(ld->text, ld->len, (size_t)je->position,
                                   keys, &key_line_no);

        if (n > 0) {
            pcomp comps[SL_JSCAN_MAX_DEPTH];
            char path[512];
            const char *what = "duplicate key";
            int first;
            for (size_t i = 0; i < n; i++)
                comps[i] = (pcomp){keys[i], -1};
            first = sl_jscan_path_line(ld->text, ld->len, comps, n);
            dotted(comps, n, path, sizeof(path));
            if (n == 2 && strcmp(keys[0], "connectors") == 0)
                what = "duplicate connector name";
            else if (n == 2 && strcmp(keys[0], "classes") == 0)
                what = "duplicate class name";
            put_err(ld->err, ld->errlen, "%s:%d: %s: %s (first defined on "
                    "line %d)", ld->name, key_line_no, path, what, first);
            for (size_t i = 0; i < n; i++)
                sl_free(keys[i]);
            return;
        }
    }
    sl_json_syntax_error(ld->err, ld->errlen, ld->name, je);
}

int sl_policy_load_string(const char *text, size_t len, const char *name,
                          sl_policy **out, char *err, size_t errlen)
{
    loader ld = {.name = name ? name : "(policy)", .text = text, .len = len,
                 .err = err, .errlen = errlen};
    json_error_t je;
    json_t *root;
    sl_jscan s;
    int rc = SL_E_CONFIG;

    if (err && errlen)
        err[0] = '\0';
    root = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY,
                      &je);
    if (root == NULL) {
        syntax_error(&ld, &je);
        return SL_E_CONFIG;
    }
    if (!json_is_object(root)) {
        put_err(err, errlen, "%s:%d: expected a JSON object at the top level, "
                "got %s", ld.name, sl_jscan_first_line(text, len),
                sl_json_kind(root));
        goto out_json;
    }
    /* One pass for the lines of every class and connector (explain shows
     * them); everything else looks its line up only on error. */
    sl_jscan_run(&s, text, len, visit_collect, &ld.lines);

    ld.pol = sl_calloc(1, sizeof(*ld.pol));
    set_defaults(&top_fs, ld.pol);
    ld.pol->source = sl_strdup(ld.name);
    {
        json_t *cap = json_object_get(root, "capacity");
        ld.pol->cap.set = cap != NULL;
    }
    rc = load_fields(&ld, &top_fs, root, ld.pol);
    if (rc == 0) {
        ld.depth = 0;
        rc = finish(&ld);
    }
    if (rc == 0) {
        if (!ld.pol->cap.set)
            ld.pol->cap.bytes_per_sec = 0;
        *out = ld.pol;
    } else {
        sl_policy_free(ld.pol);
    }
    linemap_free(&ld.lines.classes);
    linemap_free(&ld.lines.connectors);
out_json:
    json_decref(root);
    return rc;
}

int sl_policy_load_file(const char *path, sl_policy **out, char *err,
                        size_t errlen)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t n = 0, cap = 0, got;
    int rc;

    if (f == NULL) {
        put_err(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return SL_E_CONFIG;
    }
    do {
        if (cap - n < 4096) {
            char *nb;
            cap = cap ? cap * 2 : 16384;
            nb = sl_realloc(buf, cap + 1);
            buf = nb;
        }
        got = fread(buf + n, 1, cap - n, f);
        n += got;
    } while (got > 0 && n <= MAX_FILE_BYTES);
    if (ferror(f)) {
        put_err(err, errlen, "%s: cannot read: %s", path, strerror(errno));
        rc = SL_E_CONFIG;
    } else if (n > MAX_FILE_BYTES) {
        put_err(err, errlen, "%s: larger than %u MiB; not a policy file",
                path, MAX_FILE_BYTES >> 20);
        rc = SL_E_CONFIG;
    } else {
        rc = sl_policy_load_string(buf, n, path, out, err, errlen);
    }
    fclose(f);
    sl_free(buf);
    return rc;
}

/* ---- accessors ----------------------------------------------------------- */

const char *sl_policy_source(const sl_policy *pol) { return pol->source; }
sl_policy_mode sl_policy_mode_of(const sl_policy *pol) { return pol->mode; }
const sl_policy_pressure *sl_policy_pressure_of(const sl_policy *pol)
{
    return &pol->pressure;
}

int64_t sl_policy_capacity(const sl_policy *pol)
{
    return pol->cap.bytes_per_sec;
}
size_t sl_policy_class_count(const sl_policy *pol) { return pol->n_classes; }

const sl_policy_class *sl_policy_class_at(const sl_policy *pol, size_t i)
{
    return i < pol->n_classes ? &pol->classes[i] : NULL;
}

const sl_policy_class *sl_policy_class_find(const sl_policy *pol,
                                            const char *name)
{
    return class_lookup(pol, name);
}

size_t sl_policy_connector_count(const sl_policy *pol)
{
    return pol->n_connectors;
}

const sl_policy_connector *sl_policy_connector_at(const sl_policy *pol,
                                                  size_t i)
{
    return i < pol->n_connectors ? &pol->connectors[i] : NULL;
}

const sl_policy_connector *sl_policy_connector_find(const sl_policy *pol,
                                                    const char *name)
{
    uint32_t probes = 0, len = (uint32_t)strlen(name);
    const sl__pmap_slot *s = sl__pmap_get(&pol->idx.names, name, len,
                                          sl__hash(name, len), &probes);
    return s ? &pol->connectors[s->val] : NULL;
}

void sl_policy_class_describe(const sl_policy_class *c,
                              sl_policy_class_info *out)
{
    out->name = c->name;
    out->weight = c->weight;
    out->guarantee_bps = c->guarantee;
    out->ceiling_bps = c->ceiling;
    out->max_pause_ms = c->max_pause_ms;
    out->shed_order = c->shed_order;
    out->description = c->description ? c->description : "";
    out->line = c->line;
}

const char *sl_policy_connector_name(const sl_policy_connector *c)
{
    return c->name;
}
const sl_policy_class *sl_policy_connector_class(const sl_policy_connector *c)
{
    return c->cls;
}
const sl_policy_quota *sl_policy_connector_quota(const sl_policy_connector *c)
{
    return &c->quota;
}
sl_policy_mode sl_policy_connector_mode(const sl_policy_connector *c)
{
    return c->mode;
}
int sl_policy_connector_line(const sl_policy_connector *c) { return c->line; }

/* ---- topic allow-list ---------------------------------------------------- */

/* Which entry allows topic: "" when none; "*" when all; else the entry. */
static const char *topic_rule(const sl__topics *t, const char *topic,
                              size_t len, bool *prefix)
{
    size_t lo = 0, hi = t->n_exact;

    *prefix = false;
    if (t->all)
        return "*";
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const char *e = t->exact[mid];
        size_t el = strlen(e);
        int c = memcmp(e, topic, SL_MIN(el, len));
        if (c == 0)
            c = el < len ? -1 : el > len ? 1 : 0;
        if (c == 0)
            return e;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t i = 0; i < t->n_prefix; i++)
        if (len >= t->prefix_len[i] &&
            memcmp(topic, t->prefix[i], t->prefix_len[i]) == 0) {
            *prefix = true;
            return t->prefix[i];
        }
    return NULL;
}

bool sl_policy_topic_allowed(const sl_policy *pol,
                             const sl_policy_connector *c, const char *topic,
                             size_t topic_len)
{
    bool prefix;
    return topic_rule(c ? &c->topics : &pol->defaults.topics, topic,
                      topic_len, &prefix) != NULL;
}

/* ---- explain and summary ------------------------------------------------- */

typedef struct out {
    char *buf;
    size_t len, pos;
} out;

static void outf(out *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void outf(out *o, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(o->pos < o->len ? o->buf + o->pos : NULL,
                  o->pos < o->len ? o->len - o->pos : 0, fmt, ap);
    va_end(ap);
    if (n > 0)
        o->pos += (size_t)n;
}

/* vsnprintf already NUL-terminated what fit; the total is the need. */
static size_t out_end(const out *o)
{
    return o->pos;
}

static void rate_text(char *buf, size_t n, int64_t bps)
{
    char h[32];
    if (bps == 0)
        snprintf(buf, n, "none");
    else
        snprintf(buf, n, "%s/s", sl__human_bytes(h, sizeof(h), (double)bps));
}

static void out_class(out *o, const sl_policy *pol, const sl_policy_class *c,
                      const char *indent)
{
    char g[40], ce[40], sh[40];

    rate_text(g, sizeof(g), c->guarantee);
    rate_text(ce, sizeof(ce), c->ceiling);
    rate_text(sh, sizeof(sh), (int64_t)c->nominal_share);
    outf(o, "class \"%s\" (line %d): weight %" PRId64 ", guarantee %s, "
         "ceiling %s, max pause %" PRId64 " ms, shed order %" PRId64,
         c->name, c->line, c->weight, g, ce, c->max_pause_ms, c->shed_order);
    if (pol->cap.bytes_per_sec)
        outf(o, ", share with all classes busy %s", sh);
    outf(o, "\n");
    if (c->description)
        outf(o, "%s  %s\n", indent, c->description);
}

static void out_quota(out *o, const char *label, const sl_policy_quota *q)
{
    char r[40], b[40];

    outf(o, "%s: ", label);
    if (!q->bytes_per_sec && !q->records_per_sec) {
        outf(o, "unlimited\n");
        return;
    }
    if (q->bytes_per_sec) {
        rate_text(r, sizeof(r), q->bytes_per_sec);
        sl__human_bytes(b, sizeof(b), (double)(q->burst_bytes
                                                   ? q->burst_bytes
                                                   : q->bytes_per_sec));
        outf(o, "%s (burst %s)", r, b);
    } else {
        outf(o, "bytes unlimited");
    }
    if (q->records_per_sec)
        outf(o, ", %" PRId64 " records/s (burst %" PRId64 ")",
             q->records_per_sec,
             q->burst_records ? q->burst_records : q->records_per_sec);
    else
        outf(o, ", records unlimited");
    outf(o, "\n");
}

static void out_topics(out *o, const sl__strv *raw)
{
    outf(o, "topics: ");
    if (!raw->set) {
        outf(o, "all (no list)\n");
        return;
    }
    for (size_t i = 0; i < raw->n; i++)
        outf(o, "%s%s", i ? ", " : "", raw->v[i]);
    outf(o, raw->n ? "\n" : "none (empty list)\n");
}

static const char *peer_text(const struct sockaddr *sa, char *buf, size_t n)
{
    snprintf(buf, n, "(none)");
    if (sa != NULL && sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, buf,
                  (socklen_t)n);
    else if (sa != NULL && sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, buf,
                  (socklen_t)n);
    return buf;
}

size_t sl_policy_explain(const sl_policy *pol, const sl_policy_identity *id,
                         const char *topic, char *buf, size_t len)
{
    out o = {buf, len, 0};
    sl__hit hits[SL_MATCH__COUNT];
    sl_policy_resolution res;
    uint32_t probes = 0;
    bool any = false;
    char peer[INET6_ADDRSTRLEN + 8];

    if (len > 0)
        buf[0] = '\0';
    outf(&o, "identity: client.id %s%s%s, peer %s, principal %s%s%s\n",
         id->client_id ? "\"" : "", id->client_id ? id->client_id : "(null)",
         id->client_id ? "\"" : "", peer_text(id->peer, peer, sizeof(peer)),
         id->principal ? "\"" : "",
         id->principal ? id->principal : "(none)", id->principal ? "\"" : "");
    sl__resolve_all(pol, id, hits, &probes);
    sl_policy_resolve(pol, id, &res);
    outf(&o, "rules that match, in precedence order:\n");
    for (int m = 0; m < SL_MATCH_DEFAULT; m++) {
        char why[320];
        if (hits[m].conn < 0)
            continue;
        sl__why(pol, id, (sl_policy_match)m, &hits[m], why, sizeof(why));
        outf(&o, "  %s %-16s %s\n", any ? " " : "*",
             sl_policy_match_name((sl_policy_match)m), why);
        any = true;
    }
    if (!any)
        outf(&o, "  (none)\n");
    outf(&o, "result: %s: %s\n", sl_policy_match_name(res.how), res.why);
    if (res.how == SL_MATCH_REFUSED) {
        outf(&o, "resolution cost: %u probes\n", res.probes);
        return out_end(&o);
    }
    if (res.connector != NULL) {
        const sl_policy_connector *c = res.connector;
        outf(&o, "connector \"%s\" (line %d)%s%s\n", c->name, c->line,
             c->description ? ": " : "", c->description ? c->description : "");
        out_class(&o, pol, c->cls, "");
        out_quota(&o, "quota", &c->quota);
        out_topics(&o, &c->topics_raw);
        outf(&o, "mode: %s%s\n", mode_names[c->mode],
             c->mode_raw < 0 ? " (the file's)" : " (set on the connector)");
    } else {
        out_class(&o, pol, res.cls, "");
        out_quota(&o, pol->defaults.per_client_id ? "quota (per client.id)"
                                                   : "quota (all unmatched "
                                                     "clients together)",
                  &pol->defaults.quota);
        out_topics(&o, &pol->defaults.topics_raw);
        outf(&o, "mode: %s\n", mode_names[pol->mode]);
    }
    if (topic != NULL) {
        const sl__topics *t = res.connector ? &res.connector->topics
                                            : &pol->defaults.topics;
        bool prefix;
        const char *rule = topic_rule(t, topic, strlen(topic), &prefix);
        if (rule == NULL)
            outf(&o, "topic \"%s\": denied (not in the allow-list; the client "
                 "gets TOPIC_AUTHORIZATION_FAILED)\n", topic);
        else if (strcmp(rule, "*") == 0)
            outf(&o, "topic \"%s\": allowed (all topics)\n", topic);
        else if (prefix)
            outf(&o, "topic \"%s\": allowed (prefix \"%.*s*\")\n", topic,
                 (int)strcspn(rule, "*"), rule);
        else
            outf(&o, "topic \"%s\": allowed (listed)\n", topic);
    }
    outf(&o, "resolution cost: %u probes\n", res.probes);
    return out_end(&o);
}

size_t sl_policy_summary(const sl_policy *pol, char *buf, size_t len)
{
    out o = {buf, len, 0};
    size_t n_rules[SL_MATCH__COUNT] = {0}, n_connect = 0, n_shadow = 0;
    char r[40];

    if (len > 0)
        buf[0] = '\0';
    for (size_t i = 0; i < pol->n_connectors; i++) {
        const sl_policy_connector *c = &pol->connectors[i];
        n_rules[SL_MATCH_PRINCIPAL] += c->match.principals.n;
        n_rules[SL_MATCH_CLIENT_ID] += c->match.client_ids.n;
        n_rules[SL_MATCH_CONNECT] += c->match.connect_names.n;
        n_connect += c->match.connect;
        n_rules[SL_MATCH_PREFIX] += c->match.prefixes.n;
        n_rules[SL_MATCH_GLOB] += c->match.globs.n;
        n_rules[SL_MATCH_CIDR] += c->match.cidrs.n;
        n_shadow += c->mode == SL_POLICY_SHADOW;
    }
    outf(&o, "policy %s: version %" PRId64 ", mode %s\n", pol->source,
         pol->version, mode_names[pol->mode]);
    if (pol->description)
        outf(&o, "  %s\n", pol->description);
    if (pol->cap.bytes_per_sec) {
        rate_text(r, sizeof(r), pol->cap.bytes_per_sec);
        outf(&o, "capacity: %s, class bucket %" PRId64 " ms, active window "
             "%" PRId64 " ms\n", r, pol->cap.burst_ms,
             pol->cap.active_window_ms);
    } else {
        outf(&o, "capacity: not set (no class budgets; quotas only)\n");
    }
    {
        const sl_policy_pressure *pp = &pol->pressure;
        char fl[32];
        if (pp->enabled)
            outf(&o, "pressure: per-broker write latency target %" PRId64
                 " ms, memory high water %" PRId64 "%%, floor %s/s, cut %"
                 PRId64 "%% per step, recovery %" PRId64 " ms\n",
                 pp->latency_target_ms, pp->memory_high_water_pct,
                 sl__human_bytes(fl, sizeof(fl),
                                 (double)pp->min_bytes_per_sec),
                 pp->decrease_pct, pp->recovery_ms);
        else
            outf(&o, "pressure: disabled (no shedding on broker latency or "
                 "memory)\n");
    }
    outf(&o, "classes: %zu\n", pol->n_classes);
    for (size_t i = 0; i < pol->n_classes; i++) {
        outf(&o, "  ");
        out_class(&o, pol, &pol->classes[i], "  ");
        outf(&o, "    connectors: %zu\n", pol->classes[i].n_connectors);
    }
    outf(&o, "connectors: %zu (%zu in shadow mode)\n", pol->n_connectors,
         n_shadow);
    outf(&o, "rules: %zu principals, %zu client.ids, %zu Connect names "
         "(+%zu connectors by own name), %zu prefixes, %zu globs, %zu CIDRs\n",
         n_rules[SL_MATCH_PRINCIPAL], n_rules[SL_MATCH_CLIENT_ID],
         n_rules[SL_MATCH_CONNECT], n_connect, n_rules[SL_MATCH_PREFIX],
         n_rules[SL_MATCH_GLOB], n_rules[SL_MATCH_CIDR]);
    if (pol->defaults.action == 1) {
        outf(&o, "defaults: refuse unmatched clients%s%s%s\n",
             pol->defaults.message ? " (\"" : "",
             pol->defaults.message ? pol->defaults.message : "",
             pol->defaults.message ? "\")" : "");
    } else {
        outf(&o, "defaults: admit into class \"%s\", ",
             pol->defaults.cls->name);
        if (pol->defaults.per_client_id)
            outf(&o, "one bucket per client.id (at most %" PRId64 ")\n",
                 pol->defaults.max_clients);
        else
            outf(&o, "one shared bucket\n");
        outf(&o, "  ");
        out_quota(&o, "quota", &pol->defaults.quota);
        outf(&o, "  ");
        out_topics(&o, &pol->defaults.topics_raw);
    }
    return out_end(&o);
}

/* ---- the key reference, generated from the tables ------------------------ */

static void ref_fields(out *o, const fieldset *fs, const char *prefix)
{
    static const char *const type_names[] = {
        [F_INT] = "integer", [F_BYTES] = "bytes", [F_STR] = "string",
        [F_ENUM] = "enum", [F_BOOL] = "boolean", [F_LIST] = "[string]",
        [F_OBJ] = "object", [F_MAP] = "object",
    };

    for (size_t i = 0; i < fs->n; i++) {
        const field *f = &fs->f[i];
        char path[160], range[64], dflt[96] = "";
        snprintf(path, sizeof(path), "%s%s", prefix, f->name);
        switch (f->type) {
        case F_INT:
        case F_BYTES:
            snprintf(dflt, sizeof(dflt), "%s; default %" PRId64,
                     range_text(range, sizeof(range), f), f->def);
            break;
        case F_ENUM: {
            size_t n = 0;
            for (int k = 0; f->enums[k]; k++)
                n += (size_t)snprintf(dflt + n, sizeof(dflt) - n, "%s%s",
                                      k ? "|" : "", f->enums[k]);
            snprintf(dflt + n, sizeof(dflt) - n, "; default %s",
                     f->def >= 0 ? f->enums[f->def] : "the file's");
            break;
        }
        case F_BOOL:
            snprintf(dflt, sizeof(dflt), "default %s",
                     f->def ? "true" : "false");
            break;
        default: break;
        }
        outf(o, "%-44s %-9s %s%s%s\n    %s\n", path, type_names[f->type],
             f->required ? "required" : "", f->required && dflt[0] ? "; " : "",
             dflt, f->help);
        if (f->type == F_OBJ || f->type == F_MAP) {
            char sub[176];
            snprintf(sub, sizeof(sub), "%s%s", path,
                     f->type == F_MAP ? ".<name>." : ".");
            ref_fields(o, f->sub, sub);
        }
    }
}

size_t sl_policy_reference(char *buf, size_t len)
{
    out o = {buf, len, 0};

    if (len > 0)
        buf[0] = '\0';
    ref_fields(&o, &top_fs, "");
    return out_end(&o);
}
