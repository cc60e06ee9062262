/* asynctop/common.h: export macro, version and the small types every public header shares. */
#ifndef ASYNCTOP_COMMON_H
#define ASYNCTOP_COMMON_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Marks a symbol that leaves libasynctop (the project builds with -fvisibility=hidden). */
#ifndef AT_EXTERN
#define AT_EXTERN __attribute__((visibility("default")))
#endif

#define AT_VERSION_MAJOR 0
#define AT_VERSION_MINOR 1
#define AT_VERSION_PATCH 0

/* The library's version as "MAJOR.MINOR.PATCH". Any thread. */
AT_EXTERN const char *at_version_string(void);

/* The event loop (opaque; see <asynctop/loop.h>). */
typedef struct at_loop at_loop_t;
/* A reference-counted future (opaque; see <asynctop/future.h>). */
typedef struct at_future at_future_t;
/* An error object: code, domain, message, where raised (see <asynctop/error.h>). */
typedef struct at_error at_error_t;

/* Up to this many raw return addresses are kept per captured stack. */
#define AT_STACK_MAX 16

#ifdef __cplusplus
}
#endif
#endif
