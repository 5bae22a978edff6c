#!/usr/bin/env bash
# Train with torchrun (PyTorch's elastic launcher), which Lightning detects by itself. Run the same
# command once on every node; only NODE_RANK differs.
#
#   NNODES=2 NPROC_PER_NODE=4 NODE_RANK=0 MASTER_ADDR=10.0.0.1 scripts/cluster/torchrun_train.sh   # node 0
#   NNODES=2 NPROC_PER_NODE=4 NODE_RANK=1 MASTER_ADDR=10.0.0.1 scripts/cluster/torchrun_train.sh   # node 1
#   NNODES=1 NPROC_PER_NODE=2 PARAMS=my-params.yaml scripts/cluster/torchrun_train.sh             # one machine
#
# NNODES must equal train.num_nodes and NPROC_PER_NODE train.devices in $PARAMS.
set -euo pipefail
cd "$(dirname "$0")/../.."

PARAMS=${PARAMS:-scripts/cluster/params-ddp.yaml}
VENV=${VENV:-.venv}
NNODES=${NNODES:-2}
NPROC_PER_NODE=${NPROC_PER_NODE:-4}
NODE_RANK=${NODE_RANK:-0}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
MASTER_PORT=${MASTER_PORT:-29500}

# Arguments go to `posewheel train`; without any, the flywheel's data mix.
if [[ $# -eq 0 ]]; then set -- --data data/seed --data data/feedback:3; fi
exec "$VENV/bin/torchrun" --nnodes="$NNODES" --nproc-per-node="$NPROC_PER_NODE" --node-rank="$NODE_RANK" \
    --master-addr="$MASTER_ADDR" --master-port="$MASTER_PORT" \
    -m posewheel.cli train --params "$PARAMS" "$@"
