#!/usr/bin/env bash
# The container image, built with no registry: a minimal Debian 12 root filesystem made by mmdebstrap from this
# machine's own apt sources, plus the release bundle in /opt/videoforge, committed by buildah and written as an
# OCI archive: dist/videoforge-VERSION.oci.tar (image videoforge:VERSION).
#
#   scripts/image.sh [--gpu] [--bundle PATH] [--fresh-rootfs]
#
#   --gpu           from the -cudaN bundle (scripts/bundle.sh --gpu): dist/videoforge-VERSION-cudaN.oci.tar, image
#                   videoforge:VERSION-cudaN; the NVIDIA container toolkit brings the driver in at run time
#   --bundle PATH   the bundle to use (default: dist/'s bundle of this version, made by scripts/bundle.sh if missing)
#   --fresh-rootfs  make the root filesystem again (default: reuse dist/.rootfs/ from an earlier run)
#
# Exit 3 when the disk is too small for it (the GPU image needs about 4.5 GB free beside its unpacked bundle).
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
    -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
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
[[ -f $bundle ]] || { echo "image: no bundle at $bundle" >&2; exit 2; }
base=$(basename "$bundle" .tar.zst)           # videoforge-VERSION-linux-x86_64[-cudaN]
tag=$version
[[ $base == *-cuda* ]] && tag+=-${base##*-}   # VERSION-cudaN
image=videoforge:$tag
out=dist/videoforge-$tag.oci.tar

# 1. the root filesystem (Debian 12, essential packages + libstdc++6; no docs, manuals or translations but the
#    copyright files), cached in dist/.rootfs/
rootfs=dist/.rootfs/bookworm-essential.tar
if ((fresh)) || [[ ! -s $rootfs ]]; then
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
  mmdebstrap --quiet --variant=essential --include=libstdc++6 \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    bookworm "$rootfs.tmp" "${sources[@]}"
  mv "$rootfs.tmp" "$rootfs"
  echo "image: root filesystem $(vf_mib "$rootfs") MiB in $((SECONDS - t0)) s"
fi

# 2. the bundle, unpacked (an earlier archive of this tag goes first: the GPU image needs several GB of disk at its
#    peak, see tests/release/image.sh)
rm -f "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/data"
zstd -dc "$bundle" | tar -C "$work" -xf -
[[ -x $work/$base/bin/videoforge ]] || { echo "image: $bundle has no $base/bin/videoforge" >&2; exit 1; }
# room for what follows (the GPU bundle is 2 GB unpacked: S below), per filesystem: the container's copy in the
# containers' storage (S), then, once the unpacked bundle is gone (-S where it was unpacked), the commit's
# temporary files in dist/ (about 1.4 S, measured) and the packed archive (0.7 S). Short of it, buildah's commit
# fails with an unhelpful "io: read/write on closed pipe", so say it here (exit 3).
size=$(du -sm "$work/$base" | cut -f1)
storage=/var/lib/containers
mkdir -p "$storage"
mount_of() { df --output=target "$1" | tail -n1; }
declare -A adding committing
for m in "$(mount_of "$storage")" "$(mount_of dist)" "$(mount_of "$work")"; do adding[$m]=0 committing[$m]=0; done
adding[$(mount_of "$storage")]=$((size * 11 / 10))
committing[$(mount_of "$storage")]=$((size * 11 / 10))
((committing[$(mount_of dist)] += size * 21 / 10))
((committing[$(mount_of "$work")] -= size))
for m in "${!adding[@]}"; do
  mib=$((adding[$m] > committing[$m] ? adding[$m] : committing[$m]))
  free=$(df --output=avail -BM "$m" | tail -n1 | tr -dc 0-9)
  if ((free < mib)); then
    echo "image: not enough disk: $m has $free MiB free, the image of this ${size} MiB bundle needs about $mib MiB" \
         "there" >&2
    exit 3
  fi
done

# 3. the image
c=$(buildah from --quiet scratch)
cleanup() { buildah rm "$c" >/dev/null 2>&1 || true; rm -rf "$work" dist/.tmp; }
trap cleanup EXIT
buildah add --quiet "$c" "$rootfs" / >/dev/null
buildah add --quiet "$c" "$work/$base" /opt/videoforge >/dev/null
rm -rf "${work:?}/$base"   # copied into the container: 2 GB less on disk while the layer is committed
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
# straight into the archive, not into local storage first: a 2 GB layer would otherwise take 2 GB more. The layer
# is written to a temporary file first (buildah uses TMPDIR, /var/tmp by default, which may be small or full: a
# commit that runs out of room there fails with "io: read/write on closed pipe"), so it goes under dist/.
export TMPDIR=$PWD/dist/.tmp
mkdir -p "$TMPDIR"
buildah commit --quiet --format oci --disable-compression=false --rm "$c" "oci-archive:$out:$image" >/dev/null
c=
rm -rf "$TMPDIR"
echo "image: $out ($image): $(vf_mib "$out") MiB; load it with: podman load -i $out"
