/* The etags layer's interface to the layers above it: the only header of src/etags/ that code
 * outside the folder includes. */
#ifndef NOTMOD_ETAGS_ETAGS_H
#define NOTMOD_ETAGS_ETAGS_H

#include "attr.h"
#include "hashing.h"
#include "manifest.h"
#include "store.h"

#endif
