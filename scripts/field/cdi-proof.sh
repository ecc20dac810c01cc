#!/bin/bash
# The CDI proof on a real GPU host (issue #9), for a session that can reach one.
#
#   sudo scripts/field/cdi-proof.sh BUNDLE FINGERPRINT [OUT_DIR]
#
# Run from the repository root on the GPU host, with gpubundle-installer.pyz beside
# BUNDLE (a bundle built here with --with-docker for the host's distro, Docker >= 25).
# It installs the bundle with --proof cdi (our stand-in toolkit: its --gpus attempts fail,
# as they must, and are reported; install's own CDI attempt, with the spec the bundle's
# stand-in nvidia-ctk generates from the host's driver, decides: exit 0 expected), then
# with the stand-in `nvidia-ctk cdi generate`
# (tests/support/standin_bin/nvidia_ctk.py, reading the host's REAL driver files):
#   1. generates the spec the way nvidia-ctk does by itself, with a wrapper nvidia-smi
#      first on PATH (the host's own wrapper, or a temporary one if it has none), runs
#      doctor and the builtin verification image through CDI: expected to FAIL
#      (the wrapper's target is not in the container) and doctor to say so;
#   2. generates it as install does (installer.containers.generate_cdi_spec: the
#      driver's own directory first on PATH), runs doctor and the image again:
#      expected `GPU 0: … (UUID: <the host GPU's UUID>)`.
# Everything it saw goes to OUT_DIR (default $OUT or ./cdi-proof-out). Exit 0 only when
# step 2 listed exactly the host's GPU UUIDs. Nothing here is simulated: if a step
# cannot run, it says so and the script fails.
set -u -o pipefail
BUNDLE=${1:?usage: cdi-proof.sh BUNDLE FINGERPRINT [OUT_DIR]}
FPR=${2:?usage: cdi-proof.sh BUNDLE FINGERPRINT [OUT_DIR]}
OUT_DIR=${3:-${OUT:-./cdi-proof-out}}
PYZ=$(dirname "$BUNDLE")/gpubundle-installer.pyz
REPO=$(cd "$(dirname "$0")/../.." && pwd)
STANDIN_CTK=$REPO/tests/support/standin_bin/nvidia_ctk.py
SPEC=/var/run/cdi/nvidia.yaml
PY=/usr/bin/python3
mkdir -p "$OUT_DIR"
log() { echo "== $*" | tee -a "$OUT_DIR/summary.txt"; }
fail() { log "FAIL: $*"; exit 1; }

[ "$(id -u)" = 0 ] || fail "run as root"
[ -f "$PYZ" ] || fail "$PYZ not found beside the bundle"

# The host's GPUs, from the driver itself (through whatever nvidia-smi is on PATH).
SMI=$(command -v nvidia-smi || echo /usr/local/nvidia/bin/nvidia-smi)
"$SMI" -L >"$OUT_DIR/host-gpus.txt" 2>&1 || fail "nvidia-smi -L failed on the host: $(cat "$OUT_DIR/host-gpus.txt")"
HOST_UUIDS=$(grep -o 'GPU-[0-9a-fA-F-]*' "$OUT_DIR/host-gpus.txt" | sort | tr '\n' ' ')
log "host GPUs: $HOST_UUIDS (via $SMI)"

log "install --proof cdi (stand-in toolkit: --gpus is expected to fail and be reported; CDI decides)"
$PY "$PYZ" install "$BUNDLE" --trust "$FPR" --proof cdi --yes --json >"$OUT_DIR/install.json" 2>"$OUT_DIR/install.stderr"
log "install exit code $? (0 expected); its GPU proof:"
$PY - "$OUT_DIR/install.json" <<'PYEOF' | tee -a "$OUT_DIR/summary.txt"
import json, sys
doc = json.load(open(sys.argv[1]))
for result in doc.get("proof", []):
    for a in result["attempts"]:
        seen = ", ".join(a["seen_uuids"]) or a["error"]
        print(f"   {result['image']} {a['name']}: {'passed' if a['passed'] else 'failed'}: {seen}")
    for n in result["not_tried"]:
        print(f"   {result['image']} {n['name']}: not tried: {n['reason']}")
for line in doc.get("details", []):  # a failed install: every attempt is in the details
    print(f"   {line}")
