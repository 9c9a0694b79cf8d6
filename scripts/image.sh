#!/usr/bin/env bash
# The container image, built with no registry: a minimal Debian 12 root filesystem made by mmdebstrap from this
# machine's own apt sources, plus the release bundle in /opt/videoforge, committed by buildah and written as an
# OCI archive: dist/videoforge-VERSION.oci.tar (image videoforge:VERSION).
#
#   scripts/image.sh [--gpu] [--bundle PATH] [--fresh-rootfs]
#
#   --gpu           from the -cudaN bundle (scripts/bundle.sh --gpu): dist/videoforge-VERSION-cudaN.oci.tar, image
#                   videoforge:VERSION-cudaN; the NVIDIA container toolkit brings the driver in at run time
#   --bundle PATH   the bundle to use, an archive or an unpacked folder (scripts/bundle.sh --no-pack; default:
#                   dist/'s archive of this version, made by scripts/bundle.sh if missing)
#   --fresh-rootfs  make the root filesystem again (default: reuse dist/.rootfs/ from an earlier run)
#
# Exit 3 when the disk is too small for it (the GPU image needs about 5 GB free beside its unpacked bundle).
#
# Load and run:  podman load -i dist/videoforge-VERSION.oci.tar
#                podman run --rm -v "$PWD:/data" videoforge:VERSION run job.toml
# Entrypoint /opt/videoforge/bin/videoforge (also on PATH as `videoforge`), working directory /data, default
# command `doctor`. The root filesystem has Debian's essential packages and libstdc++6, nothing else: everything
# else the program needs is in the bundle's lib/. Apt sources: the Debian entries of /etc/apt (a file of your own
# with VIDEOFORGE_APT_SOURCES=PATH).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/release-common.sh
gpu=0 bundle= fresh=0
while (($#)); do
  case $1 in
    --gpu) gpu=1 ;;
    --bundle) bundle=$2; shift ;;
    --fresh-rootfs) fresh=1 ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "image: unknown argument $1 (--gpu, --bundle PATH, --fresh-rootfs)" >&2; exit 2 ;;
  esac
  shift
done
vf_apt_need mmdebstrap buildah zstd python3
version=$(vf_version)

find_bundle() {
  if ((gpu)); then ls dist/videoforge-"$version"-linux-x86_64-cuda*.tar.zst 2>/dev/null | sort -V | tail -n1
  else ls dist/videoforge-"$version"-linux-x86_64.tar.zst 2>/dev/null; fi
}
if [[ -z $bundle ]]; then
  bundle=$(find_bundle || true)
  if [[ -z $bundle ]]; then
    if ((gpu)); then bash scripts/bundle.sh --gpu; else bash scripts/bundle.sh; fi
    bundle=$(find_bundle)
  fi
