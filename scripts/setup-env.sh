# Sourced by scripts/test and scripts/demo: a .venv with meterline installed, plus Java and Maven.
need_apt=()
command -v java >/dev/null 2>&1 || need_apt+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || need_apt+=(maven)
if ((${#need_apt[@]})); then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing ${need_apt[*]} for the local Kafka broker" >&2
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
    else
        echo "error: the local Kafka broker needs ${need_apt[*]}; install them (e.g. sudo apt-get install ${need_apt[*]})" >&2
        exit 1
    fi
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
