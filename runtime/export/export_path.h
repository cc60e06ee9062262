/* export_path.h: where the exporter's socket lives and how the path is made safe to bind. */
#ifndef ASYNCTOP_EXPORT_PATH_H
#define ASYNCTOP_EXPORT_PATH_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Longest socket path (sockaddr_un.sun_path without its NUL). */
#define AT_EXPORT_PATH_MAX 107

/* The resolved location. `dir` is empty for an ASYNCTOP_SOCKET override (whose directory is
 * the user's choice and is neither created nor scanned). */
typedef struct at_export_path {
    char path[AT_EXPORT_PATH_MAX + 1];
    char dir[AT_EXPORT_PATH_MAX + 1];
} at_export_path_t;

/* Resolves the socket path for process `pid` from `override` (a configured path, may be NULL),
 * else ASYNCTOP_SOCKET, else $XDG_RUNTIME_DIR/asynctop/<pid>.sock, else
 * /tmp/asynctop-<uid>/<pid>.sock. Returns 0; 1 when the exporter is disabled
 * (ASYNCTOP_SOCKET=off); or a negative errno with a reason in `err` (relative or too-long path).
 * Reads the environment: call it from one thread at a time. */
int at__export_path_resolve(at_export_path_t *out, const char *override, pid_t pid, char *err,
                            size_t errsize);

/* Strict parse of an unsigned decimal setting (ASYNCTOP_MAX_CLIENTS): digits only, no sign, no
 * blanks, within lo..hi. 0 and *out set, or -EINVAL (not a number) / -ERANGE (outside lo..hi);
 * *out is untouched on error. Any input is safe, NULL included. Any thread. */
int at__export_parse_uint(const char *s, unsigned lo, unsigned hi, unsigned *out);

/* Creates `dir` mode 0700 if missing, then checks with lstat that it is a directory (not a
 * symlink), owned by `uid`, with no group or other permission bits. 0, or a negative errno with
 * the reason ("... is a symlink", "... is owned by uid 1000", "... has mode 0755") in `err`. */
int at__export_dir_prepare(const char *dir, uid_t uid, char *err, size_t errsize);

/* Removes sockets `<pid>.sock` left in `dir` by processes that no longer exist (kill(pid, 0)
 * fails with ESRCH) and that nobody listens on. Leaves anything else alone. Returns how many it
 * removed. `self` is never considered stale by pid (its path is handled by the bind). */
int at__export_dir_clean_stale(const char *dir, pid_t self);

/* Identity of the socket file we bound: a successor may get the same inode number. */
typedef struct at_export_sockid {
    dev_t dev;
    ino_t ino;
    long mtime_sec, mtime_nsec; /* set by bind; chmod does not change it */
} at_export_sockid_t;

/* Binds and listens on `path`: a stale socket there (nobody accepts on it) is replaced; a live
 * one or a non-socket refuses with -EADDRINUSE / -EEXIST. The socket is created 0600 — its mode
 * is set before bind, so it never exists with wider permissions and the process-wide umask is
 * not touched. `path` appears only once the socket listens (bound as `path.PID.tmp`, then
 * linked), so a client never finds it refusing connections while it starts; a path within 16
 * bytes of the sun_path limit is bound directly. Returns the listening fd (non-blocking,
 * close-on-exec) and the bound file's identity in *id, or a negative errno with a reason in
 * `err`. */
int at__export_listen(const char *path, int backlog, at_export_sockid_t *id, char *err,
                      size_t errsize);

/* Unlinks `path` if it is still the socket we bound (same identity), so a successor's socket
 * is never removed. Async-signal-safe (lstat, unlink). */
void at__export_unlink_if_ours(const char *path, const at_export_sockid_t *id);

#endif
