/* Unit tests for proxy/idem.c: producer ids and sequence de-duplication. */
#include "sl_test.h"
#include "sluice/idem.h"

static int owner_a, owner_b, owner_c;

/* The ids the tests use: prefix 5, the first ten issued. */
#define PREFIX 5
#define PID(n) ((int64_t)PREFIX << 32 | (int64_t)(n))

static sl_idem *idem_issuing(int64_t idle_ms)
{
    sl_idem *id = sl_idem_new(PREFIX, idle_ms);
    int64_t pid;
    int16_t ep;

    for (int i = 0; i < 10; i++)
        sl_idem_init_producer(id, &pid, &ep);
    return id;
}

/* A new id with epoch 0 for every InitProducerId, as a broker gives for a
 * null transactional.id (it ignores the id and epoch a v3+ request names;
 * the integration suite's init_producer_id_differential@kafka checks that
 * against Kafka 4.1.1). */
static void test_init_producer_ids_fresh(void)
{
    sl_idem *id = sl_idem_new(1000, 60000);
    int64_t pid, pid2;
    int16_t ep, ep2;

    ASSERT_EQ(sl_idem_init_producer(id, &pid, &ep), 0);
    ASSERT_EQ(pid, (int64_t)1000 << 32);
    ASSERT_EQ(ep, 0);
    ASSERT_EQ(sl_idem_init_producer(id, &pid2, &ep2), 0);
    ASSERT_EQ(pid2, ((int64_t)1000 << 32) + 1);
    ASSERT_EQ(ep2, 0);
    sl_idem_free(id);
}

static void test_many_producers(void)
{
    sl_idem *id = sl_idem_new(0, 60000); /* prefix 0 counts as 1 */
    int64_t pid = -1;
    int16_t ep = -1;
    for (int i = 0; i < 5000; i++)
        ASSERT_EQ(sl_idem_init_producer(id, &pid, &ep), 0);
    ASSERT_EQ(pid, ((int64_t)1 << 32) + 4999);
    ASSERT_EQ(ep, 0);
    sl_idem_free(id);
}

/* Issue 12, item 4: "producer ids can collide". Ids carry the instance's
 * prefix, so two instances (or one before and after a restart) with
 * different prefixes never hand out the same id, even when started in the
 * same second. An id this instance did not issue is known as such, and
 * still accepted, with sequence state of its own (as a broker accepts any
 * idempotent producer's id; see sluice/idem.h). */
static void test_producer_ids_unique_and_checked(void)
{
    sl_idem *a = sl_idem_new(0x1234567u, 60000);
    sl_idem *b = sl_idem_new(0x7654321u, 60000);
    sl_idem_slot *s;
    int64_t pa, pb;
    int16_t ep, kerr;

    ASSERT_EQ(sl_idem_init_producer(a, &pa, &ep), 0);
    ASSERT_EQ(sl_idem_init_producer(b, &pb, &ep), 0);
    ASSERT_TRUE(pa != pb);
    ASSERT_TRUE(pa > 0 && pb > 0);
    ASSERT_TRUE(sl_idem_issued(a, pa) && !sl_idem_issued(a, pb));
    ASSERT_TRUE(sl_idem_issued(b, pb) && !sl_idem_issued(b, pa));
    ASSERT_TRUE(!sl_idem_issued(a, pa + 1)); /* not issued yet */
    ASSERT_TRUE(!sl_idem_issued(a, -1) && !sl_idem_issued(a, 7));
    ASSERT_EQ(sl_idem_check(a, pb, 0, "t", 1, 0, 0, 0, 0, &s, &kerr),
              SL_IDEM_NEW);
    ASSERT_EQ(sl_idem_check(a, pa, 0, "t", 1, 0, 0, 0, 0, &s, &kerr),
              SL_IDEM_NEW); /* the same sequence: no shared state */
    ASSERT_EQ(sl_idem_count(a), 2);
    sl_idem_free(a);
    sl_idem_free(b);
}

