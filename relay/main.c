/* influxdb-relay: the command line, configuration loading and checking, signals, and the
 * service lifecycle. Main thread only. --check-config runs exactly the start-up path
 * (conf_load, conf_check, service_new) and stops before service_start() binds anything.
 * SIGHUP reloads the configuration file given at start (service_reload()). */
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <pthread.h>

#include "buffer/backend.h"
#include "conf/conf.h"
#include "conf/conf_check.h"
#include "conf/conf_load.h"
#include "relay/service.h"
#include "util/err.h"
#include "util/log.h"

#define EXIT_USAGE 2

static const char usage_text[] =
        "usage: influxdb-relay -config FILE [--check-config]\n"
        "       influxdb-relay --version | --help\n"
        "\n"
        "  -config FILE, --config FILE, -c FILE\n"
        "                   the INI configuration file (see influxdb-relay.conf(5))\n"
        "  --check-config   check the configuration and exit: 0 valid, 1 invalid;\n"
        "                   prints every problem as FILE:LINE: message, binds nothing\n"
        "  --version        print the version and exit\n"
        "  --help           print this help and exit\n"
        "\n"
        "Convert a Go influxdb-relay TOML file with: influxdb-relay-convert FILE.toml > FILE.ini\n";

struct args {
    const char *config;
    bool check;
    bool version;
    bool help;
};

/* The option name of arg without its one or two leading dashes; NULL if not an option. */
static const char *
option_name(const char *arg)
{
    if (arg[0] != '-' || arg[1] == '\0') {
        return NULL;
    }
    return arg[1] == '-' ? arg + 2 : arg + 1;
}

/* Parses one option at argv[*i]; 0, or -1 after printing why to stderr. */
static int
parse_option(int argc, char **argv, int *i, struct args *a)
{
    const char *name = option_name(argv[*i]);
    const char *eq = name ? strchr(name, '=') : NULL;
    size_t n = name ? (eq ? (size_t)(eq - name) : strlen(name)) : 0;
    if (name != NULL &&
        ((n == 6 && memcmp(name, "config", 6) == 0) || (n == 1 && name[0] == 'c'))) {
        if (eq == NULL && *i + 1 >= argc) {
            fprintf(stderr, "influxdb-relay: option %s needs a FILE\n", argv[*i]);
            return -1;
        }
        a->config = eq ? eq + 1 : argv[++*i];
        return 0;
    }
    if (name != NULL && eq == NULL) {
        bool *flag = strcmp(name, "check-config") == 0                     ? &a->check
                     : strcmp(name, "version") == 0                        ? &a->version
                     : strcmp(name, "help") == 0 || strcmp(name, "h") == 0 ? &a->help
                                                                           : NULL;
        if (flag != NULL) {
            *flag = true;
            return 0;
        }
    }
    fprintf(stderr, "influxdb-relay: unknown %s %s\n", name ? "option" : "argument", argv[*i]);
    return -1;
}

static int
parse_args(int argc, char **argv, struct args *a)
{
    for (int i = 1; i < argc; i++) {
        if (parse_option(argc, argv, &i, a) != 0) {
            return -1;
        }
    }
    if (a->config == NULL && !a->help && !a->version) {
        fprintf(stderr, "influxdb-relay: missing -config FILE\n");
        return -1;
    }
    return 0;
}

/* Every problem, as FILE:LINE: message (FILE: message when no line applies), by line. */
static void
print_errs(const char *path, struct conf_errs *errs)
{
    conf_errs_sort(errs);
    for (size_t i = 0; i < errs->n; i++) {
        if (errs->v[i].line > 0) {
            fprintf(stderr, "%s:%d: %s\n", path, errs->v[i].line, errs->v[i].msg);
        } else {
            fprintf(stderr, "%s: %s\n", path, errs->v[i].msg);
        }
    }
}

/* conf_load + conf_check. Returns the tree, or NULL after printing every problem. */
static struct conf *
load_config(const char *path)
{
    struct conf_errs errs = {NULL, 0, 0};
    struct conf *c = conf_load(path, &errs);
    /* conf_check() runs even after load problems, so one pass reports everything. */
    bool bad = c == NULL || conf_check(c, &errs) != 0 || errs.n > 0;
    if (bad) {
        print_errs(path, &errs);
        conf_free(c);
        c = NULL;
    }
    conf_errs_cleanup(&errs);
    return c;
}

static void
print_service_err(const char *path, const struct ir_err *err, bool to_log)
{
    if (to_log && err->line > 0) {
        log_error(NULL, "%s:%d: %s", path, err->line, err->msg);
    } else if (to_log) {
        log_error(NULL, "%s: %s", path, err->msg);
    } else if (err->line > 0) {
        fprintf(stderr, "%s:%d: %s\n", path, err->line, err->msg);
    } else {
        fprintf(stderr, "%s: %s\n", path, err->msg);
    }
}

/* --check-config: the start-up path up to, not including, service_start(). */
static int
check_config(const char *path)
{
    struct conf *c = load_config(path);
    if (c == NULL) {
        return 1;
    }
    if (backend_global_init() != 0) {
        fprintf(stderr, "influxdb-relay: cannot initialise the HTTP client library\n");
        conf_free(c);
        return 1;
    }
    struct ir_err err = {0, ""};
    struct service *s = service_new(c, &err);
    if (s == NULL) {
        print_service_err(path, &err, false);
    }
    service_free(s);
    conf_unref(c);
    backend_global_cleanup();
    if (s != NULL) {
        printf("%s: configuration is valid\n", path);
    }
    return s != NULL ? 0 : 1;
}

