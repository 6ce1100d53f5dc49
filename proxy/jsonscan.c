/*
 * A raw-text JSON walker for line numbers (see include/sluice/jsonscan.h).
 * Shared by the config loader and the policy loader: jansson keeps no
 * positions for values, so errors about a value find its line here.
 */
#include "sluice/jsonscan.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define SCAN_MAX_NEST 2048 /* jansson's own nesting limit */

static void scan_ws(sl_jscan *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' ||
                             *s->p == '\r' || *s->p == '\n')) {
        if (*s->p == '\n')
            s->line++;
        s->p++;
    }
}

typedef struct strbuf {
    char *b;
    size_t len, cap;
} strbuf;

static void sb_putc(strbuf *sb, char ch)
{
    if (sb->len + 2 > sb->cap) {
        size_t cap = sb->cap ? sb->cap * 2 : 32;
        char *nb = sl_realloc(sb->b, cap);
        sb->b = nb;
        sb->cap = cap;
    }
    sb->b[sb->len++] = ch;
    sb->b[sb->len] = '\0';
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

static bool scan_hex4(sl_jscan *s, unsigned *out)
{
    unsigned v = 0;

    if (s->end - s->p < 4)
        return false;
    for (int i = 0; i < 4; i++) {
        int h = hexval(s->p[i]);
        if (h < 0)
            return false;
        v = v << 4 | (unsigned)h;
    }
    s->p += 4;
    *out = v;
    return true;
}

static void sb_put_utf8(strbuf *sb, unsigned cp)
{
    if (cp < 0x80) {
        sb_putc(sb, (char)cp);
    } else if (cp < 0x800) {
        sb_putc(sb, (char)(0xc0 | cp >> 6));
        sb_putc(sb, (char)(0x80 | (cp & 0x3f)));
    } else if (cp < 0x10000) {
        sb_putc(sb, (char)(0xe0 | cp >> 12));
        sb_putc(sb, (char)(0x80 | (cp >> 6 & 0x3f)));
        sb_putc(sb, (char)(0x80 | (cp & 0x3f)));
    } else {
        sb_putc(sb, (char)(0xf0 | cp >> 18));
        sb_putc(sb, (char)(0x80 | (cp >> 12 & 0x3f)));
        sb_putc(sb, (char)(0x80 | (cp >> 6 & 0x3f)));
        sb_putc(sb, (char)(0x80 | (cp & 0x3f)));
    }
}

/* Reads the string at s->p (a '"'); with out, decoded (caller frees). */
static bool scan_string(sl_jscan *s, char **out)
{
    strbuf sb = {0};
    unsigned cp, lo;

    s->p++;
    for (;;) {
        char ch;
        if (s->p >= s->end)
            goto bad;
        ch = *s->p++;
        if (ch == '"')
            break;
        if (ch == '\n')
            s->line++;
        if (ch != '\\') {
            if (out)
                sb_putc(&sb, ch);
            continue;
        }
        if (s->p >= s->end)
            goto bad;
        ch = *s->p++;
        switch (ch) {
        case 'b': ch = '\b'; break;
        case 'f': ch = '\f'; break;
        case 'n': ch = '\n'; break;
        case 'r': ch = '\r'; break;
        case 't': ch = '\t'; break;
        case 'u':
            if (!scan_hex4(s, &cp))
                goto bad;
            if (cp >= 0xd800 && cp < 0xdc00 && s->end - s->p >= 6 &&
                s->p[0] == '\\' && s->p[1] == 'u') {
                s->p += 2;
                if (!scan_hex4(s, &lo) || lo < 0xdc00 || lo > 0xdfff)
                    goto bad;
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            }
            if (out)
                sb_put_utf8(&sb, cp);
            continue;
        default: break; /* '"', '\\', '/' stand for themselves */
        }
        if (out)
            sb_putc(&sb, ch);
    }
    if (out)
        *out = sb.b ? sb.b : sl_strdup("");
    return true;

bad:
    sl_free(sb.b);
    return false;
}

static bool scan_value(sl_jscan *s, size_t depth, size_t nest);

static bool scan_object(sl_jscan *s, size_t depth, size_t nest)
{
    s->p++;
    scan_ws(s);
    if (s->p < s->end && *s->p == '}') {
        s->p++;
        return true;
    }
    for (;;) {
        char *key = NULL;
        bool keep = depth < SL_JSCAN_MAX_DEPTH, ok = true;
        int line;

        scan_ws(s);
        if (s->p >= s->end || *s->p != '"')
            return false;
        line = s->line;
        if (!scan_string(s, keep ? &key : NULL))
            return false;
        if (keep) {
            s->path[depth] = (sl_jscan_comp){key, -1};
            ok = s->visit(s, depth, true, line);
        }
        if (ok) {
            scan_ws(s);
            ok = s->p < s->end && *s->p++ == ':' &&
                 scan_value(s, depth + 1, nest + 1);
        }
        if (keep)
            s->path[depth] = (sl_jscan_comp){NULL, -1};
        sl_free(key);
        if (!ok)
            return false;
        scan_ws(s);
        if (s->p >= s->end)
            return false;
        if (*s->p == '}') {
            s->p++;
            return true;
        }
        if (*s->p++ != ',')
            return false;
    }
}

static bool scan_array(sl_jscan *s, size_t depth, size_t nest)
{
    s->p++;
    scan_ws(s);
    if (s->p < s->end && *s->p == ']') {
        s->p++;
        return true;
    }
    for (long i = 0;; i++) {
        scan_ws(s);
        if (depth < SL_JSCAN_MAX_DEPTH) {
            s->path[depth] = (sl_jscan_comp){NULL, i};
            if (!s->visit(s, depth, false, s->line))
                return false;
        }
        if (!scan_value(s, depth + 1, nest + 1))
            return false;
        scan_ws(s);
        if (s->p >= s->end)
            return false;
        if (*s->p == ']') {
            s->p++;
            return true;
        }
        if (*s->p++ != ',')
            return false;
    }
}

static bool scan_value(sl_jscan *s, size_t depth, size_t nest)
{
    const char *start;

    if (nest > SCAN_MAX_NEST)
        return false;
    scan_ws(s);
    if (s->p >= s->end)
        return false;
    switch (*s->p) {
    case '{': return scan_object(s, depth, nest);
    case '[': return scan_array(s, depth, nest);
    case '"': return scan_string(s, NULL);
    default:
        start = s->p;
        while (s->p < s->end && strchr(",:]}\" \t\r\n", *s->p) == NULL)
            s->p++; /* (strchr finds the terminator: a NUL stops it too) */
        if (s->p == start)
            return false;
        /* jansson reads one byte past a number or literal and, ungetting
         * a NUL there, skips it: so does the scanner. */
        if (s->p < s->end && *s->p == '\0')
            s->p++;
        return true;
    }
}

void sl_jscan_run(sl_jscan *s, const char *text, size_t len, sl_jscan_visit v,
                     void *arg)
{
    s->base = s->p = text;
    s->end = text + len;
    s->line = 1;
    s->visit = v;
    s->arg = arg;
    s->stopped = false;
    for (size_t i = 0; i < SL_JSCAN_MAX_DEPTH; i++)
        s->path[i] = (sl_jscan_comp){NULL, -1};
    scan_value(s, 0, 0);
}

static bool comp_eq(const sl_jscan_comp *a, const sl_jscan_comp *b)
{
    if (a->key == NULL || b->key == NULL)
        return a->key == b->key && a->idx == b->idx;
    return strcmp(a->key, b->key) == 0;
}

/* find mode: the line of the first key/element at path want[0..n) */
typedef struct find_arg {
    const sl_jscan_comp *want;
    size_t n;
    int line;
} find_arg;

static bool visit_find(sl_jscan *s, size_t depth, bool is_key, int line)
{
    find_arg *fa = s->arg;

    if (depth + 1 != fa->n)
        return true;
    for (size_t i = 0; i <= depth; i++)
        if (!comp_eq(&s->path[i], &fa->want[i]))
            return true;
    fa->line = line;
    return false;
}

int sl_jscan_path_line(const char *text, size_t len, const sl_jscan_comp *want,
                     size_t n)
{
    find_arg fa = {want, n, 0};
    sl_jscan s;

    if (n == 0 || n > SL_JSCAN_MAX_DEPTH)
        return 0;
    sl_jscan_run(&s, text, len, visit_find, &fa);
    return fa.line;
}

/* which mode: the path of the last key ending at or before stop */
typedef struct which_arg {
    size_t stop;
    char *keys[SL_JSCAN_MAX_DEPTH];
    size_t n;
    int line;
} which_arg;

static void which_clear(which_arg *wa)
{
    for (size_t i = 0; i < wa->n; i++)
        sl_free(wa->keys[i]);
    wa->n = 0;
}

static bool visit_which(sl_jscan *s, size_t depth, bool is_key, int line)
{
    which_arg *wa = s->arg;

    if (!is_key)
        return true;
    if ((size_t)(s->p - s->base) > wa->stop)
        return false;
    which_clear(wa);
    for (size_t i = 0; i <= depth; i++) {
        if (s->path[i].key == NULL) { /* inside an array: cannot name it */
            which_clear(wa);
            return true;
        }
        wa->keys[wa->n++] = sl_strdup(s->path[i].key);
    }
    wa->line = line;
    return true;
}

size_t sl_jscan_key_at(const char *text, size_t len, size_t stop,
                       char **keys, int *line)
{
    which_arg wa = {.stop = stop};
    sl_jscan s;

    sl_jscan_run(&s, text, len, visit_which, &wa);
    for (size_t i = 0; i < wa.n; i++)
        keys[i] = wa.keys[i]; /* ownership to the caller */
    *line = wa.line;
    return wa.n;
}

int sl_jscan_first_line(const char *text, size_t len)
{
    sl_jscan s = {.base = text, .p = text, .end = text + len, .line = 1};
    scan_ws(&s);
    return s.line;
}

const char *sl_json_kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER:
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    default: return "an object";
    }
}

void sl_json_syntax_error(char *err, size_t len, const char *name,
                          const json_error_t *je)
{
    if (len == 0)
        return;
    if (je->line > 0 && je->column > 0)
        snprintf(err, len, "%s:%d:%d: invalid JSON: %s", name, je->line,
                 je->column, je->text);
    else if (je->line > 0)
        snprintf(err, len, "%s:%d: invalid JSON: %s", name, je->line,
                 je->text);
    else
        snprintf(err, len, "%s: invalid JSON: %s", name, je->text);
}

size_t sl_json_edit_distance(const char *a, size_t la, const char *b,
                             size_t lb)
{
    size_t row[65];

    if (la > 64 || lb > 64)
        return SIZE_MAX;
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

const char *sl_json_suggest(const char *name, size_t len,
                            const char *const *cands, size_t n)
{
    size_t best = SIZE_MAX;
    const char *pick = NULL;

    for (size_t i = 0; i < n; i++) {
        size_t d = sl_json_edit_distance(name, len, cands[i],
                                         strlen(cands[i]));
        if (d <= 3 && d * 2 < len && d < best) {
            best = d;
            pick = cands[i];
        }
    }
    return pick;
}
