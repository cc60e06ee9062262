/* asynctop/stream.h: TCP and Unix-socket streams for tasks (listen, accept, connect,
 * read, write, shutdown, close). */
#ifndef ASYNCTOP_STREAM_H
#define ASYNCTOP_STREAM_H

#include "asynctop/common.h"
#include "asynctop/task.h"

#include <netdb.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A stream belongs to its loop; every call is for the loop's thread, and the
 * waiting ones (accept, connect, read, write, shutdown) for a task. Reads and
 * accepts are cancellable await points (AT_ECANCELED, nothing consumed);
 * connect, write and shutdown finish the operation libuv started before they
 * return AT_ECANCELED (the buffer you passed stays in use until then).
 * Streams still open when the loop closes are reported ("unclosed stream",
 * with where they were opened) and closed. */
typedef struct at_stream at_stream_t;

/* Listens on host:port (numeric IPv4 or IPv6 address; port 0 picks one, see
 * at_stream_port). Returns 0, a libuv error, AT_ENOMEM, AT_EWRONGTHREAD. */
AT_EXTERN int at_tcp_listen(at_loop_t *loop, const char *host, int port, int backlog,
                            at_stream_t **out);
/* Listens on a Unix socket path (unlinks nothing: remove stale paths yourself). */
AT_EXTERN int at_unix_listen(at_loop_t *loop, const char *path, int backlog, at_stream_t **out);
/* The local port of a TCP stream, or -1. */
AT_EXTERN int at_stream_port(const at_stream_t *s);

/* Waits for and accepts one connection. Inside a task. */
AT_EXTERN int at_stream_accept(at_stream_t *server, at_stream_t **out);

/* Connects (numeric address). Inside a task. */
AT_EXTERN int at_tcp_connect(at_loop_t *loop, const char *host, int port, at_stream_t **out);
AT_EXTERN int at_unix_connect(at_loop_t *loop, const char *path, at_stream_t **out);

/* Reads what is available (waiting for at least one byte): returns the count,
 * 0 at end of stream, or a negative error. Inside a task. */
AT_EXTERN ssize_t at_stream_read(at_stream_t *s, void *buf, size_t len);

/* Writes all of buf. Returns 0 or a negative error. Inside a task. */
AT_EXTERN int at_stream_write(at_stream_t *s, const void *buf, size_t len);

/* Sends end-of-stream after pending writes. Inside a task. */
AT_EXTERN int at_stream_shutdown(at_stream_t *s);

/* Closes and frees the stream (libuv finishes closing in the background).
 * Precondition: no task waits on it. NULL is ignored. */
AT_EXTERN void at_stream_close(at_stream_t *s);

/* ---- files (libuv's thread pool) and name resolution, for tasks ---------- */

/* These run on libuv's thread pool and suspend the calling task until done.
 * Cancelling the task cancels the request if it has not started (AT_ECANCELED);
 * one already running is waited for first (the buffer stays in use until then). */

/* open(2): returns a file descriptor or a negative error. */
AT_EXTERN int at_fs_open(at_loop_t *loop, const char *path, int flags, int mode);
/* pread(2) (offset -1: the current position): bytes read, 0 at end, or a negative error. */
AT_EXTERN ssize_t at_fs_read(at_loop_t *loop, int fd, void *buf, size_t len, int64_t offset);
/* pwrite(2) (offset -1: the current position): bytes written or a negative error. */
AT_EXTERN ssize_t at_fs_write(at_loop_t *loop, int fd, const void *buf, size_t len, int64_t offset);
/* close(2): 0 or a negative error. */
AT_EXTERN int at_fs_close(at_loop_t *loop, int fd);

/* getaddrinfo(3): 0 and *res (free it with freeaddrinfo), or a negative
 * AT_EAI_* / libuv error. */
AT_EXTERN int at_getaddrinfo(at_loop_t *loop, const char *node, const char *service,
                             const struct addrinfo *hints, struct addrinfo **res);

#ifdef __cplusplus
}
#endif
#endif
