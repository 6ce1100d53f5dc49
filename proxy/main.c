/* sluice: flags -> config -> server. Everything else lives in the
 * modules (proxy/server.c is the entry point of the daemon). */
#include <stdio.h>

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
