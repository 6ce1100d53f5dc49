/*
 * Upstream topic metadata: a cache refreshed on libuv's thread pool (the
 * librdkafka metadata call blocks), and the Metadata API that clients see:
 * Sluice is the one broker leading every partition; topic names and
 * partition counts are the cluster's.
 *
 * Threads: the cache (topics, cluster id) is read and written on the loop
 * thread only. A lookup job is filled in on a pool thread, touching only
 * its own job struct and the thread-safe librdkafka handle, and merged
 * into the cache in the after-work callback on the loop thread.
 */
#include "sluice/server.h"

#include <stdlib.h>
#include <string.h>

/* How long an upstream metadata call may block a pool thread. */
#define LOOKUP_TIMEOUT_MS 5000
/* A topic the cluster said does not exist is asked again after this. */
#define NEGATIVE_TTL_MS 500

typedef struct tnode {
    sl_topic t;
    struct tnode *next;
} tnode;

struct sl_metacache {
    sl_server *srv;
    tnode **buckets;
    size_t n_buckets;
    size_t n_topics;
    char *cluster_id;
    uint64_t full_refresh_ms; /* last successful all-topics refresh */
    bool full_inflight;
    /* Requests waiting for the listing in flight (see
     * sl__metacache_list): called, and forgotten, when it completes. */
    struct list_waiter {
        sl_metacache_cb cb;
        void *arg;
    } *waiters;
    size_t n_waiters;
    bool stopped;
    size_t jobs; /* lookups on the pool */
};

typedef struct job {
    uv_work_t work;
    sl_metacache *mc;
    rd_kafka_t *rk;
    bool all;           /* list every topic */
    bool allow_create;  /* ask for each name, letting the cluster create it */
    char **names;
    size_t n_names;
    /* Results (pool thread writes, loop thread reads after). */
    const struct rd_kafka_metadata *full;
    const struct rd_kafka_metadata **each;
    rd_kafka_resp_err_t err;
    char *cluster_id;   /* rd_kafka_mem_free */
    bool want_cluster_id;
    sl_metacache_cb cb;
    void *arg;
    /* Topic configs to read (DescribeConfigs), and what came back. */
    char **cfg_names;
    size_t n_cfg;
    int32_t cfg_broker; /* whom to ask (-1: librdkafka's choice) */
    struct cfg_result {
        bool ok, log_append_time;
        int64_t before_ms, after_ms, max_message_bytes;
    } *cfg;
} job;

static uint64_t hash_name(const char *p, size_t len)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)p[i]) * 1099511628211ULL;
    return h;
}

sl_metacache *sl__metacache_new(sl_server *srv)
{
    sl_metacache *mc = sl_calloc(1, sizeof(*mc));
    mc->srv = srv;
    mc->n_buckets = 1024;
    mc->buckets = sl_calloc(mc->n_buckets, sizeof(*mc->buckets));
    return mc;
}

void sl__metacache_free(sl_metacache *mc)
{
    if (mc == NULL)
        return;
    sl_free(mc->waiters); /* empty: every listing completed before this */
    for (size_t b = 0; b < mc->n_buckets; b++) {
        tnode *n = mc->buckets[b], *next;
        for (; n; n = next) {
            next = n->next;
            if (n->t.rkt)
                rd_kafka_topic_destroy(n->t.rkt);
            sl_free(n->t.leaders);
            sl_free(n->t.prime);
            sl_free(n->t.name);
            sl_free(n);
        }
    }
    sl_free(mc->buckets);
    sl_free(mc->cluster_id);
    sl_free(mc);
}

sl_topic *sl__metacache_get(sl_metacache *mc, const char *name, size_t len)
{
    tnode *n = mc->buckets[hash_name(name, len) & (mc->n_buckets - 1)];
    for (; n; n = n->next)
        if (n->t.name_len == len && memcmp(n->t.name, name, len) == 0)
            return &n->t;
    return NULL;
}

