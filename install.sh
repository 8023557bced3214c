#!/bin/sh
# Installs the denocat binary for this machine from a GitHub release.
#
#   curl -fsSL https://github.com/denocat/denocat/releases/latest/download/install.sh | sh
#   sh install.sh --dir /usr/local/bin --version v0.2.0
#
# It picks the archive for this OS and CPU, downloads it with the release's
# SHA256SUMS, refuses to install when the checksum does not match, and moves
# the binary into place only once it is complete (nothing half-written is ever
# left under the final name).
#
# Environment:
#   DENOCAT_DOWNLOAD_BASE  where releases live, laid out as GitHub lays them:
#                          BASE/latest/download/ASSET and BASE/download/TAG/ASSET
#                          (default: https://github.com/denocat/denocat/releases)
#
# Exit codes: 0 installed, 1 failure (download, checksum, unsupported
# platform), 2 usage error.
set -eu

# The release workflow writes the repository's own name here when it attaches
# this script to a release.
REPO="denocat/denocat"
BASE="${DENOCAT_DOWNLOAD_BASE:-https://github.com/${REPO}/releases}"
BASE="${BASE%/}"
DIR=""
VERSION=""

die() {
  echo "denocat install: $1" >&2
  exit "${2:-1}"
}

usage() {
  cat <<'EOF'
Usage: install.sh [--dir DIR] [--version vX.Y.Z]

Downloads the denocat binary for this machine, checks it against the release's
SHA256SUMS and installs it as DIR/denocat.

  --dir DIR          where to install (default: ~/.local/bin)
  --version vX.Y.Z   install this release (default: the latest)
  -h, --help         show this help

DENOCAT_DOWNLOAD_BASE overrides where releases are downloaded from.
EOF
}

while [ $# -gt 0 ]; do
  case "$1" in
    --dir)
      [ $# -ge 2 ] || die "--dir needs a directory" 2
      DIR="$2"
      shift 2
      ;;
    --dir=*)
      DIR="${1#--dir=}"
      shift
      ;;
    --version)
      [ $# -ge 2 ] || die "--version needs a release tag such as v0.2.0" 2
      VERSION="$2"
      shift 2
      ;;
    --version=*)
      VERSION="${1#--version=}"
      shift
      ;;
    -h | --help)
      usage
      exit 0
      ;;
    *)
      die "unknown argument: $1 (see --help)" 2
      ;;
  esac
done

if [ -z "$DIR" ]; then
  [ -n "${HOME:-}" ] || die "no install directory (HOME is not set; use --dir DIR)" 2
  DIR="$HOME/.local/bin"
fi
if [ -n "$VERSION" ]; then
  case "$VERSION" in
    v*) ;;
    *) VERSION="v$VERSION" ;;
  esac
  # Only a plain release tag may go into the URL.
  case "$VERSION" in
    v[0-9]*.[0-9]*.[0-9]*) ;;
    *) die "bad version: $VERSION (expected vMAJOR.MINOR.PATCH)" 2 ;;
  esac
  case "$VERSION" in
    *[!0-9A-Za-z.-]*) die "bad version: $VERSION (expected vMAJOR.MINOR.PATCH)" 2 ;;
  esac
fi

os=$(uname -s)
arch=$(uname -m)
case "$os" in
  Linux) os_part="unknown-linux-gnu" ;;
  Darwin) os_part="apple-darwin" ;;
  MINGW* | MSYS* | CYGWIN* | Windows_NT)
    die "install.sh does not install on Windows: download denocat-x86_64-pc-windows-msvc.zip from ${BASE} and check it against SHA256SUMS"
    ;;
  *) die "no denocat build for $os (there are builds for Linux, macOS and Windows)" ;;
esac
case "$arch" in
  x86_64 | amd64) arch="x86_64" ;;
  aarch64 | arm64) arch="aarch64" ;;
  *) die "no denocat build for $os on $arch (there are x86_64 and aarch64 builds)" ;;
esac
# A shell under Rosetta reports x86_64 on an Apple silicon Mac: take the
# native build there.
if [ "$os" = Darwin ] && [ "$arch" = x86_64 ] &&
  [ "$(sysctl -n sysctl.proc_translated 2>/dev/null || true)" = 1 ]; then
  arch="aarch64"
fi
target="${arch}-${os_part}"
asset="denocat-${target}.tar.gz"
if [ -n "$VERSION" ]; then
  url_dir="${BASE}/download/${VERSION}"
else
  url_dir="${BASE}/latest/download"
fi

if command -v curl >/dev/null 2>&1; then
  get() { curl -fsSL --proto '=https,http' -o "$2" "$1"; }
elif command -v wget >/dev/null 2>&1; then
  get() { wget -nv -O "$2" "$1"; }
else
  die "needs curl or wget to download"
fi
if command -v sha256sum >/dev/null 2>&1; then
  sha256() { sha256sum "$1" | cut -d ' ' -f 1; }
elif command -v shasum >/dev/null 2>&1; then
  sha256() { shasum -a 256 "$1" | cut -d ' ' -f 1; }
else
  die "needs sha256sum or shasum to verify the download"
fi
command -v tar >/dev/null 2>&1 || die "needs tar to unpack the download"

tmp=$(mktemp -d 2>/dev/null || mktemp -d -t denocat)
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' HUP INT TERM

# Downloads $1 to $2; on failure ends with one line naming the URL and the
# downloader's own last word (an HTTP 404 for a missing asset, say).
fetch() {
  if ! get "$1" "$2" 2>"$tmp/fetch.err"; then
    why=$(tail -n 1 "$tmp/fetch.err" | tr -d '\r')
    die "cannot download $1: ${why:-download failed}"
  fi
}
fetch "${url_dir}/${asset}" "$tmp/$asset"
fetch "${url_dir}/SHA256SUMS" "$tmp/SHA256SUMS"

# SHA256SUMS lines are "HASH  NAME" (or "HASH *NAME" for binary mode).
expected=$(awk -v f="$asset" '$2 == f || $2 == "*" f { print $1; exit }' "$tmp/SHA256SUMS")
[ -n "$expected" ] || die "SHA256SUMS has no entry for $asset; nothing installed"
actual=$(sha256 "$tmp/$asset")
if [ "$actual" != "$expected" ]; then
  die "checksum mismatch for $asset (expected $expected, got $actual); nothing installed"
fi

mkdir "$tmp/unpacked"
tar -xzf "$tmp/$asset" -C "$tmp/unpacked" || die "cannot unpack $asset; nothing installed"
bin="$tmp/unpacked/denocat"
if [ ! -f "$bin" ] || [ -L "$bin" ]; then
  die "$asset holds no denocat binary; nothing installed"
fi

mkdir -p "$DIR" || die "cannot create $DIR"
# Copy under a temporary name in the same directory, then rename: the final
# name only ever points at a complete, checked binary.
part="$DIR/.denocat.part.$$"
cp "$bin" "$part" || {
  rm -f "$part"
  die "cannot write to $DIR"
}
chmod 755 "$part" || {
  rm -f "$part"
  die "cannot make $part executable"
}
mv -f "$part" "$DIR/denocat" || {
  rm -f "$part"
  die "cannot install into $DIR"
}

echo "installed $("$DIR/denocat" --version 2>/dev/null || echo denocat) as $DIR/denocat"
case ":${PATH:-}:" in
  *":$DIR:"*) ;;
  *) echo "note: $DIR is not on your PATH; add it, or run $DIR/denocat" ;;
esac
