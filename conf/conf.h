/* The configuration tree: plain data built by conf_load(), cross-checked by conf_check(),
 * immutable once loaded, and reference-counted: each runtime object that borrows names or
 * settings from a tree holds a reference on it (conf_ref()), so a reload can install a new tree
 * while requests and senders still finish on the old one; the last conf_unref() frees it.
 * Values are converted once at load time (units in field names). Every section and key remembers
 * its line for FILE:LINE: messages. */
#ifndef IR_CONF_CONF_H
#define IR_CONF_CONF_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"
#include "util/hostport.h"
#include "util/log.h"

struct conf;

enum conf_consistency { CONF_CONSISTENCY_ONE, CONF_CONSISTENCY_ALL, CONF_CONSISTENCY_ANY };

/* What an HTTP relay does with /query: every statement it can relay, changes only, nothing. */
enum conf_query { CONF_QUERY_ALL, CONF_QUERY_DDL, CONF_QUERY_OFF };

/* Timestamp precision of a UDP relay (ns and us are written n and u). */
enum conf_precision {
    CONF_PREC_N,
    CONF_PREC_U,
    CONF_PREC_MS,
    CONF_PREC_S,
    CONF_PREC_M,
    CONF_PREC_H,
};

/* How an output's write requests are sent (content-encoding). */
enum conf_encoding { CONF_ENCODING_IDENTITY, CONF_ENCODING_GZIP };

/* One [http.R.output.B] section. */
struct conf_http_output {
    struct conf *tree; /* borrowed: the tree holding this section (conf_ref() it to keep the
                        * section alive); NULL in a section built by hand (tests) */
    char *name;
    int line;                /* line of the section header */
    char *location;          /* full URL of the backend's /write, http or https */
    int64_t timeout_ms;      /* default 10s */
    int64_t buffer_bytes;    /* buffer-size-mb in bytes; 0 = no retry buffering */
    int64_t max_batch_bytes; /* max-batch-kb in bytes, default 512 KiB */
    int64_t max_delay_ms;    /* max-delay-interval, default 10s */
    bool skip_tls_verification;
    enum conf_encoding content_encoding; /* default identity */
    /* The output's own credentials (username with password or password-file): sent as HTTP
     * Basic instead of any client's. NULL username = the clients' credentials are forwarded.
     * password holds the password key's value or password-file's content (read by
     * conf_load(): conf/conf_secret.h); it is never printed. */
    char *username;
    char *password;
    char *password_file;
    int username_line; /* line of each key, 0 if absent */
    int password_line;
    int password_file_line;
    int64_t spool_bytes;      /* spool-size-mb in bytes; 0 = no spool */
    int64_t spool_max_age_ms; /* spool-max-age, default 168h; 0 = no limit */
    int64_t spool_sync_ms;    /* spool-sync, default 1s; 0 = fdatasync before the answer */
    int spool_line;           /* line of spool-size-mb, 0 if absent */
};

/* One [http.R] section. */
struct conf_http {
    struct conf *tree; /* borrowed: the tree holding this section; NULL when built by hand */
    char *name;
    int line;
    char *bind_addr;          /* "host:port" or "[v6]:port" as written (for messages) */
    struct hostport bind;     /* bind_addr parsed at load */
    char *ssl_combined_pem;   /* NULL = plain HTTP */
    char *default_rp;         /* NULL = none */
    int64_t write_timeout_ms; /* default: largest output timeout + 1s */
    enum conf_consistency write_consistency;
    int64_t max_body_bytes;           /* max-body-mb in bytes, default 32 MiB */
    int64_t max_connections;          /* default 10000 */
    int64_t workers;                  /* libmicrohttpd worker threads, 0 = one per core */
    int64_t idle_timeout_ms;          /* default 75s; 0 = never */
    int64_t read_timeout_ms;          /* default 30s; 0 = never */
    enum conf_query query;            /* default all */
    int bind_line;                    /* line of bind-addr, 0 if missing */
    int pem_line;                     /* line of ssl-combined-pem, 0 if absent */
    struct conf_http_output *outputs; /* array in file order */
    size_t n_outputs;
};

/* One [udp.R.output.B] section. */
struct conf_udp_output {
    char *name;
    int line;
    char *location;       /* "host:port" or "[v6]:port" as written (for messages) */
    struct hostport dest; /* location parsed at load; resolved by service_new() */
    int64_t mtu;          /* default 1024 */
};

/* One [udp.R] section. */
struct conf_udp {
    struct conf *tree; /* borrowed: the tree holding this section; NULL when built by hand */
    char *name;
    int line;
    char *bind_addr;      /* as written (for messages) */
    struct hostport bind; /* bind_addr parsed at load */
    int64_t read_buffer;  /* bytes, 0 = system default */
    enum conf_precision precision;
    int bind_line; /* line of bind-addr, 0 if missing */
    struct conf_udp_output *outputs;
    size_t n_outputs;
};

struct conf {
    _Atomic unsigned refs; /* atomic: 1 from conf_load(); the last conf_unref() frees */
    char *path;            /* as given on the command line */
    enum log_level log_level;
    bool log_json;
    int64_t shutdown_timeout_ms; /* default 10s */
    int64_t max_inflight_bytes;  /* max-inflight-mb in bytes, default 1024 MiB */
    char *spool_dir;             /* spool-dir, NULL = none (no output may spool) */
    int spool_dir_line;          /* line of spool-dir, 0 if absent */
    struct conf_http *http;      /* array in file order */
    size_t n_http;
    struct conf_udp *udp;
    size_t n_udp;
};

/* One configuration problem: line 0 means the file as a whole (e.g. it cannot be read). */
struct conf_err {
    int line;
    char msg[512];
};

/* Every problem found by conf_load() and conf_check(), in the order found. Caller storage:
 * start zeroed ({0}), release with conf_errs_cleanup(). */
struct conf_errs {
    struct conf_err *v; /* owned array */
    size_t n;
    size_t cap;
};

/* Appends a problem (message truncated to fit). Main thread. */
void conf_errs_add(struct conf_errs *e, int line, const char *fmt, ...) IR_PRINTF(3, 4);
/* Sorts by line, keeping the order of problems on the same line. */
void conf_errs_sort(struct conf_errs *e);
void conf_errs_cleanup(struct conf_errs *e);

/* Wipes and frees o->password (NULL afterwards). */
void conf_password_wipe(struct conf_http_output *o);

/* Frees the tree and every string in it (passwords wiped first), whatever its reference count.
 * NULL is a no-op. For a tree nobody else references (--check-config, a reload that failed,
 * tests). */
void conf_free(struct conf *c);
/* Any thread: one more reference on c (NULL is a no-op). Returns c. */
struct conf *conf_ref(struct conf *c);
/* Any thread: drops a reference; the last one frees the tree (conf_free()). NULL is a no-op. */
void conf_unref(struct conf *c);

#endif
