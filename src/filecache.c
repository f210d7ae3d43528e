#include "notmod/filecache.h"