static void grow(sl_metacache *mc)
{
    size_t nb = mc->n_buckets * 2;
    tnode **b = sl_calloc(nb, sizeof(*b));
    for (size_t i = 0; i < mc->n_buckets; i++) {
        tnode *n = mc->buckets[i], *next;
        for (; n; n = next) {
            size_t k = hash_name(n->t.name, n->t.name_len) & (nb - 1);
            next = n->next;
            n->next = b[k];
            b[k] = n;
        }
    }
    sl_free(mc->buckets);
    mc->buckets = b;
    mc->n_buckets = nb;
}

/* Entries are never freed while Sluice runs: in-flight produce requests
 * hold sl_topic pointers. A deleted topic is marked !exists. */
static sl_topic *get_or_add(sl_metacache *mc, const char *name, size_t len)
{
    sl_topic *t = sl__metacache_get(mc, name, len);
    tnode *n;
    size_t k;
    if (t)
        return t;
    if (mc->n_topics + 1 > mc->n_buckets)
        grow(mc);
    n = sl_calloc(1, sizeof(*n));
    n->t.name = sl_strndup(name, len);
    n->t.name_len = len;
    k = hash_name(name, len) & (mc->n_buckets - 1);
    n->next = mc->buckets[k];
    mc->buckets[k] = n;
    mc->n_topics++;
    return &n->t;
}

static void apply_topic(sl_metacache *mc, const rd_kafka_metadata_topic_t *mt,
                        uint64_t now)
{
    sl_topic *t = get_or_add(mc, mt->topic, strlen(mt->topic));
    t->updated_ms = now;
    if (mt->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
        mt->err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC ||
        (mt->err == 0 && mt->partition_cnt == 0)) {
        t->exists = false;
        t->error = SL_KERR_UNKNOWN_TOPIC_OR_PARTITION;
        return;
    }
    if (mt->err != 0 && mt->partition_cnt == 0) {
        /* e.g. LEADER_NOT_AVAILABLE while the cluster creates it. */
        t->error = mt->err > 0 ? (int16_t)mt->err
                               : SL_KERR_LEADER_NOT_AVAILABLE;
        return;
    }
    t->exists = true;
    t->error = 0;
    if (mt->partition_cnt != t->n_partitions) {
        sl_free(t->leaders);
        t->leaders = sl_calloc((size_t)mt->partition_cnt, sizeof(int32_t));
        if (t->n_partitions != 0)
            sl_info("topic %s: %d -> %d partitions", t->name,
                    t->n_partitions, mt->partition_cnt);
        t->n_partitions = mt->partition_cnt;
    }
    for (int i = 0; i < mt->partition_cnt; i++) {
        int32_t id = mt->partitions[i].id;
        if (id >= 0 && id < t->n_partitions)
            t->leaders[id] = mt->partitions[i].leader;
    }
}

static int64_t cfg_int(const char *v, int64_t dflt)
{
    char *end;
    long long x;
    if (v == NULL)
        return dflt;
    x = strtoll(v, &end, 10);
    return end == v ? dflt : (int64_t)x;
}

/* Pool thread: DescribeConfigs for j->cfg_names, blocking up to
 * LOOKUP_TIMEOUT_MS. Topics that get no answer stay unknown. */
