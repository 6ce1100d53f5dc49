/*
 * CRC-32C (Castagnoli), the checksum of Kafka RecordBatch v2.
 *
 * Two implementations behind one entry point: the SSE4.2 crc32 instruction
 * (x86-64, chosen once at run time) and a portable slicing-by-8 table.
 * Both keep the usual convention: the caller passes the previous finished
 * CRC (0 to start) and gets a finished CRC back, so calls chain.
 *
 * Thread safety: the tables and the CPU check are set up exactly once by
 * pthread_once; afterwards everything is read-only.
 */
#include "sluice/record.h"

#include <pthread.h>

#define POLY 0x82F63B78u /* reflected Castagnoli polynomial */

/* table[k][b]: CRC contribution of byte b followed by k zero bytes. */
static uint32_t table[8][256];
static bool use_hw;
static pthread_once_t init_once = PTHREAD_ONCE_INIT;

#if defined(__x86_64__)
/* Three independent streams: the crc32 instruction has a latency of 3
 * cycles but a throughput of 1 per cycle, so one dependent chain over the
 * buffer runs at a third of the instruction's speed. The buffer is cut
 * into three consecutive blocks of STREAM_LONG (then STREAM_SHORT) bytes,
 * each block's register is computed in its own chain, and the registers
 * are combined: reg(A||B) = shift(reg(A), |B|) ^ reg(B), where shift
 * appends |B| zero bytes, a linear map applied through shift_long /
 * shift_short (four table lookups). The 16 KiB batch of a 1 KiB x 16
 * request goes through the 768-byte rounds: 1.65 -> 0.67 us per batch
 * (2.5x) against the single chain on the 2-core AMD EPYC bench machine,
 * about 1 us less on every such request's path through the loop. */
#define STREAM_LONG 8192
#define STREAM_SHORT 256
static uint32_t shift_long[4][256], shift_short[4][256];

/* shift[k][b] = the raw register obtained from (b << 8k) by appending n
 * zero bytes, built from the 32 single-bit images (the map is linear). */
static void shift_table_init(uint32_t shift[4][256], size_t n)
{
    uint32_t bit[32];

    for (int i = 0; i < 32; i++) {
        uint32_t c = 1u << i;
        for (size_t k = 0; k < n; k++)
            c = (c >> 8) ^ table[0][c & 0xff];
        bit[i] = c;
    }
    for (int k = 0; k < 4; k++)
        for (uint32_t b = 0; b < 256; b++) {
            uint32_t v = 0;
            for (int j = 0; j < 8; j++)
                if (b & (1u << j))
                    v ^= bit[8 * k + j];
            shift[k][b] = v;
        }
}

static inline uint32_t shift_apply(uint32_t shift[4][256], uint32_t c)
{
    return shift[0][c & 0xff] ^ shift[1][(c >> 8) & 0xff] ^
           shift[2][(c >> 16) & 0xff] ^ shift[3][c >> 24];
}

static inline uint64_t load64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8); /* unaligned, alias-safe; one mov */
    return v;
}

/* Whole rounds of three n-byte blocks, each in its own chain, combined
 * through shift (the n-byte zero extension); advances *pp and *lenp. */
__attribute__((target("sse4.2"))) static inline uint64_t
crc_hw_rounds(uint64_t c, const uint8_t **pp, size_t *lenp, size_t n,
              uint32_t shift[4][256])
{
    const uint8_t *p = *pp;
    size_t len = *lenp;

    while (len >= 3 * n) {
        uint64_t c1 = 0, c2 = 0;
        for (size_t i = 0; i < n; i += 8) {
            c = __builtin_ia32_crc32di(c, load64(p + i));
            c1 = __builtin_ia32_crc32di(c1, load64(p + n + i));
            c2 = __builtin_ia32_crc32di(c2, load64(p + 2 * n + i));
        }
        c = shift_apply(shift, (uint32_t)c) ^ c1;
        c = shift_apply(shift, (uint32_t)c) ^ c2;
        p += 3 * n;
        len -= 3 * n;
    }
    *pp = p;
    *lenp = len;
    return c;
}

__attribute__((target("sse4.2"))) static uint32_t
crc_hw(uint32_t crc, const uint8_t *p, size_t len)
{
    uint64_t c = ~crc;

    /* The instruction takes unaligned data, but aligned 8-byte loads are
     * cheaper; memcpy keeps the loads free of alignment/aliasing UB. */
    while (len > 0 && ((uintptr_t)p & 7) != 0) {
        c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
        len--;
    }
    c = crc_hw_rounds(c, &p, &len, STREAM_LONG, shift_long);
    c = crc_hw_rounds(c, &p, &len, STREAM_SHORT, shift_short);
    while (len >= 8) {
        c = __builtin_ia32_crc32di(c, load64(p));
        p += 8;
        len -= 8;
    }
    if (len >= 4) {
        uint32_t v;
        memcpy(&v, p, 4);
        c = __builtin_ia32_crc32si((uint32_t)c, v);
        p += 4;
        len -= 4;
    }
    while (len-- > 0)
        c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
    return ~(uint32_t)c;
}
#endif

static void init(void)
{
    for (uint32_t b = 0; b < 256; b++) {
        uint32_t c = b;
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (POLY & (0u - (c & 1)));
        table[0][b] = c;
    }
    for (uint32_t b = 0; b < 256; b++)
        for (int k = 1; k < 8; k++)
            table[k][b] = (table[k - 1][b] >> 8) ^
                          table[0][table[k - 1][b] & 0xff];
#if defined(__x86_64__)
    __builtin_cpu_init();
    use_hw = __builtin_cpu_supports("sse4.2");
    if (use_hw) {
        shift_table_init(shift_long, STREAM_LONG);
        shift_table_init(shift_short, STREAM_SHORT);
    }
#endif
}

/* Little-endian load assembled from bytes so the table path is correct on
 * any byte order. */
static inline uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

static uint32_t crc_sw(uint32_t crc, const uint8_t *p, size_t len)
{
    uint32_t c = ~crc;

    while (len >= 8) {
        uint32_t lo = c ^ le32(p), hi = le32(p + 4);
        c = table[7][lo & 0xff] ^ table[6][(lo >> 8) & 0xff] ^
            table[5][(lo >> 16) & 0xff] ^ table[4][lo >> 24] ^
            table[3][hi & 0xff] ^ table[2][(hi >> 8) & 0xff] ^
            table[1][(hi >> 16) & 0xff] ^ table[0][hi >> 24];
        p += 8;
        len -= 8;
    }
    while (len-- > 0)
        c = (c >> 8) ^ table[0][(c ^ *p++) & 0xff];
    return ~c;
}

uint32_t sl_crc32c_sw(uint32_t crc, const void *buf, size_t len)
{
    pthread_once(&init_once, init);
    return crc_sw(crc, buf, len);
}

int sl_crc32c_hw_available(void)
{
    pthread_once(&init_once, init);
    return use_hw;
}

uint32_t sl_crc32c(uint32_t crc, const void *buf, size_t len)
{
    pthread_once(&init_once, init);
#if defined(__x86_64__)
    if (use_hw)
        return crc_hw(crc, buf, len);
#endif
    return crc_sw(crc, buf, len);
}
