#include "notmod/mime.h"
