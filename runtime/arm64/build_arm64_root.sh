#!/bin/sh
# Build an arm64 (aarch64) Python 3.11 tree with the aarch64 TVM runtime + numpy, runnable on an
# x86-64 host with qemu-user:
#     PYTHONPATH=$ROOT/opt/site qemu-aarch64 -L $ROOT $ROOT/usr/bin/python3.11 script.py
# Usage: runtime/arm64/build_arm64_root.sh [ROOT]
#   ROOT defaults to $YUAN_ARM64_ROOT, else ~/.cache/yuan/arm64-root.  Takes ~2 minutes, ~450 MB.
# Needs: qemu-user (qemu-aarch64), apt-get, python3 -m pip, network access to Debian + PyPI.
# The system apt state is never touched: a private apt config (arm64 only) downloads the .debs,
# which are unpacked with dpkg -x; the wheels come from pip --platform manylinux_2_28_aarch64.
# On success writes $ROOT/.yuan-arm64-ok (the marker runtime/qemu_runner.py checks).
set -eu
ROOT=${1:-${YUAN_ARM64_ROOT:-$HOME/.cache/yuan/arm64-root}}
[ $# -gt 0 ] && shift   # the rest are extra pip packages
ROOT=$(realpath -m "$ROOT")
TVM_VER=${YUAN_TVM_VERSION:-0.27.0.post1}
FFI_VER=${YUAN_TVM_FFI_VERSION:-0.1.14.post1}
APTDIR="$ROOT.apt"
rm -f "$ROOT/.yuan-arm64-ok"
mkdir -p "$APTDIR/lists/partial" "$APTDIR/cache/archives/partial" "$APTDIR/sources" "$ROOT"
: > "$APTDIR/status"
# reuse the host's Debian sources (deb822 or one-line format)
for f in /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list /etc/apt/sources.list; do
  [ -f "$f" ] && cp "$f" "$APTDIR/sources/" || true
done
cat > "$APTDIR/apt.conf" <<EOC
Dir::State "$APTDIR";
Dir::State::Lists "$APTDIR/lists";
Dir::State::status "$APTDIR/status";
Dir::Cache "$APTDIR/cache";
Dir::Etc::SourceList "/dev/null";
Dir::Etc::SourceParts "$APTDIR/sources";
APT::Architecture "arm64";
APT::Architectures { "arm64"; };
EOC
export APT_CONFIG="$APTDIR/apt.conf"
echo "[arm64-root] apt: downloading arm64 python3.11 + runtime libraries"
apt-get update -qq
apt-get install --no-install-recommends --download-only -y -qq python3.11 libstdc++6 libffi8 libgcc-s1
for deb in "$APTDIR"/cache/archives/*.deb; do dpkg -x "$deb" "$ROOT"; done
echo "[arm64-root] pip: aarch64 wheels apache-tvm==$TVM_VER apache-tvm-ffi==$FFI_VER numpy"
python3 -m pip install -q --disable-pip-version-check --only-binary=:all: \
  --platform manylinux_2_28_aarch64 --platform manylinux2014_aarch64 \
  --python-version 3.11 --implementation cp --abi cp311 --target "$ROOT/opt/site" \
  "apache-tvm==$TVM_VER" "apache-tvm-ffi==$FFI_VER" numpy "$@"
echo "[arm64-root] smoke test under qemu-aarch64 (import tvm takes ~15 s)"
PYTHONPATH="$ROOT/opt/site" qemu-aarch64 -L "$ROOT" "$ROOT/usr/bin/python3.11" -c \
  "import platform, numpy, tvm; from tvm import relax; print(platform.machine(), tvm.__version__, numpy.__version__)"
touch "$ROOT/.yuan-arm64-ok"
echo "[arm64-root] ready: $ROOT"
