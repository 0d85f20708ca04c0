/* Fuzz target: the TOML reader of influxdb-relay-convert (tools/toml.c) on arbitrary bytes
 * (not NUL-terminated). Every input must parse or be refused with a message and a line. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "tools/toml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct toml_err err = {0, ""};
    struct toml_value *root = toml_parse((const char *)data, size, &err);
    if (root == NULL && (err.line < 1 || strlen(err.msg) == 0)) {
        __builtin_trap(); /* a refusal always says where and why */
    }
    toml_free(root);
    return 0;
}
