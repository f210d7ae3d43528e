/* The config file of `notmod serve`: libconfig syntax (docs/usage.md, "The config file") read
 * into a struct nm_config, every problem named as FILE:LINE. */
#ifndef NOTMOD_CONFIGFILE_H
#define NOTMOD_CONFIGFILE_H

#include <stdbool.h>

#include "config.h"

/* Called once per problem with "FILE:LINE: message" (no newline); is_error false for a warning
 * (a rule that can never match), which does not fail the load. */
typedef void nm_configfile_report_fn(void *arg, bool is_error, const char *message);

/* Reads the file at `path` over cfg (settings it names replace cfg's; its rules and error pages
 * are added) and records the path in cfg->config_file. Every problem is reported, not only the
 * first: a syntax error (libconfig stops there), an unknown setting, a value of the wrong type or
 * out of range, a header field the server owns or a value with CR, LF or NUL, a rule with both or
 * neither of match and prefix. Returns 0 (warnings only), -EINVAL when an error was reported
 * (cfg then holds part of the file: clean it up), or -errno when the file cannot be read
 * (reported as "FILE: reason"). */
int nm_configfile_load(struct nm_config *cfg, const char *path, nm_configfile_report_fn *report,
                       void *arg);

/* Reports, as warnings without a line, the --cache-control rules of cfg that can never match
 * (nm_config_glob_is_reachable). Returns how many. */
int nm_configfile_warn_unreachable(const struct nm_config *cfg, nm_configfile_report_fn *report,
                                   void *arg);

#endif
