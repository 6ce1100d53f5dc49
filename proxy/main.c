/* sluice: flags -> config -> server. Everything else lives in the
 * modules (proxy/server.c is the entry point of the daemon). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "sluice/config.h"
#include "sluice/policy.h"
#include "sluice/sasl.h"
#include "sluice/server.h"

/* Fixed glibc malloc thresholds, set before any thread starts.
 *
 * librdkafka builds each ProduceRequest in one buffer sized to its batch
 * (often 100 KiB or more under load) and frees it when the broker answers.
 * With glibc's dynamic thresholds, the freed top of the broker thread's
 * arena is given back to the kernel and the next request faults the same
 * pages in again: about 30,000 page faults a second at 1 KiB records over
 * 100 connections. Allocations below 1 MiB stay on the heap and up to
 * 8 MiB of free heap top is kept per arena: under 10 a second. An
 * operator's own GLIBC_TUNABLES for malloc win. */
static void tune_malloc(void)
{
#if defined(__GLIBC__) && defined(M_TRIM_THRESHOLD) && defined(M_MMAP_THRESHOLD)
    const char *t = getenv("GLIBC_TUNABLES");
    if (t != NULL && strstr(t, "glibc.malloc.") != NULL)
        return;
    mallopt(M_MMAP_THRESHOLD, 1 << 20);
    mallopt(M_TRIM_THRESHOLD, 8 << 20);
#endif
}

static int usage_policy(void)
{
    fprintf(stderr,
            "usage: sluice policy check FILE\n"
            "       sluice policy explain FILE --client-id ID [--addr IP] "
            "[--principal P] [--topic T]\n"
            "       sluice policy reference\n");
    return 2;
}

/* sluice policy check|explain|reference: validate and explain a policy
 * file without starting the proxy. */
static int cmd_policy(int argc, char **argv)
{
    const char *file, *cid = NULL, *addr = NULL, *principal = NULL,
                      *topic = NULL;
    struct sockaddr_storage ss;
    sl_policy_identity id = {0};
    sl_policy *pol;
    char err[1024];
    char *buf;
    size_t need;

    if (argc >= 1 && strcmp(argv[0], "reference") == 0) {
        need = sl_policy_reference(NULL, 0) + 1;
        buf = sl_malloc(need);
        sl_policy_reference(buf, need);
        fputs(buf, stdout);
        sl_free(buf);
        return 0;
    }
    if (argc < 2)
        return usage_policy();
    file = argv[1];
    for (int i = 2; i < argc; i++) {
        const char **dst = strcmp(argv[i], "--client-id") == 0   ? &cid
                           : strcmp(argv[i], "--addr") == 0      ? &addr
                           : strcmp(argv[i], "--principal") == 0 ? &principal
                           : strcmp(argv[i], "--topic") == 0     ? &topic
                                                                 : NULL;
        if (dst == NULL || i + 1 >= argc)
            return usage_policy();
        *dst = argv[++i];
    }
    if (sl_policy_load_file(file, &pol, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    if (strcmp(argv[0], "check") == 0) {
        need = sl_policy_summary(pol, NULL, 0) + 1;
        buf = sl_malloc(need);
        sl_policy_summary(pol, buf, need);
        printf("%s: OK\n%s", file, buf);
    } else if (strcmp(argv[0], "explain") == 0) {
        memset(&ss, 0, sizeof(ss));
        if (addr != NULL &&
            uv_ip4_addr(addr, 0, (struct sockaddr_in *)&ss) != 0 &&
            uv_ip6_addr(addr, 0, (struct sockaddr_in6 *)&ss) != 0) {
            fprintf(stderr, "sluice: --addr: \"%s\" is not an IP address\n",
                    addr);
            sl_policy_free(pol);
            return 2;
        }
        id.client_id = cid;
        id.peer = addr ? (const struct sockaddr *)&ss : NULL;
        id.principal = principal;
        need = sl_policy_explain(pol, &id, topic, NULL, 0) + 1;
        buf = sl_malloc(need);
        sl_policy_explain(pol, &id, topic, buf, need);
        fputs(buf, stdout);
    } else {
        sl_policy_free(pol);
        return usage_policy();
    }
    sl_free(buf);
    sl_policy_free(pol);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "policy") == 0)
        return cmd_policy(argc - 2, argv + 2);
    if (argc >= 2 && strcmp(argv[1], "users") == 0)
        return sl_sasl_users_main(argc - 2, argv + 2);

    sl_config cfg;
    char err[1024];
    int argi = argc, rc;

    sl_config_defaults(&cfg);
    rc = sl_config_parse_args(&cfg, argc, argv, &argi, err, sizeof(err));
    if (rc == 1) {
        sl_config_free(&cfg);
        return 0;
    }
    if (rc != 0) {
        fprintf(stderr, "sluice: %s\n", err);
        fprintf(stderr, "Try 'sluice --help'.\n");
        sl_config_free(&cfg);
        return 2;
    }
    if (argi < argc && strcmp(argv[argi], "config") == 0 &&
        argi + 1 < argc) {
        /* sluice [flags] config reference|dump */
        rc = 0;
        if (strcmp(argv[argi + 1], "reference") == 0)
            sl_config_print_markdown(stdout);
        else if (strcmp(argv[argi + 1], "dump") == 0)
            rc = sl_config_dump_json(&cfg, stdout) == 0 ? 0 : 1;
        else {
            fprintf(stderr, "sluice: config: expected 'reference' or "
                            "'dump', got \"%s\"\n", argv[argi + 1]);
            rc = 2;
        }
        sl_config_free(&cfg);
        return rc;
    }
    if (argi < argc) {
        fprintf(stderr, "sluice: unexpected argument \"%s\"\n", argv[argi]);
        sl_config_free(&cfg);
        return 2;
    }
    sl_log_level_current = (int)cfg.log_level;
    tune_malloc();
    rc = sl_server_run(&cfg);
    sl_config_free(&cfg);
    return rc;
}
