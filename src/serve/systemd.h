/* The service manager: listening sockets passed by socket activation (sd_listen_fds(3)) and the
 * state notifications of a Type=notify service (sd_notify(3)). The one speaker of libsystemd;
 * outside systemd both are no-ops. */
#ifndef NOTMOD_SYSTEMD_H
#define NOTMOD_SYSTEMD_H

#include <stddef.h>

/* The listening sockets this process was passed (LISTEN_PID names it, LISTEN_FDS counts them
 * from descriptor 3), at most cap of them into fds, each made non-blocking and close-on-exec;
 * the LISTEN_* variables are removed from the environment. Returns how many (0 when none were
 * passed), -EINVAL when one is not a listening stream socket or there are more than cap, or
 * another negative errno. */
int nm_systemd_listen_fds(int *fds, size_t cap);

/* Sends state ("READY=1", "STOPPING=1", "RELOADING=1", newline-separated assignments) to the
 * service manager when NOTIFY_SOCKET names one. Returns 1 when sent, 0 when there is no manager
 * to tell, or a negative errno. */
int nm_systemd_notify(const char *state);

#endif
