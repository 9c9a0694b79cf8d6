#!/usr/bin/env bash
# Release test: the container image. Builds the CPU image (scripts/image.sh), loads its OCI archive into podman,
# runs `doctor` and the demo job inside it with a host folder as /data, and checks the outputs on the host.
# With --gpu: builds the GPU image and checks, in the loaded image, that every library ONNX Runtime's CUDA provider
# needs resolves inside the image but libcuda (the NVIDIA container toolkit brings the driver; it cannot run here).
#
#   tests/release/image.sh [--gpu] [--bundle PATH]   (the arguments go to scripts/image.sh)
#
# Exit 0 and a line "image test: skipped: WHY" where containers cannot run on this machine (e.g. mounts refused).
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/release-common.sh
gpu=0
[[ " $* " == *" --gpu "* ]] && gpu=1
vf_apt_need podman runc uidmap slirp4netns fuse-overlayfs
fail() { echo "image test: FAILED: $*" >&2; exit 1; }
version=$(vf_version)

# can this machine run a container at all? (needs mount and namespaces; a restricted CI sandbox may refuse them)
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
if ! unshare --mount --pid --fork true 2>"$probe/err"; then
  echo "image test: skipped: this machine cannot make mount/pid namespaces: $(cat "$probe/err")"; exit 0
fi

# scripts/image.sh exits 3 when the disk is too small for the image: a fact of this machine, said as a skip
build() {
  local rc=0
  bash scripts/image.sh "$@" 2>"$probe/build-err" || rc=$?
  cat "$probe/build-err" >&2
  if ((rc == 3)); then echo "image test: skipped: $(tail -n1 "$probe/build-err" | sed "s/^image: //")"; exit 0; fi
  ((rc == 0)) || fail "scripts/image.sh $* exited $rc"
}
build "$@"
if ((gpu)); then
  archive=$(ls dist/videoforge-"$version"-cuda*.oci.tar | sort -V | tail -n1)
  tag=$(basename "$archive" .oci.tar); tag=${tag#videoforge-}
else
  archive=dist/videoforge-$version.oci.tar tag=$version
fi
podman rmi -f "videoforge:$tag" >/dev/null 2>&1 || true
# room to load it: the archive unpacked under dist/ (below), and in the containers' storage a copy of the layer
# and the layer applied (3.5 times the archive in all was measured for the GPU image); too little is said as a
# skip, like scripts/image.sh's
a_mib=$(du -sm "$archive" | cut -f1)
vf_need_disks "image test" "loading $archive into podman" dist "$a_mib" /var/lib/containers $((a_mib * 3))
# podman too unpacks the layer into a temporary file first: under dist/, as scripts/image.sh does (/var/tmp may be
# small)
mkdir -p dist/.tmp
TMPDIR=$PWD/dist/.tmp podman load -q -i "$archive"
rm -rf dist/.tmp
# the loaded image goes again at the end (2 GB for the GPU one); `podman load -i` brings it back
trap 'podman image unmount "videoforge:$tag" >/dev/null 2>&1; podman rmi -f "videoforge:$tag" >/dev/null 2>&1; rm -rf "$probe" ${data:+"$data"}' EXIT
podman image exists "videoforge:$tag" || fail "podman load -i $archive did not give videoforge:$tag"
echo "image test: loaded videoforge:$tag from $archive ($(vf_mib "$archive") MiB); $(podman image inspect --format '{{.Size}}' "videoforge:$tag" | awk '{printf "%.1f MiB", $1/1048576}') unpacked"

if ((gpu)); then
  mnt=$(podman image mount "videoforge:$tag")
  python3 scripts/gpu_libs.py closure --cuda --only-driver --dir "$mnt/opt/videoforge/lib" --dir "$mnt/usr/lib/x86_64-linux-gnu" \
    "$mnt/opt/videoforge/lib/libonnxruntime_providers_cuda.so" "$mnt/opt/videoforge/bin/videoforge" \
    "$mnt"/opt/videoforge/lib/videoforge/*.so | sed "s|$mnt||g" || fail "the CUDA provider's closure in the image"
  # the farm examples name this image (under the user's registry)
  for f in jobs/farm/k8s-indexed-job.yaml jobs/farm/aws-batch-job-definition.json; do
    grep -qE "REGISTRY/videoforge:${tag//./\\.}(\"|\$)" "$f" || fail "$f does not name the image REGISTRY/videoforge:$tag"
  done
  echo "image test: ok (videoforge:$tag: the CUDA provider's closure is in the image; running it needs a GPU)"
  exit 0
fi

# the demo job in /data: the model from the image's bundle
data=$(mktemp -d)
mkdir -p "$data/media"
cp jobs/media/sample.mp4 "$data/media/"
sed -e 's|^path = "../models/|path = "/opt/videoforge/models/|' -e 's|^dir = "../out/demo"|dir = "out"|' jobs/demo.toml > "$data/demo.toml"
grep -q '^path = "/opt/videoforge/models/' "$data/demo.toml" || fail "jobs/demo.toml changed: its model path was not rewritten"
run=(podman --runtime runc run --rm --ulimit nofile=20000:20000 --ulimit nproc=32768:32768 -v "$data:/data" "videoforge:$tag")
if ! "${run[@]}" doctor > "$data/doctor.txt" 2>&1; then
  if grep -qiE 'mount.*(permission denied|operation not permitted)|cannot (set up|create) namespace|newuidmap' "$data/doctor.txt"; then
    echo "image test: skipped: containers cannot run here: $(tail -n1 "$data/doctor.txt")"; exit 0
  fi
  cat "$data/doctor.txt"; fail "doctor in the image"
fi
sed 's/^/  doctor | /' "$data/doctor.txt"
"${run[@]}" validate demo.toml || fail "validate in the image"
"${run[@]}" run demo.toml || fail "the demo job in the image"
out=$data/out/sample.x2.mp4
[[ -s $out && -s $out.report.json ]] || fail "no output or report on the host in $data/out"
grep -q '"status": *"complete"' "$out.report.json" || fail "the report is not complete"
if command -v ffprobe >/dev/null; then
  dims=$(ffprobe -v error -select_streams v:0 -show_entries stream=width,height -of csv=p=0 "$out")
  echo "image test: output on the host: $out ($dims)"
fi
echo "image test: ok (videoforge:$tag)"