static void test_in_order_and_duplicate(void)
{
    sl_idem *id = idem_issuing(60000);
    sl_idem_slot *s, *s2;
    int16_t kerr;

    ASSERT_EQ(sl_idem_check(id, PID(7), 0, "t", 1, 0, 0, 9, 0, &s, &kerr),
              SL_IDEM_NEW);
    s->owner = &owner_a;
    /* Retry while the original is in flight: wait for it. */
    ASSERT_EQ(sl_idem_check(id, PID(7), 0, "t", 1, 0, 0, 9, 0, &s2, &kerr),
              SL_IDEM_PENDING);
    ASSERT_TRUE(s2 == s);
    ASSERT_TRUE(s2->owner == &owner_a);
    sl_idem_complete(id, s, &owner_a, 0, 500);
    /* Retry after the answer: the original answer. */
    ASSERT_EQ(sl_idem_check(id, PID(7), 0, "t", 1, 0, 0, 9, 0, &s2, &kerr),
              SL_IDEM_DUPLICATE);
    ASSERT_EQ(s2->offset, 500);
    ASSERT_EQ(s2->error, 0);
    /* Next in order. */
    ASSERT_EQ(sl_idem_check(id, PID(7), 0, "t", 1, 0, 10, 19, 0, &s, &kerr),
              SL_IDEM_NEW);
    /* Other partitions and topics are independent. */
    ASSERT_EQ(sl_idem_check(id, PID(7), 0, "t", 1, 1, 0, 0, 0, &s2, &kerr),
              SL_IDEM_NEW);
    ASSERT_EQ(sl_idem_check(id, PID(7), 0, "u", 1, 0, 0, 0, 0, &s2, &kerr),
              SL_IDEM_NEW);
    ASSERT_EQ(sl_idem_count(id), 3);
    sl_idem_free(id);
}

static void test_gap_and_old(void)
{
    sl_idem *id = idem_issuing(60000);
    sl_idem_slot *s;
    int16_t kerr;

    ASSERT_EQ(sl_idem_check(id, PID(1), 0, "t", 1, 0, 0, 4, 0, &s, &kerr),
              SL_IDEM_NEW);
    s->owner = &owner_a;
    sl_idem_complete(id, s, &owner_a, 0, 0);
    /* Gap: expected 5, got 8. */
    ASSERT_EQ(sl_idem_check(id, PID(1), 0, "t", 1, 0, 8, 9, 0, &s, &kerr),
              SL_IDEM_REJECT);
    ASSERT_EQ(kerr, 45);
    /* The gap did not move the expectation. */
    ASSERT_EQ(sl_idem_check(id, PID(1), 0, "t", 1, 0, 5, 9, 0, &s, &kerr),
              SL_IDEM_NEW);
    s->owner = &owner_a;
    sl_idem_complete(id, s, &owner_a, 0, 5);
    /* Walk the window past the first batch, then resend it. */
    for (int i = 0; i < SL_IDEM_WINDOW; i++) {
        ASSERT_EQ(sl_idem_check(id, PID(1), 0, "t", 1, 0, 10 + i, 10 + i, 0, &s,
                                &kerr),
                  SL_IDEM_NEW);
        s->owner = &owner_b;
        sl_idem_complete(id, s, &owner_b, 0, 10 + i);
    }
    ASSERT_EQ(sl_idem_check(id, PID(1), 0, "t", 1, 0, 0, 4, 0, &s, &kerr),
              SL_IDEM_REJECT);
    ASSERT_EQ(kerr, 45); /* as Kafka: not DUPLICATE_SEQUENCE_NUMBER */
    /* Same base, different length: not a retry. */
    ASSERT_EQ(sl_idem_check(id, PID(1), 0, "t", 1, 0, 14, 20, 0, &s, &kerr),
              SL_IDEM_REJECT);
    ASSERT_EQ(kerr, 45);
    sl_idem_free(id);
}

/* Seen against Kafka 4.1.1 (sluice_restarted_idempotent@kafka lost the
 * first batch of a partition, acknowledged): batch 0..2 is refused before
 * it reaches this table, batch 3..5 starts the entry, and the retry of
 * 0..2 is behind the expected sequence and outside the window. It was
 * answered DUPLICATE_SEQUENCE_NUMBER, which clients take as success: the
 * records were never written. A broker answers OUT_OF_ORDER_SEQUENCE_NUMBER
 * (and the client retries in order); so must Sluice. */
