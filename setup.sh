#!/usr/bin/env bash
# Set up vla-bt in ./.venv on Debian/Ubuntu with Python >= 3.10.
#
#   ./setup.sh          the library and the vla-bt command
#   ./setup.sh --dev    also everything the test suite needs
#
# Run as root, it installs the system packages it needs with apt-get;
# otherwise it says which ones are missing.
set -euo pipefail
cd "$(dirname "$0")"

dev=0
for arg in "$@"; do
  case "$arg" in
    --dev) dev=1 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown option '$arg' (use --dev or --help)" >&2; exit 2 ;;
  esac
done

python=${PYTHON:-python3}
if ! command -v "$python" >/dev/null; then
  echo "setup.sh: $python not found: install Python >= 3.10 first" >&2; exit 2
fi
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
  echo "setup.sh: Python >= 3.10 is needed, $("$python" --version) found" >&2; exit 2
fi

# System packages: Graphviz draws trees (svg/png); venv and pip for the virtual environment.
# The test suite also makes speech with espeak-ng and sox, opens PortAudio (the microphone),
# drives Chromium headless, and builds ROS 2 interface packages with cmake and a C compiler.
missing=()
command -v dot >/dev/null || missing+=(graphviz)
"$python" -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv python3-pip)
if ((dev)); then
  command -v espeak-ng >/dev/null || missing+=(espeak-ng)
  command -v sox >/dev/null || missing+=(sox)
  command -v chromium >/dev/null || missing+=(chromium)
  command -v chromedriver >/dev/null || missing+=(chromium-driver)
  command -v cmake >/dev/null || missing+=(cmake)
  command -v g++ >/dev/null || missing+=(g++)
  ldconfig -p 2>/dev/null | grep -q 'libportaudio\.so\.2' || missing+=(libportaudio2)
fi
if ((${#missing[@]})); then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup.sh: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "setup.sh: please install: ${missing[*]} (e.g. sudo apt-get install ${missing[*]})" >&2
    [[ " ${missing[*]} " == *" python3-venv "* ]] && exit 2
  fi
fi

[ -x .venv/bin/python ] || "$python" -m venv .venv
pip=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
if ((dev)); then
  "${pip[@]}" -e ".[dev,ros]"
  # nav2_msgs and control_msgs are not published as wheels: build the project's copies
  # of their interface definitions (used only where a ROS 2 installation lacks them).
  if [ -f vla_bt/ros/interfaces/build.py ]; then
    .venv/bin/python -m vla_bt.ros.interfaces.build
  fi
else
  "${pip[@]}" -e .
fi
echo "setup.sh: ready: .venv/bin/vla-bt --help"
