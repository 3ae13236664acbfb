# Sourced by vmrun's build scripts: where a built artefact is cached and how it is looked up.
# Entries are immutable: a script builds beside the entry under a temporary name and renames it
# into place, so an interrupted or concurrent build never leaves half an entry.

# vmrun_cache NAME: prints vmrun's cache folder NAME, created if need be.
vmrun_cache() {
  local dir="${VMRUN_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/vmrun}/$1"
  mkdir -p "$dir" && printf '%s\n' "$dir"
}

# content_key: 16 hex digits naming the bytes on stdin (the build's inputs, concatenated).
content_key() { sha256sum | cut -c1-16; }

# exit_if_cached PATH: when the entry exists, prints its path and ends the script.
exit_if_cached() {
  if [ -e "$1" ]; then printf '%s\n' "$1"; exit 0; fi
}
