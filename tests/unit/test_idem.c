/* Unit tests for proxy/idem.c: producer ids and sequence de-duplication. */
#include "sl_test.h"
#include "sluice/idem.h"

static int owner_a, owner_b, owner_c;

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
    ASSERT_EQ(pid, 1000);
    ASSERT_EQ(ep, 0);
    ASSERT_EQ(sl_idem_init_producer(id, &pid2, &ep2), 0);
    ASSERT_EQ(pid2, 1001);
    ASSERT_EQ(ep2, 0);
    sl_idem_free(id);
}

static void test_many_producers(void)
{
    sl_idem *id = sl_idem_new(0, 60000);
    int64_t pid = -1;
    int16_t ep = -1;
    for (int i = 0; i < 5000; i++)
        ASSERT_EQ(sl_idem_init_producer(id, &pid, &ep), 0);
    ASSERT_EQ(pid, 4999);
    ASSERT_EQ(ep, 0);
    sl_idem_free(id);
}

static void test_in_order_and_duplicate(void)
{
    sl_idem *id = sl_idem_new(0, 60000);
    sl_idem_slot *s, *s2;
    int16_t kerr;

    ASSERT_EQ(sl_idem_check(id, 7, 0, "t", 1, 0, 0, 9, 0, &s, &kerr),
              SL_IDEM_NEW);
    s->owner = &owner_a;
    /* Retry while the original is in flight: wait for it. */
    ASSERT_EQ(sl_idem_check(id, 7, 0, "t", 1, 0, 0, 9, 0, &s2, &kerr),
              SL_IDEM_PENDING);
    ASSERT_TRUE(s2 == s);
    ASSERT_TRUE(s2->owner == &owner_a);
    sl_idem_complete(id, s, &owner_a, 0, 500);
    /* Retry after the answer: the original answer. */
    ASSERT_EQ(sl_idem_check(id, 7, 0, "t", 1, 0, 0, 9, 0, &s2, &kerr),
              SL_IDEM_DUPLICATE);
    ASSERT_EQ(s2->offset, 500);
    ASSERT_EQ(s2->error, 0);
    /* Next in order. */
    ASSERT_EQ(sl_idem_check(id, 7, 0, "t", 1, 0, 10, 19, 0, &s, &kerr),
              SL_IDEM_NEW);
    /* Other partitions and topics are independent. */
    ASSERT_EQ(sl_idem_check(id, 7, 0, "t", 1, 1, 0, 0, 0, &s2, &kerr),
              SL_IDEM_NEW);
    ASSERT_EQ(sl_idem_check(id, 7, 0, "u", 1, 0, 0, 0, 0, &s2, &kerr),
              SL_IDEM_NEW);
    ASSERT_EQ(sl_idem_count(id), 3);
    sl_idem_free(id);
}

static void test_gap_and_old(void)
{
    sl_idem *id = sl_idem_new(0, 60000);
    sl_idem_slot *s;
    int16_t kerr;

    ASSERT_EQ(sl_idem_check(id, 1, 0, "t", 1, 0, 0, 4, 0, &s, &kerr),
              SL_IDEM_NEW);
    s->owner = &owner_a;
    sl_idem_complete(id, s, &owner_a, 0, 0);
    /* Gap: expected 5, got 8. */
    ASSERT_EQ(sl_idem_check(id, 1, 0, "t", 1, 0, 8, 9, 0, &s, &kerr),
              SL_IDEM_REJECT);
    ASSERT_EQ(kerr, 45);
    /* The gap did not move the expectation. */
    ASSERT_EQ(sl_idem_check(id, 1, 0, "t", 1, 0, 5, 9, 0, &s, &kerr),
              SL_IDEM_NEW);
    s->owner = &owner_a;
    sl_idem_complete(id, s, &owner_a, 0, 5);
    /* Walk the window past the first batch, then resend it. */
    for (int i = 0; i < SL_IDEM_WINDOW; i++) {
        ASSERT_EQ(sl_idem_check(id, 1, 0, "t", 1, 0, 10 + i, 10 + i, 0, &s,
                                &kerr),
                  SL_IDEM_NEW);
        s->owner = &owner_b;
        sl_idem_complete(id, s, &owner_b, 0, 10 + i);
    }
    ASSERT_EQ(sl_idem_check(id, 1, 0, "t", 1, 0, 0, 4, 0, &s, &kerr),
              SL_IDEM_REJECT);
    ASSERT_EQ(kerr, 46);
    /* Same base, different length: not a retry. */
    ASSERT_EQ(sl_idem_check(id, 1, 0, "t", 1, 0, 14, 20, 0, &s, &kerr),
              SL_IDEM_REJECT);
    ASSERT_EQ(kerr, 45);
    sl_idem_free(id);
}

