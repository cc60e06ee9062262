/* test-sanitizers.h: what the runtime tests run under — RUNNING_ON_VALGRIND, UNDER_ASAN and
 * UNDER_TSAN (each 0 or 1), for tests that must scale down or skip there. */
#ifndef TEST_SANITIZERS_H
#define TEST_SANITIZERS_H

#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#endif

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
/* ThreadSanitizer maps a 512 KiB shadow stack per coroutine (a TSan fiber): 100,000 of them
 * would exceed vm.max_map_count. */
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) && !defined(UNDER_ASAN)
#define UNDER_ASAN 1
#endif
#if defined(__SANITIZE_THREAD__) && !defined(UNDER_TSAN)
#define UNDER_TSAN 1
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif
#ifndef UNDER_TSAN
#define UNDER_TSAN 0
#endif

#endif
