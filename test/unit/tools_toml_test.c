/* Unit tests for tools/toml.c: values, tables, arrays of tables, and where errors point. */
#include <string.h>

#include "check.h"
#include "tools/toml.h"

static struct toml_value *
parse(const char *text, struct toml_err *err)
{
    return toml_parse(text, strlen(text), err);
}

static const struct toml_value *
get(const struct toml_value *t, const char *key)
{
    for (size_t i = 0; i < t->n_kvs; i++) {
        if (strcmp(t->kvs[i].key, key) == 0) {
            return &t->kvs[i].v;
        }
    }
    return NULL;
}

static void
test_values(void)
{
    struct toml_err err = {0, ""};
    struct toml_value *r = parse("a = \"x\\ty\\u00e9\\U0001F600\"\nb = 'c:\\d'\n"
                                 "c = \"\"\"\nl1\\\n   l2\"\"\"\nd = '''\nraw\\n'''\n"
                                 "e = +1_000\nf = -9223372036854775808\ng = true\nh = false\n"
                                 "\"quoted key\" = 0\n",
                                 &err);
    CHECK(r != NULL);
    if (r == NULL) {
        return;
    }
    CHECK_STREQ(get(r, "a")->str, "x\ty\xc3\xa9\xf0\x9f\x98\x80");
    CHECK_STREQ(get(r, "b")->str, "c:\\d");
    CHECK_STREQ(get(r, "c")->str, "l1l2");
    CHECK_STREQ(get(r, "d")->str, "raw\\n");
    CHECK_EQ_I64(get(r, "e")->i, 1000);
    CHECK_EQ_I64(get(r, "f")->i, INT64_MIN);
    CHECK(get(r, "g")->b && !get(r, "h")->b);
    CHECK(get(r, "quoted key") != NULL);
    CHECK_EQ_I64(get(r, "e")->line, 8);
    toml_free(r);
}

static void
test_tables(void)
{
    struct toml_err err = {0, ""};
    struct toml_value *r = parse("[[http]]\nname = \"a\"\n[[http.output]]\nname = \"o1\"\n"
                                 "[[http.output]]\nname = \"o2\"\n[[http]]\r\n"
                                 "output = [ # c\n { name = \"x\" },\n\n { name = \"y\" }, ]\n",
                                 &err);
    CHECK(r != NULL);
    if (r == NULL) {
        return;
    }
    const struct toml_value *http = get(r, "http");
    CHECK(http->type == TOML_ARRAY && http->table_array);
    CHECK_EQ_I64(http->n_items, 2);
    const struct toml_value *o = get(&http->items[0], "output");
    CHECK_EQ_I64(o->n_items, 2);
    CHECK_STREQ(get(&o->items[1], "name")->str, "o2");
    CHECK_EQ_I64(o->items[1].line, 5);
    o = get(&http->items[1], "output");
    CHECK(!o->table_array);
    CHECK_EQ_I64(o->n_items, 2);
    CHECK_EQ_I64(o->items[1].line, 11);
    toml_free(r);
}

static void
refused(const char *text, int line, const char *msg)
{
    struct toml_err err = {0, ""};
    struct toml_value *r = parse(text, &err);
    CHECK(r == NULL);
    toml_free(r);
    CHECK_EQ_I64(err.line, line);
    CHECK_STREQ(err.msg, msg);
}

static void
test_refusals(void)
{
    refused("a = 1\na = 2\n", 2, "duplicate key \"a\"");
    refused("a = \"x\n", 1, "newline in a single-line string");
    refused("\n\na = '''x\n", 3, "unterminated string");
    refused("a = 1.0\n", 1, "floating-point values are not supported: 1.0");
    refused("a = inf\n", 1, "floating-point values are not supported: inf");
    refused("a = 1979-05-27\n", 1, "dates and times are not supported");
    refused("a = 9223372036854775808\n", 1, "integer 9223372036854775808 out of range");
    refused("[a]\nb = 1\n[a]\n", 3, "table defined twice");
    refused("[[a]]\n[a]\n", 2, "\"a\" is already defined as an array of tables");
    refused("a = [\n[\n[\n", 4, "expected a value, got \"?\"");
    refused("a = \"\\x\"\n", 1, "invalid escape \"\\x\" in string");
    refused("a = \"\\uD800\"\n", 1, "unicode escape U+D800 is not allowed here");
    refused("a = 1 2\n", 1, "unexpected text \"2\" at end of line");
}

int
main(void)
{
    test_values();
    test_tables();
    test_refusals();
    return CHECK_DONE();
}
