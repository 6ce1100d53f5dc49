/*
 * `sluice users add|delete|list`: edits the SASL credentials file
 * (include/sluice/sasl.h) the way `kafka-configs --alter --add-config
 * 'SCRAM-SHA-512=[password=...]'` edits a broker's. The password comes
 * from stdin, never from argv (visible in ps and shell history), and is
 * read with read(2) into a buffer wiped afterwards, not through stdio's
 * buffer. The file is rewritten atomically: a temporary file in the same
 * directory, mode 0600, fsync, rename, fsync of the directory.
 */
#include "sluice/sasl.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#define MAX_PASSWORD 1024

static int usage(void)
{
    fprintf(stderr,
            "usage: sluice users add FILE USER [--mechanism "
            "SCRAM-SHA-256|SCRAM-SHA-512|all] [--iterations N]\n"
            "         (reads the password from the first line of stdin)\n"
            "       sluice users delete FILE USER\n"
            "       sluice users list FILE\n");
    return 2;
}

/* The first line of fd 0 into buf (NUL-terminated, newline and a CR
 * before it stripped). Echo is off while reading from a terminal.
 * Returns the length, or -1 with a message printed. */
static long read_password(char *buf, size_t cap)
{
    struct termios old, quiet;
    bool tty = isatty(0) == 1 && tcgetattr(0, &old) == 0;
    size_t n = 0;
    bool line_end = false, too_long = false;

    if (tty) {
        fprintf(stderr, "Password: ");
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(0, TCSAFLUSH, &quiet);
    }
    while (!line_end) {
        char c;
        ssize_t got = read(0, &c, 1);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        if (c == '\n')
            line_end = true;
        else if (n + 1 < cap)
            buf[n++] = c;
        else
            too_long = true;
    }
    if (tty) {
        tcsetattr(0, TCSAFLUSH, &old);
        fputc('\n', stderr);
    }
    if (n > 0 && buf[n - 1] == '\r')
        n--;
    buf[n] = '\0';
    if (too_long) {
        fprintf(stderr, "sluice users: password longer than %d bytes\n",
                MAX_PASSWORD - 1);
        return -1;
    }
    if (n == 0) {
        fprintf(stderr, "sluice users: empty password (give it on the first "
                "line of stdin)\n");
        return -1;
    }
    if (memchr(buf, '\0', n) != NULL) {
        fprintf(stderr, "sluice users: NUL byte in the password (PLAIN "
                "could never send it)\n");
        return -1;
    }
    return (long)n;
}

/* Reads and validates FILE; *root gets its JSON (the caller's), or a new
 * {"users": {}} if the file does not exist and may_create. Returns 0, or
 * 1 with a message printed. */
static int load(const char *path, bool may_create, json_t **root)
{
    sl_sasl_creds *c;
    char err[1024];
    json_error_t je;

    if (access(path, F_OK) != 0 && errno == ENOENT && may_create) {
        *root = json_pack("{s:{}}", "users");
        return 0;
    }
    if (sl_sasl_creds_load(path, &c, err, sizeof(err)) != 0) {
        fprintf(stderr, "sluice users: %s\n", err);
        return 1;
    }
    sl_sasl_creds_free(c);
    *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (*root == NULL) { /* changed since the check above */
        fprintf(stderr, "sluice users: %s: %s\n", path, je.text);
        return 1;
    }
    return 0;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Replaces FILE by root's text: temporary file beside it (0600), fsync,
 * rename over FILE, fsync of the directory. Returns 0, or 1 with a
 * message printed (FILE unchanged). */
static int save(const char *path, json_t *root)
{
    char *text = json_dumps(root, JSON_INDENT(2)), *dir_copy, *tmp;
    size_t len = text ? strlen(text) : 0, tlen = strlen(path) + 16;
    const char *dir;
    int fd, dfd, rc = 1;

    if (text == NULL) {
        fprintf(stderr, "sluice users: out of memory\n");
        return 1;
    }
    tmp = sl_malloc(tlen);
    snprintf(tmp, tlen, "%s.tmpXXXXXX", path);
    fd = mkstemp(tmp);
    if (fd < 0) {
        fprintf(stderr, "sluice users: %s: cannot create: %s\n", tmp,
                strerror(errno));
        goto out;
    }
    if (fchmod(fd, 0600) != 0 || write_all(fd, text, len) != 0 ||
        write_all(fd, "\n", 1) != 0 || fsync(fd) != 0) {
        fprintf(stderr, "sluice users: %s: cannot write: %s\n", tmp,
                strerror(errno));
        close(fd);
        unlink(tmp);
        goto out;
    }
    if (close(fd) != 0 || rename(tmp, path) != 0) {
        fprintf(stderr, "sluice users: cannot replace %s: %s\n", path,
                strerror(errno));
        unlink(tmp);
        goto out;
    }
    dir_copy = sl_strdup(path);
    dir = dirname(dir_copy);
    dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd); /* the rename itself durable; best effort */
        close(dfd);
    }
    sl_free(dir_copy);
    rc = 0;
