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

/* Issue 12, item 3: "a split retry is refused forever". After
 * MESSAGE_TOO_LARGE the Java client splits the batch and sends the parts
 * from the same base sequence. A broker did not append the failed batch,
 * so it expects that base sequence, whatever the length: the first part
 * is in sequence, and so is the next. Sluice answered 45 ("same start,
 * different length"), forever. */
static void test_split_retry_after_message_too_large(void)
{
    sl_idem *id = idem_issuing(60000);
    sl_idem_slot *s;
    int16_t kerr;

    ASSERT_EQ(sl_idem_check(id, PID(4), 0, "t", 1, 0, 0, 9, 0, &s, &kerr),
              SL_IDEM_NEW);
    s->owner = &owner_a;
    sl_idem_complete(id, s, &owner_a, 10 /* MESSAGE_TOO_LARGE */, -1);
    ASSERT_EQ(sl_idem_check(id, PID(4), 0, "t", 1, 0, 0, 4, 0, &s, &kerr),
              SL_IDEM_NEW);
    ASSERT_TRUE(!sl_idem_slot_upstream(s, 0));
    s->owner = &owner_b;
    ASSERT_EQ(sl_idem_complete(id, s, &owner_b, 0, 100), 0);
    ASSERT_EQ(sl_idem_check(id, PID(4), 0, "t", 1, 0, 5, 9, 0, &s, &kerr),
              SL_IDEM_NEW);
    s->owner = &owner_c;
    ASSERT_EQ(sl_idem_complete(id, s, &owner_c, 0, 105), 0);
    ASSERT_EQ(sl_idem_check(id, PID(4), 0, "t", 1, 0, 10, 10, 0, &s, &kerr),
              SL_IDEM_NEW);
    /* the parts are answered from the window, the unsplit batch is not a
     * retry of anything written */
    ASSERT_EQ(sl_idem_check(id, PID(4), 0, "t", 1, 0, 5, 9, 0, &s, &kerr),
              SL_IDEM_DUPLICATE);
    ASSERT_EQ(s->offset, 105);
    ASSERT_EQ(sl_idem_check(id, PID(4), 0, "t", 1, 0, 0, 9, 0, &s, &kerr),
              SL_IDEM_REJECT);
    ASSERT_EQ(kerr, 45);
    sl_idem_free(id);
}

/* Issue 12, item 2: "rolling the expected sequence back ... then fails the
 * client's next batch with OUT_OF_ORDER_SEQUENCE_NUMBER". Batch 0..9
 * fails upstream, batch 10..19 pipelined behind it was answered with
 * success; the client retries 0..9 only, then sends 20..29, which must be
 * in sequence (the rollback to 0 and the retry left it expecting 10). */
static void test_retry_after_rollback_keeps_later_batch(void)
{
    sl_idem *id = idem_issuing(60000);
    sl_idem_slot *a, *b, *s;
    int16_t kerr;

    ASSERT_EQ(sl_idem_check(id, PID(5), 0, "t", 1, 0, 0, 9, 0, &a, &kerr),
              SL_IDEM_NEW);
    a->owner = &owner_a;
    ASSERT_EQ(sl_idem_check(id, PID(5), 0, "t", 1, 0, 10, 19, 0, &b, &kerr),
              SL_IDEM_NEW);
    b->owner = &owner_b;
    sl_idem_complete(id, b, &owner_b, 0, 10);
    sl_idem_complete(id, a, &owner_a, 19 /* NOT_ENOUGH_REPLICAS */, -1);
    /* behind the failed batch: out of order until it is retried */
    ASSERT_EQ(sl_idem_check(id, PID(5), 0, "t", 1, 0, 20, 29, 0, &s, &kerr),
              SL_IDEM_REJECT);
    ASSERT_EQ(kerr, 45);
    ASSERT_EQ(sl_idem_check(id, PID(5), 0, "t", 1, 0, 0, 9, 0, &s, &kerr),
              SL_IDEM_NEW);
    s->owner = &owner_c;
    sl_idem_complete(id, s, &owner_c, 0, 20);
    ASSERT_EQ(sl_idem_check(id, PID(5), 0, "t", 1, 0, 20, 29, 0, &s, &kerr),
              SL_IDEM_NEW);
    sl_idem_free(id);
}

/* Issue 12, item 2, the other half: a batch still in flight behind one
 * that fails is answered OUT_OF_ORDER_SEQUENCE_NUMBER, as a broker that
 * did not append the first answers the second (a success there made
 * librdkafka clients take the failed batch as written: an "implicit ack",
 * and a loss). Its records, written upstream meanwhile, are not sent
 * again when the client retries it after the first: it gets their
 * original offset. */
