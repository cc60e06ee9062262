/* Discovery.c: socket paths and the listing of attachable processes. */
#include "Discovery.h"
#include "at_wire.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void Discovery_dir(char *buf, size_t len)
{
    at_wire_socket_dir(buf, len); /* the runtime's rule, the protocol's (wire_common.c) */
}

void Discovery_path(uint64_t pid, char *buf, size_t len)
{
    const char *env = getenv("ASYNCTOP_SOCKET");
    if (env && env[0] && strcmp(env, "off") != 0)
        snprintf(buf, len, "%s", env);
    else
        at_wire_socket_path(buf, len, pid);
}

bool Discovery_alive(uint64_t pid)
{
    if (pid == 0 || pid > 0x7fffffff)
        return false;
    return kill((pid_t)pid, 0) == 0 || errno == EPERM;
}

void Discovery_comm(uint64_t pid, char *buf, size_t len)
{
    char p[64];
    buf[0] = '\0';
    snprintf(p, sizeof p, "/proc/%llu/comm", (unsigned long long)pid);
    FILE *f = fopen(p, "r");
    if (!f)
        return;
    if (fgets(buf, (int)len, f))
        buf[strcspn(buf, "\n")] = '\0';
    fclose(f);
}

static int cmp_target(const void *a, const void *b)
{
    const Target *x = a, *y = b;
    return (x->pid > y->pid) - (x->pid < y->pid);
}

size_t Discovery_list(Target *out, size_t max)
{
    char dir[200];
    size_t n = 0;
    Discovery_dir(dir, sizeof dir);
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while (n < max && (e = readdir(d))) {
            char *end;
            errno = 0;
            unsigned long long pid = strtoull(e->d_name, &end, 10);
            if (errno || end == e->d_name || strcmp(end, ".sock") != 0 || pid == 0)
                continue;
            Target *t = &out[n];
            memset(t, 0, sizeof *t);
            t->pid = pid;
            if (snprintf(t->path, sizeof t->path, "%s/%s", dir, e->d_name) >= (int)sizeof t->path)
                continue;
            struct stat st;
            if (lstat(t->path, &st) != 0 || !S_ISSOCK(st.st_mode))
                continue;
            t->alive = Discovery_alive(pid);
            Discovery_comm(pid, t->comm, sizeof t->comm);
            n++;
        }
        closedir(d);
    }
    qsort(out, n, sizeof *out, cmp_target);
    return n;
}
