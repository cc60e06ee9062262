/* test-flame.c: the flame view of a stall's profile (FlameView.h): shares against the counts,
 * heaviest first as the wire sends them, frame names sanitised, lines cut at a frame boundary
 * to the width, the JSON, and a hostile profile (counts beyond the total, more stacks than the
 * model keeps) bounded. */
#include <locale.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "FlameView.h"
#include "Sanitise.h"

static int utf8_locale(void **state)
{
    (void)state;
    return setlocale(LC_ALL, "C.UTF-8") ? 0 : -1;
}

static Profile *profile(uint32_t samples, uint32_t n, const uint32_t *counts,
                        const char *const *const *frames)
{
    Profile *p = calloc(1, sizeof *p);
    p->samples = samples;
    p->interval_ns = 5000000;
    p->n = n;
    uint32_t listed = 0;
    for (uint32_t i = 0; i < n; i++) {
        p->count[i] = counts[i];
        listed += counts[i];
        for (const char *const *f = frames[i]; *f; f++)
            Stack_push(&p->stack[i], *f, SIZE_MAX, NULL, 0, 0, 0x1000);
    }
    p->other = samples - listed;
    return p;
}

static void test_line_shares_and_arrows(void **state)
{
    (void)state;
    static const char *const a[] = {"parse_request", "handle_command", "on_read", NULL};
    static const char *const b[] = {"build_reply", "handle_command", "on_read", NULL};
    const char *const *fr[] = {a, b};
    uint32_t counts[] = {62, 30};
    Profile *p = profile(100, 2, counts, fr);
    char out[512];
    assert_string_equal(FlameView_line(p, 0, 200, false, out, sizeof out),
                        " 62% parse_request \u2190 handle_command \u2190 on_read");
    assert_string_equal(FlameView_line(p, 1, 200, true, out, sizeof out),
                        " 30% build_reply <- handle_command <- on_read");
    /* cut at a frame boundary, with room for the mark, never past the width */
    FlameView_line(p, 0, 37, false, out, sizeof out);
    assert_string_equal(out, " 62% parse_request \u2190 handle_command \u2026");
    assert_int_equal(Sanitise_width(out, 0), 37);
    FlameView_line(p, 0, 22, true, out, sizeof out);
    assert_string_equal(out, " 62% parse_request ...");
    FlameView_line(p, 0, 21, true, out, sizeof out); /* not even the first frame fits */
    assert_string_equal(out, " 62% ...");
    Profile_free(p);
}

static void test_line_sanitises_names(void **state)
{
    (void)state;
    static const char *const a[] = {"evil\x1b[2J",
                                    "\xe2\x80\xae"
                                    "rev",
                                    NULL};
    const char *const *fr[] = {a};
    uint32_t counts[] = {1};
    Profile *p = profile(3, 1, counts, fr);
    char out[512];
    FlameView_line(p, 0, 200, false, out, sizeof out);
    for (const char *c = out; *c; c++)
        assert_true((unsigned char)*c >= 0x20 && *c != 0x7f);
    assert_null(strstr(out, "\xe2\x80\xae")); /* no bidi override */
    assert_non_null(strstr(out, " 33% evil"));
    Profile_free(p);
}

static void test_from_wire_bounds_hostile_counts(void **state)
{
    (void)state;
    Applier a;
    Model *m = calloc(1, sizeof *m); /* large: not on the stack */
    Model_init(m);
    Applier_init(&a, m);
    at_wire_profile_stack_t st[40];
    for (int i = 0; i < 40; i++)
        st[i] = (at_wire_profile_stack_t){(uint32_t)i + 1, 2};
    at_wire_profile_t w = {50, 5000000, 0, 40, st};
    Profile *p = FlameView_fromWire(&a, &w);
    assert_non_null(p);
    assert_int_equal(p->n, 25); /* 25 * 2 = 50: the rest would claim more than the total */
    assert_int_equal(p->other, 0);
    w.samples = 1000;
    Profile_free(p);
    p = FlameView_fromWire(&a, &w);
    assert_int_equal(p->n, MODEL_MAX_PROFILE);
    assert_int_equal(p->other, 1000 - 2 * MODEL_MAX_PROFILE);
    Profile_free(p);
    w.samples = 0;
    assert_null(FlameView_fromWire(&a, &w));
    Applier_done(&a);
    Model_done(m);
    free(m);
}

static void test_json(void **state)
{
    (void)state;
    static const char *const a[] = {"f\"q", "g", NULL};
    const char *const *fr[] = {a};
    uint32_t counts[] = {3};
    Profile *p = profile(4, 1, counts, fr);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    Json j;
    Json_init(&j, f);
    Json_object(&j);
    FlameView_json(&j, "profile", p);
    FlameView_json(&j, "none", NULL);
    Json_end(&j, '}');
    fclose(f);
    assert_non_null(strstr(buf, "\"samples\":4"));
    assert_non_null(strstr(buf, "\"other\":1"));
    assert_non_null(strstr(buf, "\"count\":3"));
    assert_non_null(strstr(buf, "\"share\":0.75"));
    assert_non_null(strstr(buf, "\"func\":\"f\\\"q\""));
    assert_non_null(strstr(buf, "\"none\":null"));
    free(buf);
    Profile_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_line_shares_and_arrows, utf8_locale),
        cmocka_unit_test_setup(test_line_sanitises_names, utf8_locale),
        cmocka_unit_test_setup(test_from_wire_bounds_hostile_counts, utf8_locale),
        cmocka_unit_test_setup(test_json, utf8_locale),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
