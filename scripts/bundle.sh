#!/usr/bin/env bash
# The release bundle: one relocatable folder, packed as dist/videoforge-VERSION-linux-x86_64.tar.zst. Unpack it
# anywhere and run bin/videoforge: no set-up, no LD_LIBRARY_PATH, no ORT_DYLIB_PATH.
#
#   scripts/bundle.sh [--gpu] [--no-build] [--profile release|dev] [--keep | --no-pack]
#
#   --gpu       add ONNX Runtime's CUDA build and the CUDA libraries (scripts/setup.sh with VIDEOFORGE_SETUP_GPU=1
#               fetches them): dist/videoforge-VERSION-linux-x86_64-cudaN.tar.zst
#   --no-build  take the binaries in target/ as they are (default: cargo build --workspace --locked first)
#   --profile   the cargo profile whose binaries go in (default release; CI's tests use dev, which test.sh has
#               already built, instead of a second full build)
#   --keep      keep the unpacked folder in dist/.stage/ (its ONNX Runtime and CUDA libraries may be hard links
#               to .deps/: do not edit them in place)
#   --no-pack   only the folder in dist/.stage/, no archive (scripts/image.sh --bundle takes the folder: the GPU
#               image's test saves the archive's 1.3 GB and its unpacking that way)
#
# Exit 3 when dist/ has too little disk for it.
#
# Layout: bin/videoforge (RPATH $ORIGIN/../lib), lib/videoforge/ (the backend plugins), lib/ (every library the
# binary and plugins link except glibc and the GCC runtime, plus ONNX Runtime; with --gpu the CUDA libraries and
# lib/LIBS, their load order), models/ (the shipped models and their licence), share/doc/ (third-party
# licences), README.md (what the host must have: the glibc and libstdc++ versions are measured here).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/release-common.sh
gpu=0 build=1 keep=0 pack=1 profile=release
while (($#)); do
  case $1 in
    --gpu) gpu=1 ;;
    --no-build) build=0 ;;
    --keep) keep=1 ;;
    --no-pack) pack=0 ;;
    --profile) profile=$2; shift ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "bundle: unknown argument $1 (--gpu, --no-build, --profile P, --keep, --no-pack)" >&2; exit 2 ;;
  esac
  shift
done

vf_apt_need patchelf zstd binutils
if ((gpu)); then VIDEOFORGE_SETUP_GPU=1 bash scripts/setup.sh; else bash scripts/setup.sh; fi
case $profile in
  release) target=target/release ;;
  dev) target=target/debug ;;
  *) echo "bundle: --profile $profile: release or dev" >&2; exit 2 ;;
esac
if ((build)); then cargo build --workspace --profile "$profile" --locked; fi
[[ -x $target/videoforge ]] || { echo "bundle: $target/videoforge is missing (drop --no-build)" >&2; exit 2; }

version=$(vf_version)
name=videoforge-$version-linux-x86_64
if ((gpu)); then
  cudart=$(ls .deps/cuda/lib/libcudart.so.* 2>/dev/null | head -n1 || true)
  [[ -n $cudart ]] || { echo "bundle: .deps/cuda/lib has no libcudart (the GPU set-up failed?)" >&2; exit 2; }
  cuda_major=${cudart##*.so.}
  name+=-cuda$cuda_major
fi
stage=dist/.stage/$name
rm -rf "$stage" && mkdir -p "$stage"/{bin,lib/videoforge,models,share/doc}
echo "bundle: staging $stage (from $target)"

# ONNX Runtime and the CUDA libraries (2 GB with --gpu) are hard-linked into the stage where .deps/ is on the same
# filesystem as dist/, and copied otherwise; the stage goes once packed (not with --keep). Room needed in dist/:
# the copies, the system libraries and binaries (0.35 GB measured), and the archive (at most 0.8 of the whole; none
# with --no-pack).
if ((gpu)); then deps=(.deps/onnxruntime-gpu .deps/cuda/lib); else deps=(.deps/onnxruntime); fi
deps_mib=$(du -smcL "${deps[@]}" | tail -n1 | cut -f1)
copy_mib=400 link=(-l)
[[ $(vf_mount_of .deps) == "$(vf_mount_of dist)" ]] || { copy_mib=$((copy_mib + deps_mib)); link=(); }
vf_need_disk bundle dist $((copy_mib + pack * (deps_mib + 300) * 8 / 10)) "the $name bundle"
# place SRC... DEST: hard links on the same filesystem, else copies (symbolic links stay links). Decided once, not
# per file: a copy over a hard link already made would be a copy onto its own source.
place() { cp "${link[@]}" -P "$@"; }

# 1. the binary and the plugins (every backend plugin but the test one), without debug info; the binary finds
#    lib/ through a DT_RPATH (not RUNPATH: an RPATH of the executable also serves the libraries it pulls in and the
#    ones they dlopen, e.g. libx264 under libavcodec, or cuDNN under ONNX Runtime's CUDA provider)
cp "$target/videoforge" "$stage/bin/"
plugins=()
for p in "$target"/libvideoforge_backend_*.so; do
  [[ $p == *test_panic* ]] && continue
  cp "$p" "$stage/lib/videoforge/" && plugins+=("$p")
done
((${#plugins[@]})) || { echo "bundle: no backend plugin in $target" >&2; exit 2; }
strip --strip-debug "$stage/bin/videoforge" "$stage"/lib/videoforge/*.so
patchelf --force-rpath --set-rpath '$ORIGIN/../lib' "$stage/bin/videoforge"
for p in "$stage"/lib/videoforge/*.so; do patchelf --force-rpath --set-rpath '$ORIGIN/..' "$p"; done

# 2. the shared-library closure (FFmpeg and all it pulls in), minus glibc and the GCC runtime
closure=$(env -u LD_LIBRARY_PATH ldd "$target/videoforge" "${plugins[@]}" | awk '
  /not found/ { print "MISSING " $1; next }
  $2 == "=>" && $3 ~ /^\// { print $1, $3 }' | sort -u)
if grep -q '^MISSING' <<<"$closure"; then
  echo "bundle: libraries not found on this machine: $(grep '^MISSING' <<<"$closure" | cut -d' ' -f2 | xargs)" >&2
  exit 1
fi
pkgs=()
while read -r soname path; do
  [[ $soname =~ $VF_SYSTEM_SONAMES ]] && continue
  cp -L "$path" "$stage/lib/$soname"
  real=$(readlink -f "$path")
  pkg=$(dpkg -S "$real" 2>/dev/null || dpkg -S "${real#/usr}" 2>/dev/null || dpkg -S "/usr$real" 2>/dev/null || true)
  pkgs+=("${pkg%%:*} $soname")
done <<<"$closure"

# 3. ONNX Runtime: the CPU build, or with --gpu the CUDA build (its CPU provider serves machines without a GPU)
#    and the CUDA libraries with their load order
if ((gpu)); then
  place .deps/onnxruntime-gpu/libonnxruntime* "$stage/lib/"
  mkdir -p "$stage/share/doc/onnxruntime" "$stage/share/doc/nvidia"
  cp .deps/onnxruntime-gpu/{LICENSE,ThirdPartyNotices.txt} "$stage/share/doc/onnxruntime/"
  place .deps/cuda/lib/* "$stage/lib/"
  cp .deps/cuda/licenses/* "$stage/share/doc/nvidia/"
  { grep '^#' .deps/cuda/LIBS; grep -v '^#' .deps/cuda/LIBS | sed 's|^lib/||'; } > "$stage/lib/LIBS"
  # cudarc (the host's NVRTC for kernels/) asks for plain libnvrtc.so first: through the binary's RPATH this link
  # makes that our NVRTC, the one cuDNN uses, rather than a CUDA toolkit's on the host
  nvrtc=$(cd "$stage/lib" && ls libnvrtc.so.[0-9]* | head -n1)
  ln -s "$nvrtc" "$stage/lib/libnvrtc.so"
  ort_pin=$(tr ' ' '\n' < .deps/cuda/PINS | grep '^onnxruntime-gpu==')
else
  place .deps/onnxruntime/libonnxruntime* "$stage/lib/"
  mkdir -p "$stage/share/doc/onnxruntime"
  cp .deps/onnxruntime/{LICENSE,ThirdPartyNotices.txt} "$stage/share/doc/onnxruntime/"
  ort_pin="onnxruntime==$(basename "$(ls .deps/onnxruntime/libonnxruntime.so.1.*)" | sed 's/libonnxruntime.so.//')"
fi
ort_file=$(basename "$(ls "$stage"/lib/libonnxruntime.so.1.*)")
ln -sf "$ort_file" "$stage/lib/libonnxruntime.so.1"
ln -sf "$ort_file" "$stage/lib/libonnxruntime.so"

# 4. models, licences of what we copied from the system (Debian packages), and the README
cp models/*.onnx models/README.md models/LICENSE* "$stage/models/"
{
  echo "Libraries in lib/ copied from Debian packages (package (version): sonames); each package's copyright file is"
  echo "in share/doc/PACKAGE/copyright. ONNX Runtime: share/doc/onnxruntime/. NVIDIA libraries: share/doc/nvidia/."
  echo
  printf '%s\n' "${pkgs[@]}" | sort | awk '{a[$1] = a[$1] " " $2} END {for (p in a) print p a[p]}' | sort |
    while read -r pkg libs; do
      [[ -n $pkg ]] || continue
      echo "$pkg ($(dpkg-query -W -f='${Version}' "$pkg" 2>/dev/null)):$libs"
      if [[ -f /usr/share/doc/$pkg/copyright ]]; then
        mkdir -p "$stage/share/doc/$pkg" && cp "/usr/share/doc/$pkg/copyright" "$stage/share/doc/$pkg/"
      fi
    done
} > "$stage/share/doc/THIRD-PARTY.txt"
read -r need_glibc need_cxx < <(find "$stage/bin" "$stage/lib" -type f -print0 |
  xargs -0 python3 scripts/gpu_libs.py glibc)
nlibs=$(find "$stage/lib" -maxdepth 1 -name '*.so*' | wc -l)
gpu_text="This is the CPU bundle: ONNX Runtime's CPU build (${ort_pin}). The \`-cudaN\` bundle of the same version
adds the GPU libraries."
if ((gpu)); then
  gpu_text="This bundle carries ONNX Runtime's CUDA build (${ort_pin}) and the CUDA $cuda_major libraries its CUDA
provider loads (cudart, cuBLAS, cuRAND, cuFFT, cuDNN 9, NVRTC: \`$(tr '\n' ' ' < .deps/cuda/PINS | sed 's/onnxruntime-gpu==[^ ]* //')\`), listed in
load order in \`lib/LIBS\`. The host needs only the NVIDIA driver (\`libcuda.so.1\`, \`libnvcuvid.so.1\`): driver
$( ((cuda_major >= 13)) && echo "580 or newer" || echo "525 or newer (CUDA 12)"). Without a GPU the same build runs on the CPU."
fi
cat > "$stage/README.md" <<EOF
# videoforge $version for Linux x86_64

AI video upscaling driven by job files. Unpack anywhere and run; nothing to install, no environment variables:

\`\`\`sh
tar --zstd -xf $name.tar.zst        # or: zstd -dc $name.tar.zst | tar -xf -
$name/bin/videoforge doctor         # what this machine offers (GPUs, NVDEC, plugins, ONNX Runtime)
$name/bin/videoforge -i in.mp4 -o out.mp4 -m $name/models/realesr-animevideov3-x2.onnx
$name/bin/videoforge run job.toml   # a job file: see the project's README and jobs/ examples
\`\`\`

## What is inside
| path | what |
| --- | --- |
| \`bin/videoforge\` | the program; it finds \`lib/\` through its RPATH (\`\$ORIGIN/../lib\`) |
| \`lib/videoforge/\` | backend plugins (\`libvideoforge_backend_*.so\`) |
| \`lib/\` | $nlibs shared libraries: FFmpeg 5.1 and everything it links (from Debian 12), ONNX Runtime$( ((gpu)) && echo ", the CUDA libraries") |
| \`models/\` | the shipped Real-ESRGAN models, their README and licence |
| \`share/doc/\` | licences of the third-party libraries (\`THIRD-PARTY.txt\` lists them) |

$gpu_text

## What the machine must have
glibc ${need_glibc#GLIBC_} or newer and a libstdc++ with ${need_cxx} (measured from the symbol versions that the files in
\`bin/\` and \`lib/\` require): $(vf_distros "$need_glibc" "$need_cxx"). Nothing else: every other library is
in \`lib/\`.

ONNX Runtime is found in \`lib/\`; \`ORT_DYLIB_PATH\` overrides it. Plugins are found in \`lib/videoforge/\`.

## Licences
videoforge: Apache-2.0. Models: BSD-3-Clause (\`models/\`). ONNX Runtime: MIT (\`share/doc/onnxruntime/\`). FFmpeg
and the libraries it links: their Debian copyright files in \`share/doc/\` (FFmpeg is built with GPL parts, x264
and x265, so this bundle as a whole is distributed under the GPL's terms).$( ((gpu)) && echo " NVIDIA CUDA and cuDNN
libraries: redistributed under NVIDIA's licences in \`share/doc/nvidia/\`.")
EOF

if ((!pack)); then
  echo "bundle: $stage: $(vf_mib "$stage") MiB, $nlibs libraries in lib/ (not packed: --no-pack)"
  exit 0
fi

# 5. pack (reproducible: sorted, root-owned, the last commit's time)
mtime=$(git log -1 --format=%ct 2>/dev/null || date +%s)
level=${VIDEOFORGE_ZSTD_LEVEL:-9}   # 19 packs the CPU bundle 11 % smaller in 20x the time
out=dist/$name.tar.zst
t0=$SECONDS
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$mtime" -C dist/.stage -cf - "$name" |
  zstd -q -f -T0 "-$level" -o "$out"
echo "bundle: $out: $(vf_mib "$out") MiB packed (zstd -$level, $((SECONDS - t0)) s), $(vf_mib "$stage") MiB unpacked," \
     "$nlibs libraries in lib/; needs $need_glibc and $need_cxx: $(vf_distros "$need_glibc" "$need_cxx")"
((keep)) || rm -rf "$stage"
