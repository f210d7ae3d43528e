/* The response description's contract (response.h): fields in order with their values in the
 * response's own storage, content pieces and their sum, the caps, the reason phrases. */
#include "serve/response.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

static struct nm_response resp;

static void setup(void)
{
    nm_response_init(&resp);
}

static void teardown(void)
{
    nm_response_cleanup(&resp);
}

TestSuite(response, .init = setup, .fini = teardown);

static bool value_is(size_t i, const char *name, const char *value)
{
    return nm_slice_eq(resp.fields[i].name, nm_slice_from_cstr(name)) &&
           nm_slice_eq(resp.fields[i].value, nm_slice_from_cstr(value));
}

Test(response, a_new_response_is_empty)
{
    cr_assert_eq(resp.status, 0);
    cr_assert_eq(resp.n_fields, 0);
    cr_assert_eq(resp.n_pieces, 0);
    cr_assert_eq(resp.content_bytes, 0);
    cr_assert_eq(resp.etag.len, 0);
    cr_assert_not_null(resp.etag.ptr, "an empty tag, not an absent one, for the log");
}

Test(response, fields_keep_their_order_and_formatted_values)
{
    cr_assert_eq(nm_response_add_field(&resp, "Content-Type", "%s", "text/plain"), 0);
    cr_assert_eq(nm_response_add_field(&resp, "Content-Length", "%d", 14), 0);
    cr_assert_eq(resp.n_fields, 2);
    cr_assert(value_is(0, "Content-Type", "text/plain"));
    cr_assert(value_is(1, "Content-Length", "14"));
}

Test(response, fields_past_the_cap_are_refused_and_nothing_is_added)
{
    for (int i = 0; i < NM_RESPONSE_MAX_FIELDS; i++)
        cr_assert_eq(nm_response_add_field(&resp, "X", "%d", i), 0);
    cr_assert_eq(nm_response_add_field(&resp, "X", "late"), -EMSGSIZE);
    cr_assert_eq(resp.n_fields, NM_RESPONSE_MAX_FIELDS);
}

Test(response, a_value_longer_than_the_text_left_is_refused)
{
    static char big[NM_RESPONSE_TEXT_BYTES + 1];
    memset(big, 'v', sizeof(big) - 1);
    cr_assert_eq(nm_response_add_field(&resp, "Location", "%s", big), -EMSGSIZE);
    cr_assert_eq(resp.n_fields, 0);
    cr_assert_eq(resp.text_len, 0);
    cr_assert_eq(nm_response_add_bytes(&resp, big, sizeof(big)), -EMSGSIZE);
    cr_assert_eq(resp.n_pieces, 0);
}

Test(response, bytes_are_copied_and_borrowed_bytes_are_not)
{
    char body[] = "hello";
    static const char kept[] = "world";
    cr_assert_eq(nm_response_add_bytes(&resp, body, 5), 0);
    cr_assert_eq(nm_response_add_borrowed(&resp, kept, 5), 0);
    body[0] = 'j';
    cr_assert_eq(resp.n_pieces, 2);
    cr_assert_eq(memcmp(resp.pieces[0].bytes, "hello", 5), 0);
    cr_assert_eq(resp.pieces[1].bytes, kept);
    cr_assert_null(resp.pieces[0].file);
    cr_assert_eq(resp.content_bytes, 10);
}

Test(response, pieces_past_the_cap_are_refused)
{
    for (int i = 0; i < NM_RESPONSE_MAX_PIECES; i++)
        cr_assert_eq(nm_response_add_borrowed(&resp, "x", 1), 0);
    cr_assert_eq(nm_response_add_bytes(&resp, "y", 1), -EMSGSIZE);
    cr_assert_eq(nm_response_add_borrowed(&resp, "y", 1), -EMSGSIZE);
    cr_assert_eq(resp.content_bytes, NM_RESPONSE_MAX_PIECES);
}

