#!/usr/bin/env bash
# The Python package as a user installs it: a fresh venv, `pip install` of
# the source tree (pyproject.toml: scikit-build-core drives the project's
# CMake), then pytest on tests/python. ctest runs this as test_python
# (tests/CMakeLists.txt). Needs PyPI, or a pip configured to find
# scikit-build-core, numpy, Pillow and pytest.
#   run.sh PYTHON VENV_DIR SOURCE_DIR SRRUN_CLI SR_CUDA [ray]
# With "ray" (ctest test_ray): the package with its ray extra (Ray Data and
# Serve), and test_ray.py alone; without, test_ray.py skips itself.
set -euo pipefail
python=$1 venv=$2 source=$3 cli=$4 cuda=$5 extra=${6:-}
package=$source tests=$source/tests/python
if [ "$extra" = ray ]; then
    package="$source[ray]" tests=$source/tests/python/test_ray.py
fi

rm -rf "$venv"
"$python" -m venv "$venv"
pip=("$venv/bin/python" -m pip --disable-pip-version-check --no-input -q)
"${pip[@]}" install numpy Pillow pytest
# The package's own build, as `pip install .` makes it: two jobs (CI's
# cores), and CUDA as this build has it. Its CMake build folder is kept
# beside the venv, where test_python and test_ray share it (ctest runs them
# one at a time: RESOURCE_LOCK), so the second compiles nothing.
CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-2} \
    "${pip[@]}" install "$package" --config-settings=cmake.define.SR_CUDA="$cuda" \
    --config-settings=build-dir="$(dirname "$venv")/python_build"

# From outside the source tree, so that `import srrun` is the installed one;
# no cache or bytecode written into the source tree.
cd "$venv"
SRRUN_CLI=$cli PYTHONDONTWRITEBYTECODE=1 \
    "$venv/bin/python" -m pytest -p no:cacheprovider -q -rs "$tests"
