# Shared by the scripts that install Python test tools (sourced, not run).
#
#   make_venv DIR PACKAGE...   # a fresh virtualenv in DIR with the packages from PyPI
#                              # (python3 and its venv module from Debian first if missing)
make_venv() {
  local venv=$1
  shift
  if ! command -v python3 >/dev/null || ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv >&2
  fi
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "$@" >&2
}
