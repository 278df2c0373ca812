# Sourced by scripts/test and scripts/demo: a .venv with meterline installed, plus Java and Maven.
need_apt=()
command -v java >/dev/null 2>&1 || need_apt+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || need_apt+=(maven)
# The dashboard's browser tests drive Debian's headless Chromium; without it they skip, saying so,
# so it is installed where we can (root with apt-get, as on CI) and only suggested elsewhere.
want_apt=()
command -v chromium >/dev/null 2>&1 || want_apt+=(chromium)
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && ((${#need_apt[@]} + ${#want_apt[@]})); then
    echo "installing ${need_apt[*]} ${want_apt[*]} (the local Kafka broker; chromium for the dashboard's browser tests)" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" "${want_apt[@]}" >/dev/null
elif ((${#need_apt[@]})); then
    echo "error: the local Kafka broker needs ${need_apt[*]}; install them (e.g. sudo apt-get install ${need_apt[*]})" >&2
    exit 1
elif ((${#want_apt[@]})); then
    echo "note: the dashboard's browser tests skip without chromium (sudo apt-get install chromium)" >&2
fi
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
stamp=.venv/.meterline-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "installing meterline into .venv (log: .venv/install.log)" >&2
    if ! { .venv/bin/python -m pip install --disable-pip-version-check --upgrade pip "setuptools>=69" wheel \
           && .venv/bin/python -m pip install --disable-pip-version-check -e '.[test]'; } >.venv/install.log 2>&1; then
        tail -n 40 .venv/install.log >&2
        echo "error: installing meterline failed; the full log is .venv/install.log" >&2
        exit 1
    fi
    touch "$stamp"
fi
