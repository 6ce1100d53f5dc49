#include "sl_test.h"
static void placeholder(void) { ASSERT_TRUE(0); }
SL_TEST_MAIN(SL_TEST(placeholder))