static void describe_configs(job *j)
{
    rd_kafka_ConfigResource_t **res;
    rd_kafka_queue_t *q;
    rd_kafka_event_t *ev;
    rd_kafka_AdminOptions_t *opt;
    char errstr[256];

    j->cfg = calloc(j->n_cfg, sizeof(*j->cfg));
    res = calloc(j->n_cfg, sizeof(*res));
    if (j->cfg == NULL || res == NULL) {
        free(res);
        return;
    }
    for (size_t i = 0; i < j->n_cfg; i++)
        res[i] = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC,
                                             j->cfg_names[i]);
    q = rd_kafka_queue_new(j->rk);
    opt = rd_kafka_AdminOptions_new(j->rk, RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS);
    rd_kafka_AdminOptions_set_request_timeout(opt, LOOKUP_TIMEOUT_MS, errstr,
                                              sizeof(errstr));
    /* Any broker answers for topics; without one named, librdkafka waits
     * for the controller, which some clusters do not name. */
    if (j->cfg_broker >= 0)
        rd_kafka_AdminOptions_set_broker(opt, j->cfg_broker, errstr,
                                         sizeof(errstr));
    rd_kafka_DescribeConfigs(j->rk, res, j->n_cfg, opt, q);
    ev = rd_kafka_queue_poll(q, LOOKUP_TIMEOUT_MS + 1000);
    if (ev != NULL && rd_kafka_event_error(ev) == 0) {
        const rd_kafka_DescribeConfigs_result_t *r =
            rd_kafka_event_DescribeConfigs_result(ev);
        size_t n = 0;
        const rd_kafka_ConfigResource_t **rs =
            r ? rd_kafka_DescribeConfigs_result_resources(r, &n) : NULL;
        for (size_t k = 0; k < n; k++) {
            const char *name = rd_kafka_ConfigResource_name(rs[k]);
            size_t ne = 0;
            const rd_kafka_ConfigEntry_t **es;
            struct cfg_result c = {.before_ms = INT64_MAX,
                                   .after_ms = INT64_MAX,
                                   .max_message_bytes = INT64_MAX};
            size_t i;
            for (i = 0; i < j->n_cfg; i++)
                if (strcmp(j->cfg_names[i], name) == 0)
                    break;
            if (i == j->n_cfg || rd_kafka_ConfigResource_error(rs[k]))
                continue;
            es = rd_kafka_ConfigResource_configs(rs[k], &ne);
            for (size_t e = 0; e < ne; e++) {
                const char *en = rd_kafka_ConfigEntry_name(es[e]);
                const char *ev_ = rd_kafka_ConfigEntry_value(es[e]);
                if (strcmp(en, "message.timestamp.before.max.ms") == 0)
                    c.before_ms = cfg_int(ev_, INT64_MAX);
                else if (strcmp(en, "message.timestamp.after.max.ms") == 0)
                    c.after_ms = cfg_int(ev_, INT64_MAX);
                else if (strcmp(en, "message.timestamp.type") == 0)
                    c.log_append_time =
                        ev_ != NULL && strcmp(ev_, "LogAppendTime") == 0;
                else if (strcmp(en, "max.message.bytes") == 0)
                    c.max_message_bytes = cfg_int(ev_, INT64_MAX);
            }
            c.ok = true;
            j->cfg[i] = c;
        }
    }
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_AdminOptions_destroy(opt);
    rd_kafka_queue_destroy(q);
    rd_kafka_ConfigResource_destroy_array(res, j->n_cfg);
    free(res);
}

/* Pool thread. */
static void job_run(uv_work_t *w)
{
    job *j = w->data;
    if (j->want_cluster_id)
        j->cluster_id = rd_kafka_clusterid(j->rk, LOOKUP_TIMEOUT_MS);
    if (j->n_cfg)
        describe_configs(j);
    if (j->all) {
        j->err = rd_kafka_metadata(j->rk, 1, NULL, &j->full,
                                   LOOKUP_TIMEOUT_MS);
        return;
    }
    if (j->n_names == 0)
        return;
    j->each = calloc(j->n_names, sizeof(*j->each));
    if (j->each == NULL) {
        j->err = RD_KAFKA_RESP_ERR__FAIL;
        return;
    }
    for (size_t i = 0; i < j->n_names; i++) {
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(j->rk, j->names[i], NULL);
        if (rkt == NULL)
            continue;
        if (rd_kafka_metadata(j->rk, 0, rkt, &j->each[i],
                              LOOKUP_TIMEOUT_MS) != 0)
            j->each[i] = NULL;
        rd_kafka_topic_destroy(rkt);
    }
}

