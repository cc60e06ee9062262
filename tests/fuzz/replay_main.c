/* replay_main.c: a plain main for fuzz targets built without libFuzzer — runs the target on every
 * seed file (hex golden frames or raw files) and directory given. */
#include "fuzz_common.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Reads a file; files ending in .hex are golden frames in hex (with #
 * comments) and are converted to bytes. */
static uint8_t *load(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    uint8_t *buf = malloc(cap);
    int c;
    while (buf && (c = fgetc(f)) != EOF) {
        if (n == cap) {
            uint8_t *p = realloc(buf, cap *= 2);
            if (!p) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = p;
        }
        buf[n++] = (uint8_t)c;
    }
    fclose(f);
    if (!buf)
        return NULL;
    size_t pl = strlen(path);
    if (pl > 4 && strcmp(path + pl - 4, ".hex") == 0) {
        size_t out = 0;
        int hi = -1, comment = 0;
        for (size_t i = 0; i < n; i++) {
            int ch = buf[i];
            if (ch == '#')
                comment = 1;
            if (ch == '\n')
                comment = 0;
            int v = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
            if (comment || v < 0)
                continue;
            if (hi < 0) {
                hi = v;
            } else {
                buf[out++] = (uint8_t)(hi << 4 | v);
                hi = -1;
            }
        }
        n = out;
    }
    *len = n;
    return buf;
}

static int run_file(const char *path)
{
    size_t len;
    uint8_t *data = load(path, &len);
    if (!data) {
        perror(path);
        return 1;
    }
    LLVMFuzzerTestOneInput(data, len);
    /* and every prefix: truncations are the commonest hostile input */
    for (size_t cut = 0; cut < len; cut++) {
        uint8_t *p = malloc(cut ? cut : 1);
        memcpy(p, data, cut);
        LLVMFuzzerTestOneInput(p, cut);
        free(p);
    }
    free(data);
    return 0;
}

int main(int argc, char **argv)
{
    int files = 0, bad = 0;
    for (int i = 1; i < argc; i++) {
        DIR *d = opendir(argv[i]);
        if (!d) {
            bad |= run_file(argv[i]);
            files++;
            continue;
        }
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.')
                continue;
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", argv[i], e->d_name);
            bad |= run_file(path);
            files++;
        }
        closedir(d);
    }
    printf("%s: replayed %d inputs (and all their prefixes)\n", argv[0], files);
    return bad || files == 0;
}
