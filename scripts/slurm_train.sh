#!/bin/bash
# Train on several machines under SLURM: one torchrun agent per node, rendezvous from SLURM's variables.
#
#   sbatch --nodes=2 --gpus-per-node=8 scripts/slurm_train.sh uniformerv2_b16_k400 data.root=/shared/k400 ...
#
# Every node runs `torchrun --nnodes $SLURM_NNODES --nproc-per-node $GPUS_PER_NODE` with a c10d rendezvous on
# the first node of the allocation; `--max-restarts` lets the job survive a worker that dies (the engine
# resumes from <train.output_dir>/checkpoint_last.pth on an elastic restart). train.output_dir must be on
# storage every node sees (rank 0 writes the checkpoints, every rank reads them on a restart).
# scancel / the time limit send SIGTERM to the job: the run saves at the next step and exits 143; requeue
# with `--requeue` (or sbatch again) and add train.resume=auto to continue.
#
#SBATCH --job-name=videoformers
#SBATCH --ntasks-per-node=1          # one torchrun agent per node; it starts the per-GPU processes
#SBATCH --cpus-per-task=32
#SBATCH --signal=TERM@120            # 2 minutes' notice before the time limit: enough to save a checkpoint
#SBATCH --output=%x-%j.out
set -euo pipefail

RECIPE=${1:?usage: sbatch scripts/slurm_train.sh RECIPE_OR_YAML [key=value ...]}
shift
GPUS_PER_NODE=${GPUS_PER_NODE:-${SLURM_GPUS_ON_NODE:-$(nvidia-smi -L 2>/dev/null | wc -l)}}
GPUS_PER_NODE=${GPUS_PER_NODE:-1}
HEAD_NODE=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
RDZV_PORT=${RDZV_PORT:-29500}
MAX_RESTARTS=${MAX_RESTARTS:-3}
# restarted workers must not read the previous attempt's addresses from the agents' shared store (docs/distributed.md)
export TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1

echo "nodes: $SLURM_NNODES x $GPUS_PER_NODE processes, rendezvous $HEAD_NODE:$RDZV_PORT, job $SLURM_JOB_ID"
# srun starts one agent per node; the agents meet at the c10d store on the head node. `exec` in the
# srun'd shell so that SLURM's SIGTERM reaches torchrun, which forwards it to its workers.
srun --kill-on-bad-exit=1 bash -c "exec python -m torch.distributed.run \
    --nnodes=$SLURM_NNODES --nproc-per-node=$GPUS_PER_NODE \
    --rdzv-backend=c10d --rdzv-endpoint=$HEAD_NODE:$RDZV_PORT --rdzv-id=$SLURM_JOB_ID \
    --max-restarts=$MAX_RESTARTS \
    -m videoformers train $RECIPE $*"
