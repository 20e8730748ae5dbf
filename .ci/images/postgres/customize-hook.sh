#!/bin/sh
# mmdebstrap --customize-hook: runs on the build host with the image root as $1, after the
# packages are installed. DB_SERVER_IMAGE_RECIPE is this folder.
set -eu
root=$1
sample="$root/usr/share/postgresql/17/postgresql.conf.sample"

install -m 0755 "$DB_SERVER_IMAGE_RECIPE/docker-entrypoint.sh" "$root/usr/local/bin/docker-entrypoint.sh"

# As in the official image: initdb copies this sample, so every new cluster listens on all
# container interfaces; the init-time server overrides it to listen on the unix socket only.
sed -ri "s!^#?(listen_addresses)\s*=\s*\S+.*!\1 = '*'!" "$sample"
grep -q "^listen_addresses = '\*'" "$sample"

mkdir -p "$root/docker-entrypoint-initdb.d"
chroot "$root" install -d -o postgres -g postgres -m 3777 /var/run/postgresql
# 1777 like the official image so `docker run --user` works; the entrypoint tightens it to 0700.
chroot "$root" install -d -o postgres -g postgres -m 1777 /var/lib/postgresql/data

# The LLVM JIT is more than half of the image (libLLVM, libz3) and no test needs it. Without
# llvmjit.so PostgreSQL reports JIT as unavailable (pg_jit_available() = false) instead of failing.
rm -rf "$root"/usr/lib/postgresql/17/lib/llvmjit* "$root"/usr/lib/postgresql/17/lib/bitcode
rm -f "$root"/usr/lib/*/libLLVM* "$root"/usr/lib/*/libz3.so*
