/* static_uv.c: stands in for a program with libuv linked in statically and its symbols exported
 * (as Node.js does): it defines uv_run itself (built with -rdynamic), so the shim's uv_run is
 * never reached and the shim must say so. Prints "ran" and exits 0; with the argument
 * `forever` it then keeps running until a signal ends it, as a server would. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

__attribute__((visibility("default"))) int uv_run(void *loop, int mode);

int uv_run(void *loop, int mode)
{
    (void)loop;
    return mode;
}

int main(int argc, char **argv)
{
    printf("ran %d\n", uv_run(NULL, 0));
    fflush(stdout);
    if (argc > 1 && !strcmp(argv[1], "forever"))
        for (;;)
            pause();
    return 0;
}
