# Sourced by scripts/typecheck and scripts/import-contracts, from the repository root with $root
# set: lays the package out under .venv/package-tree as applications import it. setuptools maps
# producers/ stream/ sinks/ alerts/ into the meterline namespace (package-dir) through an import
# hook that static tools cannot follow, so the layout is made of symlinks (tests/ beside it).
# Sets $tree (absolute) and $rename (sed arguments mapping reported paths back to the repository's).
tree="$root/.venv/package-tree"
rm -rf "$tree"
mkdir -p "$tree/meterline"
ln -s "$root/tests" "$tree/tests"
for entry in "$root"/meterline/*; do ln -s "$entry" "$tree/meterline/"; done
# The component folders, read from pyproject's package-dir ("meterline.producers" = "producers").
components=$("$root/.venv/bin/python" - "$root/pyproject.toml" <<'PY'
import sys, tomllib
dirs = tomllib.load(open(sys.argv[1], "rb"))["tool"]["setuptools"]["package-dir"]
print(" ".join(f"{name.split('.', 1)[1]}={folder}" for name, folder in dirs.items() if "." in name))
PY
)
rename=(-e "s#^\$##")
for pair in $components; do
    ln -s "$root/${pair#*=}" "$tree/meterline/${pair%%=*}"
    rename+=(-e "s#^meterline/${pair%%=*}/#${pair#*=}/#")
done
