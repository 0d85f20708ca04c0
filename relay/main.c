/* Placeholder: the CLI lands with issue #2. */
#include <stdio.h>

int
main(void)
{
    fputs("influxdb-relay: not built yet\n", stderr);
    return 1;
}
