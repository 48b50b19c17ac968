#!/usr/bin/env bash
# Installs the pinned NATS tools into a tools folder and prints that folder.
# Reuses binaries already there; builds them with `go install` from the Go
# module proxy otherwise. Usage: eval "$(deploy/tools.sh --env)" or
# deploy/tools.sh (prints the folder); with --run, only what running Shoal
# needs (nats-server and the nats CLI), not the test tools.
set -euo pipefail

print_env=false
only_run=false
for arg in "$@"; do
  case "$arg" in
    --env) print_env=true ;;
    --run) only_run=true ;;
    *) echo "tools.sh: unknown argument $arg (use --env and/or --run)" >&2; exit 2 ;;
  esac
done

NATS_SERVER_VERSION="v2.15.2"
NATS_CLI_VERSION="v0.5.0"
# Offline validation of rendered Kubernetes manifests (bundles the official schemas).
KUBERNETES_VALIDATE_VERSION="1.37.0"
# The NATS client examples/python uses.
NATS_PY_VERSION="2.16.0"
# Checks the example job against schemas/job.json.
JSONSCHEMA_VERSION="4.26.0"
# The fuzzing driver (deploy/fuzz.sh), from crates.io.
CARGO_FUZZ_VERSION="0.13.2"

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tools="${SHOAL_TOOLS_DIR:-$root/.tools}"
bin="$tools/bin"
mkdir -p "$bin"

has_version() { # binary, expected version
  [ -x "$1" ] && "$1" --version 2>&1 | grep -q "${2#v}"
}

install_go_tool() { # module@version, binary name, expected version
  local module=$1 name=$2 version=$3
  if has_version "$bin/$name" "$version"; then
    return 0
  fi
  if ! command -v go >/dev/null 2>&1; then
    echo "tools.sh: go is needed to build $name $version and is not on PATH" >&2
    exit 1
  fi
  echo "tools.sh: building $name $version with go install (once)" >&2
  GOBIN="$bin" GOFLAGS=-mod=mod CGO_ENABLED=0 go install "$module@$version" >&2
  has_version "$bin/$name" "$version" || {
    echo "tools.sh: $name was built but does not report version $version" >&2
    exit 1
  }
}

install_go_tool github.com/nats-io/nats-server/v2 nats-server "$NATS_SERVER_VERSION"
install_go_tool github.com/nats-io/natscli/nats nats "$NATS_CLI_VERSION"

python_tools="$tools/python"
cargo_tools="$tools/cargo"
python_packages="kubernetes-validate==$KUBERNETES_VALIDATE_VERSION nats-py==$NATS_PY_VERSION jsonschema==$JSONSCHEMA_VERSION"
if $only_run; then
  :
elif ! PYTHONPATH="$python_tools" python3 -c "import kubernetes_validate, nats, jsonschema" 2>/dev/null \
  || [ "$(cat "$python_tools/.version" 2>/dev/null)" != "$python_packages" ]; then
  echo "tools.sh: installing $python_packages with pip (once)" >&2
  rm -rf "$python_tools"
  # shellcheck disable=SC2086 # one word per package
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --target "$python_tools" \
    $python_packages >&2
  echo "$python_packages" > "$python_tools/.version"
fi

if ! $only_run && ! has_version "$cargo_tools/bin/cargo-fuzz" "$CARGO_FUZZ_VERSION"; then
  echo "tools.sh: building cargo-fuzz $CARGO_FUZZ_VERSION with cargo install (once)" >&2
  cargo install --quiet --locked --root "$cargo_tools" --version "$CARGO_FUZZ_VERSION" cargo-fuzz >&2
fi

# The dashboard test drives Debian's Chromium headless (SHOAL_CHROMIUM names another).
if ! $only_run && [ -z "${SHOAL_CHROMIUM:-}" ] && ! command -v chromium >/dev/null 2>&1; then
  echo "tools.sh: installing Debian's chromium with apt-get (once)" >&2
  as_root=()
  [ "$(id -u)" -eq 0 ] || as_root=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${as_root[@]}" apt-get install -y -qq --no-install-recommends chromium >&2 \
    || { "${as_root[@]}" apt-get update -qq >&2 \
      && "${as_root[@]}" apt-get install -y -qq --no-install-recommends chromium >&2; }
fi

if $print_env; then
  echo "export PATH=\"$bin:$cargo_tools/bin:\$PATH\""
  echo "export SHOAL_PYTHON_TOOLS=\"$python_tools\""
else
  echo "$bin"
fi