/* Blocks the signals main waits for and ignores SIGPIPE and SIGXFSZ, before any thread exists, so
 * every thread inherits the mask and no signal ever runs a handler. SIGUSR1 is how the shutdown
 * thread tells main it is done. */
static void
signals_init(sigset_t *set)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_IGN;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGPIPE, &sa, NULL);
    sigaction(SIGXFSZ, &sa, NULL); /* a file-size limit fails a spool write (EFBIG), no more */
    sigemptyset(set);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGHUP);
    sigaddset(set, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, set, NULL);
}

/* Every problem of a reload, logged at error level as FILE:LINE: message (as --check-config
 * prints them), by line. */
static void
log_errs(const char *path, struct conf_errs *errs)
{
    conf_errs_sort(errs);
    for (size_t i = 0; i < errs->n; i++) {
        if (errs->v[i].line > 0) {
            log_error(NULL, "%s:%d: %s", path, errs->v[i].line, errs->v[i].msg);
        } else {
            log_error(NULL, "%s: %s", path, errs->v[i].msg);
        }
    }
}

/* SIGHUP: loads and checks the file given at start again and applies it; on any problem every
 * one is logged and nothing changes. */
static void
reload(struct service *s, const char *path)
{
    log_info(NULL, "SIGHUP received: reloading the configuration config=%s", path);
    struct conf_errs errs = {NULL, 0, 0};
    struct conf *c = conf_load(path, &errs);
    /* conf_check() runs even after load problems, so one pass reports everything. */
    bool bad = c == NULL || conf_check(c, &errs) != 0 || errs.n > 0;
    if (bad) {
        service_note_reload_failed(s);
    } else if (service_reload(s, c, &errs) == 0) {
        errs.n = 0;
    }
    if (errs.n > 0) {
        log_errs(path, &errs);
        log_error(NULL, "configuration reload failed, nothing changed errors=%zu", errs.n);
    }
    conf_unref(c);
    conf_errs_cleanup(&errs);
}

/* Waits for SIGINT or SIGTERM; SIGHUP reloads the configuration. */
static void
wait_for_stop(struct service *s, const char *path, const sigset_t *set)
{
    for (;;) {
        int sig = 0;
        if (sigwait(set, &sig) != 0) {
            continue;
        }
        if (sig == SIGHUP) {
            reload(s, path);
            continue;
        }
        if (sig == SIGUSR1) {
            continue;
        }
        log_info(NULL, "%s received: shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
        return;
    }
}

/* The shutdown thread: runs the orderly shutdown while main keeps waiting for signals. */
struct stopper {
    struct service *s;
    pthread_t main;
    _Atomic bool done;
};

static void *
stopper_main(void *arg)
{
    struct stopper *st = arg;
    service_stop(st->s);
    atomic_store(&st->done, true);
    pthread_kill(st->main, SIGUSR1);
    return NULL;
}

/* Shuts s down on a thread of its own; a second SIGINT/SIGTERM meanwhile makes it drop what is
 * left and exit at once. */
static void
stop_service(struct service *s, const sigset_t *set)
{
    struct stopper st = {s, pthread_self(), false};
    pthread_t t;
    if (pthread_create(&t, NULL, stopper_main, &st) != 0) {
        service_stop(s); /* no second-signal exit, but still an orderly shutdown */
        return;
    }
    bool hurried = false;
    while (!atomic_load(&st.done)) {
        int sig = 0;
        if (sigwait(set, &sig) != 0 || hurried || (sig != SIGINT && sig != SIGTERM)) {
            continue;
        }
        log_warn(NULL, "%s received again: exiting now, dropping what is still queued",
                 sig == SIGINT ? "SIGINT" : "SIGTERM");
        service_hurry(s);
        hurried = true;
    }
    pthread_join(t, NULL);
}

static int
run(const char *path)
{
    sigset_t set;
    signals_init(&set);
    struct conf *c = load_config(path);
    if (c == NULL) {
        return 1;
    }
    log_init(c->log_level, c->log_json);
    if (backend_global_init() != 0) {
        log_error(NULL, "cannot initialise the HTTP client library");
        conf_free(c);
        return 1;
    }
    log_info(NULL, "influxdb-relay %s starting config=%s", IR_VERSION, path);
    struct ir_err err = {0, ""};
    int rc = 1;
    struct service *s = service_new(c, &err);
    if (s != NULL && service_start(s, &err) == 0) {
        wait_for_stop(s, path, &set);
        rc = 0;
        stop_service(s, &set);
    } else {
        print_service_err(path, &err, true);
        if (s != NULL) {
            service_stop(s);
        }
    }
    service_free(s);
    conf_unref(c);
    backend_global_cleanup();
    log_info(NULL, "influxdb-relay exiting status=%d", rc);
    return rc;
}

int
main(int argc, char **argv)
{
    struct args a = {NULL, false, false, false};
    if (parse_args(argc, argv, &a) != 0) {
        fputs(usage_text, stderr);
        return EXIT_USAGE;
    }
    if (a.help) {
        fputs(usage_text, stdout);
        return 0;
    }
    if (a.version) {
        printf("influxdb-relay %s\n", IR_VERSION);
        return 0;
    }
    return a.check ? check_config(a.config) : run(a.config);
}
