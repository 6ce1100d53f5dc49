/* The recent-events ring: order, wraparound, truncation at a UTF-8
 * boundary. */
#include "sluice/events.h"

#include "sl_test.h"

static void test_order_and_wraparound(void)
{
    static sl_events ev;

    ASSERT_EQ(sl_events_count(&ev), 0);
    ASSERT_TRUE(sl_events_at(&ev, 0) == NULL);
    sl_events_add(&ev, 1000, "operator", "paused %s", "backfill");
    ASSERT_EQ(sl_events_count(&ev), 1);
    ASSERT_STREQ(sl_events_at(&ev, 0)->text, "paused backfill");
    ASSERT_STREQ(sl_events_at(&ev, 0)->kind, "operator");
    ASSERT_EQ(sl_events_at(&ev, 0)->wall_ms, 1000);
    ASSERT_EQ(sl_events_at(&ev, 0)->seq, 1);
    for (int i = 2; i <= SL_EVENTS_MAX + 5; i++)
        sl_events_add(&ev, 1000 + i, "pressure", "event %d", i);
    ASSERT_EQ(sl_events_count(&ev), SL_EVENTS_MAX);
    /* Oldest kept first: the first five and one more were dropped. */
    ASSERT_STREQ(sl_events_at(&ev, 0)->text, "event 6");
    ASSERT_EQ(sl_events_at(&ev, 0)->seq, 6);
    ASSERT_STREQ(sl_events_at(&ev, SL_EVENTS_MAX - 1)->text, "event 69");
    ASSERT_TRUE(sl_events_at(&ev, SL_EVENTS_MAX) == NULL);
}

static void test_long_text_cut_at_utf8_boundary(void)
{
    static sl_events ev;
    char text[SL_EVENT_TEXT_MAX * 2];
    size_t len;

    /* 'a' then 3-byte characters: the cut falls inside one. */
    text[0] = 'a';
    for (size_t i = 1; i + 3 < sizeof(text); i += 3)
        memcpy(text + i, "\xe2\x82\xac", 3), text[i + 3] = '\0';
    sl_events_add(&ev, 1, "annotation", "%s", text);
    len = strlen(sl_events_at(&ev, 0)->text);
    ASSERT_TRUE(len <= SL_EVENT_TEXT_MAX - 1);
    ASSERT_EQ((len - 1) % 3, 0); /* whole characters only */
    sl_events_add(&ev, 1, "a-kind-longer-than-sixteen", "x");
    ASSERT_EQ(strlen(sl_events_at(&ev, 1)->kind), SL_EVENT_KIND_MAX - 1);
}

SL_TEST_MAIN(SL_TEST(test_order_and_wraparound),
             SL_TEST(test_long_text_cut_at_utf8_boundary))