/* The upstream brokers a metadata answer names get Sluice listeners. */
static void note_brokers(sl_metacache *mc, const rd_kafka_metadata_t *md)
{
    int32_t ids[256];
    size_t n = 0;

    for (int i = 0; i < md->broker_cnt && n < SL_ARRAY_SIZE(ids); i++)
        ids[n++] = md->brokers[i].id;
    sl__server_broker_listeners(mc->srv, ids, n);
}

/* Loop thread. */
static void job_done(uv_work_t *w, int status)
{
    job *j = w->data;
    sl_metacache *mc = j->mc;
    uint64_t now = sl__now_ms(mc->srv);

    mc->jobs--;
    if (j->cluster_id) {
        sl_free(mc->cluster_id);
        mc->cluster_id = sl_strdup(j->cluster_id);
        rd_kafka_mem_free(j->rk, j->cluster_id);
    }
    if (j->all) {
        mc->full_inflight = false;
        if (j->err == 0 && j->full) {
            note_brokers(mc, j->full);
            /* Topics missing from a complete listing are gone. */
            for (size_t b = 0; b < mc->n_buckets; b++)
                for (tnode *n = mc->buckets[b]; n; n = n->next)
                    n->t.updated_ms = 0;
            for (int i = 0; i < j->full->topic_cnt; i++)
                apply_topic(mc, &j->full->topics[i], now);
            for (size_t b = 0; b < mc->n_buckets; b++)
                for (tnode *n = mc->buckets[b]; n; n = n->next)
                    if (n->t.updated_ms == 0) {
                        n->t.exists = false;
                        n->t.error = SL_KERR_UNKNOWN_TOPIC_OR_PARTITION;
                        n->t.updated_ms = now;
                    }
            mc->full_refresh_ms = now;
            sl_debug("metadata: %d topics, %d brokers upstream",
                     j->full->topic_cnt, j->full->broker_cnt);
        } else {
            sl_warn("upstream metadata refresh failed: %s",
                    rd_kafka_err2str(j->err));
        }
        if (j->full)
            rd_kafka_metadata_destroy(j->full);
        /* A name-less listing that answered names we were asked about. */
        for (size_t i = 0; i < j->n_names; i++) {
            sl_topic *t = get_or_add(mc, j->names[i], strlen(j->names[i]));
            if (t->updated_ms != now && j->err == 0) {
                t->exists = false;
                t->error = SL_KERR_UNKNOWN_TOPIC_OR_PARTITION;
                t->updated_ms = now;
            }
        }
    } else if (j->each) {
        for (size_t i = 0; i < j->n_names; i++) {
            if (j->each[i] == NULL) {
                sl_warn("upstream metadata for topic %s: no answer",
                        j->names[i]);
                continue;
            }
            note_brokers(mc, j->each[i]);
            for (int k = 0; k < j->each[i]->topic_cnt; k++)
                apply_topic(mc, &j->each[i]->topics[k], now);
            rd_kafka_metadata_destroy(j->each[i]);
        }
    }
    for (size_t i = 0; i < j->n_cfg; i++) {
        sl_topic *t = get_or_add(mc, j->cfg_names[i], strlen(j->cfg_names[i]));
        t->cfg_inflight = false;
        if (j->cfg && j->cfg[i].ok) {
            if (!t->cfg_known || t->ts_after_max_ms != j->cfg[i].after_ms ||
                t->ts_before_max_ms != j->cfg[i].before_ms ||
                t->max_message_bytes != j->cfg[i].max_message_bytes ||
                t->log_append_time != j->cfg[i].log_append_time)
                sl_info("topic %s: message.timestamp.type %s, "
                        "before.max.ms %lld, after.max.ms %lld, "
                        "max.message.bytes %lld",
                        t->name,
                        j->cfg[i].log_append_time ? "LogAppendTime"
                                                  : "CreateTime",
                        (long long)j->cfg[i].before_ms,
                        (long long)j->cfg[i].after_ms,
                        (long long)j->cfg[i].max_message_bytes);
            t->cfg_known = true;
            t->log_append_time = j->cfg[i].log_append_time;
            t->ts_before_max_ms = j->cfg[i].before_ms;
            t->ts_after_max_ms = j->cfg[i].after_ms;
            t->max_message_bytes = j->cfg[i].max_message_bytes;
        }
        sl_free(j->cfg_names[i]);
    }
    free(j->cfg);
    sl_free(j->cfg_names);
    free(j->each);
    for (size_t i = 0; i < j->n_names; i++)
        sl_free(j->names[i]);
    sl_free(j->names);
    if (j->cb)
        j->cb(mc->srv, j->arg);
    if (j->all && mc->n_waiters > 0) {
        /* Taken first: a callback may start the next listing. */
        struct list_waiter *w = mc->waiters;
        size_t n = mc->n_waiters;
        mc->waiters = NULL;
        mc->n_waiters = 0;
        for (size_t i = 0; i < n; i++)
            w[i].cb(mc->srv, w[i].arg);
        sl_free(w);
    }
    sl_free(j);
    sl__server_maybe_finish(mc->srv);
}

