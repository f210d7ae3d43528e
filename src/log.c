#include "notmod/log.h"
