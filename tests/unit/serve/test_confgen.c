/* Config generations: references, publishing, and freeing when the last holder lets go. */
#include "serve/confgen.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

static struct nm_config *new_config(const char *root)
{
    struct nm_config *cfg = malloc(sizeof(*cfg));
    cr_assert_not_null(cfg);
    nm_config_init(cfg);
    cfg->root = strdup(root);
    return cfg;
}

Test(confgen, the_first_generation_is_one_and_each_publish_adds_one)
{
    struct nm_config first;
    nm_config_init(&first);
    struct nm_confgen_slot slot;
    nm_confgen_slot_init(&slot, nm_confgen_new(&first, false));
    cr_expect_eq(slot.current->seq, 1);
    cr_expect_not(nm_confgen_slot_is_newer(&slot, 1));
    nm_confgen_slot_publish(&slot, nm_confgen_new(new_config("/b"), true));
    cr_expect_eq(slot.current->seq, 2);
    cr_expect(nm_confgen_slot_is_newer(&slot, 1));
    cr_expect_not(nm_confgen_slot_is_newer(&slot, 2));
    nm_confgen_slot_cleanup(&slot);
    nm_config_cleanup(&first); /* not owned: still the caller's */
}

Test(confgen, a_holder_keeps_an_old_generation_alive_after_a_publish)
{
    struct nm_confgen_slot slot;
    nm_confgen_slot_init(&slot, nm_confgen_new(new_config("/a"), true));
    struct nm_confgen *held = nm_confgen_slot_take(&slot);
    nm_confgen_slot_publish(&slot, nm_confgen_new(new_config("/b"), true));
    /* The slot dropped its reference; the holder's keeps the settings readable (ASan checks). */
    cr_expect_str_eq(held->cfg->root, "/a");
    struct nm_confgen *now = nm_confgen_slot_take(&slot);
    cr_expect_str_eq(now->cfg->root, "/b");
    nm_confgen_release(held); /* the last reference: freed with its config (LeakSanitizer) */
    nm_confgen_release(now);
    nm_confgen_slot_cleanup(&slot);
}

Test(confgen, releasing_null_does_nothing)
{
    nm_confgen_release(NULL);
}
