#include "notmod/range.h"
