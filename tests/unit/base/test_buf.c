/* Capped buffers: the cap is enforced without side effects, printf output of any size, consume. */
#include "base/buf.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

static void assert_contents(const struct nm_buf *b, const char *s)
{
    size_t n = strlen(s);
    cr_assert_eq(b->len, n, "len %zu, want %zu", b->len, n);
    if (n)
        cr_assert_eq(memcmp(b->ptr, s, n), 0);
}

Test(buf, init_allocates_nothing)
{
    struct nm_buf b;
    nm_buf_init(&b, 100);
    cr_assert_null(b.ptr);
    cr_assert_eq(b.len, 0);
    cr_assert_eq(b.cap, 0);
    cr_assert_eq(b.max_cap, 100);
    nm_buf_cleanup(&b);
}

Test(buf, append_and_append_str_concatenate)
{
    struct nm_buf b;
    nm_buf_init(&b, 64);
    cr_assert_eq(nm_buf_append(&b, "abc", 3), 0);
    cr_assert_eq(nm_buf_append_str(&b, "def"), 0);
    cr_assert_eq(nm_buf_append(&b, "", 0), 0);
    assert_contents(&b, "abcdef");
    struct nm_slice s = nm_buf_slice(&b);
    cr_assert(nm_slice_eq(s, NM_SLICE_LIT("abcdef")));
    nm_buf_cleanup(&b);
}

Test(buf, append_up_to_the_cap_succeeds_and_one_more_byte_fails)
{
    struct nm_buf b;
    nm_buf_init(&b, 8);
    cr_assert_eq(nm_buf_append(&b, "12345678", 8), 0);
    cr_assert_leq(b.cap, 8);
    cr_assert_eq(nm_buf_append(&b, "9", 1), -EMSGSIZE);
    assert_contents(&b, "12345678");
    nm_buf_cleanup(&b);
}

Test(buf, append_past_the_cap_leaves_the_buffer_unchanged)
{
    struct nm_buf b;
    nm_buf_init(&b, 10);
    cr_assert_eq(nm_buf_append_str(&b, "hello"), 0);
    char *ptr = b.ptr;
    size_t cap = b.cap;
    cr_assert_eq(nm_buf_append_str(&b, "world!"), -EMSGSIZE);
    cr_assert_eq(nm_buf_append(&b, "0123456789abcdef", 16), -EMSGSIZE);
    cr_assert_eq(b.ptr, ptr);
    cr_assert_eq(b.cap, cap);
    assert_contents(&b, "hello");
    cr_assert_eq(nm_buf_append_str(&b, "world"), 0);
    assert_contents(&b, "helloworld");
    nm_buf_cleanup(&b);
}

Test(buf, reserve_refuses_past_the_cap_even_for_huge_requests)
{
    struct nm_buf b;
    nm_buf_init(&b, 32);
    cr_assert_eq(nm_buf_reserve(&b, 33), -EMSGSIZE);
    cr_assert_eq(nm_buf_reserve(&b, (size_t)-1), -EMSGSIZE);
    cr_assert_null(b.ptr);
    cr_assert_eq(nm_buf_reserve(&b, 32), 0);
    cr_assert_geq(b.cap, 32);
    cr_assert_eq(b.len, 0);
    nm_buf_cleanup(&b);
}

Test(buf, appendf_formats_small_output)
{
    struct nm_buf b;
    nm_buf_init(&b, 1024);
    cr_assert_eq(nm_buf_appendf(&b, "%s %d/%zu", "HTTP/1.1", 304, (size_t)7), 0);
    assert_contents(&b, "HTTP/1.1 304/7");
    cr_assert_eq(nm_buf_appendf(&b, "%s", ""), 0);
    assert_contents(&b, "HTTP/1.1 304/7");
    nm_buf_cleanup(&b);
}

Test(buf, appendf_formats_output_longer_than_256_bytes)
{
    char want[1001];
    memset(want, 'x', 1000);
    want[1000] = '\0';
    struct nm_buf b;
    nm_buf_init(&b, 4096);
    cr_assert_eq(nm_buf_append_str(&b, "<"), 0);
    cr_assert_eq(nm_buf_appendf(&b, "%s>%d", want, 42), 0);
    cr_assert_eq(b.len, 1 + 1000 + 1 + 2);
    cr_assert_eq(b.ptr[0], '<');
    cr_assert_eq(memcmp(b.ptr + 1, want, 1000), 0);
    cr_assert_eq(memcmp(b.ptr + 1001, ">42", 3), 0);
    nm_buf_cleanup(&b);
}

