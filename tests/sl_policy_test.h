/*
 * Shared by the policy engine's unit tests (test_policy.c, test_pressure.c):
 * load a policy from text, failing the running test (not the binary) with
 * the loader's message when it does not load. Include after sl_test.h.
 */
#ifndef SL_POLICY_TEST_H
#define SL_POLICY_TEST_H

#include <stdio.h>
#include <string.h>

#include "sluice/policy.h"

static sl_policy *load(const char *json)
{
    char err[1024];
    sl_policy *pol = NULL;
    int rc = sl_policy_load_string(json, strlen(json), "t.json", &pol, err,
                                   sizeof(err));
    if (rc != 0)
        fprintf(stderr, "  unexpected load error: %s\n", err);
    ASSERT_EQ(rc, 0);
    return pol;
}

#endif
