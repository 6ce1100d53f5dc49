/*
 * Minimal unit-test harness: assertions print both sides, are never
 * compiled out, and count. A test binary defines test functions, lists them
 * in SL_TEST_MAIN, and prints one line per case plus a machine-readable
 * summary line "RESULT <passed> <failed>" that tests/run adds up.
 */
#ifndef SL_TEST_H
#define SL_TEST_H

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static int sl_test__failed_checks;

#define SL__FAIL(...)                                                     \
    do {                                                                  \
        fprintf(stderr, "  %s:%d: ", __FILE__, __LINE__);                 \
        fprintf(stderr, __VA_ARGS__);                                     \
        fputc('\n', stderr);                                              \
        sl_test__failed_checks++;                                         \
    } while (0)

#define ASSERT_TRUE(c)                                                    \
    do {                                                                  \
        if (!(c))                                                         \
            SL__FAIL("expected true: %s", #c);                            \
    } while (0)

#define ASSERT_EQ(a, b)                                                   \
    do {                                                                  \
        long long a_ = (long long)(a), b_ = (long long)(b);               \
        if (a_ != b_)                                                     \
            SL__FAIL("%s == %s: %lld != %lld", #a, #b, a_, b_);           \
    } while (0)

#define ASSERT_NE(a, b)                                                   \
    do {                                                                  \
        long long a_ = (long long)(a), b_ = (long long)(b);               \
        if (a_ == b_)                                                     \
            SL__FAIL("%s != %s: both %lld", #a, #b, a_);                  \
    } while (0)

#define ASSERT_UEQ(a, b)                                                  \
    do {                                                                  \
        unsigned long long a_ = (unsigned long long)(a),                  \
                           b_ = (unsigned long long)(b);                  \
        if (a_ != b_)                                                     \
            SL__FAIL("%s == %s: 0x%llx != 0x%llx", #a, #b, a_, b_);       \
    } while (0)

#define ASSERT_STREQ(a, b)                                                \
    do {                                                                  \
        const char *a_ = (a), *b_ = (b);                                  \
        if (a_ == NULL || b_ == NULL || strcmp(a_, b_) != 0)              \
            SL__FAIL("%s == %s: \"%s\" != \"%s\"", #a, #b,                \
                     a_ ? a_ : "(null)", b_ ? b_ : "(null)");             \
    } while (0)

#define ASSERT_MEMEQ(a, b, n)                                             \
    do {                                                                  \
        size_t n_ = (size_t)(n);                                          \
        if (memcmp((a), (b), n_) != 0)                                    \
            SL__FAIL("%s and %s differ in their first %zu bytes", #a, #b, \
                     n_);                                                 \
    } while (0)

/* Compares a length-carrying Kafka string with a C string. */
#define ASSERT_KSTREQ(ks, s)                                              \
    do {                                                                  \
        sl_kstr k_ = (ks);                                                \
        const char *s_ = (s);                                             \
        if (s_ == NULL ? k_.len != -1                                     \
                       : (k_.len != (int32_t)strlen(s_) ||                \
                          memcmp(k_.p, s_, (size_t)k_.len) != 0))         \
            SL__FAIL("%s == \"%s\": got \"%.*s\" (len %d)", #ks,          \
                     s_ ? s_ : "(null)", k_.len > 0 ? (int)k_.len : 0,    \
                     k_.len > 0 ? k_.p : "", (int)k_.len);                \
    } while (0)

typedef struct sl_test_case {
    const char *name;
    void (*fn)(void);
} sl_test_case;

#define SL_TEST(fn) {#fn, fn}

#define SL_TEST_MAIN(...)                                                 \
    int main(void)                                                        \
    {                                                                     \
        static const sl_test_case cases[] = {__VA_ARGS__};                \
        int passed = 0, failed = 0;                                       \
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {   \
            int before = sl_test__failed_checks;                          \
            cases[i].fn();                                                \
            if (sl_test__failed_checks == before) {                       \
                passed++;                                                 \
                printf("ok   %s\n", cases[i].name);                       \
            } else {                                                      \
                failed++;                                                 \
                printf("FAIL %s\n", cases[i].name);                       \
            }                                                             \
            fflush(stdout);                                               \
        }                                                                 \
        printf("RESULT %d %d\n", passed, failed);                         \
        return failed ? 1 : 0;                                            \
    }

#endif
