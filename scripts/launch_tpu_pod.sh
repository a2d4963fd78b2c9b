#!/usr/bin/env bash
# Trains on a Cloud TPU VM slice: the same train.py command on every worker (host).
#
#   bash scripts/launch_tpu_pod.sh [--dry-run] [-- <extra train.py flags>]
#
#   --dry-run   print the commands instead of running them (needs no gcloud login)
#   e.g.        bash scripts/launch_tpu_pod.sh -- --config.train.num_steps=50000
#
# Steps, each idempotent (rerunning the script resumes the run from WORKDIR's checkpoints):
#   1. creates the slice TPU_NAME, or reuses it when it exists;
#   2. puts the code on every worker: this checkout's files (tracked and untracked, not
#      ignored) or, when GIT_URL is set, a clone of GIT_URL at GIT_REF;
#   3. installs it (`pip install -e .` with JAX_SPEC) into ~/ms_ssm_venv with uv: JAX needs
#      Python >= 3.11, newer than some TPU images ship;
#   4. mounts the buckets of DATA_DIR and WORKDIR with gcsfuse at /tmp/gcsfuse/<bucket> on every
#      worker: train.py takes file paths, not gs:// URLs (docs/SCALING.md says why);
#   5. starts train.py on all workers in the background (log: ~/ms_ssm_train.log on each);
#      jax.distributed finds the other workers by itself (--distributed).
# Prepare the task's data in DATA_DIR once before the first launch (scripts/prepare_data.py),
# so that the workers do not all build it at once. gcloud's ssh to all workers at once needs
# the key in the agent: ssh-add ~/.ssh/google_compute_engine.
set -euo pipefail

# ---- Set these (or export them before running the script) ----
PROJECT="${PROJECT:-your-gcp-project}"
ZONE="${ZONE:-us-central2-b}"
TPU_NAME="${TPU_NAME:-ms-ssm-pod}"
ACCELERATOR_TYPE="${ACCELERATOR_TYPE:-v4-32}"
RUNTIME_VERSION="${RUNTIME_VERSION:-tpu-ubuntu2204-base}"
# A gs:// path (a bucket with hierarchical namespace: checkpoints are committed by renaming a
# folder, which gcsfuse does atomically only there) or a path every worker shares (NFS).
WORKDIR="${WORKDIR:-gs://your-bucket/ms_ssm/runs/listops_ms_ssm}"
# The tfds data_dir (gs:// or shared path); empty for tasks without data (synthetic ones).
DATA_DIR="${DATA_DIR-gs://your-bucket/tensorflow_datasets}"
CONFIG="${CONFIG:-configs/listops.py:ms_ssm}"
GIT_URL="${GIT_URL:-}"  # empty: copy this checkout
GIT_REF="${GIT_REF:-main}"  # a branch or tag of GIT_URL
JAX_SPEC="${JAX_SPEC:-jax[tpu]==0.11.2}"
PYTHON_VERSION="${PYTHON_VERSION:-3.11}"
SPOT="${SPOT:-false}"  # true: a Spot slice (cheaper, preemptible; rerun to resume)
# ----

MOUNT_ROOT=/tmp/gcsfuse
# $HOME and $(...) in single quotes are expanded on the workers.
# shellcheck disable=SC2016
REMOTE_CODE='$HOME/ms_ssm_jax'
# shellcheck disable=SC2016
REMOTE_VENV='$HOME/ms_ssm_venv'
# shellcheck disable=SC2016
REMOTE_LOG='$HOME/ms_ssm_train.log'
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

DRY_RUN=false
TRAIN_FLAGS=()
while (($#)); do
  case "$1" in
    --dry-run) DRY_RUN=true ;;
    --) shift; TRAIN_FLAGS=("$@"); break ;;
    -h|--help) sed -n '2,21p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "unknown argument: $1 (extra train.py flags go after --)" >&2; exit 2 ;;
  esac
  shift
done

die() { echo "launch_tpu_pod.sh: $*" >&2; exit 1; }

# Runs a command, or prints it (shell-quoted) with --dry-run.
run() {
  if [[ "$DRY_RUN" == true ]]; then
    printf '%q ' "$@"
    printf '\n'
  else
    "$@"
  fi
}

# Runs a bash script on every worker of the slice (--dry-run prints the script as it is).
on_all_workers() {
  local ssh=(gcloud compute tpus tpu-vm ssh "$TPU_NAME" --project="$PROJECT" --zone="$ZONE"
             --worker=all)
  if [[ "$DRY_RUN" == true ]]; then
    printf '%q ' "${ssh[@]}"
    # shellcheck disable=SC2016
    printf -- '--command="$(cat <<'"'"'EOF'"'"'\n%s\nEOF\n)"\n' "$1"
  else
    "${ssh[@]}" --command="$1"
  fi
}

