#!/usr/bin/env bash
# `make install` into a scratch prefix, then build a program the way a user
# would (pkg-config --cflags --libs ebb) and check that it runs on ebb, both
# against the shared library and statically against libebb.a; and that the
# installed `ebb` tool finds the installed libebb.so (in ../lib).
set -euo pipefail
cd "$(dirname "$0")/../.."
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
make -s install PREFIX="$prefix" >/dev/null
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
test "$(pkg-config --modversion ebb)" = "$(sed -n 's/^#define EBB_VERSION_STRING "\(.*\)"/\1/p' include/ebb.h)"
cat > "$prefix/app.c" <<'C'
#include <ebb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int main(void)
{
    char *a = ebb_malloc(100), *b = malloc(200); /* linking -lebb makes malloc ebb's too */
    strcpy(a, "ebb");
    int ok = ebb_owns(a) && ebb_owns(b) && ebb_usable_size(b) >= 200 && ebb_check() == 0;
    ebb_free(a);
    free(b);
    printf("%s %s\n", ebb_version(), ok ? "ok" : "FAIL");
    return ok ? 0 : 1;
}
C
# shellcheck disable=SC2046
cc -o "$prefix/app" "$prefix/app.c" $(pkg-config --cflags --libs ebb)
LD_LIBRARY_PATH="$prefix/lib" "$prefix/app"
# shellcheck disable=SC2046
cc -o "$prefix/app-static" "$prefix/app.c" $(pkg-config --cflags ebb) "$prefix/lib/libebb.a" -lpthread
"$prefix/app-static"
test "$(env -u EBB_LIB "$prefix/bin/ebb" run sh -c 'echo "$LD_PRELOAD"')" = "$(realpath "$prefix/lib/libebb.so")"
echo "install: OK"
