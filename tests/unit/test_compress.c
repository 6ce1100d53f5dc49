/* Compression codecs: round trips, blobs from other tools, bounds, bombs,
 * corrupt input. */
#include "sluice/record.h"

#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <zstd.h>

#include "sl_test.h"

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

#define MIB (1024 * 1024)

/* Every codec variant sl_compress writes. */
static const struct {
    int codec;
    bool xerial;
    const char *name;
} variants[] = {
    {SL_CODEC_NONE, false, "none"},
    {SL_CODEC_GZIP, false, "gzip"},
    {SL_CODEC_SNAPPY, false, "snappy"},
    {SL_CODEC_SNAPPY, true, "snappy-xerial"},
    {SL_CODEC_LZ4, false, "lz4"},
    {SL_CODEC_ZSTD, false, "zstd"},
};

/* Half text-like (compressible), half pseudo-random (not). */
static uint8_t *make_data(size_t n)
{
    uint8_t *d = malloc(n ? n : 1);
    uint32_t x = 2463534242u;

    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        d[i] = (i / 4096) % 2 ? (uint8_t)x : (uint8_t)("sluice kafka "[i % 13]);
    }
    return d;
}

static void test_codec_names(void)
{
    ASSERT_STREQ(sl_codec_name(SL_CODEC_NONE), "none");
    ASSERT_STREQ(sl_codec_name(SL_CODEC_GZIP), "gzip");
    ASSERT_STREQ(sl_codec_name(SL_CODEC_SNAPPY), "snappy");
    ASSERT_STREQ(sl_codec_name(SL_CODEC_LZ4), "lz4");
    ASSERT_STREQ(sl_codec_name(SL_CODEC_ZSTD), "zstd");
    ASSERT_STREQ(sl_codec_name(5), "?");
    ASSERT_STREQ(sl_codec_name(-1), "?");
}

static void test_round_trip(void)
{
    static const size_t sizes[] = {0, 1, 100, 65536, 65537, MIB};

    for (size_t s = 0; s < SL_ARRAY_SIZE(sizes); s++) {
        size_t n = sizes[s];
        uint8_t *data = make_data(n);

        for (size_t v = 0; v < SL_ARRAY_SIZE(variants); v++) {
            sl_wr w;
            uint8_t *out = NULL;
            size_t out_len = 0;
            int rc;

            sl_wr_init(&w, 0);
            sl_wr_raw(&w, "pfx", 3); /* sl_compress appends */
            rc = sl_compress(variants[v].codec, variants[v].xerial, data, n,
                             &w);
            ASSERT_EQ(rc, 0);
            ASSERT_MEMEQ(w.buf, "pfx", 3);
            rc = sl_decompress(variants[v].codec, w.buf + 3, w.len - 3, n,
                               &out, &out_len);
            if (rc != 0 || out_len != n)
                fprintf(stderr, "  %s size %zu: rc %s len %zu\n",
                        variants[v].name, n, sl_err_name(rc), out_len);
            ASSERT_EQ(rc, 0);
            ASSERT_EQ(out_len, n);
            if (rc == 0 && out_len == n)
                ASSERT_MEMEQ(out, data, n);
            sl_free(out);

            /* One byte less than the result is too large. */
            if (n > 0) {
                out = (uint8_t *)&rc; /* must be reset to NULL */
                rc = sl_decompress(variants[v].codec, w.buf + 3, w.len - 3,
                                   n - 1, &out, &out_len);
                ASSERT_EQ(rc, SL_E_TOO_LARGE);
                ASSERT_TRUE(out == NULL);
            }
            sl_wr_free(&w);
        }
        free(data);
    }
}

static void expect_decode(int codec, const uint8_t *in, size_t in_len,
                          const char *want)
{
    uint8_t *out = NULL;
    size_t out_len = 0;
    int rc = sl_decompress(codec, in, in_len, 1024, &out, &out_len);

    ASSERT_EQ(rc, 0);
    ASSERT_EQ(out_len, strlen(want));
    if (rc == 0 && out_len == strlen(want))
        ASSERT_MEMEQ(out, want, out_len);
    sl_free(out);
}

