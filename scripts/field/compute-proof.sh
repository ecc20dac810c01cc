#!/bin/bash
# The compute and compose proof on a real GPU host (issue #12), as run for
# docs/field-report.md (run 4):
#
#   sudo scripts/field/compute-proof.sh BUNDLE FINGERPRINT [OUT_DIR]
#
# From the repository root on the GPU host, with gpubundle-installer.pyz beside BUNDLE (a
# bundle built with --with-docker --with-compose --distro ubuntu24.04, the host's release). Installs with
# --proof cdi (install runs the compute probe and the compose service after the
# visibility proof), then runs the probe through CDI with a buffer larger than the GPU
# (CUDA_ERROR_OUT_OF_MEMORY expected) and with 16G, with the device nodes passed by hand,
# without a GPU (exit 3), the guide's compose file (driver: nvidia), doctor, install
# again, status and uninstall. What it saw goes to OUT_DIR (default $OUT or ./gpu-proof-out).
set -u
BUNDLE=${1:?usage: compute-proof.sh BUNDLE FINGERPRINT [OUT_DIR]}
FPR=${2:?usage: compute-proof.sh BUNDLE FINGERPRINT [OUT_DIR]}
W=${3:-${OUT:-./gpu-proof-out}}
PYZ=$(dirname "$BUNDLE")/gpubundle-installer.pyz
mkdir -p "$W"
IMG=gpubundle/verify:ubuntu24.04-amd64
nvidia-smi -L | tee $W/host-gpus.txt
echo "== 1. install --proof cdi (compute and compose run after the visibility proof)"
python3 $PYZ install "$BUNDLE" --trust $FPR --proof cdi --yes --json > $W/install.json 2> $W/install.stderr; echo "install rc=$?"
tail -25 $W/install.stderr
python3 - $W/install.json <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
for r in d.get("proof", []):
    for a in r["attempts"]: print("proof", a["name"], "passed" if a["passed"] else "failed", a["seen_uuids"] or a["error"][:200])
print("compute:", json.dumps(d.get("compute"), indent=1))
print("compose:", json.dumps(d.get("compose"), indent=1))
for s in (d.get("result") or {}).get("steps", []): print("step", s["id"], s["result"], s["detail"][:300])
PY
echo "== 2. OOM through CDI: --size 200G"; docker run --rm --device nvidia.com/gpu=all $IMG gpubundle-compute-probe --size 200G --json > $W/cdi-oom.json; echo rc=$?; cat $W/cdi-oom.json
echo "== 3. install --compute-size 200G (the report must say OOM)"; python3 $PYZ install "$BUNDLE" --trust $FPR --proof cdi --compute-size 200G --yes 2>&1 | tail -12; echo rc=$?
echo "== 4. CDI 16G"; docker run --rm --device nvidia.com/gpu=all $IMG gpubundle-compute-probe --size 16G; echo rc=$?
echo "== 5. explicit nodes, 200G"; docker run --rm --device /dev/nvidia0 --device /dev/nvidiactl --device /dev/nvidia-uvm -v /usr/local/nvidia:/usr/local/nvidia:ro $IMG gpubundle-compute-probe --size 200G; echo rc=$?
echo "== 6. nvidia-smi via CDI"; docker run --rm --device nvidia.com/gpu=all $IMG nvidia-smi -L; echo rc=$?
echo "== 7. the guide's compose (driver: nvidia)"
mkdir -p /tmp/compose && cat > /tmp/compose/compose.yaml <<YAML
services:
  gpu-proof:
    image: $IMG
    command: ["gpubundle-compute-probe", "--size", "256M"]
    deploy:
      resources:
        reservations:
          devices:
            - driver: nvidia
              count: all
              capabilities: [gpu]
YAML
docker compose -f /tmp/compose/compose.yaml -p guide up --abort-on-container-exit --exit-code-from gpu-proof 2>&1 | tail -4; echo rc=$?
docker compose -f /tmp/compose/compose.yaml -p guide down >/dev/null 2>&1
echo "== 8. doctor"; python3 $PYZ doctor --json > $W/doctor.json; echo rc=$?
python3 -c "
import json; d=json.load(open('$W/doctor.json'))
for f in d['findings']:
    if f['check_id'] in ('gpu.compute','engine.cdi','engine.cdi-nvidia-smi','toolkit.known-vulnerabilities'): print(json.dumps(f)[:600])"
echo "== 9. install again"; python3 $PYZ install "$BUNDLE" --trust $FPR --proof cdi --yes 2>&1 | tail -3; echo rc=$?
echo "== 10. status"; python3 $PYZ status 2>&1 | tail -5
echo "== 11. uninstall"; python3 $PYZ uninstall --yes 2>&1 | tail -3; echo rc=$?
ls /var/run/cdi /etc/docker 2>&1