static void submit(sl_metacache *mc, job *j)
{
    j->mc = mc;
    j->rk = mc->srv->up.rk;
    j->want_cluster_id = mc->cluster_id == NULL;
    j->work.data = j;
    mc->jobs++;
    uv_queue_work(mc->srv->loop, &j->work, job_run, job_done);
}

void sl__metacache_lookup(sl_metacache *mc, char **names, size_t n,
                          bool allow_create, sl_metacache_cb cb, void *arg)
{
    job *j = sl_calloc(1, sizeof(*j));
    j->names = sl_calloc(n ? n : 1, sizeof(char *));
    for (size_t i = 0; i < n; i++)
        j->names[i] = sl_strdup(names[i]);
    j->n_names = n;
    /* Without auto-creation, ask for the full listing: naming a missing
     * topic in a producer's metadata request would let the cluster create
     * it (librdkafka's producer always allows auto-creation). */
    j->all = !allow_create || n == 0;
    j->allow_create = allow_create;
    j->cb = cb;
    j->arg = arg;
    if (j->all)
        mc->full_inflight = true;
    submit(mc, j);
}

static int32_t cfg_broker_of(const sl_topic *t)
{
    return t->n_partitions > 0 && t->leaders ? t->leaders[0] : -1;
}

void sl__metacache_list(sl_metacache *mc, sl_metacache_cb cb, void *arg)
{
    mc->waiters = sl_realloc(mc->waiters,
                             (mc->n_waiters + 1) * sizeof(*mc->waiters));
    mc->waiters[mc->n_waiters].cb = cb;
    mc->waiters[mc->n_waiters++].arg = arg;
    if (!mc->full_inflight)
        sl__metacache_lookup(mc, NULL, 0, false, NULL, NULL);
}

void sl__metacache_refresh_now(sl_metacache *mc)
{
    job *j;
    size_t n = 0;

    if (mc->full_inflight || mc->stopped)
        return;
    j = sl_calloc(1, sizeof(*j));
    j->names = sl_calloc(1, sizeof(char *));
    j->all = true;
    j->cfg_broker = -1;
    /* The configs of the topics produced to, read again (they change
     * rarely; a full refresh is every metadata_refresh_ms). */
    for (size_t b = 0; b < mc->n_buckets; b++)
        for (tnode *t = mc->buckets[b]; t; t = t->next)
            if (t->t.rkt != NULL && !t->t.cfg_inflight)
                n++;
    if (n > 0) {
        j->cfg_names = sl_calloc(n, sizeof(char *));
        for (size_t b = 0; b < mc->n_buckets; b++)
            for (tnode *t = mc->buckets[b]; t; t = t->next)
                if (t->t.rkt != NULL && !t->t.cfg_inflight &&
                    j->n_cfg < n) {
                    t->t.cfg_inflight = true;
                    if (j->n_cfg == 0)
                        j->cfg_broker = cfg_broker_of(&t->t);
                    j->cfg_names[j->n_cfg++] = sl_strdup(t->t.name);
                }
    }
    mc->full_inflight = true;
    submit(mc, j);
}