static void test_failure_rolls_back(void)
{
    sl_idem *id = sl_idem_new(0, 60000);
    sl_idem_slot *a, *b, *s;
    int16_t kerr;

    ASSERT_EQ(sl_idem_check(id, 1, 0, "t", 1, 0, 0, 9, 0, &a, &kerr),
              SL_IDEM_NEW);
    a->owner = &owner_a;
    ASSERT_EQ(sl_idem_check(id, 1, 0, "t", 1, 0, 10, 19, 0, &b, &kerr),
              SL_IDEM_NEW);
    b->owner = &owner_b;
    /* Both fail upstream, the later one first. */
    sl_idem_complete(id, b, &owner_b, 7, -1);
    sl_idem_complete(id, a, &owner_a, 7, -1);
    /* The client's retry of 0 is accepted, then 10. */
    ASSERT_EQ(sl_idem_check(id, 1, 0, "t", 1, 0, 0, 9, 0, &s, &kerr),
              SL_IDEM_NEW);
    s->owner = &owner_c;
    ASSERT_EQ(sl_idem_check(id, 1, 0, "t", 1, 0, 10, 19, 0, &s, &kerr),
              SL_IDEM_NEW);
    /* A completion by a non-owner changes nothing. */
    sl_idem_complete(id, s, &owner_a, 0, 99);
    ASSERT_EQ(s->state, SL_IDEM_SLOT_PENDING);
    sl_idem_free(id);
}

static void test_epochs(void)
{
    sl_idem *id = sl_idem_new(0, 60000);
    sl_idem_slot *s;
    int16_t kerr;

    ASSERT_EQ(sl_idem_check(id, 1, 2, "t", 1, 0, 0, 0, 0, &s, &kerr),
              SL_IDEM_NEW);
    s->owner = &owner_a;
    /* Older epoch: fenced. */
    ASSERT_EQ(sl_idem_check(id, 1, 1, "t", 1, 0, 1, 1, 0, &s, &kerr),
              SL_IDEM_REJECT);
    ASSERT_EQ(kerr, 47);
    /* Newer epoch: sequences restart; the old pending slot is orphaned. */
    ASSERT_EQ(sl_idem_check(id, 1, 3, "t", 1, 0, 0, 0, 0, &s, &kerr),
              SL_IDEM_NEW);
    ASSERT_TRUE(s->owner == NULL);
    sl_idem_free(id);
}

static void test_sequence_wrap(void)
{
    sl_idem *id = sl_idem_new(0, 60000);
    sl_idem_slot *s;
    int16_t kerr;

    ASSERT_EQ(sl_idem_check(id, 1, 0, "t", 1, 0, INT32_MAX - 1, 0, 0, &s,
                            &kerr),
              SL_IDEM_NEW);
    s->owner = &owner_a;
    sl_idem_complete(id, s, &owner_a, 0, 0);
    /* INT32_MAX-1, INT32_MAX, 0 were used: 1 is next. */
    ASSERT_EQ(sl_idem_check(id, 1, 0, "t", 1, 0, 1, 5, 0, &s, &kerr),
              SL_IDEM_NEW);
    sl_idem_free(id);
}

static void test_expiry(void)
{
    sl_idem *id = sl_idem_new(0, 1000);
    sl_idem_slot *s;
    int16_t kerr;

    ASSERT_EQ(sl_idem_check(id, 1, 0, "t", 1, 0, 0, 0, 0, &s, &kerr),
              SL_IDEM_NEW);
    s->owner = &owner_a;
    ASSERT_EQ(sl_idem_check(id, 2, 0, "t", 1, 0, 0, 0, 0, &s, &kerr),
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
    sl_idem *id = sl_idem_new(0, 1000);
    sl_idem_slot *s;
    int16_t kerr;
    for (int p = 0; p < 3000; p++)
        ASSERT_EQ(sl_idem_check(id, p % 7, 0, "topic", 5, p, 0, 0, 0, &s,
                                &kerr),
                  SL_IDEM_NEW);
    ASSERT_EQ(sl_idem_count(id), 3000);
    /* Still found after growth: a resend is pending. */
    ASSERT_EQ(sl_idem_check(id, 1, 0, "topic", 5, 1, 0, 0, 0, &s, &kerr),
              SL_IDEM_PENDING);
    sl_idem_free(id);
}

SL_TEST_MAIN(SL_TEST(test_init_producer_ids_fresh),
             SL_TEST(test_many_producers),
             SL_TEST(test_in_order_and_duplicate), SL_TEST(test_gap_and_old),
             SL_TEST(test_failure_rolls_back), SL_TEST(test_epochs),
             SL_TEST(test_sequence_wrap), SL_TEST(test_expiry),
             SL_TEST(test_many_entries))
