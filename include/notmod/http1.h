#ifndef NOTMOD_HTTP1_H
#define NOTMOD_HTTP1_H
#endif
