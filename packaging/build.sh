#!/usr/bin/env bash
# build.sh: build yurthub's .deb and .rpm for amd64 and arm64 into dist/.
#
#   packaging/build.sh [dist-dir]        (run from anywhere; `make package` calls it)
#   packaging/build.sh --print-version   (print the package version and exit)
#
# Environment: PKG_VERSION (default: from git, see below), ARCHES (default
# "amd64 arm64"), SOURCE_DATE_EPOCH (default: the last commit's time).
# Reproducible: the binary is built with -trimpath and CGO_ENABLED=0, the man page
# with gzip -n, and nfpm stamps every file with SOURCE_DATE_EPOCH, so building the
# same commit twice gives byte-identical packages (packaging/test.sh checks it).
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
DIST=$(realpath -m -- "${1:-dist}")
ARCHES=${ARCHES:-amd64 arm64}

# Package version: a tag vX.Y.Z gives X.Y.Z; otherwise the newest changelog entry
# plus the commit, sorted before that release (~): 0.1.0~git20261122051811.381d224.
if [[ -z "${PKG_VERSION:-}" ]]; then
	if tag=$(git describe --tags --exact-match --match 'v[0-9]*' 2>/dev/null); then
		PKG_VERSION=${tag#v}
	else
		base=$(sed -n 's/^- semver: *//p' packaging/changelog.yml | head -n1)
		PKG_VERSION="${base}~git$(TZ=UTC git log -1 --date=format-local:%Y%m%d%H%M%S --format=%cd).$(git rev-parse --short=7 HEAD)"
	fi
	if [[ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]]; then
		PKG_VERSION+=".dirty"
	fi
fi
export PKG_VERSION
if [[ ${1:-} == --print-version ]]; then
	echo "$PKG_VERSION"
	exit 0
fi
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct)}
export DIST

mkdir -p "$DIST"
rm -f "$DIST"/yurthub_*.deb "$DIST"/yurthub-*.rpm
# Man page: gzip -n leaves the name and time out of the header.
gzip -9n <packaging/yurthub.8 >"$DIST/yurthub.8.gz"
touch -d "@$SOURCE_DATE_EPOCH" "$DIST/yurthub.8.gz"

nfpm=("$GO" tool -modfile=packaging/tools/go.mod nfpm)
for arch in $ARCHES; do
	echo "package: building yurthub $PKG_VERSION for linux/$arch"
	mkdir -p "$DIST/$arch"
	CGO_ENABLED=0 GOOS=linux GOARCH=$arch "$GO" build -trimpath \
		-ldflags "-s -w -buildid= -X github.com/yurthub/yurthub/internal/version.Version=$PKG_VERSION" \
		-o "$DIST/$arch/yurthub" .
	case $arch in
	amd64) rpmarch=x86_64 ;;
	arm64) rpmarch=aarch64 ;;
	*) rpmarch=$arch ;;
	esac
	PKG_ARCH=$arch "${nfpm[@]}" package --config packaging/nfpm.yaml --packager deb \
		--target "$DIST/yurthub_${PKG_VERSION}_${arch}.deb" >/dev/null
	PKG_ARCH=$arch "${nfpm[@]}" package --config packaging/nfpm.yaml --packager rpm \
		--target "$DIST/yurthub-${PKG_VERSION}.${rpmarch}.rpm" >/dev/null
	echo "package: $DIST/yurthub_${PKG_VERSION}_${arch}.deb"
	echo "package: $DIST/yurthub-${PKG_VERSION}.${rpmarch}.rpm"
done
