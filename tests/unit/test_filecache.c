#include <criterion/criterion.h>
Test(filecache, placeholder) {}