# gs://bucket/dir -> /tmp/gcsfuse/bucket/dir; any other path is returned unchanged.
mounted_path() {
  if [[ "$1" == gs://* ]]; then
    echo "$MOUNT_ROOT/${1#gs://}"
  else
    echo "$1"
  fi
}

bucket_of() {
  local rest="${1#gs://}"
  echo "${rest%%/*}"
}

for name in PROJECT WORKDIR DATA_DIR; do
  if [[ "${!name}" == *your-* ]]; then
    [[ "$DRY_RUN" == true ]] || die "set $name at the top of this script (it is ${!name})"
    echo "# $name is still the placeholder ${!name}" >&2
  fi
done
[[ -n "$WORKDIR" ]] || die "WORKDIR is empty"
for path in "$WORKDIR" "$DATA_DIR"; do
  if [[ "$path" == *://* && "$path" != gs://* ]]; then
    die "$path: only gs:// URLs or paths shared by all workers are supported"
  fi
done

# 1. The slice.
if [[ "$DRY_RUN" == true ]]; then
  echo "# if 'gcloud compute tpus tpu-vm describe $TPU_NAME' finds no slice:"
fi
if [[ "$DRY_RUN" == true ]] || ! gcloud compute tpus tpu-vm describe "$TPU_NAME" \
    --project="$PROJECT" --zone="$ZONE" --format='value(state)' >/dev/null 2>&1; then
  create=(gcloud compute tpus tpu-vm create "$TPU_NAME" --project="$PROJECT" --zone="$ZONE"
          --accelerator-type="$ACCELERATOR_TYPE" --version="$RUNTIME_VERSION")
  if [[ "$SPOT" == true ]]; then
    create+=(--spot)
  fi
  run "${create[@]}"
else
  echo "reusing TPU slice $TPU_NAME"
fi

# 2. The code.
if [[ -z "$GIT_URL" ]]; then
  archive="$(mktemp -t ms_ssm_jax.XXXXXX.tar.gz)"
  trap 'rm -f "$archive"' EXIT
  if [[ "$DRY_RUN" == true ]]; then
    echo "# $archive: this checkout's files (git ls-files --cached --others --exclude-standard)"
  fi
  git -C "$REPO" ls-files -z --cached --others --exclude-standard \
    | tar -C "$REPO" --null -T - -czf "$archive"
  run gcloud compute tpus tpu-vm scp "$archive" "$TPU_NAME:ms_ssm_jax.tar.gz" \
    --project="$PROJECT" --zone="$ZONE" --worker=all
  get_code="rm -rf $REMOTE_CODE && mkdir -p $REMOTE_CODE \
&& tar -xzf \$HOME/ms_ssm_jax.tar.gz -C $REMOTE_CODE"
else
  get_code="rm -rf $REMOTE_CODE \
&& git clone --quiet --depth 1 --branch $(printf '%q' "$GIT_REF") $(printf '%q' "$GIT_URL") \
$REMOTE_CODE"
fi

# 3 and 4. Install, mount.
buckets=()
for path in "$WORKDIR" "$DATA_DIR"; do
  if [[ "$path" == gs://* ]]; then
    bucket="$(bucket_of "$path")"
    [[ " ${buckets[*]} " == *" $bucket "* ]] || buckets+=("$bucket")
  fi
done
mounts=""
for bucket in "${buckets[@]}"; do
  mount_point="$MOUNT_ROOT/$bucket"
  # No metadata caching: every worker must see the files the others have just written.
  mounts+="mkdir -p $mount_point && { mountpoint -q $mount_point || gcsfuse --implicit-dirs \
--metadata-cache-ttl-secs=0 --metadata-cache-negative-ttl-secs=0 $bucket $mount_point; }
"
done
# shellcheck disable=SC2016
install_gcsfuse='command -v gcsfuse >/dev/null || {
  curl -fsSL https://packages.cloud.google.com/apt/doc/apt-key.gpg \
    | sudo tee /usr/share/keyrings/cloud.google.asc >/dev/null
  echo "deb [signed-by=/usr/share/keyrings/cloud.google.asc] https://packages.cloud.google.com/apt gcsfuse-$(lsb_release -cs) main" \
    | sudo tee /etc/apt/sources.list.d/gcsfuse.list >/dev/null
  sudo apt-get update -qq && sudo apt-get install -y -qq gcsfuse; }'
[[ ${#buckets[@]} -gt 0 ]] || install_gcsfuse=true
setup="set -euo pipefail
if pgrep -u \"\$USER\" -f 'ms_ssm_venv/bin/python train.py' >/dev/null; then
  echo \"\$(hostname): train.py is already running; stop it first\" >&2; exit 1
fi
$get_code
$install_gcsfuse
${mounts}command -v uv >/dev/null || curl -LsSf https://astral.sh/uv/install.sh | sh
export PATH=\"\$HOME/.local/bin:\$PATH\"
[ -x $REMOTE_VENV/bin/python ] || uv venv --quiet --python $PYTHON_VERSION $REMOTE_VENV
uv pip install --quiet --python $REMOTE_VENV/bin/python -e $REMOTE_CODE $(printf '%q' "$JAX_SPEC")"
on_all_workers "$setup"

# 5. Train.
train=(train.py --config="$CONFIG" --workdir="$(mounted_path "$WORKDIR")" --distributed)
if [[ -n "$DATA_DIR" ]]; then
  train+=(--config.data.data_dir="$(mounted_path "$DATA_DIR")")
fi
train+=("${TRAIN_FLAGS[@]}")
start="set -euo pipefail
cd $REMOTE_CODE
setsid nohup $REMOTE_VENV/bin/python $(printf '%q ' "${train[@]}") \
</dev/null >$REMOTE_LOG 2>&1 &
echo \"\$(hostname): started train.py (pid \$!), log $REMOTE_LOG\""
on_all_workers "$start"

echo "# progress (process 0 prints it):"
echo "gcloud compute tpus tpu-vm ssh $TPU_NAME --project=$PROJECT --zone=$ZONE --worker=0" \
  "--command='tail -f ~/ms_ssm_train.log'"
