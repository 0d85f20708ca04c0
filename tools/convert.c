/* Placeholder: the TOML converter lands with issue #2. */
#include <stdio.h>

int
main(void)
{
    fputs("influxdb-relay-convert: not built yet\n", stderr);
    return 1;
}
