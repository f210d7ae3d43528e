/* The variants layer's interface to the layers above it: the only header of src/variants/ that
 * code outside the folder includes. */
#ifndef NOTMOD_VARIANTS_VARIANTS_H
#define NOTMOD_VARIANTS_VARIANTS_H

#include "cache.h"
#include "codec.h"
#include "compress.h"
#include "record.h"

#endif