out:
    sl_free(tmp);
    free(text);
    return rc;
}

static bool valid_name(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > SL_SASL_MAX_NAME)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((uint8_t)s[i] < 0x20 || (uint8_t)s[i] == 0x7f)
            return false;
    return true;
}

static json_t *b64_json(const uint8_t *p, size_t n)
{
    char buf[((SL_SASL_MAX_SALT + 2) / 3) * 4 + 1];

    sl__sasl_b64_encode(p, n, buf);
    return json_string(buf);
}

static int cmd_add(int argc, char **argv)
{
    const char *path, *user;
    bool want[SL_SASL__MECH_COUNT] = {false, true, true};
    long iterations = SL_SASL_DEFAULT_ITER;
    char pw[MAX_PASSWORD];
    long pwlen;
    json_t *root, *users, *entry;
    int rc = 1;

    if (argc < 2)
        return usage();
    path = argv[0];
    user = argv[1];
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        size_t n = strcspn(a, "=");
        if (strncmp(a, "--mechanism", n) == 0 && n == 11)
            v = a[n] ? a + n + 1 : (i + 1 < argc ? argv[++i] : NULL);
        else if (strncmp(a, "--iterations", n) == 0 && n == 12)
            v = a[n] ? a + n + 1 : (i + 1 < argc ? argv[++i] : NULL);
        else {
            fprintf(stderr, "sluice users add: unknown argument \"%s\"\n", a);
            return usage();
        }
        if (v == NULL) {
            fprintf(stderr, "sluice users add: %.*s needs a value\n", (int)n,
                    a);
            return usage();
        }
        if (a[2] == 'm') {
            sl_sasl_mech m;
            if (strcmp(v, "all") == 0) {
                want[SL_SASL_SCRAM_SHA_256] = want[SL_SASL_SCRAM_SHA_512] =
                    true;
            } else if (sl_sasl_mech_parse(v, strlen(v), &m) == 0 &&
                       m != SL_SASL_PLAIN) {
                want[SL_SASL_SCRAM_SHA_256] = m == SL_SASL_SCRAM_SHA_256;
                want[SL_SASL_SCRAM_SHA_512] = m == SL_SASL_SCRAM_SHA_512;
            } else {
                fprintf(stderr, "sluice users add: --mechanism: expected "
                        "SCRAM-SHA-256, SCRAM-SHA-512 or all, got \"%s\"%s\n",
                        v, strcmp(v, "PLAIN") == 0
                               ? " (PLAIN logins check the SCRAM credential)"
                               : "");
                return 2;
            }
        } else {
            char *end;
            errno = 0;
            iterations = strtol(v, &end, 10);
            if (errno != 0 || *end != '\0' || end == v ||
                iterations < SL_SASL_MIN_ITER ||
                iterations > SL_SASL_MAX_ITER) {
                fprintf(stderr, "sluice users add: --iterations: expected "
                        "%d..%d (Kafka's bounds), got \"%s\"\n",
                        SL_SASL_MIN_ITER, SL_SASL_MAX_ITER, v);
                return 2;
            }
        }
    }
    if (!valid_name(user)) {
        fprintf(stderr, "sluice users add: user name must be 1..%d bytes "
                "without control characters\n", SL_SASL_MAX_NAME);
        return 2;
    }
    if (load(path, true, &root) != 0)
        return 1;
    if ((pwlen = read_password(pw, sizeof(pw))) < 0)
        goto out;

    users = json_object_get(root, "users");
    entry = json_object_get(users, user);
    if (entry == NULL) {
        entry = json_object();
        json_object_set_new(users, user, entry);
    }
    for (int m = SL_SASL_SCRAM_SHA_256; m <= SL_SASL_SCRAM_SHA_512; m++) {
        uint8_t salt[SL_SASL_SALT_LEN], stored[SL_SASL_MAX_KEY],
            server[SL_SASL_MAX_KEY];
        size_t kl;
        if (!want[m])
            continue;
        if (RAND_bytes(salt, sizeof(salt)) != 1 ||
            sl_sasl_scram_derive((sl_sasl_mech)m, pw, (size_t)pwlen, salt,
                                 sizeof(salt), (uint32_t)iterations, stored,
                                 server, &kl) != 0) {
            fprintf(stderr, "sluice users add: libcrypto failed\n");
            goto out;
        }
        json_object_set_new(
            entry, sl_sasl_mech_name((sl_sasl_mech)m),
            json_pack("{s:o,s:i,s:o,s:o}", "salt",
                      b64_json(salt, sizeof(salt)), "iterations",
                      (int)iterations, "stored_key", b64_json(stored, kl),
                      "server_key", b64_json(server, kl)));
        OPENSSL_cleanse(stored, sizeof(stored));
        OPENSSL_cleanse(server, sizeof(server));
    }
    if (save(path, root) != 0)
        goto out;
    printf("%s: user \"%s\":%s%s with %ld iterations\n", path, user,
           want[SL_SASL_SCRAM_SHA_256] ? " SCRAM-SHA-256" : "",
           want[SL_SASL_SCRAM_SHA_512] ? " SCRAM-SHA-512" : "", iterations);
    rc = 0;