/* Blobs written by the command-line tools and by kafka-python. */

/* printf 'hello, sluice\n' | gzip -9 -n */
static const uint8_t gzip_blob[] = {
    0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x03, 0xcb, 0x48,
    0xcd, 0xc9, 0xc9, 0xd7, 0x51, 0x28, 0xce, 0x29, 0xcd, 0x4c, 0x4e, 0xe5,
    0x02, 0x00, 0xdb, 0x39, 0x4e, 0xd0, 0x0e, 0x00, 0x00, 0x00};
/* (printf ab | gzip -n; printf cd | gzip -n): two members */
static const uint8_t gzip_two_members[] = {
    0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0x4b, 0x4c,
    0x02, 0x00, 0x6d, 0x48, 0x83, 0x9e, 0x02, 0x00, 0x00, 0x00, 0x1f, 0x8b,
    0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0x4b, 0x4e, 0x01, 0x00,
    0xda, 0x8f, 0xd6, 0x45, 0x02, 0x00, 0x00, 0x00};
/* printf 'hello, sluice\n' | lz4 -c (content checksum on) */
static const uint8_t lz4_blob[] = {
    0x04, 0x22, 0x4d, 0x18, 0x64, 0x40, 0xa7, 0x0e, 0x00, 0x00, 0x80, 0x68,
    0x65, 0x6c, 0x6c, 0x6f, 0x2c, 0x20, 0x73, 0x6c, 0x75, 0x69, 0x63, 0x65,
    0x0a, 0x00, 0x00, 0x00, 0x00, 0x1c, 0xc5, 0x69, 0xaa};
/* printf 'hello, sluice\n' | zstd -c: from a pipe, so no content size */
static const uint8_t zstd_blob[] = {
    0x28, 0xb5, 0x2f, 0xfd, 0x04, 0x58, 0x71, 0x00, 0x00, 0x68, 0x65, 0x6c,
    0x6c, 0x6f, 0x2c, 0x20, 0x73, 0x6c, 0x75, 0x69, 0x63, 0x65, 0x0a, 0x44,
    0x28, 0x09, 0x24};
/* kafka.codec.snappy_encode(3 x 'hello, sluice\n', xerial_compatible=True,
 * xerial_blocksize=16): three xerial blocks */
static const uint8_t xerial_blob[] = {
    0x82, 0x53, 0x4e, 0x41, 0x50, 0x50, 0x59, 0x00, 0x00, 0x00, 0x00, 0x01,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x12, 0x10, 0x3c, 0x68, 0x65,
    0x6c, 0x6c, 0x6f, 0x2c, 0x20, 0x73, 0x6c, 0x75, 0x69, 0x63, 0x65, 0x0a,
    0x68, 0x65, 0x00, 0x00, 0x00, 0x12, 0x10, 0x3c, 0x6c, 0x6c, 0x6f, 0x2c,
    0x20, 0x73, 0x6c, 0x75, 0x69, 0x63, 0x65, 0x0a, 0x68, 0x65, 0x6c, 0x6c,
    0x00, 0x00, 0x00, 0x0c, 0x0a, 0x24, 0x6f, 0x2c, 0x20, 0x73, 0x6c, 0x75,
    0x69, 0x63, 0x65, 0x0a};
/* snappy.compress(3 x 'hello, sluice\n') (python-snappy, raw format) */
static const uint8_t snappy_raw_blob[] = {
    0x2a, 0x34, 0x68, 0x65, 0x6c, 0x6c, 0x6f, 0x2c, 0x20, 0x73,
    0x6c, 0x75, 0x69, 0x63, 0x65, 0x0a, 0x6e, 0x0e, 0x00};

#define HELLO "hello, sluice\n"