Test(buf, appendf_exactly_256_bytes_takes_the_long_path_correctly)
{
    char want[257];
    memset(want, 'y', 256);
    want[256] = '\0';
    struct nm_buf b;
    nm_buf_init(&b, 512);
    cr_assert_eq(nm_buf_appendf(&b, "%s", want), 0);
    assert_contents(&b, want);
    want[255] = '\0';
    cr_assert_eq(nm_buf_appendf(&b, "%s", want), 0);
    cr_assert_eq(b.len, 511);
    nm_buf_cleanup(&b);
}

Test(buf, appendf_past_the_cap_leaves_the_buffer_unchanged)
{
    char big[600];
    memset(big, 'z', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    struct nm_buf b;
    nm_buf_init(&b, 300);
    cr_assert_eq(nm_buf_appendf(&b, "%d", 12345), 0);
    cr_assert_eq(nm_buf_appendf(&b, "%s", big), -EMSGSIZE);
    assert_contents(&b, "12345");
    cr_assert_eq(nm_buf_appendf(&b, "%.295s", big), 0);
    cr_assert_eq(b.len, 300);
    cr_assert_eq(nm_buf_appendf(&b, "%c", 'q'), -EMSGSIZE);
    cr_assert_eq(b.len, 300);
    cr_assert_eq(memcmp(b.ptr, "12345zzz", 8), 0);
    nm_buf_cleanup(&b);
}

Test(buf, consume_drops_a_prefix_and_keeps_the_rest)
{
    struct nm_buf b;
    nm_buf_init(&b, 64);
    cr_assert_eq(nm_buf_append_str(&b, "GET / HTTP/1.1\r\n"), 0);
    nm_buf_consume(&b, 0);
    assert_contents(&b, "GET / HTTP/1.1\r\n");
    nm_buf_consume(&b, 4);
    assert_contents(&b, "/ HTTP/1.1\r\n");
    nm_buf_consume(&b, b.len);
    cr_assert_eq(b.len, 0);
    cr_assert_eq(nm_buf_append_str(&b, "next"), 0);
    assert_contents(&b, "next");
    nm_buf_cleanup(&b);
}

Test(buf, consumed_space_counts_again_towards_the_cap)
{
    struct nm_buf b;
    nm_buf_init(&b, 8);
    cr_assert_eq(nm_buf_append_str(&b, "abcdefgh"), 0);
    nm_buf_consume(&b, 3);
    cr_assert_eq(nm_buf_append_str(&b, "ijk"), 0);
    assert_contents(&b, "defghijk");
    cr_assert_eq(nm_buf_append_str(&b, "l"), -EMSGSIZE);
    nm_buf_cleanup(&b);
}

Test(buf, cleanup_leaves_an_empty_reusable_buffer)
{
    struct nm_buf b;
    nm_buf_init(&b, 16);
    cr_assert_eq(nm_buf_append_str(&b, "abc"), 0);
    nm_buf_cleanup(&b);
    cr_assert_null(b.ptr);
    cr_assert_eq(b.len, 0);
    cr_assert_eq(b.cap, 0);
    cr_assert_eq(nm_buf_append_str(&b, "0123456789abcdef"), 0);
    assert_contents(&b, "0123456789abcdef");
    cr_assert_eq(nm_buf_append_str(&b, "!"), -EMSGSIZE);
    nm_buf_cleanup(&b);
    nm_buf_cleanup(&b);
}

Test(buf, grows_through_many_small_appends)
{
    struct nm_buf b;
    nm_buf_init(&b, 100000);
    for (int i = 0; i < 10000; i++)
        cr_assert_eq(nm_buf_appendf(&b, "%04d", i), 0);
    cr_assert_eq(b.len, 40000);
    cr_assert_eq(memcmp(b.ptr + 4 * 9999, "9999", 4), 0);
    nm_buf_cleanup(&b);
}