static void test_failed_batch_fails_later_pipelined_ones(void)
{
    sl_idem *id = idem_issuing(60000);
    sl_idem_slot *a, *b, *s;
    int16_t kerr;

    ASSERT_EQ(sl_idem_check(id, PID(6), 0, "t", 1, 0, 0, 9, 0, &a, &kerr),
              SL_IDEM_NEW);
    a->owner = &owner_a;
    ASSERT_EQ(sl_idem_check(id, PID(6), 0, "t", 1, 0, 10, 19, 0, &b, &kerr),
              SL_IDEM_NEW);
    b->owner = &owner_b;
    ASSERT_EQ(sl_idem_complete(id, a, &owner_a, 19, -1), 19);
    for (int32_t i = 0; i < 10; i++)
        sl_idem_record_upstream(b, &owner_b, i, 40 + i);
    ASSERT_EQ(sl_idem_complete(id, b, &owner_b, 0, 40), 45);
    /* the client retries in order: the first is sent, the second not */
    ASSERT_EQ(sl_idem_check(id, PID(6), 0, "t", 1, 0, 10, 19, 0, &s, &kerr),
              SL_IDEM_REJECT);
    ASSERT_EQ(kerr, 45);
    ASSERT_EQ(sl_idem_check(id, PID(6), 0, "t", 1, 0, 0, 9, 0, &s, &kerr),
              SL_IDEM_NEW);
    s->owner = &owner_c;
    ASSERT_EQ(sl_idem_complete(id, s, &owner_c, 0, 50), 0);
    ASSERT_EQ(sl_idem_check(id, PID(6), 0, "t", 1, 0, 10, 19, 0, &s, &kerr),
              SL_IDEM_DUPLICATE);
    ASSERT_EQ(s->error, 0);
    ASSERT_EQ(s->offset, 40);
    ASSERT_EQ(sl_idem_check(id, PID(6), 0, "t", 1, 0, 20, 20, 0, &s, &kerr),
              SL_IDEM_NEW);
    sl_idem_free(id);
}

/* Issue 12, item 1: "partial failure, then a retry, duplicates records".
 * Four of six records of a batch reach the cluster, the other two fail;
 * the client is told the batch failed and retries it. Only the two
 * missing records may go upstream again, and the answer carries the
 * batch's original base offset. */
static void test_partly_delivered_retry_resends_only_missing(void)
{
    sl_idem *id = idem_issuing(60000);
    sl_idem_slot *s;
    int16_t kerr;

    ASSERT_EQ(sl_idem_check(id, PID(7), 0, "t", 1, 0, 0, 5, 0, &s, &kerr),
              SL_IDEM_NEW);
    s->owner = &owner_a;
    for (int32_t i = 0; i < 4; i++)
        sl_idem_record_upstream(s, &owner_a, i, 100 + i);
    sl_idem_record_upstream(s, &owner_b, 4, 7); /* not the owner: ignored */
    ASSERT_EQ(sl_idem_complete(id, s, &owner_a, 10, 100), 10);
    ASSERT_EQ(sl_idem_check(id, PID(7), 0, "t", 1, 0, 0, 5, 0, &s, &kerr),
              SL_IDEM_NEW);
    for (int32_t i = 0; i < 6; i++)
        ASSERT_EQ(sl_idem_slot_upstream(s, i), i < 4);
    s->owner = &owner_b;
    sl_idem_record_upstream(s, &owner_b, 4, 200);
    sl_idem_record_upstream(s, &owner_b, 5, 201);
    ASSERT_EQ(sl_idem_complete(id, s, &owner_b, 0, 200), 0);
    ASSERT_EQ(sl_idem_check(id, PID(7), 0, "t", 1, 0, 0, 5, 0, &s, &kerr),
              SL_IDEM_DUPLICATE);
    ASSERT_EQ(s->offset, 100);
    ASSERT_EQ(sl_idem_check(id, PID(7), 0, "t", 1, 0, 6, 6, 0, &s, &kerr),
              SL_IDEM_NEW);
    sl_idem_free(id);
}

/* Items 1 and 3 together: 7 of 10 records (more than a word's worth of
 * bits in the 100-record variant) are upstream when the batch fails with
 * MESSAGE_TOO_LARGE, and the client splits it. Each part sends only what
 * is missing of it. */