static void test_known_blobs(void)
{
    expect_decode(SL_CODEC_GZIP, gzip_blob, sizeof(gzip_blob), HELLO);
    expect_decode(SL_CODEC_GZIP, gzip_two_members, sizeof(gzip_two_members),
                  "abcd");
    expect_decode(SL_CODEC_LZ4, lz4_blob, sizeof(lz4_blob), HELLO);
    expect_decode(SL_CODEC_ZSTD, zstd_blob, sizeof(zstd_blob), HELLO);
    ASSERT_UEQ(ZSTD_getFrameContentSize(zstd_blob, sizeof(zstd_blob)),
               ZSTD_CONTENTSIZE_UNKNOWN);
    expect_decode(SL_CODEC_SNAPPY, xerial_blob, sizeof(xerial_blob),
                  HELLO HELLO HELLO);
    expect_decode(SL_CODEC_SNAPPY, snappy_raw_blob, sizeof(snappy_raw_blob),
                  HELLO HELLO HELLO);
    expect_decode(SL_CODEC_NONE, (const uint8_t *)HELLO, strlen(HELLO),
                  HELLO);
}

/* Two lz4 and two zstd frames back to back decode as one stream. */
static void test_concatenated_frames(void)
{
    uint8_t two[2 * sizeof(lz4_blob)]; /* the larger of the two */

    memcpy(two, zstd_blob, sizeof(zstd_blob));
    memcpy(two + sizeof(zstd_blob), zstd_blob, sizeof(zstd_blob));
    expect_decode(SL_CODEC_ZSTD, two, 2 * sizeof(zstd_blob), HELLO HELLO);
    memcpy(two, lz4_blob, sizeof(lz4_blob));
    memcpy(two + sizeof(lz4_blob), lz4_blob, sizeof(lz4_blob));
    expect_decode(SL_CODEC_LZ4, two, 2 * sizeof(lz4_blob), HELLO HELLO);
}

static void test_zstd_stream_no_content_size(void)
{
    size_t n = 300000;
    uint8_t *data = make_data(n);
    ZSTD_CStream *cs = ZSTD_createCStream();
    size_t cap = ZSTD_compressBound(n) + 64;
    uint8_t *z = malloc(cap);
    ZSTD_outBuffer ob = {z, cap, 0};
    ZSTD_inBuffer ib = {data, n, 0};
    uint8_t *out = NULL;
    size_t out_len = 0;
    int rc;

    ZSTD_initCStream(cs, 3);
    ASSERT_EQ(ZSTD_isError(ZSTD_compressStream(cs, &ob, &ib)), 0);
    ASSERT_EQ(ZSTD_endStream(cs, &ob), 0); /* 0: fully flushed */
    ASSERT_UEQ(ZSTD_getFrameContentSize(z, ob.pos), ZSTD_CONTENTSIZE_UNKNOWN);
    rc = sl_decompress(SL_CODEC_ZSTD, z, ob.pos, n, &out, &out_len);
    ASSERT_EQ(rc, 0);
    ASSERT_EQ(out_len, n);
    if (rc == 0 && out_len == n)
        ASSERT_MEMEQ(out, data, n);
    sl_free(out);
    rc = sl_decompress(SL_CODEC_ZSTD, z, ob.pos, n - 1, &out, &out_len);
    ASSERT_EQ(rc, SL_E_TOO_LARGE);
    ZSTD_freeCStream(cs);
    free(z);
    free(data);
}

/* Decodes a bomb with max_out 1 MiB. Outside ASan this runs in a child
 * whose data limit (RLIMIT_DATA: heap and private mappings) is only
 * 32 MiB above its current use, so an implementation that inflated the
 * 100 MiB would die of OOM instead of returning SL_E_TOO_LARGE. */
