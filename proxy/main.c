/* sluice: flags -> config -> server. Everything else lives in the
 * modules (proxy/server.c is the entry point of the daemon). */
#include <stdio.h>
#include <string.h>

#include "sluice/config.h"
#include "sluice/server.h"

int main(int argc, char **argv)
{
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
    rc = sl_server_run(&cfg);
    sl_config_free(&cfg);
    return rc;
}