static void test_split_of_partly_delivered_batch(void)
{
    for (int32_t scale = 1; scale <= 10; scale *= 10) {
        int32_t n = 10 * scale, half = n / 2, done = 7 * scale;
        sl_idem *id = idem_issuing(60000);
        sl_idem_slot *s;
        int16_t kerr;

        ASSERT_EQ(sl_idem_check(id, PID(8), 0, "t", 1, 0, 0, n - 1, 0, &s,
                                &kerr),
                  SL_IDEM_NEW);
        ASSERT_EQ(s->n_records, n);
        s->owner = &owner_a;
        for (int32_t i = 0; i < done; i++)
            sl_idem_record_upstream(s, &owner_a, i, 1000 + i);
        sl_idem_complete(id, s, &owner_a, 10, 1000);
        ASSERT_EQ(sl_idem_check(id, PID(8), 0, "t", 1, 0, 0, half - 1, 0, &s,
                                &kerr),
                  SL_IDEM_DUPLICATE); /* all of it upstream: nothing to send */
        ASSERT_EQ(s->error, 0);
        ASSERT_EQ(s->offset, 1000);
        ASSERT_EQ(sl_idem_check(id, PID(8), 0, "t", 1, 0, half, n - 1, 0, &s,
                                &kerr),
                  SL_IDEM_NEW);
        ASSERT_EQ(s->n_records, n - half);
        for (int32_t i = 0; i < n - half; i++)
            ASSERT_EQ(sl_idem_slot_upstream(s, i), half + i < done);
        s->owner = &owner_c;
        ASSERT_EQ(sl_idem_complete(id, s, &owner_c, 0, 2000), 0);
        ASSERT_EQ(sl_idem_check(id, PID(8), 0, "t", 1, 0, n, n, 0, &s, &kerr),
                  SL_IDEM_NEW);
        sl_idem_free(id);
    }
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
    /* Newer epoch past sequence 0: refused as Kafka 4.1.1 refuses it
     * (pipelined_idempotence_differential@kafka), the old state kept. */
    ASSERT_EQ(sl_idem_check(id, PID(1), 3, "t", 1, 0, 1, 1, 0, &s, &kerr),
              SL_IDEM_REJECT);
    ASSERT_EQ(kerr, 45);
    ASSERT_EQ(sl_idem_check(id, PID(1), 2, "t", 1, 0, 0, 0, 0, &s, &kerr),
              SL_IDEM_PENDING);
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

/* Issue 12, item 6: "producer-id and sequence state grow without a cap".
 * A flood of producer ids keeps the table at its limit, forgetting the
 * least recently used idle entries; one with a batch in flight and one in
 * steady use survive it, and the bytes reported (for the memory budget)
 * stop growing. */
static void test_producer_state_limit(void)
{
    sl_idem *id = sl_idem_new(PREFIX, 60000);
    sl_idem_slot *s, *pending;
    int16_t kerr;
    size_t bytes_at_limit = 0;

    sl_idem_set_limit(id, 100);
    ASSERT_EQ(sl_idem_check(id, 1, 0, "t", 1, 0, 0, 0, 0, &pending, &kerr),
              SL_IDEM_NEW);
    pending->owner = &owner_a;
    for (int64_t p = 2; p < 100000; p++) {
        ASSERT_EQ(sl_idem_check(id, p, 0, "t", 1, 0, 0, 0, p, &s, &kerr),
                  SL_IDEM_NEW);
        s->owner = &owner_b;
        sl_idem_complete(id, s, &owner_b, 0, p);
        /* a producer in steady use, touched every 50 new ones */
        if (p % 50 == 0) {
            int32_t seq = (int32_t)(p / 50 - 1);
            ASSERT_EQ(sl_idem_check(id, 0, 0, "t", 1, 0, seq, seq, p, &s,
                                    &kerr),
                      SL_IDEM_NEW);
            s->owner = &owner_c;
            sl_idem_complete(id, s, &owner_c, 0, p);
        }
        ASSERT_TRUE(sl_idem_count(id) <= 100);
        if (p == 1000)
            bytes_at_limit = sl_idem_bytes(id);
    }
    ASSERT_EQ(sl_idem_count(id), 100);
    ASSERT_TRUE(sl_idem_evicted(id) > 99000);
    ASSERT_TRUE(sl_idem_bytes(id) <= bytes_at_limit + 1024);
    /* the pending batch's entry is still there: its retry waits for it */
    ASSERT_EQ(sl_idem_check(id, 1, 0, "t", 1, 0, 0, 0, 0, &s, &kerr),
              SL_IDEM_PENDING);
    ASSERT_TRUE(s == pending);
    /* the steady producer kept its sequence */
    ASSERT_EQ(sl_idem_check(id, 0, 0, "t", 1, 0, 5000, 5000, 0, &s, &kerr),
              SL_IDEM_REJECT);
    ASSERT_EQ(sl_idem_check(id, 0, 0, "t", 1, 0, 1999, 1999, 0, &s, &kerr),
              SL_IDEM_NEW);
    sl_idem_free(id);
}

SL_TEST_MAIN(SL_TEST(test_init_producer_ids_fresh),
             SL_TEST(test_many_producers),
             SL_TEST(test_producer_ids_unique_and_checked),
             SL_TEST(test_in_order_and_duplicate), SL_TEST(test_gap_and_old),
             SL_TEST(test_first_batch_retried_after_later_one),
             SL_TEST(test_refused_first_batch_holds_its_place),
             SL_TEST(test_failure_rolls_back),
             SL_TEST(test_split_retry_after_message_too_large),
             SL_TEST(test_retry_after_rollback_keeps_later_batch),
             SL_TEST(test_failed_batch_fails_later_pipelined_ones),
             SL_TEST(test_partly_delivered_retry_resends_only_missing),
             SL_TEST(test_split_of_partly_delivered_batch),
             SL_TEST(test_epochs),
             SL_TEST(test_sequence_wrap), SL_TEST(test_expiry),
             SL_TEST(test_many_entries),
             SL_TEST(test_producer_state_limit))
