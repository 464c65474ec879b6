#!/usr/bin/env bash
# Create the peers' virtualenvs OUTSIDE the repo, one per peer family, with pinned versions.
#
#   bash benchmarks/peers/setup_envs.sh [dpmm] [mostly]      # default: both
#   PEER_ENVS=/some/dir bash benchmarks/peers/setup_envs.sh  # default dir: /work/peer_envs
#
# dpmm   -> $PEER_ENVS/dpmm/bin/python   (dpmm 0.1.9: MST, AIM, PrivBayes; its own pins numpy 1.26.4,
#                                         pandas 2.1.0, scikit-learn 1.5.0, opendp 0.12.1; Python 3.10/3.11)
# mostly -> $PEER_ENVS/mostly/bin/python (mostlyai-engine 2.7.3: TabularARGN + DP-SGD via Opacus)
#
# torch: an unpinned torch pulls a multi-GB CUDA build; this machine has the CPU build of torch 2.13.0
# on disk, so the MOSTLY venv installs torch==2.13.0 first and then the engine under a constraint
# file pinning torch==2.13.0 (the engine asks for torch>=2.13,<2.14, so the pin is compatible);
# torchvision/torchaudio are then removed again (CUDA-only builds, unused by the tabular engine).
#
# Every package is pinned by the constraint files beside this script (pip freeze of the venvs the
# results were measured with); the MOSTLY file pins torch==2.13.0.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
PEER_ENVS=${PEER_ENVS:-/work/peer_envs}
PY=${PYTHON:-python3}
mkdir -p "$PEER_ENVS"
targets=${*:-dpmm mostly}

for t in $targets; do
  case $t in
    dpmm)
      "$PY" -m venv "$PEER_ENVS/dpmm"
      "$PEER_ENVS/dpmm/bin/pip" install -q --upgrade pip
      "$PEER_ENVS/dpmm/bin/pip" install -q -c "$HERE/dpmm-constraints.txt" "dpmm==0.1.9"
      "$PEER_ENVS/dpmm/bin/python" -c "import dpmm, importlib.metadata as m; print('dpmm', m.version('dpmm'))"
      ;;
    mostly)
      "$PY" -m venv "$PEER_ENVS/mostly"
      "$PEER_ENVS/mostly/bin/pip" install -q --upgrade pip
      cons="$HERE/mostly-constraints.txt"
      "$PEER_ENVS/mostly/bin/pip" install -q "torch==2.13.0"
      "$PEER_ENVS/mostly/bin/pip" install -q -c "$cons" "mostlyai-engine==2.7.3"
      # The engine lists torchvision and torchaudio, but the only builds pip finds here are CUDA builds
      # (libtorch_cuda.so needed), which break `import transformers` next to the CPU torch
      # ("operator torchvision::nms does not exist"). The tabular engine never imports them: remove both.
      "$PEER_ENVS/mostly/bin/pip" uninstall -y -q torchvision torchaudio
      "$PEER_ENVS/mostly/bin/python" -c "import torch, importlib.metadata as m; \
print('mostlyai-engine', m.version('mostlyai-engine'), 'torch', torch.__version__, 'opacus', m.version('opacus'))"
      ;;
    *) echo "unknown env $t (dpmm|mostly)" >&2; exit 2 ;;
  esac
done
