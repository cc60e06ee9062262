/* export_path.c: resolving, checking and binding the exporter's socket path (tmux's trust model:
 * a 0700 directory we own, checked with lstat; a 0600 socket; stale sockets cleaned). */
#include "export_path.h"

#include "at_wire.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

__attribute__((format(printf, 3, 4))) static int fail(char *err, size_t errsize, const char *fmt,
                                                      ...)
{
    int e = -errno;
    va_list ap;
    va_start(ap, fmt);
    if (err != NULL && errsize > 0)
        vsnprintf(err, errsize, fmt, ap);
    va_end(ap);
    return e < 0 ? e : -EINVAL;
}

static int copy_path(char *dst, const char *src, char *err, size_t errsize)
{
    size_t n = strlen(src);
    if (n > AT_EXPORT_PATH_MAX) {
        errno = ENAMETOOLONG;
        return fail(err, errsize, "socket path %.60s... is longer than %d bytes", src,
                    AT_EXPORT_PATH_MAX);
    }
    memcpy(dst, src, n + 1);
    return 0;
}

int at__export_path_resolve(at_export_path_t *out, const char *override, pid_t pid, char *err,
                            size_t errsize)
{
    assert(out != NULL);
    memset(out, 0, sizeof *out);
    const char *env = override;
    if (env == NULL || env[0] == '\0')
        env = getenv("ASYNCTOP_SOCKET");
    if (env != NULL && strcmp(env, "off") == 0)
        return 1;
    if (env != NULL && env[0] != '\0') {
        if (env[0] != '/') {
            errno = EINVAL;
            return fail(err, errsize, "ASYNCTOP_SOCKET=%s is not an absolute path (or 'off')", env);
        }
        return copy_path(out->path, env, err, errsize);
    }

    char dir[AT_EXPORT_PATH_MAX + 64]; /* the rule is the protocol's: wire_common.c */
    at_wire_socket_dir(dir, sizeof dir);
    int r = copy_path(out->dir, dir, err, errsize);
    if (r < 0)
        return r;
    char path[sizeof dir + 32];
    at_wire_socket_path(path, sizeof path, (uint64_t)pid);
    return copy_path(out->path, path, err, errsize);
}

int at__export_parse_uint(const char *s, unsigned lo, unsigned hi, unsigned *out)
{
    assert(out != NULL);
    if (s == NULL || *s < '0' || *s > '9') /* strtoul would take blanks, '+' and '-' */
        return -EINVAL;
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (*end != '\0')
        return -EINVAL;
    if (errno != 0 || v < lo || v > hi)
        return -ERANGE;
    *out = (unsigned)v;
    return 0;
}

int at__export_dir_prepare(const char *dir, uid_t uid, char *err, size_t errsize)
{
    struct stat st;
    if (mkdir(dir, S_IRWXU) != 0 && errno != EEXIST)
        return fail(err, errsize, "cannot create directory %s: %s", dir, strerror(errno));
    if (lstat(dir, &st) != 0)
        return fail(err, errsize, "cannot stat %s: %s", dir, strerror(errno));
    if (S_ISLNK(st.st_mode)) {
        errno = ELOOP;
        return fail(err, errsize, "%s is a symlink, not a directory; remove it", dir);
    }
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return fail(err, errsize, "%s is not a directory; remove it", dir);
    }
    if (st.st_uid != uid) {
        errno = EACCES;
        return fail(err, errsize, "%s is owned by uid %lu, not by us (uid %lu)", dir,
                    (unsigned long)st.st_uid, (unsigned long)uid);
    }
    if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
        errno = EACCES;
        return fail(err, errsize, "%s has mode %04o; it must be 0700 (chmod 0700 %s)", dir,
                    (unsigned)(st.st_mode & 07777), dir);
    }
    return 0;
}

/* 1 if something accepts connections at `path`, 0 if not (ECONNREFUSED: a stale socket), a
 * negative errno if the answer is unknown. */
static int socket_is_live(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path)
        return -ENAMETOOLONG;
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    int r = connect(fd, (struct sockaddr *)&sa, sizeof sa);
    int e = errno;
    close(fd);
    if (r == 0 || e == EAGAIN || e == EINPROGRESS)
        return 1; /* EAGAIN: the backlog is full, so someone listens */
    if (e == ECONNREFUSED)
        return 0;
    return -e;
}

