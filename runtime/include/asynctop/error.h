/* asynctop/error.h: error codes (one X-macro table) and error objects with the site they were
 * raised at. */
#ifndef ASYNCTOP_ERROR_H
#define ASYNCTOP_ERROR_H

#include "asynctop/common.h"

#include <errno.h>
#include <stdarg.h>
#include <uv.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Every fallible call returns 0 or a negative AT_E* code. The libuv rows
 * keep libuv's values (on Linux: the negated errno, plus UV_EOF and the
 * getaddrinfo codes), so a libuv status is always a valid asynctop code and
 * needs no translation. EDEADLK is the one errno row libuv lacks. The asynctop rows are our own,
 * outside errno's range. XX(NAME, value, message) */
#define AT_ERRNO_MAP(XX)                                                                           \
    XX(E2BIG, UV_E2BIG, "argument list too long")                                                  \
    XX(EACCES, UV_EACCES, "permission denied")                                                     \
    XX(EADDRINUSE, UV_EADDRINUSE, "address already in use")                                        \
    XX(EADDRNOTAVAIL, UV_EADDRNOTAVAIL, "address not available")                                   \
    XX(EAFNOSUPPORT, UV_EAFNOSUPPORT, "address family not supported")                              \
    XX(EAGAIN, UV_EAGAIN, "resource temporarily unavailable")                                      \
    XX(EAI_ADDRFAMILY, UV_EAI_ADDRFAMILY, "address family not supported")                          \
    XX(EAI_AGAIN, UV_EAI_AGAIN, "temporary failure")                                               \
    XX(EAI_BADFLAGS, UV_EAI_BADFLAGS, "bad ai_flags value")                                        \
    XX(EAI_BADHINTS, UV_EAI_BADHINTS, "invalid value for hints")                                   \
    XX(EAI_CANCELED, UV_EAI_CANCELED, "request canceled")                                          \
    XX(EAI_FAIL, UV_EAI_FAIL, "permanent failure")                                                 \
    XX(EAI_FAMILY, UV_EAI_FAMILY, "ai_family not supported")                                       \
    XX(EAI_MEMORY, UV_EAI_MEMORY, "out of memory")                                                 \
    XX(EAI_NODATA, UV_EAI_NODATA, "no address")                                                    \
    XX(EAI_NONAME, UV_EAI_NONAME, "unknown node or service")                                       \
    XX(EAI_OVERFLOW, UV_EAI_OVERFLOW, "argument buffer overflow")                                  \
    XX(EAI_PROTOCOL, UV_EAI_PROTOCOL, "resolved protocol is unknown")                              \
    XX(EAI_SERVICE, UV_EAI_SERVICE, "service not available for socket type")                       \
    XX(EAI_SOCKTYPE, UV_EAI_SOCKTYPE, "socket type not supported")                                 \
    XX(EALREADY, UV_EALREADY, "connection already in progress")                                    \
    XX(EBADF, UV_EBADF, "bad file descriptor")                                                     \
    XX(EBUSY, UV_EBUSY, "resource busy or locked")                                                 \
    XX(ECANCELED, UV_ECANCELED, "operation canceled")                                              \
    XX(ECHARSET, UV_ECHARSET, "invalid Unicode character")                                         \
    XX(ECONNABORTED, UV_ECONNABORTED, "software caused connection abort")                          \
    XX(ECONNREFUSED, UV_ECONNREFUSED, "connection refused")                                        \
    XX(ECONNRESET, UV_ECONNRESET, "connection reset by peer")                                      \
    XX(EDESTADDRREQ, UV_EDESTADDRREQ, "destination address required")                              \
    XX(EEXIST, UV_EEXIST, "file already exists")                                                   \
    XX(EFAULT, UV_EFAULT, "bad address in system call argument")                                   \
    XX(EFBIG, UV_EFBIG, "file too large")                                                          \
    XX(EHOSTUNREACH, UV_EHOSTUNREACH, "host is unreachable")                                       \
    XX(EINTR, UV_EINTR, "interrupted system call")                                                 \
    XX(EINVAL, UV_EINVAL, "invalid argument")                                                      \
    XX(EIO, UV_EIO, "i/o error")                                                                   \
    XX(EISCONN, UV_EISCONN, "socket is already connected")                                         \
    XX(EISDIR, UV_EISDIR, "illegal operation on a directory")                                      \
    XX(ELOOP, UV_ELOOP, "too many symbolic links encountered")                                     \
    XX(EMFILE, UV_EMFILE, "too many open files")                                                   \
    XX(EMSGSIZE, UV_EMSGSIZE, "message too long")                                                  \
    XX(ENAMETOOLONG, UV_ENAMETOOLONG, "name too long")                                             \
    XX(ENETDOWN, UV_ENETDOWN, "network is down")                                                   \
    XX(ENETUNREACH, UV_ENETUNREACH, "network is unreachable")                                      \
    XX(ENFILE, UV_ENFILE, "file table overflow")                                                   \
    XX(ENOBUFS, UV_ENOBUFS, "no buffer space available")                                           \
    XX(ENODEV, UV_ENODEV, "no such device")                                                        \
    XX(ENOENT, UV_ENOENT, "no such file or directory")                                             \
    XX(ENOMEM, UV_ENOMEM, "not enough memory")                                                     \
    XX(ENONET, UV_ENONET, "machine is not on the network")                                         \
    XX(ENOPROTOOPT, UV_ENOPROTOOPT, "protocol not available")                                      \
    XX(ENOSPC, UV_ENOSPC, "no space left on device")                                               \
    XX(ENOSYS, UV_ENOSYS, "function not implemented")                                              \
    XX(ENOTCONN, UV_ENOTCONN, "socket is not connected")                                           \
    XX(ENOTDIR, UV_ENOTDIR, "not a directory")                                                     \
    XX(ENOTEMPTY, UV_ENOTEMPTY, "directory not empty")                                             \
    XX(ENOTSOCK, UV_ENOTSOCK, "socket operation on non-socket")                                    \
    XX(ENOTSUP, UV_ENOTSUP, "operation not supported on socket")                                   \
    XX(EOVERFLOW, UV_EOVERFLOW, "value too large for defined data type")                           \
    XX(EPERM, UV_EPERM, "operation not permitted")                                                 \
    XX(EPIPE, UV_EPIPE, "broken pipe")                                                             \
    XX(EPROTO, UV_EPROTO, "protocol error")                                                        \
    XX(EPROTONOSUPPORT, UV_EPROTONOSUPPORT, "protocol not supported")                              \
    XX(EPROTOTYPE, UV_EPROTOTYPE, "protocol wrong type for socket")                                \
    XX(ERANGE, UV_ERANGE, "result too large")                                                      \
    XX(EROFS, UV_EROFS, "read-only file system")                                                   \
    XX(ESHUTDOWN, UV_ESHUTDOWN, "cannot send after transport endpoint shutdown")                   \
    XX(ESPIPE, UV_ESPIPE, "invalid seek")                                                          \
    XX(ESRCH, UV_ESRCH, "no such process")                                                         \
    XX(ETIMEDOUT, UV_ETIMEDOUT, "connection timed out")                                            \
    XX(ETXTBSY, UV_ETXTBSY, "text file is busy")                                                   \
    XX(EXDEV, UV_EXDEV, "cross-device link not permitted")                                         \
    XX(UNKNOWN, UV_UNKNOWN, "unknown error")                                                       \
    XX(EOF, UV_EOF, "end of file")                                                                 \
    XX(ENXIO, UV_ENXIO, "no such device or address")                                               \
    XX(EMLINK, UV_EMLINK, "too many links")                                                        \
    XX(EHOSTDOWN, UV_EHOSTDOWN, "host is down")                                                    \
    XX(EREMOTEIO, UV_EREMOTEIO, "remote I/O error")                                                \
    XX(ENOTTY, UV_ENOTTY, "inappropriate ioctl for device")                                        \
    XX(EFTYPE, UV_EFTYPE, "inappropriate file type or format")                                     \
    XX(EILSEQ, UV_EILSEQ, "illegal byte sequence")                                                 \
    XX(ESOCKTNOSUPPORT, UV_ESOCKTNOSUPPORT, "socket type not supported")                           \
    XX(EDEADLK, -EDEADLK, "resource deadlock would occur")                                         \
    XX(EWRONGTHREAD, -5001, "called from a thread that is not the loop's thread")                  \
    XX(EINVALSTATE, -5002, "invalid state for this operation")                                     \
    XX(ECLOSING, -5003, "loop is closing or closed")

