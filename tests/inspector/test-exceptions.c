/* test-exceptions.c: what the Exceptions screen makes of a message: the list's one-line
 * summary (the error's own words first) and the detail's wrapped lines; and the severity and
 * code the applier reads from an exception event. */
#include <errno.h>
#include <locale.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "Applier.h"
#include "Screens.h"

static int utf8_locale(void **state)
{
    (void)state;
    return setlocale(LC_ALL, "C.UTF-8") ? 0 : -1;
}

static const char *summary(const char *msg)
{
    static char buf[512];
    ExceptionsScreen_summary(msg, buf, sizeof buf);
    return buf;
}

static void test_summary(void **state)
{
    (void)state;
    /* the runtime's task report: the error's line first, then the rest (the title that
     * restates KIND left out) after separators */
    assert_string_equal(summary("Task exception was never retrieved: task: <Task failed "
                                "name='c' id=5>\nerror: ECONNREFUSED (asynctop): connect\nretried"),
                        "ECONNREFUSED (asynctop): connect \n task: <Task failed name='c' id=5> \n "
                        "retried");
    /* a future's: one line, the title that restates KIND left out */
    assert_string_equal(summary("Future exception was never retrieved: EIO (asynctop): disk"),
                        "EIO (asynctop): disk");
    /* anything else: its lines in order, empty ones left out */
    assert_string_equal(summary("tcp handle never closed"), "tcp handle never closed");
    assert_string_equal(summary("a\n\nb\n"), "a \n b");
    assert_string_equal(summary(""), "");
    /* cut, never overrun */
    char small[8];
    ExceptionsScreen_summary("error: 0123456789", small, sizeof small);
    assert_string_equal(small, "0123456");
}

static void test_wrap(void **state)
{
    (void)state;
    TextLines t;
    memset(&t, 0, sizeof t);
    /* width 24: 12 columns of label, 12 of text */
    TextLines_wrap(&t, 0, "  message   ",
                   "one two three four\n\xe6\xbc\xa2\xe5\xad\x97\xe6\xbc\xa2"
                   "\xe5\xad\x97\xe6\xbc\xa2\xe5\xad\x97\xe6\xbc\xa2\nz",
                   24);
    assert_int_equal(t.n, 5);
    assert_string_equal(t.text[0], "  message   one two ");
    assert_string_equal(t.text[1], "            three four");
    /* 7 wide characters: 6 fit in 12 columns, no blank to break at */
    assert_string_equal(t.text[2], "            \u6f22\u5b57\u6f22\u5b57\u6f22\u5b57");
    assert_string_equal(t.text[3], "            \u6f22");
    assert_string_equal(t.text[4], "            z");
    TextLines_free(&t);
    TextLines_wrap(&t, 0, "x ", "", 80);
    assert_int_equal(t.n, 1);
    assert_string_equal(t.text[0], "x ");
    TextLines_free(&t);
}

static void test_severity(void **state)
{
    (void)state;
    Model m;
    Model_init(&m);
    Applier a;
    Applier_init(&a, &m);
    at_wire_exc_t exc[] = {
        /* what older runtimes' exporters sent: the severity as the domain, no code */
        {.seq = 1, .kind = AT_WIRE_EXC_WRONG_THREAD, .domain = "warning", .message = "w"},
        {.seq = 2, .kind = AT_WIRE_EXC_NEVER_RETRIEVED, .domain = "error", .message = "e"},
        /* a real error domain and code, no severity key: the kind says */
        {.seq = 3,
         .kind = AT_WIRE_EXC_NEVER_RETRIEVED,
         .domain = "uv",
         .code = -104,
         .message = "reset"},
        {.seq = 4, .kind = AT_WIRE_EXC_WARNING, .message = "nothing else"},
        /* what the runtime sends now: the severity in its key, the error's code and domain */
        {.seq = 5,
         .kind = AT_WIRE_EXC_NEVER_RETRIEVED,
         .domain = "asynctop",
         .code = -ECONNREFUSED,
         .severity = "error",
         .message = "Task exception was never retrieved: x\nerror: ECONNREFUSED (asynctop): no"},
        /* a warning about no error; a severity that says warning whatever the kind */
        {.seq = 6, .kind = AT_WIRE_EXC_NEVER_AWAITED, .severity = "warning", .message = "c"},
        /* an application's domain: its code is its own, not named; "error" is a domain when a
         * severity key is there; an unknown severity word */
        {.seq = 7,
         .kind = AT_WIRE_EXC_UNHANDLED,
         .domain = "myapp",
         .code = -4242,
         .severity = "fatal",
         .message = "boom"},
        {.seq = 8,
         .kind = AT_WIRE_EXC_UNHANDLED,
         .domain = "error",
         .severity = "warning",
         .message = "x"},
    };
    at_wire_msg_t msg;
    memset(&msg, 0, sizeof msg);
    msg.type = AT_WIRE_UPDATE;
    msg.u.update.full = true;
    msg.u.update.exc = exc;
    msg.u.update.n_exc = 8;
    Applier_apply(&a, &msg, 1);
    assert_int_equal(Model_excCount(&m), 8);
    char buf[200];
    const ExcEvent *e = Model_excAt(&m, 7); /* oldest */
    assert_string_equal(e->severity, "warning");
    assert_string_equal(e->domain, "");
    assert_int_equal(e->code, 0);
    ExceptionsScreen_errorText(e, buf, sizeof buf);
    assert_string_equal(buf, "");
    e = Model_excAt(&m, 6);
    assert_string_equal(e->severity, "error");
    assert_string_equal(e->domain, "");
    e = Model_excAt(&m, 5);
    assert_string_equal(e->severity, "error");
    assert_string_equal(e->domain, "uv");
    assert_int_equal(e->code, -104);
    ExceptionsScreen_errorText(e, buf, sizeof buf);
    assert_string_equal(buf, "uv ECONNRESET (-104)");
    e = Model_excAt(&m, 4);
    assert_string_equal(e->severity, "warning");
    assert_string_equal(e->domain, "");
    e = Model_excAt(&m, 3);
    assert_string_equal(e->severity, "error");
    assert_string_equal(e->domain, "asynctop");
    assert_int_equal(e->code, -ECONNREFUSED);
    ExceptionsScreen_errorText(e, buf, sizeof buf);
    assert_string_equal(buf, "asynctop ECONNREFUSED (-111)");
    e = Model_excAt(&m, 2);
    assert_string_equal(e->severity, "warning");
    e = Model_excAt(&m, 1);
    assert_string_equal(e->severity, "?");
    ExceptionsScreen_errorText(e, buf, sizeof buf);
    assert_string_equal(buf, "myapp -4242");
    e = Model_excAt(&m, 0);
    assert_string_equal(e->severity, "warning");
    assert_string_equal(e->domain, "error");
    ExceptionsScreen_errorText(e, buf, sizeof buf);
    assert_string_equal(buf, "error");
    Applier_done(&a);
    Model_done(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_summary),
        cmocka_unit_test_setup(test_wrap, utf8_locale),
        cmocka_unit_test(test_severity),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
