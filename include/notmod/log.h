#ifndef NOTMOD_LOG_H
#define NOTMOD_LOG_H
#endif
