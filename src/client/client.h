/* The client layer's interface to the layers above it: the only header of src/client/ that code
 * outside the folder includes. */
#ifndef NOTMOD_CLIENT_CLIENT_H
#define NOTMOD_CLIENT_CLIENT_H

#include "fetch.h"
#include "policy.h"
#include "probes.h"
#include "store.h"
#include "transport.h"

#endif