fi
[[ -e $bundle ]] || { echo "image: no bundle at $bundle" >&2; exit 2; }
base=$(basename "$bundle" .tar.zst)           # videoforge-VERSION-linux-x86_64[-cudaN]
tag=$version
[[ $base == *-cuda* ]] && tag+=-${base##*-}   # VERSION-cudaN
image=videoforge:$tag
out=dist/videoforge-$tag.oci.tar

# 1. the root filesystem (Debian 12, essential packages + libstdc++6; no docs, manuals or translations but the
#    copyright files), a folder cached in dist/.rootfs/
rootfs=dist/.rootfs/bookworm-essential
if ((fresh)) || [[ ! -x $rootfs/bin/sh ]]; then
  sources=()
  if [[ -n ${VIDEOFORGE_APT_SOURCES:-} ]]; then
    sources=("$VIDEOFORGE_APT_SOURCES")
  else
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
      [[ -f $f ]] && grep -Eq '^[^#]*(URIs:|deb) .*/debian(-security)?/?( |$)' "$f" && sources+=("$f")
    done
  fi
  ((${#sources[@]})) || { echo "image: no Debian apt sources in /etc/apt (set VIDEOFORGE_APT_SOURCES)" >&2; exit 2; }
  echo "image: making the root filesystem with mmdebstrap (Debian 12, from ${sources[*]})"
  mkdir -p dist/.rootfs
  t0=$SECONDS
  rm -rf "$rootfs.tmp"
  mmdebstrap --quiet --format=directory --variant=essential --include=libstdc++6 \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    bookworm "$rootfs.tmp" "${sources[@]}"
  rm -rf "$rootfs" && mv "$rootfs.tmp" "$rootfs"
  echo "image: root filesystem $(vf_mib "$rootfs") MiB in $((SECONDS - t0)) s"
fi

# 2. the bundle: a folder as it is, or an archive unpacked under dist/ (an earlier image archive of this tag goes
#    first: the GPU image needs several GB of disk at its peak)
rm -f "$out"
mkdir -p dist
work=$(mktemp -d -p dist .image.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/data"
if [[ -d $bundle ]]; then
  base=$(basename "$bundle") src=$bundle unpacked=0
else
  # the archive unpacks to at most 3 times its size (the GPU bundle: 1.5 times)
  vf_need_disk image "$work" $(($(du -sm "$bundle" | cut -f1) * 3)) "unpacking $bundle"
  zstd -dc "$bundle" | tar -C "$work" -xf -
  src=$work/$base unpacked=1
fi
[[ -x $src/bin/videoforge ]] || { echo "image: $bundle has no $base/bin/videoforge" >&2; exit 1; }
# room for what follows (the GPU bundle is 2 GB unpacked: S below), per filesystem: the container's copy in the
# containers' storage (1.1 S), then, once an unpacked archive is gone, the commit's files in dist/ (the layer
# compressed, about 0.7 S, twice: buildah's temporary copy and the OCI layout; 2.4 S in all was measured with
# the storage on the same disk), then the layout and the archive made from it (0.7 S each). Short of room,
# buildah's commit fails with an unhelpful "io: read/write on closed pipe", so say it here (exit 3): the adding
# phase, then the committing one.
size=$(du -smL "$src" | cut -f1)
storage=/var/lib/containers
mkdir -p "$storage"
what="the image of this ${size} MiB bundle"
vf_need_disks image "$what" "$storage" $((size * 11 / 10))
vf_need_disks image "$what" "$storage" $((size * 11 / 10)) dist $((size * 15 / 10 - unpacked * size))

# 3. the image
c=$(buildah from --quiet scratch)
cleanup() { [[ -z $c ]] || buildah rm "$c" >/dev/null 2>&1 || true; rm -rf "$work" dist/.tmp "$out.tmp"; }
trap cleanup EXIT
buildah add --quiet "$c" "$rootfs" / >/dev/null
buildah add --quiet "$c" "$src" /opt/videoforge >/dev/null
((unpacked)) && rm -rf "$src"   # copied into the container: 2 GB less on disk while the layer is committed
buildah add --quiet "$c" "$work/data" /data >/dev/null
# what the image holds must be complete without the host: every library the program, its plugins and ONNX
# Runtime need resolves in the image (glibc included), and in a GPU image the CUDA provider's too, but libcuda
mnt=$(buildah mount "$c")
roots=("$mnt/opt/videoforge/bin/videoforge" "$mnt"/opt/videoforge/lib/videoforge/*.so "$mnt/opt/videoforge/lib/libonnxruntime.so")
cuda=()
if [[ -f $mnt/opt/videoforge/lib/libonnxruntime_providers_cuda.so ]]; then
  roots+=("$mnt/opt/videoforge/lib/libonnxruntime_providers_cuda.so"); cuda=(--cuda)
fi
if ! check=$(python3 scripts/gpu_libs.py closure "${cuda[@]}" --only-driver --dir "$mnt/opt/videoforge/lib" \
               --dir "$mnt/usr/lib/x86_64-linux-gnu" "${roots[@]}"); then
  echo "$check" >&2; buildah umount "$c" >/dev/null; exit 1
fi
echo "image: ${check##*$'\n'}" | sed "s|$mnt||g"
buildah umount "$c" >/dev/null
env_gpu=()
((gpu)) && env_gpu=(--env NVIDIA_VISIBLE_DEVICES=all --env NVIDIA_DRIVER_CAPABILITIES=compute,utility,video)
buildah config --os linux --arch amd64 \
  --entrypoint '["/opt/videoforge/bin/videoforge"]' --cmd '["doctor"]' --workingdir /data \
  --env PATH=/opt/videoforge/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "${env_gpu[@]}" \
  --label org.opencontainers.image.title=videoforge --label org.opencontainers.image.version="$tag" \
  --label org.opencontainers.image.description="AI video upscaling driven by job files" \
  --label org.opencontainers.image.licenses=Apache-2.0 "$c"
# into an OCI layout under dist/, not into local storage first (a 2 GB layer would take 2 GB more there), then
# packed as the archive (the same tar that buildah's oci-archive: writes, but made once buildah's own temporary
# copy of the layer is gone). buildah writes that copy under TMPDIR, /var/tmp by default, which may be small or
# full: a commit that runs out of room fails with "io: read/write on closed pipe". So it goes under dist/ too.
export TMPDIR=$PWD/dist/.tmp
mkdir -p "$TMPDIR"
layout=$TMPDIR/layout
buildah commit --quiet --format oci --disable-compression=false --rm "$c" "oci:$layout:$image" >/dev/null
c=
tar --owner=0 --group=0 --numeric-owner --remove-files -C "$layout" -cf "$out.tmp" oci-layout index.json blobs
mv "$out.tmp" "$out"
rm -rf "$TMPDIR"
echo "image: $out ($image): $(vf_mib "$out") MiB; load it with: podman load -i $out"
