#include "notmod/date.h"