static int bomb_decode(int codec, const uint8_t *in, size_t in_len)
{
#ifdef UNDER_ASAN
    uint8_t *out = NULL;
    size_t out_len = 0;
    int rc = sl_decompress(codec, in, in_len, MIB, &out, &out_len);
    sl_free(out);
    return rc;
#else
    pid_t pid;
    int status;

    fflush(NULL);
    pid = fork();
    if (pid == 0) {
        uint8_t *out = NULL;
        size_t out_len = 0, vmdata_kb = 0;
        char line[256];
        FILE *f = fopen("/proc/self/status", "r");
        struct rlimit rl;
        int rc;

        while (f && fgets(line, sizeof(line), f))
            if (sscanf(line, "VmData: %zu kB", &vmdata_kb) == 1)
                break;
        if (f)
            fclose(f);
        rl.rlim_cur = rl.rlim_max = vmdata_kb * 1024 + 32 * MIB;
        if (vmdata_kb == 0 || setrlimit(RLIMIT_DATA, &rl) != 0)
            _exit(100);
        rc = sl_decompress(codec, in, in_len, MIB, &out, &out_len);
        _exit(-rc);
    }
    if (pid < 0 || waitpid(pid, &status, 0) != pid)
        return 1000;
    if (!WIFEXITED(status))
        return 2000 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    return -WEXITSTATUS(status);
#endif
}

static void test_decompression_bomb(void)
{
    size_t n = 100 * (size_t)MIB;
    uint8_t *zeros = calloc(1, n);

    for (size_t v = 0; v < SL_ARRAY_SIZE(variants); v++) {
        sl_wr w;
        int rc;

        sl_wr_init(&w, 0);
        ASSERT_EQ(sl_compress(variants[v].codec, variants[v].xerial, zeros,
                              n, &w),
                  0);
        if (variants[v].codec != SL_CODEC_NONE)
            ASSERT_TRUE(w.len < n / 20); /* it really is a bomb */
        rc = bomb_decode(variants[v].codec, w.buf, w.len);
        if (rc != SL_E_TOO_LARGE)
            fprintf(stderr, "  %s: %d (%s)\n", variants[v].name, rc,
                    sl_err_name(rc));
        ASSERT_EQ(rc, SL_E_TOO_LARGE);
        sl_wr_free(&w);
    }

    /* A streamed zstd bomb: no content size to refuse it by. */
    {
        ZSTD_CStream *cs = ZSTD_createCStream();
        size_t cap = ZSTD_compressBound(n);
        uint8_t *z = malloc(cap);
        ZSTD_outBuffer ob = {z, cap, 0};
        ZSTD_inBuffer ib = {zeros, n, 0};

        ZSTD_initCStream(cs, 3);
        ASSERT_EQ(ZSTD_isError(ZSTD_compressStream(cs, &ob, &ib)), 0);
        ASSERT_EQ(ZSTD_endStream(cs, &ob), 0);
        ASSERT_UEQ(ZSTD_getFrameContentSize(z, ob.pos),
                   ZSTD_CONTENTSIZE_UNKNOWN);
        ASSERT_EQ(bomb_decode(SL_CODEC_ZSTD, z, ob.pos), SL_E_TOO_LARGE);
        ZSTD_freeCStream(cs);
        free(z);
    }
    free(zeros);

    /* A zstd frame that declares a huge content size fails up front. */
    {
        uint8_t *big = calloc(1, 8 * MIB);
        sl_wr w;
        sl_wr_init(&w, 0);
        ASSERT_EQ(sl_compress(SL_CODEC_ZSTD, false, big, 8 * MIB, &w), 0);
        ASSERT_UEQ(ZSTD_getFrameContentSize(w.buf, w.len), 8 * MIB);
        ASSERT_EQ(bomb_decode(SL_CODEC_ZSTD, w.buf, w.len), SL_E_TOO_LARGE);
        sl_wr_free(&w);
        free(big);
    }
}

static void expect_error(int codec, const uint8_t *in, size_t in_len,
                         int want)
{
    uint8_t *out = (uint8_t *)&want;
    size_t out_len = 1;
    int rc = sl_decompress(codec, in, in_len, MIB, &out, &out_len);

    if (rc != want)
        fprintf(stderr, "  codec %s, %zu bytes: %s\n", sl_codec_name(codec),
                in_len, sl_err_name(rc));
    ASSERT_EQ(rc, want);
    if (rc == 0) {
        sl_free(out);
        return;
    }
    ASSERT_TRUE(out == NULL);
    ASSERT_EQ(out_len, 0);
}

