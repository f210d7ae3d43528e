#include "notmod/precond.h"
