/* The subcommands of the notmod command. Each returns the process exit status. */
#ifndef NOTMOD_PROGRAMS_COMMANDS_H
#define NOTMOD_PROGRAMS_COMMANDS_H

/* Exit statuses shared by every subcommand. */
#define NM_EXIT_OK 0
#define NM_EXIT_FAILURE 1
#define NM_EXIT_USAGE 2

int nm_cmd_serve(int argc, char **argv);
int nm_cmd_get(int argc, char **argv);
int nm_cmd_check(int argc, char **argv);
int nm_cmd_cache(int argc, char **argv);
int nm_cmd_etag(int argc, char **argv);
int nm_cmd_compress(int argc, char **argv);

#endif
