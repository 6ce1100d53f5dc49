/*
 * A raw-text JSON walker that finds line numbers, for error messages:
 * jansson keeps no positions for values. It tracks the path of object keys
 * and array indexes (nesting-aware: a key inside another object or inside
 * a string never matches) and calls a visitor at every key and array
 * element. Malformed text after the point of interest just stops the walk.
 * Used by the config loader (proxy/config.c) and the policy loader
 * (policy/policy.c). Pure; any thread.
 */
#ifndef SLUICE_JSONSCAN_H
#define SLUICE_JSONSCAN_H

#include <stddef.h>

#include <jansson.h>

#include "sluice/common.h"

#define SL_JSCAN_MAX_DEPTH 16 /* keys deeper than this are walked, not stored */

/* One path component: an object key, or (key NULL) an array index. */
typedef struct sl_jscan_comp {
    const char *key;
    long idx;
} sl_jscan_comp;

typedef struct sl_jscan sl_jscan;
/* depth: path[0..depth] is set; is_key: object key (else array element);
 * line: where it starts. Returns false to stop the walk. */
typedef bool (*sl_jscan_visit)(sl_jscan *s, size_t depth, bool is_key,
                               int line);

struct sl_jscan {
    const char *base, *p, *end; /* p: the walker's position */
    int line;
    sl_jscan_comp path[SL_JSCAN_MAX_DEPTH]; /* keys borrowed during visit */
    sl_jscan_visit visit;
    void *arg;
    bool stopped;
};

/* Walks text, calling v (with s->arg = arg) at every key and element. */
void sl_jscan_run(sl_jscan *s, const char *text, size_t len, sl_jscan_visit v,
                  void *arg);

/* The line of the first key or element at path want[0..n), or 0. */
int sl_jscan_path_line(const char *text, size_t len,
                       const sl_jscan_comp *want, size_t n);

/* The key path of the last key read at or before byte offset stop (as for
 * jansson's duplicate-key error position): writes up to
 * SL_JSCAN_MAX_DEPTH keys (owned by the caller: sl_free each) and the
 * key's line; returns how many (0 if none, or if the key sits inside an
 * array and cannot be named). */
size_t sl_jscan_key_at(const char *text, size_t len, size_t stop,
                       char **keys, int *line);

/* The line of the first non-blank character (where the top value starts). */
int sl_jscan_first_line(const char *text, size_t len);

/* Shared by both loaders' messages. */
/* "an object", "an array", "a string", "a number", "a boolean", "null". */
const char *sl_json_kind(const json_t *v);
/* jansson's own parse error as "NAME:LINE:COL: invalid JSON: ..." (or
 * without the column or line when jansson has none); snprintf into err. */
void sl_json_syntax_error(char *err, size_t len, const char *name,
                          const json_error_t *je);

/* Levenshtein distance for "did you mean"; inputs over 64 bytes score
 * SIZE_MAX (too far). */
size_t sl_json_edit_distance(const char *a, size_t la, const char *b,
                             size_t lb);
/* The candidate closest to name (at most 3 edits, and fewer than half its
 * length), or NULL: for "unknown key (did you mean ...?)". */
const char *sl_json_suggest(const char *name, size_t len,
                            const char *const *cands, size_t n);

#endif
