# Finds the Python 3.13 that LocalStack 2026.3.0 needs (3.11 / 3.12 fail to import it).
# Order: $LOCALSTACK_PYTHON, python3.13 on PATH, then pyenv's newest 3.13.x. Sourced.
find_python313() {
    local candidates=() c root
    [ -n "${LOCALSTACK_PYTHON:-}" ] && candidates+=("$LOCALSTACK_PYTHON")
    c=$(command -v python3.13 2>/dev/null) && candidates+=("$c")
    root=$( (pyenv root) 2>/dev/null || echo "${PYENV_ROOT:-$HOME/.pyenv}")
    for c in $(ls -d "$root"/versions/3.13.* 2>/dev/null | sort -rV); do
        candidates+=("$c/bin/python3.13")
    done
    for c in "${candidates[@]}"; do
        if [ -x "$c" ] && "$c" -c 'import sys, venv; sys.exit(sys.version_info[:2] != (3, 13))' 2>/dev/null; then
            echo "$c"
            return 0
        fi
    done
    die "LocalStack needs Python 3.13 with the venv module; none found (looked at \$LOCALSTACK_PYTHON, python3.13 on PATH, $root/versions/3.13.*)" \
        "install it (e.g. 'pyenv install 3.13') or set LOCALSTACK_PYTHON=/path/to/python3.13"
}
