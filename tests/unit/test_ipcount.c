/* Connections per address: counts through growth and deletion (against a
 * plain array model), address parsing, the overrides list; the log
 * rate limiter. */
#include "sluice/ipcount.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include "sl_test.h"

static sl_ipaddr v4(uint32_t x)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    sl_ipaddr out;
    a.sin_addr.s_addr = htonl(x);
    ASSERT_TRUE(sl_ipaddr_from_sockaddr(&a, &out));
    return out;
}

/* Random increments and decrements over 3000 addresses, checked against
 * an array after every step: exercises growth and backward-shift
 * deletion inside long probe runs. */
static void test_counts_match_a_model(void)
{
    enum { N = 3000 };
    static uint32_t model[N];
    sl_ipcount *t = sl_ipcount_new();
    uint32_t x = 2463534242u;
    size_t live = 0;

    for (int step = 0; step < 200000; step++) {
        uint32_t k;
        sl_ipaddr a;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        k = x % N;
        a = v4(0x0a000000u + k);
        if ((x >> 20) % 3 != 0 || model[k] == 0) {
            live += model[k] == 0;
            ASSERT_EQ(sl_ipcount_inc(t, &a), ++model[k]);
        } else {
            live -= model[k] == 1;
            ASSERT_EQ(sl_ipcount_dec(t, &a), --model[k]);
        }
        if (step % 997 == 0)
            for (uint32_t j = 0; j < N; j++) {
                sl_ipaddr b = v4(0x0a000000u + j);
                if (sl_ipcount_get(t, &b) != model[j]) {
                    ASSERT_EQ(sl_ipcount_get(t, &b), model[j]);
                    break;
                }
            }
        ASSERT_EQ(sl_ipcount_size(t), live);
    }
    /* Take everything away: the table is empty again. */
    for (uint32_t j = 0; j < N; j++) {
        sl_ipaddr b = v4(0x0a000000u + j);
        while (model[j] > 0)
            ASSERT_EQ(sl_ipcount_dec(t, &b), --model[j]);
        ASSERT_EQ(sl_ipcount_dec(t, &b), 0);
    }
    ASSERT_EQ(sl_ipcount_size(t), 0);
    sl_ipcount_free(t);
}

static void test_addresses(void)
{
    sl_ipaddr a, b;
    struct sockaddr_in6 s6 = {.sin6_family = AF_INET6};

    ASSERT_TRUE(sl_ipaddr_parse("127.0.0.2", &a));
    b = v4(0x7f000002u);
    ASSERT_MEMEQ(a.b, b.b, 16);
    /* The IPv4-mapped IPv6 form is the same address. */
    ASSERT_TRUE(sl_ipaddr_parse("::ffff:127.0.0.2", &b));
    ASSERT_MEMEQ(a.b, b.b, 16);
    ASSERT_TRUE(sl_ipaddr_parse("::1", &a));
    ASSERT_EQ(inet_pton(AF_INET6, "::1", &s6.sin6_addr), 1);
    ASSERT_TRUE(sl_ipaddr_from_sockaddr(&s6, &b));
    ASSERT_MEMEQ(a.b, b.b, 16);
    ASSERT_TRUE(!sl_ipaddr_parse("localhost", &a));
    ASSERT_TRUE(!sl_ipaddr_parse("127.0.0.300", &a));
}

static void test_overrides(void)
{
    sl_iplimits l;
    sl_ipaddr a;
    char err[256];

    ASSERT_EQ(sl_iplimits_parse("127.0.0.2:5,::1:0,10.1.2.3:1000000", &l, err,
                                sizeof(err)),
              0);
    ASSERT_EQ(l.n, 3);
    ASSERT_TRUE(sl_ipaddr_parse("127.0.0.2", &a));
    ASSERT_EQ(sl_iplimits_for(&l, &a, 77), 5);
    ASSERT_TRUE(sl_ipaddr_parse("::1", &a));
    ASSERT_EQ(sl_iplimits_for(&l, &a, 77), 0);
    ASSERT_TRUE(sl_ipaddr_parse("127.0.0.1", &a));
    ASSERT_EQ(sl_iplimits_for(&l, &a, 77), 77);
    sl_iplimits_free(&l);
    ASSERT_EQ(sl_iplimits_parse("", &l, err, sizeof(err)), 0);
    ASSERT_EQ(l.n, 0);
    {
        static const char *const bads[] = {
            "127.0.0.1", "127.0.0.1:", "127.0.0.1:x", "host.example:3",
            "127.0.0.1:-1", "127.0.0.1:5,,10.0.0.1:2", "127.0.0.1:2000000"};
        for (size_t i = 0; i < SL_ARRAY_SIZE(bads); i++) {
            err[0] = '\0';
            ASSERT_EQ(sl_iplimits_parse(bads[i], &l, err, sizeof(err)),
                      SL_E_CONFIG);
            ASSERT_TRUE(strstr(err, "max_connections_per_ip_overrides") !=
                        NULL);
            ASSERT_EQ(l.n, 0);
        }
    }
}

/* The log limiter: a burst, then the rate; suppressed lines counted and
 * reported by the next line let through. */
static void test_ratelimit(void)
{
    sl_ratelimit rl = {.rate = 10, .burst = 20};
    uint64_t dropped = 99;
    int passed = 0;

    for (int i = 0; i < 100; i++)
        passed += sl_ratelimit_take(&rl, 1000, NULL);
    ASSERT_EQ(passed, 20);
    ASSERT_EQ(rl.suppressed, 80);
    /* 100 ms later: one token. */
    ASSERT_TRUE(sl_ratelimit_take(&rl, 1100, &dropped));
    ASSERT_EQ(dropped, 80);
    ASSERT_TRUE(!sl_ratelimit_take(&rl, 1100, &dropped));
    /* A minute of 1000 lines a second lets about 10 a second through. */
    passed = 0;
    for (int ms = 2000; ms < 62000; ms++)
        passed += sl_ratelimit_take(&rl, ms, NULL);
    ASSERT_TRUE(passed >= 600 && passed <= 621);
    /* Time going backwards (it does not on a monotonic clock) adds
     * nothing. */
    ASSERT_TRUE(sl_ratelimit_take(&rl, 70000, NULL));
    passed = 0;
    for (int i = 0; i < 100; i++)
        passed += sl_ratelimit_take(&rl, 60000, NULL);
    ASSERT_EQ(passed, 19);
}

SL_TEST_MAIN(SL_TEST(test_counts_match_a_model), SL_TEST(test_addresses),
             SL_TEST(test_overrides), SL_TEST(test_ratelimit))
