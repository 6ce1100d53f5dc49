/*
 * Sluice — common definitions: error codes, allocation, logging.
 *
 * Errors: functions return 0 (SL_OK) or a negative sl_err. The one list
 * below (SL_ERR_MAP) produces the enum, the name and the message, the way
 * libuv's UV_ERRNO_MAP does. Kafka protocol error codes are a different
 * type (int16_t, >= 0) and are never mixed with these.
 *
 * Allocation: every allocation goes through sl_malloc/sl_calloc/sl_realloc.
 * Out-of-memory policy: log and abort(). Sluice bounds its own memory with
 * a global budget (limits.memory_budget_bytes) and stops reading client
 * sockets long before the process could run out, so an allocation failure
 * means the machine itself is out of memory; limping on with half-built
 * requests would risk answering success for records not sent upstream.
 */
#ifndef SLUICE_COMMON_H
#define SLUICE_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#define SL_VERSION "0.1.0"

#define SL_ERR_MAP(X)                                                     \
    X(NOMEM, "out of memory")                                             \
    X(PARSE, "malformed input")                                           \
    X(TRUNCATED, "input truncated")                                       \
    X(TOO_LARGE, "size limit exceeded")                                   \
    X(CRC, "CRC-32C mismatch")                                            \
    X(UNSUPPORTED, "unsupported feature or version")                      \
    X(COMPRESSION, "corrupt compressed data")                             \
    X(CONFIG, "invalid configuration")                                    \
    X(IO, "I/O error")                                                    \
    X(INVALID, "invalid argument")                                        \
    X(NOTFOUND, "not found")                                              \
    X(UPSTREAM, "upstream failure")

#define SL__ERR_IDX(name, msg) SL__ERRIDX_##name,
enum sl__err_index { SL__ERRIDX_NONE, SL_ERR_MAP(SL__ERR_IDX) SL__ERRIDX_COUNT };
#undef SL__ERR_IDX

#define SL__ERR_NEG(name, msg) SL_E_##name = -SL__ERRIDX_##name,
typedef enum sl_err { SL_OK = 0, SL_ERR_MAP(SL__ERR_NEG) } sl_err;
#undef SL__ERR_NEG

/* "SL_E_CRC" for -SL__ERRIDX_CRC, "SL_OK" for 0, "SL_E_?" otherwise. */
const char *sl_err_name(int err);
/* Human message for an sl_err. */
const char *sl_strerror(int err);

/* Allocation wrappers: never return NULL (see OOM policy above).
 * sl_realloc returns the new pointer; the old one is invalid afterwards
 * (never write p = realloc(p, n) with the libc function). */
void *sl_malloc(size_t n);
void *sl_calloc(size_t count, size_t n);
void *sl_realloc(void *p, size_t n);
char *sl_strdup(const char *s);
char *sl_strndup(const char *s, size_t n);
void sl_free(void *p);

/* Logging (thread-safe: one fprintf per line). Levels in ascending
 * verbosity. The daemon sets sl_log_level from the config. Pure modules
 * (proxy/kafka, policy) never log; they return errors. */
typedef enum sl_log_level {
    SL_LOG_ERROR = 0,
    SL_LOG_WARN,
    SL_LOG_INFO,
    SL_LOG_DEBUG,
} sl_log_level;

extern int sl_log_level_current;
/* Returns -1 for an unknown name. Names: error, warn, info, debug. */
int sl_log_level_parse(const char *name);
void sl_log_write(int level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define sl_log(level, ...)                                                \
    do {                                                                  \
        if ((level) <= sl_log_level_current)                             \
            sl_log_write((level), __VA_ARGS__);                           \
    } while (0)
#define sl_error(...) sl_log(SL_LOG_ERROR, __VA_ARGS__)
#define sl_warn(...) sl_log(SL_LOG_WARN, __VA_ARGS__)
#define sl_info(...) sl_log(SL_LOG_INFO, __VA_ARGS__)
#define sl_debug(...) sl_log(SL_LOG_DEBUG, __VA_ARGS__)

/* A token bucket for log lines: `rate` a second, `burst` at once. Pure
 * (time passed in); one thread (the caller's). */
typedef struct sl_ratelimit {
    double rate, burst;
    double tokens;
    int64_t last_ms;     /* of the last refill; 0: never (starts full) */
    uint64_t suppressed; /* lines refused since the last one let through */
} sl_ratelimit;

/* Whether a line may go out now. When it may, *suppressed (if not NULL)
 * gets how many were refused since the last one let through, and the
 * count restarts. */
bool sl_ratelimit_take(sl_ratelimit *rl, int64_t now_ms,
                       uint64_t *suppressed);

/* Warnings about one client's doing (malformed input, refusals,
 * disconnects, timeouts): through one process-wide bucket of 10 lines a
 * second, 20 at once, so that a flood of bad connections cannot flood the
 * log; a line after a suppression says how many were dropped. Loop
 * thread only. */
extern sl_ratelimit sl_client_warn_limit;
void sl_warn_client_write(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
#define sl_warn_client(...)                                               \
    do {                                                                  \
        if (SL_LOG_WARN <= sl_log_level_current)                          \
            sl_warn_client_write(__VA_ARGS__);                            \
    } while (0)

#define SL_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define SL_MIN(a, b) ((a) < (b) ? (a) : (b))
#define SL_MAX(a, b) ((a) > (b) ? (a) : (b))
#define SL_CONTAINER_OF(ptr, type, member)                                \
    ((type *)((char *)(ptr)-offsetof(type, member)))

#endif
