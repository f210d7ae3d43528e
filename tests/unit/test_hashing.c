#include <criterion/criterion.h>
Test(hashing, placeholder) {}
