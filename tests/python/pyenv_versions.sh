# Sourced by versions.sh and layouts.sh: add_pyenv_versions NAME WHAT puts
# the newest of each CPython 3.8 to 3.13 pyenv has into the array `pys`, and
# records each version not found as a skip in the tally, named "CPython
# X.Y: WHAT" (NAME begins the line it prints).  $tally must be set.
add_pyenv_versions() {
    local name=$1 what=$2 v where found
    for v in 3.8 3.9 3.10 3.11 3.12 3.13; do
        where="${PYENV_ROOT:-$HOME/.pyenv}/versions/$v.*/bin/python3"
        found=$(ls -d $where 2>/dev/null | head -1)
        if [ -n "$found" ]; then
            pys+=("$found")
        else
            echo "$name: no CPython $v here (skipped)"
            "$tally" record skip "CPython $v: $what" "no $where on this machine"
        fi
    done
}