static void test_corrupt(void)
{
    uint8_t b[128];
    static const uint8_t garbage[] = "this is not compressed at all......";

    /* Damaged magic / header. */
    memcpy(b, gzip_blob, sizeof(gzip_blob));
    b[0] ^= 0xff;
    expect_error(SL_CODEC_GZIP, b, sizeof(gzip_blob), SL_E_COMPRESSION);
    memcpy(b, lz4_blob, sizeof(lz4_blob));
    b[1] ^= 0xff;
    expect_error(SL_CODEC_LZ4, b, sizeof(lz4_blob), SL_E_COMPRESSION);
    memcpy(b, zstd_blob, sizeof(zstd_blob));
    b[2] ^= 0xff;
    expect_error(SL_CODEC_ZSTD, b, sizeof(zstd_blob), SL_E_COMPRESSION);

    /* Damaged payload: the checksums (gzip CRC-32, lz4 and zstd content
     * checksums) catch it. */
    memcpy(b, gzip_blob, sizeof(gzip_blob));
    b[12] ^= 0x01;
    expect_error(SL_CODEC_GZIP, b, sizeof(gzip_blob), SL_E_COMPRESSION);
    memcpy(b, lz4_blob, sizeof(lz4_blob));
    b[14] ^= 0x01;
    expect_error(SL_CODEC_LZ4, b, sizeof(lz4_blob), SL_E_COMPRESSION);
    memcpy(b, zstd_blob, sizeof(zstd_blob));
    b[12] ^= 0x01;
    expect_error(SL_CODEC_ZSTD, b, sizeof(zstd_blob), SL_E_COMPRESSION);

    /* Trailing garbage after a complete stream. */
    memcpy(b, gzip_blob, sizeof(gzip_blob));
    memcpy(b + sizeof(gzip_blob), "xyz", 3);
    expect_error(SL_CODEC_GZIP, b, sizeof(gzip_blob) + 3, SL_E_COMPRESSION);

    /* Snappy: a back-reference before the start of the output. */
    {
        static const uint8_t bad_copy[] = {0x08, 0x01, 0x05, 0x00, 0x10};
        expect_error(SL_CODEC_SNAPPY, bad_copy, sizeof(bad_copy),
                     SL_E_COMPRESSION);
    }
    /* Xerial: a block length pointing past the end, and a damaged block. */
    memcpy(b, xerial_blob, sizeof(xerial_blob));
    b[19] = 0x7f;
    expect_error(SL_CODEC_SNAPPY, b, sizeof(xerial_blob), SL_E_COMPRESSION);
    memcpy(b, xerial_blob, sizeof(xerial_blob));
    b[20] = 0x11; /* block 1 declares 17 bytes but holds 16 */
    expect_error(SL_CODEC_SNAPPY, b, sizeof(xerial_blob), SL_E_COMPRESSION);
    memcpy(b, xerial_blob, sizeof(xerial_blob));
    memset(b + 20, 0xff, 5); /* an overlong length varint */
    expect_error(SL_CODEC_SNAPPY, b, sizeof(xerial_blob), SL_E_COMPRESSION);
    /* A block declaring more than max_out is refused before allocating. */
    memcpy(b, xerial_blob, sizeof(xerial_blob));
    b[20] = 0xff;
    b[21] = 0xff;
    b[22] = 0x7f; /* 2 MiB */
    expect_error(SL_CODEC_SNAPPY, b, sizeof(xerial_blob), SL_E_TOO_LARGE);
    {
        static const uint8_t raw_big[] = {0xff, 0xff, 0x7f, 0x00};
        expect_error(SL_CODEC_SNAPPY, raw_big, sizeof(raw_big),
                     SL_E_TOO_LARGE);
    }

    /* Garbage and empty input. */
    for (int codec = SL_CODEC_GZIP; codec <= SL_CODEC_ZSTD; codec++) {
        expect_error(codec, garbage, sizeof(garbage), SL_E_COMPRESSION);
        expect_error(codec, NULL, 0, SL_E_COMPRESSION);
    }
    expect_error(7, garbage, sizeof(garbage), SL_E_UNSUPPORTED);
    expect_error(SL_CODEC_NONE, garbage, sizeof(garbage), 0);
}

