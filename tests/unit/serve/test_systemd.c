/* The service manager's side: sockets passed by socket activation and READY=1 style
 * notifications, each exercised the way systemd drives them (environment and descriptor 3). */
#include "serve/systemd.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

/* Runs body in a child, where descriptor 3 can be replaced without touching the test runner's;
 * returns the child's exit status. */
static int in_child(int (*body)(void))
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0)
        _exit(body());
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status));
    return WEXITSTATUS(status);
}

/* Puts sock at descriptor 3 and the variables systemd sets for one passed socket. */
static void pass_as_fd3(int sock)
{
    dup2(sock, 3);
    if (sock != 3)
        close(sock);
    char pid[32];
    snprintf(pid, sizeof(pid), "%ld", (long)getpid());
    setenv("LISTEN_PID", pid, 1);
    setenv("LISTEN_FDS", "1", 1);
}

static int passed_listener(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(s, 8) != 0)
        return 10;
    pass_as_fd3(s);
    int fds[4];
    int n = nm_systemd_listen_fds(fds, 4);
    if (n != 1 || fds[0] != 3)
        return 11;
    if (!(fcntl(3, F_GETFL) & O_NONBLOCK) || !(fcntl(3, F_GETFD) & FD_CLOEXEC))
        return 12;
    if (getenv("LISTEN_FDS") || getenv("LISTEN_PID"))
        return 13; /* a child of ours must not think they are its */
    return 0;
}

static int passed_non_listener(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0)
        return 10;
    pass_as_fd3(s);
    int fds[4];
    return nm_systemd_listen_fds(fds, 4) == -EINVAL ? 0 : 11;
}

static int passed_for_another_process(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    pass_as_fd3(s);
    setenv("LISTEN_PID", "1", 1);
    int fds[4];
    return nm_systemd_listen_fds(fds, 4) == 0 ? 0 : 11;
}

Test(systemd, without_socket_activation_no_socket_is_passed)
{
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    int fds[4];
    cr_expect_eq(nm_systemd_listen_fds(fds, 4), 0);
}

Test(systemd, a_passed_listening_socket_is_returned_non_blocking_and_close_on_exec)
{
    cr_expect_eq(in_child(passed_listener), 0);
}

Test(systemd, a_passed_descriptor_that_does_not_listen_is_refused)
{
    cr_expect_eq(in_child(passed_non_listener), 0);
}

Test(systemd, sockets_passed_to_another_process_are_not_taken)
{
    cr_expect_eq(in_child(passed_for_another_process), 0);
}

Test(systemd, without_notify_socket_a_notification_goes_nowhere)
{
    unsetenv("NOTIFY_SOCKET");
    cr_expect_eq(nm_systemd_notify("READY=1"), 0);
}

Test(systemd, a_notification_reaches_the_notify_socket)
{
    char dir[] = "/tmp/nm-notify-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof(a.sun_path), "%s/notify", dir);
    int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(s, 0);
    cr_assert_eq(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
    setenv("NOTIFY_SOCKET", a.sun_path, 1);
    cr_expect_gt(nm_systemd_notify("READY=1"), 0);
    char got[64] = "";
    ssize_t n = recv(s, got, sizeof(got) - 1, MSG_DONTWAIT);
    cr_expect_eq(n, 7);
    cr_expect_str_eq(got, "READY=1");
    close(s);
    unlink(a.sun_path);
    rmdir(dir);
}
