/* fs.c: file I/O and name resolution for tasks, on libuv's thread pool. */
#include "tasks.h"

#include "asynctop/stream.h"

#include <assert.h>
#include <fcntl.h>

/* One thread-pool request a task waits for. */
typedef struct pool_op {
    at__waitq_t wq;
    bool done;
    ssize_t result;
} pool_op_t;

/* Waits for the request; on cancellation, cancels it if it has not started
 * and waits for its callback either way (libuv owns `req` until then). */
static AT__AWAIT_TEXT ssize_t pool_wait(pool_op_t *op, uv_req_t *req)
{
    bool cancelled = false;
    while (!op->done) {
        at__waiter_t w;
        int rc = at__waitq_wait(&op->wq, &w, AT_WAIT_FUTURE, 0);
        if (rc == AT_ECANCELED) {
            cancelled = true;
            uv_cancel(req);
        } else if (rc != 0) {
            return rc;
        }
    }
    if (cancelled || op->result == UV_ECANCELED)
        return AT_ECANCELED;
    return op->result;
}

static void pool_done(pool_op_t *op, ssize_t result)
{
    op->done = true;
    op->result = result;
    at__waitq_wake_one(&op->wq, NULL);
}

static void on_fs(uv_fs_t *req)
{
    pool_done(req->data, req->result);
}

static AT__AWAIT_TEXT ssize_t fs_finish(uv_fs_t *req, pool_op_t *op, int rc)
{
    if (rc != 0) {
        uv_fs_req_cleanup(req);
        return rc;
    }
    ssize_t r = pool_wait(op, (uv_req_t *)req);
    uv_fs_req_cleanup(req);
    return r;
}

AT__AWAIT_TEXT int at_fs_open(at_loop_t *loop, const char *path, int flags, int mode)
{
    if (!at__task_current())
        return AT_EINVALSTATE;
    pool_op_t op = {0};
    uv_fs_t req;
    req.data = &op;
    int rc = uv_fs_open(at_loop_uv(loop), &req, path, flags | O_CLOEXEC, mode, on_fs);
    return (int)fs_finish(&req, &op, rc);
}

AT__AWAIT_TEXT ssize_t at_fs_read(at_loop_t *loop, int fd, void *buf, size_t len, int64_t offset)
{
    if (!at__task_current())
        return AT_EINVALSTATE;
    pool_op_t op = {0};
    uv_fs_t req;
    req.data = &op;
    uv_buf_t b = uv_buf_init(buf, (unsigned)len);
    int rc = uv_fs_read(at_loop_uv(loop), &req, fd, &b, 1, offset, on_fs);
    return fs_finish(&req, &op, rc);
}

AT__AWAIT_TEXT ssize_t at_fs_write(at_loop_t *loop, int fd, const void *buf, size_t len,
                                   int64_t offset)
{
    if (!at__task_current())
        return AT_EINVALSTATE;
    pool_op_t op = {0};
    uv_fs_t req;
    req.data = &op;
    uv_buf_t b = uv_buf_init((char *)buf, (unsigned)len);
    int rc = uv_fs_write(at_loop_uv(loop), &req, fd, &b, 1, offset, on_fs);
    return fs_finish(&req, &op, rc);
}

AT__AWAIT_TEXT int at_fs_close(at_loop_t *loop, int fd)
{
    if (!at__task_current())
        return AT_EINVALSTATE;
    pool_op_t op = {0};
    uv_fs_t req;
    req.data = &op;
    int rc = uv_fs_close(at_loop_uv(loop), &req, fd, on_fs);
    return (int)fs_finish(&req, &op, rc);
}

static void on_getaddrinfo(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    pool_op_t *op = req->data;
    if (status == 0)
        req->addrinfo = res;
    pool_done(op, status);
}

AT__AWAIT_TEXT int at_getaddrinfo(at_loop_t *loop, const char *node, const char *service,
                                  const struct addrinfo *hints, struct addrinfo **res)
{
    if (!at__task_current())
        return AT_EINVALSTATE;
    pool_op_t op = {0};
    uv_getaddrinfo_t req;
    req.data = &op;
    int rc = uv_getaddrinfo(at_loop_uv(loop), &req, on_getaddrinfo, node, service, hints);
    if (rc != 0)
        return rc;
    ssize_t r = pool_wait(&op, (uv_req_t *)&req);
    if (r == 0)
        *res = req.addrinfo;
    else if (op.result == 0 && req.addrinfo)
        uv_freeaddrinfo(req.addrinfo); /* cancelled after it succeeded */
    return (int)r;
}
