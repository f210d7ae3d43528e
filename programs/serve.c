#include "commands.h"

int nm_cmd_serve(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return NM_EXIT_FAILURE;
}