Test(response, cleanup_leaves_an_empty_response)
{
    cr_assert_eq(nm_response_add_field(&resp, "Allow", "GET"), 0);
    nm_buf_init(&resp.owned, 64);
    cr_assert_eq(nm_buf_append_str(&resp.owned, "<html>"), 0);
    resp.status = 204;
    nm_response_cleanup(&resp);
    cr_assert_eq(resp.status, 0);
    cr_assert_eq(resp.n_fields, 0);
    cr_assert_null(resp.owned.ptr);
}

Test(response, status_phrases_are_rfc_9110s)
{
    cr_assert_str_eq(nm_response_status_phrase(200), "OK");
    cr_assert_str_eq(nm_response_status_phrase(304), "Not Modified");
    cr_assert_str_eq(nm_response_status_phrase(413), "Content Too Large");
    cr_assert_str_eq(nm_response_status_phrase(416), "Range Not Satisfiable");
    cr_assert_str_eq(nm_response_status_phrase(299), "Unknown");
}

Test(response, fields_render_as_lines_and_a_block_splits_back_into_the_same_fields)
{
    cr_assert_not(resp.use_block, "a caller asks for a block");
    cr_assert_eq(nm_response_add_value(&resp, "ETag", NM_SLICE_LIT("\"a\"")), 0);
    cr_assert_eq(nm_response_add_value(&resp, "Content-Type", NM_SLICE_LIT("text/x; q=1:2")), 0);
    cr_assert_eq(nm_response_add_u64(&resp, "Content-Length", 14), 0);
    static const char want[] =
        "ETag: \"a\"\r\nContent-Type: text/x; q=1:2\r\nContent-Length: 14\r\n";
    cr_assert_eq(nm_response_fields_len(&resp, 0), sizeof(want) - 1);
    cr_assert_eq(nm_response_fields_len(&resp, 1), sizeof(want) - 1 - strlen("ETag: \"a\"\r\n"));
    char lines[128];
    char *end = nm_response_put_fields(&resp, 0, lines);
    cr_assert_eq((size_t)(end - lines), sizeof(want) - 1);
    cr_assert_eq(memcmp(lines, want, sizeof(want) - 1), 0);

    struct nm_response other;
    nm_response_init(&other);
    other.block = nm_slice_make(lines, (size_t)(end - lines));
    struct nm_response_field f[4];
    cr_assert_eq(nm_response_block_fields(&other, f, 4), 3);
    for (size_t i = 0; i < 3; i++) {
        cr_assert(nm_slice_eq(f[i].name, resp.fields[i].name));
        cr_assert(nm_slice_eq(f[i].value, resp.fields[i].value));
    }
    cr_assert_eq(nm_response_block_fields(&other, f, 2), 2, "lines past cap are left out");
}

Test(response, a_block_goes_only_before_any_field_and_holds_its_file)
{
    struct nm_file *f = calloc(1, sizeof(*f));
    cr_assert_not_null(f);
    f->refs = 1;
    f->fd = -1;
    static const char block[] = "Content-Encoding: gzip\r\n";
    cr_assert_eq(
        nm_response_set_block(&resp, f, nm_slice_make(block, sizeof(block) - 1), NM_CODING_GZIP),
        0);
    cr_assert_eq(f->refs, 2, "the response holds a reference");
    cr_assert_eq(nm_response_coding(&resp), NM_CODING_GZIP, "the block's Content-Encoding");
    cr_assert_eq(nm_response_set_block(&resp, f, nm_slice_make(block, 1), NM_CODING_GZIP), -EINVAL,
                 "one block");
    nm_response_cleanup(&resp);
    cr_assert_eq(f->refs, 1);
    cr_assert_eq(resp.block.len, 0);
    cr_assert_eq(nm_response_add_value(&resp, "ETag", NM_SLICE_LIT("\"a\"")), 0);
    cr_assert_eq(
        nm_response_set_block(&resp, f, nm_slice_make(block, sizeof(block) - 1), NM_CODING_GZIP),
        -EINVAL, "the block goes before the fields");
    cr_assert_eq(f->refs, 1);
    nm_file_release(f);
}
