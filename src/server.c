#include "notmod/server.h"
