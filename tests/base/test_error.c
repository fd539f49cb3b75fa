/* Error messages: one line of printable ASCII whatever the file or path
 * they quote holds (zip entry names with C1 controls, escape sequences),
 * each such byte shown as \xNN; truncation never cuts an escape. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "base/error.h"

static void assert_printable(const char *s)
{
    for (; *s; s++)
        assert_true(*s >= 0x20 && *s <= 0x7e);
}

static void test_fail_escapes_file_text(void **state)
{
    (void)state;
    sr_error err = {{0}};
    /* CSI as a C1 byte and in UTF-8, an ESC sequence, newline, tab, DEL. */
    const char *name = "a\x9b" "2J\xc2\x9b" "b\x1b[31mc\n\td\x7f\xff";
    assert_int_equal(sr_fail(&err, SR_ERR_FORMAT, "entry '%s' is bad", name), SR_ERR_FORMAT);
    assert_string_equal(err.message, "entry 'a\\x9b2J\\xc2\\x9bb\\x1b[31mc\\x0a\\x09d\\x7f\\xff' is bad");
    assert_int_equal(sr_fail(NULL, SR_ERR_IO, "%s", name), SR_ERR_IO);
}

static void test_truncation_keeps_escapes_whole(void **state)
{
    (void)state;
    char many[700];
    memset(many, 0x01, sizeof many - 1);
    many[sizeof many - 1] = '\0';
    sr_error err = {{0}};
    sr_fail(&err, SR_ERR_FORMAT, "%s", many);
    const size_t len = strlen(err.message);
    assert_true(len < sizeof err.message);
    assert_int_equal(len % 4, 0); /* only whole "\x01" */
    assert_printable(err.message);

    char out[6];
    sr_escape(out, sizeof out, "\x01\x02");
    assert_string_equal(out, "\\x01");
    sr_escape(out, 4, "\x01");
    assert_string_equal(out, "");
    sr_escape(out, 2, "ab");
    assert_string_equal(out, "a");
}

static void test_prefix_escapes_the_path(void **state)
{
    (void)state;
    sr_error err = {{0}};
    sr_fail(&err, SR_ERR_FORMAT, "empty file");
    sr_error_prefix(&err, "/tmp/\x1b]0;owned\x07.pth");
    assert_string_equal(err.message, "/tmp/\\x1b]0;owned\\x07.pth: empty file");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fail_escapes_file_text),
        cmocka_unit_test(test_truncation_keeps_escapes_whole),
        cmocka_unit_test(test_prefix_escapes_the_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
