# The warning set of docs/ARCHITECTURE.md ("Rules of the code"), on every target.
add_compile_options(-Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes
    -Wformat=2 -Wvla -Wundef -Wwrite-strings -Wpointer-arith -Wcast-qual
    -Wimplicit-fallthrough)
if(RELAY_WERROR)
    add_compile_options(-Werror)
endif()
