#include "notmod/path.h"