/* Every proper prefix of a valid stream fails (xerial has no end marker:
 * a prefix ending on a block boundary decodes to a prefix of the data). */
static void test_truncated(void)
{
    size_t n = 200000;
    uint8_t *data = make_data(n);

    for (size_t v = 1; v < SL_ARRAY_SIZE(variants); v++) {
        sl_wr w;
        int ok_prefixes = 0, bad = 0;

        sl_wr_init(&w, 0);
        ASSERT_EQ(sl_compress(variants[v].codec, variants[v].xerial, data, n,
                              &w),
                  0);
        for (size_t cut = 0; cut < w.len;
             cut += cut < 64 || w.len - cut < 64 ? 1 : 97) {
            uint8_t *in = malloc(cut ? cut : 1); /* exact size for ASan */
            uint8_t *out = NULL;
            size_t out_len = 0;
            int rc;

            memcpy(in, w.buf, cut);
            rc = sl_decompress(variants[v].codec, in, cut, n, &out, &out_len);
            if (rc == 0) {
                ok_prefixes++;
                if (!variants[v].xerial || out_len >= n ||
                    memcmp(out, data, out_len) != 0)
                    bad++;
            } else if (rc != SL_E_COMPRESSION) {
                bad++;
            }
            sl_free(out);
            free(in);
        }
        if (bad)
            fprintf(stderr, "  %s: %d bad prefixes\n", variants[v].name, bad);
        ASSERT_EQ(bad, 0);
        if (variants[v].xerial)
            ASSERT_TRUE(ok_prefixes > 0);
        sl_wr_free(&w);
    }
    free(data);
}

/* Random bytes, and valid streams with random bytes flipped: any result
 * but a crash (ASan/UBSan runs check the memory side). */
static void test_garbage_no_crash(void)
{
    uint8_t *data = make_data(20000);
    uint32_t x = 88172645u;
    int ok = 0, err = 0;

    for (size_t v = 1; v < SL_ARRAY_SIZE(variants); v++) {
        sl_wr w;

        sl_wr_init(&w, 0);
        sl_compress(variants[v].codec, variants[v].xerial, data, 20000, &w);
        for (int iter = 0; iter < 300; iter++) {
            uint8_t *in = malloc(w.len);
            uint8_t *out = NULL;
            size_t out_len = 0;
            int rc;

            memcpy(in, w.buf, w.len);
            for (int k = 0; k < 1 + iter % 4; k++) {
                x = x * 1103515245u + 12345u;
                in[(x >> 8) % w.len] ^= (uint8_t)(x >> 24 | 1);
            }
            rc = sl_decompress(variants[v].codec, in, w.len, 30000, &out,
                               &out_len);
            if (rc == 0)
                ok++;
            else
                err++;
            ASSERT_TRUE(rc == 0 || rc == SL_E_COMPRESSION ||
                        rc == SL_E_TOO_LARGE);
            sl_free(out);
            free(in);
        }
        sl_wr_free(&w);
    }
    ASSERT_TRUE(err > 0);
    printf("     (%d flipped streams decoded, %d rejected)\n", ok, err);
    free(data);
}

SL_TEST_MAIN(SL_TEST(test_codec_names), SL_TEST(test_round_trip),
             SL_TEST(test_known_blobs), SL_TEST(test_concatenated_frames),
             SL_TEST(test_zstd_stream_no_content_size),
             SL_TEST(test_decompression_bomb), SL_TEST(test_corrupt),
             SL_TEST(test_truncated), SL_TEST(test_garbage_no_crash))
