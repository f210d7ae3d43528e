#include "notmod/conn.h"
