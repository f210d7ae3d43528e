#ifndef NOTMOD_CONN_H
#define NOTMOD_CONN_H
#endif
