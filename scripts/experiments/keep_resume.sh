#!/bin/bash
# The resume point of device runs that span sessions, kept in git (a new checkout holds only
# what was committed; an ignored folder of checkpoints did not survive one): unpacks the run
# directories of a driver's returned runs.tar.gz (or its .part-* files, joined) into DEST,
# replacing the runs found there, and prints their steps. Commit DEST after the session's last
# device call; the next session passes RESUME_FROM=DEST to the same driver (tracked files travel
# to the device with the working tree, no carry needed).
#   bash scripts/experiments/keep_resume.sh /work/.device/<n>/lo results/resume/listops_full
set -euo pipefail
src=${1:?usage: keep_resume.sh RETURNED_DIR DEST}; dest=${2:?usage: keep_resume.sh RETURNED_DIR DEST}
tmp=$(mktemp -d); trap 'rm -rf $tmp' EXIT
cat $(ls $src/runs.tar.gz $src/runs.tar.gz.part-* 2> /dev/null) | tar xz -C $tmp
for run in $tmp/wd/*/; do  # all or nothing: DEST keeps one session's resume point
  [ -d $run/checkpoints ] || { echo "$(basename $run): no checkpoints in $src (FINAL=1 returns them)"; exit 1; }
done
mkdir -p $dest
for run in $tmp/wd/*/; do
  name=$(basename $run)
  rm -rf $dest/$name && cp -r $run $dest/$name
  echo "$name: checkpoints $(ls $dest/$name/checkpoints | tr '\n' ' ')best $(ls $dest/$name/best 2> /dev/null | tr '\n' ' ')"
done
du -sh $dest
