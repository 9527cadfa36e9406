#!/usr/bin/env bash
# Builds the image's binary (a static `starlog`, as deploy/Dockerfile does)
# and shows it runs with nothing else present: two brokers, each in an empty
# root holding only the binary, its configuration and what a container
# runtime gives even a `scratch` image (/etc/hosts, /dev/null, /dev/random,
# /dev/urandom; no /proc), each with its own host name (starlog-0,
# starlog-1: their node ids come from it, `node_id: auto`), name each other
# by DNS name (`starlog-1.starlog:PORT`), form one Raft cluster and elect a
# controller. Needs root or unprivileged user namespaces (unshare), curl.
#
# Not part of `cargo test` (a second release build takes long); CI runs it:
#   deploy/check-static.sh            # builds, then checks
#   STARLOG_STATIC_BIN=path deploy/check-static.sh   # checks a binary built already
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '== %s\n' "$*"; }
fail() { printf 'check-static: FAILED: %s\n' "$*" >&2; exit 1; }

for tool in readelf unshare chroot curl hostname mount python3; do
  command -v "$tool" >/dev/null 2>&1 || fail "$tool is needed"
done

target="$(uname -m)-unknown-linux-gnu"
bin="${STARLOG_STATIC_BIN:-}"
if [ -z "$bin" ]; then
  log "building the static binary (release, $target, +crt-static)"
  RUSTFLAGS="-C target-feature=+crt-static" \
    cargo build --release --locked -p starlog --target "$target"
  bin="${CARGO_TARGET_DIR:-target}/$target/release/starlog"
fi
[ -x "$bin" ] || fail "$bin is not an executable"

log "static: no program interpreter, no shared libraries"
if readelf -lW "$bin" | grep -q 'Requesting program interpreter'; then
  fail "$bin asks for a program interpreter (dynamically linked)"
fi
if readelf -dW "$bin" | grep -q '(NEEDED)'; then
  readelf -dW "$bin" | grep '(NEEDED)' >&2
  fail "$bin needs shared libraries"
fi
printf '%s: %s bytes, no interpreter, no NEEDED entries\n' "$bin" "$(stat -c %s "$bin")"

work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
k0=$(free_port); k1=$(free_port); r0=$(free_port); r1=$(free_port); h0=$(free_port); h1=$(free_port)

# In namespaces of its own (host name, mounts), with the devices a runtime
# provides bound in, chroot into an empty root. Run it in a subshell: it
# execs, so the subshell's process id is the broker's.
in_root() {
  local host=$1 root=$2; shift 2
  local ns=(unshare --uts --mount)
  [ "$(id -u)" -eq 0 ] || ns=(unshare --map-root-user --uts --mount)
  exec "${ns[@]}" -- sh -c 'hostname "$0" && r="$1" &&
    mount --bind /dev/null "$r/dev/null" && mount --bind /dev/urandom "$r/dev/urandom" &&
    mount --bind /dev/random "$r/dev/random" &&
    exec chroot "$@"' "$host" "$root" "$@"
}

for i in 0 1; do
  root="$work/root$i"
  mkdir -p "$root/etc" "$root/data" "$root/dev"
  touch "$root/dev/null" "$root/dev/random" "$root/dev/urandom"
  cp "$bin" "$root/starlog"
  # What a runtime mounts into a container; nothing else is there.
  printf '127.0.0.1 localhost\n127.0.0.1 starlog-0.starlog\n127.0.0.1 starlog-1.starlog\n' > "$root/etc/hosts"
  kafka_var="k$i"; http_var="h$i"
  cat > "$root/etc/broker.yaml" <<YAML
node_id: auto
listen: 127.0.0.1:${!kafka_var}
data_dir: /data
http: { listen: 127.0.0.1:${!http_var} }
cluster:
  peers:
    - { id: 1, host: 127.0.0.1, port: $k0, raft: starlog-0.starlog:$r0 }
    - { id: 2, host: 127.0.0.1, port: $k1, raft: starlog-1.starlog:$r1 }
YAML
  find "$root" -type f | sed "s|^$root||" | sort | tr '\n' ' '; echo
done

log "the binary alone in an empty root"
(in_root starlog-0 "$work/root0" /starlog --version)

log "two brokers in empty roots, peers named starlog-N.starlog, ids from the host names"
for i in 0 1; do
  (in_root "starlog-$i" "$work/root$i" /starlog serve --config /etc/broker.yaml) \
    >"$work/broker$i.log" 2>&1 &
  pids+=($!)
done

ok=0
for _ in $(seq 1 150); do
  s0=$(curl -fsS "http://127.0.0.1:$h0/cluster/status" 2>/dev/null || true)
  s1=$(curl -fsS "http://127.0.0.1:$h1/cluster/status" 2>/dev/null || true)
  if python3 - "$s0" "$s1" <<'PY'
import json, sys
try:
    a, b = (json.loads(t) for t in sys.argv[1:3])
except ValueError:
    sys.exit(1)
ok = (a["node"], b["node"]) == (1, 2) and a["controller"] is not None \
     and a["controller"] == b["controller"]
sys.exit(0 if ok else 1)
PY
  then ok=1; break; fi
  sleep 0.2
done
if [ "$ok" -ne 1 ]; then
  for i in 0 1; do echo "--- broker $i log"; tail -n 30 "$work/broker$i.log"; done >&2
  fail "the two brokers did not form a cluster"
fi
echo "node 1 (starlog-0) and node 2 (starlog-1) agree on controller $(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["controller"])' "$s0")"

log "SIGTERM: both stop gracefully"
for pid in "${pids[@]}"; do kill -TERM "$pid"; done
for pid in "${pids[@]}"; do
  status=0
  wait "$pid" || status=$?
  if [ "$status" -ne 0 ]; then
    for i in 0 1; do echo "--- broker $i log"; tail -n 20 "$work/broker$i.log"; done >&2
    fail "a broker exited with status $status after SIGTERM"
  fi
done
grep -h "shutdown requested" "$work"/broker*.log
pids=()
echo "check-static: OK"
