/* fuzz_applier.c: fuzz target for the inspector's update applier: any bytes
 * decoded as a server frame, applied to a model, then every view built from
 * it (sort, tree, groups, JSON). With -DFUZZ_REPLAY, a main replays the
 * golden frames (and every prefix of them) given as arguments or a directory. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "Applier.h"
#include "Report.h"
#include "TaskTree.h"
#include "TaskView.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static Model model;
static Applier applier;
static int ready, runs;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!ready || ++runs % 256 == 0) { /* bounded state: start over now and then */
        if (ready) {
            Applier_done(&applier);
            Model_done(&model);
        }
        Model_init(&model);
        Applier_init(&applier, &model);
        ready = 1;
    }
    if (size < 4)
        return 0;
    at_wire_msg_t msg;
    at_wire_err_t err;
    memset(&msg, 0, sizeof msg);
    if (at_wire_decode(data + 4, size - 4, &at_wire_limits_s2c, &msg, &err) == 0) {
        Applier_apply(&applier, &msg, (uint64_t)runs * 1000);
        at_wire_msg_free(&msg);
    }
    Model_purge(&model, (uint64_t)runs * 1000);
    TaskView v;
    TaskView_init(&v);
    TaskView_setSort(&v, (TaskColumn)(runs % TC_COUNT), runs & 1);
    TaskView_update(&v, &model);
    TaskView_done(&v);
    TaskTree t;
    TaskTree_init(&t);
    TaskTree_update(&t, &model);
    TaskTree_done(&t);
    TaskGroups g;
    TaskGroups_init(&g);
    TaskGroups_update(&g, &model);
    TaskGroups_done(&g);
    FILE *f = fopen("/dev/null", "w");
    if (f) {
        Report_json(f, &model, &applier);
        fclose(f);
    }
    return 0;
}

#ifdef FUZZ_REPLAY
/* Reads a golden .hex file (hex digits, '#' comments) into bytes. */
static size_t read_hex(const char *path, uint8_t *out, size_t max)
{
    FILE *f = fopen(path, "r");
    size_t n = 0;
    int c, hi = -1, comment = 0;
    if (!f)
        return 0;
    while ((c = fgetc(f)) != EOF && n < max) {
        if (c == '#')
            comment = 1;
        if (c == '\n')
            comment = 0;
        if (comment)
            continue;
        int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (v < 0)
            continue;
        if (hi < 0)
            hi = v;
        else {
            out[n++] = (uint8_t)(hi << 4 | v);
            hi = -1;
        }
    }
    fclose(f);
    return n;
}

static int replay(const char *path)
{
    static uint8_t buf[1 << 20];
    size_t n = read_hex(path, buf, sizeof buf);
    if (!n)
        return 0;
    for (size_t k = 0; k <= n; k++)
        LLVMFuzzerTestOneInput(buf, k);
    /* the same frame twice, as a delta after itself */
    LLVMFuzzerTestOneInput(buf, n);
    return 1;
}

int main(int argc, char **argv)
{
    int files = 0;
    for (int i = 1; i < argc; i++) {
        DIR *d = opendir(argv[i]);
        if (!d) {
            files += replay(argv[i]);
            continue;
        }
        struct dirent *e;
        while ((e = readdir(d))) {
            size_t l = strlen(e->d_name);
            if (l < 5 || strcmp(e->d_name + l - 4, ".hex"))
                continue;
            char p[4096];
            snprintf(p, sizeof p, "%s/%s", argv[i], e->d_name);
            files += replay(p);
        }
        closedir(d);
    }
    if (ready) {
        Applier_done(&applier);
        Model_done(&model);
    }
    printf("fuzz_applier: replayed %d frames and their prefixes\n", files);
    return files > 0 ? 0 : 1;
}
#endif