void sl__metacache_want_configs(sl_metacache *mc, sl_topic *t)
{
    job *j;

    if (mc->stopped || t->cfg_inflight)
        return;
    j = sl_calloc(1, sizeof(*j));
    j->names = sl_calloc(1, sizeof(char *));
    j->cfg_names = sl_calloc(1, sizeof(char *));
    j->cfg_names[0] = sl_strdup(t->name);
    j->n_cfg = 1;
    j->cfg_broker = cfg_broker_of(t);
    t->cfg_inflight = true;
    submit(mc, j);
}

static void on_want_done(sl_server *srv, void *arg)
{
    sl_topic *t = arg; /* entries are never freed while running */
    t->lookup_inflight = false;
}

void sl__metacache_want(sl_metacache *mc, const char *name, size_t len)
{
    sl_topic *t = get_or_add(mc, name, len);
    char *names[1];
    if (t->lookup_inflight || mc->stopped ||
        (t->updated_ms != 0 &&
         sl__now_ms(mc->srv) - t->updated_ms < NEGATIVE_TTL_MS))
        return;
    t->lookup_inflight = true;
    names[0] = t->name;
    sl__metacache_lookup(mc, names, 1, false, on_want_done, t);
}

sl_topic **sl__metacache_all(sl_metacache *mc, size_t *n)
{
    sl_topic **v = sl_calloc(mc->n_topics + 1, sizeof(*v));
    size_t k = 0;
    for (size_t b = 0; b < mc->n_buckets; b++)
        for (tnode *t = mc->buckets[b]; t; t = t->next)
            if (t->t.exists)
                v[k++] = &t->t;
    *n = k;
    return v;
}

const char *sl__metacache_cluster_id(sl_metacache *mc)
{
    return mc->cluster_id;
}

bool sl__metacache_fresh(sl_metacache *mc)
{
    return mc->full_refresh_ms != 0 &&
           sl__now_ms(mc->srv) - mc->full_refresh_ms <=
               (uint64_t)mc->srv->cfg->metadata_max_age_ms;
}

void sl__metacache_stop(sl_metacache *mc)
{
    mc->stopped = true;
}

/* ---- the Metadata API --------------------------------------------------- */

typedef struct mwait {
    sl_req *req;
    sl_kafka_MetadataRequest body;
} mwait;

