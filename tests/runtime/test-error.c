/* test-error.c: the error-code table (names, messages, identity with libuv's codes) and at_error_t
 * objects. */
#include "test-core-util.h"

static void test_names_and_messages(void **state)
{
    (void)state;
    assert_string_equal(at_err_name(AT_EINVAL), "EINVAL");
    assert_string_equal(at_strerror(AT_EINVAL), "invalid argument");
    assert_string_equal(at_err_name(AT_EWRONGTHREAD), "EWRONGTHREAD");
    assert_string_equal(at_strerror(AT_EWRONGTHREAD),
                        "called from a thread that is not the loop's thread");
    assert_string_equal(at_err_name(AT_EDEADLK), "EDEADLK");
    assert_string_equal(at_err_name(12345), "Unknown error");
    assert_string_equal(at_strerror(0), "Unknown error");
    assert_int_equal(AT_EINVAL, -EINVAL);
    assert_int_equal(AT_ETIMEDOUT, -ETIMEDOUT);
    assert_int_equal(AT_ECANCELED, -ECANCELED);
    assert_int_equal(AT_EOF, UV_EOF);
    assert_int_equal(AT_EAI_NONAME, UV_EAI_NONAME);
}

/* Every libuv code is an asynctop code with the same name. */
static void test_libuv_codes_identical(void **state)
{
    (void)state;
    int n = 0;
#define CHECK_(name, value, msg)                                                                   \
    if ((int)(value) > -5000 && (int)(value) != (int)AT_EDEADLK) {                                 \
        assert_string_equal(at_err_name(value), uv_err_name(value));                               \
        assert_string_equal(at_strerror(value), uv_strerror(value));                               \
        n++;                                                                                       \
    }
    AT_ERRNO_MAP(CHECK_)
#undef CHECK_
    assert_true(n > 70);
}

static void test_error_objects(void **state)
{
    (void)state;
    at_error_t *e = at_error_new(AT_EINVAL, NULL, "bad value %d", 5);
    assert_int_equal(at_error_code(e), AT_EINVAL);
    assert_string_equal(at_error_domain(e), AT_DOMAIN);
    assert_string_equal(at_error_message(e), "bad value 5");
    assert_ptr_equal(at_error_ref(e), e);
    at_error_unref(e);
    at_error_unref(e);

    e = at_error_new(42, "myapp", NULL);
    assert_string_equal(at_error_domain(e), "myapp");
    assert_string_equal(at_error_message(e), "Unknown error");
    at_error_unref(e);

    char big[1000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    e = at_error_new(AT_EIO, NULL, "%s!", big);
    assert_int_equal(strlen(at_error_message(e)), sizeof big);
    at_error_unref(e);
    at_error_unref(NULL);
}

static __attribute__((noinline)) at_error_t *raise_it(void)
{
    at_error_t *e = at_error_new(AT_EPIPE, NULL, "peer closed");
    __asm__ volatile("" ::: "memory"); /* no tail call: raise_it must be on the stack */
    return e;
}

static void test_raise_site(void **state)
{
    (void)state;
    void *frames[AT_STACK_MAX];
    char buf[4096];
    at_error_t *e = raise_it();
    assert_int_equal(at_error_stack(e, frames, AT_STACK_MAX), 1); /* the caller, always */
    at_error_format(e, buf, sizeof buf);
    assert_contains(buf, "EPIPE (asynctop): peer closed");
    assert_contains(buf, "raise_it");
    at_error_unref(e);

    at_set_debug(true);
    e = raise_it();
    at_set_debug(false);
    size_t n = at_error_stack(e, frames, AT_STACK_MAX);
    assert_true(n >= 2);
    at_error_format(e, buf, sizeof buf);
    assert_contains(buf, "#0 raise_it");
    assert_contains(buf, "test_raise_site");
    /* truncation keeps the string terminated and reports the length wanted */
    char small[8];
    size_t want = at_error_format(e, small, sizeof small);
    assert_true(want > sizeof small);
    assert_int_equal(strlen(small), sizeof small - 1);
    at_error_unref(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_and_messages),
        cmocka_unit_test(test_libuv_codes_identical),
        cmocka_unit_test(test_error_objects),
        cmocka_unit_test(test_raise_site),
    };
    return cmocka_run_group_tests_name("error", tests, NULL, NULL);
}
