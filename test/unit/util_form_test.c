/* util/form: encoding, and lookups that read a form as Go's net/url does (influxd's reading). */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "util/form.h"

static char *
get(const char *form, const char *key)
{
    struct dbuf b;
    dbuf_init(&b, 1 << 20);
    if (!form_get(form, strlen(form), key, &b)) {
        dbuf_cleanup(&b);
        return NULL;
    }
    size_t n = 0;
    char *s = dbuf_finish(&b, &n);
    return s != NULL ? s : calloc(1, 1);
}

static void
check_get(const char *form, const char *key, const char *want)
{
    char *got = get(form, key);
    if (want == NULL) {
        CHECK(got == NULL);
        if (got != NULL) {
            fprintf(stderr, "  %s [%s]: got \"%s\", want none\n", form, key, got);
        }
    } else {
        CHECK_STREQ(got, want);
    }
    free(got);
}

static void
test_get(void)
{
    check_get("q=SHOW+DATABASES&db=x", "q", "SHOW DATABASES");
    check_get("q=SHOW+DATABASES&db=x", "db", "x");
    check_get("q=a%3Bb%26c%3D%2B", "q", "a;b&c=+");
    check_get("q=%e2%82%ac", "q", "\xE2\x82\xAC");
    check_get("db=x&q=1&q=2", "q", "1"); /* the first wins */
    check_get("q=a;b&q=2", "q", "2");    /* Go skips a pair holding ';' */
    check_get("q=%zz&q=ok", "q", "ok");  /* and one with a bad escape */
    check_get("q=%4&q=ok", "q", "ok");   /* a truncated one too */
    check_get("q=%", "q", NULL);
    check_get("q", "q", ""); /* present, empty */
    check_get("q=", "q", "");
    check_get("&&q=1&", "q", "1");
    check_get("%71=1", "q", "1"); /* keys are decoded too */
    check_get("q+x=1", "q x", "1");
    check_get("qq=1&xq=2", "q", NULL);
    check_get("", "q", NULL);
    check_get("chunked=true&chunk_size=1", "chunk_size", "1");
}

static void
test_add(void)
{
    struct dbuf b;
    dbuf_init(&b, 4096);
    form_add(&b, "q", "SELECT * FROM \"m\"; x=1&y", 24);
    form_add(&b, "db", "a-b_c.d~e", 9);
    form_add(&b, "p", "", 0);
    size_t n = 0;
    char *s = dbuf_finish(&b, &n);
    CHECK_STREQ(s, "q=SELECT%20%2A%20FROM%20%22m%22%3B%20x%3D1%26y&db=a-b_c.d~e&p=");
    char *q = get(s, "q");
    CHECK_STREQ(q, "SELECT * FROM \"m\"; x=1&y"); /* what is encoded reads back */
    free(q);
    free(s);
}

int
main(void)
{
    test_get();
    test_add();
    return CHECK_DONE();
}
