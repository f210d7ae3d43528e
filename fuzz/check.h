/* Property checks for the fuzz targets. They hold under -DNDEBUG too: the fuzz preset is an
 * optimized build, in which assert() would check nothing. */
#ifndef NOTMOD_FUZZ_CHECK_H
#define NOTMOD_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define nm_fuzz_check(ok) ((ok) ? (void)0 : nm_fuzz_fail(#ok, __FILE__, __LINE__))

static inline void nm_fuzz_fail(const char *what, const char *file, int line)
{
    fprintf(stderr, "%s:%d: property does not hold: %s\n", file, line, what);
    abort();
}

#endif