static void answer(sl_server *srv, sl_req *req,
                   const sl_kafka_MetadataRequest *body)
{
    sl_metacache *mc = srv->meta;
    /* The asking connection's listeners (an orphan's answer is dropped). */
    sl_family *fam = req->conn ? req->conn->fam : &srv->fam[0];
    int16_t ver = req->hdr.api_version;
    sl_kafka_MetadataResponse resp = {0};
    sl_kafka_MetadataBroker broker, *mapped = NULL;
    size_t n_mapped = 0;
    int32_t node = (int32_t)srv->cfg->node_id;
    sl_topic **all = NULL;
    size_t n_all = 0;
    bool want_all = body->n_topics < 0 || (ver == 0 && body->n_topics == 0);
    sl_wr w;
    size_t start, len, n_parts = 0;
    int32_t *ids = NULL;
    sl_kafka_MetadataPartition *parts;
    uint8_t *buf;

    broker.node_id = node;
    broker.host = SL_KSTR(fam->adv_host);
    broker.port = fam->adv_port;
    broker.rack = SL_KSTR_NULL;
    resp.throttle_time_ms = 0;
    resp.n_brokers = 1;
    resp.brokers = &broker;
    /* One advertised broker per upstream broker Sluice listens for (see
     * sl_listener); until the first metadata answer, or with
     * broker_port_base -1, Sluice is the only broker (node_id). */
    if (fam->n_blisten > 0) {
        mapped = sl_calloc(fam->n_blisten, sizeof(*mapped));
        for (size_t i = 0; i < fam->n_blisten; i++) {
            const sl_listener *l = fam->blisten[i];
            if (!l->open)
                continue;
            mapped[n_mapped].node_id = l->broker;
            mapped[n_mapped].host = SL_KSTR(fam->adv_host);
            mapped[n_mapped].port = l->port;
            mapped[n_mapped].rack = SL_KSTR_NULL;
            n_mapped++;
        }
        if (n_mapped > 0) {
            resp.brokers = mapped;
            resp.n_brokers = (int32_t)n_mapped;
            node = mapped[0].node_id;
        }
    }
    resp.cluster_id = mc->cluster_id ? SL_KSTR(mc->cluster_id)
                                     : SL_KSTR("sluice");
    resp.controller_id = node;
    resp.cluster_authorized_operations = INT32_MIN;

    if (want_all) {
        all = sl__metacache_all(mc, &n_all);
        resp.n_topics = (int32_t)n_all;
    } else {
        resp.n_topics = body->n_topics;
    }
    resp.topics = sl_calloc((size_t)resp.n_topics + 1, sizeof(*resp.topics));
    for (int32_t i = 0; i < resp.n_topics; i++) {
        sl_topic *t = want_all ? all[i] : NULL;
        sl_kafka_MetadataTopic *mt = &resp.topics[i];
        if (!want_all) {
            sl_kstr nm = body->topics[i].name;
            mt->name = nm;
            if (nm.len > 0)
                t = sl__metacache_get(mc, nm.p, (size_t)nm.len);
            if (nm.len <= 0 || nm.len > 249) {
                mt->error_code = SL_KERR_INVALID_TOPIC_EXCEPTION;
                t = NULL;
            } else if (t == NULL || !t->exists) {
                mt->error_code = t && t->error ? t->error
                                 : SL_KERR_UNKNOWN_TOPIC_OR_PARTITION;
                t = NULL;
            }
        } else {
            mt->name = (sl_kstr){t->name, (int32_t)t->name_len};
        }
        mt->topic_authorized_operations = INT32_MIN;
        if (t)
            n_parts += (size_t)t->n_partitions;
    }
    /* One array for every partition of the answer. Each partition is led,
     * replicated and in sync on one advertised node: the upstream leader's
     * listener, or (leader unknown, or no listener for it) the first
     * advertised node, which forwards like any other. */
    parts = sl_calloc(n_parts + 1, sizeof(*parts));
    ids = sl_calloc(n_parts + 1, sizeof(*ids));
    n_parts = 0;
    for (int32_t i = 0; i < resp.n_topics; i++) {
        sl_kafka_MetadataTopic *mt = &resp.topics[i];
        sl_topic *t;
        if (mt->error_code)
            continue;
        t = want_all ? all[i]
                     : sl__metacache_get(mc, mt->name.p, (size_t)mt->name.len);
        mt->partitions = &parts[n_parts];
        mt->n_partitions = t->n_partitions;
        for (int32_t p = 0; p < t->n_partitions; p++) {
            sl_kafka_MetadataPartition *mp = &parts[n_parts];
            int32_t *id = &ids[n_parts++];
            *id = n_mapped > 0 && t->leaders != NULL &&
                          sl__server_broker_listener(fam, t->leaders[p])
                      ? t->leaders[p]
                      : node;
            mp->partition_index = p;
            mp->leader_id = *id;
            mp->leader_epoch = -1;
            mp->n_replicas = 1;
            mp->replicas = id;
            mp->n_isr = 1;
            mp->isr = id;
        }
    }
    sl_wr_init(&w, 256 + 64 * n_parts);
    start = sl_kafka_resp_hdr_encode(&w, SL_KAFKA_METADATA, ver,
                                     req->hdr.correlation_id);
    sl_kafka_MetadataResponse_encode(&w, ver, &resp);
    sl_kafka_frame_end(&w, start);
    sl_free(parts);
    sl_free(ids);
    sl_free(mapped);
    sl_free(resp.topics);
    sl_free(all);
    buf = sl_wr_release(&w, &len);
    sl__req_answer(req, buf, len);
}