typedef enum at_errno {
#define AT_ERRNO_ENUM_(name, value, msg) AT_##name = (value),
    AT_ERRNO_MAP(AT_ERRNO_ENUM_)
#undef AT_ERRNO_ENUM_
        AT_ERRNO_MAX_ = -6000 /* below every code; not an error */
} at_errno_t;

/* The symbolic name of a code ("EINVAL", "EWRONGTHREAD"). An unknown code
 * gives "Unknown error"; the string is static. Any thread. */
AT_EXTERN const char *at_err_name(int code);

/* A human message for a code ("invalid argument"). An unknown code gives
 * "Unknown error"; the string is static. Any thread. */
AT_EXTERN const char *at_strerror(int code);

/* Domain of errors whose code is one of AT_ERRNO_MAP's. Applications may use
 * their own domain strings (static storage) with their own codes. */
#define AT_DOMAIN "asynctop"

/* Creates an error with a reference count of 1: `code` (any int, by
 * convention negative), `domain` (static string; NULL means AT_DOMAIN) and
 * a printf-formatted message (NULL means at_strerror(code)). The raise site
 * is the caller: its return address always, the caller's whole stack (raw
 * addresses, up to AT_STACK_MAX, symbolised only when formatted) in debug
 * mode. Never returns NULL: out of memory gives a static ENOMEM error whose
 * ref/unref are no-ops. Any thread. */
AT_EXTERN at_error_t *at_error_new(int code, const char *domain, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
AT_EXTERN at_error_t *at_error_newv(int code, const char *domain, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

/* Adds a reference (atomic: errors may cross threads) and returns `err`. */
AT_EXTERN at_error_t *at_error_ref(at_error_t *err);
/* Drops a reference; the last one frees the error. NULL is ignored. Any thread. */
AT_EXTERN void at_error_unref(at_error_t *err);

/* Accessors. The strings live as long as the error. Any thread. */
AT_EXTERN int at_error_code(const at_error_t *err);
AT_EXTERN const char *at_error_domain(const at_error_t *err);
AT_EXTERN const char *at_error_message(const at_error_t *err);

/* Copies up to `max` raw return addresses of the raise site, innermost first,
 * into `frames` and returns how many there are in total (1 outside debug mode:
 * the function that called at_error_new). */
AT_EXTERN size_t at_error_stack(const at_error_t *err, void **frames, size_t max);

/* Writes a readable description into `buf` (always NUL-terminated when
 * len > 0): "EINVAL: message" then "Raised at (most recent call first):"
 * and one symbolised line per frame. Symbolises (slow: call off the hot
 * path). Returns the length it wanted, as snprintf does. Any thread. */
AT_EXTERN size_t at_error_format(const at_error_t *err, char *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif
