# Warnings for all moat code (see STYLE.md §2.8).  -Werror in dev and CI.
set(MOAT_WARNINGS
  -Wall -Wextra -Wconversion -Wsign-conversion -Wshadow -Wstrict-prototypes
  -Wmissing-prototypes -Wformat=2 -Wcast-qual -Wvla -Wundef -Wpointer-arith
  -Wwrite-strings -Wimplicit-fallthrough)
if(MOAT_WERROR)
  list(APPEND MOAT_WARNINGS -Werror)
endif()