PYEOF
docker version --format '{{.Server.Version}}' >"$OUT_DIR/docker-version.txt" 2>&1 || fail "Docker does not answer"
docker info --format '{{json .CDISpecDirs}}' >"$OUT_DIR/cdi-spec-dirs.txt" 2>&1
log "Docker $(cat "$OUT_DIR/docker-version.txt"), CDI spec dirs $(cat "$OUT_DIR/cdi-spec-dirs.txt")"
IMAGE=$($PY -c 'import json; r = json.load(open("/var/lib/gpubundle/install-record.json")); print(next(i for i in r["images_loaded"] if i.startswith("gpubundle/verify:")))') \
    || fail "no builtin verification image in the install record"
log "image: $IMAGE"

# A wrapper nvidia-smi first on PATH: the host's own, or one made for this run.
WRAP_DIR=
if head -c2 "$SMI" | grep -q '#!'; then
    log "the host's $SMI is a wrapper script: $(grep -m1 exec "$SMI")"
    WRAPPED_PATH=$PATH
else
    WRAP_DIR=$(mktemp -d)
    printf '#!/bin/sh\nexec %s "$@"\n' "$(readlink -f "$SMI")" >"$WRAP_DIR/nvidia-smi"
    chmod 755 "$WRAP_DIR/nvidia-smi"
    WRAPPED_PATH=$WRAP_DIR:$PATH
    log "no wrapper on this host: made $WRAP_DIR/nvidia-smi (exec $(readlink -f "$SMI")) first on PATH"
fi

prove_cdi() {  # $1: label; runs the image through CDI, saves what it printed
    docker run --rm --device nvidia.com/gpu=all "$IMAGE" nvidia-smi -L >"$OUT_DIR/$1.out" 2>&1
    local rc=$?
    SEEN=$(grep -o 'GPU-[0-9a-fA-F-]*' "$OUT_DIR/$1.out" | sort | tr '\n' ' ')
    log "$1: docker run --rm --device nvidia.com/gpu=all $IMAGE nvidia-smi -L: exit $rc, saw: ${SEEN:-nothing}; $(tail -n1 "$OUT_DIR/$1.out")"
}
doctor_cdi() {  # $1: label
    PATH=$2 $PY "$PYZ" doctor --json >"$OUT_DIR/$1-doctor.json" 2>/dev/null
    $PY - "$OUT_DIR/$1-doctor.json" <<'PYEOF' | tee -a "$OUT_DIR/summary.txt"
import json, sys
for f in json.load(open(sys.argv[1]))["findings"]:
    if f["check_id"] in ("engine.cdi", "engine.cdi-nvidia-smi", "traps.driver-path", "toolkit.cli-info"):
        print(f"   doctor {f['check_id']}: {f['status']}: {f['summary']}")
PYEOF
}

log "1. the spec as nvidia-ctk makes it by itself (wrapper first on PATH)"
PATH=$WRAPPED_PATH $PY "$STANDIN_CTK" cdi generate --output=$SPEC 2>"$OUT_DIR/1-generate.stderr" \
    || fail "stand-in cdi generate failed: $(tail -n2 "$OUT_DIR/1-generate.stderr")"
cp $SPEC "$OUT_DIR/1-nvidia.yaml"
doctor_cdi 1 "$WRAPPED_PATH"
prove_cdi 1-cdi

log "2. the spec as install makes it (installer.containers.generate_cdi_spec)"
PATH=$WRAPPED_PATH $PY - "$PYZ" "$STANDIN_CTK" "$SPEC" <<'PYEOF' 2>&1 | tee -a "$OUT_DIR/summary.txt"
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from installer import containers, gpu
spec, note = containers.generate_cdi_spec(sys.argv[2], Path(sys.argv[3]), gpu.find_nvidia_smi())
print(f"   spec {spec.path}: nvidia-smi at {spec.nvidia_smi}, driver {spec.driver_versions}; {note}")
PYEOF
[ $? = 0 ] || fail "installer.containers.generate_cdi_spec failed (above)"
cp $SPEC "$OUT_DIR/2-nvidia.yaml"
doctor_cdi 2 "$WRAPPED_PATH"
prove_cdi 2-cdi

rm -f $SPEC
[ -n "$WRAP_DIR" ] && rm -rf "$WRAP_DIR"
if [ -n "$SEEN" ] && [ "$SEEN" = "$HOST_UUIDS" ]; then
    log "PASS: through CDI, with the spec install generates, the container saw the host's GPUs: $SEEN"
    exit 0
fi
fail "through CDI the container saw '${SEEN:-nothing}', the host has '$HOST_UUIDS'"
