/* The serve layer's interface to the layers above it: the only header of src/serve/ that code
 * outside the folder includes. */
#ifndef NOTMOD_SERVE_SERVE_H
#define NOTMOD_SERVE_SERVE_H

#include "config.h"
#include "configfile.h"
#include "conn.h"
#include "filecache.h"
#include "h2.h"
#include "listen.h"
#include "log.h"
#include "mime.h"
#include "send.h"
#include "server.h"
#include "site.h"

#endif
