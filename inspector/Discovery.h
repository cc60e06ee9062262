/* Discovery.h: where targets put their sockets, and which are there. */
#ifndef ASYNCTOP_DISCOVERY_H
#define ASYNCTOP_DISCOVERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DISCOVERY_MAX 1024 /* sockets listed at most */

typedef struct Target {
    uint64_t pid;
    char path[256];
    bool alive;    /* a process with that pid exists */
    char comm[64]; /* /proc/<pid>/comm, "" when unknown */
} Target;

/* The socket directory, by the protocol's rule (at_wire_socket_dir):
 * $XDG_RUNTIME_DIR/asynctop when XDG_RUNTIME_DIR is an absolute path, else
 * /tmp/asynctop-<effective uid>. Writes into buf (NUL-terminated). */
void Discovery_dir(char *buf, size_t len);
/* The socket path of pid: ASYNCTOP_SOCKET when set (and not "off") applies
 * to any pid; else <dir>/<pid>.sock. */
void Discovery_path(uint64_t pid, char *buf, size_t len);
/* Lists <pid>.sock entries of the socket directory (and ASYNCTOP_SOCKET if
 * set and present), sorted by pid. Returns how many (<= max), 0 when the
 * directory does not exist. */
size_t Discovery_list(Target *out, size_t max);
/* Whether a process with this pid exists (kill(pid, 0) or EPERM). */
bool Discovery_alive(uint64_t pid);
/* /proc/<pid>/comm into buf ("" when unknown). */
void Discovery_comm(uint64_t pid, char *buf, size_t len);

#endif
