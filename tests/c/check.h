/* check.h: the pass/fail count the C tests share (each test is a program of its own,
 * so these are its own statics); a test prints "N passed, M failed" at the end. */
#ifndef EP_TEST_CHECK_H
#define EP_TEST_CHECK_H

#include <stdio.h>

static int passed, failed;

static inline void check(int ok, const char *what)
{
    if (ok) {
        passed++;
    } else {
        failed++;
        printf("FAIL %s\n", what);
    }
}

#endif
