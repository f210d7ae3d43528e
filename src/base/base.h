/* The base layer's interface to the layers above it: the only header of src/base/ that code
 * outside the folder includes. */
#ifndef NOTMOD_BASE_BASE_H
#define NOTMOD_BASE_BASE_H

#include "buf.h"
#include "dir.h"
#include "hash.h"
#include "num.h"

#endif
