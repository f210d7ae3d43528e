/* Socket activation and service notifications through libsystemd (sd-daemon.h). */
#include "systemd.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>

int nm_systemd_listen_fds(int *fds, size_t cap)
{
    int n = sd_listen_fds(1);
    if (n <= 0)
        return n;
    if ((size_t)n > cap)
        return -EINVAL;
    for (int i = 0; i < n; i++) {
        int fd = SD_LISTEN_FDS_START + i;
        int rc = sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 1);
        if (rc < 0)
            return rc;
        if (rc == 0)
            return -EINVAL;
        /* Workers share the socket: a worker that loses the race for a connection must get
         * EAGAIN from accept4, never block. */
        int fl = fcntl(fd, F_GETFL);
        if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
            return -errno;
        fds[i] = fd;
    }
    return n;
}

int nm_systemd_notify(const char *state)
{
    return sd_notify(0, state);
}