int at__export_dir_clean_stale(const char *dir, pid_t self)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return 0;
    int removed = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        char *end;
        errno = 0;
        long pid = strtol(de->d_name, &end, 10);
        if (errno != 0 || end == de->d_name || strcmp(end, ".sock") != 0 || pid <= 0 ||
            pid == (long)self)
            continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue; /* alive, or alive under another uid (EPERM) */
        char path[AT_EXPORT_PATH_MAX + 300];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        struct stat st;
        if (lstat(path, &st) != 0 || !S_ISSOCK(st.st_mode))
            continue;
        if (socket_is_live(path) != 0)
            continue; /* a process in another pid namespace may own it */
        if (unlink(path) == 0)
            removed++;
    }
    closedir(d);
    return removed;
}

int at__export_listen(const char *path, int backlog, at_export_sockid_t *id, char *err,
                      size_t errsize)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    struct stat st;
    if (strlen(path) >= sizeof sa.sun_path) {
        errno = ENAMETOOLONG;
        return fail(err, errsize, "socket path %s is too long", path);
    }
    strcpy(sa.sun_path, path);

    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            errno = EEXIST;
            return fail(err, errsize, "%s exists and is not a socket; not touching it", path);
        }
        int live = socket_is_live(path);
        if (live != 0) {
            errno = live > 0 ? EADDRINUSE : -live;
            return fail(err, errsize, "%s is in use by another process", path);
        }
        if (unlink(path) != 0 && errno != ENOENT)
            return fail(err, errsize, "cannot remove stale socket %s: %s", path, strerror(errno));
    }

    /* Bound and listening under a temporary name next to `path`, then linked to `path`: whoever
     * finds the path finds a socket that accepts. (Bound at `path` directly, it existed for a
     * moment before listen(), and a client connecting then got ECONNREFUSED and took it for a
     * stale socket: asynctop --demo and asynctop run connect as soon as the path appears.)
     * link() fails if `path` appeared meanwhile, as bind() would. A path too long for the
     * temporary name is bound directly. */
    char tmp[sizeof sa.sun_path];
    int tn = snprintf(tmp, sizeof tmp, "%s.%d.tmp", path, (int)getpid());
    bool direct = tn < 0 || (size_t)tn >= sizeof tmp;
    if (!direct) {
        strcpy(sa.sun_path, tmp);
        (void)unlink(tmp); /* left by a process of ours, same pid, that died here */
    }
    const char *bound = direct ? path : tmp;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return fail(err, errsize, "socket: %s", strerror(errno));
    /* On Linux the mode of the socket file is the unbound socket inode's mode less the umask:
     * setting it here binds at 0600 at most without touching the process-wide umask, which
     * other threads of the program may be relying on. */
    if (fchmod(fd, S_IRUSR | S_IWUSR) != 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        int r = fail(err, errsize, "cannot bind %s: %s", bound, strerror(errno));
        close(fd);
        return r;
    }
    if (lstat(bound, &st) != 0 || !S_ISSOCK(st.st_mode) ||
        ((st.st_mode & 0777) != 0600 && chmod(bound, 0600) != 0) || listen(fd, backlog) != 0) {
        int r = fail(err, errsize, "cannot set up %s: %s", bound, strerror(errno));
        unlink(bound);
        close(fd);
        return r;
    }
    if (!direct) {
        int r = 0;
        if (link(tmp, path) != 0) {
            int e = errno;
            errno = e == EEXIST ? EADDRINUSE : e;
            r = e == EEXIST ? fail(err, errsize, "%s is in use by another process", path)
                            : fail(err, errsize, "cannot link %s: %s", path, strerror(e));
        }
        unlink(tmp);
        if (r != 0) {
            close(fd);
            return r;
        }
    }
    if (lstat(path, &st) != 0) {
        int r = fail(err, errsize, "cannot stat %s: %s", path, strerror(errno));
        unlink(path);
        close(fd);
        return r;
    }
    id->dev = st.st_dev;
    id->ino = st.st_ino;
    id->mtime_sec = (long)st.st_mtim.tv_sec;
    id->mtime_nsec = st.st_mtim.tv_nsec;
    return fd;
}

void at__export_unlink_if_ours(const char *path, const at_export_sockid_t *id)
{
    struct stat st;
    if (path[0] != '\0' && lstat(path, &st) == 0 && st.st_dev == id->dev && st.st_ino == id->ino &&
        (long)st.st_mtim.tv_sec == id->mtime_sec && st.st_mtim.tv_nsec == id->mtime_nsec)
        unlink(path);
}
