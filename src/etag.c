#include "notmod/etag.h"
