/* notmod: one command, several subcommands. This file only dispatches. */
#include <stdio.h>
#include <string.h>

#include "commands.h"

struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
};

static const struct command commands[] = {
    {"serve", nm_cmd_serve, "serve a directory over HTTP/1.1 with exact validators"},
    {"etag", nm_cmd_etag, "print, store ahead of time, or list in a manifest the content ETags"},
    {"compress", nm_cmd_compress, "write the precompressed sidecars (.br, .zst, .gz) of a tree"},
    {"get", nm_cmd_get, "download a URL through a private RFC 9111 cache, revalidating"},
    {"check", nm_cmd_check, "lint a server's validators, conditional requests and 304s"},
    {"cache", nm_cmd_cache, "list or clear notmod get's cache"},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: notmod COMMAND [OPTIONS] [ARGS]\n\n"
                 "HTTP revalidation done right: exact ETags, Last-Modified and 304s.\n\n"
                 "commands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(out, "  %-8s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\nnotmod COMMAND --help describes a command's options.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return NM_EXIT_USAGE;
    }
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 || strcmp(name, "help") == 0) {
        usage(stdout);
        return NM_EXIT_OK;
    }
    if (strcmp(name, "--version") == 0 || strcmp(name, "version") == 0) {
        printf("notmod %s\n", NM_VERSION);
        return NM_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(name, commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "notmod: unknown command '%s'\n", name);
    usage(stderr);
    return NM_EXIT_USAGE;
}
