#!/usr/bin/env bash
# Retention: keep the newest complete backup of each of the last N days and of each of the
# last M ISO weeks, and always the newest verified backup, `latest`, and the newest backup that
# holds each database (so a project whose dumps started failing keeps its last good one);
# delete the other complete backups, and partial ones (failed or killed) older than a day.
#
# Usage: scripts/prune-backups.sh --daily N --weekly M [--dry-run]
set -euo pipefail
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

usage() { die "usage: $0 --daily N --weekly M [--dry-run]"; }

main() {
  local daily="" weekly="" dry_run=0 name day week newest_verified="" latest kind
  while (($#)); do
    case "$1" in
      --daily) daily="${2:-}"; shift 2 ;;
      --weekly) weekly="${2:-}"; shift 2 ;;
      --dry-run) dry_run=1; shift ;;
      *) usage ;;
    esac
  done
  [[ "$daily" =~ ^[0-9]+$ && "$weekly" =~ ^[0-9]+$ ]] || usage
  [[ -d "$BACKUP_DIR" ]] || return 0

  local -A keep=() days=() weeks=() databases=()
  local -a complete=()
  # Backup names are UTC timestamps (20261125T054906Z), so names sort by time: newest first.
  while IFS= read -r name; do
    [[ -f "$BACKUP_DIR/$name/COMPLETE" ]] && complete+=("$name")
  done < <(find "$BACKUP_DIR" -mindepth 1 -maxdepth 1 -type d -regextype posix-extended -regex '.*/[0-9]{8}T[0-9]{6}Z' -printf '%f\n' | sort -r)

  for name in "${complete[@]}"; do
    day="${name:0:8}"
    week="$(date -u -d "${name:0:4}-${name:4:2}-${name:6:2}" +%G-%V)"
    if [[ -z "${days[$day]:-}" ]] && ((${#days[@]} < daily)); then
      days[$day]=1
      keep[$name]="newest of day $day"
    fi
    if [[ -z "${weeks[$week]:-}" ]] && ((${#weeks[@]} < weekly)); then
      weeks[$week]=1
      keep[$name]="${keep[$name]:-newest of week $week}"
    fi
    if [[ -z "$newest_verified" && -f "$BACKUP_DIR/$name/VERIFIED" ]]; then
      newest_verified="$name"
      keep[$name]="${keep[$name]:-newest verified}"
    fi
    [[ -f "$BACKUP_DIR/$name/manifest.tsv" ]] || continue
    while IFS=$'\t' read -r kind _; do
      [[ "$kind" == database:* ]] || continue
      if [[ -z "${databases[$kind]:-}" ]]; then
        databases[$kind]=1
        keep[$name]="${keep[$name]:-newest of ${kind#database:}}"
      fi
    done <"$BACKUP_DIR/$name/manifest.tsv"
  done
  latest="$(latest_backup)"
  [[ -n "$latest" ]] && keep[$latest]="${keep[$latest]:-latest}"

  for name in "${complete[@]}"; do
    if [[ -n "${keep[$name]:-}" ]]; then
      log "keep   $name (${keep[$name]})"
    else
      log "delete $name"
      ((dry_run)) || rm -rf -- "${BACKUP_DIR:?}/$name"
    fi
  done
  while IFS= read -r name; do
    log "delete $name (partial, older than a day)"
    ((dry_run)) || rm -rf -- "${BACKUP_DIR:?}/$name"
  done < <(find "$BACKUP_DIR" -mindepth 1 -maxdepth 1 -type d -name '*.partial' -mmin +1440 -printf '%f\n')
}

main "$@"
