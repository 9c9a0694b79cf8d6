# Sourced by scripts/bundle.sh, scripts/image.sh and tests/release/*.sh: what the release scripts share.

# The libraries a bundle does not carry and every glibc-based Linux has: glibc with its loader, and the GCC
# runtime (libstdc++, libgcc_s). Everything else that the binary and its plugins link travels in lib/.
# (An extended regular expression over sonames; linux-vdso is the kernel's.)
VF_SYSTEM_SONAMES='^(linux-vdso\.so\.1|ld-linux-x86-64\.so\.2|libc\.so\.6|libm\.so\.6|libdl\.so\.2|libpthread\.so\.0|librt\.so\.1|libresolv\.so\.2|libutil\.so\.1|libstdc\+\+\.so\.6|libgcc_s\.so\.1)$'

# The version in Cargo.toml (the videoforge package's).
vf_version() {
  cargo metadata --no-deps --format-version 1 --offline 2>/dev/null |
    python3 -c 'import json,sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"] == "videoforge"))'
}

# Install Debian packages that are missing (root, or sudo).
vf_apt_need() {
  local missing=() p sudo=
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  ((${#missing[@]})) || return 0
  [[ $(id -u) -eq 0 ]] || sudo=sudo
  echo "release: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Size of a file or folder in MiB, one decimal.
vf_mib() { du -sb "$1" | awk '{printf "%.1f", $1 / 1048576}'; }

# The common distributions whose glibc and libstdc++ are at least $1 (GLIBC_x.y) and $2 (GLIBCXX_3.4.z), then
# " (not: ...)" with the ones that are too old.
vf_distros() {
  local g=${1#GLIBC_} c=${2#GLIBCXX_} ok=() no=() row name dg dc
  for row in "Debian 11:2.31:3.4.28" "RHEL 9:2.34:3.4.29" "Ubuntu 22.04:2.35:3.4.30" "Debian 12:2.36:3.4.30" \
             "Ubuntu 24.04:2.39:3.4.33" "Debian 13:2.41:3.4.34"; do
    IFS=: read -r name dg dc <<<"$row"
    if [[ $(printf '%s\n' "$g" "$dg" | sort -V | head -n1) == "$g" && ( $c == none ||
          $(printf '%s\n' "$c" "$dc" | sort -V | head -n1) == "$c" ) ]]; then ok+=("$name"); else no+=("$name"); fi
  done
  local IFS=,
  echo "${ok[*]}${no:+ (not: ${no[*]})}" | sed 's/,/, /g'
}

# The mount point of the filesystem that holds $1 (which must exist).
vf_mount_of() { df --output=target "$1" | tail -n1; }

# Free MiB on the filesystem that holds $1.
vf_free_mib() { df --output=avail -BM "$1" | tail -n1 | tr -dc 0-9; }

# Exit 3 with "WHO: not enough disk: ..." unless the filesystem that holds $2 has $3 MiB free for $4 (what needs
# it). The release tests count exit 3 with this line as skipped: too small a disk is a fact of the machine.
vf_need_disk() {
  local who=$1 path=$2 mib=$3 what=$4 free
  free=$(vf_free_mib "$path")
  if ((free < mib)); then
    echo "$who: not enough disk: $(vf_mount_of "$path") has $free MiB free, $what needs about $mib MiB there" >&2
    exit 3
  fi
}

# vf_need_disk for several needs at once (PATH MIB pairs after WHO and WHAT), added up per filesystem: paths on
# one filesystem need the sum of their MiB there.
vf_need_disks() {
  local who=$1 what=$2 m
  local -A need=()
  shift 2
  while (($# >= 2)); do
    m=$(vf_mount_of "$1")
    need[$m]=$((${need[$m]:-0} + $2))
    shift 2
  done
  for m in "${!need[@]}"; do vf_need_disk "$who" "$m" "${need[$m]}" "$what"; done
}
