#!/usr/bin/env bash
# Refresh zoolite/apps/web/vendor/litertjs/ from npm: the LiteRT.js files the web page loads, nothing else.
#   scripts/refresh_litertjs.sh [VERSION]      (default: the pinned version below)
# Needs npm (registry access); the page itself never fetches anything from a CDN.
set -euo pipefail

VERSION="${1:-2.5.3}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="$ROOT/zoolite/apps/web/vendor/litertjs"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

cd "$WORK"
npm pack --silent "@litertjs/core@$VERSION" >/dev/null
# core imports the bare specifier "@litertjs/wasm-utils": index.html maps it with an import map.
npm pack --silent "@litertjs/wasm-utils@$VERSION" >/dev/null
mkdir core utils
tar -xzf litertjs-core-"$VERSION".tgz -C core
tar -xzf litertjs-wasm-utils-"$VERSION".tgz -C utils

# Only two of the four wasm builds: "threaded" (relaxed SIMD + pthreads, used when the page is
# cross-origin isolated) and "compat" (single thread, no relaxed SIMD: the fallback that any
# browser can run). The plain relaxed-SIMD and JSPI builds are never loaded by the page.
rm -rf "$DEST"
mkdir -p "$DEST/core" "$DEST/wasm-utils" "$DEST/wasm"
cp core/package/dist/index.js "$DEST/core/index.js"
cp utils/package/dist/index.js "$DEST/wasm-utils/index.js"
for name in litert_wasm_threaded_internal litert_wasm_compat_internal; do
    cp "core/package/wasm/$name.js" "core/package/wasm/$name.wasm" "$DEST/wasm/"
done
# Drop the source-map comments: the maps are not vendored, so devtools would ask for missing files.
sed -i '/^\/\/# sourceMappingURL=/d' "$DEST/core/index.js" "$DEST/wasm-utils/index.js"

# The npm packages declare Apache-2.0 but ship no LICENSE file: keep the licence text beside them.
for f in core/package/LICENSE utils/package/LICENSE /usr/share/common-licenses/Apache-2.0; do
    if [ -f "$f" ]; then cp "$f" "$DEST/LICENSE"; break; fi
done
[ -f "$DEST/LICENSE" ] || { echo "refresh_litertjs: no Apache-2.0 licence text found to copy" >&2; exit 1; }

cat > "$DEST/VERSION" <<END
@litertjs/core@$VERSION and @litertjs/wasm-utils@$VERSION from registry.npmjs.org (Apache-2.0)
Copyright 2025 Google LLC. Files taken unmodified except for removed sourceMappingURL comments:
  core/index.js          <- @litertjs/core/dist/index.js
  wasm-utils/index.js    <- @litertjs/wasm-utils/dist/index.js
  wasm/litert_wasm_{threaded,compat}_internal.{js,wasm} <- @litertjs/core/wasm/
Refresh with scripts/refresh_litertjs.sh [VERSION].
END
find "$DEST" -type f -exec chmod 644 {} + && find "$DEST" -type d -exec chmod 755 {} +  # readable by all, nothing executable
du -sh "$DEST" | awk '{print "refresh_litertjs: " $1 " in " $2}'
