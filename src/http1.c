#include "notmod/http1.h"