static void test_first_batch_retried_after_later_one(void)
{
    sl_idem *id = idem_issuing(60000);
    sl_idem_slot *s;
    int16_t kerr;

    ASSERT_EQ(sl_idem_check(id, PID(2), 0, "t", 1, 0, 3, 5, 0, &s, &kerr),
              SL_IDEM_NEW);
    s->owner = &owner_a;
    sl_idem_complete(id, s, &owner_a, 0, 0);
    ASSERT_EQ(sl_idem_check(id, PID(2), 0, "t", 1, 0, 0, 2, 0, &s, &kerr),
              SL_IDEM_REJECT);
    ASSERT_EQ(kerr, 45); /* OUT_OF_ORDER_SEQUENCE_NUMBER */
    /* what was written is still answered from the window */
    ASSERT_EQ(sl_idem_check(id, PID(2), 0, "t", 1, 0, 3, 5, 0, &s, &kerr),
              SL_IDEM_DUPLICATE);
    ASSERT_EQ(sl_idem_check(id, PID(2), 0, "t", 1, 0, 6, 8, 0, &s, &kerr),
              SL_IDEM_NEW);
    sl_idem_free(id);
}

/* The same scenario with the refusal known: sl_idem_expect holds the place
 * of the refused first batch, so the later one pipelined behind it is out
 * of order (and comes again after it), not the start of the entry. */
static void test_refused_first_batch_holds_its_place(void)
{
    sl_idem *id = idem_issuing(60000);
    sl_idem_slot *s;
    int16_t kerr;

    sl_idem_expect(id, PID(3), 0, "t", 1, 0, 0, 0);
    ASSERT_EQ(sl_idem_count(id), 1);
    ASSERT_EQ(sl_idem_check(id, PID(3), 0, "t", 1, 0, 3, 5, 0, &s, &kerr),
              SL_IDEM_REJECT);
    ASSERT_EQ(kerr, 45);
    ASSERT_EQ(sl_idem_check(id, PID(3), 0, "t", 1, 0, 0, 2, 0, &s, &kerr),
              SL_IDEM_NEW);
    s->owner = &owner_a;
    sl_idem_complete(id, s, &owner_a, 0, 0);
    ASSERT_EQ(sl_idem_check(id, PID(3), 0, "t", 1, 0, 3, 5, 0, &s, &kerr),
              SL_IDEM_NEW);
    /* an existing entry is left as it is */
    sl_idem_expect(id, PID(3), 0, "t", 1, 0, 0, 0);
    ASSERT_EQ(sl_idem_check(id, PID(3), 0, "t", 1, 0, 6, 8, 0, &s, &kerr),
              SL_IDEM_NEW); /* still expects 6 (pipelined behind 3..5) */
    sl_idem_expect(id, -1, -1, "t", 1, 0, 0, 0); /* not idempotent: no-op */
    ASSERT_EQ(sl_idem_count(id), 1);
    sl_idem_free(id);
}

static void test_failure_rolls_back(void)
{
    sl_idem *id = idem_issuing(60000);
    sl_idem_slot *a, *b, *s;
    int16_t kerr;

    ASSERT_EQ(sl_idem_check(id, PID(1), 0, "t", 1, 0, 0, 9, 0, &a, &kerr),
              SL_IDEM_NEW);
    a->owner = &owner_a;
    ASSERT_EQ(sl_idem_check(id, PID(1), 0, "t", 1, 0, 10, 19, 0, &b, &kerr),
              SL_IDEM_NEW);
    b->owner = &owner_b;
    /* Both fail upstream, the later one first. */
    sl_idem_complete(id, b, &owner_b, 7, -1);
    sl_idem_complete(id, a, &owner_a, 7, -1);
    /* The client's retry of 0 is accepted, then 10. */
    ASSERT_EQ(sl_idem_check(id, PID(1), 0, "t", 1, 0, 0, 9, 0, &s, &kerr),
              SL_IDEM_NEW);
    s->owner = &owner_c;
    ASSERT_EQ(sl_idem_check(id, PID(1), 0, "t", 1, 0, 10, 19, 0, &s, &kerr),
              SL_IDEM_NEW);
    /* A completion by a non-owner changes nothing. */
    sl_idem_complete(id, s, &owner_a, 0, 99);
    ASSERT_EQ(s->state, SL_IDEM_SLOT_PENDING);
    sl_idem_free(id);
}

