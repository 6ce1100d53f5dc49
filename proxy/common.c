/* Error names, allocation wrappers and logging (see include/sluice/common.h). */
#include "sluice/common.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SL__ERR_NAME(name, msg) [SL__ERRIDX_##name] = "SL_E_" #name,
static const char *const err_names[SL__ERRIDX_COUNT] = {
    [SL__ERRIDX_NONE] = "SL_OK", SL_ERR_MAP(SL__ERR_NAME)};
#undef SL__ERR_NAME
#define SL__ERR_MSG(name, msg) [SL__ERRIDX_##name] = msg,
static const char *const err_msgs[SL__ERRIDX_COUNT] = {
    [SL__ERRIDX_NONE] = "success", SL_ERR_MAP(SL__ERR_MSG)};
#undef SL__ERR_MSG

const char *sl_err_name(int err)
{
    if (err > 0 || -err >= SL__ERRIDX_COUNT)
        return "SL_E_?";
    return err_names[-err];
}

const char *sl_strerror(int err)
{
    if (err > 0 || -err >= SL__ERRIDX_COUNT)
        return "unknown error";
    return err_msgs[-err];
}

static void oom(size_t n)
{
    fprintf(stderr, "sluice: fatal: out of memory allocating %zu bytes\n", n);
    abort();
}

void *sl_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL)
        oom(n);
    return p;
}

void *sl_calloc(size_t count, size_t n)
{
    void *p = calloc(count ? count : 1, n ? n : 1);
    if (p == NULL)
        oom(count * n);
    return p;
}

void *sl_realloc(void *p, size_t n)
{
    void *np = realloc(p, n ? n : 1);
    if (np == NULL)
        oom(n);
    return np;
}

char *sl_strdup(const char *s)
{
    return sl_strndup(s, strlen(s));
}

char *sl_strndup(const char *s, size_t n)
{
    char *d = sl_malloc(n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

void sl_free(void *p)
{
    free(p);
}

int sl_log_level_current = SL_LOG_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

int sl_log_level_parse(const char *name)
{
    for (size_t i = 0; i < SL_ARRAY_SIZE(level_names); i++)
        if (strcmp(name, level_names[i]) == 0)
            return (int)i;
    return -1;
}

void sl_log_write(int level, const char *fmt, ...)
{
    char line[2048];
    struct timespec ts;
    struct tm tm;
    size_t n;
    va_list ap;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    n += (size_t)snprintf(line + n, sizeof(line) - n, ".%03ldZ %-5s ",
                          ts.tv_nsec / 1000000,
                          level >= 0 && level < 4 ? level_names[level] : "?");
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof(line) - n, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s\n", line);
}

bool sl_ratelimit_take(sl_ratelimit *rl, int64_t now_ms, uint64_t *suppressed)
{
    if (rl->last_ms == 0) {
        rl->tokens = rl->burst;
    } else if (now_ms > rl->last_ms) {
        rl->tokens += (double)(now_ms - rl->last_ms) * rl->rate / 1000.0;
        if (rl->tokens > rl->burst)
            rl->tokens = rl->burst;
    }
    if (now_ms > rl->last_ms)
        rl->last_ms = now_ms;
    if (rl->tokens < 1.0) {
        rl->suppressed++;
        return false;
    }
    rl->tokens -= 1.0;
    if (suppressed != NULL)
        *suppressed = rl->suppressed;
    rl->suppressed = 0;
    return true;
}

sl_ratelimit sl_client_warn_limit = {.rate = 10, .burst = 20};

void sl_warn_client_write(const char *fmt, ...)
{
    char line[1536];
    struct timespec ts;
    uint64_t dropped = 0;
    va_list ap;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    if (!sl_ratelimit_take(&sl_client_warn_limit,
                           (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + 1,
                           &dropped))
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (dropped > 0)
        sl_log_write(SL_LOG_WARN, "%s (and %llu similar client warnings "
                                  "suppressed before it)",
                     line, (unsigned long long)dropped);
    else
        sl_log_write(SL_LOG_WARN, "%s", line);
}