static void on_lookup(sl_server *srv, void *arg)
{
    mwait *mw = arg;
    mw->req->wait = NULL;
    if (mw->req->conn == NULL) {
        /* The client left meanwhile. */
        sl_kafka_MetadataRequest_free(&mw->body);
        sl__req_free(srv, mw->req);
    } else {
        answer(srv, mw->req, &mw->body);
        sl_kafka_MetadataRequest_free(&mw->body);
    }
    sl_free(mw);
}

void sl__metadata_handle(sl_server *srv, sl_req *req)
{
    sl_metacache *mc = srv->meta;
    int16_t ver = req->hdr.api_version;
    sl_rd r = sl_rd_init(req->frame + req->hdr.len,
                         req->frame_len - req->hdr.len);
    sl_kafka_MetadataRequest body;
    uint64_t now = sl__now_ms(srv);
    char **missing;
    size_t n_missing = 0;
    bool want_all;
    mwait *mw;

    if (sl_kafka_MetadataRequest_decode(&r, ver, &body) != 0) {
        sl_warn("conn %llu %s: malformed Metadata v%d; disconnecting",
                (unsigned long long)req->conn->id, req->conn->peer, ver);
        req->close_after = true;
        sl__req_answer(req, NULL, 0);
        return;
    }
    want_all = body.n_topics < 0 || (ver == 0 && body.n_topics == 0);
    if (want_all) {
        /* A broker lists the topics it knows now, a topic created a
         * moment ago included (kafka-go asks for every topic every 6 s,
         * then writes only to those listed): a listing older than
         * metadata.list_max_age_ms is fetched again, one upstream call
         * shared by every request that waits for it. */
        if (mc->full_refresh_ms != 0 &&
            srv->cfg->metadata_list_max_age_ms > 0 &&
            now - mc->full_refresh_ms <
                (uint64_t)srv->cfg->metadata_list_max_age_ms) {
            answer(srv, req, &body);
            sl_kafka_MetadataRequest_free(&body);
            return;
        }
        mw = sl_calloc(1, sizeof(*mw));
        mw->req = req;
        mw->body = body;
        req->wait = mw;
        sl__metacache_list(mc, on_lookup, mw);
        return;
    } else {
        missing = sl_calloc((size_t)body.n_topics + 1, sizeof(char *));
        for (int32_t i = 0; i < body.n_topics; i++) {
            sl_kstr nm = body.topics[i].name;
            sl_topic *t;
            if (nm.len <= 0 || nm.len > 249)
                continue;
            t = sl__metacache_get(mc, nm.p, (size_t)nm.len);
            if (t == NULL || (!t->exists && now - t->updated_ms >= NEGATIVE_TTL_MS) ||
                (t->exists &&
                 now - t->updated_ms >= (uint64_t)srv->cfg->metadata_refresh_ms))
                missing[n_missing++] = sl_strndup(nm.p, (size_t)nm.len);
        }
        if (n_missing == 0) {
            sl_free(missing);
            answer(srv, req, &body);
            sl_kafka_MetadataRequest_free(&body);
            return;
        }
    }
    mw = sl_calloc(1, sizeof(*mw));
    mw->req = req;
    mw->body = body;
    req->wait = mw;
    sl__metacache_lookup(mc, missing, n_missing, body.allow_auto_topic_creation,
                         on_lookup, mw);
    for (size_t i = 0; i < n_missing; i++)
        sl_free(missing[i]);
    sl_free(missing);
}
