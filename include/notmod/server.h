#ifndef NOTMOD_SERVER_H
#define NOTMOD_SERVER_H
#endif