out:
    OPENSSL_cleanse(pw, sizeof(pw));
    json_decref(root);
    return rc;
}

static int cmd_delete(int argc, char **argv)
{
    json_t *root, *users;
    int rc = 1;

    if (argc != 2)
        return usage();
    if (load(argv[0], false, &root) != 0)
        return 1;
    users = json_object_get(root, "users");
    if (json_object_del(users, argv[1]) != 0) {
        fprintf(stderr, "sluice users delete: %s: no user \"%s\"\n", argv[0],
                argv[1]);
        goto out;
    }
    if (save(argv[0], root) != 0)
        goto out;
    printf("%s: user \"%s\" deleted\n", argv[0], argv[1]);
    rc = 0;
out:
    json_decref(root);
    return rc;
}

static int cmd_list(int argc, char **argv)
{
    sl_sasl_creds *c;
    char err[1024];

    if (argc != 1)
        return usage();
    if (sl_sasl_creds_load(argv[0], &c, err, sizeof(err)) != 0) {
        fprintf(stderr, "sluice users: %s\n", err);
        return 1;
    }
    for (size_t i = 0; i < sl_sasl_creds_users(c); i++) {
        const char *name = sl_sasl_creds_user_name(c, i);
        printf("%s", name);
        for (int m = SL_SASL_SCRAM_SHA_256; m <= SL_SASL_SCRAM_SHA_512; m++) {
            uint32_t it = sl_sasl_creds_iterations(c, name, (sl_sasl_mech)m);
            if (it != 0)
                printf("\t%s (%u iterations)",
                       sl_sasl_mech_name((sl_sasl_mech)m), (unsigned)it);
        }
        putchar('\n');
    }
    sl_sasl_creds_free(c);
    return 0;
}

int sl_sasl_users_main(int argc, char **argv)
{
    int rc;

    if (argc < 1)
        return usage();
    if (strcmp(argv[0], "add") == 0)
        rc = cmd_add(argc - 1, argv + 1);
    else if (strcmp(argv[0], "delete") == 0)
        rc = cmd_delete(argc - 1, argv + 1);
    else if (strcmp(argv[0], "list") == 0)
        rc = cmd_list(argc - 1, argv + 1);
    else
        return usage();
    fflush(stdout);
    return rc;
}