static void test_epochs(void)
{
    sl_idem *id = idem_issuing(60000);
    sl_idem_slot *s;
    int16_t kerr;

    ASSERT_EQ(sl_idem_check(id, PID(1), 2, "t", 1, 0, 0, 0, 0, &s, &kerr),
              SL_IDEM_NEW);
    s->owner = &owner_a;
    /* Older epoch: fenced. */
    ASSERT_EQ(sl_idem_check(id, PID(1), 1, "t", 1, 0, 1, 1, 0, &s, &kerr),
              SL_IDEM_REJECT);
    ASSERT_EQ(kerr, 47);
    /* Newer epoch: sequences restart; the old pending slot is orphaned. */
    ASSERT_EQ(sl_idem_check(id, PID(1), 3, "t", 1, 0, 0, 0, 0, &s, &kerr),
              SL_IDEM_NEW);
    ASSERT_TRUE(s->owner == NULL);
    sl_idem_free(id);
}

static void test_sequence_wrap(void)
{
    sl_idem *id = idem_issuing(60000);
    sl_idem_slot *s;
    int16_t kerr;

    ASSERT_EQ(sl_idem_check(id, PID(1), 0, "t", 1, 0, INT32_MAX - 1, 0, 0, &s,
                            &kerr),
              SL_IDEM_NEW);
    s->owner = &owner_a;
    sl_idem_complete(id, s, &owner_a, 0, 0);
    /* INT32_MAX-1, INT32_MAX, 0 were used: 1 is next. */
    ASSERT_EQ(sl_idem_check(id, PID(1), 0, "t", 1, 0, 1, 5, 0, &s, &kerr),
              SL_IDEM_NEW);
    sl_idem_free(id);
}

static void test_expiry(void)
{
    sl_idem *id = idem_issuing(1000);
    sl_idem_slot *s;
    int16_t kerr;

    ASSERT_EQ(sl_idem_check(id, PID(1), 0, "t", 1, 0, 0, 0, 0, &s, &kerr),
              SL_IDEM_NEW);
    s->owner = &owner_a;
    ASSERT_EQ(sl_idem_check(id, PID(2), 0, "t", 1, 0, 0, 0, 0, &s, &kerr),
              SL_IDEM_NEW);
    s->owner = &owner_b;
    sl_idem_complete(id, s, &owner_b, 0, 1);
    /* Entry 1 has a pending batch: kept; entry 2 idle: dropped. */
    ASSERT_EQ(sl_idem_expire(id, 5000), 1);
    ASSERT_EQ(sl_idem_count(id), 1);
    ASSERT_EQ(sl_idem_expire(id, 500), 0);
    sl_idem_free(id);
}

static void test_many_entries(void)
{
    sl_idem *id = idem_issuing(1000);
    sl_idem_slot *s;
    int16_t kerr;
    for (int p = 0; p < 3000; p++)
        ASSERT_EQ(sl_idem_check(id, PID(p % 7), 0, "topic", 5, p, 0, 0, 0, &s,
                                &kerr),
                  SL_IDEM_NEW);
    ASSERT_EQ(sl_idem_count(id), 3000);
    /* Still found after growth: a resend is pending. */
    ASSERT_EQ(sl_idem_check(id, PID(1), 0, "topic", 5, 1, 0, 0, 0, &s, &kerr),
              SL_IDEM_PENDING);
    sl_idem_free(id);
}

SL_TEST_MAIN(SL_TEST(test_init_producer_ids_fresh),
             SL_TEST(test_many_producers),
             SL_TEST(test_producer_ids_unique_and_checked),
             SL_TEST(test_in_order_and_duplicate), SL_TEST(test_gap_and_old),
             SL_TEST(test_first_batch_retried_after_later_one),
             SL_TEST(test_refused_first_batch_holds_its_place),
             SL_TEST(test_failure_rolls_back), SL_TEST(test_epochs),
             SL_TEST(test_sequence_wrap), SL_TEST(test_expiry),
             SL_TEST(test_many_entries))
