/* CRC-32C: known vectors, chaining, and hardware == table path. */
#include "sluice/record.h"

#include <stdlib.h>

#include "sl_test.h"

/* Check one buffer through sl_crc32c and the table path. */
static void check(const void *p, size_t n, uint32_t want)
{
    ASSERT_UEQ(sl_crc32c(0, p, n), want);
    ASSERT_UEQ(sl_crc32c_sw(0, p, n), want);
}

static void test_check_value(void)
{
    check("123456789", 9, 0xE3069283u);
    check("", 0, 0);
    check("a", 1, 0xC1D04330u);
}

/* RFC 3720 appendix B.4. */
static void test_iscsi_vectors(void)
{
    uint8_t b[32];
    static const uint8_t read10_pdu[48] = {
        0x01, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00,
        0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x18, 0x28, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    };

    memset(b, 0, sizeof(b));
    check(b, 32, 0x8A9136AAu);
    memset(b, 0xff, sizeof(b));
    check(b, 32, 0x62A8AB43u);
    for (int i = 0; i < 32; i++)
        b[i] = (uint8_t)i;
    check(b, 32, 0x46DD794Eu);
    for (int i = 0; i < 32; i++)
        b[i] = (uint8_t)(31 - i);
    check(b, 32, 0x113FDB5Cu);
    check(read10_pdu, sizeof(read10_pdu), 0xD9963A56u);
}

static void test_incremental(void)
{
    uint8_t buf[1000];
    uint32_t whole, sw_whole;

    for (size_t i = 0; i < sizeof(buf); i++)
        buf[i] = (uint8_t)(i * 31 + 7);
    whole = sl_crc32c(0, buf, sizeof(buf));
    sw_whole = sl_crc32c_sw(0, buf, sizeof(buf));
    ASSERT_UEQ(whole, sw_whole);
    for (size_t split = 0; split <= sizeof(buf); split += 37) {
        uint32_t c = sl_crc32c(0, buf, split);
        ASSERT_UEQ(sl_crc32c(c, buf + split, sizeof(buf) - split), whole);
        c = sl_crc32c_sw(0, buf, split);
        ASSERT_UEQ(sl_crc32c_sw(c, buf + split, sizeof(buf) - split), whole);
    }
    /* Byte by byte. */
    uint32_t c = 0;
    for (size_t i = 0; i < sizeof(buf); i++)
        c = sl_crc32c(c, buf + i, 1);
    ASSERT_UEQ(c, whole);
    /* "1234" then "56789". */
    ASSERT_UEQ(sl_crc32c(sl_crc32c(0, "1234", 4), "56789", 5), 0xE3069283u);
}

/* Every length 0..300 at every start offset 0..15 (both paths handle
 * misaligned heads and odd tails differently), plus some large buffers. */
static void test_hw_equals_sw(void)
{
    enum { N = 300 + 16 };
    uint8_t *buf = malloc(1 << 20);
    int mismatches = 0;

    srand(12345);
    for (size_t i = 0; i < (1 << 20); i++)
        buf[i] = (uint8_t)rand();
    for (size_t off = 0; off < 16; off++)
        for (size_t len = 0; len + off <= N; len++)
            if (sl_crc32c(0, buf + off, len) !=
                sl_crc32c_sw(0, buf + off, len))
                mismatches++;
    ASSERT_EQ(mismatches, 0);
    for (size_t len = 1000; len <= (1 << 20) - 3; len = len * 3 + 1)
        ASSERT_UEQ(sl_crc32c(0, buf + 3, len), sl_crc32c_sw(0, buf + 3, len));
    /* Around the three-stream block sizes of the hardware path (3 x 256
     * and 3 x 8192 bytes), at an odd start. */
    for (size_t base = 768; base <= 3 * 8192; base += 3 * 8192 - 768)
        for (size_t k = 1; k <= 3; k++)
            for (size_t len = k * base - 9; len <= k * base + 9; len++)
                ASSERT_UEQ(sl_crc32c(0, buf + 5, len),
                           sl_crc32c_sw(0, buf + 5, len));
    /* Chained with a non-zero incoming CRC. */
    ASSERT_UEQ(sl_crc32c(0xDEADBEEF, buf + 1, 4097),
               sl_crc32c_sw(0xDEADBEEF, buf + 1, 4097));
    ASSERT_UEQ(sl_crc32c(0xDEADBEEF, buf + 1, 100000),
               sl_crc32c_sw(0xDEADBEEF, buf + 1, 100000));
    free(buf);
}

static void test_hw_detect(void)
{
    int hw = sl_crc32c_hw_available();
#if defined(__x86_64__)
    __builtin_cpu_init();
    ASSERT_EQ(hw, __builtin_cpu_supports("sse4.2") ? 1 : 0);
#else
    ASSERT_EQ(hw, 0);
#endif
    printf("     (sse4.2 crc32 path %s)\n", hw ? "in use" : "not available");
}

SL_TEST_MAIN(SL_TEST(test_check_value), SL_TEST(test_iscsi_vectors),
             SL_TEST(test_incremental), SL_TEST(test_hw_equals_sw),
             SL_TEST(test_hw_detect))
